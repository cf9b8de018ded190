#include "scheduler/filter.h"

#include <string>

#include "gtest/gtest.h"

namespace shoal::scheduler {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

api::Node ReadyNode(const std::string& id) {
  api::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_description()->set_hostname(id);
  n.mutable_description()->mutable_platform()->set_os("linux");
  n.mutable_description()->mutable_platform()->set_architecture("x86_64");
  n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->mutable_resources()->set_memory_bytes(8 * kGiB);
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  return n;
}

NodeInfo Info(const api::Node& node) {
  NodeInfo info(node.meta().id());
  info.SetNode(node);
  return info;
}

api::Task TaskOf(const std::string& service) {
  api::Task t;
  t.mutable_meta()->set_id("t1");
  t.set_service_id(service);
  t.mutable_spec_version()->set_index(7);
  return t;
}

Demand Must(const api::Task& t) {
  absl::StatusOr<Demand> d = DemandOf(t);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : Demand();
}

TEST(DemandTest, ReadsReservationsPortsPlacementAndPreferences) {
  api::Task t = TaskOf("svc");
  auto* r = t.mutable_spec()->mutable_resources()->mutable_reservations();
  r->set_nano_cpus(500'000'000);
  r->set_memory_bytes(kGiB);
  auto* g = r->add_generic()->mutable_discrete();
  g->set_kind("gpu");
  g->set_value(1);
  g = r->add_generic()->mutable_discrete();
  g->set_kind("gpu");
  g->set_value(1);
  auto* p = t.mutable_endpoint()->add_ports();
  p->set_publish_mode(api::PortConfig::PUBLISH_MODE_HOST);
  p->set_published_port(8080);
  p = t.mutable_endpoint()->add_ports();  // ingress: no host port
  p->set_published_port(9090);
  auto* pl = t.mutable_spec()->mutable_placement();
  pl->add_constraints("node.role==worker");
  pl->set_max_replicas(2);
  pl->add_platforms()->set_architecture("aarch64");
  pl->add_preferences()->mutable_spread()->set_spread_descriptor("node.labels.zone");

  const Demand d = Must(t);
  EXPECT_EQ(d.service_id, "svc");
  EXPECT_EQ(d.version, 7u);
  EXPECT_EQ(d.nano_cpus, 500'000'000);
  EXPECT_EQ(d.memory_bytes, kGiB);
  ASSERT_EQ(d.generic.size(), 1u);
  EXPECT_EQ(d.generic[0], (std::pair<std::string, int64_t>("gpu", 2)));
  ASSERT_EQ(d.host_ports.size(), 1u);
  EXPECT_EQ(d.host_ports[0], HostPortKey(api::PortConfig::PROTOCOL_TCP, 8080));
  ASSERT_EQ(d.constraints.size(), 1u);
  ASSERT_EQ(d.platforms.size(), 1u);
  EXPECT_EQ(d.platforms[0].architecture(), "arm64");
  EXPECT_EQ(d.max_replicas, 2u);
  ASSERT_EQ(d.spread.size(), 1u);
  EXPECT_EQ(d.spread[0].label, "zone");
}

TEST(DemandTest, RefusesWhatTheSchedulerCannotActOnNamingTheField) {
  api::Task t = TaskOf("svc");
  t.mutable_spec()->mutable_placement()->add_constraints("node.role==worker");
  t.mutable_spec()->mutable_placement()->add_constraints("node.colour==blue");
  absl::StatusOr<Demand> d = DemandOf(t);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("placement.constraints[1]"), std::string::npos)
      << d.status();

  t = TaskOf("svc");
  t.mutable_spec()->mutable_placement()->add_preferences()->mutable_spread()->set_spread_descriptor(
      "zone");
  d = DemandOf(t);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("placement.preferences[0]: spread=zone"), std::string::npos)
      << d.status();

  t = TaskOf("svc");
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(-1);
  EXPECT_NE(DemandOf(t).status().message().find("memory_bytes is negative"), std::string::npos);

  t = TaskOf("svc");
  auto* named = t.mutable_spec()->mutable_resources()->mutable_reservations()->add_generic();
  named->mutable_named()->set_kind("gpu");
  named->mutable_named()->set_value("GPU-1");
  EXPECT_NE(DemandOf(t).status().message().find("resources.reservations.generic[0]"),
            std::string::npos);
}

TEST(CheckTest, ReadyAndActiveComeFirst) {
  const Demand d = Must(TaskOf("svc"));
  api::Node n = ReadyNode("n1");
  EXPECT_TRUE(Check(d, Info(n)).ok());
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_DOWN);
  EXPECT_EQ(Check(d, Info(n)).why, Rejection::Why::kNotReady);
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_UNKNOWN);
  EXPECT_EQ(Check(d, Info(n)).why, Rejection::Why::kNotReady);
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  n.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_PAUSE);
  EXPECT_EQ(Check(d, Info(n)).why, Rejection::Why::kPaused);
  n.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  EXPECT_EQ(Check(d, Info(n)).why, Rejection::Why::kDrained);
  NodeInfo absent("n2");
  EXPECT_EQ(Check(d, absent).why, Rejection::Why::kNotReady);
}

TEST(CheckTest, ReservationsMustFitWhatIsLeft) {
  api::Task t = TaskOf("svc");
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(3 * kGiB);
  const Demand d = Must(t);
  NodeInfo n = Info(ReadyNode("n1"));
  EXPECT_TRUE(Check(d, n).ok());
  TaskUse use;
  use.service_id = "other";
  use.memory_bytes = 6 * kGiB;
  n.Add(use);
  EXPECT_EQ(Check(d, n).why, Rejection::Why::kMemory);
  n.Remove(use);
  EXPECT_TRUE(Check(d, n).ok());

  t = TaskOf("svc");
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_nano_cpus(5'000'000'000);
  EXPECT_EQ(Check(Must(t), n).why, Rejection::Why::kCpu);
}

TEST(CheckTest, GenericResourcesCountNamedValuesAndCounts) {
  api::Node node = ReadyNode("n1");
  for (const char* v : {"GPU-0", "GPU-1"}) {
    auto* g = node.mutable_description()->mutable_resources()->add_generic()->mutable_named();
    g->set_kind("gpu");
    g->set_value(v);
  }
  auto* ssd = node.mutable_description()->mutable_resources()->add_generic()->mutable_discrete();
  ssd->set_kind("ssd");
  ssd->set_value(1);
  NodeInfo n = Info(node);
  EXPECT_EQ(n.free_generic("gpu"), 2);
  EXPECT_EQ(n.free_generic("ssd"), 1);
  EXPECT_EQ(n.free_generic("fpga"), 0);

  TaskUse use;
  n.TakeGeneric("gpu", 1, use.named, use.discrete);
  ASSERT_EQ(use.named.size(), 1u);
  EXPECT_EQ(use.named[0].second, "GPU-0");
  n.Add(use);
  EXPECT_EQ(n.free_generic("gpu"), 1);
  TaskUse second;
  n.TakeGeneric("gpu", 1, second.named, second.discrete);
  EXPECT_EQ(second.named[0].second, "GPU-1");

  api::Task t = TaskOf("svc");
  auto* want = t.mutable_spec()->mutable_resources()->mutable_reservations()->add_generic();
  want->mutable_discrete()->set_kind("gpu");
  want->mutable_discrete()->set_value(2);
  const Demand d = Must(t);
  const Rejection r = Check(d, n);
  EXPECT_EQ(r.why, Rejection::Why::kGeneric);
  n.Remove(use);
  EXPECT_TRUE(Check(d, n).ok());
}

TEST(CheckTest, ConstraintsThenPlatformThenPortsThenMaxReplicas) {
  api::Task t = TaskOf("svc");
  auto* pl = t.mutable_spec()->mutable_placement();
  pl->add_constraints("node.labels.zone==a");
  pl->add_constraints("node.hostname!=n1");
  api::Node node = ReadyNode("n1");
  (*node.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
  Rejection r = Check(Must(t), Info(node));
  EXPECT_EQ(r.why, Rejection::Why::kConstraint);
  EXPECT_EQ(r.detail, 1u);

  t = TaskOf("svc");
  t.mutable_spec()->mutable_placement()->add_platforms()->set_architecture("arm64");
  EXPECT_EQ(Check(Must(t), Info(node)).why, Rejection::Why::kPlatform);
  t.mutable_spec()->mutable_placement()->add_platforms()->set_architecture("amd64");
  EXPECT_TRUE(Check(Must(t), Info(node)).ok()) << "x86_64 is amd64";

  t = TaskOf("svc");
  auto* p = t.mutable_endpoint()->add_ports();
  p->set_publish_mode(api::PortConfig::PUBLISH_MODE_HOST);
  p->set_protocol(api::PortConfig::PROTOCOL_UDP);
  p->set_published_port(53);
  t.mutable_spec()->mutable_placement()->set_max_replicas(1);
  const Demand d = Must(t);
  NodeInfo n = Info(node);
  TaskUse tcp53;
  tcp53.service_id = "dns-tcp";
  tcp53.host_ports = {HostPortKey(api::PortConfig::PROTOCOL_TCP, 53)};
  n.Add(tcp53);
  EXPECT_TRUE(Check(d, n).ok()) << "53/tcp does not hold 53/udp";
  TaskUse udp53 = tcp53;
  udp53.host_ports = {HostPortKey(api::PortConfig::PROTOCOL_UDP, 53)};
  n.Add(udp53);
  EXPECT_EQ(Check(d, n).why, Rejection::Why::kHostPort);
  n.Remove(udp53);
  TaskUse same;
  same.service_id = "svc";
  n.Add(same);
  EXPECT_EQ(Check(d, n).why, Rejection::Why::kMaxReplicas);
  same.active = false;  // A task on its way out no longer counts against the limit.
  NodeInfo m = Info(node);
  m.Add(same);
  EXPECT_TRUE(Check(d, m).ok());
}

TEST(CheckTest, TheFirstFailingFilterInPipelineOrderNamesTheRejection) {
  // A drained node that also lacks memory and the label is counted as drained; one that
  // lacks memory and the label, as short of memory.
  api::Task t = TaskOf("svc");
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(64 * kGiB);
  t.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone==a");
  const Demand d = Must(t);
  api::Node node = ReadyNode("n1");
  EXPECT_EQ(Check(d, Info(node)).why, Rejection::Why::kMemory);
  node.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  EXPECT_EQ(Check(d, Info(node)).why, Rejection::Why::kDrained);
}

TEST(RejectionsTest, ExplainsMostRejectionsFirstNamingResourceConstraintAndPort) {
  api::Task t = TaskOf("svc");
  t.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone==a");
  auto* p = t.mutable_endpoint()->add_ports();
  p->set_publish_mode(api::PortConfig::PUBLISH_MODE_HOST);
  p->set_published_port(8080);
  auto* g = t.mutable_spec()->mutable_resources()->mutable_reservations()->add_generic();
  g->mutable_discrete()->set_kind("gpu");
  g->mutable_discrete()->set_value(1);
  t.mutable_spec()->mutable_placement()->set_max_replicas(2);
  const Demand d = Must(t);

  Rejections r;
  EXPECT_EQ(r.Explain(d), "no suitable node (the cluster has no nodes)");
  for (int i = 0; i < 3; ++i) r.Add({Rejection::Why::kMemory, 0});
  EXPECT_EQ(r.Explain(d), "no suitable node (insufficient memory on 3 nodes)");
  r.Add({Rejection::Why::kDrained, 0});
  r.Add({Rejection::Why::kConstraint, 0});
  r.Add({Rejection::Why::kConstraint, 0});
  r.Add({Rejection::Why::kHostPort, 0});
  r.Add({Rejection::Why::kGeneric, 0});
  r.Add({Rejection::Why::kMaxReplicas, 0});
  r.Add({Rejection::Why::kNotReady, 0});
  r.Add({Rejection::Why::kNotReady, 0});
  EXPECT_EQ(r.total(), 11);
  EXPECT_EQ(r.Explain(d),
            "no suitable node (insufficient memory on 3 nodes; 2 nodes are not ready; "
            "constraint node.labels.zone==a not satisfied on 2 nodes; 1 node is drained; "
            "insufficient gpu on 1 node; host-mode port 8080/tcp already in use on 1 node; "
            "max replicas per node (2) reached on 1 node)");
}

}  // namespace
}  // namespace shoal::scheduler

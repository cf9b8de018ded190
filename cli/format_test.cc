#include "cli/format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

using ::testing::HasSubstr;

google::protobuf::Timestamp At(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

TEST(FormatTest, TablesPadColumnsLikeDockersTabwriter) {
  Table t({"ID", "NAME", "LAST"});
  t.Add({"abc", "x", "1"});
  t.Add({"a", "longer-name", ""});
  EXPECT_EQ(t.Render(),
            "ID    NAME          LAST\n"
            "abc   x             1\n"
            "a     longer-name\n");
}

TEST(FormatTest, WidthsCountCharactersNotBytes) {
  Table t({"A", "B"});
  t.Add({"é…", "x"});
  EXPECT_EQ(t.Render(), "A    B\né…   x\n");
}

TEST(FormatTest, IdsAndEllipsis) {
  EXPECT_EQ(ShortId("abcdefghijklmnopqrstuvwxy"), "abcdefghijkl");
  EXPECT_EQ(ShortId("abcdefghijklmnopqrstuvwxy", true), "abcdefghijklmnopqrstuvwxy");
  EXPECT_EQ(Ellipsis("short", 30), "short");
  EXPECT_EQ(Ellipsis("abcdef", 4), "abc…");
}

TEST(FormatTest, HumanDurationsAreDockers) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(400)), "Less than a second");
  EXPECT_EQ(HumanDuration(absl::Seconds(1)), "1 second");
  EXPECT_EQ(HumanDuration(absl::Seconds(5)), "5 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(59)), "59 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(60)), "About a minute");
  EXPECT_EQ(HumanDuration(absl::Minutes(5)), "5 minutes");
  EXPECT_EQ(HumanDuration(absl::Minutes(59)), "59 minutes");
  EXPECT_EQ(HumanDuration(absl::Minutes(61)), "About an hour");
  EXPECT_EQ(HumanDuration(absl::Hours(5)), "5 hours");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 3)), "3 days");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 21)), "3 weeks");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 90)), "3 months");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 365 * 3)), "3 years");
}

TEST(FormatTest, TimeAgo) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(TimeAgo(At(now - absl::Seconds(5)), now), "5 seconds ago");
  EXPECT_EQ(TimeAgo(google::protobuf::Timestamp(), now), "");
}

TEST(FormatTest, SizesAndCpus) {
  EXPECT_EQ(HumanBytes(100), "100B");
  EXPECT_EQ(HumanBytes(512LL << 20), "512MiB");
  EXPECT_EQ(HumanBytes(3LL << 29), "1.5GiB");
  EXPECT_EQ(HumanCpus(1500000000), "1.5");
  EXPECT_EQ(HumanCpus(2000000000), "2");
  EXPECT_EQ(HumanCpus(250000000), "0.25");
}

TEST(FormatTest, StateNames) {
  EXPECT_EQ(TaskStateName(api::TASK_STATE_RUNNING), "running");
  EXPECT_EQ(NodeStateName(api::NodeStatus::NODE_STATE_READY), "Ready");
  EXPECT_EQ(AvailabilityName(api::NodeSpec::AVAILABILITY_DRAIN), "Drain");
  api::Node n;
  EXPECT_EQ(ManagerStatusName(n), "");
  n.mutable_manager_status()->set_leader(true);
  EXPECT_EQ(ManagerStatusName(n), "Leader");
}

TEST(FormatTest, NodeTableMarksSelf) {
  api::Node a;
  a.mutable_meta()->set_id("node-a");
  a.mutable_description()->set_hostname("host-a");
  a.mutable_description()->set_version("0.1.0");
  a.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  a.mutable_manager_status()->set_leader(true);
  api::Node b;
  b.mutable_meta()->set_id("node-b");
  b.mutable_description()->set_hostname("host-b");
  b.mutable_status()->set_state(api::NodeStatus::NODE_STATE_DOWN);
  b.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  EXPECT_EQ(NodeTable({a, b}, "node-a"),
            "ID         HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"
            "node-a *   host-a     Ready    Active         Leader           0.1.0\n"
            "node-b     host-b     Down     Drain\n");
}

TEST(FormatTest, ServiceTableShowsReplicasAndPorts) {
  api::Service s;
  s.mutable_meta()->set_id("abcdefghijklmnopqrstuvwxy");
  s.mutable_spec()->mutable_annotations()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(5);
  s.mutable_spec()->mutable_task()->mutable_container()->set_image("nginx:1@sha256:abc");
  auto* p = s.mutable_endpoint()->add_ports();
  p->set_published_port(8080);
  p->set_target_port(80);
  EXPECT_EQ(ServiceTable({s}, {{s.meta().id(), {3, 5, 0}}}, false),
            "ID             NAME   MODE         REPLICAS   IMAGE     PORTS\n"
            "abcdefghijkl   web    replicated   3/5        nginx:1   *:8080->80/tcp\n");
}

TEST(FormatTest, TaskTableGroupsSlotsNewestFirstWithHistory) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  auto task = [&](const std::string& id, uint64_t slot, api::TaskState state,
                  api::TaskState desired, absl::Duration age) {
    api::Task t;
    t.mutable_meta()->set_id(id);
    *t.mutable_meta()->mutable_created_at() = At(now - age);
    t.set_service_id("svc");
    t.set_slot(slot);
    t.set_node_id("n1");
    t.mutable_spec()->mutable_container()->set_image("nginx");
    t.mutable_status()->set_state(state);
    *t.mutable_status()->mutable_timestamp() = At(now - age);
    t.set_desired_state(desired);
    return t;
  };
  api::Task old = task("old000000000000", 1, api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN,
                       absl::Minutes(3));
  old.mutable_status()->set_err("task: non-zero exit (1): a very long explanation follows");
  const std::string out = TaskTable({old,
                                     task("new000000000000", 1, api::TASK_STATE_RUNNING,
                                          api::TASK_STATE_RUNNING, absl::Seconds(5)),
                                     task("two000000000000", 2, api::TASK_STATE_RUNNING,
                                          api::TASK_STATE_RUNNING, absl::Seconds(7))},
                                    {{"n1", "host-1"}}, {{"svc", "web"}}, now, false);
  EXPECT_EQ(out,
            "ID             NAME        IMAGE   NODE     DESIRED STATE   CURRENT STATE           "
            "ERROR                              PORTS\n"
            "new000000000   web.1       nginx   host-1   Running         Running 5 seconds ago\n"
            "old000000000    \\_ web.1   nginx   host-1   Shutdown        Failed 3 minutes ago    "
            "\"task: non-zero exit (1): a ve…\"\n"
            "two000000000   web.2       nginx   host-1   Running         Running 7 seconds ago\n");
}

TEST(FormatTest, SecretTable) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  api::Secret s;
  s.mutable_meta()->set_id("sid");
  s.mutable_spec()->mutable_annotations()->set_name("db");
  *s.mutable_meta()->mutable_created_at() = At(now - absl::Minutes(2));
  *s.mutable_meta()->mutable_updated_at() = At(now - absl::Minutes(2));
  EXPECT_THAT(SecretTable({s}, now),
              HasSubstr("sid   db              2 minutes ago   2 minutes ago"));
}

}  // namespace
}  // namespace shoal::cli

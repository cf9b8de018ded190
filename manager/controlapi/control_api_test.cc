#include "manager/controlapi/control_api.h"

#include <map>
#include <string>

#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"
#include "pki/join_token.h"
#include "pki/root_ca.h"

namespace shoal::manager::controlapi {
namespace {

using store::ReadTx;
using store::WriteTx;

class ControlApiTest : public ::testing::Test {
 protected:
  ControlApiTest() { raft_.Join(&store_); }

  api::ServiceSpec Spec(const std::string& name) {
    api::ServiceSpec s;
    s.mutable_annotations()->set_name(name);
    s.mutable_task()->mutable_container()->set_image("nginx");
    s.mutable_replicated()->set_replicas(2);
    return s;
  }
  api::Service Create(const api::ServiceSpec& spec) {
    api::CreateServiceRequest r;
    *r.mutable_spec() = spec;
    auto out = api_.CreateService(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->service() : api::Service();
  }
  api::Secret Secret(const std::string& name) {
    api::CreateSecretRequest r;
    r.mutable_spec()->mutable_annotations()->set_name(name);
    r.mutable_spec()->set_data("s3cret");
    auto out = api_.CreateSecret(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->secret() : api::Secret();
  }
  void PutNode(const std::string& id, const std::string& host, api::NodeRole role,
               api::NodeStatus::State state) {
    api::Node n;
    n.mutable_meta()->set_id(id);
    n.mutable_description()->set_hostname(host);
    n.set_role(role);
    n.mutable_spec()->set_desired_role(role);
    n.mutable_status()->set_state(state);
    ASSERT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(n); }).ok());
  }

  ManualClock clock_;
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  IdGenerator ids_{SeededRandomBytes(5)};
  ControlApi api_{{&store_, &clock_, &ids_, SeededRandomBytes(6), {}}};
};

TEST_F(ControlApiTest, CreateGetAndListServicesByIdPrefixOrName) {
  const api::Service web = Create(Spec("web"));
  Create(Spec("api"));
  EXPECT_EQ(web.spec().annotations().name(), "web");
  EXPECT_EQ(web.meta().id().size(), kIdLength);
  api::GetServiceRequest get;
  get.set_service_id("web");
  EXPECT_EQ(api_.GetService(get)->service().meta().id(), web.meta().id());
  get.set_service_id(web.meta().id().substr(0, 6));
  EXPECT_EQ(api_.GetService(get)->service().meta().id(), web.meta().id());
  get.set_service_id("nope");
  EXPECT_EQ(api_.GetService(get).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(api_.GetService(get).status().message(), "service nope not found");

  api::ListServicesRequest list;
  auto all = api_.ListServices(list);
  ASSERT_EQ(all->services_size(), 2);
  EXPECT_EQ(all->services(0).spec().annotations().name(), "api") << "by name";
  list.mutable_filters()->mutable_common()->add_name_prefixes("we");
  EXPECT_EQ(api_.ListServices(list)->services_size(), 1);

  // A taken name, in any case.
  api::CreateServiceRequest dup;
  *dup.mutable_spec() = Spec("WEB");
  EXPECT_EQ(api_.CreateService(dup).status().code(), absl::StatusCode::kAlreadyExists);
  // An invalid spec names the field and writes nothing.
  api::CreateServiceRequest bad;
  *bad.mutable_spec() = Spec("bad");
  bad.mutable_spec()->mutable_task()->mutable_container()->clear_image();
  EXPECT_EQ(api_.CreateService(bad).status().message(),
            "task.container.image: an image is required");
  EXPECT_EQ(api_.ListServices(api::ListServicesRequest())->services_size(), 2);
}

TEST_F(ControlApiTest, SecretReferencesResolveByNameAndSecretsInUseStay) {
  const api::Secret secret = Secret("db_password");
  EXPECT_TRUE(secret.spec().data().empty()) << "secret data never comes back";
  api::ServiceSpec spec = Spec("db");
  spec.mutable_task()->mutable_container()->add_secrets()->set_secret_name("db_password");
  const api::Service db = Create(spec);
  EXPECT_EQ(db.spec().task().container().secrets(0).secret_id(), secret.meta().id());

  api::ServiceSpec missing = Spec("other");
  missing.mutable_task()->mutable_container()->add_secrets()->set_secret_name("nope");
  api::CreateServiceRequest r;
  *r.mutable_spec() = missing;
  EXPECT_EQ(api_.CreateService(r).status().message(),
            "task.container.secrets[0]: secret nope not found");

  api::RemoveSecretRequest rm;
  rm.set_secret_id("db_password");
  EXPECT_EQ(api_.RemoveSecret(rm).status().message(),
            "secret db_password is in use by service db");
  api::RemoveServiceRequest rms;
  rms.set_service_id("db");
  ASSERT_TRUE(api_.RemoveService(rms).ok());
  EXPECT_TRUE(api_.RemoveSecret(rm).ok());

  api::GetSecretRequest get;
  get.set_secret_id("db_password");
  EXPECT_EQ(api_.GetSecret(get).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ControlApiTest, OnlyASecretsLabelsChange) {
  const api::Secret s = Secret("token");
  api::UpdateSecretRequest u;
  u.set_secret_id(s.meta().id());
  *u.mutable_secret_version() = s.meta().version();
  u.mutable_spec()->mutable_annotations()->set_name("token");
  u.mutable_spec()->set_data("new data");
  EXPECT_NE(api_.UpdateSecret(u).status().message().find("a secret's data cannot be changed"),
            std::string::npos);
  u.mutable_spec()->clear_data();
  (*u.mutable_spec()->mutable_annotations()->mutable_labels())["env"] = "prod";
  auto out = api_.UpdateSecret(u);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->secret().spec().annotations().labels().at("env"), "prod");
  EXPECT_TRUE(out->secret().spec().data().empty());
  store_.View([&](const ReadTx& tx) {
    EXPECT_EQ(tx.Get<api::Secret>(s.meta().id())->spec().data(), "s3cret");
  });
}

TEST_F(ControlApiTest, ServiceUpdatesAreVersionedKeepThePreviousSpecAndRollBack) {
  const api::Service v1 = Create(Spec("web"));
  api::UpdateServiceRequest u;
  u.set_service_id("web");
  *u.mutable_service_version() = v1.meta().version();
  *u.mutable_spec() = v1.spec();
  u.mutable_spec()->mutable_task()->mutable_container()->set_image("nginx:2");
  auto v2 = api_.UpdateService(u);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->service().previous_spec().task().container().image(), "nginx");
  EXPECT_NE(v2->service().spec_version().index(), v1.spec_version().index());

  // The same request again: the version moved on.
  const auto stale = api_.UpdateService(u);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(stale.status().message().find("update out of sequence"), std::string::npos);

  // No change: nothing written.
  *u.mutable_service_version() = v2->service().meta().version();
  const int proposals = raft_.proposals();
  ASSERT_TRUE(api_.UpdateService(u).ok());
  EXPECT_EQ(raft_.proposals(), proposals);

  // Mode cannot change.
  api::UpdateServiceRequest mode = u;
  mode.mutable_spec()->clear_replicated();
  mode.mutable_spec()->mutable_global();
  EXPECT_EQ(api_.UpdateService(mode).status().message(),
            "mode: a service's mode cannot be changed");

  api::UpdateServiceRequest back;
  back.set_service_id("web");
  *back.mutable_service_version() = v2->service().meta().version();
  back.set_rollback(api::UpdateServiceRequest::ROLLBACK_PREVIOUS);
  auto rolled = api_.UpdateService(back);
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  EXPECT_EQ(rolled->service().spec().task().container().image(), "nginx");
  EXPECT_EQ(rolled->service().spec_version().index(), v1.spec_version().index());
  EXPECT_EQ(rolled->service().update_status().state(),
            api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED);
}

// Only a change of what the tasks run (or publish) is a new spec version, which replaces
// tasks: scaling or relabelling a service keeps them, as Docker does.
TEST_F(ControlApiTest, ScalingKeepsTheSpecVersionAndChangingTheTaskMakesANewOne) {
  const api::Service v1 = Create(Spec("web"));
  api::UpdateServiceRequest u;
  u.set_service_id("web");
  *u.mutable_service_version() = v1.meta().version();
  *u.mutable_spec() = v1.spec();
  u.mutable_spec()->mutable_replicated()->set_replicas(9);
  (*u.mutable_spec()->mutable_annotations()->mutable_labels())["tier"] = "front";
  auto scaled = api_.UpdateService(u);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_EQ(scaled->service().spec().replicated().replicas(), 9u);
  EXPECT_EQ(scaled->service().spec_version().index(), v1.spec_version().index());
  EXPECT_EQ(scaled->service().previous_spec().replicated().replicas(),
            v1.spec().replicated().replicas());

  *u.mutable_service_version() = scaled->service().meta().version();
  u.mutable_spec()->mutable_task()->mutable_container()->add_env("A=1");
  auto changed = api_.UpdateService(u);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_NE(changed->service().spec_version().index(), v1.spec_version().index());
}

TEST_F(ControlApiTest, UpdatingAJobRunsItAgainAsANewIteration) {
  api::ServiceSpec spec = Spec("migrate");
  spec.clear_replicated();
  spec.mutable_replicated_job()->set_total_completions(3);
  const api::Service job = Create(spec);
  EXPECT_EQ(job.job_status().job_iteration().index(), 0u);
  api::UpdateServiceRequest u;
  u.set_service_id("migrate");
  *u.mutable_service_version() = job.meta().version();
  *u.mutable_spec() = job.spec();
  u.mutable_spec()->mutable_task()->set_force_update(1);
  auto again = api_.UpdateService(u);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(again->service().job_status().job_iteration().index(), 0u);
  api::ListServiceStatusesRequest st;
  st.add_services("migrate");
  EXPECT_EQ(api_.ListServiceStatuses(st)->statuses(0).desired_tasks(), 3u);
}

TEST_F(ControlApiTest, NodeRemovalAndDemotionFollowDockersRules) {
  PutNode("m1", "mgr-1", api::NODE_ROLE_MANAGER, api::NodeStatus::NODE_STATE_READY);
  PutNode("w1", "wrk-1", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_READY);
  PutNode("w2", "wrk-2", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_DOWN);

  api::RemoveNodeRequest rm;
  rm.set_node_id("mgr-1");
  EXPECT_NE(api_.RemoveNode(rm).status().message().find("is a manager: demote it first"),
            std::string::npos);
  rm.set_node_id("wrk-1");
  EXPECT_EQ(api_.RemoveNode(rm).status().message(),
            "node w1 is not down and can't be removed: stop it first, or use --force");
  rm.set_force(true);
  EXPECT_TRUE(api_.RemoveNode(rm).ok());
  api::RemoveNodeRequest down;
  down.set_node_id("w2");
  EXPECT_TRUE(api_.RemoveNode(down).ok());

  auto m1 = api_.GetNode([] {
    api::GetNodeRequest g;
    g.set_node_id("m1");
    return g;
  }());
  ASSERT_TRUE(m1.ok());
  api::UpdateNodeRequest demote;
  demote.set_node_id("m1");
  *demote.mutable_node_version() = m1->node().meta().version();
  *demote.mutable_spec() = m1->node().spec();
  demote.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  EXPECT_EQ(api_.UpdateNode(demote).status().message(),
            "node m1 is the last manager of the cluster and cannot be demoted");

  // Drain with a label.
  api::UpdateNodeRequest drain = demote;
  *drain.mutable_spec() = m1->node().spec();
  drain.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  (*drain.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
  auto drained = api_.UpdateNode(drain);
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->node().spec().availability(), api::NodeSpec::AVAILABILITY_DRAIN);
}

TEST_F(ControlApiTest, DemotionThatWouldLoseTheQuorumIsRefused) {
  PutNode("m1", "a", api::NODE_ROLE_MANAGER, api::NodeStatus::NODE_STATE_READY);
  PutNode("m2", "b", api::NODE_ROLE_MANAGER, api::NodeStatus::NODE_STATE_DOWN);
  PutNode("m3", "c", api::NODE_ROLE_MANAGER, api::NodeStatus::NODE_STATE_DOWN);
  api::GetNodeRequest g;
  g.set_node_id("m1");
  const api::Node m1 = api_.GetNode(g)->node();
  api::UpdateNodeRequest demote;
  demote.set_node_id("m1");
  *demote.mutable_node_version() = m1.meta().version();
  *demote.mutable_spec() = m1.spec();
  demote.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  EXPECT_EQ(api_.UpdateNode(demote).status().message(),
            "demoting node m1 would leave 0 reachable of 2 managers, short of a quorum of 2");
}

TEST_F(ControlApiTest, AnAmbiguousPrefixIsRefused) {
  PutNode("abc1", "x", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_READY);
  PutNode("abc2", "y", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_READY);
  api::GetNodeRequest g;
  g.set_node_id("abc");
  EXPECT_EQ(api_.GetNode(g).status().message(), "node id prefix \"abc\" is ambiguous (2 match)");
  g.set_node_id("y");
  EXPECT_EQ(api_.GetNode(g)->node().meta().id(), "abc2") << "by hostname";
}

TEST_F(ControlApiTest, NetworksInUseStayAndTheClusterRotatesJoinTokensWithoutShowingKeys) {
  api::CreateNetworkRequest cn;
  cn.mutable_spec()->mutable_annotations()->set_name("backend");
  auto net = api_.CreateNetwork(cn);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ(net->network().spec().driver_config().name(), "overlay");
  api::ServiceSpec spec = Spec("api");
  spec.mutable_task()->add_networks()->set_target("backend");
  const api::Service svc = Create(spec);
  EXPECT_EQ(svc.spec().task().networks(0).target(), net->network().meta().id());
  api::RemoveNetworkRequest rn;
  rn.set_network_id("backend");
  EXPECT_EQ(api_.RemoveNetwork(rn).status().message(), "network backend is in use by service api");

  auto ca = pki::RootCa::Create(clock_);
  ASSERT_TRUE(ca.ok());
  api::Cluster c;
  c.mutable_meta()->set_id("cluster1");
  c.mutable_spec()->mutable_annotations()->set_name("default");
  *c.mutable_root_ca() = (*ca)->ToProto();
  c.mutable_root_ca()->mutable_join_tokens()->set_worker("SWMTKN-1-old-worker");
  c.mutable_root_ca()->mutable_join_tokens()->set_manager("SWMTKN-1-old-manager");
  ASSERT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(c); }).ok());
  api::GetClusterRequest gc;
  gc.set_cluster_id("default");
  auto got = api_.GetCluster(gc);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->cluster().root_ca().ca_key().empty()) << "the CA key never leaves";
  api::UpdateClusterRequest uc;
  uc.set_cluster_id("default");
  *uc.mutable_cluster_version() = got->cluster().meta().version();
  *uc.mutable_spec() = got->cluster().spec();
  uc.mutable_rotation()->set_worker_join_token(true);
  auto rotated = api_.UpdateCluster(uc);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const auto& tokens = rotated->cluster().root_ca().join_tokens();
  EXPECT_NE(tokens.worker(), "SWMTKN-1-old-worker");
  auto parsed = pki::ParseJoinToken(tokens.worker());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(pki::CheckCaMatchesToken(*parsed, (*ca)->cert_pem()).ok());
  EXPECT_EQ(tokens.manager(), "SWMTKN-1-old-manager");
  EXPECT_TRUE(rotated->cluster().root_ca().ca_key().empty());
  store_.View([](const ReadTx& tx) {
    EXPECT_FALSE(tx.Get<api::Cluster>("cluster1")->root_ca().ca_key().empty())
        << "the key stays in the store";
  });
}

// MANAGER STATUS is Raft's view when asked: the stored "leader" of the node that initialised the
// cluster does not outlive its leadership, and a member gone from Raft is unreachable.
TEST_F(ControlApiTest, ManagerStatusIsRaftsLiveView) {
  auto put_manager = [&](const std::string& id, uint64_t raft_id, bool stored_leader) {
    api::Node n;
    n.mutable_meta()->set_id(id);
    n.set_role(api::NODE_ROLE_MANAGER);
    n.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
    n.mutable_manager_status()->set_raft_id(raft_id);
    n.mutable_manager_status()->set_leader(stored_leader);
    n.mutable_manager_status()->set_reachability(api::ManagerStatus::REACHABILITY_REACHABLE);
    ASSERT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(n); }).ok());
  };
  put_manager("m1", 1, true);
  put_manager("m2", 2, false);
  put_manager("m3", 3, false);
  PutNode("w1", "w1", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_READY);

  std::map<uint64_t, ControlApi::Options::Member> members;
  ControlApi::Options o{&store_, &clock_, &ids_, SeededRandomBytes(6), {}};
  o.members = [&] { return members; };
  ControlApi api(o);
  auto status_of = [&](const std::string& id) {
    api::GetNodeRequest get;
    get.set_node_id(id);
    auto n = api.GetNode(get);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? n->node().manager_status() : api::ManagerStatus();
  };

  // Not the leader (no view): what was stored.
  EXPECT_TRUE(status_of("m1").leader());
  // m2 leads, m1 does not answer, m3 is no member any more.
  members = {{1, {false, false}}, {2, {true, true}}};
  EXPECT_FALSE(status_of("m1").leader());
  EXPECT_EQ(status_of("m1").reachability(), api::ManagerStatus::REACHABILITY_UNREACHABLE);
  EXPECT_TRUE(status_of("m2").leader());
  EXPECT_EQ(status_of("m2").reachability(), api::ManagerStatus::REACHABILITY_REACHABLE);
  EXPECT_EQ(status_of("m3").reachability(), api::ManagerStatus::REACHABILITY_UNREACHABLE);
  auto list = api.ListNodes(api::ListNodesRequest());
  ASSERT_TRUE(list.ok());
  int leaders = 0;
  for (const api::Node& n : list->nodes()) {
    leaders += n.manager_status().leader();
    if (n.meta().id() == "w1") {
      EXPECT_FALSE(n.has_manager_status());
    }
  }
  EXPECT_EQ(leaders, 1);
}

// A removed node's certificate is refused until it expires: the cluster object lists it (with
// its certificate's expiry), and entries past their time go at the next removal.
TEST_F(ControlApiTest, ARemovedNodeIsListedUntilItsCertificateExpires) {
  api::Cluster c;
  c.mutable_meta()->set_id("cluster1");
  c.mutable_spec()->mutable_annotations()->set_name("default");
  ASSERT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(c); }).ok());
  PutNode("w1", "wrk-1", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_DOWN);
  PutNode("w2", "wrk-2", api::NODE_ROLE_WORKER, api::NodeStatus::NODE_STATE_DOWN);
  const int64_t w1_expiry = absl::ToUnixSeconds(clock_.Now() + absl::Hours(1));
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    api::Node n = *tx.Get<api::Node>("w1");
                    n.mutable_certificate()->mutable_not_after()->set_seconds(w1_expiry);
                    return tx.Update(n);
                  })
                  .ok());
  auto removed = [&] {
    std::map<std::string, int64_t> out;
    store_.View([&](const ReadTx& tx) {
      for (const auto& [id, t] : tx.Get<api::Cluster>("cluster1")->removed_nodes()) {
        out[id] = t.seconds();
      }
    });
    return out;
  };
  api::RemoveNodeRequest rm;
  rm.set_node_id("w1");
  ASSERT_TRUE(api_.RemoveNode(rm).ok());
  EXPECT_EQ(removed(), (std::map<std::string, int64_t>{{"w1", w1_expiry}}));

  // Two hours later w1's certificate has expired: its entry goes when w2 is removed (w2 has
  // no certificate record: refused for the longest a certificate lives).
  clock_.Advance(absl::Hours(2));
  rm.set_node_id("w2");
  ASSERT_TRUE(api_.RemoveNode(rm).ok());
  EXPECT_EQ(removed(), (std::map<std::string, int64_t>{
                           {"w2", absl::ToUnixSeconds(clock_.Now() + absl::Hours(24 * 90))}}));
}

}  // namespace
}  // namespace shoal::manager::controlapi

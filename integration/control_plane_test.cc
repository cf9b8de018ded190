// The control plane end to end, in one process: three managers on Raft serving the Control
// and Dispatcher APIs over mutual TLS on loopback, fake workers over the Dispatcher API, and
// an operator client with an operator certificate. What an operator does with `swarmctl`, and
// what happens when workers or managers die.
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "integration/testing/cluster_test_base.h"
#include "pki/certificate.h"
#include "pki/operator_certificate.h"

namespace shoal::integration {
namespace {

using manager::store::ReadTx;

class ControlPlaneTest : public ClusterTestBase {};

TEST_F(ControlPlaneTest, AServiceRunsItsReplicasAndScales) {
  CreateService("web", 5);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 5); }));
  Scale("web", 8);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 8); }));
  Scale("web", 2);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 2); }));

  api::ListServiceStatusesRequest req;
  req.add_services("web");
  api::ListServiceStatusesResponse resp;
  ASSERT_TRUE(Call(&api::Control::Stub::ListServiceStatuses, req, &resp).ok());
  ASSERT_EQ(resp.statuses_size(), 1);
  EXPECT_EQ(resp.statuses(0).desired_tasks(), 2u);
}

TEST_F(ControlPlaneTest, ADeadWorkersTasksAreReplacedElsewhere) {
  CreateService("web", 6);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 6); }));
  const std::string dead = cluster_->worker(0).id();
  cluster_->worker(0).Kill();
  ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
    const api::Node* n = tx.Get<api::Node>(dead);
    if (n == nullptr || n->status().state() != api::NodeStatus::NODE_STATE_DOWN) return false;
    if (!Running(tx, "web", 6)) return false;
    for (const api::Task* t : tx.TasksOnNode(dead)) {
      if (t->desired_state() <= api::TASK_STATE_RUNNING) return false;
    }
    return true;
  }));
}

TEST_F(ControlPlaneTest, ANewLeaderCarriesOnWithNoSlotDoubledOrLost) {
  CreateService("web", 5);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 5); }));
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  cluster_->KillManager(leader);
  // The workers follow the new leader; the operator talks to any manager.
  Scale("web", 7);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 7); }));
  for (int i = 0; i < cluster_->workers(); ++i) {
    EXPECT_GE(cluster_->worker(i).sessions(), 2) << "worker " << i << " reconnected";
  }
}

TEST_F(ControlPlaneTest, AFailingUpdateIsPausedOrRolledBackAsConfigured) {
  CreateService("paused", 3, [](api::ServiceSpec& s) {
    s.mutable_update()->mutable_monitor()->set_seconds(1);
  });
  CreateService("rolled", 3, [](api::ServiceSpec& s) {
    s.mutable_update()->set_failure_action(api::UpdateConfig::FAILURE_ACTION_ROLLBACK);
    s.mutable_update()->mutable_monitor()->set_seconds(1);
  });
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) {
    return Running(tx, "paused", 3) && Running(tx, "rolled", 3);
  }));
  auto broken = [](api::ServiceSpec& s) {
    s.mutable_task()->mutable_container()->set_image("broken");
    s.mutable_task()->mutable_restart()->set_condition(api::RestartPolicy::RESTART_CONDITION_NONE);
  };
  Update("paused", broken);
  Update("rolled", broken);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) {
    const api::Service* p = tx.GetByName<api::Service>("paused");
    const api::Service* r = tx.GetByName<api::Service>("rolled");
    return p != nullptr && r != nullptr && p->update_status().state() == api::UpdateStatus::UPDATE_STATE_PAUSED &&
           r->update_status().state() == api::UpdateStatus::UPDATE_STATE_ROLLBACK_COMPLETED &&
           Running(tx, "rolled", 3);
  }));
  const api::Service rolled = Get("rolled");
  EXPECT_EQ(rolled.spec().task().container().image(), "nginx:1");
  EXPECT_NE(Get("paused").update_status().message().find("update paused due to failure"),
            std::string::npos);
}

TEST_F(ControlPlaneTest, DrainingANodeMovesItsTasksAndAGlobalServiceFollowsNodes) {
  CreateService("web", 3);
  api::CreateServiceRequest global;
  global.mutable_spec()->mutable_annotations()->set_name("agent");
  global.mutable_spec()->mutable_task()->mutable_container()->set_image("agent:1");
  global.mutable_spec()->mutable_global();
  api::CreateServiceResponse created;
  ASSERT_TRUE(Call(&api::Control::Stub::CreateService, global, &created).ok());
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) {
    const api::Service* agent = tx.GetByName<api::Service>("agent");
    return agent != nullptr && Running(tx, "web", 3) &&
           tx.TasksOfService(agent->meta().id()).size() == 3;
  }));
  const std::string drained = cluster_->worker(1).id();
  api::GetNodeRequest get;
  get.set_node_id(drained);
  api::GetNodeResponse node;
  ASSERT_TRUE(Call(&api::Control::Stub::GetNode, get, &node).ok());
  api::UpdateNodeRequest drain;
  drain.set_node_id(drained);
  *drain.mutable_node_version() = node.node().meta().version();
  *drain.mutable_spec() = node.node().spec();
  drain.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  api::UpdateNodeResponse updated;
  ASSERT_TRUE(Call(&api::Control::Stub::UpdateNode, drain, &updated).ok());
  cluster_->AddWorker();
  ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
    for (const api::Task* t : tx.TasksOnNode(drained)) {
      if (t->desired_state() <= api::TASK_STATE_RUNNING) return false;
    }
    // The agent runs on the three nodes that are not drained (the new one included).
    const api::Service* agent = tx.GetByName<api::Service>("agent");
    if (agent == nullptr) return false;
    std::set<std::string> nodes;
    for (const api::Task* t : tx.TasksOfService(agent->meta().id())) {
      if (t->desired_state() == api::TASK_STATE_RUNNING &&
          t->status().state() == api::TASK_STATE_RUNNING) {
        nodes.insert(t->node_id());
      }
    }
    return Running(tx, "web", 3) && nodes.size() == 3 && !nodes.count(drained);
  }));
}

TEST_F(ControlPlaneTest, RestartingEveryManagerKeepsTheState) {
  CreateService("web", 4);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 4); }));
  for (uint64_t id = 1; id <= 3; ++id) cluster_->KillManager(id);
  for (uint64_t id = 1; id <= 3; ++id) cluster_->StartManager(id);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 4); }));
  EXPECT_EQ(Get("web").spec().replicated().replicas(), 4u);
}

TEST_F(ControlPlaneTest, AReplicatedJobRunsItsCompletionsAndStops) {
  api::CreateServiceRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("migrate");
  req.mutable_spec()->mutable_task()->mutable_container()->set_image("oneshot");
  req.mutable_spec()->mutable_replicated_job()->set_total_completions(5);
  req.mutable_spec()->mutable_replicated_job()->set_max_concurrent(2);
  api::CreateServiceResponse resp;
  ASSERT_TRUE(Call(&api::Control::Stub::CreateService, req, &resp).ok());
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) {
    // The manager read from may not have applied the create yet.
    const api::Service* s = tx.GetByName<api::Service>("migrate");
    if (s == nullptr) return false;
    int complete = 0;
    for (const api::Task* t : tx.TasksOfService(s->meta().id())) {
      complete += t->status().state() == api::TASK_STATE_COMPLETE;
    }
    return complete == 5;
  }));
  // No more than five were made (that none follows later is reconcile_test's to show).
  api::ListTasksRequest list;
  list.mutable_filters()->add_service_ids(resp.service().meta().id());
  api::ListTasksResponse tasks;
  ASSERT_TRUE(Call(&api::Control::Stub::ListTasks, list, &tasks).ok());
  EXPECT_EQ(tasks.tasks_size(), 5);
}

TEST_F(ControlPlaneTest, AnOperatorWatchesChangesAndCIGetsItsOwnCertificate) {
  grpc::ClientContext ctx;
  api::WatchRequest req;
  req.add_selectors()->set_kind(api::WatchSelector::KIND_SERVICE);
  req.set_include_current(true);
  CreateService("before", 1);
  // Watch is served from the store of the manager called (not forwarded): the leader's has
  // every acknowledged write; a follower's may lag by a moment.
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  auto watcher = cluster_->ControlAs("ci-watch", api::CERTIFICATE_ROLE_OPERATOR, leader);
  auto stream = watcher->Watch(&ctx, req);
  api::WatchMessage current;
  ASSERT_TRUE(stream->Read(&current));
  ASSERT_EQ(current.events_size(), 1);
  EXPECT_EQ(current.events(0).action(), api::WatchMessage::Event::ACTION_CREATE);
  EXPECT_EQ(current.events(0).object().service().spec().annotations().name(), "before");
  CreateService("after", 1);
  api::WatchMessage next;
  ASSERT_TRUE(stream->Read(&next));
  ASSERT_GE(next.events_size(), 1);
  EXPECT_EQ(next.events(0).object().service().spec().annotations().name(), "after");
  ctx.TryCancel();

  auto bundle = pki::RequestOperatorBundle(cluster_->Control(), "ci-deployer");
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  auto info = pki::ParseCertificate(bundle->cert_pem);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->role, api::CERTIFICATE_ROLE_OPERATOR);
  EXPECT_EQ(info->subject, "ci-deployer");
}

TEST_F(ControlPlaneTest, AFollowerForwardsCallsToTheLeaderWithTheCallersIdentity) {
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  const uint64_t follower = leader == 1 ? 2 : 1;
  const uint64_t before = cluster_->forwarded_served(leader);
  auto op = cluster_->ControlAs("ci-2", api::CERTIFICATE_ROLE_OPERATOR, follower);
  grpc::ClientContext ctx;
  api::CreateServiceRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("via-follower");
  req.mutable_spec()->mutable_task()->mutable_container()->set_image("nginx");
  api::CreateServiceResponse resp;
  ASSERT_TRUE(op->CreateService(&ctx, req, &resp).ok());
  EXPECT_GT(cluster_->forwarded_served(leader), before) << "decided on the leader";

  // Forwarding metadata is honoured from managers only, and only for Control roles.
  auto forged = [&](const std::string& cn, api::CertificateRole role, const char* as) {
    auto stub = cluster_->ControlAs(cn, role, leader);
    grpc::ClientContext c;
    c.AddMetadata("shoal-forwarded-for", "someone");
    c.AddMetadata("shoal-forwarded-role", as);
    api::ListServicesResponse r;
    return stub->ListServices(&c, api::ListServicesRequest(), &r);
  };
  EXPECT_EQ(forged("ci-3", api::CERTIFICATE_ROLE_OPERATOR, "manager").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(forged("manager-9", api::CERTIFICATE_ROLE_MANAGER, "worker").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(forged("manager-9", api::CERTIFICATE_ROLE_MANAGER, "operator").ok());
}

TEST_F(ControlPlaneTest, OnlyAPromotedManagerJoinsTheRaftGroup) {
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  raftpb::JoinRequest req;
  req.set_addr("127.0.0.1:1");
  raftpb::JoinResponse resp;
  {
    // A manager certificate for a node nobody promoted: the node is named in the refusal.
    auto stub = cluster_->RaftAs("stray-manager", api::CERTIFICATE_ROLE_MANAGER, leader);
    grpc::ClientContext ctx;
    const grpc::Status s = stub->Join(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(s.error_message().find("node stray-manager is not promoted"), std::string::npos)
        << s.error_message();
  }
  {
    // A worker cannot even call Raft.
    auto stub = cluster_->RaftAs(cluster_->worker(0).id(), api::CERTIFICATE_ROLE_WORKER, leader);
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->Join(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(ControlPlaneTest, BadInputGetsAClearErrorAndChangesNothing) {
  api::CreateServiceRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("bad");
  req.mutable_spec()->mutable_task()->mutable_container()->set_image("nginx");
  req.mutable_spec()->mutable_task()->mutable_placement()->add_constraints("node.labels.zone=a");
  api::CreateServiceResponse resp;
  const grpc::Status s = Call(&api::Control::Stub::CreateService, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("task.placement.constraints[0]"), std::string::npos)
      << s.error_message();
  api::ListServicesResponse list;
  ASSERT_TRUE(Call(&api::Control::Stub::ListServices, api::ListServicesRequest(), &list).ok());
  EXPECT_EQ(list.services_size(), 0);
}

}  // namespace
}  // namespace shoal::integration

// The Dispatcher service over gRPC with Shoal's mutual TLS on loopback: a worker opens its
// session, heartbeats, receives its assignments and reports status; the certificate decides
// who the caller is.
#include "manager/dispatcher/dispatcher_service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"
#include "pki/access_check.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_credentials.h"

namespace shoal::manager::dispatcher {
namespace {

using store::ReadTx;
using store::WriteTx;

constexpr char kCluster[] = "clusterdispatch";

class DispatcherServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raft_.Join(&store_);
    auto pki = pki::testing::TestPki::Create(kCluster, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto manager_dir = pki_->IssueDir("manager1", api::CERTIFICATE_ROLE_MANAGER);
    ASSERT_TRUE(manager_dir.ok());
    auto check = pki::AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, nullptr);
    ASSERT_TRUE(check.ok());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0",
                             pki::ServerCredentials(*manager_dir, std::move(*check)), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    addr_ = absl::StrCat("127.0.0.1:", port);

    Dispatcher::Options o;
    o.store = &store_;
    o.clock = &clock_;
    dispatcher_ = std::make_shared<Dispatcher>(o);
    ASSERT_TRUE(dispatcher_->Start(/*run_thread=*/false).ok());
    service_.SetDispatcher(dispatcher_);
  }
  void TearDown() override {
    service_.SetDispatcher(nullptr);
    dispatcher_->Stop();
    server_->Shutdown(std::chrono::system_clock::now());
  }

  std::unique_ptr<api::Dispatcher::Stub> Client(const std::string& cn,
                                                api::CertificateRole role) {
    auto dir = pki_->IssueDir(cn, role);
    EXPECT_TRUE(dir.ok());
    return api::Dispatcher::NewStub(
        pki::CreateManagerChannel(addr_, pki::ClientCredentials(*dir, kCluster)));
  }

  void PutTask(const std::string& id, const std::string& node) {
    api::Task t;
    t.mutable_meta()->set_id(id);
    t.set_service_id("svc");
    t.set_node_id(node);
    t.set_desired_state(api::TASK_STATE_RUNNING);
    t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
    ASSERT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(t); }).ok());
  }

  // Certificates are checked by TLS against the real time too: start the clock now.
  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  std::unique_ptr<pki::testing::TestPki> pki_;
  DispatcherService service_{[] { return std::string("10.1.2.3:2377"); }};
  std::unique_ptr<grpc::Server> server_;
  std::string addr_;
  std::shared_ptr<Dispatcher> dispatcher_;
};

TEST_F(DispatcherServiceTest, AWorkerOpensASessionGetsItsAssignmentsAndReportsStatus) {
  PutTask("t1", "node-a");
  auto stub = Client("node-a", api::CERTIFICATE_ROLE_WORKER);

  grpc::ClientContext session_ctx;
  api::SessionRequest sreq;
  sreq.mutable_description()->set_hostname("host-a");
  auto session = stub->Session(&session_ctx, sreq);
  api::SessionMessage first;
  ASSERT_TRUE(session->Read(&first));
  ASSERT_FALSE(first.session_id().empty());
  EXPECT_EQ(first.node().meta().id(), "node-a") << "the node is who its certificate says";
  EXPECT_EQ(first.node().description().hostname(), "host-a");
  EXPECT_EQ(first.node().status().addr(), "127.0.0.1");

  {
    grpc::ClientContext ctx;
    api::HeartbeatRequest req;
    req.set_session_id(first.session_id());
    api::HeartbeatResponse resp;
    ASSERT_TRUE(stub->Heartbeat(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.period().seconds(), 5);
  }

  grpc::ClientContext assign_ctx;
  api::AssignmentsRequest areq;
  areq.set_session_id(first.session_id());
  auto assignments = stub->Assignments(&assign_ctx, areq);
  api::AssignmentsMessage complete;
  ASSERT_TRUE(assignments->Read(&complete));
  EXPECT_EQ(complete.type(), api::AssignmentsMessage::TYPE_COMPLETE);
  ASSERT_EQ(complete.changes_size(), 1);
  EXPECT_EQ(complete.changes(0).assignment().task().meta().id(), "t1");

  {
    grpc::ClientContext ctx;
    api::UpdateTaskStatusRequest req;
    req.set_session_id(first.session_id());
    auto* u = req.add_updates();
    u->set_task_id("t1");
    u->mutable_status()->set_state(api::TASK_STATE_RUNNING);
    api::UpdateTaskStatusResponse resp;
    ASSERT_TRUE(stub->UpdateTaskStatus(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(dispatcher_->FlushStatus().ok());
  store_.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Get<api::Task>("t1")->status().state(), api::TASK_STATE_RUNNING);
  });

  // The status written comes back as a difference (t1 now RUNNING), then a new task.
  dispatcher_->Pump(absl::InfinitePast());
  api::AssignmentsMessage next;
  ASSERT_TRUE(assignments->Read(&next));
  EXPECT_EQ(next.type(), api::AssignmentsMessage::TYPE_INCREMENTAL);
  ASSERT_EQ(next.changes_size(), 1);
  EXPECT_EQ(next.changes(0).assignment().task().status().state(), api::TASK_STATE_RUNNING);
  PutTask("t2", "node-a");
  dispatcher_->Pump(absl::InfinitePast());
  ASSERT_TRUE(assignments->Read(&next));
  ASSERT_EQ(next.changes_size(), 1);
  EXPECT_EQ(next.changes(0).assignment().task().meta().id(), "t2");

  session_ctx.TryCancel();
  assign_ctx.TryCancel();
}

TEST_F(DispatcherServiceTest, ANodeCannotReportAnotherNodesTask) {
  PutTask("t1", "node-a");
  auto stub = Client("node-b", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext session_ctx;
  auto session = stub->Session(&session_ctx, api::SessionRequest());
  api::SessionMessage first;
  ASSERT_TRUE(session->Read(&first));
  grpc::ClientContext ctx;
  api::UpdateTaskStatusRequest req;
  req.set_session_id(first.session_id());
  auto* u = req.add_updates();
  u->set_task_id("t1");
  u->mutable_status()->set_state(api::TASK_STATE_FAILED);
  api::UpdateTaskStatusResponse resp;
  const grpc::Status s = stub->UpdateTaskStatus(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(), "task t1 is not assigned to node node-b");
  session_ctx.TryCancel();
}

TEST_F(DispatcherServiceTest, AManagerThatDoesNotLeadSendsTheWorkerToTheLeader) {
  service_.SetDispatcher(nullptr);
  auto stub = Client("node-a", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext ctx;
  api::HeartbeatResponse resp;
  const grpc::Status s = stub->Heartbeat(&ctx, api::HeartbeatRequest(), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(kLeaderAddrTrailer);
  ASSERT_NE(it, trailers.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "10.1.2.3:2377");
}

TEST_F(DispatcherServiceTest, AnOperatorCannotCallTheDispatcher) {
  auto stub = Client("ci", api::CERTIFICATE_ROLE_OPERATOR);
  grpc::ClientContext ctx;
  api::HeartbeatResponse resp;
  EXPECT_EQ(stub->Heartbeat(&ctx, api::HeartbeatRequest(), &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace shoal::manager::dispatcher

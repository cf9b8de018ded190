// The Logs service over gRPC with Shoal's mutual TLS on loopback: a leader serving its broker,
// a follower proxying to it; operators subscribe, workers listen and publish, and the
// certificates decide who may do what.
#include "manager/logbroker/logs_service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"
#include "pki/access_check.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_credentials.h"

namespace shoal::manager::logbroker {
namespace {

using ::testing::ElementsAre;

constexpr char kCluster[] = "clusterlogs";

class LogsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raft_.Join(&store_);
    auto pki = pki::testing::TestPki::Create(kCluster, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto manager_dir = pki_->IssueDir("manager1", api::CERTIFICATE_ROLE_MANAGER);
    ASSERT_TRUE(manager_dir.ok());
    manager_dir_ = *manager_dir;

    ASSERT_NO_FATAL_FAILURE(Serve(&leader_, &leader_server_, &leader_addr_));
    follower_ = std::make_unique<LogsService>(
        LogsService::Options{[this] { return leader_addr_; },
                             [this]() -> std::shared_ptr<api::Logs::StubInterface> {
                               return api::Logs::NewStub(pki::CreateManagerChannel(
                                   leader_addr_, pki::ClientCredentials(manager_dir_, kCluster)));
                             }});
    ASSERT_NO_FATAL_FAILURE(Serve(follower_.get(), &follower_server_, &follower_addr_));

    for (const char* n : {"n1", "n2"}) {
      api::Node node;
      node.mutable_meta()->set_id(n);
      node.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
      ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(node); }).ok());
    }
    api::Service svc;
    svc.mutable_meta()->set_id("svc");
    svc.mutable_spec()->mutable_annotations()->set_name("web");
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(svc); }).ok());
    api::Task t;
    t.mutable_meta()->set_id("t1");
    t.set_service_id("svc");
    t.set_node_id("n1");
    t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(t); }).ok());

    LogBroker::Options o;
    o.store = &store_;
    o.clock = &clock_;
    broker_ = std::make_shared<LogBroker>(o);
    ASSERT_TRUE(broker_->Start(/*run_thread=*/false).ok());
    leader_.SetBroker(broker_);
  }
  void TearDown() override {
    leader_.SetBroker(nullptr);
    broker_->Stop();
    for (auto* s : {follower_server_.get(), leader_server_.get()}) {
      s->Shutdown(std::chrono::system_clock::now());
    }
  }

  void Serve(LogsService* service, std::unique_ptr<grpc::Server>* server, std::string* addr) {
    auto check = pki::AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, nullptr);
    ASSERT_TRUE(check.ok());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", pki::ServerCredentials(manager_dir_, std::move(*check)),
                             &port);
    builder.RegisterService(service);
    *server = builder.BuildAndStart();
    ASSERT_NE(*server, nullptr);
    *addr = absl::StrCat("127.0.0.1:", port);
  }

  std::unique_ptr<api::Logs::Stub> Client(const std::string& addr, const std::string& cn,
                                          api::CertificateRole role) {
    auto dir = pki_->IssueDir(cn, role);
    EXPECT_TRUE(dir.ok());
    return api::Logs::NewStub(
        pki::CreateManagerChannel(addr, pki::ClientCredentials(*dir, kCluster)));
  }

  static api::SubscribeLogsRequest ForSvc(bool follow) {
    api::SubscribeLogsRequest r;
    r.mutable_selector()->add_service_ids("svc");
    r.mutable_options()->set_follow(follow);
    r.mutable_options()->set_tail(-1);
    return r;
  }

  static api::PublishLogsMessage Line(const std::string& sub, const std::string& task,
                                      const std::string& data, bool close) {
    api::PublishLogsMessage m;
    m.set_subscription_id(sub);
    api::LogMessage* l = m.add_messages();
    l->mutable_context()->set_task_id(task);
    l->set_stream(api::LOG_STREAM_STDOUT);
    l->set_data(data);
    m.set_close(close);
    return m;
  }

  // The worker's side: reads its next subscription message.
  static api::SubscriptionMessage NextSubscription(
      grpc::ClientReaderInterface<api::SubscriptionMessage>& listen) {
    api::SubscriptionMessage m;
    EXPECT_TRUE(listen.Read(&m));
    return m;
  }

  // Publishes `m` on a stream of its own; the stream's status.
  static grpc::Status Publish(api::Logs::Stub& stub, const api::PublishLogsMessage& m) {
    grpc::ClientContext ctx;
    api::PublishLogsResponse resp;
    auto writer = stub.PublishLogs(&ctx, &resp);
    writer->Write(m);
    writer->WritesDone();
    return writer->Finish();
  }

  // Reads the subscriber's stream to its end: the lines' data and the final status.
  static std::pair<std::vector<std::string>, grpc::Status> ReadAll(
      grpc::ClientReaderInterface<api::SubscribeLogsMessage>& reader) {
    std::vector<std::string> lines;
    api::SubscribeLogsMessage m;
    while (reader.Read(&m)) {
      for (const auto& l : m.messages()) {
        lines.push_back(absl::StrCat(l.context().node_id(), "/", l.context().service_id(), "/",
                                     l.context().task_id(), ": ", l.data()));
      }
    }
    return {lines, reader.Finish()};
  }

  // Certificates are checked by TLS against the real time too: start the clock now.
  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  std::unique_ptr<pki::testing::TestPki> pki_;
  std::string manager_dir_;
  LogsService leader_{LogsService::Options{[] { return std::string(); }, nullptr}};
  std::unique_ptr<LogsService> follower_;
  std::unique_ptr<grpc::Server> leader_server_, follower_server_;
  std::string leader_addr_, follower_addr_;
  std::shared_ptr<LogBroker> broker_;
};

TEST_F(LogsServiceTest, AnOperatorReadsWhatTheWorkerPublishes) {
  auto worker = Client(leader_addr_, "n1", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext listen_ctx;
  auto listen = worker->ListenSubscriptions(&listen_ctx, api::ListenSubscriptionsRequest());

  auto op = Client(leader_addr_, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  grpc::ClientContext ctx;
  auto reader = op->SubscribeLogs(&ctx, ForSvc(false));

  const api::SubscriptionMessage sub = NextSubscription(*listen);
  EXPECT_THAT(sub.selector().task_ids(), ElementsAre("t1"));
  ASSERT_TRUE(Publish(*worker, Line(sub.id(), "t1", "hello\n", /*close=*/true)).ok());
  auto [lines, status] = ReadAll(*reader);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(lines, ElementsAre("n1/svc/t1: hello\n"));
  listen_ctx.TryCancel();
}

TEST_F(LogsServiceTest, AFollowerProxiesTheSubscriptionToTheLeader) {
  auto worker = Client(leader_addr_, "n1", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext listen_ctx;
  auto listen = worker->ListenSubscriptions(&listen_ctx, api::ListenSubscriptionsRequest());

  auto op = Client(follower_addr_, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  grpc::ClientContext ctx;
  auto reader = op->SubscribeLogs(&ctx, ForSvc(false));
  const api::SubscriptionMessage sub = NextSubscription(*listen);
  ASSERT_TRUE(Publish(*worker, Line(sub.id(), "t1", "via the follower\n", true)).ok());
  auto [lines, status] = ReadAll(*reader);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(lines, ElementsAre("n1/svc/t1: via the follower\n"));
  EXPECT_EQ(follower_->proxied(), 1u);
  listen_ctx.TryCancel();
}

TEST_F(LogsServiceTest, CancellingAFollowThroughTheFollowerTellsTheWorkerToStop) {
  auto worker = Client(leader_addr_, "n1", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext listen_ctx;
  auto listen = worker->ListenSubscriptions(&listen_ctx, api::ListenSubscriptionsRequest());
  auto op = Client(follower_addr_, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  grpc::ClientContext ctx;
  auto reader = op->SubscribeLogs(&ctx, ForSvc(/*follow=*/true));
  const api::SubscriptionMessage sub = NextSubscription(*listen);
  EXPECT_TRUE(sub.options().follow());

  // A line arrives while following.
  grpc::ClientContext pub_ctx;
  api::PublishLogsResponse resp;
  auto publish = worker->PublishLogs(&pub_ctx, &resp);
  ASSERT_TRUE(publish->Write(Line(sub.id(), "t1", "one\n", false)));
  api::SubscribeLogsMessage m;
  ASSERT_TRUE(reader->Read(&m));
  ASSERT_EQ(m.messages_size(), 1);
  EXPECT_EQ(m.messages(0).data(), "one\n");

  // The operator stops (^C): the cancellation crosses the proxy, and the worker is told.
  ctx.TryCancel();
  const api::SubscriptionMessage end = NextSubscription(*listen);
  EXPECT_EQ(end.id(), sub.id());
  EXPECT_TRUE(end.close());
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(broker_->subscriptions(), 0u);
  // The worker's next write is refused: the subscription is over.
  publish->Write(Line(sub.id(), "t1", "two\n", false));
  publish->WritesDone();
  EXPECT_EQ(publish->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  listen_ctx.TryCancel();
}

TEST_F(LogsServiceTest, AWorkerPublishesOnlyForTasksOnItsOwnNode) {
  auto op = Client(leader_addr_, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  grpc::ClientContext ctx;
  auto reader = op->SubscribeLogs(&ctx, ForSvc(false));
  auto n1 = Client(leader_addr_, "n1", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext listen_ctx;
  auto listen = n1->ListenSubscriptions(&listen_ctx, api::ListenSubscriptionsRequest());
  const api::SubscriptionMessage sub = NextSubscription(*listen);

  // n2's certificate, n1's task.
  auto n2 = Client(leader_addr_, "n2", api::CERTIFICATE_ROLE_WORKER);
  const grpc::Status s = Publish(*n2, Line(sub.id(), "t1", "forged\n", true));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Publish(*n1, Line(sub.id(), "t1", "real\n", true)).ok());
  auto [lines, status] = ReadAll(*reader);
  EXPECT_TRUE(status.ok());
  EXPECT_THAT(lines, ElementsAre("n1/svc/t1: real\n"));
  listen_ctx.TryCancel();
}

TEST_F(LogsServiceTest, RolesAreCheckedPerMethod) {
  auto worker = Client(leader_addr_, "n1", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext ctx;
  auto reader = worker->SubscribeLogs(&ctx, ForSvc(false));
  api::SubscribeLogsMessage m;
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  auto op = Client(leader_addr_, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  EXPECT_EQ(Publish(*op, Line("x", "t1", "no\n", true)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext listen_ctx;
  auto listen = op->ListenSubscriptions(&listen_ctx, api::ListenSubscriptionsRequest());
  api::SubscriptionMessage sm;
  EXPECT_FALSE(listen->Read(&sm));
  EXPECT_EQ(listen->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(LogsServiceTest, AFollowerSendsWorkersToTheLeader) {
  auto worker = Client(follower_addr_, "n1", api::CERTIFICATE_ROLE_WORKER);
  grpc::ClientContext ctx;
  auto listen = worker->ListenSubscriptions(&ctx, api::ListenSubscriptionsRequest());
  api::SubscriptionMessage m;
  EXPECT_FALSE(listen->Read(&m));
  EXPECT_EQ(listen->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find("shoal-leader-addr");
  ASSERT_NE(it, trailers.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), leader_addr_);
}

TEST_F(LogsServiceTest, WithoutALeaderASubscriptionIsUnavailable) {
  leader_.SetBroker(nullptr);  // nobody leads; the "leader" knows no leader either
  auto op = Client(follower_addr_, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  grpc::ClientContext ctx;
  auto reader = op->SubscribeLogs(&ctx, ForSvc(false));
  api::SubscribeLogsMessage m;
  EXPECT_FALSE(reader->Read(&m));
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

}  // namespace
}  // namespace shoal::manager::logbroker

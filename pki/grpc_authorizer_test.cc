// Real mutual TLS on loopback: which certificates each service accepts, and why it refuses the
// others.
#include "pki/grpc_authorizer.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/csr.h"
#include "pki/root_ca.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_credentials.h"
#include "proto/ca.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;
using testing::RemovedNodes;
using testing::StubServer;
using testing::TestPki;

constexpr char kCluster[] = "cluster1";

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

class GrpcAuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create(kCluster, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    auto manager_dir = pki_->IssueDir("manager1", api::CERTIFICATE_ROLE_MANAGER);
    ASSERT_TRUE(manager_dir.ok()) << manager_dir.status();
    manager_dir_ = *manager_dir;
    auto check = AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, removed_.Check());
    ASSERT_TRUE(check.ok()) << check.status();
    auto server = StubServer::Start(manager_dir_, std::move(*check), {&node_ca_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& dir) {
    return CreateManagerChannel(server_->address(), ClientCredentials(dir, kCluster));
  }
  std::string Dir(absl::string_view subject, api::CertificateRole role,
                  absl::string_view cluster = "") {
    auto dir = pki_->IssueDir(subject, role, kDefaultNodeCertValidity, cluster);
    EXPECT_TRUE(dir.ok()) << dir.status();
    return dir.ok() ? *dir : "";
  }

  static grpc::Status CallControl(const std::shared_ptr<grpc::Channel>& ch) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    api::GetClusterRequest req;
    api::GetClusterResponse resp;
    return api::Control::NewStub(ch)->GetCluster(&ctx, req, &resp);
  }
  static grpc::Status CallDispatcher(const std::shared_ptr<grpc::Channel>& ch) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    api::HeartbeatRequest req;
    api::HeartbeatResponse resp;
    return api::Dispatcher::NewStub(ch)->Heartbeat(&ctx, req, &resp);
  }
  static grpc::Status CallRaft(const std::shared_ptr<grpc::Channel>& ch) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    raftpb::ResolveAddressRequest req;
    raftpb::ResolveAddressResponse resp;
    return raftpb::Raft::NewStub(ch)->ResolveAddress(&ctx, req, &resp);
  }
  static grpc::Status CallNodeCa(const std::shared_ptr<grpc::Channel>& ch) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    api::GetRootCACertificateRequest req;
    api::GetRootCACertificateResponse resp;
    return api::NodeCA::NewStub(ch)->GetRootCACertificate(&ctx, req, &resp);
  }

  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  RemovedNodes removed_;
  api::NodeCA::Service node_ca_;  // every method UNIMPLEMENTED: reaching it means "allowed"
  std::unique_ptr<TestPki> pki_;
  std::string manager_dir_;
  std::unique_ptr<StubServer> server_;
};

TEST_F(GrpcAuthorizerTest, ManagerMayCallControlDispatcherAndRaft) {
  auto ch = ChannelFor(manager_dir_);
  EXPECT_TRUE(CallControl(ch).ok()) << CallControl(ch).error_message();
  EXPECT_TRUE(CallDispatcher(ch).ok());
  EXPECT_TRUE(CallRaft(ch).ok());
}

TEST_F(GrpcAuthorizerTest, WorkerIsRefusedByControlAndRaftButMayCallDispatcher) {
  auto ch = ChannelFor(Dir("worker1", api::CERTIFICATE_ROLE_WORKER));
  grpc::Status s = CallControl(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("role worker (worker1) may not call /shoal.api.Control/GetCluster; "
                        "allowed: manager, operator"));
  s = CallRaft(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("allowed: manager"));
  EXPECT_TRUE(CallDispatcher(ch).ok());
}

TEST_F(GrpcAuthorizerTest, OperatorIsAcceptedByControlAndRefusedByDispatcherAndRaft) {
  auto ch = ChannelFor(Dir("ci-deployer", api::CERTIFICATE_ROLE_OPERATOR));
  EXPECT_TRUE(CallControl(ch).ok());
  grpc::Status s = CallDispatcher(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("role operator (ci-deployer) may not call"));
  EXPECT_EQ(CallRaft(ch).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(GrpcAuthorizerTest, CertificateFromAnotherClustersCaIsRefused) {
  auto other = TestPki::Create(kCluster, clock_);  // same cluster id, different CA
  ASSERT_TRUE(other.ok());
  auto bundle = (*other)->Issue("intruder", api::CERTIFICATE_ROLE_MANAGER);
  ASSERT_TRUE(bundle.ok());
  bundle->ca_pem = pki_->ca().cert_pem();  // it trusts our managers, but we do not trust it
  std::string dir = testing::NewTempDir("intruder");
  ASSERT_TRUE(WriteTlsDir(dir, *bundle).ok());
  grpc::Status s = CallControl(ChannelFor(dir));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("was not issued by this cluster's root CA"));
}

TEST_F(GrpcAuthorizerTest, CertificateNamingAnotherClusterIdIsRefused) {
  auto ch = ChannelFor(Dir("manager9", api::CERTIFICATE_ROLE_MANAGER, "cluster9"));
  grpc::Status s = CallControl(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("belongs to cluster cluster9, not to this cluster"));
}

TEST_F(GrpcAuthorizerTest, ExpiredCertificateIsRefusedWithItsExpiry) {
  // Signed two hours ago for one hour: expired by the wall clock and by the server's clock.
  ManualClock past(clock_.Now() - absl::Hours(2));
  auto old_ca = RootCa::Load(pki_->ca().cert_pem(), pki_->ca().key_pem(), past);
  ASSERT_TRUE(old_ca.ok());
  auto kc = GenerateKeyAndCsr("worker2");
  ASSERT_TRUE(kc.ok());
  RootCa::SignRequest req;
  req.csr_pem = kc->csr_pem;
  req.subject = "worker2";
  req.role = api::CERTIFICATE_ROLE_WORKER;
  req.cluster_id = kCluster;
  req.validity = absl::Hours(1);
  auto cert = (*old_ca)->Sign(req);
  ASSERT_TRUE(cert.ok());
  std::string dir = testing::NewTempDir("expired");
  TlsBundle expired{kc->key_pem, *cert, pki_->ca().cert_pem()};
  ASSERT_TRUE(WriteTlsDir(dir, expired).ok());
  grpc::Status s = CallDispatcher(ChannelFor(dir));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("certificate of worker2 expired at"));
}

TEST_F(GrpcAuthorizerTest, CertificateExpiresByTheServersClock) {
  auto ch = ChannelFor(Dir("worker3", api::CERTIFICATE_ROLE_WORKER));
  ASSERT_TRUE(CallDispatcher(ch).ok());
  clock_.Advance(absl::Hours(24 * 90) + absl::Seconds(1));
  grpc::Status s = CallDispatcher(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("expired at"));
}

TEST_F(GrpcAuthorizerTest, RemovedNodeIsRefusedOnItsOpenConnection) {
  auto ch = ChannelFor(Dir("worker4", api::CERTIFICATE_ROLE_WORKER));
  ASSERT_TRUE(CallDispatcher(ch).ok());
  removed_.Remove("worker4");
  grpc::Status s = CallDispatcher(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("node worker4 has been removed from the cluster"));
}

TEST_F(GrpcAuthorizerTest, NoCertificateIsRefusedExceptByOpenNodeCaMethods) {
  auto ch =
      CreateManagerChannel(server_->address(), AnonymousClientCredentials(pki_->ca().cert_pem()));
  grpc::Status s = CallControl(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("no client certificate: /shoal.api.Control/GetCluster requires a "
                        "certificate with role manager, operator"));
  EXPECT_EQ(CallDispatcher(ch).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallRaft(ch).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Past authorization: the stub NodeCA answers UNIMPLEMENTED.
  EXPECT_EQ(CallNodeCa(ch).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(GrpcAuthorizerTest, MethodsMissingFromTheTableAreRefused) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  api::InfoRequest req;
  api::InfoResponse resp;
  grpc::Status s = api::NodeControl::NewStub(ChannelFor(manager_dir_))->Info(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("not in the authorization table"));
}

TEST_F(GrpcAuthorizerTest, ClientRefusesAServerThatIsNotAManager) {
  auto check = AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, nullptr);
  ASSERT_TRUE(check.ok());
  auto worker_server =
      StubServer::Start(Dir("worker5", api::CERTIFICATE_ROLE_WORKER), std::move(*check));
  ASSERT_TRUE(worker_server.ok());
  auto ch =
      CreateManagerChannel((*worker_server)->address(), ClientCredentials(manager_dir_, kCluster));
  grpc::Status s = CallControl(ch);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcAuthorizerTest, ClientRefusesAManagerOfAnotherClusterId) {
  auto ch = CreateManagerChannel(
      server_->address(),
      ClientCredentials(Dir("op", api::CERTIFICATE_ROLE_OPERATOR), "cluster-other"));
  EXPECT_EQ(CallControl(ch).error_code(), grpc::StatusCode::UNAVAILABLE);
}

class IdentityControl final : public api::Control::Service {
 public:
  grpc::Status GetCluster(grpc::ServerContext* ctx, const api::GetClusterRequest*,
                          api::GetClusterResponse*) override {
    absl::StatusOr<CertificateInfo> peer = AuthenticatedPeer(*ctx);
    if (!peer.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "no peer");
    return grpc::Status(
        grpc::StatusCode::ALREADY_EXISTS,
        peer->subject + "/" + std::string(RoleName(peer->role)) + "/" + peer->cluster_id);
  }
};

// A manager's server on loopback (m1's certificate, one service) behind the authorizer, and a
// channel to it with the certificate of `client` (`role`); the clock decides validity.
class ServerWithOneService {
 public:
  ServerWithOneService(ManualClock& clock, grpc::Service* service, const std::string& client,
                       api::CertificateRole role) {
    auto pki = TestPki::Create(kCluster, clock);
    EXPECT_TRUE(pki.ok());
    if (!pki.ok()) return;
    auto mdir = (*pki)->IssueDir("m1", api::CERTIFICATE_ROLE_MANAGER);
    auto cdir = (*pki)->IssueDir(client, role);
    EXPECT_TRUE(mdir.ok() && cdir.ok());
    if (!mdir.ok() || !cdir.ok()) return;
    auto check = AccessCheck::Create({kCluster, (*pki)->ca().cert_pem()}, clock, nullptr);
    EXPECT_TRUE(check.ok());
    if (!check.ok()) return;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", ServerCredentials(*mdir, std::move(*check)), &port);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    channel_ = CreateManagerChannel("127.0.0.1:" + std::to_string(port),
                                    ClientCredentials(*cdir, kCluster));
  }
  ~ServerWithOneService() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }
  bool ok() const { return server_ != nullptr && channel_ != nullptr; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST(AuthenticatedPeerTest, HandlersSeeTheVerifiedIdentity) {
  ManualClock clock(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())));
  IdentityControl control;
  ServerWithOneService server(clock, &control, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  ASSERT_TRUE(server.ok());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  api::GetClusterRequest req;
  api::GetClusterResponse resp;
  grpc::Status s = api::Control::NewStub(server.channel())->GetCluster(&ctx, req, &resp);
  EXPECT_EQ(s.error_message(), "ci/operator/cluster1");
}

// Answers with the number of properties its call's AuthContext holds.
class PropertyCountingControl final : public api::Control::Service {
 public:
  grpc::Status GetCluster(grpc::ServerContext* ctx, const api::GetClusterRequest*,
                          api::GetClusterResponse*) override {
    std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
    int n = 0;
    for (auto it = auth->begin(); it != auth->end(); ++it) ++n;
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, std::to_string(n));
  }
};

// gRPC hands the processor the connection's AuthContext, shared by every call on it: what the
// authorizer added per call stayed there, so a worker's heartbeats grew it (and every lookup,
// which scans it) without bound.
TEST(AuthenticatedPeerTest, CallsOnOneConnectionDoNotGrowItsAuthContext) {
  ManualClock clock(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())));
  PropertyCountingControl control;
  ServerWithOneService server(clock, &control, "ci", api::CERTIFICATE_ROLE_OPERATOR);
  ASSERT_TRUE(server.ok());
  auto stub = api::Control::NewStub(server.channel());
  auto count = [&] {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    api::GetClusterRequest req;
    api::GetClusterResponse resp;
    grpc::Status s = stub->GetCluster(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
    return s.error_message();
  };
  const std::string first = count();
  for (int i = 0; i < 20; ++i) count();
  EXPECT_EQ(count(), first);
}

// Answers a renewal with the identity its handler sees, as NodeCA reads it.
class IdentityNodeCa final : public api::NodeCA::Service {
 public:
  grpc::Status IssueNodeCertificate(grpc::ServerContext* ctx,
                                    const api::IssueNodeCertificateRequest*,
                                    api::IssueNodeCertificateResponse*) override {
    auto peer = AuthenticatedPeer(*ctx);
    if (!peer.ok()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "anonymous");
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, peer->subject);
  }
};

// The identity the authorizer records stays on the connection (shared by its calls): once the
// certificate it came from expires, an open method's call on that connection must not be taken
// for the node's (a renewal of an expired certificate needs a join token).
TEST(AuthenticatedPeerTest, AnIdentityThatExpiredOnAnOpenConnectionIsNotSeenAgain) {
  ManualClock clock(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())));
  IdentityNodeCa ca;
  ServerWithOneService server(clock, &ca, "w1", api::CERTIFICATE_ROLE_WORKER);
  ASSERT_TRUE(server.ok());
  auto stub = api::NodeCA::NewStub(server.channel());
  auto renew = [&] {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    api::IssueNodeCertificateRequest req;
    api::IssueNodeCertificateResponse resp;
    return stub->IssueNodeCertificate(&ctx, req, &resp);
  };
  grpc::Status s = renew();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_EQ(s.error_message(), "w1");
  clock.Advance(absl::Hours(24 * 90) + absl::Seconds(1));
  s = renew();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
}

}  // namespace
}  // namespace shoal::pki

// Joining, token checks, renewal and role changes through the real NodeCA service over mutual
// TLS on loopback.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/certificate.h"
#include "pki/csr.h"
#include "pki/join_token.h"
#include "pki/node_ca_client.h"
#include "pki/node_ca_service.h"
#include "pki/operator_certificate.h"
#include "pki/testing/memory_ca_registry.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_credentials.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;
using testing::MemoryCaRegistry;
using testing::StubServer;
using testing::TestPki;

constexpr char kCluster[] = "cluster1";

grpc::Status CallControl(const std::shared_ptr<grpc::Channel>& ch) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  api::GetClusterResponse resp;
  return api::Control::NewStub(ch)->GetCluster(&ctx, api::GetClusterRequest(), &resp);
}

grpc::Status CallDispatcher(const std::shared_ptr<grpc::Channel>& ch) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  api::HeartbeatResponse resp;
  return api::Dispatcher::NewStub(ch)->Heartbeat(&ctx, api::HeartbeatRequest(), &resp);
}

// A channel with its own subchannel, so that every such channel makes a new TLS handshake.
std::shared_ptr<grpc::Channel> FreshChannel(const std::string& addr,
                                            std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return CreateManagerChannel(addr, creds, args);
}

class NodeCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create(kCluster, clock_);
    ASSERT_TRUE(pki.ok());
    pki_ = *std::move(pki);
    registry_ = std::make_unique<MemoryCaRegistry>(pki_->ca(), SeededRandomBytes(1));
    // The first manager, as `init` makes it: certificate from the CA, record in the registry.
    auto dir = pki_->IssueDir("manager1", api::CERTIFICATE_ROLE_MANAGER);
    ASSERT_TRUE(dir.ok());
    manager_dir_ = *dir;
    NodeRecord manager;
    manager.node_id = "manager1";
    manager.desired_role = api::NODE_ROLE_MANAGER;
    manager.role = api::NODE_ROLE_MANAGER;
    ASSERT_TRUE(registry_->CreateNode(manager).ok());

    auto service = NodeCaService::Create({kCluster}, pki_->ca(), *registry_, ids_, clock_);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    auto check =
        AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, registry_->Revocation());
    ASSERT_TRUE(check.ok());
    auto server = StubServer::Start(manager_dir_, std::move(*check), {service_.get()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string Token(api::NodeRole role) {
    auto tokens = registry_->GetJoinTokens();
    return role == api::NODE_ROLE_MANAGER ? tokens->manager() : tokens->worker();
  }

  // Joins with `token` and writes the bundle to a new directory.
  std::string JoinToDir(const std::string& token, JoinResult* out = nullptr) {
    auto joined = JoinCluster(server_->address(), token);
    EXPECT_TRUE(joined.ok()) << joined.status();
    if (!joined.ok()) return "";
    std::string dir = testing::NewTempDir("joined");
    EXPECT_TRUE(WriteTlsDir(dir, joined->bundle).ok());
    if (out != nullptr) *out = *joined;
    return dir;
  }

  std::unique_ptr<CertificateRenewer> Renewer(const std::string& dir) {
    auto channel = CreateManagerChannel(server_->address(), ClientCredentials(dir, kCluster));
    auto renewer = CertificateRenewer::Create({dir, SeededRandomBytes(5)}, channel, clock_);
    EXPECT_TRUE(renewer.ok()) << renewer.status();
    return renewer.ok() ? *std::move(renewer) : nullptr;
  }

  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  IdGenerator ids_{SeededRandomBytes(2)};
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<MemoryCaRegistry> registry_;
  std::string manager_dir_;
  std::unique_ptr<NodeCaService> service_;
  std::unique_ptr<StubServer> server_;
};

TEST_F(NodeCaTest, WorkerTokenYieldsAWorkerCertificateForANewNodeId) {
  JoinResult joined;
  std::string dir = JoinToDir(Token(api::NODE_ROLE_WORKER), &joined);
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(joined.role, api::NODE_ROLE_WORKER);
  EXPECT_EQ(joined.cluster_id, kCluster);
  EXPECT_TRUE(IsValidId(joined.node_id));
  auto info = ParseCertificate(joined.bundle.cert_pem);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->subject, joined.node_id);
  EXPECT_EQ(info->role, api::CERTIFICATE_ROLE_WORKER);
  EXPECT_EQ(info->cluster_id, kCluster);
  EXPECT_EQ(info->not_after, clock_.Now() + kDefaultNodeCertValidity);
  auto record = registry_->GetNode(joined.node_id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->certificate.status(), api::Certificate::CERTIFICATE_STATUS_ISSUED);
  EXPECT_EQ(record->certificate.certificate(), joined.bundle.cert_pem);
  // The new certificate works at once, with the worker's rights.
  auto ch = CreateManagerChannel(server_->address(), ClientCredentials(dir, kCluster));
  EXPECT_TRUE(CallDispatcher(ch).ok());
  EXPECT_EQ(CallControl(ch).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(NodeCaTest, ManagerTokenYieldsAManagerCertificate) {
  JoinResult joined;
  std::string dir = JoinToDir(Token(api::NODE_ROLE_MANAGER), &joined);
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(joined.role, api::NODE_ROLE_MANAGER);
  EXPECT_EQ(ParseCertificate(joined.bundle.cert_pem)->role, api::CERTIFICATE_ROLE_MANAGER);
  auto ch = CreateManagerChannel(server_->address(), ClientCredentials(dir, kCluster));
  EXPECT_TRUE(CallControl(ch).ok());
}

TEST_F(NodeCaTest, RotatedTokenStopsWorkingAndTheNewOneWorks) {
  std::string old_token = Token(api::NODE_ROLE_WORKER);
  std::string new_token = registry_->RotateToken(api::NODE_ROLE_WORKER);
  ASSERT_NE(old_token, new_token);
  auto joined = JoinCluster(server_->address(), old_token);
  ASSERT_FALSE(joined.ok());
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(joined.status().message(), HasSubstr("may have been rotated"));
  EXPECT_TRUE(JoinCluster(server_->address(), new_token).ok());
  // The manager token was not touched.
  EXPECT_TRUE(JoinCluster(server_->address(), Token(api::NODE_ROLE_MANAGER)).ok());
}

TEST_F(NodeCaTest, MalformedTokenIsRejectedBeforeAnyConnection) {
  // Port 1 on loopback has no server: the error must come from parsing, not from the network.
  auto joined = JoinCluster("127.0.0.1:1", "SWMTKN-1-abc", api::NodeSpec::AVAILABILITY_ACTIVE,
                            absl::Seconds(2));
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(joined.status().message(), HasSubstr("has 3 parts"));
}

// A NodeCA that shows its own CA and records whether a certificate was ever requested.
class RecordingImpostor final : public api::NodeCA::Service {
 public:
  explicit RecordingImpostor(std::string ca_pem) : ca_pem_(std::move(ca_pem)) {}
  grpc::Status GetRootCACertificate(grpc::ServerContext*, const api::GetRootCACertificateRequest*,
                                    api::GetRootCACertificateResponse* resp) override {
    resp->set_certificate(ca_pem_);
    return grpc::Status::OK;
  }
  grpc::Status IssueNodeCertificate(grpc::ServerContext*,
                                    const api::IssueNodeCertificateRequest* req,
                                    api::IssueNodeCertificateResponse*) override {
    tokens_seen_ += req->token().empty() ? 0 : 1;
    ++issue_calls_;
    return grpc::Status(grpc::StatusCode::INTERNAL, "impostor");
  }
  std::atomic<int> issue_calls_{0};
  std::atomic<int> tokens_seen_{0};

 private:
  std::string ca_pem_;
};

TEST_F(NodeCaTest, TokenWhoseCaDigestDoesNotMatchIsRejectedByTheJoinerBeforeSendingIt) {
  auto impostor_pki = TestPki::Create(kCluster, clock_);
  ASSERT_TRUE(impostor_pki.ok());
  auto dir = (*impostor_pki)->IssueDir("evil", api::CERTIFICATE_ROLE_MANAGER);
  ASSERT_TRUE(dir.ok());
  RecordingImpostor impostor((*impostor_pki)->ca().cert_pem());
  auto check = AccessCheck::Create({kCluster, (*impostor_pki)->ca().cert_pem()}, clock_, nullptr);
  ASSERT_TRUE(check.ok());
  auto server = StubServer::Start(*dir, std::move(*check), {&impostor});
  ASSERT_TRUE(server.ok());

  auto joined = JoinCluster((*server)->address(), Token(api::NODE_ROLE_MANAGER));
  ASSERT_FALSE(joined.ok());
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(joined.status().message(), HasSubstr("does not match the CA digest"));
  EXPECT_EQ(impostor.issue_calls_.load(), 0);
  EXPECT_EQ(impostor.tokens_seen_.load(), 0);
}

TEST_F(NodeCaTest, ServiceRefusesATokenForAnotherCaAndABadCsr) {
  JoinToken foreign = GenerateJoinToken(std::string(32, '\x01'), SeededRandomBytes(3));
  auto kc = GenerateKeyAndCsr("x");
  ASSERT_TRUE(kc.ok());
  api::IssueNodeCertificateRequest req;
  req.set_csr(kc->csr_pem);
  req.set_token(foreign.ToString());
  absl::Status s = service_->Issue(req, nullptr, "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("join token is for another root CA"));

  req.set_token(Token(api::NODE_ROLE_WORKER));
  req.set_csr("not a csr");
  s = service_->Issue(req, nullptr, "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("CSR"));

  req.set_token("SWMTKN-2-x-y");
  EXPECT_THAT(service_->Issue(req, nullptr, "").status().message(),
              HasSubstr("unsupported join token version"));
}

TEST_F(NodeCaTest, RenewalWithoutTokenNeedsAValidNodeCertificate) {
  auto kc = GenerateKeyAndCsr("x");
  ASSERT_TRUE(kc.ok());
  api::IssueNodeCertificateRequest req;
  req.set_csr(kc->csr_pem);
  absl::Status s = service_->Issue(req, nullptr, "certificate of w expired at ...").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("expired at"));
  CertificateInfo op;
  op.subject = "ci";
  op.role = api::CERTIFICATE_ROLE_OPERATOR;
  op.cluster_id = kCluster;
  EXPECT_THAT(service_->Issue(req, &op, "").status().message(),
              HasSubstr("cannot renew through NodeCA"));
  CertificateInfo stranger = op;
  stranger.role = api::CERTIFICATE_ROLE_WORKER;
  stranger.subject = "unknown-node";
  EXPECT_THAT(service_->Issue(req, &stranger, "").status().message(), HasSubstr("not a member"));
}

TEST_F(NodeCaTest, RenewalIsDueBetweenHalfAndEightyPercentOfTheLife) {
  std::string dir = JoinToDir(Token(api::NODE_ROLE_WORKER));
  auto renewer = Renewer(dir);
  ASSERT_NE(renewer, nullptr);
  auto info = ParseCertificate(ReadTlsDir(dir)->cert_pem);
  absl::Duration life = info->not_after - info->not_before;
  EXPECT_GE(renewer->next_renewal(), info->not_before + life * 0.5);
  EXPECT_LT(renewer->next_renewal(), info->not_before + life * 0.8);
  EXPECT_FALSE(*renewer->RenewIfDue());
}

TEST_F(NodeCaTest, RenewalReplacesTheNodeCertificateWhenDue) {
  JoinResult joined;
  std::string dir = JoinToDir(Token(api::NODE_ROLE_WORKER), &joined);
  auto renewer = Renewer(dir);
  ASSERT_NE(renewer, nullptr);
  std::string old_serial = ParseCertificate(joined.bundle.cert_pem)->serial;
  clock_.Set(absl::FromUnixSeconds(absl::ToUnixSeconds(renewer->next_renewal()) + 1));
  auto renewed = renewer->RenewIfDue();
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_TRUE(*renewed);
  auto bundle = ReadTlsDir(dir);
  ASSERT_TRUE(bundle.ok());
  EXPECT_TRUE(CheckTlsBundle(*bundle, clock_.Now()).ok());
  EXPECT_NE(bundle->key_pem, joined.bundle.key_pem);  // a fresh key every renewal
  auto info = ParseCertificate(bundle->cert_pem);
  EXPECT_NE(info->serial, old_serial);
  EXPECT_EQ(info->subject, joined.node_id);
  EXPECT_EQ(info->not_after, clock_.Now() + kDefaultNodeCertValidity);
  EXPECT_GT(renewer->next_renewal(), clock_.Now());
  EXPECT_FALSE(*renewer->RenewIfDue());
  // The renewed identity connects as the same node.
  auto ch = FreshChannel(server_->address(), ClientCredentials(dir, kCluster));
  EXPECT_TRUE(CallDispatcher(ch).ok());
}

TEST_F(NodeCaTest, BackgroundRenewerRenewsOnceDueAndStops) {
  std::string dir = JoinToDir(Token(api::NODE_ROLE_WORKER));
  auto renewer = Renewer(dir);
  ASSERT_NE(renewer, nullptr);
  std::string before = ReadTlsDir(dir)->cert_pem;
  clock_.Set(absl::FromUnixSeconds(absl::ToUnixSeconds(renewer->next_renewal()) + 1));
  renewer->Start(absl::Milliseconds(10));
  // Bounded wait for the background thread (it polls every 10 ms).
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up && ReadTlsDir(dir)->cert_pem == before) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  renewer->Stop();
  EXPECT_NE(ReadTlsDir(dir)->cert_pem, before);
  EXPECT_GT(renewer->next_renewal(), clock_.Now());
}

TEST_F(NodeCaTest, ServerPicksUpItsRenewedCertificateWithoutRestart) {
  auto renewer = Renewer(manager_dir_);
  ASSERT_NE(renewer, nullptr);
  ASSERT_TRUE(renewer->RenewNow().ok());
  std::string new_serial = ParseCertificate(ReadTlsDir(manager_dir_)->cert_pem)->serial;
  // gRPC's file watcher re-reads the directory every second (the test server's refresh): new
  // handshakes must present the new certificate within a few periods. Bounded wait.
  auto op_dir = pki_->IssueDir("ci", api::CERTIFICATE_ROLE_OPERATOR);
  ASSERT_TRUE(op_dir.ok());
  std::string seen;
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up) {
    auto ch = FreshChannel(server_->address(), ClientCredentials(*op_dir, kCluster));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    api::GetClusterResponse resp;
    grpc::Status s = api::Control::NewStub(ch)->GetCluster(&ctx, api::GetClusterRequest(), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    auto values = ctx.auth_context()->FindPropertyValues("x509_pem_cert");
    ASSERT_FALSE(values.empty());
    seen = ParseCertificate(std::string(values[0].data(), values[0].size()))->serial;
    if (seen == new_serial) break;
    absl::SleepFor(absl::Milliseconds(100));  // polling an external watcher, not synchronising
  }
  EXPECT_EQ(seen, new_serial);
}

TEST_F(NodeCaTest, PromotionIsReflectedByARenewalWithTheNewRole) {
  JoinResult joined;
  std::string dir = JoinToDir(Token(api::NODE_ROLE_WORKER), &joined);
  EXPECT_EQ(
      CallControl(FreshChannel(server_->address(), ClientCredentials(dir, kCluster))).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(registry_->SetDesiredRole(joined.node_id, api::NODE_ROLE_MANAGER).ok());
  auto renewer = Renewer(dir);
  ASSERT_NE(renewer, nullptr);
  ASSERT_TRUE(renewer->RenewNow().ok());
  EXPECT_EQ(ParseCertificate(ReadTlsDir(dir)->cert_pem)->role, api::CERTIFICATE_ROLE_MANAGER);
  EXPECT_TRUE(CallControl(FreshChannel(server_->address(), ClientCredentials(dir, kCluster))).ok());

  // And back: demotion.
  ASSERT_TRUE(registry_->SetDesiredRole(joined.node_id, api::NODE_ROLE_WORKER).ok());
  ASSERT_TRUE(renewer->RenewNow().ok());
  EXPECT_EQ(ParseCertificate(ReadTlsDir(dir)->cert_pem)->role, api::CERTIFICATE_ROLE_WORKER);
  EXPECT_EQ(
      CallControl(FreshChannel(server_->address(), ClientCredentials(dir, kCluster))).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(NodeCaTest, RemovedNodeCannotRenewNorCall) {
  JoinResult joined;
  std::string dir = JoinToDir(Token(api::NODE_ROLE_WORKER), &joined);
  auto renewer = Renewer(dir);
  ASSERT_NE(renewer, nullptr);
  registry_->RemoveNode(joined.node_id);
  absl::Status s = renewer->RenewNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("has been removed from the cluster"));
  grpc::Status call =
      CallDispatcher(CreateManagerChannel(server_->address(), ClientCredentials(dir, kCluster)));
  EXPECT_EQ(call.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(call.error_message(), HasSubstr("removed from the cluster"));
}

// A Control service that only issues operator certificates.
class OperatorControl final : public api::Control::Service {
 public:
  explicit OperatorControl(const RootCa& ca) : ca_(ca) {}
  grpc::Status IssueOperatorCertificate(grpc::ServerContext*,
                                        const api::IssueOperatorCertificateRequest* req,
                                        api::IssueOperatorCertificateResponse* resp) override {
    auto r = SignOperatorCertificate(ca_, kCluster, *req);
    if (!r.ok())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(r.status().message()));
    *resp = *r;
    return grpc::Status::OK;
  }
  grpc::Status GetCluster(grpc::ServerContext*, const api::GetClusterRequest*,
                          api::GetClusterResponse*) override {
    return grpc::Status::OK;
  }

 private:
  const RootCa& ca_;
};

TEST_F(NodeCaTest, ManagerIssuesAnOperatorBundleThatWorksForControlOnly) {
  OperatorControl control(pki_->ca());
  auto check =
      AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, registry_->Revocation());
  ASSERT_TRUE(check.ok());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", ServerCredentials(manager_dir_, std::move(*check)),
                           &port);
  builder.RegisterService(&control);
  api::Dispatcher::Service dispatcher;  // UNIMPLEMENTED everywhere
  builder.RegisterService(&dispatcher);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::string addr = "127.0.0.1:" + std::to_string(port);

  auto as_manager =
      api::Control::NewStub(CreateManagerChannel(addr, ClientCredentials(manager_dir_, kCluster)));
  auto bundle = RequestOperatorBundle(*as_manager, "ci-deployer");
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  std::string tls_dir = testing::NewTempDir("swarmctl-tls");
  ASSERT_TRUE(WriteTlsDir(tls_dir, *bundle).ok());

  auto op = CreateManagerChannel(addr, ClientCredentials(tls_dir, kCluster));
  EXPECT_TRUE(CallControl(op).ok());
  grpc::Status s = CallDispatcher(op);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("role operator (ci-deployer)"));

  EXPECT_THAT(RequestOperatorBundle(*as_manager, "bad name").status().message(),
              HasSubstr("invalid character"));
  server->Shutdown(std::chrono::system_clock::now());
}

TEST(OperatorNameTest, FollowsTheNameRule) {
  EXPECT_TRUE(ValidateOperatorName("ci-deployer").ok());
  EXPECT_TRUE(ValidateOperatorName("a").ok());
  EXPECT_TRUE(ValidateOperatorName(std::string(63, 'a')).ok());
  EXPECT_FALSE(ValidateOperatorName("").ok());
  EXPECT_FALSE(ValidateOperatorName(std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateOperatorName("-ci").ok());
  EXPECT_FALSE(ValidateOperatorName("ci/x").ok());
}

}  // namespace
}  // namespace shoal::pki

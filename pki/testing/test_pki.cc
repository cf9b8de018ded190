#include "pki/testing/test_pki.h"

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/csr.h"
#include "pki/tls_credentials.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"

namespace shoal::pki::testing {

std::string NewTempDir(absl::string_view name) {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base ? base : "/tmp", "/", name, "-", counter.fetch_add(1));
  return dir;
}

absl::StatusOr<std::unique_ptr<TestPki>> TestPki::Create(std::string cluster_id,
                                                         const Clock& clock) {
  ASSIGN_OR_RETURN(std::unique_ptr<RootCa> ca, RootCa::Create(clock));
  return std::unique_ptr<TestPki>(new TestPki(std::move(cluster_id), std::move(ca)));
}

absl::StatusOr<TlsBundle> TestPki::Issue(absl::string_view subject, api::CertificateRole role,
                                         absl::Duration validity, absl::string_view cluster_id) {
  ASSIGN_OR_RETURN(KeyAndCsr kc, GenerateKeyAndCsr(subject));
  RootCa::SignRequest req{kc.csr_pem, std::string(subject), role,
                          cluster_id.empty() ? cluster_id_ : std::string(cluster_id), validity};
  TlsBundle bundle;
  ASSIGN_OR_RETURN(bundle.cert_pem, ca_->Sign(req));
  bundle.key_pem = kc.key_pem;
  bundle.ca_pem = ca_->cert_pem();
  return bundle;
}

absl::StatusOr<std::string> TestPki::IssueDir(absl::string_view subject, api::CertificateRole role,
                                              absl::Duration validity,
                                              absl::string_view cluster_id) {
  ASSIGN_OR_RETURN(TlsBundle bundle, Issue(subject, role, validity, cluster_id));
  std::string dir = NewTempDir(subject);
  RETURN_IF_ERROR(WriteTlsDir(dir, bundle));
  return dir;
}

namespace {

class StubControl final : public api::Control::Service {
  grpc::Status GetCluster(grpc::ServerContext*, const api::GetClusterRequest*,
                          api::GetClusterResponse*) override {
    return grpc::Status::OK;
  }
};

class StubDispatcher final : public api::Dispatcher::Service {
  grpc::Status Heartbeat(grpc::ServerContext*, const api::HeartbeatRequest*,
                         api::HeartbeatResponse*) override {
    return grpc::Status::OK;
  }
};

class StubRaft final : public raftpb::Raft::Service {
  grpc::Status ResolveAddress(grpc::ServerContext*, const raftpb::ResolveAddressRequest*,
                              raftpb::ResolveAddressResponse*) override {
    return grpc::Status::OK;
  }
};

}  // namespace

struct StubServer::Services {
  StubControl control;
  StubDispatcher dispatcher;
  StubRaft raft;
};

absl::StatusOr<std::unique_ptr<StubServer>> StubServer::Start(
    const std::string& tls_dir, std::shared_ptr<const AccessCheck> check,
    std::vector<grpc::Service*> extra_services, absl::Duration refresh) {
  std::unique_ptr<StubServer> s(new StubServer());
  s->services_ = std::make_unique<Services>();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", ServerCredentials(tls_dir, std::move(check), refresh),
                           &port);
  builder.RegisterService(&s->services_->control);
  builder.RegisterService(&s->services_->dispatcher);
  builder.RegisterService(&s->services_->raft);
  for (grpc::Service* extra : extra_services) builder.RegisterService(extra);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0) {
    return absl::InternalError("stub server did not start on 127.0.0.1");
  }
  s->address_ = absl::StrCat("127.0.0.1:", port);
  return s;
}

StubServer::~StubServer() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

}  // namespace shoal::pki::testing

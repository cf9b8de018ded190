#include "pki/tls_credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pki/certificate.h"
#include "pki/grpc_authorizer.h"
#include "pki/tls_files.h"

namespace shoal::pki {
namespace {

using grpc::experimental::FileWatcherCertificateProvider;
using grpc::experimental::StaticDataCertificateProvider;

std::string Path(const std::string& dir, const char* file) {
  return dir.empty() || dir.back() == '/' ? dir + file : absl::StrCat(dir, "/", file);
}

unsigned int RefreshSeconds(absl::Duration refresh) {
  return static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(refresh)));
}

std::shared_ptr<FileWatcherCertificateProvider> Watcher(const std::string& dir,
                                                        absl::Duration refresh) {
  return std::make_shared<FileWatcherCertificateProvider>(
      Path(dir, kKeyFile), Path(dir, kCertFile), Path(dir, kCaFile), RefreshSeconds(refresh));
}

// Runs after gRPC verified the server's chain against the root CA: the server must be a manager
// (of the expected cluster).
class ManagerServerVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit ManagerServerVerifier(std::string cluster_id) : cluster_id_(std::move(cluster_id)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    grpc::string_ref pem = request->peer_cert();
    absl::StatusOr<CertificateInfo> info =
        ParseCertificate(absl::string_view(pem.data(), pem.size()));
    if (!info.ok()) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  absl::StrCat("server certificate: ", info.status().message()));
    } else if (info->role != api::CERTIFICATE_ROLE_MANAGER) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  absl::StrCat("server ", info->subject, " is a ",
                                               RoleName(info->role), ", not a manager"));
    } else if (!cluster_id_.empty() && info->cluster_id != cluster_id_) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  absl::StrCat("server ", info->subject, " belongs to cluster ",
                                               info->cluster_id, ", expected ", cluster_id_));
    } else {
      *sync_status = grpc::Status::OK;
    }
    return true;  // decided synchronously
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string cluster_id_;
};

std::shared_ptr<grpc::ChannelCredentials> ManagerOnlyCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider, bool identity,
    std::string cluster_id) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::move(provider));
  options.watch_root_certs();
  if (identity) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<ManagerServerVerifier>(
          std::move(cluster_id)));
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace

std::shared_ptr<grpc::Channel> CreateManagerChannel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    grpc::ChannelArguments args) {
  args.SetSslTargetNameOverride(kManagerServerName);
  return grpc::CreateCustomChannel(address, credentials, args);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const std::string& tls_dir,
                                                           std::shared_ptr<const AccessCheck> check,
                                                           absl::Duration refresh) {
  grpc::experimental::TlsServerCredentialsOptions options(Watcher(tls_dir, refresh));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // Verified by GrpcAuthorizer (see grpc_authorizer.h for why); TLS still checks that the client
  // holds the certificate's key.
  options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  creds->SetAuthMetadataProcessor(std::make_shared<GrpcAuthorizer>(std::move(check)));
  return creds;
}

std::shared_ptr<grpc::ChannelCredentials> ClientCredentials(const std::string& tls_dir,
                                                            absl::string_view expected_cluster_id,
                                                            absl::Duration refresh) {
  return ManagerOnlyCredentials(Watcher(tls_dir, refresh), /*identity=*/true,
                                std::string(expected_cluster_id));
}

std::shared_ptr<grpc::ChannelCredentials> AnonymousClientCredentials(const std::string& ca_pem) {
  return ManagerOnlyCredentials(std::make_shared<StaticDataCertificateProvider>(ca_pem),
                                /*identity=*/false, "");
}

std::shared_ptr<grpc::ChannelCredentials> BootstrapClientCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  options.set_check_call_host(false);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace shoal::pki

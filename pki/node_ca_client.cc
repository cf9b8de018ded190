#include "pki/node_ca_client.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "common/status_macros.h"
#include "pki/certificate.h"
#include "pki/csr.h"
#include "pki/join_token.h"
#include "pki/renewal.h"
#include "pki/tls_credentials.h"

namespace shoal::pki {
namespace {

void SetDeadline(grpc::ClientContext* ctx, absl::Time deadline) {
  ctx->set_deadline(absl::ToChronoTime(deadline));
}

// A join's channels, each with a subchannel of its own. gRPC 1.51 shares subchannels among
// channels with equal credentials through a global map whose ordering compares TLS credentials
// by content when equal and by address otherwise (TlsCredentials::cmp_impl), which is no
// ordering once two equal credentials sit at addresses on either side of a third. Every join's
// bootstrap credentials are equal; a process that joined many nodes at once (the idle-manager
// benchmark's 1,000) lost track of a freed subchannel and crashed in it (SIGBUS, "Mutex corrupt"
// in Subchannel::ThrottleKeepaliveTime or CancelConnectivityStateWatch), about one run in ten.
// A join's channels live for three calls: sharing would gain nothing.
std::shared_ptr<grpc::Channel> JoinChannel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return CreateManagerChannel(address, credentials, args);
}

// Fetches the certificate issued to `node_id` and checks it against our key and the CA.
absl::StatusOr<CertificateInfo> FetchIssued(api::NodeCA::Stub& stub, const std::string& node_id,
                                            const std::string& key_pem, const std::string& ca_pem,
                                            absl::Time deadline, absl::Time now,
                                            std::string* cert_pem) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline);
  api::NodeCertificateStatusRequest req;
  req.set_node_id(node_id);
  api::NodeCertificateStatusResponse resp;
  RETURN_IF_ERROR(Annotate(FromGrpcStatus(stub.NodeCertificateStatus(&ctx, req, &resp)),
                           "reading the issued certificate"));
  if (resp.certificate().status() != api::Certificate::CERTIFICATE_STATUS_ISSUED) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate of ", node_id, " was not issued: ", resp.certificate().error()));
  }
  *cert_pem = resp.certificate().certificate();
  ASSIGN_OR_RETURN(CertificateInfo info, VerifyCertificate(*cert_pem, ca_pem, now));
  ASSIGN_OR_RETURN(std::string public_key, PublicKeyOf(key_pem));
  if (info.public_key != public_key) {
    return absl::InternalError("the manager returned a certificate for another key");
  }
  if (info.subject != node_id) {
    return absl::InternalError(absl::StrCat("the manager returned a certificate for ", info.subject,
                                            " instead of ", node_id));
  }
  return info;
}

}  // namespace

absl::StatusOr<JoinResult> JoinCluster(const std::string& manager_address, absl::string_view token,
                                       api::NodeSpec::Availability availability,
                                       absl::Duration timeout) {
  ASSIGN_OR_RETURN(JoinToken parsed, ParseJoinToken(token));
  absl::Time deadline = absl::Now() + timeout;

  // Steps 2-3: the CA, from a server we do not trust yet, checked against the token.
  std::string ca_pem;
  {
    auto channel = JoinChannel(manager_address, BootstrapClientCredentials());
    auto stub = api::NodeCA::NewStub(channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    api::GetRootCACertificateResponse resp;
    RETURN_IF_ERROR(Annotate(
        FromGrpcStatus(stub->GetRootCACertificate(&ctx, api::GetRootCACertificateRequest(), &resp)),
        absl::StrCat("fetching the root CA from ", manager_address)));
    ca_pem = resp.certificate();
  }
  RETURN_IF_ERROR(CheckCaMatchesToken(parsed, ca_pem));

  // Step 4: only now does the token travel, to a manager of that CA.
  JoinResult result;
  result.bundle.ca_pem = ca_pem;
  ASSIGN_OR_RETURN(KeyAndCsr kc, GenerateKeyAndCsr("joining-node"));
  result.bundle.key_pem = kc.key_pem;
  auto channel = JoinChannel(manager_address, AnonymousClientCredentials(ca_pem));
  auto stub = api::NodeCA::NewStub(channel);
  api::IssueNodeCertificateResponse issued;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    api::IssueNodeCertificateRequest req;
    req.set_csr(kc.csr_pem);
    req.set_token(std::string(token));
    req.set_availability(availability);
    RETURN_IF_ERROR(Annotate(FromGrpcStatus(stub->IssueNodeCertificate(&ctx, req, &issued)),
                             "requesting a certificate"));
  }
  ASSIGN_OR_RETURN(CertificateInfo info,
                   FetchIssued(*stub, issued.node_id(), kc.key_pem, ca_pem, deadline, absl::Now(),
                               &result.bundle.cert_pem));
  result.node_id = issued.node_id();
  result.role = issued.role();
  result.cluster_id = info.cluster_id;
  return result;
}

absl::StatusOr<std::unique_ptr<CertificateRenewer>> CertificateRenewer::Create(
    Options options, std::shared_ptr<grpc::ChannelInterface> channel, const Clock& clock) {
  absl::StatusOr<TlsBundle> bundle = ReadTlsDir(options.tls_dir);
  if (!bundle.ok()) return absl::FailedPreconditionError(bundle.status().message());
  absl::StatusOr<CertificateInfo> info = ParseCertificate(bundle->cert_pem);
  if (!info.ok()) return absl::FailedPreconditionError(info.status().message());
  absl::Time next = ChooseRenewalTime(info->not_before, info->not_after, options.random);
  return std::unique_ptr<CertificateRenewer>(
      new CertificateRenewer(std::move(options), std::move(channel), clock, next));
}

CertificateRenewer::CertificateRenewer(Options options,
                                       std::shared_ptr<grpc::ChannelInterface> channel,
                                       const Clock& clock, absl::Time next)
    : options_(std::move(options)),
      stub_(api::NodeCA::NewStub(std::move(channel))),
      clock_(clock),
      next_renewal_(next),
      random_(options_.random) {}

CertificateRenewer::~CertificateRenewer() { Stop(); }

absl::Time CertificateRenewer::next_renewal() const {
  absl::MutexLock lock(&mu_);
  return next_renewal_;
}

absl::StatusOr<bool> CertificateRenewer::RenewIfDue() {
  absl::MutexLock lock(&mu_);
  if (clock_.Now() < next_renewal_) return false;
  RETURN_IF_ERROR(RenewLocked());
  return true;
}

absl::Status CertificateRenewer::RenewNow() {
  absl::MutexLock lock(&mu_);
  return RenewLocked();
}

absl::Status CertificateRenewer::RenewLocked() {
  ASSIGN_OR_RETURN(TlsBundle current, ReadTlsDir(options_.tls_dir));
  ASSIGN_OR_RETURN(KeyAndCsr kc, GenerateKeyAndCsr("renewal"));
  absl::Time deadline = absl::Now() + options_.rpc_timeout;
  api::IssueNodeCertificateResponse issued;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    api::IssueNodeCertificateRequest req;
    req.set_csr(kc.csr_pem);
    RETURN_IF_ERROR(Annotate(FromGrpcStatus(stub_->IssueNodeCertificate(&ctx, req, &issued)),
                             "renewing the node certificate"));
  }
  TlsBundle renewed;
  renewed.key_pem = kc.key_pem;
  renewed.ca_pem = current.ca_pem;
  ASSIGN_OR_RETURN(CertificateInfo info,
                   FetchIssued(*stub_, issued.node_id(), kc.key_pem, current.ca_pem, deadline,
                               clock_.Now(), &renewed.cert_pem));
  RETURN_IF_ERROR(WriteTlsDir(options_.tls_dir, renewed));
  next_renewal_ = ChooseRenewalTime(info.not_before, info.not_after, random_);
  log::Info("pki", "certificate renewed",
            {{"node", info.subject},
             {"role", RoleName(info.role)},
             {"not_after", info.not_after},
             {"next_renewal", next_renewal_}});
  return absl::OkStatus();
}

void CertificateRenewer::Start(absl::Duration poll) {
  Stop();
  stop_ = std::make_unique<absl::Notification>();
  absl::Notification* stop = stop_.get();
  thread_ = std::thread([this, stop, poll] {
    while (!stop->WaitForNotificationWithTimeout(poll)) {
      absl::StatusOr<bool> renewed = RenewIfDue();
      if (!renewed.ok()) {
        log::Warning("pki", "certificate renewal failed; will retry",
                     {{"error", renewed.status()}});
      }
    }
  });
}

void CertificateRenewer::Stop() {
  if (!thread_.joinable()) return;
  stop_->Notify();
  thread_.join();
}

}  // namespace shoal::pki

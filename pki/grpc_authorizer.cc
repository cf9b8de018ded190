#include "pki/grpc_authorizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"

namespace shoal::pki {
namespace {

constexpr char kPemCertProperty[] = "x509_pem_cert";

std::optional<std::string> FirstProperty(const grpc::AuthContext& auth, const char* name) {
  std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
  if (values.empty()) return std::nullopt;
  return std::string(values[0].data(), values[0].size());
}

}  // namespace

GrpcAuthorizer::GrpcAuthorizer(std::shared_ptr<const AccessCheck> check)
    : check_(std::move(check)) {}

grpc::Status GrpcAuthorizer::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                     OutputMetadata*, OutputMetadata*) {
  auto path = auth_metadata.find(":path");
  if (path == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "call without a method path");
  }
  std::string method(path->second.data(), path->second.size());
  std::optional<std::string> pem = FirstProperty(*context, kPemCertProperty);
  absl::StatusOr<AccessGrant> grant = check_->Check(method, pem ? &*pem : nullptr);
  if (!grant.ok()) {
    log::Debug("pki", "call refused",
               {{"method", method}, {"reason", std::string(grant.status().message())}});
    return ToGrpcStatus(grant.status());
  }
  // `context` is the connection's, shared by all its calls (grpc/grpc#28809): what one call adds,
  // every later call on the connection sees. The identity comes from the connection's
  // certificate and is the same for each call, so it is added once; added per call, it grew the
  // context by three properties per heartbeat without bound, and every lookup (a scan) with it.
  // Readers take the first value, so adding once changes no answer.
  if (grant->peer.has_value()) {
    if (!FirstProperty(*context, kNodeIdProperty)) {
      context->AddProperty(kNodeIdProperty, grant->peer->subject);
      context->AddProperty(kRoleProperty, std::string(RoleName(grant->peer->role)));
      context->AddProperty(kClusterIdProperty, grant->peer->cluster_id);
      context->SetPeerIdentityPropertyName(kNodeIdProperty);
    }
  } else if (!grant->anonymous_reason.empty()) {
    // The certificate of this connection was accepted by an earlier call, and is not now
    // (it expired, or its node was removed): the identity that call recorded is still on the
    // context, and an open method's handler would take the caller for the node. Refused: a
    // new connection is anonymous (renewing then needs a join token).
    if (FirstProperty(*context, kNodeIdProperty)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          absl::StrCat("this connection's certificate is no longer accepted: ",
                                       grant->anonymous_reason));
    }
    if (!FirstProperty(*context, kAnonymousReasonProperty)) {
      context->AddProperty(kAnonymousReasonProperty, grant->anonymous_reason);
    }
  }
  return grpc::Status::OK;
}

absl::StatusOr<CertificateInfo> AuthenticatedPeer(const grpc::AuthContext& auth) {
  std::optional<std::string> id = FirstProperty(auth, kNodeIdProperty);
  std::optional<std::string> role = FirstProperty(auth, kRoleProperty);
  std::optional<std::string> cluster = FirstProperty(auth, kClusterIdProperty);
  if (!id || !role || !cluster) {
    std::optional<std::string> reason = FirstProperty(auth, kAnonymousReasonProperty);
    if (reason) return absl::UnauthenticatedError(*reason);
    return absl::UnauthenticatedError("the call carries no client certificate");
  }
  CertificateInfo peer;
  peer.subject = *id;
  absl::StatusOr<api::CertificateRole> r = RoleFromName(*role);
  if (!r.ok()) return absl::InternalError("authorizer stored an unknown role");
  peer.role = *r;
  peer.cluster_id = *cluster;
  return peer;
}

absl::StatusOr<CertificateInfo> AuthenticatedPeer(const grpc::ServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return absl::UnauthenticatedError("the call has no security context");
  return AuthenticatedPeer(*auth);
}

}  // namespace shoal::pki

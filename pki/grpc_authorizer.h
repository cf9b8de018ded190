// Role checks on every call of a gRPC server: an AuthMetadataProcessor that applies AccessCheck
// (access_check.h) to the method and the peer certificate of each call, before any handler
// runs. Refused calls end with UNAUTHENTICATED or PERMISSION_DENIED and a message naming the
// reason; allowed calls carry the verified identity in their AuthContext, which handlers read
// with AuthenticatedPeer().
//
// The TLS layer (tls_credentials.h) requests a client certificate and proves that the peer holds
// its key, but leaves the chain, expiry, cluster and role to this processor, so that a refusal
// is an RPC status with a reason rather than an opaque handshake failure, and so that expiry is
// judged by the injected Clock. ServerCredentials() therefore always installs it.
//
// Thread-safe. The processor is non-blocking (it runs on gRPC's threads): AccessCheck and its
// RevocationCheck must not block.
#pragma once

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "pki/access_check.h"
#include "pki/certificate.h"

namespace shoal::pki {

// AuthContext properties set on allowed calls with a verified certificate.
inline constexpr char kNodeIdProperty[] = "shoal.node_id";
inline constexpr char kRoleProperty[] = "shoal.role";
inline constexpr char kClusterIdProperty[] = "shoal.cluster_id";
// Set on anonymous calls to open methods whose certificate was refused: the reason.
inline constexpr char kAnonymousReasonProperty[] = "shoal.anonymous_reason";

class GrpcAuthorizer final : public grpc::AuthMetadataProcessor {
 public:
  explicit GrpcAuthorizer(std::shared_ptr<const AccessCheck> check);

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const std::shared_ptr<const AccessCheck> check_;
};

// The verified caller of the current call: node id (or operator name), role and cluster id.
// UNAUTHENTICATED when the call is anonymous (an open method called without a valid
// certificate); the message carries the refusal reason when there was one.
absl::StatusOr<CertificateInfo> AuthenticatedPeer(const grpc::ServerContext& context);
absl::StatusOr<CertificateInfo> AuthenticatedPeer(const grpc::AuthContext& auth);

}  // namespace shoal::pki

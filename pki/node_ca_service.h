// The NodeCA gRPC service (proto/ca.proto), served by managers:
//
//   GetRootCACertificate   the root CA certificate, to anyone (the caller checks it against the
//                          digest in its join token).
//   IssueNodeCertificate   with a join token: checks it (constant-time, against both current
//                          tokens), takes the role from the token that matches, gives the node a
//                          new id and signs its CSR (CN=id, OU=role, O=cluster id).
//                          Without a token (renewal): requires the caller's verified node
//                          certificate (set by GrpcAuthorizer) and signs with the role the
//                          cluster has given the node (NodeRecord::role: manager as soon as it
//                          is promoted, worker once a demoted manager left the Raft group), so
//                          promote/demote take effect at the node's next renewal (a node daemon
//                          renews at once when its session tells it of the change).
//   NodeCertificateStatus  the node's certificate record and the root CA. Signing is
//                          synchronous, so the record is final when IssueNodeCertificate returns.
//
// Errors: INVALID_ARGUMENT (malformed token or CSR), PERMISSION_DENIED (token of another CA,
// rotated or unknown token, removed node, operator renewing here), UNAUTHENTICATED (renewal
// without a valid certificate), NOT_FOUND (unknown node id in NodeCertificateStatus).
//
// Thread-safe: handlers run on gRPC's threads; state lives in the CaRegistry.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/id.h"
#include "pki/ca_registry.h"
#include "pki/certificate.h"
#include "pki/root_ca.h"
#include "proto/ca.grpc.pb.h"

namespace shoal::pki {

class NodeCaService final : public api::NodeCA::Service {
 public:
  struct Options {
    // This cluster's id (O of every certificate).
    std::string cluster_id;
    // Lifetime of node certificates (ClusterSpec.CAConfig.node_cert_expiry); >= 1 hour.
    absl::Duration node_cert_validity = kDefaultNodeCertValidity;
  };

  // `ca`, `registry`, `ids` and `clock` must outlive the service. INVALID_ARGUMENT for an empty
  // cluster id or a validity under the minimum.
  static absl::StatusOr<std::unique_ptr<NodeCaService>> Create(Options options, const RootCa& ca,
                                                               CaRegistry& registry,
                                                               IdGenerator& ids,
                                                               const Clock& clock);

  grpc::Status GetRootCACertificate(grpc::ServerContext* context,
                                    const api::GetRootCACertificateRequest* request,
                                    api::GetRootCACertificateResponse* response) override;
  grpc::Status IssueNodeCertificate(grpc::ServerContext* context,
                                    const api::IssueNodeCertificateRequest* request,
                                    api::IssueNodeCertificateResponse* response) override;
  grpc::Status NodeCertificateStatus(grpc::ServerContext* context,
                                     const api::NodeCertificateStatusRequest* request,
                                     api::NodeCertificateStatusResponse* response) override;

  // The decisions behind IssueNodeCertificate, callable without gRPC. `peer` is the verified
  // caller (nullptr when anonymous) and `anonymous_reason` why it is anonymous, if known.
  absl::StatusOr<api::IssueNodeCertificateResponse> Issue(
      const api::IssueNodeCertificateRequest& request, const CertificateInfo* peer,
      absl::string_view anonymous_reason);

 private:
  NodeCaService(Options options, const RootCa& ca, CaRegistry& registry, IdGenerator& ids,
                const Clock& clock);

  // The role `token` grants. PERMISSION_DENIED if it matches neither current token.
  absl::StatusOr<api::NodeRole> RoleForToken(absl::string_view token);
  // Signs `csr_pem` for `node_id` with `role`: the certificate record to store.
  absl::StatusOr<api::Certificate> SignRecord(const std::string& csr_pem,
                                              const std::string& node_id, api::NodeRole role);

  const Options options_;
  const RootCa& ca_;
  CaRegistry& registry_;
  IdGenerator& ids_;
  const Clock& clock_;
};

}  // namespace shoal::pki

#include "pki/node_ca_service.h"

#include <google/protobuf/util/time_util.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "pki/access_check.h"
#include "pki/certificate.h"
#include "pki/csr.h"
#include "pki/grpc_authorizer.h"
#include "pki/join_token.h"

namespace shoal::pki {

absl::StatusOr<std::unique_ptr<NodeCaService>> NodeCaService::Create(
    Options options, const RootCa& ca, CaRegistry& registry, IdGenerator& ids, const Clock& clock) {
  if (options.cluster_id.empty()) return absl::InvalidArgumentError("cluster id is empty");
  RETURN_IF_ERROR(NodeCertValidity(&options.node_cert_validity).status());
  return std::unique_ptr<NodeCaService>(
      new NodeCaService(std::move(options), ca, registry, ids, clock));
}

NodeCaService::NodeCaService(Options options, const RootCa& ca, CaRegistry& registry,
                             IdGenerator& ids, const Clock& clock)
    : options_(std::move(options)), ca_(ca), registry_(registry), ids_(ids), clock_(clock) {}

grpc::Status NodeCaService::GetRootCACertificate(grpc::ServerContext*,
                                                 const api::GetRootCACertificateRequest*,
                                                 api::GetRootCACertificateResponse* response) {
  response->set_certificate(ca_.cert_pem());
  return grpc::Status::OK;
}

grpc::Status NodeCaService::IssueNodeCertificate(grpc::ServerContext* context,
                                                 const api::IssueNodeCertificateRequest* request,
                                                 api::IssueNodeCertificateResponse* response) {
  absl::StatusOr<CertificateInfo> peer = AuthenticatedPeer(*context);
  std::string reason = peer.ok() ? "" : std::string(peer.status().message());
  absl::StatusOr<api::IssueNodeCertificateResponse> result =
      Issue(*request, peer.ok() ? &*peer : nullptr, reason);
  if (!result.ok()) {
    log::Info("pki", "certificate request refused",
              {{"peer", context->peer()}, {"reason", std::string(result.status().message())}});
    return ToGrpcStatus(result.status());
  }
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status NodeCaService::NodeCertificateStatus(grpc::ServerContext*,
                                                  const api::NodeCertificateStatusRequest* request,
                                                  api::NodeCertificateStatusResponse* response) {
  absl::StatusOr<NodeRecord> node = registry_.GetNode(request->node_id());
  if (!node.ok()) return ToGrpcStatus(node.status());
  *response->mutable_certificate() = node->certificate;
  response->set_root_ca(ca_.cert_pem());
  return grpc::Status::OK;
}

absl::StatusOr<api::NodeRole> NodeCaService::RoleForToken(absl::string_view token) {
  ASSIGN_OR_RETURN(JoinToken parsed, ParseJoinToken(token));
  if (parsed.ca_digest != ca_.digest()) {
    return absl::PermissionDeniedError(
        absl::StrCat("join token is for another root CA (", DigestToHexString(parsed.ca_digest),
                     "); this cluster's is ", DigestToHexString(ca_.digest())));
  }
  ASSIGN_OR_RETURN(api::JoinTokens current, registry_.GetJoinTokens());
  // Both comparisons always run, so the timing does not tell which token was close.
  bool worker = JoinTokensEqual(token, current.worker());
  bool manager = JoinTokensEqual(token, current.manager());
  if (manager) return api::NODE_ROLE_MANAGER;
  if (worker) return api::NODE_ROLE_WORKER;
  return absl::PermissionDeniedError(
      "join token is not valid for this cluster: it may have been rotated; ask a manager for "
      "the current one (join-token worker|manager)");
}

absl::StatusOr<api::Certificate> NodeCaService::SignRecord(const std::string& csr_pem,
                                                           const std::string& node_id,
                                                           api::NodeRole role) {
  RootCa::SignRequest sign;
  sign.csr_pem = csr_pem;
  sign.subject = node_id;
  sign.role = CertificateRoleOf(role);
  sign.cluster_id = options_.cluster_id;
  sign.validity = options_.node_cert_validity;
  ASSIGN_OR_RETURN(std::string cert, ca_.Sign(sign));
  ASSIGN_OR_RETURN(CertificateInfo info, ParseCertificate(cert));
  api::Certificate record;
  record.set_role(sign.role);
  record.set_csr(csr_pem);
  record.set_status(api::Certificate::CERTIFICATE_STATUS_ISSUED);
  record.set_certificate(cert);
  record.set_cn(node_id);
  *record.mutable_not_after() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(info.not_after));
  return record;
}

absl::StatusOr<api::IssueNodeCertificateResponse> NodeCaService::Issue(
    const api::IssueNodeCertificateRequest& request, const CertificateInfo* peer,
    absl::string_view anonymous_reason) {
  api::IssueNodeCertificateResponse response;
  if (!request.token().empty()) {
    ASSIGN_OR_RETURN(api::NodeRole role, RoleForToken(request.token()));
    RETURN_IF_ERROR(ParseCsr(request.csr()).status());
    ASSIGN_OR_RETURN(std::string node_id, ids_.NextUnique([this](absl::string_view id) {
      return registry_.NodeIdTaken(id);
    }));
    ASSIGN_OR_RETURN(api::Certificate record, SignRecord(request.csr(), node_id, role));
    NodeRecord node;
    node.node_id = node_id;
    node.desired_role = role;
    node.role = role;
    node.availability = request.availability();
    node.certificate = record;
    RETURN_IF_ERROR(registry_.CreateNode(node));
    log::Info("pki", "node joined",
              {{"node", node_id}, {"role", RoleName(CertificateRoleOf(role))}});
    response.set_node_id(node_id);
    response.set_role(role);
    return response;
  }

  // Renewal: the caller's own certificate authenticates it.
  if (peer == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("a certificate renewal needs the node's valid certificate, or a join token",
                     anonymous_reason.empty() ? "" : absl::StrCat(" (", anonymous_reason, ")")));
  }
  if (peer->role == api::CERTIFICATE_ROLE_OPERATOR) {
    return absl::PermissionDeniedError(
        absl::StrCat("operator ", peer->subject,
                     " cannot renew through NodeCA; a manager issues operator certificates "
                     "(Control.IssueOperatorCertificate)"));
  }
  if (registry_.IsRemoved(peer->subject)) {
    return NodeRemovedError(peer->subject);
  }
  absl::StatusOr<NodeRecord> node = registry_.GetNode(peer->subject);
  if (!node.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("node ", peer->subject, " is not a member of this cluster"));
  }
  RETURN_IF_ERROR(ParseCsr(request.csr()).status());
  ASSIGN_OR_RETURN(api::Certificate record, SignRecord(request.csr(), node->node_id, node->role));
  RETURN_IF_ERROR(registry_.UpdateCertificate(node->node_id, record));
  log::Info("pki", "node certificate renewed",
            {{"node", node->node_id}, {"role", RoleName(record.role())}});
  response.set_node_id(node->node_id);
  response.set_role(node->role);
  return response;
}

}  // namespace shoal::pki

#include "pki/access_check.h"

#include <openssl/sha.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/method_roles.h"
#include "pki/openssl_util.h"

namespace shoal::pki {
namespace {

std::string Sha256(absl::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof(md));
}

constexpr absl::string_view kRemovedFromCluster = " has been removed from the cluster";

}  // namespace

absl::Status NodeRemovedError(absl::string_view node_id, absl::string_view detail) {
  return absl::PermissionDeniedError(absl::StrCat("node ", node_id, kRemovedFromCluster, detail));
}

bool IsNodeRemovedError(absl::StatusCode code, absl::string_view message,
                        absl::string_view node_id) {
  if (code != absl::StatusCode::kPermissionDenied || node_id.empty()) return false;
  // The message may come wrapped ("...: node x has been removed...").
  return absl::StrContains(message, absl::StrCat("node ", node_id, kRemovedFromCluster));
}

absl::StatusOr<std::unique_ptr<AccessCheck>> AccessCheck::Create(Options options,
                                                                 const Clock& clock,
                                                                 RevocationCheck is_revoked) {
  if (options.cluster_id.empty()) return absl::InvalidArgumentError("cluster id is empty");
  RETURN_IF_ERROR(internal::ParseX509Pem(options.root_ca_pem, "root CA certificate").status());
  return std::unique_ptr<AccessCheck>(
      new AccessCheck(std::move(options), clock, std::move(is_revoked)));
}

AccessCheck::AccessCheck(Options options, const Clock& clock, RevocationCheck is_revoked)
    : options_(std::move(options)), clock_(clock), is_revoked_(std::move(is_revoked)) {}

absl::StatusOr<CertificateInfo> AccessCheck::Verify(const std::string& pem, absl::Time now) const {
  std::string key = Sha256(pem);
  {
    absl::MutexLock lock(&mu_);
    auto it = verified_.find(key);
    if (it != verified_.end() && now >= it->second.not_before && now < it->second.not_after) {
      return it->second;
    }
  }
  // Outside the cached window (or unknown): verify in full, which also words the error.
  absl::StatusOr<CertificateInfo> info = VerifyCertificate(pem, options_.root_ca_pem, now);
  if (!info.ok()) {
    if (info.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::UnauthenticatedError(
          absl::StrCat("client certificate is unusable: ", info.status().message()));
    }
    return info.status();
  }
  if (options_.cache_size == 0) return info;
  absl::MutexLock lock(&mu_);
  if (verified_.size() >= options_.cache_size) verified_.clear();
  verified_[key] = *info;
  return info;
}

absl::StatusOr<CertificateInfo> AccessCheck::Authenticate(const std::string& pem) const {
  ASSIGN_OR_RETURN(CertificateInfo peer, Verify(pem, clock_.Now()));
  if (peer.cluster_id != options_.cluster_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("certificate of ", peer.subject, " belongs to cluster ", peer.cluster_id,
                     ", not to this cluster (", options_.cluster_id, ")"));
  }
  if (is_revoked_ && is_revoked_(peer)) {
    if (peer.role == api::CERTIFICATE_ROLE_OPERATOR) {
      return absl::PermissionDeniedError(absl::StrCat(
          "operator certificate ", peer.subject, " (serial ", peer.serial, ") has been revoked"));
    }
    return NodeRemovedError(peer.subject, "; its certificate is revoked");
  }
  return peer;
}

absl::StatusOr<AccessGrant> AccessCheck::Check(absl::string_view method,
                                               const std::string* peer_cert_pem) const {
  const MethodPolicy* policy = PolicyForMethod(method);
  if (policy == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("method ", method,
                     " is not served on this port (not in the authorization "
                     "table)"));
  }
  AccessGrant grant;
  if (peer_cert_pem == nullptr || peer_cert_pem->empty()) {
    if (policy->open) return grant;
    return absl::UnauthenticatedError(absl::StrCat("no client certificate: ", method,
                                                   " requires a certificate with role ",
                                                   policy->RolesString()));
  }
  absl::StatusOr<CertificateInfo> peer = Authenticate(*peer_cert_pem);
  if (!peer.ok()) {
    if (policy->open) {
      grant.anonymous_reason = std::string(peer.status().message());
      return grant;
    }
    return peer.status();
  }
  if (!policy->Allows(peer->role)) {
    return absl::PermissionDeniedError(absl::StrCat("role ", RoleName(peer->role), " (",
                                                    peer->subject, ") may not call ", method,
                                                    "; allowed: ", policy->RolesString()));
  }
  grant.peer = *std::move(peer);
  return grant;
}

}  // namespace shoal::pki

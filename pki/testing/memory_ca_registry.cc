#include "pki/testing/memory_ca_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "pki/join_token.h"

namespace shoal::pki::testing {

MemoryCaRegistry::MemoryCaRegistry(const RootCa& ca, RandomBytesFn random)
    : ca_(ca), random_(std::move(random)) {
  absl::MutexLock lock(&mu_);
  tokens_.set_worker(GenerateJoinToken(ca_.digest(), random_).ToString());
  tokens_.set_manager(GenerateJoinToken(ca_.digest(), random_).ToString());
}

absl::StatusOr<api::JoinTokens> MemoryCaRegistry::GetJoinTokens() {
  absl::MutexLock lock(&mu_);
  return tokens_;
}

bool MemoryCaRegistry::NodeIdTaken(absl::string_view node_id) {
  absl::MutexLock lock(&mu_);
  return nodes_.contains(node_id) || removed_.contains(node_id);
}

absl::Status MemoryCaRegistry::CreateNode(const NodeRecord& node) {
  absl::MutexLock lock(&mu_);
  if (nodes_.contains(node.node_id) || removed_.contains(node.node_id)) {
    return absl::AlreadyExistsError(absl::StrCat("node ", node.node_id, " exists"));
  }
  nodes_[node.node_id] = node;
  return absl::OkStatus();
}

absl::StatusOr<NodeRecord> MemoryCaRegistry::GetNode(absl::string_view node_id) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("node ", node_id, " not found"));
  return it->second;
}

absl::Status MemoryCaRegistry::UpdateCertificate(absl::string_view node_id,
                                                 const api::Certificate& certificate) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("node ", node_id, " not found"));
  it->second.certificate = certificate;
  return absl::OkStatus();
}

bool MemoryCaRegistry::IsRemoved(absl::string_view node_id) {
  absl::MutexLock lock(&mu_);
  return removed_.contains(node_id);
}

std::string MemoryCaRegistry::RotateToken(api::NodeRole role) {
  absl::MutexLock lock(&mu_);
  std::string token = GenerateJoinToken(ca_.digest(), random_).ToString();
  if (role == api::NODE_ROLE_MANAGER) {
    tokens_.set_manager(token);
  } else {
    tokens_.set_worker(token);
  }
  return token;
}

absl::Status MemoryCaRegistry::SetDesiredRole(absl::string_view node_id, api::NodeRole role) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("node ", node_id, " not found"));
  it->second.desired_role = role;
  it->second.role = role;
  return absl::OkStatus();
}

void MemoryCaRegistry::RemoveNode(absl::string_view node_id) {
  absl::MutexLock lock(&mu_);
  nodes_.erase(node_id);
  removed_.insert(std::string(node_id));
}

RevocationCheck MemoryCaRegistry::Revocation() {
  return [this](const CertificateInfo& peer) {
    return peer.role != api::CERTIFICATE_ROLE_OPERATOR && IsRemoved(peer.subject);
  };
}

}  // namespace shoal::pki::testing

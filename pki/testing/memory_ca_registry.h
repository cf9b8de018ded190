// An in-memory CaRegistry for tests, with the operations the control plane will perform through
// the store: rotating tokens, promoting/demoting and removing nodes.
//
// Thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/id.h"
#include "pki/access_check.h"
#include "pki/ca_registry.h"
#include "pki/certificate.h"
#include "pki/root_ca.h"

namespace shoal::pki::testing {

class MemoryCaRegistry final : public CaRegistry {
 public:
  // Tokens for `ca`, secrets from `random`.
  MemoryCaRegistry(const RootCa& ca, RandomBytesFn random);

  absl::StatusOr<api::JoinTokens> GetJoinTokens() override;
  bool NodeIdTaken(absl::string_view node_id) override;
  absl::Status CreateNode(const NodeRecord& node) override;
  absl::StatusOr<NodeRecord> GetNode(absl::string_view node_id) override;
  absl::Status UpdateCertificate(absl::string_view node_id,
                                 const api::Certificate& certificate) override;
  bool IsRemoved(absl::string_view node_id) override;

  // `join-token --rotate`: a new secret for `role`'s token; returns the new token.
  std::string RotateToken(api::NodeRole role);
  // `node promote/demote`, with the role following at once (there is no role manager here).
  absl::Status SetDesiredRole(absl::string_view node_id, api::NodeRole role);
  // `node rm`.
  void RemoveNode(absl::string_view node_id);
  // A RevocationCheck refusing removed nodes.
  RevocationCheck Revocation();

 private:
  const RootCa& ca_;
  absl::Mutex mu_;
  RandomBytesFn random_ ABSL_GUARDED_BY(mu_);
  api::JoinTokens tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, NodeRecord> nodes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> removed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::pki::testing

// The CA's view of the cluster (pki::CaRegistry) on the replicated store: join tokens from the
// cluster object, node records as node objects. Every write goes through Raft (from a
// follower too: the store forwards its proposals to the leader).
//
// Thread-safety: thread-safe.
#pragma once

#include "manager/store/store.h"
#include "pki/access_check.h"
#include "pki/ca_registry.h"

namespace shoal::manager {

class StoreCaRegistry final : public pki::CaRegistry {
 public:
  explicit StoreCaRegistry(store::Store* store) : store_(store) {}

  absl::StatusOr<api::JoinTokens> GetJoinTokens() override;
  bool NodeIdTaken(absl::string_view node_id) override;
  // Writes the node object a joining node starts with: its role (the token's), availability,
  // certificate record, accepted membership.
  absl::Status CreateNode(const pki::NodeRecord& node) override;
  absl::StatusOr<pki::NodeRecord> GetNode(absl::string_view node_id) override;
  absl::Status UpdateCertificate(absl::string_view node_id,
                                 const api::Certificate& certificate) override;
  // Whether `node rm` removed it (the cluster object's removed_nodes, kept until the node's
  // last certificate expires). Cheap: a read of the in-memory store.
  bool IsRemoved(absl::string_view node_id) override;
  // For every authenticated call (pki::AccessCheck): a removed node's certificate is revoked;
  // operators are never nodes.
  pki::RevocationCheck Revocation();

 private:
  store::Store* const store_;
};

}  // namespace shoal::manager

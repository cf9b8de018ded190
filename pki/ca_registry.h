// The seam between the CA and the cluster state: what the NodeCA service reads and writes (join
// tokens, node records with their certificates, removed nodes). The manager's replicated store
// implements it in the control-plane issue (every write then goes through Raft);
// testing/memory_ca_registry.h is the in-memory fake.
//
// Thread-safety: implementations are thread-safe; the NodeCA service calls them from gRPC
// threads.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/specs.pb.h"
#include "proto/types.pb.h"

namespace shoal::pki {

// The part of a Node object the CA owns.
struct NodeRecord {
  // Node id (the certificate's CN).
  std::string node_id;
  // The role the node should have: set at join from the token, changed by promote/demote.
  api::NodeRole desired_role = api::NODE_ROLE_WORKER;
  // The role the cluster has given it (Node.role): the token's at join; after a promotion at
  // once, after a demotion only once its Raft member is removed (the role manager's work).
  // Renewals issue certificates with this role, as SwarmKit's CA does: a manager being demoted
  // keeps its manager certificate (which its Raft peers require) while it still votes.
  api::NodeRole role = api::NODE_ROLE_WORKER;
  // Availability requested at join.
  api::NodeSpec::Availability availability = api::NodeSpec::AVAILABILITY_ACTIVE;
  // The last issuance: CSR, state, certificate, CN, expiry.
  api::Certificate certificate;
};

class CaRegistry {
 public:
  virtual ~CaRegistry() = default;

  // The cluster's current join tokens.
  virtual absl::StatusOr<api::JoinTokens> GetJoinTokens() = 0;

  // Whether a node with this id exists or existed (ids are never reused).
  virtual bool NodeIdTaken(absl::string_view node_id) = 0;

  // Adds a node. ALREADY_EXISTS if the id is taken.
  virtual absl::Status CreateNode(const NodeRecord& node) = 0;

  // A node that is a member. NOT_FOUND for unknown and removed nodes.
  virtual absl::StatusOr<NodeRecord> GetNode(absl::string_view node_id) = 0;

  // Replaces a member's certificate record. NOT_FOUND for unknown and removed nodes.
  virtual absl::Status UpdateCertificate(absl::string_view node_id,
                                         const api::Certificate& certificate) = 0;

  // Whether the node was removed from the cluster (its certificates are refused).
  virtual bool IsRemoved(absl::string_view node_id) = 0;
};

}  // namespace shoal::pki

// What a node keeps about its membership in <state>/node.json, so that a restarted swarmd
// rejoins by itself: written whole (temporary file, fsync, rename) at each change.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::node {

struct NodeState {
  std::string node_id;     // empty: in no cluster
  std::string cluster_id;
  std::string role;        // "manager" or "worker"
  uint64_t raft_id = 0;    // a manager's Raft member id
  std::string listen_addr;
  std::string advertise_addr;
  // Managers' API addresses, the last list the managers sent (the join address at first).
  std::vector<std::string> managers;

  bool in_cluster() const { return !node_id.empty(); }
};

// NOT_FOUND when there is no node.json (a node in no cluster); DATA_LOSS naming the file
// when it does not parse.
absl::StatusOr<NodeState> LoadNodeState(const std::string& state_dir);
absl::Status SaveNodeState(const std::string& state_dir, const NodeState& state);

}  // namespace shoal::node

#include "manager/store/raft_binding.h"

namespace shoal::manager::store {

void RaftProposer::Propose(std::string data, uint64_t leader_term,
                           std::function<void(absl::Status)> done) {
  raft::Node* node = node_.load();
  if (node == nullptr) {
    done(absl::UnavailableError("this manager's Raft member is not running"));
    return;
  }
  // Without a leader the write could only wait for the request timeout: say so at once, as
  // Docker Swarm does ("the swarm does not have a leader"); the caller retries.
  if (leader_term == 0 && node->GetStatus().leader == 0) {
    done(absl::UnavailableError(
        "the swarm has no leader: fewer than a quorum of managers are reachable; nothing was "
        "written"));
    return;
  }
  auto complete = [done = std::move(done)](absl::StatusOr<uint64_t> r) { done(r.status()); };
  if (leader_term != 0) {
    node->ProposeAsLeader(leader_term, std::move(data), std::move(complete));
  } else {
    node->Propose(std::move(data), std::move(complete));
  }
}

}  // namespace shoal::manager::store

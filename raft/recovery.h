// Disaster recovery for a Raft member: restarting one member's log as a new single-member
// cluster when the others are lost for good (swarmctl init --force-new-cluster, as in Docker
// Swarm and etcd).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "raft/storage.h"

namespace shoal::raft {

struct ForcedNewCluster {
  // The members removed: everyone in the stored membership or named by a membership change in
  // the log, except this member.
  std::vector<uint64_t> removed;
  // Entries this member held beyond its commit index, now committed with the rest.
  uint64_t uncommitted_kept = 0;
  // The new last (and commit) index: the membership changes appended end there.
  uint64_t last_index = 0;
};

// Rewrites `storage` (which no node may be using) so that, when a node starts on it, member
// `self` is the only voter and everything in its log is committed: it elects itself at once
// and keeps serving every write it holds. Appends, in one synced write, a removal of each other
// member and the promotion of `self` to voter (so a learner can be recovered too), and moves
// the commit index to the end. Entries beyond the old commit
// index are kept and committed: this member may hold acknowledged writes whose commit it never
// learned (etcd discards them). A proposer was never told that a write in the log failed,
// only that it may or may not have been applied, so committing them contradicts no answer.
// Operators pick the member with the most recent log; the others must be wiped and join again:
// they still believe in the old membership. FAILED_PRECONDITION, and nothing written, when
// `self` was never a member of this store, or was removed (its snapshot or its log removes it:
// ids are never reused, so a node on the rewritten store would come up removed).
absl::StatusOr<ForcedNewCluster> ForceNewCluster(WritableLogStorage& storage, uint64_t self);

}  // namespace shoal::raft

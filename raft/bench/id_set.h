// The benchmark members' state machine: the ids of the values applied (each value's first
// kIdBytes bytes: its client and sequence number), enough to check that no acknowledged write
// was lost (raft_bench --kill-leader-rounds counts them on the members).
//
// Applying costs a hash-set insertion, so that the benchmark measures Raft rather than this
// bookkeeping (an ordered set of strings cost the followers about 7% of their CPU). Snapshots
// are taken as a real state machine with a large state should take them
// (StateMachine::SnapshotLater): the node thread only notes how many ids there are, and the
// snapshot thread serializes them. The ids are also kept in order of arrival, in fixed-size
// chunks that are never moved or changed once written, so the snapshot thread reads the
// first n while the node thread appends after them. (Serializing the whole set on the node
// thread, every 10,000 entries, cost each member about 2% of its CPU at 64 clients, more as
// the set grew.)
//
// Thread-safe: Apply, Restore and SnapshotLater on the node thread, Count from any thread, the
// snapshot function on any one thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "raft/node.h"

namespace shoal::raft::bench {

class IdSetStateMachine : public StateMachine {
 public:
  static constexpr size_t kIdBytes = 16;

  // Values shorter than kIdBytes carry no id and are ignored; an id applied again counts once.
  void Apply(uint64_t index, absl::string_view data) override;
  std::string Snapshot() override { return SnapshotLater()(); }
  std::function<std::string()> SnapshotLater() override;
  // The ids in `data`, kIdBytes each (a shorter tail is ignored), replace the state.
  absl::Status Restore(absl::string_view data) override;
  // How many of `ids` were applied.
  template <typename Container>
  uint64_t Count(const Container& ids) {
    absl::MutexLock lock(&mu_);
    uint64_t n = 0;
    for (const auto& id : ids) n += id.size() >= kIdBytes && ids_.contains(Decode(id));
    return n;
  }
  // How many distinct ids were applied.
  size_t size();

 private:
  using Id = std::pair<uint64_t, uint64_t>;
  static constexpr size_t kChunkIds = 4096;
  using Chunk = std::array<Id, kChunkIds>;
  static Id Decode(absl::string_view data);
  // Appends to the chunks (node thread, mu_ held).
  void AppendLocked(const Id& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::flat_hash_set<Id> ids_ ABSL_GUARDED_BY(mu_);
  // Every id of ids_, in the order applied: ids_.size() of them.
  std::vector<std::shared_ptr<Chunk>> chunks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::raft::bench

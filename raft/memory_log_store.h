// LogStorage in memory, for tests and the deterministic simulation. Also the model the RocksDB
// store follows: entries after a snapshot, with a dummy entry at the snapshot's index holding
// its term.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "raft/storage.h"

namespace shoal::raft {

class MemoryLogStore final : public WritableLogStorage {
 public:
  MemoryLogStore();

  absl::StatusOr<InitialState> GetInitialState() override;
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override;
  absl::StatusOr<uint64_t> Term(uint64_t i) override;
  uint64_t FirstIndex() override;
  uint64_t LastIndex() override;
  absl::StatusOr<raftpb::Snapshot> Snapshot() override;
  absl::StatusOr<raftpb::SnapshotMetadata> SnapshotMetadata() override;

  // Write side (what the node loop does with a Ready).
  void SetHardState(const raftpb::HardState& hs);
  // The hard state as stored (what a restart would find).
  raftpb::HardState hard_state() const;
  // Appends entries, replacing any existing suffix they overlap. Entries already compacted are
  // skipped. Requires no gap after LastIndex().
  absl::Status Append(const std::vector<raftpb::Entry>& entries);
  // Replaces the whole log by `snapshot`. FAILED_PRECONDITION if it is older than the current
  // one.
  absl::Status ApplySnapshot(const raftpb::Snapshot& snapshot);
  // Records a snapshot of the application at index i (<= the applied index), with `cs` the
  // membership at i (null: the store's membership stays). FAILED_PRECONDITION if i is older
  // than the current snapshot.
  absl::StatusOr<raftpb::Snapshot> CreateSnapshot(uint64_t i, const raftpb::ConfState* cs,
                                                  std::string data);
  // Drops entries before `compact_index`. FAILED_PRECONDITION below the first index; it must be
  // at most LastIndex().
  absl::Status Compact(uint64_t compact_index);

  // Sets the membership as of the snapshot (GetInitialState's), in place of a bootstrap: a
  // test's cluster that starts with these members and an empty log.
  void SetConfState(const raftpb::ConfState& cs);

  // WritableLogStorage (nothing here is durable: `sync` is ignored).
  absl::Status Save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override;
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                std::string data) override;
  absl::Status CompactTo(uint64_t compact_index) override { return Compact(compact_index); }

 private:
  uint64_t FirstIndexLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t LastIndexLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  raftpb::HardState hard_state_ ABSL_GUARDED_BY(mu_);
  raftpb::Snapshot snapshot_ ABSL_GUARDED_BY(mu_);
  // The membership as of the snapshot.
  raftpb::ConfState conf_state_ ABSL_GUARDED_BY(mu_);
  // entries_[0] is a dummy at the snapshot's index carrying its term.
  std::vector<raftpb::Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::raft

// The seam between the Raft core and stable storage: what the core reads. The node loop (or a
// test) writes to the same store (entries, hard state, snapshots) when it handles a Ready, and
// only then tells the core (Core::Advance).
//
// Implementations: MemoryLogStore (raft/memory_log_store.h; tests and the simulation) and the
// RocksDB store. Thread-safety: implementations must allow the core's reads to interleave with
// the writer's writes, and a SaveSnapshot to run alongside a Save without a snapshot (the node
// writes snapshots on a thread of their own); other writes come one at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/raft.pb.h"

namespace shoal::raft {

// Returned (as a status) when an index below the first available one is asked for: it was
// compacted into a snapshot.
absl::Status CompactedError();
bool IsCompacted(const absl::Status& status);

// Returned when an index above the last one is asked for.
absl::Status UnavailableIndexError();
bool IsUnavailableIndex(const absl::Status& status);

// Returned by Snapshot() when a snapshot is being made and will be ready later.
absl::Status SnapshotTemporarilyUnavailableError();
bool IsSnapshotTemporarilyUnavailable(const absl::Status& status);

// What a member starts from.
struct InitialState {
  raftpb::HardState hard_state;
  raftpb::ConfState conf_state;
};

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // The persisted hard state and the membership as of the last snapshot or conf change
  // persisted.
  virtual absl::StatusOr<InitialState> GetInitialState() = 0;

  // Entries in [lo, hi), at most `max_bytes` in total (always at least one entry if any).
  // CompactedError if lo < FirstIndex(); UnavailableIndexError if hi > LastIndex() + 1.
  virtual absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                             uint64_t max_bytes) = 0;

  // Term of entry i, for i in [FirstIndex() - 1, LastIndex()] (FirstIndex() - 1 is the last
  // index of the snapshot). CompactedError below that, UnavailableIndexError above.
  virtual absl::StatusOr<uint64_t> Term(uint64_t i) = 0;

  // Index of the first entry that can be read (the snapshot's index + 1).
  virtual uint64_t FirstIndex() = 0;

  // Index of the last entry (the snapshot's index if there is no entry after it).
  virtual uint64_t LastIndex() = 0;

  // The most recent snapshot. SnapshotTemporarilyUnavailableError if one is being made.
  virtual absl::StatusOr<raftpb::Snapshot> Snapshot() = 0;
};

// The write side, used by the node loop: what it does with a Ready and with snapshots.
class WritableLogStorage : public LogStorage {
 public:
  // Persists one Ready atomically: an optional snapshot (replacing the log), entries
  // (replacing any suffix they overlap) and an optional hard state; durable before returning
  // when `sync`.
  virtual absl::Status Save(const raftpb::HardState* hard_state,
                            const std::vector<raftpb::Entry>& entries,
                            const raftpb::Snapshot* snapshot, bool sync) = 0;
  // Records the membership as of the last applied conf change.
  virtual absl::Status SaveConfState(const raftpb::ConfState& cs) = 0;
  // Records a snapshot of the application at index i with membership `cs`.
  virtual absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                        std::string data) = 0;
  // Drops entries before `compact_index` (kept: the snapshot covers them).
  virtual absl::Status CompactTo(uint64_t compact_index) = 0;
};

}  // namespace shoal::raft

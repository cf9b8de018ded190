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
#include <string>
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

  // The persisted hard state, and the membership as of the latest snapshot (empty without
  // one). A member starts from its snapshot and replays the committed log after it,
  // membership changes included, so it passes through the memberships the cluster had, in
  // order. (A membership stored as last applied, and the older changes replayed on top of it,
  // made memberships the cluster never had.) A new cluster's membership is therefore in its
  // log: see Bootstrap.
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
  // Its metadata only, without reading or copying the data (the core asks for this on the
  // node's loop thread). Default: from Snapshot().
  virtual absl::StatusOr<raftpb::SnapshotMetadata> SnapshotMetadata() {
    absl::StatusOr<raftpb::Snapshot> snap = Snapshot();
    if (!snap.ok()) return snap.status();
    return snap->metadata();
  }
};

// Fills in the data of a MSG_SNAP made by the core (Message::snapshot_unfilled) from the
// sender's `storage`: its stored snapshot, which may be newer than the one the message names
// (the follower then installs the newer one). FAILED_PRECONDITION when the stored one is older
// (it cannot be: snapshots only move forward), or Snapshot()'s error.
absl::Status FillSnapshot(LogStorage& storage, raftpb::Message& m);

// The write side, used by the node loop: what it does with a Ready and with snapshots.
class WritableLogStorage : public LogStorage {
 public:
  // Persists one Ready atomically: an optional snapshot (replacing the log), entries
  // (replacing any suffix they overlap) and an optional hard state; durable before returning
  // when `sync`.
  virtual absl::Status Save(const raftpb::HardState* hard_state,
                            const std::vector<raftpb::Entry>& entries,
                            const raftpb::Snapshot* snapshot, bool sync) = 0;
  // Records a snapshot of the application at index i with membership `cs`.
  virtual absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                        std::string data) = 0;
  // Drops entries before `compact_index` (kept: the snapshot covers them).
  virtual absl::Status CompactTo(uint64_t compact_index) = 0;
};

// Starts a new cluster's log in an empty store: one committed membership change adding each
// of `members` as a voter, at indexes 1..n of term 1, written in one synced Save. Every member
// of a new cluster bootstraps its store with the same list; a member joining a running cluster
// bootstraps nothing: its store stays empty, and it learns the membership from the log or the
// snapshot the leader sends it, as the cluster's history. A member's address, when set, is in
// its change's context, so every member learns the others' addresses by applying the log.
// INVALID_ARGUMENT for an empty list, a zero or repeated id; FAILED_PRECONDITION when the
// store already holds a log, a hard state or a snapshot (nothing is written then).
absl::Status Bootstrap(WritableLogStorage& storage, const std::vector<raftpb::RaftMember>& members);
// The same, for members whose addresses the transport learns some other way (tests).
absl::Status Bootstrap(WritableLogStorage& storage, const std::vector<uint64_t>& ids);

}  // namespace shoal::raft

// The Raft log as the core sees it: entries in stable storage (LogStorage) followed by entries
// (and possibly a snapshot) not yet persisted ("unstable"), plus the commit and apply indexes.
// Private to raft/; driven by the core's single thread.
//
// Invariants: applied <= applying <= committed <= last index; an entry at or below `committed` is
// never replaced (an append that would replace one is a loss found: see Lost below).
//
// A read the storage fails (an I/O error, an entry found corrupt; not a compacted or unavailable
// index) is kept as storage_error() and answered as if the entry could not be had: terms do not
// match, slices are refused, no committed entries come out, and MaybeAppend changes nothing. The
// log's owner must stop using it then (Core::storage_error(); the node stops the member): what a
// step computed from a failed read is not to be sent or written.
//
// The same holds once the log is found to have lost entries it acknowledged or committed (Lost:
// its leader counts on entries it no longer holds, or replaces one of its committed entries):
// its disk is not what this member promised, and nothing more is decided from it.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/raft.pb.h"
#include "raft/storage.h"

namespace shoal::raft {

// Entries and a snapshot received but not yet written to stable storage.
class Unstable {
 public:
  std::optional<uint64_t> MaybeFirstIndex() const;
  std::optional<uint64_t> MaybeLastIndex() const;
  std::optional<uint64_t> MaybeTerm(uint64_t i) const;

  // Storage now holds everything up to (i, t), as the entries were when last taken
  // (MarkTaken): those replaced since are not on it, whatever their terms.
  void StableTo(uint64_t i, uint64_t t);
  // The entries are being written (a Ready took them): replacements are counted from here.
  void MarkTaken() { rewritten_from_ = kNone; }
  void StableSnapTo(uint64_t i);
  void Restore(raftpb::Snapshot s);
  // The pending snapshot, its data moved out (the metadata stays): once per snapshot, a CHECK.
  raftpb::Snapshot TakeSnapshot();
  void TruncateAndAppend(const std::vector<raftpb::Entry>& entries);
  // Entries in [lo, hi); requires offset <= lo <= hi <= offset + size.
  std::vector<raftpb::Entry> Slice(uint64_t lo, uint64_t hi) const;

  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  const std::vector<raftpb::Entry>& entries() const { return entries_; }
  const std::optional<raftpb::Snapshot>& snapshot() const { return snapshot_; }
  bool snapshot_taken() const { return snapshot_taken_; }

 private:
  std::optional<raftpb::Snapshot> snapshot_;
  bool snapshot_taken_ = false;  // its data went out with a Ready
  std::vector<raftpb::Entry> entries_;
  // Index of entries_[0].
  uint64_t offset_ = 0;
  static constexpr uint64_t kNone = ~uint64_t{0};
  // The lowest index replaced (truncated and written again) since the entries were last
  // taken; kNone if none. A peer that breaks Log Matching (a buggy or corrupted one) can send
  // a replacement whose last entry has the same index and term as the one being written:
  // the term check alone then took the new, unwritten entries for written ones, and the
  // member handed out as committed entries its disk did not hold (core_fuzzer, 2026-12-04).
  uint64_t rewritten_from_ = kNone;
};

class RaftLog {
 public:
  // Starts after the storage's last entry, with committed = applied = first index - 1.
  RaftLog(LogStorage* storage, uint64_t max_next_entries_bytes);

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t LastTerm() const;
  // Term of entry i. CompactedError below the first index - 1; 0 (and OK) above the last index
  // or for i = 0.
  absl::StatusOr<uint64_t> Term(uint64_t i) const;
  bool MatchTerm(uint64_t i, uint64_t term) const;
  // Whether a log ending at (last_index, term) is at least as up to date as this one (§5.4.1).
  bool IsUpToDate(uint64_t last_index, uint64_t term) const;

  // Follower side of MSG_APP: if the entry at `index` has `log_term`, appends `entries` after
  // it (truncating a conflicting suffix), advances commit to min(committed, last new index), and
  // returns the last new index; otherwise nullopt. When a suffix of the log was replaced,
  // `*replaced_from` (if given) is set to its first index, else left as it is.
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                      const std::vector<raftpb::Entry>& entries,
                                      uint64_t* replaced_from = nullptr);
  // Appends after truncating any overlapping suffix; returns the new last index. CHECKs that
  // nothing committed is replaced.
  uint64_t Append(const std::vector<raftpb::Entry>& entries);
  // The first index whose entry conflicts with (or is missing from) the log; 0 if none.
  uint64_t FindConflict(const std::vector<raftpb::Entry>& entries) const;
  // The largest index <= `index` whose term is <= `term`, with that term (used to skip whole
  // terms when a follower rejects an append).
  std::pair<uint64_t, uint64_t> FindConflictByTerm(uint64_t index, uint64_t term) const;

  // Entries from i to the end, at most max_bytes (at least one).
  absl::StatusOr<std::vector<raftpb::Entry>> EntriesFrom(uint64_t i, uint64_t max_bytes) const;
  absl::StatusOr<std::vector<raftpb::Entry>> Slice(uint64_t lo, uint64_t hi,
                                                   uint64_t max_bytes) const;
  // All entries (for tests and invariant checks).
  std::vector<raftpb::Entry> AllEntries() const;

  bool HasNextCommittedEntries() const;
  std::vector<raftpb::Entry> NextCommittedEntries() const;
  const std::vector<raftpb::Entry>& UnstableEntries() const { return unstable_.entries(); }
  bool HasPendingSnapshot() const { return unstable_.snapshot().has_value(); }
  // The pending snapshot (a CHECK once TakePendingSnapshot took its data), else the stored one.
  absl::StatusOr<raftpb::Snapshot> Snapshot() const;
  // The pending snapshot for a Ready, its data moved out: a snapshot is the whole state, and a
  // copy here was one more of it in memory while it is written. Once per snapshot.
  raftpb::Snapshot TakePendingSnapshot() { return unstable_.TakeSnapshot(); }
  // The latest snapshot's metadata (the pending one's, or the stored one's), without its data.
  absl::StatusOr<raftpb::SnapshotMetadata> SnapshotMetadata() const;

  // Leader: commits up to max_index if that entry is of `term` (only entries of the current
  // term are committed by counting replicas, §5.4.2). Returns whether commit advanced.
  bool MaybeCommit(uint64_t max_index, uint64_t term);
  void CommitTo(uint64_t to_commit);
  void AppliedTo(uint64_t i);
  // Entries up to i were handed out to be applied (NextCommittedEntries starts after them).
  void ApplyingTo(uint64_t i);
  void StableTo(uint64_t i, uint64_t t) { unstable_.StableTo(i, t); }
  void MarkUnstableTaken() { unstable_.MarkTaken(); }
  void StableSnapTo(uint64_t i) { unstable_.StableSnapTo(i); }
  // Replaces the log by a snapshot (follower receiving MSG_SNAP); moved in when it can be.
  void Restore(raftpb::Snapshot s);

  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }
  uint64_t applying() const { return applying_; }
  void set_committed(uint64_t c) { committed_ = c; }
  // The first read the storage failed, or the loss found (see above); OK while neither.
  const absl::Status& storage_error() const { return storage_error_; }
  // Keeps DATA_LOSS with `what` as storage_error() (unless an error is kept already) and
  // returns it.
  absl::Status Lost(absl::string_view what);
  // Whether storage_error() is such a loss (not a failed read).
  bool found_lost() const { return found_lost_; }

 private:
  absl::Status CheckOutOfBounds(uint64_t lo, uint64_t hi) const;
  // Keeps the storage's failed read of `what` as storage_error() (the first one) and returns it.
  absl::Status ReadFailed(absl::string_view what, const absl::Status& error) const;

  LogStorage* storage_;
  Unstable unstable_;
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
  // Highest index handed out for application (>= applied_).
  uint64_t applying_ = 0;
  uint64_t max_next_entries_bytes_;
  // Set by const readers: a failed read is a fact about the disk, not a change of the log.
  mutable absl::Status storage_error_;
  bool found_lost_ = false;
};

// Keeps a prefix of `entries` of at most max_bytes (at least one entry).
void LimitSize(std::vector<raftpb::Entry>* entries, uint64_t max_bytes);

}  // namespace shoal::raft

#include "raft/log.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace shoal::raft {

// ---- Unstable ----

std::optional<uint64_t> Unstable::MaybeFirstIndex() const {
  if (snapshot_) return snapshot_->metadata().index() + 1;
  return std::nullopt;
}

std::optional<uint64_t> Unstable::MaybeLastIndex() const {
  if (!entries_.empty()) return offset_ + entries_.size() - 1;
  if (snapshot_) return snapshot_->metadata().index();
  return std::nullopt;
}

std::optional<uint64_t> Unstable::MaybeTerm(uint64_t i) const {
  if (i < offset_) {
    if (snapshot_ && snapshot_->metadata().index() == i) return snapshot_->metadata().term();
    return std::nullopt;
  }
  std::optional<uint64_t> last = MaybeLastIndex();
  if (!last || i > *last) return std::nullopt;
  if (entries_.empty()) return snapshot_->metadata().term();  // i == snapshot index
  return entries_[i - offset_].term();
}

void Unstable::StableTo(uint64_t i, uint64_t t) {
  if (rewritten_from_ <= i) {
    // Replaced after they were taken: only what comes before is on the disk as it is here.
    if (rewritten_from_ <= offset_) return;
    i = rewritten_from_ - 1;
    std::optional<uint64_t> kept = MaybeTerm(i);
    if (!kept) return;
    t = *kept;
  }
  std::optional<uint64_t> term = MaybeTerm(i);
  // Only if the entry is still what was persisted: it may have been replaced meanwhile.
  if (term && *term == t && i >= offset_) {
    entries_.erase(entries_.begin(), entries_.begin() + (i + 1 - offset_));
    offset_ = i + 1;
  }
}

void Unstable::StableSnapTo(uint64_t i) {
  if (snapshot_ && snapshot_->metadata().index() == i) {
    snapshot_.reset();
    snapshot_taken_ = false;
  }
}

void Unstable::Restore(raftpb::Snapshot s) {
  offset_ = s.metadata().index() + 1;
  entries_.clear();
  snapshot_ = std::move(s);
  snapshot_taken_ = false;
}

raftpb::Snapshot Unstable::TakeSnapshot() {
  SHOAL_CHECK(snapshot_.has_value(), "no pending snapshot to take");
  SHOAL_CHECK(!snapshot_taken_, "the pending snapshot at ", snapshot_->metadata().index(),
              " was taken already (GetReady called again before Advance)");
  raftpb::Snapshot out;
  *out.mutable_metadata() = snapshot_->metadata();
  out.set_data(std::move(*snapshot_->mutable_data()));
  snapshot_->clear_data();
  snapshot_taken_ = true;
  return out;
}

void Unstable::TruncateAndAppend(const std::vector<raftpb::Entry>& entries) {
  const uint64_t after = entries.front().index();
  if (after == offset_ + entries_.size()) {
    entries_.insert(entries_.end(), entries.begin(), entries.end());
  } else if (after <= offset_) {
    // Replaces all unstable entries (and the storage's from `after` on, once persisted).
    rewritten_from_ = std::min(rewritten_from_, after);
    offset_ = after;
    entries_ = entries;
  } else {
    rewritten_from_ = std::min(rewritten_from_, after);
    entries_.resize(after - offset_);
    entries_.insert(entries_.end(), entries.begin(), entries.end());
  }
}

std::vector<raftpb::Entry> Unstable::Slice(uint64_t lo, uint64_t hi) const {
  SHOAL_CHECK(lo <= hi && lo >= offset_ && hi <= offset_ + entries_.size(), "unstable slice [", lo,
              ",", hi, ") out of [", offset_, ",", offset_ + entries_.size(), ")");
  return std::vector<raftpb::Entry>(entries_.begin() + (lo - offset_),
                                    entries_.begin() + (hi - offset_));
}

// ---- RaftLog ----

void LimitSize(std::vector<raftpb::Entry>* entries, uint64_t max_bytes) {
  if (entries->empty()) return;
  uint64_t size = (*entries)[0].ByteSizeLong();
  size_t keep = 1;
  for (; keep < entries->size(); ++keep) {
    size += (*entries)[keep].ByteSizeLong();
    if (size > max_bytes) break;
  }
  entries->resize(keep);
}

RaftLog::RaftLog(LogStorage* storage, uint64_t max_next_entries_bytes)
    : storage_(storage), max_next_entries_bytes_(max_next_entries_bytes) {
  const uint64_t first = storage_->FirstIndex();
  const uint64_t last = storage_->LastIndex();
  unstable_.set_offset(last + 1);
  committed_ = first - 1;
  applied_ = first - 1;
  applying_ = applied_;
}

uint64_t RaftLog::FirstIndex() const {
  if (auto i = unstable_.MaybeFirstIndex()) return *i;
  return storage_->FirstIndex();
}

uint64_t RaftLog::LastIndex() const {
  if (auto i = unstable_.MaybeLastIndex()) return *i;
  return storage_->LastIndex();
}

absl::StatusOr<uint64_t> RaftLog::Term(uint64_t i) const {
  const uint64_t dummy = FirstIndex() - 1;
  if (i < dummy || i > LastIndex()) return uint64_t{0};
  if (auto t = unstable_.MaybeTerm(i)) return *t;
  absl::StatusOr<uint64_t> t = storage_->Term(i);
  if (t.ok()) return t;
  if (IsCompacted(t.status()) || IsUnavailableIndex(t.status())) return t.status();
  return ReadFailed(absl::StrCat("the term of entry ", i), t.status());
}

absl::Status RaftLog::ReadFailed(absl::string_view what, const absl::Status& error) const {
  absl::Status failed(error.code() == absl::StatusCode::kOk ? absl::StatusCode::kInternal
                                                            : error.code(),
                      absl::StrCat("raft storage failed reading ", what, ": ", error.message()));
  if (storage_error_.ok()) storage_error_ = failed;
  return failed;
}

absl::Status RaftLog::Lost(absl::string_view what) {
  absl::Status lost = absl::DataLossError(absl::StrCat("raft log lost entries: ", what));
  if (storage_error_.ok()) {
    storage_error_ = lost;
    found_lost_ = true;
  }
  return lost;
}

uint64_t RaftLog::LastTerm() const {
  absl::StatusOr<uint64_t> t = Term(LastIndex());
  if (!t.ok() && !storage_error_.ok()) return 0;  // the owner stops on storage_error()
  SHOAL_CHECK(t.ok(), "term of the last entry unavailable: ", t.status().ToString());
  return *t;
}

bool RaftLog::MatchTerm(uint64_t i, uint64_t term) const {
  // Term() answers 0 outside [FirstIndex() - 1, LastIndex()]; that is no match, whatever term
  // a message names (an append after this member's last entry, naming term 0, matched).
  if (i + 1 < FirstIndex() || i > LastIndex()) return false;
  absl::StatusOr<uint64_t> t = Term(i);
  return t.ok() && *t == term;
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t term) const {
  const uint64_t our_term = LastTerm();
  return term > our_term || (term == our_term && last_index >= LastIndex());
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                             const std::vector<raftpb::Entry>& entries,
                                             uint64_t* replaced_from) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const uint64_t last_new = index + entries.size();
  const uint64_t conflict = FindConflict(entries);
  // A term that could not be read is no conflict: nothing is replaced on a failed read.
  if (!storage_error_.ok()) return std::nullopt;
  if (conflict != 0) {
    if (conflict <= committed_) {
      // The sender holds another entry where this member committed one: one of the two logs
      // is not what its member promised. Replacing a committed (perhaps applied) entry would
      // break state machine safety here; this member stops instead.
      absl::StatusOr<uint64_t> ours = Term(conflict);
      (void)Lost(absl::StrCat("the leader sends entry ", conflict, " of term ",
                              entries[conflict - index - 1].term(), " where this member committed ",
                              "one of term ", ours.ok() ? *ours : 0, " (commit ", committed_,
                              "): one of the two stores is not what its member acknowledged"));
      return std::nullopt;
    }
    if (replaced_from != nullptr && conflict <= LastIndex()) *replaced_from = conflict;
    const uint64_t offset = index + 1;
    std::vector<raftpb::Entry> rest(entries.begin() + (conflict - offset), entries.end());
    Append(rest);
  }
  CommitTo(std::min(committed, last_new));
  return last_new;
}

uint64_t RaftLog::Append(const std::vector<raftpb::Entry>& entries) {
  if (entries.empty()) return LastIndex();
  const uint64_t after = entries.front().index() - 1;
  SHOAL_CHECK(after >= committed_, "appending after ", after, " would replace committed entries ",
              "(commit ", committed_, ")");
  unstable_.TruncateAndAppend(entries);
  return LastIndex();
}

uint64_t RaftLog::FindConflict(const std::vector<raftpb::Entry>& entries) const {
  for (const raftpb::Entry& e : entries) {
    if (!MatchTerm(e.index(), e.term())) return e.index();
  }
  return 0;
}

std::pair<uint64_t, uint64_t> RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  for (; index > 0; --index) {
    absl::StatusOr<uint64_t> our = Term(index);
    if (!our.ok()) return {index, 0};
    if (*our <= term) return {index, *our};
  }
  return {0, 0};
}

absl::Status RaftLog::CheckOutOfBounds(uint64_t lo, uint64_t hi) const {
  SHOAL_CHECK(lo <= hi, "invalid slice ", lo, " > ", hi);
  const uint64_t first = FirstIndex();
  if (lo < first) return CompactedError();
  SHOAL_CHECK(hi <= LastIndex() + 1, "slice [", lo, ",", hi, ") out of bound [", first, ",",
              LastIndex(), "]");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<raftpb::Entry>> RaftLog::Slice(uint64_t lo, uint64_t hi,
                                                          uint64_t max_bytes) const {
  absl::Status bounds = CheckOutOfBounds(lo, hi);
  if (!bounds.ok()) return bounds;
  std::vector<raftpb::Entry> out;
  if (lo == hi) return out;
  const uint64_t offset = unstable_.offset();
  if (lo < offset) {
    const uint64_t stored_hi = std::min(hi, offset);
    absl::StatusOr<std::vector<raftpb::Entry>> stored = storage_->Entries(lo, stored_hi, max_bytes);
    if (!stored.ok()) {
      if (IsCompacted(stored.status())) return stored.status();
      return ReadFailed(absl::StrCat("entries [", lo, ",", stored_hi, ")"), stored.status());
    }
    out = std::move(*stored);
    if (out.size() < stored_hi - lo) return out;  // size limit reached
  }
  if (hi > offset) {
    std::vector<raftpb::Entry> tail = unstable_.Slice(std::max(lo, offset), hi);
    out.insert(out.end(), tail.begin(), tail.end());
  }
  LimitSize(&out, max_bytes);
  return out;
}

absl::StatusOr<std::vector<raftpb::Entry>> RaftLog::EntriesFrom(uint64_t i,
                                                                uint64_t max_bytes) const {
  if (i > LastIndex()) return std::vector<raftpb::Entry>{};
  return Slice(i, LastIndex() + 1, max_bytes);
}

std::vector<raftpb::Entry> RaftLog::AllEntries() const {
  absl::StatusOr<std::vector<raftpb::Entry>> all = EntriesFrom(FirstIndex(), UINT64_MAX);
  SHOAL_CHECK(all.ok(), "reading the whole log: ", all.status().ToString());
  return *all;
}

bool RaftLog::HasNextCommittedEntries() const {
  const uint64_t off = std::max(applying_ + 1, FirstIndex());
  return committed_ + 1 > off;
}

std::vector<raftpb::Entry> RaftLog::NextCommittedEntries() const {
  const uint64_t off = std::max(applying_ + 1, FirstIndex());
  if (committed_ + 1 <= off) return {};
  absl::StatusOr<std::vector<raftpb::Entry>> ents =
      Slice(off, committed_ + 1, max_next_entries_bytes_);
  if (!ents.ok() && !storage_error_.ok()) return {};  // the owner stops on storage_error()
  SHOAL_CHECK(ents.ok(), "reading committed entries: ", ents.status().ToString());
  return *ents;
}

absl::StatusOr<raftpb::Snapshot> RaftLog::Snapshot() const {
  if (unstable_.snapshot()) {
    SHOAL_CHECK(!unstable_.snapshot_taken(), "the pending snapshot's data went out with a Ready");
    return *unstable_.snapshot();
  }
  return storage_->Snapshot();
}

absl::StatusOr<raftpb::SnapshotMetadata> RaftLog::SnapshotMetadata() const {
  if (unstable_.snapshot()) return unstable_.snapshot()->metadata();
  return storage_->SnapshotMetadata();
}

bool RaftLog::MaybeCommit(uint64_t max_index, uint64_t term) {
  if (max_index <= committed_) return false;
  absl::StatusOr<uint64_t> t = Term(max_index);
  if (!t.ok() || *t != term) return false;
  CommitTo(max_index);
  return true;
}

void RaftLog::CommitTo(uint64_t to_commit) {
  if (committed_ >= to_commit) return;
  SHOAL_CHECK(to_commit <= LastIndex(), "commit ", to_commit, " is beyond the last index ",
              LastIndex(), ": the log is corrupt, truncated or lost");
  committed_ = to_commit;
}

void RaftLog::AppliedTo(uint64_t i) {
  if (i == 0) return;
  SHOAL_CHECK(i <= committed_ && i >= applied_, "applied ", i, " out of range [", applied_, ",",
              committed_, "]");
  applied_ = i;
  applying_ = std::max(applying_, i);
}

void RaftLog::ApplyingTo(uint64_t i) {
  SHOAL_CHECK(i <= committed_ && i >= applying_, "applying ", i, " out of range [", applying_, ",",
              committed_, "]");
  applying_ = i;
}

void RaftLog::Restore(raftpb::Snapshot s) {
  committed_ = s.metadata().index();
  unstable_.Restore(std::move(s));
}

}  // namespace shoal::raft

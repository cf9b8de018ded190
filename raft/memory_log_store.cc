#include "raft/memory_log_store.h"

#include "absl/strings/str_cat.h"

namespace shoal::raft {

MemoryLogStore::MemoryLogStore() { entries_.emplace_back(); }

absl::StatusOr<InitialState> MemoryLogStore::GetInitialState() {
  absl::MutexLock lock(&mu_);
  return InitialState{hard_state_, conf_state_};
}

raftpb::HardState MemoryLogStore::hard_state() const {
  absl::MutexLock lock(&mu_);
  return hard_state_;
}

void MemoryLogStore::SetHardState(const raftpb::HardState& hs) {
  absl::MutexLock lock(&mu_);
  hard_state_ = hs;
}

void MemoryLogStore::SetConfState(const raftpb::ConfState& cs) {
  absl::MutexLock lock(&mu_);
  conf_state_ = cs;
}

uint64_t MemoryLogStore::FirstIndexLocked() const { return entries_[0].index() + 1; }
uint64_t MemoryLogStore::LastIndexLocked() const {
  return entries_[0].index() + entries_.size() - 1;
}

uint64_t MemoryLogStore::FirstIndex() {
  absl::MutexLock lock(&mu_);
  return FirstIndexLocked();
}

uint64_t MemoryLogStore::LastIndex() {
  absl::MutexLock lock(&mu_);
  return LastIndexLocked();
}

absl::StatusOr<std::vector<raftpb::Entry>> MemoryLogStore::Entries(uint64_t lo, uint64_t hi,
                                                                   uint64_t max_bytes) {
  absl::MutexLock lock(&mu_);
  const uint64_t offset = entries_[0].index();
  if (lo <= offset) return CompactedError();
  if (hi > LastIndexLocked() + 1) return UnavailableIndexError();
  std::vector<raftpb::Entry> out;
  uint64_t size = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const raftpb::Entry& e = entries_[i - offset];
    size += e.ByteSizeLong();
    if (!out.empty() && size > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<uint64_t> MemoryLogStore::Term(uint64_t i) {
  absl::MutexLock lock(&mu_);
  const uint64_t offset = entries_[0].index();
  if (i < offset) return CompactedError();
  if (i - offset >= entries_.size()) return UnavailableIndexError();
  return entries_[i - offset].term();
}

absl::StatusOr<raftpb::Snapshot> MemoryLogStore::Snapshot() {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

absl::StatusOr<raftpb::SnapshotMetadata> MemoryLogStore::SnapshotMetadata() {
  absl::MutexLock lock(&mu_);
  return snapshot_.metadata();
}

absl::Status MemoryLogStore::ApplySnapshot(const raftpb::Snapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  if (snapshot_.metadata().index() >= snapshot.metadata().index()) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot at index ",
                                                      snapshot.metadata().index(),
                                                      " is not newer than the current one at ",
                                                      snapshot_.metadata().index()));
  }
  snapshot_ = snapshot;
  conf_state_ = snapshot.metadata().conf_state();
  entries_.clear();
  raftpb::Entry dummy;
  dummy.set_index(snapshot.metadata().index());
  dummy.set_term(snapshot.metadata().term());
  entries_.push_back(dummy);
  return absl::OkStatus();
}

absl::StatusOr<raftpb::Snapshot> MemoryLogStore::CreateSnapshot(uint64_t i,
                                                                const raftpb::ConfState* cs,
                                                                std::string data) {
  absl::MutexLock lock(&mu_);
  if (i <= snapshot_.metadata().index()) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot at index ", i,
                                                      " is not newer than the current one at ",
                                                      snapshot_.metadata().index()));
  }
  const uint64_t offset = entries_[0].index();
  if (i > LastIndexLocked()) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot index ", i, " is beyond the last entry ", LastIndexLocked()));
  }
  snapshot_.mutable_metadata()->set_index(i);
  snapshot_.mutable_metadata()->set_term(entries_[i - offset].term());
  if (cs != nullptr) conf_state_ = *cs;
  *snapshot_.mutable_metadata()->mutable_conf_state() = conf_state_;
  snapshot_.set_data(std::move(data));
  return snapshot_;
}

absl::Status MemoryLogStore::Compact(uint64_t compact_index) {
  absl::MutexLock lock(&mu_);
  const uint64_t offset = entries_[0].index();
  if (compact_index <= offset) {
    return absl::FailedPreconditionError(absl::StrCat("compact index ", compact_index,
                                                      " is already compacted (first index ",
                                                      offset + 1, ")"));
  }
  if (compact_index > LastIndexLocked()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "compact index ", compact_index, " is beyond the last entry ", LastIndexLocked()));
  }
  const uint64_t n = compact_index - offset;
  std::vector<raftpb::Entry> kept;
  kept.reserve(entries_.size() - n);
  raftpb::Entry dummy;
  dummy.set_index(entries_[n].index());
  dummy.set_term(entries_[n].term());
  kept.push_back(dummy);
  for (size_t k = n + 1; k < entries_.size(); ++k) kept.push_back(std::move(entries_[k]));
  entries_ = std::move(kept);
  return absl::OkStatus();
}

absl::Status MemoryLogStore::Append(const std::vector<raftpb::Entry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  const uint64_t first = FirstIndexLocked();
  const uint64_t last = entries.back().index();
  if (last < first) return absl::OkStatus();  // all compacted already
  size_t skip = 0;
  if (first > entries.front().index()) skip = first - entries.front().index();
  const uint64_t start = entries[skip].index();
  const uint64_t offset = start - entries_[0].index();
  if (offset > entries_.size()) {
    return absl::FailedPreconditionError(absl::StrCat("missing log entries: last index is ",
                                                      LastIndexLocked(), ", appending at ",
                                                      start));
  }
  entries_.resize(offset);
  for (size_t k = skip; k < entries.size(); ++k) entries_.push_back(entries[k]);
  return absl::OkStatus();
}

absl::Status MemoryLogStore::Save(const raftpb::HardState* hard_state,
                                  const std::vector<raftpb::Entry>& entries,
                                  const raftpb::Snapshot* snapshot, bool /*sync*/) {
  if (snapshot != nullptr) {
    absl::Status s = ApplySnapshot(*snapshot);
    if (!s.ok()) return s;
  }
  absl::Status s = Append(entries);
  if (!s.ok()) return s;
  if (hard_state != nullptr) SetHardState(*hard_state);
  return absl::OkStatus();
}

absl::StatusOr<raftpb::Snapshot> MemoryLogStore::SaveSnapshot(uint64_t i,
                                                              const raftpb::ConfState& cs,
                                                              std::string data) {
  return CreateSnapshot(i, &cs, std::move(data));
}

}  // namespace shoal::raft

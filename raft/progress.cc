#include "raft/progress.h"

#include <algorithm>

#include "common/check.h"

namespace shoal::raft {

void Inflights::Add(uint64_t index, uint64_t bytes) {
  SHOAL_CHECK(!Full(), "cannot add into a full inflights window");
  if (buffer_.empty()) buffer_.resize(capacity_);
  size_t next = start_ + count_;
  if (next >= capacity_) next -= capacity_;
  buffer_[next] = Inflight{index, bytes};
  ++count_;
  bytes_ += bytes;
}

void Inflights::FreeLE(uint64_t to) {
  if (count_ == 0) return;
  size_t idx = start_;
  size_t i = 0;
  for (; i < count_; ++i) {
    if (to < buffer_[idx].index) break;
    bytes_ -= buffer_[idx].bytes;
    if (++idx >= capacity_) idx -= capacity_;
  }
  count_ -= i;
  start_ = idx;
  if (count_ == 0) start_ = 0;
}

void Progress::ResetState(State s) {
  probe_sent = false;
  pending_snapshot = 0;
  state = s;
  inflights.Reset();
}

void Progress::BecomeProbe() {
  if (state == State::kSnapshot) {
    const uint64_t pending = pending_snapshot;
    ResetState(State::kProbe);
    next = std::max(match + 1, pending + 1);
  } else {
    ResetState(State::kProbe);
    next = match + 1;
  }
}

void Progress::BecomeReplicate() {
  ResetState(State::kReplicate);
  next = match + 1;
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  ResetState(State::kSnapshot);
  pending_snapshot = snapshot_index;
}

bool Progress::MaybeUpdate(uint64_t n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t match_hint) {
  if (state == State::kReplicate) {
    // A rejection of something already matched is stale.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // In probe state only the rejection of the latest probe counts.
  if (next - 1 != rejected) return false;
  next = std::max<uint64_t>(std::min(rejected, match_hint + 1), 1);
  probe_sent = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case State::kProbe:
      return probe_sent;
    case State::kReplicate:
      return inflights.Full();
    case State::kSnapshot:
      return true;
  }
  return true;
}

const char* Progress::StateName(State s) {
  switch (s) {
    case State::kProbe:
      return "probe";
    case State::kReplicate:
      return "replicate";
    case State::kSnapshot:
      return "snapshot";
  }
  return "?";
}

size_t VoterCount(const ProgressMap& progress) {
  size_t n = 0;
  for (const auto& [id, pr] : progress) n += pr.is_learner ? 0 : 1;
  return n;
}

size_t Quorum(const ProgressMap& progress) { return VoterCount(progress) / 2 + 1; }

uint64_t CommittedIndex(const ProgressMap& progress) {
  std::vector<uint64_t> matches;
  for (const auto& [id, pr] : progress) {
    if (!pr.is_learner) matches.push_back(pr.match);
  }
  if (matches.empty()) return UINT64_MAX;  // no voters: nothing constrains (never happens live)
  std::sort(matches.begin(), matches.end(), std::greater<uint64_t>());
  return matches[matches.size() / 2];
}

VoteResult TallyVotes(const ProgressMap& progress, const std::map<uint64_t, bool>& votes) {
  size_t granted = 0, rejected = 0, voters = 0;
  for (const auto& [id, pr] : progress) {
    if (pr.is_learner) continue;
    ++voters;
    auto it = votes.find(id);
    if (it == votes.end()) continue;
    (it->second ? granted : rejected)++;
  }
  const size_t q = voters / 2 + 1;
  if (granted >= q) return VoteResult::kWon;
  if (rejected >= voters - q + 1) return VoteResult::kLost;
  return VoteResult::kPending;
}

}  // namespace shoal::raft

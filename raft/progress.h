// What a leader knows of each follower's log (Progress) and the quorum arithmetic over them.
// Private to raft/; driven by the core's single thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shoal::raft {

// Indexes of MSG_APP messages sent but not yet acknowledged, bounded so a slow follower does
// not make the leader buffer without limit: at most `capacity` messages and, when `max_bytes`
// is not 0, `max_bytes` of entry data (the window is full once it holds that much; a single
// message may take it over, so that entries of any size get through). A ring buffer.
class Inflights {
 public:
  explicit Inflights(size_t capacity, uint64_t max_bytes = 0)
      : capacity_(capacity), max_bytes_(max_bytes) {}

  // Records a message whose last entry is `index`, carrying `bytes` of entry data. Requires
  // !Full() and increasing indexes.
  void Add(uint64_t index, uint64_t bytes = 0);
  // Frees every message with last index <= `to`.
  void FreeLE(uint64_t to);
  // Frees the oldest message (after a heartbeat response shows the follower is alive but the
  // window stayed full: its messages were probably lost).
  void FreeFirstOne() {
    if (count_ > 0) FreeLE(buffer_[start_].index);
  }
  bool Full() const { return count_ == capacity_ || (max_bytes_ > 0 && bytes_ >= max_bytes_); }
  size_t Count() const { return count_; }
  uint64_t Bytes() const { return bytes_; }
  void Reset() {
    count_ = 0;
    start_ = 0;
    bytes_ = 0;
  }

 private:
  struct Inflight {
    uint64_t index = 0;
    uint64_t bytes = 0;
  };
  size_t capacity_;
  uint64_t max_bytes_;
  size_t start_ = 0;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
  std::vector<Inflight> buffer_;
};

class Progress {
 public:
  // How the leader sends to this follower.
  enum class State {
    // Unsure where the follower's log ends: one MSG_APP per heartbeat until it answers.
    kProbe,
    // The follower is in sync: pipeline MSG_APPs up to the in-flight limit.
    kReplicate,
    // Sending a snapshot: nothing else until it is reported done.
    kSnapshot,
  };

  Progress(uint64_t next, size_t max_inflight, bool is_learner, uint64_t max_inflight_bytes = 0)
      : next(next), inflights(max_inflight, max_inflight_bytes), is_learner(is_learner) {}

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // On an acknowledgement up to n: returns whether match advanced.
  bool MaybeUpdate(uint64_t n);
  // After sending entries up to n in replicate state.
  void OptimisticUpdate(uint64_t n) { next = n + 1; }
  // On a rejection of the append at `rejected`, with the follower's hint: returns whether next
  // moved back (false for a stale rejection).
  bool MaybeDecrTo(uint64_t rejected, uint64_t match_hint);
  // Whether sending must wait (probe already sent, window full, or snapshot in flight).
  bool IsPaused() const;

  static const char* StateName(State s);

  uint64_t match = 0;
  uint64_t next;
  State state = State::kProbe;
  // In kSnapshot: the index of the snapshot being sent.
  uint64_t pending_snapshot = 0;
  // Heard from within the last election timeout (check-quorum).
  bool recent_active = false;
  // In kProbe: a probe was sent since the last heartbeat response.
  bool probe_sent = false;
  // The highest commit index an append sent to this follower let it learn (the message's
  // commit, capped at the last index it carried). A commit the follower has not been told is
  // sent once its in-flight appends are acknowledged, or rides on the next append.
  uint64_t commit_sent = 0;
  // The highest commit index this follower said it knows (its responses carry it).
  uint64_t commit_known = 0;
  Inflights inflights;
  bool is_learner;

 private:
  void ResetState(State s);
};

// The members' progress, keyed by member id (ordered: deterministic iteration).
using ProgressMap = std::map<uint64_t, Progress>;

// The largest index replicated on a majority of voters.
uint64_t CommittedIndex(const ProgressMap& progress);

// Result of counting votes among voters.
enum class VoteResult { kPending, kWon, kLost };
VoteResult TallyVotes(const ProgressMap& progress, const std::map<uint64_t, bool>& votes);

// Number of voters, and how many make a majority.
size_t VoterCount(const ProgressMap& progress);
size_t Quorum(const ProgressMap& progress);

}  // namespace shoal::raft

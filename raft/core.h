// The Raft consensus core: a deterministic state machine with no threads, clock or I/O.
//
// Inputs: Tick() (the passage of time, in ticks), Step(message) (a message from a peer),
// Propose/ProposeConfChange/ReadIndex/TransferLeader/Campaign (local requests). Output: a Ready
// batch, taken with GetReady(), which the caller must handle in this order:
//   0. (may) send early_messages at once;
//   1. persist the snapshot (if any), the entries and the hard state, durably (one atomic,
//      synced write when must_sync);
//   2. send the messages;
//   3. apply the snapshot and then the committed entries to the state machine, calling
//      ApplyConfChange for each conf-change entry (committed entries may also be applied
//      before step 1: see below);
//   4. call Advance(ready).
// Because every message leaves after the state it depends on is durable, a leader counts its
// own copy of an entry towards the commit quorum only once Advance reports it persisted.
//
// Persisting asynchronously: between GetReady and Advance (while the Ready is being written)
// the caller may keep calling Step, Tick, Propose, ReadIndex and the other inputs; what they
// produce waits for the next Ready, except the messages TakeEarlyMessages returns, which may
// leave at once, and the entries TakeCommittedEntries returns, which may be applied at once.
// GetReady must not be called again before Advance.
//
// Committed entries may be applied before this member's own write of them completes: committed
// means durable on a quorum, whoever crashes. What must wait for the local write is anything
// durable built on them: a snapshot of the state machine must not cover entries this member
// has not persisted. This is how the node loop
// keeps batching proposals and receiving acknowledgements while an fsync is under way, and how
// the simulation drives the core too.
//
// Features: randomized election timeouts, pre-vote, check-quorum with leader leases (a
// follower that heard from a leader within the election timeout ignores disruptive votes),
// pipelined replication with a per-follower in-flight window and probe/replicate/snapshot
// progress states, fast backtracking on rejected appends, commitment only by counting entries
// of the current term, snapshots, single-server membership changes with learners, leadership
// transfer, and ReadIndex linearizable reads.
//
// Thread-safety: none. One thread (or one strand) drives a Core.
//
//   Core::Create(config) -> core
//   loop: core->Tick() every tick; core->Step(m) for each message received;
//         if (core->HasReady()) { Ready rd = core->GetReady(); ...handle...; core->Advance(rd); }
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/raft.pb.h"
#include "raft/log.h"
#include "raft/progress.h"
#include "raft/storage.h"

namespace shoal::raft {

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader };
const char* RoleName(Role role);

struct Config {
  // This member's id; never 0, never reused.
  uint64_t id = 0;
  // Ticks without hearing from a leader before a follower campaigns. The actual timeout is
  // randomized in [election_tick, 2 * election_tick).
  int election_tick = 10;
  // Ticks between a leader's heartbeats.
  int heartbeat_tick = 1;
  // Stable storage (not owned; must outlive the core).
  LogStorage* storage = nullptr;
  // The last index the application has applied (after a restart); 0 = none.
  uint64_t applied = 0;
  // Largest MSG_APP payload in bytes (at least one entry is always sent).
  uint64_t max_size_per_msg = 1 << 20;
  // Largest entry a proposal may carry, in bytes (1.5 MiB, etcd's and swarmkit's request
  // limit); larger ones fail with INVALID_ARGUMENT. Together with max_size_per_msg this bounds
  // every message, which must fit what a member's gRPC server accepts (see GrpcTransport).
  uint64_t max_entry_bytes = 3 << 19;
  // A leader drops proposals (RESOURCE_EXHAUSTED) while this many bytes of entries it
  // appended wait to commit, so that a stalled quorum (slow disks, a partition before
  // check-quorum acts) cannot make it buffer without bound; one proposal is always taken when
  // nothing waits. 0: no limit. Counted as etcd's raft does: entry data only, from this
  // leader's term on.
  uint64_t max_uncommitted_bytes = 64 << 20;
  // Largest batch of committed entries in one Ready, in bytes.
  uint64_t max_committed_size_per_ready = 64 << 20;
  // In-flight MSG_APPs per follower in replicate state.
  size_t max_inflight_msgs = 256;
  // And in-flight entry bytes per follower (0: no limit): without it a leader would hold up to
  // max_inflight_msgs * max_size_per_msg (256 MiB) in its send queue and gRPC's buffers for
  // each follower that is slow but alive, as etcd's raft bounds with MaxInflightBytes.
  uint64_t max_inflight_bytes = 32 << 20;
  // A member joins as a learner (ConfChange TYPE_ADD_LEARNER_NODE) and a leader promotes it
  // (TYPE_ADD_NODE) only once it has caught up: the leader is replicating to it and its log
  // ends at most this many entries before the commit index. A voter that cannot acknowledge
  // yet would count against the quorum (three voters and a lagging fourth tolerate no
  // failure), as would one that is down. Earlier promotions, and new members proposed as
  // voters directly, fail with FAILED_PRECONDITION.
  uint64_t max_learner_lag = 1000;
  // A leader that hears from no quorum for an election timeout steps down; followers then
  // also ignore votes while they hear from a leader.
  bool check_quorum = true;
  // Elections start with a pre-vote round that changes no term, so a partitioned member that
  // rejoins cannot disrupt a working leader.
  bool pre_vote = true;
  // Seed of the election-timeout randomization; 0 = derived from the id.
  uint64_t random_seed = 0;
  // A leader's next write of entries waits while its own log is durable beyond every voter
  // follower's acknowledgement (LeaderWriteMayWait): it then writes what came meanwhile in
  // one batch. Off: it writes whenever its last write is done.
  bool hold_leader_writes = true;
};

struct SoftState {
  uint64_t leader = 0;
  Role role = Role::kFollower;
  bool operator==(const SoftState& o) const { return leader == o.leader && role == o.role; }
  bool operator!=(const SoftState& o) const { return !(*this == o); }
};

// A linearizable read can be served once the local applied index reaches `index`.
struct ReadState {
  uint64_t index = 0;
  std::string request_ctx;
};

struct Ready {
  // Set when leader or role changed.
  std::optional<SoftState> soft_state;
  // Set when the hard state changed; persist it with the entries.
  std::optional<raftpb::HardState> hard_state;
  // Reads that became serviceable.
  std::vector<ReadState> read_states;
  // Entries to persist before sending messages.
  std::vector<raftpb::Entry> entries;
  // Snapshot to persist and apply.
  std::optional<raftpb::Snapshot> snapshot;
  // Entries to apply: committed, so durable on a quorum, whether or not this member has
  // persisted them yet (see above).
  std::vector<raftpb::Entry> committed_entries;
  // Messages that may leave before this Ready is persisted, once the term and vote are
  // durable: a leader's appends and heartbeats (Raft thesis 10.2.1: the leader writes its log
  // in parallel with its followers; it counts its own copy only after Advance), and a
  // follower's heartbeat responses (they say nothing of its log).
  std::vector<raftpb::Message> early_messages;
  // Messages to send after persisting.
  std::vector<raftpb::Message> messages;
  // Whether the write in step 1 must be synced (term, vote or entries changed).
  bool must_sync = false;
};

// Terms and indexes above this are refused in peers' messages: no cluster reaches them.
inline constexpr uint64_t kMaxTermOrIndex = uint64_t{1} << 62;

// Whether `m`, received from the network by member `self`, is a message a correct peer can
// send: a type that travels between members (a member's own timer and transport inputs, such
// as MSG_CHECK_QUORUM, never do), a sender, this member as its recipient, a term where one is
// required, the entries its type needs, appended entries that follow on one another with
// terms that never fall, a snapshot with a membership. INVALID_ARGUMENT naming what is wrong
// otherwise. A buggy or older member must not be able to crash, depose or corrupt another.
// Also refused: terms and indexes above kMaxTermOrIndex, appends matching at term 0 after
// index 0 or carrying entries of term 0, membership-change entries that do not parse.
// (raft/fuzz/core_fuzzer.cc drives a core with arbitrary peer messages.)
absl::Status CheckPeerMessage(const raftpb::Message& m, uint64_t self);

class Core {
 public:
  // INVALID_ARGUMENT for a bad config; DATA_LOSS when the stored hard state contradicts the
  // stored log (commit beyond the last entry).
  static absl::StatusOr<std::unique_ptr<Core>> Create(const Config& config);

  // Advances the logical clock by one tick.
  void Tick();

  // Starts an election now (pre-vote first when enabled).
  void Campaign();

  // Proposes data to be appended. UNAVAILABLE when there is no leader to take it (or a
  // leadership transfer is under way), FAILED_PRECONDITION when this member was removed. A
  // proposal accepted here can still be lost (leader change); callers learn of success only
  // when the entry is applied.
  absl::Status Propose(std::string data);

  // Proposes a membership change. Only one may be pending at a time: a second one is
  // FAILED_PRECONDITION until the first is applied (and, on a new leader, until every entry it
  // inherited from earlier terms is applied: one of them may be a membership change). Ids are never reused: adding, updating or removing a member that
  // was removed is FAILED_PRECONDITION.
  absl::Status ProposeConfChange(const raftpb::ConfChange& cc);

  // Feeds a message from a peer (or a local one). Stale messages are ignored (OK).
  // UNAVAILABLE when a forwarded proposal or read cannot be served (no leader).
  absl::Status Step(const raftpb::Message& m);
  // The same for a message the caller gives up: a snapshot in it (the whole state) is moved
  // into the log instead of copied.
  absl::Status Step(raftpb::Message&& m);
  // Feeds a message that came from the network: CheckPeerMessage first (INVALID_ARGUMENT,
  // and nothing changes, for one no correct peer sends), then Step (which has INVALID_ARGUMENT
  // answers of its own: callers that count malformed messages call CheckPeerMessage apart).
  absl::Status StepPeer(const raftpb::Message& m);

  // Requests a linearizable read identified by `ctx` (unique per request); a ReadState with the
  // same ctx appears in a later Ready. UNAVAILABLE without a leader.
  absl::Status ReadIndex(std::string ctx);

  // Asks the leader to hand leadership to `transferee`.
  void TransferLeader(uint64_t transferee);

  // Applies a committed membership change; returns the new membership (with every member
  // removed so far). The caller persists it with its applied state.
  raftpb::ConfState ApplyConfChange(const raftpb::ConfChange& cc);

  // Transport feedback.
  void ReportUnreachable(uint64_t id);
  // The transport lost its connection to the current leader (its process died, or the network
  // to it broke). A follower then stops honouring the leader's lease and campaigns (pre-vote
  // first) within a few ticks instead of waiting out its randomized election timeout. A live
  // leader's next heartbeat restores everything; a pre-vote succeeds only where a majority lost
  // the leader too, so a false alarm disrupts nothing.
  void LeaderUnreachable();
  void ReportSnapshot(uint64_t id, bool failed);

  bool HasReady() const;
  Ready GetReady();
  void Advance(const Ready& ready);
  // The messages produced since the last GetReady that may leave before that Ready, or the
  // next, is persisted (see Ready::early_messages); they are removed from the next Ready. May
  // be called between GetReady and Advance, and while no Ready is out (a member busy writing
  // something else, such as a snapshot). Empty unless the term and vote are durable.
  std::vector<raftpb::Message> TakeEarlyMessages();
  // Between GetReady and Advance, or while a leader's next Ready waits (LeaderWriteMayWait):
  // the entries committed since (beyond those handed out by the last Ready), to be applied at
  // once and in order, before anything else is stepped; they count as applied. Empty while a
  // snapshot is pending.
  std::vector<raftpb::Entry> TakeCommittedEntries();
  // Whether this leader's next Ready may wait (Config::hold_leader_writes), taking only
  // TakeEarlyMessages and TakeCommittedEntries meanwhile: nothing in it would wait for its
  // write but entries to write and the commit index (no other message, read state or change of
  // term, vote or role), and every voter follower's acknowledged index is below the last entry
  // this leader has made durable in its term. Why: an entry commits once a quorum holds it;
  // while no follower has caught up with the leader's disk, the leader's next write would
  // finish before any follower's acknowledgement could count it, so it may as well start when
  // the first such acknowledgement arrives and take everything proposed until then. At 64
  // clients on one disk the leader made about as many synced writes as each follower (6,675
  // against 6,348 in one 9 s run); waiting, 12-18% fewer than each follower, and larger, and
  // throughput rose 8.9% (leader CPU per write -11%). It waits only while an acknowledgement is due: with one client each
  // proposal's entry is acknowledged before the next arrives, and a leader whose followers are
  // all gone commits nothing either way (it steps down at check-quorum). A new leader's first
  // write (its empty entry) never waits. Call only while no Ready is out.
  bool LeaderWriteMayWait() const;

  // Observers.
  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t vote() const { return vote_; }
  uint64_t leader() const { return lead_; }
  Role role() const { return role_; }
  uint64_t lead_transferee() const { return lead_transferee_; }
  const RaftLog& log() const { return log_; }
  const ProgressMap& progress() const { return progress_; }
  raftpb::HardState hard_state() const;
  raftpb::ConfState conf_state() const;
  // Whether this member was removed from the cluster: it applied its own removal, restored a
  // snapshot that records it, or was told by a member that applied it (MSG_REMOVED: it was
  // away when it was removed). A removed member never campaigns again, and its proposals and
  // reads fail with FAILED_PRECONDITION; it still answers the members that have not applied
  // its removal yet. Its owner should stop it (the manager: go on as a worker).
  bool removed() const { return self_removed_; }
  // A leader removed or demoted that still leads until a majority of the remaining voters
  // knows the commit index (StartLeaving): it takes no proposals, reads or transfers meanwhile.
  bool leaving() const { return leaving_commit_ != 0; }
  // The first read the storage failed (an I/O error, an entry found corrupt), or DATA_LOSS
  // once the log is found to lack what this member acknowledged or committed (its leader
  // counts on entries it no longer holds, or sends another entry where it committed one: a
  // store truncated or restored from an older copy, a disk that lost synced writes; etcd
  // panics there), OK while neither. Once set, what the core produced since is not to be sent
  // or written: its owner checks after each call and stops the member, as after a failed write. The core then takes
  // nothing more: Step (and so Propose, ReadIndex, ...) returns this error, Tick and
  // LeaderUnreachable do nothing.
  const absl::Status& storage_error() const { return log_.storage_error(); }
  int randomized_election_timeout() const { return randomized_election_timeout_; }

 private:
  enum class CampaignType { kPreElection, kElection, kTransfer };
  // Campaigns unless this member leads, cannot vote, or has a membership change to apply.
  void Hup(CampaignType type);

  explicit Core(const Config& config);
  absl::Status Init(const Config& config);

  void BecomeFollower(uint64_t term, uint64_t lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(uint64_t term);
  void ResetRandomizedElectionTimeout();

  void TickElection();
  void TickHeartbeat();
  bool PastElectionTimeout() const { return election_elapsed_ >= randomized_election_timeout_; }
  bool Promotable() const;
  void DoCampaign(CampaignType type);
  VoteResult Poll(uint64_t id, raftpb::MessageType type, bool granted);
  bool HasUnappliedConfChanges() const;
  // A member's progress as the leader starts tracking it, sending from `next`.
  Progress NewProgress(uint64_t next, bool learner) const {
    return Progress(next, max_inflight_, learner, max_inflight_bytes_);
  }
  // Whether a leader takes the membership change in `data` (a serialized ConfChange).
  absl::Status CheckConfChange(const std::string& data) const;
  // The members removed so far, and whether this member is one, from a stored membership.
  void SetRemoved(const raftpb::ConfState& cs);
  void BecomeRemoved();
  // A message from a member removed from the cluster (not a local input naming it).
  bool FromRemovedMember(const raftpb::Message& m) const;

  absl::Status StepLeader(const raftpb::Message& m);
  absl::Status StepCandidate(const raftpb::Message& m);
  absl::Status StepFollower(const raftpb::Message& m);
  absl::Status StepLocalVote(const raftpb::Message& m);

  void HandleAppendEntries(const raftpb::Message& m);
  void HandleHeartbeat(const raftpb::Message& m);
  void HandleSnapshot(const raftpb::Message& m);
  bool Restore(const raftpb::Snapshot& s);
  // The snapshot of the message Step(Message&&) is stepping, which Restore may move from.
  raftpb::Snapshot* movable_snapshot_ = nullptr;
  void HandleAppendResponse(const raftpb::Message& m, Progress& pr);
  void HandleHeartbeatResponse(const raftpb::Message& m, Progress& pr);

  void Send(raftpb::Message m);
  bool MaybeSendAppend(uint64_t to, bool send_if_empty);
  void SendAppend(uint64_t to) { MaybeSendAppend(to, true); }
  void SendHeartbeat(uint64_t to, const std::string& ctx);
  void SendTimeoutNow(uint64_t to);
  void BcastAppend();
  // After the commit index advanced: tells each follower, except those with appends in flight
  // (their next acknowledgement or append carries it; see HandleAppendResponse).
  void BcastCommit();
  void BcastHeartbeat();
  void AppendEntries(std::vector<raftpb::Entry> entries);
  bool MaybeCommit();
  // Takes committed entries handed out off uncommitted_bytes_.
  void ReduceUncommitted(const std::vector<raftpb::Entry>& committed);
  bool QuorumActive();
  void AbortLeaderTransfer() { lead_transferee_ = 0; }
  bool CommittedEntryInCurrentTerm() const;
  void SendReadIndexResponse(const raftpb::Message& req);
  void RespondToReadIndex(const raftpb::Message& req, uint64_t index);
  // A leader leaving the voters (removed, or demoted): goes on leading until a majority of the
  // remaining voters knows the commit index (see core.cc).
  void StartLeaving(bool removed);
  // Steps down (and counts as removed) once leaving is done; whether it did.
  bool MaybeFinishLeaving();
  // Answers a read request once an entry of this term is committed.
  void ServeReadIndex(const raftpb::Message& m);
  void ReleasePendingReadIndexMessages();
  void UpdateSelfProgress();
  // Whether a leader's appends may leave before the pending write: its term and vote are those
  // last persisted.
  bool CanSendEarly() const;
  // Moves the messages that may leave early out of msgs_.
  std::vector<raftpb::Message> ExtractEarlyMessages();
  // A leader's appends built earlier in this batch carry the commit index as it was then: they
  // are brought up to the current one before they leave.
  void RefreshAppendCommits();
  // Drops the acknowledgements not yet handed out whose index is at or past the first entry a
  // step replaced (0: the whole log, by a snapshot).
  void DropAcknowledgementsFrom(uint64_t first_replaced);
  // Of a run of acknowledgements to one leader in one term, only the highest says anything
  // the leader needs (it frees every append up to it): the others are dropped.
  void CoalesceAppendResponses();

  // Pending ReadIndex requests awaiting a quorum of heartbeat acknowledgements.
  struct ReadIndexStatus {
    raftpb::Message req;
    uint64_t index = 0;
    std::set<uint64_t> acks;
  };

  uint64_t id_;
  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  uint64_t lead_ = 0;
  Role role_ = Role::kFollower;
  bool is_learner_ = false;
  // Members removed from the cluster (ids are never reused), and whether this is one.
  std::set<uint64_t> removed_;
  bool self_removed_ = false;

  RaftLog log_;
  ProgressMap progress_;
  std::map<uint64_t, bool> votes_;
  std::vector<raftpb::Message> msgs_;

  uint64_t max_msg_size_;
  uint64_t max_entry_bytes_;
  uint64_t max_uncommitted_bytes_;
  // Bytes of entry data this leader appended that have not been handed out as committed.
  uint64_t uncommitted_bytes_ = 0;
  size_t max_inflight_;
  uint64_t max_inflight_bytes_;
  uint64_t max_learner_lag_;
  bool check_quorum_;
  bool pre_vote_;
  bool hold_leader_writes_;
  int heartbeat_timeout_;
  int election_timeout_;
  int randomized_election_timeout_ = 0;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  std::mt19937_64 rng_;

  uint64_t lead_transferee_ = 0;
  // A leader leaving the voters: the commit index a majority of the remaining voters must know
  // before it steps down (0: not leaving), and whether it was removed (else demoted).
  uint64_t leaving_commit_ = 0;
  bool leaving_removed_ = false;
  uint64_t pending_conf_index_ = 0;
  // The index of this leader's first entry of its term (the empty one BecomeLeader appends).
  uint64_t leader_term_start_ = 0;

  std::map<std::string, ReadIndexStatus> read_index_pending_;
  std::deque<std::string> read_index_queue_;
  std::vector<raftpb::Message> pending_read_index_messages_;
  std::vector<ReadState> read_states_;

  // What the last Ready reported, to tell what changed.
  SoftState prev_soft_;
  raftpb::HardState prev_hard_;
};

}  // namespace shoal::raft

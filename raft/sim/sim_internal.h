// The simulation's insides (sim.h is its interface), shared by its three files: sim.cc (the
// members, their Readies, the network and the run), sim_faults.cc (what goes wrong, the
// membership driver, the clients) and sim_invariants.cc (the checks made after every step).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "raft/core.h"
#include "raft/memory_log_store.h"
#include "raft/sim/linearizability.h"
#include "raft/sim/sim.h"

namespace shoal::raft::sim::internal {

using raftpb::Message;

// Thrown by nothing: failures are recorded and the run stops at the next check.
struct Failure {
  bool failed = false;
  std::string what;
};

// A member's disk as its core reads it. In some seeds a read now and then fails, as a disk
// returning EIO (or an entry found corrupt) does; only reads made while the member steps or
// ticks fail (armed), so that the checks' own reads of the log never do. The member then stops
// before anything computed from the failed read leaves, as the node stops it
// (Node::ReadFailed): here it crashes, keeping what it wrote, and restarts later.
class FlakyReads final : public LogStorage {
 public:
  FlakyReads(MemoryLogStore* disk, std::function<bool()> fail)
      : disk_(disk), fail_(std::move(fail)) {}
  void set_armed(bool armed) { armed_ = armed; }

  absl::StatusOr<InitialState> GetInitialState() override { return disk_->GetInitialState(); }
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override {
    if (armed_ && fail_()) return absl::InternalError("IO error: Input/output error (injected)");
    return disk_->Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<uint64_t> Term(uint64_t i) override {
    if (armed_ && fail_()) return absl::InternalError("IO error: Input/output error (injected)");
    return disk_->Term(i);
  }
  uint64_t FirstIndex() override { return disk_->FirstIndex(); }
  uint64_t LastIndex() override { return disk_->LastIndex(); }
  absl::StatusOr<raftpb::Snapshot> Snapshot() override { return disk_->Snapshot(); }
  absl::StatusOr<raftpb::SnapshotMetadata> SnapshotMetadata() override {
    return disk_->SnapshotMetadata();
  }

 private:
  MemoryLogStore* disk_;
  std::function<bool()> fail_;
  bool armed_ = false;
};

struct InFlight {
  int64_t deliver_at;
  uint64_t seq;
  Message msg;
  // The member that sent it: not msg.from() for a forwarded transfer or read, which names the
  // member that asked.
  uint64_t sender;
};

// A client's request as it reaches a member: a put or a get through the log (`data` is the
// entry), or a get through ReadIndex.
struct ClientRequest {
  int client;
  size_t history_index;
  std::string req;
  bool read_index;
  std::string data;
};

// A client's operation in flight.
struct PendingOp {
  size_t history_index;
  uint64_t node;
  int64_t deadline;  // tick
};

struct SimNode {
  uint64_t id = 0;
  bool up = false;
  bool removed = false;  // taken out of the membership: stopped for good after a grace
  int64_t removed_at = 0;  // when it learned it
  std::unique_ptr<MemoryLogStore> disk;
  std::unique_ptr<FlakyReads> reads;  // the core's view of `disk`; outlives the core
  std::unique_ptr<Core> core;
  // The state machine: key -> value, and the request ids applied (duplicates are skipped).
  std::map<std::string, std::string> kv;
  std::set<std::string> applied_requests;
  uint64_t applied = 0;
  raftpb::ConfState conf;
  // Request id -> history index, for writes and log reads proposed here.
  std::map<std::string, size_t> proposed;
  // ReadIndex requests: ctx -> history index; then (index, ctx) once the read state arrived.
  std::map<std::string, size_t> reads_waiting;
  std::vector<std::pair<uint64_t, std::string>> reads_ready;
  uint64_t last_snapshot = 0;
  // A Ready whose write is under way (the node loop's writer thread): persisted at
  // write_done_at, while the core goes on stepping; lost if the member crashes first.
  std::optional<Ready> writing;
  size_t applied_early = 0;
  int64_t write_done_at = 0;
  // A hard state whose only change was the commit index: as the node loop does, it is not
  // written on its own but rides along with the next synced write, and a crash loses it.
  std::optional<raftpb::HardState> unsaved_hs;
  // Its clock's rate against the simulation's: a slow member misses a tick now and then, a
  // fast one ticks twice (-1, 0, +1). Timers of real machines drift apart; elections and
  // check-quorum must not depend on them agreeing.
  int clock_skew = 0;
  // A follower writes in place, on its loop (node.cc): while a stalled write lasts it steps
  // nothing, ticks not and answers nobody. Until this tick.
  int64_t blocked_until = 0;
  // Its whole process paused (a GC pause, swapped out, SIGSTOP) until paused_until: no Step,
  // no Tick, no Ready handled, no write completed. What reaches it meanwhile waits in its
  // socket buffers, up to inbox_room messages (a full buffer: the rest is lost), and the
  // clients' requests wait too; it takes them all in one batch when it resumes, as the node
  // loop takes its queued inputs, leader or not as it was when it paused.
  bool paused = false;
  int64_t paused_until = 0;
  size_t inbox_room = 0;
  std::vector<InFlight> inbox;
  std::vector<ClientRequest> queued_requests;
};

class Sim {
 public:
  Sim(uint64_t seed, const SimOptions& opts)
      : seed_(seed), opts_(opts), rng_(seed), read_rng_(seed ^ 0x5eedf00dd15cull) {}

  SimResult Run();

 private:
  // ---- randomness ----
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  uint64_t Uniform(uint64_t lo, uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Uniform(0, v.size() - 1)];
  }

  // ---- tracing and failure ----
  template <typename... Args>
  void Trace(const Args&... args) {
    if (opts_.trace_lines <= 0) return;
    trace_.push_back(absl::StrCat("t=", now_, " ", args...));
    if (trace_.size() > static_cast<size_t>(opts_.trace_lines)) trace_.pop_front();
  }
  template <typename... Args>
  void Fail(const Args&... args) {
    if (failure_.failed) return;
    failure_.failed = true;
    failure_.what = absl::StrCat("t=", now_, ": ", args...);
    Trace("FAILURE: ", failure_.what);
  }

  // ---- members ----
  SimNode& Node(uint64_t id) { return nodes_.at(id); }
  int ClockSkew() { return clock_skew_ ? static_cast<int>(Uniform(0, 2)) - 1 : 0; }
  // Inside a stalled in-place write (SimNode::blocked_until), up to and including the tick
  // it completes in.
  bool Blocked(const SimNode& n) const { return n.writing && n.blocked_until >= now_; }
  // After `n` stepped or ticked: whether its storage failed a read meanwhile; it is then
  // stopped (crashed) before anything it computed leaves.
  bool StoppedByAFailedRead(SimNode& n);
  std::vector<uint64_t> UpNodes() const;
  // The up leader with the highest term, paused ones left out (nothing steps them, and clients
  // that go on asking one are StaleLeaders' clients).
  std::optional<uint64_t> Leader() const;
  // Up members that lead a term older than another up member's leadership: deposed, without
  // knowing it yet (cut off, or paused).
  std::vector<uint64_t> StaleLeaders() const;
  void StartCore(SimNode& n);
  void Crash(SimNode& n, const char* why);
  void Restart(SimNode& n);
  void AddMember();
  void RemoveMember();
  void RemoveMember(SimNode& l);
  // Pauses the member's whole process (SimNode::paused) for a few ticks or for longer than an
  // election timeout; Resume hands it what waited, shuffled (with duplicates), in one batch.
  void Pause(SimNode& n, bool past_an_election = false);
  void Resume(SimNode& n);
  // The driver of back-to-back membership changes (SimOptions of the seed: churn_): right
  // after a leader change, and again as soon as the leader applied the previous change, it
  // proposes the next (a learner added, a caught-up learner promoted, a voter removed) until
  // a short burst is done; a refused one is retried every tick. Now and then it then strikes
  // the leader (crash, isolation, pause) before the change commits, so that the next leader
  // inherits it unapplied.
  void DriveMembership(SimNode* leader);
  void Strike();
  // A leader isolated with a minority, and then given many proposals while its check-quorum
  // has not yet deposed it: a long uncommitted tail that the majority's next leader replaces
  // through its size-limited catch-up once the partition heals.
  void StartTail();
  void GrowTail();

  // ---- the loop ----
  void HandleReadies(SimNode& n);
  void TakeReadies(SimNode& n);
  void HandleReady(SimNode& n);
  // The part of a Ready after its write: persist, send, apply, Advance.
  void FinishWrite(SimNode& n, Ready& rd, size_t applied_early);
  void CompleteWrites();
  void Apply(SimNode& n, const raftpb::Entry& e);
  void ServeReads(SimNode& n);
  // Hands a client's request to the member's core; on success it waits for the outcome.
  absl::Status Submit(SimNode& n, const ClientRequest& cr);
  void MaybeSnapshot(SimNode& n);
  void SendAll(uint64_t from, std::vector<Message> msgs);
  bool Reachable(uint64_t from, uint64_t to) {
    return group_[from] == group_[to] && cut_.count({from, to}) == 0;
  }
  // What the node does when its transport reports a peer unreachable.
  void ReportUnreachable(SimNode& n, uint64_t peer);
  void Deliver();
  void Chaos();
  void Clients(bool issue_new);
  // Client `c` asks member `n` for a new operation.
  void Issue(int c, SimNode& n);
  bool Converged();
  void FinalChecks();

  // ---- invariants ----
  void CheckNewLeader(SimNode& n);
  // At most one leader per term, checked whenever a core is seen leading (not only when a
  // Ready announces it: a leader elected and deposed during one write is seen too), once its
  // vote for itself is durable.
  void CheckOneLeaderPerTerm(SimNode& n);
  // What a message claims is durable is on its sender's disk when it leaves: the entries an
  // acknowledgement covers, the vote a grant gives, the term a leader speaks in.
  void CheckSentAfterPersisting(SimNode& n, const Message& m);
  // What a leader counts as committed in its own term is on the disks of a majority of its
  // voters.
  void CheckCommitIsDurable(SimNode& n);
  // Notes, for each index a leader counts as committed, the lowest term that did (see also
  // Apply).
  void NoteCommitted(SimNode& n);
  void CheckAppended(SimNode& n, const std::vector<raftpb::Entry>& entries);
  void CheckApplied(SimNode& n, const raftpb::Entry& e);
  // Membership safety: a member's membership after applying index i (or starting from a
  // snapshot at i) is the cluster's membership at i, the same on every member; a restart must
  // not start from a later membership and replay older changes on top of it.
  void CheckMembership(SimNode& n, uint64_t index, const raftpb::ConfState& cs,
                       bool change_at_index, const char* when);
  // A member that learned of its removal other than by applying it (told by a member that
  // applied it, or from a snapshot) must have been removed; it then stops for good.
  void NoteRemoval(SimNode& n);
  // Stops a member that learned its removal, once its grace is over.
  void StopIfRemoved(SimNode& n);
  static constexpr int64_t kRemovedGraceTicks = 40;

  // ---- clients ----
  // Completes the operation at `history_index` if its client still waits for it (a client that
  // gave up has moved on: a late answer must not complete its next operation).
  // `log_index`: where an operation that went through the log was applied, or the index a
  // read served through ReadIndex was served at.
  void CompleteOp(size_t history_index, bool found, const std::string& value,
                  uint64_t log_index);

  uint64_t seed_;
  SimOptions opts_;
  std::mt19937_64 rng_;
  // Read failures draw from their own generator: a seed whose profile has none runs exactly
  // as it did before they were modelled.
  std::mt19937_64 read_rng_;
  double read_failures_ = 0;  // chance that an armed read fails
  int64_t now_ = 0;
  Failure failure_;
  std::deque<std::string> trace_;
  SimStats stats_;

  // Fault settings of this seed.
  double drop_ = 0, dup_ = 0;
  int max_delay_ = 1;
  // Messages held back far longer than the rest (a stalled connection, a paused process): some
  // seeds have many and long ones, so that a deposed leader hears old answers and requests
  // after a new term has done work (a mutation test found stale-term bugs unseen with 1% of
  // 5-30 ticks only).
  double straggler_chance_ = 0.01;
  int straggler_max_ = 30;
  uint64_t max_msg_bytes_ = 4096;
  size_t max_inflight_ = 8;
  uint64_t max_inflight_bytes_ = 0;
  uint64_t snapshot_every_ = 25;
  // Share of synced writes done asynchronously, and how many ticks they take.
  double async_writes_ = 0;
  int max_write_ticks_ = 0;
  // Whether members' clocks drift (SimNode::clock_skew).
  bool clock_skew_ = false;
  // Faults a mutation test found missing (sixteenth session), each in a third of the seeds:
  // paused processes (Pause), back-to-back membership changes across elections
  // (DriveMembership), minority leaders' long tails (StartTail). The other half of the seeds
  // runs exactly as before: these are drawn from a generator of their own, and nothing draws
  // from rng_ for them there.
  bool pauses_ = false;
  bool churn_ = false;
  bool tails_ = false;
  // DriveMembership: changes left in the current burst; whether one is due (a new leader, the
  // previous change applied, or refused); whether an event asks for one at once.
  int churn_left_ = 0;
  bool churn_due_ = false;
  bool churn_now_ = false;
  bool in_churn_ = false;
  uint64_t strike_target_ = 0;
  int64_t strike_at_ = 0;
  // StartTail: the minority leader, its term, and the proposals still to make.
  uint64_t tail_leader_ = 0;
  uint64_t tail_term_ = 0;
  int tail_left_ = 0;
  int64_t tail_until_ = 0;
  uint64_t tail_seq_ = 0;

  std::map<uint64_t, SimNode> nodes_;
  uint64_t next_id_ = 1;
  std::vector<uint64_t> to_promote_;
  // Partition: group number per member; members in different groups cannot talk.
  std::map<uint64_t, int> group_;
  // One-way cuts (from, to): each member streams to each peer on a connection of its own, so
  // one direction can fail while the other works (a refused or misrouted connection, a TLS
  // failure, a stale address on one side).
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  std::vector<InFlight> network_;
  uint64_t seq_ = 0;
  // Outcomes of snapshot sends for the sender's core, as a transport reports them:
  // (sender, receiver, failed).
  std::vector<std::tuple<uint64_t, uint64_t, bool>> snapshot_reports_;
  // Peers reported unreachable to a sender: (sender, peer).
  std::vector<std::pair<uint64_t, uint64_t>> unreachable_reports_;

  // Invariant bookkeeping.
  std::map<uint64_t, uint64_t> leader_of_term_;
  // Per member: the highest commit index CheckCommitIsDurable verified in its current term.
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> commit_checked_;  // id -> (term, index)
  struct EntryRecord {
    uint64_t prev_term;
    std::string data;
  };
  std::map<std::pair<uint64_t, uint64_t>, EntryRecord> seen_entries_;  // (index, term)
  struct AppliedRecord {
    uint64_t term;
    std::string data;
  };
  std::map<uint64_t, AppliedRecord> applied_;  // index -> first applied entry
  // Index -> the lowest term whose leader counted it committed (NoteCommitted); per term,
  // the highest index noted.
  std::map<uint64_t, uint64_t> committed_in_;
  std::map<uint64_t, uint64_t> noted_upto_;
  // Index of each applied membership change (0: the start) -> the membership it made.
  std::map<uint64_t, raftpb::ConfState> membership_;

  // Clients.
  std::vector<KvOp> history_;
  std::vector<std::optional<PendingOp>> client_op_;
  std::vector<int> client_counter_;
  std::vector<std::string> history_request_;  // request id of each history entry
  std::set<std::string> acked_write_requests_;
  // Read freshness, checked directly: the highest log index of an operation a client has been
  // answered for (a ReadIndex read's too: the index it was served at), and for each ReadIndex
  // read the value when it was asked. A read must be served at an index at least that high
  // (any later leader's commit index covers every entry committed before it was asked); the
  // linearizability check finds a stale read only when it changes what a client saw.
  uint64_t answered_log_index_ = 0;
  std::map<std::string, uint64_t> read_floor_;
  uint64_t request_seq_ = 0;
};

// The state machine's snapshot: key=value lines, then the request ids applied.
std::string EncodeKv(const SimNode& n);
void DecodeKv(const std::string& data, SimNode* n);
// One line about a message, for traces and failures.
std::string Describe(const Message& m);

}  // namespace shoal::raft::sim::internal

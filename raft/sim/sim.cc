#include "raft/sim/sim.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "raft/core.h"
#include "raft/memory_log_store.h"
#include "raft/sim/linearizability.h"

namespace shoal::raft::sim {
namespace {

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

// ---- state machine encoding ----

std::string EncodeKv(const SimNode& n) {
  // key=value lines, then request ids after a blank line. Keys, values and ids have no '=' or
  // '\n'.
  std::string out;
  for (const auto& [k, v] : n.kv) absl::StrAppend(&out, k, "=", v, "\n");
  out += "\n";
  for (const std::string& r : n.applied_requests) absl::StrAppend(&out, r, "\n");
  return out;
}

void DecodeKv(const std::string& data, SimNode* n) {
  n->kv.clear();
  n->applied_requests.clear();
  bool requests = false;
  for (absl::string_view line : absl::StrSplit(data, '\n')) {
    if (line.empty()) {
      requests = true;
      continue;
    }
    if (!requests) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
      n->kv[kv.first] = kv.second;
    } else {
      n->applied_requests.insert(std::string(line));
    }
  }
}

std::string Describe(const Message& m) {
  return absl::StrCat(raftpb::MessageType_Name(m.type()), " ", m.from(), "->", m.to(), " term ",
                      m.term(), " idx ", m.index(), " logterm ", m.log_term(), " ents ",
                      m.entries_size(), " commit ", m.commit(), m.reject() ? " REJECT" : "");
}

// ---- members ----

std::vector<uint64_t> Sim::UpNodes() const {
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (n.up) out.push_back(id);
  }
  return out;
}

std::optional<uint64_t> Sim::Leader() const {
  // The up leader with the highest term (a deposed one may not know yet).
  std::optional<uint64_t> best;
  uint64_t best_term = 0;
  for (const auto& [id, n] : nodes_) {
    if (n.paused) continue;
    if (n.up && n.core->role() == Role::kLeader && n.core->term() >= best_term) {
      best = id;
      best_term = n.core->term();
    }
  }
  return best;
}

std::vector<uint64_t> Sim::StaleLeaders() const {
  uint64_t newest = 0;
  for (const auto& [id, n] : nodes_) {
    if (n.up && n.core->role() == Role::kLeader) newest = std::max(newest, n.core->term());
  }
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (n.up && n.core->role() == Role::kLeader && n.core->term() < newest) out.push_back(id);
  }
  return out;
}

void Sim::StartCore(SimNode& n) {
  Config c;
  c.id = n.id;
  n.reads = std::make_unique<FlakyReads>(n.disk.get(), [this] {
    // Faults stop with the chaos: the quiet period checks that the cluster converges.
    return read_failures_ > 0 && now_ < opts_.chaos_ticks &&
           std::uniform_real_distribution<double>(0, 1)(read_rng_) < read_failures_;
  });
  c.storage = n.reads.get();
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.max_size_per_msg = max_msg_bytes_;
  c.max_inflight_msgs = max_inflight_;
  c.max_inflight_bytes = max_inflight_bytes_;
  c.check_quorum = true;
  c.pre_vote = true;
  c.random_seed = rng_();
  raftpb::Snapshot snap = *n.disk->Snapshot();
  c.applied = snap.metadata().index();
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(c);
  if (!core.ok()) {
    Fail("member ", n.id, " cannot start: ", core.status().ToString());
    return;
  }
  n.core = std::move(*core);
  DecodeKv(snap.data(), &n);
  n.applied = snap.metadata().index();
  n.last_snapshot = n.applied;
  n.conf = n.disk->GetInitialState()->conf_state;
  n.up = true;
  CheckMembership(n, n.applied, n.core->conf_state(), false, "starts");
}

void Sim::NoteRemoval(SimNode& n) {
  if (!n.up || n.removed || !n.core->removed()) return;
  bool removed = false;
  for (const auto& [index, cs] : membership_) {
    for (uint64_t id : cs.removed()) removed = removed || id == n.id;
  }
  if (!removed) {
    return Fail("member ", n.id,
                " believes it was removed, but no membership the cluster had removed it");
  }
  Trace("member ", n.id, " learned that it was removed");
  ++stats_.removals_told;
  n.removed = true;
  n.removed_at = now_;
}

void Sim::StopIfRemoved(SimNode& n) {
  // As a manager does: a removed member is stopped for good, but not at once. Meanwhile it
  // still answers the members that have not applied its removal (its vote is what a survivor
  // of two voters needs, if it missed the commit index).
  if (n.removed && n.up && now_ >= n.removed_at + kRemovedGraceTicks) {
    Crash(n, "removed from the cluster");
  }
}

void Sim::Crash(SimNode& n, const char* why) {
  Trace("crash ", n.id, " (", why, ")");
  // Usually the members connected to it notice the dropped connection (the transport reports
  // it, as the node does: ReportUnreachable, and LeaderUnreachable if it led): followers of a
  // crashed leader then campaign early, a leader probes the crashed follower.
  for (auto& [id, other] : nodes_) {
    if (id == n.id || !other.up || Blocked(other) || other.paused || !Chance(0.7)) continue;
    if (!Reachable(n.id, id)) continue;  // cut off already: no connection to lose
    Trace("member ", id, " lost its connection to ", n.id);
    other.core->ReportUnreachable(n.id);
    if (other.core->leader() == n.id) other.core->LeaderUnreachable();
  }
  n.up = false;
  n.core.reset();
  n.writing.reset();  // never reached the disk
  n.unsaved_hs.reset();
  n.blocked_until = 0;
  n.paused = false;  // its buffers and the requests in them die with it
  n.inbox.clear();
  n.queued_requests.clear();
  n.applied_early = 0;
  n.kv.clear();
  n.applied_requests.clear();
  n.proposed.clear();
  n.reads_waiting.clear();
  n.reads_ready.clear();
  ++stats_.crashes;
}

bool Sim::StoppedByAFailedRead(SimNode& n) {
  if (n.core->storage_error().ok()) return false;
  if (n.core->log().found_lost()) {
    // Its leader counted on entries it had acknowledged and no longer holds, or replaced one
    // it committed: the simulation's crashes lose only what was not written, so this is a bug.
    Fail("member ", n.id, " found its log lost entries: ", n.core->storage_error().ToString());
    return true;
  }
  ++stats_.read_failures;
  Trace("member ", n.id, ": ", n.core->storage_error().ToString());
  Crash(n, "its storage failed a read");
  return true;
}

void Sim::Restart(SimNode& n) {
  Trace("restart ", n.id);
  StartCore(n);
  NoteRemoval(n);
  StopIfRemoved(n);
}

void Sim::AddMember() {
  std::optional<uint64_t> leader = Leader();
  if (!leader) return;
  SimNode& l = Node(*leader);
  if (l.core->conf_state().voters_size() + l.core->conf_state().learners_size() >= 6) return;
  const uint64_t id = next_id_++;
  SimNode& n = nodes_[id];
  n.id = id;
  n.clock_skew = ClockSkew();
  // Like a joining manager, it starts with an empty store and learns the membership as the
  // cluster's history: from the log (bootstrap included) or a snapshot.
  n.disk = std::make_unique<MemoryLogStore>();
  StartCore(n);
  raftpb::ConfChange cc;
  cc.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
  cc.set_node_id(id);
  absl::Status s = l.core->ProposeConfChange(cc);
  Trace("add learner ", id, " via ", l.id, ": ", s.ToString());
  if (s.ok()) {
    to_promote_.push_back(id);
    ++stats_.membership_changes;
  }
  HandleReadies(l);
}

void Sim::RemoveMember() {
  std::optional<uint64_t> leader = Leader();
  if (!leader) return;
  RemoveMember(Node(*leader));
}

void Sim::RemoveMember(SimNode& l) {
  raftpb::ConfState cs = l.core->conf_state();
  // Not from two voters to one: if the member removed led when the removal committed, the
  // survivor learns it from that member only (a leader leaving goes on telling it until it
  // answers, and a removed member answers votes during its grace); should the removed member
  // crash while the survivor is cut off or down past that grace, the survivor can neither
  // commit alone nor win a vote (README, eleventh session: 3 of 10,000 seeds when allowed).
  if (cs.voters_size() <= 2) return;
  const uint64_t victim = Pick(std::vector<uint64_t>(cs.voters().begin(), cs.voters().end()));
  raftpb::ConfChange cc;
  cc.set_type(raftpb::ConfChange::TYPE_REMOVE_NODE);
  cc.set_node_id(victim);
  absl::Status s = l.core->ProposeConfChange(cc);
  Trace("remove ", victim, " via ", l.id, ": ", s.ToString());
  if (s.ok()) ++stats_.membership_changes;
  HandleReadies(l);
}

// ---- Ready handling ----

void Sim::HandleReadies(SimNode& n) {
  TakeReadies(n);
  // A new leader announced, or the leader applied a membership change: the driver proposes
  // the next change at once (not inside HandleReady, between a Ready and its write).
  if (churn_now_ && !in_churn_ && !failure_.failed && n.up && !n.paused &&
      n.core->role() == Role::kLeader) {
    churn_now_ = false;
    DriveMembership(&n);
  }
}

void Sim::TakeReadies(SimNode& n) {
  if (!failure_.failed && n.up && n.core->role() == Role::kLeader) {
    CheckOneLeaderPerTerm(n);
    NoteCommitted(n);
    CheckCommitIsDurable(n);
  }
  if (!failure_.failed && n.up && n.writing) {
    // A write is under way: only what may precede it leaves now, and what was committed
    // meanwhile is applied now.
    n.reads->set_armed(true);
    std::vector<Message> early = n.core->TakeEarlyMessages();
    std::vector<raftpb::Entry> committed = n.core->TakeCommittedEntries();
    n.reads->set_armed(false);
    if (StoppedByAFailedRead(n)) return;  // as the node: nothing taken leaves
    SendAll(n.id, std::move(early));
    for (const raftpb::Entry& e : committed) {
      Apply(n, e);
      if (failure_.failed || !n.up) return;
    }
    ServeReads(n);
    return;
  }
  while (!failure_.failed && n.up && !n.writing && n.core->HasReady()) HandleReady(n);
}

void Sim::HandleReady(SimNode& n) {
  n.reads->set_armed(true);
  Ready rd = n.core->GetReady();
  n.reads->set_armed(false);
  if (StoppedByAFailedRead(n)) return;  // as the node: nothing of this Ready is written or sent
  // A crash before the write reaches the disk loses the whole Ready: its entries, hard state
  // (votes!) and messages, but not the early messages, which left before the write. The core
  // must not have let anything out that depended on it.
  if (now_ < opts_.chaos_ticks && rd.must_sync && Chance(0.003)) {
    ++stats_.lost_readies;
    SendAll(n.id, std::move(rd.early_messages));
    Crash(n, "before persisting a Ready");
    return;
  }
  // Before anything of this Ready is applied: a membership change among its committed
  // entries takes effect only then, and the commit was counted under the membership before.
  if (n.core->role() == Role::kLeader) {
    NoteCommitted(n);
    CheckCommitIsDurable(n);
  }
  if (failure_.failed) return;
  if (rd.soft_state) {
    Trace("member ", n.id, " is ", RoleName(rd.soft_state->role), " term ", n.core->term(),
          " leader ", rd.soft_state->leader);
    if (rd.soft_state->role == Role::kLeader) {
      CheckNewLeader(n);
      if (churn_ && now_ < opts_.chaos_ticks) {
        churn_left_ = static_cast<int>(Uniform(1, 3));
        churn_due_ = churn_now_ = true;
      }
    }
  }
  SendAll(n.id, std::move(rd.early_messages));
  // As the node loop does: committed entries (durable on a quorum) are applied before this
  // member's write, unless a snapshot must be restored first.
  size_t early = 0;
  if (!rd.snapshot) {
    for (const raftpb::Entry& e : rd.committed_entries) {
      Apply(n, e);
      if (failure_.failed || !n.up) return;
      ++early;
    }
    ServeReads(n);
  }
  if (rd.must_sync && Chance(async_writes_)) {
    n.writing = std::move(rd);
    n.applied_early = early;
    n.write_done_at = now_ + static_cast<int64_t>(Uniform(0, max_write_ticks_));
    // Now and then a disk stalls for longer than an election timeout (a busy device, a
    // journal commit). A leader's loop goes on stepping meanwhile (its writer thread waits);
    // a follower's loop is inside the write and falls silent, as in the node.
    if (Chance(0.005)) {
      ++stats_.disk_stalls;
      n.write_done_at += static_cast<int64_t>(Uniform(10, 30));
      if (n.core->role() != Role::kLeader && !n.writing->snapshot) {
        ++stats_.silent_stalls;
        n.blocked_until = n.write_done_at;
        Trace("member ", n.id, " stalls in a write until t=", n.blocked_until);
      }
    }
    return;
  }
  FinishWrite(n, rd, early);
}

void Sim::FinishWrite(SimNode& n, Ready& rd, size_t applied_early) {
  if (rd.snapshot) {
    absl::Status s = n.disk->ApplySnapshot(*rd.snapshot);
    if (!s.ok()) return Fail("member ", n.id, " cannot persist a snapshot: ", s.ToString());
    DecodeKv(rd.snapshot->data(), &n);
    n.applied = rd.snapshot->metadata().index();
    n.last_snapshot = n.applied;
    n.conf = rd.snapshot->metadata().conf_state();
    Trace("member ", n.id, " installed snapshot at ", n.applied);
    CheckMembership(n, n.applied, n.conf, false, "installs a snapshot");
  }
  CheckAppended(n, rd.entries);
  absl::Status s = n.disk->Append(rd.entries);
  if (!s.ok()) return Fail("member ", n.id, " cannot persist entries: ", s.ToString());
  if (rd.must_sync) {
    if (rd.hard_state) {
      n.disk->SetHardState(*rd.hard_state);
    } else if (n.unsaved_hs) {
      n.disk->SetHardState(*n.unsaved_hs);
    }
    n.unsaved_hs.reset();
  } else if (rd.hard_state) {
    n.unsaved_hs = *rd.hard_state;
  }
  if (n.core->role() == Role::kLeader) CheckOneLeaderPerTerm(n);  // now durable, perhaps
  for (const Message& m : rd.messages) {
    if (m.type() == raftpb::MSG_SNAP) ++stats_.snapshots_sent;
  }
  SendAll(n.id, std::move(rd.messages));
  for (size_t i = applied_early; i < rd.committed_entries.size(); ++i) {
    Apply(n, rd.committed_entries[i]);
    if (failure_.failed || !n.up) return;
  }
  for (const ReadState& rs : rd.read_states) n.reads_ready.emplace_back(rs.index, rs.request_ctx);
  n.core->Advance(rd);
  ServeReads(n);
  MaybeSnapshot(n);
}

void Sim::CompleteWrites() {
  for (auto& [id, n] : nodes_) {
    if (failure_.failed) return;
    // A paused process completes nothing: the write lands, and is seen, after it resumes.
    if (!n.up || n.paused || !n.writing || n.write_done_at > now_) continue;
    // The most delicate moment of asynchronous writes: a leader whose followers may already
    // have committed (and clients seen applied) entries of this write dies before it lands.
    if (now_ < opts_.chaos_ticks && n.core->role() == Role::kLeader &&
        n.core->log().committed() > n.disk->LastIndex() && Chance(0.2)) {
      ++stats_.lost_readies;
      Crash(n, "leader, before its write completed");
      continue;
    }
    Ready rd = std::move(*n.writing);
    n.writing.reset();
    Trace("member ", id, " persisted ", rd.entries.size(), " entries");
    FinishWrite(n, rd, n.applied_early);
    n.applied_early = 0;
    HandleReadies(n);
    NoteRemoval(n);
    StopIfRemoved(n);
  }
}

void Sim::Apply(SimNode& n, const raftpb::Entry& e) {
  if (e.index() != n.applied + 1) {
    return Fail("member ", n.id, " applies index ", e.index(), " after ", n.applied);
  }
  CheckApplied(n, e);
  {
    // Committed in its term at the latest: it learned the commit from a leader of a term no
    // later (a bound for commits no leader was seen counting: one deposed before its Ready).
    auto [it, inserted] = committed_in_.emplace(e.index(), n.core->term());
    if (!inserted) it->second = std::min(it->second, n.core->term());
  }
  n.applied = e.index();
  if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(e.data())) return Fail("unparsable conf change at ", e.index());
    n.conf = n.core->ApplyConfChange(cc);
    CheckMembership(n, e.index(), n.conf, true, "applies a membership change");
    Trace("member ", n.id, " applied ", raftpb::ConfChange::Type_Name(cc.type()), " ", cc.node_id(),
          " at ", e.index());
    if (churn_ && churn_left_ > 0 && n.core->role() == Role::kLeader && now_ < opts_.chaos_ticks) {
      churn_due_ = churn_now_ = true;
    }
    // Removed: this member stops for good once its core says so (NoteRemoval); a leader that
    // removed itself first goes on leading until the others know the commit index.
    return;
  }
  if (e.data().empty()) return;  // a leader's no-op
  // "P|req|key|value" or "G|req|key".
  std::vector<std::string> parts = absl::StrSplit(e.data(), '|');
  const std::string& req = parts[1];
  const bool first_time = n.applied_requests.insert(req).second;
  std::string value;
  bool found = false;
  if (parts[0] == "P") {
    if (first_time) n.kv[parts[2]] = parts[3];
  } else {
    auto it = n.kv.find(parts[2]);
    found = it != n.kv.end();
    if (found) value = it->second;
  }
  auto p = n.proposed.find(req);
  if (p != n.proposed.end()) {
    const size_t index = p->second;
    n.proposed.erase(p);
    // A duplicate delivery of a proposal applies once; the client hears of the first.
    if (first_time) CompleteOp(index, found, value, e.index());
  }
}

void Sim::ServeReads(SimNode& n) {
  auto it = n.reads_ready.begin();
  while (it != n.reads_ready.end()) {
    if (it->first > n.applied) {
      ++it;
      continue;
    }
    auto w = n.reads_waiting.find(it->second);
    if (w != n.reads_waiting.end()) {
      const size_t index = w->second;
      n.reads_waiting.erase(w);
      const int client = history_[index].client;
      auto floor = read_floor_.find(it->second);
      if (floor != read_floor_.end() && it->first < floor->second && client_op_[client] &&
          client_op_[client]->history_index == index) {
        return Fail("read freshness: member ", n.id, " serves read ", it->second, " at index ",
                    it->first, ", but an operation answered before the read was asked was "
                    "applied at index ", floor->second);
      }
      if (floor != read_floor_.end()) read_floor_.erase(floor);
      auto kv = n.kv.find(history_[index].key);
      CompleteOp(index, kv != n.kv.end(), kv != n.kv.end() ? kv->second : "", it->first);
    }
    it = n.reads_ready.erase(it);
  }
}

void Sim::MaybeSnapshot(SimNode& n) {
  // Frequent snapshots, so that lagging members often need one. Not beyond what is on disk.
  if (n.applied < n.last_snapshot + snapshot_every_) return;
  if (n.applied > n.disk->LastIndex()) return;
  absl::StatusOr<raftpb::Snapshot> snap = n.disk->CreateSnapshot(n.applied, &n.conf, EncodeKv(n));
  if (!snap.ok()) return Fail("member ", n.id, " cannot snapshot: ", snap.status().ToString());
  n.last_snapshot = n.applied;
  const uint64_t keep = 5;
  if (n.applied > keep && n.applied - keep > n.disk->FirstIndex()) {
    absl::Status s = n.disk->Compact(n.applied - keep);
    if (!s.ok()) return Fail("member ", n.id, " cannot compact: ", s.ToString());
  }
}

void Sim::SendAll(uint64_t from, std::vector<Message> msgs) {
  for (Message& m : msgs) {
    ++stats_.messages;
    if (m.to() == from) continue;
    CheckSentAfterPersisting(Node(from), m);
    if (failure_.failed) return;
    // As a node does off its loop thread: the core names its snapshot, the data is read here.
    if (absl::Status s = FillSnapshot(*Node(from).disk, m); !s.ok()) {
      return Fail("member ", from, " cannot fill in its snapshot: ", s.ToString());
    }
    if (Chance(drop_)) {
      Trace("drop ", Describe(m));
      if (m.type() == raftpb::MSG_SNAP) snapshot_reports_.emplace_back(from, m.to(), true);
      continue;
    }
    const int copies = Chance(dup_) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      int64_t delay = static_cast<int64_t>(Uniform(0, max_delay_));
      if (Chance(straggler_chance_)) {
        delay += static_cast<int64_t>(Uniform(5, static_cast<uint64_t>(straggler_max_)));
      }
      network_.push_back(InFlight{now_ + delay, seq_++, m, from});
    }
  }
}

void Sim::Deliver() {
  std::vector<InFlight> due, later;
  for (InFlight& f : network_) (f.deliver_at <= now_ ? due : later).push_back(std::move(f));
  network_ = std::move(later);
  std::shuffle(due.begin(), due.end(), rng_);  // reordering
  for (InFlight& f : due) {
    if (failure_.failed) return;
    const bool snap = f.msg.type() == raftpb::MSG_SNAP;
    auto it = nodes_.find(f.msg.to());
    if (it == nodes_.end() || !it->second.up || !Reachable(f.sender, f.msg.to())) {
      if (snap) snapshot_reports_.emplace_back(f.sender, f.msg.to(), true);
      // The sender's transport may notice (its stream broke, or a send failed); a snapshot
      // goes by a call of its own, whose failure is reported as such, above.
      if (!snap && Chance(0.05)) unreachable_reports_.emplace_back(f.sender, f.msg.to());
      continue;
    }
    if (it->second.paused) {
      SimNode& p = it->second;
      if (p.inbox.size() < p.inbox_room) {
        p.inbox.push_back(std::move(f));
      } else {
        // Its socket buffer is full: the sender's stream stalls and its transport drops what
        // it cannot write.
        Trace("drop ", Describe(f.msg), " (", p.id, " is paused and its buffer is full)");
        if (snap) snapshot_reports_.emplace_back(f.sender, f.msg.to(), true);
      }
      continue;
    }
    if (Blocked(it->second)) {
      // Its loop is inside a stalled write: the message waits in its queue.
      f.deliver_at = it->second.blocked_until;
      network_.push_back(std::move(f));
      continue;
    }
    SimNode& n = it->second;
    Trace("deliver ", Describe(f.msg));
    // Every member here is correct: a message refused as malformed means a member sent one
    // no correct member sends, or the check refuses a correct one.
    if (absl::Status s = CheckPeerMessage(f.msg, n.id); !s.ok()) {
      return Fail("member ", n.id, " refused ", Describe(f.msg), ": ", s.message());
    }
    const uint64_t to = f.msg.to();
    n.reads->set_armed(true);
    (void)n.core->Step(std::move(f.msg));  // as the node does: a snapshot is moved in
    n.reads->set_armed(false);
    if (StoppedByAFailedRead(n)) {
      // Delivered all the same, as far as the sender's transport can tell.
      if (snap) snapshot_reports_.emplace_back(f.sender, to, false);
      continue;
    }
    HandleReadies(n);
    NoteRemoval(n);
    StopIfRemoved(n);
    if (snap) snapshot_reports_.emplace_back(f.sender, to, false);
  }
  std::vector<std::pair<uint64_t, uint64_t>> unreachable;
  unreachable.swap(unreachable_reports_);
  for (const auto& [from, to] : unreachable) {
    auto it = nodes_.find(from);
    if (it == nodes_.end() || !it->second.up) continue;
    ReportUnreachable(it->second, to);
  }
  std::vector<std::tuple<uint64_t, uint64_t, bool>> reports;
  reports.swap(snapshot_reports_);
  for (const auto& [from, to, failed] : reports) {
    auto it = nodes_.find(from);
    if (it == nodes_.end() || !it->second.up) continue;
    if (Blocked(it->second) || it->second.paused) {  // waits in its queue
      snapshot_reports_.emplace_back(from, to, failed);
      continue;
    }
    Trace("snapshot ", from, "->", to, failed ? " failed" : " delivered");
    it->second.core->ReportSnapshot(to, failed);
    HandleReadies(it->second);
  }
}

// ---- faults ----

void Sim::ReportUnreachable(SimNode& n, uint64_t peer) {
  // (queued in the node; lost here)
  if (failure_.failed || !n.up || Blocked(n) || n.paused) return;
  Trace("member ", n.id, " told ", peer, " is unreachable");
  n.core->ReportUnreachable(peer);
  if (peer == n.core->leader()) n.core->LeaderUnreachable();
  HandleReadies(n);
}

void Sim::Chaos() {
  std::vector<uint64_t> up = UpNodes();
  // Partitions (a minority leader's stays a while: StartTail).
  if (now_ < tail_until_) {
  } else if (Chance(0.015)) {
    ++stats_.partitions;
    group_.clear();
    for (const auto& [id, n] : nodes_) group_[id] = static_cast<int>(Uniform(0, 1));
    Trace("partition: ", absl::StrJoin(group_, " ", absl::PairFormatter("@")));
  } else if (Chance(0.01) && !up.empty()) {
    ++stats_.partitions;
    group_.clear();
    const uint64_t alone = Pick(up);
    group_[alone] = 1;
    Trace("isolate ", alone);
  } else if (Chance(0.01) && up.size() >= 2) {
    ++stats_.partitions;
    const uint64_t from = Pick(up);
    const uint64_t to = Pick(up);
    if (from != to) {
      cut_.insert({from, to});
      Trace("cut ", from, "->", to, " (one way)");
    }
  } else if (Chance(0.04)) {
    if (!group_.empty() || !cut_.empty()) Trace("heal");
    group_.clear();
    cut_.clear();
  }
  // Crashes and restarts; leaders are hit more often, since most bugs hide in their changes.
  if (Chance(0.008) && !up.empty()) Crash(Node(Pick(up)), "chaos");
  if (Chance(0.006)) {
    if (std::optional<uint64_t> leader = Leader()) Crash(Node(*leader), "leader crash");
  }
  for (auto& [id, n] : nodes_) {
    if (!n.up && !n.removed && Chance(0.04)) Restart(n);
  }
  // A false alarm: a transport reports a live peer unreachable (a stream that broke and
  // reconnected at once).
  if (Chance(0.01) && up.size() >= 2) {
    const uint64_t peer = Pick(up);
    SimNode& n = Node(Pick(up));
    if (n.id != peer) ReportUnreachable(n, peer);
  }
  // A false alarm: a follower believes its connection to a live leader dropped.
  if (Chance(0.01) && !up.empty()) {
    SimNode& n = Node(Pick(up));
    if (n.up && !Blocked(n) && !n.paused && n.core->role() == Role::kFollower &&
        n.core->leader() != 0) {
      Trace("member ", n.id, " falsely believes leader ", n.core->leader(), " is gone");
      n.core->LeaderUnreachable();
    }
  }
  // Leadership transfer.
  if (Chance(0.01)) {
    if (std::optional<uint64_t> leader = Leader()) {
      raftpb::ConfState cs = Node(*leader).core->conf_state();
      const uint64_t to = Pick(std::vector<uint64_t>(cs.voters().begin(), cs.voters().end()));
      Trace("transfer leadership ", *leader, " -> ", to);
      ++stats_.transfers;
      Node(*leader).core->TransferLeader(to);
      HandleReadies(Node(*leader));
    }
  }
  // Membership.
  if (Chance(0.006)) AddMember();
  if (Chance(0.006)) RemoveMember();
  // Paused processes, back-to-back membership changes, minority tails (nothing here draws in
  // seeds without them).
  if (pauses_) {
    if (Chance(0.004) && !up.empty()) Pause(Node(Pick(up)));
    if (Chance(0.004)) {
      if (std::optional<uint64_t> leader = Leader()) Pause(Node(*leader));
    }
  }
  if (strike_target_ != 0 && now_ >= strike_at_) Strike();
  if (churn_due_ && !in_churn_) DriveMembership(nullptr);  // a refused change, retried
  if (tails_) {
    if (tail_left_ == 0 && Chance(0.01)) StartTail();
    if (tail_left_ > 0) GrowTail();
  }
}

void Sim::Pause(SimNode& n, bool past_an_election) {
  if (!n.up || n.paused || Blocked(n)) return;
  n.paused = true;
  // Short ones, and ones past an election timeout (10-20 ticks), after which a leader's
  // followers have elected another while it still believes it leads.
  n.paused_until = now_ + static_cast<int64_t>(past_an_election ? Uniform(20, 90)
                                               : Chance(0.5)    ? Uniform(2, 9)
                                                                : Uniform(10, 90));
  n.inbox_room = std::vector<size_t>{3, 10, 30, 1000}[Uniform(0, 3)];
  ++stats_.pauses;
  if (n.paused_until - now_ >= 10) ++stats_.long_pauses;
  Trace("pause ", n.id, n.core->role() == Role::kLeader ? " (leader)" : "",
        " until t=", n.paused_until, ", room for ", n.inbox_room, " messages");
}

void Sim::Resume(SimNode& n) {
  // Clients that still take it for the leader asked it meanwhile: their requests came last,
  // after another leader may have answered them or others.
  bool stale = false;
  for (uint64_t id : StaleLeaders()) stale = stale || id == n.id;
  for (int c = 0; stale && c < opts_.clients; ++c) {
    if (!client_op_[c] && Chance(0.5)) Issue(c, n);
  }
  n.paused = false;
  std::vector<InFlight> inbox;
  inbox.swap(n.inbox);
  std::vector<ClientRequest> requests;
  requests.swap(n.queued_requests);
  // A sender that retransmitted, or the network's duplicates.
  const size_t queued = inbox.size();
  for (size_t i = 0; i < queued; ++i) {
    if (Chance(0.1)) inbox.push_back(inbox[i]);
  }
  // Messages and requests in one batch, in any order: the loop takes what its inputs hold,
  // steps it all, and only then handles a Ready (Node::Loop).
  std::vector<size_t> order(inbox.size() + requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng_);
  Trace("resume ", n.id, ": ", inbox.size(), " messages and ", requests.size(), " requests waited");
  stats_.resumed_messages += inbox.size();
  for (size_t i : order) {
    if (failure_.failed || !n.up) return;
    if (i >= inbox.size()) {
      const ClientRequest& cr = requests[i - inbox.size()];
      // Still waited for (a client that gave up has moved on, but its request is served).
      const bool waited =
          client_op_[cr.client] && client_op_[cr.client]->history_index == cr.history_index;
      absl::Status s = Submit(n, cr);
      Trace("member ", n.id, " takes request ", cr.req, ": ", s.ToString());
      if (!s.ok() && waited) {
        // Refused: the client hears so, too late to say whether it happened elsewhere.
        ++stats_.unknown_outcomes;
        client_op_[cr.client].reset();
      }
      continue;
    }
    InFlight& f = inbox[i];
    const bool snap = f.msg.type() == raftpb::MSG_SNAP;
    Trace("deliver ", Describe(f.msg), " (waited)");
    if (absl::Status s = CheckPeerMessage(f.msg, n.id); !s.ok()) {
      return Fail("member ", n.id, " refused ", Describe(f.msg), ": ", s.message());
    }
    if (snap) snapshot_reports_.emplace_back(f.sender, n.id, false);
    n.reads->set_armed(true);
    (void)n.core->Step(std::move(f.msg));
    n.reads->set_armed(false);
    if (StoppedByAFailedRead(n)) return;  // the rest dies with the process
  }
  HandleReadies(n);
  NoteRemoval(n);
  StopIfRemoved(n);
}

void Sim::DriveMembership(SimNode* leader) {
  if (now_ >= opts_.chaos_ticks || churn_left_ <= 0) {
    churn_due_ = false;
    return;
  }
  if (leader == nullptr) {
    std::optional<uint64_t> id = Leader();
    if (!id) return;
    leader = &Node(*id);
  }
  SimNode& l = *leader;
  in_churn_ = true;
  const uint64_t before = stats_.membership_changes;
  raftpb::ConfState cs = l.core->conf_state();
  std::optional<uint64_t> promote;
  for (uint64_t id : cs.learners()) {
    auto pr = l.core->progress().find(id);
    if (pr != l.core->progress().end() && pr->second.match >= l.core->log().committed()) {
      promote = id;
    }
  }
  if (promote) {
    raftpb::ConfChange cc;
    cc.set_type(raftpb::ConfChange::TYPE_ADD_NODE);
    cc.set_node_id(*promote);
    absl::Status s = l.core->ProposeConfChange(cc);
    Trace("driver: promote ", *promote, " via ", l.id, ": ", s.ToString());
    if (s.ok()) {
      to_promote_.erase(std::remove(to_promote_.begin(), to_promote_.end(), *promote),
                        to_promote_.end());
      ++stats_.membership_changes;
    }
  } else if (cs.voters_size() + cs.learners_size() < 6 && (cs.voters_size() <= 3 || Chance(0.5))) {
    // Proposed before the member exists, so that a refused proposal leaves no member behind.
    raftpb::ConfChange cc;
    cc.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
    cc.set_node_id(next_id_);
    absl::Status s = l.core->ProposeConfChange(cc);
    Trace("driver: add learner ", next_id_, " via ", l.id, ": ", s.ToString());
    if (s.ok()) {
      SimNode& n = nodes_[next_id_];
      n.id = next_id_++;
      n.clock_skew = ClockSkew();
      n.disk = std::make_unique<MemoryLogStore>();
      StartCore(n);
      to_promote_.push_back(n.id);
      ++stats_.membership_changes;
    }
  } else {
    RemoveMember(l);  // traces, counts, and handles the leader's Ready
  }
  const bool accepted = stats_.membership_changes > before;
  if (accepted) {
    HandleReadies(l);
    ++stats_.driven_changes;
    churn_due_ = --churn_left_ > 0;
    churn_now_ = false;
    // The leader is struck before the change commits, now and then: the next leader inherits
    // it unapplied, and the driver proposes the next one there at once.
    if (strike_target_ == 0 && Chance(0.3)) {
      strike_target_ = l.id;
      strike_at_ = now_ + static_cast<int64_t>(Uniform(0, 2));
    }
  }
  in_churn_ = false;
}

void Sim::Strike() {
  SimNode& n = Node(strike_target_);
  strike_target_ = 0;
  if (!n.up || n.core->role() != Role::kLeader) return;
  ++stats_.strikes;
  switch (Uniform(0, pauses_ ? 2 : 1)) {
    case 0:
      Crash(n, "leader struck during membership changes");
      break;
    case 1:
      ++stats_.partitions;
      group_.clear();
      group_[n.id] = 1;
      Trace("isolate leader ", n.id, " during membership changes");
      break;
    default:
      Pause(n);
      break;
  }
}

void Sim::StartTail() {
  std::optional<uint64_t> leader = Leader();
  if (!leader) return;
  SimNode& l = Node(*leader);
  raftpb::ConfState cs = l.core->conf_state();
  if (cs.voters_size() < 3) return;  // no minority that could lead alone
  std::vector<uint64_t> others;
  for (uint64_t id : cs.voters()) {
    if (id != l.id) others.push_back(id);
  }
  std::shuffle(others.begin(), others.end(), rng_);
  ++stats_.partitions;
  group_.clear();
  cut_.clear();
  group_[l.id] = 1;
  // As many voters as leave the rest a majority (which then elects another leader), and now
  // and then its learners, which go on answering it (they must not confirm its reads).
  const size_t minority = (static_cast<size_t>(cs.voters_size()) - 1) / 2;
  for (size_t i = 0; i + 1 < minority; ++i) group_[others[i]] = 1;
  for (uint64_t id : cs.learners()) {
    if (Chance(0.75)) group_[id] = 1;
  }
  tail_leader_ = l.id;
  tail_term_ = l.core->term();
  // Long enough for the majority to elect a leader that answers clients.
  tail_until_ = now_ + static_cast<int64_t>(Uniform(20, 60));
  tail_left_ = static_cast<int>(Uniform(20, 120));
  Trace("partition: leader ", l.id, " with a minority (",
        absl::StrJoin(group_, " ", absl::PairFormatter("@")), "), to grow a tail of ", tail_left_);
  // Paused as well, now and then: its check-quorum stops with its clock, so it resumes
  // leading after the majority's leader answered clients (whose stale reads its learners,
  // still in its term, must not confirm).
  if (pauses_ && Chance(0.5)) Pause(l, /*past_an_election=*/true);
}

void Sim::GrowTail() {
  SimNode& l = Node(tail_leader_);
  if (l.up && l.paused) return;  // goes on after it resumes, if it still leads
  if (!l.up || l.core->role() != Role::kLeader || l.core->term() != tail_term_) {
    tail_left_ = 0;  // deposed (or gone): its tail stays as it is
    return;
  }
  const int batch = std::min(tail_left_, static_cast<int>(Uniform(1, 15)));
  for (int i = 0; i < batch; ++i) {
    // Keys of their own (no client reads them, so the history stays the clients'), values of
    // many sizes, so that the catch-up's size limit cuts the tail at varied places.
    const std::string data = absl::StrCat("P|t", ++tail_seq_, "|t", Uniform(0, 2), "|",
                                          std::string(Uniform(1, 150), 'v'));
    if (!l.core->Propose(data).ok()) {
      tail_left_ = 0;
      break;
    }
    --tail_left_;
    ++stats_.tail_entries;
  }
  HandleReadies(l);
}

void Sim::Clients(bool issue_new) {
  for (int c = 0; c < opts_.clients; ++c) {
    if (client_op_[c]) {
      if (now_ >= client_op_[c]->deadline) {
        // Timed out: the outcome stays unknown (kUnknownReturn).
        Trace("client ", c, " gives up on op ", client_op_[c]->history_index);
        ++stats_.unknown_outcomes;
        client_op_[c].reset();
      }
      continue;
    }
    if (!issue_new || !Chance(0.3)) continue;
    std::vector<uint64_t> up = UpNodes();
    if (up.empty()) continue;
    // Mostly the leader, sometimes any member (which forwards).
    std::optional<uint64_t> leader = Leader();
    uint64_t target = leader && Chance(0.7) ? *leader : Pick(up);
    if ((pauses_ || tails_) && Chance(0.3)) {
      // A client whose idea of the leader is out of date (a cached leader that has not told
      // it otherwise: paused, or cut off with a minority) asks it, after the new leader may
      // have answered others.
      std::vector<uint64_t> stale = StaleLeaders();
      if (!stale.empty()) target = Pick(stale);
    }
    SimNode& n = Node(target);
    if (Blocked(n)) continue;  // its loop is inside a stalled write: the client tries later
    Issue(c, n);
  }
}

void Sim::Issue(int c, SimNode& n) {
  KvOp op;
  op.client = c;
  op.key = absl::StrCat("k", Uniform(0, 2));
  op.call = now_ * 2;  // calls at even, returns at odd logical times: calls first
  const std::string req = absl::StrCat("r", ++request_seq_);
  const double r = std::uniform_real_distribution<double>(0, 1)(rng_);
  ClientRequest cr{c, history_.size(), req, false, ""};
  if (r < 0.55) {
    op.kind = KvOp::Kind::kPut;
    op.value = absl::StrCat("c", c, "-", ++client_counter_[c]);
    cr.data = absl::StrCat("P|", req, "|", op.key, "|", op.value);
  } else if (r < 0.85) {
    op.kind = KvOp::Kind::kGet;
    cr.read_index = true;
  } else {
    op.kind = KvOp::Kind::kGet;
    cr.data = absl::StrCat("G|", req, "|", op.key);
  }
  if (n.paused) {
    // Its process is paused: the request waits in its socket buffer, asked now.
    n.queued_requests.push_back(cr);
  } else if (!Submit(n, cr).ok()) {
    return;  // refused at once: nothing happened, no history
  }
  if (cr.read_index) read_floor_[req] = answered_log_index_;
  history_.push_back(op);
  history_request_.push_back(req);
  // Clients give up sooner in seeds with pauses: one stuck at a paused member moves on, and
  // the next leader may answer it before the paused one resumes.
  client_op_[c] = PendingOp{history_.size() - 1, n.id, now_ + (pauses_ ? 30 : 60)};
  Trace("client ", c, " ", op.kind == KvOp::Kind::kPut ? "put " : "get ", op.key, " ", op.value,
        " at ", n.id, " (", req, ")", n.paused ? " (paused: queued)" : "");
  if (n.paused) return;
  HandleReadies(n);
  // Now and then a leader's process stalls just after it asked its followers to confirm a
  // read: their answers wait in its buffers while another leader may take over.
  if (pauses_ && cr.read_index && n.up && n.core->role() == Role::kLeader && Chance(0.3)) {
    Pause(n);
  }
}

absl::Status Sim::Submit(SimNode& n, const ClientRequest& cr) {
  if (cr.read_index) {
    absl::Status s = n.core->ReadIndex(cr.req);
    if (s.ok()) n.reads_waiting[cr.req] = cr.history_index;
    return s;
  }
  absl::Status s = n.core->Propose(cr.data);
  if (s.ok()) n.proposed[cr.req] = cr.history_index;
  return s;
}

void Sim::CompleteOp(size_t index, bool found, const std::string& value, uint64_t log_index) {
  const int client = history_[index].client;
  if (!client_op_[client] || client_op_[client]->history_index != index) return;  // gave up
  answered_log_index_ = std::max(answered_log_index_, log_index);
  KvOp& op = history_[index];
  op.ret = now_ * 2 + 1;
  if (op.kind == KvOp::Kind::kGet) {
    op.found = found;
    op.value = value;
    ++stats_.acked_reads;
  } else {
    acked_write_requests_.insert(history_request_[index]);
    ++stats_.acked_writes;
  }
  Trace("client ", client, " done: ", op.key, " ", found ? "found " : "", op.value);
  client_op_[client].reset();
}

// ---- invariants ----

void Sim::CheckNewLeader(SimNode& n) {
  ++stats_.elections;
  const uint64_t term = n.core->term();
  CheckOneLeaderPerTerm(n);
  if (failure_.failed) return;
  // Leader completeness: it holds every entry anyone applied (above its snapshot) that was
  // committed in an earlier term. Not those first committed in its term or later: a
  // candidate whose grants waited (a paused process, then its queued messages) becomes the
  // leader of an old term after later terms committed more, as Raft allows; it then commits
  // nothing, since no majority is left in its term.
  const RaftLog& log = n.core->log();
  for (auto a = applied_.upper_bound(log.FirstIndex() - 1); a != applied_.end(); ++a) {
    auto in = committed_in_.find(a->first);
    if (in == committed_in_.end() || in->second >= term) continue;
    if (a->first > log.LastIndex()) {
      return Fail("leader completeness: leader ", n.id, " of term ", term, " lacks applied index ",
                  a->first, " (its last index is ", log.LastIndex(), ")");
    }
    absl::StatusOr<std::vector<raftpb::Entry>> e = log.Slice(a->first, a->first + 1, UINT64_MAX);
    if (!e.ok() || e->size() != 1 || (*e)[0].term() != a->second.term ||
        (*e)[0].data() != a->second.data) {
      return Fail("leader completeness: leader ", n.id, " of term ", term,
                  " has a different entry at applied index ", a->first);
    }
  }
}

void Sim::NoteCommitted(SimNode& n) {
  const uint64_t term = n.core->term();
  const uint64_t commit = n.core->log().committed();
  uint64_t& upto = noted_upto_[term];
  for (uint64_t i = upto + 1; i <= commit; ++i) {
    auto [it, inserted] = committed_in_.emplace(i, term);
    if (!inserted) it->second = std::min(it->second, term);
  }
  upto = std::max(upto, commit);
}

void Sim::CheckOneLeaderPerTerm(SimNode& n) {
  const uint64_t term = n.core->term();
  // A leadership counts once its vote for itself is on its disk. A sole voter leads the
  // moment it votes for itself; should it crash before that vote is written, it never led
  // (nothing it did left the member: CheckSentAfterPersisting), and after its restart it may
  // rightly vote for another member in that term, one whose membership (committed while this
  // member's commit index was not yet written) makes it need that vote.
  const raftpb::HardState hs = n.disk->hard_state();
  if (hs.term() != term || hs.vote() != n.id) return;
  auto [it, inserted] = leader_of_term_.emplace(term, n.id);
  if (!inserted && it->second != n.id) {
    Fail("election safety: members ", it->second, " and ", n.id, " both lead term ", term);
  }
}

void Sim::CheckSentAfterPersisting(SimNode& n, const Message& m) {
  const raftpb::HardState hs = n.disk->hard_state();
  switch (m.type()) {
    case raftpb::MSG_APP_RESP:
      if (m.reject() || m.index() == 0) return;
      // An acknowledgement of an earlier term than the one on disk is a delayed fact: a Ready
      // may carry it together with a newer leader's appends that replaced those entries (it
      // was true when they were written, as a message delayed in the network would be).
      if (hs.term() > m.term()) return;
      if (n.disk->LastIndex() < m.index()) {
        return Fail("member ", n.id, " acknowledged index ", m.index(), " to ", m.to(),
                    " with only ", n.disk->LastIndex(), " on its disk");
      }
      if (hs.term() < m.term()) {
        return Fail("member ", n.id, " acknowledged appends of term ", m.term(), " with term ",
                    hs.term(), " on its disk");
      }
      return;
    case raftpb::MSG_VOTE_RESP:
      if (m.reject()) return;
      // Or a later term is on its disk: it can never vote in m.term() again (a Ready may
      // carry a grant together with the vote of a later term it moved to meanwhile).
      if (hs.term() < m.term() || (hs.term() == m.term() && hs.vote() != m.to())) {
        return Fail("member ", n.id, " granted its vote to ", m.to(), " in term ", m.term(),
                    " with term ", hs.term(), " and vote ", hs.vote(), " on its disk");
      }
      return;
    case raftpb::MSG_APP:
    case raftpb::MSG_HEARTBEAT:
    case raftpb::MSG_SNAP:
    case raftpb::MSG_TIMEOUT_NOW:
    case raftpb::MSG_READ_INDEX_RESP:
      if (hs.term() < m.term()) {
        return Fail("member ", n.id, " sent ", raftpb::MessageType_Name(m.type()), " of term ",
                    m.term(), " with term ", hs.term(), " on its disk");
      }
      return;
    default:
      return;
  }
}

void Sim::CheckCommitIsDurable(SimNode& n) {
  const uint64_t term = n.core->term();
  const uint64_t commit = n.core->log().committed();
  auto& [checked_term, checked] = commit_checked_[n.id];
  if (checked_term == term && checked >= commit) return;
  absl::StatusOr<uint64_t> want = n.core->log().Term(commit);
  // A leader commits by counting only entries of its own term; a commit index it inherited,
  // or one that ended on an older entry, was counted under an earlier leader and membership.
  if (!want.ok() || *want != term) return;
  // Only a leadership whose vote for itself is durable may commit (CheckOneLeaderPerTerm
  // counts no other).
  const raftpb::HardState hs = n.disk->hard_state();
  if (hs.term() != term || hs.vote() != n.id) {
    return Fail("leader ", n.id, " of term ", term, " counts index ", commit,
                " as committed with term ", hs.term(), " and vote ", hs.vote(), " on its disk");
  }
  size_t voters = 0, holding = 0;
  for (const auto& [id, pr] : n.core->progress()) {
    if (pr.is_learner) continue;
    ++voters;
    auto it = nodes_.find(id);
    if (it == nodes_.end()) continue;
    MemoryLogStore& disk = *it->second.disk;
    if (disk.LastIndex() < commit) continue;
    absl::StatusOr<uint64_t> t = disk.Term(commit);
    // Behind the disk's snapshot: committed there already, so the same entry.
    if (!t.ok() || *t == *want) ++holding;
  }
  if (voters > 0 && holding < voters / 2 + 1) {
    return Fail("leader ", n.id, " of term ", term, " counts index ", commit,
                " as committed, but only ", holding, " of its ", voters,
                " voters have it on disk");
  }
  checked_term = term;
  checked = commit;
}

void Sim::CheckAppended(SimNode& n, const std::vector<raftpb::Entry>& entries) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const raftpb::Entry& e = entries[i];
    uint64_t prev_term = 0;
    if (i > 0) {
      prev_term = entries[i - 1].term();
    } else if (e.index() > 1) {
      absl::StatusOr<uint64_t> t = n.disk->Term(e.index() - 1);
      if (!t.ok()) continue;  // before the snapshot: nothing to compare
      prev_term = *t;
    }
    auto [it, inserted] = seen_entries_.emplace(std::make_pair(e.index(), e.term()),
                                                EntryRecord{prev_term, e.data()});
    if (!inserted && (it->second.data != e.data() || it->second.prev_term != prev_term)) {
      return Fail("log matching: member ", n.id, " holds a different entry (or history) at index ",
                  e.index(), " term ", e.term());
    }
  }
}

void Sim::CheckApplied(SimNode& n, const raftpb::Entry& e) {
  auto [it, inserted] = applied_.emplace(e.index(), AppliedRecord{e.term(), e.data()});
  if (!inserted && (it->second.term != e.term() || it->second.data != e.data())) {
    Fail("state machine safety: member ", n.id, " applies a different entry at index ", e.index(),
         " (term ", e.term(), " vs ", it->second.term, ")");
  }
}

std::string MembershipString(const raftpb::ConfState& cs) {
  std::vector<uint64_t> v(cs.voters().begin(), cs.voters().end());
  std::vector<uint64_t> l(cs.learners().begin(), cs.learners().end());
  std::sort(v.begin(), v.end());
  std::sort(l.begin(), l.end());
  std::vector<uint64_t> r(cs.removed().begin(), cs.removed().end());
  std::sort(r.begin(), r.end());
  return absl::StrCat("voters {", absl::StrJoin(v, ","), "} learners {", absl::StrJoin(l, ","),
                      "} removed {", absl::StrJoin(r, ","), "}");
}

void Sim::CheckMembership(SimNode& n, uint64_t index, const raftpb::ConfState& cs,
                          bool change_at_index, const char* when) {
  if (membership_.empty()) {  // the first member to start: the cluster's starting membership
    membership_.emplace(index, cs);
    return;
  }
  auto it = membership_.upper_bound(index);
  if (change_at_index && (it == membership_.begin() || std::prev(it)->first != index)) {
    membership_.emplace(index, cs);  // the first member to apply this change
    return;
  }
  // The membership made by the last change at or before `index` (every change up to a
  // member's applied index, or a snapshot's, has been applied by someone).
  if (it == membership_.begin()) {
    return Fail("member ", n.id, " ", when, " at index ", index,
                " before any membership the cluster had");
  }
  --it;
  const std::string got = MembershipString(cs);
  const std::string want = MembershipString(it->second);
  if (got != want) {
    Fail("membership safety: member ", n.id, " ", when, " at index ", index, " with ", got,
         ", but the membership there is ", want, " (made at index ", it->first, ")");
  }
}

// ---- end of run ----

bool Sim::Converged() {
  for (int c = 0; c < opts_.clients; ++c) {
    if (client_op_[c]) return false;
  }
  std::optional<uint64_t> leader = Leader();
  if (!leader) return false;
  SimNode& l = Node(*leader);
  if (l.core->log().committed() != l.core->log().LastIndex()) return false;
  // Every member of the final membership is up and has applied everything.
  raftpb::ConfState cs = l.core->conf_state();
  std::vector<uint64_t> members(cs.voters().begin(), cs.voters().end());
  members.insert(members.end(), cs.learners().begin(), cs.learners().end());
  for (uint64_t id : members) {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || !it->second.up) return false;
    if (it->second.applied != l.core->log().LastIndex()) return false;
  }
  return true;
}

void Sim::FinalChecks() {
  SimNode& l = Node(*Leader());
  raftpb::ConfState cs = l.core->conf_state();
  std::vector<uint64_t> members(cs.voters().begin(), cs.voters().end());
  members.insert(members.end(), cs.learners().begin(), cs.learners().end());
  for (uint64_t id : members) {
    SimNode& n = Node(id);
    if (n.kv != l.kv) return Fail("members ", l.id, " and ", id, " ended with different states");
    // No acknowledged write lost: every member applied every acknowledged put.
    for (const std::string& req : acked_write_requests_) {
      if (!n.applied_requests.count(req)) {
        return Fail("acknowledged write ", req, " is missing from member ", id);
      }
    }
  }
  LinearizabilityResult lin = CheckKvHistory(history_);
  stats_.linearizability_states = lin.states;
  if (!lin.ok) Fail("linearizability: ", lin.explanation);
}

SimResult Sim::Run() {
  // Per-seed fault profile: from calm to hostile.
  drop_ = std::uniform_real_distribution<double>(0, 0.1)(rng_);
  dup_ = std::uniform_real_distribution<double>(0, 0.05)(rng_);
  max_delay_ = static_cast<int>(Uniform(0, 3));
  if (Chance(0.5)) {
    straggler_chance_ = std::vector<double>{0.01, 0.05}[Uniform(0, 1)];
    straggler_max_ = std::vector<int>{30, 60}[Uniform(0, 1)];
  }
  // One entry per append (so followers ack old-term entries apart from the new leader's), up
  // to large batches; tiny to wide in-flight windows; frequent to rare snapshots.
  max_msg_bytes_ = std::vector<uint64_t>{1, 64, 4096}[Uniform(0, 2)];
  max_inflight_ = std::vector<size_t>{1, 4, 64}[Uniform(0, 2)];
  max_inflight_bytes_ = std::vector<uint64_t>{0, 64, 1024}[Uniform(0, 2)];
  snapshot_every_ = std::vector<uint64_t>{5, 25, 200}[Uniform(0, 2)];
  // Synced writes: all in place (the core's basic contract), some or all asynchronous (the
  // node loop: the core steps on while a write is under way).
  async_writes_ = std::vector<double>{0, 0.5, 1}[Uniform(0, 2)];
  max_write_ticks_ = static_cast<int>(Uniform(0, 2));
  clock_skew_ = Chance(0.5);
  read_failures_ = std::vector<double>{0, 0, 0.0003, 0.002}[std::uniform_int_distribution<int>(
      0, 3)(read_rng_)];
  // Paused processes, back-to-back membership changes and minority tails, in half the seeds
  // (each in a third), from a generator of their own: the other half runs exactly as before.
  {
    std::mt19937_64 g(seed_ ^ 0x9a05edc4a2e5ull);
    auto chance = [&g](double p) { return std::uniform_real_distribution<double>(0, 1)(g) < p; };
    if (chance(0.5)) {
      pauses_ = chance(2.0 / 3);
      churn_ = chance(2.0 / 3);
      tails_ = chance(2.0 / 3);
      if (!pauses_ && !churn_ && !tails_) pauses_ = true;
    }
    if (tails_) {
      // Small limits, so that replacing a long tail takes many size-limited appends.
      auto one_of_3 = [&g] { return std::uniform_int_distribution<int>(0, 2)(g); };
      max_msg_bytes_ = std::vector<uint64_t>{1, 64, 256}[one_of_3()];
      max_inflight_ = std::vector<size_t>{1, 2, 4}[one_of_3()];
      max_inflight_bytes_ = std::vector<uint64_t>{0, 128, 512}[one_of_3()];
    }
  }
  // From one voter (a single manager: it commits alone, and must still not serve a stale
  // read after a restart) to five; two voters need both for everything.
  const int members = std::vector<int>{1, 2, 3, 3, 4, 5, 5}[Uniform(0, 6)];
  std::vector<uint64_t> ids;
  for (int i = 1; i <= members; ++i) ids.push_back(i);
  for (uint64_t id : ids) {
    SimNode& n = nodes_[id];
    n.id = id;
    n.clock_skew = ClockSkew();
    n.disk = std::make_unique<MemoryLogStore>();
    absl::Status s = Bootstrap(*n.disk, ids);
    if (!s.ok()) Fail("bootstrapping member ", id, ": ", s.ToString());
    StartCore(n);
  }
  next_id_ = members + 1;
  client_op_.resize(opts_.clients);
  client_counter_.resize(opts_.clients);
  Trace("seed ", seed_, ": ", members, " members, drop ", drop_, " dup ", dup_, " delay 0-",
        max_delay_, " stragglers ", straggler_chance_, " up to ", straggler_max_, " msg bytes ", max_msg_bytes_, " inflight ", max_inflight_, " (",
        max_inflight_bytes_, " bytes) snapshot every ", snapshot_every_, " async writes ",
        async_writes_, " taking 0-", max_write_ticks_, " ticks",
        clock_skew_ ? ", clocks drift" : "", ", read failures ", read_failures_,
        pauses_ ? ", pauses" : "", churn_ ? ", membership churn" : "",
        tails_ ? ", minority tails" : "");

  const int64_t end = opts_.chaos_ticks + opts_.max_quiet_ticks;
  bool quiet = false;
  for (now_ = 0; now_ < end && !failure_.failed; ++now_) {
    if (!quiet && now_ >= opts_.chaos_ticks) {
      quiet = true;
      Trace("quiet: heal, restart everyone, no more faults");
      group_.clear();
      cut_.clear();
      drop_ = 0;
      dup_ = 0;
      straggler_chance_ = 0.01;
      straggler_max_ = 30;
      for (auto& [id, n] : nodes_) {
        if (!n.up && !n.removed) Restart(n);
        n.paused_until = std::min(n.paused_until, now_);
      }
      tail_left_ = 0;
      tail_until_ = 0;
      churn_due_ = churn_now_ = false;
      strike_target_ = 0;
    }
    for (auto& [id, n] : nodes_) {
      if (!failure_.failed && n.up && n.paused && n.paused_until <= now_) Resume(n);
    }
    if (!quiet) Chaos();
    // Promote caught-up learners.
    if (!to_promote_.empty() && Chance(0.1)) {
      if (std::optional<uint64_t> leader = Leader()) {
        SimNode& l = Node(*leader);
        const uint64_t id = to_promote_.front();
        auto pr = l.core->progress().find(id);
        if (pr != l.core->progress().end() && pr->second.is_learner &&
            pr->second.match >= l.core->log().committed()) {
          raftpb::ConfChange cc;
          cc.set_type(raftpb::ConfChange::TYPE_ADD_NODE);
          cc.set_node_id(id);
          absl::Status s = l.core->ProposeConfChange(cc);
          Trace("promote ", id, " via ", l.id, ": ", s.ToString());
          if (s.ok()) {
            to_promote_.erase(to_promote_.begin());
            ++stats_.membership_changes;
          }
          HandleReadies(l);
        } else if (pr == l.core->progress().end() && Chance(0.05)) {
          to_promote_.erase(to_promote_.begin());  // its addition was lost
        }
      }
    }
    Clients(!quiet);
    for (auto& [id, n] : nodes_) {
      if (!n.up || failure_.failed || Blocked(n) || n.paused) continue;
      int ticks = 1;
      if (n.clock_skew != 0 && Chance(0.25)) ticks += n.clock_skew;
      n.reads->set_armed(true);
      for (int t = 0; t < ticks; ++t) n.core->Tick();
      n.reads->set_armed(false);
      if (StoppedByAFailedRead(n)) continue;
      HandleReadies(n);
    }
    Deliver();
    CompleteWrites();
    for (auto& [id, n] : nodes_) StopIfRemoved(n);
    ++stats_.ticks;
    if (quiet && Converged()) break;
  }
  if (!failure_.failed) {
    if (!Converged()) {
      std::string state;
      for (const auto& [id, n] : nodes_) {
        absl::StrAppend(&state, " [", id, n.up ? "" : " down", n.removed ? " removed" : "");
        if (n.up) {
          absl::StrAppend(&state, " ", RoleName(n.core->role()), " term ", n.core->term(),
                          " commit ", n.core->log().committed(), " last ",
                          n.core->log().LastIndex(), " applied ", n.applied, " voters ",
                          absl::StrJoin(n.core->conf_state().voters(), ","), " learners ",
                          absl::StrJoin(n.core->conf_state().learners(), ","));
        }
        absl::StrAppend(&state, "]");
      }
      for (int c = 0; c < opts_.clients; ++c) {
        if (client_op_[c]) absl::StrAppend(&state, " client ", c, " waiting");
      }
      Fail("liveness: the cluster did not converge within ", opts_.max_quiet_ticks,
           " quiet ticks:", state);
    } else {
      FinalChecks();
    }
  }
  SimResult result;
  result.seed = seed_;
  result.ok = !failure_.failed;
  result.failure = failure_.what;
  result.trace.assign(trace_.begin(), trace_.end());
  result.stats = stats_;
  return result;
}

}  // namespace

SimResult RunSeed(uint64_t seed, const SimOptions& options) { return Sim(seed, options).Run(); }

}  // namespace shoal::raft::sim

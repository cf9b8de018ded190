// The node loop: drives one Raft core on one thread with durable storage, a transport and the
// application's state machine. The thread is the transport's own when it offers it
// (Transport::loop_host(): GrpcTransport's, which reads what peers and clients send), else one
// of the node's.
//
// Each loop iteration takes everything queued since the last one (proposals, messages, reads),
// steps it into the core, then handles the Ready: one Save (one synced write) for the whole
// batch, then the messages, then the committed entries. Batching is what makes one fsync serve
// many proposals.
//
// A leader's synced write runs on a second thread (the writer), so the loop keeps stepping
// while the disk works: proposals that arrive during an fsync are appended, sent to the
// followers at once, and all go into the next write; acknowledgements keep moving the commit
// index, and committed entries are applied (committed means durable on a quorum, so a leader
// need not wait for its own copy). At most one write is in flight; the next Ready is taken when
// it completes. A follower writes in place (what arrives meanwhile queues up for its next
// write anyway) and acknowledges as soon as the write is durable. A Ready that changes only the
// commit index writes nothing: the commit index is persisted with the next synced write (after a
// crash a member learns it again from the leader; nothing acknowledged depends on it).
//
// Proposals are matched to their applied entries by an id the node prepends to the data, so a
// Propose future completes with the index once the entry is applied here, whoever proposed it
// and whichever leader committed it. It fails with UNAVAILABLE when there is no leader, when the
// leader or the term changes before it is applied (the write may or may not have been applied:
// callers use versions to find out), when the node stops, or when its storage fails a write (the
// member then stops taking part: StateMachine::StorageFailed); with DEADLINE_EXCEEDED when not
// applied within Options::request_timeout (the same: may or may not); with INVALID_ARGUMENT, at
// once, when `data` is over the entry limit (Config::max_entry_bytes less the node's 8-byte id).
//
// Thread-safety: every public method is thread-safe. The state machine is called only from the
// node's thread.
//
//   Node::Options o{...};
//   auto node = Node::Create(o);
//   (*node)->Start();
//   absl::StatusOr<uint64_t> index = (*node)->Propose("data").get();
//   (*node)->Propose("data", [](absl::StatusOr<uint64_t> index) { ... });  // no thread waits
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "raft/core.h"
#include "raft/storage.h"
#include "raft/transport.h"

namespace shoal::raft {

// The application replicated by Raft. Called on the node's thread only.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies one committed entry's data (as proposed) at `index`.
  virtual void Apply(uint64_t index, absl::string_view data) = 0;
  // The state after the last applied entry, for a snapshot.
  virtual std::string Snapshot() = 0;
  // The same, serialized later: called on the node thread at the applied index, it returns a
  // function that the node runs on its snapshot thread to produce the state as of that index.
  // A state machine with a large state captures an immutable view here (a copy-on-write
  // version, say) and serializes it in the function, so that the node goes on applying and
  // answering meanwhile (serializing 64 MiB took 44 ms). The function must not read the live
  // state. Default: Snapshot(), now.
  virtual std::function<std::string()> SnapshotLater() {
    return [data = Snapshot()]() mutable { return std::move(data); };
  }
  // Replaces the state by a snapshot's. An error stops the member (the log after the snapshot
  // cannot be applied without it): see RestoreFailed, and Node::Create for the stored one.
  virtual absl::Status Restore(absl::string_view data) = 0;
  // This member's leadership, in order with Apply. `leading` true: it leads `term` and has
  // applied every entry committed before that term (its own first entry of the term is
  // applied), so its state holds every acknowledged write and leader-only work may start from
  // it; a new leader with entries it has not applied yet is not announced until it has.
  // `leading` false: it no longer leads `term` (it stepped down, or the node is stopping); it
  // follows every true at once. Leader-only work proposes with Node::ProposeAsLeader(term, ...)
  // so that nothing it proposes after this call takes effect. Must not block. Default: ignored.
  virtual void LeadershipChanged(bool /*leading*/, uint64_t /*term*/) {}
  // The Raft membership as of `index`, in order with Apply: after each applied membership
  // change, and after a snapshot is restored (the snapshot's, at its index; also when the
  // node starts from one). A restart replays the changes after its snapshot, so the calls
  // retell the cluster's history from there. For the manager: which managers are voters or
  // learners, and when this member was removed. Must not block. Default: ignored.
  virtual void MembershipChanged(uint64_t /*index*/, const raftpb::ConfState& /*membership*/) {}
  // This member was removed from the cluster, once, on the node thread: when it applies its
  // own removal (after that MembershipChanged), starts from or restores a snapshot that
  // records it, or is told by a member that applied it (it was down or cut off when it was
  // removed, and came back). It will never vote or lead again, and its proposals and reads
  // fail with FAILED_PRECONDITION. The manager stops the node and goes on as a worker, as a
  // Docker Swarm manager demoted while it was away does. Not called once Stop is under way
  // (the owner is stopping the node already); Status::removed says it all the same. Must not
  // block. Default: ignored.
  virtual void RemovedFromCluster() {}
  // This member's storage failed a write (a full disk, an I/O error, a disk gone read-only, a
  // store RocksDB finds corrupt) or a read of the log (an I/O error, an entry whose checksum
  // no longer matches), or its log was found to lack entries it acknowledged or committed (its
  // leader counts on entries it no longer holds: a store restored from an older copy; the
  // manager removes the member and adds it back with an empty store): it stopped taking part,
  // once, on the node thread, after LeadershipChanged(false) if it led. It sends and writes nothing more (what waited for the
  // failed write never leaves), steps nothing, and fails every request, pending or new, with
  // `error` (UNAVAILABLE; a write in flight may or may not have been applied: the others may
  // have committed it). Nothing it acknowledged is lost: it acknowledged only what was on its
  // disk. Not called once Stop is under way (the owner is stopping the node already), however
  // early the write failed; Status::storage_error says it all the same. Called at once, without
  // waiting for a snapshot of the state being written. The others go on
  // without it while they keep a quorum. The manager reports it, stops the node (from another
  // thread) and restarts the member once the disk is repaired; it catches up from the others.
  // A member that aborted the process instead (as this did) took its worker role down with
  // it, and did so again after every restart while the disk stayed full. Must not block.
  // Default: ignored.
  virtual void StorageFailed(const absl::Status& /*error*/) {}
  // Restore refused a snapshot received from the leader (a snapshot written by a newer
  // version during a rolling upgrade, say, or a state machine's bug): this member stopped
  // taking part, once, on the node thread, after LeadershipChanged(false) if it led, exactly
  // as after StorageFailed, and `error` (UNAVAILABLE) answers every request. The snapshot is
  // on its disk (the leader was told so, and counts on it), so a restart fails in
  // Node::Create with Restore's error until a build whose state machine can restore it runs;
  // the others go on without it while they keep a quorum. A member that aborted the process
  // instead (as this did) took its worker role down with it. The manager reports it and stops
  // the node (from another thread). Not called once Stop is under way; Status::restore_error
  // says it all the same. Must not block. Default: ignored.
  virtual void RestoreFailed(const absl::Status& /*error*/) {}
};

class Node final : public MessageHandler {
 public:
  struct Options {
    // Raft settings; `storage` and `applied` are filled in by the node.
    Config raft;
    WritableLogStorage* storage = nullptr;
    Transport* transport = nullptr;
    StateMachine* state_machine = nullptr;
    // Length of one tick (default 100ms).
    absl::Duration tick_interval = absl::Milliseconds(100);
    // Applied entries between snapshots (default 10,000), and entries kept after one for slow
    // followers (default 500).
    uint64_t snapshot_interval = 10000;
    uint64_t snapshot_keep_entries = 500;
    // A proposal, membership change or linearizable read not completed within this fails with
    // DEADLINE_EXCEEDED (the write may or may not be applied later). Without it a caller could
    // wait forever: a leader drops a follower's forwarded proposal without a word when it is
    // over its limits or transferring leadership, and a message can be lost with no leader
    // change to fail it. Checked every tick; zero: never.
    absl::Duration request_timeout = absl::Seconds(10);
    // On Stop, a leader first hands its leadership to the most up-to-date reachable voter and
    // waits until that one leads (at most an election timeout, and 2 s), as etcd does on a
    // graceful shutdown: the others go on without an election. A leader that just vanishes
    // costs them one (100-300 ms here, with the default timing). Off: Stop looks like a crash
    // to the others.
    bool transfer_leadership_on_stop = true;
    // The node's busy threads (its loop when it has a thread of its own, the writer, the
    // snapshotter, the completion thread; not the ticker) run under SCHED_BATCH
    // (common/batch_thread.h; GrpcTransport::Options::batch_threads for the thread that
    // hosts the loop).
    bool batch_threads = true;
  };

  struct Status {
    uint64_t id = 0;
    uint64_t term = 0;
    uint64_t leader = 0;
    Role role = Role::kFollower;
    uint64_t commit = 0;
    uint64_t applied = 0;
    // Counters since start: Readies handled, synced writes, entries written, messages sent.
    uint64_t readies = 0;
    uint64_t synced_writes = 0;
    uint64_t entries_written = 0;
    uint64_t messages_sent = 0;
    // Messages from peers refused as malformed (CheckPeerMessage; each is logged).
    uint64_t messages_refused = 0;
    // Time spent in synced writes, in microseconds (divide by synced_writes for the mean).
    uint64_t write_micros = 0;
    // This member was removed from the cluster (see StateMachine::RemovedFromCluster).
    bool removed = false;
    // A leader removed or demoted that still leads until a majority of the remaining voters
    // says it knows the commit index; meanwhile it takes no writes, reads or transfers. It
    // stays so while no remaining voter answers (all down or cut off): a manager shows it
    // ("demotion pending: waiting for the other managers") instead of looking hung.
    bool leaving = false;
    // Snapshots of the state that could not be written (each is logged; a state too big for
    // the store, a full or failing disk), and the error of the last attempt if it failed
    // (cleared by the next snapshot written). The log is not compacted meanwhile and grows
    // until one is written (tried again after 2, 4, 8, then every 16 snapshot intervals of
    // entries); a manager shows this to the operator.
    uint64_t snapshot_failures = 0;
    std::string last_snapshot_error;
    // Set when this member stopped because its storage failed a write or a read (see
    // StateMachine::StorageFailed): the error. `leader` is then 0 and `role` follower.
    std::string storage_error;
    // Set when this member stopped because its state machine could not restore a snapshot
    // received from the leader (see StateMachine::RestoreFailed): the snapshot's index and
    // Restore's error. `leader` is then 0 and `role` follower.
    std::string restore_error;
  };

  // Restores the state machine from the stored snapshot and replays the committed log on start.
  static absl::StatusOr<std::unique_ptr<Node>> Create(const Options& options);
  ~Node() override;

  // Starts the loop, and makes the node its transport's handler.
  void Start();
  // Stops the loop; pending proposals and reads fail with UNAVAILABLE. Idempotent. A leader
  // first hands its leadership over (Options::transfer_leadership_on_stop). When it returns,
  // the transport no longer calls the node (it may be destroyed while the transport lives on).
  // Safe to call from several threads at once (not alongside the destructor); requests queued
  // on a node never started fail with UNAVAILABLE. Never from a callback of the node (state machine, completion): it would
  // wait for its own thread, so that fails a CHECK; stop from another thread (the manager
  // reacting to RemovedFromCluster hands the stop to a thread of its own).
  void Stop();

  // Completion of a proposal: its index once applied on this node, or the error.
  using ProposeCallback = std::function<void(absl::StatusOr<uint64_t>)>;

  // Appends `data`; the future yields its index once applied on this node.
  std::future<absl::StatusOr<uint64_t>> Propose(std::string data);
  // The same, calling `done` exactly once, in the order the entries were applied: after the
  // entry is applied (or when it fails), on the node thread when the loop runs on its
  // transport's (GrpcTransport: the thread that polls gRPC, where answering a call costs what
  // it costs anywhere), else on the node's completion thread, or on the node thread itself when
  // it is the only one due and the completion thread is idle (a lightly loaded node then
  // answers without a thread hand-off); at once on the caller's thread when the node is
  // stopped. `done` must not block or call Stop(): it delays the completions after it and
  // may delay the Raft loop (which otherwise hands completions over in batches, so that
  // answering callers, a gRPC write each, does not hold up stepping and replication).
  void Propose(std::string data, ProposeCallback done);
  // Proposes only as the announced leader of `term` (see StateMachine::LeadershipChanged): fails
  // at once with FAILED_PRECONDITION when this node is not, or no longer, that leader, instead
  // of forwarding the proposal to whoever leads now. For leader-only work (orchestrators,
  // schedulers): a deposed leader that has not noticed yet appends to its own log only, and
  // such entries never commit once a newer leader was elected; forwarded, they would be
  // committed by the new leader, next to what the new leader's own work decided.
  void ProposeAsLeader(uint64_t term, std::string data, ProposeCallback done);
  // Completes once this node's state machine reflects every write acknowledged before the call
  // (ReadIndex): reading it then is linearizable.
  std::future<absl::Status> LinearizableRead();
  // Proposes a membership change; completes when it is applied here.
  std::future<absl::Status> ProposeConfChange(raftpb::ConfChange cc);
  void TransferLeadership(uint64_t to);
  void Campaign();

  // The leader's view of one member's replication.
  struct MemberProgress {
    uint64_t id = 0;
    bool learner = false;
    // The last index known to be in its log (the leader's own last index for itself).
    uint64_t match = 0;
    // Heard from within the last election timeout (always true for the leader itself): what
    // an operator sees as reachable.
    bool active = false;
  };
  // Every member's progress, from the leader (for when to promote a learner, see
  // Config::max_learner_lag, and which managers are reachable); FAILED_PRECONDITION on a
  // member that does not lead, UNAVAILABLE once stopped. Asked of the node thread: costs
  // nothing unless called.
  std::future<absl::StatusOr<std::vector<MemberProgress>>> Members();

  // After Stop: no leader, and the role a follower.
  Status GetStatus() const;
  // Blocks until some member is known as leader, or the deadline passes (returns false); false
  // at once after Stop.
  bool WaitForLeader(absl::Time deadline) const;

  // MessageHandler (called by the transport).
  void Receive(raftpb::Message message) override;
  void ReportUnreachable(uint64_t peer) override;
  void ReportSnapshot(uint64_t peer, bool failed) override;

 private:
  struct Input;

  explicit Node(const Options& options);
  absl::Status Init();
  void Loop();
  void Enqueue(Input input);
  void ProposeAll(std::deque<Input>& batch);
  void HandleInput(Input& input);
  // Takes the next Ready and handles it up to its write: hands a synced write to the writer
  // (then writing_ is set), or finishes it at once when there is nothing to sync.
  void StartReady();
  // Everything after the write: snapshot restore, committed entries, reads, Advance.
  void FinishReady();
  // Sends early messages (a leader's appends and heartbeats, heartbeat responses), if any.
  void SendEarly(std::vector<raftpb::Message> messages);
  // Writes writing_ (with save_hs_), synced, then sends its messages; returns the microseconds
  // the write took, or the store's error (then nothing is sent). On the writer thread, or in
  // place on the node thread.
  absl::StatusOr<uint64_t> Persist();
  // Whether the core's storage failed a read, or its log was found to lack entries this member
  // acknowledged or committed (then the member stops: FailStorage) (node thread).
  bool ReadFailed();
  // The storage failed a write (node thread): from now on the member takes no part; the loop
  // ends and the node answers every request with HaltError().
  void FailStorage(const absl::Status& error, bool reading = false);
  // The same when the state machine could not restore a received snapshot at `index`.
  void FailRestore(uint64_t index, const absl::Status& error);
  // Both: `user_error` answers every request from now on, `status_error` goes in the status.
  void Halt(bool by_restore, absl::Status user_error, const std::string& status_error);
  absl::Status HaltError() const;
  // The end of the loop (node thread): a leader announces its lost leadership, and every
  // request pending or queued fails with `stopped`.
  void AnswerEveryone(const absl::Status& stopped);
  void WriterLoop();
  // Sets tick_due_ every tick_interval on the monotonic clock: a wall clock that steps back
  // (NTP, a resumed VM) must not stop the ticks, and absl's timed waits run on the wall clock.
  void TickerLoop();
  // Queues a proposal's completion (node thread); FlushCompletions answers the queue on the
  // node thread when the loop is hosted, else hands it to the completion thread, once per
  // loop iteration.
  void Complete(ProposeCallback done, absl::StatusOr<uint64_t> result);
  void FlushCompletions();
  void CompleterLoop();
  void ApplyEntry(const raftpb::Entry& e);
  void ApplyEntryData(const raftpb::Entry& e);
  // Announces a lost leadership to the state machine (after each step of the core), or a new
  // one once its first entry is applied (from ApplyEntry).
  void NoteLeadership(const raftpb::Entry* applied);
  // Announces this member's removal once the core knows of it.
  void NoteRemoval();
  // Tells the transport every member the membership records as removed.
  void ForgetRemoved(const raftpb::ConfState& cs);
  // Gives the transport every peer's address the membership records.
  void IntroducePeers(const raftpb::ConfState& cs);
  // Why a proposal fenced to `term` cannot be accepted now; OK when it can.
  absl::Status CheckLeaderTerm(uint64_t term) const;
  void ServeReads();
  // Takes a snapshot of the state machine when snapshot_interval entries were applied since
  // the last one, written by the snapshotter thread alongside the log's writes: the member
  // goes on replicating, committing and heartbeating through a big snapshot's write.
  // Stop's first step (Options::transfer_leadership_on_stop).
  void HandOverLeadership();
  void MaybeSnapshot();
  struct SnapshotJob {
    uint64_t index = 0;
    raftpb::ConfState conf_state;
    std::function<std::string()> serialize;  // StateMachine::SnapshotLater's
  };
  // Writes snapshots handed over by MaybeSnapshot, and fills in the data of the snapshots
  // the core sends to followers (read from the store here, not on the loop thread).
  void SnapshotterLoop();
  // Hands messages to the transport; the core's snapshots for followers go to the snapshotter
  // thread first, to have their data filled in.
  void SendOut(std::vector<raftpb::Message> messages);
  // Compacts the log behind a snapshot written at `index` (node thread, no log write under
  // way: the store takes a compaction alone; a snapshot's write goes alongside log writes).
  void CompactAfterSnapshot(uint64_t index);
  // Stop under stop_mu_; hands back the requests of a node that never started.
  void StopLocked(std::deque<Input>* never_started);
  // Fails the proposals and membership changes in flight (not the reads), those whose ids
  // are below `below`.
  void FailWrites(const absl::Status& status, uint64_t below = UINT64_MAX);
  void FailPending(const absl::Status& status);
  // Fails the requests past their deadline (each tick).
  void ExpireRequests();
  std::chrono::steady_clock::time_point RequestDeadline() const;
  // Waits until the loop has something to do (an input, a tick, a write or snapshot done,
  // stopping): on mu_, or polling the transport when the loop runs on its thread.
  void AwaitWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After setting what AwaitWork waits for: wakes a hosted loop waiting in Poll (not from the
  // loop's own thread, which looks again before it waits).
  void WakeLoopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Options options_;
  std::unique_ptr<Core> core_;  // node thread only

  mutable absl::Mutex mu_;
  std::deque<Input> inputs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Set when Stop begins, before the hand-over of the leadership (stopping_ comes after it).
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  // A tick is due (set by the ticker, taken by the loop: at most one tick per iteration, so a
  // loop that fell behind does not burst).
  bool tick_due_ ABSL_GUARDED_BY(mu_) = false;
  Status status_ ABSL_GUARDED_BY(mu_);
  // The write handed to the writer thread (it reads writing_ and save_hs_ until it sets
  // write_done_), and the writer's shutdown.
  bool write_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool write_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);  // the failed write's, with write_done_
  bool writer_stop_ ABSL_GUARDED_BY(mu_) = false;
  // Why the member stopped taking part (a failed write, a snapshot it could not restore):
  // requests are answered with it at once.
  absl::Status halt_error_ ABSL_GUARDED_BY(mu_);
  // A damaged store found by the snapshotter: the loop stops the member with it.
  absl::Status store_error_ ABSL_GUARDED_BY(mu_);
  // A snapshot handed to the snapshotter thread, and whether one is being written (a
  // received snapshot is not installed, nor another one taken, until it is done).
  std::optional<SnapshotJob> snapshot_job_ ABSL_GUARDED_BY(mu_);
  bool snapshot_writing_ ABSL_GUARDED_BY(mu_) = false;
  bool snapshot_done_ ABSL_GUARDED_BY(mu_) = false;     // set when one is written
  uint64_t snapshot_failures_in_a_row_ ABSL_GUARDED_BY(mu_) = 0;  // spaces the next attempts
  uint64_t snapshot_written_ ABSL_GUARDED_BY(mu_) = 0;  // its index, for the node thread
  bool snapshotter_stop_ ABSL_GUARDED_BY(mu_) = false;
  // Snapshots for followers waiting for the snapshotter to fill in their data.
  std::vector<raftpb::Message> snapshots_to_send_ ABSL_GUARDED_BY(mu_);
  uint64_t write_micros_ ABSL_GUARDED_BY(mu_) = 0;

  // The Ready being written (node thread; the writer reads it while write_requested_), with
  // the hard state to write along and how many of its committed entries were applied early.
  std::optional<Ready> writing_;
  std::optional<raftpb::HardState> save_hs_;
  size_t applied_early_ = 0;
  // Completions queued in this iteration (node thread), and those handed to the completion
  // thread.
  std::vector<std::pair<ProposeCallback, absl::StatusOr<uint64_t>>> completions_;
  // Set by Start when the loop is hosted (before the loop runs): completions are then all
  // answered on the node thread, and there is no completion thread; several answered at once
  // are a burst for the host (LoopHost::BeginBurst).
  LoopHost* inline_host_ = nullptr;
  absl::Mutex done_mu_;
  std::vector<std::pair<ProposeCallback, absl::StatusOr<uint64_t>>> done_queue_
      ABSL_GUARDED_BY(done_mu_);
  bool completer_stop_ ABSL_GUARDED_BY(done_mu_) = false;
  bool completer_busy_ ABSL_GUARDED_BY(done_mu_) = false;  // running a batch

  // A snapshot's index whose compaction waits for the log's write in flight (node thread).
  uint64_t compact_after_ = 0;
  // A commit-only hard state not yet written (persisted with the next synced write).
  std::optional<raftpb::HardState> unsaved_hs_;
  // The storage failed a write, or a received snapshot could not be restored: the loop ends
  // (node thread). `halted_by_restore_` says which, for the state machine's callback.
  bool halted_ = false;
  bool halted_by_restore_ = false;

  // Node thread only.
  uint64_t epoch_ = 0;  // random per start: proposal ids never repeat across restarts
  uint64_t next_id_ = 1;
  // The first request id made after the snapshot being installed arrived.
  uint64_t snapshot_request_mark_ = 0;
  // Requests in flight, with when they time out. Proposal ids grow in submission order, so
  // proposals_ is also ordered by deadline.
  using Deadline = std::chrono::steady_clock::time_point;
  struct PendingProposal {
    ProposeCallback done;
    Deadline deadline;
  };
  struct PendingRequest {
    std::promise<absl::Status> promise;
    Deadline deadline;
  };
  std::map<uint64_t, PendingProposal> proposals_;
  std::map<uint64_t, PendingRequest> conf_changes_;
  std::map<std::string, PendingRequest> reads_waiting_;
  // Reads whose index is known, waiting for this member to apply up to it (a follower may
  // lag the leader's commit index for long: a snapshot to fill, appends refused), keeping the
  // deadline they were given when asked.
  struct ReadyRead {
    uint64_t index;
    std::promise<absl::Status> promise;
    Deadline deadline;
  };
  std::vector<ReadyRead> reads_ready_;
  uint64_t applied_ = 0;
  // The term this node's leadership was announced for (StateMachine::LeadershipChanged), or 0.
  uint64_t leading_term_ = 0;
  bool removal_announced_ = false;
  uint64_t last_snapshot_ = 0;
  raftpb::ConfState conf_state_;
  Status stats_;  // only the counters are used
  SoftState soft_;
  uint64_t soft_term_ = 0;  // the term at the last Ready

  // The ticker's shutdown (std:: primitives: their timed wait takes the monotonic clock).
  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;  // guarded by ticker_mu_

  // The node's threads, as each knows itself (Stop refuses to be called on one of them).
  std::atomic<std::thread::id> loop_tid_{}, writer_tid_{}, snapshotter_tid_{}, completer_tid_{},
      ticker_tid_{};
  std::mutex stop_mu_;  // one Stop at a time
  // The loop runs on the transport's thread when the transport offers it (LoopHost: host_,
  // set once by Start), or on thread_.
  std::thread thread_;
  LoopHost* host_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The hosted loop waits in host_->Poll: a producer on another thread wakes it (Wake).
  bool loop_polling_ ABSL_GUARDED_BY(mu_) = false;
  // The hosted loop's end, which Stop waits for. Shared with the loop: the node may be
  // destroyed as soon as Stop sees it, while the transport's thread is still unlocking it.
  struct LoopEnd {
    absl::Mutex mu;
    bool ended ABSL_GUARDED_BY(mu) = false;
  };
  std::shared_ptr<LoopEnd> loop_end_ = std::make_shared<LoopEnd>();
  bool started_ = false;  // Start ran (owner's thread)
  // Whether the node is its transport's handler (between Start and Stop; owner's thread).
  bool attached_ = false;
  std::thread writer_;
  std::thread snapshotter_;
  std::thread completer_;
  std::thread ticker_;
};

}  // namespace shoal::raft

#include "raft/node.h"

#include <chrono>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/batch_thread.h"
#include "common/check.h"
#include "common/id.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace shoal::raft {
namespace {

std::string EncodeId(uint64_t id) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(id >> (56 - 8 * i));
  return out;
}

// `next` (a membership from the core) with the descriptions of its members: those `prev` had,
// and `changed` (a change's RaftMember context) for member `id`, when there is one.
raftpb::ConfState Described(raftpb::ConfState next, const raftpb::ConfState& prev,
                            const raftpb::RaftMember* changed, uint64_t id) {
  std::map<uint64_t, raftpb::RaftMember> known;
  for (const raftpb::RaftMember& m : prev.members()) known[m.raft_id()] = m;
  if (changed != nullptr) {
    known[id] = *changed;
    known[id].set_raft_id(id);
  }
  std::set<uint64_t> in(next.voters().begin(), next.voters().end());
  in.insert(next.learners().begin(), next.learners().end());
  next.clear_members();
  for (const auto& [member, m] : known) {
    if (in.count(member) != 0) *next.add_members() = m;
  }
  return next;
}

uint64_t DecodeId(absl::string_view data) {
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = id << 8 | static_cast<uint8_t>(data[i]);
  return id;
}

}  // namespace

struct Node::Input {
  enum Kind {
    kPropose,
    kMessage,
    kRead,
    kConfChange,
    kTransfer,
    kCampaign,
    kUnreachable,
    kSnapshot,
    kCall,     // runs `call` on the node thread (with nullptr once stopped)
    kHandled,  // a proposal already stepped as part of a batch
  };
  Kind kind;
  std::string data;
  raftpb::Message message;
  raftpb::ConfChange cc;
  uint64_t peer = 0;
  uint64_t leader_term = 0;  // kPropose: only as the announced leader of this term
  bool failed = false;
  ProposeCallback index_done;
  std::promise<absl::Status> status_promise;
  std::function<void(Core*)> call;
};

Node::Node(const Options& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<Node>> Node::Create(const Options& options) {
  if (options.storage == nullptr || options.transport == nullptr ||
      options.state_machine == nullptr) {
    return absl::InvalidArgumentError("raft node needs storage, a transport and a state machine");
  }
  if (options.tick_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("raft node: tick_interval must be positive");
  }
  std::unique_ptr<Node> node(new Node(options));
  absl::Status s = node->Init();
  if (!s.ok()) return s;
  return node;
}

absl::Status Node::Init() {
  absl::StatusOr<InitialState> init = options_.storage->GetInitialState();
  if (!init.ok()) return init.status();
  conf_state_ = init->conf_state;
  absl::StatusOr<raftpb::Snapshot> snap = options_.storage->Snapshot();
  if (!snap.ok()) return snap.status();
  if (snap->metadata().index() > 0) {
    absl::Status s = options_.state_machine->Restore(snap->data());
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("restoring the state machine from the snapshot at ",
                                       snap->metadata().index(), ": ", s.message()));
    }
    applied_ = snap->metadata().index();
    last_snapshot_ = applied_;
    options_.state_machine->MembershipChanged(applied_, conf_state_);
  }
  Config config = options_.raft;
  config.storage = options_.storage;
  config.applied = applied_;
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(config);
  if (!core.ok()) return core.status();
  core_ = std::move(*core);
  ForgetRemoved(conf_state_);
  IntroducePeers(conf_state_);
  uint64_t epoch = 0;
  SystemRandomBytes(reinterpret_cast<uint8_t*>(&epoch), sizeof(epoch));
  epoch_ = epoch & 0xffffffff00000000ull;
  absl::MutexLock lock(&mu_);
  status_.id = config.id;
  status_.term = core_->term();
  status_.applied = applied_;
  return absl::OkStatus();
}

Node::~Node() { Stop(); }

void Node::Start() {
  // Before the threads: what arrives from now on is queued for the loop.
  attached_ = true;
  options_.transport->SetHandler(this);
  // Each thread knows its own id while it runs (Stop refuses to be called on one of them),
  // and forgets it before it ends: a thread made later may be given a joined one's id.
  auto run = [this](const char* name, std::atomic<std::thread::id>* tid, void (Node::*body)()) {
    return std::thread([this, name, tid, body] {
      SetThreadName(name);
      if (options_.batch_threads && body != &Node::TickerLoop) TryRunAsBatchThread("raft");
      tid->store(std::this_thread::get_id());
      (this->*body)();
      tid->store(std::thread::id());
    });
  };
  LoopHost* host = options_.transport->loop_host();
  // A hosted loop answers every completion itself (see FlushCompletions): no thread for them.
  inline_host_ = host;
  if (inline_host_ == nullptr) completer_ = run("raft-complete", &completer_tid_, &Node::CompleterLoop);
  writer_ = run("raft-writer", &writer_tid_, &Node::WriterLoop);
  snapshotter_ = run("raft-snapsave", &snapshotter_tid_, &Node::SnapshotterLoop);
  {
    absl::MutexLock lock(&mu_);
    host_ = host;
  }
  if (host != nullptr) {
    // On the transport's thread: what it reads is stepped there, with no hand-off.
    host->RunLoop([this, end = loop_end_] {
      loop_tid_.store(std::this_thread::get_id());
      Loop();
      loop_tid_.store(std::thread::id());
      // Nothing of the node's is touched from here on: Stop may return and the node go.
      absl::MutexLock lock(&end->mu);
      end->ended = true;
    });
  } else {
    thread_ = run("raft-loop", &loop_tid_, &Node::Loop);
  }
  started_ = true;
  ticker_ = run("raft-tick", &ticker_tid_, &Node::TickerLoop);
}

void Node::AwaitWork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  auto ready = +[](Node* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return n->stopping_ || !n->inputs_.empty() || n->write_done_ || n->tick_due_ ||
           n->snapshot_done_;
  };
  if (host_ == nullptr) {
    mu_.Await(absl::Condition(ready, this));
    return;
  }
  while (!ready(this)) {
    loop_polling_ = true;
    mu_.Unlock();
    host_->Poll();  // delivers what it reads to this node, on this thread
    mu_.Lock();
    loop_polling_ = false;
  }
}

void Node::WakeLoopLocked() {
  if (host_ != nullptr && loop_polling_ &&
      std::this_thread::get_id() != loop_tid_.load(std::memory_order_relaxed)) {
    host_->Wake();
  }
}

void Node::TickerLoop() {
  const auto interval = absl::ToChronoNanoseconds(options_.tick_interval);
  auto next = std::chrono::steady_clock::now() + interval;
  std::unique_lock<std::mutex> lock(ticker_mu_);
  for (;;) {
    if (ticker_cv_.wait_until(lock, next, [this] { return ticker_stop_; })) return;
    {
      absl::MutexLock node_lock(&mu_);
      tick_due_ = true;
      WakeLoopLocked();
    }
    next += interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + interval;  // fell behind: no burst
  }
}

void Node::Stop() {
  const std::thread::id self = std::this_thread::get_id();
  for (const std::atomic<std::thread::id>* t : {&loop_tid_, &writer_tid_, &snapshotter_tid_,
                                                &completer_tid_, &ticker_tid_}) {
    SHOAL_CHECK(t->load() != self,
                "raft: Node::Stop called on one of the node's own threads (from a callback: "
                "the state machine's, or a proposal's completion); it would wait for itself for "
                "ever. Stop the node from another thread.");
  }
  // Requests queued on a node that never started, answered once the lock below is released
  // (their callbacks may call Stop again).
  std::deque<Input> never_started;
  StopLocked(&never_started);
  const absl::Status stopped = absl::UnavailableError("raft node stopped before it started");
  for (Input& in : never_started) {
    if (in.kind == Input::kPropose) in.index_done(stopped);
    if (in.kind == Input::kRead || in.kind == Input::kConfChange) {
      in.status_promise.set_value(stopped);
    }
    if (in.kind == Input::kCall) in.call(nullptr);
  }
}

void Node::StopLocked(std::deque<Input>* never_started) {
  // One Stop at a time (several threads may call it; not the destructor alongside another
  // call, as for any object): the second waits, then finds everything stopped.
  std::lock_guard<std::mutex> stopping(stop_mu_);
  {
    // From here the owner is stopping the node, the hand-over included: a member that halts
    // or learns it was removed meanwhile does not call the owner back (StorageFailed,
    // RestoreFailed, RemovedFromCluster), as promised.
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
  }
  if (options_.transfer_leadership_on_stop) HandOverLeadership();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    WakeLoopLocked();
  }
  if (!started_) {
    absl::MutexLock lock(&mu_);
    never_started->swap(inputs_);
  }
  if (thread_.joinable()) thread_.join();
  bool hosted;
  {
    absl::MutexLock lock(&mu_);
    hosted = host_ != nullptr;
  }
  if (hosted) {
    absl::MutexLock lock(&loop_end_->mu);
    loop_end_->mu.Await(absl::Condition(&loop_end_->ended));
  }
  {
    absl::MutexLock lock(&mu_);
    // A stopped member leads nothing and follows no one (its status said it still led, and
    // WaitForLeader answered true).
    status_.leader = 0;
    status_.role = Role::kFollower;
    writer_stop_ = true;
  }
  if (writer_.joinable()) writer_.join();
  {
    absl::MutexLock lock(&mu_);
    snapshotter_stop_ = true;
  }
  if (snapshotter_.joinable()) snapshotter_.join();
  {
    absl::MutexLock lock(&done_mu_);
    completer_stop_ = true;
  }
  if (completer_.joinable()) completer_.join();
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    ticker_stop_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  // Last: the threads above send through the transport, whose reports come back here.
  if (attached_) {
    options_.transport->SetHandler(nullptr);
    attached_ = false;
  }
}

void Node::HandOverLeadership() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !started_) return;  // stopped already, or never started
  }
  auto chosen = std::make_shared<std::promise<uint64_t>>();
  std::future<uint64_t> transferee = chosen->get_future();
  Input in;
  in.kind = Input::kCall;
  in.call = [chosen](Core* core) {
    uint64_t best = 0, best_match = 0;
    if (core != nullptr && core->role() == Role::kLeader) {
      for (const auto& [id, pr] : core->progress()) {
        if (id == core->id() || pr.is_learner || !pr.recent_active) continue;
        if (best == 0 || pr.match > best_match) {
          best = id;
          best_match = pr.match;
        }
      }
      // The core sends it TimeoutNow once it has every entry (at once if it has).
      if (best != 0) core->TransferLeader(best);
    }
    chosen->set_value(best);
  };
  Enqueue(std::move(in));
  if (transferee.get() == 0) return;  // not the leader, or no voter to hand over to
  const absl::Duration timeout = std::min(options_.tick_interval * options_.raft.election_tick,
                                          absl::Seconds(2));
  const uint64_t self = options_.raft.id;
  absl::MutexLock lock(&mu_);
  auto handed_over = [this, self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Or the member halted meanwhile (its storage failed, or a snapshot could not be
    // restored): no hand-over will come.
    return (status_.leader != 0 && status_.leader != self) || !halt_error_.ok();
  };
  mu_.AwaitWithTimeout(absl::Condition(&handed_over), timeout);
}

void Node::Complete(ProposeCallback done, absl::StatusOr<uint64_t> result) {
  completions_.emplace_back(std::move(done), std::move(result));
}

void Node::FlushCompletions() {
  if (completions_.empty()) return;
  if (inline_host_ != nullptr) {
    // The loop runs on the transport's thread, the one that polls gRPC, where a caller's answer
    // (a gRPC call's Finish) costs no more than on any other thread: handing the answers to
    // the completion thread only added its wake-ups (the leader's CPU per write fell from 61.6
    // to 54.4 us, throughput +7%, at 64 clients in the 2026-12-04 A/B).
    std::vector<std::pair<ProposeCallback, absl::StatusOr<uint64_t>>> batch;
    batch.swap(completions_);
    // Answered together, the answers leave together (a leader's gRPC calls: one segment per
    // connection rather than one per answer; the leader's CPU per write -10% at 64 clients).
    const bool burst = batch.size() > 1;
    if (burst) inline_host_->BeginBurst();
    for (auto& [done, result] : batch) done(std::move(result));
    if (burst) inline_host_->EndBurst();
    return;
  }
  {
    absl::MutexLock lock(&done_mu_);
    if (completions_.size() > 1 || !done_queue_.empty() || completer_busy_) {
      // The completion thread answers them, in order, while this thread goes on stepping.
      if (done_queue_.empty()) {
        done_queue_.swap(completions_);
      } else {
        for (auto& c : completions_) done_queue_.push_back(std::move(c));
        completions_.clear();
      }
      return;
    }
  }
  // A lone completion with nothing ahead of it is answered here: that saves the completion
  // thread's wake-up (tens of microseconds on a virtual machine) on a lightly loaded node.
  // Under load completions come several at a time and go to the completion thread.
  auto [done, result] = std::move(completions_.front());
  completions_.clear();
  done(std::move(result));
}

void Node::CompleterLoop() {
  for (;;) {
    std::vector<std::pair<ProposeCallback, absl::StatusOr<uint64_t>>> batch;
    {
      absl::MutexLock lock(&done_mu_);
      done_mu_.Await(absl::Condition(
          +[](Node* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return n->completer_stop_ || !n->done_queue_.empty();
          },
          this));
      if (done_queue_.empty()) return;  // stopping, everything delivered
      batch.swap(done_queue_);
      completer_busy_ = true;
    }
    for (auto& [done, result] : batch) done(std::move(result));
    absl::MutexLock lock(&done_mu_);
    completer_busy_ = false;
  }
}

void Node::Enqueue(Input input) {
  absl::ReleasableMutexLock lock(&mu_);
  if (stopping_ || !halt_error_.ok()) {
    const absl::Status stopped =
        halt_error_.ok() ? absl::UnavailableError("raft node is stopped") : halt_error_;
    if (input.kind == Input::kRead || input.kind == Input::kConfChange) {
      input.status_promise.set_value(stopped);
    }
    if (input.kind != Input::kPropose && input.kind != Input::kCall) return;
    lock.Release();
    // Not under the lock: the callback may call back into the node.
    if (input.kind == Input::kCall) {
      input.call(nullptr);
    } else {
      input.index_done(stopped);
    }
    return;
  }
  inputs_.push_back(std::move(input));
  WakeLoopLocked();
}

std::future<absl::StatusOr<uint64_t>> Node::Propose(std::string data) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<uint64_t>>>();
  std::future<absl::StatusOr<uint64_t>> f = promise->get_future();
  Propose(std::move(data),
          [promise](absl::StatusOr<uint64_t> index) { promise->set_value(std::move(index)); });
  return f;
}

void Node::Propose(std::string data, ProposeCallback done) {
  Input in;
  in.kind = Input::kPropose;
  in.data = std::move(data);
  in.index_done = std::move(done);
  Enqueue(std::move(in));
}

void Node::ProposeAsLeader(uint64_t term, std::string data, ProposeCallback done) {
  Input in;
  in.kind = Input::kPropose;
  in.data = std::move(data);
  in.leader_term = term;
  in.index_done = std::move(done);
  Enqueue(std::move(in));
}

std::future<absl::Status> Node::LinearizableRead() {
  Input in;
  in.kind = Input::kRead;
  std::future<absl::Status> f = in.status_promise.get_future();
  Enqueue(std::move(in));
  return f;
}

std::future<absl::Status> Node::ProposeConfChange(raftpb::ConfChange cc) {
  Input in;
  in.kind = Input::kConfChange;
  in.cc = std::move(cc);
  std::future<absl::Status> f = in.status_promise.get_future();
  Enqueue(std::move(in));
  return f;
}

void Node::TransferLeadership(uint64_t to) {
  Input in;
  in.kind = Input::kTransfer;
  in.peer = to;
  Enqueue(std::move(in));
}

void Node::Campaign() {
  Input in;
  in.kind = Input::kCampaign;
  Enqueue(std::move(in));
}

void Node::Receive(raftpb::Message message) {
  Input in;
  in.kind = Input::kMessage;
  in.message = std::move(message);
  Enqueue(std::move(in));
}

void Node::ReportUnreachable(uint64_t peer) {
  Input in;
  in.kind = Input::kUnreachable;
  in.peer = peer;
  Enqueue(std::move(in));
}

void Node::ReportSnapshot(uint64_t peer, bool failed) {
  Input in;
  in.kind = Input::kSnapshot;
  in.peer = peer;
  in.failed = failed;
  Enqueue(std::move(in));
}

std::future<absl::StatusOr<std::vector<Node::MemberProgress>>> Node::Members() {
  auto promise = std::make_shared<std::promise<absl::StatusOr<std::vector<MemberProgress>>>>();
  auto f = promise->get_future();
  Input in;
  in.kind = Input::kCall;
  in.call = [this, promise](Core* core) {
    if (core == nullptr) {
      const absl::Status failed = HaltError();  // why it stopped, if it halted
      promise->set_value(failed.ok() ? absl::UnavailableError("raft node is stopped") : failed);
      return;
    }
    if (core->role() != Role::kLeader) {
      promise->set_value(absl::FailedPreconditionError(absl::StrCat(
          "raft: only the leader knows the members' progress; this member is a ",
          RoleName(core->role()),
          core->leader() != 0 ? absl::StrCat(" (leader: ", core->leader(), ")") : "")));
      return;
    }
    std::vector<MemberProgress> members;
    for (const auto& [id, pr] : core->progress()) {
      const bool self = id == core->id();
      members.push_back(
          {id, pr.is_learner, self ? core->log().LastIndex() : pr.match, self || pr.recent_active});
    }
    promise->set_value(std::move(members));
  };
  Enqueue(std::move(in));
  return f;
}

Node::Status Node::GetStatus() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

bool Node::WaitForLeader(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  // Or until the node stops: a stopped node has no leader (it used to wait out the deadline,
  // for ever with an infinite one, also when the wait began before Stop).
  mu_.AwaitWithDeadline(absl::Condition(
                            +[](const Node* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                              return n->status_.leader != 0 || n->stopping_;
                            },
                            this),
                        deadline);
  return status_.leader != 0;
}

void Node::Loop() {
  // Replay what the log holds committed before taking any request: the membership is in the
  // log (a new cluster's too), and a campaign handled before it is applied finds this member
  // no voter yet, so the member waited for its election timeout instead.
  while (!writing_ && !halted_ && core_->HasReady()) StartReady();
  if (!halted_) NoteRemoval();
  FlushCompletions();
  while (!halted_) {
    std::deque<Input> batch;
    bool write_done = false;
    absl::Status write_error;
    bool tick = false;
    uint64_t snapshot_written = 0;
    {
      absl::MutexLock lock(&mu_);
      AwaitWork();
      if (stopping_) break;
      batch.swap(inputs_);
      write_done = write_done_;
      write_done_ = false;
      write_error = std::move(write_error_);
      write_error_ = absl::OkStatus();
      if (write_error.ok() && !store_error_.ok()) write_error = store_error_;
      tick = tick_due_;
      tick_due_ = false;
      snapshot_done_ = false;
      snapshot_written = snapshot_written_;
      snapshot_written_ = 0;
    }
    ProposeAll(batch);
    for (Input& in : batch) HandleInput(in);
    if (tick) {
      core_->Tick();
      ExpireRequests();
    }
    // A read the storage failed while stepping: nothing computed from it may leave. A write
    // still in flight, from before, completes after the loop; one that completed now is over
    // (the loop took its completion: nothing would announce it again).
    if (!core_->storage_error().ok()) {
      if (write_done) writing_.reset();
      ReadFailed();
      break;
    }
    NoteLeadership(nullptr);
    if (!write_error.ok()) {
      // The log's write failed (or the snapshotter found the store damaged).
      if (write_done) writing_.reset();
      FailStorage(write_error);
      break;
    }
    if (write_done) FinishReady();
    if (halted_ || ReadFailed()) break;
    if (snapshot_written != 0) compact_after_ = snapshot_written;
    if (compact_after_ != 0 && !writing_) {
      // Not while a log write is under way: the store takes a compaction alone.
      CompactAfterSnapshot(compact_after_);
      compact_after_ = 0;
      if (halted_) break;
    }
    if (writing_ || core_->LeaderWriteMayWait()) {
      // A write is under way, or a leader's next write waits for a follower to catch up with
      // its last (Core::LeaderWriteMayWait): entries committed meanwhile are applied now, and
      // a leader's new appends and heartbeats leave now; the rest waits for the next Ready.
      std::vector<raftpb::Entry> committed = core_->TakeCommittedEntries();
      std::vector<raftpb::Message> early = core_->TakeEarlyMessages();
      if (ReadFailed()) break;
      const bool answer_first = committed.size() <= 1;  // see StartReady
      if (!answer_first) SendEarly(std::move(early));
      for (const raftpb::Entry& e : committed) ApplyEntry(e);
      if (!committed.empty()) {
        ServeReads();
        FlushCompletions();
      }
      if (answer_first) SendEarly(std::move(early));
    } else {
      while (!writing_ && !halted_ && core_->HasReady()) StartReady();
      if (halted_ || ReadFailed()) break;  // a read failing while it applied, say
    }
    NoteRemoval();
    FlushCompletions();
    absl::MutexLock lock(&mu_);
    status_.term = core_->term();
    status_.leader = core_->leader();
    status_.role = core_->role();
    status_.leaving = core_->leaving();
    status_.commit = core_->log().committed();
    status_.applied = applied_;
    status_.readies = stats_.readies;
    status_.synced_writes = stats_.synced_writes;
    status_.entries_written = stats_.entries_written;
    status_.messages_sent = stats_.messages_sent;
    status_.messages_refused = stats_.messages_refused;
    status_.write_micros = write_micros_;
  }
  if (writing_) {
    // Let the write in flight finish: the storage must not be used after Stop returns.
    absl::Status failed;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&write_done_));
      write_done_ = false;
      failed = std::move(write_error_);
      write_error_ = absl::OkStatus();
    }
    writing_.reset();
    if (!failed.ok()) FailStorage(failed);
  }
  // A member stopped by its storage says so at once: its leader-only work stops, its callers
  // hear why, and so does its owner, without waiting for a snapshot's write below (as long as a
  // failing disk hangs). The owner used to be told only after that write: a manager showed
  // nothing meanwhile, and one that began stopping (or destroying) the node in that time was
  // called back all the same, and stopped it again alongside its own Stop.
  if (halted_) {
    AnswerEveryone(HaltError());
    bool owner_stopping;
    {
      absl::MutexLock lock(&mu_);
      owner_stopping = stop_requested_;
    }
    // Not to an owner already stopping the node (or destroying it): it would react by
    // stopping it again, alongside its own Stop.
    if (!owner_stopping) {
      if (halted_by_restore_) {
        options_.state_machine->RestoreFailed(HaltError());
      } else {
        options_.state_machine->StorageFailed(HaltError());
      }
    }
  }
  {
    // And the snapshot being written (its compaction is left for the next start).
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Node* n) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !n->snapshot_writing_; }, this));
  }
  if (halted_) return;
  if (unsaved_hs_) {
    // The commit index, so a restart replays as much as possible; harmless if it fails.
    (void)options_.storage->Save(&*unsaved_hs_, {}, nullptr, false);
    unsaved_hs_.reset();
  }
  AnswerEveryone(absl::UnavailableError("raft node stopped"));
}

void Node::AnswerEveryone(const absl::Status& stopped) {
  if (leading_term_ != 0) {
    options_.state_machine->LeadershipChanged(false, leading_term_);
    leading_term_ = 0;
  }
  FailPending(stopped);
  std::deque<Input> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(inputs_);
  }
  for (Input& in : left) {
    if (in.kind == Input::kPropose) Complete(std::move(in.index_done), stopped);
    if (in.kind == Input::kRead || in.kind == Input::kConfChange) {
      in.status_promise.set_value(stopped);
    }
    if (in.kind == Input::kCall) in.call(nullptr);
  }
  FlushCompletions();
}

void Node::FailStorage(const absl::Status& error, bool reading) {
  if (halted_) return;
  if (reading && core_->log().found_lost()) {
    // Not a failing disk: a store that lacks what this member promised (restored from an
    // older copy, say). Restarting it on that store changes nothing.
    log::Error("raft",
               "this member's log lacks entries it acknowledged or committed: it stops taking "
               "part; remove it from the cluster and add it back with an empty store (it "
               "catches up from the others)",
               {{"id", options_.raft.id}, {"error", error.ToString()}});
    Halt(false,
         absl::UnavailableError(absl::StrCat(
             "raft member ", options_.raft.id, " stopped: its log lacks entries it acknowledged "
             "or committed (", error.ToString(), "); a write in flight may or may not have been "
             "applied; remove the member and add it back with an empty store")),
         error.ToString());
    return;
  }
  const char* what = reading ? "a read" : "a write";
  log::Error("raft",
             absl::StrCat("the storage failed ", what,
                          ": this member stops taking part (nothing it acknowledged is lost); "
                          "restart it once the disk is repaired"),
             {{"id", options_.raft.id}, {"error", error.ToString()}});
  // A write in flight may have been committed by the others all the same.
  Halt(false,
       absl::UnavailableError(absl::StrCat(
           "raft member ", options_.raft.id, " stopped: its storage failed ", what, " (",
           error.ToString(),
           "); a write in flight may or may not have been applied; restart the member once the "
           "disk is repaired")),
       error.ToString());
}

void Node::FailRestore(uint64_t index, const absl::Status& error) {
  if (halted_) return;
  log::Error("raft",
             "the state machine could not restore the snapshot received from the leader: this "
             "member stops taking part; it has the snapshot on disk and needs a version that "
             "can restore it",
             {{"id", options_.raft.id}, {"index", index}, {"error", error.ToString()}});
  Halt(true,
       absl::UnavailableError(absl::StrCat(
           "raft member ", options_.raft.id,
           " stopped: its state machine could not restore the snapshot at index ", index,
           " received from the leader (", error.ToString(),
           "); a write in flight may or may not have been applied; restart the member with a "
           "version that can restore it")),
       absl::StrCat("snapshot at index ", index, ": ", error.ToString()));
}

void Node::Halt(bool by_restore, absl::Status user_error, const std::string& status_error) {
  halted_ = true;
  halted_by_restore_ = by_restore;
  absl::MutexLock lock(&mu_);
  halt_error_ = std::move(user_error);
  (by_restore ? status_.restore_error : status_.storage_error) = status_error;
  status_.leader = 0;
  status_.role = Role::kFollower;
}

absl::Status Node::HaltError() const {
  absl::MutexLock lock(&mu_);
  return halt_error_;
}

absl::StatusOr<uint64_t> Node::Persist() {
  Ready& rd = *writing_;
  if (rd.snapshot) {
    // A received snapshot replaces the log and this member's own snapshot: not while the
    // snapshotter is still writing that one (the older would win). Only on the writer thread:
    // the node thread goes on answering meanwhile.
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Node* n) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !n->snapshot_writing_; }, this));
  }
  const absl::Time began = absl::Now();
  absl::Status saved = options_.storage->Save(save_hs_ ? &*save_hs_ : nullptr, rd.entries,
                                              rd.snapshot ? &*rd.snapshot : nullptr, true);
  // Failed: nothing of this Ready leaves (acknowledgements and votes promise it is on disk),
  // and the member stops (FailStorage): after a failed fsync what the disk holds is unknown,
  // and RocksDB refuses writes until reopened.
  if (!saved.ok()) {
    // Out of sequence: this member's bookkeeping is broken, and it must not go on.
    SHOAL_CHECK(saved.code() != absl::StatusCode::kFailedPrecondition &&
                    saved.code() != absl::StatusCode::kOutOfRange,
                "raft storage refused a write out of sequence: ", saved.ToString());
    return saved;
  }
  const absl::Duration took = absl::Now() - began;
  // Durable: what waited for it (votes, acknowledgements) leaves now.
  if (!rd.messages.empty()) SendOut(std::move(rd.messages));
  rd.messages.clear();
  return static_cast<uint64_t>(absl::ToInt64Microseconds(took));
}

void Node::WriterLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Node* n)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return n->write_requested_ || n->writer_stop_; },
          this));
      if (!write_requested_) return;  // stopping, nothing in flight
    }
    // The node thread does not touch writing_ or save_hs_ until write_done_ is set.
    absl::StatusOr<uint64_t> micros = Persist();
    absl::MutexLock lock(&mu_);
    if (micros.ok()) {
      write_micros_ += *micros;
    } else {
      write_error_ = micros.status();
    }
    write_requested_ = false;
    write_done_ = true;
    WakeLoopLocked();
  }
}

void Node::SnapshotterLoop() {
  for (;;) {
    std::optional<SnapshotJob> job;
    std::vector<raftpb::Message> sends;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Node* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return n->snapshot_job_ || !n->snapshots_to_send_.empty() || n->snapshotter_stop_;
          },
          this));
      sends.swap(snapshots_to_send_);
      if (!halt_error_.ok()) {
        // The member halted (its storage failed, or a snapshot could not be restored): it
        // sends and writes nothing more.
        sends.clear();
        if (snapshot_job_) {
          snapshot_job_.reset();
          snapshot_writing_ = false;
        }
      }
      if (!snapshot_job_ && sends.empty()) {
        if (snapshotter_stop_) return;  // stopping, nothing in flight
        continue;
      }
      job.swap(snapshot_job_);
    }
    for (raftpb::Message& m : sends) {
      // A copy of the whole state: here, so that the loop goes on stepping meanwhile.
      const uint64_t to = m.to();
      absl::Status filled = FillSnapshot(*options_.storage, m);
      if (!filled.ok()) {
        // The core retries later; a store that cannot give its snapshot back (damaged) keeps
        // the follower from catching up, so say why each time.
        log::Warning("raft", "cannot send the stored snapshot to a follower",
                     {{"to", to}, {"error", filled.ToString()}});
        ReportSnapshot(to, /*failed=*/true);
        continue;
      }
      if (m.snapshot().metadata().term() > m.term()) {
        // Named in an earlier term, filled after this member installed a newer leader's
        // snapshot: stale, and a peer would refuse it as malformed.
        ReportSnapshot(to, /*failed=*/true);
        continue;
      }
      // Not Send({std::move(m)}): an initializer list is copied, the snapshot's data with it.
      std::vector<raftpb::Message> one;
      one.push_back(std::move(m));
      options_.transport->Send(std::move(one));
    }
    if (!job) continue;
    const uint64_t index = job->index;
    absl::StatusOr<raftpb::Snapshot> snap =
        options_.storage->SaveSnapshot(index, job->conf_state, job->serialize());
    if (!snap.ok()) {
      // Out of sequence (not newer than the stored one, behind the compacted log): this
      // member's own bookkeeping is broken, and it must not go on.
      const absl::StatusCode code = snap.status().code();
      SHOAL_CHECK(
          code != absl::StatusCode::kFailedPrecondition && code != absl::StatusCode::kOutOfRange,
          "writing a snapshot: ", snap.status().ToString());
      if (code == absl::StatusCode::kDataLoss) {
        // A damaged store (RocksDB reports corruption): the member stops, as on a failed write
        // of its log (the loop picks this up).
        absl::MutexLock lock(&mu_);
        snapshot_writing_ = false;
        store_error_ = snap.status();
        snapshot_done_ = true;  // wakes the loop
        WakeLoopLocked();
        continue;
      }
      // Otherwise (a state too big for the store, a full or failing disk) nothing was written
      // (a snapshot is one atomic write), and the log still holds every entry since the last
      // snapshot: the member is whole, only its log is not compacted. Stopping the manager
      // instead (as this did) would not help: a state too big for the store (over 2 GiB)
      // fails the same way after every restart.
      log::Error("raft",
                 "cannot write a snapshot of the state; the log is not compacted and grows "
                 "until one is written",
                 {{"index", index}, {"error", snap.status().ToString()}});
      absl::MutexLock lock(&mu_);
      snapshot_writing_ = false;
      ++snapshot_failures_in_a_row_;
      ++status_.snapshot_failures;
      status_.last_snapshot_error = snap.status().ToString();
      continue;
    }
    absl::MutexLock lock(&mu_);
    status_.last_snapshot_error.clear();  // the problem, if any, is over
    snapshot_failures_in_a_row_ = 0;
    snapshot_writing_ = false;
    snapshot_written_ = index;  // the node thread compacts behind it
    snapshot_done_ = true;
    WakeLoopLocked();
  }
}

void Node::ProposeAll(std::deque<Input>& batch) {
  // Every proposal queued since the last iteration goes into one MSG_PROP: one append, one
  // message per follower, one write, instead of one of each per proposal.
  raftpb::Message m;
  m.set_type(raftpb::MSG_PROP);
  m.set_from(options_.raft.id);
  std::vector<std::pair<uint64_t, Input*>> ids;
  for (Input& in : batch) {
    if (in.kind != Input::kPropose) continue;
    if (absl::Status s = CheckLeaderTerm(in.leader_term); !s.ok()) {
      Complete(std::move(in.index_done), std::move(s));
      in.kind = Input::kHandled;
      continue;
    }
    if (in.data.size() + 8 > options_.raft.max_entry_bytes) {
      // Alone, so that the rest of the batch goes on (the node adds an 8-byte id).
      Complete(std::move(in.index_done),
               absl::InvalidArgumentError(absl::StrCat(
                   "raft: proposal of ", in.data.size(), " bytes exceeds the limit of ",
                   options_.raft.max_entry_bytes < 8 ? 0 : options_.raft.max_entry_bytes - 8,
                   " bytes (Config::max_entry_bytes): split it into smaller writes")));
      in.kind = Input::kHandled;
      continue;
    }
    const uint64_t id = epoch_ | next_id_++;
    m.add_entries()->set_data(EncodeId(id) + in.data);
    ids.emplace_back(id, &in);
  }
  if (ids.empty()) return;
  const absl::Status s = core_->Step(m);
  for (auto& [id, in] : ids) {
    if (!s.ok()) {
      Complete(std::move(in->index_done), s);
    } else {
      proposals_.emplace(id, PendingProposal{std::move(in->index_done), RequestDeadline()});
    }
    in->kind = Input::kHandled;
  }
}

void Node::HandleInput(Input& in) {
  switch (in.kind) {
    case Input::kHandled:
      break;
    case Input::kPropose: {
      if (absl::Status s = CheckLeaderTerm(in.leader_term); !s.ok()) {
        Complete(std::move(in.index_done), std::move(s));
        break;
      }
      const uint64_t id = epoch_ | next_id_++;
      absl::Status s = core_->Propose(EncodeId(id) + in.data);
      if (!s.ok()) {
        Complete(std::move(in.index_done), s);
      } else {
        proposals_.emplace(id, PendingProposal{std::move(in.index_done), RequestDeadline()});
      }
      break;
    }
    case Input::kMessage: {
      // Checked apart from Step: Step's own INVALID_ARGUMENT (a correct peer's forwarded
      // proposal over this member's entry limit, say) is not a malformed message.
      const absl::Status s = CheckPeerMessage(in.message, options_.raft.id);
      if (s.ok()) {
        (void)core_->Step(std::move(in.message));  // a snapshot in it is moved, not copied
      } else {
        // A buggy or older member: the message changed nothing. Said the first times and
        // then at powers of two, so a member that keeps sending them cannot flood the log.
        const uint64_t n = ++stats_.messages_refused;
        if ((n & (n - 1)) == 0) {
          log::Warning("raft", "refused a malformed message from a peer",
                       {{"from", in.message.from()}, {"refused_so_far", n},
                        {"error", std::string(s.message())}});
        }
      }
      break;
    }
    case Input::kRead: {
      const std::string ctx = EncodeId(epoch_ | next_id_++);
      absl::Status s = core_->ReadIndex(ctx);
      if (!s.ok()) {
        in.status_promise.set_value(s);
      } else {
        reads_waiting_.emplace(ctx,
                               PendingRequest{std::move(in.status_promise), RequestDeadline()});
      }
      break;
    }
    case Input::kConfChange: {
      const uint64_t id = epoch_ | next_id_++;
      in.cc.set_id(id);
      absl::Status s = core_->ProposeConfChange(in.cc);
      if (!s.ok()) {
        in.status_promise.set_value(s);
      } else {
        conf_changes_.emplace(id, PendingRequest{std::move(in.status_promise), RequestDeadline()});
      }
      break;
    }
    case Input::kTransfer:
      core_->TransferLeader(in.peer);
      break;
    case Input::kCampaign:
      core_->Campaign();
      break;
    case Input::kUnreachable:
      core_->ReportUnreachable(in.peer);
      if (in.peer == core_->leader()) core_->LeaderUnreachable();
      break;
    case Input::kSnapshot:
      core_->ReportSnapshot(in.peer, in.failed);
      break;
    case Input::kCall:
      in.call(core_.get());
      break;
  }
}

Node::Deadline Node::RequestDeadline() const {
  if (options_.request_timeout <= absl::ZeroDuration()) return Deadline::max();
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             absl::ToChronoNanoseconds(options_.request_timeout));
}

void Node::ExpireRequests() {
  if (options_.request_timeout <= absl::ZeroDuration()) return;
  const Deadline now = std::chrono::steady_clock::now();
  auto expired = [&](absl::string_view what) {
    return absl::DeadlineExceededError(absl::StrCat(
        "raft: ", what, " not completed within ", absl::FormatDuration(options_.request_timeout),
        " (lost on the way to the leader, dropped by it, or the cluster is overloaded); a write "
        "may or may not be applied later: check whether it took effect before retrying"));
  };
  while (!proposals_.empty() && proposals_.begin()->second.deadline <= now) {
    Complete(std::move(proposals_.begin()->second.done), expired("proposal"));
    proposals_.erase(proposals_.begin());
  }
  auto expire = [&](auto& requests, absl::string_view what) {
    for (auto it = requests.begin(); it != requests.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      it->second.promise.set_value(expired(what));
      it = requests.erase(it);
    }
  };
  expire(conf_changes_, "membership change");
  expire(reads_waiting_, "linearizable read");
  for (auto it = reads_ready_.begin(); it != reads_ready_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    it->promise.set_value(absl::DeadlineExceededError(absl::StrCat(
        "raft: linearizable read not completed within ",
        absl::FormatDuration(options_.request_timeout), ": this member has applied up to ",
        applied_, " and the read must wait for ", it->index,
        " (it is catching up with the leader: a snapshot, or a slow disk)")));
    it = reads_ready_.erase(it);
  }
}

void Node::FailWrites(const absl::Status& status, uint64_t below) {
  for (auto it = proposals_.begin(); it != proposals_.end() && it->first < below;) {
    Complete(std::move(it->second.done), status);
    it = proposals_.erase(it);
  }
  for (auto it = conf_changes_.begin(); it != conf_changes_.end() && it->first < below;) {
    it->second.promise.set_value(status);
    it = conf_changes_.erase(it);
  }
}

void Node::FailPending(const absl::Status& status) {
  FailWrites(status);
  for (auto& [ctx, p] : reads_waiting_) p.promise.set_value(status);
  reads_waiting_.clear();
  for (ReadyRead& r : reads_ready_) r.promise.set_value(status);
  reads_ready_.clear();
}

bool Node::ReadFailed() {
  if (core_->storage_error().ok()) return false;
  FailStorage(core_->storage_error(), /*reading=*/true);
  return true;
}

void Node::StartReady() {
  Ready rd = core_->GetReady();
  if (ReadFailed()) return;  // nothing of this Ready is written or sent
  // Requests made from now on were made after the snapshot arrived (see FinishReady).
  if (rd.snapshot) snapshot_request_mark_ = epoch_ | next_id_;
  // A new term counts even under the same leader: the leader may have changed and changed
  // back since the last Ready (1 -> 3 -> 1, all during one long write), and the one between
  // may have replaced the entries of the requests in flight.
  const bool leader_changed =
      soft_.leader != 0 &&
      ((rd.soft_state && rd.soft_state->leader != soft_.leader) || core_->term() != soft_term_);
  soft_term_ = core_->term();
  if (rd.soft_state) {
    soft_ = *rd.soft_state;
    absl::MutexLock lock(&mu_);
    status_.leader = soft_.leader;
    status_.role = soft_.role;
    status_.term = core_->term();
  }
  // A leader's appends and heartbeats leave before its own write (the core decides which).
  // Committed entries are applied before this Ready's write too: committed means durable on a
  // quorum already, so callers are answered without waiting for this member's fsync (a leader
  // whose followers acknowledged first, a follower whose entries arrived with their commit).
  // After a snapshot, they wait for it to be restored. A lightly loaded leader (one entry
  // committed) answers its caller before sending: handing over a completion is cheap, a send
  // to a peer is not (a loopback sendmsg runs the receiver's TCP stack too), and nothing else
  // waits. Under load the appends go first, so that replication is not held up by applying.
  const bool answer_first = rd.committed_entries.size() <= 1;
  if (!answer_first) SendEarly(std::move(rd.early_messages));
  applied_early_ = 0;
  if (!rd.snapshot) {
    for (const raftpb::Entry& e : rd.committed_entries) ApplyEntry(e);
    applied_early_ = rd.committed_entries.size();
    ServeReads();
  }
  // After applying what this Ready commits: a request whose entry it carries succeeded, and
  // must not be reported lost first.
  if (leader_changed) {
    FailPending(
        absl::UnavailableError("raft leader changed: the write may or may not have been applied"));
  }
  FlushCompletions();
  if (answer_first) SendEarly(std::move(rd.early_messages));
  ++stats_.readies;
  stats_.messages_sent += rd.messages.size();
  if (rd.hard_state && !rd.must_sync) {
    // Only the commit index moved: it rides along with the next synced write.
    unsaved_hs_ = *rd.hard_state;
  }
  if (!rd.must_sync) {
    if (!rd.messages.empty()) SendOut(std::move(rd.messages));
    rd.messages.clear();
    writing_ = std::move(rd);
    FinishReady();
    return;
  }
  // Durable before anything that depends on it leaves (the core's contract): on the writer.
  save_hs_.reset();
  if (rd.hard_state) {
    save_hs_ = *rd.hard_state;
  } else if (unsaved_hs_) {
    save_hs_ = *unsaved_hs_;
  }
  unsaved_hs_.reset();
  ++stats_.synced_writes;
  stats_.entries_written += rd.entries.size();
  writing_ = std::move(rd);
  if (core_->role() != Role::kLeader && !writing_->snapshot) {
    // A follower writes in place: while it syncs, what arrives queues up and goes into its
    // next write all the same, and the hand-off to the writer thread would only add a thread
    // wake-up to every acknowledgement's path. A leader keeps stepping during its write (new
    // proposals are appended and sent, acknowledgements commit and apply), and so does a
    // follower writing a received snapshot, which may have to wait for its own (Persist).
    absl::StatusOr<uint64_t> micros = Persist();
    if (!micros.ok()) {
      writing_.reset();
      FailStorage(micros.status());
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      write_micros_ += *micros;
    }
    FinishReady();
    return;
  }
  absl::MutexLock lock(&mu_);
  write_requested_ = true;
}

void Node::SendEarly(std::vector<raftpb::Message> messages) {
  if (messages.empty()) return;
  stats_.messages_sent += messages.size();
  SendOut(std::move(messages));
}

void Node::SendOut(std::vector<raftpb::Message> messages) {
  bool snapshots = false;
  for (const raftpb::Message& m : messages) snapshots = snapshots || m.snapshot_unfilled();
  if (snapshots) {
    std::vector<raftpb::Message> now;
    absl::MutexLock lock(&mu_);
    for (raftpb::Message& m : messages) {
      (m.snapshot_unfilled() ? snapshots_to_send_ : now).push_back(std::move(m));
    }
    messages.swap(now);
  }
  if (!messages.empty()) options_.transport->Send(std::move(messages));
}

void Node::FinishReady() {
  Ready& rd = *writing_;
  if (rd.snapshot) {
    absl::Status s = options_.state_machine->Restore(rd.snapshot->data());
    if (!s.ok()) {
      // Nothing past the snapshot can be applied without it. It is stored, and the leader was
      // told so: this member stops here, and a restart refuses it in Create with this error.
      const uint64_t index = rd.snapshot->metadata().index();
      writing_.reset();  // `rd` with it
      save_hs_.reset();
      applied_early_ = 0;
      FailRestore(index, s);
      return;
    }
    applied_ = rd.snapshot->metadata().index();
    last_snapshot_ = applied_;
    conf_state_ = rd.snapshot->metadata().conf_state();
    options_.state_machine->MembershipChanged(applied_, conf_state_);
    ForgetRemoved(conf_state_);
    IntroducePeers(conf_state_);
  }
  for (size_t i = applied_early_; i < rd.committed_entries.size(); ++i) {
    ApplyEntry(rd.committed_entries[i]);
  }
  if (rd.snapshot) {
    // Writes this member passed on to the leader before the snapshot arrived may be inside
    // it, applied without passing through ApplyEntry: their callers would wait until their
    // deadline, or for ever without one. Whether each took effect is unknown here. (After
    // the entries this Ready applied past the snapshot; not those proposed since, which
    // cannot be inside it.)
    FailWrites(absl::UnavailableError(absl::StrCat(
                   "raft: this member installed the leader's snapshot at index ",
                   rd.snapshot->metadata().index(),
                   ": the write may or may not have been applied; check whether it took effect "
                   "before retrying")),
               snapshot_request_mark_);
  }
  for (ReadState& rs : rd.read_states) {
    auto it = reads_waiting_.find(rs.request_ctx);
    if (it == reads_waiting_.end()) continue;
    reads_ready_.push_back(
        ReadyRead{rs.index, std::move(it->second.promise), it->second.deadline});
    reads_waiting_.erase(it);
  }
  core_->Advance(rd);
  writing_.reset();
  save_hs_.reset();
  applied_early_ = 0;
  ServeReads();
  MaybeSnapshot();
}

absl::Status Node::CheckLeaderTerm(uint64_t term) const {
  if (term == 0 || term == leading_term_) return absl::OkStatus();
  if (leading_term_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("raft: proposed as the leader of term ", term, ", but this member leads term ",
                     leading_term_, " now: the leadership it was proposed under was lost"));
  }
  if (core_->role() == Role::kLeader && core_->term() == term) {
    return absl::FailedPreconditionError(absl::StrCat(
        "raft: proposed as the leader of term ", term,
        " before that leadership was announced (the state machine has not applied every "
        "earlier write yet)"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "raft: proposed as the leader of term ", term, ", but this member is a ",
      RoleName(core_->role()), " at term ", core_->term(),
      core_->leader() != 0 ? absl::StrCat(" (leader: ", core_->leader(), ")") : std::string(),
      ": a deposed leader's proposals are refused, not forwarded"));
}

void Node::NoteLeadership(const raftpb::Entry* applied) {
  const bool leads = core_->role() == Role::kLeader;
  if (leading_term_ != 0 && (!leads || core_->term() != leading_term_)) {
    const uint64_t lost = leading_term_;
    leading_term_ = 0;
    options_.state_machine->LeadershipChanged(false, lost);
  }
  // A leader's first entry of its term is its empty entry: once that is applied, so is
  // everything committed before the term (the log is applied in order).
  if (applied != nullptr && leading_term_ == 0 && leads && applied->term() == core_->term()) {
    leading_term_ = core_->term();
    options_.state_machine->LeadershipChanged(true, leading_term_);
  }
}

void Node::NoteRemoval() {
  if (removal_announced_ || !core_->removed()) return;
  // Not while a write is under way: the Ready after it carries what the member still owes
  // the others (a leader removing itself tells them the commit index), and an owner that
  // stops the node at once on the news would keep it from leaving.
  if (writing_) return;
  removal_announced_ = true;
  log::Warning("raft",
               "this member was removed from the cluster: it will not vote or lead again; stop "
               "it and remove its Raft state (as a manager it rejoins under a new id)",
               {{"member", options_.raft.id}, {"applied", applied_}});
  FailPending(absl::FailedPreconditionError(
      "raft: this member was removed from the cluster; the write may or may not have been "
      "applied by the others: check on a current member before retrying there"));
  bool owner_stopping;
  {
    absl::MutexLock lock(&mu_);
    status_.removed = true;
    owner_stopping = stop_requested_;
  }
  // Not to an owner already stopping the node (or destroying it), as for StorageFailed: it
  // would react by stopping it again, alongside its own Stop.
  if (!owner_stopping) options_.state_machine->RemovedFromCluster();
}

void Node::IntroducePeers(const raftpb::ConfState& cs) {
  for (const raftpb::RaftMember& m : cs.members()) {
    if (m.raft_id() != options_.raft.id && !m.addr().empty()) {
      options_.transport->AddPeer(m.raft_id(), m.addr());
    }
  }
}

void Node::ForgetRemoved(const raftpb::ConfState& cs) {
  for (uint64_t id : cs.removed()) {
    if (id != options_.raft.id) options_.transport->RemovePeer(id);
  }
}

void Node::ApplyEntry(const raftpb::Entry& e) {
  ApplyEntryData(e);
  NoteLeadership(&e);
}

void Node::ApplyEntryData(const raftpb::Entry& e) {
  applied_ = e.index();
  if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
    raftpb::ConfChange cc;
    SHOAL_CHECK(cc.ParseFromString(e.data()), "unparsable conf change at index ", e.index());
    // Not persisted here: the membership is in the log, and a restart replays it from the
    // snapshot (which records the membership as of its index).
    raftpb::RaftMember member;
    const bool described = cc.type() != raftpb::ConfChange::TYPE_REMOVE_NODE &&
                           !cc.context().empty() && member.ParseFromString(cc.context());
    conf_state_ = Described(core_->ApplyConfChange(cc), conf_state_,
                            described ? &member : nullptr, cc.node_id());
    options_.state_machine->MembershipChanged(e.index(), conf_state_);
    if (cc.node_id() != options_.raft.id) {
      if (cc.type() == raftpb::ConfChange::TYPE_REMOVE_NODE) {
        options_.transport->RemovePeer(cc.node_id());
      } else if (described && !member.addr().empty()) {
        options_.transport->AddPeer(cc.node_id(), member.addr());
      }
    }
    auto it = conf_changes_.find(cc.id());
    if (it != conf_changes_.end()) {
      it->second.promise.set_value(absl::OkStatus());
      conf_changes_.erase(it);
    }
    return;
  }
  if (e.data().empty()) return;  // a leader's no-op
  SHOAL_CHECK(e.data().size() >= 8, "entry ", e.index(), " lacks its proposal id");
  const absl::string_view data(e.data());
  options_.state_machine->Apply(e.index(), data.substr(8));
  auto it = proposals_.find(DecodeId(data));
  if (it != proposals_.end()) {
    Complete(std::move(it->second.done), e.index());
    proposals_.erase(it);
  }
}

void Node::ServeReads() {
  for (auto it = reads_ready_.begin(); it != reads_ready_.end();) {
    if (it->index <= applied_) {
      it->promise.set_value(absl::OkStatus());
      it = reads_ready_.erase(it);
    } else {
      ++it;
    }
  }
}

void Node::MaybeSnapshot() {
  if (applied_ < last_snapshot_ + options_.snapshot_interval) return;
  // Applied entries this member has not persisted yet cannot be in a snapshot: try again after
  // the next write. That includes an applied entry whose index the store still holds with an
  // older entry, to be replaced by a write not yet made (a leader deposed while its write was
  // under way applies the new leader's entries at once): the store takes the snapshot's term
  // from the entry it holds, and a snapshot of the wrong term made the store refuse to open
  // and sent followers a snapshot whose term no append matched.
  if (applied_ > options_.storage->LastIndex()) return;
  const std::vector<raftpb::Entry>& unwritten = core_->log().UnstableEntries();
  if (!unwritten.empty() && unwritten.front().index() <= applied_) return;
  {
    absl::MutexLock lock(&mu_);
    if (snapshot_writing_) return;  // the previous one is still being written
    // After failed attempts, wait 2, 4, 8, then 16 intervals: a state too big for the store
    // would otherwise be serialized whole, for nothing, every interval.
    const uint64_t backoff = uint64_t{1} << std::min<uint64_t>(snapshot_failures_in_a_row_, 4);
    if (applied_ < last_snapshot_ + backoff * options_.snapshot_interval) return;
  }
  SnapshotJob job{applied_, conf_state_, options_.state_machine->SnapshotLater()};
  last_snapshot_ = applied_;
  // Written by the snapshotter thread, alongside the log's writes: writing a big snapshot
  // takes long (a 64 MiB one about half a second here). Every member takes one at about the
  // same index; in place, or in the queue of the log's writes, it stopped the whole cluster
  // committing for that long (a single member's too), and a member that stopped stepping
  // missed heartbeats: a leader sent none, a follower answered none.
  absl::MutexLock lock(&mu_);
  snapshot_job_ = std::move(job);
  snapshot_writing_ = true;
}

void Node::CompactAfterSnapshot(uint64_t index) {
  if (index <= options_.snapshot_keep_entries) return;
  const uint64_t compact = index - options_.snapshot_keep_entries;
  // A snapshot received since may have replaced the log beyond it.
  if (compact < options_.storage->FirstIndex()) return;
  absl::Status s = options_.storage->CompactTo(compact);
  if (s.ok()) return;
  // Out of sequence: this member's bookkeeping is broken, and it must not go on. Otherwise the
  // disk failed the write (DATA_LOSS: RocksDB found corruption), as it would the log's next one.
  SHOAL_CHECK(s.code() != absl::StatusCode::kFailedPrecondition &&
                  s.code() != absl::StatusCode::kOutOfRange,
              "compacting the log: ", s.ToString());
  FailStorage(s);
}

}  // namespace shoal::raft

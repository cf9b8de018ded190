// The node loop: drives one Raft core on its own thread with durable storage, a transport and
// the application's state machine.
//
// Each loop iteration takes everything queued since the last one (proposals, messages, reads),
// steps it into the core, then handles the Ready: one Save (one synced write) for the whole
// batch, then the messages, then the committed entries. Batching is what makes one fsync serve
// many proposals.
//
// Proposals are matched to their applied entries by an id the node prepends to the data, so a
// Propose future completes with the index once the entry is applied here, whoever proposed it
// and whichever leader committed it. It fails with UNAVAILABLE when there is no leader, when the
// leader changes before it is applied (the write may or may not have been applied: callers use
// versions to find out), or when the node stops.
//
// Thread-safety: every public method is thread-safe. The state machine is called only from the
// node's thread.
//
//   Node::Options o{...};
//   auto node = Node::Create(o);         // then transport handler = node
//   (*node)->Start();
//   absl::StatusOr<uint64_t> index = (*node)->Propose("data").get();
#pragma once

#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
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
  // Replaces the state by a snapshot's. An error here is fatal (the log cannot be replayed).
  virtual absl::Status Restore(absl::string_view data) = 0;
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
  };

  // Restores the state machine from the stored snapshot and replays the committed log on start.
  static absl::StatusOr<std::unique_ptr<Node>> Create(const Options& options);
  ~Node() override;

  void Start();
  // Stops the loop; pending proposals and reads fail with UNAVAILABLE. Idempotent.
  void Stop();

  // Appends `data`; the future yields its index once applied on this node.
  std::future<absl::StatusOr<uint64_t>> Propose(std::string data);
  // Completes once this node's state machine reflects every write acknowledged before the call
  // (ReadIndex): reading it then is linearizable.
  std::future<absl::Status> LinearizableRead();
  // Proposes a membership change; completes when it is applied here.
  std::future<absl::Status> ProposeConfChange(raftpb::ConfChange cc);
  void TransferLeadership(uint64_t to);
  void Campaign();

  Status GetStatus() const;
  // Blocks until some member is known as leader, or the deadline passes (returns false).
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
  void HandleReady();
  void ApplyEntry(const raftpb::Entry& e);
  void ServeReads();
  void MaybeSnapshot();
  void FailPending(const absl::Status& status);

  Options options_;
  std::unique_ptr<Core> core_;  // node thread only

  mutable absl::Mutex mu_;
  std::deque<Input> inputs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Status status_ ABSL_GUARDED_BY(mu_);

  // Node thread only.
  uint64_t epoch_ = 0;  // random per start: proposal ids never repeat across restarts
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::promise<absl::StatusOr<uint64_t>>> proposals_;
  std::map<uint64_t, std::promise<absl::Status>> conf_changes_;
  std::map<std::string, std::promise<absl::Status>> reads_waiting_;
  std::vector<std::pair<uint64_t, std::promise<absl::Status>>> reads_ready_;
  uint64_t applied_ = 0;
  uint64_t last_snapshot_ = 0;
  raftpb::ConfState conf_state_;
  raftpb::HardState persisted_;  // the hard state last written
  Status stats_;                  // only the counters are used
  SoftState soft_;

  std::thread thread_;
};

}  // namespace shoal::raft

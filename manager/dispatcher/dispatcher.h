// The dispatcher: the leader's side of the workers' sessions (proto/dispatcher.proto), without
// gRPC (dispatcher_service.h serves it). It
//
//   - registers nodes: a session writes the node's description, address and READY state, and
//     replaces any older session of the node (whose streams end);
//   - tracks heartbeats in memory (no Raft write while nothing changes): each answer gives the
//     period (the cluster's dispatcher.heartbeat_period, default 5 s) plus a little jitter; a
//     node that misses 3 periods is marked DOWN, and the
//     orchestrators replace its tasks. When a dispatcher starts (a new leader), every node not
//     DOWN is marked UNKNOWN and gets 6 periods to reconnect;
//   - takes task status updates from the node a task is assigned to (others are refused),
//     only forward (an update that would move a task backwards is ignored), buffers them and
//     writes them in batches (at 10,000 updates or every 100 ms), as SwarmKit does;
//   - tells each session the managers it may fail over to (WeightedPeer: the ones not down
//     first), in the first message and whenever that list changes;
//   - streams each node its assignments: the tasks assigned to it (until they are finished and
//     no longer wanted) and only the secrets and configs that its wanted tasks reference; a
//     complete set first, then differences after each burst of changes.
//
// Time is the injected clock; the dispatcher's thread (Start) calls Pump, CheckHeartbeats and
// FlushStatus, which tests call themselves instead.
//
// Thread-safety: thread-safe; sinks are called without the dispatcher's lock held.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/stream_sink.h"
#include "manager/store/store.h"
#include "proto/dispatcher.pb.h"

namespace shoal::manager::dispatcher {

// What a node is given, by (kind, id): kind 0 task, 1 secret, 2 config.
using AssignmentKey = std::pair<int, std::string>;
using AssignmentSet = std::map<AssignmentKey, api::Assignment>;

// The assignments of `node_id` in `tx`.
AssignmentSet AssignmentsOf(const std::string& node_id, const store::ReadTx& tx);
// The managers a node may connect to: those with an address, the ones not down first.
std::vector<api::WeightedPeer> ManagersOf(const store::ReadTx& tx);
// The changes from `before` to `after` (UPDATE for new or changed items, REMOVE for gone).
std::vector<api::AssignmentChange> Diff(const AssignmentSet& before, const AssignmentSet& after);

class Dispatcher {
 public:
  struct Options {
    store::Store* store = nullptr;
    const Clock* clock = nullptr;  // default RealClock()
    uint64_t leader_term = 0;      // 0: any (tests)
    IdGenerator* ids = nullptr;    // session ids; default system randomness
    // Buffered status updates written at once when this many wait.
    size_t status_batch = 10000;
    absl::Duration status_flush = absl::Milliseconds(100);
    // Jitter added to the period each heartbeat is given (up to a tenth of the period, at most
    // 500 ms, as SwarmKit's), so that nodes started together do not beat together; default
    // system randomness.
    RandomBytesFn random;
  };

  // Where a node's streams go (implemented by the gRPC reactors, and by tests). A stream
  // ends when a newer session replaces it or the dispatcher stops.
  using SessionSink = StreamSink<api::SessionMessage>;
  using AssignmentSink = StreamSink<api::AssignmentsMessage>;

  explicit Dispatcher(Options options);
  ~Dispatcher();

  // Marks every node not DOWN as UNKNOWN with 6 periods of grace, and (`run_thread`) starts the
  // thread that pumps events, checks heartbeats and flushes status updates.
  absl::Status Start(bool run_thread = true);
  // Flushes, stops the thread, and ends every stream (UNAVAILABLE: reconnect to the leader).
  void Stop();

  // Opens the node's session: writes its description, address and READY state (creating the
  // node when it is new, with `role`), ends its older session's streams, and sends the first
  // message. Returns the session id.
  absl::StatusOr<std::string> OpenSession(const std::string& node_id, api::NodeRole role,
                                          const api::NodeDescription& description,
                                          const std::string& addr,
                                          std::shared_ptr<SessionSink> sink);
  // The session's stream went away (the node will open a new one, or be marked down).
  void CloseSession(const std::string& node_id, const std::string& session_id);

  // NOT_FOUND for a session that is not the node's current one (open a new one).
  absl::StatusOr<absl::Duration> Heartbeat(const std::string& node_id,
                                           const std::string& session_id);
  // PERMISSION_DENIED (and nothing taken) when an update names a task not assigned to the
  // node; updates of unknown tasks and backward updates are ignored.
  absl::Status UpdateTaskStatus(const std::string& node_id, const std::string& session_id,
                                const api::UpdateTaskStatusRequest& request);
  absl::Status OpenAssignments(const std::string& node_id, const std::string& session_id,
                               std::shared_ptr<AssignmentSink> sink);
  void CloseAssignments(const std::string& node_id, const AssignmentSink* sink);

  // What the thread does. Pump: handles the store's events until `deadline` (none waiting:
  // returns), sending node and assignment changes. CheckHeartbeats: marks the nodes whose
  // heartbeats stopped DOWN; returns how many. FlushStatus: writes the buffered updates.
  void Pump(absl::Time deadline);
  size_t CheckHeartbeats();
  absl::Status FlushStatus();

  absl::Duration period() const;
  size_t buffered_status() const;

 private:
  struct Node {
    std::string session_id;
    absl::Time deadline = absl::InfiniteFuture();  // of the next heartbeat
    bool down = false;                              // marked DOWN by this dispatcher
    std::shared_ptr<SessionSink> session;
    std::shared_ptr<AssignmentSink> assignments;
    AssignmentSet sent;
    uint64_t sequence = 0;
  };

  absl::Status CheckSession(const std::string& node_id, const std::string& session_id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The period given to one heartbeat: the cluster's plus jitter.
  absl::Duration Jittered(absl::Duration period);
  absl::Status WriteNodeState(const std::string& node_id, api::NodeStatus::State state,
                              const std::string& message);
  void SendAssignments(const std::vector<std::string>& node_ids, bool complete);
  void Run();

  const Options options_;
  const Clock& clock_;
  std::unique_ptr<IdGenerator> own_ids_;
  IdGenerator& ids_;
  std::shared_ptr<store::Watcher> watch_;

  mutable absl::Mutex mu_;
  absl::Duration period_ ABSL_GUARDED_BY(mu_) = absl::Seconds(5);
  absl::flat_hash_map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  // Latest reported status per task, not yet written.
  std::map<std::string, api::TaskStatus> pending_status_ ABSL_GUARDED_BY(mu_);
  absl::Time last_flush_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The manager list the sessions were last sent (addresses and weights), to send a change
  // once.
  std::string managers_key_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace shoal::manager::dispatcher

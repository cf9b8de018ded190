// The worker agent: a node's side of the Dispatcher API (proto/dispatcher.proto).
//
//   - It keeps a session with the leading manager: it tries the managers it knows (the list
//     it was started with, then the one each session message carries), follows the
//     "shoal-leader-addr" trailer of a follower, and fails over to the next manager with a
//     seeded, jittered back-off when one dies. A session registers the node's description,
//     then heartbeats within the period the dispatcher gives.
//   - It reads the node's assignments (a complete set, then differences) and runs a task
//     controller per task (task_controller.h) on its executor. A task that leaves the set is
//     stopped and removed.
//   - Every status a controller passes through is reported with UpdateTaskStatus: all that one
//     round of the agent's loop produced goes in one call (a batch), and what could not be
//     sent (no session) is sent, latest state per task, once a session is open again.
//   - Alongside each session it listens for the log broker's subscriptions and publishes the
//     selected tasks' output (log_publisher.h), for `service logs`.
//   - With a state directory, it keeps each task it holds, with its observed status, in a
//     RocksDB database there, so that a restarted worker finds its tasks again: running ones
//     are adopted (Executor::Adopt) or reported lost, and those the managers no longer assign
//     are stopped and removed. Writes are not synced: the database is written before the
//     status it holds is reported, and a power loss that forgets a write also ended the
//     processes it describes.
//
// Thread-safety: Start and Stop from one thread; the accessors from any.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dispatcher.grpc.pb.h"
#include "worker/executor.h"
#include "worker/log_publisher.h"
#include "worker/task_controller.h"

namespace rocksdb {
class DB;
}

namespace shoal::worker {

class Agent {
 public:
  struct Options {
    // This node's id (the CN of its certificate), for logs.
    std::string node_id;
    // Managers' API addresses to try first, in order (at least one).
    std::vector<std::string> managers;
    // A channel to a manager (mutual TLS with the node's certificate in a real node).
    std::function<std::shared_ptr<grpc::ChannelInterface>(const std::string& addr)> channel;
    Executor* executor = nullptr;
    // What the session registers: hostname, platform, resources.
    api::NodeDescription description;
    // Where the task database lives; empty: tasks are held in memory only.
    std::string state_dir;
    // How often the loop polls running tasks for their exit (they are also stepped at once
    // whenever their assignment changes).
    absl::Duration poll_interval = absl::Milliseconds(250);
    // Back-off between attempts at managers that give no leader hint: doubles from
    // backoff_initial up to backoff_max, with jitter drawn from `seed`.
    absl::Duration backoff_initial = absl::Milliseconds(50);
    absl::Duration backoff_max = absl::Seconds(5);
    uint64_t seed = 1;
    // Each session message (the node object as the managers see it, the manager list), on
    // the session thread: a node daemon saves the manager list and follows its role.
    std::function<void(const api::SessionMessage&)> on_session;
    // A session the managers refused outright (PERMISSION_DENIED), with their words, on the
    // session thread: a node daemon reads whether its node was removed (`node rm`), and
    // leaves the swarm. The agent itself goes on trying.
    std::function<void(const grpc::Status&)> on_refused;
  };

  // Opens the task database (when there is a state dir) and loads the tasks it holds.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(Options options);
  ~Agent();

  void Start();
  // Ends the session and the loop. Tasks keep running (a restarted worker adopts them): a
  // worker's restart is not a task's.
  void Stop();

  // Leaving the cluster: stops every task (each with its grace period, all within `wait`)
  // and removes what they hold. Call after Stop.
  void ShutdownTasks(absl::Duration wait);

  // Whether a session is open now.
  bool connected() const;
  // Tasks it runs now (RUNNING and wanted so).
  size_t running() const;
  // Sessions opened so far (each reconnection opens another).
  int sessions() const { return sessions_.load(); }
  // The manager it last opened a session with ("" before the first).
  std::string manager() const;
  // The managers it knows now, the current list first as the managers last sent it.
  std::vector<std::string> managers() const;
  // The task states it holds, by task id (for tests and `swarmctl info`).
  std::map<std::string, api::TaskState> tasks() const;

 private:
  explicit Agent(Options options);
  absl::Status Open();

  // The session thread: one session at a time, failing over between managers.
  void RunSessions();
  // One session with `addr` until it fails; the leader's address when the manager said who
  // leads, "" otherwise.
  std::string Serve(const std::string& addr);
  // The loop thread: assignments in, controllers stepped, statuses out.
  void RunLoop();
  // Applies one assignments message to the controllers (under mu_).
  void Apply(const api::AssignmentsMessage& m);
  void Save(const api::Task& task);
  void Forget(const std::string& task_id);
  // Sends what waits to be reported through the current session; false when it could not.
  bool Report();

  Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sessions_{0};
  std::thread session_thread_;
  std::thread loop_thread_;

  mutable absl::Mutex mu_;
  std::vector<std::string> managers_ ABSL_GUARDED_BY(mu_);
  std::string current_ ABSL_GUARDED_BY(mu_);
  // The open session: its id and stub (null between sessions), and its calls to cancel.
  std::string session_id_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<api::Dispatcher::StubInterface> stub_ ABSL_GUARDED_BY(mu_);
  std::vector<grpc::ClientContext*> open_ ABSL_GUARDED_BY(mu_);
  // Assignment messages not applied yet, in order.
  std::vector<api::AssignmentsMessage> inbox_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  // A new session: report every task's status again at the next round.
  bool report_all_ ABSL_GUARDED_BY(mu_) = false;
  // What the accessors show: each task's state and whether it is wanted running.
  std::map<std::string, std::pair<api::TaskState, bool>> states_ ABSL_GUARDED_BY(mu_);
  // The service of each task it holds, for the log publisher.
  std::map<std::string, std::string> services_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<LogPublisher> logs_;

  // The loop thread's own (before Start: Create's).
  std::map<std::string, std::unique_ptr<TaskController>> tasks_;
  // Tasks to forget once they finished: no longer assigned.
  std::map<std::string, bool> unassigned_;
  // Latest status per task not yet reported.
  std::map<std::string, api::TaskStatus> unreported_ ABSL_GUARDED_BY(mu_);
  // Serialises Report's calls.
  absl::Mutex report_mu_;
};

}  // namespace shoal::worker

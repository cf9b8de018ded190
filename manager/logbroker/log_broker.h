// The log broker: `service logs` through the managers, as SwarmKit's manager/logbroker, without
// gRPC (logs_service.h serves it). It runs on the leader, where the workers' sessions are.
//
//   - Subscribe resolves a selector (services, tasks, nodes: a union) against the store to the
//     tasks and the nodes they were assigned to, and sends each of those nodes that listens
//     (ListenSubscriptions) its part: the selected tasks it holds, the selected services (a
//     worker that follows picks up their new tasks there itself) and the node itself when it
//     was selected.
//   - Workers publish lines for a subscription. Every line is checked before any is taken: its
//     task is on the publishing node and the subscription selects it (PERMISSION_DENIED
//     otherwise); the broker stamps it with the task's service and node and queues it for the
//     subscriber. A node ends its part with `close`.
//   - Without follow, a subscription ends once every node with a part has closed it or counts
//     as unreachable: gone from the store or DOWN there, its publish stream broken, or silent
//     (not listening, nothing published) for `node_timeout` while the subscriber waits. The
//     last message lists the unreachable nodes, so `service logs` never hangs on a dead node.
//     With follow, it lasts until the subscriber cancels; a node newly assigned a selected
//     task joins it, and a node that listens again gets its part again from the time of the
//     last line it sent.
//   - A subscriber that reads slowly holds up the workers publishing for it (Publish waits while
//     its queue holds more than `queue_bytes`), not the manager's memory.
//
// Time is the injected clock; the broker's thread (Start) calls Pump and Tick, which tests call
// themselves instead.
//
// Thread-safety: thread-safe; sinks are called without the broker's lock held.
//
//   LogBroker broker({&store});
//   broker.Start();
//   ASSIGN_OR_RETURN(auto sub, broker.Subscribe(request));
//   while (auto next = sub->Read(absl::Now() + absl::Milliseconds(200))) { ... }
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/stream_sink.h"
#include "manager/store/store.h"
#include "proto/logs.pb.h"

namespace shoal::manager::logbroker {

// One subscriber's queue: lines in, messages out.
class LogSubscription {
 public:
  explicit LogSubscription(std::string id) : id_(std::move(id)) {}

  const std::string& id() const { return id_; }

  struct Next {
    api::SubscribeLogsMessage message;
    // The last message: lines left, if any, and the unreachable nodes.
    bool last = false;
  };
  // What comes next for the subscriber, waiting until `deadline` (real time): a batch of lines
  // (at most kMaxBatchLines or about kMaxBatchBytes), or the last message; nullopt when
  // nothing came by then. After the last message: OUT_OF_RANGE. The error the subscription was
  // aborted with (UNAVAILABLE when the broker stopped, CANCELLED when cancelled).
  absl::StatusOr<std::optional<Next>> Read(absl::Time deadline);

  static constexpr size_t kMaxBatchLines = 1000;
  static constexpr size_t kMaxBatchBytes = 1 << 20;

 private:
  friend class LogBroker;

  // Queues `lines`, first waiting while more than `limit` bytes wait; false (nothing queued)
  // once the subscription is over.
  bool Push(std::vector<api::LogMessage> lines, size_t limit);
  // No more lines: the last message follows what is queued.
  void Finish(std::vector<std::string> unreachable);
  // Ends it with `why` at once (what is queued is dropped).
  void Abort(absl::Status why);
  size_t queued_bytes() const;

  const std::string id_;
  mutable absl::Mutex mu_;
  std::deque<api::LogMessage> lines_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool delivered_last_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> unreachable_ ABSL_GUARDED_BY(mu_);
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
};

class LogBroker {
 public:
  struct Options {
    store::Store* store = nullptr;
    const Clock* clock = nullptr;  // default RealClock()
    IdGenerator* ids = nullptr;    // subscription ids; default system randomness
    // How long a node with a part in a subscription (without follow) may stay silent.
    absl::Duration node_timeout = absl::Seconds(5);
    // Bytes a subscriber's queue holds before publishers wait.
    size_t queue_bytes = 4 << 20;
  };

  // Where a worker's ListenSubscriptions stream goes (the gRPC reactor, or a test).
  using ListenerSink = StreamSink<api::SubscriptionMessage>;

  explicit LogBroker(Options options);
  ~LogBroker();

  // Watches the store (follow subscriptions take in newly assigned tasks) and, with
  // `run_thread`, starts the thread that calls Pump and Tick.
  absl::Status Start(bool run_thread = true);
  // Ends every subscription (UNAVAILABLE: subscribe again, to the new leader) and every
  // listener's stream, and stops the thread.
  void Stop();

  // A new subscription. INVALID_ARGUMENT for an empty selector; NOT_FOUND for a service, task
  // or node the store does not have; UNAVAILABLE once stopped.
  absl::StatusOr<std::shared_ptr<LogSubscription>> Subscribe(
      const api::SubscribeLogsRequest& request);
  // The subscriber went away: the nodes are told to stop, publishers waiting are released.
  void Cancel(const std::string& subscription_id);

  // A worker's stream of subscriptions: it is sent every open part it has at once, then each
  // new one and each end (`close`). Replaces (ends) the node's older stream.
  void Listen(const std::string& node_id, std::shared_ptr<ListenerSink> sink);
  // The stream went away.
  void StopListening(const std::string& node_id, const ListenerSink* sink);

  // One message of a worker's PublishLogs stream. NOT_FOUND when the subscription is over (the
  // worker stops); PERMISSION_DENIED (nothing taken, the node's part counts as failed) when the
  // node has no part in it, or a line names a task that is not on the node or not selected.
  // May wait while the subscriber's queue is full.
  absl::Status Publish(const std::string& node_id, const api::PublishLogsMessage& message);
  // The node's publish stream for the subscription ended without `close`. Without follow, the
  // node then counts as unreachable.
  void PublisherGone(const std::string& node_id, const std::string& subscription_id);

  // What the thread does. Pump: handles the store's task events until `deadline` (none waiting:
  // returns). Tick: counts the silent nodes of subscriptions without follow as unreachable and
  // ends the subscriptions that are complete.
  void Pump(absl::Time deadline);
  void Tick();

  // Open subscriptions (for tests and metrics).
  size_t subscriptions() const;

 private:
  struct Part {
    // Selected tasks the node holds (as sent to it).
    std::vector<std::string> task_ids;
    bool closed = false;
    bool unreachable = false;
    // Without follow: when the node counts as unreachable unless it is heard from.
    absl::Time deadline;
    // The time of the last line it sent (follow: where a resent part starts).
    std::optional<absl::Time> last_line;
  };
  struct Sub {
    std::shared_ptr<LogSubscription> queue;
    api::SubscribeLogsRequest request;
    std::set<std::string> service_ids, node_ids, task_ids;
    bool follow = false;
    std::map<std::string, Part> parts;  // by node id
  };
  using Outgoing = std::vector<std::pair<std::shared_ptr<ListenerSink>, api::SubscriptionMessage>>;

  static bool Selects(const Sub& s, const api::Task& t);
  // The node's part of `s` as the message sent to it.
  static api::SubscriptionMessage PartMessage(const std::string& id, const Sub& s,
                                              const std::string& node_id, const Part& part);
  // Sends the node its part, if it listens.
  void SendPartLocked(const std::string& id, const Sub& s, const std::string& node_id,
                      Outgoing* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `id` if complete (no follow, every part closed or unreachable); true when it did.
  bool MaybeFinishLocked(const std::string& id, Outgoing* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the node of a newly assigned task to the follow subscriptions that select it.
  void TakeTaskLocked(const api::Task& t, Outgoing* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Flush(Outgoing* out);
  void Run();

  const Options options_;
  const Clock& clock_;
  std::unique_ptr<IdGenerator> own_ids_;
  IdGenerator& ids_;
  std::shared_ptr<store::Watcher> watch_;

  mutable absl::Mutex mu_;
  std::map<std::string, Sub> subs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<ListenerSink>> listeners_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace shoal::manager::logbroker

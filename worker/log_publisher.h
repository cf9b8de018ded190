// The worker's side of the Logs API (proto/logs.proto): it listens for the subscriptions the
// leader's log broker sends (ListenSubscriptions, one stream per session) and answers each on a
// PublishLogs stream of its own, with the output of the selected tasks as the executor reads
// it back (Executor::OpenLogs).
//
//   - A subscription's part names tasks (read whether they still run or not: their output
//     outlives them), and may name services or this node: the tasks the agent holds of those
//     are read too, and, when following, the ones it gets later.
//   - Lines go out in batches (at most `batch_lines`, about 1 MiB). Without follow, the node's
//     part ends with `close` once every reader is through; with follow, new output is looked
//     for every `poll_interval` until the broker says `close` or the stream ends.
//   - A task the executor keeps no output of (UNIMPLEMENTED, as the sim executor) or never ran
//     here (NOT_FOUND) contributes nothing; a following part tries the latter again (it may
//     not have started yet).
//
// Thread-safety: Serve runs on the caller's thread and one thread per subscription; the
// `tasks` function is called from those threads.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "proto/logs.grpc.pb.h"
#include "worker/executor.h"

namespace shoal::worker {

class LogPublisher {
 public:
  struct Options {
    // This node's id: the lines' context, and the node a part may select.
    std::string node_id;
    Executor* executor = nullptr;
    // The tasks the agent holds now: task id -> service id.
    std::function<std::map<std::string, std::string>()> tasks;
    // How often a follow looks for new output and new tasks.
    absl::Duration poll_interval = absl::Milliseconds(250);
    // Lines in one PublishLogs message at most.
    size_t batch_lines = 500;
  };

  explicit LogPublisher(Options options) : options_(std::move(options)) {}

  // Serves the subscriptions of a ListenSubscriptions stream on `stub` until it ends (the
  // manager went away or stopped leading, or `listen_context` was cancelled), then ends what it
  // serves and returns once their threads ended. Returns the stream's status (UNIMPLEMENTED
  // from a manager without the Logs API).
  grpc::Status Serve(api::Logs::StubInterface& stub, grpc::ClientContext* listen_context);

 private:
  struct Running;
  void Publish(api::Logs::StubInterface& stub, Running& run);

  const Options options_;
};

}  // namespace shoal::worker

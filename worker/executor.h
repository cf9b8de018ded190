// How a worker runs tasks: an Executor makes a TaskRunner per task, which the task's
// controller (task_controller.h) drives through the task's states. Executors: `sim`
// (sim_executor.h, for scale tests), `process` and `oci` (with the node daemon and the
// container issue). An executor that keeps its tasks' output also reads it back for
// `service logs` (OpenLogs).
//
// Thread-safety: a TaskRunner is driven by one controller at a time, a LogReader by one
// thread at a time; Executor::Runner and Executor::OpenLogs are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/objects.pb.h"

namespace shoal::worker {

// How a task's process ended.
struct Exit {
  int code = 0;
  // Why, when it did not simply exit (killed by a signal, lost, ...).
  std::string error;
};

class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  // Everything before the start: image, mounts, secrets, networks. An error here rejects the
  // task (it never ran).
  virtual absl::Status Prepare() = 0;
  // Starts it. An error here fails the task.
  virtual absl::Status Start() = 0;
  // nullopt while it runs; how it ended once it has.
  virtual std::optional<Exit> Poll() = 0;
  // Asks it to stop, and kills it after `grace`.
  virtual absl::Status Stop(absl::Duration grace) = 0;
  // Releases what Prepare took.
  virtual absl::Status Remove() = 0;
};

// Which of a task's output to read (proto/logs.proto's LogSubscriptionOptions).
struct LogOptions {
  bool include_stdout = true;
  bool include_stderr = true;
  // Only the last `tail` lines (of both streams together); negative = all.
  int64_t tail = -1;
  // Only lines written at or after this time.
  absl::Time since = absl::InfinitePast();
  // Keep reading what the task writes next.
  bool follow = false;
};

// One line of a task's output (or a piece of a long one).
struct LogLine {
  bool is_stderr = false;
  // When the task wrote it.
  absl::Time time;
  // The bytes, the newline included when the line had one.
  std::string data;
};

// A task's output, oldest first.
class LogReader {
 public:
  virtual ~LogReader() = default;
  // Appends to `out` the lines there are now, at most `max`. Returns false once there will be
  // no more: without follow, when the selected lines were all read; with follow never (what
  // the task writes next comes in later calls: the caller decides when to stop). An error when
  // the output cannot be read.
  virtual absl::StatusOr<bool> Read(size_t max, std::vector<LogLine>* out) = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // A runner for `task`; an error rejects the task (a spec this executor cannot run).
  virtual absl::StatusOr<std::unique_ptr<TaskRunner>> Runner(const api::Task& task) = 0;
  // A runner for a task that an earlier run of this worker started (the task's saved status
  // says STARTING or RUNNING): it reports how that one ends, and stops it. An error means the
  // task is lost (it fails, naming why). Executors whose tasks cannot outlive the worker lose
  // them all.
  virtual absl::StatusOr<std::unique_ptr<TaskRunner>> Adopt(const api::Task& task) {
    (void)task;
    return absl::NotFoundError("this executor's tasks do not outlive the worker");
  }
  // The output of task `task_id` as it ran on this node, for `service logs`, whether the
  // task still runs or not. NOT_FOUND when it never ran here; UNIMPLEMENTED when the executor
  // keeps no output.
  virtual absl::StatusOr<std::unique_ptr<LogReader>> OpenLogs(const std::string& task_id,
                                                              const LogOptions& options) {
    (void)task_id;
    (void)options;
    return absl::UnimplementedError("this executor keeps no logs");
  }
  // Deletes what is kept of a task that ended and that the cluster deleted (its logs). Called
  // once no runner for it exists. OK when nothing is kept.
  virtual absl::Status DeleteTask(const std::string& task_id) {
    (void)task_id;
    return absl::OkStatus();
  }
};

}  // namespace shoal::worker

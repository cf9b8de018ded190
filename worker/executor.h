// How a worker runs tasks: an Executor makes a TaskRunner per task, which the task's
// controller (task_controller.h) drives through the task's states. Executors: `sim`
// (sim_executor.h, for scale tests), `process` and `oci` (with the node daemon and the
// container issue).
//
// Thread-safety: a TaskRunner is driven by one controller at a time; Executor::Runner is
// thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>

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
};

}  // namespace shoal::worker

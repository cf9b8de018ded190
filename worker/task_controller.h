// One task on a worker: drives its runner through the task's states, forward only, and says
// what to report.
//
//   ASSIGNED -> ACCEPTED -> PREPARING -> READY -> STARTING -> RUNNING -> COMPLETE | FAILED
//
// A fatal error before STARTING rejects the task (REJECTED: it never ran); from STARTING on,
// it fails (FAILED). A task wanted READY (a delayed restart) waits prepared until the manager
// raises its desired state to RUNNING. A task asked to stop (desired state past RUNNING) is
// stopped with its grace period and reported SHUTDOWN; one that never started just is.
// Nothing moves backwards: a manager's copy that lags behind changes only the desired state.
//
// Pure and step-driven: Step does what can be done now and returns the statuses to report;
// the agent calls it again when the task changes or its runner may have exited.
//
// Thread-safety: not thread-safe; one agent thread drives it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/objects.pb.h"
#include "worker/executor.h"

namespace shoal::worker {

class TaskController {
 public:
  // A task saved as STARTING or RUNNING by an earlier run of this worker is adopted
  // (Executor::Adopt); one that cannot be fails at the first step, naming why.
  TaskController(const api::Task& task, Executor& executor);
  ~TaskController();

  // The task as the manager now sends it: its desired state (and spec) may have changed.
  void Update(const api::Task& task);

  // Advances as far as it can at `now`; each status it passed through, in order, to report.
  std::vector<api::TaskStatus> Step(absl::Time now);

  // Lets go of the runner without removing anything: the task goes on without this
  // controller (a worker that stops adopts it again when it restarts).
  void Release() { runner_.reset(); }

  const api::Task& task() const { return task_; }
  api::TaskState state() const { return task_.status().state(); }
  // Whether there is nothing more to do but report (it ended, or stopped).
  bool finished() const { return state() > api::TASK_STATE_RUNNING; }

 private:
  void Move(api::TaskState to, const std::string& message, const std::string& err,
            absl::Time now, std::vector<api::TaskStatus>& out);

  api::Task task_;
  Executor& executor_;
  std::unique_ptr<TaskRunner> runner_;
  bool started_ = false;
  // Why an adopted task could not be found again; empty otherwise.
  std::string lost_;
};

}  // namespace shoal::worker

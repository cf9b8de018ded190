// The `sim` executor: no process at all. A task prepares, starts and runs at once, so one
// machine can hold thousands of simulated workers for scale tests. Images choose a fate:
//
//   sim:reject   preparing fails ("image not found"): the task is rejected;
//   sim:fail     it starts and exits 1 at once: the task fails;
//   sim:exit0    it starts and exits 0 at once: the task completes (jobs);
//   anything else runs until stopped.
//
// It keeps no output: OpenLogs is UNIMPLEMENTED, so `service logs` shows nothing of its tasks.
//
// Thread-safety: thread-safe.
#pragma once

#include "worker/executor.h"

namespace shoal::worker {

class SimExecutor : public Executor {
 public:
  absl::StatusOr<std::unique_ptr<TaskRunner>> Runner(const api::Task& task) override;
};

}  // namespace shoal::worker

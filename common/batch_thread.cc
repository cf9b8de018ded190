#include "common/batch_thread.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace shoal {

absl::Status RunAsBatchThread() {
  sched_param param{};  // SCHED_BATCH takes priority 0
  // On Linux, pid 0 is the calling thread (not the whole process).
  if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    const int err = errno;
    return absl::InternalError(
        absl::StrCat("cannot put this thread under SCHED_BATCH: ", strerror(err)));
  }
  return absl::OkStatus();
}

void TryRunAsBatchThread(absl::string_view component) {
  absl::Status s = RunAsBatchThread();
  static std::atomic<bool> logged{false};
  if (!s.ok() && !logged.exchange(true)) {
    log::Warning(component,
                 "threads keep the default scheduling policy: everything works, a little "
                 "slower under load; allow sched_setscheduler (a seccomp profile) to change that",
                 {{"error", s.ToString()}});
  }
}

bool IsBatchThread() { return sched_getscheduler(0) == SCHED_BATCH; }

}  // namespace shoal

// The `process` executor: runs a task's container spec as a plain host process, for clusters
// without root or images. The image is ignored; argv is `command` then `args`, looked up in PATH
// as execvp does; the environment is a minimal base (PATH, HOME, SHOAL_TASK_ID, SHOAL_SERVICE_ID,
// SHOAL_NODE_ID) overridden by the spec's `env`; `dir`, `user` and `stop_signal` are honoured.
//
// Each task owns `<state_dir>/tasks/<task id>/`:
//
//   stdout.log, stderr.log   the process's output, appended (kept by Remove: see LogFiles)
//   stdout.idx, stderr.idx   per line of output, where it ends in its log and when it was
//                            written (16-byte records, process_supervisor.h), for
//                            `service logs --since/--timestamps/--tail` (OpenLogs)
//   work/                    the default working directory
//   pid                      "<task pid> <start time>\n<supervisor pid> <start time>\n"
//                            (start times are field 22 of /proc/<pid>/stat)
//   exit                     "<code>\n<error text>\n", written once it ended
//
// Supervision survives a restart of the worker daemon: Start forks a supervisor (its own
// session) that forks the task (its own process group, whose id is the task's pid), writes
// `pid`, waits for the task, kills what is left of its process group, and writes `exit`
// atomically (tmp + rename). The task's stdout and stderr are pipes to the supervisor, which
// copies them to the log files and records the time of each line as it reads it (so lines
// have times without a reader in the daemon, and output keeps flowing while the daemon
// restarts); once the task ended, it copies what is left, for at most 2 s more.
// A restarted daemon re-adopts a running task with Adopt: Poll reads `exit`, or reports the
// task lost if both processes are gone without one. Pids are compared with their recorded
// start times, so a reused pid is never mistaken for the task (nor signalled).
//
// Neither runners nor the executor kill anything when destroyed: a restarting daemon re-adopts
// its tasks. Only Stop and Remove end a task.
//
// cgroups v2 where available: when the parent of `cgroup_root` is a writable cgroup2 mount,
// each task runs in `<cgroup_root>/<task id>` with memory.max, cpu.max and pids.max from the
// spec's resource limits. Otherwise tasks run without limits (logged once); a task fails for
// cgroups only if it asked for limits and the cgroup exists but cannot take them.
//
// Thread-safety: the executor's methods are thread-safe; each runner is driven by one
// thread at a time (executor.h).
//
//   ProcessExecutor::Options options;
//   options.state_dir = "/var/lib/shoal/process";
//   ASSIGN_OR_RETURN(auto executor, ProcessExecutor::Create(options));
//   TaskController controller(task, *executor);   // Runner, Prepare, Start, Poll, ...
//   // After a daemon restart, for a task whose directory has a pid file:
//   ASSIGN_OR_RETURN(auto runner, executor->Adopt(task));
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/objects.pb.h"
#include "worker/executor.h"

namespace shoal::worker {

class ProcessRunner;

class ProcessExecutor : public Executor {
 public:
  struct Options {
    // Where task directories live (`<state_dir>/tasks/<task id>`). Required; made if missing.
    std::string state_dir;
    // Parent cgroup of the tasks' cgroups; empty = no cgroups.
    std::string cgroup_root = "/sys/fs/cgroup/shoal";
    // Stop and Remove wait at most this long for a task to end after SIGKILL.
    absl::Duration kill_timeout = absl::Seconds(10);
    // How often a wait re-checks when the kernel cannot notify it (no pidfd).
    absl::Duration poll_interval = absl::Milliseconds(10);
    // Tests: pretend to run as this effective uid (the privilege checks of `user`).
    std::optional<uid_t> effective_uid_for_test;
  };

  // The files a task's output goes to.
  struct LogFiles {
    std::string stdout_path;
    std::string stderr_path;
  };

  // INVALID_ARGUMENT without a state_dir; the error of making it otherwise. Detects cgroups.
  static absl::StatusOr<std::unique_ptr<ProcessExecutor>> Create(Options options);

  // A runner for `task`. INVALID_ARGUMENT (the task is rejected) when the spec has no container,
  // no command nor args, a malformed env entry, an unknown stop signal, or a task id that is not
  // a plain file name.
  absl::StatusOr<std::unique_ptr<TaskRunner>> Runner(const api::Task& task) override;

  // A started runner for `task` whose process an earlier daemon started (its directory has a
  // pid file). Poll and Stop work as on the runner that started it. NOT_FOUND without a pid
  // file; DATA_LOSS if it cannot be read; the errors of Runner.
  absl::StatusOr<std::unique_ptr<TaskRunner>> Adopt(const api::Task& task) override;

  // Where the output of task `task_id` goes (the files may not exist yet). They outlive the
  // runner's Remove, as Docker keeps a container's logs until the container is removed;
  // DeleteTaskFiles deletes them. INVALID_ARGUMENT for an id that is not a plain file name.
  absl::StatusOr<LogFiles> Logs(absl::string_view task_id) const;

  // The task's output for `service logs` (process_logs.h): both streams merged by time, each
  // line with the time the supervisor read it; tail, since, streams and follow as `options`
  // says. Works on tasks that ended and were removed too (their logs stay). NOT_FOUND when
  // the task has no output here; INVALID_ARGUMENT as Logs.
  absl::StatusOr<std::unique_ptr<LogReader>> OpenLogs(const std::string& task_id,
                                                      const LogOptions& options) override;

  // Deletes the task's directory (logs included), for when the task itself is removed. Must
  // not be called while a runner for it exists. OK if there is none; INVALID_ARGUMENT as Logs.
  absl::Status DeleteTaskFiles(absl::string_view task_id);
  absl::Status DeleteTask(const std::string& task_id) override { return DeleteTaskFiles(task_id); }

  // Whether tasks get cgroups (decided by Create).
  bool cgroups_enabled() const { return cgroups_enabled_; }

 private:
  ProcessExecutor(Options options, bool cgroups_enabled);
  absl::StatusOr<std::unique_ptr<ProcessRunner>> MakeRunner(const api::Task& task) const;

  const Options options_;
  const bool cgroups_enabled_;
};

}  // namespace shoal::worker

// The fork-and-exec half of the process executor (process_executor.h), private to worker/:
// the supervisor process, the task process, and reading a process's identity from /proc.
//
// The daemon is multithreaded, so its forked children may only make async-signal-safe calls
// until exec: everything they need (argv, env, paths, ids, descriptors) is prepared in a
// LaunchSpec beforehand and they allocate nothing.
//
// Thread-safety: thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::worker::process_internal {

struct LaunchSpec {
  // argv[0] as given (for messages) and the paths execve tries in order (PATH already applied).
  std::vector<std::string> argv;
  std::vector<std::string> exec_paths;
  // "KEY=value" each.
  std::vector<std::string> env;
  // The task's working directory.
  std::string dir;
  // The task writes its own pid here before exec; empty = no cgroup. When it fails, the start
  // fails only if `cgroup_required` (limits were asked for).
  std::string cgroup_procs;
  bool cgroup_required = false;
  // setgroups/setgid/setuid before exec.
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // Written by the supervisor: "<task pid> <start>\n<supervisor pid> <start>\n", then
  // "<code>\n<error>\n" once the task ended; both through "<path>.tmp" and a rename.
  std::string pid_path;
  std::string exit_path;
  // The files the task's stdout and stderr go to (opened with O_APPEND | O_CLOEXEC).
  int stdout_fd = -1;
  int stderr_fd = -1;
  // With both set, the task writes into pipes that the supervisor copies to stdout_fd and
  // stderr_fd as it reads them, and for each line appends a record to the stream's index file
  // (opened with O_APPEND | O_CLOEXEC): where the line ends in the log file and when it was
  // read (WriteIndexRecord). -1: the task gets stdout_fd and stderr_fd themselves (no times).
  int stdout_index_fd = -1;
  int stderr_index_fd = -1;
};

// One index record: 16 bytes, little-endian: the offset just past the line's last byte in
// the log file (uint64), then the time the supervisor read it, in nanoseconds since the Unix
// epoch (int64). A line is a run of bytes ending in '\n', or the rest of the output when the
// task's stream closed without one.
inline constexpr size_t kIndexRecordSize = 16;
void EncodeIndexRecord(uint64_t end, int64_t unix_nanos, char out[kIndexRecordSize]);
void DecodeIndexRecord(const char in[kIndexRecordSize], uint64_t* end, int64_t* unix_nanos);

// Forks the supervisor (setsid), which forks the task (its own process group) and supervises it
// as described in process_executor.h: it waits for the task while it copies its output (with
// index files), then kills what is left of the task's process group, copies what remains
// (for at most a second once nothing more comes), and writes the exit file. Returns the
// supervisor's pid once the task has exec'd and the pid file is written. On failure (fork, pid
// file, cgroup, user, chdir, exec) returns the reason, e.g. `exec "foo": No such file or
// directory`, after the supervisor has ended and been reaped. The caller reaps the supervisor
// otherwise.
absl::StatusOr<pid_t> SpawnSupervised(const LaunchSpec& spec);

// Reads field 22 of /proc/<pid>/stat (the start time in clock ticks since boot: with the pid, it
// names one process for good) and field 3 (the state letter, 'Z' for a zombie). False when there
// is no such process. Async-signal-safe.
bool ReadStartTime(pid_t pid, uint64_t* start_time, char* state);

enum class ProcState { kRunning, kZombie, kGone };
// Whether the process `pid` that started at `start_time` still runs, is a zombie, or is gone
// (a different process with the same pid counts as gone).
ProcState StateOf(pid_t pid, uint64_t start_time);

// "SIGTERM" for SIGTERM, and so on for the standard signals; nullptr otherwise.
// Async-signal-safe.
const char* SignalName(int sig);

}  // namespace shoal::worker::process_internal

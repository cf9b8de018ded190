// Reading a process task's output back (private to worker/, for ProcessExecutor::OpenLogs):
// `<dir>/stdout.log` and `stderr.log` with their index files `stdout.idx` and `stderr.idx`
// (process_supervisor.h: a 16-byte record per line, where it ends and when it was read).
//
//   - Lines of both streams come merged by time (stdout first on a tie), each with its time.
//   - `since` skips the lines before it (a binary search in each index); `tail` keeps the last
//     N of what is left, across both streams.
//   - Without follow, the lines are those indexed when the reader was opened; with follow, the
//     lines indexed later come in later reads. A line is shown once it is indexed, i.e. once
//     its newline was written (or 16 KiB of it, or the task's stream closed).
//   - A log without an index (written before the index existed) is split at its newlines, and
//     every line gets the log file's modification time.
//
// Thread-safety: a reader is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/executor.h"

namespace shoal::worker::process_internal {

// A reader of the output in `dir`. NOT_FOUND when it holds neither log file.
absl::StatusOr<std::unique_ptr<LogReader>> OpenTaskLogs(const std::string& dir,
                                                        const LogOptions& options);

}  // namespace shoal::worker::process_internal

// The convergence display of `service create|update|scale|rollback`: where each replica (or,
// for global services, each node) stands, read from the service and its tasks, and the lines
// docker prints for it:
//
//   overall progress: 3 out of 5 tasks
//   1/5: running   [==================================================>]
//   2/5: preparing [=================================>                ]
//   3/5: failed    image "broken" failed
//   verify: Service converged
//
// ComputeProgress is a pure function of one poll; ProgressPrinter turns successive polls into
// output, redrawing in place on a terminal and printing only changed lines otherwise.
//
// Pure (no I/O but the stream given). Not thread-safe (one per command).
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "proto/objects.pb.h"

namespace shoal::cli {

struct SlotProgress {
  // "1/5" for a replica, the node's hostname (or short id) for a global task.
  std::string label;
  // The task's observed state; NEW when the slot has no task yet.
  api::TaskState state = api::TASK_STATE_NEW;
  // Why the task failed or was rejected, or why it is pending ("no suitable node ...").
  std::string message;
  bool done = false;
};

struct Progress {
  std::vector<SlotProgress> slots;
  uint64_t done = 0;
  uint64_t total = 0;
  // Every slot runs the service's current spec and nothing else of it is runnable.
  bool converged = false;
  // Non-empty when waiting is pointless: the update paused or was rolled back.
  std::string failure;
  // A job (counts completions instead of running tasks).
  bool job = false;
};

// What the command did: which update states mean waiting is pointless.
enum class Waiting { kCreate, kUpdate, kRollback };

// `tasks`: every task of the service; `hostnames`: node id -> hostname (global labels).
Progress ComputeProgress(const api::Service& service, const std::vector<api::Task>& tasks,
                         const std::map<std::string, std::string>& hostnames, Waiting waiting);

// The line of one slot: "1/5: running   [=====...>]" or "1/5: failed    <error>".
std::string SlotLine(const SlotProgress& slot);
// "overall progress: 3 out of 5 tasks" (jobs: "job progress: 3 out of 5 complete").
std::string OverallLine(const Progress& p);

class ProgressPrinter {
 public:
  // `tty`: redraw in place with ANSI cursor movement; otherwise print changed lines only.
  ProgressPrinter(std::ostream& out, bool tty) : out_(out), tty_(tty) {}
  void Show(const Progress& p);

 private:
  std::ostream& out_;
  const bool tty_;
  size_t drawn_ = 0;
  std::string last_overall_;
  std::map<std::string, std::string> last_lines_;
};

}  // namespace shoal::cli

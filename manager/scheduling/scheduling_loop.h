// The leader's scheduling loop: feeds the pure scheduler (scheduler/) from the store and
// writes its decisions back.
//
// It watches nodes and tasks (after listing them, so it misses nothing), hands each change to
// the Scheduler, and after each burst of events schedules and writes, in batches proposed as
// the leader of its term: an assignment (node_id, ASSIGNED, the generic resources taken) for
// each task placed, and the reason for each task whose pending reason changed (status.err,
// which `service ps` shows). A task changed meanwhile (removed, no longer pending) is left
// alone. Whatever the writes did, the tasks are then handed to the scheduler again as stored,
// so its accounting follows the store and not its hopes.
//
// Level-triggered: a new leader's loop starts from what it lists. When its watch is closed
// (the store restored a snapshot, or the loop fell behind) it lists again.
//
// Thread-safety: Start and Stop from one owner thread; Step only while not started.
#pragma once

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/store/store.h"
#include "manager/watch_loop.h"
#include "scheduler/scheduler.h"

namespace shoal::manager::scheduling {

class SchedulingLoop {
 public:
  struct Options {
    store::Store* store = nullptr;
    const Clock* clock = nullptr;  // default RealClock()
    // The leader term the writes are proposed in (0: any; tests).
    uint64_t leader_term = 0;
  };

  explicit SchedulingLoop(Options options);
  ~SchedulingLoop();

  // Runs Step on a thread of its own until Stop.
  void Start();
  void Stop();

  // Waits until `deadline` for changes (none: returns at once with what there is), then
  // schedules and writes. Returns the tasks assigned.
  size_t Step(absl::Time deadline);

  // Counters.
  uint64_t assigned() const { return assigned_; }
  uint64_t write_failures() const { return write_failures_; }

 private:
  void Resync();
  void Handle(const store::Event& e);
  size_t ScheduleAndWrite();

  const Options options_;
  const Clock& clock_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  bool dirty_ = false;
  uint64_t assigned_ = 0;
  uint64_t write_failures_ = 0;
  WatchLoop loop_;
};

}  // namespace shoal::manager::scheduling

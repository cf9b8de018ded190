// The leader's orchestrator loop: keeps every service's tasks as its spec asks (replicated
// and global services, restarts, node failures, removal) and reaps old tasks, by running the
// reconcile functions (reconcile.h) on what the store holds and writing their actions.
//
// It watches services, tasks, nodes and the cluster after listing them. A change marks the
// services it concerns (a task's service; every service for a node or the cluster); each step
// reconciles the marked ones and those whose delayed restarts are due, and writes creates,
// desired-state updates and deletions in batches as the leader of its term. A write refused
// because a task changed meanwhile (ABORTED) marks the service again: the next step decides
// on the new state.
//
// Thread-safety: Start and Stop from one owner thread; Step only while not started.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/id.h"
#include "manager/orchestrator/reconcile.h"
#include "manager/store/store.h"
#include "manager/watch_loop.h"

namespace shoal::manager::orchestrator {

class OrchestratorLoop {
 public:
  struct Options {
    store::Store* store = nullptr;
    const Clock* clock = nullptr;  // default RealClock()
    uint64_t leader_term = 0;      // 0: any (tests)
    IdGenerator* ids = nullptr;    // default: a generator of system randomness
  };

  explicit OrchestratorLoop(Options options);
  ~OrchestratorLoop();

  void Start();
  void Stop();

  // Waits until `deadline` (or the earliest due restart) for changes, then reconciles what
  // they concern and writes. Returns the number of changes written.
  size_t Step(absl::Time deadline);

  uint64_t write_failures() const { return write_failures_; }

 private:
  void Resync();
  void Handle(const store::Event& e);
  size_t Reconcile();

  const Options options_;
  const Clock& clock_;
  std::unique_ptr<IdGenerator> own_ids_;
  IdGenerator& ids_;
  RestartHistory history_;
  std::set<std::string> dirty_;
  bool all_dirty_ = false;
  std::map<std::string, absl::Time> wake_;
  uint64_t write_failures_ = 0;
  WatchLoop loop_;
};

}  // namespace shoal::manager::orchestrator

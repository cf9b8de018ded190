// The manager's leader-only components (orchestrator, allocator, scheduling loops, the
// dispatcher, the log broker and the role manager), started when this manager becomes the
// announced leader of a term and stopped when it loses it.
//
// Raft reports leadership on its node thread (StoreStateMachine's on_leadership), where
// nothing may block; stopping a loop may wait for a write it has in flight, which needs that
// very thread. So changes are queued and acted on by a thread of this class, in order. Each
// component proposes as the leader of its term (Store::Update with the term), so whatever a
// component of a deposed leader still writes is refused.
//
// Thread-safety: OnLeadership from any thread; the rest from the owner.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/id.h"
#include "manager/allocator/allocator.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/dispatcher/dispatcher_service.h"
#include "manager/logbroker/log_broker.h"
#include "manager/logbroker/logs_service.h"
#include "manager/orchestrator/orchestrator_loop.h"
#include "manager/role_manager.h"
#include "manager/scheduling/scheduling_loop.h"
#include "manager/store/store.h"

namespace shoal::manager {

class LeaderComponents {
 public:
  struct Options {
    store::Store* store = nullptr;
    const Clock* clock = nullptr;  // default RealClock()
    IdGenerator* ids = nullptr;    // default: system randomness
    // Where the leader's dispatcher is served (optional).
    dispatcher::DispatcherService* dispatcher_service = nullptr;
    // Where the leader's log broker is served (optional).
    logbroker::LogsService* logs_service = nullptr;
    // The Raft membership, for promotions and demotions (optional: no role manager).
    Membership* membership = nullptr;
  };

  explicit LeaderComponents(Options options);
  // Stops the components (as a loss of leadership) and the thread.
  ~LeaderComponents();

  // Raft's report (raft::StateMachine::LeadershipChanged); never blocks.
  void OnLeadership(bool leading, uint64_t term);

  // The term the components run for, 0 when stopped (after the queue was acted on).
  uint64_t running_term() const;
  // Waits until every report so far has been acted on.
  void Drain();

 private:
  void Run();
  void StartAll(uint64_t term);
  void StopAll();

  const Options options_;
  std::unique_ptr<orchestrator::OrchestratorLoop> orchestrator_;
  std::unique_ptr<allocator::AllocatorLoop> allocator_;
  std::unique_ptr<scheduling::SchedulingLoop> scheduler_;
  std::shared_ptr<dispatcher::Dispatcher> dispatcher_;
  std::shared_ptr<logbroker::LogBroker> log_broker_;
  std::unique_ptr<RoleManager> roles_;

  mutable absl::Mutex mu_;
  std::deque<std::pair<bool, uint64_t>> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool quitting_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t term_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace shoal::manager

// The orchestrators' decisions, as pure functions of a service, its tasks, the nodes and the
// time: what tasks to create, which to update (desired state) and which to delete. The loop
// (orchestrator_loop.h) reads them from the store and writes the result; a new leader runs the
// same functions on what it finds, so the work is level-triggered.
//
// Replicated services (ReconcileReplicated), as Docker Swarm runs them:
//   - Slots 1..replicas each keep one runnable task (desired state at most RUNNING). A missing
//     slot gets a new task (NEW, for the allocator and then the scheduler).
//   - Scale down: the surplus slots' tasks get desired state REMOVE (the reaper deletes them
//     once stopped). Tasks not yet running go first, then those on the nodes holding most of
//     the service's tasks, then the highest slots.
//   - A task that stopped while wanted is restarted per the restart policy: condition any
//     (default), on-failure (not after a clean exit) or none; at most max_attempts restarts
//     within the window (0: unlimited). The old task gets desired SHUTDOWN; the new one starts
//     with desired state READY (it is scheduled and prepared but not started) and is raised to
//     RUNNING once the delay (default 5 s) has passed since the old one stopped.
//   - A task on a node that is drained, down or gone, or whose labels no longer match the
//     service's constraints (the constraint enforcer), is shut down and replaced at once.
//   - Rolling update (and rollback, with the rollback config): when tasks run an older spec
//     version than the service's, update_status goes to UPDATING (ROLLBACK_STARTED), then
//     `parallelism` slots at a time (default 1, 0 = all) are replaced: stop-first (default)
//     shuts the old task down and creates the new one once it stopped; start-first creates
//     the new one and shuts the old one down once the new one runs. A replaced slot is in
//     flight until its new task has run for `monitor` (default 5 s); the next batch waits for
//     the batch in flight and then `delay`. When more than max_failure_ratio of the updated
//     tasks failed (FAILED, REJECTED), the failure action applies: pause (PAUSED, the
//     default), continue, or rollback (the previous spec becomes the spec again, and rolls
//     out with the rollback config). COMPLETED (ROLLBACK_COMPLETED) when every slot runs the
//     spec. A new spec written by the control API clears update_status.
//   - Extra runnable tasks in one slot (after a leader change mid-write) keep the newest.
//
// Global services (ReconcileGlobal): one runnable task per eligible node (READY, ACTIVE and
// matching the constraints), bound to that node; tasks on nodes that stopped being eligible are
// shut down (REMOVE); a task that stopped is restarted per its policy as above.
//
// Task reaper (Reap): deletes tasks with desired REMOVE once they are stopped (or never
// reached a node), and per slot (per node for global services) keeps `history` tasks in all,
// the runnable one included (the cluster's task_history_retention_limit, default 5).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/id.h"
#include "proto/objects.pb.h"

namespace shoal::manager::orchestrator {

// What to write for one service.
struct Actions {
  std::vector<api::Task> create;
  // Tasks as read, with their new desired state (the write is a CAS on the version read).
  std::vector<api::Task> update;
  // Task ids to delete.
  std::vector<std::string> remove;
  // The service with a new update_status (or, for a rollback, its previous spec), as read
  // otherwise (the write is a CAS).
  std::optional<api::Service> service;
  // When to reconcile the service again though nothing changed (a delayed start is due);
  // InfiniteFuture when never.
  absl::Time wake = absl::InfiniteFuture();

  bool empty() const {
    return create.empty() && update.empty() && remove.empty() && !service.has_value();
  }
};

// Restarts the orchestrator made, per (service, slot or node), for max_attempts. Kept by the
// loop in memory, as SwarmKit does: a new leader starts counting afresh.
class RestartHistory {
 public:
  void Record(const std::string& service_id, const std::string& slot_key, absl::Time at);
  // Restarts at or after `since`.
  uint64_t Count(const std::string& service_id, const std::string& slot_key,
                 absl::Time since) const;
  void Forget(const std::string& service_id);

 private:
  std::map<std::pair<std::string, std::string>, std::deque<absl::Time>> restarts_;
};

using NodeLookup = std::function<const api::Node*(const std::string& id)>;

// A new task of `service` for `slot` (replicated) or bound to `node_id` (global).
api::Task NewTask(const api::Service& service, uint64_t slot, const std::string& node_id,
                  std::string id, api::TaskState desired);

Actions ReconcileReplicated(const api::Service& service,
                            const std::vector<const api::Task*>& tasks, const NodeLookup& nodes,
                            RestartHistory& history, absl::Time now, IdGenerator& ids);

Actions ReconcileGlobal(const api::Service& service, const std::vector<const api::Task*>& tasks,
                        const std::vector<const api::Node*>& all_nodes, RestartHistory& history,
                        absl::Time now, IdGenerator& ids);

// Jobs (replicated-job and global-job): the tasks of the service's current job_iteration run
// to completion. A replicated job runs total_completions tasks (default: max_concurrent, or
// 1), max_concurrent at a time (default: all); a global job one per eligible node. A task that
// completes (exit 0) is done; one that fails is run again per the restart policy (condition
// none: not at all; max_attempts within the window), whatever the condition says about clean
// exits. Tasks of an earlier iteration still wanted are shut down (a re-run replaces them).
Actions ReconcileJob(const api::Service& service, const std::vector<const api::Task*>& tasks,
                     const std::vector<const api::Node*>& all_nodes, RestartHistory& history,
                     absl::Time now, IdGenerator& ids);

// Tasks of a service that no longer exists: every one not yet REMOVE gets desired REMOVE.
Actions RemoveAll(const std::vector<const api::Task*>& tasks);

// Deletions by the reaper, for one service's tasks (or a removed service's).
std::vector<std::string> Reap(const std::vector<const api::Task*>& tasks, int64_t history);

}  // namespace shoal::manager::orchestrator

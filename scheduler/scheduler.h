// The scheduler's logic: which node each pending task goes to, or why it stays pending.
//
// It is level-triggered, like the rest of the control plane: the loop that feeds it from the
// store (manager/) hands it every node and task as they are now (UpsertNode, UpsertTask,
// RemoveNode, RemoveTask), in any order and as often as it likes, and calls Schedule when
// something changed. What a task takes from its node follows from the task alone:
//
//   - PENDING, desired state at most RUNNING: waits for a node (a task whose node_id is set,
//     a global service's, waits for that node);
//   - ASSIGNED to RUNNING with a node: holds its reservations and host ports on that node and,
//     while its desired state is at most RUNNING, counts as one of the node's tasks;
//   - past RUNNING: holds nothing. A task seen going from at most RUNNING to FAILED or
//     REJECTED counts as a failure of its service version on its node.
//
// Schedule places the tasks of one service at one spec version as one batch (their specs
// are the same by construction), so the filters that depend on the node alone run once per
// batch and not once per task. Within a batch:
//
//   - spread preferences split the tasks over the values of each attribute so the counts of
//     the service's tasks per value end as even as room allows (nodes lacking the attribute
//     form one group);
//   - within a group, each task goes to the best-ranked node that still fits it: nodes where
//     the version failed `max_failures` times within `failure_window` last, then fewest tasks
//     of the service, then fewest tasks in all, then node id.
//
// An assignment is accounted at once, as if written; when its write fails, the loop hands the
// task back as stored (UpsertTask) and the accounting follows.
//
// Not thread-safe: one loop owns it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proto/objects.pb.h"
#include "scheduler/filter.h"
#include "scheduler/node_info.h"

namespace shoal::scheduler {

class Scheduler {
 public:
  struct Options {
    // A node where a service version failed this many times within the window is tried last
    // for that version (SwarmKit's figures).
    int max_failures = 5;
    absl::Duration failure_window = absl::Minutes(5);
  };

  // What Schedule decided for one task.
  struct Decision {
    std::string task_id;
    // The node the task is assigned to; empty when it stays pending.
    std::string node_id;
    // Generic resources taken on the node (named values, and counts), for the task's
    // assigned_generic_resources.
    std::vector<api::GenericResource> generic;
    // Why the task stays pending (for its status.err), when node_id is empty.
    std::string reason;
  };

  explicit Scheduler(const Clock& clock) : Scheduler(clock, Options()) {}
  Scheduler(const Clock& clock, Options options);

  void UpsertNode(const api::Node& node);
  void RemoveNode(absl::string_view node_id);
  void UpsertTask(const api::Task& task);
  void RemoveTask(absl::string_view task_id);

  // Places what can be placed. Returns an assignment for each task placed, and a pending
  // reason for each task left pending whose reason differs from its status.err as last
  // handed in (or as last returned), so an unchanged reason costs no write.
  std::vector<Decision> Schedule();

  // Tasks waiting for a node.
  size_t pending() const { return pending_; }
  // The node's accounting, or null for a node never seen.
  const NodeInfo* node(absl::string_view id) const;

 private:
  using GroupKey = std::pair<std::string, uint64_t>;  // service id, spec version
  using TaskKey = std::pair<uint64_t, std::string>;   // slot, task id

  struct TaskRecord {
    api::TaskState state = api::TASK_STATE_NEW;
    std::string service_id;
    uint64_t version = 0;
    // Where it holds resources, when accounted.
    std::string node_id;
    std::optional<TaskUse> use;
    // Its place in the queue, when pending.
    bool queued = false;
    uint64_t slot = 0;
    std::string reason;
  };

  struct Group {
    // One task of the batch, for the spec.
    api::Task example;
    // The batch's tasks: the node each is bound to ("" for any).
    std::map<TaskKey, std::string> tasks;
  };

  class Batch;

  // What one Schedule call computes once for all its batches: nodes do not change during it.
  // Node maps: a batch holds pointers to entries while adding others.
  struct NodeCache {
    // CheckPlacement of every node (in nodes_ order), by PlacementSignature.
    absl::node_hash_map<std::string, std::vector<std::optional<Rejection>>> placement;
    // Every node's value of a spread attribute, by the attribute as written.
    absl::node_hash_map<std::string, std::vector<std::optional<absl::string_view>>> values;
  };

  NodeInfo& NodeFor(const std::string& id);
  void MaybeErase(const std::string& node_id);
  void Unaccount(TaskRecord& r);
  void Unqueue(const std::string& task_id, TaskRecord& r);
  void Assign(const std::string& task_id, NodeInfo& node, const Demand& d,
              std::vector<Decision>& out);
  void SetReason(const std::string& task_id, const std::string& reason,
                 std::vector<Decision>& out);
  void ScheduleGroup(Group& group, absl::Time now, NodeCache& cache,
                     std::vector<Decision>& out);

  const Clock& clock_;
  const Options options_;
  // Ordered by id so every walk over nodes, and so every decision, is deterministic.
  std::map<std::string, NodeInfo, std::less<>> nodes_;
  absl::flat_hash_map<std::string, TaskRecord> tasks_;
  std::map<GroupKey, Group> groups_;
  size_t pending_ = 0;
  absl::Time last_prune_ = absl::InfinitePast();
};

}  // namespace shoal::scheduler

// What the scheduler knows of one node: the node as stored, what its tasks reserve (CPU,
// memory, generic resources, host-mode ports), how many tasks it runs in all and per service,
// and the recent failures of each service version on it.
//
// The accounting is by difference: `Add(use)` and `Remove(use)` of the same TaskUse cancel
// out, so the scheduler can undo an assignment whose write failed. What is free is the node's
// total (from its description) minus what its tasks use, computed on demand, so a node that
// reports new resources keeps its tasks' reservations.
//
// Not thread-safe; owned by one Scheduler.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/objects.pb.h"

namespace shoal::scheduler {

// A host-mode published port as one number: the protocol (api::PortConfig::Protocol) in the
// high 16 bits, the port in the low.
inline uint32_t HostPortKey(int protocol, uint32_t port) {
  return (static_cast<uint32_t>(protocol) << 16) | (port & 0xffff);
}

// What one task takes from its node while it counts there.
struct TaskUse {
  std::string service_id;
  // Counts in the node's task totals (its desired state is at most RUNNING). A task being
  // shut down still holds its reservations until it stops, but no longer counts as one of
  // the service's tasks there.
  bool active = true;
  int64_t nano_cpus = 0;
  int64_t memory_bytes = 0;
  // Generic resources taken: named values ("gpu", "GPU-1") and counts ("ssd", 2).
  std::vector<std::pair<std::string, std::string>> named;
  std::vector<std::pair<std::string, int64_t>> discrete;
  std::vector<uint32_t> host_ports;  // HostPortKey
};

// The use a task makes of its node: its reservations, its assigned generic resources and its
// host-mode ports. `active` from its desired state.
TaskUse UseOf(const api::Task& task);

class NodeInfo {
 public:
  explicit NodeInfo(std::string id) : id_(std::move(id)) {}

  const std::string& id() const { return id_; }

  // The node as stored; false while the node is unknown or removed (its tasks may still be
  // accounted, for when it returns).
  bool present() const { return present_; }
  const api::Node& node() const { return node_; }
  void SetNode(const api::Node& node);
  void ClearNode();

  void Add(const TaskUse& use);
  void Remove(const TaskUse& use);

  // Free resources: the node's total minus what its tasks reserve (may be negative when a
  // node reports less than its tasks already hold).
  int64_t free_nano_cpus() const { return total_cpus_ - used_cpus_; }
  int64_t free_memory_bytes() const { return total_memory_ - used_memory_; }
  // Free units of a generic resource kind: free named values plus free count.
  int64_t free_generic(absl::string_view kind) const;
  // Takes `count` units of `kind` for a task: named values first (in the node's order), then
  // the count. Call only when free_generic(kind) >= count.
  void TakeGeneric(absl::string_view kind, int64_t count,
                   std::vector<std::pair<std::string, std::string>>& named,
                   std::vector<std::pair<std::string, int64_t>>& discrete) const;

  bool host_port_in_use(uint32_t key) const { return host_port_holders_.contains(key); }

  // Active tasks on the node, in all and of one service.
  int64_t tasks() const { return tasks_; }
  int64_t tasks_of(absl::string_view service_id) const;
  bool has_tasks() const { return uses_ > 0; }

  // Failures of a service version on this node, for ranking: a node where the version failed
  // often lately is tried last.
  void AddFailure(absl::string_view service_id, uint64_t version, absl::Time at);
  int RecentFailures(absl::string_view service_id, uint64_t version, absl::Time now,
                     absl::Duration window);
  // Forgets failures older than `window`; true while some remain.
  bool PruneFailures(absl::Time now, absl::Duration window);

 private:
  std::string id_;
  bool present_ = false;
  api::Node node_;
  int64_t total_cpus_ = 0;
  int64_t total_memory_ = 0;
  // The node's generic resources: named values by kind, in the order the node lists them,
  // and counts by kind.
  absl::flat_hash_map<std::string, std::vector<std::string>> total_named_;
  absl::flat_hash_map<std::string, int64_t> total_discrete_;

  int64_t used_cpus_ = 0;
  int64_t used_memory_ = 0;
  absl::flat_hash_set<std::string> used_named_;  // "kind\0value"
  absl::flat_hash_map<std::string, int64_t> used_discrete_;
  // Tasks holding each port: two tasks of a service in its shutdown and its start may hold
  // the same port for a moment.
  absl::flat_hash_map<uint32_t, int> host_port_holders_;

  int64_t tasks_ = 0;
  int64_t uses_ = 0;
  absl::flat_hash_map<std::string, int64_t> service_tasks_;
  absl::flat_hash_map<std::pair<std::string, uint64_t>, std::deque<absl::Time>> failures_;
};

}  // namespace shoal::scheduler

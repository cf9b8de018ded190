// The filter pipeline: whether a node can take one more task of a batch, and if not, which
// filter turned it down. The filters run in Docker Swarm's order, and the first that fails
// names the node's rejection:
//
//   1. ready and active: the node is READY, and neither paused nor drained;
//   2. reservations fit: CPU, memory and generic resources the task reserves are free;
//   3. constraints: every placement constraint holds;
//   4. platform: the node's OS and architecture are among the image's platforms;
//   5. host-mode ports: no task on the node holds a port the task publishes in host mode;
//   6. max replicas per node: the node runs fewer of the service's tasks than the limit.
//
// Filters 1, 3 and 4 depend on the node alone and are checked once per batch; 2, 5 and 6
// change as the batch fills the node and are checked again before each task.
//
// Rejections counts what each filter turned down, so a task that fits nowhere stays pending
// with a reason that says why node by node: "no suitable node (insufficient memory on 3
// nodes; constraint node.labels.zone==a not satisfied on 2 nodes)". Docker Swarm says only
// "insufficient resources" and "scheduling constraints not satisfied"; we name the resource,
// the constraint and the port.
//
// Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/objects.pb.h"
#include "scheduler/constraint.h"
#include "scheduler/node_info.h"

namespace shoal::scheduler {

// What every task of one batch (one service at one spec version) asks of a node.
struct Demand {
  std::string service_id;
  uint64_t version = 0;
  int64_t nano_cpus = 0;
  int64_t memory_bytes = 0;
  // Generic resources reserved, by kind: ("gpu", 1).
  std::vector<std::pair<std::string, int64_t>> generic;
  // Host-mode published ports (HostPortKey).
  std::vector<uint32_t> host_ports;
  std::vector<Constraint> constraints;
  // The image's platforms, architectures normalised (x86_64 -> amd64, aarch64 -> arm64).
  std::vector<api::Platform> platforms;
  uint64_t max_replicas = 0;
  // Spread preferences, outermost first: the attribute each splits the nodes by.
  std::vector<Constraint> spread;
};

// The demand of `task`'s batch. INVALID_ARGUMENT naming the field for a spec the scheduler
// cannot act on: a malformed constraint or spread preference, a negative reservation, a
// generic reservation that is not a positive count.
absl::StatusOr<Demand> DemandOf(const api::Task& task);

// Why a node was turned down, or kNone.
struct Rejection {
  // In the pipeline's order.
  enum class Why : uint8_t {
    kNone,
    kNotReady,
    kPaused,
    kDrained,
    kMemory,
    kCpu,
    kGeneric,
    kConstraint,
    kPlatform,
    kHostPort,
    kMaxReplicas,
  };
  Why why = Why::kNone;
  // Which generic resource, constraint or host port of the Demand (its index).
  uint32_t detail = 0;

  bool ok() const { return why == Why::kNone; }
};

// Every filter, in order.
Rejection Check(const Demand& d, const NodeInfo& n);
// The filters whose answer changes as tasks are added: reservations, host ports, max replicas.
Rejection CheckDynamic(const Demand& d, const NodeInfo& n);

// The parts, for callers that cache what depends on the node alone (Check is these in order):
// filter 1;
Rejection CheckReady(const NodeInfo& n);
// filter 2;
Rejection CheckResources(const Demand& d, const NodeInfo& n);
// filters 3 and 4, which depend on the node's labels and description and on the demand's
// constraints and platforms alone (PlacementSignature);
Rejection CheckPlacement(const Demand& d, const api::Node& node);
// filters 5 and 6.
Rejection CheckHeld(const Demand& d, const NodeInfo& n);

// Equal for two demands whose CheckPlacement answers are equal on every node.
std::string PlacementSignature(const Demand& d);

// Rejections of one batch, counted by filter and detail.
class Rejections {
 public:
  void Add(Rejection r) { ++counts_[{r.why, r.detail}]; }
  int64_t total() const;
  // "no suitable node (<most rejections first>; ...)", or "no suitable node (the cluster has
  // no nodes)" when nothing was rejected.
  std::string Explain(const Demand& d) const;

 private:
  std::map<std::pair<Rejection::Why, uint32_t>, int64_t> counts_;
};

}  // namespace shoal::scheduler

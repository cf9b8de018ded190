#include "scheduler/scheduler.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace shoal::scheduler {
namespace {

// A node in the running for one batch, with its rank.
struct Candidate {
  bool faulty = false;
  int64_t service_tasks = 0;
  int64_t tasks = 0;
  size_t ordinal = 0;  // the node's place in id order
  NodeInfo* node = nullptr;

  // Better candidates are smaller.
  bool operator>(const Candidate& o) const {
    return std::tie(faulty, service_tasks, tasks, ordinal) >
           std::tie(o.faulty, o.service_tasks, o.tasks, o.ordinal);
  }
};

using CandidateHeap =
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>>;

// How many of `m` tasks each branch gets so the counts end as level as possible: the branches
// with the fewest tasks are raised first. `counts` is sorted ascending; ties in the remainder
// go to the earlier branches.
std::vector<int64_t> WaterFill(const std::vector<int64_t>& counts, int64_t m) {
  const size_t k = counts.size();
  std::vector<int64_t> quotas(k, 0);
  if (k == 0 || m <= 0) return quotas;
  int64_t level = counts[0];
  size_t j = 1;
  while (j < k && counts[j] == level) ++j;
  int64_t remaining = m;
  while (true) {
    // Raising the first j branches to the next count costs j * (next - level).
    if (j < k && (counts[j] - level) * static_cast<int64_t>(j) <= remaining) {
      remaining -= (counts[j] - level) * static_cast<int64_t>(j);
      level = counts[j];
      while (j < k && counts[j] == level) ++j;
      continue;
    }
    const int64_t each = remaining / static_cast<int64_t>(j);
    const int64_t extra = remaining % static_cast<int64_t>(j);
    for (size_t i = 0; i < j; ++i) {
      quotas[i] = level + each - counts[i] + (static_cast<int64_t>(i) < extra ? 1 : 0);
    }
    return quotas;
  }
}

}  // namespace

// One batch being placed: the nodes that passed the node-only filters, arranged in the spread
// tree, and what was rejected.
class Scheduler::Batch {
 public:
  Batch(Scheduler& s, const Demand& d, absl::Time now, NodeCache& cache)
      : s_(s), d_(d), now_(now), cache_(cache) {}

  // Filters every node; builds the tree of spread groups over the nodes that passed.
  void Prepare() {
    std::vector<std::optional<Rejection>>& placement =
        cache_.placement[PlacementSignature(d_)];
    placement.resize(s_.nodes_.size());
    spread_values_.reserve(d_.spread.size());
    for (const Constraint& attr : d_.spread) {
      auto& values = cache_.values[attr.text];
      if (values.empty()) {
        values.reserve(s_.nodes_.size());
        for (const auto& [id, node] : s_.nodes_) values.push_back(NodeValue(attr, node.node()));
      }
      spread_values_.push_back(&values);
    }
    std::vector<Candidate> eligible;
    size_t ordinal = 0;
    for (auto& [id, node] : s_.nodes_) {
      const size_t at = ordinal++;
      if (!node.present()) continue;
      Rejection r = CheckReady(node);
      if (r.ok()) r = CheckResources(d_, node);
      if (r.ok()) {
        if (!placement[at]) placement[at] = CheckPlacement(d_, node.node());
        r = *placement[at];
      }
      if (r.ok()) r = CheckHeld(d_, node);
      if (!r.ok()) {
        rejections_.Add(r);
        continue;
      }
      Candidate c;
      c.node = &node;
      c.ordinal = at;
      c.service_tasks = node.tasks_of(d_.service_id);
      c.tasks = node.tasks();
      c.faulty = node.RecentFailures(d_.service_id, d_.version, now_,
                                     s_.options_.failure_window) >= s_.options_.max_failures;
      eligible.push_back(c);
    }
    Build(root_, std::move(eligible), 0);
  }

  // Places up to `n` tasks; `take` is called with each task's node, in order.
  int64_t Place(int64_t n, const std::function<void(NodeInfo&)>& take) {
    take_ = &take;
    return PlaceOn(root_, n);
  }

  const Rejections& rejections() const { return rejections_; }

 private:
  struct Branch {
    std::string value;
    // Tasks of the service on the branch's nodes.
    int64_t count = 0;
    std::vector<Branch> children;  // by value; empty for a leaf
    CandidateHeap heap;            // a leaf's nodes
  };

  void Build(Branch& b, std::vector<Candidate> nodes, size_t depth) {
    for (const Candidate& c : nodes) b.count += c.service_tasks;
    if (depth == d_.spread.size()) {
      b.heap = CandidateHeap(std::greater<Candidate>(), std::move(nodes));
      return;
    }
    std::map<absl::string_view, std::vector<Candidate>> by_value;
    const auto& values = *spread_values_[depth];
    for (const Candidate& c : nodes) by_value[values[c.ordinal].value_or("")].push_back(c);
    for (auto& [value, members] : by_value) {
      Branch& child = b.children.emplace_back();
      child.value = std::string(value);
      Build(child, std::move(members), depth + 1);
    }
  }

  int64_t PlaceOn(Branch& b, int64_t n) {
    int64_t placed = 0;
    if (b.children.empty()) {
      while (placed < n && !b.heap.empty()) {
        Candidate c = b.heap.top();
        b.heap.pop();
        const Rejection r = CheckDynamic(d_, *c.node);
        if (!r.ok()) {
          // The batch's tasks are all alike and nodes only fill up: a node that cannot take
          // one more cannot take any.
          rejections_.Add(r);
          continue;
        }
        (*take_)(*c.node);
        ++c.service_tasks;
        ++c.tasks;
        b.heap.push(c);
        ++placed;
      }
      b.count += placed;
      return placed;
    }
    std::vector<Branch*> open;
    for (Branch& child : b.children) open.push_back(&child);
    while (placed < n && !open.empty()) {
      std::stable_sort(open.begin(), open.end(),
                       [](const Branch* x, const Branch* y) { return x->count < y->count; });
      std::vector<int64_t> counts;
      for (const Branch* child : open) counts.push_back(child->count);
      const std::vector<int64_t> quotas = WaterFill(counts, n - placed);
      std::vector<Branch*> still_open;
      for (size_t i = 0; i < open.size(); ++i) {
        if (quotas[i] == 0) {
          still_open.push_back(open[i]);
          continue;
        }
        const int64_t got = PlaceOn(*open[i], quotas[i]);
        placed += got;
        if (got == quotas[i]) still_open.push_back(open[i]);
      }
      open = std::move(still_open);
    }
    b.count += placed;
    return placed;
  }

  Scheduler& s_;
  const Demand& d_;
  const absl::Time now_;
  NodeCache& cache_;
  std::vector<const std::vector<std::optional<absl::string_view>>*> spread_values_;
  Rejections rejections_;
  Branch root_;
  const std::function<void(NodeInfo&)>* take_ = nullptr;
};

Scheduler::Scheduler(const Clock& clock, Options options)
    : clock_(clock), options_(std::move(options)) {}

NodeInfo& Scheduler::NodeFor(const std::string& id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) it = nodes_.emplace(id, NodeInfo(id)).first;
  return it->second;
}

void Scheduler::MaybeErase(const std::string& node_id) {
  auto it = nodes_.find(node_id);
  if (it != nodes_.end() && !it->second.present() && !it->second.has_tasks()) nodes_.erase(it);
}

const NodeInfo* Scheduler::node(absl::string_view id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

void Scheduler::UpsertNode(const api::Node& node) { NodeFor(node.meta().id()).SetNode(node); }

void Scheduler::RemoveNode(absl::string_view node_id) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return;
  it->second.ClearNode();
  MaybeErase(it->first);
}

void Scheduler::Unaccount(TaskRecord& r) {
  if (!r.use) return;
  auto it = nodes_.find(r.node_id);
  if (it != nodes_.end()) {
    it->second.Remove(*r.use);
    MaybeErase(r.node_id);
  }
  r.use.reset();
  r.node_id.clear();
}

void Scheduler::Unqueue(const std::string& task_id, TaskRecord& r) {
  if (!r.queued) return;
  auto g = groups_.find(GroupKey(r.service_id, r.version));
  if (g != groups_.end()) {
    g->second.tasks.erase(TaskKey(r.slot, task_id));
    if (g->second.tasks.empty()) groups_.erase(g);
  }
  r.queued = false;
  --pending_;
}

void Scheduler::UpsertTask(const api::Task& task) {
  const std::string& id = task.meta().id();
  auto [it, inserted] = tasks_.try_emplace(id);
  TaskRecord& r = it->second;
  const api::TaskState before = r.state;
  const bool was_live = !inserted && before <= api::TASK_STATE_RUNNING;
  const std::string previous_node = r.node_id;
  Unaccount(r);
  Unqueue(id, r);
  r.state = task.status().state();
  r.service_id = task.service_id();
  r.version = task.spec_version().index();
  r.slot = task.slot();
  r.reason = task.status().err();

  if (r.state == api::TASK_STATE_PENDING) {
    if (task.desired_state() > api::TASK_STATE_RUNNING) return;
    Group& g = groups_[GroupKey(r.service_id, r.version)];
    if (g.tasks.empty()) g.example = task;
    g.tasks[TaskKey(r.slot, id)] = task.node_id();
    r.queued = true;
    ++pending_;
    return;
  }
  if (r.state < api::TASK_STATE_PENDING) return;
  if (r.state <= api::TASK_STATE_RUNNING) {
    if (task.node_id().empty()) return;
    r.node_id = task.node_id();
    r.use = UseOf(task);
    NodeFor(r.node_id).Add(*r.use);
    return;
  }
  // Finished: it holds nothing. A failure seen happening marks the node for the version.
  if (was_live && (r.state == api::TASK_STATE_FAILED || r.state == api::TASK_STATE_REJECTED)) {
    const std::string& where = task.node_id().empty() ? previous_node : task.node_id();
    if (!where.empty()) NodeFor(where).AddFailure(r.service_id, r.version, clock_.Now());
  }
  tasks_.erase(it);
}

void Scheduler::RemoveTask(absl::string_view task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  Unaccount(it->second);
  Unqueue(it->first, it->second);
  tasks_.erase(it);
}

void Scheduler::Assign(const std::string& task_id, NodeInfo& node, const Demand& d,
                       std::vector<Decision>& out) {
  TaskRecord& r = tasks_[task_id];
  TaskUse use;
  use.service_id = d.service_id;
  use.nano_cpus = d.nano_cpus;
  use.memory_bytes = d.memory_bytes;
  use.host_ports = d.host_ports;
  for (const auto& [kind, count] : d.generic) {
    node.TakeGeneric(kind, count, use.named, use.discrete);
  }
  Decision& decision = out.emplace_back();
  decision.task_id = task_id;
  decision.node_id = node.id();
  for (const auto& [kind, value] : use.named) {
    api::GenericResource& g = decision.generic.emplace_back();
    g.mutable_named()->set_kind(kind);
    g.mutable_named()->set_value(value);
  }
  for (const auto& [kind, count] : use.discrete) {
    api::GenericResource& g = decision.generic.emplace_back();
    g.mutable_discrete()->set_kind(kind);
    g.mutable_discrete()->set_value(count);
  }
  node.Add(use);
  r.state = api::TASK_STATE_ASSIGNED;
  r.node_id = node.id();
  r.use = std::move(use);
  r.reason.clear();
}

void Scheduler::SetReason(const std::string& task_id, const std::string& reason,
                          std::vector<Decision>& out) {
  TaskRecord& r = tasks_[task_id];
  if (r.reason == reason) return;
  r.reason = reason;
  Decision& decision = out.emplace_back();
  decision.task_id = task_id;
  decision.reason = reason;
}

void Scheduler::ScheduleGroup(Group& group, absl::Time now, NodeCache& cache,
                              std::vector<Decision>& out) {
  absl::StatusOr<Demand> demand = DemandOf(group.example);
  if (!demand.ok()) {
    const std::string reason = absl::StrCat("invalid task spec: ", demand.status().message());
    for (const auto& [task_key, bound] : group.tasks) SetReason(task_key.second, reason, out);
    return;
  }
  const Demand& d = *demand;
  std::vector<std::pair<TaskKey, std::string>> placed;  // the task and its node

  // Tasks bound to a node (global services) are checked on that node alone.
  std::vector<TaskKey> free;
  for (const auto& [task_key, bound] : group.tasks) {
    if (bound.empty()) {
      free.push_back(task_key);
      continue;
    }
    auto n = nodes_.find(bound);
    Rejection r{Rejection::Why::kNotReady, 0};
    if (n != nodes_.end()) r = Check(d, n->second);
    if (r.ok()) {
      Assign(task_key.second, n->second, d, out);
      placed.emplace_back(task_key, bound);
    } else {
      Rejections one;
      one.Add(r);
      SetReason(task_key.second, one.Explain(d), out);
    }
  }

  if (!free.empty()) {
    Batch batch(*this, d, now, cache);
    batch.Prepare();
    size_t next = 0;
    batch.Place(static_cast<int64_t>(free.size()), [&](NodeInfo& node) {
      const TaskKey& task_key = free[next++];
      Assign(task_key.second, node, d, out);
      placed.emplace_back(task_key, node.id());
    });
    if (next < free.size()) {
      const std::string reason = batch.rejections().Explain(d);
      for (size_t i = next; i < free.size(); ++i) SetReason(free[i].second, reason, out);
    }
  }

  for (const auto& [task_key, node_id] : placed) {
    TaskRecord& r = tasks_[task_key.second];
    r.queued = false;
    --pending_;
    group.tasks.erase(task_key);
  }
}

std::vector<Scheduler::Decision> Scheduler::Schedule() {
  const absl::Time now = clock_.Now();
  if (now - last_prune_ > options_.failure_window) {
    for (auto& [id, node] : nodes_) node.PruneFailures(now, options_.failure_window);
    last_prune_ = now;
  }
  std::vector<Decision> out;
  NodeCache cache;
  for (auto it = groups_.begin(); it != groups_.end();) {
    ScheduleGroup(it->second, now, cache, out);
    if (it->second.tasks.empty()) {
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace shoal::scheduler

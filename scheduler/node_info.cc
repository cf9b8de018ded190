#include "scheduler/node_info.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shoal::scheduler {
namespace {

std::string NamedKey(absl::string_view kind, absl::string_view value) {
  return absl::StrCat(kind, absl::string_view("\0", 1), value);
}

}  // namespace

TaskUse UseOf(const api::Task& task) {
  TaskUse use;
  use.service_id = task.service_id();
  use.active = task.desired_state() <= api::TASK_STATE_RUNNING;
  const api::Resources& r = task.spec().resources().reservations();
  use.nano_cpus = r.nano_cpus();
  use.memory_bytes = r.memory_bytes();
  for (const api::GenericResource& g : task.assigned_generic_resources()) {
    if (g.has_named()) {
      use.named.emplace_back(g.named().kind(), g.named().value());
    } else if (g.has_discrete()) {
      use.discrete.emplace_back(g.discrete().kind(), g.discrete().value());
    }
  }
  const auto& ports =
      task.endpoint().ports().empty() ? task.endpoint().spec().ports() : task.endpoint().ports();
  for (const api::PortConfig& p : ports) {
    if (p.publish_mode() == api::PortConfig::PUBLISH_MODE_HOST && p.published_port() != 0) {
      use.host_ports.push_back(HostPortKey(p.protocol(), p.published_port()));
    }
  }
  return use;
}

void NodeInfo::SetNode(const api::Node& node) {
  present_ = true;
  node_ = node;
  const api::Resources& r = node_.description().resources();
  total_cpus_ = r.nano_cpus();
  total_memory_ = r.memory_bytes();
  total_named_.clear();
  total_discrete_.clear();
  for (const api::GenericResource& g : r.generic()) {
    if (g.has_named()) {
      total_named_[g.named().kind()].push_back(g.named().value());
    } else if (g.has_discrete()) {
      total_discrete_[g.discrete().kind()] += g.discrete().value();
    }
  }
}

void NodeInfo::ClearNode() {
  present_ = false;
  node_.Clear();
  total_cpus_ = total_memory_ = 0;
  total_named_.clear();
  total_discrete_.clear();
}

void NodeInfo::Add(const TaskUse& use) {
  ++uses_;
  used_cpus_ += use.nano_cpus;
  used_memory_ += use.memory_bytes;
  for (const auto& [kind, value] : use.named) used_named_.insert(NamedKey(kind, value));
  for (const auto& [kind, count] : use.discrete) used_discrete_[kind] += count;
  for (uint32_t port : use.host_ports) ++host_port_holders_[port];
  if (use.active) {
    ++tasks_;
    ++service_tasks_[use.service_id];
  }
}

void NodeInfo::Remove(const TaskUse& use) {
  --uses_;
  used_cpus_ -= use.nano_cpus;
  used_memory_ -= use.memory_bytes;
  for (const auto& [kind, value] : use.named) used_named_.erase(NamedKey(kind, value));
  for (const auto& [kind, count] : use.discrete) {
    auto it = used_discrete_.find(kind);
    if (it != used_discrete_.end() && (it->second -= count) <= 0) used_discrete_.erase(it);
  }
  for (uint32_t port : use.host_ports) {
    auto it = host_port_holders_.find(port);
    if (it != host_port_holders_.end() && --it->second <= 0) host_port_holders_.erase(it);
  }
  if (use.active) {
    --tasks_;
    auto it = service_tasks_.find(use.service_id);
    if (it != service_tasks_.end() && --it->second <= 0) service_tasks_.erase(it);
  }
}

int64_t NodeInfo::free_generic(absl::string_view kind) const {
  int64_t free = 0;
  if (auto it = total_named_.find(kind); it != total_named_.end()) {
    for (const std::string& value : it->second) {
      if (!used_named_.contains(NamedKey(kind, value))) ++free;
    }
  }
  if (auto it = total_discrete_.find(kind); it != total_discrete_.end()) free += it->second;
  if (auto it = used_discrete_.find(kind); it != used_discrete_.end()) free -= it->second;
  return free;
}

void NodeInfo::TakeGeneric(absl::string_view kind, int64_t count,
                           std::vector<std::pair<std::string, std::string>>& named,
                           std::vector<std::pair<std::string, int64_t>>& discrete) const {
  if (auto it = total_named_.find(kind); it != total_named_.end()) {
    for (const std::string& value : it->second) {
      if (count == 0) break;
      if (used_named_.contains(NamedKey(kind, value))) continue;
      named.emplace_back(std::string(kind), value);
      --count;
    }
  }
  if (count > 0) discrete.emplace_back(std::string(kind), count);
}

int64_t NodeInfo::tasks_of(absl::string_view service_id) const {
  auto it = service_tasks_.find(service_id);
  return it == service_tasks_.end() ? 0 : it->second;
}

void NodeInfo::AddFailure(absl::string_view service_id, uint64_t version, absl::Time at) {
  failures_[{std::string(service_id), version}].push_back(at);
}

int NodeInfo::RecentFailures(absl::string_view service_id, uint64_t version, absl::Time now,
                             absl::Duration window) {
  if (failures_.empty()) return 0;
  auto it = failures_.find(std::pair<std::string, uint64_t>(std::string(service_id), version));
  if (it == failures_.end()) return 0;
  std::deque<absl::Time>& times = it->second;
  while (!times.empty() && now - times.front() > window) times.pop_front();
  if (times.empty()) {
    failures_.erase(it);
    return 0;
  }
  return static_cast<int>(times.size());
}

bool NodeInfo::PruneFailures(absl::Time now, absl::Duration window) {
  for (auto it = failures_.begin(); it != failures_.end();) {
    std::deque<absl::Time>& times = it->second;
    while (!times.empty() && now - times.front() > window) times.pop_front();
    if (times.empty()) {
      failures_.erase(it++);
    } else {
      ++it;
    }
  }
  return !failures_.empty();
}

}  // namespace shoal::scheduler

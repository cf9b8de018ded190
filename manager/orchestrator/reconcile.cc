#include "manager/orchestrator/reconcile.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "scheduler/constraint.h"

namespace shoal::manager::orchestrator {
namespace {

constexpr absl::Duration kDefaultRestartDelay = absl::Seconds(5);

bool Runnable(const api::Task& t) { return t.desired_state() <= api::TASK_STATE_RUNNING; }
bool Stopped(const api::Task& t) { return t.status().state() > api::TASK_STATE_RUNNING; }

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}
absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Duration RestartDelay(const api::TaskSpec& spec) {
  if (!spec.has_restart() || !spec.restart().has_delay()) return kDefaultRestartDelay;
  return FromProto(spec.restart().delay());
}

// Newest first: a later spec version, then a later creation, then the larger id.
bool Newer(const api::Task* a, const api::Task* b) {
  return std::make_tuple(a->spec_version().index(), a->meta().created_at().seconds(),
                         a->meta().created_at().nanos(), a->meta().id()) >
         std::make_tuple(b->spec_version().index(), b->meta().created_at().seconds(),
                         b->meta().created_at().nanos(), b->meta().id());
}

api::Task WithDesired(const api::Task& t, api::TaskState desired) {
  api::Task out = t;
  out.set_desired_state(desired);
  return out;
}

// Whether a node still holds its tasks: false when it is gone, down or drained.
bool NodeHolds(const api::Node* n) {
  if (n == nullptr) return false;
  if (n->spec().availability() == api::NodeSpec::AVAILABILITY_DRAIN) return false;
  const auto state = n->status().state();
  return state != api::NodeStatus::NODE_STATE_DOWN &&
         state != api::NodeStatus::NODE_STATE_DISCONNECTED;
}

// One slot (replicated) or node (global): its runnable task, if any, after duplicates.
struct Slot {
  std::string key;
  uint64_t slot = 0;
  std::string node_id;
  std::vector<const api::Task*> runnable;  // newest first
};

// Handles one slot's runnable task: duplicates, a stopped task (restart policy), a task whose
// node no longer holds it, a delayed start that is due. Returns whether the slot still has a
// runnable task (or will have: a replacement was created).
void Tend(const api::Service& service, Slot& slot, const NodeLookup& nodes,
          RestartHistory& history, absl::Time now, IdGenerator& ids, bool global,
          Actions& out) {
  if (slot.runnable.empty()) return;
  std::sort(slot.runnable.begin(), slot.runnable.end(), Newer);
  for (size_t i = 1; i < slot.runnable.size(); ++i) {
    out.update.push_back(WithDesired(*slot.runnable[i], api::TASK_STATE_SHUTDOWN));
  }
  const api::Task& t = *slot.runnable[0];
  const api::TaskSpec& spec = service.spec().task();
  auto replacement = [&](api::TaskState desired) {
    api::Task n = NewTask(service, slot.slot, global ? slot.node_id : "", ids.Next(), desired);
    out.create.push_back(std::move(n));
  };

  // On a node that no longer holds tasks: replace at once (global: the node has none).
  if (!t.node_id().empty() && t.status().state() >= api::TASK_STATE_ASSIGNED &&
      !NodeHolds(nodes(t.node_id()))) {
    out.update.push_back(WithDesired(t, global ? api::TASK_STATE_REMOVE
                                               : api::TASK_STATE_SHUTDOWN));
    if (!global) replacement(api::TASK_STATE_RUNNING);
    return;
  }

  if (Stopped(t)) {
    const api::RestartPolicy& policy = spec.restart();
    bool restart = true;
    switch (policy.condition()) {
      case api::RestartPolicy::RESTART_CONDITION_NONE:
        restart = false;
        break;
      case api::RestartPolicy::RESTART_CONDITION_ON_FAILURE:
        restart = t.status().state() != api::TASK_STATE_COMPLETE;
        break;
      default:
        break;
    }
    if (restart && policy.max_attempts() > 0) {
      const absl::Duration window = FromProto(policy.window());
      const absl::Time since = window > absl::ZeroDuration() ? now - window
                                                              : absl::InfinitePast();
      restart = history.Count(service.meta().id(), slot.key, since) < policy.max_attempts();
    }
    // Not restarted: the stopped task keeps the slot (the service shows it short of a replica,
    // as Docker's does).
    if (!restart) return;
    history.Record(service.meta().id(), slot.key, now);
    out.update.push_back(WithDesired(t, api::TASK_STATE_SHUTDOWN));
    const absl::Duration delay = RestartDelay(spec);
    if (delay <= absl::ZeroDuration()) {
      replacement(api::TASK_STATE_RUNNING);
    } else {
      replacement(api::TASK_STATE_READY);
      out.wake = std::min(out.wake, now + delay);
    }
    return;
  }

  // A delayed start: raised to RUNNING once the delay since its creation has passed.
  if (t.desired_state() == api::TASK_STATE_READY) {
    const absl::Time due = FromProto(t.meta().created_at()) + RestartDelay(t.spec());
    if (now >= due) {
      out.update.push_back(WithDesired(t, api::TASK_STATE_RUNNING));
    } else {
      out.wake = std::min(out.wake, due);
    }
  }
}

}  // namespace

void RestartHistory::Record(const std::string& service_id, const std::string& slot_key,
                            absl::Time at) {
  restarts_[{service_id, slot_key}].push_back(at);
}

uint64_t RestartHistory::Count(const std::string& service_id, const std::string& slot_key,
                               absl::Time since) const {
  auto it = restarts_.find({service_id, slot_key});
  if (it == restarts_.end()) return 0;
  return static_cast<uint64_t>(std::count_if(it->second.begin(), it->second.end(),
                                             [&](absl::Time t) { return t >= since; }));
}

void RestartHistory::Forget(const std::string& service_id) {
  for (auto it = restarts_.lower_bound({service_id, ""});
       it != restarts_.end() && it->first.first == service_id;) {
    it = restarts_.erase(it);
  }
}

api::Task NewTask(const api::Service& service, uint64_t slot, const std::string& node_id,
                  std::string id, api::TaskState desired) {
  api::Task t;
  t.mutable_meta()->set_id(std::move(id));
  *t.mutable_spec() = service.spec().task();
  *t.mutable_spec_version() = service.spec_version();
  t.set_service_id(service.meta().id());
  t.set_slot(slot);
  t.set_node_id(node_id);
  *t.mutable_service_annotations() = service.spec().annotations();
  t.set_desired_state(desired);
  t.mutable_status()->set_state(api::TASK_STATE_NEW);
  t.mutable_status()->set_message("created");
  *t.mutable_endpoint() = service.endpoint();
  if (service.spec().task().has_log_driver()) {
    *t.mutable_log_driver() = service.spec().task().log_driver();
  }
  return t;
}

Actions ReconcileReplicated(const api::Service& service,
                            const std::vector<const api::Task*>& tasks, const NodeLookup& nodes,
                            RestartHistory& history, absl::Time now, IdGenerator& ids) {
  Actions out;
  const uint64_t replicas =
      service.spec().has_replicated() ? service.spec().replicated().replicas() : 1;
  std::map<uint64_t, Slot> slots;
  for (const api::Task* t : tasks) {
    if (!Runnable(*t)) continue;
    Slot& s = slots[t->slot()];
    s.slot = t->slot();
    s.key = absl::StrCat(t->slot());
    s.runnable.push_back(t);
  }
  for (auto& [n, slot] : slots) Tend(service, slot, nodes, history, now, ids, false, out);

  if (slots.size() < replicas) {
    uint64_t next = 1;
    for (uint64_t missing = replicas - slots.size(); missing > 0; --missing) {
      while (slots.count(next)) ++next;
      out.create.push_back(
          NewTask(service, next, "", ids.Next(), api::TASK_STATE_RUNNING));
      slots[next].slot = next;  // taken
    }
  } else if (slots.size() > replicas) {
    // Which slots go: not running first, then on the nodes with most of the service's tasks,
    // then the highest.
    std::map<std::string, int> per_node;
    for (const auto& [n, slot] : slots) {
      if (!slot.runnable.empty()) ++per_node[slot.runnable[0]->node_id()];
    }
    std::vector<const Slot*> order;
    for (const auto& [n, slot] : slots) order.push_back(&slot);
    auto key = [&](const Slot* s) {
      const api::Task* t = s->runnable[0];
      const bool running = t->status().state() == api::TASK_STATE_RUNNING;
      return std::make_tuple(running, -per_node[t->node_id()], -static_cast<int64_t>(s->slot));
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](const Slot* a, const Slot* b) { return key(a) < key(b); });
    for (size_t i = 0; i < slots.size() - replicas; ++i) {
      for (const api::Task* t : order[i]->runnable) {
        // Replace an update the slot's tending made (it may have been a shutdown) by removal.
        auto it = std::find_if(out.update.begin(), out.update.end(),
                               [&](const api::Task& u) { return u.meta().id() == t->meta().id(); });
        if (it != out.update.end()) {
          it->set_desired_state(api::TASK_STATE_REMOVE);
        } else {
          out.update.push_back(WithDesired(*t, api::TASK_STATE_REMOVE));
        }
      }
      // A replacement the tending created for this slot is not wanted either.
      out.create.erase(std::remove_if(out.create.begin(), out.create.end(),
                                      [&](const api::Task& c) { return c.slot() == order[i]->slot; }),
                       out.create.end());
    }
  }
  return out;
}

Actions ReconcileGlobal(const api::Service& service, const std::vector<const api::Task*>& tasks,
                        const std::vector<const api::Node*>& all_nodes, RestartHistory& history,
                        absl::Time now, IdGenerator& ids) {
  Actions out;
  std::map<std::string, const api::Node*> by_id;
  for (const api::Node* n : all_nodes) by_id[n->meta().id()] = n;
  const NodeLookup lookup = [&](const std::string& id) -> const api::Node* {
    auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : it->second;
  };
  auto constraints = scheduler::ParseConstraints(service.spec().task().placement().constraints());
  // A node matches unless a constraint (valid: the control API checked it) says otherwise.
  auto matches = [&](const api::Node& n) {
    return !constraints.ok() || scheduler::MatchesAll(*constraints, n);
  };

  std::map<std::string, Slot> per_node;
  for (const api::Task* t : tasks) {
    if (!Runnable(*t)) continue;
    Slot& s = per_node[t->node_id()];
    s.node_id = t->node_id();
    s.key = t->node_id();
    s.runnable.push_back(t);
  }
  for (auto& [node_id, slot] : per_node) {
    const api::Node* n = lookup(node_id);
    // The node left, was drained or no longer matches: its task goes.
    if (n == nullptr || n->spec().availability() == api::NodeSpec::AVAILABILITY_DRAIN ||
        !matches(*n)) {
      for (const api::Task* t : slot.runnable) {
        out.update.push_back(WithDesired(*t, api::TASK_STATE_REMOVE));
      }
      continue;
    }
    Tend(service, slot, lookup, history, now, ids, true, out);
  }
  for (const api::Node* n : all_nodes) {
    if (per_node.count(n->meta().id())) continue;
    if (n->status().state() != api::NodeStatus::NODE_STATE_READY ||
        n->spec().availability() != api::NodeSpec::AVAILABILITY_ACTIVE || !matches(*n)) {
      continue;
    }
    out.create.push_back(NewTask(service, 0, n->meta().id(), ids.Next(), api::TASK_STATE_RUNNING));
  }
  return out;
}

Actions RemoveAll(const std::vector<const api::Task*>& tasks) {
  Actions out;
  for (const api::Task* t : tasks) {
    if (t->desired_state() != api::TASK_STATE_REMOVE) {
      out.update.push_back(WithDesired(*t, api::TASK_STATE_REMOVE));
    }
  }
  return out;
}

std::vector<std::string> Reap(const std::vector<const api::Task*>& tasks, int64_t history) {
  std::vector<std::string> out;
  std::map<std::string, std::vector<const api::Task*>> stopped;  // by slot or node
  std::map<std::string, int64_t> runnable;
  for (const api::Task* t : tasks) {
    const std::string key = t->slot() != 0 ? absl::StrCat("slot ", t->slot()) : t->node_id();
    if (t->desired_state() == api::TASK_STATE_REMOVE) {
      // Gone once stopped, or when it never reached a node.
      if (Stopped(*t) || t->status().state() < api::TASK_STATE_ASSIGNED) {
        out.push_back(t->meta().id());
      }
      continue;
    }
    if (Runnable(*t)) {
      ++runnable[key];
    } else if (Stopped(*t)) {
      stopped[key].push_back(t);
    }
  }
  for (auto& [key, list] : stopped) {
    const int64_t keep = std::max<int64_t>(0, history - runnable[key]);
    if (static_cast<int64_t>(list.size()) <= keep) continue;
    std::sort(list.begin(), list.end(), Newer);
    for (size_t i = static_cast<size_t>(keep); i < list.size(); ++i) {
      out.push_back(list[i]->meta().id());
    }
  }
  return out;
}

}  // namespace shoal::manager::orchestrator

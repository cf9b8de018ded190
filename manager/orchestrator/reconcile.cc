#include "manager/orchestrator/reconcile.h"

#include <algorithm>
#include <set>
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
  // A task asked to shut down (not removed) that still runs on a node that holds it: the
  // slot's replacement waits for it to stop (stop-first).
  bool stopping = false;
};

bool StartFirst(const api::Service& service, bool rollback) {
  const api::UpdateConfig& c = rollback ? service.spec().rollback() : service.spec().update();
  return c.order() == api::UpdateConfig::ORDER_START_FIRST;
}

bool InRollback(const api::Service& service) {
  const auto state = service.update_status().state();
  return state == api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED ||
         state == api::UpdateStatus::UPDATE_STATE_ROLLBACK_PAUSED ||
         state == api::UpdateStatus::UPDATE_STATE_ROLLBACK_COMPLETED;
}

// Handles one slot's runnable task: duplicates, a stopped task (restart policy), a task whose
// node no longer holds it, a delayed start that is due. Returns whether the slot still has a
// runnable task (or will have: a replacement was created).
void Tend(const api::Service& service, Slot& slot, const NodeLookup& nodes,
          RestartHistory& history, absl::Time now, IdGenerator& ids, bool global,
          Actions& out) {
  // The constraint enforcer: a node whose labels changed may no longer match.
  const auto constraints =
      scheduler::ParseConstraints(service.spec().task().placement().constraints());
  if (slot.runnable.empty()) return;
  std::sort(slot.runnable.begin(), slot.runnable.end(), Newer);
  // Start-first: the old task of the slot keeps running until its replacement runs.
  const bool keep_older = slot.runnable.size() > 1 &&
                          StartFirst(service, InRollback(service)) &&
                          slot.runnable[0]->status().state() != api::TASK_STATE_RUNNING &&
                          !Stopped(*slot.runnable[0]);
  for (size_t i = 1; i < slot.runnable.size() && !keep_older; ++i) {
    out.update.push_back(WithDesired(*slot.runnable[i], api::TASK_STATE_SHUTDOWN));
  }
  const api::Task& t = *slot.runnable[0];
  const api::TaskSpec& spec = service.spec().task();
  auto replacement = [&](api::TaskState desired) {
    api::Task n = NewTask(service, slot.slot, global ? slot.node_id : "", ids.Next(), desired);
    out.create.push_back(std::move(n));
  };

  // On a node that no longer holds tasks, or no longer matches the constraints: replace at
  // once (global: the node has none).
  const api::Node* on = t.node_id().empty() ? nullptr : nodes(t.node_id());
  if (!t.node_id().empty() && t.status().state() >= api::TASK_STATE_ASSIGNED &&
      (!NodeHolds(on) || (constraints.ok() && !scheduler::MatchesAll(*constraints, *on)))) {
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
  if (service.spec().has_replicated_job() || service.spec().has_global_job()) {
    *t.mutable_job_iteration() = service.job_status().job_iteration();
  }
  if (service.spec().task().has_log_driver()) {
    *t.mutable_log_driver() = service.spec().task().log_driver();
  }
  return t;
}

namespace {

absl::Time TimeOr(const google::protobuf::Timestamp& t, absl::Time otherwise) {
  return t.seconds() == 0 && t.nanos() == 0 ? otherwise : FromProto(t);
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

// The rolling update (or rollback) of a replicated service, level-triggered: the update's
// progress is read from the tasks (their spec versions, states and times) and from the
// service's update_status, which this writes when the update starts, pauses, rolls back or
// completes.
void RollOut(const api::Service& service, const std::map<uint64_t, Slot>& slots,
             const std::map<uint64_t, const api::Task*>& stopping,
             const std::vector<const api::Task*>& tasks, absl::Time now, Actions& out) {
  const uint64_t target = service.spec_version().index();
  const api::UpdateStatus& status = service.update_status();
  const bool rollback = InRollback(service);
  const api::UpdateConfig& cfg = rollback ? service.spec().rollback() : service.spec().update();
  const bool in_progress =
      status.state() == api::UpdateStatus::UPDATE_STATE_UPDATING ||
      status.state() == api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED;
  const bool paused = status.state() == api::UpdateStatus::UPDATE_STATE_PAUSED ||
                      status.state() == api::UpdateStatus::UPDATE_STATE_ROLLBACK_PAUSED;
  const absl::Duration monitor =
      cfg.has_monitor() ? FromProto(cfg.monitor()) : absl::Seconds(5);
  const absl::Time started = TimeOr(status.started_at(), now);

  // Slots this step's tending already changes are left for the next step.
  std::set<uint64_t> touched;
  for (const api::Task& c : out.create) touched.insert(c.slot());
  for (const api::Task& u : out.update) touched.insert(u.slot());

  std::vector<uint64_t> dirty;
  size_t in_flight = 0;
  for (const auto& [n, slot] : slots) {
    if (slot.runnable.empty() || touched.count(n)) continue;
    const api::Task& t = *slot.runnable[0];
    if (t.spec_version().index() != target) {
      dirty.push_back(n);
      continue;
    }
    // Updated in this update, and not yet through its monitoring period.
    if (in_progress && TimeOr(t.meta().created_at(), now) >= started) {
      const bool settled = t.status().state() == api::TASK_STATE_RUNNING &&
                           TimeOr(t.status().timestamp(), absl::InfinitePast()) + monitor <= now;
      if (!settled) {
        ++in_flight;
        if (t.status().state() == api::TASK_STATE_RUNNING) {
          out.wake = std::min(out.wake, TimeOr(t.status().timestamp(), now) + monitor);
        }
      }
    }
  }
  // A slot stopping its old task before starting the new one is in flight too, and so is a
  // slot getting its new task in this very step.
  for (const auto& [n, t] : stopping) {
    if (t->spec_version().index() != target) ++in_flight;
  }
  if (in_progress) in_flight += out.create.size();

  auto write_status = [&](api::UpdateStatus::State state, const std::string& message) {
    api::Service u = out.service.value_or(service);
    u.mutable_update_status()->set_state(state);
    u.mutable_update_status()->set_message(message);
    if (state == api::UpdateStatus::UPDATE_STATE_COMPLETED ||
        state == api::UpdateStatus::UPDATE_STATE_ROLLBACK_COMPLETED) {
      *u.mutable_update_status()->mutable_completed_at() = ToProto(now);
    }
    out.service = std::move(u);
  };

  if (dirty.empty() && in_flight == 0) {
    if (status.state() == api::UpdateStatus::UPDATE_STATE_UPDATING) {
      write_status(api::UpdateStatus::UPDATE_STATE_COMPLETED, "update completed");
    } else if (status.state() == api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED) {
      write_status(api::UpdateStatus::UPDATE_STATE_ROLLBACK_COMPLETED, "rollback completed");
    }
    return;
  }
  if (paused) return;
  if (!in_progress) {
    // A new spec: the update starts now.
    api::Service u = service;
    u.mutable_update_status()->set_state(rollback ? api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED
                                                  : api::UpdateStatus::UPDATE_STATE_UPDATING);
    u.mutable_update_status()->set_message(rollback ? "rollback in progress"
                                                    : "update in progress");
    *u.mutable_update_status()->mutable_started_at() = ToProto(now);
    u.mutable_update_status()->clear_completed_at();
    out.service = std::move(u);
    // Tasks are replaced from the next step, once the start is written (its time is what
    // tells this update's tasks from older ones).
    return;
  }

  // Failures of this update's tasks: stopped other than by a clean exit or a shutdown asked
  // for, within the monitoring period of their start.
  size_t updated = 0, failed = 0;
  std::string failed_task;
  for (const api::Task* t : tasks) {
    if (t->spec_version().index() != target || TimeOr(t->meta().created_at(), now) < started) {
      continue;
    }
    ++updated;
    const auto state = t->status().state();
    if (state == api::TASK_STATE_FAILED || state == api::TASK_STATE_REJECTED ||
        state == api::TASK_STATE_ORPHANED) {
      ++failed;
      failed_task = t->meta().id();
    }
  }
  if (failed > 0 && cfg.failure_action() != api::UpdateConfig::FAILURE_ACTION_CONTINUE &&
      static_cast<double>(failed) > static_cast<double>(cfg.max_failure_ratio()) * updated) {
    if (cfg.failure_action() == api::UpdateConfig::FAILURE_ACTION_ROLLBACK && !rollback &&
        service.has_previous_spec()) {
      api::Service u = service;
      *u.mutable_spec() = service.previous_spec();
      *u.mutable_spec_version() = service.previous_spec_version();
      *u.mutable_previous_spec() = service.spec();
      *u.mutable_previous_spec_version() = service.spec_version();
      u.mutable_update_status()->set_state(api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED);
      u.mutable_update_status()->set_message(
          absl::StrCat("update rolled back due to failure or early termination of task ",
                       failed_task));
      *u.mutable_update_status()->mutable_started_at() = ToProto(now);
      out.service = std::move(u);
    } else {
      write_status(rollback ? api::UpdateStatus::UPDATE_STATE_ROLLBACK_PAUSED
                            : api::UpdateStatus::UPDATE_STATE_PAUSED,
                   absl::StrCat(rollback ? "rollback" : "update",
                                " paused due to failure or early termination of task ",
                                failed_task));
    }
    return;
  }

  // The next batch, once the previous one is through and the delay has passed since it.
  const uint64_t parallelism = cfg.has_parallelism() ? cfg.parallelism() : 1;
  const size_t room = parallelism == 0 ? dirty.size()
                                       : (in_flight >= parallelism ? 0 : parallelism - in_flight);
  if (room == 0) return;
  if (in_flight == 0 && cfg.has_delay()) {
    absl::Time last = absl::InfinitePast();
    for (const api::Task* t : tasks) {
      if (t->spec_version().index() == target) {
        last = std::max(last, TimeOr(t->meta().created_at(), absl::InfinitePast()));
      }
    }
    if (last != absl::InfinitePast() && last >= started && now < last + FromProto(cfg.delay())) {
      out.wake = std::min(out.wake, last + FromProto(cfg.delay()));
      return;
    }
  }
  const bool start_first = StartFirst(service, rollback);
  for (size_t i = 0; i < dirty.size() && i < room; ++i) {
    const Slot& slot = slots.at(dirty[i]);
    if (start_first) {
      out.create.push_back(NewTask(service, slot.slot, "", "", api::TASK_STATE_RUNNING));
    } else {
      // Stop-first: the replacement is created once the old task has stopped.
      out.update.push_back(WithDesired(*slot.runnable[0], api::TASK_STATE_SHUTDOWN));
    }
  }
}

}  // namespace

Actions ReconcileReplicated(const api::Service& service,
                            const std::vector<const api::Task*>& tasks, const NodeLookup& nodes,
                            RestartHistory& history, absl::Time now, IdGenerator& ids) {
  Actions out;
  const uint64_t replicas =
      service.spec().has_replicated() ? service.spec().replicated().replicas() : 1;
  std::map<uint64_t, Slot> slots;
  std::map<uint64_t, const api::Task*> stopping;
  for (const api::Task* t : tasks) {
    if (Runnable(*t)) {
      Slot& s = slots[t->slot()];
      s.slot = t->slot();
      s.key = absl::StrCat(t->slot());
      s.runnable.push_back(t);
    } else if (t->desired_state() == api::TASK_STATE_SHUTDOWN &&
               t->status().state() >= api::TASK_STATE_ASSIGNED &&
               t->status().state() <= api::TASK_STATE_RUNNING && NodeHolds(nodes(t->node_id()))) {
      stopping[t->slot()] = t;
    }
  }
  for (auto it = stopping.begin(); it != stopping.end();) {
    it = slots.count(it->first) ? stopping.erase(it) : std::next(it);
  }
  for (auto& [n, slot] : slots) Tend(service, slot, nodes, history, now, ids, false, out);

  const size_t occupied = slots.size() + stopping.size();
  if (occupied < replicas) {
    uint64_t next = 1;
    for (uint64_t missing = replicas - occupied; missing > 0; --missing) {
      while (slots.count(next) || stopping.count(next)) ++next;
      out.create.push_back(NewTask(service, next, "", "", api::TASK_STATE_RUNNING));
      ++next;
    }
  } else if (occupied > replicas) {
    size_t surplus = occupied - replicas;
    // Slots stopping for an update go first: they are not recreated.
    while (surplus > 0 && !stopping.empty()) {
      out.update.push_back(WithDesired(*stopping.begin()->second, api::TASK_STATE_REMOVE));
      stopping.erase(stopping.begin());
      --surplus;
    }
    // Then: not running first, then on the nodes with most of the service's tasks, then the
    // highest.
    std::map<std::string, int> per_node;
    for (const auto& [n, slot] : slots) ++per_node[slot.runnable[0]->node_id()];
    std::vector<const Slot*> order;
    for (const auto& [n, slot] : slots) order.push_back(&slot);
    auto key = [&](const Slot* s) {
      const api::Task* t = s->runnable[0];
      const bool running = t->status().state() == api::TASK_STATE_RUNNING;
      return std::make_tuple(running, -per_node[t->node_id()], -static_cast<int64_t>(s->slot));
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](const Slot* a, const Slot* b) { return key(a) < key(b); });
    for (size_t i = 0; i < surplus && i < order.size(); ++i) {
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
      slots.erase(order[i]->slot);
    }
  }
  RollOut(service, slots, stopping, tasks, now, out);
  // Ids last, in order, so that a seeded generator gives the same ids for the same decisions.
  for (api::Task& c : out.create) {
    if (c.meta().id().empty()) c.mutable_meta()->set_id(ids.Next());
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

Actions ReconcileJob(const api::Service& service, const std::vector<const api::Task*>& tasks,
                     const std::vector<const api::Node*>& all_nodes, RestartHistory& history,
                     absl::Time now, IdGenerator& ids) {
  Actions out;
  const uint64_t iteration = service.job_status().job_iteration().index();
  const bool global = service.spec().has_global_job();
  const api::RestartPolicy& policy = service.spec().task().restart();
  // A job's task that stopped other than by completing is run again unless the condition is
  // none, within max_attempts (a clean exit is done, whatever the condition).
  auto restartable = [&](const std::string& key) {
    if (policy.condition() == api::RestartPolicy::RESTART_CONDITION_NONE) return false;
    if (policy.max_attempts() == 0) return true;
    const absl::Duration window = FromProto(policy.window());
    const absl::Time since = window > absl::ZeroDuration() ? now - window : absl::InfinitePast();
    return history.Count(service.meta().id(), key, since) < policy.max_attempts();
  };

  // Per slot (per node, for a global job): the newest task of this iteration.
  std::map<std::string, const api::Task*> newest;
  for (const api::Task* t : tasks) {
    if (t->job_iteration().index() != iteration) {
      // A previous run's task still wanted: this run replaces it.
      if (Runnable(*t)) out.update.push_back(WithDesired(*t, api::TASK_STATE_SHUTDOWN));
      continue;
    }
    const std::string key = global ? t->node_id() : absl::StrCat(t->slot());
    auto& n = newest[key];
    if (n == nullptr || Newer(t, n)) n = t;
  }
  size_t done = 0, active = 0, failed = 0;
  uint64_t highest_slot = 0;
  for (const auto& [key, t] : newest) {
    highest_slot = std::max(highest_slot, t->slot());
    const auto state = t->status().state();
    if (state == api::TASK_STATE_COMPLETE) {
      ++done;
    } else if (Stopped(*t) && Runnable(*t)) {
      if (restartable(key)) {
        history.Record(service.meta().id(), key, now);
        out.update.push_back(WithDesired(*t, api::TASK_STATE_SHUTDOWN));
        out.create.push_back(NewTask(service, t->slot(), global ? t->node_id() : "", ids.Next(),
                                     api::TASK_STATE_RUNNING));
        ++active;
      } else {
        ++failed;
      }
    } else if (Runnable(*t)) {
      ++active;
    }
  }
  if (global) {
    auto constraints = scheduler::ParseConstraints(service.spec().task().placement().constraints());
    for (const api::Node* n : all_nodes) {
      if (newest.count(n->meta().id())) continue;
      if (n->status().state() != api::NodeStatus::NODE_STATE_READY ||
          n->spec().availability() != api::NodeSpec::AVAILABILITY_ACTIVE ||
          (constraints.ok() && !scheduler::MatchesAll(*constraints, *n))) {
        continue;
      }
      out.create.push_back(NewTask(service, 0, n->meta().id(), ids.Next(), api::TASK_STATE_RUNNING));
    }
    return out;
  }
  const api::ReplicatedJob& job = service.spec().replicated_job();
  const uint64_t total = job.has_total_completions()
                             ? job.total_completions()
                             : (job.has_max_concurrent() ? job.max_concurrent() : 1);
  const uint64_t concurrent = job.has_max_concurrent() ? job.max_concurrent() : total;
  // New slots while completions are missing and there is room to run them.
  const uint64_t settled = done + active + failed;
  uint64_t more = total > settled ? total - settled : 0;
  more = std::min<uint64_t>(more, concurrent > active ? concurrent - active : 0);
  for (uint64_t i = 0; i < more; ++i) {
    out.create.push_back(
        NewTask(service, ++highest_slot, "", ids.Next(), api::TASK_STATE_RUNNING));
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

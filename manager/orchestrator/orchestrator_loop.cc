#include "manager/orchestrator/orchestrator_loop.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace shoal::manager::orchestrator {

using store::Event;
using store::Kind;
using store::ReadTx;
using store::WriteTx;

namespace {

constexpr int64_t kDefaultHistory = 5;

int64_t HistoryLimit(const ReadTx& tx) {
  for (const api::Cluster* c : tx.List<api::Cluster>()) {
    const auto& o = c->spec().orchestration();
    if (o.has_task_history_retention_limit()) return o.task_history_retention_limit();
  }
  return kDefaultHistory;
}

}  // namespace

OrchestratorLoop::OrchestratorLoop(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
      own_ids_(options_.ids == nullptr ? std::make_unique<IdGenerator>() : nullptr),
      ids_(options_.ids != nullptr ? *options_.ids : *own_ids_) {}

OrchestratorLoop::~OrchestratorLoop() { Stop(); }

void OrchestratorLoop::Resync() {
  loop_.set_watch(options_.store->Watch([](const Event& e) {
    return e.kind == Kind::kService || e.kind == Kind::kTask || e.kind == Kind::kNode ||
           e.kind == Kind::kCluster;
  }));
  all_dirty_ = true;
}

void OrchestratorLoop::Handle(const Event& e) {
  switch (e.kind) {
    case Kind::kService:
      dirty_.insert(e.As<api::Service>()->meta().id());
      break;
    case Kind::kTask:
      dirty_.insert(e.As<api::Task>()->service_id());
      break;
    case Kind::kNode:
    case Kind::kCluster:
      all_dirty_ = true;
      break;
    default:
      break;
  }
}

size_t OrchestratorLoop::Step(absl::Time deadline) {
  if (loop_.watch() == nullptr) Resync();
  const absl::Time now = clock_.Now();
  for (auto it = wake_.begin(); it != wake_.end();) {
    if (it->second <= now) {
      dirty_.insert(it->first);
      it = wake_.erase(it);
    } else {
      ++it;
    }
  }
  const bool pending = all_dirty_ || !dirty_.empty();
  absl::Time wait_until = pending ? absl::InfinitePast() : deadline;
  // A due restart ends the wait (the wake times are on the injected clock; with a real one,
  // the distance is waited for).
  for (const auto& [id, at] : wake_) wait_until = std::min(wait_until, absl::Now() + (at - now));
  while (true) {
    auto e = loop_.watch()->Next(wait_until);
    if (!e.ok()) {
      Resync();
      break;
    }
    if (!e->has_value()) break;
    if ((*e)->type != Event::Type::kCommit) Handle(**e);
    wait_until = absl::InfinitePast();
  }
  if (!all_dirty_ && dirty_.empty()) return 0;
  return Reconcile();
}

size_t OrchestratorLoop::Reconcile() {
  const absl::Time now = clock_.Now();
  std::map<std::string, Actions> plans;
  options_.store->View([&](const ReadTx& tx) {
    if (all_dirty_) {
      for (const api::Service* s : tx.List<api::Service>()) dirty_.insert(s->meta().id());
      // Tasks of services that are gone.
      for (const api::Task* t : tx.List<api::Task>()) {
        if (tx.Get<api::Service>(t->service_id()) == nullptr) dirty_.insert(t->service_id());
      }
    }
    const int64_t history = HistoryLimit(tx);
    const std::vector<const api::Node*> nodes = tx.List<api::Node>();
    const NodeLookup lookup = [&](const std::string& id) { return tx.Get<api::Node>(id); };
    for (const std::string& id : dirty_) {
      const std::vector<const api::Task*> tasks = tx.TasksOfService(id);
      const api::Service* s = tx.Get<api::Service>(id);
      Actions a;
      if (s == nullptr) {
        a = RemoveAll(tasks);
        history_.Forget(id);
      } else if (s->spec().has_global()) {
        a = ReconcileGlobal(*s, tasks, nodes, history_, now, ids_);
      } else if (s->spec().has_replicated() || s->spec().mode_case() ==
                                                    api::ServiceSpec::MODE_NOT_SET) {
        a = ReconcileReplicated(*s, tasks, lookup, history_, now, ids_);
      } else {
        a = ReconcileJob(*s, tasks, nodes, history_, now, ids_);
      }
      // The reaper, on the state before this step's writes (what it deletes is settled).
      a.remove = Reap(tasks, history);
      if (a.wake != absl::InfiniteFuture()) wake_[id] = a.wake;
      if (!a.empty()) plans[id] = std::move(a);
    }
  });
  dirty_.clear();
  all_dirty_ = false;

  size_t written = 0;
  std::set<std::string> retry;
  for (auto& [service_id, a] : plans) {
    auto batch = options_.store->StartBatch(options_.leader_term);
    size_t changes = 0;
    auto add = [&](const std::function<absl::Status(WriteTx&)>& fn) {
      absl::Status s = batch->Add(fn);
      if (s.ok()) {
        ++changes;
      } else {
        ++write_failures_;
      }
    };
    if (a.service) add([&](WriteTx& tx) { return tx.Update(*a.service); });
    for (const api::Task& t : a.update) add([&](WriteTx& tx) { return tx.Update(t); });
    for (const api::Task& t : a.create) add([&](WriteTx& tx) { return tx.Create(t); });
    for (const std::string& id : a.remove) {
      add([&](WriteTx& tx) {
        // Already gone (deleted by another write): nothing to do.
        if (tx.Get<api::Task>(id) == nullptr) return absl::OkStatus();
        return tx.Remove<api::Task>(id);
      });
    }
    const absl::Status s = batch->Finish();
    if (!s.ok()) {
      ++write_failures_;
      if (absl::IsAborted(s)) {
        retry.insert(service_id);
      } else {
        // Leadership lost or the cluster unavailable: try again a little later (a loop of a
        // deposed leader is stopped before then).
        wake_[service_id] = now + absl::Seconds(1);
      }
    } else {
      written += changes;
    }
  }
  // A refused write (a task changed meanwhile, or leadership moved) is decided again on the
  // next step, from the store as it is then.
  for (const std::string& id : retry) dirty_.insert(id);
  return written;
}

void OrchestratorLoop::Start() {
  loop_.Start([this](absl::Time deadline) { Step(deadline); });
}

void OrchestratorLoop::Stop() { loop_.Stop(); }

}  // namespace shoal::manager::orchestrator

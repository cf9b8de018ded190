#include "manager/dispatcher/dispatcher.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace shoal::manager::dispatcher {

using store::Event;
using store::Kind;
using store::ReadTx;
using store::WriteTx;

namespace {

constexpr int kMissedHeartbeats = 3;
constexpr int kGraceHeartbeats = 6;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

std::vector<api::WeightedPeer> ManagersOf(const ReadTx& tx) {
  std::vector<api::WeightedPeer> out;
  for (const api::Node* n : tx.List<api::Node>()) {
    if (n->role() != api::NODE_ROLE_MANAGER || n->manager_status().addr().empty()) continue;
    api::WeightedPeer p;
    p.set_node_id(n->meta().id());
    p.set_addr(n->manager_status().addr());
    p.set_weight(n->status().state() == api::NodeStatus::NODE_STATE_DOWN ? 0 : 10);
    out.push_back(std::move(p));
  }
  // The reachable ones first: a worker tries them in this order.
  std::stable_sort(out.begin(), out.end(), [](const api::WeightedPeer& a,
                                              const api::WeightedPeer& b) {
    return a.weight() > b.weight();
  });
  return out;
}

namespace {

absl::Duration PeriodOf(const ReadTx& tx) {
  for (const api::Cluster* c : tx.List<api::Cluster>()) {
    const auto& p = c->spec().dispatcher().heartbeat_period();
    if (p.seconds() > 0 || p.nanos() > 0) return FromProto(p);
  }
  return absl::Seconds(5);
}

bool Equal(const api::Assignment& a, const api::Assignment& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace

AssignmentSet AssignmentsOf(const std::string& node_id, const ReadTx& tx) {
  AssignmentSet out;
  for (const api::Task* t : tx.TasksOnNode(node_id)) {
    const auto state = t->status().state();
    if (state < api::TASK_STATE_ASSIGNED) continue;
    // A finished task stays assigned until the store deletes it (the task history): the node
    // keeps its logs until then, as Docker keeps a container until its task is removed.
    *out[{0, t->meta().id()}].mutable_task() = *t;
    if (t->desired_state() > api::TASK_STATE_RUNNING) continue;
    // Only what a task the node should run references.
    for (const api::SecretReference& r : t->spec().container().secrets()) {
      if (const api::Secret* s = tx.Get<api::Secret>(r.secret_id())) {
        *out[{1, r.secret_id()}].mutable_secret() = *s;
      }
    }
    for (const api::ConfigReference& r : t->spec().container().configs()) {
      if (const api::Config* c = tx.Get<api::Config>(r.config_id())) {
        *out[{2, r.config_id()}].mutable_config() = *c;
      }
    }
  }
  return out;
}

std::vector<api::AssignmentChange> Diff(const AssignmentSet& before, const AssignmentSet& after) {
  std::vector<api::AssignmentChange> out;
  for (const auto& [key, a] : after) {
    auto it = before.find(key);
    if (it != before.end() && Equal(it->second, a)) continue;
    api::AssignmentChange& c = out.emplace_back();
    c.set_action(api::AssignmentChange::ACTION_UPDATE);
    *c.mutable_assignment() = a;
  }
  for (const auto& [key, a] : before) {
    if (after.count(key)) continue;
    api::AssignmentChange& c = out.emplace_back();
    c.set_action(api::AssignmentChange::ACTION_REMOVE);
    // Only the kind and id matter for a removal: no secret data travels with it.
    api::Assignment& gone = *c.mutable_assignment();
    switch (key.first) {
      case 0:
        gone.mutable_task()->mutable_meta()->set_id(key.second);
        break;
      case 1:
        gone.mutable_secret()->mutable_meta()->set_id(key.second);
        break;
      default:
        gone.mutable_config()->mutable_meta()->set_id(key.second);
        break;
    }
  }
  return out;
}

Dispatcher::Dispatcher(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
      own_ids_(options_.ids == nullptr ? std::make_unique<IdGenerator>() : nullptr),
      ids_(options_.ids != nullptr ? *options_.ids : *own_ids_) {}

Dispatcher::~Dispatcher() { Stop(); }

absl::Status Dispatcher::Start(bool run_thread) {
  const absl::Time now = clock_.Now();
  std::vector<std::string> reset;
  watch_ = options_.store->Watch(
      [](const Event& e) {
        return e.kind == Kind::kNode || e.kind == Kind::kTask || e.kind == Kind::kSecret ||
               e.kind == Kind::kConfig || e.kind == Kind::kCluster;
      },
      [&](const ReadTx& tx) {
        absl::MutexLock lock(&mu_);
        period_ = PeriodOf(tx);
        last_flush_ = now;
        for (const api::Node* n : tx.List<api::Node>()) {
          if (n->status().state() == api::NodeStatus::NODE_STATE_DOWN) continue;
          // After a leader change nobody knows: the node gets a grace to reconnect.
          nodes_[n->meta().id()].deadline = now + kGraceHeartbeats * period_;
          if (n->status().state() != api::NodeStatus::NODE_STATE_UNKNOWN) {
            reset.push_back(n->meta().id());
          }
        }
      });
  auto batch = options_.store->StartBatch(options_.leader_term);
  for (const std::string& id : reset) {
    (void)batch->Add([&](WriteTx& tx) -> absl::Status {
      const api::Node* n = tx.Get<api::Node>(id);
      if (n == nullptr) return absl::OkStatus();
      api::Node u = *n;
      u.mutable_status()->set_state(api::NodeStatus::NODE_STATE_UNKNOWN);
      u.mutable_status()->set_message("waiting for the node to reconnect to the new leader");
      return tx.Update(u);
    });
  }
  absl::Status s = batch->Finish();
  if (run_thread) thread_ = std::thread([this] { Run(); });
  return s;
}

void Dispatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (watch_ != nullptr) watch_->Close();
  if (thread_.joinable()) thread_.join();
  (void)FlushStatus();
  std::vector<std::shared_ptr<SessionSink>> sessions;
  std::vector<std::shared_ptr<AssignmentSink>> assignments;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, n] : nodes_) {
      if (n.session) sessions.push_back(std::move(n.session));
      if (n.assignments) assignments.push_back(std::move(n.assignments));
    }
    nodes_.clear();
  }
  const absl::Status why = absl::UnavailableError("the dispatcher stopped: reconnect to the leader");
  for (auto& s : sessions) s->End(why);
  for (auto& a : assignments) a->End(why);
}

absl::Duration Dispatcher::period() const {
  absl::MutexLock lock(&mu_);
  return period_;
}

size_t Dispatcher::buffered_status() const {
  absl::MutexLock lock(&mu_);
  return pending_status_.size();
}

absl::Status Dispatcher::CheckSession(const std::string& node_id,
                                      const std::string& session_id) const {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end() || it->second.session_id.empty() || it->second.session_id != session_id) {
    return absl::NotFoundError(absl::StrCat("session ", session_id, " is not node ", node_id,
                                            "'s current session: open a new one"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Dispatcher::OpenSession(const std::string& node_id,
                                                    api::NodeRole role,
                                                    const api::NodeDescription& description,
                                                    const std::string& addr,
                                                    std::shared_ptr<SessionSink> sink) {
  // Alive in memory before READY is written: a heartbeat check running meanwhile does not
  // take the old session's expired deadline for this one (its DOWN would land after READY).
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the dispatcher stopped: reconnect to the leader");
    Node& n = nodes_[node_id];
    n.down = false;
    n.deadline = clock_.Now() + kMissedHeartbeats * period_;
  }
  api::Node written;
  auto r = options_.store->Update(
      [&](WriteTx& tx) {
        const api::Node* n = tx.Get<api::Node>(node_id);
        api::Node u;
        if (n != nullptr) {
          u = *n;
        } else {
          u.mutable_meta()->set_id(node_id);
          u.set_role(role);
          u.mutable_spec()->set_desired_role(role);
          u.mutable_spec()->set_membership(api::NodeSpec::MEMBERSHIP_ACCEPTED);
        }
        *u.mutable_description() = description;
        u.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
        u.mutable_status()->set_addr(addr);
        u.mutable_status()->clear_message();
        written = u;
        return n != nullptr ? tx.Update(u) : tx.Create(u);
      },
      options_.leader_term);
  if (!r.ok()) return r.status();
  std::vector<api::WeightedPeer> managers;
  options_.store->View([&](const ReadTx& tx) {
    if (const api::Node* n = tx.Get<api::Node>(node_id)) written = *n;
    managers = ManagersOf(tx);
  });

  std::shared_ptr<SessionSink> old_session;
  std::shared_ptr<AssignmentSink> old_assignments;
  std::string session_id = ids_.Next();
  api::SessionMessage first;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the dispatcher stopped: reconnect to the leader");
    Node& n = nodes_[node_id];
    old_session = std::move(n.session);
    old_assignments = std::move(n.assignments);
    n.session_id = session_id;
    n.session = sink;
    n.assignments.reset();
    n.sent.clear();
    n.sequence = 0;
    n.down = false;
    n.deadline = clock_.Now() + kMissedHeartbeats * period_;
    first.set_session_id(session_id);
    *first.mutable_node() = written;
    for (auto& p : managers) *first.add_managers() = std::move(p);
  }
  const absl::Status replaced = absl::AbortedError("replaced by a newer session of this node");
  if (old_session) old_session->End(replaced);
  if (old_assignments) old_assignments->End(replaced);
  sink->Send(first);
  return session_id;
}

void Dispatcher::CloseSession(const std::string& node_id, const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it != nodes_.end() && it->second.session_id == session_id) it->second.session.reset();
}

absl::Duration Dispatcher::Jittered(absl::Duration period) {
  const absl::Duration epsilon = std::min(period / 10, absl::Milliseconds(500));
  if (epsilon <= absl::ZeroDuration()) return period;
  uint64_t r = 0;
  if (options_.random) {
    options_.random(reinterpret_cast<uint8_t*>(&r), sizeof(r));
  } else {
    SystemRandomBytes(reinterpret_cast<uint8_t*>(&r), sizeof(r));
  }
  const int64_t span = absl::ToInt64Microseconds(epsilon);
  return period + absl::Microseconds(static_cast<int64_t>(r % static_cast<uint64_t>(span)));
}

absl::StatusOr<absl::Duration> Dispatcher::Heartbeat(const std::string& node_id,
                                                     const std::string& session_id) {
  bool was_down = false;
  absl::Duration period;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckSession(node_id, session_id); !s.ok()) return s;
    period = Jittered(period_);
    Node& n = nodes_[node_id];
    // Three of the periods given, jitter included.
    n.deadline = clock_.Now() + kMissedHeartbeats * period;
    was_down = n.down;
    n.down = false;
  }
  // Back from the dead: the only heartbeat that writes.
  if (was_down) {
    if (absl::Status s = WriteNodeState(node_id, api::NodeStatus::NODE_STATE_READY, "");
        !s.ok()) {
      return s;
    }
  }
  return period;
}

absl::Status Dispatcher::WriteNodeState(const std::string& node_id, api::NodeStatus::State state,
                                        const std::string& message) {
  auto r = options_.store->Update(
      [&](WriteTx& tx) -> absl::Status {
        const api::Node* n = tx.Get<api::Node>(node_id);
        if (n == nullptr || n->status().state() == state) return absl::OkStatus();
        api::Node u = *n;
        u.mutable_status()->set_state(state);
        u.mutable_status()->set_message(message);
        return tx.Update(u);
      },
      options_.leader_term);
  return r.status();
}

absl::Status Dispatcher::UpdateTaskStatus(const std::string& node_id,
                                          const std::string& session_id,
                                          const api::UpdateTaskStatusRequest& request) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckSession(node_id, session_id); !s.ok()) return s;
  }
  // Every update must be the node's to make; checked before any is taken.
  absl::Status refused;
  std::map<std::string, api::TaskState> stored;  // as stored
  options_.store->View([&](const ReadTx& tx) {
    for (const auto& u : request.updates()) {
      const api::Task* t = tx.Get<api::Task>(u.task_id());
      if (t == nullptr) continue;  // deleted meanwhile: nothing to record
      if (t->node_id() != node_id) {
        refused = absl::PermissionDeniedError(
            absl::StrCat("task ", u.task_id(), " is not assigned to node ", node_id));
        return;
      }
      stored[u.task_id()] = t->status().state();
    }
  });
  if (!refused.ok()) return refused;
  bool flush = false;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& u : request.updates()) {
      auto at = stored.find(u.task_id());
      if (at == stored.end()) continue;
      // Forward only: against what is stored and what waits to be written.
      if (u.status().state() < at->second) continue;
      auto it = pending_status_.find(u.task_id());
      if (it != pending_status_.end() && u.status().state() < it->second.state()) continue;
      pending_status_[u.task_id()] = u.status();
    }
    flush = pending_status_.size() >= options_.status_batch;
  }
  return flush ? FlushStatus() : absl::OkStatus();
}

absl::Status Dispatcher::FlushStatus() {
  std::map<std::string, api::TaskStatus> taken;
  {
    absl::MutexLock lock(&mu_);
    taken.swap(pending_status_);
    last_flush_ = clock_.Now();
  }
  if (taken.empty()) return absl::OkStatus();
  auto batch = options_.store->StartBatch(options_.leader_term);
  for (const auto& [id, status] : taken) {
    (void)batch->Add([&](WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr || status.state() < t->status().state()) return absl::OkStatus();
      if (google::protobuf::util::MessageDifferencer::Equals(t->status(), status)) {
        return absl::OkStatus();
      }
      api::Task u = *t;
      *u.mutable_status() = status;
      return tx.Update(u);
    });
  }
  absl::Status s = batch->Finish();
  if (!s.ok()) {
    // Not written (a task changed meanwhile, or leadership moved): kept for the next flush,
    // unless a newer report came in since.
    absl::MutexLock lock(&mu_);
    for (auto& [id, status] : taken) pending_status_.try_emplace(id, std::move(status));
  }
  return s;
}

size_t Dispatcher::CheckHeartbeats() {
  const absl::Time now = clock_.Now();
  std::vector<std::string> expired;
  std::vector<std::shared_ptr<SessionSink>> sessions;
  std::vector<std::shared_ptr<AssignmentSink>> assignments;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, n] : nodes_) {
      if (n.down || n.deadline > now) continue;
      n.down = true;
      n.session_id.clear();
      if (n.session) sessions.push_back(std::move(n.session));
      if (n.assignments) assignments.push_back(std::move(n.assignments));
      n.sent.clear();
      expired.push_back(id);
    }
  }
  const absl::Status why = absl::DeadlineExceededError("heartbeats stopped: the node is down");
  for (auto& s : sessions) s->End(why);
  for (auto& a : assignments) a->End(why);
  for (const std::string& id : expired) {
    (void)WriteNodeState(id, api::NodeStatus::NODE_STATE_DOWN, "heartbeat failure");
  }
  // A node that came back (a new session, a heartbeat) between the check and the write above
  // wrote READY, which DOWN may have overwritten: READY again. One that comes back later
  // writes READY after this DOWN itself.
  std::vector<std::string> revived;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& id : expired) {
      auto it = nodes_.find(id);
      if (it != nodes_.end() && !it->second.down) revived.push_back(id);
    }
  }
  for (const std::string& id : revived) {
    (void)WriteNodeState(id, api::NodeStatus::NODE_STATE_READY, "");
  }
  return expired.size();
}

absl::Status Dispatcher::OpenAssignments(const std::string& node_id,
                                         const std::string& session_id,
                                         std::shared_ptr<AssignmentSink> sink) {
  std::shared_ptr<AssignmentSink> old;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckSession(node_id, session_id); !s.ok()) return s;
    Node& n = nodes_[node_id];
    old = std::move(n.assignments);
    n.assignments = std::move(sink);
    n.sent.clear();
  }
  if (old) old->End(absl::AbortedError("replaced by a newer assignments stream"));
  SendAssignments({node_id}, /*complete=*/true);
  return absl::OkStatus();
}

void Dispatcher::CloseAssignments(const std::string& node_id, const AssignmentSink* sink) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it != nodes_.end() && it->second.assignments.get() == sink) it->second.assignments.reset();
}

void Dispatcher::SendAssignments(const std::vector<std::string>& node_ids, bool complete) {
  for (const std::string& id : node_ids) {
    AssignmentSet now;
    options_.store->View([&](const ReadTx& tx) { now = AssignmentsOf(id, tx); });
    std::shared_ptr<AssignmentSink> sink;
    api::AssignmentsMessage m;
    {
      absl::MutexLock lock(&mu_);
      auto it = nodes_.find(id);
      if (it == nodes_.end() || it->second.assignments == nullptr) continue;
      Node& n = it->second;
      std::vector<api::AssignmentChange> changes;
      if (complete) {
        m.set_type(api::AssignmentsMessage::TYPE_COMPLETE);
        for (const auto& [key, a] : now) {
          api::AssignmentChange& c = changes.emplace_back();
          c.set_action(api::AssignmentChange::ACTION_UPDATE);
          *c.mutable_assignment() = a;
        }
      } else {
        m.set_type(api::AssignmentsMessage::TYPE_INCREMENTAL);
        changes = Diff(n.sent, now);
        if (changes.empty()) continue;
      }
      if (n.sequence > 0) m.set_applies_to(absl::StrCat(n.session_id, ".", n.sequence));
      m.set_results_in(absl::StrCat(n.session_id, ".", ++n.sequence));
      for (auto& c : changes) *m.add_changes() = std::move(c);
      n.sent = std::move(now);
      sink = n.assignments;
    }
    sink->Send(m);
  }
}

void Dispatcher::Pump(absl::Time deadline) {
  if (watch_ == nullptr) return;
  std::set<std::string> affected;
  bool all = false;
  std::vector<std::pair<std::shared_ptr<SessionSink>, api::SessionMessage>> node_messages;
  bool managers_changed = false;
  absl::Time wait_until = deadline;
  while (true) {
    auto e = watch_->Next(wait_until);
    if (!e.ok() || !e->has_value()) break;
    wait_until = absl::InfinitePast();
    const Event& ev = **e;
    if (ev.type == Event::Type::kCommit) continue;
    if (const auto* t = ev.As<api::Task>()) {
      if (!t->node_id().empty()) affected.insert(t->node_id());
    } else if (const auto* n = ev.As<api::Node>()) {
      managers_changed = true;
      absl::MutexLock lock(&mu_);
      auto it = nodes_.find(n->meta().id());
      if (ev.type != Event::Type::kRemove && it != nodes_.end() && it->second.session) {
        api::SessionMessage m;
        m.set_session_id(it->second.session_id);
        *m.mutable_node() = *n;
        node_messages.emplace_back(it->second.session, std::move(m));
      }
    } else if (ev.kind == Kind::kCluster) {
      options_.store->View([&](const ReadTx& tx) {
        const absl::Duration p = PeriodOf(tx);
        absl::MutexLock lock(&mu_);
        period_ = p;
      });
    } else {
      all = true;  // a secret or config: whoever references it
    }
  }
  if (managers_changed) {
    // Every session hears of a change of the manager list (a promotion, a demotion, a new
    // address, a manager down): the workers fail over to the managers it names.
    std::vector<api::WeightedPeer> managers;
    options_.store->View([&](const ReadTx& tx) { managers = ManagersOf(tx); });
    std::string key;
    for (const auto& p : managers) absl::StrAppend(&key, p.addr(), "/", p.weight(), ",");
    absl::MutexLock lock(&mu_);
    if (key != managers_key_) {
      managers_key_ = key;
      std::set<std::string> told;
      for (auto& [sink, m] : node_messages) {
        for (const auto& p : managers) *m.add_managers() = p;
        told.insert(m.session_id());
      }
      for (const auto& [id, n] : nodes_) {
        if (!n.session || told.count(n.session_id)) continue;
        api::SessionMessage m;
        m.set_session_id(n.session_id);
        for (const auto& p : managers) *m.add_managers() = p;
        node_messages.emplace_back(n.session, std::move(m));
      }
    }
  }
  for (auto& [sink, m] : node_messages) sink->Send(m);
  if (all) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, n] : nodes_) {
      if (n.assignments) affected.insert(id);
    }
  }
  SendAssignments(std::vector<std::string>(affected.begin(), affected.end()), false);
}

void Dispatcher::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    Pump(absl::Now() + absl::Milliseconds(50));
    CheckHeartbeats();
    bool due;
    {
      absl::MutexLock lock(&mu_);
      due = !pending_status_.empty() && clock_.Now() - last_flush_ >= options_.status_flush;
    }
    if (due) (void)FlushStatus();
  }
}

}  // namespace shoal::manager::dispatcher

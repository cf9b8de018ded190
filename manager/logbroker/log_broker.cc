#include "manager/logbroker/log_broker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::manager::logbroker {
namespace {

size_t SizeOf(const api::LogMessage& m) { return m.data().size() + 128; }

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t ns = absl::ToUnixNanos(t);
  out.set_seconds(ns / 1'000'000'000 - (ns % 1'000'000'000 < 0 ? 1 : 0));
  out.set_nanos(static_cast<int32_t>(ns - out.seconds() * 1'000'000'000));
  return out;
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool NodeDown(const store::ReadTx& tx, const std::string& node_id) {
  const api::Node* n = tx.Get<api::Node>(node_id);
  return n == nullptr || n->status().state() == api::NodeStatus::NODE_STATE_DOWN;
}

}  // namespace

// ---- LogSubscription ----

absl::StatusOr<std::optional<LogSubscription::Next>> LogSubscription::Read(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !lines_.empty() || finished_ || !aborted_.ok();
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  if (!aborted_.ok()) return aborted_;
  if (delivered_last_) return absl::OutOfRangeError("the subscription is over");
  if (lines_.empty() && !finished_) return std::nullopt;
  Next next;
  size_t bytes = 0;
  while (!lines_.empty() && next.message.messages_size() < static_cast<int>(kMaxBatchLines) &&
         bytes < kMaxBatchBytes) {
    const size_t size = SizeOf(lines_.front());
    bytes += size;
    bytes_ -= size;
    *next.message.add_messages() = std::move(lines_.front());
    lines_.pop_front();
  }
  if (lines_.empty() && finished_) {
    next.last = true;
    delivered_last_ = true;
    for (const std::string& n : unreachable_) next.message.add_unreachable_node_ids(n);
  }
  return next;
}

bool LogSubscription::Push(std::vector<api::LogMessage> lines, size_t limit) {
  absl::MutexLock lock(&mu_);
  auto room = [this, limit]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return bytes_ <= limit || finished_ || !aborted_.ok();
  };
  mu_.Await(absl::Condition(&room));
  if (finished_ || !aborted_.ok()) return false;
  for (api::LogMessage& m : lines) {
    bytes_ += SizeOf(m);
    lines_.push_back(std::move(m));
  }
  return true;
}

void LogSubscription::Finish(std::vector<std::string> unreachable) {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  finished_ = true;
  unreachable_ = std::move(unreachable);
}

void LogSubscription::Abort(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (!aborted_.ok() || delivered_last_) return;
  aborted_ = std::move(why);
  lines_.clear();
  bytes_ = 0;
}

size_t LogSubscription::queued_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

// ---- LogBroker ----

LogBroker::LogBroker(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
      own_ids_(options_.ids == nullptr ? std::make_unique<IdGenerator>() : nullptr),
      ids_(options_.ids != nullptr ? *options_.ids : *own_ids_) {}

LogBroker::~LogBroker() { Stop(); }

absl::Status LogBroker::Start(bool run_thread) {
  if (options_.store == nullptr) return absl::InvalidArgumentError("the log broker needs a store");
  {
    absl::MutexLock lock(&mu_);
    watch_ =
        options_.store->Watch([](const store::Event& e) { return e.kind == store::Kind::kTask; });
  }
  started_ = true;
  if (run_thread) thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void LogBroker::Stop() {
  std::vector<std::shared_ptr<ListenerSink>> listeners;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    if (watch_ != nullptr) watch_->Close();
    for (auto& [id, s] : subs_) {
      s.queue->Abort(absl::UnavailableError(
          "the log broker stopped (this manager no longer leads): subscribe again"));
    }
    subs_.clear();
    for (auto& [node, sink] : listeners_) listeners.push_back(sink);
    listeners_.clear();
  }
  if (thread_.joinable()) thread_.join();
  for (auto& sink : listeners) {
    sink->End(absl::UnavailableError("the log broker stopped: listen to the new leader"));
  }
}

size_t LogBroker::subscriptions() const {
  absl::MutexLock lock(&mu_);
  return subs_.size();
}

bool LogBroker::Selects(const Sub& s, const api::Task& t) {
  return s.service_ids.count(t.service_id()) > 0 || s.node_ids.count(t.node_id()) > 0 ||
         s.task_ids.count(t.meta().id()) > 0;
}

api::SubscriptionMessage LogBroker::PartMessage(const std::string& id, const Sub& s,
                                                const std::string& node_id, const Part& part) {
  api::SubscriptionMessage m;
  m.set_id(id);
  api::LogSelector& sel = *m.mutable_selector();
  for (const std::string& service : s.service_ids) sel.add_service_ids(service);
  if (s.node_ids.count(node_id) > 0) sel.add_node_ids(node_id);
  for (const std::string& task : part.task_ids) sel.add_task_ids(task);
  *m.mutable_options() = s.request.options();
  if (s.follow && part.last_line.has_value()) {
    // A part sent again (the node listens anew): from just after what it already sent.
    *m.mutable_options()->mutable_since() = ToProto(*part.last_line + absl::Nanoseconds(1));
    m.mutable_options()->set_tail(-1);
  }
  return m;
}

void LogBroker::SendPartLocked(const std::string& id, const Sub& s, const std::string& node_id,
                               Outgoing* out) {
  auto l = listeners_.find(node_id);
  if (l == listeners_.end()) return;
  out->emplace_back(l->second, PartMessage(id, s, node_id, s.parts.at(node_id)));
}

void LogBroker::Flush(Outgoing* out) {
  for (auto& [sink, m] : *out) sink->Send(m);
  out->clear();
}

absl::StatusOr<std::shared_ptr<LogSubscription>> LogBroker::Subscribe(
    const api::SubscribeLogsRequest& request) {
  const api::LogSelector& sel = request.selector();
  if (sel.service_ids().empty() && sel.node_ids().empty() && sel.task_ids().empty()) {
    return absl::InvalidArgumentError(
        "selector: name at least one service, task or node whose logs to read");
  }
  Sub s;
  s.request = request;
  s.follow = request.options().follow();
  s.service_ids.insert(sel.service_ids().begin(), sel.service_ids().end());
  s.node_ids.insert(sel.node_ids().begin(), sel.node_ids().end());
  s.task_ids.insert(sel.task_ids().begin(), sel.task_ids().end());
  const std::string id = ids_.Next();
  auto queue = std::make_shared<LogSubscription>(id);
  s.queue = queue;

  Outgoing out;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::UnavailableError("the log broker stopped: subscribe again");
    absl::Status missing;
    std::set<std::string> down;
    const absl::Time deadline = clock_.Now() + options_.node_timeout;
    options_.store->View([&](const store::ReadTx& tx) {
      std::vector<const api::Task*> tasks;
      for (const std::string& service : s.service_ids) {
        if (tx.Get<api::Service>(service) == nullptr) {
          missing = absl::NotFoundError(absl::StrCat("service ", service, " not found"));
          return;
        }
        for (const api::Task* t : tx.TasksOfService(service)) tasks.push_back(t);
      }
      for (const std::string& task : s.task_ids) {
        const api::Task* t = tx.Get<api::Task>(task);
        if (t == nullptr) {
          missing = absl::NotFoundError(absl::StrCat("task ", task, " not found"));
          return;
        }
        tasks.push_back(t);
      }
      for (const std::string& node : s.node_ids) {
        if (tx.Get<api::Node>(node) == nullptr) {
          missing = absl::NotFoundError(absl::StrCat("node ", node, " not found"));
          return;
        }
        for (const api::Task* t : tx.TasksOnNode(node)) tasks.push_back(t);
      }
      for (const api::Task* t : tasks) {
        if (t->node_id().empty()) continue;  // never placed: no output anywhere
        Part& part = s.parts[t->node_id()];
        if (std::find(part.task_ids.begin(), part.task_ids.end(), t->meta().id()) ==
            part.task_ids.end()) {
          part.task_ids.push_back(t->meta().id());
        }
        part.deadline = deadline;
      }
      for (const auto& [node, part] : s.parts) {
        if (NodeDown(tx, node)) down.insert(node);
      }
    });
    if (!missing.ok()) return missing;
    if (!s.follow) {
      // Nothing will come from them: no waiting.
      for (const std::string& node : down) s.parts[node].unreachable = true;
    }
    auto [it, inserted] = subs_.emplace(id, std::move(s));
    for (const auto& [node, part] : it->second.parts) {
      if (!part.unreachable) SendPartLocked(id, it->second, node, &out);
    }
    MaybeFinishLocked(id, &out);  // nothing to wait for: over at once
  }
  Flush(&out);
  return queue;
}

bool LogBroker::MaybeFinishLocked(const std::string& id, Outgoing* out) {
  auto it = subs_.find(id);
  if (it == subs_.end() || it->second.follow) return false;
  Sub& s = it->second;
  std::vector<std::string> unreachable;
  for (const auto& [node, part] : s.parts) {
    if (!part.closed && !part.unreachable) return false;
    if (part.unreachable) unreachable.push_back(node);
  }
  // Nodes still working on a part that was given up on: stop them.
  for (const auto& [node, part] : s.parts) {
    if (part.closed) continue;
    auto l = listeners_.find(node);
    if (l == listeners_.end()) continue;
    api::SubscriptionMessage close;
    close.set_id(id);
    close.set_close(true);
    out->emplace_back(l->second, std::move(close));
  }
  s.queue->Finish(std::move(unreachable));
  subs_.erase(it);
  return true;
}

void LogBroker::Cancel(const std::string& subscription_id) {
  Outgoing out;
  {
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(subscription_id);
    if (it == subs_.end()) return;
    for (const auto& [node, part] : it->second.parts) {
      if (part.closed) continue;
      auto l = listeners_.find(node);
      if (l == listeners_.end()) continue;
      api::SubscriptionMessage close;
      close.set_id(subscription_id);
      close.set_close(true);
      out.emplace_back(l->second, std::move(close));
    }
    it->second.queue->Abort(absl::CancelledError("the subscriber went away"));
    subs_.erase(it);
  }
  Flush(&out);
}

void LogBroker::Listen(const std::string& node_id, std::shared_ptr<ListenerSink> sink) {
  Outgoing out;
  std::shared_ptr<ListenerSink> older;
  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = stopped_;
    if (!stopped) {
      older = std::move(listeners_[node_id]);
      listeners_[node_id] = sink;
      for (auto& [id, s] : subs_) {
        auto p = s.parts.find(node_id);
        if (p == s.parts.end() || p->second.closed || p->second.unreachable) continue;
        p->second.deadline = clock_.Now() + options_.node_timeout;
        SendPartLocked(id, s, node_id, &out);
      }
    }
  }
  if (stopped) {
    sink->End(absl::UnavailableError("the log broker stopped: listen to the new leader"));
    return;
  }
  if (older != nullptr && older != sink) {
    older->End(absl::AbortedError("replaced by a newer ListenSubscriptions stream of the node"));
  }
  Flush(&out);
}

void LogBroker::StopListening(const std::string& node_id, const ListenerSink* sink) {
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(node_id);
  if (it != listeners_.end() && it->second.get() == sink) listeners_.erase(it);
}

absl::Status LogBroker::Publish(const std::string& node_id,
                                const api::PublishLogsMessage& message) {
  const std::string& id = message.subscription_id();
  std::shared_ptr<LogSubscription> queue;
  std::vector<api::LogMessage> lines(message.messages().begin(), message.messages().end());
  absl::Status refused;
  Outgoing out;
  {
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(id);
    if (it == subs_.end()) {
      return absl::NotFoundError(absl::StrCat("subscription ", id, " is over"));
    }
    Sub& s = it->second;
    auto p = s.parts.find(node_id);
    if (p == s.parts.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("node ", node_id, " has no part in subscription ", id));
    }
    // Every line is checked before any is taken.
    options_.store->View([&](const store::ReadTx& tx) {
      for (api::LogMessage& m : lines) {
        const std::string& task_id = m.context().task_id();
        const api::Task* t = tx.Get<api::Task>(task_id);
        if (t == nullptr || t->node_id() != node_id) {
          refused = absl::PermissionDeniedError(
              absl::StrCat("task ", task_id, " is not on node ", node_id));
          return;
        }
        if (!Selects(s, *t)) {
          refused = absl::PermissionDeniedError(
              absl::StrCat("subscription ", id, " does not select task ", task_id));
          return;
        }
        m.mutable_context()->set_service_id(t->service_id());
        m.mutable_context()->set_node_id(node_id);
      }
    });
    Part& part = p->second;
    if (!refused.ok()) {
      // A node that sends what it must not has failed its part.
      part.unreachable = true;
      MaybeFinishLocked(id, &out);
    } else {
      part.deadline = clock_.Now() + options_.node_timeout;
      for (const api::LogMessage& m : lines) {
        const absl::Time t = FromProto(m.timestamp());
        if (!part.last_line.has_value() || t > *part.last_line) part.last_line = t;
      }
      queue = s.queue;
    }
  }
  if (!refused.ok()) {
    Flush(&out);
    return refused;
  }
  if (!lines.empty() && !queue->Push(std::move(lines), options_.queue_bytes)) {
    return absl::NotFoundError(absl::StrCat("subscription ", id, " is over"));
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(id);
    if (it == subs_.end()) {
      return message.close() ? absl::OkStatus()
                             : absl::NotFoundError(absl::StrCat("subscription ", id, " is over"));
    }
    auto p = it->second.parts.find(node_id);
    if (p != it->second.parts.end()) {
      // Heard from after the wait for room, too.
      p->second.deadline = clock_.Now() + options_.node_timeout;
      if (message.close()) p->second.closed = true;
    }
    if (message.close()) MaybeFinishLocked(id, &out);
  }
  Flush(&out);
  return absl::OkStatus();
}

void LogBroker::PublisherGone(const std::string& node_id, const std::string& subscription_id) {
  Outgoing out;
  {
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(subscription_id);
    if (it == subs_.end() || it->second.follow) return;
    auto p = it->second.parts.find(node_id);
    if (p == it->second.parts.end() || p->second.closed) return;
    p->second.unreachable = true;
    MaybeFinishLocked(subscription_id, &out);
  }
  Flush(&out);
}

void LogBroker::TakeTaskLocked(const api::Task& t, Outgoing* out) {
  if (t.node_id().empty()) return;
  for (auto& [id, s] : subs_) {
    if (!s.follow || !Selects(s, t)) continue;
    auto [p, added] = s.parts.try_emplace(t.node_id());
    if (std::find(p->second.task_ids.begin(), p->second.task_ids.end(), t.meta().id()) !=
        p->second.task_ids.end()) {
      continue;
    }
    p->second.task_ids.push_back(t.meta().id());
    // A node that already serves the part finds the new task itself when it selects its
    // service or node; otherwise it is sent the part again, naming the task.
    const bool found_by_worker =
        s.service_ids.count(t.service_id()) > 0 || s.node_ids.count(t.node_id()) > 0;
    if (added || !found_by_worker) SendPartLocked(id, s, t.node_id(), out);
  }
}

void LogBroker::Pump(absl::Time deadline) {
  std::shared_ptr<store::Watcher> watch;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || watch_ == nullptr) return;
    watch = watch_;
  }
  Outgoing out;
  auto e = watch->Next(deadline);
  while (true) {
    if (!e.ok()) {
      // Closed (a snapshot restore, or too far behind): watch anew and look at every task the
      // follow subscriptions select.
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      watch_ = options_.store->Watch(
          [](const store::Event& ev) { return ev.kind == store::Kind::kTask; },
          [&](const store::ReadTx& tx) {
            for (const api::Task* t : tx.List<api::Task>()) TakeTaskLocked(*t, &out);
          });
      break;
    }
    if (!e->has_value()) break;
    const store::Event& ev = **e;
    if (ev.type == store::Event::Type::kCreate || ev.type == store::Event::Type::kUpdate) {
      if (const api::Task* t = ev.As<api::Task>()) {
        absl::MutexLock lock(&mu_);
        TakeTaskLocked(*t, &out);
      }
    }
    e = watch->Next(absl::InfinitePast());
  }
  Flush(&out);
}

void LogBroker::Tick() {
  Outgoing out;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    std::vector<std::string> ids;
    for (auto& [id, s] : subs_) {
      if (s.follow) continue;
      // Lines wait for the subscriber: the nodes are not silent, the subscriber is slow.
      const bool waiting_for_subscriber = s.queue->queued_bytes() > 0;
      for (auto& [node, part] : s.parts) {
        if (part.closed || part.unreachable) continue;
        if (waiting_for_subscriber) {
          part.deadline = std::max(part.deadline, now + options_.node_timeout);
        } else if (part.deadline <= now) {
          part.unreachable = true;
        }
      }
      ids.push_back(id);
    }
    for (const std::string& id : ids) MaybeFinishLocked(id, &out);
  }
  Flush(&out);
}

void LogBroker::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
    }
    Pump(absl::Now() + absl::Milliseconds(100));
    Tick();
  }
}

}  // namespace shoal::manager::logbroker

#include "worker/agent.h"

#include <rocksdb/db.h>

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"

namespace shoal::worker {
namespace {

constexpr char kLog[] = "worker";
// Updates in one UpdateTaskStatus call at most.
constexpr size_t kMaxBatch = 1000;
// What one call to a manager may take before the agent gives up on it.
constexpr auto kCallDeadline = std::chrono::seconds(5);

absl::Duration DurationOf(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

Agent::Agent(Options options) : options_(std::move(options)) {
  managers_ = options_.managers;
  LogPublisher::Options lo;
  lo.node_id = options_.node_id;
  lo.executor = options_.executor;
  lo.tasks = [this] {
    absl::MutexLock lock(&mu_);
    return services_;
  };
  logs_ = std::make_unique<LogPublisher>(lo);
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(Options options) {
  if (options.managers.empty()) {
    return absl::InvalidArgumentError("the worker agent needs at least one manager address");
  }
  if (options.executor == nullptr || !options.channel) {
    return absl::InvalidArgumentError("the worker agent needs an executor and a channel factory");
  }
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  if (absl::Status s = agent->Open(); !s.ok()) return s;
  return agent;
}

absl::Status Agent::Open() {
  if (options_.state_dir.empty()) return absl::OkStatus();
  db_.reset();
  const std::string path = options_.state_dir + "/tasks";
  rocksdb::Options o;
  o.create_if_missing = true;
  o.keep_log_file_num = 2;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &db);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("opening the task database ", path, ": ",
                                               s.ToString()));
  }
  db_.reset(db);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  size_t loaded = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    api::Task t;
    if (!t.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      log::Warning(kLog, "dropped an unreadable task record from the task database",
                   {{"key", it->key().ToString()}});
      (void)db_->Delete(rocksdb::WriteOptions(), it->key());
      continue;
    }
    const std::string id = t.meta().id();
    auto c = std::make_unique<TaskController>(t, *options_.executor);
    absl::MutexLock lock(&mu_);
    states_[id] = {c->state(), c->task().desired_state() <= api::TASK_STATE_RUNNING};
    services_[id] = c->task().service_id();
    tasks_[id] = std::move(c);
    ++loaded;
  }
  if (!it->status().ok()) {
    return absl::DataLossError(absl::StrCat("reading the task database ", path, ": ",
                                            it->status().ToString()));
  }
  if (loaded > 0) log::Info(kLog, "found the tasks of an earlier run", {{"tasks", loaded}});
  return absl::OkStatus();
}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  loop_thread_ = std::thread([this] { RunLoop(); });
  session_thread_ = std::thread([this] { RunSessions(); });
}

void Agent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (grpc::ClientContext* c : open_) c->TryCancel();
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (loop_thread_.joinable()) loop_thread_.join();
  // The controllers' runners are left as they are: the tasks outlive this agent.
  for (auto& [id, c] : tasks_) c->Release();
  tasks_.clear();
}

void Agent::ShutdownTasks(absl::Duration wait) {
  Stop();
  // Stop released the controllers: adopt the tasks from the database again, and stop them.
  if (absl::Status s = Open(); !s.ok()) {
    log::Warning(kLog, "cannot read the task database to stop the tasks", {{"error", s}});
    return;
  }
  const absl::Time deadline = absl::Now() + wait;
  for (auto& [id, c] : tasks_) {
    api::Task t = c->task();
    t.set_desired_state(api::TASK_STATE_SHUTDOWN);
    c->Update(t);
    if (absl::Now() < deadline) (void)c->Step(absl::Now());
    Forget(id);
  }
  tasks_.clear();  // removes what each runner held
  absl::MutexLock lock(&mu_);
  states_.clear();
  services_.clear();
  unreported_.clear();
}

bool Agent::connected() const {
  absl::MutexLock lock(&mu_);
  return stub_ != nullptr;
}

size_t Agent::running() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, s] : states_) n += s.first == api::TASK_STATE_RUNNING && s.second;
  return n;
}

std::string Agent::manager() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::vector<std::string> Agent::managers() const {
  absl::MutexLock lock(&mu_);
  return managers_;
}

std::map<std::string, api::TaskState> Agent::tasks() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, api::TaskState> out;
  for (const auto& [id, s] : states_) out[id] = s.first;
  return out;
}

void Agent::RunSessions() {
  std::mt19937_64 rng(options_.seed);
  absl::Duration backoff = options_.backoff_initial;
  std::string addr = options_.managers.front();
  while (!stop_) {
    const int before = sessions_.load();
    const std::string leader = Serve(addr);
    if (stop_) return;
    if (sessions_.load() != before) backoff = options_.backoff_initial;
    if (!leader.empty() && leader != addr) {
      addr = leader;  // a follower said who leads: go there at once
      continue;
    }
    // No hint: the next manager of the list, after a back-off.
    {
      absl::MutexLock lock(&mu_);
      auto it = std::find(managers_.begin(), managers_.end(), addr);
      addr = it == managers_.end() || std::next(it) == managers_.end() ? managers_.front()
                                                                       : *std::next(it);
    }
    const double jitter = std::uniform_real_distribution<double>(0.5, 1.0)(rng);
    absl::MutexLock lock(&mu_);
    auto stopping = [this] { return stop_.load(); };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff * jitter);
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

std::string Agent::Serve(const std::string& addr) {
  std::shared_ptr<grpc::ChannelInterface> channel = options_.channel(addr);
  auto stub = std::shared_ptr<api::Dispatcher::StubInterface>(api::Dispatcher::NewStub(channel));
  grpc::ClientContext session_ctx;
  grpc::ClientContext assign_ctx;
  grpc::ClientContext logs_ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return "";
    open_ = {&session_ctx, &assign_ctx, &logs_ctx};
  }
  api::SessionRequest sreq;
  *sreq.mutable_description() = options_.description;
  auto session = stub->Session(&session_ctx, sreq);
  api::SessionMessage first;
  if (!session->Read(&first)) {
    const grpc::Status s = session->Finish();
    {
      absl::MutexLock lock(&mu_);
      open_.clear();
    }
    const auto& trailers = session_ctx.GetServerTrailingMetadata();
    auto it = trailers.find("shoal-leader-addr");
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE && it != trailers.end() &&
        it->second.size() > 0) {
      return std::string(it->second.data(), it->second.size());
    }
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED && !stop_ && options_.on_refused) {
      options_.on_refused(s);
    }
    if (!stop_) {
      log::Info(kLog, "no session with this manager",
                {{"manager", addr}, {"error", s.error_message()}});
    }
    return "";
  }
  ++sessions_;
  const std::string session_id = first.session_id();
  log::Info(kLog, "session open", {{"manager", addr}, {"node", options_.node_id}});

  std::atomic<bool> over{false};
  auto end = [&] {
    over = true;
    session_ctx.TryCancel();
    assign_ctx.TryCancel();
    logs_ctx.TryCancel();
  };
  auto on_message = [&](const api::SessionMessage& m) {
    if (!m.managers().empty()) {
      std::vector<std::string> list;
      for (const api::WeightedPeer& p : m.managers()) {
        if (!p.addr().empty()) list.push_back(p.addr());
      }
      if (!list.empty()) {
        absl::MutexLock lock(&mu_);
        managers_ = std::move(list);
      }
    }
    if (options_.on_session) options_.on_session(m);
  };
  on_message(first);
  {
    absl::MutexLock lock(&mu_);
    current_ = addr;
    session_id_ = session_id;
    stub_ = stub;
    // Everything is reported again: the last leader may have lost what it had not written.
    report_all_ = true;
    wake_ = true;
  }

  // One heartbeat per period the dispatcher gives (it adds the jitter), as Docker's agent
  // does: the node is Down after 3 missed periods, so 2 lost heartbeats are survived.
  absl::Mutex hb_mu;
  std::thread heartbeats([&] {
    while (!stop_ && !over) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
      api::HeartbeatRequest req;
      req.set_session_id(session_id);
      api::HeartbeatResponse resp;
      const grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
      if (!s.ok()) {
        if (!stop_ && !over) {
          log::Info(kLog, "heartbeat refused: opening a new session",
                    {{"manager", addr}, {"error", s.error_message()}});
        }
        end();
        return;
      }
      absl::Duration period = DurationOf(resp.period());
      if (period <= absl::ZeroDuration()) period = absl::Seconds(5);
      absl::MutexLock lock(&hb_mu);
      auto done = [&] { return stop_.load() || over.load(); };
      hb_mu.AwaitWithTimeout(absl::Condition(&done), period);
    }
  });
  // Later session messages: the node object and the manager list as they change.
  std::thread messages([&] {
    api::SessionMessage m;
    while (session->Read(&m)) on_message(m);
    end();
  });
  // The log broker's subscriptions, for as long as the session lasts. Its end alone does not
  // end the session (a manager may serve no Logs API).
  std::thread logs([&] {
    auto logs_stub = api::Logs::NewStub(channel);
    const grpc::Status s = logs_->Serve(*logs_stub, &logs_ctx);
    if (!s.ok() && !over && !stop_) {
      log::Info(kLog, "no log subscriptions from this manager",
                {{"manager", addr}, {"error", s.error_message()}});
    }
  });

  api::AssignmentsRequest areq;
  areq.set_session_id(session_id);
  auto assignments = stub->Assignments(&assign_ctx, areq);
  api::AssignmentsMessage m;
  while (!stop_ && assignments->Read(&m)) {
    absl::MutexLock lock(&mu_);
    inbox_.push_back(std::move(m));
    wake_ = true;
  }
  end();
  {
    // Wakes the heartbeat thread's wait.
    absl::MutexLock lock(&hb_mu);
  }
  heartbeats.join();
  messages.join();
  logs.join();
  (void)session->Finish();
  (void)assignments->Finish();
  absl::MutexLock lock(&mu_);
  open_.clear();
  session_id_.clear();
  stub_.reset();
  return "";
}

void Agent::Apply(const api::AssignmentsMessage& m) {
  auto unassign = [&](const std::string& id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    unassigned_[id] = true;
    if (it->second->task().desired_state() <= api::TASK_STATE_RUNNING) {
      api::Task t = it->second->task();
      t.set_desired_state(api::TASK_STATE_SHUTDOWN);
      it->second->Update(t);
    }
  };
  if (m.type() == api::AssignmentsMessage::TYPE_COMPLETE) {
    std::set<std::string> wanted;
    for (const api::AssignmentChange& c : m.changes()) {
      if (c.assignment().has_task() && c.action() == api::AssignmentChange::ACTION_UPDATE) {
        wanted.insert(c.assignment().task().meta().id());
      }
    }
    for (const auto& [id, c] : tasks_) {
      if (!wanted.count(id)) unassign(id);
    }
  }
  for (const api::AssignmentChange& c : m.changes()) {
    if (!c.assignment().has_task()) continue;  // secrets and configs: with the oci executor
    const api::Task& t = c.assignment().task();
    const std::string& id = t.meta().id();
    if (c.action() == api::AssignmentChange::ACTION_REMOVE) {
      unassign(id);
      continue;
    }
    unassigned_.erase(id);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      // A finished task this worker does not know (its history, after the task database was
      // lost): nothing to run or stop.
      if (t.status().state() > api::TASK_STATE_RUNNING &&
          t.desired_state() > api::TASK_STATE_RUNNING) {
        continue;
      }
      tasks_[id] = std::make_unique<TaskController>(t, *options_.executor);
    } else {
      it->second->Update(t);
    }
    Save(tasks_[id]->task());
  }
}

void Agent::RunLoop() {
  while (true) {
    std::vector<api::AssignmentsMessage> inbox;
    bool report_all;
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this] { return wake_ || stop_.load(); };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
      if (stop_) return;
      inbox.swap(inbox_);
      wake_ = false;
      report_all = report_all_;
      report_all_ = false;
    }
    for (const api::AssignmentsMessage& m : inbox) Apply(m);

    const absl::Time now = absl::Now();
    std::map<std::string, api::TaskStatus> reports;
    std::vector<std::string> gone;
    for (auto& [id, c] : tasks_) {
      std::vector<api::TaskStatus> passed = c->Step(now);
      if (!passed.empty()) {
        Save(c->task());
        reports[id] = passed.back();
      } else if (report_all && c->state() >= api::TASK_STATE_ACCEPTED) {
        reports[id] = c->task().status();
      }
      if (c->finished() && unassigned_.count(id)) gone.push_back(id);
    }
    for (const std::string& id : gone) {
      tasks_.erase(id);  // releases what the runner holds
      unassigned_.erase(id);
      Forget(id);
      // The cluster deleted it (it is no longer assigned, even as history): its logs go too.
      if (absl::Status s = options_.executor->DeleteTask(id); !s.ok()) {
        log::Warning(kLog, "cannot delete a removed task's files", {{"task", id}, {"error", s}});
      }
    }
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, s] : reports) unreported_[id] = std::move(s);
      for (const std::string& id : gone) {
        states_.erase(id);
        services_.erase(id);
        unreported_.erase(id);  // the managers forgot it
      }
      for (const auto& [id, c] : tasks_) {
        states_[id] = {c->state(), c->task().desired_state() <= api::TASK_STATE_RUNNING};
        services_[id] = c->task().service_id();
      }
    }
    Report();
  }
}

bool Agent::Report() {
  absl::MutexLock serial(&report_mu_);
  while (true) {
    api::UpdateTaskStatusRequest req;
    std::shared_ptr<api::Dispatcher::StubInterface> stub;
    {
      absl::MutexLock lock(&mu_);
      if (unreported_.empty()) return true;
      if (stub_ == nullptr) return false;
      stub = stub_;
      req.set_session_id(session_id_);
      for (auto it = unreported_.begin(); it != unreported_.end() && req.updates_size() <
                                                                     static_cast<int>(kMaxBatch);) {
        auto* u = req.add_updates();
        u->set_task_id(it->first);
        *u->mutable_status() = it->second;
        it = unreported_.erase(it);
      }
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    api::UpdateTaskStatusResponse resp;
    const grpc::Status s = stub->UpdateTaskStatus(&ctx, req, &resp);
    if (s.ok()) continue;
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // Sending it again would be refused again.
      log::Warning(kLog, "the manager refused a status report; dropped it",
                   {{"updates", req.updates_size()}, {"error", s.error_message()}});
      continue;
    }
    // Sent again with the next session (or round), unless a newer status replaced it.
    absl::MutexLock lock(&mu_);
    for (const auto& u : req.updates()) unreported_.emplace(u.task_id(), u.status());
    return false;
  }
}

void Agent::Save(const api::Task& task) {
  if (db_ == nullptr) return;
  rocksdb::Status s =
      db_->Put(rocksdb::WriteOptions(), task.meta().id(), task.SerializeAsString());
  if (!s.ok()) {
    log::Error(kLog, "cannot save a task in the task database",
               {{"task", task.meta().id()}, {"error", s.ToString()}});
  }
}

void Agent::Forget(const std::string& task_id) {
  if (db_ == nullptr) return;
  (void)db_->Delete(rocksdb::WriteOptions(), task_id);
}

}  // namespace shoal::worker

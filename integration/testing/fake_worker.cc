#include "integration/testing/fake_worker.h"

#include "absl/time/clock.h"
#include "pki/tls_credentials.h"

namespace shoal::integration {

FakeWorker::FakeWorker(std::string id, std::vector<std::string> managers, std::string tls_dir,
                       std::string cluster_id)
    : id_(std::move(id)),
      managers_(std::move(managers)),
      tls_dir_(std::move(tls_dir)),
      cluster_id_(std::move(cluster_id)) {}

FakeWorker::~FakeWorker() { Kill(); }

void FakeWorker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void FakeWorker::Kill() {
  stop_ = true;
  {
    absl::MutexLock lock(&mu_);
    for (grpc::ClientContext* c : open_) c->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

size_t FakeWorker::running() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, t] : tasks_) {
    n += t.status().state() == api::TASK_STATE_RUNNING &&
         t.desired_state() <= api::TASK_STATE_RUNNING;
  }
  return n;
}

void FakeWorker::Run() {
  size_t next = 0;
  std::string addr = managers_[0];
  while (!stop_) {
    const std::string redirect = Serve(addr);
    if (stop_) return;
    if (!redirect.empty()) {
      addr = redirect;
    } else {
      // No hint: the next manager in the list, after a short pause (a back-off, not a wait
      // for anything in particular).
      addr = managers_[++next % managers_.size()];
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
}

std::string FakeWorker::Serve(const std::string& addr) {
  auto channel = pki::CreateManagerChannel(addr, pki::ClientCredentials(tls_dir_, cluster_id_));
  auto stub = api::Dispatcher::NewStub(channel);

  grpc::ClientContext session_ctx;
  grpc::ClientContext assign_ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return "";
    open_ = {&session_ctx, &assign_ctx};
  }
  auto forget = [&] {
    absl::MutexLock lock(&mu_);
    open_.clear();
  };
  api::SessionRequest sreq;
  sreq.mutable_description()->set_hostname(id_);
  sreq.mutable_description()->mutable_resources()->set_nano_cpus(8'000'000'000);
  sreq.mutable_description()->mutable_resources()->set_memory_bytes(int64_t{16} << 30);
  sreq.mutable_description()->mutable_platform()->set_os("linux");
  sreq.mutable_description()->mutable_platform()->set_architecture("amd64");
  auto session = stub->Session(&session_ctx, sreq);
  api::SessionMessage first;
  if (!session->Read(&first)) {
    const grpc::Status s = session->Finish();
    forget();
    const auto& trailers = session_ctx.GetServerTrailingMetadata();
    auto it = trailers.find("shoal-leader-addr");
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE && it != trailers.end() &&
        it->second.size() > 0) {
      return std::string(it->second.data(), it->second.size());
    }
    return "";
  }
  ++sessions_;
  const std::string session_id = first.session_id();

  // Heartbeats on their own thread, at the period the dispatcher gives.
  std::atomic<bool> session_over{false};
  absl::Mutex hb_mu;
  std::thread heartbeats([&] {
    absl::Duration period = absl::Milliseconds(100);
    while (!stop_ && !session_over) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      api::HeartbeatRequest req;
      req.set_session_id(session_id);
      api::HeartbeatResponse resp;
      if (!stub->Heartbeat(&ctx, req, &resp).ok()) {
        session_over = true;
        session_ctx.TryCancel();
        assign_ctx.TryCancel();
        return;
      }
      period = absl::Seconds(resp.period().seconds()) + absl::Nanoseconds(resp.period().nanos());
      // Well within the period, as a worker must be.
      absl::MutexLock lock(&hb_mu);
      auto over = [&] { return stop_.load() || session_over.load(); };
      hb_mu.AwaitWithTimeout(absl::Condition(&over), period / 3);
    }
  });

  api::AssignmentsRequest areq;
  areq.set_session_id(session_id);
  auto assignments = stub->Assignments(&assign_ctx, areq);
  api::AssignmentsMessage m;
  while (!stop_ && assignments->Read(&m)) Report(*stub, session_id, m);
  session_over = true;
  session_ctx.TryCancel();
  assign_ctx.TryCancel();
  heartbeats.join();
  (void)assignments->Finish();
  forget();
  return "";
}

void FakeWorker::Report(api::Dispatcher::Stub& stub, const std::string& session,
                        const api::AssignmentsMessage& m) {
  api::UpdateTaskStatusRequest req;
  req.set_session_id(session);
  {
    absl::MutexLock lock(&mu_);
    if (m.type() == api::AssignmentsMessage::TYPE_COMPLETE) tasks_.clear();
    for (const auto& c : m.changes()) {
      if (!c.assignment().has_task()) continue;
      const api::Task& t = c.assignment().task();
      if (c.action() == api::AssignmentChange::ACTION_REMOVE) {
        tasks_.erase(t.meta().id());
        continue;
      }
      api::Task& mine = tasks_[t.meta().id()];
      const api::TaskState known = mine.status().state();
      mine = t;
      if (known > mine.status().state()) mine.mutable_status()->set_state(known);
      const auto state = mine.status().state();
      api::TaskState next = state;
      if (t.desired_state() == api::TASK_STATE_RUNNING && state < api::TASK_STATE_RUNNING) {
        const std::string& image = t.spec().container().image();
        next = image == "broken"    ? api::TASK_STATE_FAILED
               : image == "oneshot" ? api::TASK_STATE_COMPLETE
                                    : api::TASK_STATE_RUNNING;
      } else if (t.desired_state() > api::TASK_STATE_RUNNING && state <= api::TASK_STATE_RUNNING) {
        next = api::TASK_STATE_SHUTDOWN;
      }
      if (next == state) continue;
      mine.mutable_status()->set_state(next);
      auto* u = req.add_updates();
      u->set_task_id(t.meta().id());
      *u->mutable_status() = mine.status();
      const int64_t now = absl::ToUnixSeconds(absl::Now());
      u->mutable_status()->mutable_timestamp()->set_seconds(now);
    }
  }
  if (req.updates().empty()) return;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  api::UpdateTaskStatusResponse resp;
  (void)stub.UpdateTaskStatus(&ctx, req, &resp);
}

}  // namespace shoal::integration

#include "worker/log_publisher.h"

#include <atomic>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace shoal::worker {
namespace {

constexpr char kLog[] = "worker";
// Lines asked of a reader at once, and the bytes after which a message goes out.
constexpr size_t kChunk = 64;
constexpr size_t kMessageBytes = 1 << 20;

LogOptions OptionsOf(const api::LogSubscriptionOptions& o) {
  LogOptions out;
  if (!o.streams().empty()) {
    out.include_stdout = false;
    out.include_stderr = false;
    for (int s : o.streams()) {
      if (s == api::LOG_STREAM_STDOUT) out.include_stdout = true;
      if (s == api::LOG_STREAM_STDERR) out.include_stderr = true;
    }
  }
  out.tail = o.tail();
  if (o.has_since()) {
    out.since = absl::FromUnixSeconds(o.since().seconds()) + absl::Nanoseconds(o.since().nanos());
  }
  out.follow = o.follow();
  return out;
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t seconds = ns / 1'000'000'000;
  int64_t nanos = ns % 1'000'000'000;
  if (nanos < 0) {
    --seconds;
    nanos += 1'000'000'000;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(nanos));
}

}  // namespace

// One subscription being served, shared by Serve's thread and the subscription's.
struct LogPublisher::Running {
  api::SubscriptionMessage sub;
  grpc::ClientContext context;  // of the PublishLogs stream
  std::thread thread;
  std::atomic<bool> done{false};

  absl::Mutex mu;
  bool cancelled ABSL_GUARDED_BY(mu) = false;
  // Tasks named by the part, including those a later message of the broker added.
  std::set<std::string> task_ids ABSL_GUARDED_BY(mu);

  void Cancel() {
    absl::MutexLock lock(&mu);
    cancelled = true;
    context.TryCancel();
  }
};

grpc::Status LogPublisher::Serve(api::Logs::StubInterface& stub,
                                 grpc::ClientContext* listen_context) {
  auto stream = stub.ListenSubscriptions(listen_context, api::ListenSubscriptionsRequest());
  std::map<std::string, std::unique_ptr<Running>> running;
  auto reap = [&running] {
    for (auto it = running.begin(); it != running.end();) {
      if (it->second->done.load()) {
        it->second->thread.join();
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  };
  api::SubscriptionMessage m;
  while (stream->Read(&m)) {
    reap();
    auto it = running.find(m.id());
    if (m.close()) {
      if (it != running.end()) it->second->Cancel();
      continue;
    }
    if (it != running.end()) {
      // The part again, naming a task assigned since: the running one takes it in.
      absl::MutexLock lock(&it->second->mu);
      it->second->task_ids.insert(m.selector().task_ids().begin(), m.selector().task_ids().end());
      continue;
    }
    auto run = std::make_unique<Running>();
    run->sub = m;
    run->task_ids.insert(m.selector().task_ids().begin(), m.selector().task_ids().end());
    Running* raw = run.get();
    run->thread = std::thread([this, &stub, raw] {
      Publish(stub, *raw);
      raw->done = true;
    });
    running[m.id()] = std::move(run);
  }
  const grpc::Status status = stream->Finish();
  for (auto& [id, run] : running) run->Cancel();
  for (auto& [id, run] : running) run->thread.join();
  return status;
}

void LogPublisher::Publish(api::Logs::StubInterface& stub, Running& run) {
  const std::string& id = run.sub.id();
  const api::LogSelector& sel = run.sub.selector();
  const LogOptions options = OptionsOf(run.sub.options());
  const std::set<std::string> services(sel.service_ids().begin(), sel.service_ids().end());
  bool this_node = false;
  for (const std::string& n : sel.node_ids()) this_node = this_node || n == options_.node_id;

  struct Source {
    std::string service_id;
    std::unique_ptr<LogReader> reader;
    bool through = false;
  };
  std::map<std::string, Source> sources;
  // Tasks that cannot be read and will not be tried again.
  std::set<std::string> given_up;
  auto discover = [&] {
    std::map<std::string, std::string> wanted;  // task id -> service id ("" when not held)
    std::map<std::string, std::string> held =
        options_.tasks ? options_.tasks() : std::map<std::string, std::string>();
    {
      absl::MutexLock lock(&run.mu);
      for (const std::string& t : run.task_ids) {
        auto h = held.find(t);
        wanted[t] = h == held.end() ? "" : h->second;
      }
    }
    for (const auto& [task, service] : held) {
      if (this_node || services.count(service) > 0) wanted[task] = service;
    }
    for (const auto& [task, service] : wanted) {
      if (sources.count(task) > 0 || given_up.count(task) > 0) continue;
      absl::StatusOr<std::unique_ptr<LogReader>> reader =
          options_.executor->OpenLogs(task, options);
      if (reader.ok()) {
        sources[task] = Source{service, *std::move(reader)};
        continue;
      }
      // Not started yet: a follow looks again.
      if (absl::IsNotFound(reader.status()) && options.follow) continue;
      if (!absl::IsNotFound(reader.status()) && !absl::IsUnimplemented(reader.status())) {
        log::Warning(kLog, "cannot read a task's output",
                     {{"task", task}, {"error", reader.status()}});
      }
      given_up.insert(task);
    }
  };

  api::PublishLogsResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<api::PublishLogsMessage>> writer =
      stub.PublishLogs(&run.context, &response);
  bool broken = false;
  discover();
  while (!broken) {
    api::PublishLogsMessage msg;
    msg.set_subscription_id(id);
    size_t bytes = 0;
    bool more = false;
    for (auto& [task, source] : sources) {
      while (!source.through) {
        if (msg.messages_size() >= static_cast<int>(options_.batch_lines) ||
            bytes >= kMessageBytes) {
          more = true;
          break;
        }
        const size_t want =
            std::min(kChunk, options_.batch_lines - static_cast<size_t>(msg.messages_size()));
        std::vector<LogLine> lines;
        absl::StatusOr<bool> r = source.reader->Read(want, &lines);
        if (!r.ok()) {
          log::Warning(kLog, "cannot read a task's output",
                       {{"task", task}, {"error", r.status()}});
          source.through = true;
          break;
        }
        if (!*r) source.through = true;
        for (LogLine& l : lines) {
          api::LogMessage* out = msg.add_messages();
          out->mutable_context()->set_service_id(source.service_id);
          out->mutable_context()->set_node_id(options_.node_id);
          out->mutable_context()->set_task_id(task);
          SetTimestamp(l.time, out->mutable_timestamp());
          out->set_stream(l.is_stderr ? api::LOG_STREAM_STDERR : api::LOG_STREAM_STDOUT);
          bytes += l.data.size();
          out->set_data(std::move(l.data));
        }
        if (lines.size() < want) break;  // nothing more there now
      }
      if (more) break;
    }
    bool everything_read = !options.follow;
    for (const auto& [task, source] : sources) everything_read = everything_read && source.through;
    if (everything_read && !more) msg.set_close(true);
    if (msg.messages_size() > 0 || msg.close()) {
      if (!writer->Write(msg)) {
        broken = true;
        break;
      }
      if (msg.close()) break;
    }
    if (more) continue;
    {
      absl::MutexLock lock(&run.mu);
      auto cancelled = [&run]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(run.mu) { return run.cancelled; };
      run.mu.AwaitWithTimeout(absl::Condition(&cancelled), options_.poll_interval);
      if (run.cancelled) break;
    }
    discover();  // a follow takes in tasks that started since
  }
  if (!broken) writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED &&
      s.error_code() != grpc::StatusCode::NOT_FOUND) {
    log::Info(kLog, "publishing logs ended", {{"subscription", id}, {"error", s.error_message()}});
  }
}

}  // namespace shoal::worker

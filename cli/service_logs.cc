// service logs: the tasks' output through the managers' Logs API (proto/logs.proto), printed as
// docker prints it:
//
//   [<time> ]<service>.<slot>.<task id>@<node hostname><pad>    | <line>
//
// A task's stdout goes to swarmctl's stdout and its stderr to swarmctl's stderr. Nodes that did
// not answer are named in one warning line on stderr after what was received (exit 0).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/parse.h"
#include "common/grpc_status.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::cli {
namespace {

using Stub = api::Control::StubInterface;

size_t Digits(uint64_t v) { return absl::StrCat(v).size(); }

// Names for the lines' prefixes: services, tasks and nodes as the managers have them, fetched
// when first needed.
class Names {
 public:
  Names(ControlClient& control, const ServiceLogsFlags& f) : control_(control), f_(f) {}

  void Add(const api::Service& s) { services_[s.meta().id()] = s; }
  void Add(const api::Task& t) { tasks_[t.meta().id()] = t; }

  // "<service>.<slot>[.<task id>]@<node><padding>"
  std::string Prefix(const api::LogContext& c) {
    auto cached = prefixes_.find(c.task_id());
    if (cached != prefixes_.end()) return cached->second;
    const api::Task* task = Task(c.task_id());
    const std::string service_id = task != nullptr ? task->service_id() : c.service_id();
    const std::string node_id = task != nullptr ? task->node_id() : c.node_id();
    const uint64_t slot = task != nullptr ? task->slot() : 0;
    const api::Service* service = Service(service_id);
    std::string name = service_id;
    if (!f_.no_resolve && service != nullptr) name = service->spec().annotations().name();
    std::string out = absl::StrCat(name, ".", slot != 0 ? absl::StrCat(slot) : node_id);
    if (!f_.no_task_ids) absl::StrAppend(&out, ".", ShortId(c.task_id(), f_.no_trunc));
    absl::StrAppend(&out, "@", Node(node_id));
    // Slots padded to the width of the replica count, as docker does.
    size_t width = 1;
    if (service != nullptr && service->spec().has_replicated()) {
      width = Digits(service->spec().replicated().replicas());
    }
    const size_t used = Digits(slot);
    if (width > used) out.append(width - used, ' ');
    prefixes_[c.task_id()] = out;
    return out;
  }

  // A node as the output names it: its hostname, or its id with --no-resolve.
  std::string Node(const std::string& id) {
    if (f_.no_resolve || id.empty()) return id;
    auto it = hostnames_.find(id);
    if (it == hostnames_.end() && !hostnames_fetched_for_.count(id)) {
      hostnames_fetched_for_.insert(id);
      for (auto& [k, v] : Hostnames(control_)) hostnames_[k] = v;
      it = hostnames_.find(id);
    }
    return it == hostnames_.end() || it->second.empty() ? id : it->second;
  }

 private:
  const api::Task* Task(const std::string& id) {
    auto it = tasks_.find(id);
    if (it != tasks_.end()) return &it->second;
    api::GetTaskRequest req;
    req.set_task_id(id);
    api::GetTaskResponse resp;
    if (!control_.Call(&Stub::GetTask, req, &resp).ok()) return nullptr;
    return &(tasks_[id] = resp.task());
  }
  const api::Service* Service(const std::string& id) {
    auto it = services_.find(id);
    if (it != services_.end()) return &it->second;
    api::GetServiceRequest req;
    req.set_service_id(id);
    api::GetServiceResponse resp;
    if (!control_.Call(&Stub::GetService, req, &resp).ok()) return nullptr;
    return &(services_[id] = resp.service());
  }

  ControlClient& control_;
  const ServiceLogsFlags& f_;
  std::map<std::string, api::Service> services_;
  std::map<std::string, api::Task> tasks_;
  std::map<std::string, std::string> hostnames_;
  std::set<std::string> hostnames_fetched_for_;
  std::map<std::string, std::string> prefixes_;
};

std::string Timestamp(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", FromProtoTime(t), absl::UTCTimeZone());
}

}  // namespace

int ServiceLogs(Context& ctx, const ServiceLogsFlags& f) {
  api::SubscribeLogsRequest req;
  auto tail = ParseTail(f.tail);
  if (!tail.ok()) return ctx.Usage(tail.status());
  req.mutable_options()->set_tail(*tail);
  if (!f.since.empty()) {
    auto since = ParseSince(f.since, ctx.Now());
    if (!since.ok()) return ctx.Usage(since.status());
    const int64_t ns = absl::ToUnixNanos(*since);
    req.mutable_options()->mutable_since()->set_seconds(ns / 1'000'000'000);
    req.mutable_options()->mutable_since()->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  }
  req.mutable_options()->set_follow(f.follow);

  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  Names names(**control, f);
  // Each reference is a service (by name, id or id prefix) or, failing that, a task.
  for (const std::string& ref : f.refs) {
    api::GetServiceRequest get;
    get.set_service_id(ref);
    api::GetServiceResponse svc;
    absl::Status s = (*control)->Call(&Stub::GetService, get, &svc);
    if (s.ok()) {
      names.Add(svc.service());
      req.mutable_selector()->add_service_ids(svc.service().meta().id());
      api::ListTasksRequest list;
      list.mutable_filters()->add_service_ids(svc.service().meta().id());
      api::ListTasksResponse tasks;
      if (auto ls = (*control)->Call(&Stub::ListTasks, list, &tasks); ls.ok()) {
        for (const api::Task& t : tasks.tasks()) names.Add(t);
      }
      continue;
    }
    if (!absl::IsNotFound(s)) return ctx.Fail(s);
    api::GetTaskRequest task_req;
    task_req.set_task_id(ref);
    api::GetTaskResponse task;
    s = (*control)->Call(&Stub::GetTask, task_req, &task);
    if (absl::IsNotFound(s)) {
      return ctx.Fail(absl::NotFoundError(absl::StrCat("no such task or service: ", ref)));
    }
    if (!s.ok()) return ctx.Fail(s);
    names.Add(task.task());
    req.mutable_selector()->add_task_ids(task.task().meta().id());
  }

  std::vector<std::string> unreachable;
  const absl::Status streamed =
      (*control)->StreamWithFailover([&](const std::shared_ptr<grpc::Channel>& channel,
                                         grpc::ClientContext* call, bool* received) {
        auto logs = api::Logs::NewStub(channel);
        auto reader = logs->SubscribeLogs(call, req);
        api::SubscribeLogsMessage m;
        while (reader->Read(&m)) {
          *received = true;
          for (const api::LogMessage& line : m.messages()) {
            std::string text;
            if (f.timestamps) absl::StrAppend(&text, Timestamp(line.timestamp()), " ");
            if (!f.raw) absl::StrAppend(&text, names.Prefix(line.context()), "    | ");
            absl::StrAppend(&text, line.data());
            if (!f.raw && (text.empty() || text.back() != '\n')) text += '\n';
            (line.stream() == api::LOG_STREAM_STDERR ? ctx.err : ctx.out) << text;
          }
          ctx.out.flush();
          ctx.err.flush();
          unreachable.assign(m.unreachable_node_ids().begin(), m.unreachable_node_ids().end());
        }
        return reader->Finish();
      });
  if (!streamed.ok()) return ctx.Fail(streamed);
  if (!unreachable.empty()) {
    std::vector<std::string> nodes;
    for (const std::string& id : unreachable) nodes.push_back(names.Node(id));
    std::sort(nodes.begin(), nodes.end());
    ctx.err << "Warning: incomplete log stream: no answer from node"
            << (nodes.size() > 1 ? "s " : " ") << absl::StrJoin(nodes, ", ")
            << " (down, or silent for too long): the logs of "
            << (nodes.size() > 1 ? "their" : "its") << " tasks are missing\n";
  }
  return 0;
}

}  // namespace shoal::cli

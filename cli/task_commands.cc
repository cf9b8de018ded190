// task ls | inspect (swarmkit's swarmctl has them; docker shows tasks through `service ps`).
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/format.h"

namespace shoal::cli {
namespace {

using Stub = api::Control::StubInterface;

struct LsFlags {
  bool quiet = false;
  bool no_trunc = false;
  std::string format;
  std::string service, node;
};

int Ls(Context& ctx, const LsFlags& f) {
  auto json = WantJson(f.format);
  if (!json.ok()) return ctx.Usage(json.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  api::ListTasksRequest req;
  if (!f.service.empty()) {
    api::GetServiceRequest get;
    get.set_service_id(f.service);
    api::GetServiceResponse svc;
    if (auto s = (*control)->Call(&Stub::GetService, get, &svc); !s.ok()) return ctx.Fail(s);
    req.mutable_filters()->add_service_ids(svc.service().meta().id());
  }
  if (!f.node.empty()) {
    api::GetNodeRequest get;
    get.set_node_id(f.node);
    api::GetNodeResponse node;
    if (auto s = (*control)->Call(&Stub::GetNode, get, &node); !s.ok()) return ctx.Fail(s);
    req.mutable_filters()->add_node_ids(node.node().meta().id());
  }
  api::ListTasksResponse resp;
  if (auto s = (*control)->Call(&Stub::ListTasks, req, &resp); !s.ok()) return ctx.Fail(s);
  std::vector<api::Task> tasks(resp.tasks().begin(), resp.tasks().end());
  if (*json) {
    ctx.out << JsonArray(tasks);
    return 0;
  }
  if (f.quiet) {
    for (const api::Task& t : tasks) ctx.out << ShortId(t.meta().id(), f.no_trunc) << "\n";
    return 0;
  }
  std::map<std::string, std::string> names;
  api::ListServicesResponse services;
  if ((*control)->Call(&Stub::ListServices, api::ListServicesRequest(), &services).ok()) {
    for (const api::Service& s : services.services()) {
      names[s.meta().id()] = s.spec().annotations().name();
    }
  }
  ctx.out << TaskTable(tasks, Hostnames(**control), names, ctx.Now(), f.no_trunc);
  return 0;
}

int Inspect(Context& ctx, const std::vector<std::string>& refs) {
  return InspectRefs<api::Task>(
      ctx, refs, [](ControlClient& control, const std::string& ref, api::Task* out) {
        api::GetTaskRequest req;
        req.set_task_id(ref);
        api::GetTaskResponse resp;
        absl::Status s = control.Call(&Stub::GetTask, req, &resp);
        *out = resp.task();
        return s;
      });
}

}  // namespace

void AddTaskCommands(CLI::App& app, Context& ctx, Handlers& handlers) {
  auto* task = app.add_subcommand("task", "Inspect tasks");
  task->require_subcommand(1);
  {
    auto f = std::make_shared<LsFlags>();
    auto* c = task->add_subcommand("ls", "List tasks");
    c->alias("list");
    c->add_flag("-q,--quiet", f->quiet, "Only display IDs");
    c->add_flag("--no-trunc", f->no_trunc, "Do not truncate output");
    c->add_option("--format", f->format, "Output format: table or json");
    c->add_option("--service", f->service, "Only tasks of this service");
    c->add_option("--node", f->node, "Only tasks on this node");
    handlers[c] = [&ctx, f] { return Ls(ctx, *f); };
  }
  {
    auto refs = std::make_shared<std::vector<std::string>>();
    auto* c = task->add_subcommand("inspect", "Display detailed information on tasks");
    c->add_option("task", *refs, "Task ids or unique id prefixes")->required();
    handlers[c] = [&ctx, refs] { return Inspect(ctx, *refs); };
  }
}

}  // namespace shoal::cli

// service create | update | scale | rollback | ls | ps | inspect | rm | logs.
#include <sstream>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/parse.h"
#include "cli/progress.h"
#include "cli/service_flags.h"

namespace shoal::cli {
namespace {

using Stub = api::Control::StubInterface;

// How a command that changes a service waits for it.
struct WaitFlags {
  bool detach = false;
  bool quiet = false;
  std::string timeout = "5m";
};

void AddWaitFlags(CLI::App* c, WaitFlags* w) {
  c->add_flag("-d,--detach", w->detach,
              "Exit immediately instead of waiting for the service to converge");
  c->add_flag("-q,--quiet", w->quiet, "Suppress progress output");
  c->add_option("--timeout", w->timeout, "Give up waiting for convergence after this long")
      ->capture_default_str();
}

CLI::Option* AddList(CLI::App* c, const std::string& names, std::vector<std::string>* v,
                     const std::string& help) {
  return c->add_option(names, *v, help)->allow_extra_args(false);
}

void AddSpecFlags(CLI::App* c, ServiceFlags* f, bool create) {
  // Names of the list flags: create's, and update's "-add" spellings (the plain ones too).
  auto add = [&](const std::string& create_names, const std::string& update_extra) {
    return create ? create_names : absl::StrCat(create_names, ",", update_extra);
  };
  if (create) {
    c->add_option("--name", f->name, "Service name");
    c->add_option("--mode", f->mode,
                  "Service mode (replicated, global, replicated-job, global-job)");
  } else {
    c->add_option("--image", f->image, "Service image tag");
    c->add_option("--args", f->args, "Service command args (one string, split on spaces)")
        ->allow_extra_args(false)
        ->each([f](const std::string&) { f->args_given = true; });
  }
  c->add_option("--replicas", f->replicas, "Number of tasks");
  c->add_option("--max-concurrent", f->max_concurrent,
                "Number of job tasks to run concurrently (default equal to --replicas)");
  c->add_option("--replicas-max-per-node", f->replicas_max_per_node,
                "Maximum number of tasks per node (default 0 = unlimited)");
  c->add_option("-w,--workdir", f->workdir, "Working directory inside the container");
  c->add_option("-u,--user", f->user, "Username or UID (format: <name|uid>[:<group|gid>])");
  c->add_option("--entrypoint", f->entrypoint, "Overwrite the default ENTRYPOINT of the image");
  c->add_option("--hostname", f->hostname, "Container hostname");
  c->add_option("--stop-signal", f->stop_signal, "Signal to stop the container");
  c->add_option("--stop-grace-period", f->stop_grace_period,
                "Time to wait before force killing a container (ns|us|ms|s|m|h)");
  c->add_option("--limit-cpu", f->limit_cpu, "Limit CPUs");
  c->add_option("--limit-memory", f->limit_memory, "Limit Memory");
  c->add_option("--reserve-cpu", f->reserve_cpu, "Reserve CPUs");
  c->add_option("--reserve-memory", f->reserve_memory, "Reserve Memory");
  c->add_option("--restart-condition", f->restart_condition,
                "Restart when condition is met (none, on-failure, any)");
  c->add_option("--restart-delay", f->restart_delay, "Delay between restart attempts");
  c->add_option("--restart-max-attempts", f->restart_max_attempts,
                "Maximum number of restarts before giving up");
  c->add_option("--restart-window", f->restart_window,
                "Window used to evaluate the restart policy");
  c->add_option("--endpoint-mode", f->endpoint_mode, "Endpoint mode (vip or dnsrr)");
  for (auto [prefix, cfg] : {std::make_pair(std::string("update"), &f->update),
                             std::make_pair(std::string("rollback"), &f->rollback)}) {
    c->add_option(absl::StrCat("--", prefix, "-parallelism"), cfg->parallelism,
                  "Maximum number of tasks updated simultaneously (0 to update all at once)");
    c->add_option(absl::StrCat("--", prefix, "-delay"), cfg->delay, "Delay between updates");
    c->add_option(absl::StrCat("--", prefix, "-failure-action"), cfg->failure_action,
                  prefix == "update" ? "Action on update failure (pause, continue, rollback)"
                                     : "Action on rollback failure (pause, continue)");
    c->add_option(absl::StrCat("--", prefix, "-order"), cfg->order,
                  "Update order (start-first, stop-first)");
    c->add_option(absl::StrCat("--", prefix, "-monitor"), cfg->monitor,
                  "Duration after each task update to monitor for failure");
    c->add_option(absl::StrCat("--", prefix, "-max-failure-ratio"), cfg->max_failure_ratio,
                  "Failure rate to tolerate during an update");
  }
  AddList(c, add("-e,--env", "--env-add"), &f->env, "Set environment variables");
  AddList(c, add("-l,--label", "--label-add"), &f->label, "Service labels");
  AddList(c, add("--container-label", "--container-label-add"), &f->container_label,
          "Container labels");
  AddList(c, add("--constraint", "--constraint-add"), &f->constraint, "Placement constraints");
  AddList(c, add("--placement-pref", "--placement-pref-add"), &f->placement_pref,
          "Placement preferences (spread=<node attribute>)");
  AddList(c, add("-p,--publish", "--publish-add"), &f->publish, "Publish a port as a node port");
  AddList(c, add("--secret", "--secret-add"), &f->secret,
          "Specify secrets to expose to the service");
  AddList(c, add("--config", "--config-add"), &f->config, "Specify configurations to expose");
  AddList(c, add("--network", "--network-add"), &f->network, "Network attachments");
  if (!create) {
    AddList(c, "--env-rm", &f->env_rm, "Remove an environment variable");
    AddList(c, "--label-rm", &f->label_rm, "Remove a label by its key");
    AddList(c, "--container-label-rm", &f->container_label_rm, "Remove a container label");
    AddList(c, "--constraint-rm", &f->constraint_rm, "Remove a constraint");
    AddList(c, "--placement-pref-rm", &f->placement_pref_rm, "Remove a placement preference");
    AddList(c, "--publish-rm", &f->publish_rm, "Remove a published port by its target port");
    AddList(c, "--secret-rm", &f->secret_rm, "Remove a secret");
    AddList(c, "--config-rm", &f->config_rm, "Remove a configuration file");
    AddList(c, "--network-rm", &f->network_rm, "Remove a network");
    c->add_flag("--force", f->force, "Force update even if no changes require it");
  }
}

// Waits until the service converges, showing progress; 0, or 1 with the reason.
int Converge(Context& ctx, ControlClient& control, const std::string& service_id, Waiting waiting,
             const WaitFlags& w) {
  auto timeout = ParseDuration("--timeout", w.timeout);
  if (!timeout.ok()) return ctx.Usage(timeout.status());
  const absl::Time deadline = absl::Now() + *timeout;
  ProgressPrinter printer(ctx.out, ctx.options.tty);
  std::map<std::string, std::string> hostnames;
  bool have_hostnames = false;
  Progress p;
  while (true) {
    api::GetServiceRequest get;
    get.set_service_id(service_id);
    api::GetServiceResponse svc;
    if (auto s = control.Call(&Stub::GetService, get, &svc); !s.ok()) return ctx.Fail(s);
    api::ListTasksRequest list;
    list.mutable_filters()->add_service_ids(svc.service().meta().id());
    api::ListTasksResponse tasks;
    if (auto s = control.Call(&Stub::ListTasks, list, &tasks); !s.ok()) return ctx.Fail(s);
    const bool global = svc.service().spec().has_global() || svc.service().spec().has_global_job();
    if (global && !have_hostnames) {
      hostnames = Hostnames(control);
      have_hostnames = true;
    }
    p = ComputeProgress(svc.service(),
                        std::vector<api::Task>(tasks.tasks().begin(), tasks.tasks().end()),
                        hostnames, waiting);
    if (!w.quiet) printer.Show(p);
    if (!p.failure.empty()) {
      return ctx.Fail(absl::AbortedError(
          absl::StrCat("service ", svc.service().spec().annotations().name(), ": ", p.failure)));
    }
    if (p.converged) {
      if (!w.quiet) ctx.out << (p.job ? "verify: Job complete\n" : "verify: Service converged\n");
      return 0;
    }
    if (absl::Now() >= deadline) {
      std::vector<std::string> problems;
      for (const SlotProgress& s : p.slots) {
        if (!s.done && !s.message.empty()) {
          problems.push_back(absl::StrCat(s.label, " ", TaskStateName(s.state), ": ", s.message));
        }
      }
      return ctx.Fail(absl::DeadlineExceededError(absl::StrCat(
          "service ", svc.service().spec().annotations().name(), " did not converge within ",
          w.timeout, ": ", p.done, " out of ", p.total, p.job ? " complete" : " tasks running",
          problems.empty() ? "" : absl::StrCat(" (", absl::StrJoin(problems, "; "), ")"),
          "; it keeps converging in the background (see `swarmctl service ps`)")));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(ctx.options.poll_interval));
  }
}

struct CreateFlags {
  ServiceFlags spec;
  WaitFlags wait;
};

// A name for a service created without --name (the manager requires one; docker makes one up
// too): the image's base name and a random suffix, e.g. "nginx-k3x9q".
std::string MadeUpName(const std::string& image) {
  std::string base = image.substr(0, image.find_first_of("@:"));
  base = base.substr(base.rfind('/') == std::string::npos ? 0 : base.rfind('/') + 1);
  std::string name;
  for (char c : base) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') {
      name += c;
    }
  }
  if (name.empty() || !absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    name = "service" + name;
  }
  name = name.substr(0, 50);
  absl::BitGen random;
  name += '-';
  for (int i = 0; i < 5; ++i) {
    name += "abcdefghijklmnopqrstuvwxyz0123456789"[absl::Uniform(random, 0, 36)];
  }
  return name;
}

int Create(Context& ctx, CreateFlags& f) {
  if (!f.spec.args.empty() && f.spec.args.front() == "--") f.spec.args.erase(f.spec.args.begin());
  f.spec.args_given = !f.spec.args.empty();
  if (f.spec.name.empty()) f.spec.name = MadeUpName(f.spec.image);
  api::CreateServiceRequest req;
  if (auto s = ApplyServiceFlags(f.spec, /*create=*/true, req.mutable_spec()); !s.ok()) {
    return ctx.Usage(s);
  }
  if (auto t = ParseDuration("--timeout", f.wait.timeout); !t.ok()) return ctx.Usage(t.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  api::CreateServiceResponse resp;
  if (auto s = (*control)->Call(&Stub::CreateService, req, &resp); !s.ok()) return ctx.Fail(s);
  ctx.out << resp.service().meta().id() << "\n";
  if (f.wait.detach) return 0;
  return Converge(ctx, **control, resp.service().meta().id(), Waiting::kCreate, f.wait);
}

struct UpdateFlags {
  ServiceFlags spec;
  WaitFlags wait;
  std::string service;
  bool rollback = false;
};

// Reads the service, edits its spec and writes it, retried when it changed meanwhile.
// `usage` is set when `edit` refused the flags (nothing was written).
absl::StatusOr<api::Service> EditService(ControlClient& control, const std::string& ref,
                                         const std::function<absl::Status(api::ServiceSpec&)>& edit,
                                         bool rollback, bool* usage) {
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    api::GetServiceRequest get;
    get.set_service_id(ref);
    api::GetServiceResponse cur;
    if (auto s = control.Call(&Stub::GetService, get, &cur); !s.ok()) return s;
    api::UpdateServiceRequest req;
    req.set_service_id(cur.service().meta().id());
    *req.mutable_service_version() = cur.service().meta().version();
    *req.mutable_spec() = cur.service().spec();
    if (rollback) {
      req.set_rollback(api::UpdateServiceRequest::ROLLBACK_PREVIOUS);
    } else if (auto s = edit(*req.mutable_spec()); !s.ok()) {
      *usage = true;
      return s;
    }
    api::UpdateServiceResponse resp;
    last = control.Call(&Stub::UpdateService, req, &resp);
    if (last.ok()) return resp.service();
    if (last.code() != absl::StatusCode::kAborted) return last;
  }
  return last;
}

int Update(Context& ctx, UpdateFlags& f) {
  if (f.spec.args_given && f.spec.args.size() == 1) {
    f.spec.args = absl::StrSplit(f.spec.args[0], ' ', absl::SkipEmpty());
  }
  // Flags that fail alone fail before anything is read.
  {
    api::ServiceSpec scratch;
    scratch.mutable_replicated();
    ServiceFlags probe = f.spec;
    probe.replicas.clear();
    if (auto s = ApplyServiceFlags(probe, false, &scratch); !s.ok()) return ctx.Usage(s);
    if (!f.spec.replicas.empty()) {
      if (auto r = ParseUint("--replicas", f.spec.replicas); !r.ok()) return ctx.Usage(r.status());
    }
  }
  if (auto t = ParseDuration("--timeout", f.wait.timeout); !t.ok()) return ctx.Usage(t.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  bool usage = false;
  auto svc = EditService(
      **control, f.service,
      [&](api::ServiceSpec& spec) { return ApplyServiceFlags(f.spec, false, &spec); }, f.rollback,
      &usage);
  if (!svc.ok()) return usage ? ctx.Usage(svc.status()) : ctx.Fail(svc.status());
  ctx.out << f.service << "\n";
  if (f.rollback && !f.wait.quiet) {
    ctx.out << "rollback: "
            << (svc->update_status().message().empty() ? "manually requested rollback"
                                                       : svc->update_status().message())
            << "\n";
  }
  if (f.wait.detach) return 0;
  return Converge(ctx, **control, svc->meta().id(),
                  f.rollback ? Waiting::kRollback : Waiting::kUpdate, f.wait);
}

struct ScaleFlags {
  std::vector<std::string> specs;
  WaitFlags wait;
};

int Scale(Context& ctx, const ScaleFlags& f) {
  std::vector<std::pair<std::string, std::string>> wanted;
  for (const std::string& s : f.specs) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      return ctx.Usage(absl::InvalidArgumentError(
          absl::StrCat("invalid scale specifier \"", s, "\": expected SERVICE=REPLICAS")));
    }
    if (auto r = ParseUint("replicas", s.substr(eq + 1)); !r.ok()) return ctx.Usage(r.status());
    wanted.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  if (auto t = ParseDuration("--timeout", f.wait.timeout); !t.ok()) return ctx.Usage(t.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  int code = 0;
  std::vector<std::pair<std::string, std::string>> scaled;  // name, id
  for (const auto& [name, replicas] : wanted) {
    ServiceFlags flags;
    flags.replicas = replicas;
    bool usage = false;
    auto svc = EditService(
        **control, name,
        [&](api::ServiceSpec& spec) -> absl::Status {
          if (!spec.has_replicated() && !spec.has_replicated_job()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "scale can only be used with replicated or replicated-job mode: ", name, " is ",
                ServiceModeName(spec)));
          }
          return ApplyServiceFlags(flags, false, &spec);
        },
        false, &usage);
    if (!svc.ok()) {
      code = ctx.Fail(svc.status());
      continue;
    }
    ctx.out << name << " scaled to " << replicas << "\n";
    scaled.emplace_back(name, svc->meta().id());
  }
  if (f.wait.detach) return code;
  for (const auto& [name, id] : scaled) {
    if (scaled.size() > 1 && !f.wait.quiet) ctx.out << name << ":\n";
    const int c = Converge(ctx, **control, id, Waiting::kUpdate, f.wait);
    if (c != 0) code = c;
  }
  return code;
}

struct LsFlags {
  bool quiet = false;
  bool no_trunc = false;
  std::string format;
};

int Ls(Context& ctx, const LsFlags& f) {
  return ListObjects<api::Service>(
      ctx, f.format, f.quiet,
      [](ControlClient& control, std::vector<api::Service>* out) {
        api::ListServicesResponse resp;
        absl::Status s = control.Call(&Stub::ListServices, api::ListServicesRequest(), &resp);
        out->assign(resp.services().begin(), resp.services().end());
        return s;
      },
      [&f](ControlClient& control,
           const std::vector<api::Service>& services) -> absl::StatusOr<std::string> {
        std::map<std::string, ReplicaCounts> statuses;
        if (!services.empty()) {
          api::ListServiceStatusesRequest req;
          for (const api::Service& s : services) req.add_services(s.meta().id());
          api::ListServiceStatusesResponse st;
          if (auto s = control.Call(&Stub::ListServiceStatuses, req, &st); !s.ok()) return s;
          for (const auto& x : st.statuses()) {
            statuses[x.service_id()] = {x.running_tasks(), x.desired_tasks(),
                                        x.completed_tasks()};
          }
        }
        return ServiceTable(services, statuses, f.no_trunc);
      },
      [&f](const std::string& id) { return ShortId(id, f.no_trunc); });
}

struct PsFlags {
  std::vector<std::string> services;
  bool quiet = false;
  bool no_trunc = false;
  std::string format;
};

int Ps(Context& ctx, const PsFlags& f) {
  auto json = WantJson(f.format);
  if (!json.ok()) return ctx.Usage(json.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  std::vector<api::Task> tasks;
  std::map<std::string, std::string> names;
  for (const std::string& ref : f.services) {
    api::GetServiceRequest get;
    get.set_service_id(ref);
    api::GetServiceResponse svc;
    if (auto s = (*control)->Call(&Stub::GetService, get, &svc); !s.ok()) return ctx.Fail(s);
    names[svc.service().meta().id()] = svc.service().spec().annotations().name();
    api::ListTasksRequest list;
    list.mutable_filters()->add_service_ids(svc.service().meta().id());
    api::ListTasksResponse resp;
    if (auto s = (*control)->Call(&Stub::ListTasks, list, &resp); !s.ok()) return ctx.Fail(s);
    tasks.insert(tasks.end(), resp.tasks().begin(), resp.tasks().end());
  }
  if (*json) {
    ctx.out << JsonArray(tasks);
  } else if (f.quiet) {
    for (const api::Task& t : tasks) ctx.out << ShortId(t.meta().id(), f.no_trunc) << "\n";
  } else {
    ctx.out << TaskTable(tasks, Hostnames(**control), names, ctx.Now(), f.no_trunc);
  }
  return 0;
}

std::string Pretty(const api::Service& s) {
  std::ostringstream o;
  const api::ServiceSpec& spec = s.spec();
  const api::ContainerSpec& c = spec.task().container();
  o << "ID:\t\t" << s.meta().id() << "\n"
    << "Name:\t\t" << spec.annotations().name() << "\n";
  if (!spec.annotations().labels().empty()) {
    o << "Labels:\n";
    for (const auto& [k, v] : spec.annotations().labels()) o << " " << k << "=" << v << "\n";
  }
  o << "Service Mode:\t" << ServiceModeName(spec) << "\n";
  if (spec.has_replicated()) o << " Replicas:\t" << spec.replicated().replicas() << "\n";
  if (s.has_update_status() &&
      s.update_status().state() != api::UpdateStatus::UPDATE_STATE_UNKNOWN) {
    o << "UpdateStatus:\n State:\t\t"
      << absl::AsciiStrToLower(
             absl::string_view(api::UpdateStatus::State_Name(s.update_status().state()))
                 .substr(sizeof("UPDATE_STATE_") - 1))
      << "\n Message:\t" << s.update_status().message() << "\n";
  }
  if (!spec.task().placement().constraints().empty()) {
    o << "Placement:\n Constraints:\t[" << absl::StrJoin(spec.task().placement().constraints(), " ")
      << "]\n";
  }
  const api::UpdateConfig& u = spec.update();
  o << "UpdateConfig:\n"
    << " Parallelism:\t" << (u.has_parallelism() ? u.parallelism() : 1) << "\n";
  if (u.has_delay())
    o << " Delay:\t\t" << absl::FormatDuration(DurationFromProto(u.delay())) << "\n";
  o << " On failure:\t"
    << absl::AsciiStrToLower(
           absl::string_view(api::UpdateConfig::FailureAction_Name(u.failure_action()))
               .substr(sizeof("FAILURE_ACTION_") - 1))
    << "\n";
  o << "ContainerSpec:\n Image:\t\t" << c.image() << "\n";
  if (!c.command().empty()) o << " Command:\t" << absl::StrJoin(c.command(), " ") << "\n";
  if (!c.args().empty()) o << " Args:\t\t" << absl::StrJoin(c.args(), " ") << "\n";
  if (!c.env().empty()) o << " Env:\t\t" << absl::StrJoin(c.env(), " ") << "\n";
  if (!c.dir().empty()) o << " Dir:\t\t" << c.dir() << "\n";
  if (!c.user().empty()) o << " User:\t\t" << c.user() << "\n";
  for (const api::SecretReference& r : c.secrets()) {
    o << "Secret:\t\t" << r.secret_name() << " -> " << r.target().name() << "\n";
  }
  for (const api::ConfigReference& r : c.configs()) {
    o << "Config:\t\t" << r.config_name() << " -> " << r.target().name() << "\n";
  }
  const api::ResourceRequirements& res = spec.task().resources();
  if (spec.task().has_resources()) {
    o << "Resources:\n";
    if (res.has_reservations()) {
      o << " Reservations:\n";
      if (res.reservations().nano_cpus()) {
        o << "  CPU:\t\t" << HumanCpus(res.reservations().nano_cpus()) << "\n";
      }
      if (res.reservations().memory_bytes()) {
        o << "  Memory:\t" << HumanBytes(res.reservations().memory_bytes()) << "\n";
      }
    }
    if (res.has_limits()) {
      o << " Limits:\n";
      if (res.limits().nano_cpus())
        o << "  CPU:\t\t" << HumanCpus(res.limits().nano_cpus()) << "\n";
      if (res.limits().memory_bytes()) {
        o << "  Memory:\t" << HumanBytes(res.limits().memory_bytes()) << "\n";
      }
    }
  }
  o << "Endpoint Mode:\t"
    << (spec.endpoint().mode() == api::EndpointSpec::RESOLUTION_MODE_DNSRR ? "dnsrr" : "vip")
    << "\n";
  const auto& ports = s.endpoint().ports().empty() ? spec.endpoint().ports() : s.endpoint().ports();
  if (!ports.empty()) {
    o << "Ports:\n";
    for (const api::PortConfig& p : ports) {
      o << " PublishedPort = " << p.published_port() << "\n"
        << "  Protocol = "
        << absl::AsciiStrToLower(
               absl::string_view(api::PortConfig::Protocol_Name(p.protocol())).substr(9))
        << "\n  TargetPort = " << p.target_port() << "\n  PublishMode = "
        << (p.publish_mode() == api::PortConfig::PUBLISH_MODE_HOST ? "host" : "ingress") << "\n";
    }
  }
  return o.str();
}

struct InspectFlags {
  std::vector<std::string> services;
  bool pretty = false;
  std::string format;
};

int Inspect(Context& ctx, const InspectFlags& f) {
  auto json = WantJson(f.format);
  if (!json.ok()) return ctx.Usage(json.status());
  return InspectRefs<api::Service>(
      ctx, f.services,
      [](ControlClient& control, const std::string& ref, api::Service* out) {
        api::GetServiceRequest get;
        get.set_service_id(ref);
        api::GetServiceResponse svc;
        absl::Status s = control.Call(&Stub::GetService, get, &svc);
        *out = svc.service();
        return s;
      },
      f.pretty ? [](const api::Service& s) { return Pretty(s); }
               : std::function<std::string(const api::Service&)>());
}

int Rm(Context& ctx, const std::vector<std::string>& services) {
  return ctx.ForEachRef(services, [](ControlClient& control, const std::string& ref) {
    api::GetServiceRequest get;
    get.set_service_id(ref);
    api::GetServiceResponse svc;
    if (absl::Status s = control.Call(&Stub::GetService, get, &svc); !s.ok()) return s;
    api::RemoveServiceRequest req;
    req.set_service_id(svc.service().meta().id());
    api::RemoveServiceResponse resp;
    return control.Call(&Stub::RemoveService, req, &resp);
  });
}

}  // namespace

void AddServiceCommands(CLI::App& app, Context& ctx, Handlers& handlers) {
  auto* service = app.add_subcommand("service", "Manage swarm services");
  service->require_subcommand(1);
  {
    auto f = std::make_shared<CreateFlags>();
    auto* c = service->add_subcommand("create", "Create a new service");
    AddSpecFlags(c, &f->spec, true);
    AddWaitFlags(c, &f->wait);
    c->add_option("image", f->spec.image, "Image")->required();
    c->add_option("args", f->spec.args, "Command and arguments");
    c->positionals_at_end();
    handlers[c] = [&ctx, f] { return Create(ctx, *f); };
  }
  {
    auto f = std::make_shared<UpdateFlags>();
    auto* c = service->add_subcommand("update", "Update a service");
    AddSpecFlags(c, &f->spec, false);
    AddWaitFlags(c, &f->wait);
    c->add_flag("--rollback", f->rollback, "Rollback to previous specification");
    c->add_option("service", f->service, "Service")->required();
    handlers[c] = [&ctx, f] { return Update(ctx, *f); };
  }
  {
    auto f = std::make_shared<UpdateFlags>();
    f->rollback = true;
    auto* c = service->add_subcommand("rollback", "Revert changes to a service's configuration");
    AddWaitFlags(c, &f->wait);
    c->add_option("service", f->service, "Service")->required();
    handlers[c] = [&ctx, f] { return Update(ctx, *f); };
  }
  {
    auto f = std::make_shared<ScaleFlags>();
    auto* c = service->add_subcommand("scale", "Scale one or multiple replicated services");
    AddWaitFlags(c, &f->wait);
    c->add_option("service=replicas", f->specs, "SERVICE=REPLICAS")->required();
    handlers[c] = [&ctx, f] { return Scale(ctx, *f); };
  }
  {
    auto f = std::make_shared<LsFlags>();
    auto* c = service->add_subcommand("ls", "List services");
    c->alias("list");
    c->add_flag("-q,--quiet", f->quiet, "Only display IDs");
    c->add_flag("--no-trunc", f->no_trunc, "Do not truncate output");
    c->add_option("--format", f->format, "Output format: table or json");
    handlers[c] = [&ctx, f] { return Ls(ctx, *f); };
  }
  {
    auto f = std::make_shared<PsFlags>();
    auto* c = service->add_subcommand("ps", "List the tasks of one or more services");
    c->add_flag("-q,--quiet", f->quiet, "Only display task IDs");
    c->add_flag("--no-trunc", f->no_trunc, "Do not truncate output");
    c->add_option("--format", f->format, "Output format: table or json");
    c->add_option("service", f->services, "Services")->required();
    handlers[c] = [&ctx, f] { return Ps(ctx, *f); };
  }
  {
    auto f = std::make_shared<InspectFlags>();
    auto* c = service->add_subcommand("inspect", "Display detailed information on services");
    c->add_flag("--pretty", f->pretty, "Print the information in a human friendly format");
    c->add_option("--format", f->format, "Output format: json (the default)");
    c->add_option("service", f->services, "Services")->required();
    handlers[c] = [&ctx, f] { return Inspect(ctx, *f); };
  }
  {
    auto services = std::make_shared<std::vector<std::string>>();
    auto* c = service->add_subcommand("rm", "Remove one or more services");
    c->alias("remove");
    c->add_option("service", *services, "Services")->required();
    handlers[c] = [&ctx, services] { return Rm(ctx, *services); };
  }
  {
    auto f = std::make_shared<ServiceLogsFlags>();
    auto* c = service->add_subcommand("logs", "Fetch the logs of a service or task");
    c->add_flag("-f,--follow", f->follow, "Follow log output");
    c->add_option("-n,--tail", f->tail, "Number of lines to show from the end of the logs")
        ->capture_default_str();
    c->add_option("--since", f->since,
                  "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m "
                  "for 42 minutes)");
    c->add_flag("-t,--timestamps", f->timestamps, "Show timestamps");
    c->add_flag("--no-task-ids", f->no_task_ids, "Do not include task IDs in output");
    c->add_flag("--no-resolve", f->no_resolve, "Do not map IDs to Names in output");
    c->add_flag("--no-trunc", f->no_trunc, "Do not truncate output");
    c->add_flag("--raw", f->raw, "Do not neatly format logs");
    c->add_option("service", f->refs, "Service or task")->required();
    handlers[c] = [&ctx, f] { return ServiceLogs(ctx, *f); };
  }
}

}  // namespace shoal::cli

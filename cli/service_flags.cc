#include "cli/service_flags.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/parse.h"
#include "common/status_macros.h"

namespace shoal::cli {
namespace {

template <typename T, typename Pred>
void EraseIf(google::protobuf::RepeatedPtrField<T>* field, Pred pred) {
  field->erase(std::remove_if(field->begin(), field->end(), pred), field->end());
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

absl::Status ApplyUpdateConfig(const UpdateConfigFlags& f, const std::string& prefix,
                               api::UpdateConfig* cfg) {
  if (!f.parallelism.empty()) {
    ASSIGN_OR_RETURN(uint64_t p,
                     ParseUint(absl::StrCat("--", prefix, "-parallelism"), f.parallelism));
    cfg->set_parallelism(p);
  }
  if (!f.delay.empty()) {
    ASSIGN_OR_RETURN(absl::Duration d,
                     ParseDuration(absl::StrCat("--", prefix, "-delay"), f.delay));
    *cfg->mutable_delay() = DurationToProto(d);
  }
  if (!f.monitor.empty()) {
    ASSIGN_OR_RETURN(absl::Duration d,
                     ParseDuration(absl::StrCat("--", prefix, "-monitor"), f.monitor));
    *cfg->mutable_monitor() = DurationToProto(d);
  }
  if (!f.failure_action.empty()) {
    const std::string flag = absl::StrCat("--", prefix, "-failure-action");
    ASSIGN_OR_RETURN(auto a, ParseFailureAction(flag, f.failure_action));
    if (prefix == "rollback" && a == api::UpdateConfig::FAILURE_ACTION_ROLLBACK) {
      return absl::InvalidArgumentError(absl::StrCat("invalid ", flag, " \"", f.failure_action,
                                                     "\": expected pause or continue"));
    }
    cfg->set_failure_action(a);
  }
  if (!f.order.empty()) {
    ASSIGN_OR_RETURN(auto o, ParseUpdateOrder(absl::StrCat("--", prefix, "-order"), f.order));
    cfg->set_order(o);
  }
  if (!f.max_failure_ratio.empty()) {
    ASSIGN_OR_RETURN(
        float r, ParseRatio(absl::StrCat("--", prefix, "-max-failure-ratio"), f.max_failure_ratio));
    cfg->set_max_failure_ratio(r);
  }
  return absl::OkStatus();
}

std::vector<std::string> Words(const std::string& s) {
  return absl::StrSplit(s, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
}

}  // namespace

absl::Status ApplyServiceFlags(const ServiceFlags& f, bool create, api::ServiceSpec* spec) {
  api::TaskSpec* task = spec->mutable_task();
  api::ContainerSpec* c = task->mutable_container();

  if (create) {
    ServiceMode mode = ServiceMode::kReplicated;
    if (!f.mode.empty()) {
      ASSIGN_OR_RETURN(mode, ParseServiceMode(f.mode));
    }
    switch (mode) {
      case ServiceMode::kReplicated:
        spec->mutable_replicated()->set_replicas(1);
        break;
      case ServiceMode::kGlobal:
        spec->mutable_global();
        break;
      case ServiceMode::kReplicatedJob:
        spec->mutable_replicated_job();
        break;
      case ServiceMode::kGlobalJob:
        spec->mutable_global_job();
        break;
    }
    if (!f.name.empty()) spec->mutable_annotations()->set_name(f.name);
  }
  if (!f.replicas.empty()) {
    ASSIGN_OR_RETURN(uint64_t n, ParseUint("--replicas", f.replicas));
    if (spec->has_replicated()) {
      spec->mutable_replicated()->set_replicas(n);
    } else if (spec->has_replicated_job()) {
      spec->mutable_replicated_job()->set_total_completions(n);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --replicas \"", f.replicas,
                       "\": only replicated services and replicated jobs have replicas"));
    }
  }
  if (!f.max_concurrent.empty()) {
    ASSIGN_OR_RETURN(uint64_t n, ParseUint("--max-concurrent", f.max_concurrent));
    if (!spec->has_replicated_job()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid --max-concurrent \"", f.max_concurrent, "\": only for --mode replicated-job"));
    }
    spec->mutable_replicated_job()->set_max_concurrent(n);
  }
  if (!f.replicas_max_per_node.empty()) {
    ASSIGN_OR_RETURN(uint64_t n, ParseUint("--replicas-max-per-node", f.replicas_max_per_node));
    task->mutable_placement()->set_max_replicas(n);
  }

  if (!f.image.empty()) c->set_image(f.image);
  if (f.args_given) {
    c->clear_args();
    for (const std::string& a : f.args) c->add_args(a);
  }
  if (!f.entrypoint.empty()) {
    c->clear_command();
    for (const std::string& w : Words(f.entrypoint)) c->add_command(w);
  }
  if (!f.workdir.empty()) c->set_dir(f.workdir);
  if (!f.user.empty()) c->set_user(f.user);
  if (!f.hostname.empty()) c->set_hostname(f.hostname);
  if (!f.stop_signal.empty()) c->set_stop_signal(f.stop_signal);
  if (!f.stop_grace_period.empty()) {
    ASSIGN_OR_RETURN(absl::Duration d, ParseDuration("--stop-grace-period", f.stop_grace_period));
    *c->mutable_stop_grace_period() = DurationToProto(d);
  }

  // Env: removals by key, then additions replacing an entry of the same key.
  EraseIf(c->mutable_env(), [&](const std::string& e) { return Contains(f.env_rm, EnvKey(e)); });
  for (const std::string& raw : f.env) {
    ASSIGN_OR_RETURN(std::string e, ParseEnv(raw));
    const std::string key = EnvKey(e);
    EraseIf(c->mutable_env(), [&](const std::string& old) { return EnvKey(old) == key; });
    c->add_env(e);
  }

  auto* labels = spec->mutable_annotations()->mutable_labels();
  for (const std::string& k : f.label_rm) labels->erase(k);
  for (const std::string& l : f.label) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("--label", l));
    (*labels)[kv.first] = kv.second;
  }
  auto* clabels = c->mutable_labels();
  for (const std::string& k : f.container_label_rm) clabels->erase(k);
  for (const std::string& l : f.container_label) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("--container-label", l));
    (*clabels)[kv.first] = kv.second;
  }

  if (!f.constraint.empty() || !f.constraint_rm.empty() || !f.placement_pref.empty() ||
      !f.placement_pref_rm.empty()) {
    api::Placement* p = task->mutable_placement();
    EraseIf(p->mutable_constraints(),
            [&](const std::string& x) { return Contains(f.constraint_rm, x); });
    for (const std::string& x : f.constraint) {
      // Passed through as typed: the manager validates constraints and names the bad one.
      if (std::find(p->constraints().begin(), p->constraints().end(), x) ==
          p->constraints().end()) {
        p->add_constraints(x);
      }
    }
    EraseIf(p->mutable_preferences(), [&](const api::PlacementPreference& pref) {
      return Contains(f.placement_pref_rm,
                      absl::StrCat("spread=", pref.spread().spread_descriptor()));
    });
    for (const std::string& x : f.placement_pref) {
      ASSIGN_OR_RETURN(auto pref, ParsePlacementPref(x));
      *p->add_preferences() = pref;
    }
  }

  auto set_resource = [](const std::string& flag, const std::string& value, bool cpu,
                         api::Resources* r) -> absl::Status {
    if (value.empty()) return absl::OkStatus();
    if (cpu) {
      ASSIGN_OR_RETURN(int64_t n, ParseNanoCpus(flag, value));
      r->set_nano_cpus(n);
    } else {
      ASSIGN_OR_RETURN(int64_t n, ParseBytes(flag, value));
      r->set_memory_bytes(n);
    }
    return absl::OkStatus();
  };
  if (!f.limit_cpu.empty() || !f.limit_memory.empty() || !f.reserve_cpu.empty() ||
      !f.reserve_memory.empty()) {
    api::ResourceRequirements* r = task->mutable_resources();
    RETURN_IF_ERROR(set_resource("--limit-cpu", f.limit_cpu, true, r->mutable_limits()));
    RETURN_IF_ERROR(set_resource("--limit-memory", f.limit_memory, false, r->mutable_limits()));
    RETURN_IF_ERROR(set_resource("--reserve-cpu", f.reserve_cpu, true, r->mutable_reservations()));
    RETURN_IF_ERROR(
        set_resource("--reserve-memory", f.reserve_memory, false, r->mutable_reservations()));
  }

  if (!f.restart_condition.empty() || !f.restart_delay.empty() || !f.restart_max_attempts.empty() ||
      !f.restart_window.empty()) {
    api::RestartPolicy* r = task->mutable_restart();
    if (!f.restart_condition.empty()) {
      ASSIGN_OR_RETURN(auto cond, ParseRestartCondition(f.restart_condition));
      r->set_condition(cond);
    }
    if (!f.restart_delay.empty()) {
      ASSIGN_OR_RETURN(absl::Duration d, ParseDuration("--restart-delay", f.restart_delay));
      *r->mutable_delay() = DurationToProto(d);
    }
    if (!f.restart_max_attempts.empty()) {
      ASSIGN_OR_RETURN(uint64_t n, ParseUint("--restart-max-attempts", f.restart_max_attempts));
      r->set_max_attempts(n);
    }
    if (!f.restart_window.empty()) {
      ASSIGN_OR_RETURN(absl::Duration d, ParseDuration("--restart-window", f.restart_window));
      *r->mutable_window() = DurationToProto(d);
    }
  }

  auto given = [&](const UpdateConfigFlags& u) {
    return !u.parallelism.empty() || !u.delay.empty() || !u.failure_action.empty() ||
           !u.order.empty() || !u.monitor.empty() || !u.max_failure_ratio.empty();
  };
  if (given(f.update))
    RETURN_IF_ERROR(ApplyUpdateConfig(f.update, "update", spec->mutable_update()));
  if (given(f.rollback)) {
    RETURN_IF_ERROR(ApplyUpdateConfig(f.rollback, "rollback", spec->mutable_rollback()));
  }

  if (!f.publish.empty() || !f.publish_rm.empty() || !f.endpoint_mode.empty()) {
    api::EndpointSpec* e = spec->mutable_endpoint();
    for (const std::string& rm : f.publish_rm) {
      const size_t slash = rm.find('/');
      ASSIGN_OR_RETURN(api::PortConfig target, ParsePublish(rm));
      const bool any_protocol = slash == std::string::npos;
      EraseIf(e->mutable_ports(), [&](const api::PortConfig& p) {
        return p.target_port() == target.target_port() &&
               (any_protocol || p.protocol() == target.protocol());
      });
    }
    for (const std::string& x : f.publish) {
      ASSIGN_OR_RETURN(api::PortConfig port, ParsePublish(x));
      EraseIf(e->mutable_ports(), [&](const api::PortConfig& p) {
        return p.target_port() == port.target_port() && p.protocol() == port.protocol() &&
               p.published_port() == port.published_port();
      });
      *e->add_ports() = port;
    }
    if (!f.endpoint_mode.empty()) {
      if (f.endpoint_mode == "vip") {
        e->set_mode(api::EndpointSpec::RESOLUTION_MODE_VIP);
      } else if (f.endpoint_mode == "dnsrr") {
        e->set_mode(api::EndpointSpec::RESOLUTION_MODE_DNSRR);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid --endpoint-mode \"", f.endpoint_mode, "\": expected vip or dnsrr"));
      }
    }
  }

  EraseIf(c->mutable_secrets(),
          [&](const api::SecretReference& r) { return Contains(f.secret_rm, r.secret_name()); });
  for (const std::string& x : f.secret) {
    ASSIGN_OR_RETURN(api::SecretReference ref, ParseSecretRef(x));
    EraseIf(c->mutable_secrets(), [&](const api::SecretReference& r) {
      return r.target().name() == ref.target().name();
    });
    *c->add_secrets() = ref;
  }
  EraseIf(c->mutable_configs(),
          [&](const api::ConfigReference& r) { return Contains(f.config_rm, r.config_name()); });
  for (const std::string& x : f.config) {
    ASSIGN_OR_RETURN(api::ConfigReference ref, ParseConfigRef(x));
    EraseIf(c->mutable_configs(), [&](const api::ConfigReference& r) {
      return r.target().name() == ref.target().name();
    });
    *c->add_configs() = ref;
  }
  EraseIf(task->mutable_networks(), [&](const api::NetworkAttachmentConfig& n) {
    return Contains(f.network_rm, n.target());
  });
  for (const std::string& x : f.network) {
    ASSIGN_OR_RETURN(api::NetworkAttachmentConfig n, ParseNetwork(x));
    *task->add_networks() = n;
  }

  if (f.force) task->set_force_update(task->force_update() + 1);
  return absl::OkStatus();
}

}  // namespace shoal::cli

#include "manager/controlapi/validation.h"

#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "scheduler/constraint.h"

namespace shoal::manager::controlapi {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool Negative(const google::protobuf::Duration& d) { return d.seconds() < 0 || d.nanos() < 0; }

absl::Status CheckDuration(absl::string_view field, const google::protobuf::Duration& d) {
  return Negative(d) ? Bad(field, "must not be negative") : absl::OkStatus();
}

absl::Status CheckResources(absl::string_view field, const api::Resources& r) {
  if (r.nano_cpus() < 0) return Bad(absl::StrCat(field, ".nano_cpus"), "must not be negative");
  if (r.memory_bytes() < 0) {
    return Bad(absl::StrCat(field, ".memory_bytes"), "must not be negative");
  }
  for (int i = 0; i < r.generic_size(); ++i) {
    const api::GenericResource& g = r.generic(i);
    const std::string f = absl::StrCat(field, ".generic[", i, "]");
    if (g.has_discrete()) {
      if (g.discrete().kind().empty()) return Bad(f, "needs a kind");
      if (g.discrete().value() <= 0) return Bad(f, "must be a positive count");
    } else if (g.has_named()) {
      return Bad(f, "a task reserves a count of a kind (gpu=1), not a named value");
    } else {
      return Bad(f, "is empty");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckUpdateConfig(absl::string_view field, const api::UpdateConfig& u,
                               bool rollback) {
  if (auto s = CheckDuration(absl::StrCat(field, ".delay"), u.delay()); !s.ok()) return s;
  if (auto s = CheckDuration(absl::StrCat(field, ".monitor"), u.monitor()); !s.ok()) return s;
  if (u.max_failure_ratio() < 0 || u.max_failure_ratio() > 1) {
    return Bad(absl::StrCat(field, ".max_failure_ratio"), "must be between 0 and 1");
  }
  if (rollback && u.failure_action() == api::UpdateConfig::FAILURE_ACTION_ROLLBACK) {
    return Bad(absl::StrCat(field, ".failure_action"),
               "a rollback cannot itself roll back (pause or continue)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return Bad(field, "a name is required");
  if (name.size() > 63) return Bad(field, absl::StrCat("\"", name, "\" is longer than 63 characters"));
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return Bad(field, absl::StrCat("\"", name, "\" must start with a letter or digit"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return Bad(field, absl::StrCat("\"", name, "\" may hold only letters, digits, '_', '.' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateServiceSpec(const api::ServiceSpec& spec) {
  if (auto s = ValidateName("name", spec.annotations().name()); !s.ok()) return s;
  const api::TaskSpec& task = spec.task();
  if (!task.has_container()) return Bad("task.container", "a service needs a container spec");
  const api::ContainerSpec& c = task.container();
  if (absl::StripAsciiWhitespace(c.image()).empty()) {
    return Bad("task.container.image", "an image is required");
  }
  if (auto s = CheckDuration("task.container.stop_grace_period", c.stop_grace_period()); !s.ok()) {
    return s;
  }
  if (c.has_healthcheck()) {
    const api::HealthConfig& h = c.healthcheck();
    for (const auto& [name, d] :
         {std::pair<const char*, const google::protobuf::Duration*>{"interval", &h.interval()},
          {"timeout", &h.timeout()},
          {"start_period", &h.start_period()},
          {"start_interval", &h.start_interval()}}) {
      if (auto s = CheckDuration(absl::StrCat("task.container.healthcheck.", name), *d); !s.ok()) {
        return s;
      }
    }
    if (h.has_retries() && h.retries() < 0) {
      return Bad("task.container.healthcheck.retries", "must not be negative");
    }
  }
  std::set<std::string> targets;
  for (int i = 0; i < c.secrets_size(); ++i) {
    const auto& r = c.secrets(i);
    const std::string f = absl::StrCat("task.container.secrets[", i, "]");
    if (r.secret_name().empty() && r.secret_id().empty()) return Bad(f, "names no secret");
    const std::string target =
        r.target().name().empty() ? r.secret_name() : r.target().name();
    if (target.find('/') != std::string::npos || target == "." || target == "..") {
      return Bad(f, absl::StrCat("target \"", target, "\" must be a file name under /run/secrets"));
    }
    if (!targets.insert("/run/secrets/" + target).second) {
      return Bad(f, absl::StrCat("target \"", target, "\" is used twice"));
    }
  }
  for (int i = 0; i < c.configs_size(); ++i) {
    const auto& r = c.configs(i);
    const std::string f = absl::StrCat("task.container.configs[", i, "]");
    if (r.config_name().empty() && r.config_id().empty()) return Bad(f, "names no config");
    std::string target = r.target().name().empty() ? "/" + r.config_name() : r.target().name();
    if (target[0] != '/') target = "/" + target;
    if (!targets.insert(target).second) {
      return Bad(f, absl::StrCat("target \"", target, "\" is used twice"));
    }
  }
  if (auto s = CheckResources("task.resources.limits", task.resources().limits()); !s.ok()) {
    return s;
  }
  if (auto s = CheckResources("task.resources.reservations", task.resources().reservations());
      !s.ok()) {
    return s;
  }
  if (task.resources().pids_limit() < 0) {
    return Bad("task.resources.pids_limit", "must not be negative");
  }
  if (auto s = CheckDuration("task.restart.delay", task.restart().delay()); !s.ok()) return s;
  if (auto s = CheckDuration("task.restart.window", task.restart().window()); !s.ok()) return s;

  const api::Placement& p = task.placement();
  if (auto cs = scheduler::ParseConstraints(p.constraints()); !cs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("task.", cs.status().message()));
  }
  for (int i = 0; i < p.preferences_size(); ++i) {
    const std::string f = absl::StrCat("task.placement.preferences[", i, "]");
    if (!p.preferences(i).has_spread()) return Bad(f, "only spread preferences exist");
    const std::string& d = p.preferences(i).spread().spread_descriptor();
    if (auto attr = scheduler::ParseAttribute(d); !attr.ok()) {
      return Bad(f, absl::StrCat("spread=", d, ": ", attr.status().message()));
    }
  }
  if (spec.has_global() && p.max_replicas() > 0) {
    return Bad("task.placement.max_replicas", "only replicated services have a per-node limit");
  }
  for (int i = 0; i < task.networks_size(); ++i) {
    if (task.networks(i).target().empty()) {
      return Bad(absl::StrCat("task.networks[", i, "]"), "names no network");
    }
  }

  if (spec.has_replicated_job() && spec.replicated_job().has_max_concurrent() &&
      spec.replicated_job().max_concurrent() == 0) {
    return Bad("replicated_job.max_concurrent", "must be at least 1");
  }
  if (auto s = CheckUpdateConfig("update", spec.update(), false); !s.ok()) return s;
  if (auto s = CheckUpdateConfig("rollback", spec.rollback(), true); !s.ok()) return s;

  const api::EndpointSpec& e = spec.endpoint();
  std::set<std::pair<int, uint32_t>> published;
  for (int i = 0; i < e.ports_size(); ++i) {
    const api::PortConfig& port = e.ports(i);
    const std::string f = absl::StrCat("endpoint.ports[", i, "]");
    if (port.target_port() == 0 || port.target_port() > 65535) {
      return Bad(f, absl::StrCat("target port ", port.target_port(), " is not in 1-65535"));
    }
    if (port.published_port() > 65535) {
      return Bad(f, absl::StrCat("published port ", port.published_port(), " is not in 1-65535"));
    }
    if (port.published_port() != 0 &&
        !published.insert({port.protocol(), port.published_port()}).second) {
      return Bad(f, absl::StrCat("published port ", port.published_port(), " is used twice"));
    }
    if (e.mode() == api::EndpointSpec::RESOLUTION_MODE_DNSRR &&
        port.publish_mode() == api::PortConfig::PUBLISH_MODE_INGRESS) {
      return Bad(f, "dnsrr services publish ports in host mode only (no routing mesh without a VIP)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSecretSpec(const api::SecretSpec& spec) {
  if (auto s = ValidateName("name", spec.annotations().name()); !s.ok()) return s;
  if (spec.data().empty() || spec.data().size() > kMaxSecretBytes) {
    return Bad("data", absl::StrCat("secret data must be 1 byte to ", kMaxSecretBytes,
                                    " bytes (500 KiB); it is ", spec.data().size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateConfigSpec(const api::ConfigSpec& spec) {
  if (auto s = ValidateName("name", spec.annotations().name()); !s.ok()) return s;
  if (spec.data().empty() || spec.data().size() > kMaxSecretBytes) {
    return Bad("data", absl::StrCat("config data must be 1 byte to ", kMaxSecretBytes,
                                    " bytes (500 KiB); it is ", spec.data().size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateNetworkSpec(const api::NetworkSpec& spec) {
  if (auto s = ValidateName("name", spec.annotations().name()); !s.ok()) return s;
  const std::string& driver = spec.driver_config().name();
  if (!driver.empty() && driver != "overlay") {
    return Bad("driver_config.name", absl::StrCat("driver \"", driver,
                                                  "\" is not supported (overlay)"));
  }
  for (int i = 0; i < spec.ipam().configs_size(); ++i) {
    const std::string& subnet = spec.ipam().configs(i).subnet();
    if (subnet.empty()) continue;
    // An address with a prefix, both well-formed.
    const size_t slash = subnet.find('/');
    auto net = scheduler::ParseConstraint(absl::StrCat("node.ip==", subnet));
    if (slash == std::string::npos || !net.ok()) {
      return Bad(absl::StrCat("ipam.configs[", i, "].subnet"),
                 absl::StrCat("\"", subnet, "\" is not a CIDR network (10.0.9.0/24)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal::manager::controlapi

#include "scheduler/filter.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::scheduler {
namespace {

std::string NormaliseArch(absl::string_view arch) {
  std::string a = absl::AsciiStrToLower(arch);
  if (a == "x86_64" || a == "x86-64") return "amd64";
  if (a == "aarch64") return "arm64";
  return a;
}

std::string Nodes(int64_t n) { return n == 1 ? "1 node" : absl::StrCat(n, " nodes"); }

const char* ProtocolName(uint32_t protocol) {
  switch (protocol) {
    case api::PortConfig::PROTOCOL_UDP:
      return "udp";
    case api::PortConfig::PROTOCOL_SCTP:
      return "sctp";
    default:
      return "tcp";
  }
}

bool PlatformMatches(const api::Platform& want, const api::Platform& have) {
  return (want.architecture().empty() ||
          want.architecture() == NormaliseArch(have.architecture())) &&
         (want.os().empty() || absl::EqualsIgnoreCase(want.os(), have.os()));
}

}  // namespace

absl::StatusOr<Demand> DemandOf(const api::Task& task) {
  Demand d;
  d.service_id = task.service_id();
  d.version = task.spec_version().index();
  const api::TaskSpec& spec = task.spec();
  const api::Resources& r = spec.resources().reservations();
  if (r.nano_cpus() < 0) {
    return absl::InvalidArgumentError("resources.reservations.nano_cpus is negative");
  }
  if (r.memory_bytes() < 0) {
    return absl::InvalidArgumentError("resources.reservations.memory_bytes is negative");
  }
  d.nano_cpus = r.nano_cpus();
  d.memory_bytes = r.memory_bytes();
  for (int i = 0; i < r.generic_size(); ++i) {
    const api::GenericResource& g = r.generic(i);
    if (!g.has_discrete() || g.discrete().value() <= 0 || g.discrete().kind().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("resources.reservations.generic[", i,
                       "]: a task reserves a positive count of a kind (gpu=1)"));
    }
    auto it = std::find_if(d.generic.begin(), d.generic.end(),
                           [&](const auto& kv) { return kv.first == g.discrete().kind(); });
    if (it == d.generic.end()) {
      d.generic.emplace_back(g.discrete().kind(), g.discrete().value());
    } else {
      it->second += g.discrete().value();
    }
  }
  for (uint32_t port : UseOf(task).host_ports) {
    if (std::find(d.host_ports.begin(), d.host_ports.end(), port) == d.host_ports.end()) {
      d.host_ports.push_back(port);
    }
  }
  const api::Placement& placement = spec.placement();
  absl::StatusOr<std::vector<Constraint>> constraints = ParseConstraints(placement.constraints());
  if (!constraints.ok()) return constraints.status();
  d.constraints = *std::move(constraints);
  for (const api::Platform& p : placement.platforms()) {
    api::Platform n;
    n.set_os(absl::AsciiStrToLower(p.os()));
    n.set_architecture(NormaliseArch(p.architecture()));
    d.platforms.push_back(std::move(n));
  }
  d.max_replicas = placement.max_replicas();
  for (int i = 0; i < placement.preferences_size(); ++i) {
    const api::PlacementPreference& pref = placement.preferences(i);
    if (!pref.has_spread()) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement.preferences[", i, "]: only spread preferences exist"));
    }
    absl::StatusOr<Constraint> attr = ParseAttribute(pref.spread().spread_descriptor());
    if (!attr.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("placement.preferences[", i, "]: spread=",
                                                     pref.spread().spread_descriptor(), ": ",
                                                     attr.status().message()));
    }
    d.spread.push_back(*std::move(attr));
  }
  return d;
}

Rejection CheckReady(const NodeInfo& n) {
  if (!n.present() || n.node().status().state() != api::NodeStatus::NODE_STATE_READY) {
    return {Rejection::Why::kNotReady, 0};
  }
  switch (n.node().spec().availability()) {
    case api::NodeSpec::AVAILABILITY_PAUSE:
      return {Rejection::Why::kPaused, 0};
    case api::NodeSpec::AVAILABILITY_DRAIN:
      return {Rejection::Why::kDrained, 0};
    default:
      return {};
  }
}

Rejection CheckResources(const Demand& d, const NodeInfo& n) {
  if (d.memory_bytes > 0 && n.free_memory_bytes() < d.memory_bytes) {
    return {Rejection::Why::kMemory, 0};
  }
  if (d.nano_cpus > 0 && n.free_nano_cpus() < d.nano_cpus) return {Rejection::Why::kCpu, 0};
  for (size_t i = 0; i < d.generic.size(); ++i) {
    if (n.free_generic(d.generic[i].first) < d.generic[i].second) {
      return {Rejection::Why::kGeneric, static_cast<uint32_t>(i)};
    }
  }
  return {};
}

Rejection CheckPlacement(const Demand& d, const api::Node& node) {
  for (size_t i = 0; i < d.constraints.size(); ++i) {
    if (!Matches(d.constraints[i], node)) {
      return {Rejection::Why::kConstraint, static_cast<uint32_t>(i)};
    }
  }
  if (!d.platforms.empty()) {
    const api::Platform& have = node.description().platform();
    if (std::none_of(d.platforms.begin(), d.platforms.end(),
                     [&](const api::Platform& want) { return PlatformMatches(want, have); })) {
      return {Rejection::Why::kPlatform, 0};
    }
  }
  return {};
}

Rejection CheckHeld(const Demand& d, const NodeInfo& n) {
  for (size_t i = 0; i < d.host_ports.size(); ++i) {
    if (n.host_port_in_use(d.host_ports[i])) {
      return {Rejection::Why::kHostPort, static_cast<uint32_t>(i)};
    }
  }
  if (d.max_replicas > 0 && n.tasks_of(d.service_id) >= static_cast<int64_t>(d.max_replicas)) {
    return {Rejection::Why::kMaxReplicas, 0};
  }
  return {};
}

Rejection CheckDynamic(const Demand& d, const NodeInfo& n) {
  Rejection r = CheckResources(d, n);
  return r.ok() ? CheckHeld(d, n) : r;
}

Rejection Check(const Demand& d, const NodeInfo& n) {
  Rejection r = CheckReady(n);
  if (r.ok()) r = CheckResources(d, n);
  if (r.ok()) r = CheckPlacement(d, n.node());
  if (r.ok()) r = CheckHeld(d, n);
  return r;
}

std::string PlacementSignature(const Demand& d) {
  std::string sig;
  for (const Constraint& c : d.constraints) absl::StrAppend(&sig, c.text, "\n");
  for (const api::Platform& p : d.platforms) {
    absl::StrAppend(&sig, "\t", p.os(), "/", p.architecture());
  }
  return sig;
}

int64_t Rejections::total() const {
  int64_t total = 0;
  for (const auto& [key, count] : counts_) total += count;
  return total;
}

std::string Rejections::Explain(const Demand& d) const {
  if (counts_.empty()) return "no suitable node (the cluster has no nodes)";
  std::vector<std::pair<std::pair<Rejection::Why, uint32_t>, int64_t>> sorted(counts_.begin(),
                                                                               counts_.end());
  // Most rejections first; ties in the pipeline's order (the map's).
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (const auto& [key, count] : sorted) {
    const auto [why, detail] = key;
    switch (why) {
      case Rejection::Why::kNone:
        break;
      case Rejection::Why::kNotReady:
        parts.push_back(absl::StrCat(Nodes(count), count == 1 ? " is" : " are", " not ready"));
        break;
      case Rejection::Why::kPaused:
        parts.push_back(absl::StrCat(Nodes(count), count == 1 ? " is" : " are", " paused"));
        break;
      case Rejection::Why::kDrained:
        parts.push_back(absl::StrCat(Nodes(count), count == 1 ? " is" : " are", " drained"));
        break;
      case Rejection::Why::kMemory:
        parts.push_back(absl::StrCat("insufficient memory on ", Nodes(count)));
        break;
      case Rejection::Why::kCpu:
        parts.push_back(absl::StrCat("insufficient cpu on ", Nodes(count)));
        break;
      case Rejection::Why::kGeneric:
        parts.push_back(absl::StrCat(
            "insufficient ", detail < d.generic.size() ? d.generic[detail].first : "generic",
            " on ", Nodes(count)));
        break;
      case Rejection::Why::kConstraint:
        parts.push_back(absl::StrCat(
            "constraint ", detail < d.constraints.size() ? d.constraints[detail].text : "?",
            " not satisfied on ", Nodes(count)));
        break;
      case Rejection::Why::kPlatform: {
        std::vector<std::string> names;
        for (const api::Platform& p : d.platforms) {
          names.push_back(absl::StrCat(p.os().empty() ? "*" : p.os(), "/",
                                       p.architecture().empty() ? "*" : p.architecture()));
        }
        parts.push_back(absl::StrCat("platform not among the image's (",
                                     absl::StrJoin(names, ", "), ") on ", Nodes(count)));
        break;
      }
      case Rejection::Why::kHostPort: {
        const uint32_t key = detail < d.host_ports.size() ? d.host_ports[detail] : 0;
        parts.push_back(absl::StrCat("host-mode port ", key & 0xffff, "/",
                                     ProtocolName(key >> 16), " already in use on ",
                                     Nodes(count)));
        break;
      }
      case Rejection::Why::kMaxReplicas:
        parts.push_back(absl::StrCat("max replicas per node (", d.max_replicas, ") reached on ",
                                     Nodes(count)));
        break;
    }
  }
  return absl::StrCat("no suitable node (", absl::StrJoin(parts, "; "), ")");
}

}  // namespace shoal::scheduler

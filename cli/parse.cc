#include "cli/parse.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace shoal::cli {
namespace {

absl::Status Invalid(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid ", flag, " \"", value, "\": ", why));
}

bool HasSpace(absl::string_view s) {
  for (char c : s) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

// Splits "a=1,b=2" into ordered pairs; an element without "=" has an empty key and the element
// as value.
std::vector<std::pair<std::string, std::string>> SplitFields(absl::string_view value) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view field : absl::StrSplit(value, ',')) {
    const size_t eq = field.find('=');
    if (eq == absl::string_view::npos) {
      out.emplace_back("", std::string(field));
    } else {
      out.emplace_back(absl::AsciiStrToLower(absl::StripAsciiWhitespace(field.substr(0, eq))),
                       std::string(absl::StripAsciiWhitespace(field.substr(eq + 1))));
    }
  }
  return out;
}

absl::StatusOr<uint32_t> ParsePort(absl::string_view flag, absl::string_view whole,
                                   absl::string_view port) {
  uint32_t p = 0;
  if (!absl::SimpleAtoi(port, &p) || p < 1 || p > 65535) {
    return Invalid(flag, whole, absl::StrCat("port \"", port, "\" is not a number in 1-65535"));
  }
  return p;
}

absl::StatusOr<api::PortConfig::Protocol> ParseProtocol(absl::string_view whole,
                                                        absl::string_view p) {
  const std::string lower = absl::AsciiStrToLower(p);
  if (lower == "tcp") return api::PortConfig::PROTOCOL_TCP;
  if (lower == "udp") return api::PortConfig::PROTOCOL_UDP;
  if (lower == "sctp") return api::PortConfig::PROTOCOL_SCTP;
  return Invalid("--publish", whole, absl::StrCat("protocol \"", p, "\" is not tcp, udp or sctp"));
}

// FileTarget options shared by secrets and configs; `name` receives source=.
absl::Status ParseFileRef(absl::string_view flag, absl::string_view value, std::string* source,
                          api::FileTarget* target) {
  if (value.empty()) return Invalid(flag, value, "a name is required");
  if (value.find('=') == absl::string_view::npos) {
    *source = std::string(value);
    return absl::OkStatus();
  }
  for (const auto& [k, v] : SplitFields(value)) {
    if (k == "source" || k == "src") {
      *source = v;
    } else if (k == "target") {
      target->set_name(v);
    } else if (k == "uid") {
      target->set_uid(v);
    } else if (k == "gid") {
      target->set_gid(v);
    } else if (k == "mode") {
      char* end = nullptr;
      const unsigned long mode = std::strtoul(v.c_str(), &end, 8);
      if (v.empty() || *end != '\0' || mode > 07777) {
        return Invalid(flag, value, absl::StrCat("mode \"", v, "\" is not an octal file mode"));
      }
      target->set_mode(static_cast<uint32_t>(mode));
    } else {
      return Invalid(flag, value,
                     absl::StrCat("unknown field \"", k.empty() ? v : k,
                                  "\" (expected source, target, uid, gid, mode)"));
    }
  }
  if (source->empty()) return Invalid(flag, value, "source= is required");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view flag, absl::string_view value) {
  absl::Duration d;
  const absl::string_view v = absl::StripAsciiWhitespace(value);
  if (v.empty() || !absl::ParseDuration(v, &d) || d == absl::InfiniteDuration() ||
      d == -absl::InfiniteDuration()) {
    return Invalid(flag, value, "expected a duration such as 10s, 1m30s, 300ms or 2h");
  }
  if (d < absl::ZeroDuration()) return Invalid(flag, value, "must not be negative");
  return d;
}

absl::StatusOr<absl::Time> ParseSince(absl::string_view value, absl::Time now,
                                      absl::TimeZone local) {
  const absl::string_view v = absl::StripAsciiWhitespace(value);
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, v, &t, &err)) return t;
  for (const char* layout : {"%Y-%m-%dT%H:%M:%E*S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    if (absl::ParseTime(layout, v, local, &t, &err)) return t;
  }
  // A Unix timestamp: seconds, and maybe a fraction.
  const absl::string_view seconds = v.substr(0, v.find('.'));
  const absl::string_view fraction =
      v.find('.') == absl::string_view::npos ? "" : v.substr(v.find('.') + 1);
  int64_t whole = 0;
  if (!seconds.empty() && absl::SimpleAtoi(seconds, &whole) && whole >= 0 && fraction.size() <= 9 &&
      std::all_of(fraction.begin(), fraction.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      seconds.find_first_not_of("0123456789") == absl::string_view::npos) {
    int64_t nanos = 0;
    for (size_t i = 0; i < 9; ++i)
      nanos = nanos * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
    return absl::FromUnixSeconds(whole) + absl::Nanoseconds(nanos);
  }
  absl::Duration d;
  if (!v.empty() && absl::ParseDuration(v, &d) && d >= absl::ZeroDuration() &&
      d != absl::InfiniteDuration()) {
    return now - d;
  }
  return Invalid("--since", value,
                 "expected a time such as 2013-01-02T13:23:37Z, a Unix timestamp, or a duration "
                 "such as 42m");
}

absl::StatusOr<int64_t> ParseTail(absl::string_view value) {
  const absl::string_view v = absl::StripAsciiWhitespace(value);
  if (absl::EqualsIgnoreCase(v, "all")) return -1;
  int64_t n = 0;
  if (v.empty() || v.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(v, &n)) {
    return Invalid("--tail", value, "expected a number of lines, or \"all\"");
  }
  return n;
}

google::protobuf::Duration DurationToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}

absl::Duration DurationFromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::StatusOr<int64_t> ParseBytes(absl::string_view flag, absl::string_view value) {
  std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  constexpr absl::string_view kHelp =
      "expected a size such as 512M, 1.5G or 1024 (units b, k, m, g, t)";
  if (v.empty()) return Invalid(flag, value, kHelp);
  // A trailing "b" after a unit ("512mb") or alone ("512b").
  if (v.size() >= 2 && v.back() == 'b' &&
      std::isalpha(static_cast<unsigned char>(v[v.size() - 2]))) {
    v.pop_back();
  }
  double multiplier = 1;
  switch (v.back()) {
    case 'b':
      multiplier = 1;
      v.pop_back();
      break;
    case 'k':
      multiplier = 1024.0;
      v.pop_back();
      break;
    case 'm':
      multiplier = 1024.0 * 1024;
      v.pop_back();
      break;
    case 'g':
      multiplier = 1024.0 * 1024 * 1024;
      v.pop_back();
      break;
    case 't':
      multiplier = 1024.0 * 1024 * 1024 * 1024;
      v.pop_back();
      break;
    default:
      if (!std::isdigit(static_cast<unsigned char>(v.back())) && v.back() != '.') {
        return Invalid(flag, value, kHelp);
      }
  }
  double number = 0;
  if (v.empty() || v[0] == '-' || v[0] == '+' || !absl::SimpleAtod(v, &number) || !(number >= 0)) {
    return Invalid(flag, value, kHelp);
  }
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.')
      return Invalid(flag, value, kHelp);
  }
  const double bytes = number * multiplier;
  if (bytes >= static_cast<double>(std::numeric_limits<int64_t>::max())) {
    return Invalid(flag, value, "too large");
  }
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<int64_t> ParseNanoCpus(absl::string_view flag, absl::string_view value) {
  const absl::string_view v = absl::StripAsciiWhitespace(value);
  constexpr absl::string_view kHelp = "expected a positive number of CPUs such as 0.5 or 2";
  const size_t dot = v.find('.');
  const absl::string_view whole = v.substr(0, dot);
  absl::string_view frac = dot == absl::string_view::npos ? "" : v.substr(dot + 1);
  if (v.empty() || (whole.empty() && frac.empty())) return Invalid(flag, value, kHelp);
  for (char c : whole) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return Invalid(flag, value, kHelp);
  }
  for (char c : frac) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return Invalid(flag, value, kHelp);
  }
  if (frac.size() > 9) return Invalid(flag, value, "at most 9 decimals (nano-CPUs)");
  int64_t cores = 0;
  if (!whole.empty() && (!absl::SimpleAtoi(whole, &cores) || cores > 1000000)) {
    return Invalid(flag, value, "too large");
  }
  int64_t nanos = 0;
  if (!frac.empty()) {
    std::string padded(frac);
    padded.resize(9, '0');
    (void)absl::SimpleAtoi(padded, &nanos);
  }
  const int64_t total = cores * 1000000000 + nanos;
  if (total <= 0) return Invalid(flag, value, "must be more than 0");
  return total;
}

absl::StatusOr<uint64_t> ParseUint(absl::string_view flag, absl::string_view value) {
  uint64_t n = 0;
  const absl::string_view v = absl::StripAsciiWhitespace(value);
  if (v.empty() || v[0] == '-' || v[0] == '+' || !absl::SimpleAtoi(v, &n)) {
    return Invalid(flag, value, "expected a non-negative integer");
  }
  return n;
}

absl::StatusOr<api::PortConfig> ParsePublish(absl::string_view value) {
  api::PortConfig port;
  const absl::string_view v = absl::StripAsciiWhitespace(value);
  if (v.empty()) return Invalid("--publish", value, "expected PUBLISHED:TARGET[/PROTOCOL]");
  if (v.find('=') != absl::string_view::npos) {
    bool has_target = false;
    for (const auto& [k, val] : SplitFields(v)) {
      if (k == "target") {
        auto p = ParsePort("--publish", value, val);
        if (!p.ok()) return p.status();
        port.set_target_port(*p);
        has_target = true;
      } else if (k == "published") {
        auto p = ParsePort("--publish", value, val);
        if (!p.ok()) return p.status();
        port.set_published_port(*p);
      } else if (k == "protocol") {
        auto p = ParseProtocol(value, val);
        if (!p.ok()) return p.status();
        port.set_protocol(*p);
      } else if (k == "mode") {
        const std::string m = absl::AsciiStrToLower(val);
        if (m == "ingress") {
          port.set_publish_mode(api::PortConfig::PUBLISH_MODE_INGRESS);
        } else if (m == "host") {
          port.set_publish_mode(api::PortConfig::PUBLISH_MODE_HOST);
        } else {
          return Invalid("--publish", value,
                         absl::StrCat("mode \"", val, "\" is not ingress or host"));
        }
      } else if (k == "name") {
        port.set_name(val);
      } else {
        return Invalid("--publish", value,
                       absl::StrCat("unknown field \"", k.empty() ? val : k,
                                    "\" (expected published, target, protocol, mode)"));
      }
    }
    if (!has_target) return Invalid("--publish", value, "target= is required");
    return port;
  }
  absl::string_view ports = v;
  const size_t slash = v.find('/');
  if (slash != absl::string_view::npos) {
    auto p = ParseProtocol(value, v.substr(slash + 1));
    if (!p.ok()) return p.status();
    port.set_protocol(*p);
    ports = v.substr(0, slash);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(ports, ':');
  if (parts.size() > 2) {
    return Invalid("--publish", value,
                   "binding to a host IP is not supported; use PUBLISHED:TARGET[/PROTOCOL]");
  }
  if (ports.find('-') != absl::string_view::npos) {
    return Invalid("--publish", value, "port ranges are not supported");
  }
  auto target = ParsePort("--publish", value, parts.back());
  if (!target.ok()) return target.status();
  port.set_target_port(*target);
  if (parts.size() == 2) {
    auto published = ParsePort("--publish", value, parts[0]);
    if (!published.ok()) return published.status();
    port.set_published_port(*published);
  }
  return port;
}

absl::StatusOr<std::string> ParseEnv(absl::string_view value) {
  const size_t eq = value.find('=');
  const absl::string_view key = value.substr(0, eq);
  if (key.empty()) return Invalid("--env", value, "expected KEY=VALUE (the key is empty)");
  if (HasSpace(key)) return Invalid("--env", value, "the key must not contain whitespace");
  if (eq == absl::string_view::npos) {
    const std::string k(key);
    if (const char* from_env = std::getenv(k.c_str())) return absl::StrCat(k, "=", from_env);
  }
  return std::string(value);
}

std::string EnvKey(absl::string_view entry) {
  return std::string(entry.substr(0, entry.find('=')));
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view flag,
                                                                  absl::string_view value) {
  const size_t eq = value.find('=');
  const absl::string_view key = value.substr(0, eq);
  if (key.empty()) return Invalid(flag, value, "expected KEY=VALUE (the key is empty)");
  if (HasSpace(key)) return Invalid(flag, value, "the key must not contain whitespace");
  return std::make_pair(std::string(key), eq == absl::string_view::npos
                                              ? std::string()
                                              : std::string(value.substr(eq + 1)));
}

absl::StatusOr<api::PlacementPreference> ParsePlacementPref(absl::string_view value) {
  const size_t eq = value.find('=');
  if (eq == absl::string_view::npos || value.substr(0, eq) != "spread" || eq + 1 == value.size()) {
    return Invalid("--placement-pref", value,
                   "expected spread=<node attribute>, e.g. "
                   "spread=node.labels.zone");
  }
  api::PlacementPreference p;
  p.mutable_spread()->set_spread_descriptor(std::string(value.substr(eq + 1)));
  return p;
}

absl::StatusOr<api::SecretReference> ParseSecretRef(absl::string_view value) {
  api::SecretReference ref;
  std::string source;
  if (auto s = ParseFileRef("--secret", value, &source, ref.mutable_target()); !s.ok()) return s;
  ref.set_secret_name(source);
  if (ref.target().name().empty()) ref.mutable_target()->set_name(source);
  return ref;
}

absl::StatusOr<api::ConfigReference> ParseConfigRef(absl::string_view value) {
  api::ConfigReference ref;
  std::string source;
  if (auto s = ParseFileRef("--config", value, &source, ref.mutable_target()); !s.ok()) return s;
  ref.set_config_name(source);
  if (ref.target().name().empty()) ref.mutable_target()->set_name(absl::StrCat("/", source));
  return ref;
}

absl::StatusOr<api::NetworkAttachmentConfig> ParseNetwork(absl::string_view value) {
  api::NetworkAttachmentConfig n;
  if (value.empty()) return Invalid("--network", value, "a network name is required");
  if (value.find('=') == absl::string_view::npos) {
    n.set_target(std::string(value));
    return n;
  }
  for (const auto& [k, v] : SplitFields(value)) {
    if (k == "name") {
      n.set_target(v);
    } else if (k == "alias") {
      n.add_aliases(v);
    } else {
      return Invalid(
          "--network", value,
          absl::StrCat("unknown field \"", k.empty() ? v : k, "\" (expected name, alias)"));
    }
  }
  if (n.target().empty()) return Invalid("--network", value, "name= is required");
  return n;
}

absl::StatusOr<api::RestartPolicy::Condition> ParseRestartCondition(absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "any") return api::RestartPolicy::RESTART_CONDITION_ANY;
  if (v == "on-failure") return api::RestartPolicy::RESTART_CONDITION_ON_FAILURE;
  if (v == "none") return api::RestartPolicy::RESTART_CONDITION_NONE;
  return Invalid("--restart-condition", value, "expected none, on-failure or any");
}

absl::StatusOr<api::UpdateConfig::FailureAction> ParseFailureAction(absl::string_view flag,
                                                                    absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "pause") return api::UpdateConfig::FAILURE_ACTION_PAUSE;
  if (v == "continue") return api::UpdateConfig::FAILURE_ACTION_CONTINUE;
  if (v == "rollback") return api::UpdateConfig::FAILURE_ACTION_ROLLBACK;
  return Invalid(flag, value, "expected pause, continue or rollback");
}

absl::StatusOr<api::UpdateConfig::Order> ParseUpdateOrder(absl::string_view flag,
                                                          absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "stop-first") return api::UpdateConfig::ORDER_STOP_FIRST;
  if (v == "start-first") return api::UpdateConfig::ORDER_START_FIRST;
  return Invalid(flag, value, "expected stop-first or start-first");
}

absl::StatusOr<api::NodeSpec::Availability> ParseAvailability(absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "active") return api::NodeSpec::AVAILABILITY_ACTIVE;
  if (v == "pause") return api::NodeSpec::AVAILABILITY_PAUSE;
  if (v == "drain") return api::NodeSpec::AVAILABILITY_DRAIN;
  return Invalid("--availability", value, "expected active, pause or drain");
}

absl::StatusOr<api::NodeRole> ParseRole(absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "worker") return api::NODE_ROLE_WORKER;
  if (v == "manager") return api::NODE_ROLE_MANAGER;
  return Invalid("--role", value, "expected worker or manager");
}

absl::StatusOr<ServiceMode> ParseServiceMode(absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "replicated") return ServiceMode::kReplicated;
  if (v == "global") return ServiceMode::kGlobal;
  if (v == "replicated-job") return ServiceMode::kReplicatedJob;
  if (v == "global-job") return ServiceMode::kGlobalJob;
  return Invalid("--mode", value, "expected replicated, global, replicated-job or global-job");
}

absl::StatusOr<float> ParseRatio(absl::string_view flag, absl::string_view value) {
  float f = 0;
  if (!absl::SimpleAtof(absl::StripAsciiWhitespace(value), &f) || !(f >= 0) || f > 1) {
    return Invalid(flag, value, "expected a number between 0 and 1");
  }
  return f;
}

}  // namespace shoal::cli

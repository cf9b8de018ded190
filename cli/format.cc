#include "cli/format.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace shoal::cli {

std::string Table::Render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Utf8Length(row[i]));
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - Utf8Length(row[i]) + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

size_t Utf8Length(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string ShortId(absl::string_view id, bool no_trunc) {
  return std::string(no_trunc ? id : id.substr(0, 12));
}

std::string Ellipsis(absl::string_view s, size_t max) {
  if (Utf8Length(s) <= max || max == 0) return std::string(s);
  // Cut at a character boundary after max - 1 characters.
  size_t chars = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == max - 1) break;
      ++chars;
    }
  }
  return absl::StrCat(s.substr(0, i), "…");
}

std::string HumanDuration(absl::Duration d) {
  const int64_t seconds = absl::ToInt64Seconds(d);
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return absl::StrCat(seconds, " seconds");
  const int64_t minutes = absl::ToInt64Minutes(d);
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return absl::StrCat(minutes, " minutes");
  const int64_t hours = static_cast<int64_t>(absl::ToDoubleHours(d) + 0.5);
  if (hours == 1) return "About an hour";
  if (hours < 48) return absl::StrCat(hours, " hours");
  if (hours < 24 * 7 * 2) return absl::StrCat(hours / 24, " days");
  if (hours < 24 * 30 * 2) return absl::StrCat(hours / 24 / 7, " weeks");
  if (hours < 24 * 365 * 2) return absl::StrCat(hours / 24 / 30, " months");
  return absl::StrCat(absl::ToInt64Hours(d) / 24 / 365, " years");
}

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string TimeAgo(const google::protobuf::Timestamp& t, absl::Time now) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::StrCat(HumanDuration(now - FromProtoTime(t)), " ago");
}

std::string HumanBytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g%s", v, kUnits[unit]);
  return buf;
}

std::string HumanCpus(int64_t nano_cpus) {
  std::string s = absl::StrCat(nano_cpus / 1000000000);
  int64_t frac = nano_cpus % 1000000000;
  if (frac == 0) return s;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%09" PRId64, frac);
  std::string f = buf;
  while (!f.empty() && f.back() == '0') f.pop_back();
  return absl::StrCat(s, ".", f);
}

std::string TaskStateName(api::TaskState state) {
  const std::string& name = api::TaskState_Name(state);
  absl::string_view v = name;
  absl::ConsumePrefix(&v, "TASK_STATE_");
  return absl::AsciiStrToLower(v);
}

namespace {

std::string Title(std::string s) {
  if (!s.empty()) s[0] = absl::ascii_toupper(static_cast<unsigned char>(s[0]));
  return s;
}

std::string StripPrefixLower(std::string name, absl::string_view prefix) {
  absl::string_view v = name;
  absl::ConsumePrefix(&v, prefix);
  return absl::AsciiStrToLower(v);
}

}  // namespace

std::string NodeStateName(api::NodeStatus::State state) {
  return Title(StripPrefixLower(api::NodeStatus::State_Name(state), "NODE_STATE_"));
}

std::string AvailabilityName(api::NodeSpec::Availability a) {
  return Title(StripPrefixLower(api::NodeSpec::Availability_Name(a), "AVAILABILITY_"));
}

std::string ManagerStatusName(const api::Node& node) {
  if (!node.has_manager_status()) return "";
  if (node.manager_status().leader()) return "Leader";
  switch (node.manager_status().reachability()) {
    case api::ManagerStatus::REACHABILITY_REACHABLE:
      return "Reachable";
    case api::ManagerStatus::REACHABILITY_UNREACHABLE:
      return "Unreachable";
    default:
      return "Unknown";
  }
}

std::string ServiceModeName(const api::ServiceSpec& spec) {
  switch (spec.mode_case()) {
    case api::ServiceSpec::kGlobal:
      return "global";
    case api::ServiceSpec::kReplicatedJob:
      return "replicated-job";
    case api::ServiceSpec::kGlobalJob:
      return "global-job";
    default:
      return "replicated";
  }
}

std::string PortsText(const google::protobuf::RepeatedPtrField<api::PortConfig>& ports) {
  std::vector<std::string> out;
  for (const api::PortConfig& p : ports) {
    const std::string proto =
        StripPrefixLower(api::PortConfig::Protocol_Name(p.protocol()), "PROTOCOL_");
    const std::string published = p.published_port() == 0 ? "" : absl::StrCat(p.published_port());
    if (p.publish_mode() == api::PortConfig::PUBLISH_MODE_HOST) {
      out.push_back(absl::StrCat(published, "->", p.target_port(), "/", proto, " (host)"));
    } else {
      out.push_back(absl::StrCat("*:", published, "->", p.target_port(), "/", proto));
    }
  }
  return absl::StrJoin(out, ", ");
}

std::string NodeTable(const std::vector<api::Node>& nodes, const std::string& self) {
  Table t({"ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"});
  for (const api::Node& n : nodes) {
    t.Add(
        {n.meta().id() == self && !self.empty() ? absl::StrCat(n.meta().id(), " *") : n.meta().id(),
         n.description().hostname(), NodeStateName(n.status().state()),
         AvailabilityName(n.spec().availability()), ManagerStatusName(n),
         n.description().version()});
  }
  return t.Render();
}

std::string ServiceTable(const std::vector<api::Service>& services,
                         const std::map<std::string, ReplicaCounts>& counts, bool no_trunc) {
  Table t({"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"});
  for (const api::Service& s : services) {
    ReplicaCounts st;
    if (auto it = counts.find(s.meta().id()); it != counts.end()) st = it->second;
    std::string replicas = absl::StrCat(st.running, "/", st.desired);
    if (s.spec().has_replicated_job() || s.spec().has_global_job()) {
      absl::StrAppend(&replicas, " (", st.completed, "/", st.desired, " completed)");
    }
    std::string image = s.spec().task().container().image();
    if (!no_trunc) image = image.substr(0, image.find('@'));
    t.Add({ShortId(s.meta().id(), no_trunc), s.spec().annotations().name(),
           ServiceModeName(s.spec()), replicas, image,
           PortsText(s.endpoint().ports().empty() ? s.spec().endpoint().ports()
                                                  : s.endpoint().ports())});
  }
  return t.Render();
}

std::string TaskName(const api::Task& task,
                     const std::map<std::string, std::string>& service_names) {
  if (!task.annotations().name().empty()) return task.annotations().name();
  std::string service = task.service_annotations().name();
  if (auto it = service_names.find(task.service_id()); it != service_names.end()) {
    service = it->second;
  }
  if (service.empty()) service = task.service_id();
  return task.slot() != 0 ? absl::StrCat(service, ".", task.slot())
                          : absl::StrCat(service, ".", task.node_id());
}

std::string TaskTable(std::vector<api::Task> tasks,
                      const std::map<std::string, std::string>& hostnames,
                      const std::map<std::string, std::string>& service_names, absl::Time now,
                      bool no_trunc) {
  auto service_name = [&](const api::Task& t) {
    auto it = service_names.find(t.service_id());
    return it != service_names.end() ? it->second : t.service_annotations().name();
  };
  // Tasks of one slot (or, for global services, one node) form a group.
  auto group = [&](const api::Task& t) {
    return std::make_tuple(service_name(t), t.service_id(), t.slot(),
                           t.slot() == 0 ? t.node_id() : std::string());
  };
  auto created = [](const api::Task& t) { return FromProtoTime(t.meta().created_at()); };
  std::stable_sort(tasks.begin(), tasks.end(), [&](const api::Task& a, const api::Task& b) {
    const auto ga = group(a), gb = group(b);
    if (ga != gb) return ga < gb;
    return created(a) > created(b);
  });
  Table t({"ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"});
  std::tuple<std::string, std::string, uint64_t, std::string> previous;
  bool first = true;
  for (const api::Task& task : tasks) {
    const auto g = group(task);
    std::string name = TaskName(task, service_names);
    if (!first && g == previous) name = absl::StrCat(" \\_ ", name);
    first = false;
    previous = g;
    std::string node = task.node_id();
    if (auto it = hostnames.find(node); it != hostnames.end() && !it->second.empty()) {
      node = it->second;
    }
    std::string image = task.spec().container().image();
    if (!no_trunc) image = image.substr(0, image.find('@'));
    std::string current = Title(TaskStateName(task.status().state()));
    const std::string ago = TimeAgo(task.status().timestamp(), now);
    if (!ago.empty()) absl::StrAppend(&current, " ", absl::AsciiStrToLower(ago));
    std::string error = task.status().err();
    if (!error.empty()) error = absl::StrCat("\"", no_trunc ? error : Ellipsis(error, 30), "\"");
    t.Add({ShortId(task.meta().id(), no_trunc), name, image, node,
           Title(TaskStateName(task.desired_state())), current, error,
           PortsText(task.status().port_status().ports())});
  }
  return t.Render();
}

std::string SecretTable(const std::vector<api::Secret>& secrets, absl::Time now) {
  Table t({"ID", "NAME", "DRIVER", "CREATED", "UPDATED"});
  for (const api::Secret& s : secrets) {
    t.Add({s.meta().id(), s.spec().annotations().name(), s.spec().templating().name(),
           TimeAgo(s.meta().created_at(), now), TimeAgo(s.meta().updated_at(), now)});
  }
  return t.Render();
}

std::string ConfigTable(const std::vector<api::Config>& configs, absl::Time now) {
  Table t({"ID", "NAME", "CREATED", "UPDATED"});
  for (const api::Config& c : configs) {
    t.Add({c.meta().id(), c.spec().annotations().name(), TimeAgo(c.meta().created_at(), now),
           TimeAgo(c.meta().updated_at(), now)});
  }
  return t.Render();
}

}  // namespace shoal::cli

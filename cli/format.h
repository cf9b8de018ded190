// What swarmctl prints: tables laid out as docker's (columns padded to the widest cell plus
// three spaces), truncated ids, "5 seconds ago", sizes, the names docker shows for states, and
// the rows of `node ls`, `service ls`, `service ps`, `secret ls` and `config ls`.
//
// Pure: the current time is an argument. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/objects.pb.h"

namespace shoal::cli {

// A table with a header row. Render pads every column but the last to its widest cell (in
// UTF-8 characters) plus 3 spaces, and trims trailing spaces, as docker's tabwriter does.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Characters (not bytes) of a UTF-8 string.
size_t Utf8Length(absl::string_view s);

// The first 12 characters of an id (docker's short ids), unless `no_trunc`.
std::string ShortId(absl::string_view id, bool no_trunc = false);

// `s` cut to `max` characters with a trailing "…" when longer.
std::string Ellipsis(absl::string_view s, size_t max);

// docker's units.HumanDuration: "Less than a second", "1 second", "5 seconds", "About a
// minute", "3 minutes", "About an hour", "5 hours", "3 days", "2 weeks", "3 months", "2 years".
std::string HumanDuration(absl::Duration d);
// "<HumanDuration(now - t)> ago"; "" for an unset timestamp.
std::string TimeAgo(const google::protobuf::Timestamp& t, absl::Time now);
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);

// Binary sizes as docker prints them: "512MiB", "1.5GiB", "100B".
std::string HumanBytes(int64_t bytes);
// nano-CPUs as a decimal: 1500000000 -> "1.5".
std::string HumanCpus(int64_t nano_cpus);

// Names as docker shows them (lower case): "running", "failed", ...
std::string TaskStateName(api::TaskState state);
// "Ready", "Down", "Unknown", "Disconnected".
std::string NodeStateName(api::NodeStatus::State state);
// "Active", "Pause", "Drain".
std::string AvailabilityName(api::NodeSpec::Availability a);
// "Leader", "Reachable", "Unreachable", "Unknown"; "" for a worker.
std::string ManagerStatusName(const api::Node& node);
// "replicated", "global", "replicated-job", "global-job".
std::string ServiceModeName(const api::ServiceSpec& spec);
// "*:8080->80/tcp" (ingress) or "8080->80/tcp (host)"; ", " between ports.
std::string PortsText(const google::protobuf::RepeatedPtrField<api::PortConfig>& ports);

// `node ls`. `self` is the id of the node swarmctl talks to (marked "*"), or empty.
std::string NodeTable(const std::vector<api::Node>& nodes, const std::string& self);

// Task counts of a service (Control's ListServiceStatuses).
struct ReplicaCounts {
  uint64_t running = 0;
  uint64_t desired = 0;
  uint64_t completed = 0;
};

// `service ls`; counts by service id.
std::string ServiceTable(const std::vector<api::Service>& services,
                         const std::map<std::string, ReplicaCounts>& counts, bool no_trunc);

// `service ps` / `task ls`. Tasks are grouped by slot (or node) with the newest first, older
// ones shown as "\_ name.1". `hostnames` maps node ids; `service_names` maps service ids.
std::string TaskTable(std::vector<api::Task> tasks,
                      const std::map<std::string, std::string>& hostnames,
                      const std::map<std::string, std::string>& service_names, absl::Time now,
                      bool no_trunc);
// The task name: "<service>.<slot>" or "<service>.<node id>".
std::string TaskName(const api::Task& task,
                     const std::map<std::string, std::string>& service_names);

// `secret ls` / `config ls`.
std::string SecretTable(const std::vector<api::Secret>& secrets, absl::Time now);
std::string ConfigTable(const std::vector<api::Config>& configs, absl::Time now);

}  // namespace shoal::cli

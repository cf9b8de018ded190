// The flags of `service create` and `service update`, and how they change a ServiceSpec. Each
// field holds what the user typed (empty = not given) so that update changes only what was
// asked for; ApplyServiceFlags parses and applies them (parse.h gives the errors, naming the
// flag and the value).
//
// Create: lists add (--env, --constraint, --label, ...). Update: the same flags (also spelt
// --env-add, --constraint-add, ...) add or replace, and the *_rm lists remove: env by key,
// labels by key, constraints exactly, ports by target port ("80" or "80/udp"), secrets,
// configs and networks by name.
//
// Pure. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/specs.pb.h"

namespace shoal::cli {

struct UpdateConfigFlags {
  std::string parallelism, delay, failure_action, order, monitor, max_failure_ratio;
};

struct ServiceFlags {
  // Create only.
  std::string mode;
  // Create: the positional IMAGE; update: --image.
  std::string image;
  // Create: the words after IMAGE; update: --args (split on whitespace). `args_given` tells an
  // empty list from no flag.
  std::vector<std::string> args;
  bool args_given = false;

  std::string name, replicas, max_concurrent, replicas_max_per_node;
  std::string workdir, user, entrypoint, hostname, stop_signal, stop_grace_period;
  std::string limit_cpu, limit_memory, reserve_cpu, reserve_memory;
  std::string restart_condition, restart_delay, restart_max_attempts, restart_window;
  std::string endpoint_mode;
  UpdateConfigFlags update, rollback;

  std::vector<std::string> env, env_rm;
  std::vector<std::string> label, label_rm;
  std::vector<std::string> container_label, container_label_rm;
  std::vector<std::string> constraint, constraint_rm;
  std::vector<std::string> placement_pref, placement_pref_rm;
  std::vector<std::string> publish, publish_rm;
  std::vector<std::string> secret, secret_rm;
  std::vector<std::string> config, config_rm;
  std::vector<std::string> network, network_rm;

  // Update only: replace every task even if nothing else changed.
  bool force = false;
};

// Applies `flags` to `spec` (a new, empty spec for create; the current one for update).
// INVALID_ARGUMENT naming the flag and the value for anything that does not parse.
absl::Status ApplyServiceFlags(const ServiceFlags& flags, bool create, api::ServiceSpec* spec);

}  // namespace shoal::cli

// Validation of what operators send the Control API. Every error is INVALID_ARGUMENT and
// names the field as the spec spells it ("task.restart.delay: must not be negative"), so
// `swarmctl` and CI logs say exactly what to fix. Nothing is written for an invalid spec.
//
// Pure: no store, no clock.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/specs.pb.h"

namespace shoal::manager::controlapi {

// Largest secret or config, as Docker Swarm's (500 KiB).
inline constexpr size_t kMaxSecretBytes = 500 * 1024;

// 1-63 characters, [a-zA-Z0-9][a-zA-Z0-9_.-]*.
absl::Status ValidateName(absl::string_view field, absl::string_view name);

// The whole service spec: name, image, mode, resources, restart policy, placement
// (constraints, preferences, platforms, max replicas), update and rollback configs, endpoint
// (ports), healthcheck, secret and config references (targets unique), networks.
absl::Status ValidateServiceSpec(const api::ServiceSpec& spec);

absl::Status ValidateSecretSpec(const api::SecretSpec& spec);
absl::Status ValidateConfigSpec(const api::ConfigSpec& spec);
absl::Status ValidateNetworkSpec(const api::NetworkSpec& spec);

}  // namespace shoal::manager::controlapi

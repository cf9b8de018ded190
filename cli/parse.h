// Parsing of swarmctl's flag values into API types: durations ("10s", "1m30s"), sizes ("512M"),
// CPUs ("0.5"), published ports ("8080:80/udp" or "published=8080,target=80,mode=host"),
// environment entries, labels, placement preferences, secret/config/network references and
// the enum-valued flags. Every error is INVALID_ARGUMENT and names the flag and the value the
// user typed, e.g. `invalid --limit-memory "12x": ...`, so one line on stderr says what to fix.
//
// Pure: no I/O, no clock (except ParseEnv's lookup of the environment for a bare "KEY").
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "proto/specs.pb.h"
#include "proto/types.pb.h"

namespace shoal::cli {

// A Go-style duration: "10s", "1m30s", "1.5h", "300ms", "0". Negative and infinite values are
// refused.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view flag, absl::string_view value);
// `service logs --since`, as docker's: an RFC 3339 time ("2013-01-02T13:23:37Z", with
// fractions or an offset), a local date and time without a zone ("2013-01-02T13:23:37",
// "2013-01-02"), a Unix timestamp ("1700000000", "1700000000.5"), or a duration before `now`
// ("42m", "1h30m").
absl::StatusOr<absl::Time> ParseSince(absl::string_view value, absl::Time now,
                                      absl::TimeZone local = absl::LocalTimeZone());
// `service logs --tail`: "all" (-1) or a number of lines.
absl::StatusOr<int64_t> ParseTail(absl::string_view value);
google::protobuf::Duration DurationToProto(absl::Duration d);
absl::Duration DurationFromProto(const google::protobuf::Duration& d);

// Bytes with an optional binary unit: "1024", "512k", "512M", "1.5g", "2GB", "1t" (case
// insensitive, a trailing "b"/"B" allowed). At least 0.
absl::StatusOr<int64_t> ParseBytes(absl::string_view flag, absl::string_view value);

// CPUs as a decimal number of cores with at most 9 decimals, in nano-CPUs: "0.5" ->
// 500000000. Must be positive.
absl::StatusOr<int64_t> ParseNanoCpus(absl::string_view flag, absl::string_view value);

// A non-negative integer ("5"); "abc", "-1" and "1.5" are refused.
absl::StatusOr<uint64_t> ParseUint(absl::string_view flag, absl::string_view value);

// --publish: "TARGET", "PUBLISHED:TARGET", either with "/tcp|/udp|/sctp", or the long form
// "published=8080,target=80,protocol=udp,mode=host|ingress".
absl::StatusOr<api::PortConfig> ParsePublish(absl::string_view value);

// --env: "KEY=VALUE" as is; a bare "KEY" becomes "KEY=<value>" when swarmctl's environment has
// KEY, and stays "KEY" otherwise (as docker does). The key must be non-empty and hold no
// whitespace.
absl::StatusOr<std::string> ParseEnv(absl::string_view value);

// The key of an env entry ("A=1" -> "A").
std::string EnvKey(absl::string_view entry);

// "k=v" or "k" (empty value) for labels; the key must be non-empty.
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view flag,
                                                                  absl::string_view value);

// --placement-pref: "spread=node.labels.zone".
absl::StatusOr<api::PlacementPreference> ParsePlacementPref(absl::string_view value);

// --secret / --config: "NAME" or "source=NAME,target=T,uid=U,gid=G,mode=0440".
absl::StatusOr<api::SecretReference> ParseSecretRef(absl::string_view value);
absl::StatusOr<api::ConfigReference> ParseConfigRef(absl::string_view value);

// --network: "NAME" or "name=NAME,alias=A[,alias=B]".
absl::StatusOr<api::NetworkAttachmentConfig> ParseNetwork(absl::string_view value);

// Enum-valued flags, by the names operators type (case insensitive).
absl::StatusOr<api::RestartPolicy::Condition> ParseRestartCondition(absl::string_view value);
absl::StatusOr<api::UpdateConfig::FailureAction> ParseFailureAction(absl::string_view flag,
                                                                    absl::string_view value);
absl::StatusOr<api::UpdateConfig::Order> ParseUpdateOrder(absl::string_view flag,
                                                          absl::string_view value);
absl::StatusOr<api::NodeSpec::Availability> ParseAvailability(absl::string_view value);
absl::StatusOr<api::NodeRole> ParseRole(absl::string_view value);

// --mode: "replicated", "global", "replicated-job", "global-job".
enum class ServiceMode { kReplicated, kGlobal, kReplicatedJob, kGlobalJob };
absl::StatusOr<ServiceMode> ParseServiceMode(absl::string_view value);

// A float in [0, 1] (--update-max-failure-ratio).
absl::StatusOr<float> ParseRatio(absl::string_view flag, absl::string_view value);

}  // namespace shoal::cli

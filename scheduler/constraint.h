// Placement constraints, as `docker service create --constraint` takes them: `<key>==<value>`
// or `<key>!=<value>`, on
//
//   node.id, node.hostname, node.role (manager | worker), node.ip (an address or a CIDR
//   network, matched against the node's address), node.platform.os, node.platform.arch,
//   node.labels.<label> (the operator's, `node update --label-add`),
//   engine.labels.<label> (the node's own, from its daemon).
//
// As in Docker Swarm, keys are case-insensitive except for the label's name, and values are
// compared case-insensitively. A label the node lacks satisfies `!=` and fails `==`.
//
// Pure: no I/O, no clock; safe to call from any thread.
//
//   ASSIGN_OR_RETURN(std::vector<Constraint> cs, ParseConstraints(spec.placement().constraints()));
//   if (!MatchesAll(cs, node)) ...
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/objects.pb.h"

namespace shoal::scheduler {

struct Constraint {
  enum class Op { kEq, kNe };
  enum class Key {
    kNodeId,
    kHostname,
    kRole,
    kIp,
    kOs,
    kArch,
    kNodeLabel,
    kEngineLabel,
  };
  Key key = Key::kNodeId;
  // For kNodeLabel and kEngineLabel: the label's name, as written.
  std::string label;
  Op op = Op::kEq;
  std::string value;
  // As the operator wrote it (for pending reasons and errors).
  std::string text;
  // For kIp: the network, parsed once (16 bytes, IPv4 mapped into IPv6; leading bits that
  // must match).
  std::array<uint8_t, 16> ip_network{};
  int ip_bits = 0;
};

// Parses one constraint. INVALID_ARGUMENT naming the constraint and what is wrong with it:
// no `==` or `!=`, an unknown key, an empty label name or value, a node.role other than
// manager or worker, a node.ip that is neither an address nor a CIDR network.
absl::StatusOr<Constraint> ParseConstraint(absl::string_view text);

// Parses every constraint; the first error names its position ("constraint 2 ...").
absl::StatusOr<std::vector<Constraint>> ParseConstraints(
    const google::protobuf::RepeatedPtrField<std::string>& texts);

// Parses a bare attribute, as a spread preference names it ("node.labels.zone"): any key a
// constraint takes. The result has no operator or value; use it with NodeValue.
absl::StatusOr<Constraint> ParseAttribute(absl::string_view key);

// The node's value for `c`'s key (its address for node.ip, "manager" or "worker" for
// node.role), or nullopt for a label the node lacks. The view points into `node`.
std::optional<absl::string_view> NodeValue(const Constraint& c, const api::Node& node);

// Whether `node` satisfies `c`.
bool Matches(const Constraint& c, const api::Node& node);

// Whether `node` satisfies every one of `cs` (true for none).
bool MatchesAll(const std::vector<Constraint>& cs, const api::Node& node);

}  // namespace shoal::scheduler

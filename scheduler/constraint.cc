#include "scheduler/constraint.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace shoal::scheduler {
namespace {

// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into IPv6), or nullopt.
std::optional<std::array<uint8_t, 16>> ParseIp(absl::string_view text) {
  const std::string s(text);
  std::array<uint8_t, 16> out{};
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(&out[12], &v4, 4);
    return out;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

// An address or a CIDR network: the address and how many leading bits must match (of the
// 128 of the mapped form).
struct Network {
  std::array<uint8_t, 16> addr;
  int bits = 128;
};

std::optional<Network> ParseNetwork(absl::string_view text) {
  const size_t slash = text.find('/');
  std::optional<std::array<uint8_t, 16>> addr = ParseIp(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const bool v4 = text.substr(0, slash).find(':') == absl::string_view::npos;
  Network n{*addr, 128};
  if (slash == absl::string_view::npos) return n;
  int prefix = 0;
  if (!absl::SimpleAtoi(text.substr(slash + 1), &prefix) || prefix < 0 ||
      prefix > (v4 ? 32 : 128)) {
    return std::nullopt;
  }
  n.bits = v4 ? 96 + prefix : prefix;
  return n;
}

bool InNetwork(const Network& n, const std::array<uint8_t, 16>& addr) {
  for (int bit = 0; bit < n.bits; ++bit) {
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((n.addr[bit / 8] & mask) != (addr[bit / 8] & mask)) return false;
  }
  return true;
}

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid constraint \"", text, "\": ", why));
}

}  // namespace

std::optional<absl::string_view> NodeValue(const Constraint& c, const api::Node& node) {
  switch (c.key) {
    case Constraint::Key::kNodeId:
      return node.meta().id();
    case Constraint::Key::kHostname:
      return node.description().hostname();
    case Constraint::Key::kRole:
      return absl::string_view(node.role() == api::NODE_ROLE_MANAGER ? "manager" : "worker");
    case Constraint::Key::kIp:
      return node.status().addr();
    case Constraint::Key::kOs:
      return node.description().platform().os();
    case Constraint::Key::kArch:
      return node.description().platform().architecture();
    case Constraint::Key::kNodeLabel: {
      const auto& labels = node.spec().annotations().labels();
      auto it = labels.find(c.label);
      if (it == labels.end()) return std::nullopt;
      return it->second;
    }
    case Constraint::Key::kEngineLabel: {
      const auto& labels = node.description().engine_labels();
      auto it = labels.find(c.label);
      if (it == labels.end()) return std::nullopt;
      return it->second;
    }
  }
  return std::nullopt;
}

namespace {

// Sets c.key (and c.label) from `key`; the error says what is wrong with the key alone.
absl::Status ParseKey(absl::string_view key, Constraint& c) {
  const std::string lower = absl::AsciiStrToLower(key);
  struct Fixed {
    const char* name;
    Constraint::Key key;
  };
  static constexpr Fixed kFixed[] = {
      {"node.id", Constraint::Key::kNodeId},    {"node.hostname", Constraint::Key::kHostname},
      {"node.role", Constraint::Key::kRole},    {"node.ip", Constraint::Key::kIp},
      {"node.platform.os", Constraint::Key::kOs}, {"node.platform.arch", Constraint::Key::kArch},
  };
  for (const Fixed& f : kFixed) {
    if (lower == f.name) {
      c.key = f.key;
      return absl::OkStatus();
    }
  }
  for (const auto& [prefix, kind] :
       {std::pair<absl::string_view, Constraint::Key>{"node.labels.", Constraint::Key::kNodeLabel},
        {"engine.labels.", Constraint::Key::kEngineLabel}}) {
    if (absl::StartsWith(lower, prefix)) {
      c.key = kind;
      c.label = std::string(key.substr(prefix.size()));
      if (c.label.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("no label name after ", prefix));
      }
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown key \"", key,
      "\" (node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch, "
      "node.labels.<label>, engine.labels.<label>)"));
}

}  // namespace

absl::StatusOr<Constraint> ParseConstraint(absl::string_view text) {
  Constraint c;
  c.text = std::string(text);
  size_t at = text.find("==");
  size_t op_len = 2;
  c.op = Constraint::Op::kEq;
  const size_t ne = text.find("!=");
  if (ne != absl::string_view::npos && (at == absl::string_view::npos || ne < at)) {
    at = ne;
    c.op = Constraint::Op::kNe;
  }
  if (at == absl::string_view::npos) {
    return Invalid(text, "expected <key>==<value> or <key>!=<value>");
  }
  const absl::string_view key = absl::StripAsciiWhitespace(text.substr(0, at));
  const absl::string_view value = absl::StripAsciiWhitespace(text.substr(at + op_len));
  if (value.empty()) return Invalid(text, "the value is empty");
  if (absl::StrContains(value, "==") || absl::StrContains(value, "!=")) {
    return Invalid(text, "more than one operator");
  }
  c.value = std::string(value);
  absl::Status key_ok = ParseKey(key, c);
  if (!key_ok.ok()) return Invalid(text, key_ok.message());
  if (c.key == Constraint::Key::kRole) {
    const std::string role = absl::AsciiStrToLower(c.value);
    if (role != "manager" && role != "worker") {
      return Invalid(text, "node.role is manager or worker");
    }
  }
  if (c.key == Constraint::Key::kIp) {
    const std::optional<Network> network = ParseNetwork(c.value);
    if (!network) {
      return Invalid(text, "node.ip takes an IP address or a CIDR network (10.0.0.0/24)");
    }
    c.ip_network = network->addr;
    c.ip_bits = network->bits;
  }
  return c;
}

absl::StatusOr<Constraint> ParseAttribute(absl::string_view key) {
  Constraint c;
  c.text = std::string(key);
  absl::Status ok = ParseKey(absl::StripAsciiWhitespace(key), c);
  if (!ok.ok()) return ok;
  return c;
}

absl::StatusOr<std::vector<Constraint>> ParseConstraints(
    const google::protobuf::RepeatedPtrField<std::string>& texts) {
  std::vector<Constraint> out;
  for (int i = 0; i < texts.size(); ++i) {
    absl::StatusOr<Constraint> c = ParseConstraint(texts[i]);
    if (!c.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement.constraints[", i, "]: ", c.status().message()));
    }
    out.push_back(*std::move(c));
  }
  return out;
}

bool Matches(const Constraint& c, const api::Node& node) {
  const std::optional<absl::string_view> have = NodeValue(c, node);
  bool equal = false;
  if (have) {
    if (c.key == Constraint::Key::kIp) {
      const std::optional<std::array<uint8_t, 16>> addr = ParseIp(*have);
      equal = addr && InNetwork(Network{c.ip_network, c.ip_bits}, *addr);
    } else {
      equal = absl::EqualsIgnoreCase(*have, c.value);
    }
  }
  return c.op == Constraint::Op::kEq ? equal : !equal;
}

bool MatchesAll(const std::vector<Constraint>& cs, const api::Node& node) {
  for (const Constraint& c : cs) {
    if (!Matches(c, node)) return false;
  }
  return true;
}

}  // namespace shoal::scheduler

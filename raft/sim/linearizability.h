// A linearizability checker for histories of a key-value register (put/get), in the style of
// Porcupine (Wing & Gong's search with Lowe's memoization): each key is checked on its own, and
// the search over orders of concurrent operations is pruned by caching (linearized set, state)
// pairs already explored.
//
// Operations whose outcome the client never learnt (timed out) have `ret` = kUnknownReturn: a
// put may then take effect at any point after its call, or never; a get without an answer says
// nothing and is ignored.
//
// Pure; thread-compatible.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace shoal::raft::sim {

inline constexpr int64_t kUnknownReturn = std::numeric_limits<int64_t>::max();

struct KvOp {
  enum class Kind { kPut, kGet };
  int client = 0;
  Kind kind = Kind::kPut;
  std::string key;
  // Put: the value written. Get: the value read (when found).
  std::string value;
  // Get: whether the key had a value.
  bool found = false;
  // Logical times of the call and of the response (kUnknownReturn if none came).
  int64_t call = 0;
  int64_t ret = kUnknownReturn;
};

struct LinearizabilityResult {
  bool ok = true;
  // When not ok: the key whose history cannot be linearized, and why.
  std::string key;
  std::string explanation;
  // Search states explored (for reporting).
  uint64_t states = 0;
};

// Checks the whole history. Gives up (ok = false, explanation says so) after `max_states`
// search states for one key rather than running unboundedly.
LinearizabilityResult CheckKvHistory(const std::vector<KvOp>& history,
                                     uint64_t max_states = 10'000'000);

}  // namespace shoal::raft::sim

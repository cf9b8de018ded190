#include "raft/sim/linearizability.h"

#include <algorithm>
#include <map>
#include <optional>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace shoal::raft::sim {
namespace {

// The register's state: no value, or a value.
using State = std::optional<std::string>;

bool Step(const KvOp& op, const State& in, State* out) {
  if (op.kind == KvOp::Kind::kPut) {
    *out = op.value;
    return true;
  }
  *out = in;
  if (op.found != in.has_value()) return false;
  return !op.found || op.value == *in;
}

struct Bitset {
  std::vector<uint64_t> words;
  explicit Bitset(size_t n) : words((n + 63) / 64, 0) {}
  void Set(size_t i) { words[i / 64] |= uint64_t{1} << (i % 64); }
  void Clear(size_t i) { words[i / 64] &= ~(uint64_t{1} << (i % 64)); }
  bool operator==(const Bitset& o) const { return words == o.words; }
};

struct CacheEntry {
  Bitset linearized;
  State state;
  bool operator==(const CacheEntry& o) const {
    return linearized == o.linearized && state == o.state;
  }
};

struct CacheHash {
  size_t operator()(const CacheEntry& e) const {
    size_t h = std::hash<bool>()(e.state.has_value());
    if (e.state) h ^= std::hash<std::string>()(*e.state) * 31;
    for (uint64_t w : e.linearized.words) h = h * 1000003 ^ std::hash<uint64_t>()(w);
    return h;
  }
};

// One call or return event in a doubly linked list, in time order.
struct Event {
  bool is_call;
  size_t op;
  int64_t time;
  int prev = -1, next = -1;
  int match = -1;  // call: index of its return event
};

LinearizabilityResult CheckKey(const std::string& key, const std::vector<KvOp>& ops,
                               uint64_t max_states) {
  LinearizabilityResult result;
  std::vector<Event> events;
  for (size_t i = 0; i < ops.size(); ++i) {
    events.push_back(Event{true, i, ops[i].call});
    events.push_back(Event{false, i, ops[i].ret});
  }
  // Calls before returns at equal times: operations touching at one instant are concurrent.
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.is_call && !b.is_call;
  });
  std::vector<int> return_of(ops.size(), -1);
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].prev = static_cast<int>(i) - 1;
    events[i].next = i + 1 < events.size() ? static_cast<int>(i) + 1 : -1;
    if (!events[i].is_call) return_of[events[i].op] = static_cast<int>(i);
  }
  for (Event& e : events) {
    if (e.is_call) e.match = return_of[e.op];
  }
  int head = events.empty() ? -1 : 0;

  auto unlink = [&](int i) {
    Event& e = events[i];
    if (e.prev >= 0) {
      events[e.prev].next = e.next;
    } else {
      head = e.next;
    }
    if (e.next >= 0) events[e.next].prev = e.prev;
  };
  auto relink = [&](int i) {
    Event& e = events[i];
    if (e.prev >= 0) {
      events[e.prev].next = i;
    } else {
      head = i;
    }
    if (e.next >= 0) events[e.next].prev = i;
  };
  // Lifting a call removes it and its return; unlifting restores both (in reverse order).
  auto lift = [&](int call) {
    unlink(call);
    unlink(events[call].match);
  };
  auto unlift = [&](int call) {
    relink(events[call].match);
    relink(call);
  };

  struct Frame {
    int call;
    State state_before;
  };
  std::vector<Frame> stack;
  std::unordered_set<CacheEntry, CacheHash> cache;
  Bitset linearized(ops.size());
  State state;
  int entry = head;
  // For the report: the deepest partial linearization, and the operation that blocked it.
  size_t best_depth = 0;
  int blocked_op = -1;
  while (head != -1) {
    if (++result.states > max_states) {
      result.ok = false;
      result.key = key;
      result.explanation = absl::StrCat("gave up after ", max_states, " search states");
      return result;
    }
    if (entry == -1) {
      // Cannot happen while head != -1 (every call's return, if only at infinity, is in the
      // list): never let a search that ran off the end pass as linearizable.
      result.ok = false;
      result.key = key;
      result.explanation = "the search ran off the end of the history (a checker bug)";
      return result;
    }
    const Event& e = events[entry];
    if (e.is_call) {
      State next;
      bool linearizable_here = Step(ops[e.op], state, &next);
      if (linearizable_here) {
        Bitset candidate = linearized;
        candidate.Set(e.op);
        if (cache.insert(CacheEntry{candidate, next}).second) {
          stack.push_back(Frame{entry, state});
          state = next;
          linearized = candidate;
          lift(entry);
          entry = head;
          continue;
        }
      }
      entry = e.next;
    } else {
      // A return whose call is not linearized yet: backtrack.
      if (blocked_op < 0 || stack.size() > best_depth) {
        best_depth = stack.size();
        blocked_op = static_cast<int>(e.op);
      }
      if (stack.empty()) {
        result.ok = false;
        result.key = key;
        const KvOp& op = ops[blocked_op];
        result.explanation = absl::StrCat(
            "no order of the ", ops.size(), " operations on key \"", key, "\" is valid: after ",
            best_depth, " of them, client ", op.client, "'s ",
            op.kind == KvOp::Kind::kPut ? "put of \"" + op.value + "\""
                                        : (op.found ? "get of \"" + op.value + "\""
                                                    : std::string("get of nothing")),
            " (called at ", op.call, ", returned at ", op.ret, ") cannot be explained");
        return result;
      }
      Frame f = stack.back();
      stack.pop_back();
      state = f.state_before;
      linearized.Clear(events[f.call].op);
      unlift(f.call);
      entry = events[f.call].next;
    }
  }
  return result;
}

}  // namespace

LinearizabilityResult CheckKvHistory(const std::vector<KvOp>& history, uint64_t max_states) {
  std::map<std::string, std::vector<KvOp>> by_key;
  for (const KvOp& op : history) {
    if (op.kind == KvOp::Kind::kGet && op.ret == kUnknownReturn) continue;
    by_key[op.key].push_back(op);
  }
  LinearizabilityResult total;
  for (const auto& [key, ops] : by_key) {
    LinearizabilityResult r = CheckKey(key, ops, max_states);
    total.states += r.states;
    if (!r.ok) {
      r.states = total.states;
      return r;
    }
  }
  return total;
}

}  // namespace shoal::raft::sim

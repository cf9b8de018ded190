// An in-memory network of Raft cores for unit tests: each member has a MemoryLogStore, and a
// Ready is handled the way the real node loop does (persist, send, apply, advance). Delivery is
// synchronous and in order; tests cut links, isolate members or drop message types.
//
// Not thread-safe; test-only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "raft/core.h"
#include "raft/memory_log_store.h"

namespace shoal::raft::testing {

struct TestNode {
  uint64_t id = 0;
  std::unique_ptr<MemoryLogStore> storage;
  std::unique_ptr<Core> core;
  // Data of the normal, non-empty entries applied, in order.
  std::vector<std::string> applied;
  std::vector<ReadState> read_states;
  raftpb::ConfState conf_state;
};

// Default test configuration: election 10 ticks, heartbeat 1, pre-vote and check-quorum off
// unless a test turns them on (the paper's rules first).
Config TestConfig(uint64_t id, LogStorage* storage);

// Persists, applies and advances one Ready; returns its messages.
std::vector<raftpb::Message> HandleReady(TestNode& node);

// A MemoryLogStore holding `terms.size()` entries, entry i+1 with term terms[i], and voters.
// The hard state's term is `term`, or the last entry's term if 0.
std::unique_ptr<MemoryLogStore> StoreWithTerms(const std::vector<uint64_t>& terms,
                                               const std::vector<uint64_t>& voters,
                                               uint64_t term = 0);

class Network {
 public:
  using Tweak = std::function<void(Config&)>;

  // Members 1..n, all voters, empty logs.
  explicit Network(int n, Tweak tweak = nullptr);
  // Members with the given stores (voters as the stores say).
  explicit Network(std::vector<std::pair<uint64_t, std::unique_ptr<MemoryLogStore>>> stores,
                   Tweak tweak = nullptr);

  TestNode& node(uint64_t id) { return nodes_.at(id); }
  Core& core(uint64_t id) { return *nodes_.at(id).core; }
  std::vector<uint64_t> ids() const;

  // Adds a member (e.g. one being added by a conf change) with an empty log that knows the
  // membership `initial` (as a joining manager learns it from the leader).
  void AddNode(uint64_t id, const raftpb::ConfState& initial, Tweak tweak = nullptr);
  // Replaces a member's core by a fresh one over its storage (a crash and restart; anything
  // not persisted is lost, which with HandleReady is nothing).
  void Restart(uint64_t id, Tweak tweak = nullptr);

  // Steps `m` on its receiver, then handles every Ready and delivers every message until the
  // network is quiet.
  void Send(const raftpb::Message& m);
  void Stabilize();
  void Campaign(uint64_t id);
  absl::Status Propose(uint64_t id, std::string data);
  void Tick(uint64_t id, int n = 1);
  // Ticks every member once, then stabilizes; n times.
  void TickAll(int n = 1);

  // Handles the member's Ready without delivering: returns what it would send.
  std::vector<raftpb::Message> TakeMessages(uint64_t id);

  // Faults.
  void Cut(uint64_t a, uint64_t b);
  void Isolate(uint64_t id);
  void DropType(raftpb::MessageType type) { dropped_types_.insert(type); }
  void Recover();

  // Every message delivered so far (after drops), for assertions.
  const std::vector<raftpb::Message>& delivered() const { return delivered_; }

 private:
  bool Dropped(const raftpb::Message& m) const;
  void MakeCore(uint64_t id, Tweak tweak);

  std::map<uint64_t, TestNode> nodes_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  std::set<int> dropped_types_;
  std::deque<raftpb::Message> queue_;
  std::vector<raftpb::Message> delivered_;
  Tweak tweak_;
};

}  // namespace shoal::raft::testing

// The role manager (leader-only): carries out `node promote` and `node demote`, which the
// Control API records as a node's desired role.
//
//   - Promotion: the node's role becomes manager; it gets a manager certificate when it renews
//     its own, and its daemon then joins the Raft group (JoinService) as a learner, which this
//     makes a voter once it has caught up.
//   - Demotion: the node's Raft member is removed first (never the last voter, nor when the
//     voters reachable without it would not make a quorum), then its role becomes worker. A
//     leader asked to demote itself hands its leadership to the most up-to-date reachable
//     voter, whose role manager finishes the work.
//
// Level-triggered like the other loops: a new leader finishes what the old one started.
//
// Thread-safety: Start and Stop from the owner; Step only while not started.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/store/store.h"
#include "manager/watch_loop.h"
#include "raft/node.h"

namespace shoal::manager {

// The Raft membership as the role manager uses it; NodeMembership is raft::Node's.
class Membership {
 public:
  virtual ~Membership() = default;
  virtual uint64_t self() const = 0;
  // Every member's progress (this member must lead).
  virtual absl::StatusOr<std::vector<raft::Node::MemberProgress>> Members() = 0;
  // Removes a member; returns once the change is applied here.
  virtual absl::Status Remove(uint64_t raft_id) = 0;
  // Adds a learner (`context`: its serialized raftpb::RaftMember), or makes a caught-up
  // learner a voter (FAILED_PRECONDITION while it has not caught up).
  virtual absl::Status AddLearner(uint64_t raft_id, const std::string& context) = 0;
  virtual absl::Status Promote(uint64_t raft_id, const std::string& context) = 0;
  virtual void TransferLeadership(uint64_t to) = 0;
};

// Over the raft::Node `node()` returns when called (the node may be created after the
// components that use it); UNAVAILABLE while it returns null.
class NodeMembership : public Membership {
 public:
  explicit NodeMembership(std::function<raft::Node*()> node) : node_(std::move(node)) {}
  uint64_t self() const override;
  absl::StatusOr<std::vector<raft::Node::MemberProgress>> Members() override;
  absl::Status Remove(uint64_t raft_id) override;
  absl::Status AddLearner(uint64_t raft_id, const std::string& context) override;
  absl::Status Promote(uint64_t raft_id, const std::string& context) override;
  void TransferLeadership(uint64_t to) override;

 private:
  absl::Status Change(raftpb::ConfChange::Type type, uint64_t raft_id, const std::string& context);
  const std::function<raft::Node*()> node_;
  // Raft takes one membership change at a time and drops a second proposed before the first
  // is applied; the join service and the role manager both change it, so they take turns.
  absl::Mutex change_mu_;
};

class RoleManager {
 public:
  struct Options {
    store::Store* store = nullptr;
    Membership* membership = nullptr;
    uint64_t leader_term = 0;
  };
  explicit RoleManager(Options options) : options_(options) {}
  ~RoleManager() { Stop(); }

  void Start();
  void Stop() { loop_.Stop(); }
  // Waits until `deadline` for node changes, then carries out pending role changes. Returns
  // how many it completed; why a demotion waits is in `waiting()`.
  size_t Step(absl::Time deadline);
  const std::string& waiting() const { return waiting_; }

 private:
  const Options options_;
  bool dirty_ = true;
  std::string waiting_;
  WatchLoop loop_;
};

}  // namespace shoal::manager

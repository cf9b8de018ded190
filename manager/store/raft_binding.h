// Binds a Store to a raft::Node: the store's write transactions become the node's entries
// (RaftProposer), and the node's committed entries, snapshots and restores reach the store
// (StoreStateMachine).
//
//   Store store(&proposer);
//   StoreStateMachine sm(&store);
//   options.state_machine = &sm;
//   auto node = raft::Node::Create(options);
//   proposer.Bind(node->get());
//
// A follower's Update is forwarded by Raft to the leader; an Update with a leader term (the
// leader-only components') is proposed only while this node leads that term. While no leader
// is known (no quorum of managers), an Update fails at once with UNAVAILABLE.
//
// Thread-safety: as Store and raft::Node.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "manager/store/store.h"
#include "raft/node.h"

namespace shoal::manager::store {

class RaftProposer : public Proposer {
 public:
  // The node to propose to; before Bind (or after Bind(nullptr)), proposals fail with
  // UNAVAILABLE.
  void Bind(raft::Node* node) { node_.store(node); }
  void Propose(std::string data, uint64_t leader_term,
               std::function<void(absl::Status)> done) override;

 private:
  std::atomic<raft::Node*> node_{nullptr};
};

class StoreStateMachine : public raft::StateMachine {
 public:
  // `on_leadership`: raft::StateMachine::LeadershipChanged, passed on (the manager starts and
  // stops its leader-only components there). Optional.
  explicit StoreStateMachine(Store* store,
                             std::function<void(bool leading, uint64_t term)> on_leadership = {})
      : store_(store), on_leadership_(std::move(on_leadership)) {}

  void Apply(uint64_t index, absl::string_view data) override { store_->Apply(index, data); }
  std::string Snapshot() override { return store_->SnapshotLater()(); }
  std::function<std::string()> SnapshotLater() override { return store_->SnapshotLater(); }
  absl::Status Restore(absl::string_view data) override { return store_->Restore(data); }
  void LeadershipChanged(bool leading, uint64_t term) override {
    if (on_leadership_) on_leadership_(leading, term);
  }

 private:
  Store* const store_;
  const std::function<void(bool, uint64_t)> on_leadership_;
};

}  // namespace shoal::manager::store

// A store that hands every call to another one. Tests derive from it and override only what
// they change: a read that fails, a write held back, a hook on snapshots.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "raft/storage.h"

namespace shoal::raft::testing {

class ForwardingStore : public WritableLogStorage {
 public:
  // `inner` must outlive this store (it may be a member of a derived class: only its address
  // is kept here).
  explicit ForwardingStore(WritableLogStorage* inner) : inner_(inner) {}

  absl::StatusOr<InitialState> GetInitialState() override { return inner_->GetInitialState(); }
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override {
    return inner_->Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<uint64_t> Term(uint64_t i) override { return inner_->Term(i); }
  uint64_t FirstIndex() override { return inner_->FirstIndex(); }
  uint64_t LastIndex() override { return inner_->LastIndex(); }
  absl::StatusOr<raftpb::Snapshot> Snapshot() override { return inner_->Snapshot(); }
  absl::StatusOr<raftpb::SnapshotMetadata> SnapshotMetadata() override {
    return inner_->SnapshotMetadata();
  }
  absl::Status Save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override {
    return inner_->Save(hard_state, entries, snapshot, sync);
  }
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                std::string data) override {
    return inner_->SaveSnapshot(i, cs, std::move(data));
  }
  absl::Status CompactTo(uint64_t compact_index) override {
    return inner_->CompactTo(compact_index);
  }

 private:
  WritableLogStorage* inner_;
};

}  // namespace shoal::raft::testing

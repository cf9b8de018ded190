#include "raft/storage.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal::raft {
namespace {
constexpr char kCompacted[] = "requested index is compacted";
constexpr char kUnavailable[] = "requested index is beyond the last entry";
constexpr char kSnapshotLater[] = "snapshot is temporarily unavailable";
}  // namespace

absl::Status CompactedError() { return absl::OutOfRangeError(kCompacted); }
bool IsCompacted(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange && absl::StrContains(s.message(), kCompacted);
}

absl::Status UnavailableIndexError() { return absl::OutOfRangeError(kUnavailable); }
bool IsUnavailableIndex(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange && absl::StrContains(s.message(), kUnavailable);
}

absl::Status SnapshotTemporarilyUnavailableError() { return absl::UnavailableError(kSnapshotLater); }
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable &&
         absl::StrContains(s.message(), kSnapshotLater);
}

absl::Status Bootstrap(WritableLogStorage& storage,
                       const std::vector<raftpb::RaftMember>& members) {
  if (members.empty()) {
    return absl::InvalidArgumentError("raft bootstrap: a new cluster needs at least one member");
  }
  std::set<uint64_t> seen;
  for (const raftpb::RaftMember& m : members) {
    if (m.raft_id() == 0) {
      return absl::InvalidArgumentError("raft bootstrap: member ids must not be 0");
    }
    if (!seen.insert(m.raft_id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("raft bootstrap: member ", m.raft_id(), " is listed twice"));
    }
  }
  absl::StatusOr<InitialState> init = storage.GetInitialState();
  if (!init.ok()) return init.status();
  absl::StatusOr<raftpb::Snapshot> snap = storage.Snapshot();
  if (!snap.ok()) return snap.status();
  const raftpb::HardState& hs = init->hard_state;
  if (storage.LastIndex() != 0 || snap->metadata().index() != 0 || hs.term() != 0 ||
      hs.vote() != 0 || hs.commit() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "raft bootstrap: the store is not empty (last index ", storage.LastIndex(), ", term ",
        hs.term(), "): it belongs to a cluster already; nothing was written"));
  }
  std::vector<raftpb::Entry> entries;
  for (const raftpb::RaftMember& m : members) {
    raftpb::ConfChange cc;
    cc.set_type(raftpb::ConfChange::TYPE_ADD_NODE);
    cc.set_node_id(m.raft_id());
    if (!m.addr().empty() || !m.node_id().empty()) cc.set_context(m.SerializeAsString());
    raftpb::Entry& e = entries.emplace_back();
    e.set_term(1);
    e.set_index(entries.size());
    e.set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
    e.set_data(cc.SerializeAsString());
  }
  // Committed: every member of the new cluster writes the same entries, so any quorum holds
  // them (etcd bootstraps the same way).
  raftpb::HardState boot;
  boot.set_term(1);
  boot.set_commit(entries.size());
  return storage.Save(&boot, entries, nullptr, /*sync=*/true);
}

absl::Status Bootstrap(WritableLogStorage& storage, const std::vector<uint64_t>& ids) {
  std::vector<raftpb::RaftMember> members;
  for (uint64_t id : ids) members.emplace_back().set_raft_id(id);
  return Bootstrap(storage, members);
}

absl::Status FillSnapshot(LogStorage& storage, raftpb::Message& m) {
  if (m.type() != raftpb::MSG_SNAP || !m.snapshot_unfilled()) return absl::OkStatus();
  absl::StatusOr<raftpb::Snapshot> snap = storage.Snapshot();
  if (!snap.ok()) return snap.status();
  if (snap->metadata().index() < m.snapshot().metadata().index()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "raft: the stored snapshot at ", snap->metadata().index(),
        " is older than the one a message names, at ", m.snapshot().metadata().index()));
  }
  *m.mutable_snapshot() = std::move(*snap);
  m.set_snapshot_unfilled(false);
  return absl::OkStatus();
}

}  // namespace shoal::raft

#include "raft/recovery.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::raft {

absl::StatusOr<ForcedNewCluster> ForceNewCluster(WritableLogStorage& storage, uint64_t self) {
  absl::StatusOr<InitialState> init = storage.GetInitialState();
  if (!init.ok()) return init.status();
  // Everyone this member ever heard of since its snapshot: the stored membership, and the
  // members named by changes still in the log (committed or not, applied or not), so that a
  // replay of the whole log cannot leave one in.
  std::set<uint64_t> members(init->conf_state.voters().begin(), init->conf_state.voters().end());
  members.insert(init->conf_state.learners().begin(), init->conf_state.learners().end());
  const auto& removed = init->conf_state.removed();
  // Where this member's own removal is (0: its snapshot's membership records it).
  std::optional<uint64_t> self_removed_at;
  if (std::find(removed.begin(), removed.end(), self) != removed.end()) self_removed_at = 0;
  const uint64_t first = storage.FirstIndex();
  const uint64_t last = storage.LastIndex();
  for (uint64_t lo = first; lo <= last;) {
    absl::StatusOr<std::vector<raftpb::Entry>> ents = storage.Entries(lo, last + 1, 8 << 20);
    if (!ents.ok()) {
      return absl::Status(ents.status().code(),
                          absl::StrCat("reading the log at ", lo, ": ", ents.status().message()));
    }
    if (ents->empty()) {
      return absl::DataLossError(absl::StrCat("the log has no entry ", lo, " (it ends at ", last,
                                              "); the store is damaged"));
    }
    for (const raftpb::Entry& e : *ents) {
      if (e.type() != raftpb::ENTRY_TYPE_CONF_CHANGE) continue;
      raftpb::ConfChange cc;
      if (!cc.ParseFromString(e.data())) {
        return absl::DataLossError(
            absl::StrCat("the membership change at index ", e.index(), " is unparsable"));
      }
      members.insert(cc.node_id());
      if (cc.type() == raftpb::ConfChange::TYPE_REMOVE_NODE && cc.node_id() == self &&
          !self_removed_at) {
        self_removed_at = e.index();
      }
    }
    lo += ents->size();
  }
  if (self_removed_at) {
    // Ids are never reused: a node started on the rewritten store would replay its own
    // removal, ignore the promotion after it, and come up removed, leading nothing.
    return absl::FailedPreconditionError(absl::StrCat(
        "member ", self, " was removed from this store's cluster (",
        *self_removed_at == 0
            ? std::string("its snapshot's membership records it")
            : absl::StrCat("by the membership change at index ", *self_removed_at,
                           *self_removed_at <= init->hard_state.commit()
                               ? ", committed"
                               : ", which this member may not have seen committed"),
        "), and a removed id is never used again: this store cannot become the new cluster; "
        "force a new cluster from another member's store; nothing was changed"));
  }
  if (members.count(self) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("member ", self, " was never a member of this store's cluster (members: ",
                     members.empty() ? "none" : absl::StrJoin(members, ", "),
                     "): give the id of the member this store belongs to; nothing was changed"));
  }
  absl::StatusOr<uint64_t> last_term = storage.Term(last);
  if (!last_term.ok()) return last_term.status();
  const uint64_t term = std::max(init->hard_state.term(), *last_term);

  ForcedNewCluster result;
  result.uncommitted_kept = last - std::min(last, init->hard_state.commit());
  std::vector<raftpb::Entry> appended;
  auto append = [&](raftpb::ConfChange::Type type, uint64_t id) {
    raftpb::ConfChange cc;
    cc.set_type(type);
    cc.set_node_id(id);
    raftpb::Entry& e = appended.emplace_back();
    e.set_term(term);
    e.set_index(last + appended.size());
    e.set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
    e.set_data(cc.SerializeAsString());
  };
  for (uint64_t id : members) {
    if (id == self) continue;
    append(raftpb::ConfChange::TYPE_REMOVE_NODE, id);
    result.removed.push_back(id);
  }
  append(raftpb::ConfChange::TYPE_ADD_NODE, self);
  result.last_index = appended.back().index();
  raftpb::HardState hs = init->hard_state;
  hs.set_term(term);
  hs.set_commit(result.last_index);
  absl::Status s = storage.Save(&hs, appended, nullptr, /*sync=*/true);
  if (!s.ok()) return s;
  return result;
}

}  // namespace shoal::raft

// The simulation: the checks made after every step (sim_internal.h).
#include "raft/sim/sim_internal.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "raft/core.h"
#include "raft/memory_log_store.h"
#include "raft/sim/linearizability.h"

namespace shoal::raft::sim::internal {

// ---- invariants ----

void Sim::CheckNewLeader(SimNode& n) {
  ++stats_.elections;
  const uint64_t term = n.core->term();
  CheckOneLeaderPerTerm(n);
  if (failure_.failed) return;
  // Leader completeness: it holds every entry anyone applied (above its snapshot) that was
  // committed in an earlier term. Not those first committed in its term or later: a
  // candidate whose grants waited (a paused process, then its queued messages) becomes the
  // leader of an old term after later terms committed more, as Raft allows; it then commits
  // nothing, since no majority is left in its term.
  const RaftLog& log = n.core->log();
  for (auto a = applied_.upper_bound(log.FirstIndex() - 1); a != applied_.end(); ++a) {
    auto in = committed_in_.find(a->first);
    if (in == committed_in_.end() || in->second >= term) continue;
    if (a->first > log.LastIndex()) {
      return Fail("leader completeness: leader ", n.id, " of term ", term, " lacks applied index ",
                  a->first, " (its last index is ", log.LastIndex(), ")");
    }
    absl::StatusOr<std::vector<raftpb::Entry>> e = log.Slice(a->first, a->first + 1, UINT64_MAX);
    if (!e.ok() || e->size() != 1 || (*e)[0].term() != a->second.term ||
        (*e)[0].data() != a->second.data) {
      return Fail("leader completeness: leader ", n.id, " of term ", term,
                  " has a different entry at applied index ", a->first);
    }
  }
}

void Sim::NoteCommitted(SimNode& n) {
  const uint64_t term = n.core->term();
  const uint64_t commit = n.core->log().committed();
  uint64_t& upto = noted_upto_[term];
  for (uint64_t i = upto + 1; i <= commit; ++i) {
    auto [it, inserted] = committed_in_.emplace(i, term);
    if (!inserted) it->second = std::min(it->second, term);
  }
  upto = std::max(upto, commit);
}

void Sim::CheckOneLeaderPerTerm(SimNode& n) {
  const uint64_t term = n.core->term();
  // A leadership counts once its vote for itself is on its disk. A sole voter leads the
  // moment it votes for itself; should it crash before that vote is written, it never led
  // (nothing it did left the member: CheckSentAfterPersisting), and after its restart it may
  // rightly vote for another member in that term, one whose membership (committed while this
  // member's commit index was not yet written) makes it need that vote.
  const raftpb::HardState hs = n.disk->hard_state();
  if (hs.term() != term || hs.vote() != n.id) return;
  auto [it, inserted] = leader_of_term_.emplace(term, n.id);
  if (!inserted && it->second != n.id) {
    Fail("election safety: members ", it->second, " and ", n.id, " both lead term ", term);
  }
}

void Sim::CheckSentAfterPersisting(SimNode& n, const Message& m) {
  const raftpb::HardState hs = n.disk->hard_state();
  switch (m.type()) {
    case raftpb::MSG_APP_RESP:
      if (m.reject() || m.index() == 0) return;
      // Whatever its term: an acknowledgement whose entries a later step of the same batch
      // replaced (a newer leader's conflicting append or snapshot) is not sent at all
      // (Core::DropAcknowledgementsFrom). It used to be excused here as a delayed fact (a
      // message delayed in the network after the entries were written and then replaced
      // would say the same), but those entries were never written.
      if (n.disk->LastIndex() < m.index()) {
        return Fail("member ", n.id, " acknowledged index ", m.index(), " to ", m.to(),
                    " with only ", n.disk->LastIndex(), " on its disk");
      }
      if (hs.term() < m.term()) {
        return Fail("member ", n.id, " acknowledged appends of term ", m.term(), " with term ",
                    hs.term(), " on its disk");
      }
      return;
    case raftpb::MSG_VOTE_RESP:
      if (m.reject()) return;
      // Or a later term is on its disk: it can never vote in m.term() again (a Ready may
      // carry a grant together with the vote of a later term it moved to meanwhile).
      if (hs.term() < m.term() || (hs.term() == m.term() && hs.vote() != m.to())) {
        return Fail("member ", n.id, " granted its vote to ", m.to(), " in term ", m.term(),
                    " with term ", hs.term(), " and vote ", hs.vote(), " on its disk");
      }
      return;
    case raftpb::MSG_APP:
    case raftpb::MSG_HEARTBEAT:
    case raftpb::MSG_SNAP:
    case raftpb::MSG_TIMEOUT_NOW:
    case raftpb::MSG_READ_INDEX_RESP:
      if (hs.term() < m.term()) {
        return Fail("member ", n.id, " sent ", raftpb::MessageType_Name(m.type()), " of term ",
                    m.term(), " with term ", hs.term(), " on its disk");
      }
      return;
    default:
      return;
  }
}

void Sim::CheckCommitIsDurable(SimNode& n) {
  const uint64_t term = n.core->term();
  const uint64_t commit = n.core->log().committed();
  auto& [checked_term, checked] = commit_checked_[n.id];
  if (checked_term == term && checked >= commit) return;
  absl::StatusOr<uint64_t> want = n.core->log().Term(commit);
  // A leader commits by counting only entries of its own term; a commit index it inherited,
  // or one that ended on an older entry, was counted under an earlier leader and membership.
  if (!want.ok() || *want != term) return;
  // Only a leadership whose vote for itself is durable may commit (CheckOneLeaderPerTerm
  // counts no other).
  const raftpb::HardState hs = n.disk->hard_state();
  if (hs.term() != term || hs.vote() != n.id) {
    return Fail("leader ", n.id, " of term ", term, " counts index ", commit,
                " as committed with term ", hs.term(), " and vote ", hs.vote(), " on its disk");
  }
  size_t voters = 0, holding = 0;
  for (const auto& [id, pr] : n.core->progress()) {
    if (pr.is_learner) continue;
    ++voters;
    auto it = nodes_.find(id);
    if (it == nodes_.end()) continue;
    MemoryLogStore& disk = *it->second.disk;
    if (disk.LastIndex() < commit) continue;
    absl::StatusOr<uint64_t> t = disk.Term(commit);
    // Behind the disk's snapshot: committed there already, so the same entry.
    if (!t.ok() || *t == *want) ++holding;
  }
  if (voters > 0 && holding < voters / 2 + 1) {
    return Fail("leader ", n.id, " of term ", term, " counts index ", commit,
                " as committed, but only ", holding, " of its ", voters,
                " voters have it on disk");
  }
  checked_term = term;
  checked = commit;
}

void Sim::CheckAppended(SimNode& n, const std::vector<raftpb::Entry>& entries) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const raftpb::Entry& e = entries[i];
    uint64_t prev_term = 0;
    if (i > 0) {
      prev_term = entries[i - 1].term();
    } else if (e.index() > 1) {
      absl::StatusOr<uint64_t> t = n.disk->Term(e.index() - 1);
      if (!t.ok()) continue;  // before the snapshot: nothing to compare
      prev_term = *t;
    }
    auto [it, inserted] = seen_entries_.emplace(std::make_pair(e.index(), e.term()),
                                                EntryRecord{prev_term, e.data()});
    if (!inserted && (it->second.data != e.data() || it->second.prev_term != prev_term)) {
      return Fail("log matching: member ", n.id, " holds a different entry (or history) at index ",
                  e.index(), " term ", e.term());
    }
  }
}

void Sim::CheckApplied(SimNode& n, const raftpb::Entry& e) {
  auto [it, inserted] = applied_.emplace(e.index(), AppliedRecord{e.term(), e.data()});
  if (!inserted && (it->second.term != e.term() || it->second.data != e.data())) {
    Fail("state machine safety: member ", n.id, " applies a different entry at index ", e.index(),
         " (term ", e.term(), " vs ", it->second.term, ")");
  }
}

namespace {

std::string MembershipString(const raftpb::ConfState& cs) {
  std::vector<uint64_t> v(cs.voters().begin(), cs.voters().end());
  std::vector<uint64_t> l(cs.learners().begin(), cs.learners().end());
  std::sort(v.begin(), v.end());
  std::sort(l.begin(), l.end());
  std::vector<uint64_t> r(cs.removed().begin(), cs.removed().end());
  std::sort(r.begin(), r.end());
  return absl::StrCat("voters {", absl::StrJoin(v, ","), "} learners {", absl::StrJoin(l, ","),
                      "} removed {", absl::StrJoin(r, ","), "}");
}

}  // namespace

void Sim::CheckMembership(SimNode& n, uint64_t index, const raftpb::ConfState& cs,
                          bool change_at_index, const char* when) {
  if (membership_.empty()) {  // the first member to start: the cluster's starting membership
    membership_.emplace(index, cs);
    return;
  }
  auto it = membership_.upper_bound(index);
  if (change_at_index && (it == membership_.begin() || std::prev(it)->first != index)) {
    membership_.emplace(index, cs);  // the first member to apply this change
    return;
  }
  // The membership made by the last change at or before `index` (every change up to a
  // member's applied index, or a snapshot's, has been applied by someone).
  if (it == membership_.begin()) {
    return Fail("member ", n.id, " ", when, " at index ", index,
                " before any membership the cluster had");
  }
  --it;
  const std::string got = MembershipString(cs);
  const std::string want = MembershipString(it->second);
  if (got != want) {
    Fail("membership safety: member ", n.id, " ", when, " at index ", index, " with ", got,
         ", but the membership there is ", want, " (made at index ", it->first, ")");
  }
}

}  // namespace shoal::raft::sim::internal

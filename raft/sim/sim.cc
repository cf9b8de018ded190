#include "raft/sim/sim.h"

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
#include "raft/sim/sim_internal.h"

namespace shoal::raft::sim {
namespace internal {

// ---- state machine encoding ----

std::string EncodeKv(const SimNode& n) {
  // key=value lines, then request ids after a blank line. Keys, values and ids have no '=' or
  // '\n'.
  std::string out;
  for (const auto& [k, v] : n.kv) absl::StrAppend(&out, k, "=", v, "\n");
  out += "\n";
  for (const std::string& r : n.applied_requests) absl::StrAppend(&out, r, "\n");
  return out;
}

void DecodeKv(const std::string& data, SimNode* n) {
  n->kv.clear();
  n->applied_requests.clear();
  bool requests = false;
  for (absl::string_view line : absl::StrSplit(data, '\n')) {
    if (line.empty()) {
      requests = true;
      continue;
    }
    if (!requests) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
      n->kv[kv.first] = kv.second;
    } else {
      n->applied_requests.insert(std::string(line));
    }
  }
}

std::string Describe(const Message& m) {
  return absl::StrCat(raftpb::MessageType_Name(m.type()), " ", m.from(), "->", m.to(), " term ",
                      m.term(), " idx ", m.index(), " logterm ", m.log_term(), " ents ",
                      m.entries_size(), " commit ", m.commit(), m.reject() ? " REJECT" : "");
}

// ---- members ----

std::vector<uint64_t> Sim::UpNodes() const {
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (n.up) out.push_back(id);
  }
  return out;
}

std::optional<uint64_t> Sim::Leader() const {
  // The up leader with the highest term (a deposed one may not know yet).
  std::optional<uint64_t> best;
  uint64_t best_term = 0;
  for (const auto& [id, n] : nodes_) {
    if (n.paused) continue;
    if (n.up && n.core->role() == Role::kLeader && n.core->term() >= best_term) {
      best = id;
      best_term = n.core->term();
    }
  }
  return best;
}

std::vector<uint64_t> Sim::StaleLeaders() const {
  uint64_t newest = 0;
  for (const auto& [id, n] : nodes_) {
    if (n.up && n.core->role() == Role::kLeader) newest = std::max(newest, n.core->term());
  }
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (n.up && n.core->role() == Role::kLeader && n.core->term() < newest) out.push_back(id);
  }
  return out;
}

void Sim::StartCore(SimNode& n) {
  Config c;
  c.id = n.id;
  n.reads = std::make_unique<FlakyReads>(n.disk.get(), [this] {
    // Faults stop with the chaos: the quiet period checks that the cluster converges.
    return read_failures_ > 0 && now_ < opts_.chaos_ticks &&
           std::uniform_real_distribution<double>(0, 1)(read_rng_) < read_failures_;
  });
  c.storage = n.reads.get();
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.max_size_per_msg = max_msg_bytes_;
  c.max_inflight_msgs = max_inflight_;
  c.max_inflight_bytes = max_inflight_bytes_;
  c.check_quorum = true;
  c.pre_vote = true;
  c.random_seed = rng_();
  raftpb::Snapshot snap = *n.disk->Snapshot();
  c.applied = snap.metadata().index();
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(c);
  if (!core.ok()) {
    Fail("member ", n.id, " cannot start: ", core.status().ToString());
    return;
  }
  n.core = std::move(*core);
  DecodeKv(snap.data(), &n);
  n.applied = snap.metadata().index();
  n.last_snapshot = n.applied;
  n.conf = n.disk->GetInitialState()->conf_state;
  n.up = true;
  CheckMembership(n, n.applied, n.core->conf_state(), false, "starts");
}

void Sim::NoteRemoval(SimNode& n) {
  if (!n.up || n.removed || !n.core->removed()) return;
  bool removed = false;
  for (const auto& [index, cs] : membership_) {
    for (uint64_t id : cs.removed()) removed = removed || id == n.id;
  }
  if (!removed) {
    return Fail("member ", n.id,
                " believes it was removed, but no membership the cluster had removed it");
  }
  Trace("member ", n.id, " learned that it was removed");
  ++stats_.removals_told;
  n.removed = true;
  n.removed_at = now_;
}

void Sim::StopIfRemoved(SimNode& n) {
  // As a manager does: a removed member is stopped for good, but not at once. Meanwhile it
  // still answers the members that have not applied its removal (its vote is what a survivor
  // of two voters needs, if it missed the commit index).
  if (n.removed && n.up && now_ >= n.removed_at + kRemovedGraceTicks) {
    Crash(n, "removed from the cluster");
  }
}

void Sim::Crash(SimNode& n, const char* why) {
  Trace("crash ", n.id, " (", why, ")");
  // Usually the members connected to it notice the dropped connection (the transport reports
  // it, as the node does: ReportUnreachable, and LeaderUnreachable if it led): followers of a
  // crashed leader then campaign early, a leader probes the crashed follower.
  for (auto& [id, other] : nodes_) {
    if (id == n.id || !other.up || Blocked(other) || other.paused || !Chance(0.7)) continue;
    if (!Reachable(n.id, id)) continue;  // cut off already: no connection to lose
    Trace("member ", id, " lost its connection to ", n.id);
    other.core->ReportUnreachable(n.id);
    if (other.core->leader() == n.id) other.core->LeaderUnreachable();
  }
  n.up = false;
  n.core.reset();
  n.writing.reset();  // never reached the disk
  n.unsaved_hs.reset();
  n.blocked_until = 0;
  n.paused = false;  // its buffers and the requests in them die with it
  for (const InFlight& f : n.inbox) {
    // A snapshot goes by a call of its own, which fails when the receiver dies: its sender's
    // transport reports it (without the report the sender waited for it for ever).
    if (f.msg.type() == raftpb::MSG_SNAP) snapshot_reports_.emplace_back(f.sender, n.id, true);
  }
  n.inbox.clear();
  n.queued_requests.clear();
  n.applied_early = 0;
  n.kv.clear();
  n.applied_requests.clear();
  n.proposed.clear();
  n.reads_waiting.clear();
  n.reads_ready.clear();
  ++stats_.crashes;
}

bool Sim::StoppedByAFailedRead(SimNode& n) {
  if (n.core->storage_error().ok()) return false;
  if (n.core->log().found_lost()) {
    // Its leader counted on entries it had acknowledged and no longer holds, or replaced one
    // it committed: the simulation's crashes lose only what was not written, so this is a bug.
    Fail("member ", n.id, " found its log lost entries: ", n.core->storage_error().ToString());
    return true;
  }
  ++stats_.read_failures;
  Trace("member ", n.id, ": ", n.core->storage_error().ToString());
  Crash(n, "its storage failed a read");
  return true;
}

void Sim::Restart(SimNode& n) {
  Trace("restart ", n.id);
  StartCore(n);
  NoteRemoval(n);
  StopIfRemoved(n);
}

void Sim::AddMember() {
  std::optional<uint64_t> leader = Leader();
  if (!leader) return;
  SimNode& l = Node(*leader);
  if (l.core->conf_state().voters_size() + l.core->conf_state().learners_size() >= 6) return;
  const uint64_t id = next_id_++;
  SimNode& n = nodes_[id];
  n.id = id;
  n.clock_skew = ClockSkew();
  // Like a joining manager, it starts with an empty store and learns the membership as the
  // cluster's history: from the log (bootstrap included) or a snapshot.
  n.disk = std::make_unique<MemoryLogStore>();
  StartCore(n);
  raftpb::ConfChange cc;
  cc.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
  cc.set_node_id(id);
  absl::Status s = l.core->ProposeConfChange(cc);
  Trace("add learner ", id, " via ", l.id, ": ", s.ToString());
  if (s.ok()) {
    to_promote_.push_back(id);
    ++stats_.membership_changes;
  }
  HandleReadies(l);
}

void Sim::RemoveMember() {
  std::optional<uint64_t> leader = Leader();
  if (!leader) return;
  RemoveMember(Node(*leader));
}

void Sim::RemoveMember(SimNode& l) {
  raftpb::ConfState cs = l.core->conf_state();
  // Not from two voters to one: if the member removed led when the removal committed, the
  // survivor learns it from that member only (a leader leaving goes on telling it until it
  // answers, and a removed member answers votes during its grace); should the removed member
  // crash while the survivor is cut off or down past that grace, the survivor can neither
  // commit alone nor win a vote (README, eleventh session: 3 of 10,000 seeds when allowed).
  if (cs.voters_size() <= 2) return;
  const uint64_t victim = Pick(std::vector<uint64_t>(cs.voters().begin(), cs.voters().end()));
  raftpb::ConfChange cc;
  cc.set_type(raftpb::ConfChange::TYPE_REMOVE_NODE);
  cc.set_node_id(victim);
  absl::Status s = l.core->ProposeConfChange(cc);
  Trace("remove ", victim, " via ", l.id, ": ", s.ToString());
  if (s.ok()) ++stats_.membership_changes;
  HandleReadies(l);
}

// ---- Ready handling ----

void Sim::HandleReadies(SimNode& n) {
  TakeReadies(n);
  // A new leader announced, or the leader applied a membership change: the driver proposes
  // the next change at once (not inside HandleReady, between a Ready and its write).
  if (churn_now_ && !in_churn_ && !failure_.failed && n.up && !n.paused &&
      n.core->role() == Role::kLeader) {
    churn_now_ = false;
    DriveMembership(&n);
  }
}

void Sim::TakeReadies(SimNode& n) {
  if (!failure_.failed && n.up && n.core->role() == Role::kLeader) {
    CheckOneLeaderPerTerm(n);
    NoteCommitted(n);
    CheckCommitIsDurable(n);
  }
  if (!failure_.failed && n.up && (n.writing || n.core->LeaderWriteMayWait())) {
    // A write is under way, or a leader's next write waits for a follower to catch up with
    // its last (as the node loop does): only what may precede it leaves now, and what was
    // committed meanwhile is applied now.
    n.reads->set_armed(true);
    std::vector<Message> early = n.core->TakeEarlyMessages();
    std::vector<raftpb::Entry> committed = n.core->TakeCommittedEntries();
    n.reads->set_armed(false);
    if (StoppedByAFailedRead(n)) return;  // as the node: nothing taken leaves
    SendAll(n.id, std::move(early));
    for (const raftpb::Entry& e : committed) {
      Apply(n, e);
      if (failure_.failed || !n.up) return;
    }
    ServeReads(n);
    return;
  }
  while (!failure_.failed && n.up && !n.writing && n.core->HasReady()) HandleReady(n);
}

void Sim::HandleReady(SimNode& n) {
  n.reads->set_armed(true);
  Ready rd = n.core->GetReady();
  n.reads->set_armed(false);
  if (StoppedByAFailedRead(n)) return;  // as the node: nothing of this Ready is written or sent
  // A crash before the write reaches the disk loses the whole Ready: its entries, hard state
  // (votes!) and messages, but not the early messages, which left before the write. The core
  // must not have let anything out that depended on it.
  if (now_ < opts_.chaos_ticks && rd.must_sync && Chance(0.003)) {
    ++stats_.lost_readies;
    SendAll(n.id, std::move(rd.early_messages));
    Crash(n, "before persisting a Ready");
    return;
  }
  // Before anything of this Ready is applied: a membership change among its committed
  // entries takes effect only then, and the commit was counted under the membership before.
  if (n.core->role() == Role::kLeader) {
    NoteCommitted(n);
    CheckCommitIsDurable(n);
  }
  if (failure_.failed) return;
  if (rd.soft_state) {
    Trace("member ", n.id, " is ", RoleName(rd.soft_state->role), " term ", n.core->term(),
          " leader ", rd.soft_state->leader);
    if (rd.soft_state->role == Role::kLeader) {
      CheckNewLeader(n);
      if (churn_ && now_ < opts_.chaos_ticks) {
        churn_left_ = static_cast<int>(Uniform(1, 3));
        churn_due_ = churn_now_ = true;
      }
    }
  }
  SendAll(n.id, std::move(rd.early_messages));
  // As the node loop does: committed entries (durable on a quorum) are applied before this
  // member's write, unless a snapshot must be restored first.
  size_t early = 0;
  if (!rd.snapshot) {
    for (const raftpb::Entry& e : rd.committed_entries) {
      Apply(n, e);
      if (failure_.failed || !n.up) return;
      ++early;
    }
    ServeReads(n);
  }
  if (rd.must_sync && Chance(async_writes_)) {
    n.writing = std::move(rd);
    n.applied_early = early;
    n.write_done_at = now_ + static_cast<int64_t>(Uniform(0, max_write_ticks_));
    // Now and then a disk stalls for longer than an election timeout (a busy device, a
    // journal commit). A leader's loop goes on stepping meanwhile (its writer thread waits);
    // a follower's loop is inside the write and falls silent, as in the node.
    if (Chance(0.005)) {
      ++stats_.disk_stalls;
      n.write_done_at += static_cast<int64_t>(Uniform(10, 30));
      if (n.core->role() != Role::kLeader && !n.writing->snapshot) {
        ++stats_.silent_stalls;
        n.blocked_until = n.write_done_at;
        Trace("member ", n.id, " stalls in a write until t=", n.blocked_until);
      }
    }
    return;
  }
  FinishWrite(n, rd, early);
}

void Sim::FinishWrite(SimNode& n, Ready& rd, size_t applied_early) {
  if (rd.snapshot) {
    absl::Status s = n.disk->ApplySnapshot(*rd.snapshot);
    if (!s.ok()) return Fail("member ", n.id, " cannot persist a snapshot: ", s.ToString());
    DecodeKv(rd.snapshot->data(), &n);
    n.applied = rd.snapshot->metadata().index();
    n.last_snapshot = n.applied;
    n.conf = rd.snapshot->metadata().conf_state();
    Trace("member ", n.id, " installed snapshot at ", n.applied);
    CheckMembership(n, n.applied, n.conf, false, "installs a snapshot");
  }
  CheckAppended(n, rd.entries);
  absl::Status s = n.disk->Append(rd.entries);
  if (!s.ok()) return Fail("member ", n.id, " cannot persist entries: ", s.ToString());
  if (rd.must_sync) {
    if (rd.hard_state) {
      n.disk->SetHardState(*rd.hard_state);
    } else if (n.unsaved_hs) {
      n.disk->SetHardState(*n.unsaved_hs);
    }
    n.unsaved_hs.reset();
  } else if (rd.hard_state) {
    n.unsaved_hs = *rd.hard_state;
  }
  if (n.core->role() == Role::kLeader) CheckOneLeaderPerTerm(n);  // now durable, perhaps
  for (const Message& m : rd.messages) {
    if (m.type() == raftpb::MSG_SNAP) ++stats_.snapshots_sent;
  }
  SendAll(n.id, std::move(rd.messages));
  for (size_t i = applied_early; i < rd.committed_entries.size(); ++i) {
    Apply(n, rd.committed_entries[i]);
    if (failure_.failed || !n.up) return;
  }
  for (const ReadState& rs : rd.read_states) n.reads_ready.emplace_back(rs.index, rs.request_ctx);
  n.core->Advance(rd);
  ServeReads(n);
  MaybeSnapshot(n);
}

void Sim::CompleteWrites() {
  for (auto& [id, n] : nodes_) {
    if (failure_.failed) return;
    // A paused process completes nothing: the write lands, and is seen, after it resumes.
    if (!n.up || n.paused || !n.writing || n.write_done_at > now_) continue;
    // The most delicate moment of asynchronous writes: a leader whose followers may already
    // have committed (and clients seen applied) entries of this write dies before it lands.
    if (now_ < opts_.chaos_ticks && n.core->role() == Role::kLeader &&
        n.core->log().committed() > n.disk->LastIndex() && Chance(0.2)) {
      ++stats_.lost_readies;
      Crash(n, "leader, before its write completed");
      continue;
    }
    Ready rd = std::move(*n.writing);
    n.writing.reset();
    Trace("member ", id, " persisted ", rd.entries.size(), " entries");
    FinishWrite(n, rd, n.applied_early);
    n.applied_early = 0;
    HandleReadies(n);
    NoteRemoval(n);
    StopIfRemoved(n);
  }
}

void Sim::Apply(SimNode& n, const raftpb::Entry& e) {
  if (e.index() != n.applied + 1) {
    return Fail("member ", n.id, " applies index ", e.index(), " after ", n.applied);
  }
  CheckApplied(n, e);
  {
    // Committed in its term at the latest: it learned the commit from a leader of a term no
    // later (a bound for commits no leader was seen counting: one deposed before its Ready).
    auto [it, inserted] = committed_in_.emplace(e.index(), n.core->term());
    if (!inserted) it->second = std::min(it->second, n.core->term());
  }
  n.applied = e.index();
  if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(e.data())) return Fail("unparsable conf change at ", e.index());
    n.conf = n.core->ApplyConfChange(cc);
    CheckMembership(n, e.index(), n.conf, true, "applies a membership change");
    Trace("member ", n.id, " applied ", raftpb::ConfChange::Type_Name(cc.type()), " ", cc.node_id(),
          " at ", e.index());
    if (churn_ && churn_left_ > 0 && n.core->role() == Role::kLeader && now_ < opts_.chaos_ticks) {
      churn_due_ = churn_now_ = true;
    }
    // Removed: this member stops for good once its core says so (NoteRemoval); a leader that
    // removed itself first goes on leading until the others know the commit index.
    return;
  }
  if (e.data().empty()) return;  // a leader's no-op
  // "P|req|key|value" or "G|req|key".
  std::vector<std::string> parts = absl::StrSplit(e.data(), '|');
  const std::string& req = parts[1];
  const bool first_time = n.applied_requests.insert(req).second;
  std::string value;
  bool found = false;
  if (parts[0] == "P") {
    if (first_time) n.kv[parts[2]] = parts[3];
  } else {
    auto it = n.kv.find(parts[2]);
    found = it != n.kv.end();
    if (found) value = it->second;
  }
  auto p = n.proposed.find(req);
  if (p != n.proposed.end()) {
    const size_t index = p->second;
    n.proposed.erase(p);
    // A duplicate delivery of a proposal applies once; the client hears of the first.
    if (first_time) CompleteOp(index, found, value, e.index());
  }
}

void Sim::ServeReads(SimNode& n) {
  auto it = n.reads_ready.begin();
  while (it != n.reads_ready.end()) {
    if (it->first > n.applied) {
      ++it;
      continue;
    }
    auto w = n.reads_waiting.find(it->second);
    if (w != n.reads_waiting.end()) {
      const size_t index = w->second;
      n.reads_waiting.erase(w);
      const int client = history_[index].client;
      auto floor = read_floor_.find(it->second);
      if (floor != read_floor_.end() && it->first < floor->second && client_op_[client] &&
          client_op_[client]->history_index == index) {
        return Fail("read freshness: member ", n.id, " serves read ", it->second, " at index ",
                    it->first, ", but an operation answered before the read was asked was "
                    "applied at index ", floor->second);
      }
      if (floor != read_floor_.end()) read_floor_.erase(floor);
      auto kv = n.kv.find(history_[index].key);
      CompleteOp(index, kv != n.kv.end(), kv != n.kv.end() ? kv->second : "", it->first);
    }
    it = n.reads_ready.erase(it);
  }
}

void Sim::MaybeSnapshot(SimNode& n) {
  // Frequent snapshots, so that lagging members often need one. Not beyond what is on disk.
  if (n.applied < n.last_snapshot + snapshot_every_) return;
  if (n.applied > n.disk->LastIndex()) return;
  // Nor while the disk still holds, at an applied index, an older entry that an unwritten one
  // replaces (applied early, as committed, while a write of other entries was under way): the
  // disk takes the snapshot's term from the entry it holds (Node::MaybeSnapshot does the same).
  const std::vector<raftpb::Entry>& unwritten = n.core->log().UnstableEntries();
  if (!unwritten.empty() && unwritten.front().index() <= n.applied) return;
  absl::StatusOr<raftpb::Snapshot> snap = n.disk->CreateSnapshot(n.applied, &n.conf, EncodeKv(n));
  if (!snap.ok()) return Fail("member ", n.id, " cannot snapshot: ", snap.status().ToString());
  // The snapshot names the applied entry's term, as the member's log knows it (0: compacted
  // away, not known to it any more; a wrong one
  // sends lagging members a snapshot no append matches, and they never catch up).
  absl::StatusOr<uint64_t> term = n.core->log().Term(n.applied);
  if (term.ok() && *term != 0 && *term != snap->metadata().term()) {
    return Fail("member ", n.id, " snapshotted index ", n.applied, " as term ",
                snap->metadata().term(), " but its log holds term ", *term, " there");
  }
  n.last_snapshot = n.applied;
  const uint64_t keep = 5;
  if (n.applied > keep && n.applied - keep > n.disk->FirstIndex()) {
    absl::Status s = n.disk->Compact(n.applied - keep);
    if (!s.ok()) return Fail("member ", n.id, " cannot compact: ", s.ToString());
  }
}

void Sim::SendAll(uint64_t from, std::vector<Message> msgs) {
  for (Message& m : msgs) {
    ++stats_.messages;
    if (m.to() == from) continue;
    CheckSentAfterPersisting(Node(from), m);
    if (failure_.failed) return;
    // As a node does off its loop thread: the core names its snapshot, the data is read here.
    if (absl::Status s = FillSnapshot(*Node(from).disk, m); !s.ok()) {
      return Fail("member ", from, " cannot fill in its snapshot: ", s.ToString());
    }
    if (Chance(drop_)) {
      Trace("drop ", Describe(m));
      if (m.type() == raftpb::MSG_SNAP) snapshot_reports_.emplace_back(from, m.to(), true);
      continue;
    }
    const int copies = Chance(dup_) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      int64_t delay = static_cast<int64_t>(Uniform(0, max_delay_));
      if (Chance(straggler_chance_)) {
        delay += static_cast<int64_t>(Uniform(5, static_cast<uint64_t>(straggler_max_)));
      }
      network_.push_back(InFlight{now_ + delay, seq_++, m, from});
    }
  }
}

void Sim::Deliver() {
  std::vector<InFlight> due, later;
  for (InFlight& f : network_) (f.deliver_at <= now_ ? due : later).push_back(std::move(f));
  network_ = std::move(later);
  std::shuffle(due.begin(), due.end(), rng_);  // reordering
  for (InFlight& f : due) {
    if (failure_.failed) return;
    const bool snap = f.msg.type() == raftpb::MSG_SNAP;
    auto it = nodes_.find(f.msg.to());
    if (it == nodes_.end() || !it->second.up || !Reachable(f.sender, f.msg.to())) {
      if (snap) snapshot_reports_.emplace_back(f.sender, f.msg.to(), true);
      // The sender's transport may notice (its stream broke, or a send failed); a snapshot
      // goes by a call of its own, whose failure is reported as such, above.
      if (!snap && Chance(0.05)) unreachable_reports_.emplace_back(f.sender, f.msg.to());
      continue;
    }
    if (it->second.paused) {
      SimNode& p = it->second;
      if (p.inbox.size() < p.inbox_room) {
        p.inbox.push_back(std::move(f));
      } else {
        // Its socket buffer is full: the sender's stream stalls and its transport drops what
        // it cannot write.
        Trace("drop ", Describe(f.msg), " (", p.id, " is paused and its buffer is full)");
        if (snap) snapshot_reports_.emplace_back(f.sender, f.msg.to(), true);
      }
      continue;
    }
    if (Blocked(it->second)) {
      // Its loop is inside a stalled write: the message waits in its queue.
      f.deliver_at = it->second.blocked_until;
      network_.push_back(std::move(f));
      continue;
    }
    SimNode& n = it->second;
    Trace("deliver ", Describe(f.msg));
    // Every member here is correct: a message refused as malformed means a member sent one
    // no correct member sends, or the check refuses a correct one.
    if (absl::Status s = CheckPeerMessage(f.msg, n.id); !s.ok()) {
      return Fail("member ", n.id, " refused ", Describe(f.msg), ": ", s.message());
    }
    const uint64_t to = f.msg.to();
    n.reads->set_armed(true);
    (void)n.core->Step(std::move(f.msg));  // as the node does: a snapshot is moved in
    n.reads->set_armed(false);
    if (StoppedByAFailedRead(n)) {
      // Delivered all the same, as far as the sender's transport can tell.
      if (snap) snapshot_reports_.emplace_back(f.sender, to, false);
      continue;
    }
    HandleReadies(n);
    NoteRemoval(n);
    StopIfRemoved(n);
    if (snap) snapshot_reports_.emplace_back(f.sender, to, false);
  }
  std::vector<std::pair<uint64_t, uint64_t>> unreachable;
  unreachable.swap(unreachable_reports_);
  for (const auto& [from, to] : unreachable) {
    auto it = nodes_.find(from);
    if (it == nodes_.end() || !it->second.up) continue;
    ReportUnreachable(it->second, to);
  }
  std::vector<std::tuple<uint64_t, uint64_t, bool>> reports;
  reports.swap(snapshot_reports_);
  for (const auto& [from, to, failed] : reports) {
    auto it = nodes_.find(from);
    if (it == nodes_.end() || !it->second.up) continue;
    if (Blocked(it->second) || it->second.paused) {  // waits in its queue
      snapshot_reports_.emplace_back(from, to, failed);
      continue;
    }
    Trace("snapshot ", from, "->", to, failed ? " failed" : " delivered");
    it->second.core->ReportSnapshot(to, failed);
    HandleReadies(it->second);
  }
}

// ---- end of run ----

bool Sim::Converged() {
  for (int c = 0; c < opts_.clients; ++c) {
    if (client_op_[c]) return false;
  }
  std::optional<uint64_t> leader = Leader();
  if (!leader) return false;
  SimNode& l = Node(*leader);
  if (l.core->log().committed() != l.core->log().LastIndex()) return false;
  // Every member of the final membership is up and has applied everything.
  raftpb::ConfState cs = l.core->conf_state();
  std::vector<uint64_t> members(cs.voters().begin(), cs.voters().end());
  members.insert(members.end(), cs.learners().begin(), cs.learners().end());
  for (uint64_t id : members) {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || !it->second.up) return false;
    if (it->second.applied != l.core->log().LastIndex()) return false;
  }
  return true;
}

void Sim::FinalChecks() {
  SimNode& l = Node(*Leader());
  raftpb::ConfState cs = l.core->conf_state();
  std::vector<uint64_t> members(cs.voters().begin(), cs.voters().end());
  members.insert(members.end(), cs.learners().begin(), cs.learners().end());
  for (uint64_t id : members) {
    SimNode& n = Node(id);
    if (n.kv != l.kv) return Fail("members ", l.id, " and ", id, " ended with different states");
    // No acknowledged write lost: every member applied every acknowledged put.
    for (const std::string& req : acked_write_requests_) {
      if (!n.applied_requests.count(req)) {
        return Fail("acknowledged write ", req, " is missing from member ", id);
      }
    }
  }
  LinearizabilityResult lin = CheckKvHistory(history_);
  stats_.linearizability_states = lin.states;
  if (!lin.ok) Fail("linearizability: ", lin.explanation);
}

SimResult Sim::Run() {
  // Per-seed fault profile: from calm to hostile.
  drop_ = std::uniform_real_distribution<double>(0, 0.1)(rng_);
  dup_ = std::uniform_real_distribution<double>(0, 0.05)(rng_);
  max_delay_ = static_cast<int>(Uniform(0, 3));
  if (Chance(0.5)) {
    straggler_chance_ = std::vector<double>{0.01, 0.05}[Uniform(0, 1)];
    straggler_max_ = std::vector<int>{30, 60}[Uniform(0, 1)];
  }
  // One entry per append (so followers ack old-term entries apart from the new leader's), up
  // to large batches; tiny to wide in-flight windows; frequent to rare snapshots.
  max_msg_bytes_ = std::vector<uint64_t>{1, 64, 4096}[Uniform(0, 2)];
  max_inflight_ = std::vector<size_t>{1, 4, 64}[Uniform(0, 2)];
  max_inflight_bytes_ = std::vector<uint64_t>{0, 64, 1024}[Uniform(0, 2)];
  snapshot_every_ = std::vector<uint64_t>{5, 25, 200}[Uniform(0, 2)];
  // Synced writes: all in place (the core's basic contract), some or all asynchronous (the
  // node loop: the core steps on while a write is under way).
  async_writes_ = std::vector<double>{0, 0.5, 1}[Uniform(0, 2)];
  max_write_ticks_ = static_cast<int>(Uniform(0, 2));
  clock_skew_ = Chance(0.5);
  read_failures_ = std::vector<double>{0, 0, 0.0003, 0.002}[std::uniform_int_distribution<int>(
      0, 3)(read_rng_)];
  // Paused processes, back-to-back membership changes and minority tails, in half the seeds
  // (each in a third), from a generator of their own: the other half runs exactly as before.
  {
    std::mt19937_64 g(seed_ ^ 0x9a05edc4a2e5ull);
    auto chance = [&g](double p) { return std::uniform_real_distribution<double>(0, 1)(g) < p; };
    if (chance(0.5)) {
      pauses_ = chance(2.0 / 3);
      churn_ = chance(2.0 / 3);
      tails_ = chance(2.0 / 3);
      if (!pauses_ && !churn_ && !tails_) pauses_ = true;
    }
    if (tails_) {
      // Small limits, so that replacing a long tail takes many size-limited appends.
      auto one_of_3 = [&g] { return std::uniform_int_distribution<int>(0, 2)(g); };
      max_msg_bytes_ = std::vector<uint64_t>{1, 64, 256}[one_of_3()];
      max_inflight_ = std::vector<size_t>{1, 2, 4}[one_of_3()];
      max_inflight_bytes_ = std::vector<uint64_t>{0, 128, 512}[one_of_3()];
    }
  }
  // From one voter (a single manager: it commits alone, and must still not serve a stale
  // read after a restart) to five; two voters need both for everything.
  const int members = std::vector<int>{1, 2, 3, 3, 4, 5, 5}[Uniform(0, 6)];
  std::vector<uint64_t> ids;
  for (int i = 1; i <= members; ++i) ids.push_back(i);
  for (uint64_t id : ids) {
    SimNode& n = nodes_[id];
    n.id = id;
    n.clock_skew = ClockSkew();
    n.disk = std::make_unique<MemoryLogStore>();
    absl::Status s = Bootstrap(*n.disk, ids);
    if (!s.ok()) Fail("bootstrapping member ", id, ": ", s.ToString());
    StartCore(n);
  }
  next_id_ = members + 1;
  client_op_.resize(opts_.clients);
  client_counter_.resize(opts_.clients);
  Trace("seed ", seed_, ": ", members, " members, drop ", drop_, " dup ", dup_, " delay 0-",
        max_delay_, " stragglers ", straggler_chance_, " up to ", straggler_max_, " msg bytes ", max_msg_bytes_, " inflight ", max_inflight_, " (",
        max_inflight_bytes_, " bytes) snapshot every ", snapshot_every_, " async writes ",
        async_writes_, " taking 0-", max_write_ticks_, " ticks",
        clock_skew_ ? ", clocks drift" : "", ", read failures ", read_failures_,
        pauses_ ? ", pauses" : "", churn_ ? ", membership churn" : "",
        tails_ ? ", minority tails" : "");

  const int64_t end = opts_.chaos_ticks + opts_.max_quiet_ticks;
  bool quiet = false;
  for (now_ = 0; now_ < end && !failure_.failed; ++now_) {
    if (!quiet && now_ >= opts_.chaos_ticks) {
      quiet = true;
      Trace("quiet: heal, restart everyone, no more faults");
      group_.clear();
      cut_.clear();
      drop_ = 0;
      dup_ = 0;
      straggler_chance_ = 0.01;
      straggler_max_ = 30;
      for (auto& [id, n] : nodes_) {
        if (!n.up && !n.removed) Restart(n);
        n.paused_until = std::min(n.paused_until, now_);
      }
      tail_left_ = 0;
      tail_until_ = 0;
      churn_due_ = churn_now_ = false;
      strike_target_ = 0;
    }
    for (auto& [id, n] : nodes_) {
      if (!failure_.failed && n.up && n.paused && n.paused_until <= now_) Resume(n);
    }
    if (!quiet) Chaos();
    // Promote caught-up learners.
    if (!to_promote_.empty() && Chance(0.1)) {
      if (std::optional<uint64_t> leader = Leader()) {
        SimNode& l = Node(*leader);
        const uint64_t id = to_promote_.front();
        auto pr = l.core->progress().find(id);
        if (pr != l.core->progress().end() && pr->second.is_learner &&
            pr->second.match >= l.core->log().committed()) {
          raftpb::ConfChange cc;
          cc.set_type(raftpb::ConfChange::TYPE_ADD_NODE);
          cc.set_node_id(id);
          absl::Status s = l.core->ProposeConfChange(cc);
          Trace("promote ", id, " via ", l.id, ": ", s.ToString());
          if (s.ok()) {
            to_promote_.erase(to_promote_.begin());
            ++stats_.membership_changes;
          }
          HandleReadies(l);
        } else if (pr == l.core->progress().end() && Chance(0.05)) {
          to_promote_.erase(to_promote_.begin());  // its addition was lost
        }
      }
    }
    Clients(!quiet);
    for (auto& [id, n] : nodes_) {
      if (!n.up || failure_.failed || Blocked(n) || n.paused) continue;
      int ticks = 1;
      if (n.clock_skew != 0 && Chance(0.25)) ticks += n.clock_skew;
      n.reads->set_armed(true);
      for (int t = 0; t < ticks; ++t) n.core->Tick();
      n.reads->set_armed(false);
      if (StoppedByAFailedRead(n)) continue;
      HandleReadies(n);
    }
    Deliver();
    CompleteWrites();
    for (auto& [id, n] : nodes_) StopIfRemoved(n);
    ++stats_.ticks;
    if (quiet && Converged()) break;
  }
  if (!failure_.failed) {
    if (!Converged()) {
      std::string state;
      for (const auto& [id, n] : nodes_) {
        absl::StrAppend(&state, " [", id, n.up ? "" : " down", n.removed ? " removed" : "");
        if (n.up) {
          absl::StrAppend(&state, " ", RoleName(n.core->role()), " term ", n.core->term(),
                          " commit ", n.core->log().committed(), " last ",
                          n.core->log().LastIndex(), " applied ", n.applied, " voters ",
                          absl::StrJoin(n.core->conf_state().voters(), ","), " learners ",
                          absl::StrJoin(n.core->conf_state().learners(), ","));
        }
        absl::StrAppend(&state, "]");
      }
      for (int c = 0; c < opts_.clients; ++c) {
        if (client_op_[c]) absl::StrAppend(&state, " client ", c, " waiting");
      }
      // How the leader sends to each member: a stuck one is usually paused here.
      if (std::optional<uint64_t> l = Leader()) {
        absl::StrAppend(&state, "; leader ", *l, "'s progress:");
        for (const auto& [id, pr] : Node(*l).core->progress()) {
          absl::StrAppend(&state, " [", id, " ", Progress::StateName(pr.state), " match ",
                          pr.match, " next ", pr.next, pr.IsPaused() ? " paused" : "",
                          pr.state == Progress::State::kSnapshot
                              ? absl::StrCat(" snapshot ", pr.pending_snapshot)
                              : std::string(),
                          pr.recent_active ? " active" : "", "]");
        }
      }
      Fail("liveness: the cluster did not converge within ", opts_.max_quiet_ticks,
           " quiet ticks:", state);
    } else {
      FinalChecks();
    }
  }
  SimResult result;
  result.seed = seed_;
  result.ok = !failure_.failed;
  result.failure = failure_.what;
  result.trace.assign(trace_.begin(), trace_.end());
  result.stats = stats_;
  return result;
}

}  // namespace internal

SimResult RunSeed(uint64_t seed, const SimOptions& options) {
  return internal::Sim(seed, options).Run();
}

}  // namespace shoal::raft::sim

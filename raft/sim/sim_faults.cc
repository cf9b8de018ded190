// The simulation: what goes wrong (sim_internal.h).
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

// ---- faults ----

void Sim::ReportUnreachable(SimNode& n, uint64_t peer) {
  // (queued in the node; lost here)
  if (failure_.failed || !n.up || Blocked(n) || n.paused) return;
  Trace("member ", n.id, " told ", peer, " is unreachable");
  n.core->ReportUnreachable(peer);
  if (peer == n.core->leader()) n.core->LeaderUnreachable();
  HandleReadies(n);
}

void Sim::Chaos() {
  std::vector<uint64_t> up = UpNodes();
  // Partitions (a minority leader's stays a while: StartTail).
  if (now_ < tail_until_) {
  } else if (Chance(0.015)) {
    ++stats_.partitions;
    group_.clear();
    for (const auto& [id, n] : nodes_) group_[id] = static_cast<int>(Uniform(0, 1));
    Trace("partition: ", absl::StrJoin(group_, " ", absl::PairFormatter("@")));
  } else if (Chance(0.01) && !up.empty()) {
    ++stats_.partitions;
    group_.clear();
    const uint64_t alone = Pick(up);
    group_[alone] = 1;
    Trace("isolate ", alone);
  } else if (Chance(0.01) && up.size() >= 2) {
    ++stats_.partitions;
    const uint64_t from = Pick(up);
    const uint64_t to = Pick(up);
    if (from != to) {
      cut_.insert({from, to});
      Trace("cut ", from, "->", to, " (one way)");
    }
  } else if (Chance(0.04)) {
    if (!group_.empty() || !cut_.empty()) Trace("heal");
    group_.clear();
    cut_.clear();
  }
  // Crashes and restarts; leaders are hit more often, since most bugs hide in their changes.
  if (Chance(0.008) && !up.empty()) Crash(Node(Pick(up)), "chaos");
  if (Chance(0.006)) {
    if (std::optional<uint64_t> leader = Leader()) Crash(Node(*leader), "leader crash");
  }
  for (auto& [id, n] : nodes_) {
    if (!n.up && !n.removed && Chance(0.04)) Restart(n);
  }
  // A false alarm: a transport reports a live peer unreachable (a stream that broke and
  // reconnected at once).
  if (Chance(0.01) && up.size() >= 2) {
    const uint64_t peer = Pick(up);
    SimNode& n = Node(Pick(up));
    if (n.id != peer) ReportUnreachable(n, peer);
  }
  // A false alarm: a follower believes its connection to a live leader dropped.
  if (Chance(0.01) && !up.empty()) {
    SimNode& n = Node(Pick(up));
    if (n.up && !Blocked(n) && !n.paused && n.core->role() == Role::kFollower &&
        n.core->leader() != 0) {
      Trace("member ", n.id, " falsely believes leader ", n.core->leader(), " is gone");
      n.core->LeaderUnreachable();
    }
  }
  // Leadership transfer.
  if (Chance(0.01)) {
    if (std::optional<uint64_t> leader = Leader()) {
      raftpb::ConfState cs = Node(*leader).core->conf_state();
      const uint64_t to = Pick(std::vector<uint64_t>(cs.voters().begin(), cs.voters().end()));
      Trace("transfer leadership ", *leader, " -> ", to);
      ++stats_.transfers;
      Node(*leader).core->TransferLeader(to);
      HandleReadies(Node(*leader));
    }
  }
  // Membership.
  if (Chance(0.006)) AddMember();
  if (Chance(0.006)) RemoveMember();
  // Paused processes, back-to-back membership changes, minority tails (nothing here draws in
  // seeds without them).
  if (pauses_) {
    if (Chance(0.004) && !up.empty()) Pause(Node(Pick(up)));
    if (Chance(0.004)) {
      if (std::optional<uint64_t> leader = Leader()) Pause(Node(*leader));
    }
  }
  if (strike_target_ != 0 && now_ >= strike_at_) Strike();
  if (churn_due_ && !in_churn_) DriveMembership(nullptr);  // a refused change, retried
  if (tails_) {
    if (tail_left_ == 0 && Chance(0.01)) StartTail();
    if (tail_left_ > 0) GrowTail();
  }
}

void Sim::Pause(SimNode& n, bool past_an_election) {
  if (!n.up || n.paused || Blocked(n)) return;
  n.paused = true;
  // Short ones, and ones past an election timeout (10-20 ticks), after which a leader's
  // followers have elected another while it still believes it leads.
  n.paused_until = now_ + static_cast<int64_t>(past_an_election ? Uniform(20, 90)
                                               : Chance(0.5)    ? Uniform(2, 9)
                                                                : Uniform(10, 90));
  n.inbox_room = std::vector<size_t>{3, 10, 30, 1000}[Uniform(0, 3)];
  ++stats_.pauses;
  if (n.paused_until - now_ >= 10) ++stats_.long_pauses;
  Trace("pause ", n.id, n.core->role() == Role::kLeader ? " (leader)" : "",
        " until t=", n.paused_until, ", room for ", n.inbox_room, " messages");
}

void Sim::Resume(SimNode& n) {
  // Clients that still take it for the leader asked it meanwhile: their requests came last,
  // after another leader may have answered them or others.
  bool stale = false;
  for (uint64_t id : StaleLeaders()) stale = stale || id == n.id;
  for (int c = 0; stale && c < opts_.clients; ++c) {
    if (!client_op_[c] && Chance(0.5)) Issue(c, n);
  }
  n.paused = false;
  std::vector<InFlight> inbox;
  inbox.swap(n.inbox);
  std::vector<ClientRequest> requests;
  requests.swap(n.queued_requests);
  // A sender that retransmitted, or the network's duplicates.
  const size_t queued = inbox.size();
  for (size_t i = 0; i < queued; ++i) {
    if (Chance(0.1)) inbox.push_back(inbox[i]);
  }
  // Messages and requests in one batch, in any order: the loop takes what its inputs hold,
  // steps it all, and only then handles a Ready (Node::Loop).
  std::vector<size_t> order(inbox.size() + requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng_);
  Trace("resume ", n.id, ": ", inbox.size(), " messages and ", requests.size(), " requests waited");
  stats_.resumed_messages += inbox.size();
  // If the member dies part-way (a failed read stops it), the snapshots it had not taken yet
  // fail as their calls would: their senders' transports report it.
  auto fail_snapshots_from = [&](size_t pos) {
    for (; pos < order.size(); ++pos) {
      const size_t i = order[pos];
      if (i < inbox.size() && inbox[i].msg.type() == raftpb::MSG_SNAP) {
        snapshot_reports_.emplace_back(inbox[i].sender, n.id, true);
      }
    }
  };
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const size_t i = order[pos];
    if (failure_.failed) return;
    if (!n.up) return fail_snapshots_from(pos);
    if (i >= inbox.size()) {
      const ClientRequest& cr = requests[i - inbox.size()];
      // Still waited for (a client that gave up has moved on, but its request is served).
      const bool waited =
          client_op_[cr.client] && client_op_[cr.client]->history_index == cr.history_index;
      absl::Status s = Submit(n, cr);
      Trace("member ", n.id, " takes request ", cr.req, ": ", s.ToString());
      if (!s.ok() && waited) {
        // Refused: the client hears so, too late to say whether it happened elsewhere.
        ++stats_.unknown_outcomes;
        client_op_[cr.client].reset();
      }
      continue;
    }
    InFlight& f = inbox[i];
    const bool snap = f.msg.type() == raftpb::MSG_SNAP;
    Trace("deliver ", Describe(f.msg), " (waited)");
    if (absl::Status s = CheckPeerMessage(f.msg, n.id); !s.ok()) {
      return Fail("member ", n.id, " refused ", Describe(f.msg), ": ", s.message());
    }
    if (snap) snapshot_reports_.emplace_back(f.sender, n.id, false);
    n.reads->set_armed(true);
    (void)n.core->Step(std::move(f.msg));
    n.reads->set_armed(false);
    if (StoppedByAFailedRead(n)) return fail_snapshots_from(pos + 1);  // the rest dies with it
  }
  HandleReadies(n);
  NoteRemoval(n);
  StopIfRemoved(n);
}

void Sim::DriveMembership(SimNode* leader) {
  if (now_ >= opts_.chaos_ticks || churn_left_ <= 0) {
    churn_due_ = false;
    return;
  }
  if (leader == nullptr) {
    std::optional<uint64_t> id = Leader();
    if (!id) return;
    leader = &Node(*id);
  }
  SimNode& l = *leader;
  in_churn_ = true;
  const uint64_t before = stats_.membership_changes;
  raftpb::ConfState cs = l.core->conf_state();
  std::optional<uint64_t> promote;
  for (uint64_t id : cs.learners()) {
    auto pr = l.core->progress().find(id);
    if (pr != l.core->progress().end() && pr->second.match >= l.core->log().committed()) {
      promote = id;
    }
  }
  if (promote) {
    raftpb::ConfChange cc;
    cc.set_type(raftpb::ConfChange::TYPE_ADD_NODE);
    cc.set_node_id(*promote);
    absl::Status s = l.core->ProposeConfChange(cc);
    Trace("driver: promote ", *promote, " via ", l.id, ": ", s.ToString());
    if (s.ok()) {
      to_promote_.erase(std::remove(to_promote_.begin(), to_promote_.end(), *promote),
                        to_promote_.end());
      ++stats_.membership_changes;
    }
  } else if (cs.voters_size() + cs.learners_size() < 6 && (cs.voters_size() <= 3 || Chance(0.5))) {
    // Proposed before the member exists, so that a refused proposal leaves no member behind.
    raftpb::ConfChange cc;
    cc.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
    cc.set_node_id(next_id_);
    absl::Status s = l.core->ProposeConfChange(cc);
    Trace("driver: add learner ", next_id_, " via ", l.id, ": ", s.ToString());
    if (s.ok()) {
      SimNode& n = nodes_[next_id_];
      n.id = next_id_++;
      n.clock_skew = ClockSkew();
      n.disk = std::make_unique<MemoryLogStore>();
      StartCore(n);
      to_promote_.push_back(n.id);
      ++stats_.membership_changes;
    }
  } else {
    RemoveMember(l);  // traces, counts, and handles the leader's Ready
  }
  const bool accepted = stats_.membership_changes > before;
  if (accepted) {
    HandleReadies(l);
    ++stats_.driven_changes;
    churn_due_ = --churn_left_ > 0;
    churn_now_ = false;
    // The leader is struck before the change commits, now and then: the next leader inherits
    // it unapplied, and the driver proposes the next one there at once.
    if (strike_target_ == 0 && Chance(0.3)) {
      strike_target_ = l.id;
      strike_at_ = now_ + static_cast<int64_t>(Uniform(0, 2));
    }
  }
  in_churn_ = false;
}

void Sim::Strike() {
  SimNode& n = Node(strike_target_);
  strike_target_ = 0;
  if (!n.up || n.core->role() != Role::kLeader) return;
  ++stats_.strikes;
  switch (Uniform(0, pauses_ ? 2 : 1)) {
    case 0:
      Crash(n, "leader struck during membership changes");
      break;
    case 1:
      ++stats_.partitions;
      group_.clear();
      group_[n.id] = 1;
      Trace("isolate leader ", n.id, " during membership changes");
      break;
    default:
      Pause(n);
      break;
  }
}

void Sim::StartTail() {
  std::optional<uint64_t> leader = Leader();
  if (!leader) return;
  SimNode& l = Node(*leader);
  raftpb::ConfState cs = l.core->conf_state();
  if (cs.voters_size() < 3) return;  // no minority that could lead alone
  std::vector<uint64_t> others;
  for (uint64_t id : cs.voters()) {
    if (id != l.id) others.push_back(id);
  }
  std::shuffle(others.begin(), others.end(), rng_);
  ++stats_.partitions;
  group_.clear();
  cut_.clear();
  group_[l.id] = 1;
  // As many voters as leave the rest a majority (which then elects another leader), and now
  // and then its learners, which go on answering it (they must not confirm its reads).
  const size_t minority = (static_cast<size_t>(cs.voters_size()) - 1) / 2;
  for (size_t i = 0; i + 1 < minority; ++i) group_[others[i]] = 1;
  for (uint64_t id : cs.learners()) {
    if (Chance(0.75)) group_[id] = 1;
  }
  tail_leader_ = l.id;
  tail_term_ = l.core->term();
  // Long enough for the majority to elect a leader that answers clients.
  tail_until_ = now_ + static_cast<int64_t>(Uniform(20, 60));
  tail_left_ = static_cast<int>(Uniform(20, 120));
  Trace("partition: leader ", l.id, " with a minority (",
        absl::StrJoin(group_, " ", absl::PairFormatter("@")), "), to grow a tail of ", tail_left_);
  // Paused as well, now and then: its check-quorum stops with its clock, so it resumes
  // leading after the majority's leader answered clients (whose stale reads its learners,
  // still in its term, must not confirm).
  if (pauses_ && Chance(0.5)) Pause(l, /*past_an_election=*/true);
}

void Sim::GrowTail() {
  SimNode& l = Node(tail_leader_);
  if (l.up && l.paused) return;  // goes on after it resumes, if it still leads
  if (!l.up || l.core->role() != Role::kLeader || l.core->term() != tail_term_) {
    tail_left_ = 0;  // deposed (or gone): its tail stays as it is
    return;
  }
  const int batch = std::min(tail_left_, static_cast<int>(Uniform(1, 15)));
  for (int i = 0; i < batch; ++i) {
    // Keys of their own (no client reads them, so the history stays the clients'), values of
    // many sizes, so that the catch-up's size limit cuts the tail at varied places.
    const std::string data = absl::StrCat("P|t", ++tail_seq_, "|t", Uniform(0, 2), "|",
                                          std::string(Uniform(1, 150), 'v'));
    if (!l.core->Propose(data).ok()) {
      tail_left_ = 0;
      break;
    }
    --tail_left_;
    ++stats_.tail_entries;
  }
  HandleReadies(l);
}

void Sim::Clients(bool issue_new) {
  for (int c = 0; c < opts_.clients; ++c) {
    if (client_op_[c]) {
      if (now_ >= client_op_[c]->deadline) {
        // Timed out: the outcome stays unknown (kUnknownReturn).
        Trace("client ", c, " gives up on op ", client_op_[c]->history_index);
        ++stats_.unknown_outcomes;
        client_op_[c].reset();
      }
      continue;
    }
    if (!issue_new || !Chance(0.3)) continue;
    std::vector<uint64_t> up = UpNodes();
    if (up.empty()) continue;
    // Mostly the leader, sometimes any member (which forwards).
    std::optional<uint64_t> leader = Leader();
    uint64_t target = leader && Chance(0.7) ? *leader : Pick(up);
    if ((pauses_ || tails_) && Chance(0.3)) {
      // A client whose idea of the leader is out of date (a cached leader that has not told
      // it otherwise: paused, or cut off with a minority) asks it, after the new leader may
      // have answered others.
      std::vector<uint64_t> stale = StaleLeaders();
      if (!stale.empty()) target = Pick(stale);
    }
    SimNode& n = Node(target);
    if (Blocked(n)) continue;  // its loop is inside a stalled write: the client tries later
    Issue(c, n);
  }
}

void Sim::Issue(int c, SimNode& n) {
  KvOp op;
  op.client = c;
  op.key = absl::StrCat("k", Uniform(0, 2));
  op.call = now_ * 2;  // calls at even, returns at odd logical times: calls first
  const std::string req = absl::StrCat("r", ++request_seq_);
  const double r = std::uniform_real_distribution<double>(0, 1)(rng_);
  ClientRequest cr{c, history_.size(), req, false, ""};
  if (r < 0.55) {
    op.kind = KvOp::Kind::kPut;
    op.value = absl::StrCat("c", c, "-", ++client_counter_[c]);
    cr.data = absl::StrCat("P|", req, "|", op.key, "|", op.value);
  } else if (r < 0.85) {
    op.kind = KvOp::Kind::kGet;
    cr.read_index = true;
  } else {
    op.kind = KvOp::Kind::kGet;
    cr.data = absl::StrCat("G|", req, "|", op.key);
  }
  if (n.paused) {
    // Its process is paused: the request waits in its socket buffer, asked now.
    n.queued_requests.push_back(cr);
  } else if (!Submit(n, cr).ok()) {
    return;  // refused at once: nothing happened, no history
  }
  if (cr.read_index) read_floor_[req] = answered_log_index_;
  history_.push_back(op);
  history_request_.push_back(req);
  // Clients give up sooner in seeds with pauses: one stuck at a paused member moves on, and
  // the next leader may answer it before the paused one resumes.
  client_op_[c] = PendingOp{history_.size() - 1, n.id, now_ + (pauses_ ? 30 : 60)};
  Trace("client ", c, " ", op.kind == KvOp::Kind::kPut ? "put " : "get ", op.key, " ", op.value,
        " at ", n.id, " (", req, ")", n.paused ? " (paused: queued)" : "");
  if (n.paused) return;
  HandleReadies(n);
  // Now and then a leader's process stalls just after it asked its followers to confirm a
  // read: their answers wait in its buffers while another leader may take over.
  if (pauses_ && cr.read_index && n.up && n.core->role() == Role::kLeader && Chance(0.3)) {
    Pause(n);
  }
}

absl::Status Sim::Submit(SimNode& n, const ClientRequest& cr) {
  if (cr.read_index) {
    absl::Status s = n.core->ReadIndex(cr.req);
    if (s.ok()) n.reads_waiting[cr.req] = cr.history_index;
    return s;
  }
  absl::Status s = n.core->Propose(cr.data);
  if (s.ok()) n.proposed[cr.req] = cr.history_index;
  return s;
}

void Sim::CompleteOp(size_t index, bool found, const std::string& value, uint64_t log_index) {
  const int client = history_[index].client;
  if (!client_op_[client] || client_op_[client]->history_index != index) return;  // gave up
  answered_log_index_ = std::max(answered_log_index_, log_index);
  KvOp& op = history_[index];
  op.ret = now_ * 2 + 1;
  if (op.kind == KvOp::Kind::kGet) {
    op.found = found;
    op.value = value;
    ++stats_.acked_reads;
  } else {
    acked_write_requests_.insert(history_request_[index]);
    ++stats_.acked_writes;
  }
  Trace("client ", client, " done: ", op.key, " ", found ? "found " : "", op.value);
  client_op_[client].reset();
}

}  // namespace shoal::raft::sim::internal

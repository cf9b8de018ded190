#include "raft/core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace shoal::raft {
namespace {

using raftpb::Message;
using raftpb::MessageType;

constexpr char kCampaignTransfer[] = "CampaignTransfer";

MessageType VoteResponseType(MessageType t) {
  return t == raftpb::MSG_PRE_VOTE ? raftpb::MSG_PRE_VOTE_RESP : raftpb::MSG_VOTE_RESP;
}

bool IsVoteRequest(MessageType t) { return t == raftpb::MSG_VOTE || t == raftpb::MSG_PRE_VOTE; }

bool IsResponseTermCarrying(MessageType t) {
  return t == raftpb::MSG_VOTE || t == raftpb::MSG_VOTE_RESP || t == raftpb::MSG_PRE_VOTE ||
         t == raftpb::MSG_PRE_VOTE_RESP;
}

bool HardStateEqual(const raftpb::HardState& a, const raftpb::HardState& b) {
  return a.term() == b.term() && a.vote() == b.vote() && a.commit() == b.commit();
}

absl::Status NoLeader(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, " dropped: no leader"));
}

absl::Status BadPeerMessage(const Message& m, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("raft: ", MessageType_Name(m.type()),
                                                 " from member ", m.from(), " ", what,
                                                 "; dropped"));
}

bool KnownEntryType(int t) {
  return t == raftpb::ENTRY_TYPE_NORMAL || t == raftpb::ENTRY_TYPE_CONF_CHANGE;
}

}  // namespace

absl::Status CheckPeerMessage(const raftpb::Message& m, uint64_t self) {
  if (!raftpb::MessageType_IsValid(m.type())) {
    return absl::InvalidArgumentError(absl::StrCat("raft: a message of unknown type ",
                                                   static_cast<int>(m.type()), " from member ",
                                                   m.from(), "; dropped"));
  }
  bool needs_term = true;
  switch (m.type()) {
    case raftpb::MSG_HUP:
    case raftpb::MSG_BEAT:
    case raftpb::MSG_UNREACHABLE:
    case raftpb::MSG_SNAP_STATUS:
    case raftpb::MSG_CHECK_QUORUM:
      // A member's own timers and its transport's reports: from a peer, a MSG_CHECK_QUORUM
      // would depose a live leader and a MSG_UNREACHABLE stall a healthy follower.
      return BadPeerMessage(m, "is a member's own input, never a peer's");
    case raftpb::MSG_PROP:
    case raftpb::MSG_READ_INDEX:
    case raftpb::MSG_TRANSFER_LEADER:
    case raftpb::MSG_REMOVED:
      needs_term = false;  // forwarded requests are term-less; MSG_REMOVED is a fact
      break;
    default:
      break;
  }
  if (m.from() == 0) return BadPeerMessage(m, "names no sender");
  if (m.to() != self) {
    return BadPeerMessage(m, absl::StrCat("is addressed to member ", m.to(), ", not to member ",
                                          self));
  }
  if (needs_term && m.term() == 0) return BadPeerMessage(m, "carries no term");
  // No cluster reaches such a term or index (2^62: a term a nanosecond for 146 years); near
  // 2^64, a member that took one on wrapped round to 0 at its next election or entry.
  const auto too_big = [](uint64_t v) { return v > kMaxTermOrIndex; };
  if (too_big(m.term()) || too_big(m.log_term()) || too_big(m.index()) || too_big(m.commit()) ||
      too_big(m.reject_hint())) {
    return BadPeerMessage(m, absl::StrCat("carries a term or index beyond ", kMaxTermOrIndex,
                                          " (term ", m.term(), ", log term ", m.log_term(),
                                          ", index ", m.index(), ", commit ", m.commit(),
                                          ", hint ", m.reject_hint(), ")"));
  }
  for (const raftpb::Entry& e : m.entries()) {
    if (too_big(e.term()) || too_big(e.index())) {
      return BadPeerMessage(m, absl::StrCat("carries an entry at index ", e.index(), " of term ",
                                            e.term(), ", beyond ", kMaxTermOrIndex));
    }
  }
  if (m.has_snapshot() && (too_big(m.snapshot().metadata().index()) ||
                           too_big(m.snapshot().metadata().term()))) {
    return BadPeerMessage(m, absl::StrCat("carries a snapshot at index ",
                                          m.snapshot().metadata().index(), " of term ",
                                          m.snapshot().metadata().term(), ", beyond ",
                                          kMaxTermOrIndex));
  }
  switch (m.type()) {
    case raftpb::MSG_PROP:
      if (m.entries_size() == 0) return BadPeerMessage(m, "carries no entries");
      for (const raftpb::Entry& e : m.entries()) {
        if (!KnownEntryType(e.type())) {
          return BadPeerMessage(m, absl::StrCat("carries an entry of unknown type ",
                                                static_cast<int>(e.type())));
        }
      }
      break;
    case raftpb::MSG_READ_INDEX:
      if (m.entries_size() != 1) {
        return BadPeerMessage(m, absl::StrCat("carries ", m.entries_size(),
                                              " entries; a read request carries exactly one, "
                                              "its context"));
      }
      break;
    case raftpb::MSG_APP: {
      if (m.log_term() > m.term()) {
        return BadPeerMessage(m, absl::StrCat("matches at term ", m.log_term(),
                                              ", after its own term ", m.term()));
      }
      if ((m.log_term() == 0) != (m.index() == 0)) {
        return BadPeerMessage(m, absl::StrCat("matches at index ", m.index(), " of term ",
                                              m.log_term(), ": only index 0 has term 0"));
      }
      uint64_t prev_term = m.log_term();
      for (int i = 0; i < m.entries_size(); ++i) {
        const raftpb::Entry& e = m.entries(i);
        if (e.index() != m.index() + 1 + static_cast<uint64_t>(i)) {
          return BadPeerMessage(m, absl::StrCat("carries entry ", e.index(), " at position ", i,
                                                " after index ", m.index(),
                                                ": entries must follow on one another"));
        }
        if (e.term() == 0 || e.term() < prev_term || e.term() > m.term()) {
          return BadPeerMessage(m, absl::StrCat("carries entry ", e.index(), " of term ",
                                                e.term(), ", outside [", prev_term, ", ",
                                                m.term(), "]"));
        }
        if (!KnownEntryType(e.type())) {
          return BadPeerMessage(m, absl::StrCat("carries entry ", e.index(), " of unknown type ",
                                                static_cast<int>(e.type())));
        }
        // Every member applies a committed membership change, and one it cannot read would
        // stop it there (the node fails a CHECK on it): refused before it is in the log.
        if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE &&
            !raftpb::ConfChange().ParseFromString(e.data())) {
          return BadPeerMessage(m, absl::StrCat("carries entry ", e.index(),
                                                ", a membership change that does not parse"));
        }
        prev_term = e.term();
      }
      break;
    }
    case raftpb::MSG_SNAP: {
      if (m.snapshot_unfilled()) break;
      const raftpb::SnapshotMetadata& meta = m.snapshot().metadata();
      if (meta.index() == 0 || meta.term() == 0 || meta.term() > m.term()) {
        return BadPeerMessage(m, absl::StrCat("carries a snapshot at index ", meta.index(),
                                              " of term ", meta.term(), " (its own term ",
                                              m.term(), ")"));
      }
      if (meta.conf_state().voters_size() == 0) {
        return BadPeerMessage(m, "carries a snapshot whose membership has no voters");
      }
      break;
    }
    default:
      break;
  }
  return absl::OkStatus();
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

// ---- Construction ----

Core::Core(const Config& c)
    : id_(c.id),
      log_(c.storage, c.max_committed_size_per_ready),
      max_msg_size_(c.max_size_per_msg),
      max_entry_bytes_(c.max_entry_bytes),
      max_uncommitted_bytes_(c.max_uncommitted_bytes),
      max_inflight_(c.max_inflight_msgs),
      max_inflight_bytes_(c.max_inflight_bytes),
      max_learner_lag_(c.max_learner_lag),
      check_quorum_(c.check_quorum),
      pre_vote_(c.pre_vote),
      hold_leader_writes_(c.hold_leader_writes),
      heartbeat_timeout_(c.heartbeat_tick),
      election_timeout_(c.election_tick),
      rng_(c.random_seed != 0 ? c.random_seed : c.id * 0x9E3779B97F4A7C15ull) {}

absl::StatusOr<std::unique_ptr<Core>> Core::Create(const Config& config) {
  if (config.id == 0) return absl::InvalidArgumentError("raft: id must not be 0");
  if (config.storage == nullptr) return absl::InvalidArgumentError("raft: storage is required");
  if (config.heartbeat_tick <= 0) {
    return absl::InvalidArgumentError("raft: heartbeat_tick must be greater than 0");
  }
  if (config.election_tick <= config.heartbeat_tick) {
    return absl::InvalidArgumentError("raft: election_tick must be greater than heartbeat_tick");
  }
  if (config.max_inflight_msgs == 0) {
    return absl::InvalidArgumentError("raft: max_inflight_msgs must be greater than 0");
  }
  if (config.max_entry_bytes == 0) {
    return absl::InvalidArgumentError("raft: max_entry_bytes must be greater than 0");
  }
  std::unique_ptr<Core> core(new Core(config));
  absl::Status s = core->Init(config);
  if (!s.ok()) return s;
  return core;
}

absl::Status Core::Init(const Config& config) {
  absl::StatusOr<InitialState> init = config.storage->GetInitialState();
  if (!init.ok()) return init.status();
  const raftpb::ConfState& cs = init->conf_state;
  for (uint64_t v : cs.voters()) progress_.emplace(v, NewProgress(1, false));
  for (uint64_t l : cs.learners()) progress_.emplace(l, NewProgress(1, true));
  auto self = progress_.find(id_);
  is_learner_ = self != progress_.end() && self->second.is_learner;

  const raftpb::HardState& hs = init->hard_state;
  if (hs.term() != 0 || hs.vote() != 0 || hs.commit() != 0) {
    if (hs.commit() > log_.LastIndex()) {
      return absl::DataLossError(absl::StrCat("raft: stored commit index ", hs.commit(),
                                              " is outside the stored log [", log_.committed(),
                                              ", ", log_.LastIndex(), "]"));
    }
    // The commit index is written with the next synced write, so it may lag a snapshot of
    // what was applied and the compaction behind it: what was compacted was committed.
    log_.set_committed(std::max(hs.commit(), log_.committed()));
    term_ = hs.term();
    vote_ = hs.vote();
  }
  if (config.applied > 0) {
    if (config.applied > log_.LastIndex()) {
      return absl::InvalidArgumentError(absl::StrCat("raft: applied index ", config.applied,
                                                     " is beyond the last stored entry ",
                                                     log_.LastIndex()));
    }
    // Only committed entries are ever applied, so the commit index is at least the applied
    // one even when the stored hard state lags behind it (the commit index is persisted lazily,
    // and a snapshot may cover entries applied before their commit index reached the disk).
    if (config.applied > log_.committed()) log_.set_committed(config.applied);
    log_.AppliedTo(config.applied);
  }
  BecomeFollower(term_, 0);
  SetRemoved(cs);
  prev_soft_ = SoftState{lead_, role_};
  prev_hard_ = hard_state();
  return absl::OkStatus();
}

raftpb::HardState Core::hard_state() const {
  raftpb::HardState hs;
  hs.set_term(term_);
  hs.set_vote(vote_);
  hs.set_commit(log_.committed());
  return hs;
}

raftpb::ConfState Core::conf_state() const {
  raftpb::ConfState cs;
  for (const auto& [id, pr] : progress_) {
    if (pr.is_learner) {
      cs.add_learners(id);
    } else {
      cs.add_voters(id);
    }
  }
  for (uint64_t id : removed_) cs.add_removed(id);
  return cs;
}

void Core::SetRemoved(const raftpb::ConfState& cs) {
  removed_ = std::set<uint64_t>(cs.removed().begin(), cs.removed().end());
  if (removed_.count(id_) != 0) BecomeRemoved();
}

void Core::BecomeRemoved() {
  if (self_removed_) return;
  self_removed_ = true;
  // Whatever it was (a leader cut off while the others removed it, say), it leads and follows
  // no one any more.
  BecomeFollower(term_, 0);
}

bool Core::FromRemovedMember(const Message& m) const {
  if (m.from() == id_ || removed_.count(m.from()) == 0) return false;
  switch (m.type()) {
    // Local inputs that name a peer.
    case raftpb::MSG_UNREACHABLE:
    case raftpb::MSG_SNAP_STATUS:
      return false;
    case raftpb::MSG_TRANSFER_LEADER:
      return m.term() != 0;  // local when term-less (TransferLeader)
    default:
      return true;
  }
}

// ---- Role changes ----

void Core::Reset(uint64_t term) {
  // A removed leader that stops leading for whatever reason (done leaving, a higher term, no
  // quorum) is removed from then on.
  const bool leaving_removed = leaving_commit_ != 0 && leaving_removed_;
  if (term_ != term) {
    term_ = term;
    vote_ = 0;
  }
  lead_ = 0;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  uncommitted_bytes_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  votes_.clear();
  const uint64_t last = log_.LastIndex();
  for (auto& [id, pr] : progress_) {
    const bool learner = pr.is_learner;
    pr = NewProgress(last + 1, learner);
  }
  UpdateSelfProgress();
  pending_conf_index_ = 0;
  read_index_pending_.clear();
  read_index_queue_.clear();
  leaving_commit_ = 0;
  leaving_removed_ = false;
  if (leaving_removed) self_removed_ = true;
}

void Core::ResetRandomizedElectionTimeout() {
  std::uniform_int_distribution<int> dist(0, election_timeout_ - 1);
  randomized_election_timeout_ = election_timeout_ + dist(rng_);
}

void Core::BecomeFollower(uint64_t term, uint64_t lead) {
  Reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Core::BecomePreCandidate() {
  SHOAL_CHECK(role_ != Role::kLeader, "invalid transition leader -> pre-candidate");
  // A pre-candidate changes neither term nor vote.
  votes_.clear();
  lead_ = 0;
  role_ = Role::kPreCandidate;
}

void Core::BecomeCandidate() {
  SHOAL_CHECK(role_ != Role::kLeader, "invalid transition leader -> candidate");
  Reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Core::BecomeLeader() {
  SHOAL_CHECK(role_ != Role::kFollower, "invalid transition follower -> leader");
  Reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  auto self = progress_.find(id_);
  if (self != progress_.end()) self->second.BecomeReplicate();
  UpdateSelfProgress();
  // A conf change proposed before the entries inherited from earlier terms are applied could
  // overlap an uncommitted one of an earlier leader among them: wait until they are.
  pending_conf_index_ = log_.LastIndex();
  leader_term_start_ = log_.LastIndex() + 1;
  AppendEntries({raftpb::Entry()});
}

// ---- Time ----

void Core::Tick() {
  if (!log_.storage_error().ok()) return;  // see storage_error(): the core takes nothing more
  if (role_ == Role::kLeader) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Core::TickElection() {
  ++election_elapsed_;
  if (!PastElectionTimeout()) return;
  if (Promotable()) {
    election_elapsed_ = 0;
    Message m;
    m.set_type(raftpb::MSG_HUP);
    m.set_from(id_);
    (void)Step(m);
  } else if (!self_removed_) {
    // A member that cannot campaign (a learner, or one that knows itself as no voter yet) and
    // has heard from no leader for an election timeout asks the voters it knows, so that it
    // is not forgotten in silence: a leader that still has it answers with what it lacks, and
    // a member that removed it (an aborted join, a removal while it was cut off) tells it so.
    // It no longer knows a leader either: kept, the leader's lease would be renewed by this
    // member's own asking, and it would ignore for ever the votes of a member that promoted
    // it while it was cut off (a single voter adding a second commits that alone, and then
    // needs the newcomer's vote for everything).
    election_elapsed_ = 0;
    lead_ = 0;
    for (const auto& [id, pr] : progress_) {
      if (id == id_ || pr.is_learner) continue;
      Message m;
      m.set_type(raftpb::MSG_HEARTBEAT_RESP);
      m.set_to(id);
      Send(std::move(m));
    }
  }
}

void Core::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= election_timeout_) {
    election_elapsed_ = 0;
    if (check_quorum_) {
      Message m;
      m.set_type(raftpb::MSG_CHECK_QUORUM);
      m.set_from(id_);
      (void)Step(m);
    }
    // A transfer that did not finish within an election timeout is abandoned.
    if (role_ == Role::kLeader && lead_transferee_ != 0) AbortLeaderTransfer();
  }
  if (role_ != Role::kLeader) return;
  if (heartbeat_elapsed_ >= heartbeat_timeout_) {
    heartbeat_elapsed_ = 0;
    Message m;
    m.set_type(raftpb::MSG_BEAT);
    m.set_from(id_);
    (void)Step(m);
  }
}

// ---- Elections ----

bool Core::Promotable() const {
  auto it = progress_.find(id_);
  return it != progress_.end() && !it->second.is_learner && !log_.HasPendingSnapshot();
}

void Core::Hup(CampaignType type) {
  if (role_ == Role::kLeader) return;
  // Told it was removed (MSG_REMOVED) before it applied its removal, it still counts itself a
  // voter: a TimeoutNow (a transfer to it begun before the removal, delayed) made it campaign,
  // and a voter that had not applied the removal yet took the higher term and deposed the
  // leader.
  if (self_removed_) return;
  // Promotable first: while a received snapshot is pending, the entries between the applied
  // and the committed index are gone from the log.
  if (!Promotable()) return;
  // A membership change committed but not applied yet may take this member's vote away (or
  // the leader that sent TimeoutNow may not know it yet): campaign once it is applied.
  if (HasUnappliedConfChanges()) return;
  DoCampaign(type);
}

bool Core::HasUnappliedConfChanges() const {
  if (log_.committed() <= log_.applied()) return false;
  absl::StatusOr<std::vector<raftpb::Entry>> ents =
      log_.Slice(log_.applied() + 1, log_.committed() + 1, UINT64_MAX);
  if (!ents.ok() && !log_.storage_error().ok()) return true;  // unknown: do not campaign
  SHOAL_CHECK(ents.ok(), "reading unapplied entries: ", ents.status().ToString());
  for (const raftpb::Entry& e : *ents) {
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) return true;
  }
  return false;
}

void Core::Campaign() {
  Message m;
  m.set_type(raftpb::MSG_HUP);
  m.set_from(id_);
  (void)Step(m);
}

void Core::DoCampaign(CampaignType type) {
  if (!Promotable()) return;
  MessageType vote_msg;
  uint64_t term;
  if (type == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_msg = raftpb::MSG_PRE_VOTE;
    // Pre-votes are asked for the term we would campaign in, without moving to it.
    term = term_ + 1;
  } else {
    BecomeCandidate();
    vote_msg = raftpb::MSG_VOTE;
    term = term_;
  }
  if (Poll(id_, VoteResponseType(vote_msg), true) == VoteResult::kWon) {
    // A single voter wins at once.
    if (type == CampaignType::kPreElection) {
      DoCampaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (const auto& [id, pr] : progress_) {
    if (id == id_ || pr.is_learner) continue;
    Message m;
    m.set_type(vote_msg);
    m.set_to(id);
    m.set_term(term);
    m.set_index(log_.LastIndex());
    m.set_log_term(log_.LastTerm());
    if (type == CampaignType::kTransfer) m.set_context(kCampaignTransfer);
    Send(std::move(m));
  }
}

VoteResult Core::Poll(uint64_t id, MessageType /*type*/, bool granted) {
  votes_.emplace(id, granted);  // the first answer from a member counts
  return TallyVotes(progress_, votes_);
}

// ---- Step ----

absl::Status Core::Step(Message&& m) {
  movable_snapshot_ = m.type() == raftpb::MSG_SNAP && m.has_snapshot() ? m.mutable_snapshot()
                                                                        : nullptr;
  absl::Status s = Step(static_cast<const Message&>(m));
  movable_snapshot_ = nullptr;
  return s;
}

absl::Status Core::StepPeer(const Message& m) {
  if (absl::Status s = CheckPeerMessage(m, id_); !s.ok()) return s;
  return Step(m);
}

absl::Status Core::Step(const Message& m) {
  // After a failed read the core takes nothing more (storage_error()): stepping on from state
  // decided by the failed read could fail a CHECK, and its owner is stopping the member.
  if (!log_.storage_error().ok()) return log_.storage_error();
  if (m.type() == raftpb::MSG_REMOVED) {
    // From a member that applied this member's removal: a committed fact, whatever the terms.
    if (m.to() == id_) BecomeRemoved();
    return absl::OkStatus();
  }
  if (FromRemovedMember(m)) {
    // It was away when it was removed, and still campaigns (or leads, or forwards) with the
    // membership it last knew: tell it, so that it stops.
    Message resp;
    resp.set_type(raftpb::MSG_REMOVED);
    resp.set_to(m.from());
    Send(std::move(resp));
    return absl::OkStatus();
  }
  if (self_removed_) {
    switch (m.type()) {
      case raftpb::MSG_PROP:
        return absl::FailedPreconditionError(
            "proposal dropped: this member was removed from the cluster; send writes to a "
            "current member (a removed manager rejoins under a new id)");
      case raftpb::MSG_READ_INDEX:
        if (m.from() == id_) {
          return absl::FailedPreconditionError(
              "read dropped: this member was removed from the cluster; read from a current "
              "member (a removed manager rejoins under a new id)");
        }
        break;
      case raftpb::MSG_HUP:
        return absl::OkStatus();  // never campaigns again
      default:
        break;  // still answers those that have not applied its removal yet
    }
  }
  if (m.type() == raftpb::MSG_PROP) {
    for (const raftpb::Entry& e : m.entries()) {
      if (e.data().size() > max_entry_bytes_) {
        return absl::InvalidArgumentError(absl::StrCat("raft: proposal of ", e.data().size(),
                                                       " bytes exceeds the limit of ",
                                                       max_entry_bytes_, " bytes per entry"));
      }
    }
  }
  // Term bookkeeping first (§5.1).
  if (m.term() == 0) {
    // Local message.
  } else if (m.term() > term_) {
    if (IsVoteRequest(m.type())) {
      const bool force = m.context() == kCampaignTransfer;
      const bool in_lease = check_quorum_ && lead_ != 0 && election_elapsed_ < election_timeout_;
      // A member that heard from a live leader recently refuses to help depose it.
      if (!force && in_lease) return absl::OkStatus();
    }
    if (m.type() == raftpb::MSG_PRE_VOTE) {
      // Never change term on a pre-vote.
    } else if (m.type() == raftpb::MSG_PRE_VOTE_RESP && !m.reject()) {
      // The term moves when the pre-election is won.
    } else if (m.type() == raftpb::MSG_APP || m.type() == raftpb::MSG_HEARTBEAT ||
               m.type() == raftpb::MSG_SNAP) {
      BecomeFollower(m.term(), m.from());
    } else {
      BecomeFollower(m.term(), 0);
    }
  } else if (m.term() < term_) {
    if ((check_quorum_ || pre_vote_) &&
        (m.type() == raftpb::MSG_HEARTBEAT || m.type() == raftpb::MSG_APP)) {
      // A stale leader (e.g. cut off, then healed) learns the newer term from the reply and
      // steps down; without it, pre-vote could keep the cluster from ever electing past it.
      Message resp;
      resp.set_type(raftpb::MSG_APP_RESP);
      resp.set_to(m.from());
      Send(std::move(resp));
    } else if (m.type() == raftpb::MSG_PRE_VOTE) {
      Message resp;
      resp.set_type(raftpb::MSG_PRE_VOTE_RESP);
      resp.set_to(m.from());
      resp.set_term(term_);
      resp.set_reject(true);
      Send(std::move(resp));
    }
    return absl::OkStatus();
  }

  switch (m.type()) {
    case raftpb::MSG_HUP:
      Hup(pre_vote_ ? CampaignType::kPreElection : CampaignType::kElection);
      return absl::OkStatus();
    case raftpb::MSG_VOTE:
    case raftpb::MSG_PRE_VOTE:
      return StepLocalVote(m);
    default:
      break;
  }
  switch (role_) {
    case Role::kLeader:
      return StepLeader(m);
    case Role::kCandidate:
    case Role::kPreCandidate:
      return StepCandidate(m);
    case Role::kFollower:
      return StepFollower(m);
  }
  return absl::OkStatus();
}

absl::Status Core::StepLocalVote(const Message& m) {
  // We can vote for m.from if we already did in this term, or have not voted and know no
  // leader, or it is a pre-vote for a later term.
  const bool can_vote = vote_ == m.from() || (vote_ == 0 && lead_ == 0) ||
                        (m.type() == raftpb::MSG_PRE_VOTE && m.term() > term_);
  Message resp;
  resp.set_to(m.from());
  resp.set_type(VoteResponseType(m.type()));
  if (can_vote && log_.IsUpToDate(m.index(), m.log_term())) {
    // The response carries the request's term: for a pre-vote that is a future term.
    resp.set_term(m.term());
    Send(std::move(resp));
    if (m.type() == raftpb::MSG_VOTE) {
      election_elapsed_ = 0;
      vote_ = m.from();
    } else if (role_ == Role::kPreCandidate && m.from() < id_) {
      // Two followers that lose their leader at the same moment (its process died, and both
      // streams from it ended at once) campaign within the same few ticks. Each would win
      // its pre-vote with the other's help, stand in the next term, vote for itself, and
      // the vote would split: a whole election timeout (1-2 s) lost, seen in 4 of 280 leader
      // kills on three members. A pre-candidate that helps a lower-numbered member
      // stands aside for it, and campaigns again within a few ticks should that one not win.
      BecomeFollower(term_, 0);
      std::uniform_int_distribution<int> dist(1, 3);
      election_elapsed_ = std::max(0, randomized_election_timeout_ - dist(rng_));
    }
  } else {
    resp.set_term(term_);
    resp.set_reject(true);
    Send(std::move(resp));
  }
  return absl::OkStatus();
}

absl::Status Core::StepLeader(const Message& m) {
  switch (m.type()) {
    case raftpb::MSG_BEAT:
      BcastHeartbeat();
      return absl::OkStatus();
    case raftpb::MSG_CHECK_QUORUM:
      // Not while leaving the voters: the others would be left without the commit index
      // (a higher term still deposes it).
      if (!QuorumActive() && leaving_commit_ == 0) BecomeFollower(term_, 0);
      return absl::OkStatus();
    case raftpb::MSG_PROP: {
      SHOAL_CHECK(m.entries_size() > 0, "proposal without entries");
      if (progress_.find(id_) == progress_.end()) {
        return absl::FailedPreconditionError("proposal dropped: this member was removed");
      }
      if (leaving_commit_ != 0) {
        return absl::UnavailableError(
            "proposal dropped: this leader left the voters and is handing over");
      }
      if (lead_transferee_ != 0) {
        return absl::UnavailableError("proposal dropped: leadership transfer in progress");
      }
      uint64_t bytes = 0;
      for (const raftpb::Entry& e : m.entries()) bytes += e.data().size();
      if (max_uncommitted_bytes_ > 0 && uncommitted_bytes_ > 0 &&
          uncommitted_bytes_ + bytes > max_uncommitted_bytes_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "proposal dropped: ", uncommitted_bytes_, " bytes of entries wait to commit, and ",
            bytes, " more would pass the limit of ", max_uncommitted_bytes_,
            " bytes (the followers are behind); retry later"));
      }
      // Membership changes are checked before anything is appended: one refused change
      // drops the whole proposal and leaves no trace.
      int conf_changes = 0;
      for (const raftpb::Entry& e : m.entries()) {
        if (e.type() != raftpb::ENTRY_TYPE_CONF_CHANGE) continue;
        if (pending_conf_index_ > log_.applied()) {
          return absl::FailedPreconditionError(
              absl::StrCat("membership change dropped: another one (index ", pending_conf_index_,
                           ") is not applied yet"));
        }
        if (++conf_changes > 1) {
          return absl::FailedPreconditionError(
              "membership change dropped: one proposal carries two; they go one at a time");
        }
        if (absl::Status s = CheckConfChange(e.data()); !s.ok()) return s;
      }
      std::vector<raftpb::Entry> ents(m.entries().begin(), m.entries().end());
      for (size_t i = 0; i < ents.size(); ++i) {
        if (ents[i].type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
          pending_conf_index_ = log_.LastIndex() + i + 1;
        }
      }
      AppendEntries(std::move(ents));
      uncommitted_bytes_ += bytes;
      BcastAppend();
      return absl::OkStatus();
    }
    case raftpb::MSG_READ_INDEX:
      if (leaving_commit_ != 0) return NoLeader("read");  // handing over: ask the next one
      // The commit index is only known to be current once an entry of this term commits, for
      // a single voter too: its stored commit index may lag what it committed and answered
      // before a restart (a commit-only hard state is written with the next synced write),
      // and a survivor of a two-voter cluster may not have heard the last commit index.
      if (!CommittedEntryInCurrentTerm()) {
        pending_read_index_messages_.push_back(m);
        return absl::OkStatus();
      }
      ServeReadIndex(m);
      return absl::OkStatus();
    case raftpb::MSG_TRANSFER_LEADER: {
      if (leaving_commit_ != 0) return absl::OkStatus();  // leaving: no hand-over to start
      auto it = progress_.find(m.from());
      if (it == progress_.end() || it->second.is_learner) return absl::OkStatus();
      const uint64_t transferee = m.from();
      if (lead_transferee_ == transferee || transferee == id_) return absl::OkStatus();
      AbortLeaderTransfer();
      election_elapsed_ = 0;  // the transfer must finish within an election timeout
      lead_transferee_ = transferee;
      if (it->second.match == log_.LastIndex()) {
        SendTimeoutNow(transferee);
      } else {
        SendAppend(transferee);
      }
      return absl::OkStatus();
    }
    default:
      break;
  }

  auto it = progress_.find(m.from());
  if (it == progress_.end()) return absl::OkStatus();
  Progress& pr = it->second;
  switch (m.type()) {
    case raftpb::MSG_APP_RESP:
      HandleAppendResponse(m, pr);
      break;
    case raftpb::MSG_HEARTBEAT_RESP:
      HandleHeartbeatResponse(m, pr);
      break;
    case raftpb::MSG_SNAP_STATUS:
      if (pr.state != Progress::State::kSnapshot) break;
      if (!m.reject()) {
        pr.BecomeProbe();
      } else {
        pr.pending_snapshot = 0;
        pr.BecomeProbe();
      }
      // Wait for the follower's answer (or the next heartbeat) before probing again.
      pr.probe_sent = true;
      break;
    case raftpb::MSG_UNREACHABLE:
      if (pr.state == Progress::State::kReplicate) pr.BecomeProbe();
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

void Core::HandleAppendResponse(const Message& m, Progress& pr) {
  pr.recent_active = true;
  pr.commit_known = std::max(pr.commit_known, m.commit());
  if (leaving_commit_ != 0 && MaybeFinishLeaving()) return;
  if (m.reject()) {
    uint64_t next_probe = m.reject_hint();
    if (m.log_term() > 0) {
      // Skip every entry of terms the follower cannot match (§5.3, optimized).
      next_probe = log_.FindConflictByTerm(m.reject_hint(), m.log_term()).first;
    }
    if (pr.MaybeDecrTo(m.index(), next_probe)) {
      if (pr.state == Progress::State::kReplicate) pr.BecomeProbe();
      SendAppend(m.from());
    }
    return;
  }
  const bool was_paused = pr.IsPaused();
  if (!pr.MaybeUpdate(m.index())) return;
  switch (pr.state) {
    case Progress::State::kProbe:
      pr.BecomeReplicate();
      break;
    case Progress::State::kSnapshot:
      if (pr.match >= pr.pending_snapshot) {
        pr.BecomeProbe();
        pr.BecomeReplicate();
      }
      break;
    case Progress::State::kReplicate:
      pr.inflights.FreeLE(m.index());
      break;
  }
  if (MaybeCommit()) {
    ReleasePendingReadIndexMessages();
    BcastCommit();
  } else if (was_paused) {
    SendAppend(m.from());
  }
  // Fill the window.
  while (MaybeSendAppend(m.from(), false)) {
  }
  // Its last append answered: tell it the commit index it has not heard (BcastCommit skipped
  // it while appends were in flight).
  if (pr.state == Progress::State::kReplicate && pr.inflights.Count() == 0 &&
      pr.commit_sent < std::min(log_.committed(), pr.match)) {
    SendAppend(m.from());
  }
  if (m.from() == lead_transferee_ && pr.match == log_.LastIndex()) SendTimeoutNow(m.from());
}

void Core::HandleHeartbeatResponse(const Message& m, Progress& pr) {
  pr.recent_active = true;
  pr.commit_known = std::max(pr.commit_known, m.commit());
  if (leaving_commit_ != 0 && MaybeFinishLeaving()) return;
  pr.probe_sent = false;
  // A full window may be full of lost messages: free one slot so the pipeline restarts.
  if (pr.state == Progress::State::kReplicate && pr.inflights.Full()) pr.inflights.FreeFirstOne();
  if (pr.match < log_.LastIndex()) SendAppend(m.from());

  if (m.context().empty()) return;
  auto req = read_index_pending_.find(m.context());
  if (req == read_index_pending_.end()) return;
  req->second.acks.insert(m.from());
  size_t voter_acks = 0;
  for (uint64_t id : req->second.acks) {
    auto p = progress_.find(id);
    if (p != progress_.end() && !p->second.is_learner) ++voter_acks;
  }
  if (voter_acks < Quorum(progress_)) return;
  // This request and every earlier one are confirmed.
  while (!read_index_queue_.empty()) {
    const std::string ctx = read_index_queue_.front();
    read_index_queue_.pop_front();
    auto node = read_index_pending_.extract(ctx);
    RespondToReadIndex(node.mapped().req, node.mapped().index);
    if (ctx == m.context()) break;
  }
}

absl::Status Core::StepCandidate(const Message& m) {
  const MessageType my_vote_resp =
      role_ == Role::kPreCandidate ? raftpb::MSG_PRE_VOTE_RESP : raftpb::MSG_VOTE_RESP;
  switch (m.type()) {
    case raftpb::MSG_PROP:
      return NoLeader("proposal");
    case raftpb::MSG_READ_INDEX:
      return NoLeader("read");
    case raftpb::MSG_APP:
      BecomeFollower(m.term(), m.from());
      HandleAppendEntries(m);
      return absl::OkStatus();
    case raftpb::MSG_HEARTBEAT:
      BecomeFollower(m.term(), m.from());
      HandleHeartbeat(m);
      return absl::OkStatus();
    case raftpb::MSG_SNAP:
      BecomeFollower(m.term(), m.from());
      HandleSnapshot(m);
      return absl::OkStatus();
    default:
      break;
  }
  if (m.type() == my_vote_resp) {
    switch (Poll(m.from(), m.type(), !m.reject())) {
      case VoteResult::kWon:
        if (role_ == Role::kPreCandidate) {
          DoCampaign(CampaignType::kElection);
        } else {
          BecomeLeader();
          BcastAppend();
        }
        break;
      case VoteResult::kLost:
        // A rejecting pre-vote answer carries the current term; a vote answer may be newer.
        BecomeFollower(term_, 0);
        break;
      case VoteResult::kPending:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status Core::StepFollower(const Message& m) {
  switch (m.type()) {
    case raftpb::MSG_PROP: {
      if (lead_ == 0) return NoLeader("proposal");
      // In messages of at most max_size_per_msg (at least one entry each), like appends: a
      // node batches every proposal queued since its last step into one MSG_PROP.
      Message fwd;
      fwd.set_type(raftpb::MSG_PROP);
      fwd.set_from(m.from());
      fwd.set_to(lead_);
      uint64_t bytes = 0;
      for (const raftpb::Entry& e : m.entries()) {
        const uint64_t size = e.ByteSizeLong();
        if (fwd.entries_size() > 0 && bytes + size > max_msg_size_) {
          Message next;
          next.set_type(raftpb::MSG_PROP);
          next.set_from(m.from());
          next.set_to(lead_);
          Send(std::exchange(fwd, std::move(next)));
          bytes = 0;
        }
        *fwd.add_entries() = e;
        bytes += size;
      }
      Send(std::move(fwd));
      return absl::OkStatus();
    }
    case raftpb::MSG_APP:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleAppendEntries(m);
      return absl::OkStatus();
    case raftpb::MSG_HEARTBEAT:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleHeartbeat(m);
      return absl::OkStatus();
    case raftpb::MSG_SNAP:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleSnapshot(m);
      return absl::OkStatus();
    case raftpb::MSG_TRANSFER_LEADER: {
      if (lead_ == 0) return absl::OkStatus();
      Message fwd = m;
      fwd.set_to(lead_);
      fwd.set_term(0);  // Send sets this member's
      Send(std::move(fwd));
      return absl::OkStatus();
    }
    case raftpb::MSG_TIMEOUT_NOW:
      // The leader hands over: campaign at once, past any lease.
      Hup(CampaignType::kTransfer);
      return absl::OkStatus();
    case raftpb::MSG_READ_INDEX: {
      if (lead_ == 0) return NoLeader("read");
      Message fwd = m;
      fwd.set_to(lead_);
      fwd.set_term(0);  // forwarded reads are term-less (a peer's may not be)
      Send(std::move(fwd));
      return absl::OkStatus();
    }
    case raftpb::MSG_READ_INDEX_RESP:
      if (m.entries_size() != 1) return absl::OkStatus();
      read_states_.push_back(ReadState{m.index(), m.entries(0).data()});
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// ---- Follower handlers ----

void Core::HandleAppendEntries(const Message& m) {
  Message resp;
  resp.set_to(m.from());
  resp.set_type(raftpb::MSG_APP_RESP);
  // Send adds the commit index this member knows, after this append.
  if (m.index() < log_.committed()) {
    resp.set_index(log_.committed());
    Send(std::move(resp));
    return;
  }
  std::vector<raftpb::Entry> ents(m.entries().begin(), m.entries().end());
  uint64_t replaced_from = 0;
  if (std::optional<uint64_t> last_new =
          log_.MaybeAppend(m.index(), m.log_term(), m.commit(), ents, &replaced_from)) {
    if (replaced_from != 0) DropAcknowledgementsFrom(replaced_from);
    resp.set_index(*last_new);
    Send(std::move(resp));
    return;
  }
  if (!log_.storage_error().ok()) return;  // a failed read or a loss: nothing is answered
  // Tell the leader where our log could match: the last index whose term is at most the
  // leader's term at m.index, so it can skip a whole conflicting term in one round trip.
  const uint64_t hint_index = std::min(m.index(), log_.LastIndex());
  const auto [index, term] = log_.FindConflictByTerm(hint_index, m.log_term());
  resp.set_index(m.index());
  resp.set_reject(true);
  resp.set_reject_hint(index);
  resp.set_log_term(term);
  Send(std::move(resp));
}

void Core::HandleHeartbeat(const Message& m) {
  if (m.commit() > log_.LastIndex()) {
    // The leader tells a follower at most what the follower acknowledged it holds.
    (void)log_.Lost(absl::StrCat("member ", m.from(), ", leader of term ", term_,
                                 ", counts on this member holding entries up to ", m.commit(),
                                 ", but its log ends at ", log_.LastIndex(),
                                 ": entries it acknowledged are gone (a store truncated or "
                                 "restored from an older copy, or a disk that lost synced "
                                 "writes)"));
    return;
  }
  log_.CommitTo(m.commit());
  Message resp;
  resp.set_to(m.from());
  resp.set_type(raftpb::MSG_HEARTBEAT_RESP);
  resp.set_context(m.context());
  Send(std::move(resp));
}

void Core::HandleSnapshot(const Message& m) {
  // Its sender's node did not fill in the data: installing it would empty the state.
  if (m.snapshot_unfilled()) return;
  Message resp;
  resp.set_to(m.from());
  resp.set_type(raftpb::MSG_APP_RESP);
  if (Restore(m.snapshot())) {
    resp.set_index(log_.LastIndex());
  } else {
    resp.set_index(log_.committed());
  }
  Send(std::move(resp));
}

bool Core::Restore(const raftpb::Snapshot& s) {
  const uint64_t index = s.metadata().index();
  if (index <= log_.committed()) return false;
  SHOAL_CHECK(role_ == Role::kFollower, "snapshot restored by a ", RoleName(role_));
  if (log_.MatchTerm(index, s.metadata().term())) {
    // We already have the entries: just move commit forward.
    log_.CommitTo(index);
    return false;
  }
  // A snapshot whose membership lacks us is installed too: a member being added (a learner
  // catching up) is often sent a snapshot taken before its addition, and the entries after it
  // add it. Until then it is not promotable.
  const raftpb::ConfState cs = s.metadata().conf_state();  // `s` may be moved from below
  DropAcknowledgementsFrom(0);  // the whole log is replaced
  if (movable_snapshot_ == &s) {
    log_.Restore(std::move(*movable_snapshot_));
  } else {
    log_.Restore(s);
  }
  progress_.clear();
  const uint64_t next = log_.LastIndex() + 1;
  for (uint64_t v : cs.voters()) progress_.emplace(v, NewProgress(next, false));
  for (uint64_t l : cs.learners()) progress_.emplace(l, NewProgress(next, true));
  auto self = progress_.find(id_);
  is_learner_ = self != progress_.end() && self->second.is_learner;
  SetRemoved(cs);
  UpdateSelfProgress();
  return true;
}

// ---- Sending ----

void Core::Send(Message m) {
  // A follower tells its leader how far it knows the log committed (a leader leaving the
  // voters waits until a majority of the remaining ones does: see StartLeaving).
  if (m.type() == raftpb::MSG_APP_RESP || m.type() == raftpb::MSG_HEARTBEAT_RESP) {
    m.set_commit(log_.committed());
  }
  // A forwarded transfer names its transferee in `from`, and a forwarded read its requester
  // (as in etcd): the leader hands over to the one, and answers the other, not the member
  // that passed the request on.
  const bool forwarded =
      (m.type() == raftpb::MSG_TRANSFER_LEADER || m.type() == raftpb::MSG_READ_INDEX) &&
      m.from() != 0;
  if (!forwarded) m.set_from(id_);
  if (IsResponseTermCarrying(m.type())) {
    SHOAL_CHECK(m.term() != 0, "vote message without term: ", MessageType_Name(m.type()));
  } else {
    SHOAL_CHECK(m.term() == 0, "term set on ", MessageType_Name(m.type()));
    // Forwarded proposals and reads stay term-less: they are local requests at the leader.
    if (m.type() != raftpb::MSG_PROP && m.type() != raftpb::MSG_READ_INDEX) m.set_term(term_);
  }
  msgs_.push_back(std::move(m));
}

bool Core::MaybeSendAppend(uint64_t to, bool send_if_empty) {
  auto it = progress_.find(to);
  if (it == progress_.end()) return false;
  Progress& pr = it->second;
  if (pr.IsPaused()) return false;
  Message m;
  m.set_to(to);
  absl::StatusOr<uint64_t> term = log_.Term(pr.next - 1);
  absl::StatusOr<std::vector<raftpb::Entry>> ents = log_.EntriesFrom(pr.next, max_msg_size_);
  if (ents.ok() && ents->empty() && !send_if_empty) return false;
  // The storage failed a read: not a compacted log, and nothing is sent (the owner stops).
  if (!log_.storage_error().ok()) return false;
  if (!term.ok() || !ents.ok()) {
    // The follower needs entries that were compacted: send a snapshot.
    if (!pr.recent_active) return false;
    // Only the metadata: the data (the whole state) is read and filled in by the sender's node
    // off its loop thread (FillSnapshot), not copied here.
    absl::StatusOr<raftpb::SnapshotMetadata> meta = log_.SnapshotMetadata();
    if (!meta.ok()) {
      if (IsSnapshotTemporarilyUnavailable(meta.status())) return false;
      SHOAL_FATAL("reading the snapshot: ", meta.status().ToString());
    }
    SHOAL_CHECK(meta->index() != 0, "need a snapshot but there is none");
    m.set_type(raftpb::MSG_SNAP);
    m.set_snapshot_unfilled(true);
    *m.mutable_snapshot()->mutable_metadata() = *meta;
    pr.BecomeSnapshot(meta->index());
  } else {
    m.set_type(raftpb::MSG_APP);
    m.set_index(pr.next - 1);
    m.set_log_term(*term);
    m.set_commit(log_.committed());
    for (raftpb::Entry& e : *ents) *m.add_entries() = std::move(e);
    pr.commit_sent = std::max(pr.commit_sent, std::min(m.commit(), m.index() + m.entries_size()));
    if (const int n = m.entries_size(); n != 0) {
      switch (pr.state) {
        case Progress::State::kReplicate: {
          const uint64_t last = m.entries(n - 1).index();
          pr.OptimisticUpdate(last);
          uint64_t bytes = 0;
          for (const raftpb::Entry& e : m.entries()) bytes += e.data().size();
          pr.inflights.Add(last, bytes);
          break;
        }
        case Progress::State::kProbe:
          pr.probe_sent = true;
          break;
        case Progress::State::kSnapshot:
          SHOAL_FATAL("sending entries to ", to, " in snapshot state");
      }
    }
  }
  Send(std::move(m));
  return true;
}

void Core::SendHeartbeat(uint64_t to, const std::string& ctx) {
  // Never tell a follower to commit beyond what it is known to hold.
  const uint64_t commit = std::min(progress_.at(to).match, log_.committed());
  Message m;
  m.set_to(to);
  m.set_type(raftpb::MSG_HEARTBEAT);
  m.set_commit(commit);
  m.set_context(ctx);
  Send(std::move(m));
}

void Core::SendTimeoutNow(uint64_t to) {
  Message m;
  m.set_to(to);
  m.set_type(raftpb::MSG_TIMEOUT_NOW);
  Send(std::move(m));
}

void Core::BcastAppend() {
  for (const auto& [id, pr] : progress_) {
    if (id != id_) SendAppend(id);
  }
}

void Core::BcastCommit() {
  for (const auto& [id, pr] : progress_) {
    if (id == id_) continue;
    // Under load a follower always has appends in flight, and telling it the commit index on
    // its own would double the messages each way.
    if (pr.state == Progress::State::kReplicate &&
        (pr.inflights.Count() > 0 ||
         pr.commit_sent >= std::min(log_.committed(), pr.match))) {
      continue;
    }
    SendAppend(id);
  }
}

void Core::RefreshAppendCommits() {
  if (role_ != Role::kLeader) return;
  const uint64_t committed = log_.committed();
  for (Message& m : msgs_) {
    if (m.type() != raftpb::MSG_APP || m.commit() >= committed) continue;
    // Safe for any append: the follower commits at most up to the last entry the append
    // matched with the leader's log.
    m.set_commit(committed);
    auto it = progress_.find(m.to());
    if (it == progress_.end()) continue;
    it->second.commit_sent = std::max(it->second.commit_sent,
                                      std::min(committed, m.index() + m.entries_size()));
  }
}

void Core::DropAcknowledgementsFrom(uint64_t first_replaced) {
  // An acknowledgement waiting in msgs_ leaves once the Ready it will be handed out with is
  // written, and says that this member's log holds what it acknowledges. A later step in the
  // same batch (another leader's conflicting append, a snapshot) replaced some of it before it
  // was ever written, so it would leave vouching for entries that never reach the disk.
  msgs_.erase(std::remove_if(msgs_.begin(), msgs_.end(),
                             [first_replaced](const Message& m) {
                               return m.type() == raftpb::MSG_APP_RESP && !m.reject() &&
                                      m.index() >= first_replaced;
                             }),
              msgs_.end());
}

void Core::CoalesceAppendResponses() {
  // Walk from the newest: an acknowledgement is dropped when a newer one to the same member,
  // in the same term, acknowledges at least as much. Rejections are kept as they are.
  struct Newest {
    uint64_t to, term, index;
  };
  std::vector<Newest> newest;
  std::vector<bool> drop(msgs_.size(), false);
  bool any = false;
  for (size_t i = msgs_.size(); i-- > 0;) {
    const Message& m = msgs_[i];
    if (m.type() != raftpb::MSG_APP_RESP || m.reject()) continue;
    auto it = std::find_if(newest.begin(), newest.end(),
                           [&](const Newest& n) { return n.to == m.to() && n.term == m.term(); });
    if (it == newest.end()) {
      newest.push_back({m.to(), m.term(), m.index()});
    } else if (it->index >= m.index()) {
      drop[i] = true;
      any = true;
    } else {
      it->index = m.index();
    }
  }
  if (!any) return;
  size_t kept = 0;
  for (size_t i = 0; i < msgs_.size(); ++i) {
    if (drop[i]) continue;
    if (kept != i) msgs_[kept] = std::move(msgs_[i]);
    ++kept;
  }
  msgs_.resize(kept);
}

void Core::StartLeaving(bool removed) {
  // A leader removed from the voters (or demoted) must not step down at once: the change may
  // be committed only here, and a follower with appends in flight learns the commit index from
  // their acknowledgement or the next heartbeat. Stepping down, it sent one notice; lost, and
  // this member stopped (its manager stops it once removed), a survivor of two voters could
  // neither commit alone nor win a vote, for ever. So it goes on leading, without counting
  // itself, taking no new proposals or reads, heartbeating every tick (check-quorum does not
  // depose it), until a majority of the remaining voters says it knows the commit index (their
  // responses carry it; they then elect a leader among themselves), or a higher term deposes
  // it; then it steps down, and only then counts as removed, so its owner stops it after.
  // Should every remaining voter stay unreachable, it leads (taking nothing) until one is
  // back. A TimeoutNow would not spare the others an election timeout: the heir must apply
  // the change before it may campaign.
  leaving_commit_ = std::max<uint64_t>(log_.committed(), 1);
  leaving_removed_ = removed;
  AbortLeaderTransfer();
  for (const auto& [id, pr] : progress_) {
    // Whatever its progress state: a follower in the middle of a probe or with a full window
    // learns the commit index all the same (capped at what it is known to hold).
    if (id != id_) SendHeartbeat(id, std::string());
  }
  MaybeFinishLeaving();
}

bool Core::MaybeFinishLeaving() {
  // Once a majority of the remaining voters knows the change committed, they elect a leader
  // among themselves, which tells the rest.
  size_t knowing = 0;
  for (const auto& [id, pr] : progress_) {
    if (id != id_ && !pr.is_learner && pr.commit_known >= leaving_commit_) ++knowing;
  }
  if (VoterCount(progress_) > 0 && knowing < Quorum(progress_)) return false;
  const bool removed = leaving_removed_;
  BecomeFollower(term_, 0);  // Reset ends the leaving
  if (removed) BecomeRemoved();
  return true;
}

void Core::BcastHeartbeat() {
  const std::string ctx = read_index_queue_.empty() ? std::string() : read_index_queue_.back();
  for (const auto& [id, pr] : progress_) {
    if (id != id_) SendHeartbeat(id, ctx);
  }
}

void Core::AppendEntries(std::vector<raftpb::Entry> entries) {
  const uint64_t last = log_.LastIndex();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].set_term(term_);
    entries[i].set_index(last + 1 + i);
  }
  log_.Append(entries);
  // The leader's own copy counts towards commitment once persisted (see Advance).
}

bool Core::MaybeCommit() { return log_.MaybeCommit(CommittedIndex(progress_), term_); }

void Core::UpdateSelfProgress() {
  auto self = progress_.find(id_);
  if (self == progress_.end()) return;
  // What is durably ours: the log up to the first unstable entry (nothing of a pending
  // snapshot).
  if (log_.HasPendingSnapshot()) return;
  const uint64_t stable_last = log_.LastIndex() - log_.UnstableEntries().size();
  if (self->second.match < stable_last) {
    self->second.match = stable_last;
    self->second.next = std::max(self->second.next, stable_last + 1);
  }
}

bool Core::QuorumActive() {
  size_t active = 0;
  for (auto& [id, pr] : progress_) {
    if (id == id_) {
      if (!pr.is_learner) ++active;
      continue;
    }
    if (pr.recent_active && !pr.is_learner) ++active;
    pr.recent_active = false;
  }
  return active >= Quorum(progress_);
}

bool Core::CommittedEntryInCurrentTerm() const {
  absl::StatusOr<uint64_t> t = log_.Term(log_.committed());
  return t.ok() && *t == term_;
}

void Core::SendReadIndexResponse(const Message& req) {
  const std::string ctx = req.entries(0).data();
  if (read_index_pending_.find(ctx) == read_index_pending_.end()) {
    ReadIndexStatus status;
    status.req = req;
    status.index = log_.committed();
    status.acks.insert(id_);
    read_index_pending_.emplace(ctx, std::move(status));
    read_index_queue_.push_back(ctx);
  }
  BcastHeartbeat();
}

void Core::RespondToReadIndex(const Message& req, uint64_t index) {
  if (req.from() == 0 || req.from() == id_) {
    read_states_.push_back(ReadState{index, req.entries(0).data()});
    return;
  }
  Message resp;
  resp.set_type(raftpb::MSG_READ_INDEX_RESP);
  resp.set_to(req.from());
  resp.set_index(index);
  *resp.mutable_entries() = req.entries();
  Send(std::move(resp));
}

void Core::ServeReadIndex(const Message& m) {
  if (VoterCount(progress_) <= 1) {
    // Nobody else to confirm the leadership with.
    RespondToReadIndex(m, log_.committed());
  } else {
    SendReadIndexResponse(m);
  }
}

void Core::ReleasePendingReadIndexMessages() {
  if (pending_read_index_messages_.empty() || !CommittedEntryInCurrentTerm()) return;
  std::vector<Message> pending;
  pending.swap(pending_read_index_messages_);
  for (const Message& m : pending) ServeReadIndex(m);
}

// ---- Local requests ----

absl::Status Core::Propose(std::string data) {
  Message m;
  m.set_type(raftpb::MSG_PROP);
  m.set_from(id_);
  m.add_entries()->set_data(std::move(data));
  return Step(m);
}

absl::Status Core::ProposeConfChange(const raftpb::ConfChange& cc) {
  Message m;
  m.set_type(raftpb::MSG_PROP);
  m.set_from(id_);
  raftpb::Entry* e = m.add_entries();
  e->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  e->set_data(cc.SerializeAsString());
  return Step(m);
}

absl::Status Core::CheckConfChange(const std::string& data) const {
  raftpb::ConfChange cc;
  if (!cc.ParseFromString(data)) {
    return absl::InvalidArgumentError("membership change dropped: its ConfChange is unparsable");
  }
  if (cc.node_id() == 0) {
    return absl::InvalidArgumentError("membership change dropped: member id 0");
  }
  if (removed_.count(cc.node_id()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "membership change dropped: member ", cc.node_id(),
        " was removed from the cluster, and a removed member's id is never used again: a "
        "manager that was removed joins again under a new id"));
  }
  if (cc.type() != raftpb::ConfChange::TYPE_ADD_NODE) return absl::OkStatus();
  auto it = progress_.find(cc.node_id());
  if (it == progress_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "membership change dropped: member ", cc.node_id(),
        " is not in the cluster; add it as a learner first (TYPE_ADD_LEARNER_NODE) and promote "
        "it once it has caught up"));
  }
  const Progress& pr = it->second;
  if (!pr.is_learner) return absl::OkStatus();
  if (pr.state != Progress::State::kReplicate || pr.match + max_learner_lag_ < log_.committed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "membership change dropped: learner ", cc.node_id(), " has not caught up (its log ends at ",
        pr.match, ", the commit index is ", log_.committed(),
        "; it is promoted once it is being replicated to and at most ", max_learner_lag_,
        " entries behind): retry when Node::Members() shows it caught up"));
  }
  return absl::OkStatus();
}

absl::Status Core::ReadIndex(std::string ctx) {
  Message m;
  m.set_type(raftpb::MSG_READ_INDEX);
  m.set_from(id_);
  m.add_entries()->set_data(std::move(ctx));
  return Step(m);
}

void Core::TransferLeader(uint64_t transferee) {
  Message m;
  m.set_type(raftpb::MSG_TRANSFER_LEADER);
  m.set_from(transferee);
  m.set_to(id_);
  (void)Step(m);
}

void Core::ReportUnreachable(uint64_t id) {
  Message m;
  m.set_type(raftpb::MSG_UNREACHABLE);
  m.set_from(id);
  (void)Step(m);
}

void Core::LeaderUnreachable() {
  if (!log_.storage_error().ok()) return;
  if (role_ != Role::kFollower || lead_ == 0) return;
  lead_ = 0;
  std::uniform_int_distribution<int> dist(1, 3);
  election_elapsed_ = std::max(election_elapsed_, randomized_election_timeout_ - dist(rng_));
}

void Core::ReportSnapshot(uint64_t id, bool failed) {
  Message m;
  m.set_type(raftpb::MSG_SNAP_STATUS);
  m.set_from(id);
  m.set_reject(failed);
  (void)Step(m);
}

raftpb::ConfState Core::ApplyConfChange(const raftpb::ConfChange& cc) {
  const uint64_t id = cc.node_id();
  switch (cc.type()) {
    case raftpb::ConfChange::TYPE_ADD_NODE:
    case raftpb::ConfChange::TYPE_ADD_LEARNER_NODE: {
      // Ids are never reused: leaders refuse to add a removed member (CheckConfChange), and
      // should such a change be committed all the same, every member ignores it alike.
      if (removed_.count(id) != 0) break;
      const bool learner = cc.type() == raftpb::ConfChange::TYPE_ADD_LEARNER_NODE;
      auto it = progress_.find(id);
      if (it == progress_.end()) {
        Progress pr = NewProgress(log_.LastIndex() + 1, learner);
        // A new member is given the benefit of the doubt for one check-quorum period.
        pr.recent_active = true;
        progress_.emplace(id, std::move(pr));
      } else {
        it->second.is_learner = learner;
      }
      if (id == id_) is_learner_ = learner;
      break;
    }
    case raftpb::ConfChange::TYPE_REMOVE_NODE:
      progress_.erase(id);
      removed_.insert(id);
      if (id == lead_transferee_) AbortLeaderTransfer();
      if (id == id_) {
        if (role_ == Role::kLeader) {
          StartLeaving(/*removed=*/true);  // see below
        } else {
          BecomeRemoved();
        }
      }
      break;
    case raftpb::ConfChange::TYPE_UPDATE_NODE:
    default:
      break;
  }
  if (role_ == Role::kLeader) {
    if (leaving_commit_ != 0) {
      // Leaving already (see StartLeaving).
    } else if (progress_.find(id_) == progress_.end() || progress_.at(id_).is_learner) {
      StartLeaving(/*removed=*/false);
    } else if (VoterCount(progress_) > 0 && MaybeCommit()) {
      // Fewer voters may need fewer acknowledgements.
      BcastAppend();
    }
  }
  return conf_state();
}

// ---- Ready ----

bool Core::HasReady() const {
  if (SoftState{lead_, role_} != prev_soft_) return true;
  const raftpb::HardState hs = hard_state();
  if (!HardStateEqual(hs, prev_hard_)) return true;
  if (log_.HasPendingSnapshot()) return true;
  if (!msgs_.empty() || !log_.UnstableEntries().empty() || log_.HasNextCommittedEntries()) {
    return true;
  }
  return !read_states_.empty();
}

Ready Core::GetReady() {
  Ready rd;
  const SoftState soft{lead_, role_};
  if (soft != prev_soft_) rd.soft_state = soft;
  const raftpb::HardState hs = hard_state();
  if (!HardStateEqual(hs, prev_hard_)) rd.hard_state = hs;
  rd.entries = log_.UnstableEntries();
  log_.MarkUnstableTaken();
  if (log_.HasPendingSnapshot()) {
    rd.snapshot = log_.TakePendingSnapshot();
  }
  rd.committed_entries = log_.NextCommittedEntries();
  if (!rd.committed_entries.empty()) log_.ApplyingTo(rd.committed_entries.back().index());
  ReduceUncommitted(rd.committed_entries);
  RefreshAppendCommits();
  CoalesceAppendResponses();
  rd.early_messages = ExtractEarlyMessages();
  rd.messages.swap(msgs_);
  rd.read_states.swap(read_states_);
  rd.must_sync = !rd.entries.empty() || rd.snapshot.has_value() || hs.term() != prev_hard_.term() ||
                 hs.vote() != prev_hard_.vote();
  return rd;
}

bool Core::CanSendEarly() const {
  // prev_hard_ is what the caller persisted (it was handed out by the last advanced Ready).
  return term_ == prev_hard_.term() && vote_ == prev_hard_.vote();
}

std::vector<Message> Core::ExtractEarlyMessages() {
  std::vector<Message> early;
  if (!CanSendEarly()) return early;
  // A leader's appends and heartbeats depend on nothing it has not persisted but its term; a
  // follower's heartbeat response says only that it follows this term's leader, nothing of
  // its log (so it need not wait behind a write of entries, or of a big snapshot).
  const bool leads = role_ == Role::kLeader;
  size_t kept = 0;
  for (size_t i = 0; i < msgs_.size(); ++i) {
    Message& m = msgs_[i];
    if (leads ? m.type() == raftpb::MSG_APP || m.type() == raftpb::MSG_HEARTBEAT
              : m.type() == raftpb::MSG_HEARTBEAT_RESP) {
      early.push_back(std::move(m));
    } else {
      if (kept != i) msgs_[kept] = std::move(m);
      ++kept;
    }
  }
  msgs_.resize(kept);
  return early;
}

bool Core::LeaderWriteMayWait() const {
  if (!hold_leader_writes_ || role_ != Role::kLeader || !log_.storage_error().ok()) {
    return false;
  }
  if (log_.UnstableEntries().empty() || log_.HasPendingSnapshot() || !read_states_.empty()) {
    return false;
  }
  if (SoftState{lead_, role_} != prev_soft_ || !CanSendEarly()) return false;
  for (const Message& m : msgs_) {
    if (m.type() != raftpb::MSG_APP && m.type() != raftpb::MSG_HEARTBEAT) return false;
  }
  auto self = progress_.find(id_);
  if (self == progress_.end() || self->second.is_learner) return false;  // a leaving leader
  const uint64_t written = self->second.match;
  if (written < leader_term_start_) return false;
  bool any_follower = false;
  for (const auto& [id, pr] : progress_) {
    if (id == id_ || pr.is_learner) continue;
    if (pr.match >= written) return false;
    any_follower = true;
  }
  return any_follower;
}

std::vector<Message> Core::TakeEarlyMessages() {
  RefreshAppendCommits();
  return ExtractEarlyMessages();
}

std::vector<raftpb::Entry> Core::TakeCommittedEntries() {
  if (log_.HasPendingSnapshot()) return {};
  std::vector<raftpb::Entry> ents = log_.NextCommittedEntries();
  if (!ents.empty()) log_.AppliedTo(ents.back().index());
  ReduceUncommitted(ents);
  return ents;
}

void Core::ReduceUncommitted(const std::vector<raftpb::Entry>& committed) {
  if (uncommitted_bytes_ == 0) return;
  uint64_t bytes = 0;
  for (const raftpb::Entry& e : committed) bytes += e.data().size();
  // Entries of earlier terms were never counted: stop at zero.
  uncommitted_bytes_ -= std::min(bytes, uncommitted_bytes_);
}

void Core::Advance(const Ready& rd) {
  if (rd.soft_state) prev_soft_ = *rd.soft_state;
  if (rd.hard_state) prev_hard_ = *rd.hard_state;
  if (rd.snapshot) {
    log_.StableSnapTo(rd.snapshot->metadata().index());
    log_.AppliedTo(std::max(log_.applied(), rd.snapshot->metadata().index()));
  }
  if (!rd.entries.empty()) {
    const raftpb::Entry& last = rd.entries.back();
    log_.StableTo(last.index(), last.term());
  }
  if (!rd.committed_entries.empty()) {
    // Entries taken by TakeCommittedEntries meanwhile may already be applied beyond these.
    log_.AppliedTo(std::max(log_.applied(), rd.committed_entries.back().index()));
  }
  UpdateSelfProgress();
  if (role_ == Role::kLeader && MaybeCommit()) {
    ReleasePendingReadIndexMessages();
    BcastCommit();
  }
}

}  // namespace shoal::raft

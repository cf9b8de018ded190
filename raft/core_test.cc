// One test per rule of the Raft paper (sections named), plus the extensions: pre-vote,
// check-quorum and leases, ReadIndex, leadership transfer, snapshots, membership changes.

#include "raft/core.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "raft/memory_log_store.h"
#include "raft/testing/forwarding_store.h"
#include "raft/testing/network.h"

namespace shoal::raft {
namespace {

using raftpb::Message;
using testing::Network;
using testing::StoreWithTerms;
using testing::TestConfig;

Message Msg(raftpb::MessageType type, uint64_t from, uint64_t to, uint64_t term) {
  Message m;
  m.set_type(type);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  return m;
}

std::vector<uint64_t> LogTerms(const Core& c) {
  std::vector<uint64_t> out;
  for (const raftpb::Entry& e : c.log().AllEntries()) out.push_back(e.term());
  return out;
}

// A lone core (voters 1..n) whose messages a test inspects directly.
struct Solo {
  explicit Solo(std::vector<uint64_t> terms = {}, int voters = 3,
                std::function<void(Config&)> tweak = nullptr) {
    std::vector<uint64_t> ids;
    for (int i = 1; i <= voters; ++i) ids.push_back(i);
    store = StoreWithTerms(terms, ids);
    Config c = TestConfig(1, store.get());
    if (tweak) tweak(c);
    core = std::move(*Core::Create(c));
  }
  // Handles every Ready (persisting), returns the messages.
  std::vector<Message> Drain() {
    std::vector<Message> out;
    while (core->HasReady()) {
      Ready rd = core->GetReady();
      for (auto& m : rd.early_messages) out.push_back(m);
      EXPECT_TRUE(store->Append(rd.entries).ok());
      if (rd.hard_state) store->SetHardState(*rd.hard_state);
      for (auto& m : rd.messages) out.push_back(m);
      core->Advance(rd);
    }
    return out;
  }
  void BecomeLeader() {
    core->Campaign();
    Drain();
    for (uint64_t id = 2; id <= 3; ++id) {
      Message r = Msg(raftpb::MSG_VOTE_RESP, id, 1, core->term());
      (void)core->Step(r);
    }
    ASSERT_EQ(core->role(), Role::kLeader);
    Drain();
  }
  std::unique_ptr<MemoryLogStore> store;
  std::unique_ptr<Core> core;
};

// A MemoryLogStore whose reads of entries fail once `failing` is set (a disk returning EIO).
class EntriesFailStore : public testing::ForwardingStore {
 public:
  explicit EntriesFailStore(MemoryLogStore* inner) : ForwardingStore(inner) {}
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override {
    if (failing) return absl::InternalError("IO error: Input/output error");
    return ForwardingStore::Entries(lo, hi, max_bytes);
  }
  bool failing = false;
};

// A leader tells a follower at most the commit index the follower acknowledged holding. A
// heartbeat telling more means entries this member acknowledged are gone from its store (a store
// restored from an older copy, a disk that lost synced writes): the commit failed a CHECK and
// aborted the process (etcd panics there too), and again after every restart. The core keeps
// a DATA_LOSS instead, answers nothing, and takes nothing more: its node stops the member.
TEST(CoreTest, AHeartbeatCountingOnEntriesTheFollowerLacksStopsTheMemberNotTheProcess) {
  std::unique_ptr<MemoryLogStore> store = StoreWithTerms({1, 1, 1}, {1, 2, 3});
  std::unique_ptr<Core> core = std::move(*Core::Create(TestConfig(1, store.get())));
  Message hb = Msg(raftpb::MSG_HEARTBEAT, 2, 1, 2);
  hb.set_commit(9);
  ASSERT_TRUE(core->StepPeer(hb).ok());
  ASSERT_EQ(core->storage_error().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(core->storage_error().message()),
              ::testing::HasSubstr("member 2, leader of term 2, counts on this member holding "
                                   "entries up to 9, but its log ends at 3"));
  EXPECT_TRUE(core->log().found_lost());
  EXPECT_EQ(core->log().committed(), 0u);
  Ready rd = core->GetReady();
  EXPECT_TRUE(rd.messages.empty() && rd.early_messages.empty());
  Message again = Msg(raftpb::MSG_HEARTBEAT, 2, 1, 2);
  again.set_commit(3);
  EXPECT_EQ(core->StepPeer(again).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(core->log().committed(), 0u);
}

// A follower forwards reads and transfers to its leader term-less (Send sets the term a
// transfer needs). One a peer sent with a term was forwarded with it, and Send failed a CHECK
// (found by raft/fuzz/core_fuzzer.cc).
TEST(CoreTest, AForwardedRequestCarryingATermIsPassedOnWithout) {
  std::unique_ptr<MemoryLogStore> store = StoreWithTerms({1, 1, 1}, {1, 2, 3});
  std::unique_ptr<Core> core = std::move(*Core::Create(TestConfig(1, store.get())));
  Message hb = Msg(raftpb::MSG_HEARTBEAT, 2, 1, 2);
  ASSERT_TRUE(core->StepPeer(hb).ok());
  ASSERT_EQ(core->leader(), 2u);
  (void)core->GetReady();
  Message read = Msg(raftpb::MSG_READ_INDEX, 3, 1, 2);
  read.add_entries()->set_data("ctx");
  ASSERT_TRUE(core->StepPeer(read).ok());
  Message transfer = Msg(raftpb::MSG_TRANSFER_LEADER, 3, 1, 2);
  ASSERT_TRUE(core->StepPeer(transfer).ok());
  Ready rd = core->GetReady();
  ASSERT_EQ(rd.messages.size(), 2u);
  EXPECT_EQ(rd.messages[0].type(), raftpb::MSG_READ_INDEX);
  EXPECT_EQ(rd.messages[0].to(), 2u);
  EXPECT_EQ(rd.messages[0].term(), 0u);
  EXPECT_EQ(rd.messages[1].type(), raftpb::MSG_TRANSFER_LEADER);
  EXPECT_EQ(rd.messages[1].to(), 2u);
  EXPECT_EQ(rd.messages[1].from(), 3u);  // the transferee
  EXPECT_EQ(rd.messages[1].term(), 2u);
}

// A leader whose storage fails a read (building a lagging follower's append) was stopped by a
// FATAL. It keeps the error, sends nothing for it, and from then on takes nothing more: what
// it stepped afterwards would be decided from a state its owner no longer trusts.
TEST(CoreTest, AfterAFailedReadTheCoreTakesNothingMore) {
  std::unique_ptr<MemoryLogStore> disk = StoreWithTerms({1, 1, 1}, {1, 2, 3});
  EntriesFailStore store(disk.get());
  std::unique_ptr<Core> core = std::move(*Core::Create(TestConfig(1, &store)));
  auto drain = [&] {
    std::vector<Message> out;
    while (core->HasReady()) {
      Ready rd = core->GetReady();
      for (auto& m : rd.early_messages) out.push_back(m);
      EXPECT_TRUE(disk->Append(rd.entries).ok());
      if (rd.hard_state) disk->SetHardState(*rd.hard_state);
      for (auto& m : rd.messages) out.push_back(m);
      core->Advance(rd);
    }
    return out;
  };
  core->Campaign();
  drain();
  for (uint64_t id = 2; id <= 3; ++id) (void)core->Step(Msg(raftpb::MSG_VOTE_RESP, id, 1, core->term()));
  ASSERT_EQ(core->role(), Role::kLeader);
  std::optional<uint64_t> probe;
  for (const Message& m : drain()) {
    if (m.type() == raftpb::MSG_APP && m.to() == 2) probe = m.index();
  }
  ASSERT_TRUE(probe.has_value());
  const uint64_t term = core->term();
  store.failing = true;
  // Follower 2 has nothing: the leader must read its log from the start.
  Message reject = Msg(raftpb::MSG_APP_RESP, 2, 1, term);
  reject.set_index(*probe);
  reject.set_reject(true);
  reject.set_reject_hint(0);
  (void)core->Step(reject);
  ASSERT_FALSE(core->storage_error().ok());
  EXPECT_THAT(std::string(core->storage_error().message()),
              ::testing::HasSubstr("Input/output error"));
  // A higher term would depose it and make it vote: it takes neither.
  Message vote = Msg(raftpb::MSG_VOTE, 3, 1, term + 5);
  vote.set_index(100);
  vote.set_log_term(term + 4);
  absl::Status stepped = core->Step(vote);
  EXPECT_EQ(stepped.code(), absl::StatusCode::kInternal) << stepped;
  for (int i = 0; i < 50; ++i) core->Tick();
  core->LeaderUnreachable();
  EXPECT_EQ(core->Propose("x").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(core->term(), term);
  EXPECT_EQ(core->role(), Role::kLeader);
  store.failing = false;  // the owner reads nothing more either; the drain checks the output
  for (const Message& m : drain()) {
    EXPECT_NE(m.type(), raftpb::MSG_SNAP) << "took the failed read for a compacted log";
    EXPECT_FALSE(m.type() == raftpb::MSG_APP && m.to() == 2 && m.entries_size() > 0)
        << "sent entries it could not read";
    EXPECT_NE(m.type(), raftpb::MSG_VOTE_RESP) << "voted after its read failed";
    EXPECT_NE(m.type(), raftpb::MSG_HEARTBEAT) << "ticked after its read failed";
  }
}

// ---- §5.1, §5.2: terms and elections ----

TEST(CoreTest, StartsAsFollowerWithNoLeader) {
  Solo s;
  EXPECT_EQ(s.core->role(), Role::kFollower);
  EXPECT_EQ(s.core->term(), 0u);
  EXPECT_EQ(s.core->leader(), 0u);
}

TEST(CoreTest, RejectsConfigsThatCannotWork) {
  MemoryLogStore store;
  Config c = TestConfig(1, &store);
  c.id = 0;
  EXPECT_EQ(Core::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = TestConfig(1, &store);
  c.election_tick = 1;
  EXPECT_EQ(Core::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = TestConfig(1, nullptr);
  EXPECT_EQ(Core::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CoreTest, DetectsAStoredCommitBeyondTheStoredLog) {
  auto store = StoreWithTerms({1, 1}, {1});
  raftpb::HardState hs;
  hs.set_term(1);
  hs.set_commit(5);  // the log was truncated behind the hard state's back
  store->SetHardState(hs);
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(TestConfig(1, store.get()));
  EXPECT_EQ(core.status().code(), absl::StatusCode::kDataLoss);
}

TEST(CoreTest, EveryRoleFollowsAHigherTermAndItsLeader) {
  for (int role = 0; role < 3; ++role) {
    Solo s;
    if (role == 1) {
      s.core->Campaign();
      ASSERT_EQ(s.core->role(), Role::kCandidate);
    } else if (role == 2) {
      s.BecomeLeader();
    }
    Message app = Msg(raftpb::MSG_APP, 2, 1, 5);
    ASSERT_TRUE(s.core->Step(app).ok());
    EXPECT_EQ(s.core->role(), Role::kFollower) << role;
    EXPECT_EQ(s.core->term(), 5u) << role;
    EXPECT_EQ(s.core->leader(), 2u) << role;
  }
}

TEST(CoreTest, IgnoresMessagesOfAStaleTerm) {
  Solo s({1, 2}, 3);
  ASSERT_EQ(s.core->term(), 2u);
  Message app = Msg(raftpb::MSG_APP, 2, 1, 1);
  app.set_index(2);
  app.set_log_term(2);
  *app.add_entries() = raftpb::Entry();
  ASSERT_TRUE(s.core->Step(app).ok());
  EXPECT_EQ(s.core->log().LastIndex(), 2u);
  EXPECT_EQ(s.core->leader(), 0u);
  EXPECT_TRUE(s.Drain().empty());  // no check-quorum: no answer either
}

TEST(CoreTest, FollowerCampaignsAfterElectionTimeout) {
  Solo s({1}, 3);
  for (int i = 0; i < 2 * 10; ++i) s.core->Tick();
  EXPECT_EQ(s.core->role(), Role::kCandidate);
  EXPECT_EQ(s.core->term(), 2u);
  EXPECT_EQ(s.core->vote(), 1u);
  std::vector<Message> msgs = s.Drain();
  ASSERT_EQ(msgs.size(), 2u);
  for (const Message& m : msgs) {
    EXPECT_EQ(m.type(), raftpb::MSG_VOTE);
    EXPECT_EQ(m.term(), 2u);
    EXPECT_EQ(m.index(), 1u);
    EXPECT_EQ(m.log_term(), 1u);
  }
  EXPECT_EQ(s.store->GetInitialState()->hard_state.vote(), 1u);  // vote persisted
}

TEST(CoreTest, ElectionTimeoutIsRandomizedBetweenOneAndTwoTimeouts) {
  std::set<int> seen;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Solo s({}, 3, [seed](Config& c) { c.random_seed = seed; });
    const int t = s.core->randomized_election_timeout();
    EXPECT_GE(t, 10);
    EXPECT_LT(t, 20);
    seen.insert(t);
  }
  EXPECT_GE(seen.size(), 8u);
}

TEST(CoreTest, CandidateWinsLosesOrWaitsOnTheVotes) {
  struct Case {
    int size;
    std::map<uint64_t, bool> votes;
    Role want;
  };
  const std::vector<Case> cases = {
      {1, {}, Role::kLeader},
      {3, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}, {4, true}, {5, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}}, Role::kLeader},
      {3, {}, Role::kCandidate},
      {5, {{2, true}}, Role::kCandidate},
      {5, {{2, false}, {3, false}}, Role::kCandidate},
      {3, {{2, false}, {3, false}}, Role::kFollower},
      {5, {{2, false}, {3, false}, {4, false}}, Role::kFollower},
  };
  for (const Case& c : cases) {
    Solo s({}, c.size);
    s.core->Campaign();
    for (const auto& [id, granted] : c.votes) {
      Message r = Msg(raftpb::MSG_VOTE_RESP, id, 1, s.core->term());
      r.set_reject(!granted);
      (void)s.core->Step(r);
    }
    EXPECT_EQ(s.core->role(), c.want) << "size " << c.size << " votes " << c.votes.size();
  }
}

TEST(CoreTest, VotesAtMostOncePerTermFirstComeFirstServed) {
  struct Case {
    uint64_t vote;       // already voted for
    uint64_t candidate;  // asking
    bool reject;
  };
  for (const Case& c : std::vector<Case>{{0, 2, false},
                                         {0, 3, false},
                                         {2, 2, false},
                                         {3, 3, false},
                                         {2, 3, true},
                                         {3, 2, true}}) {
    auto store = StoreWithTerms({}, {1, 2, 3});
    raftpb::HardState hs;
    hs.set_term(1);
    hs.set_vote(c.vote);
    store->SetHardState(hs);
    auto core = std::move(*Core::Create(TestConfig(1, store.get())));
    (void)core->Step(Msg(raftpb::MSG_VOTE, c.candidate, 1, 1));
    Ready rd = core->GetReady();
    ASSERT_EQ(rd.messages.size(), 1u);
    EXPECT_EQ(rd.messages[0].type(), raftpb::MSG_VOTE_RESP);
    EXPECT_EQ(rd.messages[0].reject(), c.reject) << c.vote << " " << c.candidate;
  }
}

// §5.4.1: a vote is granted only to a candidate whose log is at least as up to date.
TEST(CoreTest, GrantsVotesOnlyToUpToDateLogs) {
  struct Case {
    uint64_t index, log_term;
    bool reject;
  };
  for (const Case& c : std::vector<Case>{{1, 1, true},
                                         {2, 1, true},
                                         {3, 1, true},
                                         {1, 2, true},   // same last term, shorter
                                         {2, 2, false},  // equal
                                         {3, 2, false},  // longer
                                         {1, 3, false},  // newer last term
                                         {3, 3, false}}) {
    Solo s({1, 2}, 3);
    Message v = Msg(raftpb::MSG_VOTE, 2, 1, 3);
    v.set_index(c.index);
    v.set_log_term(c.log_term);
    (void)s.core->Step(v);
    std::vector<Message> msgs = s.Drain();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].reject(), c.reject) << c.index << "/" << c.log_term;
  }
}

TEST(CoreTest, CandidateStepsDownOnAppendFromLeaderOfItsTerm) {
  Solo s;
  s.core->Campaign();
  const uint64_t term = s.core->term();
  (void)s.core->Step(Msg(raftpb::MSG_APP, 2, 1, term));
  EXPECT_EQ(s.core->role(), Role::kFollower);
  EXPECT_EQ(s.core->leader(), 2u);
  EXPECT_EQ(s.core->term(), term);
}

TEST(CoreTest, ElectsALeaderAndAgreesOnTheLog) {
  Network net(3);
  net.Campaign(1);
  EXPECT_EQ(net.core(1).role(), Role::kLeader);
  EXPECT_EQ(net.core(2).leader(), 1u);
  EXPECT_EQ(net.core(3).leader(), 1u);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  ASSERT_TRUE(net.Propose(2, "b").ok());  // forwarded by a follower
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.node(id).applied, (std::vector<std::string>{"a", "b"})) << id;
  }
}

// §5.2: the leader sends heartbeats every heartbeat tick.
TEST(CoreTest, LeaderSendsHeartbeatsEveryHeartbeatTick) {
  Solo s({}, 3, [](Config& c) { c.heartbeat_tick = 2; });
  s.BecomeLeader();
  s.core->Tick();
  EXPECT_TRUE(s.Drain().empty());
  s.core->Tick();
  std::vector<Message> msgs = s.Drain();
  ASSERT_EQ(msgs.size(), 2u);
  for (const Message& m : msgs) EXPECT_EQ(m.type(), raftpb::MSG_HEARTBEAT);
}

// ---- §5.3: log replication ----

TEST(CoreTest, LeaderCommitsOnlyWhenAMajorityHasTheEntry) {
  Network net(5);
  net.Campaign(1);
  net.Cut(1, 2);
  net.Cut(1, 3);
  net.Cut(1, 4);
  ASSERT_TRUE(net.Propose(1, "x").ok());
  EXPECT_TRUE(net.node(1).applied.empty());  // only 1 and 5 have it
  net.Recover();
  net.Cut(1, 2);
  net.Cut(1, 3);
  net.TickAll(1);  // heartbeat responses trigger the catch-up append to 4
  EXPECT_EQ(net.node(1).applied, (std::vector<std::string>{"x"}));  // 1, 4, 5
}

// A leader whose followers stop acknowledging (slow disks, a partition check-quorum has not
// acted on yet) drops proposals once max_uncommitted_bytes wait, instead of buffering
// without bound, and takes them again as entries commit.
TEST(CoreTest, ALeaderDropsProposalsWhileTooManyBytesWaitToCommit) {
  Network net(3, [](Config& c) { c.max_uncommitted_bytes = 1000; });
  net.Campaign(1);
  ASSERT_EQ(net.core(1).role(), Role::kLeader);
  net.Isolate(1);
  EXPECT_TRUE(net.Propose(1, std::string(1500, 'a')).ok());  // alone, over the limit: taken
  absl::Status st = net.Propose(1, "b");
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("1500 bytes of entries wait to commit"), std::string::npos) << st;
  net.Recover();
  net.TickAll(1);  // heartbeats: the followers catch up, the entry commits
  ASSERT_EQ(net.node(1).applied.size(), 1u);
  net.Isolate(1);
  EXPECT_TRUE(net.Propose(1, std::string(600, 'c')).ok());
  EXPECT_TRUE(net.Propose(1, std::string(400, 'd')).ok());  // 1000: at the limit
  EXPECT_EQ(net.Propose(1, "e").code(), absl::StatusCode::kResourceExhausted);
  net.Recover();
  net.TickAll(1);
  EXPECT_EQ(net.node(1).applied.size(), 3u);
  EXPECT_TRUE(net.Propose(1, std::string(900, 'f')).ok());
  // A new leader counts only what it appends itself.
  net.Isolate(1);
  EXPECT_TRUE(net.Propose(1, std::string(900, 'g')).ok());
  net.Recover();
  net.Campaign(2);
  ASSERT_EQ(net.core(2).role(), Role::kLeader);
  net.Isolate(2);
  EXPECT_TRUE(net.Propose(2, std::string(1000, 'h')).ok());
  EXPECT_EQ(net.Propose(2, "i").code(), absl::StatusCode::kResourceExhausted);
}

// The leader counts its own copy only once it is persisted: a single member commits in the
// Ready after the one that persisted the entry, never before.
// Pipelining to a follower that does not answer stops at the in-flight window: so many
// messages, or so many bytes of entries, whichever comes first; it resumes once it answers.
TEST(CoreTest, AppendsToASilentFollowerStopAtTheInFlightWindow) {
  struct Case {
    size_t messages;
    uint64_t bytes;
    size_t sent;  // appends carrying 300-byte entries that leave before the window is full
  };
  for (const Case& c : {Case{3, 0, 3}, Case{256, 1000, 4}, Case{2, 1000, 2}}) {
    SCOPED_TRACE(::testing::Message() << c.messages << " messages, " << c.bytes << " bytes");
    auto window = [&](Config& config) {
      config.max_inflight_msgs = c.messages;
      config.max_inflight_bytes = c.bytes;
    };
    Network net(3, window);
    net.Campaign(1);
    ASSERT_TRUE(net.Propose(1, "warm").ok());
    const uint64_t first = net.core(1).log().LastIndex() + 1;
    ASSERT_EQ(net.core(1).progress().at(3).state, Progress::State::kReplicate);
    net.Cut(1, 3);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.Propose(1, std::string(300, 'a' + i)).ok());
    const Progress& pr = net.core(1).progress().at(3);
    EXPECT_EQ(pr.inflights.Count(), c.sent);
    EXPECT_EQ(pr.next, first + c.sent);  // nothing more was sent
    EXPECT_TRUE(pr.inflights.Full());
    net.Recover();
    net.TickAll(3);
    EXPECT_EQ(net.core(1).progress().at(3).match, net.core(1).log().LastIndex());
    EXPECT_EQ(net.node(3).applied, net.node(1).applied);
  }
}

TEST(CoreTest, LeaderDoesNotCountItsOwnUnpersistedEntry) {
  Solo s({}, 1);
  s.core->Campaign();
  ASSERT_EQ(s.core->role(), Role::kLeader);
  s.Drain();  // the no-op, persisted and then committed
  ASSERT_TRUE(s.core->Propose("x").ok());
  Ready rd = s.core->GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.committed_entries.empty());
  EXPECT_TRUE(rd.must_sync);
  ASSERT_TRUE(s.store->Append(rd.entries).ok());
  s.core->Advance(rd);
  ASSERT_TRUE(s.core->HasReady());
  Ready rd2 = s.core->GetReady();
  ASSERT_EQ(rd2.committed_entries.size(), 1u);
  EXPECT_EQ(rd2.committed_entries[0].data(), "x");
  EXPECT_FALSE(rd2.must_sync);  // only the commit index moved
}

// Config::hold_leader_writes: a leader's next write waits while its own log is durable
// beyond every voter follower's acknowledgement, and only then.
TEST(CoreTest, ALeadersNextWriteWaitsWhileNoFollowerHoldsItsLast) {
  Solo s;
  s.core->Campaign();
  s.Drain();
  for (uint64_t id = 2; id <= 3; ++id) (void)s.core->Step(Msg(raftpb::MSG_VOTE_RESP, id, 1, 1));
  ASSERT_EQ(s.core->role(), Role::kLeader);
  // A new leader's first write (its empty entry) never waits.
  EXPECT_FALSE(s.core->LeaderWriteMayWait());
  s.Drain();  // the empty entry (index 1) is written
  EXPECT_FALSE(s.core->LeaderWriteMayWait());  // nothing to write
  ASSERT_TRUE(s.core->Propose("a").ok());
  // Written up to 1, no follower has acknowledged 1: "a" waits.
  EXPECT_TRUE(s.core->LeaderWriteMayWait());
  // Meanwhile its appends may leave and commits apply (the caller takes them).
  auto app_resp = [](uint64_t from, uint64_t index) {
    Message r = Msg(raftpb::MSG_APP_RESP, from, 1, 1);
    r.set_index(index);
    return r;
  };
  (void)s.core->Step(app_resp(2, 1));
  // Member 2 holds 1 now: write.
  EXPECT_FALSE(s.core->LeaderWriteMayWait());
  s.Drain();  // "a" (2) written
  ASSERT_TRUE(s.core->Propose("b").ok());
  EXPECT_TRUE(s.core->LeaderWriteMayWait());
  (void)s.core->Step(app_resp(3, 2));  // either follower will do
  EXPECT_FALSE(s.core->LeaderWriteMayWait());
  s.Drain();

  // Anything else for the Ready makes it go: here a vote request's answer.
  ASSERT_TRUE(s.core->Propose("c").ok());
  ASSERT_TRUE(s.core->LeaderWriteMayWait());
  Message vote = Msg(raftpb::MSG_VOTE, 2, 1, 1);
  vote.set_index(0);
  vote.set_log_term(0);
  (void)s.core->Step(vote);
  EXPECT_FALSE(s.core->LeaderWriteMayWait());
  s.Drain();

  // Turned off, it never waits.
  Solo off({}, 3, [](Config& c) { c.hold_leader_writes = false; });
  off.BecomeLeader();
  ASSERT_TRUE(off.core->Propose("a").ok());
  EXPECT_FALSE(off.core->LeaderWriteMayWait());
}

// A leader with no voter follower (a single member) has no acknowledgement to wait for.
TEST(CoreTest, ASingleMembersWritesNeverWait) {
  Solo s({}, 1);
  s.core->Campaign();
  ASSERT_EQ(s.core->role(), Role::kLeader);
  s.Drain();
  ASSERT_TRUE(s.core->Propose("x").ok());
  EXPECT_FALSE(s.core->LeaderWriteMayWait());
}

TEST(CoreTest, FollowerRejectsAppendWhosePreviousEntryDoesNotMatch) {
  Solo s({1, 2}, 3);
  struct Case {
    uint64_t index, log_term;
    bool reject;
  };
  for (const Case& c :
       std::vector<Case>{{0, 0, false}, {1, 1, false}, {2, 2, false}, {2, 1, true}, {3, 3, true}}) {
    Message app = Msg(raftpb::MSG_APP, 2, 1, 2);
    app.set_index(c.index);
    app.set_log_term(c.log_term);
    (void)s.core->Step(app);
    std::vector<Message> msgs = s.Drain();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type(), raftpb::MSG_APP_RESP);
    EXPECT_EQ(msgs[0].reject(), c.reject) << c.index << "/" << c.log_term;
    if (c.reject) {
      // The hint is the last index whose term is at most the leader's term there.
      EXPECT_EQ(msgs[0].reject_hint(), c.log_term == 1 ? 1u : 2u);
    }
  }
}

TEST(CoreTest, FollowerReplacesAConflictingSuffix) {
  Solo s({1, 2, 2}, 3);
  Message app = Msg(raftpb::MSG_APP, 2, 1, 3);
  app.set_index(1);
  app.set_log_term(1);
  raftpb::Entry* e = app.add_entries();
  e->set_index(2);
  e->set_term(3);
  (void)s.core->Step(app);
  s.Drain();
  EXPECT_EQ(LogTerms(*s.core), (std::vector<uint64_t>{1, 3}));
}

// Section 5.3: a follower commits up to min(leaderCommit, index of the last new entry). The
// entries after what an append vouched for may be a deposed leader's, never committed: a
// follower that committed up to its own last entry applied them (a mutation test, sixteenth
// session: that passed every other unit test and 40,000 simulated seeds).
TEST(CoreTest, AFollowerCommitsNoFurtherThanTheLastEntryAnAppendVouchedFor) {
  for (bool with_entry : {false, true}) {
    Solo s({1, 2, 3}, 3);  // 2 and 3 from leaders of terms 2 and 3, never committed
    Message app = Msg(raftpb::MSG_APP, 2, 1, 4);
    app.set_index(1);
    app.set_log_term(1);
    app.set_commit(3);  // the term-4 leader's own entries 2 and 3 are committed
    if (with_entry) {
      raftpb::Entry* e = app.add_entries();  // matches the follower's 2 (a size-limited append)
      e->set_index(2);
      e->set_term(2);
    }
    ASSERT_TRUE(s.core->Step(app).ok());
    s.Drain();
    EXPECT_EQ(s.core->log().committed(), with_entry ? 2u : 1u) << with_entry;
    EXPECT_EQ(LogTerms(*s.core), (std::vector<uint64_t>{1, 2, 3})) << with_entry;
  }
}

// Figure 7: whatever a follower's log looks like, the leader makes it equal to its own.
TEST(CoreTest, Figure7LeaderBringsEveryFollowerLogInLine) {
  const std::vector<uint64_t> leader = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<uint64_t>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing one
      {1, 1, 1, 4},                          // (b) missing many
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) one extra uncommitted
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of a later term
      {1, 1, 1, 4, 4, 4, 4},                 // (e) missing and extra
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) a whole divergent history
  };
  for (size_t i = 0; i < followers.size(); ++i) {
    std::vector<std::pair<uint64_t, std::unique_ptr<MemoryLogStore>>> stores;
    // As in the figure, the leader is elected for term 8 (a term-7 leader wrote (d)'s tail).
    stores.emplace_back(1, StoreWithTerms(leader, {1, 2, 3}, 7));
    stores.emplace_back(2, StoreWithTerms(followers[i], {1, 2, 3}, 7));
    stores.emplace_back(3, StoreWithTerms(leader, {1, 2, 3}, 7));
    Network net(std::move(stores));
    net.Campaign(1);
    ASSERT_EQ(net.core(1).role(), Role::kLeader) << "case " << i;
    ASSERT_EQ(net.core(1).term(), 8u);
    ASSERT_TRUE(net.Propose(1, "new").ok());
    net.TickAll(1);  // the next heartbeat carries the commit index
    EXPECT_EQ(LogTerms(net.core(2)), LogTerms(net.core(1))) << "case " << char('a' + i);
    EXPECT_EQ(net.node(2).applied, net.node(1).applied) << "case " << char('a' + i);
  }
}

// Figure 8 / §5.4.2: a leader never commits an entry of an earlier term by counting replicas;
// it becomes committed only with an entry of the leader's own term.
TEST(CoreTest, Figure8LeaderCommitsOnlyEntriesOfItsOwnTermByCounting) {
  Solo s({1, 2}, 3);  // entry 2 is from term 2, which never committed it
  ASSERT_EQ(s.core->term(), 2u);
  s.BecomeLeader();
  ASSERT_EQ(s.core->term(), 3u);
  ASSERT_EQ(s.core->log().LastIndex(), 3u);  // the term-3 no-op
  (void)s.core->Step([&] {
    Message r = Msg(raftpb::MSG_APP_RESP, 2, 1, 3);
    r.set_index(2);  // follower 2 holds entry 2: a majority (1, 2) has it...
    return r;
  }());
  s.Drain();
  EXPECT_EQ(s.core->log().committed(), 0u);  // ...but it is of term 2: not committed
  (void)s.core->Step([&] {
    Message r = Msg(raftpb::MSG_APP_RESP, 2, 1, 3);
    r.set_index(3);
    return r;
  }());
  s.Drain();
  EXPECT_EQ(s.core->log().committed(), 3u);  // the term-3 entry commits both
}

// Fast backtracking: a follower with a long divergent suffix costs a few round trips, not one
// per entry.
TEST(CoreTest, RejectedAppendsSkipWholeTerms) {
  std::vector<uint64_t> leader(5, 1), follower(5, 1);
  leader.insert(leader.end(), 60, 3);
  follower.insert(follower.end(), 60, 2);
  std::vector<std::pair<uint64_t, std::unique_ptr<MemoryLogStore>>> stores;
  stores.emplace_back(1, StoreWithTerms(leader, {1, 2, 3}));
  stores.emplace_back(2, StoreWithTerms(follower, {1, 2, 3}));
  stores.emplace_back(3, StoreWithTerms(leader, {1, 2, 3}));
  Network net(std::move(stores));
  net.Campaign(1);
  ASSERT_EQ(net.core(1).role(), Role::kLeader);
  size_t rejects = 0;
  for (const Message& m : net.delivered()) {
    if (m.type() == raftpb::MSG_APP_RESP && m.reject() && m.from() == 2) ++rejects;
  }
  EXPECT_LE(rejects, 2u);
  EXPECT_EQ(LogTerms(net.core(2)), LogTerms(net.core(1)));
}

// ---- Safety across restarts ----

TEST(CoreTest, RestartedMemberKeepsTermVoteAndLog) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  const uint64_t term = net.core(2).term();
  const std::vector<uint64_t> terms = LogTerms(net.core(2));
  net.Restart(2);
  EXPECT_EQ(net.core(2).term(), term);
  EXPECT_EQ(net.core(2).vote(), 1u);
  EXPECT_EQ(LogTerms(net.core(2)), terms);
  ASSERT_TRUE(net.Propose(1, "b").ok());
  EXPECT_EQ(net.node(2).applied, (std::vector<std::string>{"a", "b"}));
}

TEST(CoreTest, ProposalsWithoutALeaderAreRefused) {
  Network net(3);
  absl::Status s = net.Propose(2, "lost");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("no leader"), std::string::npos);
}

TEST(CoreTest, ProposalsOverTheEntryLimitAreRefusedAndAppendNothing) {
  Solo s({}, 3, [](Config& c) { c.max_entry_bytes = 1000; });
  s.BecomeLeader();
  const uint64_t last = s.core->log().LastIndex();
  Message m = Msg(raftpb::MSG_PROP, 1, 0, 0);
  m.add_entries()->set_data(std::string(999, 'a'));
  m.add_entries()->set_data(std::string(1001, 'b'));
  absl::Status st = s.core->Step(m);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("proposal of 1001 bytes exceeds the limit of 1000 bytes"),
            std::string::npos)
      << st;
  EXPECT_EQ(s.core->log().LastIndex(), last);
  EXPECT_TRUE(s.core->Propose(std::string(1000, 'c')).ok());
  EXPECT_EQ(s.core->log().LastIndex(), last + 1);
}

// A follower forwards a batch of proposals in messages no larger than an append may be, so
// that each fits what the transport and the leader's server accept.
TEST(CoreTest, AFollowerForwardsABatchOfProposalsInBoundedMessages) {
  Solo s({}, 3, [](Config& c) { c.max_size_per_msg = 10000; });
  Message hb = Msg(raftpb::MSG_HEARTBEAT, 2, 1, 1);
  ASSERT_TRUE(s.core->Step(hb).ok());
  ASSERT_EQ(s.core->leader(), 2u);
  s.Drain();
  Message m = Msg(raftpb::MSG_PROP, 1, 0, 0);
  for (int i = 0; i < 7; ++i) m.add_entries()->set_data(std::string(4000, 'a' + i));
  m.add_entries()->set_data(std::string(30000, 'z'));  // larger than a message: alone
  m.add_entries()->set_data("last");
  ASSERT_TRUE(s.core->Step(m).ok());
  std::string order;
  int messages = 0;
  for (const Message& out : s.Drain()) {
    if (out.type() != raftpb::MSG_PROP) continue;
    ++messages;
    EXPECT_EQ(out.to(), 2u);
    EXPECT_EQ(out.from(), 1u);
    uint64_t bytes = 0;
    for (const raftpb::Entry& e : out.entries()) {
      bytes += e.ByteSizeLong();
      order += e.data().substr(0, 1);
    }
    if (out.entries_size() > 1) {
      EXPECT_LE(bytes, 10000u);
    }
  }
  EXPECT_EQ(order, "abcdefgzl");
  EXPECT_EQ(messages, 6);  // ab, cd, ef, g, z, last
}

// ---- Pre-vote, check-quorum and leases ----

// Pre-vote and check-quorum on, as in Shoal's managers (the network's default is the paper's
// rules alone).
void PreVoteAndCheckQuorum(Config& c) {
  c.pre_vote = true;
  c.check_quorum = true;
}

TEST(CoreTest, PreVoteKeepsAPartitionedMemberFromDisruptingTheLeader) {
  Network net(3, PreVoteAndCheckQuorum);
  net.Campaign(1);
  ASSERT_EQ(net.core(1).role(), Role::kLeader);
  const uint64_t term = net.core(1).term();
  net.Isolate(3);
  net.Tick(3, 100);
  EXPECT_EQ(net.core(3).term(), term);  // pre-votes never raise the term
  EXPECT_EQ(net.core(3).role(), Role::kPreCandidate);
  net.Recover();
  net.TickAll(3);
  EXPECT_EQ(net.core(1).role(), Role::kLeader);
  EXPECT_EQ(net.core(1).term(), term);
  EXPECT_EQ(net.core(3).leader(), 1u);
}

TEST(CoreTest, WithoutPreVoteAPartitionedMemberDisruptsTheLeader) {
  Network net(3);
  net.Campaign(1);
  const uint64_t term = net.core(1).term();
  net.Isolate(3);
  net.Tick(3, 100);
  EXPECT_GT(net.core(3).term(), term);
  net.Recover();
  net.TickAll(20);
  EXPECT_GT(net.core(1).term(), term);  // the control case: the leader was deposed
}

// A pre-vote asks whether a member would vote, at a term the candidate has not taken: the
// receiver keeps its own term whatever it answers. Taking the pre-vote's term passed every
// test that ran with check-quorum (its lease drops the pre-vote first) and 10,000 simulated
// seeds (a mutation test, sixteenth session).
TEST(CoreTest, APreVoteNeverChangesTheReceiversTerm) {
  for (bool check_quorum : {false, true}) {
    std::unique_ptr<MemoryLogStore> store = StoreWithTerms({1, 1}, {1, 2, 3}, 1);
    Config c = TestConfig(1, store.get());
    c.pre_vote = true;
    c.check_quorum = check_quorum;
    std::unique_ptr<Core> core = std::move(*Core::Create(c));
    Message pre = Msg(raftpb::MSG_PRE_VOTE, 2, 1, 5);
    pre.set_index(2);
    pre.set_log_term(1);
    ASSERT_TRUE(core->Step(pre).ok());
    EXPECT_EQ(core->term(), 1u) << check_quorum;
    EXPECT_EQ(core->role(), Role::kFollower) << check_quorum;
    Ready rd = core->GetReady();
    EXPECT_FALSE(rd.hard_state && rd.hard_state->term() != 1) << check_quorum;
    std::vector<Message> out = rd.messages;
    out.insert(out.end(), rd.early_messages.begin(), rd.early_messages.end());
    ASSERT_EQ(out.size(), 1u) << check_quorum;
    EXPECT_EQ(out[0].type(), raftpb::MSG_PRE_VOTE_RESP);
    EXPECT_EQ(out[0].term(), 5u);  // answered at the asked term, as etcd does
    EXPECT_FALSE(out[0].reject()) << check_quorum;
  }
}

TEST(CoreTest, CheckQuorumMakesAnIsolatedLeaderStepDown) {
  Network net(3, [](Config& c) { c.check_quorum = true; });
  net.Campaign(1);
  ASSERT_EQ(net.core(1).role(), Role::kLeader);
  net.Isolate(1);
  net.Tick(1, 10);  // one election timeout
  net.Tick(1, 10);
  EXPECT_EQ(net.core(1).role(), Role::kFollower);
  EXPECT_EQ(net.core(1).leader(), 0u);
}

TEST(CoreTest, FollowersInALeaseIgnoreVotesForANewTerm) {
  Network net(3, [](Config& c) { c.check_quorum = true; });
  net.Campaign(1);
  const uint64_t term = net.core(1).term();
  // Node 3 campaigns while 2 still hears from leader 1: 2 ignores the vote request.
  net.Isolate(3);
  net.Tick(3, 30);
  net.Recover();
  net.Cut(3, 1);
  net.node(3).core->Campaign();
  net.Stabilize();
  EXPECT_NE(net.core(3).role(), Role::kLeader);
  EXPECT_EQ(net.core(2).term(), term);
  EXPECT_EQ(net.core(2).leader(), 1u);
}

// Followers that lose the leader's connection elect a new one within a few ticks instead of
// their 10-20 tick timeout; a false alarm on one follower changes nothing.
TEST(CoreTest, LosingTheLeadersConnectionTriggersAnEarlyElection) {
  Network net(3, PreVoteAndCheckQuorum);
  net.Campaign(1);
  const uint64_t term = net.core(1).term();
  net.Isolate(1);  // the leader's process died
  net.core(2).LeaderUnreachable();
  net.core(3).LeaderUnreachable();
  for (int tick = 0; tick < 4; ++tick) {
    net.Tick(2);
    net.Tick(3);
  }
  const bool two = net.core(2).role() == Role::kLeader;
  const bool three = net.core(3).role() == Role::kLeader;
  EXPECT_TRUE(two || three);
  EXPECT_GT(net.core(two ? 2 : 3).term(), term);
}

// The leader's process dies and both followers campaign at the same moment: each pre-vote
// reaches the other while it is a pre-candidate itself. Both used to grant, both stood in the
// next term, each voted for itself, and the vote split (an election timeout lost). Now the
// higher-numbered one stands aside for the lower one, which wins at once.
TEST(CoreTest, TwoFollowersCampaigningAtOnceDoNotSplitTheVote) {
  Network net(3, PreVoteAndCheckQuorum);
  net.Campaign(1);
  const uint64_t term = net.core(1).term();
  net.Isolate(1);
  net.core(2).LeaderUnreachable();
  net.core(3).LeaderUnreachable();
  net.core(2).Campaign();
  net.core(3).Campaign();
  ASSERT_EQ(net.core(2).role(), Role::kPreCandidate);
  ASSERT_EQ(net.core(3).role(), Role::kPreCandidate);
  // Both pre-vote requests cross: each reaches the other before any answer.
  raftpb::Message from2, from3;
  for (raftpb::Message& m : net.TakeMessages(2)) {
    if (m.to() == 3) from2 = m;
  }
  for (raftpb::Message& m : net.TakeMessages(3)) {
    if (m.to() == 2) from3 = m;
  }
  ASSERT_EQ(from2.type(), raftpb::MSG_PRE_VOTE);
  ASSERT_EQ(from3.type(), raftpb::MSG_PRE_VOTE);
  ASSERT_TRUE(net.core(3).Step(from2).ok());
  ASSERT_TRUE(net.core(2).Step(from3).ok());
  EXPECT_EQ(net.core(3).role(), Role::kFollower) << "member 3 did not stand aside";
  EXPECT_EQ(net.core(2).role(), Role::kPreCandidate);
  net.Stabilize();
  EXPECT_EQ(net.core(2).role(), Role::kLeader);
  EXPECT_EQ(net.core(2).term(), term + 1) << "more than one election";
  EXPECT_EQ(net.core(3).leader(), 2u);
}

// Standing aside is for a member at least as up to date only: a pre-candidate that refuses a
// lower-numbered member's pre-vote (its log is behind) goes on with its own campaign.
TEST(CoreTest, APreCandidateDoesNotStandAsideForAMemberWhoseLogIsBehind) {
  Network net(3, PreVoteAndCheckQuorum);
  net.Campaign(1);
  net.Cut(1, 2);
  ASSERT_TRUE(net.Propose(1, "only 1 and 3 have this").ok());
  net.Isolate(1);
  net.core(2).LeaderUnreachable();
  net.core(3).LeaderUnreachable();
  net.core(2).Campaign();
  net.core(3).Campaign();
  raftpb::Message from2;
  for (raftpb::Message& m : net.TakeMessages(2)) {
    if (m.to() == 3) from2 = m;
  }
  ASSERT_EQ(from2.type(), raftpb::MSG_PRE_VOTE);
  ASSERT_TRUE(net.core(3).Step(from2).ok());
  EXPECT_EQ(net.core(3).role(), Role::kPreCandidate);
  net.Stabilize();
  EXPECT_EQ(net.core(3).role(), Role::kLeader);
}

TEST(CoreTest, AFalseAlarmAboutTheLeaderDisruptsNothing) {
  Network net(3, PreVoteAndCheckQuorum);
  net.Campaign(1);
  const uint64_t term = net.core(1).term();
  net.core(2).LeaderUnreachable();  // only member 2 thinks so; 3 still hears the leader
  net.Tick(2, 3);
  net.TickAll(5);
  EXPECT_EQ(net.core(1).role(), Role::kLeader);
  EXPECT_EQ(net.core(1).term(), term);
  EXPECT_EQ(net.core(2).leader(), 1u);
}

// ---- ReadIndex ----

TEST(CoreTest, ReadIndexOnLeaderWaitsForAHeartbeatQuorum) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  ASSERT_TRUE(net.core(1).ReadIndex("r1").ok());
  net.Stabilize();
  ASSERT_EQ(net.node(1).read_states.size(), 1u);
  EXPECT_EQ(net.node(1).read_states[0].request_ctx, "r1");
  EXPECT_EQ(net.node(1).read_states[0].index, net.core(1).log().committed());
}

TEST(CoreTest, IsolatedLeaderServesNoReadIndex) {
  Network net(3);
  net.Campaign(1);
  net.Isolate(1);
  ASSERT_TRUE(net.core(1).ReadIndex("stale").ok());
  net.Stabilize();
  net.Tick(1, 3);
  EXPECT_TRUE(net.node(1).read_states.empty());
}

TEST(CoreTest, ReadIndexOnFollowerIsForwardedToTheLeader) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  ASSERT_TRUE(net.core(2).ReadIndex("r2").ok());
  net.Stabilize();
  ASSERT_EQ(net.node(2).read_states.size(), 1u);
  EXPECT_EQ(net.node(2).read_states[0].request_ctx, "r2");
  EXPECT_EQ(net.node(2).read_states[0].index, net.core(1).log().committed());
  Network leaderless(3);
  EXPECT_EQ(leaderless.core(2).ReadIndex("x").code(), absl::StatusCode::kUnavailable);
}

// ---- Leadership transfer ----

TEST(CoreTest, TransfersLeadershipToAnUpToDateFollower) {
  Network net(3);
  net.Campaign(1);
  net.core(1).TransferLeader(2);
  net.Stabilize();
  EXPECT_EQ(net.core(2).role(), Role::kLeader);
  EXPECT_EQ(net.core(1).leader(), 2u);
}

TEST(CoreTest, TransferToALaggingFollowerWaitsForItToCatchUp) {
  Network net(3);
  net.Campaign(1);
  net.Isolate(3);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.Recover();
  net.core(1).TransferLeader(3);
  net.Stabilize();
  EXPECT_EQ(net.core(3).role(), Role::kLeader);
  EXPECT_EQ(net.node(3).applied, (std::vector<std::string>{"a"}));
}

TEST(CoreTest, ProposalsAreRefusedDuringATransfer) {
  Network net(3);
  net.Campaign(1);
  net.Isolate(3);
  net.core(1).TransferLeader(3);
  net.Stabilize();
  EXPECT_EQ(net.core(1).lead_transferee(), 3u);
  EXPECT_EQ(net.core(1).Propose("x").code(), absl::StatusCode::kUnavailable);
  net.Tick(1, 10);  // not finished within an election timeout: abandoned
  EXPECT_EQ(net.core(1).lead_transferee(), 0u);
  EXPECT_TRUE(net.core(1).Propose("x").ok());
}

// ---- Snapshots ----

TEST(CoreTest, FollowerBehindTheCompactedLogCatchesUpFromASnapshot) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.Isolate(3);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  // Leader snapshots its state machine and compacts the log.
  testing::TestNode& leader = net.node(1);
  std::string data;
  for (const std::string& v : leader.applied) data += v + "\n";
  const uint64_t applied = leader.core->log().applied();
  ASSERT_TRUE(leader.storage->CreateSnapshot(applied, &leader.conf_state, data).ok());
  ASSERT_TRUE(leader.storage->Compact(applied).ok());
  net.Recover();
  net.TickAll(2);
  bool snapshot_sent = false;
  for (const Message& m : net.delivered()) snapshot_sent |= m.type() == raftpb::MSG_SNAP;
  EXPECT_TRUE(snapshot_sent);
  ASSERT_TRUE(net.Propose(1, "after").ok());
  EXPECT_EQ(net.node(3).applied, net.node(1).applied);
  EXPECT_EQ(net.node(3).applied.back(), "after");
}

// The core names the snapshot a follower needs; it does not copy the whole state into the
// message on the node's loop thread. The sender fills the data in (FillSnapshot, off the loop),
// and a follower drops a snapshot message that was not filled in rather than install an
// empty state.
TEST(CoreTest, ASnapshotForAFollowerCarriesOnlyItsMetadataUntilFilledIn) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.Isolate(3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  testing::TestNode& leader = net.node(1);
  const std::string data = "the whole state";
  const uint64_t applied = leader.core->log().applied();
  ASSERT_TRUE(leader.storage->CreateSnapshot(applied, &leader.conf_state, data).ok());
  ASSERT_TRUE(leader.storage->Compact(applied).ok());
  net.Recover();
  leader.core->Tick();  // a heartbeat: follower 3's answers lead the leader to its snapshot
  std::vector<Message> snaps;
  for (int round = 0; round < 5 && snaps.empty(); ++round) {
    std::vector<Message> to_3;
    while (net.core(1).HasReady()) {  // the leader's Readies as they are, nothing filled in
      Ready rd = net.core(1).GetReady();
      if (rd.hard_state) leader.storage->SetHardState(*rd.hard_state);
      for (auto* list : {&rd.early_messages, &rd.messages}) {
        for (const Message& m : *list) {
          if (m.type() == raftpb::MSG_SNAP) {
            snaps.push_back(m);
          } else if (m.to() == 3) {
            to_3.push_back(m);
          }
        }
      }
      net.core(1).Advance(rd);
    }
    for (const Message& m : to_3) (void)net.core(3).Step(m);
    for (const Message& m : net.TakeMessages(3)) {
      if (m.to() == 1) (void)net.core(1).Step(m);
    }
  }
  ASSERT_EQ(snaps.size(), 1u);
  Message snap = snaps[0];
  EXPECT_TRUE(snap.snapshot_unfilled());
  EXPECT_EQ(snap.snapshot().metadata().index(), applied);
  EXPECT_TRUE(snap.snapshot().data().empty());

  // Unfilled, it changes nothing on the follower.
  const uint64_t committed = net.core(3).log().committed();
  ASSERT_TRUE(net.core(3).Step(snap).ok());
  EXPECT_FALSE(net.core(3).log().HasPendingSnapshot());
  EXPECT_EQ(net.core(3).log().committed(), committed);

  // Filled in from the leader's store, it carries the stored snapshot.
  ASSERT_TRUE(FillSnapshot(*leader.storage, snap).ok());
  EXPECT_FALSE(snap.snapshot_unfilled());
  EXPECT_EQ(snap.snapshot().data(), data);
  ASSERT_TRUE(net.core(3).Step(snap).ok());
  EXPECT_TRUE(net.core(3).log().HasPendingSnapshot());

  // A stored snapshot older than the one named cannot be sent in its place.
  Message newer = snaps[0];
  newer.mutable_snapshot()->mutable_metadata()->set_index(applied + 1);
  EXPECT_EQ(FillSnapshot(*leader.storage, newer).code(), absl::StatusCode::kFailedPrecondition);
}

// ---- Membership changes ----

raftpb::ConfChange Change(raftpb::ConfChange::Type type, uint64_t id) {
  raftpb::ConfChange cc;
  cc.set_type(type);
  cc.set_node_id(id);
  return cc;
}

TEST(CoreTest, LearnerCatchesUpWithoutVotingThenIsPromoted) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.AddNode(4, net.node(1).conf_state);
  ASSERT_TRUE(
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  net.Stabilize();
  net.TickAll(1);
  EXPECT_EQ(net.node(4).applied, (std::vector<std::string>{"a"}));
  EXPECT_TRUE(net.core(1).progress().at(4).is_learner);
  // A learner does not count towards the commit quorum: with 2 and 3 cut off, nothing commits.
  net.Cut(1, 2);
  net.Cut(1, 3);
  ASSERT_TRUE(net.Propose(1, "b").ok());
  EXPECT_EQ(net.node(1).applied.size(), 1u);
  net.Recover();
  net.TickAll(1);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_NODE, 4)).ok());
  net.Stabilize();
  EXPECT_FALSE(net.core(1).progress().at(4).is_learner);
  EXPECT_EQ(net.node(4).conf_state.voters_size(), 4);
}

// A learner votes only once it has caught up: promoted earlier (or while it is down) it would
// count against the quorum without being able to acknowledge.
TEST(CoreTest, ALearnerIsPromotedOnlyOnceItHasCaughtUp) {
  auto lag5 = [](Config& c) { c.max_learner_lag = 5; };
  Network net(3, lag5);
  net.Campaign(1);
  net.AddNode(4, net.node(1).conf_state, lag5);
  ASSERT_TRUE(
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  net.Stabilize();
  net.Cut(1, 4);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  const uint64_t last = net.core(1).log().LastIndex();
  absl::Status early = net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_NODE, 4));
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_NE(early.message().find("learner 4 has not caught up"), std::string::npos) << early;
  EXPECT_EQ(net.core(1).log().LastIndex(), last);  // nothing appended
  net.Recover();
  net.TickAll(2);
  ASSERT_EQ(net.core(1).progress().at(4).match, net.core(1).log().LastIndex());
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_NODE, 4)).ok());
  net.Stabilize();
  EXPECT_FALSE(net.core(1).progress().at(4).is_learner);
}

TEST(CoreTest, ANewMemberJoinsAsALearnerNotAVoter) {
  Network net(3);
  net.Campaign(1);
  const uint64_t last = net.core(1).log().LastIndex();
  absl::Status s = net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_NODE, 5));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("add it as a learner first"), std::string::npos) << s;
  EXPECT_EQ(net.core(1).log().LastIndex(), last);
}

// Checked by the leader before appending: an unparsable change would stop every member that
// applies it, and two changes in one proposal would break the one-at-a-time rule.
TEST(CoreTest, AMalformedMembershipChangeIsRefusedBeforeItIsAppended) {
  Network net(3);
  net.Campaign(1);
  const uint64_t last = net.core(1).log().LastIndex();
  raftpb::Message m;
  m.set_type(raftpb::MSG_PROP);
  m.set_from(1);
  raftpb::Entry* e = m.add_entries();
  e->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  e->set_data("\xff\xff not a ConfChange");
  absl::Status s = net.core(1).Step(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("unparsable"), std::string::npos) << s;
  e->set_data(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4).SerializeAsString());
  raftpb::Entry* second = m.add_entries();
  *second = *e;
  second->set_data(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 5).SerializeAsString());
  s = net.core(1).Step(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(net.core(1).log().LastIndex(), last);
  // Neither left a pending change behind.
  EXPECT_TRUE(
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
}

// The leader's latest snapshot predates the learner's addition: the learner installs it anyway
// and the entries after it make it a member.
TEST(CoreTest, NewLearnerCatchesUpFromASnapshotTakenBeforeItsAddition) {
  Network net(3);
  net.Campaign(1);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  for (uint64_t id : net.ids()) {
    testing::TestNode& n = net.node(id);
    std::string data;
    for (const std::string& v : n.applied) data += v + "\n";
    const uint64_t applied = n.core->log().applied();
    ASSERT_TRUE(n.storage->CreateSnapshot(applied, &n.conf_state, data).ok());
    ASSERT_TRUE(n.storage->Compact(applied).ok());
  }
  net.AddNode(4, net.node(1).conf_state);
  ASSERT_TRUE(
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  net.Stabilize();
  net.TickAll(3);
  ASSERT_TRUE(net.Propose(1, "after").ok());
  net.TickAll(1);
  EXPECT_EQ(net.node(4).applied, net.node(1).applied);
  EXPECT_EQ(net.node(4).conf_state.learners_size(), 1);
}

TEST(CoreTest, OnlyOneMembershipChangeIsPendingAtATime) {
  Network net(3);
  net.Campaign(1);
  net.Isolate(1);  // nothing commits
  ASSERT_TRUE(
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  absl::Status second =
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 5));
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CoreTest, RemovedMemberNoLongerCountsOrCampaigns) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_REMOVE_NODE, 3)).ok());
  net.Stabilize();
  EXPECT_EQ(net.core(1).progress().count(3), 0u);
  net.Isolate(3);
  ASSERT_TRUE(net.Propose(1, "two voters").ok());  // 1 and 2 are a majority of 2
  EXPECT_EQ(net.node(1).applied, (std::vector<std::string>{"two voters"}));
  net.Tick(3, 50);
  EXPECT_EQ(net.core(3).role(), Role::kFollower);  // removed from its own view: not promotable
}

TEST(CoreTest, RemovedLeaderStepsDownAndTheRestElectANewOne) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_REMOVE_NODE, 1)).ok());
  net.Stabilize();
  EXPECT_NE(net.core(1).role(), Role::kLeader);
  net.Campaign(2);
  EXPECT_EQ(net.core(2).role(), Role::kLeader);
  ASSERT_TRUE(net.Propose(2, "after").ok());
  EXPECT_EQ(net.node(3).applied, (std::vector<std::string>{"after"}));
}

TEST(CoreTest, AMemberRemovedWhileAwayIsToldWhenItComesBack) {
  Network net(4, PreVoteAndCheckQuorum);
  net.Campaign(1);
  ASSERT_EQ(net.core(1).role(), Role::kLeader);
  net.Isolate(4);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_REMOVE_NODE, 4)).ok());
  net.Stabilize();
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(std::vector<uint64_t>(net.node(id).conf_state.removed().begin(),
                                    net.node(id).conf_state.removed().end()),
              std::vector<uint64_t>{4})
        << "member " << id;
  }
  EXPECT_FALSE(net.core(4).removed());  // it never heard of its removal
  EXPECT_EQ(net.core(4).conf_state().voters_size(), 4);

  // Back, it times out and asks the members it knows for their (pre-)votes: they tell it.
  net.Recover();
  net.Tick(4, 40);
  EXPECT_TRUE(net.core(4).removed());
  EXPECT_EQ(net.core(4).role(), Role::kFollower);
  EXPECT_EQ(net.core(4).leader(), 0u);
  EXPECT_EQ(net.core(4).Propose("late").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(net.core(4).ReadIndex("read").code(), absl::StatusCode::kFailedPrecondition);

  // From then on it never campaigns, and the others go on without it.
  const size_t seen = net.delivered().size();
  net.Tick(4, 100);
  for (size_t i = seen; i < net.delivered().size(); ++i) {
    EXPECT_NE(net.delivered()[i].from(), 4u) << MessageType_Name(net.delivered()[i].type());
  }
  EXPECT_EQ(net.core(1).role(), Role::kLeader);
  ASSERT_TRUE(net.Propose(1, "three voters").ok());
  EXPECT_EQ(net.node(3).applied, (std::vector<std::string>{"three voters"}));
}

// A member told it was removed has not applied its removal, so it still counts itself a
// voter: a TimeoutNow (from a transfer to it begun before the removal, delayed) made it
// campaign in a new term (found by a review).
TEST(CoreTest, AMemberToldItWasRemovedDoesNotCampaignOnATimeoutNow) {
  Network net(4, PreVoteAndCheckQuorum);
  net.Campaign(1);
  const uint64_t term = net.core(1).term();
  net.Isolate(4);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_REMOVE_NODE, 4)).ok());
  net.Stabilize();
  net.Recover();
  net.Tick(4, 40);
  ASSERT_TRUE(net.core(4).removed());
  const size_t seen = net.delivered().size();
  net.Send(Msg(raftpb::MSG_TIMEOUT_NOW, 1, 4, term));
  EXPECT_EQ(net.core(4).role(), Role::kFollower);
  EXPECT_EQ(net.core(4).term(), term);
  for (size_t i = seen; i < net.delivered().size(); ++i) {
    EXPECT_NE(net.delivered()[i].type(), raftpb::MSG_VOTE);
  }
  EXPECT_EQ(net.core(1).role(), Role::kLeader);
  EXPECT_EQ(net.core(1).term(), term);
}

// A learner removed while it was cut off (a join the manager gave up on) is contacted by no one
// any more, and never campaigns: it asks the voters it knows once it has heard from no leader
// for an election timeout, and is told.
TEST(CoreTest, ALearnerRemovedInSilenceAsksAndIsTold) {
  Network net(3, PreVoteAndCheckQuorum);
  net.Campaign(1);
  net.AddNode(4, net.core(1).conf_state());
  ASSERT_TRUE(
      net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  net.Stabilize();
  ASSERT_TRUE(net.Propose(1, "caught up").ok());
  ASSERT_EQ(net.node(4).applied, (std::vector<std::string>{"caught up"}));
  net.Isolate(4);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_REMOVE_NODE, 4)).ok());
  net.Stabilize();
  net.Recover();
  net.Tick(4, 5);
  EXPECT_FALSE(net.core(4).removed());  // not yet: it has not waited an election timeout
  net.Tick(4, 40);
  EXPECT_TRUE(net.core(4).removed());
  // A learner that still belongs asks too, and the leader answers with what it lacks.
  Network kept(3);
  kept.Campaign(1);
  kept.AddNode(4, kept.core(1).conf_state());
  ASSERT_TRUE(
      kept.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  kept.Stabilize();
  kept.Cut(1, 4);
  ASSERT_TRUE(kept.Propose(1, "missed").ok());
  kept.Recover();
  kept.Tick(4, 40);
  EXPECT_FALSE(kept.core(4).removed());
  EXPECT_EQ(kept.node(4).applied, (std::vector<std::string>{"missed"}));
}

TEST(CoreTest, ARemovedMembersIdIsNeverUsedAgain) {
  Network net(3);
  net.Campaign(1);
  ASSERT_TRUE(net.core(1).ProposeConfChange(Change(raftpb::ConfChange::TYPE_REMOVE_NODE, 3)).ok());
  net.Stabilize();
  EXPECT_TRUE(net.core(3).removed());  // applied its own removal
  const uint64_t last = net.core(1).log().LastIndex();
  for (auto type : {raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, raftpb::ConfChange::TYPE_ADD_NODE,
                    raftpb::ConfChange::TYPE_UPDATE_NODE, raftpb::ConfChange::TYPE_REMOVE_NODE}) {
    absl::Status s = net.core(1).ProposeConfChange(Change(type, 3));
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("member 3 was removed"));
  }
  net.Stabilize();
  EXPECT_EQ(net.core(1).log().LastIndex(), last);  // nothing appended
  // The removed ids are part of the membership, so restarts and snapshots keep them.
  EXPECT_EQ(net.core(2).conf_state().removed_size(), 1);
  EXPECT_EQ(net.core(2).conf_state().removed(0), 3u);
}

// ---- Persisting asynchronously (the node loop's writer, the simulation's delayed writes) ----

std::vector<Message> OfType(const std::vector<Message>& msgs, raftpb::MessageType type) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type() == type) out.push_back(m);
  }
  return out;
}

Message AppResp(uint64_t from, uint64_t term, uint64_t index) {
  Message m = Msg(raftpb::MSG_APP_RESP, from, 1, term);
  m.set_index(index);
  return m;
}

// A leader of 3 whose followers have acknowledged everything so far (replicate state).
Solo LeaderWithCaughtUpFollowers() {
  Solo s;
  s.BecomeLeader();
  const uint64_t last = s.core->log().LastIndex();
  for (uint64_t id = 2; id <= 3; ++id) (void)s.core->Step(AppResp(id, s.core->term(), last));
  s.Drain();
  return s;
}

// While the leader's write of one Ready is under way, new proposals go out to the followers at
// once, and what the followers acknowledge commits and is handed out to apply, although the
// leader has not persisted it yet; nothing is handed out twice.
TEST(CoreTest, LeaderReplicatesAndAppliesWhileItsOwnWriteIsUnderWay) {
  Solo s = LeaderWithCaughtUpFollowers();
  const uint64_t term = s.core->term();
  const uint64_t first = s.core->log().LastIndex() + 1;
  ASSERT_TRUE(s.core->Propose("a").ok());
  Ready rd = s.core->GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(OfType(rd.early_messages, raftpb::MSG_APP).size(), 2u);  // before the write
  EXPECT_TRUE(OfType(rd.messages, raftpb::MSG_APP).empty());

  // The write of `a` is under way.
  ASSERT_TRUE(s.core->Propose("b").ok());
  std::vector<Message> early = s.core->TakeEarlyMessages();
  ASSERT_EQ(OfType(early, raftpb::MSG_APP).size(), 2u);
  EXPECT_EQ(early[0].entries(0).data(), "b");
  EXPECT_TRUE(s.core->TakeEarlyMessages().empty());  // taken once
  EXPECT_TRUE(s.core->TakeCommittedEntries().empty());
  (void)s.core->Step(AppResp(2, term, first + 1));
  (void)s.core->Step(AppResp(3, term, first + 1));
  EXPECT_EQ(s.core->log().committed(), first + 1);  // the followers are a quorum
  std::vector<raftpb::Entry> committed = s.core->TakeCommittedEntries();
  ASSERT_EQ(committed.size(), 2u);
  EXPECT_EQ(committed[0].data(), "a");
  EXPECT_EQ(committed[1].data(), "b");
  EXPECT_EQ(s.core->log().applied(), first + 1);

  // The write completes; the next Ready persists `b` and repeats neither message nor entry.
  ASSERT_TRUE(s.store->Append(rd.entries).ok());
  s.core->Advance(rd);
  EXPECT_EQ(s.core->log().applied(), first + 1);
  Ready rd2 = s.core->GetReady();
  ASSERT_EQ(rd2.entries.size(), 1u);
  EXPECT_EQ(rd2.entries[0].data(), "b");
  EXPECT_TRUE(rd2.committed_entries.empty());
  // Only the new commit index goes out (in empty appends), early: no entry is sent again.
  for (const Message& m : rd2.early_messages) EXPECT_EQ(m.entries_size(), 0);
  EXPECT_TRUE(OfType(rd2.messages, raftpb::MSG_APP).empty());
}

// A follower's acknowledgement waits for its write: nothing leaves early, and an append that
// arrives during the write is acknowledged after the next one.
TEST(CoreTest, FollowerAcknowledgesOnlyAfterItsWrite) {
  Solo s({1}, 3);
  Message app = Msg(raftpb::MSG_APP, 2, 1, 1);
  app.set_index(1);
  app.set_log_term(1);
  raftpb::Entry e;
  e.set_index(2);
  e.set_term(1);
  e.set_data("x");
  *app.add_entries() = e;
  (void)s.core->Step(app);
  Ready rd = s.core->GetReady();
  EXPECT_TRUE(rd.early_messages.empty());
  EXPECT_EQ(OfType(rd.messages, raftpb::MSG_APP_RESP).size(), 1u);
  Message app2 = app;
  app2.set_index(2);
  e.set_index(3);
  e.set_data("y");
  *app2.mutable_entries(0) = e;
  (void)s.core->Step(app2);  // during the write of x
  EXPECT_TRUE(s.core->TakeEarlyMessages().empty());
  ASSERT_TRUE(s.store->Append(rd.entries).ok());
  if (rd.hard_state) s.store->SetHardState(*rd.hard_state);
  s.core->Advance(rd);
  Ready rd2 = s.core->GetReady();
  ASSERT_EQ(rd2.entries.size(), 1u);
  EXPECT_EQ(rd2.entries[0].data(), "y");
  std::vector<Message> acks = OfType(rd2.messages, raftpb::MSG_APP_RESP);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].index(), 3u);
}

// Under load every follower has appends in flight when the commit index moves: the new index
// rides on the next append, or goes out on its own once the follower's last append is
// acknowledged, instead of an empty append to every follower each time (which doubled the
// messages each way).
TEST(CoreTest, ACommitIndexIsToldWithTheNextAppendOrOnceAFollowerCaughtUp) {
  Solo s = LeaderWithCaughtUpFollowers();
  const uint64_t term = s.core->term();
  const uint64_t a = s.core->log().LastIndex() + 1;
  ASSERT_TRUE(s.core->Propose("a").ok());
  s.Drain();
  ASSERT_TRUE(s.core->Propose("b").ok());
  s.Drain();
  // 2 acknowledges `a` (`b` still in flight to it); 3 has both in flight.
  (void)s.core->Step(AppResp(2, term, a));
  ASSERT_EQ(s.core->log().committed(), a);
  EXPECT_TRUE(OfType(s.Drain(), raftpb::MSG_APP).empty());

  // The next append carries it.
  ASSERT_TRUE(s.core->Propose("c").ok());
  std::vector<Message> apps = OfType(s.Drain(), raftpb::MSG_APP);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    EXPECT_EQ(m.entries_size(), 1);
    EXPECT_EQ(m.commit(), a) << "to " << m.to();
  }

  // 2 acknowledges everything: nothing is in flight to it, so it is told `c` committed at once,
  // in an empty append; 3, still with appends in flight, is not.
  (void)s.core->Step(AppResp(2, term, a + 2));
  ASSERT_EQ(s.core->log().committed(), a + 2);
  apps = OfType(s.Drain(), raftpb::MSG_APP);
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0].to(), 2u);
  EXPECT_EQ(apps[0].entries_size(), 0);
  EXPECT_EQ(apps[0].commit(), a + 2);

  // 3 acknowledges `a` only: still in flight, still nothing.
  (void)s.core->Step(AppResp(3, term, a));
  EXPECT_TRUE(OfType(s.Drain(), raftpb::MSG_APP).empty());
  // 3 acknowledges the rest: now it is told, once.
  (void)s.core->Step(AppResp(3, term, a + 2));
  apps = OfType(s.Drain(), raftpb::MSG_APP);
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0].to(), 3u);
  EXPECT_EQ(apps[0].commit(), a + 2);
  // Their answers to the empty appends change nothing and send nothing.
  (void)s.core->Step(AppResp(2, term, a + 2));
  (void)s.core->Step(AppResp(3, term, a + 2));
  EXPECT_TRUE(s.Drain().empty());
}

// Appends built earlier in a batch leave with the commit index as it is when the batch is
// taken, so a follower with appends in flight is not left behind on it.
TEST(CoreTest, AppendsLeaveWithTheCommitIndexOfTheirBatch) {
  Solo s = LeaderWithCaughtUpFollowers();
  const uint64_t term = s.core->term();
  const uint64_t a = s.core->log().LastIndex() + 1;
  ASSERT_TRUE(s.core->Propose("a").ok());
  s.Drain();
  ASSERT_TRUE(s.core->Propose("b").ok());  // its appends are built with commit a - 1
  (void)s.core->Step(AppResp(2, term, a));
  ASSERT_EQ(s.core->log().committed(), a);
  std::vector<Message> apps = OfType(s.Drain(), raftpb::MSG_APP);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    EXPECT_EQ(m.entries_size(), 1);
    EXPECT_EQ(m.commit(), a) << "to " << m.to();
  }
  // Also when they are taken early, during the leader's own write.
  ASSERT_TRUE(s.core->Propose("c").ok());
  Ready rd = s.core->GetReady();
  ASSERT_TRUE(s.core->Propose("d").ok());
  (void)s.core->Step(AppResp(3, term, a + 2));  // 3 has `a` to `c`; commit moves to `b`
  ASSERT_EQ(s.core->log().committed(), a + 1);
  apps = OfType(s.core->TakeEarlyMessages(), raftpb::MSG_APP);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) EXPECT_EQ(m.commit(), a + 1) << "to " << m.to();
  ASSERT_TRUE(s.store->Append(rd.entries).ok());
  s.core->Advance(rd);
}

// A follower that took several appends in one batch acknowledges them once, with the highest
// index: the leader frees every append up to it. A rejection is kept.
TEST(CoreTest, AFollowerAcknowledgesTheAppendsOfOneBatchOnce) {
  Solo s({1}, 3);
  auto append = [](uint64_t prev_index, uint64_t prev_term, const std::string& data) {
    Message app = Msg(raftpb::MSG_APP, 2, 1, 1);
    app.set_index(prev_index);
    app.set_log_term(prev_term);
    raftpb::Entry* e = app.add_entries();
    e->set_index(prev_index + 1);
    e->set_term(1);
    e->set_data(data);
    return app;
  };
  (void)s.core->Step(append(1, 1, "x"));
  (void)s.core->Step(append(2, 1, "y"));
  (void)s.core->Step(append(3, 1, "z"));
  std::vector<Message> acks = OfType(s.Drain(), raftpb::MSG_APP_RESP);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].index(), 4u);
  EXPECT_FALSE(acks[0].reject());

  (void)s.core->Step(append(4, 1, "p"));
  (void)s.core->Step(append(9, 1, "gap"));  // no entry 9 here: rejected
  (void)s.core->Step(append(5, 1, "q"));
  acks = OfType(s.Drain(), raftpb::MSG_APP_RESP);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_TRUE(acks[0].reject());
  EXPECT_EQ(acks[0].index(), 9u);
  EXPECT_FALSE(acks[1].reject());
  EXPECT_EQ(acks[1].index(), 6u);
}

// An acknowledgement leaves only once the Ready it goes out with is written, and says that
// the entries it covers are on this member's disk. When a later step of the same batch
// replaces them before they are written (a newer leader's conflicting append or snapshot), it
// must not leave at all: it would vouch for entries that never reach the disk. Found by
// raft/fuzz/core_fuzzer.cc ("an append acknowledged before its entries were on the disk").
TEST(CoreTest, AnAcknowledgementOfEntriesReplacedBeforeTheyWereWrittenIsNotSent) {
  auto append = [](uint64_t from, uint64_t term, uint64_t prev_index, uint64_t prev_term,
                   std::vector<uint64_t> terms) {
    Message app = Msg(raftpb::MSG_APP, from, 1, term);
    app.set_index(prev_index);
    app.set_log_term(prev_term);
    for (uint64_t t : terms) {
      raftpb::Entry* e = app.add_entries();
      e->set_index(prev_index + app.entries_size());
      e->set_term(t);
    }
    return app;
  };
  auto accepted = [](const std::vector<Message>& msgs) {
    std::vector<std::pair<uint64_t, uint64_t>> out;  // (to, index)
    for (const Message& m : msgs) {
      if (m.type() == raftpb::MSG_APP_RESP && !m.reject()) out.emplace_back(m.to(), m.index());
    }
    return out;
  };
  using Acks = std::vector<std::pair<uint64_t, uint64_t>>;
  {
    SCOPED_TRACE("replaced by a snapshot");
    Solo s({1}, 3);
    ASSERT_TRUE(s.core->Step(append(2, 2, 1, 1, {2, 2})).ok());  // entries 2 and 3, acked
    Message snap = Msg(raftpb::MSG_SNAP, 3, 1, 3);
    raftpb::SnapshotMetadata* meta = snap.mutable_snapshot()->mutable_metadata();
    meta->set_index(2);
    meta->set_term(3);  // not the term of entry 2 here: the log is replaced
    for (uint64_t v : {1, 2, 3}) meta->mutable_conf_state()->add_voters(v);
    ASSERT_TRUE(s.core->Step(snap).ok());
    ASSERT_EQ(s.core->log().LastIndex(), 2u);
    Ready rd = s.core->GetReady();
    EXPECT_EQ(accepted(rd.messages), (Acks{{3, 2}}));
  }
  {
    SCOPED_TRACE("replaced by another leader's append");
    Solo s({1}, 3);
    ASSERT_TRUE(s.core->Step(append(2, 2, 1, 1, {2})).ok());     // entry 2, acked at 2
    ASSERT_TRUE(s.core->Step(append(2, 2, 2, 2, {2, 2})).ok());  // entries 3 and 4, at 4
    ASSERT_TRUE(s.core->Step(append(3, 3, 2, 2, {3})).ok());     // entry 3 replaced
    ASSERT_EQ(s.core->log().LastIndex(), 3u);
    Ready rd = s.core->GetReady();
    // The acknowledgement of entry 2 is still true; the one of entries 3 and 4 is not.
    EXPECT_EQ(accepted(rd.messages), (Acks{{2, 2}, {3, 3}}));
  }
}

// A candidate that wins while the write of its own term and vote is still under way may not
// send appends before that write completes: its leadership rests on that vote.
TEST(CoreTest, NoEarlyMessagesBeforeTheTermIsDurable) {
  Solo s;
  s.core->Campaign();
  Ready rd = s.core->GetReady();  // term and vote, written now
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_TRUE(rd.early_messages.empty());
  EXPECT_EQ(OfType(rd.messages, raftpb::MSG_VOTE).size(), 2u);
  (void)s.core->Step(Msg(raftpb::MSG_VOTE_RESP, 2, 1, s.core->term()));
  ASSERT_EQ(s.core->role(), Role::kLeader);
  EXPECT_TRUE(s.core->TakeEarlyMessages().empty());
  if (rd.hard_state) s.store->SetHardState(*rd.hard_state);
  s.core->Advance(rd);
  Ready rd2 = s.core->GetReady();  // the term is durable now
  EXPECT_EQ(OfType(rd2.early_messages, raftpb::MSG_APP).size(), 2u);
}

// The commit index is persisted lazily, so a snapshot can be ahead of the stored one: entries
// the application applied were committed, and the restarted core says so.
TEST(CoreTest, RestartWithASnapshotAheadOfTheStoredCommitIndex) {
  auto store = StoreWithTerms({1, 1, 1, 1}, {1, 2, 3});
  raftpb::HardState hs;
  hs.set_term(1);
  hs.set_commit(1);
  store->SetHardState(hs);
  ASSERT_TRUE(store->CreateSnapshot(3, nullptr, "state at 3").ok());
  Config c = TestConfig(1, store.get());
  c.applied = 3;
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(c);
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ((*core)->log().committed(), 3u);
  EXPECT_EQ((*core)->log().applied(), 3u);
  c.applied = 5;  // beyond the log: a caller's mistake
  EXPECT_EQ(Core::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- What a peer may send ----

// A member must survive whatever a buggy or older member sends it: each of these crashed,
// deposed or corrupted the receiver before CheckPeerMessage (an empty proposal failed a CHECK
// on the leader, a term-less vote made the receiver send a term-less answer and fail another,
// two MSG_CHECK_QUORUM deposed a live leader, a read request without its context was read out
// of bounds, entries that do not follow on one another went into the log).
TEST(CoreTest, MalformedPeerMessagesAreRefusedAndChangeNothing) {
  struct Case {
    std::string name;
    Message m;
    std::string error;
  };
  Solo s = LeaderWithCaughtUpFollowers();
  const uint64_t term = s.core->term();
  const uint64_t last_index_for_cases = s.core->log().LastIndex();
  std::vector<Case> cases;
  auto add = [&](std::string name, Message m, std::string error) {
    cases.push_back({std::move(name), std::move(m), std::move(error)});
  };
  add("empty proposal", Msg(raftpb::MSG_PROP, 2, 1, 0),
      "raft: MSG_PROP from member 2 carries no entries; dropped");
  {
    Message m = Msg(raftpb::MSG_PROP, 2, 1, 0);
    m.add_entries()->set_type(static_cast<raftpb::EntryType>(7));
    add("proposal of an unknown entry type", m, "carries an entry of unknown type 7");
  }
  for (raftpb::MessageType t : {raftpb::MSG_HUP, raftpb::MSG_BEAT, raftpb::MSG_UNREACHABLE,
                                raftpb::MSG_SNAP_STATUS, raftpb::MSG_CHECK_QUORUM}) {
    add(MessageType_Name(t), Msg(t, 2, 1, term), "is a member's own input, never a peer's");
  }
  {
    Message m = Msg(raftpb::MSG_VOTE, 2, 1, 0);
    m.set_index(1000);
    m.set_log_term(1000);
    add("term-less vote", m, "raft: MSG_VOTE from member 2 carries no term; dropped");
  }
  add("term-less append", Msg(raftpb::MSG_APP, 2, 1, 0), "carries no term");
  add("read request without its context", Msg(raftpb::MSG_READ_INDEX, 2, 1, 0),
      "carries 0 entries; a read request carries exactly one");
  add("no sender", Msg(raftpb::MSG_HEARTBEAT_RESP, 0, 1, term), "names no sender");
  add("meant for another", Msg(raftpb::MSG_HEARTBEAT_RESP, 2, 3, term),
      "is addressed to member 3, not to member 1");
  add("unknown type", Msg(static_cast<raftpb::MessageType>(99), 2, 1, term),
      "a message of unknown type 99 from member 2");
  {
    Message m = Msg(raftpb::MSG_APP, 2, 1, term + 1);
    m.set_index(5);
    m.set_log_term(1);
    m.add_entries()->set_index(6);
    m.add_entries()->set_index(8);
    m.mutable_entries(0)->set_term(term + 1);
    m.mutable_entries(1)->set_term(term + 1);
    add("entries with a gap", m, "carries entry 8 at position 1 after index 5");
  }
  {
    Message m = Msg(raftpb::MSG_APP, 2, 1, term + 1);
    m.set_index(5);
    m.set_log_term(1);
    m.add_entries()->set_index(6);
    m.mutable_entries(0)->set_term(term + 2);
    add("an entry from a later term", m, "carries entry 6 of term " + std::to_string(term + 2));
  }
  {
    Message m = Msg(raftpb::MSG_APP, 2, 1, term + 1);
    m.set_index(5);
    m.set_log_term(term + 2);
    add("matching at a later term", m, "matches at term " + std::to_string(term + 2));
  }
  {
    Message m = Msg(raftpb::MSG_SNAP, 2, 1, term + 1);
    m.mutable_snapshot()->mutable_metadata()->set_index(50);
    m.mutable_snapshot()->mutable_metadata()->set_term(term);
    add("a snapshot without voters", m, "carries a snapshot whose membership has no voters");
  }
  // Found by raft/fuzz/core_fuzzer.cc: each crashed the receiver or broke its log.
  {
    // Term() answers 0 past the last index, so "index 9 of term 0" matched, and the commit
    // index went past the last entry (a CHECK).
    Message m = Msg(raftpb::MSG_APP, 2, 1, term + 1);
    m.set_index(9);
    m.set_log_term(0);
    m.set_commit(12);
    add("matching at term 0 after index 0", m, "matches at index 9 of term 0");
  }
  {
    Message m = Msg(raftpb::MSG_APP, 2, 1, term + 1);
    m.set_index(0);
    m.set_log_term(0);
    m.add_entries()->set_index(1);
    add("an entry of term 0", m, "carries entry 1 of term 0");
  }
  {
    // Taken on, the term wrapped round to 0 at the next election (a CHECK on sending).
    add("a term no cluster reaches", Msg(raftpb::MSG_HEARTBEAT, 2, 1, UINT64_MAX),
        "carries a term or index beyond 4611686018427387904");
    Message m = Msg(raftpb::MSG_SNAP, 2, 1, term + 1);
    m.mutable_snapshot()->mutable_metadata()->set_index(UINT64_MAX);
    m.mutable_snapshot()->mutable_metadata()->set_term(term);
    m.mutable_snapshot()->mutable_metadata()->mutable_conf_state()->add_voters(2);
    add("a snapshot at an index no cluster reaches", m,
        "carries a snapshot at index 18446744073709551615");
  }
  {
    // Every member applies it once committed, and the node fails a CHECK on one it cannot read.
    Message m = Msg(raftpb::MSG_APP, 2, 1, term + 1);
    m.set_index(last_index_for_cases);
    m.set_log_term(term);
    raftpb::Entry* e = m.add_entries();
    e->set_index(last_index_for_cases + 1);
    e->set_term(term + 1);
    e->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
    e->set_data("\xff\xff not a change");
    add("a membership change that does not parse", m,
        "a membership change that does not parse");
  }
  const uint64_t last = s.core->log().LastIndex();
  const uint64_t committed = s.core->log().committed();
  for (int round = 0; round < 2; ++round) {  // twice: two MSG_CHECK_QUORUM depose a leader
    for (const Case& c : cases) {
      absl::Status st = s.core->StepPeer(c.m);
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.name;
      EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr(c.error)) << c.name;
      EXPECT_EQ(s.core->role(), Role::kLeader) << c.name;
      EXPECT_EQ(s.core->term(), term) << c.name;
      EXPECT_EQ(s.core->log().LastIndex(), last) << c.name;
      EXPECT_EQ(s.core->log().committed(), committed) << c.name;
      EXPECT_TRUE(s.Drain().empty()) << c.name;
    }
  }
  // What correct peers send still goes through, forwarded requests without a term included.
  Message prop = Msg(raftpb::MSG_PROP, 2, 1, 0);
  prop.add_entries()->set_data("forwarded");
  EXPECT_TRUE(s.core->StepPeer(prop).ok());
  EXPECT_EQ(s.core->log().LastIndex(), last + 1);
  EXPECT_TRUE(s.core->StepPeer(AppResp(2, term, last + 1)).ok());

  // A follower keeps its log when an append's entries do not follow on one another.
  Solo f({1, 1});
  Message gap = Msg(raftpb::MSG_APP, 2, 1, 2);
  gap.set_index(2);
  gap.set_log_term(1);
  gap.add_entries()->set_index(3);
  gap.add_entries()->set_index(5);
  for (int i = 0; i < 2; ++i) gap.mutable_entries(i)->set_term(2);
  EXPECT_EQ(f.core->StepPeer(gap).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.core->log().LastIndex(), 2u);
  EXPECT_EQ(f.core->term(), 1u);
  gap.mutable_entries(1)->set_index(4);
  EXPECT_TRUE(f.core->StepPeer(gap).ok());
  EXPECT_EQ(f.core->log().LastIndex(), 4u);
}

// A single voter's stored commit index may lag what it committed and answered (a commit-only
// hard state is written with the next synced write): once restarted, it must not serve a read
// before an entry of its new term commits, or the read would miss acknowledged writes.
TEST(CoreTest, ASingleVoterServesAReadOnlyOnceAnEntryOfItsTermIsCommitted) {
  auto store = StoreWithTerms({1, 1, 1}, {1});
  raftpb::HardState hs;
  hs.set_term(1);
  hs.set_vote(1);
  hs.set_commit(1);  // 2 and 3 were committed and acknowledged; the commit was not persisted
  store->SetHardState(hs);
  std::unique_ptr<Core> core = std::move(*Core::Create(TestConfig(1, store.get())));
  core->Campaign();
  ASSERT_EQ(core->role(), Role::kLeader);
  ASSERT_TRUE(core->ReadIndex("r").ok());
  std::vector<ReadState> reads;
  while (core->HasReady()) {
    Ready rd = core->GetReady();
    for (const ReadState& rs : rd.read_states) reads.push_back(rs);
    if (reads.empty()) {
      // Not before its new term's entry is persisted and committed.
      EXPECT_LT(core->log().committed(), 4u);
    }
    ASSERT_TRUE(store->Append(rd.entries).ok());
    if (rd.hard_state) store->SetHardState(*rd.hard_state);
    core->Advance(rd);
  }
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].request_ctx, "r");
  EXPECT_EQ(reads[0].index, 4u);  // the new term's entry, after 2 and 3
}

// A leader that removes (or demotes) itself may see the change commit only as it applies it.
// A follower with appends in flight was to hear the commit index from their acknowledgement or
// the next heartbeat: when the leader stepped down at once, neither came, and with two voters
// the survivor never learned its partner was gone (it waited for its vote for ever). It now
// tells them at once and goes on leading, without counting itself or taking proposals, until a
// majority of the remaining voters says it knows the commit index, or a higher term comes.
TEST(CoreTest, ALeaderLeavingTheVotersLeadsUntilEveryVoterKnowsTheCommitIndex) {
  for (bool answer : {true, false}) {
    for (auto type : {raftpb::ConfChange::TYPE_REMOVE_NODE,
                      raftpb::ConfChange::TYPE_ADD_LEARNER_NODE}) {
      const std::string what =
          std::string(raftpb::ConfChange::Type_Name(type)) + (answer ? ", answered" : ", silent");
      Solo s({}, /*voters=*/2);
      s.BecomeLeader();
      const uint64_t term = s.core->term();
      (void)s.core->Step(AppResp(2, term, s.core->log().LastIndex()));
      s.Drain();
      ASSERT_TRUE(s.core->ProposeConfChange(Change(type, 1)).ok());
      const uint64_t change = s.core->log().LastIndex();
      s.Drain();
      ASSERT_TRUE(s.core->Propose("y").ok());
      s.Drain();
      // 2 acknowledges the change, not yet "y": the change commits, "y" is still in flight.
      (void)s.core->Step(AppResp(2, term, change));
      ASSERT_EQ(s.core->log().committed(), change);
      uint64_t told = 0;
      bool applied = false;
      while (s.core->HasReady()) {
        Ready rd = s.core->GetReady();
        std::vector<Message> out = rd.early_messages;
        out.insert(out.end(), rd.messages.begin(), rd.messages.end());
        for (const Message& m : out) {
          if (m.to() == 2) told = std::max(told, m.commit());
        }
        ASSERT_TRUE(s.store->Append(rd.entries).ok());
        if (rd.hard_state) s.store->SetHardState(*rd.hard_state);
        for (const raftpb::Entry& e : rd.committed_entries) {
          if (e.type() != raftpb::ENTRY_TYPE_CONF_CHANGE) continue;
          raftpb::ConfChange cc;
          ASSERT_TRUE(cc.ParseFromString(e.data()));
          s.core->ApplyConfChange(cc);
          applied = true;
        }
        s.core->Advance(rd);
      }
      ASSERT_TRUE(applied) << what;
      EXPECT_GE(told, change) << what;
      // Still leading, not counted removed yet (its owner would stop it), taking nothing new.
      EXPECT_EQ(s.core->role(), Role::kLeader) << what;
      EXPECT_FALSE(s.core->removed()) << what;
      EXPECT_TRUE(s.core->leaving()) << what;
      EXPECT_FALSE(s.core->Propose("z").ok()) << what;
      if (answer) {
        // 2 answers a heartbeat knowing the commit index: done.
        Message hb = Msg(raftpb::MSG_HEARTBEAT_RESP, 2, 1, term);
        hb.set_commit(change - 1);
        (void)s.core->Step(hb);
        EXPECT_EQ(s.core->role(), Role::kLeader) << what << ": 2 does not know it yet";
        hb.set_commit(change);
        (void)s.core->Step(hb);
      } else {
        // 2 says nothing (cut off, or down): it keeps telling it, every heartbeat, past any
        // election timeout, until 2 comes back and answers; or a higher term deposes it.
        int heartbeats = 0;
        for (int i = 0; i < 50; ++i) {
          s.core->Tick();
          for (const Message& m : OfType(s.Drain(), raftpb::MSG_HEARTBEAT)) {
            if (m.commit() >= change) ++heartbeats;
          }
        }
        EXPECT_EQ(s.core->role(), Role::kLeader) << what;
        EXPECT_FALSE(s.core->removed()) << what;
        EXPECT_GE(heartbeats, 40) << what;
        Message vote = Msg(raftpb::MSG_VOTE, 2, 1, term + 1);
        vote.set_index(change + 1);
        vote.set_log_term(term);
        (void)s.core->Step(vote);
      }
      EXPECT_NE(s.core->role(), Role::kLeader) << what;
      EXPECT_FALSE(s.core->leaving()) << what;
      EXPECT_EQ(s.core->removed(), type == raftpb::ConfChange::TYPE_REMOVE_NODE) << what;
    }
  }
}

// The transferee travels in the request's sender: a follower passing the request on must not
// put itself in its place (it took the leadership for itself).
TEST(CoreTest, ATransferAskedOfAFollowerGoesToTheMemberNamed) {
  Network net(3);
  net.Campaign(1);
  net.core(2).TransferLeader(3);
  net.Stabilize();
  EXPECT_EQ(net.core(3).role(), Role::kLeader);
  EXPECT_EQ(net.core(2).role(), Role::kFollower);
  EXPECT_EQ(net.core(1).leader(), 3u);
}

// A read passed on by a member that is not the leader either (its view of the leader is
// stale) is answered to the member that asked, not to the one in the middle.
TEST(CoreTest, AReadPassedOnTwiceIsAnsweredToTheMemberThatAsked) {
  Solo s = LeaderWithCaughtUpFollowers();
  Message read = Msg(raftpb::MSG_READ_INDEX, 3, 1, 0);  // 3 asked 2, which passed it on
  read.add_entries()->set_data("r3");
  ASSERT_TRUE(s.core->StepPeer(read).ok());
  for (const Message& hb : OfType(s.Drain(), raftpb::MSG_HEARTBEAT)) {
    Message resp = Msg(raftpb::MSG_HEARTBEAT_RESP, hb.to(), 1, s.core->term());
    resp.set_context(hb.context());
    (void)s.core->Step(resp);
  }
  std::vector<Message> answers = OfType(s.Drain(), raftpb::MSG_READ_INDEX_RESP);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].to(), 3u);
  EXPECT_EQ(answers[0].entries(0).data(), "r3");

  // And a follower passing on another's read keeps its sender.
  Network net(3);
  net.Campaign(1);
  net.Isolate(1);
  Message fwd = Msg(raftpb::MSG_READ_INDEX, 3, 2, 0);
  fwd.add_entries()->set_data("r3");
  ASSERT_TRUE(net.core(2).StepPeer(fwd).ok());
  std::vector<Message> out = net.TakeMessages(2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to(), 1u);
  EXPECT_EQ(out[0].from(), 3u);
}

// Reads batched behind one heartbeat round are answered by that round's quorum only: a read
// asked after the round went out waits for its own. Answering every queued read with the
// first round's quorum passed every unit test and 40,000 simulated seeds (a mutation test,
// sixteenth session); it serves a read asked after a new leader may have been elected.
TEST(CoreTest, AHeartbeatRoundConfirmsOnlyTheReadsAskedBeforeIt) {
  Solo s = LeaderWithCaughtUpFollowers();
  auto read_states = [&] {
    std::vector<std::string> out;
    while (s.core->HasReady()) {
      Ready rd = s.core->GetReady();
      for (const ReadState& rs : rd.read_states) out.push_back(rs.request_ctx);
      EXPECT_TRUE(s.store->Append(rd.entries).ok());
      if (rd.hard_state) s.store->SetHardState(*rd.hard_state);
      s.core->Advance(rd);
    }
    return out;
  };
  ASSERT_TRUE(s.core->ReadIndex("first").ok());
  std::vector<Message> first_round = OfType(s.Drain(), raftpb::MSG_HEARTBEAT);
  ASSERT_EQ(first_round.size(), 2u);
  ASSERT_TRUE(s.core->ReadIndex("second").ok());
  std::vector<Message> second_round = OfType(s.Drain(), raftpb::MSG_HEARTBEAT);
  ASSERT_EQ(second_round.size(), 2u);
  ASSERT_NE(first_round[0].context(), second_round[0].context());
  Message resp = Msg(raftpb::MSG_HEARTBEAT_RESP, 2, 1, s.core->term());
  resp.set_context(first_round[0].context());
  ASSERT_TRUE(s.core->Step(resp).ok());
  EXPECT_EQ(read_states(), (std::vector<std::string>{"first"}));
  resp.set_context(second_round[0].context());
  ASSERT_TRUE(s.core->Step(resp).ok());
  EXPECT_EQ(read_states(), (std::vector<std::string>{"second"}));
}

// A read's index is the commit index when it is asked, not what this member has applied: a
// read that waited only for the applied index could miss a write committed and acknowledged
// before it (a mutation test, sixteenth session: 1 seed in 10,000 caught it).
TEST(CoreTest, AReadsIndexIsTheCommitIndexNotTheAppliedOne) {
  Solo s = LeaderWithCaughtUpFollowers();
  ASSERT_TRUE(s.core->Propose("w").ok());
  s.Drain();
  const uint64_t w = s.core->log().LastIndex();
  ASSERT_TRUE(s.core->Step(AppResp(2, s.core->term(), w)).ok());
  ASSERT_EQ(s.core->log().committed(), w);
  ASSERT_LT(s.core->log().applied(), w);  // committed, not applied yet
  ASSERT_TRUE(s.core->ReadIndex("r").ok());
  std::vector<ReadState> reads;
  std::vector<Message> hbs;
  auto drain = [&] {
    while (s.core->HasReady()) {
      Ready rd = s.core->GetReady();
      for (const ReadState& rs : rd.read_states) reads.push_back(rs);
      std::vector<Message> out = rd.early_messages;
      out.insert(out.end(), rd.messages.begin(), rd.messages.end());
      for (const Message& m : OfType(out, raftpb::MSG_HEARTBEAT)) hbs.push_back(m);
      EXPECT_TRUE(s.store->Append(rd.entries).ok());
      if (rd.hard_state) s.store->SetHardState(*rd.hard_state);
      s.core->Advance(rd);
    }
  };
  drain();
  ASSERT_FALSE(hbs.empty());
  Message resp = Msg(raftpb::MSG_HEARTBEAT_RESP, hbs[0].to(), 1, s.core->term());
  resp.set_context(hbs[0].context());
  ASSERT_TRUE(s.core->Step(resp).ok());
  drain();
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].index, w);
}

// Learners do not vote, so they do not confirm a leadership either: a leader of three voters
// and a learner that hears only from the learner serves no read (counting the learner passed
// every unit test and 40,000 simulated seeds but one, a mutation test, sixteenth session).
TEST(CoreTest, ALearnersHeartbeatAnswerDoesNotConfirmARead) {
  Solo s = LeaderWithCaughtUpFollowers();
  s.core->ApplyConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4));
  ASSERT_TRUE(s.core->progress().at(4).is_learner);
  ASSERT_TRUE(s.core->ReadIndex("r").ok());
  std::vector<Message> hbs = OfType(s.Drain(), raftpb::MSG_HEARTBEAT);
  std::string ctx;
  for (const Message& hb : hbs) {
    if (hb.to() == 4) ctx = hb.context();
  }
  ASSERT_FALSE(ctx.empty()) << "the learner is sent the heartbeat too";
  Message resp = Msg(raftpb::MSG_HEARTBEAT_RESP, 4, 1, s.core->term());
  resp.set_context(ctx);
  ASSERT_TRUE(s.core->Step(resp).ok());
  std::vector<ReadState> reads;
  while (s.core->HasReady()) {
    Ready rd = s.core->GetReady();
    for (const ReadState& rs : rd.read_states) reads.push_back(rs);
    s.core->Advance(rd);
  }
  EXPECT_TRUE(reads.empty());
  resp.set_from(2);
  ASSERT_TRUE(s.core->Step(resp).ok());  // a voter: now a quorum (1 and 2 of 3)
  ASSERT_TRUE(s.core->HasReady());
  EXPECT_EQ(s.core->GetReady().read_states.size(), 1u);
}

// The next membership change waits until the previous one is applied, not only committed: the
// leader's quorum is the applied membership's, and two changes in flight at once may have no
// majority in common (a mutation test, sixteenth session: accepting it once committed passed
// every unit test and 40,000 simulated seeds).
TEST(CoreTest, AMembershipChangeWaitsForThePreviousOneToBeApplied) {
  Solo s = LeaderWithCaughtUpFollowers();
  ASSERT_TRUE(
      s.core->ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
  s.Drain();
  const uint64_t cc = s.core->log().LastIndex();
  ASSERT_TRUE(s.core->Step(AppResp(2, s.core->term(), cc)).ok());
  ASSERT_EQ(s.core->log().committed(), cc);
  ASSERT_LT(s.core->log().applied(), cc);
  absl::Status next =
      s.core->ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 5));
  EXPECT_EQ(next.code(), absl::StatusCode::kFailedPrecondition) << next;
}

// A new leader may hold, among the entries inherited from earlier terms, a membership change
// an earlier leader proposed and nobody applied yet: taking another before those entries are
// applied could make two changes pending at once (each voter set's majority could then miss
// the other's). The new leader refuses one until everything it inherited is applied.
TEST(CoreTest, ANewLeaderTakesNoMembershipChangeBeforeWhatItInheritedIsApplied) {
  Solo s({1, 1, 1});  // three entries of term 1, neither committed nor applied
  s.BecomeLeader();
  const uint64_t inherited = 3;
  ASSERT_GT(s.core->term(), 1u);
  ASSERT_LT(s.core->log().applied(), inherited);
  absl::Status early =
      s.core->ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4));
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  const uint64_t last = s.core->log().LastIndex();  // the new term's empty entry
  for (uint64_t id = 2; id <= 3; ++id) (void)s.core->Step(AppResp(id, s.core->term(), last));
  s.Drain();
  ASSERT_GE(s.core->log().applied(), inherited);
  EXPECT_TRUE(
      s.core->ProposeConfChange(Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4)).ok());
}

// While a received snapshot waits to be persisted, the entries between the applied and the
// committed index are gone: asking to campaign then failed a CHECK.
TEST(CoreTest, ACampaignWhileAReceivedSnapshotIsPendingIsIgnored) {
  Solo s;
  Message snap = Msg(raftpb::MSG_SNAP, 2, 1, 1);
  auto* meta = snap.mutable_snapshot()->mutable_metadata();
  meta->set_index(10);
  meta->set_term(1);
  for (uint64_t v = 1; v <= 3; ++v) meta->mutable_conf_state()->add_voters(v);
  snap.mutable_snapshot()->set_data("state at 10");
  ASSERT_TRUE(s.core->StepPeer(snap).ok());
  s.core->Campaign();
  EXPECT_EQ(s.core->role(), Role::kFollower);
}

// TimeoutNow makes a member campaign at once, but not with a membership change it has not
// applied yet (it may take its vote away): as an election timeout does.
TEST(CoreTest, TimeoutNowWaitsForACommittedMembershipChangeToBeApplied) {
  Solo s({1});
  raftpb::ConfChange cc = Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4);
  Message app = Msg(raftpb::MSG_APP, 2, 1, 1);
  app.set_index(1);
  app.set_log_term(1);
  raftpb::Entry* e = app.add_entries();
  e->set_index(2);
  e->set_term(1);
  e->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  e->set_data(cc.SerializeAsString());
  app.set_commit(2);
  ASSERT_TRUE(s.core->StepPeer(app).ok());
  ASSERT_EQ(s.core->log().committed(), 2u);
  ASSERT_TRUE(s.core->StepPeer(Msg(raftpb::MSG_TIMEOUT_NOW, 2, 1, 1)).ok());
  EXPECT_EQ(s.core->role(), Role::kFollower);
  // Applied: now it campaigns.
  Ready rd = s.core->GetReady();
  ASSERT_TRUE(s.store->Append(rd.entries).ok());
  if (rd.hard_state) s.store->SetHardState(*rd.hard_state);
  ASSERT_FALSE(rd.committed_entries.empty());
  ASSERT_EQ(rd.committed_entries.back().index(), 2u);
  s.core->ApplyConfChange(cc);
  s.core->Advance(rd);
  ASSERT_TRUE(s.core->StepPeer(Msg(raftpb::MSG_TIMEOUT_NOW, 2, 1, 1)).ok());
  EXPECT_EQ(s.core->role(), Role::kCandidate);
}

// A learner that hears from no leader for an election timeout asks the voters it knows. It
// kept the leader it last knew, so its asking renewed that leader's lease, and it ignored the
// (pre-)votes of a member that had promoted it while it was cut off: a single voter that adds
// a second commits that alone, then needs the newcomer's vote for everything, and waited for
// ever (found by the simulation once it ran clusters of one and two voters).
TEST(CoreTest, ALearnerThatLostItsLeaderAnswersVotes) {
  MemoryLogStore store;
  raftpb::ConfState cs;
  cs.add_voters(1);
  cs.add_learners(3);
  store.SetConfState(cs);
  Config c = TestConfig(3, &store);
  c.check_quorum = true;
  c.pre_vote = true;
  std::unique_ptr<Core> learner = std::move(*Core::Create(c));
  auto drain = [&] {
    std::vector<Message> out;
    while (learner->HasReady()) {
      Ready rd = learner->GetReady();
      for (auto& m : rd.early_messages) out.push_back(m);
      EXPECT_TRUE(store.Append(rd.entries).ok());
      if (rd.hard_state) store.SetHardState(*rd.hard_state);
      for (auto& m : rd.messages) out.push_back(m);
      learner->Advance(rd);
    }
    return out;
  };
  ASSERT_TRUE(learner->StepPeer(Msg(raftpb::MSG_HEARTBEAT, 1, 3, 1)).ok());
  ASSERT_EQ(learner->leader(), 1u);
  drain();
  bool asked = false;
  for (int i = 0; i < 100 && !asked; ++i) {
    learner->Tick();
    asked = !OfType(drain(), raftpb::MSG_HEARTBEAT_RESP).empty();
  }
  ASSERT_TRUE(asked) << "the learner never asked after its leader went silent";
  EXPECT_EQ(learner->leader(), 0u);
  // 1 promoted it and lost its quorum: it asks for a pre-vote of the next term.
  Message pre = Msg(raftpb::MSG_PRE_VOTE, 1, 3, 2);
  pre.set_index(5);
  pre.set_log_term(1);
  ASSERT_TRUE(learner->StepPeer(pre).ok());
  std::vector<Message> answers = OfType(drain(), raftpb::MSG_PRE_VOTE_RESP);
  ASSERT_EQ(answers.size(), 1u) << "the pre-vote was ignored";
  EXPECT_FALSE(answers[0].reject());
}

}  // namespace
}  // namespace shoal::raft

// Raft members as they run in a manager: node loop + gRPC transport on loopback + RocksDB.

#include "raft/node.h"

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/batch_thread.h"
#include "raft/grpc_transport.h"
#include "raft/memory_log_store.h"
#include "raft/recovery.h"
#include "raft/rocksdb_log_store.h"
#include "raft/testing/forwarding_store.h"
#include "raft/testing/power_loss_fs.h"
#include "raft/testing/raft_server.h"
#include "raft/testing/snapshot_chunks.h"

namespace shoal::raft {
namespace {

using testing::FirstChunk;
using testing::Last;
using testing::NextChunk;

const absl::Duration kWait = absl::Seconds(20);

raftpb::Message MessageOf(raftpb::MessageType type, uint64_t from, uint64_t to, uint64_t term) {
  raftpb::Message m;
  m.set_type(type);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  return m;
}

raftpb::Entry EntryAt(uint64_t term, uint64_t index, const std::string& value) {
  raftpb::Entry e;
  e.set_term(term);
  e.set_index(index);
  e.set_data(std::string(8, '\0') + value);  // a proposal id (unknown here), then the value
  return e;
}

// The name of the calling thread (as SetThreadName gave it).
std::string CurrentThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

class ListStateMachine : public StateMachine {
 public:
  void Apply(uint64_t /*index*/, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    values_.emplace_back(data);
    apply_threads_.insert(CurrentThreadName());
  }
  // The names of the threads Apply was called on.
  std::set<std::string> apply_threads() {
    absl::MutexLock lock(&mu_);
    return apply_threads_;
  }
  std::string Snapshot() override {
    absl::MutexLock lock(&mu_);
    return absl::StrJoin(values_, "\n");
  }
  absl::Status Restore(absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    values_.clear();
    if (!data.empty()) values_ = absl::StrSplit(data, '\n');
    return absl::OkStatus();
  }
  // Waits until `count` values are applied; false at the deadline.
  bool WaitFor(size_t count, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return values_.size() >= count; };
    return mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
  }
  std::vector<std::string> values() {
    absl::MutexLock lock(&mu_);
    return values_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> values_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> apply_threads_ ABSL_GUARDED_BY(mu_);
};

// Records LeadershipChanged calls, with how many entries the state held at each.
class LeadershipRecorder : public ListStateMachine {
 public:
  struct Change {
    bool leading = false;
    uint64_t term = 0;
    size_t applied_values = 0;
  };
  void LeadershipChanged(bool leading, uint64_t term) override {
    const size_t n = values().size();
    absl::MutexLock lock(&mu_);
    changes_.push_back({leading, term, n});
  }
  // Waits until `count` changes were announced; false at the deadline.
  bool WaitForChanges(size_t count, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return changes_.size() >= count; };
    return mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
  }
  std::vector<Change> changes() {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  void MembershipChanged(uint64_t index, const raftpb::ConfState& membership) override {
    std::vector<uint64_t> voters(membership.voters().begin(), membership.voters().end());
    std::vector<uint64_t> learners(membership.learners().begin(), membership.learners().end());
    std::sort(voters.begin(), voters.end());
    std::sort(learners.begin(), learners.end());
    absl::MutexLock lock(&mu_);
    memberships_.push_back(absl::StrCat(index, ": voters ", absl::StrJoin(voters, ","),
                                        learners.empty() ? "" : " learners ",
                                        absl::StrJoin(learners, ",")));
  }
  // "index: voters 1,2 learners 3", one per MembershipChanged; first waits until one ends
  // with "voters `last`" (false at the deadline).
  std::vector<std::string> memberships() {
    absl::MutexLock lock(&mu_);
    return memberships_;
  }
  void RemovedFromCluster() override {
    absl::MutexLock lock(&mu_);
    ++removed_calls_;
  }
  // Waits until RemovedFromCluster was called; false at the deadline. Returns the calls.
  int WaitForRemoval(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto called = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return removed_calls_ > 0; };
    mu_.AwaitWithDeadline(absl::Condition(&called), deadline);
    return removed_calls_;
  }
  void StorageFailed(const absl::Status& error) override { Record(storage_failures_, error); }
  void RestoreFailed(const absl::Status& error) override { Record(restore_failures_, error); }
  // Wait until StorageFailed (RestoreFailed) was called; at the deadline, go on. Return the
  // calls' errors.
  std::vector<absl::Status> WaitForStorageFailure(absl::Time deadline) {
    return WaitForCall(storage_failures_, deadline);
  }
  std::vector<absl::Status> WaitForRestoreFailure(absl::Time deadline) {
    return WaitForCall(restore_failures_, deadline);
  }
  std::vector<absl::Status> storage_failures() { return WaitForCall(storage_failures_, absl::Now()); }
  bool WaitForMembership(const std::string& last, absl::Time deadline) {
    const std::string suffix = ": voters " + last;
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !memberships_.empty() && absl::EndsWith(memberships_.back(), suffix);
    };
    return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
  }

 private:
  absl::Mutex mu_;
  std::vector<Change> changes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> memberships_ ABSL_GUARDED_BY(mu_);
  int removed_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::Status> storage_failures_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> restore_failures_ ABSL_GUARDED_BY(mu_);

  void Record(std::vector<absl::Status>& calls, const absl::Status& error) {
    absl::MutexLock lock(&mu_);
    calls.push_back(error);
  }
  std::vector<absl::Status> WaitForCall(std::vector<absl::Status>& calls, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto called = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !calls.empty(); };
    mu_.AwaitWithDeadline(absl::Condition(&called), deadline);
    return calls;
  }
};

struct Member {
  uint64_t id = 0;
  std::string dir;
  std::string addr;
  std::unique_ptr<RocksDbLogStore> store;
  // Before the transport: destroyed after it (the transport's queue is drained while its
  // server still exists).
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<GrpcTransport> transport;
  std::unique_ptr<LeadershipRecorder> sm;
  std::unique_ptr<Node> node;
  // When set, the store writes through it (a member that can lose power).
  std::shared_ptr<testing::PowerLossFileSystem> fs;
  bool up = false;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = std::filesystem::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(base_);
  }
  void TearDown() override {
    for (auto& m : members_) Kill(m->id);
  }

  // `fs_seed`: when non-zero, each member's store writes through a PowerLossFileSystem.
  void StartCluster(int n, uint64_t snapshot_interval = 10000, uint64_t fs_seed = 0) {
    snapshot_interval_ = snapshot_interval;
    std::vector<uint64_t> ids;
    for (int i = 1; i <= n; ++i) ids.push_back(i);
    AdoptMembers(n);
    for (auto& m : members_) {
      if (fs_seed != 0) m->fs = testing::PowerLossFileSystem::Create(fs_seed * 10 + m->id);
      auto store = RocksDbLogStore::Open(StoreOptions(*m));
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE(Bootstrap(**store, ids).ok());
    }
    for (auto& m : members_) Start(m->id);
  }

  // Members 1..n with their directories under base_ (which may hold their stores already).
  void AdoptMembers(int n) {
    for (int i = 1; i <= n; ++i) {
      auto m = std::make_unique<Member>();
      m->id = i;
      m->dir = (base_ / ("m" + std::to_string(i))).string();
      members_.push_back(std::move(m));
    }
  }

  static RocksDbLogStore::Options StoreOptions(const Member& m) {
    RocksDbLogStore::Options o{m.dir};
    if (m.fs) o.env = m.fs->env();
    return o;
  }

  Member& M(uint64_t id) { return *members_[id - 1]; }

  void Start(uint64_t id) {
    Member& m = M(id);
    auto store = RocksDbLogStore::Open(StoreOptions(m));
    ASSERT_TRUE(store.ok()) << store.status();
    m.store = std::move(*store);
    GrpcTransport::Options to;
    to.self = id;
    m.transport = std::move(*GrpcTransport::Create(to));
    m.sm = std::make_unique<LeadershipRecorder>();
    Node::Options no;
    no.raft.id = id;
    no.raft.random_seed = id * 7919;
    no.storage = m.store.get();
    no.transport = m.transport.get();
    no.state_machine = m.sm.get();
    no.tick_interval = tick_;
    no.raft.election_tick = election_tick_;
    // Kill() stops a member as a crash would (no hand-over), unless a test asks for it.
    no.transfer_leadership_on_stop = transfer_on_stop_;
    no.snapshot_interval = snapshot_interval_;
    no.snapshot_keep_entries = 5;
    auto node = Node::Create(no);
    ASSERT_TRUE(node.ok()) << node.status();
    m.node = std::move(*node);
    // A restarted member listens where it did before, as a manager does, when it can.
    if (!m.addr.empty()) m.server = Serve(m, m.addr);
    if (m.server == nullptr) m.server = Serve(m, "127.0.0.1:0");
    ASSERT_NE(m.server, nullptr);
    m.up = true;
    // Everyone learns everyone's (possibly new) address, unless the test leaves that to the
    // members themselves.
    for (auto& other : members_) {
      if (!other->up || !introduce_peers_) continue;
      for (auto& peer : members_) {
        if (peer->id != other->id && !peer->addr.empty()) {
          other->transport->AddPeer(peer->id, peer->addr);
        }
      }
    }
    m.node->Start();
  }

  // Member m's server on `addr`; null when it cannot listen there.
  static std::unique_ptr<grpc::Server> Serve(Member& m, const std::string& addr) {
    // Not shared with anyone else: a port still in use is a failure, not a second listener.
    testing::RaftServer s = testing::ServeRaft(*m.transport, grpc::InsecureServerCredentials(),
                                               addr, /*exclusive_port=*/true);
    if (s.server != nullptr) m.addr = s.addr;
    return std::move(s.server);
  }

  void Kill(uint64_t id) {
    Member& m = M(id);
    if (!m.up) return;
    m.node->Stop();
    // Peers keep long-lived streams open into this server: cancel them after a short grace.
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    m.transport.reset();  // before its server: see GrpcTransport's shutdown order
    m.server.reset();
    m.node.reset();
    m.store.reset();
    m.up = false;
  }

  uint64_t WaitForLeader() {
    const absl::Time deadline = absl::Now() + kWait;
    for (auto& m : members_) {
      if (m->up && m->node->WaitForLeader(deadline)) {
        // Agree: the leader is up and believes it leads.
        while (absl::Now() < deadline) {
          const uint64_t l = m->node->GetStatus().leader;
          if (l != 0 && M(l).up && M(l).node->GetStatus().role == Role::kLeader) return l;
          absl::SleepFor(absl::Milliseconds(5));  // polling a status, not synchronising data
        }
      }
    }
    return 0;
  }

  // Proposes until acknowledged (retrying through leader changes); returns the index.
  uint64_t ProposeAcked(const std::string& value) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      const uint64_t leader = WaitForLeader();
      if (leader == 0) break;
      absl::StatusOr<uint64_t> r = M(leader).node->Propose(value).get();
      if (r.ok()) return *r;
    }
    ADD_FAILURE() << "could not commit " << value;
    return 0;
  }

  // A membership change of member `id`, with its RaftMember context (id and address) unless it
  // is a removal, as the control plane will propose it.
  raftpb::ConfChange MemberChange(raftpb::ConfChange::Type type, uint64_t id) {
    raftpb::ConfChange cc;
    cc.set_type(type);
    cc.set_node_id(id);
    if (type != raftpb::ConfChange::TYPE_REMOVE_NODE && id <= members_.size()) {
      raftpb::RaftMember member;
      member.set_raft_id(id);
      member.set_addr(M(id).addr);
      cc.set_context(member.SerializeAsString());
    }
    return cc;
  }

  // Member `id` joins as the control plane will drive it: an empty store (it learns the
  // membership from the cluster), added as a learner with its address, promoted once the
  // leader has seen it catch up (refused before). Waits until it has applied `values`
  // proposals as a learner. Returns the leader that promoted it, 0 on failure.
  uint64_t JoinAndPromote(uint64_t id, size_t values) {
    auto joining = std::make_unique<Member>();
    joining->id = id;
    joining->dir = (base_ / ("m" + std::to_string(id))).string();
    members_.push_back(std::move(joining));
    Start(id);
    const uint64_t leader = WaitForLeader();
    if (leader == 0) return 0;
    absl::Status added =
        M(leader)
            .node->ProposeConfChange(MemberChange(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, id))
            .get();
    EXPECT_TRUE(added.ok()) << added;
    if (!added.ok()) return 0;
    if (!M(id).sm->WaitFor(values, absl::Now() + kWait)) {
      ADD_FAILURE() << "the learner never caught up";
      return 0;
    }
    const raftpb::ConfChange promote = MemberChange(raftpb::ConfChange::TYPE_ADD_NODE, id);
    absl::Status promoted;
    const absl::Time deadline = absl::Now() + kWait;
    do {  // refused until the leader has seen the learner's acknowledgements
      promoted = M(leader).node->ProposeConfChange(promote).get();
    } while (!promoted.ok() && promoted.code() == absl::StatusCode::kFailedPrecondition &&
             absl::Now() < deadline);
    EXPECT_TRUE(promoted.ok()) << promoted;
    if (!promoted.ok()) return 0;
    absl::StatusOr<std::vector<Node::MemberProgress>> progress = M(leader).node->Members().get();
    EXPECT_TRUE(progress.ok()) << progress.status();
    if (!progress.ok()) return 0;
    EXPECT_EQ(progress->size(), members_.size());
    for (const Node::MemberProgress& p : *progress) EXPECT_FALSE(p.learner) << p.id;
    return leader;
  }

  // The disk of the leader (or of a follower) fails every write from a moment on.
  void DiskFailsOn(bool leader);

  std::filesystem::path base_;
  std::vector<std::unique_ptr<Member>> members_;
  uint64_t snapshot_interval_ = 10000;
  int election_tick_ = 10;  // of tick_
  absl::Duration tick_ = absl::Milliseconds(10);
  bool transfer_on_stop_ = false;
  // Start tells every member every other's address (the manager's job after a restart, were
  // the members not to keep the addresses in their snapshots).
  bool introduce_peers_ = true;
};

TEST_F(ClusterTest, ElectsALeaderAndReplicatesOverGrpc) {
  StartCluster(3);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  std::vector<std::future<absl::StatusOr<uint64_t>>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(M(leader).node->Propose("v" + std::to_string(i)));
  uint64_t last = 0;
  for (auto& f : futures) {
    absl::StatusOr<uint64_t> r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GT(*r, last);  // applied in proposal order
    last = *r;
  }
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(200, absl::Now() + kWait)) << id;
    EXPECT_EQ(M(id).sm->values(), M(leader).sm->values());
  }
}

// Over gRPC the loop runs on the transport's thread, the one that reads what peers send: an
// append is stepped, written and applied where it was read, with no hand-off to a loop
// thread of the node's (which cost a follower a fifth of its CPU per write).
TEST_F(ClusterTest, TheLoopRunsOnTheTransportsThread) {
  StartCluster(3);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  // Proposed together, so that several complete at once: those are answered on that thread
  // too, not handed to a completion thread, and as a burst, with the server's connections
  // corked (GrpcTransport::Options::cork_bursts).
  absl::Mutex mu;
  std::set<std::string> answered_on;
  int answered = 0, failed = 0, answered_corked = 0, answered_off_batch = 0;
  GrpcTransport* transport = M(leader).transport.get();
  for (int i = 0; i < 50; ++i) {
    M(leader).node->Propose("v" + std::to_string(i), [&](absl::StatusOr<uint64_t> index) {
      const size_t corked = transport->corked_connections();  // on its thread, as it requires
      const bool batch = IsBatchThread();
      absl::MutexLock lock(&mu);
      answered_on.insert(CurrentThreadName());
      if (!batch) ++answered_off_batch;
      ++answered;
      if (!index.ok()) ++failed;
      if (corked > 0) ++answered_corked;
    });
  }
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithDeadline(absl::Condition(
                                         +[](int* n) { return *n == 50; }, &answered),
                                     absl::Now() + kWait));
    EXPECT_EQ(failed, 0);
    EXPECT_EQ(answered_on, std::set<std::string>{"raft-io"});
    EXPECT_GE(answered_corked, 2);
    // Under SCHED_BATCH (GrpcTransport::Options::batch_threads).
    EXPECT_EQ(answered_off_batch, 0);
  }
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(50, absl::Now() + kWait)) << id;
    EXPECT_EQ(M(id).sm->apply_threads(), std::set<std::string>{"raft-io"}) << id;
  }
  // And it stops and starts again as before (Stop waits for the loop on the other thread).
  Kill(leader);
  Start(leader);
  const uint64_t next = WaitForLeader();
  ASSERT_NE(next, 0u);
  ASSERT_TRUE(M(next).node->Propose("after").get().ok());
  ASSERT_TRUE(M(leader).sm->WaitFor(51, absl::Now() + kWait));
}

// Entries near the size limit, proposed together, are batched into stream writes; a write
// must stay within what a member's gRPC server accepts (4 MiB by default), or the follower
// refuses it, the stream breaks, and the same batch is sent again forever.
TEST_F(ClusterTest, LargeEntriesReachEveryMember) {
  // A follower writing 9 MiB in place answers no heartbeat meanwhile; on a loaded machine
  // that took over the 100 ms after which a leader that hears from no quorum steps down.
  election_tick_ = 100;
  StartCluster(3);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  std::vector<std::future<absl::StatusOr<uint64_t>>> futures;
  for (int i = 0; i < 8; ++i) {
    futures.push_back(M(leader).node->Propose(std::string((1 << 20) + 100 * 1024, 'a' + i)));
  }
  for (auto& f : futures) {
    absl::StatusOr<uint64_t> r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
  }
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(8, absl::Now() + kWait)) << "member " << id;
    EXPECT_EQ(M(id).sm->values(), M(leader).sm->values()) << "member " << id;
  }
  // Over the entry limit (1.5 MiB by default, 8 bytes of it the node's): refused alone,
  // through the leader or a follower, while the proposals around it go on.
  const uint64_t follower = leader % 3 + 1;
  for (uint64_t via : {leader, follower}) {
    auto before = M(via).node->Propose("before");
    auto big = M(via).node->Propose(std::string(3 << 19, 'x'));
    auto after = M(via).node->Propose("after");
    absl::StatusOr<uint64_t> r = big.get();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("proposal of 1572864 bytes exceeds the limit of "
                                        "1572856 bytes"),
              std::string::npos)
        << r.status();
    EXPECT_TRUE(before.get().ok()) << "via " << via;
    EXPECT_TRUE(after.get().ok()) << "via " << via;
  }
}

TEST(GrpcTransportTest, RefusesOptionsItCannotWorkWith) {
  GrpcTransport::Options o;
  EXPECT_EQ(GrpcTransport::Create(o).status().code(), absl::StatusCode::kInvalidArgument)
      << "created without its member id";
  o.self = 1;
  o.max_batch_bytes = GrpcTransport::kMaxBatchBytes + 1;
  absl::Status s = GrpcTransport::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("max_batch_bytes"), std::string::npos) << s;
  o.max_batch_bytes = 0;
  EXPECT_FALSE(GrpcTransport::Create(o).ok());
  {
    // Each of these made every message, or every snapshot, fail.
    GrpcTransport::Options bad;
    bad.self = 1;
    bad.max_queued_messages = 0;
    s = GrpcTransport::Create(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("max_queued_messages must be at least 1"), std::string::npos) << s;
    for (size_t chunk : {size_t{0}, GrpcTransport::kMaxSnapshotChunkBytes + 1}) {
      bad = GrpcTransport::Options();
      bad.self = 1;
      bad.snapshot_chunk_bytes = chunk;
      s = GrpcTransport::Create(bad).status();
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << chunk;
      EXPECT_NE(s.message().find("snapshot_chunk_bytes must be between 1 and 2097152"),
                std::string::npos)
          << s;
    }
    bad = GrpcTransport::Options();
    bad.self = 1;
    bad.snapshot_min_rate = 0;
    EXPECT_EQ(GrpcTransport::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
  o.max_batch_bytes = GrpcTransport::kMaxBatchBytes;
  o.max_batch_messages = 0;
  EXPECT_FALSE(GrpcTransport::Create(o).ok());
  o.max_batch_messages = 1;
  EXPECT_TRUE(GrpcTransport::Create(o).ok());
  o.keepalive_timeout = absl::ZeroDuration();
  s = GrpcTransport::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("keepalive_timeout"), std::string::npos) << s;
  o.keepalive_time = absl::ZeroDuration();  // keepalive off: no timeout needed
  EXPECT_TRUE(GrpcTransport::Create(o).ok());
  o.keepalive_time = -absl::Seconds(1);
  EXPECT_FALSE(GrpcTransport::Create(o).ok());
  o.keepalive_time = absl::InfiniteDuration();  // more than gRPC can be given
  o.keepalive_timeout = absl::Seconds(10);
  EXPECT_FALSE(GrpcTransport::Create(o).ok());
  o.keepalive_time = absl::Seconds(10);
  o.keepalive_timeout = GrpcTransport::kMaxKeepalive + absl::Milliseconds(1);
  EXPECT_FALSE(GrpcTransport::Create(o).ok());
  o.keepalive_timeout = GrpcTransport::kMaxKeepalive;
  EXPECT_TRUE(GrpcTransport::Create(o).ok());
}

// Records what a transport delivers and reports.
class Inbox : public MessageHandler {
 public:
  void Receive(raftpb::Message m) override {
    absl::MutexLock lock(&mu_);
    received_.push_back(std::move(m));
  }
  void ReportUnreachable(uint64_t peer) override {
    absl::MutexLock lock(&mu_);
    unreachable_.push_back(peer);
  }
  void ReportSnapshot(uint64_t peer, bool failed) override {
    absl::MutexLock lock(&mu_);
    snapshots_.emplace_back(peer, failed);
  }
  // Waits until a snapshot's send to `peer` is reported: whether it failed; nullopt at the
  // deadline.
  std::optional<bool> WaitForSnapshotReport(uint64_t peer, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto reported = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return std::any_of(snapshots_.begin(), snapshots_.end(),
                         [&](const std::pair<uint64_t, bool>& r) { return r.first == peer; });
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&reported), within)) return std::nullopt;
    for (const auto& [p, failed] : snapshots_) {
      if (p == peer) return failed;
    }
    return std::nullopt;
  }
  // Waits until `pred` holds of (received, unreachable); false at the deadline.
  bool WaitUntil(const std::function<bool(const std::vector<raftpb::Message>&,
                                          const std::vector<uint64_t>&)>& pred,
                 absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto holds = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return pred(received_, unreachable_); };
    return mu_.AwaitWithTimeout(absl::Condition(&holds), within);
  }
  // Waits until a message for which `pred` holds has been received; false at the deadline.
  bool WaitForMessage(const std::function<bool(const raftpb::Message&)>& pred,
                      absl::Duration within) {
    return WaitUntil(
        [&](const std::vector<raftpb::Message>& received, const std::vector<uint64_t>&) {
          return std::any_of(received.begin(), received.end(), pred);
        },
        within);
  }
  std::vector<raftpb::Message> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  absl::Mutex mu_;
  std::vector<raftpb::Message> received_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> unreachable_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, bool>> snapshots_ ABSL_GUARDED_BY(mu_);
};

// A transport of member `self` delivering to `handler`, served on loopback.
struct ServedTransport {
  ServedTransport() = default;
  ServedTransport(ServedTransport&&) = default;
  ServedTransport& operator=(ServedTransport&&) = default;
  // In GrpcTransport's order: the server shut down, the transport, then the server.
  ~ServedTransport() {
    if (server) server->Shutdown(std::chrono::system_clock::now());
    transport.reset();
  }
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<GrpcTransport> transport;
  std::string addr;
};
ServedTransport ServeTransport(uint64_t self, MessageHandler* handler,
                               bool hold_appends = true, bool cork_bursts = true) {
  ServedTransport served;
  GrpcTransport::Options o;
  o.self = self;
  o.hold_appends = hold_appends;
  o.cork_bursts = cork_bursts;
  auto transport = GrpcTransport::Create(o);
  EXPECT_TRUE(transport.ok()) << transport.status();
  if (!transport.ok()) return served;
  served.transport = std::move(*transport);
  served.transport->SetHandler(handler);
  testing::RaftServer s = testing::ServeRaft(*served.transport);
  EXPECT_NE(s.server, nullptr);
  served.server = std::move(s.server);
  served.addr = s.addr;
  return served;
}

// A transport of member `self` that only sends (no server); null on failure, recorded.
std::unique_ptr<GrpcTransport> UnservedTransport(uint64_t self) {
  GrpcTransport::Options o;
  o.self = self;
  auto transport = GrpcTransport::Create(o);
  EXPECT_TRUE(transport.ok()) << transport.status();
  if (!transport.ok()) return nullptr;
  (*transport)->Start();
  return std::move(*transport);
}

// An address that now belongs to another member (a manager replaced at the same address, a
// stale membership): messages meant for the old member must not be stepped by the new one. A
// heartbeat carries a commit index computed from its addressee's log, and a member that
// applied it to its own log could commit an entry it holds in conflict. The receiver refuses
// the stream, and the sender reports its peer unreachable.
TEST(GrpcTransportTest, AMemberRefusesMessagesMeantForAnother) {
  Inbox at_3, at_1;
  ServedTransport member3 = ServeTransport(3, &at_3);
  ASSERT_NE(member3.server, nullptr);
  const std::string addr = member3.addr;

  GrpcTransport::Options o1;
  o1.self = 1;
  auto member1 = GrpcTransport::Create(o1);
  ASSERT_TRUE(member1.ok()) << member1.status();
  (*member1)->Start();
  (*member1)->SetHandler(&at_1);
  (*member1)->AddPeer(2, addr);  // member 2's address, as member 1 still believes
  (*member1)->AddPeer(3, addr);
  bool refused = false;
  for (const absl::Time deadline = absl::Now() + kWait; !refused && absl::Now() < deadline;) {
    raftpb::Message hb = MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 5);
    hb.set_commit(7);
    (*member1)->Send({hb});
    refused = at_1.WaitUntil(
        [](const std::vector<raftpb::Message>&, const std::vector<uint64_t>& unreachable) {
          return std::find(unreachable.begin(), unreachable.end(), 2u) != unreachable.end();
        },
        absl::Milliseconds(50));
  }
  EXPECT_TRUE(refused) << "member 2's stream to member 3's address was never refused";
  // Member 3 itself is reached at the same address.
  (*member1)->Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 3, 5)});
  EXPECT_TRUE(at_3.WaitForMessage([](const raftpb::Message& m) { return m.to() == 3; }, kWait));
  for (const raftpb::Message& m : at_3.received())
    EXPECT_EQ(m.to(), 3u) << "stepped a message for " << m.to();
  member1->reset();
  member3.server->Shutdown(std::chrono::system_clock::now());
}

// A Raft server that accepts streams and snapshots and never reads them: a writer to it stays
// blocked in flow control until its call is cancelled.
class StallingRaftService : public raftpb::Raft::CallbackService {
 public:
  grpc::ServerReadReactor<raftpb::MessageBatch>* StreamMessages(
      grpc::CallbackServerContext*, raftpb::StreamMessagesResponse*) override {
    return new Stall<raftpb::MessageBatch>;
  }
  grpc::ServerReadReactor<raftpb::SnapshotChunk>* InstallSnapshot(
      grpc::CallbackServerContext*, raftpb::InstallSnapshotResponse*) override {
    absl::MutexLock lock(&mu_);
    ++snapshot_calls_;
    return new Stall<raftpb::SnapshotChunk>;
  }
  // A server of this service on loopback; its port in `port`.
  std::unique_ptr<grpc::Server> Serve(int* port) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
    builder.RegisterService(this);
    return builder.BuildAndStart();
  }
  // Waits until a snapshot's call has arrived; false at the deadline.
  bool WaitForSnapshotCall(absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return snapshot_calls_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), within);
  }

 private:
  template <typename T>
  class Stall : public grpc::ServerReadReactor<T> {
    void OnCancel() override { this->Finish(grpc::Status::CANCELLED); }
    void OnDone() override { delete this; }
  };
  absl::Mutex mu_;
  int snapshot_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A snapshot of `bytes` bytes from member 1 to `to`.
raftpb::Message SnapshotFor(uint64_t to, size_t bytes) {
  raftpb::Message m = MessageOf(raftpb::MSG_SNAP, 1, to, 5);
  m.mutable_snapshot()->mutable_metadata()->set_index(10);
  m.mutable_snapshot()->mutable_metadata()->set_term(5);
  m.mutable_snapshot()->set_data(std::string(bytes, 's'));
  return m;
}

// Destroys `transport` on a thread of its own; whether that finished within `within`.
bool DestroyedWithin(std::unique_ptr<GrpcTransport> transport, std::chrono::seconds within) {
  auto destroyed = std::make_shared<std::promise<void>>();
  std::future<void> done = destroyed->get_future();
  std::thread([t = std::move(transport), destroyed]() mutable {
    t.reset();
    destroyed->set_value();
  }).detach();
  return done.wait_for(within) == std::future_status::ready;
}

// A snapshot's chunks, as a sender (or a faulty or hostile one) might stream them.
grpc::Status StreamSnapshot(const std::string& addr,
                            const std::vector<raftpb::SnapshotChunk>& chunks) {
  // The test servers listen without TLS (ServeTransport); the TLS path is tls_cluster_test's.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  std::unique_ptr<raftpb::Raft::Stub> raft_client = raftpb::Raft::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  raftpb::InstallSnapshotResponse response;
  std::unique_ptr<grpc::ClientWriter<raftpb::SnapshotChunk>> writer =
      raft_client->InstallSnapshot(&ctx, &response);
  for (const raftpb::SnapshotChunk& c : chunks) {
    if (!writer->Write(c)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

// A malformed snapshot stream is refused with an error that says what is wrong, and nothing of
// it reaches the Raft node.
TEST(GrpcTransportTest, AMalformedSnapshotIsRefusedWithWhatIsWrongAndNotDelivered) {
  Inbox at_3;
  ServedTransport member3 = ServeTransport(3, &at_3);
  ASSERT_NE(member3.server, nullptr);
  struct Case {
    std::string name;
    std::vector<raftpb::SnapshotChunk> chunks;
    grpc::StatusCode code;
    std::string says;
  };
  raftpb::SnapshotChunk headerless = FirstChunk(3, 5, "hello");
  headerless.clear_header();
  const std::vector<Case> cases = {
      {"no header", {Last(headerless, "hello")}, grpc::StatusCode::INVALID_ARGUMENT,
       "the first snapshot chunk must carry the MSG_SNAP header"},
      {"over the limit", {FirstChunk(3, (uint64_t{4} << 30) + 1, "x")},
       grpc::StatusCode::RESOURCE_EXHAUSTED,
       "snapshot of 4294967297 bytes exceeds the limit of 4294967296 bytes"},
      {"a gap", {FirstChunk(3, 10, "hello"), Last(NextChunk(6, "world"), "helloworld")},
       grpc::StatusCode::INVALID_ARGUMENT, "snapshot chunk at offset 6 but 5 bytes received"},
      {"more than announced", {FirstChunk(3, 5, "hello"), Last(NextChunk(5, "!"), "hello!")},
       grpc::StatusCode::INVALID_ARGUMENT,
       "snapshot chunks exceed the announced size of 5 bytes"},
      {"cut short", {FirstChunk(3, 10, "hello")}, grpc::StatusCode::DATA_LOSS,
       "snapshot stream ended early: 5 of 10 bytes received"},
      {"last too soon", {Last(FirstChunk(3, 10, "hello"), "hello")}, grpc::StatusCode::DATA_LOSS,
       "snapshot stream ended early: 5 of 10 bytes received"},
      {"corrupt", {Last(FirstChunk(3, 5, "hello"), "hellO")}, grpc::StatusCode::DATA_LOSS,
       "snapshot checksum mismatch: the 5 bytes received have CRC-32 907060870, the sender's last "
       "chunk says 226395726; nothing was installed, the sender sends it again"},
      // 4 GiB announced, 5 bytes sent: refused as cut short, without setting 4 GiB aside.
      {"a big claim", {FirstChunk(3, uint64_t{4} << 30, "hello")}, grpc::StatusCode::DATA_LOSS,
       "snapshot stream ended early: 5 of 4294967296 bytes received"},
  };
  for (const Case& c : cases) {
    const grpc::Status st = StreamSnapshot(member3.addr, c.chunks);
    EXPECT_EQ(st.error_code(), c.code) << c.name << ": " << st.error_message();
    EXPECT_EQ(st.error_message(), c.says) << c.name;
  }
  EXPECT_TRUE(at_3.received().empty());
  // The same stream, well formed, is delivered whole.
  const grpc::Status st = StreamSnapshot(
      member3.addr, {FirstChunk(3, 10, "hello"), Last(NextChunk(5, "world"), "helloworld")});
  EXPECT_TRUE(st.ok()) << st.error_message();
  std::vector<raftpb::Message> got = at_3.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type(), raftpb::MSG_SNAP);
  EXPECT_EQ(got[0].snapshot().data(), "helloworld");
  member3.server->Shutdown(std::chrono::system_clock::now());
}

// In a child process (a death test): caps the address space 2 GiB above what is in use, serves
// member 3 and sends it a snapshot that claims 4 GiB and carries 5 bytes. Exits 0 when that is
// refused as cut short.
[[noreturn, maybe_unused]] void ClaimFourGibUnderACap() {
  uint64_t vm_kib = 0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (absl::StartsWith(line, "VmSize:")) vm_kib = std::stoull(line.substr(7));
  }
  if (vm_kib == 0) std::_Exit(2);
  const rlim_t cap = (vm_kib << 10) + (uint64_t{2} << 30);
  rlimit limit;
  limit.rlim_cur = cap;
  limit.rlim_max = cap;
  if (setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(3);
  Inbox at_3;
  ServedTransport member3 = ServeTransport(3, &at_3);
  if (member3.server == nullptr) std::_Exit(4);
  const grpc::Status st =
      StreamSnapshot(member3.addr, {FirstChunk(3, uint64_t{4} << 30, "hello")});
  std::_Exit(st.error_code() == grpc::StatusCode::DATA_LOSS ? 0 : 5);
}

// Reads every snapshot sent to it and drops it: a member whose memory is not the test's.
class DrainingRaftService : public raftpb::Raft::CallbackService {
 public:
  grpc::ServerReadReactor<raftpb::SnapshotChunk>* InstallSnapshot(
      grpc::CallbackServerContext*, raftpb::InstallSnapshotResponse*) override {
    return new Drain;
  }
  std::unique_ptr<grpc::Server> Serve(int* port) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
    builder.SetMaxReceiveMessageSize(static_cast<int>(GrpcTransport::kMaxBatchBytes));
    builder.RegisterService(this);
    return builder.BuildAndStart();
  }

 private:
  class Drain : public grpc::ServerReadReactor<raftpb::SnapshotChunk> {
   public:
    Drain() { StartRead(&chunk_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      chunk_.Clear();
      StartRead(&chunk_);
    }
    void OnDone() override { delete this; }

   private:
    raftpb::SnapshotChunk chunk_;
  };
};

// In a child process (a death test): member 1 sends member 2 a 512 MiB snapshot with the
// address space capped 384 MiB above what is in use, the snapshot included. Exits 0 when the
// send is reported done. The sender copied the whole message to make the first chunk's
// header: the copy could not be had, and the process aborted.
[[noreturn, maybe_unused]] void SendHalfAGibUnderACap() {
  DrainingRaftService drain;
  int port = 0;
  std::unique_ptr<grpc::Server> server = drain.Serve(&port);
  if (server == nullptr) std::_Exit(2);
  Inbox at_1;
  GrpcTransport::Options o;
  o.self = 1;
  auto transport = GrpcTransport::Create(o);
  if (!transport.ok()) std::_Exit(3);
  (*transport)->Start();
  (*transport)->SetHandler(&at_1);
  (*transport)->AddPeer(2, "127.0.0.1:" + std::to_string(port));
  raftpb::Message snap = SnapshotFor(2, size_t{512} << 20);
  uint64_t vm_kib = 0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (absl::StartsWith(line, "VmSize:")) vm_kib = std::stoull(line.substr(7));
  }
  if (vm_kib == 0) std::_Exit(4);
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = (vm_kib << 10) + (uint64_t{384} << 20);
  if (setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(5);
  std::vector<raftpb::Message> out;
  out.push_back(std::move(snap));
  (*transport)->Send(std::move(out));
  const std::optional<bool> failed = at_1.WaitForSnapshotReport(2, absl::Seconds(120));
  std::_Exit(!failed.has_value() ? 6 : *failed ? 7 : 0);
}

TEST(GrpcTransportTest, ASnapshotIsSentWithoutACopyOfItsData) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve address space of their own";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(SendHalfAGibUnderACap(), ::testing::ExitedWithCode(0), "");
#endif
}

// A snapshot for a member the transport has no address for is reported failed: the core
// holds that follower in snapshot state until it hears how the send went, and only heard
// that the member was unreachable, which does not end that state (nothing more went to it
// until a new leader).
TEST(GrpcTransportTest, ASnapshotForAMemberWithoutAnAddressIsReportedFailed) {
  Inbox at_1;
  GrpcTransport::Options o;
  o.self = 1;
  auto transport = GrpcTransport::Create(o);
  ASSERT_TRUE(transport.ok()) << transport.status();
  (*transport)->Start();
  (*transport)->SetHandler(&at_1);
  std::vector<raftpb::Message> out;
  out.push_back(SnapshotFor(2, 10));
  (*transport)->Send(std::move(out));
  const std::optional<bool> failed = at_1.WaitForSnapshotReport(2, absl::Seconds(20));
  ASSERT_TRUE(failed.has_value()) << "the snapshot's send was never reported";
  EXPECT_TRUE(*failed);
  (*transport)->SetHandler(nullptr);
}

// A follower passing on another member's transfer or read sends it with that member's id in
// `from` (the transferee, the reader). The receiving transport took the stream's sender from
// its first message: a stream was refused because the transferee had been removed, and its
// end reported the transferee, not the sender, unreachable.
TEST(GrpcTransportTest, AStreamsSenderIsTheOneItNamesNotAForwardedRequests) {
  Inbox at_1;
  ServedTransport member1 = ServeTransport(1, &at_1);
  ASSERT_NE(member1.server, nullptr);
  member1.transport->RemovePeer(3);  // 3 was removed
  GrpcTransport::Options o;
  o.self = 2;
  auto member2 = GrpcTransport::Create(o);
  ASSERT_TRUE(member2.ok()) << member2.status();
  (*member2)->Start();
  (*member2)->AddPeer(1, member1.addr);
  std::vector<raftpb::Message> out;
  out.push_back(MessageOf(raftpb::MSG_TRANSFER_LEADER, 3, 1, 5));  // 3's request, via 2
  out.push_back(MessageOf(raftpb::MSG_HEARTBEAT_RESP, 2, 1, 5));
  (*member2)->Send(std::move(out));
  EXPECT_TRUE(at_1.WaitUntil(
      [](const std::vector<raftpb::Message>& received, const std::vector<uint64_t>&) {
        return received.size() == 2;
      },
      absl::Seconds(20)))
      << "the stream was refused";
  member2->reset();  // the stream ends: its sender, 2, is reported
  EXPECT_TRUE(at_1.WaitUntil(
      [](const std::vector<raftpb::Message>&, const std::vector<uint64_t>& unreachable) {
        return std::find(unreachable.begin(), unreachable.end(), 2u) != unreachable.end();
      },
      absl::Seconds(20)));
  member1.server->Shutdown(std::chrono::system_clock::now());
}

// An Inbox that also records which threads delivered to it.
class ThreadRecordingInbox : public Inbox {
 public:
  void Receive(raftpb::Message m) override {
    {
      absl::MutexLock lock(&threads_mu_);
      threads_.insert(CurrentThreadName());
    }
    Inbox::Receive(std::move(m));
  }
  std::set<std::string> threads() {
    absl::MutexLock lock(&threads_mu_);
    return threads_;
  }

 private:
  absl::Mutex threads_mu_;
  std::set<std::string> threads_ ABSL_GUARDED_BY(threads_mu_);
};

// What peers write reaches the handler from the transport's own thread, the one that also
// writes this member's streams: the member has no other thread polling gRPC (on gRPC's callback
// API, as before, two "nexting" threads of gRPC's delivered it and took turns at polling with
// the transport's own, waking one another several times per message).
TEST(GrpcTransportTest, WhatArrivesIsDeliveredOnTheTransportsOneThread) {
  ThreadRecordingInbox at_1, at_2;
  ServedTransport member1 = ServeTransport(1, &at_1);
  ServedTransport member2 = ServeTransport(2, &at_2);
  ASSERT_NE(member1.server, nullptr);
  ASSERT_NE(member2.server, nullptr);
  member1.transport->AddPeer(2, member2.addr);
  member2.transport->AddPeer(1, member1.addr);
  for (uint64_t term = 1; term <= 20; ++term) {
    member1.transport->Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, term)});
    member2.transport->Send({MessageOf(raftpb::MSG_HEARTBEAT_RESP, 2, 1, term)});
  }
  auto twenty = [](const std::vector<raftpb::Message>& received, const std::vector<uint64_t>&) {
    return received.size() == 20;
  };
  ASSERT_TRUE(at_1.WaitUntil(twenty, kWait));
  ASSERT_TRUE(at_2.WaitUntil(twenty, kWait));
  EXPECT_EQ(at_1.threads(), std::set<std::string>{"raft-io"});
  EXPECT_EQ(at_2.threads(), std::set<std::string>{"raft-io"});
  member1.transport->RemovePeer(2);
  member2.transport->RemovePeer(1);
  member1.server->Shutdown(std::chrono::system_clock::now());
  member2.server->Shutdown(std::chrono::system_clock::now());
}

// Appends to a peer that has not answered wait for its answer, once appends have been seen to
// come faster than it answers, and then go out together (Options::hold_appends): a heartbeat
// takes them along; a backlog, an append after one without entries, every append when they
// come no faster than the answers (one client), and every append with the option off go at
// once.
TEST(GrpcTransportTest, AppendsWaitForThePeersAnswer) {
  Inbox at_1, at_2, at_3, at_4;
  ServedTransport member1 = ServeTransport(1, &at_1);
  ServedTransport member2 = ServeTransport(2, &at_2);
  ServedTransport member3 = ServeTransport(3, &at_3);
  ServedTransport member4 = ServeTransport(4, &at_4, /*hold_appends=*/false);
  ASSERT_NE(member1.server, nullptr);
  ASSERT_NE(member2.server, nullptr);
  ASSERT_NE(member3.server, nullptr);
  ASSERT_NE(member4.server, nullptr);
  GrpcTransport& t1 = *member1.transport;
  t1.AddPeer(2, member2.addr);
  t1.AddPeer(3, member3.addr);
  member2.transport->AddPeer(1, member1.addr);
  member2.transport->AddPeer(4, member4.addr);
  member3.transport->AddPeer(1, member1.addr);
  auto app = [](uint64_t from, uint64_t to, uint64_t index, size_t bytes) {
    raftpb::Message m = MessageOf(raftpb::MSG_APP, from, to, 1);
    m.set_index(index);
    if (bytes > 0) *m.add_entries() = EntryAt(1, index + 1, std::string(bytes, 'x'));
    return m;
  };
  auto at_least = [](size_t n) {
    return [n](const std::vector<raftpb::Message>& r, const std::vector<uint64_t>&) {
      return r.size() >= n;
    };
  };
  // Member `from` answers member `to`; returns once `to`'s transport has counted the answer
  // (it does before it delivers), its inbox then holding `total` messages.
  auto answer = [&](ServedTransport& from, uint64_t from_id, uint64_t to_id, Inbox& inbox,
                    size_t total) {
    from.transport->Send({MessageOf(raftpb::MSG_APP_RESP, from_id, to_id, 1)});
    return inbox.WaitUntil(at_least(total), kWait);
  };
  auto indexes = [](Inbox& inbox) {
    std::vector<uint64_t> out;
    for (const raftpb::Message& m : inbox.received()) out.push_back(m.index());
    return out;
  };

  // The streams are up (what waits for a stream to open goes in one write, unanswered or
  // not).
  t1.Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1), MessageOf(raftpb::MSG_HEARTBEAT, 1, 3, 1)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(1), kWait));
  ASSERT_TRUE(at_3.WaitUntil(at_least(1), kWait));
  // Three appends before any answer: none waits yet (appends have not been seen to come
  // faster than the answers), and the answer finds two that came late.
  for (uint64_t i = 1; i <= 3; ++i) t1.Send({app(1, 2, i, 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(4), kWait));
  ASSERT_TRUE(answer(member2, 2, 1, at_1, 1));
  // From now on, appends after the first wait for the answer, unwritten, and go with it.
  t1.Send({app(1, 2, 4, 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(5), kWait));
  t1.Send({app(1, 2, 5, 10)});
  t1.Send({app(1, 2, 6, 10)});
  ASSERT_EQ(t1.AwaitHeld(2, 2, kWait), 2u);
  EXPECT_EQ(at_2.received().size(), 5u);
  ASSERT_TRUE(answer(member2, 2, 1, at_1, 2));
  ASSERT_TRUE(at_2.WaitUntil(at_least(7), kWait));
  // Those two were written together, unanswered: the next waits; a heartbeat takes it along.
  t1.Send({app(1, 2, 7, 10)});
  ASSERT_EQ(t1.AwaitHeld(2, 1, kWait), 1u);
  t1.Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(9), kWait));
  // Only one append came before this answer: the next ones go at once (one client's next
  // proposal must not wait for a member slower than the quorum).
  ASSERT_TRUE(answer(member2, 2, 1, at_1, 3));
  for (uint64_t i = 8; i <= 10; ++i) t1.Send({app(1, 2, i, 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(12), kWait));
  // Two came late again: appends wait again, but not a backlog of kHoldBytes or more.
  ASSERT_TRUE(answer(member2, 2, 1, at_1, 4));
  t1.Send({app(1, 2, 11, 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(13), kWait));
  t1.Send({app(1, 2, 12, 70 << 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(14), kWait));
  EXPECT_EQ(indexes(at_2), (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 0, 8, 9, 10, 11, 12}));

  // An append without entries asks for no answer: the append after it goes at once.
  for (uint64_t i = 1; i <= 3; ++i) t1.Send({app(1, 3, i, 10)});
  ASSERT_TRUE(at_3.WaitUntil(at_least(4), kWait));
  ASSERT_TRUE(answer(member3, 3, 1, at_1, 5));  // waiting from now on, as above
  t1.Send({app(1, 3, 4, 0)});
  ASSERT_TRUE(at_3.WaitUntil(at_least(5), kWait));
  t1.Send({app(1, 3, 4, 10)});
  ASSERT_TRUE(at_3.WaitUntil(at_least(6), kWait));
  t1.Send({app(1, 3, 5, 10)});  // while this one waits, as the one before did not
  ASSERT_EQ(t1.AwaitHeld(3, 1, kWait), 1u);

  // With the option off, nothing ever waits.
  GrpcTransport& t4 = *member4.transport;
  t4.AddPeer(2, member2.addr);
  for (uint64_t i = 1; i <= 3; ++i) t4.Send({app(4, 2, 100 + i, 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(17), kWait));
  ASSERT_TRUE(answer(member2, 2, 4, at_4, 1));
  t4.Send({app(4, 2, 104, 10)});
  t4.Send({app(4, 2, 105, 10)});
  ASSERT_TRUE(at_2.WaitUntil(at_least(19), kWait));
  EXPECT_EQ(t4.AwaitHeld(2, 1, absl::ZeroDuration()), 0u);
  for (ServedTransport* m : {&member1, &member2, &member3, &member4}) {
    m->server->Shutdown(std::chrono::system_clock::now());
  }
}

// A burst of the loop's (the answers one commit completes) corks the server's connections
// until it ends: what the answers write leaves then, together (SocketCork's tests show the
// holding itself).
TEST(GrpcTransportTest, ABurstCorksTheServersConnectionsUntilItEnds) {
  Inbox at_1, at_2, at_3;
  ServedTransport member1 = ServeTransport(1, &at_1);
  ServedTransport member2 = ServeTransport(2, &at_2);
  ServedTransport member3 = ServeTransport(3, &at_3, /*hold_appends=*/true,
                                           /*cork_bursts=*/false);
  ASSERT_NE(member1.server, nullptr);
  ASSERT_NE(member2.server, nullptr);
  ASSERT_NE(member3.server, nullptr);
  member1.transport->AddPeer(2, member2.addr);
  member1.transport->AddPeer(3, member3.addr);
  member1.transport->Send(
      {MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1), MessageOf(raftpb::MSG_HEARTBEAT, 1, 3, 1)});
  auto one = [](const std::vector<raftpb::Message>& r, const std::vector<uint64_t>&) {
    return !r.empty();
  };
  ASSERT_TRUE(at_2.WaitUntil(one, kWait));
  ASSERT_TRUE(at_3.WaitUntil(one, kWait));
  // Member 2's server has accepted member 1's stream (no node runs here, so this thread
  // stands in for the loop's).
  LoopHost* host = member2.transport->loop_host();
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(member2.transport->corked_connections(), 0u);
  host->BeginBurst();
  EXPECT_GE(member2.transport->corked_connections(), 1u);
  host->EndBurst();
  EXPECT_EQ(member2.transport->corked_connections(), 0u);
  // With Options::cork_bursts off, a burst holds nothing back.
  LoopHost* uncorked = member3.transport->loop_host();
  ASSERT_NE(uncorked, nullptr);
  uncorked->BeginBurst();
  EXPECT_EQ(member3.transport->corked_connections(), 0u);
  uncorked->EndBurst();
  for (ServedTransport* m : {&member1, &member2, &member3}) {
    m->server->Shutdown(std::chrono::system_clock::now());
  }
}


// Messages sent before Start wait for it; a transport attached to a server that failed to
// build attaches to the next one; one attached and never started, or never attached nor
// started, is destroyed without a hang.
TEST(GrpcTransportTest, StartsOnceItsServerRunsAndSendsWhatWaited) {
  Inbox at_1, at_2;
  ServedTransport member1 = ServeTransport(1, &at_1);
  ASSERT_NE(member1.server, nullptr);
  GrpcTransport::Options o;
  o.self = 2;
  auto member2 = GrpcTransport::Create(o);
  ASSERT_TRUE(member2.ok()) << member2.status();
  (*member2)->SetHandler(&at_2);
  (*member2)->AddPeer(1, member1.addr);
  (*member2)->Send({MessageOf(raftpb::MSG_HEARTBEAT_RESP, 2, 1, 7)});
  // A first server that cannot listen (member 1's port, not shared).
  {
    grpc::ServerBuilder taken;
    taken.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int port = 0;
    taken.AddListeningPort(member1.addr, grpc::InsecureServerCredentials(), &port);
    (*member2)->AttachToServer(taken);
    std::unique_ptr<grpc::Server> failed = taken.BuildAndStart();
    ASSERT_TRUE(failed == nullptr || port == 0) << "listened on a port in use";
  }
  testing::RaftServer s = testing::ServeRaft(**member2);
  ASSERT_NE(s.server, nullptr);
  ASSERT_TRUE(at_1.WaitForMessage([](const raftpb::Message& m) { return m.term() == 7; }, kWait))
      << "what was sent before Start was not delivered after it";
  // And the peer reaches the second server.
  member1.transport->AddPeer(2, s.addr);
  member1.transport->Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 8)});
  EXPECT_TRUE(at_2.WaitForMessage([](const raftpb::Message& m) { return m.term() == 8; }, kWait));
  member1.transport->RemovePeer(2);
  s.server->Shutdown(std::chrono::system_clock::now());
  member2->reset();
  member1.server->Shutdown(std::chrono::system_clock::now());

  auto unstarted = GrpcTransport::Create(o);
  ASSERT_TRUE(unstarted.ok());
  (*unstarted)->AddPeer(1, member1.addr);
  (*unstarted)->Send({MessageOf(raftpb::MSG_HEARTBEAT_RESP, 2, 1, 9)});
  unstarted->reset();  // never attached nor started
  auto attached = GrpcTransport::Create(o);
  ASSERT_TRUE(attached.ok());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials());
  (*attached)->AttachToServer(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  server->Shutdown(std::chrono::system_clock::now());
  attached->reset();  // attached, its server run, never started
}

// The time a snapshot is given grows with its size.
TEST(GrpcTransportTest, ABigSnapshotIsGivenTimeInProportion) {
  GrpcTransport::Options o;
  EXPECT_EQ(SnapshotTimeout(o, 0), absl::Minutes(5));
  EXPECT_EQ(SnapshotTimeout(o, uint64_t{1} << 30), absl::Minutes(5) + absl::Seconds(1024));
  o.snapshot_min_rate = 10 << 20;
  EXPECT_EQ(SnapshotTimeout(o, uint64_t{1} << 30), absl::Minutes(5) + absl::Seconds(102.4));
}

// The size a snapshot's first chunk announces is only a claim: the receiver sets aside at most
// 64 MiB for it before the data arrives. With the process's address space capped 2 GiB above
// what it uses, a claim of 4 GiB followed by five bytes is refused as cut short; setting the
// claimed size aside would throw inside gRPC's thread and abort the whole manager.
TEST(GrpcTransportTest, ABigClaimIsNotSetAsideBeforeTheDataArrives) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve address space of their own";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ClaimFourGibUnderACap(), ::testing::ExitedWithCode(0), "");
#endif
}

// A peer whose address changed before any stream to it started used to stay among the retired
// streams forever: a transport destroyed while another peer's write was in flight then never
// shut down (a member changing address hung its manager's shutdown).
TEST(GrpcTransportTest, ShutsDownAfterAPeerChangedAddressWhileAWriteIsInFlight) {
  StallingRaftService stalling;
  int port = 0;
  std::unique_ptr<grpc::Server> server = stalling.Serve(&port);
  ASSERT_NE(server, nullptr);

  GrpcTransport::Options o;
  o.self = 1;
  auto transport = GrpcTransport::Create(o);
  ASSERT_TRUE(transport.ok()) << transport.status();
  (*transport)->Start();
  (*transport)->AddPeer(2, "127.0.0.1:" + std::to_string(port));
  std::vector<raftpb::Message> big;
  for (int i = 0; i < 8; ++i) {  // 8 MiB: far beyond what flow control lets through unread
    raftpb::Message m = MessageOf(raftpb::MSG_APP, 1, 2, 1);
    m.add_entries()->set_data(std::string(1 << 20, 'x'));
    big.push_back(std::move(m));
  }
  (*transport)->Send(std::move(big));
  (*transport)->AddPeer(3, "127.0.0.1:1");
  (*transport)->AddPeer(3, "127.0.0.1:2");  // moved before any message went to it

  EXPECT_TRUE(DestroyedWithin(std::move(*transport), std::chrono::seconds(20)))
      << "the transport never shut down";
  server->Shutdown(std::chrono::system_clock::now());
}

// A peer at `stalled_addr` that takes streams and never reads them, and member `id` served,
// receiving into `inbox`; both shut down at the end.
struct StalledPeerAndMember {
  explicit StalledPeerAndMember(uint64_t id) {
    server = stalling.Serve(&port);
    EXPECT_NE(server, nullptr);
    member = ServeTransport(id, &inbox);
    EXPECT_NE(member.server, nullptr);
  }
  ~StalledPeerAndMember() {
    if (member.server) member.server->Shutdown(std::chrono::system_clock::now());
    if (server) server->Shutdown(std::chrono::system_clock::now());
  }
  bool ok() const { return server != nullptr && member.server != nullptr; }
  std::string stalled_addr() const { return "127.0.0.1:" + std::to_string(port); }
  StallingRaftService stalling;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  Inbox inbox;
  ServedTransport member;
};

// A member that moved (a manager given a new address by TYPE_UPDATE_NODE) gets the messages
// that waited for its old address: they were dropped with the old stream, and reported to
// nobody, so a vote or an append waited for a timeout to be sent again.
TEST(GrpcTransportTest, WhatWaitedForAMemberGoesToItsNewAddress) {
  StalledPeerAndMember peers(2);  // the old address stalls; member 2 served at its new one
  ASSERT_TRUE(peers.ok());
  std::unique_ptr<GrpcTransport> member1 = UnservedTransport(1);
  ASSERT_NE(member1, nullptr);
  member1->AddPeer(2, peers.stalled_addr());
  std::vector<raftpb::Message> big;
  for (int i = 0; i < 8; ++i) {  // 8 MiB: the stream stalls, and the rest waits in its queue
    raftpb::Message m = MessageOf(raftpb::MSG_APP, 1, 2, 1);
    m.add_entries()->set_data(std::string(1 << 20, 'x'));
    big.push_back(std::move(m));
  }
  member1->Send(std::move(big));
  member1->Send({MessageOf(raftpb::MSG_VOTE, 1, 2, 9)});
  member1->AddPeer(2, peers.member.addr);  // member 2 moved

  EXPECT_TRUE(peers.inbox.WaitForMessage(
      [](const raftpb::Message& m) { return m.type() == raftpb::MSG_VOTE && m.term() == 9; },
      kWait))
      << "the vote that waited for member 2 never reached its new address";
  member1.reset();
}

// Reads every batch streamed to it and steps none: an old address whose process took the
// bytes and will never act on them (it stopped, hung, or is being replaced).
class SwallowingRaftService : public raftpb::Raft::CallbackService {
 public:
  grpc::ServerReadReactor<raftpb::MessageBatch>* StreamMessages(
      grpc::CallbackServerContext*, raftpb::StreamMessagesResponse*) override {
    return new Swallow(this);
  }
  std::unique_ptr<grpc::Server> Serve(int* port) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
    builder.RegisterService(this);
    return builder.BuildAndStart();
  }
  // Waits until `n` batches have been swallowed; false at the deadline.
  bool WaitForBatches(int n, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return batches_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), within);
  }

 private:
  class Swallow : public grpc::ServerReadReactor<raftpb::MessageBatch> {
   public:
    explicit Swallow(SwallowingRaftService* service) : service_(service) { StartRead(&batch_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      {
        absl::MutexLock lock(&service_->mu_);
        ++service_->batches_;
      }
      StartRead(&batch_);
    }
    void OnDone() override { delete this; }

   private:
    SwallowingRaftService* service_;
    raftpb::MessageBatch batch_;
  };
  absl::Mutex mu_;
  int batches_ ABSL_GUARDED_BY(mu_) = 0;
};

// A member that moves may not have read what was written to its old address: a write completes
// once gRPC has taken the batch, not once the peer has read it, and the old stream's
// cancellation discards the rest. Only a write still in flight was reported: an append (or a
// vote) written to an old address that stopped reading was lost without a word, and the
// leader learnt of it only from a later rejection or heartbeat.
TEST(GrpcTransportTest, AMemberThatMovesIsReportedWhenItsOldStreamMayHaveLostABatch) {
  SwallowingRaftService swallowing;
  int port = 0;
  std::unique_ptr<grpc::Server> old_server = swallowing.Serve(&port);
  ASSERT_NE(old_server, nullptr);
  Inbox at_2;
  ServedTransport member2 = ServeTransport(2, &at_2);
  ASSERT_NE(member2.server, nullptr);
  Inbox at_1;
  std::unique_ptr<GrpcTransport> member1 = UnservedTransport(1);
  ASSERT_NE(member1, nullptr);
  member1->SetHandler(&at_1);
  const std::vector<std::string> addrs = {"127.0.0.1:" + std::to_string(port), member2.addr};
  // Back and forth: each move leaves an append that the swallowing address took.
  for (int move = 1; move <= 3; ++move) {
    member1->AddPeer(2, addrs[0]);
    raftpb::Message app = MessageOf(raftpb::MSG_APP, 1, 2, 9);
    app.set_index(static_cast<uint64_t>(move));
    member1->Send({app});
    ASSERT_TRUE(swallowing.WaitForBatches(move, kWait)) << "move " << move;
    member1->AddPeer(2, addrs[1]);  // moved: what the old address took is lost
    EXPECT_TRUE(at_1.WaitUntil(
        [&](const std::vector<raftpb::Message>&, const std::vector<uint64_t>& unreachable) {
          return std::count(unreachable.begin(), unreachable.end(), 2u) >= move;
        },
        kWait))
        << "the append lost with member 2's old stream was never reported (move " << move
        << ")";
  }
  member1->SetHandler(nullptr);
  member1.reset();
  member2.server->Shutdown(std::chrono::system_clock::now());
  old_server->Shutdown(std::chrono::system_clock::now());
}

// A follower that stops reading its snapshot holds up neither the others' snapshots nor the
// transport's shutdown: one thread sent every snapshot in turn, and both waited out the
// stalled call's 5-minute deadline.
TEST(GrpcTransportTest, AStalledSnapshotHoldsUpNeitherOthersNorShutdown) {
  StalledPeerAndMember peers(3);  // member 2 stalls; member 3 reads
  ASSERT_TRUE(peers.ok());

  // Outlives the transport, whose destruction may outlast the test when it hangs.
  static Inbox at_1;
  GrpcTransport::Options o;
  o.self = 1;
  auto member1 = GrpcTransport::Create(o);
  ASSERT_TRUE(member1.ok()) << member1.status();
  (*member1)->Start();
  (*member1)->SetHandler(&at_1);
  (*member1)->AddPeer(2, peers.stalled_addr());
  (*member1)->AddPeer(3, peers.member.addr);
  // 8 MiB: far beyond what flow control lets through unread.
  (*member1)->Send({SnapshotFor(2, 8 << 20)});
  ASSERT_TRUE(peers.stalling.WaitForSnapshotCall(kWait));
  (*member1)->Send({SnapshotFor(3, 1000)});
  EXPECT_TRUE(peers.inbox.WaitForMessage(
      [](const raftpb::Message& m) { return m.type() == raftpb::MSG_SNAP; }, kWait))
      << "member 3's snapshot waited behind member 2's";
  EXPECT_TRUE(DestroyedWithin(std::move(*member1), std::chrono::seconds(20)))
      << "the transport never shut down";
}

// Holds every call made to it until released, counting them.
class HoldingHandler : public MessageHandler {
 public:
  void Receive(raftpb::Message) override { Hold(); }
  void ReportUnreachable(uint64_t) override { Hold(); }
  void ReportSnapshot(uint64_t, bool) override { Hold(); }
  bool WaitForCall(absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto called = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return calls_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&called), within);
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  void Hold() {
    absl::MutexLock lock(&mu_);
    ++calls_;
    mu_.Await(absl::Condition(&released_));
  }
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

// A stopped node detaches from its transport and may be destroyed while the transport lives
// on, its peers' streams still reporting in: clearing the handler waits out a call in progress,
// and none is made after. (A manager's node was once called as it was being destroyed: "pure
// virtual method called".)
TEST(GrpcTransportTest, ClearingTheHandlerWaitsOutTheCallInProgress) {
  HoldingHandler held;
  Inbox next;
  ServedTransport member2 = ServeTransport(2, &held);
  ASSERT_NE(member2.server, nullptr);

  GrpcTransport::Options o1;
  o1.self = 1;
  auto member1 = GrpcTransport::Create(o1);
  ASSERT_TRUE(member1.ok()) << member1.status();
  (*member1)->Start();
  (*member1)->AddPeer(2, member2.addr);
  (*member1)->Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 5)});
  ASSERT_TRUE(held.WaitForCall(kWait)) << "the heartbeat never arrived";

  std::future<void> cleared =
      std::async(std::launch::async, [&] { member2.transport->SetHandler(nullptr); });
  // Bounded wait for something that must not happen: it returns only after the release.
  EXPECT_EQ(cleared.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "SetHandler returned while the handler was being called";
  held.Release();
  ASSERT_EQ(cleared.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const int calls = held.calls();

  // What comes after goes to the next handler, none of it to the old one.
  member2.transport->SetHandler(&next);
  (*member1)->Send({MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 6)});
  EXPECT_TRUE(next.WaitForMessage([](const raftpb::Message& m) { return m.term() == 6; }, kWait));
  EXPECT_EQ(held.calls(), calls);
  member2.transport->SetHandler(nullptr);
  member1->reset();
  member2.server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(ClusterTest, LinearizableReadOnAFollowerSeesEveryAcknowledgedWrite) {
  StartCluster(3);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  ASSERT_NE(ProposeAcked("written"), 0u);
  const uint64_t follower = leader % 3 + 1;
  absl::Status read = M(follower).node->LinearizableRead().get();
  ASSERT_TRUE(read.ok()) << read;
  // No waiting: the read completed only once the follower had applied the write.
  EXPECT_EQ(M(follower).sm->values().back(), "written");
}

TEST_F(ClusterTest, LeaderFailoverLosesNoAcknowledgedWrite) {
  StartCluster(3);
  std::vector<std::string> acked;
  for (int i = 0; i < 30; ++i) {
    acked.push_back("before" + std::to_string(i));
    ASSERT_NE(ProposeAcked(acked.back()), 0u);
  }
  const uint64_t old_leader = WaitForLeader();
  Kill(old_leader);
  for (int i = 0; i < 30; ++i) {
    acked.push_back("after" + std::to_string(i));
    ASSERT_NE(ProposeAcked(acked.back()), 0u);
  }
  EXPECT_NE(WaitForLeader(), old_leader);
  Start(old_leader);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(acked.size(), absl::Now() + kWait)) << id;
    std::vector<std::string> v = M(id).sm->values();
    for (const std::string& a : acked) {
      EXPECT_NE(std::find(v.begin(), v.end(), a), v.end()) << a << " lost on " << id;
    }
  }
}

// Through leader kills over gRPC: each term announces at most one leader, and only once it has
// applied every write acknowledged before; a killed leader's leadership ends with it.
TEST_F(ClusterTest, EachTermAnnouncesOneLeaderHoldingEveryAcknowledgedWrite) {
  StartCluster(3);
  struct Announced {
    uint64_t member;
    LeadershipRecorder::Change change;
  };
  std::vector<Announced> all;
  auto collect = [&](uint64_t id) {
    for (const LeadershipRecorder::Change& c : M(id).sm->changes()) all.push_back({id, c});
  };
  size_t acked = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) {
      ASSERT_NE(ProposeAcked(absl::StrCat("r", round, "v", i)), 0u);
      ++acked;
    }
    const uint64_t leader = WaitForLeader();
    ASSERT_NE(leader, 0u);
    Kill(leader);
    collect(leader);
    // The next leader is announced holding every write acknowledged so far.
    const uint64_t next = WaitForLeader();
    ASSERT_NE(next, 0u);
    ASSERT_NE(next, leader);
    ASSERT_TRUE(M(next).sm->WaitForChanges(1, absl::Now() + kWait)) << "member " << next;
    const LeadershipRecorder::Change c = M(next).sm->changes().back();
    EXPECT_TRUE(c.leading);
    EXPECT_GE(c.applied_values, acked) << "member " << next << ", term " << c.term;
    Start(leader);  // a fresh recorder: its history was collected above
  }
  for (auto& m : members_) {
    const uint64_t id = m->id;
    Kill(id);
    collect(id);
  }
  std::map<uint64_t, std::set<uint64_t>> leaders_of_term;
  std::map<uint64_t, int> open;  // member -> leaderships not yet ended
  for (const Announced& a : all) {
    if (a.change.leading) {
      leaders_of_term[a.change.term].insert(a.member);
      ++open[a.member];
    } else {
      --open[a.member];
    }
  }
  EXPECT_GE(leaders_of_term.size(), 4u);  // the first leader and three after kills
  for (const auto& [term, members] : leaders_of_term) {
    EXPECT_EQ(members.size(), 1u) << "term " << term << " announced two leaders";
  }
  for (const auto& [member, n] : open) {
    EXPECT_EQ(n, 0) << "member " << member << ": a leadership announced but never ended";
  }
}

// A manager joining a running cluster, as the control plane will drive it: a new member with an
// empty store (it knows nothing of the cluster: it learns the membership from the log) starts,
// is added as a learner with its address, catches up over gRPC, is promoted, and then counts
// towards the quorum.
TEST_F(ClusterTest, ANewMemberJoinsAsALearnerCatchesUpAndVotes) {
  StartCluster(3);
  for (int i = 0; i < 20; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  const uint64_t leader = JoinAndPromote(4, 20);
  ASSERT_NE(leader, 0u);
  // The joiner learned the membership as the cluster's history, from the bootstrap on.
  ASSERT_TRUE(M(4).sm->WaitForMembership("1,2,3,4", absl::Now() + kWait));
  std::vector<std::string> history = M(4).sm->memberships();
  ASSERT_GE(history.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(history.begin(), history.begin() + 3),
            (std::vector<std::string>{"1: voters 1", "2: voters 1,2", "3: voters 1,2,3"}));
  EXPECT_NE(history[3].find(": voters 1,2,3 learners 4"), std::string::npos) << history[3];
  EXPECT_NE(history[4].find(": voters 1,2,3,4"), std::string::npos) << history[4];

  // Four voters: with one original member down, nothing commits without the new one.
  const uint64_t down = leader % 3 + 1;
  Kill(down);
  for (int i = 0; i < 10; ++i) ASSERT_NE(ProposeAcked("w" + std::to_string(i)), 0u);
  Kill(4);
  // Two of four voters: no write commits (a leader steps down when check-quorum finds it
  // hears from no quorum).
  const uint64_t survivor = down % 3 + 1;
  auto stuck = M(survivor).node->Propose("without a quorum");
  if (stuck.wait_for(std::chrono::milliseconds(500)) == std::future_status::ready) {
    EXPECT_FALSE(stuck.get().ok()) << "committed with two of four voters";
  }
  Start(4);
  ASSERT_NE(ProposeAcked("quorum again"), 0u);
  ASSERT_TRUE(M(4).sm->WaitFor(31, absl::Now() + kWait));
  EXPECT_EQ(M(4).sm->values().back(), "quorum again");
  // A restart replays the same history (no snapshot yet: from the bootstrap).
  ASSERT_TRUE(M(4).sm->WaitForMembership("1,2,3,4", absl::Now() + kWait));
  EXPECT_EQ(M(4).sm->memberships(), history);
}

// A manager joining after the log was compacted gets the membership with the leader's
// snapshot, and still counts towards the quorum, also after it restarts from its own disk.
TEST_F(ClusterTest, ANewMemberJoinsFromASnapshotOnceTheLogIsCompacted) {
  StartCluster(3, /*snapshot_interval=*/5);
  for (int i = 0; i < 20; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  const uint64_t leader = JoinAndPromote(4, 20);
  ASSERT_NE(leader, 0u);
  EXPECT_GT(M(4).store->Snapshot()->metadata().index(), 3u) << "joined without a snapshot";
  // Its first membership is the snapshot's (the three voters, at the snapshot's index, not the
  // bootstrap's), its last the four voters.
  ASSERT_TRUE(M(4).sm->WaitForMembership("1,2,3,4", absl::Now() + kWait));
  std::vector<std::string> history = M(4).sm->memberships();
  ASSERT_GE(history.size(), 2u) << absl::StrJoin(history, "; ");
  EXPECT_NE(history.front().find(": voters 1,2,3"), std::string::npos) << history.front();
  EXPECT_GT(std::stoull(history.front()), 3u) << history.front();
  EXPECT_NE(history.back().find(": voters 1,2,3,4"), std::string::npos) << history.back();
  Kill(4);
  Start(4);
  // Four voters, one original member down: nothing commits unless member 4 votes and
  // acknowledges with the membership it rebuilt from its snapshot and log.
  Kill(leader % 3 + 1);
  ASSERT_NE(ProposeAcked("three of four"), 0u);
  ASSERT_TRUE(M(4).sm->WaitFor(21, absl::Now() + kWait));
  EXPECT_EQ(M(4).sm->values().back(), "three of four");
}
// A manager demoted while it was down (its Raft member removed by the others) comes back with
// the membership it last knew and would campaign for ever; the members that removed it refuse
// its stream and tell it, so its node reports the removal (the manager then goes on as a
// worker) and it never campaigns again. The others go on as three.
TEST_F(ClusterTest, AMemberRemovedWhileDownLearnsItWhenItComesBack) {
  StartCluster(3);
  for (int i = 0; i < 5; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  ASSERT_NE(JoinAndPromote(4, 5), 0u);
  Kill(4);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(M(leader)
                  .node->ProposeConfChange(MemberChange(raftpb::ConfChange::TYPE_REMOVE_NODE, 4))
                  .get()
                  .ok());
  ASSERT_NE(ProposeAcked("after the removal"), 0u);
  // The id is never used again.
  EXPECT_EQ(M(leader)
                .node->ProposeConfChange(MemberChange(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4))
                .get()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  Start(4);
  EXPECT_EQ(M(4).sm->WaitForRemoval(absl::Now() + kWait), 1);
  EXPECT_TRUE(M(4).node->GetStatus().removed);
  absl::StatusOr<uint64_t> late = M(4).node->Propose("from a removed member").get();
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  EXPECT_EQ(M(4).node->LinearizableRead().get().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(M(4).sm->values().size(), 5u);  // it never got the write made without it
  // It stays a follower of no one; the others keep their leader and commit as three.
  const uint64_t term = M(leader).node->GetStatus().term;
  absl::SleepFor(absl::Milliseconds(300));  // 30 ticks: time for it to campaign, were it to
  EXPECT_EQ(M(4).node->GetStatus().role, Role::kFollower);
  EXPECT_EQ(M(4).node->GetStatus().leader, 0u);
  EXPECT_EQ(M(leader).node->GetStatus().term, term);
  for (uint64_t id : {1, 2, 3}) EXPECT_FALSE(M(id).node->GetStatus().removed) << id;
  Kill(4);
  ASSERT_NE(ProposeAcked("three again"), 0u);
}

// A join the manager gives up on: the learner is removed while it runs. Whether it applied
// its removal or was left to find out (no one sends to it any more: it asks the voters it
// knows after an election timeout, and is refused), its node reports it.
TEST_F(ClusterTest, ALearnerRemovedWhileJoiningLearnsIt) {
  StartCluster(3);
  for (int i = 0; i < 5; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  auto joining = std::make_unique<Member>();
  joining->id = 4;
  joining->dir = (base_ / "m4").string();
  members_.push_back(std::move(joining));
  Start(4);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(
      M(leader)
          .node->ProposeConfChange(MemberChange(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 4))
          .get()
          .ok());
  ASSERT_TRUE(M(4).sm->WaitFor(5, absl::Now() + kWait));
  ASSERT_TRUE(M(leader)
                  .node->ProposeConfChange(MemberChange(raftpb::ConfChange::TYPE_REMOVE_NODE, 4))
                  .get()
                  .ok());
  EXPECT_EQ(M(4).sm->WaitForRemoval(absl::Now() + kWait), 1);
  EXPECT_TRUE(M(4).node->GetStatus().removed);
  Kill(4);
  ASSERT_NE(ProposeAcked("three"), 0u);
}

// The members' addresses are part of the membership: a manager restarted after its log was
// compacted past the changes that gave its peers' addresses reconnects to them from its
// snapshot, with nobody telling it where they are.
TEST_F(ClusterTest, AMemberRestartedFromASnapshotFindsItsPeersOnItsOwn) {
  StartCluster(3, /*snapshot_interval=*/5);  // bootstrapped with ids only
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  for (uint64_t id = 1; id <= 3; ++id) {  // each announces its address, as managers do
    ASSERT_TRUE(M(leader)
                    .node->ProposeConfChange(MemberChange(raftpb::ConfChange::TYPE_UPDATE_NODE, id))
                    .get()
                    .ok())
        << id;
  }
  const uint64_t announced = M(leader).node->GetStatus().applied;
  for (int i = 0; i < 20; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  ASSERT_TRUE(M(3).sm->WaitFor(20, absl::Now() + kWait));
  // Member 3's snapshot records everyone's address; its log no longer holds the changes.
  raftpb::ConfState recorded = M(3).store->Snapshot()->metadata().conf_state();
  ASSERT_EQ(recorded.members_size(), 3);
  for (const raftpb::RaftMember& m : recorded.members()) {
    EXPECT_EQ(m.addr(), M(m.raft_id()).addr) << m.raft_id();
  }
  ASSERT_GT(M(3).store->FirstIndex(), announced);

  const std::string addr3 = M(3).addr;
  Kill(2);
  Kill(3);
  introduce_peers_ = false;
  Start(3);
  ASSERT_EQ(M(3).addr, addr3) << "member 3 could not listen where it did";
  // Two of three: nothing commits unless member 3 reaches member 1 by itself.
  ASSERT_NE(ProposeAcked("two of three"), 0u);
  ASSERT_TRUE(M(3).sm->WaitFor(21, absl::Now() + kWait));
  EXPECT_EQ(M(3).sm->values().back(), "two of three");
}

// A leader stopped gracefully (swarmd on SIGTERM) hands its leadership over first: when its
// Stop returns another member leads already, with every acknowledged write, and no election
// was needed (with 100 ms ticks an election takes over a second to start: none can have run).
// Stop returns as soon as the other member leads: the hand-over's window (an election
// timeout, here 1 s) bounds a hand-over that does not happen, it is not a wait every Stop
// pays (one message to the transferee and its election, a few milliseconds here).
TEST_F(ClusterTest, AStoppingLeaderHandsItsLeadershipOver) {
  tick_ = absl::Milliseconds(100);
  transfer_on_stop_ = true;
  StartCluster(3);
  for (int i = 0; i < 10; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  const uint64_t term = M(leader).node->GetStatus().term;
  const absl::Time stop_began = absl::Now();
  M(leader).node->Stop();
  EXPECT_LT(absl::Now() - stop_began, tick_ * election_tick_)
      << "Stop waited out the hand-over's window instead of returning once it was done";
  uint64_t next = 0;
  for (auto& m : members_) {
    if (m->id != leader && m->node->GetStatus().role == Role::kLeader) next = m->id;
  }
  ASSERT_NE(next, 0u) << "no other member led when the old leader's Stop returned";
  EXPECT_EQ(M(next).node->GetStatus().term, term + 1);
  Kill(leader);
  ASSERT_NE(ProposeAcked("after"), 0u);
  ASSERT_TRUE(M(next).sm->WaitFor(11, absl::Now() + kWait));
  EXPECT_EQ(M(next).sm->values().back(), "after");
}

// The quorum is lost for good: two of three managers are gone. The survivor's store is forced
// into a new cluster and serves every acknowledged write alone.
TEST_F(ClusterTest, AForcedNewClusterRecoversFromALostQuorum) {
  StartCluster(3);
  for (int i = 0; i < 20; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  for (uint64_t id = 1; id <= 3; ++id) Kill(id);
  {
    auto store = RocksDbLogStore::Open(StoreOptions(M(3)));
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<ForcedNewCluster> forced = ForceNewCluster(**store, 3);
    ASSERT_TRUE(forced.ok()) << forced.status();
    EXPECT_EQ(forced->removed, (std::vector<uint64_t>{1, 2}));
  }
  Start(3);
  ASSERT_NE(ProposeAcked("alone"), 0u);
  std::vector<std::string> v = M(3).sm->values();
  ASSERT_EQ(v.size(), 21u);
  EXPECT_EQ(v.front(), "v0");
  EXPECT_EQ(v.back(), "alone");
  // And it stays so across a restart.
  Kill(3);
  Start(3);
  ASSERT_NE(ProposeAcked("still alone"), 0u);
  EXPECT_EQ(M(3).sm->values().size(), 22u);
  // The old members, started on their old stores, are told they were removed, and the new
  // cluster does not notice them.
  Start(1);
  Start(2);
  for (uint64_t id : {1, 2}) {
    EXPECT_EQ(M(id).sm->WaitForRemoval(absl::Now() + kWait), 1) << id;
    EXPECT_TRUE(M(id).node->GetStatus().removed) << id;
  }
  EXPECT_EQ(M(3).node->GetStatus().role, Role::kLeader);
  EXPECT_TRUE(M(3).node->Propose("alone still").get().ok());
}

TEST_F(ClusterTest, RestartingEveryMemberKeepsTheState) {
  StartCluster(3);
  for (int i = 0; i < 20; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  for (uint64_t id = 1; id <= 3; ++id) Kill(id);
  for (uint64_t id = 1; id <= 3; ++id) Start(id);
  ASSERT_NE(ProposeAcked("after restart"), 0u);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(21, absl::Now() + kWait)) << id;
    std::vector<std::string> v = M(id).sm->values();
    EXPECT_EQ(v.front(), "v0");
    EXPECT_EQ(v.back(), "after restart");
  }
}

TEST_F(ClusterTest, LaggingMemberCatchesUpThroughAChunkedSnapshot) {
  StartCluster(3, /*snapshot_interval=*/20);
  const uint64_t leader = WaitForLeader();
  const uint64_t lagging = leader % 3 + 1;
  Kill(lagging);
  for (int i = 0; i < 100; ++i) ASSERT_NE(ProposeAcked("v" + std::to_string(i)), 0u);
  Start(lagging);
  ASSERT_TRUE(M(lagging).sm->WaitFor(100, absl::Now() + kWait));
  EXPECT_EQ(M(lagging).sm->values(), M(WaitForLeader()).sm->values());
  EXPECT_GT(M(lagging).store->FirstIndex(), 1u);  // it started from a snapshot
}

TEST_F(ClusterTest, ProposalsWithoutAQuorumFailInsteadOfHanging) {
  StartCluster(3);
  Kill(2);
  Kill(3);
  // Member 1 alone can never elect a leader: the proposal is refused at once.
  absl::StatusOr<uint64_t> r = M(1).node->Propose("nobody hears").get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
}

// Proposals with a completion callback: no thread waits; each completes once, with increasing
// indexes, from the node's completion thread.
TEST_F(ClusterTest, CallbackProposalsCompleteOnceInOrder) {
  StartCluster(3);
  const uint64_t leader = WaitForLeader();
  ASSERT_NE(leader, 0u);
  absl::Mutex mu;
  std::vector<uint64_t> indexes;
  int failures = 0;
  const std::thread::id caller = std::this_thread::get_id();
  bool on_caller_thread = false;
  for (int i = 0; i < 300; ++i) {
    M(leader).node->Propose("c" + std::to_string(i), [&](absl::StatusOr<uint64_t> r) {
      absl::MutexLock lock(&mu);
      on_caller_thread = on_caller_thread || std::this_thread::get_id() == caller;
      if (r.ok()) {
        indexes.push_back(*r);
      } else {
        ++failures;
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    auto all = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return indexes.size() + failures == 300; };
    ASSERT_TRUE(mu.AwaitWithDeadline(absl::Condition(&all), absl::Now() + kWait));
    EXPECT_EQ(failures, 0);
    EXPECT_FALSE(on_caller_thread);
    EXPECT_TRUE(std::is_sorted(indexes.begin(), indexes.end()));
    EXPECT_EQ(std::adjacent_find(indexes.begin(), indexes.end()), indexes.end());
  }
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(M(id).sm->WaitFor(300, absl::Now() + kWait));
  // A stopped node answers at once, on the caller's thread.
  Member& stopped = M(leader % 3 + 1);
  stopped.node->Stop();
  absl::Status late;
  stopped.node->Propose("late", [&](absl::StatusOr<uint64_t> r) { late = r.status(); });
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable);
}

// Snapshots every few entries, the commit index persisted lazily, every member restarted three
// times: nothing acknowledged is lost and every member restarts from its own snapshot and log.
// (A snapshot ahead of the stored commit index, which a crash can leave, is core_test's
// RestartWithASnapshotAheadOfTheStoredCommitIndex.)
TEST_F(ClusterTest, RestartsRepeatedlyWithFrequentSnapshots) {
  StartCluster(3, /*snapshot_interval=*/3);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_NE(ProposeAcked("r" + std::to_string(round) + "v" + std::to_string(i)), 0u);
    }
    for (uint64_t id = 1; id <= 3; ++id) Kill(id);
    for (uint64_t id = 1; id <= 3; ++id) Start(id);
  }
  ASSERT_NE(ProposeAcked("last"), 0u);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(61, absl::Now() + kWait)) << id;
    EXPECT_EQ(M(id).sm->values().back(), "last");
  }
}

// A member whose disk fails (full, dead, gone read-only) stops taking part instead of aborting
// the process, and says why; the others go on without it, and once its disk is repaired it
// restarts from what it kept and catches up. Nothing acknowledged is lost on the way. The disk
// here is RocksDB's, failing every write from a moment on (PowerLossFileSystem::CutPower).
void ClusterTest::DiskFailsOn(bool leader) {
  StartCluster(3, 10000, /*fs_seed=*/41);
  std::vector<std::string> acked;
  for (int i = 0; i < 5; ++i) {
    acked.push_back("before" + std::to_string(i));
    ASSERT_NE(ProposeAcked(acked.back()), 0u);
  }
  const uint64_t l = WaitForLeader();
  ASSERT_NE(l, 0u);
  const uint64_t failing = leader ? l : (l % 3) + 1;
  const size_t changes_before = M(failing).sm->changes().size();
  M(failing).fs->CutPower();
  // A write through the failing member (a follower passes it on, and the leader's append of
  // it comes back): its disk fails the next write it makes. Acknowledged or not (the others
  // may commit the entry before the failing member's write fails), nothing may be lost, and
  // the process goes on either way.
  absl::StatusOr<uint64_t> through = M(failing).node->Propose("through the failing member").get();
  if (through.ok()) acked.push_back("through the failing member");
  std::vector<absl::Status> failed = M(failing).sm->WaitForStorageFailure(absl::Now() + kWait);
  ASSERT_EQ(failed.size(), 1u) << "member " << failing << " did not stop on its disk's failure";
  EXPECT_EQ(failed[0].code(), absl::StatusCode::kUnavailable) << failed[0];
  EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("storage failed a write"));
  const Node::Status st = M(failing).node->GetStatus();
  EXPECT_FALSE(st.storage_error.empty());
  EXPECT_EQ(st.leader, 0u);
  if (leader) {
    // Leader-only work stops: the lost leadership is announced.
    const std::vector<LeadershipRecorder::Change> changes = M(failing).sm->changes();
    ASSERT_GT(changes.size(), changes_before);
    EXPECT_FALSE(changes.back().leading);
  }
  // Its requests fail at once, naming the failure.
  absl::StatusOr<uint64_t> refused = M(failing).node->Propose("refused").get();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("storage failed"));
  absl::Status read = M(failing).node->LinearizableRead().get();
  EXPECT_EQ(read.code(), absl::StatusCode::kUnavailable) << read;

  // The manager stops it; the others go on (and elect a new leader if it led).
  Kill(failing);
  for (int i = 0; i < 5; ++i) {
    acked.push_back("after" + std::to_string(i));
    ASSERT_NE(ProposeAcked(acked.back()), 0u);
  }
  // The disk is repaired: the member restarts from what it kept and catches up.
  M(failing).fs->LoseUnsyncedData();
  M(failing).fs->RestorePower();
  Start(failing);
  acked.push_back("last");
  ASSERT_NE(ProposeAcked("last"), 0u);
  // Everything the leader applied (the write through the failing member may have been
  // committed unacknowledged).
  const uint64_t now_leading = WaitForLeader();
  ASSERT_NE(now_leading, 0u);
  const size_t applied = M(now_leading).sm->values().size();
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(M(id).sm->WaitFor(applied, absl::Now() + kWait)) << id;
    const std::vector<std::string> v = M(id).sm->values();
    const std::set<std::string> have(v.begin(), v.end());
    for (const std::string& a : acked) EXPECT_EQ(have.count(a), 1u) << id << " lost " << a;
    EXPECT_TRUE(M(id).node->GetStatus().storage_error.empty()) << id;
  }
}

TEST_F(ClusterTest, AFollowerWhoseDiskFailsStopsAndTheOthersGoOn) { DiskFailsOn(false); }
TEST_F(ClusterTest, ALeaderWhoseDiskFailsStopsLeadingAndNothingAcknowledgedIsLost) {
  DiskFailsOn(true);
}

// The whole cluster loses power at once (a rack or a data centre): only what each member had
// synced survives, and still no acknowledged write may be lost. This is what catches a member
// that acknowledges an append, or a leader that answers a proposer, before the write is
// durable on a quorum: a SIGKILL keeps the page cache and cannot.
//
// The cluster runs in a child process (this test binary again, running PowerCutChild.Run): four
// proposers report each acknowledged value on a pipe; after a seeded number of them, the power
// goes out on the three members together (operations in progress complete, later ones block, as
// on a dead machine), each store keeps only its synced data (see power_loss_fs.h), and the
// child exits. This process then restarts the three members from their directories and checks
// that every acknowledged value is there.
TEST_F(ClusterTest, APowerCutOnEveryMemberLosesNoAcknowledgedWrite) {
  uint64_t seeds = 3;  // more with SHOAL_POWER_CUT_SEEDS=N
  if (const char* env = std::getenv("SHOAL_POWER_CUT_SEEDS"))
    seeds = std::strtoull(env, nullptr, 10);
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    const std::filesystem::path dir = base_ / ("seed" + std::to_string(seed));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const std::string fd_env = "SHOAL_POWER_CUT_FD=" + std::to_string(fds[1]);
    const std::string dir_env = "SHOAL_POWER_CUT_DIR=" + dir.string();
    const std::string seed_env = "SHOAL_POWER_CUT_SEED=" + std::to_string(seed);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Only exec after a fork: this process has gRPC's threads.
      close(fds[0]);
      const char* argv[] = {"/proc/self/exe", "--gtest_filter=PowerCutChild.Run", nullptr};
      std::vector<const char*> envp;
      for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
      envp.push_back(fd_env.c_str());
      envp.push_back(dir_env.c_str());
      envp.push_back(seed_env.c_str());
      envp.push_back(nullptr);
      execve(argv[0], const_cast<char* const*>(argv), const_cast<char* const*>(envp.data()));
      _exit(127);
    }
    close(fds[1]);
    std::string reported;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) reported.append(buf, n);
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "seed " << seed << ": " << status;
    std::vector<std::string> acked;
    bool cut = false;
    for (absl::string_view line : absl::StrSplit(reported, '\n')) {
      if (line == "CUT") cut = true;
      if (absl::StartsWith(line, "ack ")) acked.emplace_back(line.substr(4));
    }
    ASSERT_TRUE(cut) << "seed " << seed << ": the child did not cut the power";
    ASSERT_GE(acked.size(), 20u) << "seed " << seed;

    // Power back: the members restart from what their disks kept.
    members_.clear();
    base_ = dir;
    AdoptMembers(3);
    for (uint64_t id = 1; id <= 3; ++id) Start(id);
    ASSERT_NE(ProposeAcked("after the power cut"), 0u) << "seed " << seed;
    const uint64_t leader = WaitForLeader();
    ASSERT_NE(leader, 0u);
    const std::vector<std::string> v = M(leader).sm->values();
    const std::set<std::string> have(v.begin(), v.end());
    size_t lost = 0;
    for (const std::string& a : acked) {
      if (have.count(a) == 0 && ++lost <= 5) ADD_FAILURE() << "seed " << seed << ": lost " << a;
    }
    EXPECT_EQ(lost, 0u) << "seed " << seed << ": of " << acked.size() << " acknowledged";
    for (uint64_t id = 1; id <= 3; ++id) Kill(id);
    base_ = dir.parent_path();
  }
}

// The child of the test above, registered only in the process it starts.
class PowerCutChild : public ClusterTest {
 public:
  void TestBody() override {
    const int fd = std::atoi(std::getenv("SHOAL_POWER_CUT_FD"));
    const uint64_t seed = std::strtoull(std::getenv("SHOAL_POWER_CUT_SEED"), nullptr, 10);
    base_ = std::getenv("SHOAL_POWER_CUT_DIR");
    std::filesystem::remove_all(base_);
    StartCluster(3, /*snapshot_interval=*/40, /*fs_seed=*/seed);
    for (uint64_t id = 1; id <= 3; ++id) M(id).fs->BlockAfterCut();
    auto report = [fd](const std::string& line) {
      const std::string l = line + "\n";  // one write: lines of concurrent proposers stay whole
      if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(3);
    };
    const size_t cut_after = 30 + seed * 37 % 150;
    std::atomic<size_t> acks{0};
    absl::Mutex mu;
    bool go_cut = false;
    std::vector<std::thread> proposers;
    for (int t = 0; t < 4; ++t) {
      proposers.emplace_back([&, t] {
        for (int i = 0;; ++i) {
          const uint64_t leader = WaitForLeader();
          if (leader == 0) continue;
          const std::string value = "p" + std::to_string(t) + "-" + std::to_string(i);
          absl::StatusOr<uint64_t> r = M(leader).node->Propose(value).get();
          if (!r.ok()) continue;
          report("ack " + value);
          if (acks.fetch_add(1) + 1 == cut_after) {
            absl::MutexLock lock(&mu);
            go_cut = true;
          }
        }
      });
    }
    {
      absl::MutexLock lock(&mu);
      if (!mu.AwaitWithTimeout(absl::Condition(&go_cut), kWait)) {
        report("too few acknowledgements");
        _exit(4);
      }
    }
    for (uint64_t id = 1; id <= 3; ++id) M(id).fs->CutPower();
    for (uint64_t id = 1; id <= 3; ++id) M(id).fs->LoseUnsyncedData();
    report("CUT");
    _exit(0);  // the machines are off: no destructor, no further write
  }
};

[[maybe_unused]] const bool kPowerCutChildRegistered = [] {
  if (std::getenv("SHOAL_POWER_CUT_FD") == nullptr ||
      std::getenv("SHOAL_POWER_CUT_DIR") == nullptr ||
      std::getenv("SHOAL_POWER_CUT_SEED") == nullptr) {
    return false;
  }
  ::testing::RegisterTest("PowerCutChild", "Run", nullptr, nullptr, __FILE__, __LINE__,
                          []() -> ClusterTest* { return new PowerCutChild(); });
  return true;
}();

// Plays members 2 and 3 for a node that is member 1: grants its (pre-)votes and acknowledges
// its appends and heartbeats at once, and logs what member 1 sends, in one sequence with the
// test's own events.
class ScriptedPeers : public Transport {
 public:
  struct Event {
    bool sent = false;    // else a proposal's completion
    uint64_t number = 0;  // a sent message's commit index, or the completed proposal's index
    raftpb::MessageType type = raftpb::MSG_HUP;  // a sent message's
  };
  // The node, from its Start to its Stop.
  void SetHandler(MessageHandler* handler) override { node_.store(handler); }
  void Send(std::vector<raftpb::Message> messages) override {
    std::vector<raftpb::Message> replies;
    {
      absl::MutexLock lock(&mu_);
      for (const raftpb::Message& m : messages) {
        events_.push_back({true, m.commit(), m.type()});
        if (m.type() == raftpb::MSG_APP) last_append_[m.to()] = m.index();
        if (m.type() == raftpb::MSG_APP && m.entries_size() > 0) {
          uint64_t& sent = entry_sent_[m.to()];
          sent = std::max(sent, m.entries(m.entries_size() - 1).index());
        }
        if (muted_.count(m.to()) > 0) continue;
        raftpb::Message r;
        r.set_from(m.to());
        r.set_to(m.from());
        r.set_term(m.term());
        switch (m.type()) {
          case raftpb::MSG_PRE_VOTE:
            r.set_type(raftpb::MSG_PRE_VOTE_RESP);
            break;
          case raftpb::MSG_VOTE:
            r.set_type(raftpb::MSG_VOTE_RESP);
            break;
          case raftpb::MSG_APP:
            r.set_type(raftpb::MSG_APP_RESP);
            r.set_index(m.entries_size() > 0 ? m.entries(m.entries_size() - 1).index() : m.index());
            break;
          case raftpb::MSG_HEARTBEAT:
            r.set_type(raftpb::MSG_HEARTBEAT_RESP);
            r.set_context(m.context());
            break;
          default:
            continue;
        }
        replies.push_back(std::move(r));
      }
    }
    for (raftpb::Message& r : replies) {
      const uint64_t from = r.from();
      const bool ack = r.type() == raftpb::MSG_APP_RESP;
      const uint64_t index = r.index();
      if (MessageHandler* node = node_.load()) node->Receive(std::move(r));
      if (ack) {
        absl::MutexLock lock(&mu_);
        acked_[from] = std::max(acked_[from], index);
      }
    }
  }
  // The index of the last append sent to `id` (nullopt before the first), waiting until one
  // was sent; nullopt at the deadline.
  std::optional<uint64_t> WaitForAppendTo(uint64_t id, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto sent = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return last_append_.count(id) > 0; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&sent), deadline)) return std::nullopt;
    return last_append_[id];
  }
  // Waits until an append carrying entry `index` (or a later one) was sent to member `id`;
  // false at the deadline.
  bool WaitForEntrySent(uint64_t id, uint64_t index, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto sent = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return entry_sent_[id] >= index; };
    return mu_.AwaitWithDeadline(absl::Condition(&sent), deadline);
  }
  // Hands `m` to the node as if a peer had sent it.
  void DeliverMessageOf(raftpb::Message m) {
    if (MessageHandler* node = node_.load()) node->Receive(std::move(m));
  }
  // Member `id` answers nothing while muted.
  void Mute(uint64_t id, bool muted) {
    absl::MutexLock lock(&mu_);
    if (muted) {
      muted_.insert(id);
    } else {
      muted_.erase(id);
    }
  }
  // Waits until member `id`'s acknowledgement of `index` was handed to the node; false at the
  // deadline.
  bool WaitForAck(uint64_t id, uint64_t index, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto acked = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return acked_[id] >= index; };
    return mu_.AwaitWithDeadline(absl::Condition(&acked), deadline);
  }
  void AddPeer(uint64_t, const std::string&) override {}
  void RemovePeer(uint64_t) override {}

  void Completed(uint64_t index) {
    absl::MutexLock lock(&mu_);
    events_.push_back({false, index});
  }
  // Waits until `count` messages of `type` were sent; false at the deadline.
  bool WaitForSent(raftpb::MessageType type, absl::Time deadline, size_t count = 1) {
    absl::MutexLock lock(&mu_);
    auto sent = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return CountLocked(type) >= count; };
    return mu_.AwaitWithDeadline(absl::Condition(&sent), deadline);
  }
  size_t CountSent(raftpb::MessageType type) {
    absl::MutexLock lock(&mu_);
    return CountLocked(type);
  }
  std::vector<Event> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  std::atomic<MessageHandler*> node_{nullptr};
  absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  size_t CountLocked(raftpb::MessageType type) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::count_if(events_.begin(), events_.end(),
                         [&](const Event& e) { return e.sent && e.type == type; });
  }
  std::set<uint64_t> muted_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> acked_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> last_append_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> entry_sent_ ABSL_GUARDED_BY(mu_);
};

// Creates a node (member 1) of `options`, whose transport is ScriptedPeers playing members 2
// and 3, starts it and elects it; null (with a test failure) if that fails.
std::unique_ptr<Node> ElectScripted(const Node::Options& options) {
  auto node = Node::Create(options);
  EXPECT_TRUE(node.ok()) << node.status();
  if (!node.ok()) return nullptr;
  (*node)->Start();
  (*node)->Campaign();
  EXPECT_TRUE((*node)->WaitForLeader(absl::Now() + kWait));
  return std::move(*node);
}

// Latency: once an entry commits, its proposer is answered before anything that announces the
// commit leaves (a send to a peer costs far more than handing over a completion), and a lone
// completion is answered by the node thread itself rather than after a hand-off.
// A lone node `id` of voters 1..3 on an in-memory store, ticking every 10 ms.
struct LoneNode {
  LoneNode(uint64_t id, Transport* transport) {
    raftpb::ConfState cs;
    for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
    store.SetConfState(cs);
    options.raft.id = id;
    options.storage = &store;
    options.transport = transport;
    options.state_machine = &sm;
    options.tick_interval = absl::Milliseconds(10);
  }
  MemoryLogStore store;
  ListStateMachine sm;
  Node::Options options;
};

// Drops everything sent: a leader that swallows a follower's forwarded requests (it may, when
// over its limits or transferring leadership) with no leader change to fail them.
class BlackHole : public Transport {
 public:
  void SetHandler(MessageHandler*) override {}  // nothing ever comes back
  void Send(std::vector<raftpb::Message>) override {}
  void AddPeer(uint64_t, const std::string&) override {}
  void RemovePeer(uint64_t) override {}
};

// Sends nothing; records its handler.
class HandlerRecorder : public Transport {
 public:
  void SetHandler(MessageHandler* handler) override { handler_.store(handler); }
  void Send(std::vector<raftpb::Message>) override {}
  void AddPeer(uint64_t, const std::string&) override {}
  void RemovePeer(uint64_t) override {}
  MessageHandler* handler() const { return handler_.load(); }

 private:
  std::atomic<MessageHandler*> handler_{nullptr};
};

// The node is its transport's handler from Start to Stop: what arrives before it starts is not
// queued for it, and after Stop nothing calls it (it may be destroyed before its transport).
TEST(NodeTest, IsItsTransportsHandlerFromStartToStop) {
  HandlerRecorder transport;
  LoneNode lone(1, &transport);
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(transport.handler(), nullptr);
  (*node)->Start();
  EXPECT_EQ(transport.handler(), node->get());
  (*node)->Stop();
  EXPECT_EQ(transport.handler(), nullptr);
  (*node)->Stop();  // idempotent
  EXPECT_EQ(transport.handler(), nullptr);
}

// Options of member `id` that never campaigns on its own (an election timeout of 1,000 s).
Node::Options NeverCampaigning(uint64_t id, WritableLogStorage* store, Transport* transport,
                               StateMachine* sm) {
  Node::Options options;
  options.raft.id = id;
  options.raft.election_tick = 100000;
  options.storage = store;
  options.transport = transport;
  options.state_machine = sm;
  options.tick_interval = absl::Milliseconds(10);
  return options;
}

// Sends nothing; records the peers the node tells it about.
class PeerRecorder : public Transport {
 public:
  void SetHandler(MessageHandler*) override {}  // nothing ever comes back
  void Send(std::vector<raftpb::Message>) override {}
  void AddPeer(uint64_t id, const std::string& addr) override {
    absl::MutexLock lock(&mu_);
    peers_[id] = addr;
  }
  void RemovePeer(uint64_t id) override {
    absl::MutexLock lock(&mu_);
    peers_.erase(id);
  }
  // Waits until it knows `count` peers; returns them.
  std::map<uint64_t, std::string> WaitFor(size_t count, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return peers_.size() >= count; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), within);
    return peers_;
  }

 private:
  absl::Mutex mu_;
  std::map<uint64_t, std::string> peers_ ABSL_GUARDED_BY(mu_);
};

// A new cluster's members and their addresses are the head of its log: every member learns
// the others' addresses by applying it, on its first start and again on every restart.
TEST(NodeTest, ABootstrappedMemberLearnsItsPeersFromTheLog) {
  MemoryLogStore store;
  std::vector<raftpb::RaftMember> members(3);
  for (uint64_t i = 0; i < 3; ++i) {
    members[i].set_raft_id(i + 1);
    members[i].set_addr(absl::StrCat("10.0.0.", i + 1, ":4242"));
  }
  ASSERT_TRUE(Bootstrap(store, members).ok());
  const std::map<uint64_t, std::string> want = {{1, "10.0.0.1:4242"}, {3, "10.0.0.3:4242"}};
  for (int start = 0; start < 2; ++start) {
    PeerRecorder transport;
    ListStateMachine sm;
    auto node = Node::Create(NeverCampaigning(2, &store, &transport, &sm));
    ASSERT_TRUE(node.ok()) << node.status();
    (*node)->Start();
    EXPECT_EQ(transport.WaitFor(2, kWait), want) << "start " << start;
    const absl::Time deadline = absl::Now() + kWait;
    while ((*node)->GetStatus().applied < 3 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));  // polling a status, not synchronising data
    }
    EXPECT_EQ((*node)->GetStatus().applied, 3u);
    (*node)->Stop();
    EXPECT_TRUE(sm.values().empty());  // membership changes are not the application's
  }
}

// `swarmctl init`: a new single-member cluster's member campaigns as soon as it starts. Its
// membership is in its log, so a campaign handled before that log was applied was ignored
// (not a voter yet) and the member waited for its election timeout.
TEST(NodeTest, ANewClustersFirstMemberCampaignsAsSoonAsItStarts) {
  MemoryLogStore store;
  ASSERT_TRUE(Bootstrap(store, std::vector<uint64_t>{1}).ok());
  BlackHole nowhere;
  ListStateMachine sm;
  // Only the campaign can elect it in time.
  auto node = Node::Create(NeverCampaigning(1, &store, &nowhere, &sm));
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Campaign();
  (*node)->Start();
  EXPECT_TRUE((*node)->WaitForLeader(absl::Now() + kWait));
  EXPECT_TRUE((*node)->Propose("first").get().ok());
  (*node)->Stop();
}

TEST(NodeTest, RequestsTheLeaderNeverAnswersFailAfterTheRequestTimeout) {
  BlackHole transport;
  LoneNode lone(2, &transport);
  lone.options.raft.election_tick = 100000;  // never campaigns (and so never changes leader)
  lone.options.request_timeout = absl::Milliseconds(200);
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();
  raftpb::Message hb = MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1);
  (*node)->Receive(hb);
  ASSERT_TRUE((*node)->WaitForLeader(absl::Now() + kWait));
  auto proposal = (*node)->Propose("lost");
  auto read = (*node)->LinearizableRead();
  raftpb::ConfChange cc;
  cc.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
  cc.set_node_id(4);
  auto change = (*node)->ProposeConfChange(cc);
  ASSERT_EQ(proposal.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(read.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(change.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const absl::Status p = proposal.get().status();
  EXPECT_EQ(p.code(), absl::StatusCode::kDeadlineExceeded) << p;
  EXPECT_NE(p.message().find("proposal not completed within 200ms"), std::string::npos) << p;
  EXPECT_EQ(read.get().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(change.get().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*node)->GetStatus().leader, 1u);  // no leader change failed them
  (*node)->Stop();
}

// Blocks whoever calls Block() until the test releases it, and tells the test when that
// happened.
class Latch {
 public:
  void Block() {
    absl::MutexLock lock(&mu_);
    started_ = true;
    mu_.Await(absl::Condition(&released_));
  }
  bool WaitStarted(absl::Duration within) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&started_), within);
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

 private:
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

// A MemoryLogStore (final) whose SaveSnapshot a test may change.
class SnapshotHookStore : public testing::ForwardingStore {
 public:
  SnapshotHookStore() : ForwardingStore(&inner_) {}
  void SetConfState(const raftpb::ConfState& cs) { inner_.SetConfState(cs); }

 private:
  MemoryLogStore inner_;
};

// A store whose SaveSnapshot waits until the test releases it: a big snapshot's write.
class SlowSnapshotStore : public SnapshotHookStore {
 public:
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                std::string data) override {
    latch_.Block();
    return SnapshotHookStore::SaveSnapshot(i, cs, std::move(data));
  }
  bool WaitStarted(absl::Duration within) { return latch_.WaitStarted(within); }
  void Release() { latch_.Release(); }

 private:
  Latch latch_;
};

// A member `id` of voters 1..`voters`, on a SlowSnapshotStore, taking a snapshot every 5
// entries, sending through `transport` (and played against it, when it is ScriptedPeers);
// started.
struct SlowSnapshotMember {
  SlowSnapshotMember(uint64_t id, ScriptedPeers* peers) : SlowSnapshotMember(id, peers, 3) {}
  SlowSnapshotMember(uint64_t id, Transport* transport, uint64_t voters)
      : lone(id, transport) {
    raftpb::ConfState cs;
    for (uint64_t v = 1; v <= voters; ++v) cs.add_voters(v);
    slow.SetConfState(cs);
    lone.options.storage = &slow;
    lone.options.snapshot_interval = 5;
    lone.options.snapshot_keep_entries = 2;
    auto created = Node::Create(lone.options);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return;
    node = std::move(*created);
    node->Start();
  }
  ~SlowSnapshotMember() {
    slow.Release();  // before the node stops, whatever failed: its writer may be waiting
    if (node) node->Stop();
  }
  LoneNode lone;
  SlowSnapshotStore slow;
  std::unique_ptr<Node> node;
};

// Leader `m` commits 6 entries, which starts its snapshot (blocked), then 20 more, each of
// which must commit while the snapshot is still being written; then the write is released.
void CommitThroughASnapshotWrite(SlowSnapshotMember& m) {
  Node* node = m.node.get();
  ASSERT_TRUE(node->WaitForLeader(absl::Now() + kWait));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(node->Propose(absl::StrCat("a", i)).get().ok());
  ASSERT_TRUE(m.slow.WaitStarted(kWait)) << "no snapshot was taken";
  for (int i = 0; i < 20; ++i) {
    auto f = node->Propose(absl::StrCat("b", i));
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready)
        << "proposal " << i << " waited for the snapshot's write";
    ASSERT_TRUE(f.get().ok());
  }
  m.slow.Release();
  node->Stop();
  EXPECT_EQ(m.lone.sm.values().size(), 26u);
}

// A leader's snapshot is written off the node's thread: while it is being written the leader
// goes on committing (and heartbeating), instead of standing still for as long as the write
// takes (half a second for 64 MiB here; an election timeout for a few times that).
TEST(NodeTest, ALeaderGoesOnCommittingWhileItsSnapshotIsWritten) {
  ScriptedPeers peers;
  SlowSnapshotMember m(1, &peers);
  ASSERT_NE(m.node, nullptr);
  m.node->Campaign();
  ASSERT_NO_FATAL_FAILURE(CommitThroughASnapshotWrite(m));
  EXPECT_GE(m.slow.Snapshot()->metadata().index(), 5u);
}

// Follower 2 receives and applies entries 1..6 from leader 1 (term 1); its snapshot (every 5
// entries) has started and stays blocked until released.
void ReplicateUntilItSnapshots(SlowSnapshotMember& m) {
  raftpb::Message app = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  for (uint64_t i = 1; i <= 6; ++i) *app.add_entries() = EntryAt(1, i, absl::StrCat("v", i));
  app.set_commit(6);
  m.node->Receive(app);
  ASSERT_TRUE(m.slow.WaitStarted(kWait)) << "no snapshot was taken";
  ASSERT_TRUE(m.lone.sm.WaitFor(6, absl::Now() + kWait));
}

// Every member takes its snapshot at the same applied index. A follower used to write its own
// in place, answering nothing meanwhile: with every follower doing so, a snapshot write longer
// than an election timeout made the leader step down (check-quorum), at each snapshot. Now it
// goes on acknowledging entries and answering heartbeats while its snapshot is written.
TEST(NodeTest, AFollowerReplicatesWhileItsSnapshotIsWritten) {
  ScriptedPeers leader;
  SlowSnapshotMember m(2, &leader);
  ASSERT_NE(m.node, nullptr);
  Node* node = m.node.get();
  ASSERT_NO_FATAL_FAILURE(ReplicateUntilItSnapshots(m));
  EXPECT_EQ(leader.CountSent(raftpb::MSG_APP_RESP), 1u);

  raftpb::Message more = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  more.set_index(6);
  more.set_log_term(1);
  more.set_commit(7);
  *more.add_entries() = EntryAt(1, 7, "v7");
  node->Receive(more);
  raftpb::Message hb = MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1);
  hb.set_commit(7);
  node->Receive(hb);
  EXPECT_TRUE(leader.WaitForSent(raftpb::MSG_APP_RESP, absl::Now() + absl::Seconds(5), 2))
      << "nothing acknowledged while the snapshot was written";
  EXPECT_TRUE(leader.WaitForSent(raftpb::MSG_HEARTBEAT_RESP, absl::Now() + absl::Seconds(5)))
      << "no heartbeat answered while the snapshot was written";
  EXPECT_TRUE(m.lone.sm.WaitFor(7, absl::Now() + kWait));
  m.slow.Release();
  node->Stop();
  EXPECT_GE(m.slow.Snapshot()->metadata().index(), 5u);
}

// A follower that receives the leader's snapshot while it is still writing one of its own
// installs the leader's only after its own is written (the older would otherwise win), but it
// goes on answering meanwhile: its loop used to wait for that write, and a follower that
// answers no heartbeat for longer than an election timeout looks dead to its leader.
TEST(NodeTest, AFollowerAnswersWhileAReceivedSnapshotWaitsForItsOwn) {
  ScriptedPeers leader;
  SlowSnapshotMember m(2, &leader);
  ASSERT_NE(m.node, nullptr);
  Node* node = m.node.get();
  ASSERT_NO_FATAL_FAILURE(ReplicateUntilItSnapshots(m));

  raftpb::Message snap = MessageOf(raftpb::MSG_SNAP, 1, 2, 1);
  raftpb::Snapshot* s = snap.mutable_snapshot();
  s->mutable_metadata()->set_index(40);
  s->mutable_metadata()->set_term(1);
  for (uint64_t v = 1; v <= 3; ++v) s->mutable_metadata()->mutable_conf_state()->add_voters(v);
  std::vector<std::string> state;
  for (int i = 1; i <= 30; ++i) state.push_back(absl::StrCat("s", i));
  s->set_data(absl::StrJoin(state, "\n"));
  node->Receive(snap);
  // The first heartbeat's answer shows the snapshot was stepped (messages are taken in
  // order); the second comes once the snapshot's write is pending.
  raftpb::Message hb = MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1);
  node->Receive(hb);
  ASSERT_TRUE(leader.WaitForSent(raftpb::MSG_HEARTBEAT_RESP, absl::Now() + absl::Seconds(5)));
  node->Receive(hb);
  EXPECT_TRUE(leader.WaitForSent(raftpb::MSG_HEARTBEAT_RESP, absl::Now() + absl::Seconds(5), 2))
      << "no heartbeat answered while the received snapshot waited";
  EXPECT_EQ(m.lone.sm.values().size(), 6u) << "installed before this member's own was written";

  m.slow.Release();
  ASSERT_TRUE(m.lone.sm.WaitFor(30, absl::Now() + kWait)) << "the snapshot was never installed";
  EXPECT_EQ(m.lone.sm.values(), state);
  const absl::Time deadline = absl::Now() + kWait;
  while (node->GetStatus().applied < 40 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));  // polling a status, not synchronising data
  }
  EXPECT_EQ(node->GetStatus().applied, 40u);
  node->Stop();
  EXPECT_EQ(m.slow.Snapshot()->metadata().index(), 40u);
}

// The single manager of a small cluster (a common Swarm set-up) is its own quorum: its
// proposals used to wait behind its snapshot's write, every snapshot_interval entries.
TEST(NodeTest, ASingleMemberGoesOnCommittingWhileItsSnapshotIsWritten) {
  BlackHole nowhere;
  SlowSnapshotMember m(1, &nowhere, 1);
  ASSERT_NE(m.node, nullptr);
  ASSERT_NO_FATAL_FAILURE(CommitThroughASnapshotWrite(m));
}

// A single voter (id 1) on `store`, snapshotting every 5 entries and keeping 2, started and
// elected; null (with the failure recorded) if it could not be.
template <typename Store>
std::unique_ptr<Node> StartSnapshottingSoleVoter(Store& store, StateMachine* sm,
                                                 Transport* transport) {
  raftpb::ConfState cs;
  cs.add_voters(1);
  store.SetConfState(cs);
  Node::Options options;
  options.raft.id = 1;
  options.storage = &store;
  options.transport = transport;
  options.state_machine = sm;
  options.tick_interval = absl::Milliseconds(10);
  options.snapshot_interval = 5;
  options.snapshot_keep_entries = 2;
  auto node = Node::Create(options);
  EXPECT_TRUE(node.ok()) << node.status();
  if (!node.ok()) return nullptr;
  (*node)->Start();
  EXPECT_TRUE((*node)->WaitForLeader(absl::Now() + kWait));
  return std::move(*node);
}

// A store that refuses the first `refusals` snapshots it is asked to write, as
// RocksDbLogStore refuses a state over 2 GiB or a full disk refuses a write.
class RefusingSnapshotStore : public SnapshotHookStore {
 public:
  explicit RefusingSnapshotStore(int refusals) : refusals_(refusals) {}
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                std::string data) override {
    absl::MutexLock lock(&mu_);
    if (++attempts_ <= refusals_) {
      return absl::ResourceExhaustedError("this snapshot is too big to store");
    }
    return SnapshotHookStore::SaveSnapshot(i, cs, std::move(data));
  }
  bool WaitForAttempts(int n, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return attempts_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), within);
  }

 private:
  const int refusals_;
  absl::Mutex mu_;
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records the applied index at which each snapshot was taken (SnapshotLater runs on the node
// thread, so a proposal's round trip after it has seen every call before it).
class SnapshotIndexMachine : public ListStateMachine {
 public:
  void Apply(uint64_t index, absl::string_view data) override {
    applied_ = index;
    ListStateMachine::Apply(index, data);
  }
  std::function<std::string()> SnapshotLater() override {
    {
      absl::MutexLock lock(&mu_);
      taken_at_.push_back(applied_);
    }
    return ListStateMachine::SnapshotLater();
  }
  std::vector<uint64_t> taken_at() {
    absl::MutexLock lock(&mu_);
    return taken_at_;
  }

 private:
  uint64_t applied_ = 0;  // the node thread's
  absl::Mutex mu_;
  std::vector<uint64_t> taken_at_ ABSL_GUARDED_BY(mu_);
};

// A snapshot the store cannot write stops nothing: the member keeps its whole log, goes on
// committing, says why in its status, tries again after 2, then 4 intervals (a state too big
// for the store is not serialized whole every interval for nothing), and writes the next one
// it can. It stopped the manager with a CHECK, and a state too big for the store did the same
// after every restart.
TEST(NodeTest, ASnapshotTheStoreRefusesLeavesTheLogWholeAndTheMemberRunning) {
  BlackHole nowhere;
  RefusingSnapshotStore store(/*refusals=*/2);
  SnapshotIndexMachine sm;
  std::unique_ptr<Node> node = StartSnapshottingSoleVoter(store, &sm, &nowhere);
  ASSERT_NE(node, nullptr);
  int proposed = 0;
  uint64_t last = 0;
  auto propose_until = [&](uint64_t index) {
    while (last < index) {
      absl::StatusOr<uint64_t> r = node->Propose(absl::StrCat("v", proposed++)).get();
      ASSERT_TRUE(r.ok()) << r.status();
      last = *r;
    }
  };
  ASSERT_NO_FATAL_FAILURE(propose_until(6));
  ASSERT_TRUE(store.WaitForAttempts(1, kWait)) << "no snapshot was taken";
  const absl::Time deadline = absl::Now() + kWait;
  while (node->GetStatus().snapshot_failures == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));  // polling a status, not synchronising data
  }
  Node::Status status = node->GetStatus();
  EXPECT_EQ(status.snapshot_failures, 1u);
  EXPECT_THAT(status.last_snapshot_error, ::testing::HasSubstr("too big to store"));
  ASSERT_EQ(sm.taken_at().size(), 1u);
  const uint64_t first = sm.taken_at()[0];
  // Up to 9 entries after it (and one more round trip): not tried again yet, and the log,
  // which the node thread compacts behind written snapshots only, is whole.
  ASSERT_NO_FATAL_FAILURE(propose_until(first + 8));
  ASSERT_NO_FATAL_FAILURE(propose_until(last + 1));
  ASSERT_LT(last, first + 10);
  EXPECT_EQ(sm.taken_at().size(), 1u) << "tried again after one interval";
  EXPECT_EQ(store.FirstIndex(), 1u) << "the log was compacted behind a snapshot never written";
  // Then after 2 intervals (refused again), after 4 more (written).
  ASSERT_NO_FATAL_FAILURE(propose_until(first + 10 + 20 + 2));
  ASSERT_TRUE(store.WaitForAttempts(3, kWait)) << "no snapshot was tried again";
  node->Stop();
  const std::vector<uint64_t> taken = sm.taken_at();
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_GE(taken[1], first + 10);
  EXPECT_LT(taken[1], first + 15);
  EXPECT_GE(taken[2], taken[1] + 20);
  status = node->GetStatus();
  EXPECT_EQ(status.snapshot_failures, 2u);
  EXPECT_EQ(status.last_snapshot_error, "") << "the next snapshot was written";
  EXPECT_EQ(store.Snapshot()->metadata().index(), taken[2]);
  EXPECT_EQ(sm.values().size(), static_cast<size_t>(proposed));
}

// A state machine whose snapshots are serialized only when released, from the values as of
// the snapshot's index (the copy SnapshotLater takes).
class LatchedSnapshotMachine : public ListStateMachine {
 public:
  void Apply(uint64_t index, absl::string_view data) override {
    applied_ = index;  // the node thread's, like SnapshotLater
    ListStateMachine::Apply(index, data);
  }
  std::function<std::string()> SnapshotLater() override {
    std::vector<std::string> frozen = values();
    const uint64_t at = applied_;
    return [this, frozen, at] {
      latch.Block();
      std::string data = absl::StrJoin(frozen, "\n");
      absl::MutexLock lock(&mu_);
      serialized_.emplace_back(at, data);
      return data;
    };
  }
  // (last data index applied when taken, data) of each snapshot serialized.
  std::vector<std::pair<uint64_t, std::string>> serialized() {
    absl::MutexLock lock(&mu_);
    return serialized_;
  }
  Latch latch;

 private:
  uint64_t applied_ = 0;
  absl::Mutex mu_;
  std::vector<std::pair<uint64_t, std::string>> serialized_ ABSL_GUARDED_BY(mu_);
};

// A big state's serialization runs on the snapshot thread (StateMachine::SnapshotLater), not
// on the node's: a single manager goes on committing while it runs, and the snapshot holds the
// state as of its own index.
TEST(NodeTest, ASnapshotIsSerializedOffTheNodeThread) {
  BlackHole nowhere;
  MemoryLogStore store;
  LatchedSnapshotMachine sm;
  std::unique_ptr<Node> node = StartSnapshottingSoleVoter(store, &sm, &nowhere);
  ASSERT_NE(node, nullptr);
  std::vector<std::pair<uint64_t, std::string>> proposed;  // (index, value)
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<uint64_t> r = node->Propose(absl::StrCat("a", i)).get();
    ASSERT_TRUE(r.ok()) << r.status();
    proposed.emplace_back(*r, absl::StrCat("a", i));
  }
  ASSERT_TRUE(sm.latch.WaitStarted(kWait)) << "no snapshot was taken";
  for (int i = 0; i < 20; ++i) {
    auto f = node->Propose(absl::StrCat("b", i));
    ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready)
        << "proposal " << i << " waited for the snapshot's serialization";
    absl::StatusOr<uint64_t> r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
    proposed.emplace_back(*r, absl::StrCat("b", i));
  }
  EXPECT_EQ(store.Snapshot()->metadata().index(), 0u) << "written before it was serialized";
  sm.latch.Release();
  node->Stop();
  EXPECT_EQ(sm.values().size(), 26u);
  // Each snapshot holds the state as of its own index, not the state when it was serialized
  // (the first one after every "b" was applied).
  std::vector<std::pair<uint64_t, std::string>> serialized = sm.serialized();
  ASSERT_FALSE(serialized.empty());
  EXPECT_LT(serialized.front().first, proposed.back().first);
  for (const auto& [at, data] : serialized) {
    std::vector<std::string> want;
    for (const auto& [index, value] : proposed) {
      if (index <= at) want.push_back(value);
    }
    EXPECT_EQ(data, absl::StrJoin(want, "\n")) << "snapshot taken after index " << at;
  }
  EXPECT_GT(store.Snapshot()->metadata().index(), 0u);
}

TEST(NodeTest, AnswersTheProposerBeforeAnnouncingTheCommit) {
  ScriptedPeers peers;
  LoneNode lone(1, &peers);
  std::unique_ptr<Node> node = ElectScripted(lone.options);
  ASSERT_NE(node, nullptr);
  ASSERT_EQ(node->GetStatus().leader, 1u);
  const std::thread::id caller = std::this_thread::get_id();
  for (int i = 0; i < 20; ++i) {
    std::promise<std::thread::id> answered;
    node->Propose("v" + std::to_string(i), [&](absl::StatusOr<uint64_t> index) {
      EXPECT_TRUE(index.ok()) << index.status();
      peers.Completed(index.value_or(0));
      answered.set_value(std::this_thread::get_id());
    });
    EXPECT_NE(answered.get_future().get(), caller);
  }
  node->Stop();
  uint64_t announced = 0;  // the highest commit index sent so far
  int completions = 0;
  for (const ScriptedPeers::Event& e : peers.events()) {
    if (e.sent) {
      announced = std::max(announced, e.number);
    } else {
      ++completions;
      EXPECT_LT(announced, e.number)
          << "the commit of " << e.number << " was sent before its proposer was answered";
    }
  }
  EXPECT_EQ(completions, 20);
}

// A member elected while it holds entries it has not applied yet (committed by the old leader,
// which died before telling it so) must not be announced as leader until they are applied:
// leader-only work started earlier would act on a state without acknowledged writes (an
// orchestrator would create tasks that already exist).
TEST(NodeTest, ANewLeaderIsAnnouncedOnlyOnceItHasAppliedEveryEarlierWrite) {
  ScriptedPeers peers;
  LoneNode lone(2, &peers);
  LeadershipRecorder sm;
  lone.options.state_machine = &sm;
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();
  // Leader 1 of term 1 sends two entries without their commit, then falls silent.
  raftpb::Message app = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  *app.add_entries() = EntryAt(1, 1, "a");
  *app.add_entries() = EntryAt(1, 2, "b");
  (*node)->Receive(app);
  ASSERT_TRUE(peers.WaitForSent(raftpb::MSG_APP_RESP, absl::Now() + kWait));
  EXPECT_TRUE(sm.values().empty());
  (*node)->Campaign();
  ASSERT_TRUE(sm.WaitForChanges(1, absl::Now() + kWait)) << "never announced as leader";
  const LeadershipRecorder::Change won = sm.changes()[0];
  EXPECT_TRUE(won.leading);
  EXPECT_EQ(won.term, (*node)->GetStatus().term);
  EXPECT_GE(won.term, 2u);
  EXPECT_EQ(won.applied_values, 2u) << "announced before the old leader's writes were applied";

  // Its leader-only work proposes under that term.
  absl::StatusOr<uint64_t> fenced = [&] {
    std::promise<absl::StatusOr<uint64_t>> p;
    (*node)->ProposeAsLeader(won.term, "c", [&](absl::StatusOr<uint64_t> r) { p.set_value(r); });
    return p.get_future().get();
  }();
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(sm.values().back(), "c");
  std::promise<absl::Status> stale;
  (*node)->ProposeAsLeader(won.term - 1, "x",
                           [&](absl::StatusOr<uint64_t> r) { stale.set_value(r.status()); });
  const absl::Status s = stale.get_future().get();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(absl::StrCat("this member leads term ", won.term, " now")),
            std::string::npos)
      << s;

  // Stopping ends the leadership too: leader-only work must stop with the node.
  (*node)->Stop();
  const std::vector<LeadershipRecorder::Change> changes = sm.changes();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_FALSE(changes[1].leading);
  EXPECT_EQ(changes[1].term, won.term);
  EXPECT_EQ(sm.values(), (std::vector<std::string>{"a", "b", "c"}));
}

// A leader deposed by a newer term hears of it late: until then its leader-only work may go on
// proposing. Those proposals must not take effect. ProposeAsLeader refuses them once the node
// knows; a plain Propose would forward them to the new leader, which would commit them.
TEST(NodeTest, ADeposedLeaderRefusesFencedProposalsInsteadOfForwardingThem) {
  ScriptedPeers peers;
  LoneNode lone(1, &peers);
  LeadershipRecorder sm;
  lone.options.state_machine = &sm;
  lone.options.request_timeout = absl::ZeroDuration();
  std::unique_ptr<Node> node = ElectScripted(lone.options);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(sm.WaitForChanges(1, absl::Now() + kWait));
  const uint64_t term = sm.changes()[0].term;
  ASSERT_TRUE(sm.changes()[0].leading);

  // Member 3 leads a newer term.
  raftpb::Message hb = MessageOf(raftpb::MSG_HEARTBEAT, 3, 1, term + 5);
  node->Receive(hb);
  ASSERT_TRUE(sm.WaitForChanges(2, absl::Now() + kWait)) << "the lost leadership was not told";
  EXPECT_FALSE(sm.changes()[1].leading);
  EXPECT_EQ(sm.changes()[1].term, term);

  std::promise<absl::Status> refused;
  node->ProposeAsLeader(term, "late",
                        [&](absl::StatusOr<uint64_t> r) { refused.set_value(r.status()); });
  const absl::Status s = refused.get_future().get();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(
                absl::StrCat("this member is a follower at term ", term + 5, " (leader: 3)")),
            std::string::npos)
      << s;
  for (const ScriptedPeers::Event& e : peers.events()) {
    EXPECT_FALSE(e.sent && e.type == raftpb::MSG_PROP) << "a fenced proposal was forwarded";
  }
  // What a plain Propose does with the same write: forwards it to the new leader.
  auto forwarded = node->Propose("plain");
  EXPECT_TRUE(peers.WaitForSent(raftpb::MSG_PROP, absl::Now() + kWait));
  node->Stop();
  EXPECT_EQ(forwarded.get().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(sm.changes().size(), 2u);  // no second "lost" on stop
}

// The entries of each synced write, as the node hands them to its store.
class SaveLog : public testing::ForwardingStore {
 public:
  SaveLog() : ForwardingStore(&inner_) {}
  absl::Status Save(const raftpb::HardState* hs, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override {
    absl::Status s = ForwardingStore::Save(hs, entries, snapshot, sync);
    if (!entries.empty()) {
      std::vector<uint64_t> indexes;
      for (const raftpb::Entry& e : entries) indexes.push_back(e.index());
      absl::MutexLock lock(&mu_);
      writes_.push_back(std::move(indexes));
    }
    return s;
  }
  // Waits until entry `index` was written; false at the deadline.
  bool WaitForWritten(uint64_t index, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto written = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !writes_.empty() && writes_.back().back() >= index;
    };
    return mu_.AwaitWithDeadline(absl::Condition(&written), deadline);
  }
  std::vector<std::vector<uint64_t>> writes() {
    absl::MutexLock lock(&mu_);
    return writes_;
  }
  MemoryLogStore& inner() { return inner_; }

 private:
  MemoryLogStore inner_;
  absl::Mutex mu_;
  std::vector<std::vector<uint64_t>> writes_ ABSL_GUARDED_BY(mu_);
};

// A leader whose followers have not acknowledged its last write yet does not write what is
// proposed meanwhile (Core::LeaderWriteMayWait): its appends leave at once, and the entries
// are written together once a follower catches up. Without the rule each would be written as
// soon as the write before it was done.
TEST(NodeTest, ALeadersWritesWaitForAFollowerToCatchUp) {
  for (bool hold : {true, false}) {
    SCOPED_TRACE(hold ? "holding" : "not holding");
    ScriptedPeers peers;
    SaveLog store;
    LoneNode lone(1, &peers);
    raftpb::ConfState cs;
    for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
    store.inner().SetConfState(cs);
    lone.options.storage = &store;
    lone.options.raft.check_quorum = false;  // it leads on while its followers are silent
    lone.options.raft.hold_leader_writes = hold;
    std::unique_ptr<Node> node = ElectScripted(lone.options);
    ASSERT_NE(node, nullptr);
    absl::StatusOr<uint64_t> a = node->Propose("a").get();
    ASSERT_TRUE(a.ok()) << a.status();
    const uint64_t n = *a;

    // The followers fall silent. The next entry is written at once: they had acknowledged
    // everything the leader had written.
    peers.Mute(2, true);
    peers.Mute(3, true);
    auto b = node->Propose("b");
    ASSERT_TRUE(store.WaitForWritten(n + 1, absl::Now() + kWait));
    // Three more, each sent before the next is proposed.
    std::vector<std::future<absl::StatusOr<uint64_t>>> later;
    for (uint64_t i = 2; i <= 4; ++i) {
      later.push_back(node->Propose("v" + std::to_string(i)));
      ASSERT_TRUE(peers.WaitForEntrySent(2, n + i, absl::Now() + kWait)) << i;
    }
    if (hold) {
      // Not written: no follower holds n + 1 yet. (The last write may also hold n: the
      // followers can commit it before the leader's own write of it is done.)
      EXPECT_EQ(store.writes().back().back(), n + 1);
    } else {
      ASSERT_TRUE(store.WaitForWritten(n + 4, absl::Now() + kWait));
    }

    // A follower answers again (its next heartbeat's answer brings the appends it lacks, and
    // its acknowledgement): everything commits, the held entries in one write.
    peers.Mute(2, false);
    EXPECT_TRUE(b.get().ok());
    for (auto& f : later) EXPECT_TRUE(f.get().ok());
    if (hold) {
      const std::vector<uint64_t> together = {n + 2, n + 3, n + 4};
      EXPECT_EQ(store.writes().back(), together);
    }
    node->Stop();
  }
}

// A leader that removes itself leads on until the remaining voters say they know the commit
// index, and its status says so (the manager shows it). The scripted peers' answers carry no
// commit index, as voters that never heard it: it stays leaving.
TEST(NodeTest, ALeaderLeavingTheVotersSaysSoInItsStatus) {
  for (auto type :
       {raftpb::ConfChange::TYPE_REMOVE_NODE, raftpb::ConfChange::TYPE_ADD_LEARNER_NODE}) {
    const bool removed = type == raftpb::ConfChange::TYPE_REMOVE_NODE;
    SCOPED_TRACE(removed ? "removed" : "demoted");
    ScriptedPeers peers;
    LoneNode lone(1, &peers);
    std::unique_ptr<Node> node = ElectScripted(lone.options);
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->WaitForLeader(absl::Now() + kWait));
    EXPECT_FALSE(node->GetStatus().leaving);
    raftpb::ConfChange cc;
    cc.set_type(type);
    cc.set_node_id(1);
    const absl::Status proposed = node->ProposeConfChange(cc).get();
    ASSERT_TRUE(proposed.ok()) << proposed;
    const absl::Time deadline = absl::Now() + kWait;
    while (!node->GetStatus().leaving && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));  // polling a status, not synchronising data
    }
    const Node::Status status = node->GetStatus();
    EXPECT_TRUE(status.leaving);
    EXPECT_EQ(status.role, Role::kLeader);
    EXPECT_FALSE(status.removed);
    // Writes go to the next leader: a removed member takes none again, a demoted one none
    // while it hands over.
    const absl::Status refused = node->Propose("x").get().status();
    EXPECT_EQ(refused.code(),
              removed ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kUnavailable)
        << refused;
    EXPECT_THAT(std::string(refused.message()),
                ::testing::HasSubstr(removed ? "was removed" : "handing over"));
    node->Stop();
  }
}

// The join of a manager, as the control plane drives it through the node: a learner first, shown
// by Members() as it catches up, and a voter only once it has.
TEST(NodeTest, ALearnerIsPromotedThroughTheNodeOnceItHasCaughtUp) {
  ScriptedPeers peers;
  peers.Mute(4, true);  // down, or its disk still busy with the snapshot
  LoneNode lone(1, &peers);
  std::unique_ptr<Node> node = ElectScripted(lone.options);
  ASSERT_NE(node, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(node->Propose(absl::StrCat("v", i)).get().ok());
  raftpb::ConfChange add;
  add.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
  add.set_node_id(4);
  ASSERT_TRUE(node->ProposeConfChange(add).get().ok());

  auto progress_of = [&](uint64_t id) {
    absl::StatusOr<std::vector<Node::MemberProgress>> members = node->Members().get();
    EXPECT_TRUE(members.ok()) << members.status();
    Node::MemberProgress found;
    for (const Node::MemberProgress& m : members.value_or(std::vector<Node::MemberProgress>{})) {
      if (m.id == id) found = m;
    }
    return found;
  };
  const uint64_t last = progress_of(1).match;  // the leader's last index
  EXPECT_EQ(last, 7u);  // its empty entry, five values, the learner's addition
  EXPECT_EQ(progress_of(2).match, last);
  EXPECT_TRUE(progress_of(2).active);
  EXPECT_FALSE(progress_of(2).learner);
  EXPECT_TRUE(progress_of(4).learner);
  EXPECT_EQ(progress_of(4).match, 0u);

  raftpb::ConfChange promote;
  promote.set_type(raftpb::ConfChange::TYPE_ADD_NODE);
  promote.set_node_id(4);
  const absl::Status early = node->ProposeConfChange(promote).get();
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_NE(early.message().find("learner 4 has not caught up"), std::string::npos) << early;

  peers.Mute(4, false);
  ASSERT_TRUE(peers.WaitForAck(4, last, absl::Now() + kWait)) << "the learner never caught up";
  EXPECT_EQ(progress_of(4).match, last);
  const absl::Status promoted = node->ProposeConfChange(promote).get();
  ASSERT_TRUE(promoted.ok()) << promoted;
  EXPECT_FALSE(progress_of(4).learner);
  node->Stop();
  const absl::Status stopped = node->Members().get().status();
  EXPECT_EQ(stopped.code(), absl::StatusCode::kUnavailable) << stopped;
}

TEST(NodeTest, OnlyTheLeaderReportsTheMembersProgress) {
  BlackHole transport;
  LoneNode lone(2, &transport);
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();
  (*node)->Receive(MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1));
  ASSERT_TRUE((*node)->WaitForLeader(absl::Now() + kWait));
  const absl::Status s = (*node)->Members().get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("this member is a follower (leader: 1)"), std::string::npos) << s;
  (*node)->Stop();
}

raftpb::Entry ConfChangeAt(uint64_t term, uint64_t index, raftpb::ConfChange::Type type,
                           uint64_t id) {
  raftpb::ConfChange cc;
  cc.set_type(type);
  cc.set_node_id(id);
  raftpb::Entry e;
  e.set_term(term);
  e.set_index(index);
  e.set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  e.set_data(cc.SerializeAsString());
  return e;
}

// What `swarmctl init --force-new-cluster` does to a surviving manager's log: it restarts as
// the only voter, with every write it held, including those beyond its commit index, and
// without the members its log was adding.
TEST(NodeTest, AForcedNewClusterKeepsEveryWriteAndLeadsAlone) {
  MemoryLogStore store;
  raftpb::ConfState cs;
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  cs.add_learners(4);
  store.SetConfState(cs);
  std::vector<raftpb::Entry> log = {
      EntryAt(1, 1, "a"),
      EntryAt(1, 2, "b"),
      EntryAt(2, 3, "c"),
      EntryAt(2, 4, "d"),
      ConfChangeAt(2, 5, raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, 7),
      EntryAt(2, 6, "e")};
  raftpb::HardState hs;
  hs.set_term(2);
  hs.set_vote(3);
  hs.set_commit(3);  // 4, 5 and 6 may have been committed by the others; this member never knew
  ASSERT_TRUE(store.Save(&hs, log, nullptr, true).ok());

  const absl::Status stranger = ForceNewCluster(store, 9).status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kFailedPrecondition) << stranger;
  EXPECT_NE(stranger.message().find("members: 1, 2, 3, 4, 7"), std::string::npos) << stranger;
  EXPECT_EQ(store.LastIndex(), 6u);  // refused: nothing written

  absl::StatusOr<ForcedNewCluster> forced = ForceNewCluster(store, 2);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->removed, (std::vector<uint64_t>{1, 3, 4, 7}));
  {
    // A member its own log removes is refused, nothing written: it used to be rewritten, and
    // the node started on it came up removed (a removed id is never added again), leading
    // nothing.
    MemoryLogStore removed_store;
    removed_store.SetConfState(cs);
    std::vector<raftpb::Entry> removal = {
        EntryAt(1, 1, "a"), ConfChangeAt(1, 2, raftpb::ConfChange::TYPE_REMOVE_NODE, 3),
        EntryAt(1, 3, "b")};
    raftpb::HardState rhs;
    rhs.set_term(1);
    rhs.set_commit(1);
    ASSERT_TRUE(removed_store.Save(&rhs, removal, nullptr, true).ok());
    const absl::Status refused = ForceNewCluster(removed_store, 3).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_NE(refused.message().find("member 3 was removed from this store's cluster (by the "
                                     "membership change at index 2, which this member may not "
                                     "have seen committed)"),
              std::string::npos)
        << refused;
    EXPECT_EQ(removed_store.LastIndex(), 3u);
    // Its snapshot's membership records it.
    raftpb::ConfState gone = cs;
    gone.add_removed(5);
    MemoryLogStore snapshot_store;
    snapshot_store.SetConfState(gone);
    const absl::Status by_snapshot = ForceNewCluster(snapshot_store, 5).status();
    EXPECT_EQ(by_snapshot.code(), absl::StatusCode::kFailedPrecondition) << by_snapshot;
    EXPECT_NE(by_snapshot.message().find("its snapshot's membership records it"),
              std::string::npos)
        << by_snapshot;
  }
  EXPECT_EQ(forced->uncommitted_kept, 3u);
  EXPECT_EQ(forced->last_index, 11u);  // four removals and its own promotion

  BlackHole nowhere;  // no one else is left
  LoneNode lone(2, &nowhere);
  lone.options.storage = &store;
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();
  ASSERT_TRUE((*node)->WaitForLeader(absl::Now() + kWait));
  absl::StatusOr<uint64_t> after = (*node)->Propose("f").get();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, 13u);  // after its new term's empty entry
  EXPECT_EQ(lone.sm.values(), (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
  absl::StatusOr<std::vector<Node::MemberProgress>> members = (*node)->Members().get();
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->size(), 1u);
  EXPECT_EQ((*members)[0].id, 2u);
  EXPECT_FALSE((*members)[0].learner);
  (*node)->Stop();
}

// ---- Requests are always answered (found by a review of the node loop) ----

// Records what the node sends and lets the test answer as its peers.
class Switchboard : public Transport {
 public:
  void SetHandler(MessageHandler* handler) override { node_.store(handler); }
  void Send(std::vector<raftpb::Message> messages) override {
    absl::MutexLock lock(&mu_);
    for (raftpb::Message& m : messages) sent_.push_back(std::move(m));
  }
  void AddPeer(uint64_t, const std::string&) override {}
  void RemovePeer(uint64_t) override {}
  // Hands `m` to the node as if a peer had sent it.
  void Deliver(raftpb::Message m) {
    if (MessageHandler* node = node_.load()) node->Receive(std::move(m));
  }
  std::vector<raftpb::Message> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }
  // The first message of `type` sent (the `nth`, counting from 0); nullopt at the deadline.
  std::optional<raftpb::Message> WaitFor(raftpb::MessageType type, absl::Time deadline,
                                         size_t nth = 0) {
    absl::MutexLock lock(&mu_);
    const raftpb::Message* found = nullptr;
    auto sent = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      size_t seen = 0;
      for (const raftpb::Message& m : sent_) {
        if (m.type() == type && seen++ == nth) {
          found = &m;
          return true;
        }
      }
      return false;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&sent), deadline)) return std::nullopt;
    return *found;
  }

 private:
  std::atomic<MessageHandler*> node_{nullptr};
  absl::Mutex mu_;
  std::vector<raftpb::Message> sent_ ABSL_GUARDED_BY(mu_);
};

// Member 2, a follower of member 1 (term 1) that never campaigns, answering to `peers`.
struct Follower {
  explicit Follower(Switchboard* peers, absl::Duration request_timeout) {
    raftpb::ConfState cs;
    for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
    store.SetConfState(cs);
    Node::Options o = NeverCampaigning(2, &store, peers, &sm);
    o.request_timeout = request_timeout;
    auto created = Node::Create(o);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return;
    node = std::move(*created);
    node->Start();
    peers->Deliver(MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1));
    EXPECT_TRUE(node->WaitForLeader(absl::Now() + kWait));
  }
  MemoryLogStore store;
  ListStateMachine sm;
  std::unique_ptr<Node> node;
};

// Member 2 of voters 1..3 on `store`, started and following member 1 (term 1) through `peers`;
// null (with a test failure) if that fails.
template <typename Store>
std::unique_ptr<Node> StartFollowingOne(Store& store, Switchboard* peers, StateMachine* sm) {
  raftpb::ConfState cs;
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  store.SetConfState(cs);
  auto created = Node::Create(NeverCampaigning(2, &store, peers, sm));
  EXPECT_TRUE(created.ok()) << created.status();
  if (!created.ok()) return nullptr;
  std::unique_ptr<Node> node = std::move(*created);
  node->Start();
  peers->Deliver(MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1));
  EXPECT_TRUE(node->WaitForLeader(absl::Now() + kWait));
  return node;
}

// A read whose index the leader gave is waiting for this member to apply up to it. A member
// that cannot catch up (a snapshot it cannot get, appends refused) kept it waiting until Stop:
// the request timeout covered only reads whose index was not known yet.
TEST(NodeTest, AReadWaitingForThisMemberToCatchUpTimesOut) {
  Switchboard peers;
  Follower f(&peers, absl::Milliseconds(300));
  ASSERT_NE(f.node, nullptr);
  std::future<absl::Status> read = f.node->LinearizableRead();
  std::optional<raftpb::Message> asked = peers.WaitFor(raftpb::MSG_READ_INDEX, absl::Now() + kWait);
  ASSERT_TRUE(asked.has_value());
  raftpb::Message answer = MessageOf(raftpb::MSG_READ_INDEX_RESP, 1, 2, 1);
  answer.set_index(50);  // far beyond anything member 2 has
  *answer.mutable_entries() = asked->entries();
  peers.Deliver(std::move(answer));
  ASSERT_EQ(read.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the read was never answered";
  absl::Status st = read.get();
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("must wait for 50"));
  f.node->Stop();
}

// A write this follower passed on to the leader may be inside a snapshot the leader sends
// next; it is then applied without passing through this member's log. Without a request
// timeout its caller waited for ever.
TEST(NodeTest, WritesPassedOnAreSettledWhenASnapshotReplacesTheLog) {
  Switchboard peers;
  Follower f(&peers, absl::ZeroDuration());  // no request timeout
  ASSERT_NE(f.node, nullptr);
  std::future<absl::StatusOr<uint64_t>> write = f.node->Propose("x");
  ASSERT_TRUE(peers.WaitFor(raftpb::MSG_PROP, absl::Now() + kWait).has_value());
  raftpb::Message snap = MessageOf(raftpb::MSG_SNAP, 1, 2, 1);
  auto* meta = snap.mutable_snapshot()->mutable_metadata();
  meta->set_index(10);
  meta->set_term(1);
  for (uint64_t v = 1; v <= 3; ++v) meta->mutable_conf_state()->add_voters(v);
  snap.mutable_snapshot()->set_data("a\nx");
  peers.Deliver(std::move(snap));
  ASSERT_EQ(write.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the write was never settled";
  absl::StatusOr<uint64_t> result = write.get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              ::testing::HasSubstr("installed the leader's snapshot at index 10"));
  EXPECT_EQ(f.sm.values(), (std::vector<std::string>{"a", "x"}));
  f.node->Stop();
}

// A state machine that cannot read snapshots of a newer format ("v2:" first), as an older
// manager cannot read a newer one's during a rolling upgrade.
class OldVersionMachine : public LeadershipRecorder {
 public:
  absl::Status Restore(absl::string_view data) override {
    if (absl::StartsWith(data, "v2:")) {
      return absl::InvalidArgumentError("snapshot format v2 is newer than this version (v1)");
    }
    return LeadershipRecorder::Restore(data);
  }
};

// A snapshot from the leader that the state machine cannot restore stopped the process with
// a failed CHECK (and again at every restart). Now the member keeps the snapshot (it told the
// leader it has it), stops taking part saying why, and a restart is refused with the reason
// until a version that can restore it runs.
TEST(NodeTest, ASnapshotTheStateMachineCannotRestoreStopsTheMemberNotTheProcess) {
  Switchboard peers;
  MemoryLogStore store;
  raftpb::ConfState cs;  // what StartFollowingOne gives the store, and the snapshot records
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  {
    OldVersionMachine sm;
    std::unique_ptr<Node> node = StartFollowingOne(store, &peers, &sm);
    ASSERT_NE(node, nullptr);
    std::future<absl::StatusOr<uint64_t>> pending = node->Propose("pending");
    ASSERT_TRUE(peers.WaitFor(raftpb::MSG_PROP, absl::Now() + kWait).has_value());

    raftpb::Message snap = MessageOf(raftpb::MSG_SNAP, 1, 2, 1);
    auto* meta = snap.mutable_snapshot()->mutable_metadata();
    meta->set_index(10);
    meta->set_term(1);
    *meta->mutable_conf_state() = cs;
    snap.mutable_snapshot()->set_data("v2:a\nb");
    peers.Deliver(std::move(snap));
    std::vector<absl::Status> failed = sm.WaitForRestoreFailure(absl::Now() + kWait);
    ASSERT_EQ(failed.size(), 1u) << "the member did not stop on a snapshot it cannot restore";
    EXPECT_EQ(failed[0].code(), absl::StatusCode::kUnavailable) << failed[0];
    EXPECT_THAT(std::string(failed[0].message()),
                ::testing::HasSubstr("could not restore the snapshot at index 10"));
    EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("format v2 is newer"));
    EXPECT_TRUE(sm.storage_failures().empty());
    const Node::Status st = node->GetStatus();
    EXPECT_THAT(st.restore_error, ::testing::HasSubstr("snapshot at index 10"));
    EXPECT_THAT(st.restore_error, ::testing::HasSubstr("format v2 is newer"));
    EXPECT_TRUE(st.storage_error.empty()) << st.storage_error;
    EXPECT_EQ(st.leader, 0u);
    // The leader was told the snapshot is on this member's disk: it is (see the restart).
    bool acknowledged = false;
    for (const raftpb::Message& m : peers.sent()) {
      acknowledged = acknowledged || (m.type() == raftpb::MSG_APP_RESP && !m.reject() &&
                                      m.index() == 10);
    }
    EXPECT_TRUE(acknowledged);
    ASSERT_EQ(pending.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    absl::StatusOr<uint64_t> p = pending.get();
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable) << p.status();
    EXPECT_THAT(std::string(p.status().message()),
                ::testing::HasSubstr("could not restore the snapshot at index 10"));
    absl::StatusOr<uint64_t> later = node->Propose("later").get();
    EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable) << later.status();
    EXPECT_THAT(std::string(later.status().message()), ::testing::HasSubstr("format v2"));
    EXPECT_EQ(node->LinearizableRead().get().code(), absl::StatusCode::kUnavailable);
    // Nothing after the snapshot is applied without it.
    raftpb::Message next = MessageOf(raftpb::MSG_APP, 1, 2, 1);
    next.set_index(10);
    next.set_log_term(1);
    next.set_commit(11);
    *next.add_entries() = EntryAt(1, 11, "c");
    peers.Deliver(std::move(next));
    node->Stop();
    EXPECT_TRUE(sm.values().empty());
    EXPECT_EQ(sm.WaitForRestoreFailure(absl::Now()).size(), 1u) << "told more than once";
  }
  {
    // A restart of the same version is refused with the reason, before anything runs.
    OldVersionMachine sm;
    auto again = Node::Create(NeverCampaigning(2, &store, &peers, &sm));
    ASSERT_FALSE(again.ok());
    EXPECT_THAT(std::string(again.status().message()),
                ::testing::HasSubstr("restoring the state machine from the snapshot at 10"));
    EXPECT_THAT(std::string(again.status().message()), ::testing::HasSubstr("format v2"));
  }
  // A version that can read it starts from the stored snapshot.
  class NewVersionMachine : public ListStateMachine {
   public:
    absl::Status Restore(absl::string_view data) override {
      absl::ConsumePrefix(&data, "v2:");
      return ListStateMachine::Restore(data);
    }
  } upgraded;
  auto upgraded_node = Node::Create(NeverCampaigning(2, &store, &peers, &upgraded));
  ASSERT_TRUE(upgraded_node.ok()) << upgraded_node.status();
  EXPECT_EQ(upgraded.values(), (std::vector<std::string>{"a", "b"}));
}

// A MemoryLogStore whose writes of the log, or reads of it, fail once the test says so (a full
// disk; a disk returning EIO, an entry found corrupt after the store was opened).
class FailingStore : public SnapshotHookStore {
 public:
  absl::Status Save(const raftpb::HardState* hs, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override {
    if (absl::Status e = error(writes_); !e.ok()) return e;
    return SnapshotHookStore::Save(hs, entries, snapshot, sync);
  }
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override {
    if (absl::Status e = error(reads_); !e.ok()) return e;
    return SnapshotHookStore::Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<uint64_t> Term(uint64_t i) override {
    // A real store keeps the last entry's term and the snapshot's in memory.
    if (absl::Status e = error(reads_); !e.ok() && i >= FirstIndex() && i != LastIndex()) return e;
    return SnapshotHookStore::Term(i);
  }
  void FailWrites(absl::Status e) { Set(writes_, std::move(e)); }
  void FailReads(absl::Status e) { Set(reads_, std::move(e)); }

 private:
  absl::Status error(const absl::Status& which) {
    absl::MutexLock lock(&mu_);
    return which;
  }
  void Set(absl::Status& which, absl::Status e) {
    absl::MutexLock lock(&mu_);
    which = std::move(e);
  }
  absl::Mutex mu_;
  absl::Status writes_ ABSL_GUARDED_BY(mu_);
  absl::Status reads_ ABSL_GUARDED_BY(mu_);
};

// A follower whose write fails sends nothing that write owed (its acknowledgement promises the
// entries are on its disk) and stops taking part, saying why, instead of aborting the process;
// its requests, pending and new, fail with the reason.
TEST(NodeTest, AFollowerWhoseWriteFailsSendsNothingItOwedAndStops) {
  Switchboard peers;
  FailingStore store;
  LeadershipRecorder sm;
  std::unique_ptr<Node> node = StartFollowingOne(store, &peers, &sm);
  ASSERT_NE(node, nullptr);
  raftpb::Message first = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  *first.add_entries() = EntryAt(1, 1, "a");
  peers.Deliver(std::move(first));
  std::optional<raftpb::Message> ack = peers.WaitFor(raftpb::MSG_APP_RESP, absl::Now() + kWait);
  ASSERT_TRUE(ack.has_value());
  ASSERT_EQ(ack->index(), 1u);
  // A write passed on to the leader, pending when the disk fails.
  std::future<absl::StatusOr<uint64_t>> pending = node->Propose("pending");
  ASSERT_TRUE(peers.WaitFor(raftpb::MSG_PROP, absl::Now() + kWait).has_value());

  store.FailWrites(absl::InternalError("IO error: No space left on device: 000012.log"));
  raftpb::Message second = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  second.set_index(1);
  second.set_log_term(1);
  second.set_commit(1);
  *second.add_entries() = EntryAt(1, 2, "b");
  peers.Deliver(std::move(second));
  std::vector<absl::Status> failed = sm.WaitForStorageFailure(absl::Now() + kWait);
  ASSERT_EQ(failed.size(), 1u) << "the member did not stop when its write failed";
  EXPECT_THAT(std::string(failed[0].message()),
              ::testing::HasSubstr("No space left on device: 000012.log"));
  for (const raftpb::Message& m : peers.sent()) {
    EXPECT_FALSE(m.type() == raftpb::MSG_APP_RESP && !m.reject() && m.index() >= 2)
        << "acknowledged entry " << m.index() << ", which its failed write did not keep";
  }
  const Node::Status st = node->GetStatus();
  EXPECT_THAT(st.storage_error, ::testing::HasSubstr("No space left on device"));
  EXPECT_EQ(st.leader, 0u);
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  absl::StatusOr<uint64_t> p = pending.get();
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable) << p.status();
  EXPECT_THAT(std::string(p.status().message()), ::testing::HasSubstr("storage failed a write"));
  absl::StatusOr<uint64_t> later = node->Propose("later").get();
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable) << later.status();
  EXPECT_THAT(std::string(later.status().message()),
              ::testing::HasSubstr("No space left on device"));
  EXPECT_EQ(node->LinearizableRead().get().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<std::vector<Node::MemberProgress>> members = node->Members().get();
  EXPECT_EQ(members.status().code(), absl::StatusCode::kUnavailable) << members.status();
  EXPECT_THAT(std::string(members.status().message()),
              ::testing::HasSubstr("No space left on device"));
  // What the failed write carried committed stays applied: "a" was committed with it.
  EXPECT_EQ(sm.values(), (std::vector<std::string>{"a"}));
  node->Stop();
}

// A follower whose storage fails the read of committed entries it must apply stopped the
// process (a failed CHECK in the core). Now it stops taking part, saying why, and applies
// nothing it could not read.
TEST(NodeTest, AFollowerWhoseReadFailsStopsTheMemberNotTheProcess) {
  Switchboard peers;
  FailingStore store;
  LeadershipRecorder sm;
  std::unique_ptr<Node> node = StartFollowingOne(store, &peers, &sm);
  ASSERT_NE(node, nullptr);
  raftpb::Message app = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  for (uint64_t i = 1; i <= 3; ++i) *app.add_entries() = EntryAt(1, i, absl::StrCat("v", i));
  peers.Deliver(std::move(app));
  std::optional<raftpb::Message> ack = peers.WaitFor(raftpb::MSG_APP_RESP, absl::Now() + kWait);
  ASSERT_TRUE(ack.has_value());
  ASSERT_EQ(ack->index(), 3u);

  store.FailReads(absl::InternalError("IO error: Input/output error: 000009.sst"));
  raftpb::Message commit = MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1);
  commit.set_commit(3);
  peers.Deliver(std::move(commit));
  std::vector<absl::Status> failed = sm.WaitForStorageFailure(absl::Now() + kWait);
  ASSERT_EQ(failed.size(), 1u) << "the member did not stop when its read failed";
  EXPECT_EQ(failed[0].code(), absl::StatusCode::kUnavailable) << failed[0];
  EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("storage failed a read"));
  EXPECT_THAT(std::string(failed[0].message()),
              ::testing::HasSubstr("Input/output error: 000009.sst"));
  EXPECT_THAT(node->GetStatus().storage_error, ::testing::HasSubstr("reading entries [1,4)"));
  absl::StatusOr<uint64_t> later = node->Propose("later").get();
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable) << later.status();
  node->Stop();
  EXPECT_TRUE(sm.values().empty()) << "applied entries it could not read";
}

// A leader tells a follower at most the commit index the follower acknowledged holding; told
// more, this member's store lost entries it acknowledged (restored from an older copy, say).
// The heartbeat's commit failed a CHECK and aborted the process, at every restart. Now the
// member stops and says its log lacks what it promised, and what to do.
TEST(NodeTest, AFollowerWhoseLogLacksWhatItAcknowledgedStopsTheMemberNotTheProcess) {
  Switchboard peers;
  FailingStore store;
  LeadershipRecorder sm;
  std::unique_ptr<Node> node = StartFollowingOne(store, &peers, &sm);
  ASSERT_NE(node, nullptr);
  raftpb::Message commit = MessageOf(raftpb::MSG_HEARTBEAT, 1, 2, 1);
  commit.set_commit(40);  // it holds nothing
  peers.Deliver(std::move(commit));
  std::vector<absl::Status> failed = sm.WaitForStorageFailure(absl::Now() + kWait);
  ASSERT_EQ(failed.size(), 1u) << "the member did not stop";
  EXPECT_EQ(failed[0].code(), absl::StatusCode::kUnavailable) << failed[0];
  EXPECT_THAT(std::string(failed[0].message()),
              ::testing::HasSubstr("its log lacks entries it acknowledged or committed"));
  EXPECT_THAT(std::string(failed[0].message()),
              ::testing::HasSubstr("add it back with an empty store"));
  EXPECT_THAT(node->GetStatus().storage_error,
              ::testing::HasSubstr("counts on this member holding entries up to 40"));
  absl::StatusOr<uint64_t> later = node->Propose("later").get();
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable) << later.status();
  node->Stop();
}

// A leader that cannot read the entries a lagging member needs stopped the process (a failed
// CHECK). Now it stops leading, says why, and does not take the failed read for a compacted
// log: it sends that member nothing (neither entries nor a snapshot).
TEST(NodeTest, ALeaderWhoseReadFailsStopsLeadingAndSendsNothingMadeOfIt) {
  Switchboard peers;
  FailingStore store;
  LeadershipRecorder sm;
  std::unique_ptr<Node> node;
  {
    raftpb::ConfState cs;
    cs.add_voters(1);
    store.SetConfState(cs);
    Node::Options options;
    options.raft.id = 1;
    options.storage = &store;
    options.transport = &peers;
    options.state_machine = &sm;
    options.tick_interval = absl::Milliseconds(10);
    auto created = Node::Create(options);
    ASSERT_TRUE(created.ok()) << created.status();
    node = std::move(*created);
  }
  node->Start();
  ASSERT_TRUE(node->WaitForLeader(absl::Now() + kWait));
  ASSERT_TRUE(node->Propose("a").get().ok());
  ASSERT_TRUE(node->Propose("b").get().ok());
  raftpb::ConfChange add;
  add.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
  add.set_node_id(2);
  ASSERT_TRUE(node->ProposeConfChange(add).get().ok());
  // The member answers a heartbeat; the leader probes it at its last entry; it has nothing.
  std::optional<raftpb::Message> beat = peers.WaitFor(raftpb::MSG_HEARTBEAT, absl::Now() + kWait);
  ASSERT_TRUE(beat.has_value());
  peers.Deliver(MessageOf(raftpb::MSG_HEARTBEAT_RESP, 2, 1, beat->term()));
  std::optional<raftpb::Message> probe = peers.WaitFor(raftpb::MSG_APP, absl::Now() + kWait);
  ASSERT_TRUE(probe.has_value());
  store.FailReads(absl::DataLossError("Corruption: block checksum mismatch in 000011.sst"));
  raftpb::Message reject = MessageOf(raftpb::MSG_APP_RESP, 2, 1, probe->term());
  reject.set_index(probe->index());
  reject.set_reject(true);
  reject.set_reject_hint(0);
  peers.Deliver(std::move(reject));

  std::vector<absl::Status> failed = sm.WaitForStorageFailure(absl::Now() + kWait);
  ASSERT_EQ(failed.size(), 1u) << "the leader did not stop when its read failed";
  EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("storage failed a read"));
  EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("checksum mismatch"));
  EXPECT_EQ(node->GetStatus().leader, 0u);
  const std::vector<LeadershipRecorder::Change> changes = sm.changes();
  ASSERT_FALSE(changes.empty());
  EXPECT_FALSE(changes.back().leading) << "the lost leadership was not announced";
  node->Stop();
  int appends_after_probe = 0;
  for (const raftpb::Message& m : peers.sent()) {
    EXPECT_NE(m.type(), raftpb::MSG_SNAP) << "took a failed read for a compacted log";
    if (m.type() == raftpb::MSG_APP && m.to() == 2 && m.index() < probe->index()) {
      ++appends_after_probe;
    }
  }
  EXPECT_EQ(appends_after_probe, 0) << "sent entries it could not read";
}

// A FailingStore whose next synced write of entries, once gated, waits for write_latch;
// WaitSaved tells when that write has returned.
class GatedWriteStore : public FailingStore {
 public:
  absl::Status Save(const raftpb::HardState* hs, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override {
    const bool gate = sync && !entries.empty() && gated_.exchange(false);
    if (gate) write_latch.Block();
    absl::Status s = FailingStore::Save(hs, entries, snapshot, sync);
    if (gate) saved_.Notify();
    absl::MutexLock lock(&written_mu_);
    written_ = LastIndex();
    return s;
  }
  // Waits until the entries up to `index` were written; false at the deadline.
  bool WaitWritten(uint64_t index, absl::Time deadline) {
    absl::MutexLock lock(&written_mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return written_ >= index; };
    return written_mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  }
  void Gate() { gated_ = true; }
  bool WaitSaved(absl::Time deadline) { return saved_.WaitForNotificationWithDeadline(deadline); }
  Latch write_latch;

 private:
  std::atomic<bool> gated_{false};
  absl::Notification saved_;
  absl::Mutex written_mu_;
  uint64_t written_ ABSL_GUARDED_BY(written_mu_) = 0;
};

// Applying "hold" waits for apply_latch (the node thread is held there).
class HoldingMachine : public LeadershipRecorder {
 public:
  void Apply(uint64_t index, absl::string_view data) override {
    if (data == "hold") apply_latch.Block();
    LeadershipRecorder::Apply(index, data);
  }
  Latch apply_latch;
};

// A leader's read failed in the loop's pass that also took its own write's completion: the loop
// ended with that write still marked in flight and waited for a completion that had already
// been taken, for ever (Stop and the destructor hung; nobody was answered or told). Found by a
// review. The leader is held applying an entry its followers committed while its own write of
// that entry is under way; meanwhile the write completes and a lagging learner's rejection
// arrives, whose answer needs entries the disk can no longer read. (On the old code the hang
// needs the write's completion to be flagged before the loop resumes, which the test makes
// all but certain but cannot force: it never fails on the fixed code.)
// One attempt; false when the scenario did not come about (the leader answered the rejection
// without reading the store; should no longer happen, see WaitWritten below).
bool ReadFailingAsTheLeadersWriteCompletes() {
  // On the heap, and left behind if the node hangs, so that the other tests still run.
  struct Fixture {
    ScriptedPeers peers;
    GatedWriteStore store;
    HoldingMachine sm;
    std::unique_ptr<Node> node;
  };
  auto* f = new Fixture;
  {
    raftpb::ConfState cs;
    for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
    f->store.SetConfState(cs);
  }
  Node::Options options;
  options.raft.id = 1;
  options.storage = &f->store;
  options.transport = &f->peers;
  options.state_machine = &f->sm;
  options.tick_interval = absl::Milliseconds(10);
  f->node = ElectScripted(options);
  EXPECT_NE(f->node, nullptr);
  if (f->node == nullptr) return true;
  EXPECT_TRUE(f->node->Propose("a").get().ok());
  f->peers.Mute(4, true);
  raftpb::ConfChange add;
  add.set_type(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE);
  add.set_node_id(4);
  EXPECT_TRUE(f->node->ProposeConfChange(add).get().ok());
  f->peers.DeliverMessageOf(MessageOf(raftpb::MSG_HEARTBEAT_RESP, 4, 1, f->node->GetStatus().term));
  std::optional<uint64_t> probe = f->peers.WaitForAppendTo(4, absl::Now() + kWait);
  EXPECT_TRUE(probe.has_value()) << "the leader never probed the learner";
  if (!probe.has_value()) return true;

  // The leader applies what its followers committed before its own write of it completes: the
  // gate must hold the write of "hold" alone, not one still carrying the entries before it
  // (they would then be served from memory, and nothing read: 1 run in 40 under load).
  EXPECT_TRUE(f->store.WaitWritten(*probe, absl::Now() + kWait));
  f->store.Gate();
  std::future<absl::StatusOr<uint64_t>> held = f->node->Propose("hold");
  if (!f->store.write_latch.WaitStarted(kWait) || !f->sm.apply_latch.WaitStarted(kWait)) {
    // The write of "hold" never started or was never applied early (on a starved machine the
    // leader can lose its lease first): try again.
    f->store.write_latch.Release();
    f->sm.apply_latch.Release();
    f->node->Stop();
    delete f;
    return false;
  }
  f->store.FailReads(absl::DataLossError("Corruption: block checksum mismatch in 000011.sst"));
  // The learner's latest probe (the node thread is held in the apply, so no newer one can
  // leave): a rejection of an earlier one is stale and ignored, and nothing would be read (on
  // a loaded machine the leader had probed again, 1 run in 30).
  probe = f->peers.WaitForAppendTo(4, absl::Now() + kWait);
  raftpb::Message reject = MessageOf(raftpb::MSG_APP_RESP, 4, 1, f->node->GetStatus().term);
  reject.set_index(*probe);
  reject.set_reject(true);
  reject.set_reject_hint(0);
  f->peers.DeliverMessageOf(std::move(reject));
  f->store.write_latch.Release();
  EXPECT_TRUE(f->store.WaitSaved(absl::Now() + kWait));
  f->sm.apply_latch.Release();

  std::vector<absl::Status> failed = f->sm.WaitForStorageFailure(absl::Now() + kWait);
  if (failed.size() != 1) {
    const Node::Status st = f->node->GetStatus();
    std::future<absl::StatusOr<uint64_t>> alive = f->node->Propose("alive?");
    const bool loop_alive = alive.wait_for(std::chrono::seconds(2)) == std::future_status::ready;
    if (loop_alive && st.storage_error.empty() && st.role == Role::kLeader) {
      f->node->Stop();  // nothing was read: the scenario did not come about
      delete f;
      return false;
    }
    ADD_FAILURE() << "the leader never finished stopping after its read failed (left running; "
                  << "role " << RoleName(st.role) << ", storage error '" << st.storage_error
                  << "', loop " << (loop_alive ? "alive" : "stuck") << ")";
    return true;  // `f` is left behind: its node's thread may never end
  }
  EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("storage failed a read"));
  EXPECT_THAT(std::string(failed[0].message()), ::testing::HasSubstr("checksum mismatch"));
  EXPECT_EQ(held.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  if (held.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    EXPECT_TRUE(held.get().ok()) << "the held write was committed and applied";
  }
  f->node->Stop();
  delete f;
  return true;
}

TEST(NodeTest, AReadFailingAsTheLeadersWriteCompletesStopsTheMemberWithoutHanging) {
  int attempts = 0;
  while (!ReadFailingAsTheLeadersWriteCompletes() && ++attempts < 5) {
  }
  EXPECT_LT(attempts, 5) << "the scenario never came about";
}

// Records LeadershipChanged and StorageFailed in one sequence.
class FailureOrderRecorder : public ListStateMachine {
 public:
  void LeadershipChanged(bool leading, uint64_t term) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(absl::StrCat(leading ? "lead " : "lost ", term));
  }
  void StorageFailed(const absl::Status& error) override {
    absl::MutexLock lock(&mu_);
    events_.push_back("storage failed: " + error.ToString());
    ++failures_;
  }
  bool WaitForFailure(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto called = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return failures_ > 0; };
    return mu_.AwaitWithDeadline(absl::Condition(&called), deadline);
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  int failures() {
    absl::MutexLock lock(&mu_);
    return failures_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
};

// A store whose synced writes of the log, once armed, wait until released and then fail; its
// snapshot writes wait too once their latch is armed (SlowSnapshotStore).
class FailingWriteStore : public SlowSnapshotStore {
 public:
  absl::Status Save(const raftpb::HardState* hs, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override {
    bool armed;
    {
      absl::MutexLock lock(&mu_);
      armed = armed_;
    }
    if (armed && sync) {
      write_latch_.Block();
      return absl::InternalError("IO error: No space left on device");
    }
    return SlowSnapshotStore::Save(hs, entries, snapshot, sync);
  }
  void Arm() {
    absl::MutexLock lock(&mu_);
    armed_ = true;
  }
  Latch write_latch_;

 private:
  absl::Mutex mu_;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
};

// A leader's write fails on the writer thread: its lost leadership is announced first, then the
// failure, once; its pending requests fail with the reason.
// A sole voter that committed one write, whose next synced write waits for its store's
// write_latch_ and fails; its snapshots are not held up.
struct FailingSoleLeader {
  FailingSoleLeader() {
    store.Release();
    node = StartSnapshottingSoleVoter(store, &sm, &nowhere);
    if (node != nullptr) first_committed = node->Propose("a").get().ok();
    store.Arm();
  }
  FailingWriteStore store;
  FailureOrderRecorder sm;
  BlackHole nowhere;
  std::unique_ptr<Node> node;  // last: stopped before the rest goes
  bool first_committed = false;
};

TEST(NodeTest, ALeadersFailedWriteAnnouncesTheLostLeadershipThenTheFailureOnce) {
  FailingSoleLeader f;
  ASSERT_TRUE(f.first_committed);
  FailureOrderRecorder& sm = f.sm;
  Node* node = f.node.get();
  f.store.write_latch_.Release();
  std::future<absl::StatusOr<uint64_t>> pending = node->Propose("b");
  std::future<absl::Status> read = node->LinearizableRead();
  ASSERT_TRUE(sm.WaitForFailure(absl::Now() + kWait));
  absl::StatusOr<uint64_t> p = pending.get();
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable) << p.status();
  EXPECT_THAT(std::string(p.status().message()),
              ::testing::HasSubstr("may or may not have been applied"));
  EXPECT_EQ(read.get().code(), absl::StatusCode::kUnavailable);
  node->Stop();
  node->Stop();
  EXPECT_EQ(sm.failures(), 1);
  const std::vector<std::string> ev = sm.events();
  ASSERT_GE(ev.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(ev[ev.size() - 2], "lost ")) << ev[ev.size() - 2];
  EXPECT_TRUE(absl::StartsWith(ev.back(), "storage failed: ")) << ev.back();
}

// Proposes until the member's own snapshot is being written (held by `store`), then makes the
// next log write fail: `pending` is that write's proposal.
void FailAWriteDuringASnapshotsWrite(FailingWriteStore& store, Node& node,
                                     std::future<absl::StatusOr<uint64_t>>* pending) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(node.Propose("x").get().ok());
  ASSERT_TRUE(store.WaitStarted(kWait)) << "no snapshot was taken";
  store.Arm();
  store.write_latch_.Release();
  *pending = node.Propose("y");
}

// The member's own snapshot is being written (long: a big state, a disk that hangs) when the
// log's write fails: the lost leadership and the failed requests do not wait for it.
TEST(NodeTest, AFailedWriteIsAnsweredWithoutWaitingForASnapshotBeingWritten) {
  FailingWriteStore store;
  FailureOrderRecorder sm;
  BlackHole nowhere;
  std::unique_ptr<Node> node = StartSnapshottingSoleVoter(store, &sm, &nowhere);
  ASSERT_NE(node, nullptr);
  std::future<absl::StatusOr<uint64_t>> pending;
  ASSERT_NO_FATAL_FAILURE(FailAWriteDuringASnapshotsWrite(store, *node, &pending));
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the failed write's caller waited for the snapshot's write";
  EXPECT_EQ(pending.get().status().code(), absl::StatusCode::kUnavailable);
  // Announced (StorageFailed may follow at once: it does not wait for the snapshot either).
  const std::vector<std::string> ev = sm.events();
  EXPECT_TRUE(std::any_of(ev.begin(), ev.end(),
                          [](const std::string& e) { return absl::StartsWith(e, "lost "); }))
      << absl::StrJoin(ev, "; ");
  store.Release();
  ASSERT_TRUE(sm.WaitForFailure(absl::Now() + kWait));
  node->Stop();
  EXPECT_EQ(sm.failures(), 1);
}

// The owner is told at once too. StorageFailed used to come only once the member's own
// snapshot was written (as long as a hanging disk hangs): a manager showed nothing meanwhile,
// and one that began stopping or destroying the node in that time was called back all the
// same, and stopped it again alongside its own Stop.
TEST(NodeTest, AFailedWriteIsAnnouncedToTheOwnerWithoutWaitingForASnapshotBeingWritten) {
  FailingWriteStore store;
  FailureOrderRecorder sm;
  BlackHole nowhere;
  std::unique_ptr<Node> node = StartSnapshottingSoleVoter(store, &sm, &nowhere);
  ASSERT_NE(node, nullptr);
  std::future<absl::StatusOr<uint64_t>> pending;
  ASSERT_NO_FATAL_FAILURE(FailAWriteDuringASnapshotsWrite(store, *node, &pending));
  const bool told = sm.WaitForFailure(absl::Now() + kWait);
  store.Release();
  EXPECT_TRUE(told) << "StorageFailed waited for the snapshot's write";
  EXPECT_EQ(pending.get().status().code(), absl::StatusCode::kUnavailable);
  node->Stop();
  EXPECT_EQ(sm.failures(), 1);
  const std::vector<std::string> ev = sm.events();
  ASSERT_GE(ev.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(ev[ev.size() - 2], "lost ")) << ev[ev.size() - 2];
  EXPECT_TRUE(absl::StartsWith(ev.back(), "storage failed: ")) << ev.back();
}

// A store whose compaction reports corruption, as RocksDbLogStore reports a RocksDB Corruption
// status (DATA_LOSS) from a disk gone bad.
class CorruptCompactionStore : public SnapshotHookStore {
 public:
  absl::Status CompactTo(uint64_t) override {
    return absl::DataLossError("compacting the raft log: Corruption: block checksum mismatch");
  }
};

// A sole voter snapshotting every 5 entries on `store` (whose writes report corruption) stops
// once one fails, saying why, and refuses requests after.
template <typename Store>
void StopsOnACorruptDisk(const std::string& why) {
  Store store;
  FailureOrderRecorder sm;
  BlackHole nowhere;
  std::unique_ptr<Node> node = StartSnapshottingSoleVoter(store, &sm, &nowhere);
  ASSERT_NE(node, nullptr);
  for (int i = 0; i < 12 && sm.failures() == 0; ++i) (void)node->Propose("x").get();
  ASSERT_TRUE(sm.WaitForFailure(absl::Now() + kWait));
  EXPECT_THAT(node->GetStatus().storage_error, ::testing::HasSubstr(why));
  EXPECT_EQ(node->Propose("y").get().status().code(), absl::StatusCode::kUnavailable);
  node->Stop();
}

// A compaction the disk fails stops the member like a failed write of the log; it aborted the
// process (DATA_LOSS was taken for a sequencing error).
TEST(NodeTest, ACompactionOnACorruptDiskStopsTheMember) {
  StopsOnACorruptDisk<CorruptCompactionStore>("block checksum mismatch");
}

// A store whose snapshot writes report corruption (DATA_LOSS, RocksDB's Corruption status).
class CorruptSnapshotStore : public SnapshotHookStore {
 public:
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t, const raftpb::ConfState&,
                                                std::string) override {
    return absl::DataLossError("writing a raft snapshot: Corruption: bad block contents");
  }
};

// A snapshot's write the disk fails with corruption stops the member (from the snapshotter's
// thread, through the loop); it aborted the process.
TEST(NodeTest, ASnapshotOnACorruptDiskStopsTheMember) {
  StopsOnACorruptDisk<CorruptSnapshotStore>("bad block contents");
}

// A write failing while the owner is already stopping the node: the requests hear why and the
// status says it, but StorageFailed is not called (the owner would react by stopping the node
// again, alongside its own Stop, or while destroying it).
// After Stop, a node that led said it still led (GetStatus) and WaitForLeader answered true
// at once: a manager asking a stopped member whom to send writes to was told "itself".
TEST(NodeTest, AStoppedLeaderNoLongerSaysItLeads) {
  ScriptedPeers peers;
  MemoryLogStore store;
  raftpb::ConfState cs;
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  store.SetConfState(cs);
  ListStateMachine sm;
  Node::Options options;
  options.raft.id = 1;
  options.storage = &store;
  options.transport = &peers;
  options.state_machine = &sm;
  options.tick_interval = absl::Milliseconds(10);
  options.transfer_leadership_on_stop = false;
  std::unique_ptr<Node> node = ElectScripted(options);
  ASSERT_NE(node, nullptr);
  ASSERT_EQ(node->GetStatus().role, Role::kLeader);
  node->Stop();
  EXPECT_EQ(node->GetStatus().role, Role::kFollower);
  EXPECT_EQ(node->GetStatus().leader, 0u);
  EXPECT_FALSE(node->WaitForLeader(absl::Now()));
}

// WaitForLeader answers false once the node is stopped, and a wait under way when it stops
// ends then: both used to wait out their deadline (for ever with an infinite one).
TEST(NodeTest, WaitingForALeaderEndsWhenTheNodeStops) {
  HandlerRecorder silent;  // member 1 of three voters hears from no one: never a leader
  LoneNode lone(1, &silent);
  auto created = Node::Create(lone.options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Node> node = std::move(*created);
  node->Start();
  const absl::Duration long_wait = absl::Seconds(60);
  std::future<bool> waiting = std::async(std::launch::async, [&node, long_wait] {
    return node->WaitForLeader(absl::Now() + long_wait);
  });
  node->Stop();
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "a wait under way went on after Stop";
  EXPECT_FALSE(waiting.get());
  const absl::Time before = absl::Now();
  EXPECT_FALSE(node->WaitForLeader(before + long_wait));
  EXPECT_LT(absl::Now() - before, absl::Seconds(20)) << "WaitForLeader after Stop waited";
}

TEST(NodeTest, AWriteFailingWhileTheNodeStopsIsNotAnnouncedToTheOwner) {
  FailingSoleLeader f;
  ASSERT_TRUE(f.first_committed);
  FailingWriteStore& store = f.store;
  FailureOrderRecorder& sm = f.sm;
  Node* node = f.node.get();
  std::future<absl::StatusOr<uint64_t>> pending = node->Propose("b");
  ASSERT_TRUE(store.write_latch_.WaitStarted(kWait));
  std::thread stopper([&] { node->Stop(); });
  // Stop is under way once the node refuses new requests at once as stopped. A probe taken
  // just before that waits in the queue until the write ends: kept, not waited for.
  const absl::Time deadline = absl::Now() + kWait;
  bool stopping = false;
  std::vector<std::future<absl::StatusOr<std::vector<Node::MemberProgress>>>> probes;
  while (!stopping && absl::Now() < deadline) {
    probes.push_back(node->Members());
    if (probes.back().wait_for(std::chrono::milliseconds(1)) == std::future_status::ready) {
      absl::StatusOr<std::vector<Node::MemberProgress>> m = probes.back().get();
      probes.pop_back();
      stopping = !m.ok() && m.status().code() == absl::StatusCode::kUnavailable;
    }
  }
  ASSERT_TRUE(stopping);
  store.write_latch_.Release();
  stopper.join();
  absl::StatusOr<uint64_t> p = pending.get();
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable) << p.status();
  EXPECT_THAT(std::string(p.status().message()), ::testing::HasSubstr("storage failed a write"));
  EXPECT_FALSE(node->GetStatus().storage_error.empty());
  EXPECT_EQ(sm.failures(), 0);
  EXPECT_EQ(node->Propose("c").get().status().code(), absl::StatusCode::kUnavailable);
}

// A write whose entry arrives, committed, from a new leader is reported applied: the node used
// to fail every request in flight on the leader change before applying what the same batch
// committed, so the caller heard "may or may not have been applied" of a write it could have
// been told succeeded.
TEST(NodeTest, AWriteCommittedByTheNextLeaderIsReportedApplied) {
  Switchboard peers;
  Follower f(&peers, absl::Seconds(30));
  ASSERT_NE(f.node, nullptr);
  std::future<absl::StatusOr<uint64_t>> write = f.node->Propose("x");
  std::optional<raftpb::Message> passed = peers.WaitFor(raftpb::MSG_PROP, absl::Now() + kWait);
  ASSERT_TRUE(passed.has_value());
  ASSERT_EQ(passed->entries_size(), 1);
  // Member 3 won term 2 and appends the write, committed, in one message.
  raftpb::Message app = MessageOf(raftpb::MSG_APP, 3, 2, 2);
  raftpb::Entry* e = app.add_entries();
  *e = passed->entries(0);
  e->set_index(1);
  e->set_term(2);
  app.set_commit(1);
  peers.Deliver(std::move(app));
  ASSERT_EQ(write.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  absl::StatusOr<uint64_t> result = write.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 1u);
  EXPECT_EQ(f.sm.values(), (std::vector<std::string>{"x"}));
  f.node->Stop();
}

// The leader changed and changed back, 1 -> 3 -> 1, all while this follower was writing: the
// node saw member 1 lead before the write and after it, and took nothing to have changed. But
// member 3 had replaced the write member 1 appended with its own entry; the caller heard only
// at its request timeout (never without one), where a leader change answers at once that the
// write may or may not have been applied. A write the same batch commits is still reported
// applied.
TEST(NodeTest, AWriteReplacedWhileTheLeaderChangedAndChangedBackFailsAtOnce) {
  Switchboard peers;
  GatedWriteStore store;
  ListStateMachine sm;
  std::unique_ptr<Node> node = StartFollowingOne(store, &peers, &sm);
  ASSERT_NE(node, nullptr);
  std::future<absl::StatusOr<uint64_t>> kept = node->Propose("y");
  std::optional<raftpb::Message> passed_y = peers.WaitFor(raftpb::MSG_PROP, absl::Now() + kWait);
  ASSERT_TRUE(passed_y.has_value());
  std::future<absl::StatusOr<uint64_t>> replaced = node->Propose("x");
  std::optional<raftpb::Message> passed_x = peers.WaitFor(raftpb::MSG_PROP, absl::Now() + kWait, 1);
  ASSERT_TRUE(passed_x.has_value());
  ASSERT_EQ(passed_y->entries_size(), 1);
  ASSERT_EQ(passed_x->entries_size(), 1);

  // Member 1 appends both in term 1; this member's write of them is held.
  store.Gate();
  raftpb::Message app = MessageOf(raftpb::MSG_APP, 1, 2, 1);
  for (const raftpb::Message* passed : {&*passed_y, &*passed_x}) {
    raftpb::Entry* e = app.add_entries();
    *e = passed->entries(0);
    e->set_index(app.entries_size());
    e->set_term(1);
  }
  peers.Deliver(std::move(app));
  ASSERT_TRUE(store.write_latch.WaitStarted(kWait));
  // Meanwhile member 3 wins term 2 and puts its own entry z in x's place; member 1 wins term 3
  // (holding z) and commits its first entry of the term, and y and z with it.
  raftpb::Message replace = MessageOf(raftpb::MSG_APP, 3, 2, 2);
  replace.set_index(1);
  replace.set_log_term(1);
  *replace.add_entries() = EntryAt(2, 2, "z");
  peers.Deliver(std::move(replace));
  raftpb::Message back = MessageOf(raftpb::MSG_APP, 1, 2, 3);
  back.set_index(2);
  back.set_log_term(2);
  raftpb::Entry* empty = back.add_entries();
  empty->set_term(3);
  empty->set_index(3);
  back.set_commit(3);
  peers.Deliver(std::move(back));
  store.write_latch.Release();

  ASSERT_EQ(replaced.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the replaced write was never answered";
  const absl::Status lost = replaced.get().status();
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost;
  EXPECT_THAT(std::string(lost.message()),
              ::testing::HasSubstr("may or may not have been applied"));
  absl::StatusOr<uint64_t> applied = kept.get();
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(*applied, 1u);
  EXPECT_EQ(sm.values(), (std::vector<std::string>{"y", "z"}));
  node->Stop();
  EXPECT_EQ(node->GetStatus().term, 3u);
}

// A peer's malformed message is refused, counted and logged; the leader goes on leading (an
// empty proposal from a peer used to fail a CHECK and abort the process).
TEST(NodeTest, ALeaderSurvivesAPeersMalformedMessage) {
  ScriptedPeers peers;
  LoneNode lone(1, &peers);
  std::unique_ptr<Node> node = ElectScripted(lone.options);
  ASSERT_NE(node, nullptr);
  const uint64_t term = node->GetStatus().term;
  peers.DeliverMessageOf(MessageOf(raftpb::MSG_PROP, 2, 1, 0));  // no entries
  peers.DeliverMessageOf(MessageOf(raftpb::MSG_CHECK_QUORUM, 3, 1, term));
  peers.DeliverMessageOf(MessageOf(raftpb::MSG_CHECK_QUORUM, 3, 1, term));
  // A well-formed proposal the leader refuses (over its entry limit: members' limits may
  // differ during a rolling upgrade) is not a malformed message.
  raftpb::Message big = MessageOf(raftpb::MSG_PROP, 2, 1, 0);
  big.add_entries()->set_data(std::string(2 << 20, 'x'));
  peers.DeliverMessageOf(std::move(big));
  absl::StatusOr<uint64_t> after = node->Propose("after").get();
  ASSERT_TRUE(after.ok()) << after.status();
  Node::Status st = node->GetStatus();
  EXPECT_EQ(st.leader, 1u);
  EXPECT_EQ(st.term, term);
  EXPECT_EQ(st.messages_refused, 3u);
  node->Stop();
}

// Requests made before Start are answered when a node that never started is stopped: the
// callbacks were never called and the futures broke.
TEST(NodeTest, RequestsToANodeThatNeverStartedFailWhenItStops) {
  BlackHole nowhere;
  LoneNode lone(1, &nowhere);
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  std::promise<absl::Status> proposed;
  (*node)->Propose("x", [&](absl::StatusOr<uint64_t> r) { proposed.set_value(r.status()); });
  std::future<absl::Status> read = (*node)->LinearizableRead();
  node->reset();  // stops it
  std::future<absl::Status> p = proposed.get_future();
  ASSERT_EQ(p.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(p.get().code(), absl::StatusCode::kUnavailable);
  ASSERT_EQ(read.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(read.get().code(), absl::StatusCode::kUnavailable);
}

// Stop from one of the node's own threads would wait for itself (or join itself and
// terminate the process with no word of why): it fails a CHECK that says what to do.
class StoppingStateMachine : public ListStateMachine {
 public:
  void Apply(uint64_t index, absl::string_view data) override {
    ListStateMachine::Apply(index, data);
    if (node != nullptr) node->Stop();
  }
  Node* node = nullptr;
};

void StopFromApply() {
  BlackHole nowhere;
  StoppingStateMachine sm;
  raftpb::ConfState cs;
  cs.add_voters(1);
  MemoryLogStore store;
  store.SetConfState(cs);
  Node::Options o = NeverCampaigning(1, &store, &nowhere, &sm);
  auto node = Node::Create(o);
  if (!node.ok()) {
    std::fprintf(stderr, "create: %s\n", node.status().ToString().c_str());
    std::exit(3);
  }
  sm.node = node->get();
  (*node)->Start();
  (*node)->Campaign();
  if (!(*node)->WaitForLeader(absl::Now() + absl::Seconds(20))) std::exit(5);
  (void)(*node)->Propose("x").wait_for(std::chrono::seconds(20));
  std::fprintf(stderr, "no check fired\n");
  std::exit(4);  // not reached: the CHECK fires on the node's thread
}

TEST(NodeTest, StopFromTheNodesOwnThreadFailsACheckSayingWhy) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(StopFromApply(), "Node::Stop called on one of the node's own threads");
}

// A thread made after the node's threads ended may be given one of their ids (the C library
// reuses a joined thread's stack): Stop from it is not Stop from the node's own thread.
TEST(NodeTest, StopFromAThreadMadeAfterTheNodesThreadsEndedIsFine) {
  BlackHole nowhere;
  LoneNode lone(1, &nowhere);
  auto node = Node::Create(lone.options);
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();
  (*node)->Stop();
  for (int i = 0; i < 20; ++i) std::thread([&] { (*node)->Stop(); }).join();
  std::thread([&] { node->reset(); }).join();
}

// A deposed leader applies the new leader's committed entries at once while its own write is
// under way; when that write completes, the snapshot interval is reached at an index whose
// committed entry is not written yet, and the store still holds the old leader's entry there.
// The store takes a snapshot's term from the entry it holds: the snapshot said the stale term,
// and the store then refused to open ("entry contradicts the snapshot's term"). Wraps a store:
// Gate() holds the next synced write of entries (`latch`); HoldWritesOfTerm(t) holds writes of
// entries of term t or later until a snapshot was written (at most 1 s: a correct node takes
// none before them, and its test then waits that long).
class StaleTermStore : public testing::ForwardingStore {
 public:
  explicit StaleTermStore(WritableLogStorage* inner) : ForwardingStore(inner) {}
  absl::Status Save(const raftpb::HardState* hs, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override {
    if (!entries.empty() && sync && gated_.exchange(false)) latch.Block();
    if (!entries.empty() && hold_term_ > 0 && entries.front().term() >= hold_term_.load()) {
      (void)snapshotted_.WaitForNotificationWithTimeout(absl::Seconds(1));
    }
    return ForwardingStore::Save(hs, entries, snapshot, sync);
  }
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                std::string data) override {
    auto r = ForwardingStore::SaveSnapshot(i, cs, std::move(data));
    if (!snapshotted_.HasBeenNotified()) snapshotted_.Notify();
    return r;
  }
  void Gate() { gated_ = true; }
  void HoldWritesOfTerm(uint64_t t) { hold_term_ = t; }
  bool WaitSnapshotted(absl::Duration d) { return snapshotted_.WaitForNotificationWithTimeout(d); }
  Latch latch;

 private:
  std::atomic<bool> gated_{false};
  std::atomic<uint64_t> hold_term_{0};
  absl::Notification snapshotted_;
};

// Leader 1 (of voters 1..3, on `store`, first entry of its term at `first`) commits "a"; its
// next entry "x" is written but never committed; its write of "y" is under way when member 2,
// leader of the next term, commits its own entry "z" in x's place. Sets the old term.
void DeposeDuringWrite(StaleTermStore& store, ListStateMachine& sm, uint64_t first,
                       uint64_t* term_out) {
  ScriptedPeers peers;
  Node::Options options;
  options.raft.id = 1;
  options.raft.election_tick = 1000;  // muted followers must not depose it by check-quorum
  // y's write must be under way while the followers are muted (with the rule, a leader whose
  // followers have not acknowledged x would not start it: Core::LeaderWriteMayWait).
  options.raft.hold_leader_writes = false;
  options.storage = &store;
  options.transport = &peers;
  options.state_machine = &sm;
  options.tick_interval = absl::Milliseconds(10);
  options.snapshot_interval = first + 2;  // reached when z is applied
  std::unique_ptr<Node> node = ElectScripted(options);
  ASSERT_NE(node, nullptr);
  absl::StatusOr<uint64_t> a = node->Propose("a").get();
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(*a, first + 1);
  const uint64_t term = node->GetStatus().term;
  *term_out = term;
  peers.Mute(2, true);
  peers.Mute(3, true);
  auto x = node->Propose("x");  // written, never committed
  const absl::Time deadline = absl::Now() + kWait;
  while (store.LastIndex() < first + 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(store.LastIndex(), first + 2);
  store.Gate();
  auto y = node->Propose("y");  // its write waits
  ASSERT_TRUE(store.latch.WaitStarted(kWait));
  store.HoldWritesOfTerm(term + 1);
  raftpb::Message app = MessageOf(raftpb::MSG_APP, 2, 1, term + 1);
  app.set_index(first + 1);
  app.set_log_term(term);
  *app.add_entries() = EntryAt(term + 1, first + 2, "z");
  app.set_commit(first + 2);
  peers.DeliverMessageOf(std::move(app));
  ASSERT_TRUE(sm.WaitFor(2, absl::Now() + kWait));  // "a", "z": applied during the write
  store.latch.Release();
  ASSERT_TRUE(store.WaitSnapshotted(kWait));
  while (store.Term(first + 2).value_or(0) != term + 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  node->Stop();
}

TEST(NodeTest, ASnapshotAfterADeposedLeadersWriteHasTheCommittedEntrysTerm) {
  MemoryLogStore mem;
  raftpb::ConfState cs;
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  mem.SetConfState(cs);
  StaleTermStore store(&mem);
  ListStateMachine sm;
  uint64_t term = 0;
  ASSERT_NO_FATAL_FAILURE(DeposeDuringWrite(store, sm, 1, &term));
  absl::StatusOr<raftpb::Snapshot> snap = store.Snapshot();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(sm.values(), (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(snap->metadata().index(), 3u);
  EXPECT_EQ(snap->data(), "a\nz");
  EXPECT_EQ(store.Term(3).value_or(0), term + 1) << "the committed entry 3";
  EXPECT_EQ(snap->metadata().term(), term + 1)
      << "the snapshot holds entry 3 of term " << term + 1 << " but says term "
      << snap->metadata().term() << " (a stale, uncommitted entry's)";
}

TEST(NodeTest, AMemberDeposedDuringItsWriteCanReopenItsStore) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/review-stale-term";
  std::filesystem::remove_all(dir);
  {
    auto rocks = RocksDbLogStore::Open(RocksDbLogStore::Options{dir});
    ASSERT_TRUE(rocks.ok()) << rocks.status();
    ASSERT_TRUE(Bootstrap(**rocks, std::vector<uint64_t>{1, 2, 3}).ok());  // entries 1..3
    StaleTermStore store(rocks->get());
    ListStateMachine sm;
    uint64_t term = 0;
    ASSERT_NO_FATAL_FAILURE(DeposeDuringWrite(store, sm, 4, &term));
  }
  auto reopened = RocksDbLogStore::Open(RocksDbLogStore::Options{dir});
  EXPECT_TRUE(reopened.ok()) << "the member cannot restart: " << reopened.status();
}

// Stop hands the leadership over first, and for up to an election timeout the node was not
// yet marked as stopping: a write failing then made the node call StorageFailed on an owner
// already inside Stop, which the owner answers by stopping the node (from ~Node: a Stop
// alongside the destructor).
TEST(NodeTest, AWriteFailingWhileStopHandsOverIsNotAnnouncedToTheOwner) {
  FailingWriteStore store;
  store.Release();
  raftpb::ConfState cs;
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  store.SetConfState(cs);
  FailureOrderRecorder sm;
  ScriptedPeers peers;
  Node::Options options;
  options.raft.id = 1;
  options.raft.election_tick = 100;  // hand-over waits up to 1 s
  options.storage = &store;
  options.transport = &peers;
  options.state_machine = &sm;
  options.tick_interval = absl::Milliseconds(10);
  std::unique_ptr<Node> node = ElectScripted(options);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Propose("a").get().ok());
  store.Arm();
  auto pending = node->Propose("b");
  ASSERT_TRUE(store.write_latch_.WaitStarted(kWait));
  std::thread stopper([&] { node->Stop(); });
  bool handing_over = false;
  const absl::Time deadline = absl::Now() + kWait;
  while (!handing_over && absl::Now() < deadline) {
    absl::StatusOr<uint64_t> r = node->Propose("probe").get();
    handing_over = !r.ok() && absl::StrContains(r.status().message(), "transfer in progress");
  }
  ASSERT_TRUE(handing_over);
  store.write_latch_.Release();
  stopper.join();
  EXPECT_EQ(sm.failures(), 0) << "StorageFailed reached an owner already inside Stop";
}

// The same for a member told during the hand-over that it was removed: RemovedFromCluster
// reached an owner already inside Stop, which answers it by stopping the node (from ~Node: a
// Stop alongside the destructor). A member not stopping is told.
TEST(NodeTest, AMemberRemovedWhileStopHandsOverIsNotAnnouncedToTheOwner) {
  for (const bool stopping : {false, true}) {
    SCOPED_TRACE(stopping ? "told while Stop hands over" : "told while running");
    ScriptedPeers peers;
    LoneNode lone(1, &peers);
    LeadershipRecorder sm;
    lone.options.state_machine = &sm;
    lone.options.raft.election_tick = 100;  // hand-over waits up to 1 s
    std::unique_ptr<Node> node = ElectScripted(lone.options);
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->Propose("a").get().ok());
    std::thread stopper;
    if (stopping) {
      stopper = std::thread([&] { node->Stop(); });
      bool handing_over = false;
      const absl::Time deadline = absl::Now() + kWait;
      while (!handing_over && absl::Now() < deadline) {
        absl::StatusOr<uint64_t> r = node->Propose("probe").get();
        handing_over = !r.ok() && absl::StrContains(r.status().message(), "transfer in progress");
      }
      if (!handing_over) {
        stopper.join();
        FAIL() << "Stop never began handing the leadership over";
      }
    }
    // From a member that applied this member's removal.
    peers.DeliverMessageOf(MessageOf(raftpb::MSG_REMOVED, 2, 1, 0));
    if (stopping) {
      stopper.join();
      ASSERT_TRUE(node->GetStatus().removed)
          << "the removal arrived after the hand-over: the case was not tested";
      EXPECT_EQ(sm.WaitForRemoval(absl::Now()), 0)
          << "RemovedFromCluster reached an owner already inside Stop";
    } else {
      EXPECT_EQ(sm.WaitForRemoval(absl::Now() + kWait), 1);
      EXPECT_TRUE(node->GetStatus().removed);
      node->Stop();
    }
  }
}

}  // namespace
}  // namespace shoal::raft

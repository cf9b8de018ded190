// The store on real Raft members (RocksDB logs, gRPC on loopback): every manager applies the
// same transactions, a member that fell behind is caught up by a snapshot of the store, a
// restart of every manager keeps the state, and leader-only writes stop with leadership.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "manager/store/raft_binding.h"
#include "manager/store/store.h"
#include "raft/grpc_transport.h"
#include "raft/node.h"
#include "raft/rocksdb_log_store.h"
#include "raft/storage.h"
#include "raft/testing/raft_server.h"

namespace shoal::manager::store {
namespace {

const absl::Duration kWait = absl::Seconds(30);

class CountingStateMachine : public StoreStateMachine {
 public:
  using StoreStateMachine::StoreStateMachine;
  absl::Status Restore(absl::string_view data) override {
    ++restores;
    return StoreStateMachine::Restore(data);
  }
  std::atomic<int> restores{0};
};

struct Manager {
  uint64_t id = 0;
  std::string dir;
  std::string addr;
  std::unique_ptr<raft::RocksDbLogStore> log;
  std::unique_ptr<grpc::Server> server;  // destroyed after the transport
  std::unique_ptr<raft::GrpcTransport> transport;
  RaftProposer proposer;
  std::unique_ptr<Store> store;
  std::unique_ptr<CountingStateMachine> sm;
  std::unique_ptr<raft::Node> node;
  bool up = false;
};

class ReplicatedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = std::filesystem::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(base_);
  }
  void TearDown() override {
    for (auto& m : managers_) Kill(m->id);
  }

  void StartCluster(int n) {
    std::vector<uint64_t> ids;
    for (int i = 1; i <= n; ++i) {
      ids.push_back(i);
      auto m = std::make_unique<Manager>();
      m->id = i;
      m->dir = (base_ / absl::StrCat("m", i)).string();
      managers_.push_back(std::move(m));
    }
    for (auto& m : managers_) {
      auto log = raft::RocksDbLogStore::Open({m->dir});
      ASSERT_TRUE(log.ok()) << log.status();
      ASSERT_TRUE(raft::Bootstrap(**log, ids).ok());
    }
    for (auto& m : managers_) Start(m->id);
  }

  Manager& M(uint64_t id) { return *managers_[id - 1]; }

  // A manager starts with an empty store: Raft replays its snapshot and log into it.
  void Start(uint64_t id) {
    Manager& m = M(id);
    auto log = raft::RocksDbLogStore::Open({m.dir});
    ASSERT_TRUE(log.ok()) << log.status();
    m.log = std::move(*log);
    raft::GrpcTransport::Options to;
    to.self = id;
    m.transport = std::move(*raft::GrpcTransport::Create(to));
    Store::Options so;
    so.proposal_nonce = static_cast<uint32_t>(id);
    m.store = std::make_unique<Store>(&m.proposer, so);
    m.sm = std::make_unique<CountingStateMachine>(m.store.get());
    raft::Node::Options no;
    no.raft.id = id;
    no.raft.random_seed = id * 7919;
    no.raft.election_tick = 10;
    no.tick_interval = absl::Milliseconds(10);
    no.storage = m.log.get();
    no.transport = m.transport.get();
    no.state_machine = m.sm.get();
    no.snapshot_interval = snapshot_interval_;
    no.snapshot_keep_entries = 5;
    no.transfer_leadership_on_stop = false;
    auto node = raft::Node::Create(no);
    ASSERT_TRUE(node.ok()) << node.status();
    m.node = std::move(*node);
    m.proposer.Bind(m.node.get());
    raft::testing::RaftServer s = raft::testing::ServeRaft(
        *m.transport, grpc::InsecureServerCredentials(),
        m.addr.empty() ? "127.0.0.1:0" : m.addr);
    if (s.server == nullptr) s = raft::testing::ServeRaft(*m.transport);
    ASSERT_NE(s.server, nullptr);
    m.server = std::move(s.server);
    m.addr = s.addr;
    m.up = true;
    for (auto& a : managers_) {
      for (auto& b : managers_) {
        if (a->up && a->id != b->id && !b->addr.empty()) a->transport->AddPeer(b->id, b->addr);
      }
    }
    m.node->Start();
  }

  void Kill(uint64_t id) {
    Manager& m = M(id);
    if (!m.up) return;
    m.proposer.Bind(nullptr);
    m.node->Stop();
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    m.transport.reset();
    m.server.reset();
    m.node.reset();
    m.sm.reset();
    m.store.reset();
    m.log.reset();
    m.up = false;
  }

  // Writes through manager `via` (a follower forwards to the leader), retrying while there
  // is no leader yet. Each write creates a service and a task named after `n`.
  uint64_t Write(uint64_t via, int n) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      M(via).node->WaitForLeader(deadline);
      auto index = M(via).store->Update([&](WriteTx& tx) {
        if (tx.Get<api::Service>(absl::StrCat("s", n)) != nullptr) return absl::OkStatus();
        api::Service s;
        s.mutable_meta()->set_id(absl::StrCat("s", n));
        s.mutable_spec()->mutable_annotations()->set_name(absl::StrCat("svc-", n));
        if (auto st = tx.Create(s); !st.ok()) return st;
        api::Task t;
        t.mutable_meta()->set_id(absl::StrCat("t", n));
        t.set_service_id(s.meta().id());
        t.set_slot(1);
        return tx.Create(t);
      });
      if (index.ok()) return *index;
      // Lost with a leader change: it may have been applied; the next try sees it if so.
      EXPECT_TRUE(absl::IsUnavailable(index.status()) || absl::IsDeadlineExceeded(index.status()))
          << index.status();
    }
    ADD_FAILURE() << "no write within " << kWait;
    return 0;
  }

  // Waits (on the store's own events, not by polling) until manager `id` applied `index`.
  void WaitApplied(uint64_t id, uint64_t index) {
    Store& s = *M(id).store;
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      bool reached = false;
      auto w = s.Watch(nullptr, [&](const ReadTx& tx) { reached = tx.index() >= index; });
      while (!reached && absl::Now() < deadline) {
        auto e = w->Next(deadline);
        if (!e.ok()) break;  // a restore closed it: watch anew
        if (e->has_value() && (*e)->index >= index) reached = true;
      }
      if (reached) return;
    }
    ADD_FAILURE() << "manager " << id << " did not apply " << index;
  }

  std::string State(uint64_t id) {
    // Equal states at an equal index serialize to the same bytes.
    return M(id).store->SnapshotLater()();
  }

  std::filesystem::path base_;
  std::vector<std::unique_ptr<Manager>> managers_;
  uint64_t snapshot_interval_ = 10000;
};

TEST_F(ReplicatedStoreTest, EveryManagerAppliesTheSameTransactions) {
  StartCluster(3);
  uint64_t last = 0;
  for (int n = 0; n < 30; ++n) last = Write(1 + n % 3, n);
  ASSERT_GT(last, 0u);
  for (uint64_t id = 1; id <= 3; ++id) WaitApplied(id, last);
  // Appliers may be ahead of `last` by nothing else: every write was one of ours.
  EXPECT_EQ(State(1), State(2));
  EXPECT_EQ(State(1), State(3));
  M(2).store->View([](const ReadTx& tx) {
    EXPECT_EQ(tx.List<api::Service>().size(), 30u);
    EXPECT_EQ(tx.TasksOfService("s7").size(), 1u);
    EXPECT_NE(tx.GetByName<api::Service>("SVC-7"), nullptr);
  });
}

TEST_F(ReplicatedStoreTest, AManagerThatFellBehindIsCaughtUpByASnapshotOfTheStore) {
  snapshot_interval_ = 20;
  StartCluster(3);
  ASSERT_GT(Write(1, 0), 0u);
  Kill(3);
  uint64_t last = 0;
  for (int n = 1; n <= 80; ++n) last = Write(1 + n % 2, n);
  Start(3);
  WaitApplied(3, last);
  WaitApplied(1, last);
  EXPECT_GE(M(3).sm->restores.load(), 1) << "the log it missed was compacted away";
  EXPECT_EQ(State(3), State(1));
}

TEST_F(ReplicatedStoreTest, RestartingEveryManagerKeepsTheState) {
  snapshot_interval_ = 25;
  StartCluster(3);
  uint64_t last = 0;
  for (int n = 0; n < 60; ++n) last = Write(1 + n % 3, n);
  for (uint64_t id = 1; id <= 3; ++id) WaitApplied(id, last);
  const std::string before = State(1);
  for (uint64_t id = 1; id <= 3; ++id) Kill(id);
  for (uint64_t id = 1; id <= 3; ++id) Start(id);
  // After the restart a new leader's empty entry moves the index on: compare the objects.
  for (uint64_t id = 1; id <= 3; ++id) WaitApplied(id, last);
  api::StoreSnapshot a, b;
  ASSERT_TRUE(a.ParseFromString(before));
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(b.ParseFromString(State(id)));
    a.clear_index();
    b.clear_index();
    EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString()) << "manager " << id;
  }
}

TEST_F(ReplicatedStoreTest, LeaderOnlyWritesNeedTheTermTheyWereStartedIn) {
  StartCluster(3);
  ASSERT_GT(Write(1, 0), 0u);
  uint64_t leader = M(1).node->GetStatus().leader;
  ASSERT_NE(leader, 0u);
  const uint64_t term = M(leader).node->GetStatus().term;
  auto write = [&](uint64_t via, uint64_t t, int n) {
    return M(via).store->Update(
        [&](WriteTx& tx) {
          api::Service s;
          s.mutable_meta()->set_id(absl::StrCat("lead", n));
          s.mutable_spec()->mutable_annotations()->set_name(absl::StrCat("lead-", n));
          return tx.Create(s);
        },
        t);
  };
  EXPECT_TRUE(write(leader, term, 1).ok());
  EXPECT_EQ(write(leader, term + 1, 2).status().code(), absl::StatusCode::kFailedPrecondition);
  const uint64_t follower = leader == 1 ? 2 : 1;
  EXPECT_EQ(write(follower, term, 3).status().code(), absl::StatusCode::kFailedPrecondition);
  M(leader).store->View([](const ReadTx& tx) {
    EXPECT_NE(tx.Get<api::Service>("lead1"), nullptr);
    EXPECT_EQ(tx.Get<api::Service>("lead2"), nullptr);
    EXPECT_EQ(tx.Get<api::Service>("lead3"), nullptr);
  });
}

}  // namespace
}  // namespace shoal::manager::store

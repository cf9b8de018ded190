// The store on real Raft members (RocksDB logs, gRPC on loopback): every manager applies the
// same transactions, a member that fell behind is caught up by a snapshot of the store, a
// restart of every manager keeps the state, and leader-only writes stop with leadership.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "manager/store/store.h"
#include "manager/store/testing/raft_cluster.h"

namespace shoal::manager::store {
namespace {

using testing::RaftCluster;

class ReplicatedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = std::filesystem::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(base_);
  }

  void StartCluster(int n) {
    RaftCluster::Options o;
    o.base = base_;
    o.snapshot_interval = snapshot_interval_;
    cluster_ = std::make_unique<RaftCluster>(o);
    cluster_->Bootstrap(n);
  }
  testing::Member& M(uint64_t id) { return cluster_->M(id); }
  void Start(uint64_t id) { cluster_->Start(id); }
  void Kill(uint64_t id) { cluster_->Kill(id); }
  void WaitApplied(uint64_t id, uint64_t index) {
    EXPECT_TRUE(cluster_->WaitApplied(id, index)) << "manager " << id << " did not apply " << index;
  }

  // Writes through manager `via` (a follower forwards to the leader). Each write creates a
  // service and a task named after `n` (idempotent: a write lost with a leader change may
  // have been applied).
  uint64_t Write(uint64_t via, int n) {
    auto index = cluster_->Write(via, [&](WriteTx& tx) {
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
    EXPECT_TRUE(index.ok()) << index.status();
    return index.value_or(0);
  }

  std::string State(uint64_t id) {
    // Equal states at an equal index serialize to the same bytes.
    return M(id).store->SnapshotLater()();
  }

  std::filesystem::path base_;
  std::unique_ptr<RaftCluster> cluster_;
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

TEST_F(ReplicatedStoreTest, WithoutAQuorumAWriteFailsAtOnceAndChangesNothing) {
  StartCluster(3);
  ASSERT_GT(Write(1, 0), 0u);
  Kill(2);
  Kill(3);
  // Polling a status (not synchronising data): the survivor gives up its leader.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (M(1).node->GetStatus().leader != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(M(1).node->GetStatus().leader, 0u);
  const absl::Time before = absl::Now();
  auto r = M(1).store->Update([](WriteTx& tx) {
    api::Service s;
    s.mutable_meta()->set_id("late");
    s.mutable_spec()->mutable_annotations()->set_name("late");
    return tx.Create(s);
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(absl::Now() - before, absl::Seconds(1)) << "not after a timeout";
  M(1).store->View([](const ReadTx& tx) { EXPECT_EQ(tx.Get<api::Service>("late"), nullptr); });
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

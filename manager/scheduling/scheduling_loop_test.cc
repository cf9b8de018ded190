#include "manager/scheduling/scheduling_loop.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager::scheduling {
namespace {

using store::ReadTx;
using store::WriteTx;

constexpr int64_t kGiB = int64_t{1} << 30;

api::Node MakeNode(const std::string& id, int64_t memory = 8 * kGiB) {
  api::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_description()->set_hostname(id);
  n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->mutable_resources()->set_memory_bytes(memory);
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  return n;
}

api::Task MakeTask(const std::string& service, uint64_t slot, int64_t memory = 0) {
  api::Task t;
  t.mutable_meta()->set_id(absl::StrCat(service, ".", slot));
  t.set_service_id(service);
  t.set_slot(slot);
  t.mutable_spec_version()->set_index(1);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_state(api::TASK_STATE_PENDING);
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(memory);
  return t;
}

class SchedulingLoopTest : public ::testing::Test {
 protected:
  SchedulingLoopTest() { raft_.Join(&store_); }

  template <typename T>
  void Put(const T& object) {
    auto r = store_.Update([&](WriteTx& tx) { return tx.Create(object); });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::map<std::string, int> PerNode() {
    std::map<std::string, int> out;
    store_.View([&](const ReadTx& tx) {
      for (const api::Task* t : tx.List<api::Task>()) {
        if (t->status().state() == api::TASK_STATE_ASSIGNED) ++out[t->node_id()];
      }
    });
    return out;
  }

  api::Task Task(const std::string& id) {
    api::Task out;
    store_.View([&](const ReadTx& tx) { out = *tx.Get<api::Task>(id); });
    return out;
  }

  ManualClock clock_;
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  SchedulingLoop loop_{{&store_, &clock_, /*leader_term=*/1}};
};

TEST_F(SchedulingLoopTest, AssignsPendingTasksAndWritesThemAsAssigned) {
  for (const char* n : {"a", "b", "c"}) Put(MakeNode(n));
  for (int slot = 1; slot <= 5; ++slot) Put(MakeTask("web", slot));
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 5u);
  EXPECT_EQ(PerNode(), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 1}}));
  const api::Task t = Task("web.1");
  EXPECT_EQ(t.status().message(), "scheduler assigned task to node");
  EXPECT_EQ(t.status().timestamp().seconds(), absl::ToUnixSeconds(clock_.Now()));
  // Nothing more to do: no writes.
  const int proposals = raft_.proposals();
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 0u);
  EXPECT_EQ(raft_.proposals(), proposals);
}

TEST_F(SchedulingLoopTest, WritesTheReasonOnceAndAssignsWhenANodeJoins) {
  Put(MakeNode("a", kGiB));
  Put(MakeTask("db", 1, 2 * kGiB));
  loop_.Step(absl::InfinitePast());
  EXPECT_EQ(Task("db.1").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(Task("db.1").status().err(), "no suitable node (insufficient memory on 1 node)");
  const int proposals = raft_.proposals();
  // Its own write of the reason comes back as an event; the reason is unchanged: no write.
  loop_.Step(absl::InfinitePast());
  EXPECT_EQ(raft_.proposals(), proposals);
  Put(MakeNode("b", 4 * kGiB));
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 1u);
  EXPECT_EQ(Task("db.1").node_id(), "b");
  EXPECT_EQ(Task("db.1").status().err(), "");
}

TEST_F(SchedulingLoopTest, ATaskNoLongerWantedIsNotAssigned) {
  Put(MakeNode("a"));
  Put(MakeTask("web", 1));
  // The orchestrator shut it down before the loop came to it.
  auto r = store_.Update([](WriteTx& tx) {
    api::Task t = *tx.Get<api::Task>("web.1");
    t.set_desired_state(api::TASK_STATE_SHUTDOWN);
    return tx.Update(t);
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 0u);
  EXPECT_EQ(Task("web.1").node_id(), "");
}

TEST_F(SchedulingLoopTest, WritesOfAnOldTermFailAndAreRetriedByTheNextLeadersLoop) {
  Put(MakeNode("a"));
  Put(MakeTask("web", 1));
  raft_.SetTerm(2);  // leadership moved on
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 0u);
  EXPECT_GE(loop_.write_failures(), 1u);
  EXPECT_EQ(Task("web.1").status().state(), api::TASK_STATE_PENDING);
  SchedulingLoop next({&store_, &clock_, /*leader_term=*/2});
  EXPECT_EQ(next.Step(absl::InfinitePast()), 1u);
  EXPECT_EQ(Task("web.1").node_id(), "a");
}

TEST_F(SchedulingLoopTest, ARemovedNodeTakesNoMoreTasks) {
  Put(MakeNode("a"));
  Put(MakeNode("b"));
  loop_.Step(absl::InfinitePast());
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Remove<api::Node>("a"); }).ok());
  for (int slot = 1; slot <= 3; ++slot) Put(MakeTask("web", slot));
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 3u);
  EXPECT_EQ(PerNode(), (std::map<std::string, int>{{"b", 3}}));
}

TEST_F(SchedulingLoopTest, RunsOnItsOwnThreadUntilStopped) {
  Put(MakeNode("a"));
  auto watch = store_.Watch([](const store::Event& e) {
    const auto* t = e.As<api::Task>();
    return t != nullptr && t->status().state() == api::TASK_STATE_ASSIGNED;
  });
  loop_.Start();
  Put(MakeTask("web", 1));
  auto e = watch->Next(absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value()) << "not assigned";
  EXPECT_EQ((*e)->As<api::Task>()->node_id(), "a");
  loop_.Stop();
}

}  // namespace
}  // namespace shoal::manager::scheduling

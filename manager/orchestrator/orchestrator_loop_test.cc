// The orchestrator loop with the allocator and scheduling loops over one store: a service
// becomes tasks on nodes, scales, restarts failed tasks after the delay, moves tasks off a
// drained node, follows nodes as a global service, and is cleaned up when removed.
#include "manager/orchestrator/orchestrator_loop.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "manager/allocator/allocator.h"
#include "manager/scheduling/scheduling_loop.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager::orchestrator {
namespace {

using store::ReadTx;
using store::WriteTx;

api::Node MakeNode(const std::string& id) {
  api::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_description()->set_hostname(id);
  n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->mutable_resources()->set_memory_bytes(int64_t{8} << 30);
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  return n;
}

class OrchestratorLoopTest : public ::testing::Test {
 protected:
  OrchestratorLoopTest() {
    raft_.Join(&store_);
    for (const char* n : {"a", "b", "c"}) Put(MakeNode(n));
  }

  template <typename T>
  void Put(const T& o) {
    auto r = store_.Update([&](WriteTx& tx) { return tx.Create(o); });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // Runs the three loops until none has anything left to write.
  void Settle() {
    for (int round = 0; round < 50; ++round) {
      size_t n = orchestrator_.Step(absl::InfinitePast());
      n += allocator_.Step(absl::InfinitePast());
      n += scheduler_.Step(absl::InfinitePast());
      if (n == 0) return;
    }
    FAIL() << "the loops did not settle";
  }

  void CreateService(uint64_t replicas) {
    api::Service s;
    s.mutable_meta()->set_id("web");
    s.mutable_spec()->mutable_annotations()->set_name("web");
    s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    Put(s);
  }

  void Scale(uint64_t replicas) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      api::Service s = *tx.Get<api::Service>("web");
                      s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
                      return tx.Update(s);
                    })
                    .ok());
  }

  // Fake workers: every task assigned to a node and wanted running is reported RUNNING; every
  // task asked to stop is reported SHUTDOWN.
  void WorkersReport() {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      for (const api::Task* t : tx.List<api::Task>()) {
                        api::Task u = *t;
                        const auto state = t->status().state();
                        if (state >= api::TASK_STATE_ASSIGNED && state < api::TASK_STATE_RUNNING &&
                            t->desired_state() == api::TASK_STATE_RUNNING) {
                          u.mutable_status()->set_state(api::TASK_STATE_RUNNING);
                        } else if (state >= api::TASK_STATE_ASSIGNED &&
                                   state <= api::TASK_STATE_RUNNING &&
                                   t->desired_state() > api::TASK_STATE_RUNNING) {
                          u.mutable_status()->set_state(api::TASK_STATE_SHUTDOWN);
                        } else {
                          continue;
                        }
                        if (auto s = tx.Update(u); !s.ok()) return s;
                      }
                      return absl::OkStatus();
                    })
                    .ok());
  }

  void SetTaskState(const std::string& id, api::TaskState state) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      api::Task t = *tx.Get<api::Task>(id);
                      t.mutable_status()->set_state(state);
                      return tx.Update(t);
                    })
                    .ok());
  }

  // Running (or wanted running and placed) tasks per node, and per slot.
  std::map<std::string, int> Running() {
    std::map<std::string, int> out;
    store_.View([&](const ReadTx& tx) {
      for (const api::Task* t : tx.List<api::Task>()) {
        if (t->status().state() == api::TASK_STATE_RUNNING &&
            t->desired_state() == api::TASK_STATE_RUNNING) {
          ++out[t->node_id()];
        }
      }
    });
    return out;
  }
  int Total(const std::map<std::string, int>& m) {
    int n = 0;
    for (const auto& [k, v] : m) n += v;
    return n;
  }
  std::map<uint64_t, int> RunnablePerSlot() {
    std::map<uint64_t, int> out;
    store_.View([&](const ReadTx& tx) {
      for (const api::Task* t : tx.TasksOfService("web")) {
        if (t->desired_state() <= api::TASK_STATE_RUNNING) ++out[t->slot()];
      }
    });
    return out;
  }

  ManualClock clock_;
  store::testing::FakeRaft raft_;
  // The store stamps created_at with the same clock the orchestrator reads (the leader's).
  store::Store store_{&raft_, [this] {
                        store::Store::Options o;
                        o.clock = &clock_;
                        return o;
                      }()};
  IdGenerator ids_{SeededRandomBytes(11)};
  OrchestratorLoop orchestrator_{{&store_, &clock_, 0, &ids_}};
  allocator::AllocatorLoop allocator_{{&store_, 0}};
  scheduling::SchedulingLoop scheduler_{{&store_, &clock_, 0}};
};

TEST_F(OrchestratorLoopTest, AServiceBecomesTasksOnNodesAndScales) {
  CreateService(5);
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Running(), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 1}}));
  EXPECT_EQ(RunnablePerSlot(), (std::map<uint64_t, int>{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}}));

  Scale(8);
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Total(Running()), 8);
  EXPECT_EQ(RunnablePerSlot().size(), 8u);

  Scale(2);
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Total(Running()), 2);
  EXPECT_EQ(RunnablePerSlot().size(), 2u);
  // The removed tasks, stopped, were deleted by the reaper.
  store_.View([](const ReadTx& tx) {
    for (const api::Task* t : tx.List<api::Task>()) {
      EXPECT_NE(t->desired_state(), api::TASK_STATE_REMOVE) << t->meta().id();
    }
  });
}

TEST_F(OrchestratorLoopTest, AFailedTaskIsReplacedInItsSlotAfterTheRestartDelay) {
  CreateService(1);
  Settle();
  WorkersReport();
  Settle();
  std::string first;
  store_.View([&](const ReadTx& tx) { first = tx.TasksOfService("web")[0]->meta().id(); });
  SetTaskState(first, api::TASK_STATE_FAILED);
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Total(Running()), 0) << "the replacement waits 5 s";
  clock_.Advance(absl::Seconds(5));
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Total(Running()), 1);
  store_.View([&](const ReadTx& tx) {
    const auto slot = tx.TasksInSlot("web", 1);
    EXPECT_EQ(slot.size(), 2u) << "the failed one stays in the slot's history";
  });
}

TEST_F(OrchestratorLoopTest, DrainingANodeMovesItsTasks) {
  CreateService(3);
  Settle();
  WorkersReport();
  Settle();
  ASSERT_EQ(Running().count("a"), 1u);
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    api::Node n = *tx.Get<api::Node>("a");
                    n.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
                    return tx.Update(n);
                  })
                  .ok());
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Running(), (std::map<std::string, int>{{"b", 2}, {"c", 1}}));
}

TEST_F(OrchestratorLoopTest, AGlobalServiceFollowsNodes) {
  api::Service s;
  s.mutable_meta()->set_id("agent");
  s.mutable_spec()->mutable_annotations()->set_name("agent");
  s.mutable_spec()->mutable_global();
  Put(s);
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Running(), (std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}}));
  Put(MakeNode("d"));
  Settle();
  WorkersReport();
  Settle();
  EXPECT_EQ(Total(Running()), 4);
}

TEST_F(OrchestratorLoopTest, RemovingAServiceStopsAndDeletesItsTasks) {
  CreateService(3);
  Settle();
  WorkersReport();
  Settle();
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Remove<api::Service>("web"); }).ok());
  Settle();
  WorkersReport();
  Settle();
  store_.View([](const ReadTx& tx) { EXPECT_TRUE(tx.List<api::Task>().empty()); });
}

}  // namespace
}  // namespace shoal::manager::orchestrator

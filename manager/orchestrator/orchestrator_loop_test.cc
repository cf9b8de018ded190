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

  void CreateService(uint64_t replicas,
                     const std::function<void(api::ServiceSpec&)>& edit = nullptr) {
    api::Service s;
    s.mutable_meta()->set_id("web");
    s.mutable_spec()->mutable_annotations()->set_name("web");
    s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    s.mutable_spec_version()->set_index(1);
    if (edit) edit(*s.mutable_spec());
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

  // Fake workers: every task assigned to a node and wanted running is reported RUNNING (or
  // FAILED, for the spec version `failing`); every task asked to stop is reported SHUTDOWN.
  void WorkersReport(uint64_t failing = 0) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      for (const api::Task* t : tx.List<api::Task>()) {
                        api::Task u = *t;
                        const auto state = t->status().state();
                        *u.mutable_status()->mutable_timestamp() = Now();
                        if (state >= api::TASK_STATE_ASSIGNED && state < api::TASK_STATE_RUNNING &&
                            t->desired_state() == api::TASK_STATE_RUNNING) {
                          u.mutable_status()->set_state(failing != 0 && t->spec_version().index() == failing
                                                            ? api::TASK_STATE_FAILED
                                                            : api::TASK_STATE_RUNNING);
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

  google::protobuf::Timestamp Now() {
    google::protobuf::Timestamp ts;
    ts.set_seconds(absl::ToUnixSeconds(clock_.Now()));
    return ts;
  }

  // A new spec for web, as the control API writes it: the old one becomes the previous.
  void UpdateService(const std::function<void(api::ServiceSpec&)>& edit) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      api::Service s = *tx.Get<api::Service>("web");
                      *s.mutable_previous_spec() = s.spec();
                      *s.mutable_previous_spec_version() = s.spec_version();
                      edit(*s.mutable_spec());
                      s.mutable_spec_version()->set_index(s.meta().version().index());
                      s.clear_update_status();
                      return tx.Update(s);
                    })
                    .ok());
  }

  api::Service Service() {
    api::Service out;
    store_.View([&](const ReadTx& tx) { out = *tx.Get<api::Service>("web"); });
    return out;
  }

  // Running tasks of web by spec version.
  std::map<uint64_t, int> RunningVersions() {
    std::map<uint64_t, int> out;
    store_.View([&](const ReadTx& tx) {
      for (const api::Task* t : tx.TasksOfService("web")) {
        if (t->status().state() == api::TASK_STATE_RUNNING &&
            t->desired_state() == api::TASK_STATE_RUNNING) {
          ++out[t->spec_version().index()];
        }
      }
    });
    return out;
  }

  // Rounds of loops and workers, the clock moving a second each, until `done` or 120 rounds;
  // `each` checks an invariant every round.
  bool RunUntil(const std::function<bool()>& done, uint64_t failing = 0,
                const std::function<void()>& each = nullptr) {
    for (int round = 0; round < 120; ++round) {
      Settle();
      WorkersReport(failing);
      Settle();
      if (each) each();
      if (done()) return true;
      clock_.Advance(absl::Seconds(1));
    }
    return false;
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

TEST_F(OrchestratorLoopTest, ARollingUpdateReplacesOneSlotAtATimeStopFirst) {
  CreateService(3);
  ASSERT_TRUE(RunUntil([&] { return RunningVersions() == std::map<uint64_t, int>{{1, 3}}; }));
  UpdateService([](api::ServiceSpec& spec) {
    spec.mutable_task()->mutable_container()->set_image("web:2");
  });
  const uint64_t v2 = Service().spec_version().index();
  size_t most_down = 0;
  ASSERT_TRUE(RunUntil(
      [&] { return RunningVersions() == std::map<uint64_t, int>{{v2, 3}}; }, 0,
      [&] {
        // Stop-first, one at a time: never fewer than 2 of 3 running.
        int running = 0;
        for (const auto& [v, n] : RunningVersions()) running += n;
        most_down = std::max(most_down, static_cast<size_t>(3 - running));
      }));
  EXPECT_LE(most_down, 1u);
  ASSERT_TRUE(RunUntil([&] {
    return Service().update_status().state() == api::UpdateStatus::UPDATE_STATE_COMPLETED;
  }));
  EXPECT_EQ(Service().update_status().message(), "update completed");
}

TEST_F(OrchestratorLoopTest, StartFirstRunsTheNewTaskBeforeStoppingTheOld) {
  CreateService(2, [](api::ServiceSpec& spec) {
    spec.mutable_update()->set_order(api::UpdateConfig::ORDER_START_FIRST);
  });
  ASSERT_TRUE(RunUntil([&] { return RunningVersions() == std::map<uint64_t, int>{{1, 2}}; }));
  UpdateService([](api::ServiceSpec& spec) {
    spec.mutable_task()->mutable_container()->set_image("web:2");
  });
  const uint64_t v2 = Service().spec_version().index();
  int fewest = 2, most = 0;
  ASSERT_TRUE(RunUntil([&] { return RunningVersions() == std::map<uint64_t, int>{{v2, 2}}; }, 0,
                       [&] {
                         // Tasks running, those asked to stop but not stopped yet included.
                         int running = 0;
                         store_.View([&](const ReadTx& tx) {
                           for (const api::Task* t : tx.TasksOfService("web")) {
                             running += t->status().state() == api::TASK_STATE_RUNNING;
                           }
                         });
                         fewest = std::min(fewest, running);
                         most = std::max(most, running);
                       }));
  EXPECT_EQ(fewest, 2) << "never below the replica count";
  EXPECT_EQ(most, 3) << "one extra task while a slot changes over";
}

TEST_F(OrchestratorLoopTest, AFailingNewVersionPausesTheUpdate) {
  CreateService(4);
  ASSERT_TRUE(RunUntil([&] { return RunningVersions() == std::map<uint64_t, int>{{1, 4}}; }));
  UpdateService([](api::ServiceSpec& spec) {
    spec.mutable_task()->mutable_container()->set_image("web:broken");
    spec.mutable_task()->mutable_restart()->set_condition(api::RestartPolicy::RESTART_CONDITION_NONE);
  });
  const uint64_t v2 = Service().spec_version().index();
  ASSERT_TRUE(RunUntil(
      [&] { return Service().update_status().state() == api::UpdateStatus::UPDATE_STATE_PAUSED; },
      v2));
  EXPECT_NE(Service().update_status().message().find(
                "update paused due to failure or early termination of task "),
            std::string::npos)
      << Service().update_status().message();
  // The first slot went to the broken version; the other three still run the old one.
  EXPECT_EQ(RunningVersions(), (std::map<uint64_t, int>{{1, 3}}));
  // And it stays paused.
  ASSERT_FALSE(RunUntil([&] { return RunningVersions().count(1) != 1 || RunningVersions()[1] != 3; },
                        v2));
}

TEST_F(OrchestratorLoopTest, AFailingNewVersionIsRolledBackWhenConfiguredSo) {
  CreateService(3, [](api::ServiceSpec& spec) {
    spec.mutable_update()->set_failure_action(api::UpdateConfig::FAILURE_ACTION_ROLLBACK);
  });
  ASSERT_TRUE(RunUntil([&] { return RunningVersions() == std::map<uint64_t, int>{{1, 3}}; }));
  UpdateService([](api::ServiceSpec& spec) {
    spec.mutable_task()->mutable_container()->set_image("web:broken");
    spec.mutable_task()->mutable_restart()->set_condition(api::RestartPolicy::RESTART_CONDITION_NONE);
  });
  const uint64_t v2 = Service().spec_version().index();
  ASSERT_TRUE(RunUntil(
      [&] {
        return Service().update_status().state() ==
               api::UpdateStatus::UPDATE_STATE_ROLLBACK_COMPLETED;
      },
      v2));
  EXPECT_EQ(Service().spec_version().index(), 1u);
  EXPECT_EQ(Service().spec().task().container().image(), "");
  EXPECT_EQ(RunningVersions(), (std::map<uint64_t, int>{{1, 3}}));
}

}  // namespace
}  // namespace shoal::manager::orchestrator

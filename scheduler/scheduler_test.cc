#include "scheduler/scheduler.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"

namespace shoal::scheduler {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

api::Node MakeNode(const std::string& id, int64_t memory = 8 * kGiB,
                   std::map<std::string, std::string> labels = {}) {
  api::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_description()->set_hostname("host-" + id);
  n.mutable_description()->mutable_platform()->set_os("linux");
  n.mutable_description()->mutable_platform()->set_architecture("amd64");
  n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->mutable_resources()->set_memory_bytes(memory);
  n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  for (const auto& [k, v] : labels) (*n.mutable_spec()->mutable_annotations()->mutable_labels())[k] = v;
  return n;
}

api::Task MakeTask(const std::string& service, uint64_t slot, uint64_t version = 1) {
  api::Task t;
  t.mutable_meta()->set_id(absl::StrCat(service, ".", slot, ".v", version));
  t.set_service_id(service);
  t.set_slot(slot);
  t.mutable_spec_version()->set_index(version);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_state(api::TASK_STATE_PENDING);
  return t;
}

class SchedulerTest : public ::testing::Test {
 protected:
  // Hands in the tasks, schedules, and applies the decisions the way the store loop does
  // (assigned tasks handed back as written), so the tests see the level-triggered path.
  std::vector<Scheduler::Decision> Run(std::vector<api::Task> tasks = {}) {
    for (api::Task& t : tasks) {
      tasks_[t.meta().id()] = t;
      s_.UpsertTask(t);
    }
    std::vector<Scheduler::Decision> ds = s_.Schedule();
    for (const auto& d : ds) {
      api::Task& t = tasks_[d.task_id];
      if (d.node_id.empty()) {
        t.mutable_status()->set_err(d.reason);
      } else {
        t.set_node_id(d.node_id);
        t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
        t.mutable_status()->clear_err();
        for (const auto& g : d.generic) *t.add_assigned_generic_resources() = g;
      }
      s_.UpsertTask(t);
    }
    return ds;
  }

  std::vector<api::Task> Replicas(const std::string& service, int n,
                                  const std::function<void(api::Task&)>& edit = nullptr) {
    std::vector<api::Task> out;
    for (int i = 1; i <= n; ++i) {
      api::Task t = MakeTask(service, i);
      if (edit) edit(t);
      out.push_back(t);
    }
    return out;
  }

  std::map<std::string, int> PerNode(const std::string& service) {
    std::map<std::string, int> out;
    for (const auto& [id, t] : tasks_) {
      if (t.service_id() == service && !t.node_id().empty() &&
          t.status().state() >= api::TASK_STATE_ASSIGNED &&
          t.status().state() <= api::TASK_STATE_RUNNING) {
        ++out[t.node_id()];
      }
    }
    return out;
  }

  void SetState(const std::string& id, api::TaskState state) {
    tasks_[id].mutable_status()->set_state(state);
    s_.UpsertTask(tasks_[id]);
  }

  ManualClock clock_;
  Scheduler s_{clock_};
  std::map<std::string, api::Task> tasks_;
};

TEST_F(SchedulerTest, SpreadsReplicasOverNodesFewestTasksFirst) {
  for (const char* id : {"a", "b", "c"}) s_.UpsertNode(MakeNode(id));
  const auto ds = Run(Replicas("web", 5));
  ASSERT_EQ(ds.size(), 5u);
  EXPECT_EQ(s_.pending(), 0u);
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 1}}));
}

TEST_F(SchedulerTest, FewestTasksOfTheServiceThenFewestOverall) {
  for (const char* id : {"a", "b", "c"}) s_.UpsertNode(MakeNode(id));
  // Another service fills a and b.
  api::Task other1 = MakeTask("db", 1);
  other1.set_node_id("a");
  other1.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  api::Task other2 = MakeTask("db", 2);
  other2.set_node_id("b");
  other2.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  api::Task other3 = MakeTask("db", 3);
  other3.set_node_id("a");
  other3.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  Run({other1, other2, other3});
  // web's first task goes to c (no tasks), its second to b (fewer in all than a).
  Run(Replicas("web", 2));
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"b", 1}, {"c", 1}}));
  // A third goes to a, the only node without a task of web.
  Run({MakeTask("web", 3)});
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}}));
}

TEST_F(SchedulerTest, ReservationsAreNeverOvercommittedWithinABatch) {
  s_.UpsertNode(MakeNode("a", 2 * kGiB));
  s_.UpsertNode(MakeNode("b", 3 * kGiB));
  s_.UpsertNode(MakeNode("c", kGiB / 2));
  const auto ds = Run(Replicas("web", 7, [](api::Task& t) {
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  }));
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"a", 2}, {"b", 3}}));
  EXPECT_EQ(s_.pending(), 2u);
  int pending = 0;
  for (const auto& d : ds) {
    if (!d.node_id.empty()) continue;
    ++pending;
    EXPECT_EQ(d.reason, "no suitable node (insufficient memory on 3 nodes)");
  }
  EXPECT_EQ(pending, 2);
  EXPECT_EQ(s_.node("a")->free_memory_bytes(), 0);
}

TEST_F(SchedulerTest, AnUnchangedReasonIsNotReturnedAgainAndANewNodeTakesThePending) {
  s_.UpsertNode(MakeNode("a", kGiB));
  auto ds = Run(Replicas("web", 2, [](api::Task& t) {
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  }));
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(s_.pending(), 1u);
  EXPECT_TRUE(Run().empty()) << "same reason, nothing to write";
  s_.UpsertNode(MakeNode("b", kGiB));
  ds = Run();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].node_id, "b");
  EXPECT_EQ(s_.pending(), 0u);
}

TEST_F(SchedulerTest, FinishedTasksFreeTheirReservationsAndShuttingDownOnesStillHoldThem) {
  s_.UpsertNode(MakeNode("a", kGiB));
  Run(Replicas("web", 1, [](api::Task& t) {
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  }));
  // Version 2 replaces it; the old one is asked to stop but has not stopped.
  tasks_["web.1.v1"].set_desired_state(api::TASK_STATE_SHUTDOWN);
  SetState("web.1.v1", api::TASK_STATE_RUNNING);
  api::Task v2 = MakeTask("web", 1, 2);
  v2.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  auto ds = Run({v2});
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].node_id, "");
  EXPECT_EQ(ds[0].reason, "no suitable node (insufficient memory on 1 node)");
  SetState("web.1.v1", api::TASK_STATE_SHUTDOWN);
  ds = Run();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].node_id, "a");
}

TEST_F(SchedulerTest, AFailedWriteHandedBackAsStoredUndoesTheAssignment) {
  s_.UpsertNode(MakeNode("a", kGiB));
  api::Task t = MakeTask("web", 1);
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  s_.UpsertTask(t);
  auto ds = s_.Schedule();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(s_.node("a")->free_memory_bytes(), 0);
  EXPECT_EQ(s_.pending(), 0u);
  s_.UpsertTask(t);  // the write failed: the task as stored
  EXPECT_EQ(s_.node("a")->free_memory_bytes(), kGiB);
  EXPECT_EQ(s_.pending(), 1u);
  ds = s_.Schedule();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].node_id, "a");
}

TEST_F(SchedulerTest, ExplainsEveryFilterThatTurnedANodeDown) {
  s_.UpsertNode(MakeNode("a", 8 * kGiB, {{"zone", "b"}}));
  api::Node down = MakeNode("b");
  down.mutable_status()->set_state(api::NodeStatus::NODE_STATE_DOWN);
  s_.UpsertNode(down);
  api::Node drained = MakeNode("c");
  drained.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  s_.UpsertNode(drained);
  s_.UpsertNode(MakeNode("d", kGiB, {{"zone", "a"}}));
  const auto ds = Run(Replicas("web", 1, [](api::Task& t) {
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(2 * kGiB);
    t.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone==a");
  }));
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].reason,
            "no suitable node (1 node is not ready; 1 node is drained; insufficient memory on "
            "1 node; constraint node.labels.zone==a not satisfied on 1 node)");
  // No nodes at all.
  Scheduler empty(clock_);
  empty.UpsertTask(MakeTask("x", 1));
  const auto none = empty.Schedule();
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].reason, "no suitable node (the cluster has no nodes)");
}

TEST_F(SchedulerTest, AnInvalidSpecStaysPendingWithTheError) {
  s_.UpsertNode(MakeNode("a"));
  const auto ds = Run(Replicas("web", 2, [](api::Task& t) {
    t.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone=a");
  }));
  ASSERT_EQ(ds.size(), 2u);
  for (const auto& d : ds) {
    EXPECT_EQ(d.node_id, "");
    EXPECT_NE(d.reason.find("invalid task spec: placement.constraints[0]"), std::string::npos)
        << d.reason;
  }
}

TEST_F(SchedulerTest, MaxReplicasPerNodeAndHostPortsSpreadTheBatch) {
  for (const char* id : {"a", "b"}) s_.UpsertNode(MakeNode(id));
  Run(Replicas("web", 5, [](api::Task& t) { t.mutable_spec()->mutable_placement()->set_max_replicas(2); }));
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"a", 2}, {"b", 2}}));
  EXPECT_EQ(tasks_["web.5.v1"].status().err(),
            "no suitable node (max replicas per node (2) reached on 2 nodes)");

  Run(Replicas("edge", 3, [](api::Task& t) {
    auto* p = t.mutable_endpoint()->add_ports();
    p->set_publish_mode(api::PortConfig::PUBLISH_MODE_HOST);
    p->set_published_port(443);
  }));
  EXPECT_EQ(PerNode("edge"), (std::map<std::string, int>{{"a", 1}, {"b", 1}}));
  EXPECT_EQ(tasks_["edge.3.v1"].status().err(),
            "no suitable node (host-mode port 443/tcp already in use on 2 nodes)");
}

TEST_F(SchedulerTest, GenericResourcesAreAssignedByName) {
  api::Node n = MakeNode("a");
  for (const char* v : {"GPU-0", "GPU-1", "GPU-2"}) {
    auto* g = n.mutable_description()->mutable_resources()->add_generic()->mutable_named();
    g->set_kind("gpu");
    g->set_value(v);
  }
  s_.UpsertNode(n);
  const auto ds = Run(Replicas("train", 2, [](api::Task& t) {
    auto* g = t.mutable_spec()->mutable_resources()->mutable_reservations()->add_generic();
    g->mutable_discrete()->set_kind("gpu");
    g->mutable_discrete()->set_value(1);
  }));
  ASSERT_EQ(ds.size(), 2u);
  ASSERT_EQ(ds[0].generic.size(), 1u);
  EXPECT_EQ(ds[0].generic[0].named().value(), "GPU-0");
  EXPECT_EQ(ds[1].generic[0].named().value(), "GPU-1");
  // The assignments, as written, hold their GPUs; a third task gets the last one.
  EXPECT_EQ(s_.node("a")->free_generic("gpu"), 1);
  const auto more = Run({MakeTask("train", 3)});
  ASSERT_EQ(more.size(), 1u);
  EXPECT_TRUE(more[0].generic.empty()) << "train.3 was made without a reservation";
}

TEST_F(SchedulerTest, SpreadPreferenceEvensTasksOverLabelValues) {
  // Zone a has 3 nodes, b 1, c 2; a node without the label forms its own group.
  s_.UpsertNode(MakeNode("a1", 8 * kGiB, {{"zone", "a"}}));
  s_.UpsertNode(MakeNode("a2", 8 * kGiB, {{"zone", "a"}}));
  s_.UpsertNode(MakeNode("a3", 8 * kGiB, {{"zone", "a"}}));
  s_.UpsertNode(MakeNode("b1", 8 * kGiB, {{"zone", "b"}}));
  s_.UpsertNode(MakeNode("c1", 8 * kGiB, {{"zone", "c"}}));
  s_.UpsertNode(MakeNode("c2", 8 * kGiB, {{"zone", "c"}}));
  s_.UpsertNode(MakeNode("x1"));
  auto spread = [](api::Task& t) {
    t.mutable_spec()->mutable_placement()->add_preferences()->mutable_spread()->set_spread_descriptor(
        "node.labels.zone");
  };
  Run(Replicas("web", 10, spread));
  const auto per_node = PerNode("web");
  std::map<std::string, int> per_zone;
  for (const auto& [node, n] : per_node) per_zone[node.substr(0, 1)] += n;
  // 10 over 4 groups: 3, 3, 2, 2; the remainder goes to groups in value order, and the
  // unlabelled group ("") sorts first.
  EXPECT_EQ(per_zone, (std::map<std::string, int>{{"a", 3}, {"b", 2}, {"c", 2}, {"x", 3}}));
  // Within zone a, one per node.
  EXPECT_EQ(per_node.at("a1"), 1);
  EXPECT_EQ(per_node.at("a2"), 1);
  EXPECT_EQ(per_node.at("a3"), 1);
}

TEST_F(SchedulerTest, SpreadFillsTheEmptiestValuesFirstAndOverflowsWhereThereIsRoom) {
  s_.UpsertNode(MakeNode("a1", 8 * kGiB, {{"zone", "a"}}));
  s_.UpsertNode(MakeNode("b1", 2 * kGiB, {{"zone", "b"}}));
  auto edit = [](api::Task& t) {
    t.mutable_spec()->mutable_placement()->add_preferences()->mutable_spread()->set_spread_descriptor(
        "node.labels.zone");
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  };
  // Zone b has room for 2: the other 4 go to a rather than waiting.
  Run(Replicas("web", 6, edit));
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"a1", 4}, {"b1", 2}}));
  EXPECT_EQ(s_.pending(), 0u);
  // Existing tasks count: with a at 4 and b full, the next task also goes to a.
  s_.UpsertNode(MakeNode("c1", 8 * kGiB, {{"zone", "c"}}));
  std::vector<api::Task> more;
  for (int slot = 7; slot <= 10; ++slot) {
    api::Task t = MakeTask("web", slot);
    edit(t);
    more.push_back(t);
  }
  Run(more);
  // c (0) is raised to meet b (2) first, then the rest is spread.
  EXPECT_EQ(PerNode("web"), (std::map<std::string, int>{{"a1", 4}, {"b1", 2}, {"c1", 4}}));
}

TEST_F(SchedulerTest, NodesWhereTheVersionFailsRepeatedlyAreTriedLast) {
  s_.UpsertNode(MakeNode("a"));
  s_.UpsertNode(MakeNode("b"));
  // Slot 1 lands on a, then fails there five times.
  for (int attempt = 0; attempt < 5; ++attempt) {
    api::Task t = MakeTask("web", 1);
    t.mutable_meta()->set_id(absl::StrCat("web.1.try", attempt));
    Run({t});
    const std::string node = tasks_[t.meta().id()].node_id();
    SetState(t.meta().id(), api::TASK_STATE_RUNNING);
    SetState(t.meta().id(), api::TASK_STATE_FAILED);
    EXPECT_EQ(node, "a") << attempt;
  }
  api::Task next = MakeTask("web", 1);
  next.mutable_meta()->set_id("web.1.try5");
  Run({next});
  EXPECT_EQ(tasks_["web.1.try5"].node_id(), "b");
  // Five minutes later a is forgiven.
  clock_.Advance(absl::Minutes(5) + absl::Seconds(1));
  SetState("web.1.try5", api::TASK_STATE_SHUTDOWN);
  api::Task later = MakeTask("web", 1);
  later.mutable_meta()->set_id("web.1.try6");
  Run({later});
  EXPECT_EQ(tasks_["web.1.try6"].node_id(), "a");
}

TEST_F(SchedulerTest, AFailureOfAnotherVersionDoesNotCount) {
  s_.UpsertNode(MakeNode("a"));
  s_.UpsertNode(MakeNode("b"));
  for (int attempt = 0; attempt < 5; ++attempt) {
    api::Task t = MakeTask("web", 1, /*version=*/1);
    t.mutable_meta()->set_id(absl::StrCat("web.1.try", attempt));
    Run({t});
    SetState(t.meta().id(), api::TASK_STATE_REJECTED);
  }
  Run({MakeTask("web", 1, /*version=*/2)});
  EXPECT_EQ(tasks_["web.1.v2"].node_id(), "a");
}

TEST_F(SchedulerTest, TasksBoundToANodeAreCheckedOnThatNodeAlone) {
  s_.UpsertNode(MakeNode("a", kGiB));
  s_.UpsertNode(MakeNode("b", 8 * kGiB));
  std::vector<api::Task> global;
  for (const char* node : {"a", "b", "gone"}) {
    api::Task t = MakeTask("agent", 1);
    t.mutable_meta()->set_id(absl::StrCat("agent.", node));
    t.set_node_id(node);
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(2 * kGiB);
    global.push_back(t);
  }
  Run(global);
  EXPECT_EQ(PerNode("agent"), (std::map<std::string, int>{{"b", 1}}));
  EXPECT_EQ(tasks_["agent.a"].status().err(), "no suitable node (insufficient memory on 1 node)");
  EXPECT_EQ(tasks_["agent.gone"].status().err(), "no suitable node (1 node is not ready)");
  EXPECT_EQ(s_.pending(), 2u);
}

TEST_F(SchedulerTest, ARemovedNodeKeepsItsTasksAccountedUntilTheyGo) {
  s_.UpsertNode(MakeNode("a", kGiB));
  Run(Replicas("web", 1, [](api::Task& t) {
    t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(kGiB);
  }));
  s_.RemoveNode("a");
  ASSERT_NE(s_.node("a"), nullptr);
  EXPECT_FALSE(s_.node("a")->present());
  s_.UpsertNode(MakeNode("a", kGiB));
  EXPECT_EQ(s_.node("a")->free_memory_bytes(), 0);
  s_.RemoveNode("a");
  s_.RemoveTask("web.1.v1");
  EXPECT_EQ(s_.node("a"), nullptr);
}

TEST_F(SchedulerTest, PendingTasksNoLongerWantedAreDropped) {
  s_.UpsertNode(MakeNode("a", kGiB));
  api::Task t = MakeTask("web", 1);
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(4 * kGiB);
  Run({t});
  EXPECT_EQ(s_.pending(), 1u);
  tasks_["web.1.v1"].set_desired_state(api::TASK_STATE_SHUTDOWN);
  s_.UpsertTask(tasks_["web.1.v1"]);
  EXPECT_EQ(s_.pending(), 0u);
  EXPECT_TRUE(s_.Schedule().empty());
}

}  // namespace
}  // namespace shoal::scheduler

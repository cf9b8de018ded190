#include "manager/orchestrator/reconcile.h"

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace shoal::manager::orchestrator {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

api::Service Replicated(uint64_t replicas, uint64_t version = 1) {
  api::Service s;
  s.mutable_meta()->set_id("svc");
  s.mutable_spec()->mutable_annotations()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
  s.mutable_spec_version()->set_index(version);
  return s;
}

api::Node MakeNode(const std::string& id,
                   api::NodeStatus::State state = api::NodeStatus::NODE_STATE_READY,
                   api::NodeSpec::Availability availability = api::NodeSpec::AVAILABILITY_ACTIVE) {
  api::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_status()->set_state(state);
  n.mutable_spec()->set_availability(availability);
  return n;
}

class ReconcileTest : public ::testing::Test {
 protected:
  // A task of the service in `slot`, on `node`, in `state`.
  const api::Task* Add(uint64_t slot, const std::string& node, api::TaskState state,
                       api::TaskState desired = api::TASK_STATE_RUNNING, uint64_t version = 1) {
    auto t = std::make_unique<api::Task>();
    t->mutable_meta()->set_id(absl::StrCat("t", ++made_));
    t->mutable_meta()->mutable_created_at()->set_seconds(absl::ToUnixSeconds(kNow) - 100 + made_);
    t->set_service_id("svc");
    t->set_slot(slot);
    t->set_node_id(node);
    t->mutable_status()->set_state(state);
    t->set_desired_state(desired);
    t->mutable_spec_version()->set_index(version);
    tasks_.push_back(std::move(t));
    return tasks_.back().get();
  }
  std::vector<const api::Task*> Tasks() const {
    std::vector<const api::Task*> out;
    for (const auto& t : tasks_) out.push_back(t.get());
    return out;
  }
  NodeLookup Nodes() {
    return [this](const std::string& id) -> const api::Node* {
      auto it = nodes_.find(id);
      return it == nodes_.end() ? nullptr : &it->second;
    };
  }
  Actions Run(const api::Service& s, absl::Time now = kNow) {
    return ReconcileReplicated(s, Tasks(), Nodes(), history_, now, ids_);
  }
  static std::map<std::string, api::TaskState> Desired(const Actions& a) {
    std::map<std::string, api::TaskState> out;
    for (const auto& t : a.update) out[t.meta().id()] = t.desired_state();
    return out;
  }

  int made_ = 0;
  std::vector<std::unique_ptr<api::Task>> tasks_;
  std::map<std::string, api::Node> nodes_{{"a", MakeNode("a")}, {"b", MakeNode("b")}};
  RestartHistory history_;
  IdGenerator ids_{SeededRandomBytes(7)};
};

TEST_F(ReconcileTest, CreatesOneTaskPerMissingSlot) {
  Add(2, "a", api::TASK_STATE_RUNNING);
  const Actions a = Run(Replicated(4));
  ASSERT_EQ(a.create.size(), 3u);
  std::vector<uint64_t> slots;
  for (const auto& t : a.create) {
    slots.push_back(t.slot());
    EXPECT_EQ(t.status().state(), api::TASK_STATE_NEW);
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
    EXPECT_EQ(t.service_id(), "svc");
    EXPECT_EQ(t.spec_version().index(), 1u);
    EXPECT_EQ(t.service_annotations().name(), "web");
    EXPECT_EQ(t.meta().id().size(), kIdLength);
  }
  EXPECT_EQ(slots, (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_TRUE(a.update.empty());
}

TEST_F(ReconcileTest, NothingToDoWhenEverySlotRuns) {
  Add(1, "a", api::TASK_STATE_RUNNING);
  Add(2, "b", api::TASK_STATE_RUNNING);
  Add(1, "a", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);  // history
  EXPECT_TRUE(Run(Replicated(2)).empty());
}

TEST_F(ReconcileTest, ScaleDownRemovesNotRunningFirstThenFromTheBusiestNode) {
  const api::Task* s1 = Add(1, "a", api::TASK_STATE_RUNNING);
  const api::Task* s2 = Add(2, "a", api::TASK_STATE_RUNNING);
  const api::Task* s3 = Add(3, "b", api::TASK_STATE_RUNNING);
  const api::Task* s4 = Add(4, "b", api::TASK_STATE_ASSIGNED);
  const api::Task* s5 = Add(5, "a", api::TASK_STATE_RUNNING);
  const Actions a = Run(Replicated(2));
  // s4 is not running; then node a holds 3: its highest slots go (s5, s2).
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {s4->meta().id(), api::TASK_STATE_REMOVE},
                            {s5->meta().id(), api::TASK_STATE_REMOVE},
                            {s2->meta().id(), api::TASK_STATE_REMOVE}}));
  (void)s1;
  (void)s3;
  EXPECT_TRUE(a.create.empty());
}

TEST_F(ReconcileTest, AStoppedTaskIsRestartedAfterTheDelay) {
  const api::Task* failed = Add(1, "a", api::TASK_STATE_FAILED);
  Actions a = Run(Replicated(1));
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {failed->meta().id(), api::TASK_STATE_SHUTDOWN}}));
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 1u);
  EXPECT_EQ(a.create[0].desired_state(), api::TASK_STATE_READY) << "started after the delay";
  EXPECT_EQ(a.wake, kNow + absl::Seconds(5));

  // As written: the old one shut down, the new one READY-desired, created now.
  tasks_.clear();
  Add(1, "a", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  api::Task* next = const_cast<api::Task*>(Add(1, "b", api::TASK_STATE_READY, api::TASK_STATE_READY));
  next->mutable_meta()->mutable_created_at()->set_seconds(absl::ToUnixSeconds(kNow));
  a = Run(Replicated(1), kNow + absl::Seconds(4));
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.wake, kNow + absl::Seconds(5));
  a = Run(Replicated(1), kNow + absl::Seconds(5));
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {next->meta().id(), api::TASK_STATE_RUNNING}}));
}

TEST_F(ReconcileTest, RestartConditionsAndMaxAttemptsWithinTheWindow) {
  api::Service s = Replicated(1);
  auto* policy = s.mutable_spec()->mutable_task()->mutable_restart();
  policy->mutable_delay()->set_seconds(0);

  policy->set_condition(api::RestartPolicy::RESTART_CONDITION_ON_FAILURE);
  Add(1, "a", api::TASK_STATE_COMPLETE);
  EXPECT_TRUE(Run(s).empty()) << "a clean exit is not a failure";
  tasks_.clear();
  Add(1, "a", api::TASK_STATE_FAILED);
  Actions a = Run(s);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].desired_state(), api::TASK_STATE_RUNNING) << "no delay";

  policy->set_condition(api::RestartPolicy::RESTART_CONDITION_NONE);
  EXPECT_TRUE(Run(s).empty());

  // Two attempts per minute.
  policy->set_condition(api::RestartPolicy::RESTART_CONDITION_ANY);
  policy->set_max_attempts(2);
  policy->mutable_window()->set_seconds(60);
  RestartHistory fresh;
  history_ = fresh;
  EXPECT_EQ(Run(s, kNow).create.size(), 1u);
  EXPECT_EQ(Run(s, kNow + absl::Seconds(10)).create.size(), 1u);
  EXPECT_TRUE(Run(s, kNow + absl::Seconds(20)).empty()) << "third within the window";
  EXPECT_EQ(Run(s, kNow + absl::Seconds(61)).create.size(), 1u) << "the first left the window";
}

TEST_F(ReconcileTest, TasksOnDrainedDownOrRemovedNodesAreReplacedAtOnce) {
  nodes_["c"] = MakeNode("c", api::NodeStatus::NODE_STATE_DOWN);
  nodes_["d"] = MakeNode("d", api::NodeStatus::NODE_STATE_READY, api::NodeSpec::AVAILABILITY_DRAIN);
  nodes_["e"] = MakeNode("e", api::NodeStatus::NODE_STATE_UNKNOWN);
  nodes_["p"] = MakeNode("p", api::NodeStatus::NODE_STATE_READY, api::NodeSpec::AVAILABILITY_PAUSE);
  const api::Task* on_down = Add(1, "c", api::TASK_STATE_RUNNING);
  const api::Task* on_drained = Add(2, "d", api::TASK_STATE_RUNNING);
  const api::Task* on_gone = Add(3, "zz", api::TASK_STATE_RUNNING);
  Add(4, "e", api::TASK_STATE_RUNNING);  // unknown (after a leader change): given its grace
  Add(5, "p", api::TASK_STATE_RUNNING);  // paused: keeps its tasks
  Add(6, "", api::TASK_STATE_PENDING);   // not on a node yet
  const Actions a = Run(Replicated(6));
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {on_down->meta().id(), api::TASK_STATE_SHUTDOWN},
                            {on_drained->meta().id(), api::TASK_STATE_SHUTDOWN},
                            {on_gone->meta().id(), api::TASK_STATE_SHUTDOWN}}));
  ASSERT_EQ(a.create.size(), 3u);
  for (const auto& t : a.create) EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
}

TEST_F(ReconcileTest, DuplicatesInASlotKeepTheNewest) {
  const api::Task* older = Add(1, "a", api::TASK_STATE_RUNNING);
  const api::Task* newer = Add(1, "b", api::TASK_STATE_RUNNING);
  const Actions a = Run(Replicated(1));
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {older->meta().id(), api::TASK_STATE_SHUTDOWN}}));
  (void)newer;
}

TEST_F(ReconcileTest, GlobalRunsOneTaskPerEligibleNodeAndFollowsThem) {
  api::Service s;
  s.mutable_meta()->set_id("svc");
  s.mutable_spec()->mutable_global();
  s.mutable_spec()->mutable_task()->mutable_placement()->add_constraints("node.labels.agent!=no");
  api::Node a = MakeNode("a"), b = MakeNode("b");
  api::Node c = MakeNode("c", api::NodeStatus::NODE_STATE_READY, api::NodeSpec::AVAILABILITY_DRAIN);
  api::Node d = MakeNode("d");
  (*d.mutable_spec()->mutable_annotations()->mutable_labels())["agent"] = "no";
  api::Node e = MakeNode("e", api::NodeStatus::NODE_STATE_DOWN);
  const api::Task* on_b = Add(0, "b", api::TASK_STATE_RUNNING);
  const api::Task* on_c = Add(0, "c", api::TASK_STATE_RUNNING);
  const api::Task* on_d = Add(0, "d", api::TASK_STATE_RUNNING);
  const Actions out = ReconcileGlobal(s, Tasks(), {&a, &b, &c, &d, &e}, history_, kNow, ids_);
  ASSERT_EQ(out.create.size(), 1u);
  EXPECT_EQ(out.create[0].node_id(), "a");
  EXPECT_EQ(Desired(out), (std::map<std::string, api::TaskState>{
                              {on_c->meta().id(), api::TASK_STATE_REMOVE},
                              {on_d->meta().id(), api::TASK_STATE_REMOVE}}));
  (void)on_b;
}

TEST_F(ReconcileTest, TheConstraintEnforcerReplacesTasksOnNodesThatNoLongerMatch) {
  api::Service s = Replicated(2);
  s.mutable_spec()->mutable_task()->mutable_placement()->add_constraints("node.labels.zone==a");
  (*nodes_["a"].mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
  (*nodes_["b"].mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "b";  // changed
  Add(1, "a", api::TASK_STATE_RUNNING);
  const api::Task* wrong = Add(2, "b", api::TASK_STATE_RUNNING);
  const Actions a = Run(s);
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {wrong->meta().id(), api::TASK_STATE_SHUTDOWN}}));
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 2u);
}

api::Service Job(std::optional<uint64_t> concurrent, std::optional<uint64_t> total,
                 uint64_t iteration = 0) {
  api::Service s;
  s.mutable_meta()->set_id("svc");
  auto* job = s.mutable_spec()->mutable_replicated_job();
  if (concurrent) job->set_max_concurrent(*concurrent);
  if (total) job->set_total_completions(*total);
  s.mutable_job_status()->mutable_job_iteration()->set_index(iteration);
  return s;
}

TEST_F(ReconcileTest, AReplicatedJobRunsItsCompletionsMaxConcurrentAtATime) {
  Actions a = ReconcileJob(Job(2, 5), Tasks(), {}, history_, kNow, ids_);
  ASSERT_EQ(a.create.size(), 2u) << "two at a time";
  EXPECT_EQ(a.create[0].slot(), 1u);
  EXPECT_EQ(a.create[1].slot(), 2u);
  // One completed, one still running: one more starts.
  Add(1, "a", api::TASK_STATE_COMPLETE);
  Add(2, "b", api::TASK_STATE_RUNNING);
  a = ReconcileJob(Job(2, 5), Tasks(), {}, history_, kNow, ids_);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 3u);
  // A failure is run again in its slot; four done and one failing again with condition none
  // finishes the job short.
  tasks_.clear();
  for (uint64_t slot = 1; slot <= 4; ++slot) Add(slot, "a", api::TASK_STATE_COMPLETE);
  const api::Task* failed = Add(5, "b", api::TASK_STATE_FAILED);
  a = ReconcileJob(Job(2, 5), Tasks(), {}, history_, kNow, ids_);
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {failed->meta().id(), api::TASK_STATE_SHUTDOWN}}));
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 5u);
  api::Service none = Job(2, 5);
  none.mutable_spec()->mutable_task()->mutable_restart()->set_condition(
      api::RestartPolicy::RESTART_CONDITION_NONE);
  EXPECT_TRUE(ReconcileJob(none, Tasks(), {}, history_, kNow, ids_).empty());
  // All five done: nothing more, however often it is looked at.
  tasks_.clear();
  for (uint64_t slot = 1; slot <= 5; ++slot) Add(slot, "a", api::TASK_STATE_COMPLETE);
  EXPECT_TRUE(ReconcileJob(Job(2, 5), Tasks(), {}, history_, kNow, ids_).empty());
}

TEST_F(ReconcileTest, ARerunReplacesThePreviousIterationsTasks) {
  const api::Task* old = Add(1, "a", api::TASK_STATE_RUNNING);
  const Actions a = ReconcileJob(Job(std::nullopt, std::nullopt, 9), Tasks(), {}, history_, kNow, ids_);
  EXPECT_EQ(Desired(a), (std::map<std::string, api::TaskState>{
                            {old->meta().id(), api::TASK_STATE_SHUTDOWN}}));
  ASSERT_EQ(a.create.size(), 1u) << "defaults: one completion";
  EXPECT_EQ(a.create[0].job_iteration().index(), 9u);
}

TEST_F(ReconcileTest, AGlobalJobRunsOncePerEligibleNode) {
  api::Service s;
  s.mutable_meta()->set_id("svc");
  s.mutable_spec()->mutable_global_job();
  api::Node a = MakeNode("a"), b = MakeNode("b");
  api::Node down = MakeNode("c", api::NodeStatus::NODE_STATE_DOWN);
  Add(0, "a", api::TASK_STATE_COMPLETE);
  const Actions out = ReconcileJob(s, Tasks(), {&a, &b, &down}, history_, kNow, ids_);
  ASSERT_EQ(out.create.size(), 1u) << "a is done, c is down";
  EXPECT_EQ(out.create[0].node_id(), "b");
}

TEST_F(ReconcileTest, RemovingAServiceRemovesItsTasks) {
  Add(1, "a", api::TASK_STATE_RUNNING);
  Add(2, "a", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  Add(3, "a", api::TASK_STATE_RUNNING, api::TASK_STATE_REMOVE);
  EXPECT_EQ(RemoveAll(Tasks()).update.size(), 2u);
}

TEST_F(ReconcileTest, TheReaperKeepsTheHistoryLimitPerSlotAndDeletesRemovedTasksOnceStopped) {
  for (int i = 0; i < 7; ++i) Add(1, "a", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  Add(1, "a", api::TASK_STATE_RUNNING);
  Add(2, "a", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  const api::Task* removed_stopped = Add(3, "a", api::TASK_STATE_SHUTDOWN, api::TASK_STATE_REMOVE);
  Add(4, "a", api::TASK_STATE_RUNNING, api::TASK_STATE_REMOVE);  // still stopping
  const api::Task* removed_pending = Add(5, "", api::TASK_STATE_PENDING, api::TASK_STATE_REMOVE);
  std::vector<std::string> reaped = Reap(Tasks(), 5);
  std::sort(reaped.begin(), reaped.end());
  // Slot 1: 7 stopped + 1 running, keep 5 in all: the 3 oldest stopped go (t1, t2, t3).
  std::vector<std::string> want = {"t1", "t2", "t3", removed_stopped->meta().id(),
                                   removed_pending->meta().id()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(reaped, want);
  // History 1: slot 1 keeps only its running task (7 go); slot 2 keeps its one stopped task.
  EXPECT_EQ(Reap(Tasks(), 1).size(), 7u + 2);
}

}  // namespace
}  // namespace shoal::manager::orchestrator

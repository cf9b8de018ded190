#include "cli/progress.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

using ::testing::HasSubstr;

api::Service Replicated(uint64_t replicas, uint64_t spec_version = 0) {
  api::Service s;
  s.mutable_meta()->set_id("svc");
  s.mutable_spec()->mutable_annotations()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
  s.mutable_spec_version()->set_index(spec_version);
  return s;
}

api::Task Task(uint64_t slot, api::TaskState state, uint64_t spec_version = 0,
               api::TaskState desired = api::TASK_STATE_RUNNING, int64_t created = 1) {
  api::Task t;
  t.mutable_meta()->set_id("t" + std::to_string(slot) + "-" + std::to_string(created));
  t.mutable_meta()->mutable_created_at()->set_seconds(created);
  t.set_service_id("svc");
  t.set_slot(slot);
  t.set_node_id("node-" + std::to_string(slot));
  t.mutable_status()->set_state(state);
  t.mutable_spec_version()->set_index(spec_version);
  t.set_desired_state(desired);
  return t;
}

TEST(ProgressTest, CountsRunningReplicasOfTheCurrentSpec) {
  const auto p = ComputeProgress(
      Replicated(3), {Task(1, api::TASK_STATE_RUNNING), Task(2, api::TASK_STATE_PREPARING)}, {},
      Waiting::kCreate);
  EXPECT_EQ(p.done, 1u);
  EXPECT_EQ(p.total, 3u);
  EXPECT_FALSE(p.converged);
  ASSERT_EQ(p.slots.size(), 3u);
  EXPECT_EQ(p.slots[1].state, api::TASK_STATE_PREPARING);
  EXPECT_EQ(p.slots[2].state, api::TASK_STATE_NEW) << "no task yet";
}

TEST(ProgressTest, ConvergesWhenEverySlotRunsTheNewSpecAndNothingElse) {
  std::vector<api::Task> tasks = {Task(1, api::TASK_STATE_RUNNING, 7),
                                  Task(2, api::TASK_STATE_RUNNING, 3)};
  EXPECT_FALSE(ComputeProgress(Replicated(2, 7), tasks, {}, Waiting::kUpdate).converged)
      << "slot 2 runs the old spec";
  tasks[1] = Task(2, api::TASK_STATE_RUNNING, 7);
  EXPECT_TRUE(ComputeProgress(Replicated(2, 7), tasks, {}, Waiting::kUpdate).converged);
  tasks.push_back(Task(3, api::TASK_STATE_RUNNING, 7));
  EXPECT_FALSE(ComputeProgress(Replicated(2, 7), tasks, {}, Waiting::kUpdate).converged)
      << "slot 3 still wanted running after a scale down";
  tasks.back().set_desired_state(api::TASK_STATE_SHUTDOWN);
  EXPECT_TRUE(ComputeProgress(Replicated(2, 7), tasks, {}, Waiting::kUpdate).converged);
}

TEST(ProgressTest, AFailedTaskShowsItsErrorAndTheNewestTaskOfASlotCounts) {
  api::Task failed = Task(1, api::TASK_STATE_FAILED, 0, api::TASK_STATE_SHUTDOWN, 1);
  failed.mutable_status()->set_err("image not found");
  auto p = ComputeProgress(Replicated(1), {failed}, {}, Waiting::kCreate);
  EXPECT_EQ(p.slots[0].message, "image not found");
  EXPECT_EQ(SlotLine(p.slots[0]), "1/1: failed    image not found");
  p = ComputeProgress(Replicated(1),
                      {failed, Task(1, api::TASK_STATE_RUNNING, 0, api::TASK_STATE_RUNNING, 2)}, {},
                      Waiting::kCreate);
  EXPECT_TRUE(p.converged);
}

TEST(ProgressTest, APendingTaskShowsWhy) {
  api::Task t = Task(1, api::TASK_STATE_PENDING);
  t.mutable_status()->set_message("no suitable node (insufficient memory on 3 nodes)");
  const auto p = ComputeProgress(Replicated(1), {t}, {}, Waiting::kCreate);
  EXPECT_EQ(SlotLine(p.slots[0]),
            "1/1: pending   no suitable node (insufficient memory on 3 nodes)");
}

TEST(ProgressTest, APausedOrRolledBackUpdateStopsTheWait) {
  api::Service s = Replicated(1, 5);
  s.mutable_update_status()->set_state(api::UpdateStatus::UPDATE_STATE_PAUSED);
  s.mutable_update_status()->set_message("update paused due to failure of task x");
  EXPECT_EQ(ComputeProgress(s, {}, {}, Waiting::kUpdate).failure,
            "update paused due to failure of task x");
  s.mutable_update_status()->set_state(api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED);
  EXPECT_FALSE(ComputeProgress(s, {}, {}, Waiting::kUpdate).failure.empty());
  EXPECT_TRUE(ComputeProgress(s, {}, {}, Waiting::kRollback).failure.empty());
}

TEST(ProgressTest, GlobalServicesAreShownPerNode) {
  api::Service s = Replicated(0);
  s.mutable_spec()->mutable_global();
  api::Task a = Task(0, api::TASK_STATE_RUNNING);
  a.set_node_id("n1");
  api::Task b = Task(0, api::TASK_STATE_ASSIGNED);
  b.set_node_id("n2");
  auto p = ComputeProgress(s, {a, b}, {{"n1", "host-1"}}, Waiting::kCreate);
  ASSERT_EQ(p.slots.size(), 2u);
  EXPECT_EQ(p.slots[0].label, "host-1");
  EXPECT_EQ(p.slots[1].label, "n2");
  EXPECT_FALSE(p.converged);
  b.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  EXPECT_TRUE(ComputeProgress(s, {a, b}, {}, Waiting::kCreate).converged);
}

TEST(ProgressTest, JobsCountCompletions) {
  api::Service s;
  s.mutable_spec()->mutable_replicated_job()->set_total_completions(2);
  std::vector<api::Task> tasks = {Task(1, api::TASK_STATE_COMPLETE, 0, api::TASK_STATE_COMPLETE),
                                  Task(2, api::TASK_STATE_RUNNING, 0, api::TASK_STATE_COMPLETE)};
  auto p = ComputeProgress(s, tasks, {}, Waiting::kCreate);
  EXPECT_TRUE(p.job);
  EXPECT_EQ(OverallLine(p), "job progress: 1 out of 2 complete");
  tasks[1].mutable_status()->set_state(api::TASK_STATE_COMPLETE);
  EXPECT_TRUE(ComputeProgress(s, tasks, {}, Waiting::kCreate).converged);
}

TEST(ProgressTest, BarsFillWithTheState) {
  SlotProgress s;
  s.label = "1/3";
  s.state = api::TASK_STATE_RUNNING;
  EXPECT_EQ(SlotLine(s), "1/3: running   [" + std::string(50, '=') + ">]");
  s.state = api::TASK_STATE_PREPARING;
  const std::string line = SlotLine(s);
  EXPECT_THAT(line, HasSubstr("1/3: preparing [===="));
  EXPECT_EQ(line.size(), SlotLine(SlotProgress{"1/3", api::TASK_STATE_RUNNING, "", true}).size());
}

TEST(ProgressTest, PlainOutputPrintsOnlyChangedLines) {
  std::ostringstream out;
  ProgressPrinter printer(out, /*tty=*/false);
  Progress p;
  p.total = 1;
  p.slots.push_back({"1/1", api::TASK_STATE_ASSIGNED, "", false});
  printer.Show(p);
  printer.Show(p);
  p.slots[0].state = api::TASK_STATE_RUNNING;
  p.done = 1;
  printer.Show(p);
  const std::string s = out.str();
  EXPECT_EQ(s.find("\x1b"), std::string::npos);
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 4) << s;
  EXPECT_THAT(s, HasSubstr("overall progress: 0 out of 1 tasks\n1/1: assigned  ["));
  EXPECT_THAT(s, HasSubstr("overall progress: 1 out of 1 tasks\n1/1: running   ["));
}

TEST(ProgressTest, TerminalOutputRedrawsInPlace) {
  std::ostringstream out;
  ProgressPrinter printer(out, /*tty=*/true);
  Progress p;
  p.total = 1;
  p.slots.push_back({"1/1", api::TASK_STATE_ASSIGNED, "", false});
  printer.Show(p);
  printer.Show(p);
  EXPECT_THAT(out.str(), HasSubstr("\x1b[2A")) << "moved up over the 2 lines drawn";
}

}  // namespace
}  // namespace shoal::cli

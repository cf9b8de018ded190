#include "worker/task_controller.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/sim_executor.h"

namespace shoal::worker {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

api::Task Assigned(const std::string& image,
                   api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.mutable_meta()->set_id("t1");
  t.mutable_spec()->mutable_container()->set_image(image);
  t.set_desired_state(desired);
  t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  return t;
}

std::vector<api::TaskState> States(const std::vector<api::TaskStatus>& s) {
  std::vector<api::TaskState> out;
  for (const auto& x : s) out.push_back(x.state());
  return out;
}

class TaskControllerTest : public ::testing::Test {
 protected:
  SimExecutor sim_;
};

TEST_F(TaskControllerTest, AnAssignedTaskRunsThroughEveryStateInOrder) {
  TaskController c(Assigned("nginx"), sim_);
  const auto out = c.Step(kNow);
  EXPECT_EQ(States(out),
            (std::vector<api::TaskState>{api::TASK_STATE_ACCEPTED, api::TASK_STATE_PREPARING,
                                         api::TASK_STATE_READY, api::TASK_STATE_STARTING,
                                         api::TASK_STATE_RUNNING}));
  EXPECT_EQ(out.back().timestamp().seconds(), 1700000000);
  EXPECT_TRUE(c.Step(kNow).empty()) << "running, nothing new";
}

TEST_F(TaskControllerTest, ExitsCompleteOrFail) {
  TaskController done(Assigned("sim:exit0"), sim_);
  EXPECT_EQ(States(done.Step(kNow)).back(), api::TASK_STATE_COMPLETE);
  EXPECT_TRUE(done.finished());

  TaskController failed(Assigned("sim:fail"), sim_);
  const auto out = failed.Step(kNow);
  EXPECT_EQ(out.back().state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(out.back().err(), "task: non-zero exit (1)");
}

TEST_F(TaskControllerTest, AFailureBeforeStartingRejectsTheTask) {
  TaskController c(Assigned("sim:reject"), sim_);
  const auto out = c.Step(kNow);
  EXPECT_EQ(out.back().state(), api::TASK_STATE_REJECTED);
  EXPECT_EQ(out.back().err(), "image sim:reject not found");

  api::Task no_container = Assigned("x");
  no_container.mutable_spec()->clear_container();
  TaskController bad(no_container, sim_);
  EXPECT_EQ(bad.Step(kNow).back().state(), api::TASK_STATE_REJECTED);
}

TEST_F(TaskControllerTest, ADelayedStartWaitsPreparedUntilWantedRunning) {
  TaskController c(Assigned("nginx", api::TASK_STATE_READY), sim_);
  EXPECT_EQ(States(c.Step(kNow)).back(), api::TASK_STATE_READY);
  EXPECT_TRUE(c.Step(kNow).empty());
  c.Update(Assigned("nginx", api::TASK_STATE_RUNNING));
  EXPECT_EQ(States(c.Step(kNow)),
            (std::vector<api::TaskState>{api::TASK_STATE_STARTING, api::TASK_STATE_RUNNING}));
}

TEST_F(TaskControllerTest, ShutdownStopsARunningTaskOrOneThatNeverStarted) {
  TaskController running(Assigned("nginx"), sim_);
  running.Step(kNow);
  running.Update(Assigned("nginx", api::TASK_STATE_SHUTDOWN));
  EXPECT_EQ(States(running.Step(kNow)), (std::vector<api::TaskState>{api::TASK_STATE_SHUTDOWN}));
  EXPECT_TRUE(running.finished());

  TaskController never(Assigned("nginx", api::TASK_STATE_SHUTDOWN), sim_);
  EXPECT_EQ(States(never.Step(kNow)), (std::vector<api::TaskState>{api::TASK_STATE_SHUTDOWN}));
}

TEST_F(TaskControllerTest, ALaggingManagerCopyMovesNothingBackwards) {
  TaskController c(Assigned("nginx"), sim_);
  c.Step(kNow);
  ASSERT_EQ(c.state(), api::TASK_STATE_RUNNING);
  c.Update(Assigned("nginx"));  // still says ASSIGNED
  EXPECT_EQ(c.state(), api::TASK_STATE_RUNNING);
  EXPECT_TRUE(c.Step(kNow).empty());
}

}  // namespace
}  // namespace shoal::worker

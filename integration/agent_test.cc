// The real worker agent (worker/agent.h) against three managers in one process, over mutual
// TLS: it registers, runs what it is assigned on the sim executor and reports each state,
// follows a leader change, and finds its tasks again after a restart.
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "integration/testing/cluster_test_base.h"
#include "worker/sim_executor.h"

namespace shoal::integration {
namespace {

// Waits for a condition on an agent's own view (which no store event announces), looking
// every few milliseconds; false after `wait`.
bool Eventually(const std::function<bool()>& done, absl::Duration wait = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));  // polling a view, not synchronising data
  }
  return done();
}

// The tasks of a service, by state.
std::map<api::TaskState, int> States(const ReadTx& tx, const std::string& service) {
  std::map<api::TaskState, int> out;
  const api::Service* s = tx.GetByName<api::Service>(service);
  if (s == nullptr) return out;
  for (const api::Task* t : tx.TasksOfService(s->meta().id())) ++out[t->status().state()];
  return out;
}

class AgentTest : public ClusterTestBase {
 protected:
  AgentTest() {
    workers_ = 0;
    agents_ = 3;
  }

  size_t AgentsRunning() {
    size_t n = 0;
    for (int i = 0; i < cluster_->agents(); ++i) n += cluster_->agent(i).running();
    return n;
  }
};

TEST_F(AgentTest, AgentsRunTheReplicasAndReportFailuresAndRejections) {
  CreateService("web", 5, [](api::ServiceSpec& s) {
    s.mutable_task()->mutable_container()->set_image("sim:run");
  });
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 5); }));
  EXPECT_TRUE(Eventually([&] { return AgentsRunning() == 5; })) << AgentsRunning();
  // Spread over the three agents: 2, 2, 1.
  std::multiset<size_t> per_agent;
  for (int i = 0; i < 3; ++i) per_agent.insert(cluster_->agent(i).running());
  EXPECT_EQ(per_agent, (std::multiset<size_t>{1, 2, 2}));

  // A task that exits 1 fails with its exit code; one whose image is missing is rejected.
  for (const char* image : {"sim:fail", "sim:reject"}) {
    CreateService(absl::StrCat("bad-", image + 4), 1, [&](api::ServiceSpec& s) {
      s.mutable_task()->mutable_container()->set_image(image);
      s.mutable_task()->mutable_restart()->set_condition(api::RestartPolicy::RESTART_CONDITION_NONE);
    });
  }
  std::string failed_err, rejected_err;
  ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
    for (const char* name : {"bad-fail", "bad-reject"}) {
      const api::Service* s = tx.GetByName<api::Service>(name);
      if (s == nullptr) return false;
      for (const api::Task* t : tx.TasksOfService(s->meta().id())) {
        if (t->status().state() == api::TASK_STATE_FAILED) failed_err = t->status().err();
        if (t->status().state() == api::TASK_STATE_REJECTED) rejected_err = t->status().err();
      }
    }
    return !failed_err.empty() && !rejected_err.empty();
  }));
  EXPECT_EQ(failed_err, "task: non-zero exit (1)");
  EXPECT_EQ(rejected_err, "image sim:reject not found");
}

TEST_F(AgentTest, AgentsFollowANewLeaderAndItsTasksKeepRunning) {
  CreateService("web", 4, [](api::ServiceSpec& s) {
    s.mutable_task()->mutable_container()->set_image("sim:run");
  });
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 4); }));
  std::vector<int> before;
  for (int i = 0; i < 3; ++i) before.push_back(cluster_->agent(i).sessions());
  std::set<std::string> tasks_before;
  for (int i = 0; i < 3; ++i) {
    for (const auto& [id, state] : cluster_->agent(i).tasks()) tasks_before.insert(id);
  }

  cluster_->KillManager(cluster_->Leader());
  Scale("web", 6);
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 6); }));
  for (int i = 0; i < 3; ++i) {
    // Each opens a session with the new leader (some only after the scale converged).
    EXPECT_TRUE(Eventually([&] { return cluster_->agent(i).sessions() > before[i]; }))
        << "agent " << i << " opened no new session";
  }
  // The four tasks that ran before still run: a leader change replaces none.
  ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
    for (const std::string& id : tasks_before) {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr || t->status().state() != api::TASK_STATE_RUNNING) return false;
    }
    return true;
  }));
}

// A sim executor whose tasks outlive the agent, as the process executor's do.
class AdoptingSim : public worker::SimExecutor {
 public:
  absl::StatusOr<std::unique_ptr<worker::TaskRunner>> Adopt(const api::Task& task) override {
    ++adopted;
    auto r = Runner(task);
    if (r.ok()) (void)(*r)->Start();
    return r;
  }
  std::atomic<int> adopted{0};
};

class AdoptingAgentTest : public AgentTest {
 protected:
  AdoptingAgentTest() {
    agents_ = 1;
    executor_ = &sim_;
  }
  AdoptingSim sim_;
};

TEST_F(AdoptingAgentTest, ARestartedAgentAdoptsItsRunningTasks) {
  CreateService("web", 3, [](api::ServiceSpec& s) {
    s.mutable_task()->mutable_container()->set_image("sim:run");
  });
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 3); }));
  ASSERT_TRUE(Eventually([&] { return cluster_->agent(0).running() == 3; }));
  cluster_->StopAgent(0);
  worker::Agent& again = cluster_->StartAgent(0);
  EXPECT_EQ(again.tasks().size(), 3u);  // loaded from its task database before any session
  EXPECT_EQ(sim_.adopted.load(), 3);
  ASSERT_TRUE(Eventually([&] { return again.sessions() > 0 && again.running() == 3; }));
  // Nothing was replaced: still the three tasks, running.
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) {
    return States(tx, "web") == std::map<api::TaskState, int>{{api::TASK_STATE_RUNNING, 3}};
  }));
}

TEST_F(AdoptingAgentTest, ARestartedAgentStopsAndForgetsWhatIsNoLongerAssigned) {
  CreateService("web", 2, [](api::ServiceSpec& s) {
    s.mutable_task()->mutable_container()->set_image("sim:run");
  });
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 2); }));
  ASSERT_TRUE(Eventually([&] { return cluster_->agent(0).running() == 2; }));
  cluster_->StopAgent(0);
  {
    api::RemoveServiceRequest req;
    req.set_service_id("web");
    api::RemoveServiceResponse resp;
    ASSERT_TRUE(Call(&api::Control::Stub::RemoveService, req, &resp).ok());
  }
  worker::Agent& again = cluster_->StartAgent(0);
  EXPECT_EQ(again.tasks().size(), 2u);
  EXPECT_TRUE(Eventually([&] { return again.tasks().empty(); }))
      << again.tasks().size() << " tasks left";
  // And the task database forgot them: a second restart finds nothing.
  cluster_->StopAgent(0);
  EXPECT_TRUE(cluster_->StartAgent(0).tasks().empty());
}

// With the plain sim executor a restarted agent cannot find its tasks: they fail as lost and
// the orchestrator replaces them.
TEST_F(AgentTest, TasksARestartedAgentCannotFindAreReportedLostAndReplaced) {
  CreateService("web", 3, [](api::ServiceSpec& s) {
    s.mutable_task()->mutable_container()->set_image("sim:run");
    s.mutable_task()->mutable_placement()->add_constraints("node.hostname==agent-1");
  });
  ASSERT_TRUE(cluster_->WaitFor([](const ReadTx& tx) { return Running(tx, "web", 3); }));
  ASSERT_TRUE(Eventually([&] { return cluster_->agent(0).running() == 3; }));
  cluster_->StopAgent(0);
  cluster_->StartAgent(0);
  std::string err;
  ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
    const auto states = States(tx, "web");
    auto failed = states.find(api::TASK_STATE_FAILED);
    if (failed == states.end() || failed->second != 3 || !Running(tx, "web", 3)) return false;
    const api::Service* s = tx.GetByName<api::Service>("web");
    for (const api::Task* t : tx.TasksOfService(s->meta().id())) {
      if (t->status().state() == api::TASK_STATE_FAILED) err = t->status().err();
    }
    return true;
  }));
  EXPECT_EQ(err, "this executor's tasks do not outlive the worker");
}

}  // namespace
}  // namespace shoal::integration

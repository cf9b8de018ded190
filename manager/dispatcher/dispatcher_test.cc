#include "manager/dispatcher/dispatcher.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager::dispatcher {
namespace {

using store::ReadTx;
using store::WriteTx;

template <typename M>
class Recorder : public Dispatcher::SessionSink, public Dispatcher::AssignmentSink {
 public:
  void Send(const api::SessionMessage& m) override { sessions.push_back(m); }
  void Send(const api::AssignmentsMessage& m) override { assignments.push_back(m); }
  void End(const absl::Status& why) override { ended = why; }
  std::vector<api::SessionMessage> sessions;
  std::vector<api::AssignmentsMessage> assignments;
  absl::Status ended = absl::OkStatus();
};
using Sink = Recorder<void>;

api::NodeDescription Description(const std::string& host) {
  api::NodeDescription d;
  d.set_hostname(host);
  d.mutable_resources()->set_nano_cpus(2'000'000'000);
  d.mutable_resources()->set_memory_bytes(int64_t{4} << 30);
  return d;
}

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() {
    raft_.Join(&store_);
    opts_.store = &store_;
    opts_.clock = &clock_;
    opts_.ids = &ids_;
    opts_.random = SeededRandomBytes(9);
  }

  std::unique_ptr<Dispatcher> Make() {
    auto d = std::make_unique<Dispatcher>(opts_);
    EXPECT_TRUE(d->Start(/*run_thread=*/false).ok());
    return d;
  }

  template <typename T>
  void Put(const T& o) {
    auto r = store_.Update([&](WriteTx& tx) { return tx.Create(o); });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  api::Node Node(const std::string& id) {
    api::Node out;
    store_.View([&](const ReadTx& tx) {
      if (const auto* n = tx.Get<api::Node>(id)) out = *n;
    });
    return out;
  }
  api::Task Task(const std::string& id) {
    api::Task out;
    store_.View([&](const ReadTx& tx) { out = *tx.Get<api::Task>(id); });
    return out;
  }

  static api::Task AssignedTask(const std::string& id, const std::string& node,
                                std::vector<std::string> secrets = {}) {
    api::Task t;
    t.mutable_meta()->set_id(id);
    t.set_service_id("svc");
    t.set_node_id(node);
    t.set_desired_state(api::TASK_STATE_RUNNING);
    t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
    for (const std::string& s : secrets) {
      auto* r = t.mutable_spec()->mutable_container()->add_secrets();
      r->set_secret_id(s);
      r->set_secret_name(s);
    }
    return t;
  }

  ManualClock clock_;
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  IdGenerator ids_{SeededRandomBytes(3)};
  Dispatcher::Options opts_;
};

TEST_F(DispatcherTest, ASessionRegistersTheNodeAndReplacesAnOlderOne) {
  auto d = Make();
  auto first = std::make_shared<Sink>();
  auto s1 = d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("host-1"), "10.0.0.1", first);
  ASSERT_TRUE(s1.ok()) << s1.status();
  const api::Node n = Node("n1");
  EXPECT_EQ(n.status().state(), api::NodeStatus::NODE_STATE_READY);
  EXPECT_EQ(n.status().addr(), "10.0.0.1");
  EXPECT_EQ(n.description().hostname(), "host-1");
  ASSERT_EQ(first->sessions.size(), 1u);
  EXPECT_EQ(first->sessions[0].session_id(), *s1);
  EXPECT_EQ(first->sessions[0].node().meta().id(), "n1");

  auto second = std::make_shared<Sink>();
  auto s2 = d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("host-1"), "10.0.0.1", second);
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(first->ended.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(d->Heartbeat("n1", *s1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(d->Heartbeat("n1", *s2).ok());
}

TEST_F(DispatcherTest, HeartbeatsWriteNothingAndThreeMissedPeriodsMarkTheNodeDown) {
  auto d = Make();
  auto sink = std::make_shared<Sink>();
  const std::string s = *d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", sink);
  const int proposals = raft_.proposals();
  std::set<absl::Duration> periods;
  absl::Duration last;
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(absl::Seconds(5));
    auto period = d->Heartbeat("n1", s);
    ASSERT_TRUE(period.ok());
    // 5 s and up to 500 ms of jitter.
    EXPECT_GE(*period, absl::Seconds(5));
    EXPECT_LT(*period, absl::Milliseconds(5500));
    periods.insert(*period);
    last = *period;
    EXPECT_EQ(d->CheckHeartbeats(), 0u);
  }
  EXPECT_GT(periods.size(), 5u) << "nodes do not all beat in step";
  EXPECT_EQ(raft_.proposals(), proposals) << "heartbeats are not Raft writes";
  clock_.Advance(3 * last - absl::Milliseconds(1));
  EXPECT_EQ(d->CheckHeartbeats(), 0u);
  clock_.Advance(absl::Milliseconds(2));
  EXPECT_EQ(d->CheckHeartbeats(), 1u);
  EXPECT_EQ(Node("n1").status().state(), api::NodeStatus::NODE_STATE_DOWN);
  EXPECT_EQ(Node("n1").status().message(), "heartbeat failure");
  EXPECT_EQ(sink->ended.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(d->Heartbeat("n1", s).status().code(), absl::StatusCode::kNotFound);
  // It comes back with a new session.
  ASSERT_TRUE(d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", sink).ok());
  EXPECT_EQ(Node("n1").status().state(), api::NodeStatus::NODE_STATE_READY);
}

TEST_F(DispatcherTest, ANewLeadersDispatcherGivesNodesAGraceToReconnect) {
  for (const char* id : {"n1", "n2"}) {
    api::Node n;
    n.mutable_meta()->set_id(id);
    n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
    Put(n);
  }
  auto d = Make();
  EXPECT_EQ(Node("n1").status().state(), api::NodeStatus::NODE_STATE_UNKNOWN);
  auto sink = std::make_shared<Sink>();
  const std::string s = *d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", sink);
  clock_.Advance(absl::Seconds(29));
  ASSERT_TRUE(d->Heartbeat("n1", s).ok());
  EXPECT_EQ(d->CheckHeartbeats(), 0u) << "6 periods of grace";
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(d->CheckHeartbeats(), 1u) << "n2 never came back";
  EXPECT_EQ(Node("n2").status().state(), api::NodeStatus::NODE_STATE_DOWN);
  EXPECT_EQ(Node("n1").status().state(), api::NodeStatus::NODE_STATE_READY);
}

TEST_F(DispatcherTest, StatusUpdatesAreForwardOnlyFromTheAssignedNodeAndBatched) {
  Put(AssignedTask("t1", "n1"));
  Put(AssignedTask("t2", "n2"));
  auto d = Make();
  auto sink = std::make_shared<Sink>();
  const std::string s = *d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", sink);

  api::UpdateTaskStatusRequest req;
  req.set_session_id(s);
  auto add = [&](const std::string& id, api::TaskState state) {
    auto* u = req.add_updates();
    u->set_task_id(id);
    u->mutable_status()->set_state(state);
  };
  add("t1", api::TASK_STATE_RUNNING);
  add("t2", api::TASK_STATE_RUNNING);
  const absl::Status denied = d->UpdateTaskStatus("n1", s, req);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(), "task t2 is not assigned to node n1");
  EXPECT_EQ(d->buffered_status(), 0u) << "nothing taken from a refused request";

  req.clear_updates();
  add("t1", api::TASK_STATE_PREPARING);
  add("t1", api::TASK_STATE_RUNNING);
  add("t1", api::TASK_STATE_STARTING);  // late, out of order: ignored
  add("gone", api::TASK_STATE_RUNNING);  // deleted task: ignored
  ASSERT_TRUE(d->UpdateTaskStatus("n1", s, req).ok());
  EXPECT_EQ(Task("t1").status().state(), api::TASK_STATE_ASSIGNED) << "buffered, not written";
  ASSERT_TRUE(d->FlushStatus().ok());
  EXPECT_EQ(Task("t1").status().state(), api::TASK_STATE_RUNNING);
  // Backwards against the stored state.
  req.clear_updates();
  add("t1", api::TASK_STATE_PREPARING);
  ASSERT_TRUE(d->UpdateTaskStatus("n1", s, req).ok());
  EXPECT_EQ(d->buffered_status(), 0u);
}

TEST_F(DispatcherTest, AFullBatchIsWrittenAtOnce) {
  opts_.status_batch = 2;
  Put(AssignedTask("t1", "n1"));
  Put(AssignedTask("t2", "n1"));
  auto d = Make();
  const std::string s =
      *d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", std::make_shared<Sink>());
  api::UpdateTaskStatusRequest req;
  for (const char* id : {"t1", "t2"}) {
    auto* u = req.add_updates();
    u->set_task_id(id);
    u->mutable_status()->set_state(api::TASK_STATE_RUNNING);
  }
  ASSERT_TRUE(d->UpdateTaskStatus("n1", s, req).ok());
  EXPECT_EQ(Task("t2").status().state(), api::TASK_STATE_RUNNING);
}

TEST_F(DispatcherTest, AssignmentsCarryTheNodesTasksAndOnlyTheSecretsTheyNeed) {
  for (const char* id : {"s1", "s2", "other"}) {
    api::Secret sec;
    sec.mutable_meta()->set_id(id);
    sec.mutable_spec()->mutable_annotations()->set_name(id);
    sec.mutable_spec()->set_data(absl::StrCat("data of ", id));
    Put(sec);
  }
  Put(AssignedTask("t1", "n1", {"s1"}));
  Put(AssignedTask("elsewhere", "n2", {"other"}));
  api::Task pending = AssignedTask("t0", "n1");
  pending.mutable_status()->set_state(api::TASK_STATE_PENDING);  // not yet assigned
  Put(pending);
  auto d = Make();
  auto sink = std::make_shared<Sink>();
  const std::string s = *d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", sink);
  ASSERT_TRUE(d->OpenAssignments("n1", s, sink).ok());
  ASSERT_EQ(sink->assignments.size(), 1u);
  const api::AssignmentsMessage complete = sink->assignments[0];  // a copy: the vector grows
  EXPECT_EQ(complete.type(), api::AssignmentsMessage::TYPE_COMPLETE);
  std::set<std::string> items;
  for (const auto& c : complete.changes()) {
    const auto& a = c.assignment();
    items.insert(a.has_task() ? "task " + a.task().meta().id()
                              : "secret " + a.secret().meta().id());
  }
  EXPECT_EQ(items, (std::set<std::string>{"task t1", "secret s1"}));

  // A second task with another secret: only the difference follows.
  d->Pump(absl::InfinitePast());
  Put(AssignedTask("t2", "n1", {"s2"}));
  d->Pump(absl::InfinitePast());
  ASSERT_EQ(sink->assignments.size(), 2u);
  const api::AssignmentsMessage& inc = sink->assignments[1];
  EXPECT_EQ(inc.type(), api::AssignmentsMessage::TYPE_INCREMENTAL);
  EXPECT_EQ(inc.applies_to(), complete.results_in());
  EXPECT_EQ(inc.changes_size(), 2);

  // t1 asked to stop: the task changes and its secret goes, without its data.
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    api::Task t = *tx.Get<api::Task>("t1");
                    t.set_desired_state(api::TASK_STATE_SHUTDOWN);
                    return tx.Update(t);
                  })
                  .ok());
  d->Pump(absl::InfinitePast());
  ASSERT_EQ(sink->assignments.size(), 3u);
  bool secret_removed = false;
  for (const auto& c : sink->assignments[2].changes()) {
    if (c.action() == api::AssignmentChange::ACTION_REMOVE && c.assignment().has_secret()) {
      secret_removed = true;
      EXPECT_EQ(c.assignment().secret().meta().id(), "s1");
      EXPECT_TRUE(c.assignment().secret().spec().data().empty());
    }
  }
  EXPECT_TRUE(secret_removed);
  // A change elsewhere sends nothing.
  Put(AssignedTask("t9", "n2"));
  d->Pump(absl::InfinitePast());
  EXPECT_EQ(sink->assignments.size(), 3u);
}

TEST_F(DispatcherTest, StoppingEndsEveryStream) {
  auto d = Make();
  auto sink = std::make_shared<Sink>();
  const std::string s = *d->OpenSession("n1", api::NODE_ROLE_WORKER, Description("h"), "", sink);
  ASSERT_TRUE(d->OpenAssignments("n1", s, sink).ok());
  d->Stop();
  EXPECT_EQ(sink->ended.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
// A session is told the managers it may fail over to, and told again when the list changes
// (a new manager, one down: listed last), not when nothing in it changed.
TEST_F(DispatcherTest, SessionsAreToldTheManagerListAndItsChanges) {
  api::Node m1;
  m1.mutable_meta()->set_id("m1");
  m1.set_role(api::NODE_ROLE_MANAGER);
  m1.mutable_manager_status()->set_addr("10.0.0.1:4242");
  m1.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
  Put(m1);
  auto d = Make();
  auto sink = std::make_shared<Sink>();
  ASSERT_TRUE(d->OpenSession("w1", api::NODE_ROLE_WORKER, Description("w"), "10.0.0.9", sink).ok());
  ASSERT_EQ(sink->sessions.size(), 1u);
  ASSERT_EQ(sink->sessions[0].managers_size(), 1);
  EXPECT_EQ(sink->sessions[0].managers(0).addr(), "10.0.0.1:4242");
  EXPECT_EQ(sink->sessions[0].managers(0).node_id(), "m1");
  d->Pump(absl::InfinitePast());

  api::Node m2 = m1;
  m2.mutable_meta()->set_id("m2");
  m2.mutable_manager_status()->set_addr("10.0.0.2:4242");
  Put(m2);
  auto r = store_.Update([&](WriteTx& tx) {
    api::Node down = *tx.Get<api::Node>("m1");
    down.mutable_status()->set_state(api::NodeStatus::NODE_STATE_DOWN);
    return tx.Update(down);
  });
  ASSERT_TRUE(r.ok()) << r.status();
  const size_t before = sink->sessions.size();
  d->Pump(absl::InfinitePast());
  ASSERT_GT(sink->sessions.size(), before);
  const api::SessionMessage& last = sink->sessions.back();
  ASSERT_EQ(last.managers_size(), 2);
  EXPECT_EQ(last.managers(0).addr(), "10.0.0.2:4242");  // the live one first
  EXPECT_EQ(last.managers(1).addr(), "10.0.0.1:4242");
  EXPECT_EQ(last.managers(1).weight(), 0);

  // A worker's change leaves the list as it was: nothing more is sent.
  const size_t now = sink->sessions.size();
  auto w = store_.Update([&](WriteTx& tx) {
    api::Node n = *tx.Get<api::Node>("w1");
    n.mutable_spec()->mutable_annotations()->mutable_labels()->insert({"a", "b"});
    return tx.Update(n);
  });
  ASSERT_TRUE(w.ok()) << w.status();
  d->Pump(absl::InfinitePast());
  ASSERT_EQ(sink->sessions.size(), now + 1);  // its own node object
  EXPECT_EQ(sink->sessions.back().managers_size(), 0);
}

// A node hears of its promotion and demotion through its session: the node object, with its
// desired role and role, in a session message at each change (a node daemon switches its
// manager role on it).
TEST_F(DispatcherTest, ASessionIsToldItsNodesRoleChanges) {
  auto d = Make();
  auto sink = std::make_shared<Sink>();
  ASSERT_TRUE(d->OpenSession("w1", api::NODE_ROLE_WORKER, Description("w"), "10.0.0.9", sink).ok());
  ASSERT_EQ(sink->sessions.size(), 1u);
  EXPECT_EQ(sink->sessions[0].node().role(), api::NODE_ROLE_WORKER);
  d->Pump(absl::InfinitePast());

  // The last session message after a change of the node's roles.
  auto set_roles = [&](api::NodeRole desired, api::NodeRole role) {
    auto r = store_.Update([&](WriteTx& tx) {
      api::Node n = *tx.Get<api::Node>("w1");
      n.mutable_spec()->set_desired_role(desired);
      n.set_role(role);
      return tx.Update(n);
    });
    EXPECT_TRUE(r.ok()) << r.status();
    const size_t before = sink->sessions.size();
    d->Pump(absl::InfinitePast());
    EXPECT_EQ(sink->sessions.size(), before + 1);
    return sink->sessions.back();
  };
  api::SessionMessage m = set_roles(api::NODE_ROLE_MANAGER, api::NODE_ROLE_WORKER);  // promote
  EXPECT_EQ(m.node().spec().desired_role(), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(m.session_id(), sink->sessions[0].session_id());
  m = set_roles(api::NODE_ROLE_MANAGER, api::NODE_ROLE_MANAGER);  // the role manager's part
  EXPECT_EQ(m.node().role(), api::NODE_ROLE_MANAGER);
  m = set_roles(api::NODE_ROLE_WORKER, api::NODE_ROLE_WORKER);  // demoted
  EXPECT_EQ(m.node().spec().desired_role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(m.node().role(), api::NODE_ROLE_WORKER);
}

}  // namespace shoal::manager::dispatcher

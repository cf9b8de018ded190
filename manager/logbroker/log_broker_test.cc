// The log broker without gRPC: fake worker streams (listener sinks that record what they are
// sent), publishes as the workers' PublishLogs streams make them, the manual clock for the
// nodes' silence, and Pump/Tick called by the test.
#include "manager/logbroker/log_broker.h"

#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager::logbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A worker's ListenSubscriptions stream as the broker sees it.
class FakeListener final : public LogBroker::ListenerSink {
 public:
  void Send(const api::SubscriptionMessage& m) override {
    absl::MutexLock lock(&mu_);
    sent_.push_back(m);
  }
  void End(const absl::Status& why) override {
    absl::MutexLock lock(&mu_);
    ended_ = why;
  }
  std::vector<api::SubscriptionMessage> sent() const {
    absl::MutexLock lock(&mu_);
    return sent_;
  }
  std::optional<absl::Status> ended() const {
    absl::MutexLock lock(&mu_);
    return ended_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<api::SubscriptionMessage> sent_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> ended_ ABSL_GUARDED_BY(mu_);
};

class LogBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raft_.Join(&store_);
    for (const char* n : {"n1", "n2", "n3"}) PutNode(n, api::NodeStatus::NODE_STATE_READY);
    PutService("svc");
    PutService("other");
    PutTask("t1", "svc", "n1");
    PutTask("t2", "svc", "n2");
    PutTask("t3", "other", "n3");
    PutTask("pending", "svc", "");  // never placed
    broker_ = std::make_unique<LogBroker>(Options());
    ASSERT_TRUE(broker_->Start(/*run_thread=*/false).ok());
    for (const char* n : {"n1", "n2", "n3"}) {
      listeners_[n] = std::make_shared<FakeListener>();
      broker_->Listen(n, listeners_[n]);
    }
  }
  void TearDown() override { broker_->Stop(); }

  LogBroker::Options Options() {
    LogBroker::Options o;
    o.store = &store_;
    o.clock = &clock_;
    o.ids = &ids_;
    o.node_timeout = absl::Seconds(5);
    return o;
  }

  void PutNode(const std::string& id, api::NodeStatus::State state) {
    api::Node n;
    n.mutable_meta()->set_id(id);
    n.mutable_status()->set_state(state);
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(n); }).ok());
  }
  void PutService(const std::string& id) {
    api::Service s;
    s.mutable_meta()->set_id(id);
    s.mutable_spec()->mutable_annotations()->set_name(id + "-name");
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(s); }).ok());
  }
  void PutTask(const std::string& id, const std::string& service, const std::string& node) {
    api::Task t;
    t.mutable_meta()->set_id(id);
    t.set_service_id(service);
    t.set_node_id(node);
    t.set_slot(1);
    t.set_desired_state(api::TASK_STATE_RUNNING);
    t.mutable_status()->set_state(node.empty() ? api::TASK_STATE_PENDING : api::TASK_STATE_RUNNING);
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(t); }).ok());
  }

  static api::SubscribeLogsRequest ForService(const std::string& service, bool follow = false) {
    api::SubscribeLogsRequest r;
    r.mutable_selector()->add_service_ids(service);
    r.mutable_options()->set_follow(follow);
    r.mutable_options()->set_tail(-1);
    return r;
  }
  static api::PublishLogsMessage Lines(const std::string& sub, const std::string& task,
                                       std::vector<std::string> lines, bool close = false) {
    api::PublishLogsMessage m;
    m.set_subscription_id(sub);
    int64_t second = 1;
    for (const std::string& l : lines) {
      api::LogMessage* out = m.add_messages();
      out->mutable_context()->set_task_id(task);
      out->mutable_timestamp()->set_seconds(1700000000 + second++);
      out->set_stream(api::LOG_STREAM_STDOUT);
      out->set_data(l + "\n");
    }
    m.set_close(close);
    return m;
  }

  // Everything the subscription has now (without waiting), and whether its end came.
  struct Drained {
    std::vector<std::string> lines;  // "<node>/<service>/<task>: <data>"
    bool last = false;
    std::vector<std::string> unreachable;
  };
  Drained Drain(LogSubscription& sub) {
    Drained d;
    while (true) {
      auto next = sub.Read(absl::InfinitePast());
      EXPECT_TRUE(next.ok()) << next.status();
      if (!next.ok() || !next->has_value()) break;
      for (const api::LogMessage& m : (*next)->message.messages()) {
        const auto& c = m.context();
        d.lines.push_back(absl::StrCat(c.node_id(), "/", c.service_id(), "/", c.task_id(), ": ",
                                       absl::StripTrailingAsciiWhitespace(m.data())));
      }
      if ((*next)->last) {
        d.last = true;
        d.unreachable.assign((*next)->message.unreachable_node_ids().begin(),
                             (*next)->message.unreachable_node_ids().end());
        break;
      }
    }
    return d;
  }

  ManualClock clock_;
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  IdGenerator ids_{SeededRandomBytes(7)};
  std::unique_ptr<LogBroker> broker_;
  std::map<std::string, std::shared_ptr<FakeListener>> listeners_;
};

TEST_F(LogBrokerTest, ASubscriptionGoesToTheNodesOfTheSelectedTasksOnly) {
  auto sub = broker_->Subscribe(ForService("svc"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const auto n1 = listeners_["n1"]->sent();
  const auto n2 = listeners_["n2"]->sent();
  ASSERT_EQ(n1.size(), 1u);
  ASSERT_EQ(n2.size(), 1u);
  EXPECT_THAT(listeners_["n3"]->sent(), IsEmpty()) << "n3 holds no task of svc";
  EXPECT_EQ(n1[0].id(), (*sub)->id());
  EXPECT_FALSE(n1[0].close());
  EXPECT_THAT(n1[0].selector().task_ids(), ElementsAre("t1"));
  EXPECT_THAT(n1[0].selector().service_ids(), ElementsAre("svc"));
  EXPECT_THAT(n1[0].selector().node_ids(), IsEmpty());
  EXPECT_THAT(n2[0].selector().task_ids(), ElementsAre("t2"));
  EXPECT_EQ(n2[0].options().tail(), -1);
}

TEST_F(LogBrokerTest, MergesWhatTheNodesPublishAndEndsOnceEveryNodeClosedItsPart) {
  auto sub = broker_->Subscribe(ForService("svc"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = (*sub)->id();
  ASSERT_TRUE(broker_->Publish("n1", Lines(id, "t1", {"one", "two"})).ok());
  ASSERT_TRUE(broker_->Publish("n2", Lines(id, "t2", {"deux"}, /*close=*/true)).ok());
  Drained d = Drain(**sub);
  EXPECT_THAT(d.lines, ElementsAre("n1/svc/t1: one", "n1/svc/t1: two", "n2/svc/t2: deux"))
      << "each line stamped with its task's service and node";
  EXPECT_FALSE(d.last) << "n1 has not closed its part";
  ASSERT_TRUE(broker_->Publish("n1", Lines(id, "t1", {"three"}, /*close=*/true)).ok());
  d = Drain(**sub);
  EXPECT_THAT(d.lines, ElementsAre("n1/svc/t1: three"));
  EXPECT_TRUE(d.last);
  EXPECT_THAT(d.unreachable, IsEmpty());
  EXPECT_EQ(broker_->subscriptions(), 0u);
  EXPECT_EQ((*sub)->Read(absl::InfinitePast()).status().code(), absl::StatusCode::kOutOfRange);
  // A late publisher is told the subscription is over.
  EXPECT_EQ(broker_->Publish("n1", Lines(id, "t1", {"late"})).code(), absl::StatusCode::kNotFound);
}

TEST_F(LogBrokerTest, ASilentNodeIsListedUnreachableAfterTheTimeoutInsteadOfHanging) {
  auto sub = broker_->Subscribe(ForService("svc"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = (*sub)->id();
  ASSERT_TRUE(broker_->Publish("n1", Lines(id, "t1", {"one"}, /*close=*/true)).ok());
  Drained d = Drain(**sub);
  EXPECT_FALSE(d.last);
  clock_.Advance(absl::Seconds(4));
  broker_->Tick();
  EXPECT_FALSE(Drain(**sub).last) << "within the timeout";
  clock_.Advance(absl::Seconds(1));
  broker_->Tick();
  d = Drain(**sub);
  EXPECT_TRUE(d.last);
  EXPECT_THAT(d.unreachable, ElementsAre("n2"));
  // n2 is told to stop, should it be working on it after all.
  const auto n2 = listeners_["n2"]->sent();
  ASSERT_EQ(n2.size(), 2u);
  EXPECT_TRUE(n2[1].close());
  EXPECT_EQ(n2[1].id(), id);
}

TEST_F(LogBrokerTest, ADownNodeOrABrokenPublisherIsUnreachableAtOnce) {
  PutTask("t4", "svc", "n4");
  PutNode("n4", api::NodeStatus::NODE_STATE_DOWN);
  auto sub = broker_->Subscribe(ForService("svc"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = (*sub)->id();
  ASSERT_TRUE(broker_->Publish("n1", Lines(id, "t1", {"one"}, true)).ok());
  ASSERT_TRUE(broker_->Publish("n2", Lines(id, "t2", {"two"})).ok());
  broker_->PublisherGone("n2", id);  // its stream broke before `close`
  Drained d = Drain(**sub);
  EXPECT_THAT(d.lines, ElementsAre("n1/svc/t1: one", "n2/svc/t2: two"));
  EXPECT_TRUE(d.last) << "nobody left to wait for, with no time passed";
  EXPECT_THAT(d.unreachable, UnorderedElementsAre("n2", "n4"));
}

TEST_F(LogBrokerTest, NothingSelectedEndsAtOnce) {
  PutService("idle");
  auto sub = broker_->Subscribe(ForService("idle"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  Drained d = Drain(**sub);
  EXPECT_TRUE(d.last);
  EXPECT_THAT(d.lines, IsEmpty());
  EXPECT_THAT(d.unreachable, IsEmpty());
}

TEST_F(LogBrokerTest, AWorkerCannotPublishForAnotherNodesTaskNorAnUnselectedOne) {
  auto sub = broker_->Subscribe(ForService("svc"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = (*sub)->id();
  // n2 has a part, but t1 runs on n1.
  api::PublishLogsMessage forged = Lines(id, "t2", {"mine"});
  *forged.add_messages() = Lines(id, "t1", {"not mine"}).messages(0);
  absl::Status s = broker_->Publish("n2", forged);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "task t1 is not on node n2");
  // n3 has no part in it at all.
  s = broker_->Publish("n3", Lines(id, "t3", {"other"}));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  // n1 may not slip in a line of a task the subscription does not select.
  PutTask("t5", "other", "n1");
  s = broker_->Publish("n1", Lines(id, "t5", {"unselected"}));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), absl::StrCat("subscription ", id, " does not select task t5"));

  Drained d = Drain(**sub);
  EXPECT_THAT(d.lines, IsEmpty()) << "nothing of a refused message is taken";
  EXPECT_TRUE(d.last) << "the nodes that misbehaved failed their parts";
  EXPECT_THAT(d.unreachable, UnorderedElementsAre("n1", "n2"));
}

TEST_F(LogBrokerTest, ANodeThatListensLaterGetsItsPart) {
  broker_->StopListening("n2", listeners_["n2"].get());
  auto sub = broker_->Subscribe(ForService("svc"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_THAT(listeners_["n2"]->sent(), IsEmpty());
  auto again = std::make_shared<FakeListener>();
  clock_.Advance(absl::Seconds(4));
  broker_->Listen("n2", again);
  ASSERT_EQ(again->sent().size(), 1u);
  EXPECT_THAT(again->sent()[0].selector().task_ids(), ElementsAre("t2"));
  // Listening counts as being heard from.
  clock_.Advance(absl::Seconds(4));
  broker_->Tick();
  ASSERT_TRUE(broker_->Publish("n1", Lines((*sub)->id(), "t1", {}, true)).ok());
  EXPECT_FALSE(Drain(**sub).last);
}

TEST_F(LogBrokerTest, FollowLastsUntilCancelledAndTellsTheNodesToStop) {
  auto sub = broker_->Subscribe(ForService("svc", /*follow=*/true));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = (*sub)->id();
  ASSERT_TRUE(broker_->Publish("n1", Lines(id, "t1", {"one"})).ok());
  clock_.Advance(absl::Minutes(10));
  broker_->Tick();
  Drained d = Drain(**sub);
  EXPECT_THAT(d.lines, ElementsAre("n1/svc/t1: one"));
  EXPECT_FALSE(d.last) << "silence does not end a follow";

  broker_->Cancel(id);
  EXPECT_EQ(broker_->subscriptions(), 0u);
  EXPECT_EQ((*sub)->Read(absl::InfinitePast()).status().code(), absl::StatusCode::kCancelled);
  for (const char* n : {"n1", "n2"}) {
    const auto sent = listeners_[n]->sent();
    ASSERT_EQ(sent.size(), 2u) << n;
    EXPECT_TRUE(sent[1].close()) << n;
  }
  EXPECT_EQ(broker_->Publish("n1", Lines(id, "t1", {"late"})).code(), absl::StatusCode::kNotFound);
}

TEST_F(LogBrokerTest, CancellingReleasesAPublisherThatWaitsForRoom) {
  LogBroker::Options o = Options();
  o.queue_bytes = 1;  // one line fills it
  broker_->Stop();
  broker_ = std::make_unique<LogBroker>(o);
  ASSERT_TRUE(broker_->Start(false).ok());
  for (const char* n : {"n1", "n2"}) broker_->Listen(n, listeners_[n]);
  auto sub = broker_->Subscribe(ForService("svc", true));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = (*sub)->id();
  ASSERT_TRUE(broker_->Publish("n1", Lines(id, "t1", {"fills the queue"})).ok());
  absl::Notification returned;
  absl::Status second;
  std::thread publisher([&] {
    second = broker_->Publish("n1", Lines(id, "t1", {"waits"}));
    returned.Notify();
  });
  broker_->Cancel(id);
  returned.WaitForNotification();
  publisher.join();
  EXPECT_EQ(second.code(), absl::StatusCode::kNotFound);
}

TEST_F(LogBrokerTest, AFollowTakesInANodeNewlyAssignedASelectedTask) {
  auto sub = broker_->Subscribe(ForService("svc", /*follow=*/true));
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_THAT(listeners_["n3"]->sent(), IsEmpty());
  PutTask("t6", "svc", "n3");
  PutTask("t7", "other", "n3");
  broker_->Pump(absl::InfinitePast());
  const auto n3 = listeners_["n3"]->sent();
  ASSERT_EQ(n3.size(), 1u);
  EXPECT_THAT(n3[0].selector().task_ids(), ElementsAre("t6"));
  ASSERT_TRUE(broker_->Publish("n3", Lines((*sub)->id(), "t6", {"new"})).ok());
  EXPECT_THAT(Drain(**sub).lines, ElementsAre("n3/svc/t6: new"));
  // A new task on a node already in it: the worker finds it itself (it follows the service).
  PutTask("t8", "svc", "n1");
  broker_->Pump(absl::InfinitePast());
  EXPECT_EQ(listeners_["n1"]->sent().size(), 1u);
  ASSERT_TRUE(broker_->Publish("n1", Lines((*sub)->id(), "t8", {"also"})).ok());
  EXPECT_THAT(Drain(**sub).lines, ElementsAre("n1/svc/t8: also"));
}

TEST_F(LogBrokerTest, ANodeThatListensAgainDuringAFollowResumesAfterItsLastLine) {
  auto sub = broker_->Subscribe(ForService("svc", true));
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(broker_->Publish("n1", Lines((*sub)->id(), "t1", {"a", "b"})).ok());
  auto again = std::make_shared<FakeListener>();
  broker_->Listen("n1", again);
  ASSERT_TRUE(listeners_["n1"]->ended().has_value()) << "the older stream is ended";
  ASSERT_EQ(again->sent().size(), 1u);
  const api::LogSubscriptionOptions o = again->sent()[0].options();
  EXPECT_EQ(o.since().seconds(), 1700000002);  // "b"'s time, and a nanosecond
  EXPECT_EQ(o.since().nanos(), 1);
  EXPECT_EQ(o.tail(), -1);
}

TEST_F(LogBrokerTest, SelectorsAreChecked) {
  EXPECT_EQ(broker_->Subscribe(api::SubscribeLogsRequest()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto missing = broker_->Subscribe(ForService("nosuch"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "service nosuch not found");
  api::SubscribeLogsRequest by_task;
  by_task.mutable_selector()->add_task_ids("t3");
  auto sub = broker_->Subscribe(by_task);
  ASSERT_TRUE(sub.ok());
  ASSERT_EQ(listeners_["n3"]->sent().size(), 1u);
  EXPECT_THAT(listeners_["n3"]->sent()[0].selector().task_ids(), ElementsAre("t3"));
  EXPECT_THAT(listeners_["n3"]->sent()[0].selector().service_ids(), IsEmpty());
  EXPECT_THAT(listeners_["n1"]->sent(), IsEmpty());
}

TEST_F(LogBrokerTest, StoppingEndsSubscriptionsAndListeners) {
  auto sub = broker_->Subscribe(ForService("svc", true));
  ASSERT_TRUE(sub.ok());
  broker_->Stop();
  EXPECT_EQ((*sub)->Read(absl::InfinitePast()).status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(listeners_["n1"]->ended().has_value());
  EXPECT_EQ(listeners_["n1"]->ended()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(broker_->Subscribe(ForService("svc")).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace shoal::manager::logbroker

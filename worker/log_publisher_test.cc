// The worker's log publisher against a fake log broker (a Logs server on loopback that hands out
// subscriptions and records what is published) and a fake executor whose tasks' output the
// test writes.
#include "worker/log_publisher.h"

#include <grpcpp/grpcpp.h>

#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
constexpr absl::Duration kPatience = absl::Seconds(20);

// Output the test writes, read through OpenLogs.
class FakeExecutor final : public Executor {
 public:
  absl::StatusOr<std::unique_ptr<TaskRunner>> Runner(const api::Task&) override {
    return absl::UnimplementedError("not here");
  }
  absl::StatusOr<std::unique_ptr<LogReader>> OpenLogs(const std::string& task_id,
                                                      const LogOptions& options) override {
    absl::MutexLock lock(&mu_);
    opened_.push_back(task_id);
    if (unimplemented_) return absl::UnimplementedError("keeps no logs");
    if (output_.count(task_id) == 0) return absl::NotFoundError("never ran here");
    return std::unique_ptr<LogReader>(new Reader(this, task_id, options, output_[task_id].size()));
  }

  void Write(const std::string& task, const std::string& data, bool is_stderr = false) {
    absl::MutexLock lock(&mu_);
    auto& lines = output_[task];
    lines.push_back({is_stderr, kT0 + absl::Seconds(static_cast<int64_t>(lines.size())), data});
  }
  void SetUnimplemented() {
    absl::MutexLock lock(&mu_);
    unimplemented_ = true;
  }
  std::vector<std::string> opened() {
    absl::MutexLock lock(&mu_);
    return opened_;
  }

 private:
  class Reader final : public LogReader {
   public:
    Reader(FakeExecutor* e, std::string task, LogOptions o, size_t n)
        : e_(e), task_(std::move(task)), o_(o) {
      if (o_.tail >= 0 && static_cast<size_t>(o_.tail) < n)
        next_ = n - static_cast<size_t>(o_.tail);
      end_ = n;
    }
    absl::StatusOr<bool> Read(size_t max, std::vector<LogLine>* out) override {
      absl::MutexLock lock(&e_->mu_);
      const auto& lines = e_->output_[task_];
      const size_t end = o_.follow ? lines.size() : end_;
      while (next_ < end && max-- > 0) out->push_back(lines[next_++]);
      return o_.follow || next_ < end;
    }

   private:
    FakeExecutor* const e_;
    const std::string task_;
    const LogOptions o_;
    size_t next_ = 0;
    size_t end_ = 0;
  };

  absl::Mutex mu_;
  std::map<std::string, std::vector<LogLine>> output_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> opened_ ABSL_GUARDED_BY(mu_);
  bool unimplemented_ ABSL_GUARDED_BY(mu_) = false;
};

// The broker's side: subscriptions to hand out, what was published.
class FakeBroker final : public api::Logs::Service {
 public:
  grpc::Status ListenSubscriptions(grpc::ServerContext* context,
                                   const api::ListenSubscriptionsRequest*,
                                   grpc::ServerWriter<api::SubscriptionMessage>* writer) override {
    while (true) {
      api::SubscriptionMessage m;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !outbox_.empty() || hang_up_;
        };
        // The server's own look at its client's cancellation.
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(50));
        if (hang_up_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "leader lost");
        if (context->IsCancelled()) return grpc::Status::CANCELLED;
        if (outbox_.empty()) continue;
        m = outbox_.front();
        outbox_.pop_front();
      }
      if (!writer->Write(m)) return grpc::Status::OK;
    }
  }
  grpc::Status PublishLogs(grpc::ServerContext*, grpc::ServerReader<api::PublishLogsMessage>* r,
                           api::PublishLogsResponse*) override {
    api::PublishLogsMessage m;
    std::string id;
    while (r->Read(&m)) {
      absl::MutexLock lock(&mu_);
      id = m.subscription_id();
      for (const api::LogMessage& l : m.messages()) {
        lines_[id].push_back(absl::StrCat(
            l.context().node_id(), "/", l.context().service_id(), "/", l.context().task_id(),
            l.stream() == api::LOG_STREAM_STDERR ? " E: " : ": ", l.data()));
      }
      if (m.close()) closed_.insert(id);
    }
    absl::MutexLock lock(&mu_);
    ended_.insert(id);
    return grpc::Status::OK;
  }

  void Send(const api::SubscriptionMessage& m) {
    absl::MutexLock lock(&mu_);
    outbox_.push_back(m);
  }
  void HangUp() {
    absl::MutexLock lock(&mu_);
    hang_up_ = true;
  }
  // Waits (bounded) until `done` holds.
  bool WaitFor(const std::function<bool()>& done) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done(); };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), kPatience);
  }
  std::vector<std::string> lines(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return lines_[id];
  }
  bool closed(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_.count(id) > 0;
  }
  bool ended(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ended_.count(id) > 0;
  }
  std::vector<std::string> LinesOf(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return lines_[id];
  }
  bool ClosedBy(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return closed_.count(id) > 0;
  }

  absl::Mutex mu_;

 private:
  std::deque<api::SubscriptionMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool hang_up_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::vector<std::string>> lines_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> closed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> ended_ ABSL_GUARDED_BY(mu_);
};

class LogPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&broker_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = api::Logs::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    LogPublisher::Options o;
    o.node_id = "n1";
    o.executor = &executor_;
    o.tasks = [this] {
      absl::MutexLock lock(&mu_);
      return held_;
    };
    o.poll_interval = absl::Milliseconds(10);
    o.batch_lines = 3;
    publisher_ = std::make_unique<LogPublisher>(o);
    serving_ = std::thread([this] { served_ = publisher_->Serve(*stub_, &listen_ctx_); });
  }
  void TearDown() override {
    listen_ctx_.TryCancel();
    serving_.join();
    server_->Shutdown(std::chrono::system_clock::now());
  }

  void Hold(const std::string& task, const std::string& service) {
    absl::MutexLock lock(&mu_);
    held_[task] = service;
  }
  static api::SubscriptionMessage Part(const std::string& id, std::vector<std::string> tasks,
                                       std::vector<std::string> services, bool follow) {
    api::SubscriptionMessage m;
    m.set_id(id);
    for (auto& t : tasks) m.mutable_selector()->add_task_ids(t);
    for (auto& s : services) m.mutable_selector()->add_service_ids(s);
    m.mutable_options()->set_follow(follow);
    m.mutable_options()->set_tail(-1);
    return m;
  }

  FakeBroker broker_;
  FakeExecutor executor_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<api::Logs::Stub> stub_;
  std::unique_ptr<LogPublisher> publisher_;
  grpc::ClientContext listen_ctx_;
  std::thread serving_;
  grpc::Status served_;
  absl::Mutex mu_;
  std::map<std::string, std::string> held_ ABSL_GUARDED_BY(mu_);
};

TEST_F(LogPublisherTest, APartIsPublishedInBatchesAndClosed) {
  for (int i = 1; i <= 4; ++i) executor_.Write("t1", absl::StrCat("line", i, "\n"));
  executor_.Write("t1", "oops\n", /*is_stderr=*/true);
  // t1 was assigned here but is gone from the agent (its output stays); t9 never ran here;
  // t3 is held, of a selected service.
  executor_.Write("t3", "three\n");
  Hold("t3", "svc");
  Hold("t4", "other");
  executor_.Write("t4", "not selected\n");
  broker_.Send(Part("s1", {"t1", "t9"}, {"svc"}, /*follow=*/false));
  ASSERT_TRUE(
      broker_.WaitFor([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.ended("s1"); }));
  EXPECT_TRUE(broker_.ClosedBy("s1"));
  EXPECT_THAT(broker_.LinesOf("s1"),
              ElementsAre("n1//t1: line1\n", "n1//t1: line2\n", "n1//t1: line3\n",
                          "n1//t1: line4\n", "n1//t1 E: oops\n", "n1/svc/t3: three\n"));
}

TEST_F(LogPublisherTest, AnExecutorWithoutLogsClosesAtOnce) {
  executor_.SetUnimplemented();
  broker_.Send(Part("s1", {"t1"}, {}, false));
  ASSERT_TRUE(
      broker_.WaitFor([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.ended("s1"); }));
  EXPECT_TRUE(broker_.ClosedBy("s1"));
  EXPECT_THAT(broker_.LinesOf("s1"), IsEmpty());
}

TEST_F(LogPublisherTest, AFollowPublishesNewOutputAndNewTasksUntilClosed) {
  executor_.Write("t1", "first\n");
  Hold("t1", "svc");
  broker_.Send(Part("s1", {"t1"}, {"svc"}, /*follow=*/true));
  ASSERT_TRUE(broker_.WaitFor(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.lines("s1").size() == 1; }));
  executor_.Write("t1", "second\n");
  // A task of the service that starts later on this node.
  Hold("t2", "svc");
  executor_.Write("t2", "new task\n");
  ASSERT_TRUE(broker_.WaitFor(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.lines("s1").size() == 3; }));
  EXPECT_THAT(broker_.LinesOf("s1"),
              ElementsAre("n1/svc/t1: first\n", "n1/svc/t1: second\n", "n1/svc/t2: new task\n"));
  EXPECT_FALSE(broker_.ClosedBy("s1"));

  api::SubscriptionMessage close;
  close.set_id("s1");
  close.set_close(true);
  broker_.Send(close);
  ASSERT_TRUE(
      broker_.WaitFor([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.ended("s1"); }));
  EXPECT_FALSE(broker_.ClosedBy("s1")) << "the broker ended it, not the worker";
}

TEST_F(LogPublisherTest, TheEndOfTheListenStreamEndsEveryPart) {
  executor_.Write("t1", "first\n");
  broker_.Send(Part("s1", {"t1"}, {}, /*follow=*/true));
  ASSERT_TRUE(broker_.WaitFor(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.lines("s1").size() == 1; }));
  broker_.HangUp();
  serving_.join();
  serving_ = std::thread([] {});
  EXPECT_EQ(served_.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(
      broker_.WaitFor([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return broker_.ended("s1"); }));
}

}  // namespace
}  // namespace shoal::worker

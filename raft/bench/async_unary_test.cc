#include "raft/bench/async_unary.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "raft/bench/raft_bench.grpc.pb.h"

namespace shoal::raft::bench {
namespace {

namespace rb = ::shoal::raftbench;

// Answers Propose with the value's size as its index; "fail" is refused; "hold" waits until
// the test releases it.
class FakeMember final : public rb::RaftBench::Service {
 public:
  grpc::Status Propose(grpc::ServerContext*, const rb::ProposeRequest* req,
                       rb::ProposeResponse* resp) override {
    if (req->value() == "fail") return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no leader");
    if (req->value() == "hold") release.WaitForNotification();
    resp->set_index(req->value().size());
    return grpc::Status::OK;
  }
  absl::Notification release;
};

class AsyncUnaryCallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&member_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = rb::RaftBench::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                       grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (!member_.release.HasBeenNotified()) member_.release.Notify();
    server_->Shutdown();
  }

  // Starts Propose(value) on `caller`.
  void Propose(AsyncUnaryCaller& caller, const std::string& value,
               std::function<void(const grpc::Status&, rb::ProposeResponse&)> done) {
    rb::ProposeRequest req;
    req.set_value(value);
    caller.Call<rb::ProposeResponse>(
        absl::Now() + absl::Seconds(30),
        [&](grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return stub_->PrepareAsyncPropose(ctx, req, cq);
        },
        std::move(done));
  }

  FakeMember member_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<rb::RaftBench::Stub> stub_;
};

// As the load generator uses it: each completion starts the next call, on the caller's own
// thread; every response reaches its own `done`.
TEST_F(AsyncUnaryCallerTest, ACompletionStartsTheNextCallOnTheCallersThread) {
  constexpr int kCalls = 500;
  absl::Notification finished;
  std::atomic<int> wrong{0};
  std::atomic<bool> on_main_thread{false};
  const std::thread::id main_thread = std::this_thread::get_id();
  AsyncUnaryCaller caller;
  std::function<void(int)> next = [&](int n) {
    Propose(caller, std::string(n + 1, 'v'), [&, n](const grpc::Status& s, rb::ProposeResponse& r) {
      if (std::this_thread::get_id() == main_thread) on_main_thread = true;
      if (!s.ok() || r.index() != static_cast<uint64_t>(n + 1)) ++wrong;
      if (n + 1 == kCalls) {
        finished.Notify();
      } else {
        next(n + 1);
      }
    });
  };
  next(0);
  finished.WaitForNotification();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_FALSE(on_main_thread.load());
}

TEST_F(AsyncUnaryCallerTest, AFailedCallReportsItsStatus) {
  AsyncUnaryCaller caller;
  absl::Notification done;
  grpc::Status status;
  Propose(caller, "fail", [&](const grpc::Status& s, rb::ProposeResponse&) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "no leader");
}

// Destroying the caller with a call in flight waits for that call's `done` (its queue and
// threads are gone afterwards).
TEST_F(AsyncUnaryCallerTest, DestructionWaitsForTheCallsInFlight) {
  auto caller = std::make_unique<AsyncUnaryCaller>();
  std::atomic<bool> completed{false};
  Propose(*caller, "hold", [&](const grpc::Status& s, rb::ProposeResponse& r) {
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(r.index(), 4u);
    completed = true;
  });
  std::atomic<bool> completed_when_destroyed{false};
  std::thread destroyer([&] {
    caller.reset();
    completed_when_destroyed = completed.load();
  });
  member_.release.Notify();
  destroyer.join();
  EXPECT_TRUE(completed_when_destroyed.load());
}

}  // namespace
}  // namespace shoal::raft::bench

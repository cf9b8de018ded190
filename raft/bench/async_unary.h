// Unary gRPC calls made with the completion-queue API and completed on threads of this class:
// the load generators' transport (RunLoadAsync in load.h), for both sides of the benchmark.
//
// A blocking call is finished by whichever thread polls the connection, which then wakes the
// thread blocked in the call: one hand-off between threads per call, in the client process
// that shares the machine's two cores with the three members. Here the thread that polls the
// completion queue is the one that runs `done`, and `done` starts the next call, so a response
// costs the load generator no hand-off at all.
//
//   AsyncUnaryCaller caller;  // one polling thread
//   caller.Call<etcdserverpb::PutResponse>(
//       deadline,
//       [&](grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
//         return stub->PrepareAsyncPut(ctx, request, cq);
//       },
//       [](const grpc::Status& s, etcdserverpb::PutResponse& r) { ... });
//
// Thread-safety: Call may be called from any thread, `done` included, but not once the
// destructor has begun (gRPC aborts on a call started on a shut-down queue): whoever chains
// calls from `done` must have stopped chaining first, as RunLoadAsync has when it returns. The
// destructor waits for the calls in flight to complete (at the latest at their deadlines) and
// joins the threads; it must not run on one of them.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace shoal::raft::bench {

class AsyncUnaryCaller {
 public:
  // Requires threads >= 1.
  explicit AsyncUnaryCaller(int threads = 1);
  ~AsyncUnaryCaller();
  AsyncUnaryCaller(const AsyncUnaryCaller&) = delete;
  AsyncUnaryCaller& operator=(const AsyncUnaryCaller&) = delete;

  // Starts one call: `prepare(context, queue)` returns the stub's PrepareAsync<Method>(context,
  // request, queue) (the request is serialized there, so it need not outlive this call);
  // `done(status, response)` runs once, on one of this class's threads, when the call ends.
  template <typename Response, typename Prepare>
  void Call(absl::Time deadline, Prepare&& prepare,
            std::function<void(const grpc::Status&, Response&)> done) {
    auto* call = new UnaryCall<Response>(std::move(done));
    call->context.set_deadline(absl::ToChronoTime(deadline));
    call->reader = prepare(&call->context, &queue_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  }

 private:
  // A call in flight; its address is the completion queue's tag.
  struct Pending {
    virtual ~Pending() = default;
    virtual void Complete() = 0;
  };
  template <typename Response>
  struct UnaryCall final : Pending {
    explicit UnaryCall(std::function<void(const grpc::Status&, Response&)> d) : done(std::move(d)) {}
    void Complete() override { done(status, response); }
    grpc::ClientContext context;
    Response response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
    std::function<void(const grpc::Status&, Response&)> done;
  };

  void Poll();

  grpc::CompletionQueue queue_;
  std::vector<std::thread> threads_;
};

}  // namespace shoal::raft::bench

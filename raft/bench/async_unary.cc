#include "raft/bench/async_unary.h"

#include "common/check.h"

namespace shoal::raft::bench {

AsyncUnaryCaller::AsyncUnaryCaller(int threads) {
  SHOAL_CHECK(threads >= 1, "AsyncUnaryCaller needs at least one thread, got ", threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Poll(); });
}

AsyncUnaryCaller::~AsyncUnaryCaller() {
  // Next() returns false only once the queue is shut down and every call has completed.
  queue_.Shutdown();
  for (std::thread& t : threads_) t.join();
}

void AsyncUnaryCaller::Poll() {
  void* tag = nullptr;
  bool ok = false;  // always true for a unary call's Finish
  while (queue_.Next(&tag, &ok)) {
    std::unique_ptr<Pending> call(static_cast<Pending*>(tag));
    call->Complete();
  }
}

}  // namespace shoal::raft::bench

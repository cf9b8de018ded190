#include "common/batch_thread.h"

#include <thread>

#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(BatchThreadTest, OnlyTheCallingThreadRunsUnderSchedBatch) {
  bool batch = false, other = true;
  std::thread t([&] {
    ASSERT_TRUE(RunAsBatchThread().ok());
    batch = IsBatchThread();
    // A thread it starts inherits the policy (as the kernel does).
    std::thread child([&] { other = IsBatchThread(); });
    child.join();
  });
  t.join();
  EXPECT_TRUE(batch);
  EXPECT_TRUE(other);
  // This thread, which called nothing, is untouched.
  EXPECT_FALSE(IsBatchThread());
}

}  // namespace
}  // namespace shoal

#include "common/thread_name.h"

#include <pthread.h>

#include <thread>

#include "gtest/gtest.h"

namespace shoal {
namespace {

std::string NameOfThisThread() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof(buf));
  return buf;
}

TEST(SetThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = NameOfThisThread();
  std::string seen;
  std::thread([&] {
    SetThreadName("raft-loop");
    seen = NameOfThisThread();
  }).join();
  EXPECT_EQ(seen, "raft-loop");
  EXPECT_EQ(NameOfThisThread(), before);
}

TEST(SetThreadNameTest, CutsLongNamesToTheKernelsLimit) {
  std::string seen;
  std::thread([&] {
    SetThreadName("a-very-long-thread-name");
    seen = NameOfThisThread();
  }).join();
  EXPECT_EQ(seen, "a-very-long-thr");
}

}  // namespace
}  // namespace shoal

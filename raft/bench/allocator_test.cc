// Built twice (see BUILD.bazel): linked with //third_party/system:jemalloc, as both benchmark
// binaries are, and without it. PrepareBenchmarkProcess must accept the first and stop the
// second, so that the two benchmarks can never measure their sides with different allocators.
#include <cstdlib>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "raft/bench/load.h"

namespace shoal::raft::bench {
namespace {

#ifndef SHOAL_EXPECTED_ALLOCATOR
#error "define SHOAL_EXPECTED_ALLOCATOR"
#endif

TEST(AllocatorTest, TellsWhichAllocatorServesMalloc) {
  EXPECT_EQ(ProcessAllocator(), SHOAL_EXPECTED_ALLOCATOR);
  // And it serves the process: memory from it can be used and freed as usual.
  auto block = std::make_unique<std::string>(1 << 20, 'x');
  EXPECT_EQ(block->back(), 'x');
}

TEST(AllocatorTest, OnlyJemallocPassesTheBenchmarksCheck) {
  if (std::string(SHOAL_EXPECTED_ALLOCATOR) == "jemalloc") {
    PrepareBenchmarkProcess();  // returns
  } else {
    EXPECT_DEATH(PrepareBenchmarkProcess(),
                 "linked without jemalloc \\(its malloc is glibc\\).*third_party/system:jemalloc");
  }
}

}  // namespace
}  // namespace shoal::raft::bench

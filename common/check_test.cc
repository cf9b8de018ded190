#include "common/check.h"

#include <gtest/gtest.h>

namespace shoal {
namespace {

int g_evaluated = 0;
int Expensive() {
  ++g_evaluated;
  return 7;
}

TEST(CheckTest, PassingCheckDoesNotEvaluateTheMessage) {
  g_evaluated = 0;
  SHOAL_CHECK(1 + 1 == 2, "never shown ", Expensive());
  SHOAL_CHECK(true);
  EXPECT_EQ(g_evaluated, 0);
}

TEST(CheckDeathTest, FailingCheckNamesConditionAndMessage) {
  const int commit = 9, last = 5;
  EXPECT_DEATH(SHOAL_CHECK(commit <= last, "commit ", commit, " beyond last index ", last),
               "CHECK failed at .*check_test.cc:[0-9]+: commit <= last: commit 9 beyond last "
               "index 5");
  EXPECT_DEATH(SHOAL_CHECK(false), "CHECK failed at .*: false");
}

int Unreachable(int x) {
  if (x > 0) return x;
  SHOAL_FATAL("x must be positive, got ", x);  // no return needed after it
}

TEST(CheckDeathTest, FatalAbortsWithItsMessage) {
  EXPECT_EQ(Unreachable(3), 3);
  EXPECT_DEATH(Unreachable(-2), "CHECK failed at .*: unreachable: x must be positive, got -2");
}

}  // namespace
}  // namespace shoal

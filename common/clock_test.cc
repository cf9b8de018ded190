#include "common/clock.h"

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "common/testing/manual_clock.h"

namespace shoal {
namespace {

// A component that takes its clock as a dependency, as every time-aware component must.
class Lease {
 public:
  Lease(const Clock& clock, absl::Duration ttl) : clock_(clock), expiry_(clock.Now() + ttl) {}
  bool Expired() const { return clock_.Now() >= expiry_; }

 private:
  const Clock& clock_;
  absl::Time expiry_;
};

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock;
  const absl::Time start = clock.Now();
  EXPECT_EQ(start, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Seconds(15));
  EXPECT_EQ(clock.Now(), start + absl::Seconds(15));
  clock.Set(start - absl::Hours(1));  // a clock jump back
  EXPECT_EQ(clock.Now(), start - absl::Hours(1));
}

TEST(ManualClockTest, DrivesAComponentWithoutSleeping) {
  ManualClock clock;
  Lease lease(clock, absl::Seconds(15));
  EXPECT_FALSE(lease.Expired());
  clock.Advance(absl::Seconds(14));
  EXPECT_FALSE(lease.Expired());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(lease.Expired());
}

TEST(ManualClockDeathTest, RefusesToAdvanceBackwards) {
  ManualClock clock;
  EXPECT_DEATH(clock.Advance(absl::Seconds(-1)), "negative duration");
}

TEST(RealClockTest, TracksTheSystemClock) {
  const absl::Time before = absl::Now();
  const absl::Time now = RealClock().Now();
  const absl::Time after = absl::Now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  EXPECT_EQ(&RealClock(), &RealClock());
}

}  // namespace
}  // namespace shoal

#include "pki/renewal.h"

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"

namespace shoal::pki {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);
const absl::Time kEnd = kStart + absl::Hours(24 * 90);

RandomBytesFn Constant(uint8_t byte) {
  return [byte](uint8_t* out, size_t n) { std::memset(out, byte, n); };
}

TEST(RenewalTest, LowestRandomValueRenewsAtHalfLife) {
  EXPECT_EQ(ChooseRenewalTime(kStart, kEnd, Constant(0)), kStart + absl::Hours(24 * 45));
}

TEST(RenewalTest, HighestRandomValueRenewsJustBeforeEightyPercent) {
  absl::Time t = ChooseRenewalTime(kStart, kEnd, Constant(0xff));
  EXPECT_LT(t, kStart + absl::Hours(24 * 72));
  EXPECT_GT(t, kStart + absl::Hours(24 * 72) - absl::Seconds(1));
}

TEST(RenewalTest, SeededDrawsStayInWindowAndSpreadOverIt) {
  RandomBytesFn random = SeededRandomBytes(42);
  absl::Time lo = kEnd, hi = kStart;
  for (int i = 0; i < 1000; ++i) {
    absl::Time t = ChooseRenewalTime(kStart, kEnd, random);
    ASSERT_GE(t, kStart + (kEnd - kStart) * 0.5);
    ASSERT_LT(t, kStart + (kEnd - kStart) * 0.8);
    lo = std::min(lo, t);
    hi = std::max(hi, t);
  }
  // 1000 uniform draws cover nearly all of the 30 % window.
  EXPECT_LT(lo, kStart + (kEnd - kStart) * 0.51);
  EXPECT_GT(hi, kStart + (kEnd - kStart) * 0.79);
}

TEST(RenewalTest, SameSeedSameTime) {
  EXPECT_EQ(ChooseRenewalTime(kStart, kEnd, SeededRandomBytes(9)),
            ChooseRenewalTime(kStart, kEnd, SeededRandomBytes(9)));
}

}  // namespace
}  // namespace shoal::pki

#include "pki/base36.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;

TEST(Base36Test, WidthsMatchTheTokenFormat) {
  EXPECT_EQ(Base36Width(32), 50u);
  EXPECT_EQ(Base36Width(16), 25u);
  EXPECT_EQ(Base36Width(1), 2u);
  EXPECT_EQ(Base36Width(0), 0u);
}

TEST(Base36Test, EncodesSmallNumbersLeftPadded) {
  EXPECT_EQ(EncodeBase36(std::string("\x00", 1)), "00");
  EXPECT_EQ(EncodeBase36(std::string("\x23", 1)), "0z");        // 35
  EXPECT_EQ(EncodeBase36(std::string("\x24", 1)), "10");        // 36
  EXPECT_EQ(EncodeBase36(std::string("\xff", 1)), "73");        // 255 = 7*36 + 3
  EXPECT_EQ(EncodeBase36(std::string("\x01\x00", 2)), "0074");  // 256 = 7*36 + 4
}

TEST(Base36Test, EncodesTheLargest256BitNumber) {
  // 2^256 - 1 in base 36 (computed independently with Python integers).
  EXPECT_EQ(EncodeBase36(std::string(32, '\xff')),
            "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtof");
}

TEST(Base36Test, RoundTripsEveryByteValueAtEveryPosition) {
  for (int pos = 0; pos < 16; ++pos) {
    for (int v = 0; v < 256; v += 7) {
      std::string bytes(16, '\0');
      bytes[pos] = static_cast<char>(v);
      bytes[15 - pos] = static_cast<char>(255 - v);
      std::string text = EncodeBase36(bytes);
      ASSERT_EQ(text.size(), 25u);
      auto back = DecodeBase36(text, 16);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, bytes);
    }
  }
}

TEST(Base36Test, DecodeRejectsUppercaseAndPunctuationWithPosition) {
  auto r = DecodeBase36("00A0", 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'A' at position 2"));
  r = DecodeBase36(std::string("0\n", 2), 4);
  EXPECT_THAT(r.status().message(), HasSubstr("byte 0x0a at position 1"));
}

TEST(Base36Test, DecodeRejectsValuesThatDoNotFit) {
  // 36^2 - 1 = 1295 > 255.
  auto r = DecodeBase36("zz", 1);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("does not fit in 8 bits"));
  EXPECT_TRUE(DecodeBase36("73", 1).ok());
  EXPECT_FALSE(DecodeBase36("74", 1).ok());
}

TEST(Base36Test, DecodeAcceptsLeadingZerosOfAnyLength) {
  auto r = DecodeBase36(std::string(100, '0') + "10", 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, std::string("\x00\x24", 2));
}

}  // namespace
}  // namespace shoal::pki

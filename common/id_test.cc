#include "common/id.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace shoal {
namespace {

TEST(IdTest, IdsAre25LowercaseBase36Characters) {
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewId();
    ASSERT_EQ(id.size(), 25u);
    EXPECT_TRUE(IsValidId(id)) << id;
    for (char c : id) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) << id;
  }
}

TEST(IdTest, SystemIdsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(seen.insert(NewId()).second);
}

TEST(IdTest, SeededGeneratorsAreDeterministicAndSeedsDiffer) {
  IdGenerator a(SeededRandomBytes(42)), b(SeededRandomBytes(42)), c(SeededRandomBytes(43));
  for (int i = 0; i < 100; ++i) {
    const std::string x = a.Next();
    EXPECT_EQ(x, b.Next());
    EXPECT_NE(x, c.Next());
  }
}

TEST(IdTest, UsesAll128RandomBits) {
  // All-ones is the largest 128-bit value: it must still fit 25 characters and be valid.
  IdGenerator max([](uint8_t* out, size_t n) { std::fill(out, out + n, 0xff); });
  const std::string top = max.Next();
  EXPECT_EQ(top, "f5lxx1zz5pnorynqglhzmsp33");  // 2^128 - 1 in base 36
  EXPECT_TRUE(IsValidId(top));
  IdGenerator zero([](uint8_t* out, size_t n) { std::fill(out, out + n, 0); });
  EXPECT_EQ(zero.Next(), std::string(25, '0'));
}

TEST(IdTest, NextUniqueSkipsTakenIdsAndGivesUpOnABrokenSource) {
  IdGenerator seeded(SeededRandomBytes(7));
  IdGenerator replay(SeededRandomBytes(7));
  const std::string first = replay.Next();
  const std::string second = replay.Next();
  absl::StatusOr<std::string> id =
      seeded.NextUnique([&](absl::string_view candidate) { return candidate == first; });
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, second);

  IdGenerator stuck([](uint8_t* out, size_t n) { std::fill(out, out + n, 1); });
  const std::string only = stuck.Next();
  absl::StatusOr<std::string> none =
      stuck.NextUnique([&](absl::string_view candidate) { return candidate == only; });
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInternal);
}

TEST(IdTest, RejectsMalformedIds) {
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("abc"));
  EXPECT_FALSE(IsValidId(std::string(26, 'a')));
  EXPECT_FALSE(IsValidId("3AX9Y8W2R5T6U7I8O9P0Q1W2E"));  // upper case
  EXPECT_FALSE(IsValidId("3ax9y8w2r5t6u7i8o9p0q1w2-"));
  EXPECT_FALSE(IsValidId("zzzzzzzzzzzzzzzzzzzzzzzzz"));  // more than 128 bits
  EXPECT_FALSE(IsValidId("f5lxx1zz5pnorynqglhzmsp34"));  // 2^128: one past the largest
  EXPECT_TRUE(IsValidId("f5lxx1zz5pnorynqglhzmsp33"));
}

TEST(IdTest, GeneratorIsSafeToShareBetweenThreads) {
  IdGenerator shared(SeededRandomBytes(1));
  std::vector<std::vector<std::string>> out(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) out[t].push_back(shared.Next());
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : out) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 8000u);
}

}  // namespace
}  // namespace shoal

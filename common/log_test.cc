#include "common/log.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace shoal::log {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { SetLevel(Level::kInfo); }
  void TearDown() override { SetLevel(Level::kInfo); }
};

TEST_F(LogTest, FormatsComponentMessageAndFields) {
  EXPECT_EQ(Format("raft", "became leader", {{"term", 5}, {"id", "3ax9"}, {"ok", true}}),
            "raft: became leader term=5 id=3ax9 ok=true");
  EXPECT_EQ(Format("x", "m", {}), "x: m");
}

TEST_F(LogTest, QuotesValuesThatWouldBreakParsing) {
  EXPECT_EQ(Format("d", "m", {{"msg", "heartbeat failure"}}), "d: m msg=\"heartbeat failure\"");
  EXPECT_EQ(Format("d", "m", {{"v", ""}}), "d: m v=\"\"");
  EXPECT_EQ(Format("d", "m", {{"v", "a=b"}}), "d: m v=\"a=b\"");
  EXPECT_EQ(Format("d", "m", {{"v", "say \"hi\"\n"}}), "d: m v=\"say \\\"hi\\\"\\n\"");
  EXPECT_EQ(Format("d", "m", {{"v", std::string("\x01", 1)}}), "d: m v=\"\\x01\"");
}

TEST_F(LogTest, FormatsDurationsTimesAndStatuses) {
  EXPECT_EQ(Format("d", "m", {{"after", absl::Milliseconds(1500)}}), "d: m after=1.5s");
  EXPECT_EQ(Format("d", "m", {{"at", absl::FromUnixSeconds(0)}}),
            "d: m at=1970-01-01T00:00:00+00:00");
  EXPECT_EQ(Format("d", "m", {{"err", absl::NotFoundError("gone")}}),
            "d: m err=\"NOT_FOUND: gone\"");
  EXPECT_EQ(Format("d", "m", {{"ratio", 0.5}, {"n", uint64_t{7}}}), "d: m ratio=0.5 n=7");
}

TEST_F(LogTest, WritesTimestampedLinesAtOrAboveTheLevel) {
  ScopedCapture capture;
  Debug("c", "hidden");
  Info("c", "shown", {{"k", 1}});
  Warning("c", "careful");
  Error("c", "broken");
  SetLevel(Level::kError);
  Warning("c", "hidden too");
  Error("c", "still shown");
  const std::vector<std::string> lines =
      absl::StrSplit(capture.Text(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << capture.Text();
  // 2026-11-24T05:30:00.123Z I c: shown k=1
  EXPECT_EQ(lines[0].size(), std::string("2026-11-24T05:30:00.123Z I c: shown k=1").size());
  EXPECT_EQ(lines[0][10], 'T');
  EXPECT_EQ(lines[0][23], 'Z');
  EXPECT_TRUE(absl::EndsWith(lines[0], " I c: shown k=1")) << lines[0];
  EXPECT_TRUE(absl::EndsWith(lines[1], " W c: careful")) << lines[1];
  EXPECT_TRUE(absl::EndsWith(lines[2], " E c: broken")) << lines[2];
  EXPECT_TRUE(absl::EndsWith(lines[3], " E c: still shown")) << lines[3];
}

TEST_F(LogTest, ParsesLevelsAndRejectsUnknownOnes) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("INFO"), Level::kInfo);
  EXPECT_EQ(*ParseLevel("warn"), Level::kWarning);
  EXPECT_EQ(*ParseLevel("warning"), Level::kWarning);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  absl::StatusOr<Level> bad = ParseLevel("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "verbose"));
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "debug, info, warning or error"));
}

TEST_F(LogTest, EnabledFollowsTheLevel) {
  SetLevel(Level::kWarning);
  EXPECT_EQ(GetLevel(), Level::kWarning);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarning));
  EXPECT_TRUE(Enabled(Level::kError));
}

}  // namespace
}  // namespace shoal::log

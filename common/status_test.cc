#include "common/status.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/cord.h"
#include "common/status_macros.h"

namespace shoal {
namespace {

absl::Status FailIf(bool fail) {
  return fail ? absl::NotFoundError("no such service \"web\"") : absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool fail) {
  if (fail) return absl::InvalidArgumentError("bad int");
  return std::make_unique<int>(7);
}

int g_evaluations = 0;
absl::Status Counted() {
  ++g_evaluations;
  return absl::AbortedError("version conflict");
}

absl::Status UsesReturnIfError(bool fail, bool* reached_end) {
  RETURN_IF_ERROR(FailIf(fail));
  *reached_end = true;
  return absl::OkStatus();
}

absl::StatusOr<int> UsesAssignOrReturn(bool fail) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> value, MakeInt(fail));  // move-only value
  int doubled = 0;
  ASSIGN_OR_RETURN(auto again, MakeInt(false));  // two in one scope
  doubled = *value + *again;
  return doubled;
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsTheErrorAndOnlyTheError) {
  bool reached = false;
  absl::Status s = UsesReturnIfError(true, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(reached);
  reached = false;
  EXPECT_TRUE(UsesReturnIfError(false, &reached).ok());
  EXPECT_TRUE(reached);
}

TEST(StatusMacrosTest, ReturnIfErrorEvaluatesItsArgumentOnce) {
  g_evaluations = 0;
  auto f = []() -> absl::Status {
    RETURN_IF_ERROR(Counted());
    return absl::OkStatus();
  };
  EXPECT_EQ(f().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(g_evaluations, 1);
}

TEST(StatusMacrosTest, AssignOrReturnMovesTheValueOrReturnsTheStatus) {
  absl::StatusOr<int> ok = UsesAssignOrReturn(false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 14);
  absl::StatusOr<int> bad = UsesAssignOrReturn(true);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "bad int");
}

TEST(AnnotateTest, PrefixesTheMessageAndKeepsCodeAndPayload) {
  absl::Status inner = absl::DataLossError("checksum mismatch at index 17");
  inner.SetPayload("type.shoal/index", absl::Cord("17"));
  absl::Status outer = Annotate(Annotate(inner, "reading /var/lib/swarmd/raft"), "loading raft");
  EXPECT_EQ(outer.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(outer.message(),
            "loading raft: reading /var/lib/swarmd/raft: checksum mismatch at index 17");
  ASSERT_TRUE(outer.GetPayload("type.shoal/index").has_value());
  EXPECT_EQ(std::string(*outer.GetPayload("type.shoal/index")), "17");
}

TEST(AnnotateTest, LeavesOkAlone) {
  EXPECT_TRUE(Annotate(absl::OkStatus(), "anything").ok());
  absl::Status s = absl::InternalError("x");
  EXPECT_EQ(Annotate(s, ""), s);
}

TEST(CodeNameTest, NamesEveryCanonicalCode) {
  EXPECT_EQ(CodeName(absl::StatusCode::kFailedPrecondition), "failed precondition");
  EXPECT_EQ(CodeName(absl::StatusCode::kNotFound), "not found");
  EXPECT_EQ(CodeName(absl::StatusCode::kUnauthenticated), "unauthenticated");
  for (int c = 0; c <= 16; ++c) {
    EXPECT_FALSE(CodeName(static_cast<absl::StatusCode>(c)).empty()) << c;
  }
}

}  // namespace
}  // namespace shoal

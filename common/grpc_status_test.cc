#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace shoal {
namespace {

TEST(GrpcStatusTest, EveryCodeAndMessageSurvivesTheRoundTrip) {
  for (int c = 0; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    const absl::Status original(code, c == 0 ? "" : "service \"web\" not found");
    const grpc::Status wire = ToGrpcStatus(original);
    EXPECT_EQ(static_cast<int>(wire.error_code()), c);
    EXPECT_EQ(FromGrpcStatus(wire), original) << c;
  }
}

TEST(GrpcStatusTest, CodesMeanTheSameOnBothSides) {
  EXPECT_EQ(ToGrpcStatus(absl::PermissionDeniedError("worker role")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no leader")).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace shoal

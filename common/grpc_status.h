// Conversions between absl::Status (our error vocabulary) and grpc::Status (the wire's), used
// only in service adapters and clients. The two share their canonical codes.
//
// Thread-safe (pure functions).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace shoal {

// Same code and message. Payloads are not carried.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Same code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace shoal

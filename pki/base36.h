// Base36 (digits 0-9 then a-z, lowercase) of unsigned big-endian numbers, as join tokens write
// them: the SHA-256 of the root CA certificate (32 bytes, 50 digits) and the secret (16 bytes,
// 25 digits), each left-padded with '0' to a fixed width.
//
// Thread-safe (pure functions).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::pki {

// The number of base36 digits needed for any value of `n_bytes` bytes (50 for 32, 25 for 16).
size_t Base36Width(size_t n_bytes);

// `bytes` read as an unsigned big-endian number, written in base36 and left-padded with '0' to
// Base36Width(bytes.size()) digits.
std::string EncodeBase36(absl::string_view bytes);

// The inverse: `digits` (any length, lowercase [0-9a-z]) as an unsigned big-endian number of
// exactly `n_bytes` bytes. INVALID_ARGUMENT naming the first bad character and its position, or
// saying that the value does not fit in `n_bytes` bytes.
absl::StatusOr<std::string> DecodeBase36(absl::string_view digits, size_t n_bytes);

}  // namespace shoal::pki

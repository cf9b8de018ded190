// CHECK for broken invariants and on-disk corruption: print where and why, then abort. Never
// for anything a user, peer, disk or network can cause (those get an absl::Status).
//
//   SHOAL_CHECK(commit <= last_index, "commit ", commit, " beyond last index ", last_index);
#pragma once

#include <string>

#include "absl/strings/str_cat.h"

namespace shoal::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const std::string& message);
}  // namespace shoal::internal

// The message arguments are evaluated only when the check fails.
#define SHOAL_CHECK(condition, ...)                                                        \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      ::shoal::internal::CheckFailed(__FILE__, __LINE__, #condition,                       \
                                     ::absl::StrCat(__VA_ARGS__));                         \
    }                                                                                      \
  } while (0)

// Unconditional failure, for a branch that must not be reached (the compiler knows it does not
// return).
#define SHOAL_FATAL(...) \
  ::shoal::internal::CheckFailed(__FILE__, __LINE__, "unreachable", ::absl::StrCat(__VA_ARGS__))

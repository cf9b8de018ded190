// Early-return helpers for absl::Status and absl::StatusOr. Debian's Abseil (20220623) does not
// ship its own, so they live here, once.
//
//   absl::Status Load() {
//     RETURN_IF_ERROR(Open());
//     ASSIGN_OR_RETURN(std::string data, ReadAll());
//     ...
//   }
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) once and returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                                              \
  do {                                                                     \
    ::absl::Status shoal_status_macro_status = (expr);                     \
    if (!shoal_status_macro_status.ok()) return shoal_status_macro_status; \
  } while (0)

#define SHOAL_STATUS_MACRO_CONCAT_INNER(x, y) x##y
#define SHOAL_STATUS_MACRO_CONCAT(x, y) SHOAL_STATUS_MACRO_CONCAT_INNER(x, y)

#define SHOAL_ASSIGN_OR_RETURN_IMPL(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status if not OK, otherwise assigns or
// declares `lhs` with the moved value. `lhs` may be a declaration ("auto x") or an lvalue.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  SHOAL_ASSIGN_OR_RETURN_IMPL(SHOAL_STATUS_MACRO_CONCAT(shoal_statusor_, __LINE__), lhs, rexpr)

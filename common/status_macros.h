// Early-return helpers for absl::Status and absl::StatusOr. The installed
// Abseil (20220623) predates its own status macros, so they live here.
#ifndef COMPUTEVOUCHER_COMMON_STATUS_MACROS_H_
#define COMPUTEVOUCHER_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CV_STATUS_CONCAT_INNER_(a, b) a##b
#define CV_STATUS_CONCAT_(a, b) CV_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function when it is not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status cv_status_ = (expr);      \
    if (!cv_status_.ok()) return cv_status_; \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status from the
// enclosing function when it is not OK, otherwise moves its value into
// `lhs` (which may be a declaration, e.g. `auto x`).
#define ASSIGN_OR_RETURN(lhs, rexpr)                                        \
  CV_ASSIGN_OR_RETURN_IMPL_(CV_STATUS_CONCAT_(cv_statusor_, __LINE__), lhs, \
                            rexpr)

#define CV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)    \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // COMPUTEVOUCHER_COMMON_STATUS_MACROS_H_

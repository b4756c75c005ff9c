// SPDX-License-Identifier: Apache-2.0
// Checks that stay on in every build. HNAS_CHECK throws the given error type with
// a message; HNAS_ASSERT guards invariants and reports file and line.
#pragma once

#include <sstream>
#include <string>

#include "hnas/core/error.hpp"

namespace hnas::detail {
[[noreturn]] void throw_assertion(const char* condition, const char* file, int line, const std::string& message);
}  // namespace hnas::detail

/// Throws `ErrorType(message)` unless `condition` holds; `message` is a stream expression:
/// HNAS_CHECK(n > 0, ConfigError, "train.steps must be positive, got " << n);
#define HNAS_CHECK(condition, ErrorType, message)        \
  do {                                                   \
    if (!(condition)) {                                  \
      std::ostringstream hnas_check_stream_;             \
      hnas_check_stream_ << message;                     \
      throw ::hnas::ErrorType(hnas_check_stream_.str()); \
    }                                                    \
  } while (false)

/// Internal invariant; throws InternalError naming the condition, file and line.
#define HNAS_ASSERT(condition, message)                                                           \
  do {                                                                                            \
    if (!(condition)) {                                                                           \
      std::ostringstream hnas_assert_stream_;                                                     \
      hnas_assert_stream_ << message;                                                             \
      ::hnas::detail::throw_assertion(#condition, __FILE__, __LINE__, hnas_assert_stream_.str()); \
    }                                                                                             \
  } while (false)

// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/check.hpp"

namespace hnas::detail {

void throw_assertion(const char* condition, const char* file, int line, const std::string& message) {
  std::ostringstream out;
  out << "internal error: assertion `" << condition << "` failed at " << file << ":" << line;
  if (!message.empty()) out << ": " << message;
  throw InternalError(out.str());
}

}  // namespace hnas::detail

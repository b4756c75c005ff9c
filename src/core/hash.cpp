// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/hash.hpp"

#include <cstdio>

namespace hnas {

std::string hex_fingerprint(std::string_view text) {
  char digits[17];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(fnv1a(text)));
  return digits;
}

}  // namespace hnas

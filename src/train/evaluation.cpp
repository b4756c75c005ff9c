// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/evaluation.hpp"

namespace hnas::train {

const char* objective_name(Objective objective) {
  return objective == Objective::Mad ? "MAD mean accuracy" : "token validation loss";
}

}  // namespace hnas::train

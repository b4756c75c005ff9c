// SPDX-License-Identifier: Apache-2.0
// Module-private: the residual sublayers a genome letter turns into, and the factory that
// maps each registered primitive to its module.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "hnas/arch/model_shape.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/model/ops.hpp"

namespace hnas::model {

class RmsNormImpl;

/// What every sublayer may need besides its input.
struct SublayerContext {
  const RopeTable& rope;
  /// Incremental decoding: the attention layer's keys and values so far (null: none).
  KvCache::Layer* cache = nullptr;
  int64_t position = 0;  ///< position of the first input token (the cache's length)
};

/// f(RMSNorm(x)) of one residual sublayer; the caller adds the residual.
class SublayerImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const SublayerContext& context) = 0;
};

/// Builds the sublayer for primitive `p`; one entry per row of the arch registry.
std::shared_ptr<SublayerImpl> make_sublayer(arch::Primitive p, const arch::ModelShape& shape, Kernels kernels);

}  // namespace hnas::model

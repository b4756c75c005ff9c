// SPDX-License-Identifier: Apache-2.0
// The registry of computational primitives a layer can be. Each primitive is one row of
// the table in src/arch/primitive.cpp: its letter, name, and its parameter and FLOP
// formulas. Adding a primitive means adding a row there and its module builder in
// src/model/sublayer.cpp.
// The registry is immutable: readable from any rank or thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hnas::arch {

struct ModelShape;

/// Index of a primitive in the registry. Stable for a given build.
enum class Primitive : uint8_t {
  Attention = 0,  ///< 'A': grouped-query causal self-attention with RoPE
  Mlp = 1,        ///< 'M': SwiGLU MLP
};
/// The number of primitives: every table indexed by Primitive (the registry, the model's
/// module factories) has exactly this many rows, checked at compile time.
inline constexpr size_t kNumPrimitives = 2;

struct PrimitiveInfo {
  Primitive id;
  char letter;       ///< upper-case letter used in architecture strings
  const char* name;  ///< e.g. "attention"
  const char* description;
  /// Parameters of one residual sublayer of this primitive (its pre-norm included).
  int64_t (*parameters)(const ModelShape& shape);
  /// Forward FLOPs per token of one sublayer at sequence length `seq_len`
  /// (multiply-add = 2 FLOPs; causal attention counts the (T+1)/2 mean context).
  double (*forward_flops_per_token)(const ModelShape& shape, int64_t seq_len);
};

/// Every registered primitive, in Primitive order.
const std::vector<PrimitiveInfo>& primitive_registry();
/// The row for `id`.
const PrimitiveInfo& primitive_info(Primitive id);
/// The row whose letter is `letter`, or nullptr.
const PrimitiveInfo* find_primitive(char letter);
/// "A (attention), M (mlp)": for error messages.
std::string registered_letters();

}  // namespace hnas::arch

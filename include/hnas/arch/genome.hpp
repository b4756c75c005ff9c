// SPDX-License-Identifier: Apache-2.0
// The architecture genome: the ordered list of primitives, one per residual sublayer.
// Written as letters ("AAMMMM") or run-length ("A2M4"); both parse to the same genome.
// Pure values and functions: callable from any rank or thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hnas/arch/primitive.hpp"

namespace hnas::arch {

class Genome {
 public:
  Genome() = default;
  explicit Genome(std::vector<Primitive> layers) : layers_(std::move(layers)) {}

  /// Parses "AAMMMM", "A2M4" or a mix ("AM3A"). Throws ConfigError that names the
  /// offending character and its position for anything else (empty, unknown letter,
  /// zero or missing count, whitespace, more than kMaxLayers layers).
  static Genome parse(std::string_view text);

  /// One letter per layer: "AAMMMM".
  std::string to_string() const;
  /// Run-length form: "A2M4" (runs of one are written without a count: "AMA").
  std::string to_run_length() const;

  const std::vector<Primitive>& layers() const { return layers_; }
  size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  Primitive operator[](size_t i) const { return layers_[i]; }
  /// Number of layers of primitive `p`.
  size_t count(Primitive p) const;

  bool operator==(const Genome& other) const { return layers_ == other.layers_; }
  bool operator!=(const Genome& other) const { return layers_ != other.layers_; }

  static constexpr size_t kMaxLayers = 4096;

 private:
  std::vector<Primitive> layers_;
};

}  // namespace hnas::arch

// SPDX-License-Identifier: Apache-2.0
#include "hnas/arch/genome.hpp"

#include <cctype>

#include "hnas/core/check.hpp"

namespace hnas::arch {
namespace {

[[noreturn]] void reject(std::string_view text, size_t pos, const std::string& why) {
  std::ostringstream out;
  out << "invalid architecture \"" << text << "\": " << why;
  if (pos < text.size()) out << " at position " << pos + 1 << " ('" << text[pos] << "')";
  out << "; expected letters " << registered_letters()
      << ", each optionally followed by a repeat count, e.g. AAMMMM or A2M4";
  throw ConfigError(out.str());
}

}  // namespace

Genome Genome::parse(std::string_view text) {
  if (text.empty()) reject(text, 0, "it is empty");
  std::vector<Primitive> layers;
  size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    if (std::isdigit(static_cast<unsigned char>(c))) reject(text, pos, "a repeat count must follow a primitive letter");
    if (std::isspace(static_cast<unsigned char>(c))) reject(text, pos, "whitespace is not allowed");
    const PrimitiveInfo* info = find_primitive(c);
    if (info == nullptr) {
      const bool lower =
          std::islower(static_cast<unsigned char>(c)) && find_primitive(static_cast<char>(std::toupper(c))) != nullptr;
      reject(text, pos, lower ? "primitive letters are upper case" : "unknown primitive");
    }
    const size_t letter_pos = pos++;
    size_t count = 1;
    if (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      const size_t count_pos = pos;
      count = 0;
      while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
        count = count * 10 + static_cast<size_t>(text[pos] - '0');
        if (count > kMaxLayers)
          reject(text, count_pos, "repeat count exceeds the limit of " + std::to_string(kMaxLayers) + " layers");
        ++pos;
      }
      if (count == 0) reject(text, count_pos, "a repeat count must be at least 1");
      if (text[count_pos] == '0') reject(text, count_pos, "a repeat count must not start with 0");
    }
    if (layers.size() + count > kMaxLayers)
      reject(text, letter_pos, "more than " + std::to_string(kMaxLayers) + " layers");
    layers.insert(layers.end(), count, info->id);
  }
  return Genome(std::move(layers));
}

std::string Genome::to_string() const {
  std::string out;
  out.reserve(layers_.size());
  for (Primitive p : layers_) out += primitive_info(p).letter;
  return out;
}

std::string Genome::to_run_length() const {
  std::string out;
  for (size_t i = 0; i < layers_.size();) {
    size_t j = i;
    while (j < layers_.size() && layers_[j] == layers_[i]) ++j;
    out += primitive_info(layers_[i]).letter;
    if (j - i > 1) out += std::to_string(j - i);
    i = j;
  }
  return out;
}

size_t Genome::count(Primitive p) const {
  size_t n = 0;
  for (Primitive q : layers_) n += (q == p);
  return n;
}

}  // namespace hnas::arch

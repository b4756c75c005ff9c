// SPDX-License-Identifier: Apache-2.0
// The activation counts follow what the autograd nodes of src/model save: RmsNorm keeps
// its input and a 1/rms per row, a Linear its input, the fused attention its packed qkv,
// output and per-row logsumexp, SwiGLU its [gate | up] input, and the fused cross-entropy
// the softmax - onehot of every row. Each residual stream is the next norm's saved input.
#include "hnas/train/memory_estimate.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"

namespace hnas::train {
namespace {

// FusedAdamW starts each parameter's moments on a 16-float boundary.
constexpr int64_t kMomentAlign = 16;

// The heap keeps what a step frees for the next (train::keep_freed_memory), and the
// activations' blocks fragment it: a training process levels off at about 1.3x the live
// peak after some steps (tests/train/memory_estimate_test.cpp), which a quarter more of
// the activations covers with a little to spare.
constexpr int64_t kHeapSlackDivisor = 4;

/// Elements autograd keeps per token for one sublayer, and its backward's working set.
struct LayerActivations {
  int64_t saved;
  int64_t backward;
};

LayerActivations layer_activations(arch::Primitive p, const arch::ModelShape& s) {
  const int64_t d = s.d_model;
  switch (p) {
    case arch::Primitive::Attention: {
      const int64_t qkv = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim, attn = s.num_heads * s.head_dim;
      // Norm input and 1/rms, norm output (the qkv Linear's input), qkv, output (the out
      // Linear's input), logsumexp per head. Backward: the incoming residual gradient, the
      // norm's d_x and their sum, d_out and d_qkv.
      return {2 * d + 1 + qkv + attn + s.num_heads, 3 * d + attn + qkv};
    }
    case arch::Primitive::Mlp:
      // Norm input and 1/rms, norm output, [gate | up], SwiGLU output (the down Linear's
      // input). Backward: the residual gradients as above, d_hidden and d_[gate | up].
      return {2 * d + 1 + 3 * s.mlp_hidden, 3 * d + 3 * s.mlp_hidden};
  }
  throw InternalError("estimate_training_memory: no activation model for primitive " +
                      std::to_string(static_cast<int>(p)));
}

// Parameter tensors of the model, for FusedAdamW's alignment padding: at most five per
// sublayer (norm gain, two matrices, two biases) and a dozen in the embedding and the
// head or decoder.
int64_t max_parameter_tensors(const arch::Genome& genome) { return 5 * static_cast<int64_t>(genome.size()) + 12; }

/// The first whitespace-separated number in `path`; nullopt if unreadable or not a number ("max").
std::optional<int64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  long long value = 0;
  if (!(in >> value)) return std::nullopt;
  return static_cast<int64_t>(value);
}

/// The value of line "`key` N" of a memory.stat or meminfo-like file.
std::optional<int64_t> read_keyed(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string name;
  long long value = 0;
  while (in >> name >> value) {
    if (name == key) return static_cast<int64_t>(value);
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

int64_t meminfo_available() {
  const auto kib = read_keyed("/proc/meminfo", "MemAvailable:");
  return kib ? *kib * 1024 : -1;
}

/// The cgroup path of this process in the hierarchy that `matches` a /proc/self/cgroup line.
template <typename Matches>
std::optional<std::string> cgroup_path(Matches matches) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    // "hierarchy-id:controllers:path"
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    if (matches(line.substr(0, first), line.substr(first + 1, second - first - 1))) return line.substr(second + 1);
  }
  return std::nullopt;
}

/// Least headroom (limit - usage + inactive file cache) over `root` + `path` and its
/// ancestors up to `root`; -1 if none has a limit. Inside a container the path may name
/// the host's hierarchy: directories that do not exist are skipped.
int64_t least_headroom(const std::string& root, std::string path, const char* limit_file, const char* usage_file,
                       const char* inactive_key) {
  int64_t least = -1;
  for (;;) {
    const std::string dir = root + path;
    const auto limit = read_number(dir + "/" + limit_file);
    // cgroup v1 writes "no limit" as a huge number (2^63 rounded down to a page).
    if (limit && *limit < (int64_t{1} << 60)) {
      if (const auto usage = read_number(dir + "/" + usage_file)) {
        const int64_t inactive = read_keyed(dir + "/memory.stat", inactive_key).value_or(0);
        const int64_t headroom = std::max<int64_t>(0, *limit - std::max<int64_t>(0, *usage - inactive));
        least = least < 0 ? headroom : std::min(least, headroom);
      }
    }
    if (path.empty() || path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
  }
  return least;
}

int64_t cgroup_headroom() {
  // v2: the unified hierarchy at /sys/fs/cgroup, or at /sys/fs/cgroup/unified on hybrid systems.
  if (const auto path = cgroup_path([](const std::string& id, const std::string&) { return id == "0"; })) {
    for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      if (!std::ifstream(std::string(root) + "/cgroup.controllers")) continue;
      const int64_t headroom = least_headroom(root, *path, "memory.max", "memory.current", "inactive_file");
      if (headroom >= 0) return headroom;
    }
  }
  // v1: the memory controller's own hierarchy.
  const auto path = cgroup_path([](const std::string&, const std::string& controllers) {
    std::istringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');)
      if (c == "memory") return true;
    return false;
  });
  if (!path) return -1;
  return least_headroom("/sys/fs/cgroup/memory", *path, "memory.limit_in_bytes", "memory.usage_in_bytes",
                        "total_inactive_file");
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  const double magnitude = std::abs(b);
  if (magnitude >= 1024.0 * 1024 * 1024) return log::format("%.1f GiB", b / (1024.0 * 1024 * 1024));
  if (magnitude >= 1024.0 * 1024) return log::format("%.1f MiB", b / (1024.0 * 1024));
  if (magnitude >= 1024.0) return log::format("%.1f KiB", b / 1024.0);
  return log::format("%ld B", static_cast<long>(bytes));
}

std::string MemoryEstimate::describe() const {
  return "parameters " + format_bytes(parameters) + " + gradients " + format_bytes(gradients) + " + AdamW state " +
         format_bytes(optimizer_state) + " + activations " + format_bytes(activations) + " = " + format_bytes(total);
}

MemoryEstimate estimate_training_memory(const arch::Genome& genome, const arch::ModelShape& shape,
                                        int64_t rows_per_step, int64_t seq_len, int element_bytes, int team_size,
                                        bool recompute) {
  shape.validate();
  HNAS_CHECK(!genome.empty(), ConfigError, "the architecture has no layers");
  HNAS_CHECK(rows_per_step >= 1 && seq_len >= 1, ConfigError,
             "a training step needs at least one row of one token, got " << rows_per_step << " rows of " << seq_len);
  HNAS_CHECK(element_bytes >= 1 && team_size >= 1, ConfigError,
             "element_bytes (" << element_bytes << ") and team_size (" << team_size << ") must be >= 1");
  const int64_t eb = element_bytes;
  const int64_t d = shape.d_model, vocab = shape.vocab_size;
  const int64_t tokens = rows_per_step * seq_len;

  MemoryEstimate m;
  const int64_t numel = arch::count_parameters(genome, shape).total;
  m.parameters = numel * eb;
  // A team's MPI reducer packs the gradients into one flat buffer it keeps between steps.
  m.gradients = numel * eb * (team_size > 1 ? 2 : 1);
  m.optimizer_state = 2 * (numel + (kMomentAlign - 1) * max_parameter_tensors(genome)) * eb;

  // Per token: the embedding output and every sublayer's saved tensors; the largest
  // backward working set of one sublayer is live at a time.
  int64_t per_token = d;
  int64_t backward = 0, largest_saved = 0;
  for (const arch::Primitive p : genome.layers()) {
    const auto layer = layer_activations(p, shape);
    // Recomputed: only the sublayer's input is kept; the largest sublayer's own saved
    // tensors exist again while its backward runs.
    per_token += recompute ? d : layer.saved;
    largest_saved = std::max(largest_saved, layer.saved);
    backward = std::max(backward, layer.backward);
  }
  if (recompute) per_token += largest_saved;
  int64_t elements = 0;
  if (shape.backbone == arch::Backbone::LanguageModel) {
    // Final norm: its input and 1/rms, its output (the head's input); then the logits and
    // the cross-entropy's saved gradient, which meet the logits' gradient at the start of
    // the backward: two [tokens, vocab] at any one time. The head's backward adds d_hidden.
    per_token += 2 * d + 1;
    elements = tokens * per_token + 2 * tokens * vocab + tokens * std::max(backward, d);
  } else {
    // The auto-encoder decodes max_seq_len positions per row from the last hidden state:
    // two (norm, Linear, GELU) blocks keep input, 1/rms, norm output and pre-GELU output;
    // the last norm and Linear keep input, 1/rms and norm output; then logits and gradient.
    const int64_t decoded = rows_per_step * shape.max_seq_len;
    elements = tokens * per_token + tokens * backward + decoded * (2 * (3 * d + 1) + (2 * d + 1)) +
               2 * decoded * vocab + shape.max_seq_len * d;  // + the position table
  }
  if (genome.count(arch::Primitive::Attention) > 0)  // the rotary tables, cos and sin
    elements += std::max(seq_len, shape.max_seq_len) * shape.head_dim;
  const int64_t target_positions =
      shape.backbone == arch::Backbone::LanguageModel ? tokens : rows_per_step * shape.max_seq_len;
  m.activations = elements * eb + 8 * (tokens + target_positions);  // int64 inputs and targets
  m.activations += m.activations / kHeapSlackDivisor;

  m.total = m.parameters + m.gradients + m.optimizer_state + m.activations;
  return m;
}

int64_t available_memory_bytes() {
  const int64_t meminfo = meminfo_available();
  const int64_t cgroup = cgroup_headroom();
  if (meminfo < 0) return cgroup;
  if (cgroup < 0) return meminfo;
  return std::min(meminfo, cgroup);
}

}  // namespace hnas::train

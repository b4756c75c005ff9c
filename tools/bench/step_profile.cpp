// SPDX-License-Identifier: Apache-2.0
// Where a training step's time goes: per-piece forward/backward timings of the sublayers
// (built from the same public modules and ops as src/model/sublayer.cpp) and a per-op
// profile of whole steps from LibTorch's profiler, grouped by step phase.
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "hnas/model/ops.hpp"
#include "hnas/train/trainer.hpp"
#include "step_bench.hpp"

namespace hnas::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// One piece of a sublayer: `forward` builds its graph from leaves created once, so that
// each call times only the piece's own forward and backward.
struct Piece {
  std::string group;
  std::string name;
  int64_t calls_per_step;
  std::function<torch::Tensor()> forward;
  std::vector<torch::Tensor> leaves;  // inputs and parameters whose gradients are cleared
};

std::pair<double, double> time_piece(Piece& piece, int repeats) {
  std::vector<double> fwd, bwd;
  for (int r = 0; r <= repeats; ++r) {
    for (auto& t : piece.leaves) t.mutable_grad().reset();
    const auto t0 = Clock::now();
    auto out = piece.forward();
    const auto t1 = Clock::now();
    auto grad = out.dim() == 0 ? torch::ones_like(out) : torch::randn_like(out);
    const auto t2 = Clock::now();
    out.backward(grad);
    const auto t3 = Clock::now();
    if (r == 0) continue;  // warm-up: first-touch allocations
    fwd.push_back(seconds_between(t0, t1));
    bwd.push_back(seconds_between(t2, t3));
  }
  return {median(fwd), median(bwd)};
}

std::vector<Piece> make_pieces(const BenchShape& b, model::Kernels kernels) {
  const auto& s = b.shape;
  const int64_t qkv_width = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim;
  const int64_t attn_width = s.num_heads * s.head_dim;
  const auto genome = b.genome();
  const auto num_attention = static_cast<int64_t>(genome.count(arch::Primitive::Attention));
  const auto num_mlp = static_cast<int64_t>(genome.count(arch::Primitive::Mlp));
  auto leaf = [&](int64_t width) { return torch::randn({b.batch, b.seq_len, width}).requires_grad_(); };
  auto with_params = [](std::vector<torch::Tensor> leaves, const torch::nn::Module& m) {
    for (const auto& p : m.parameters()) leaves.push_back(p);
    return leaves;
  };

  std::vector<Piece> pieces;
  auto add_norm = [&](const std::string& group, int64_t calls) {
    model::RmsNorm norm(s.d_model, s.norm_eps, kernels);
    auto x = leaf(s.d_model);
    pieces.push_back(
        {group, "rms_norm", calls, [norm, x]() mutable { return norm->forward(x); }, with_params({x}, *norm)});
  };
  auto add_linear = [&](const std::string& group, const std::string& name, int64_t calls, int64_t in, int64_t out,
                        bool bias) {
    torch::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(bias));
    auto x = leaf(in);
    pieces.push_back(
        {group, name, calls, [linear, x]() mutable { return linear->forward(x); }, with_params({x}, *linear)});
  };

  if (num_attention > 0) {
    auto rope = std::make_shared<model::RopeTable>(
        model::make_rope_table(b.seq_len, s.head_dim, s.rope_theta, torch::TensorOptions()));
    const model::AttentionShape shape{s.num_heads, s.num_kv_heads, s.head_dim};
    add_norm("attention", num_attention);
    add_linear("attention", "qkv linear", num_attention, s.d_model, qkv_width, s.attention_bias);
    auto qkv = leaf(qkv_width);
    pieces.push_back({"attention",
                      "causal_attention",
                      num_attention,
                      [=]() { return model::causal_attention(qkv, shape, *rope, kernels); },
                      {qkv}});
    add_linear("attention", "out linear", num_attention, attn_width, s.d_model, s.attention_bias);
  }
  if (num_mlp > 0) {
    add_norm("mlp", num_mlp);
    add_linear("mlp", "gate_up linear", num_mlp, s.d_model, 2 * s.mlp_hidden, false);
    auto gate_up = leaf(2 * s.mlp_hidden);
    pieces.push_back({"mlp", "swiglu", num_mlp, [=]() { return model::swiglu(gate_up, kernels); }, {gate_up}});
    add_linear("mlp", "down linear", num_mlp, s.mlp_hidden, s.d_model, false);
  }
  {
    auto x = leaf(s.d_model), y = leaf(s.d_model);
    pieces.push_back({"residual", "x + f(x)", num_attention + num_mlp, [=]() { return x + y; }, {x, y}});
  }
  {
    torch::nn::Embedding embedding(s.vocab_size, s.d_model);
    auto tokens = torch::randint(s.vocab_size, {b.batch, b.seq_len});
    pieces.push_back({"embed+head", "embedding", 1, [=]() mutable { return embedding->forward(tokens); },
                      with_params({}, *embedding)});
  }
  add_norm("embed+head", 1);
  add_linear("embed+head", "head linear", 1, s.d_model, s.vocab_size, s.head_bias);
  {
    auto logits = leaf(s.vocab_size);
    auto targets = torch::randint(s.vocab_size, {b.batch, b.seq_len});
    const double n = static_cast<double>(b.tokens());
    pieces.push_back({"embed+head",
                      "cross_entropy",
                      1,
                      [=]() { return train::summed_cross_entropy(logits, targets) / n; },
                      {logits}});
  }
  return pieces;
}

// Which linear layer a matrix product belongs to, from the widths it multiplies (the token
// count aside); empty when no layer matches.
std::string gemm_site(const std::string& op, const std::vector<std::vector<int64_t>>& shapes, const BenchShape& b) {
  if (op == "aten::bmm" || op == "aten::baddbmm") return "gemm attention core";
  if (op != "aten::mm" && op != "aten::addmm") return "";
  std::set<int64_t> dims;
  for (const auto& shape : shapes)
    if (shape.size() == 2)
      for (int64_t d : shape)
        if (d != b.tokens()) dims.insert(d);
  const auto& s = b.shape;
  const int64_t d = s.d_model;
  auto is = [&](std::set<int64_t> want) { return dims == want; };
  if (is({d, (s.num_heads + 2 * s.num_kv_heads) * s.head_dim})) return "gemm attn qkv";
  if (is({d, s.num_heads * s.head_dim})) return "gemm attn out";
  if (is({d, 2 * s.mlp_hidden})) return "gemm mlp gate_up";
  if (is({d, s.mlp_hidden})) return "gemm mlp down";
  if (is({d, s.vocab_size})) return "gemm head";
  return "";
}

std::string shapes_string(const std::vector<std::vector<int64_t>>& shapes) {
  std::string out;
  for (const auto& shape : shapes) {
    if (shape.empty()) continue;
    out += "[";
    for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
    out += "]";
  }
  return out;
}

struct OpStat {
  double self_us = 0;
  double total_us = 0;
  int64_t calls = 0;
};

}  // namespace

void print_component_breakdown(const BenchShape& b, model::Kernels kernels, int repeats,
                               double measured_forward_backward_s) {
  auto pieces = make_pieces(b, kernels);
  std::printf("-- component breakdown, %s kernels (ms per call, median of %d; step = calls x (fwd + bwd))\n",
              kernels == model::Kernels::Fused ? "fused" : "reference", repeats);
  std::printf("   %-11s %-17s %5s %9s %9s %9s %7s\n", "group", "piece", "calls", "fwd", "bwd", "step", "share");
  std::map<std::string, std::pair<double, double>> groups;  // group -> (fwd, bwd) per step
  double total = 0;
  std::vector<std::tuple<double, double>> times;
  for (auto& piece : pieces) {
    const auto [fwd, bwd] = time_piece(piece, repeats);
    times.emplace_back(fwd, bwd);
    const double calls = static_cast<double>(piece.calls_per_step);
    total += calls * (fwd + bwd);
    groups[piece.group].first += calls * fwd;
    groups[piece.group].second += calls * bwd;
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto [fwd, bwd] = times[i];
    const double step = static_cast<double>(pieces[i].calls_per_step) * (fwd + bwd);
    std::printf("   %-11s %-17s %5ld %9.3f %9.3f %9.1f %6.1f%%\n", pieces[i].group.c_str(), pieces[i].name.c_str(),
                static_cast<long>(pieces[i].calls_per_step), 1e3 * fwd, 1e3 * bwd, 1e3 * step, 100.0 * step / total);
  }
  for (const auto& [group, fb] : groups)
    std::printf("   %-29s fwd %8.1f  bwd %8.1f  total %8.1f ms %6.1f%%\n", (group + " (all)").c_str(), 1e3 * fb.first,
                1e3 * fb.second, 1e3 * (fb.first + fb.second), 100.0 * (fb.first + fb.second) / total);
  std::printf("   sum of pieces %.1f ms; the step's forward + loss + backward measured %.1f ms\n", 1e3 * total,
              1e3 * measured_forward_backward_s);
  std::fflush(stdout);
}

void print_op_profile(StepRunner& runner, const BenchShape& b, int steps, int top) {
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(
      torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/true));
  for (int i = 0; i < steps; ++i) runner.step();
  const auto lists = prof::disableProfilerLegacy();

  // Self time = own time minus that of the ops nested inside (per thread, LIFO push/pop).
  struct Frame {
    const prof::LegacyEvent* push;
    double child_us;
  };
  std::map<std::tuple<std::string, std::string, std::string>, OpStat> by_shape;  // (phase, op, shapes)
  std::map<std::pair<std::string, std::string>, OpStat> by_op;                   // (phase, op or gemm site)
  std::map<std::string, double> phase_self;
  for (const auto& list : lists) {
    std::vector<Frame> stack;
    for (const auto& event : list) {
      if (event.kind() == prof::EventKind::PushRange) {
        stack.push_back({&event, 0.0});
        continue;
      }
      if (event.kind() != prof::EventKind::PopRange || stack.empty()) continue;
      const Frame frame = stack.back();
      stack.pop_back();
      const double elapsed = frame.push->cpuElapsedUs(event);
      if (!stack.empty()) stack.back().child_us += elapsed;
      const std::string name = frame.push->name();
      std::string phase = "(other)";
      for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
        const std::string outer = it->push->name();
        if (outer.rfind("step.", 0) == 0) {
          phase = outer.substr(5);
          break;
        }
      }
      if (name.rfind("step.", 0) == 0) continue;
      const double self = elapsed - frame.child_us;
      const auto shapes = frame.push->shapes();
      auto add = [&](OpStat& stat) {
        stat.self_us += self;
        stat.total_us += elapsed;
        stat.calls += 1;
      };
      add(by_shape[{phase, name, shapes_string(shapes)}]);
      const std::string site = gemm_site(name, shapes, b);
      add(by_op[{phase, site.empty() ? name : site}]);
      phase_self[phase] += self;
    }
  }
  const double scale = 1.0 / (1e3 * steps);  // us over all steps -> ms per step

  std::vector<std::pair<double, std::tuple<std::string, std::string, std::string>>> sorted;
  for (const auto& [key, stat] : by_shape) sorted.emplace_back(stat.self_us, key);
  std::sort(sorted.rbegin(), sorted.rend());
  std::printf("   %-10s %-36s %-34s %6s %9s\n", "phase", "op", "input shapes", "calls", "self ms");
  for (size_t i = 0; i < sorted.size() && static_cast<int>(i) < top; ++i) {
    const auto& [phase, name, shapes] = sorted[i].second;
    const auto& stat = by_shape[sorted[i].second];
    std::printf("   %-10s %-36.36s %-34.34s %6ld %9.2f\n", phase.c_str(), name.c_str(), shapes.c_str(),
                static_cast<long>(stat.calls / steps), stat.self_us * scale);
  }
  std::printf("   roll-up per phase (self ms per step; gemms by layer):\n");
  for (const auto& [phase, self] : phase_self) {
    std::vector<std::pair<double, std::string>> ops;
    for (const auto& [key, stat] : by_op)
      if (key.first == phase) ops.emplace_back(stat.self_us, key.second);
    std::sort(ops.rbegin(), ops.rend());
    std::printf("   %-10s %8.1f ms:", phase.c_str(), self * scale);
    for (size_t i = 0; i < ops.size() && i < 8; ++i)
      std::printf(" %s %.1f,", ops[i].second.c_str(), ops[i].first * scale);
    std::printf("\n");
  }
  std::fflush(stdout);
}

}  // namespace hnas::bench

// SPDX-License-Identifier: Apache-2.0
// step_bench: times one training step (forward, cross-entropy, backward, clipping, AdamW)
// of the C++ hybrid model, with the fused kernels and with plain LibTorch ops, against the
// eager PyTorch model of step_reference.py on the same thread count, and reports tokens/s,
// model GFLOP/s, the fraction of this machine's measured sgemm peak and the C++/Python ratio.
#include "step_bench.hpp"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <dlfcn.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "hnas/train/throughput.hpp"
#include "hnas/train/trainer.hpp"

#ifndef HNAS_SOURCE_DIR
#error "HNAS_SOURCE_DIR must name the source tree (it locates step_reference.py)"
#endif

namespace hnas::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

arch::ModelShape make_shape(int64_t d_model, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t hidden,
                            int64_t vocab, int64_t seq_len) {
  arch::ModelShape s;
  s.d_model = d_model;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = head_dim;
  s.mlp_hidden = hidden;
  s.vocab_size = vocab;
  s.max_seq_len = seq_len;
  return s;
}

// Must match SHAPES in step_reference.py.
std::vector<BenchShape> bench_shapes() {
  return {
      {"search", "AAMMMMMAAMMMAMMM", make_shape(128, 16, 4, 8, 352, 16, 128), 128, 32, 10},
      {"large", "AMAMAMAM", make_shape(512, 8, 4, 64, 1536, 4096, 256), 256, 8, 5},
  };
}

struct Options {
  int threads = 0;
  int steps = 0;  // 0: the shape's default
  int warmup = 2;
  std::string shape = "all";
  std::string python = "/usr/bin/python3";
  bool run_python = true;
  bool reference = true;
  bool breakdown = false;
  bool profile_ops = false;
  bool caching_allocator = false;
  ZeroGrad zero_grad = ZeroGrad::SetToNone;
};

void usage(const char* argv0) {
  std::printf(
      "usage: %s [options]\n"
      "  --threads N        intra-op and BLAS threads for both C++ and Python (default: all cores)\n"
      "  --steps N          timed steps; the median is reported (default: 10 search, 5 large)\n"
      "  --warmup N         untimed steps first (default 2)\n"
      "  --shape S          search | large | all (default all)\n"
      "  --python PATH      interpreter with torch (default /usr/bin/python3)\n"
      "  --no-python        skip the PyTorch reference\n"
      "  --no-reference     skip the C++ model with Kernels::Reference\n"
      "  --zero-grad M      none (set gradients to undefined, default) | memset (Optimizer::zero_grad)\n"
      "  --breakdown        time each sublayer piece (attention, MLP, norms, head) forward/backward\n"
      "  --profile-ops      per-op self time of one step under the LibTorch profiler\n"
      "  --caching-allocator  C++ only: cache freed CPU blocks per size (no page faults per step)\n",
      argv0);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "step_bench: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--threads") o.threads = std::stoi(value());
    else if (arg == "--steps") o.steps = std::stoi(value());
    else if (arg == "--warmup") o.warmup = std::stoi(value());
    else if (arg == "--shape") o.shape = value();
    else if (arg == "--python") o.python = value();
    else if (arg == "--no-python") o.run_python = false;
    else if (arg == "--no-reference") o.reference = false;
    else if (arg == "--breakdown") o.breakdown = true;
    else if (arg == "--profile-ops") o.profile_ops = true;
    else if (arg == "--caching-allocator") o.caching_allocator = true;
    else if (arg == "--zero-grad") {
      const std::string mode = value();
      if (mode != "none" && mode != "memset") {
        std::fprintf(stderr, "step_bench: --zero-grad takes none or memset\n");
        std::exit(2);
      }
      o.zero_grad = mode == "memset" ? ZeroGrad::Memset : ZeroGrad::SetToNone;
    } else if (arg == "-h" || arg == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else {
      std::fprintf(stderr, "step_bench: unknown option %s\n", arg.c_str());
      usage(argv[0]);
      std::exit(2);
    }
  }
  if (o.threads <= 0) {
    cpu_set_t set;
    o.threads = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  }
  return o;
}

// A pthread OpenBLAS keeps its own thread pool, which at::set_num_threads does not size;
// found at run time so that other BLAS libraries still link.
void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

std::string blas_core() {
  using CoreName = char* (*)();
  auto f = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return f ? f() : "not OpenBLAS";
}

// CPU time other processes took while we ran (a shared machine's compile jobs make timings
// meaningless; this says when that happened).
class ForeignLoad {
 public:
  ForeignLoad() : start_(Clock::now()), busy_(busy_ticks()), own_(own_seconds()) {}
  /// Fraction of all CPUs used by other processes since construction.
  double fraction(int cpus) const {
    const double wall = seconds_between(start_, Clock::now());
    const double busy = static_cast<double>(busy_ticks() - busy_) / static_cast<double>(sysconf(_SC_CLK_TCK));
    return std::max(0.0, busy - (own_seconds() - own_)) / (wall * cpus);
  }

 private:
  static long long busy_ticks() {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    return user + nice + system + irq + softirq + steal;
  }
  static double own_seconds() {
    double total = 0;
    for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
      rusage u{};
      getrusage(who, &u);
      total += u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    }
    return total;
  }
  Clock::time_point start_;
  long long busy_;
  double own_;
};

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct ImplResult {
  std::string name;
  double seconds = 0;  // median step time; 0 if it did not run
  double best = 0;     // fastest step
  PhaseTimes phases;   // per-phase medians (C++ only)
  double loss0 = 0;
  double faults_per_step = 0;  // minor page faults: first touches of freshly mapped memory
  bool has_phases = false;
};

ImplResult time_cpp(const BenchShape& shape, model::Kernels kernels, const Options& o, int steps) {
  StepRunner runner(shape, kernels, o.zero_grad, /*seed=*/0);
  ImplResult r;
  r.name = kernels == model::Kernels::Fused ? "c++ fused" : "c++ reference";
  runner.step();
  r.loss0 = runner.last_loss();
  for (int i = 1; i < o.warmup; ++i) runner.step();
  std::vector<PhaseTimes> times;
  const long faults_before = minor_faults();
  for (int i = 0; i < steps; ++i) times.push_back(runner.step());
  r.faults_per_step = static_cast<double>(minor_faults() - faults_before) / steps;
  auto med = [&](double PhaseTimes::*field) {
    std::vector<double> v;
    for (const auto& t : times) v.push_back(t.*field);
    return median(v);
  };
  std::vector<double> totals;
  for (const auto& t : times) totals.push_back(t.total());
  r.seconds = median(totals);
  r.best = *std::min_element(totals.begin(), totals.end());
  r.phases = {med(&PhaseTimes::zero_grad), med(&PhaseTimes::forward), med(&PhaseTimes::loss),
              med(&PhaseTimes::backward),  med(&PhaseTimes::clip),    med(&PhaseTimes::optimizer)};
  r.has_phases = true;
  if (o.breakdown) print_component_breakdown(shape, kernels, /*repeats=*/5, r.phases.forward + r.phases.loss + r.phases.backward);
  if (o.profile_ops) {
    std::printf("-- op profile, %s (1 step; profiler overhead inflates small ops)\n", r.name.c_str());
    print_op_profile(runner, shape, /*steps=*/1, /*top=*/30);
  }
  return r;
}

// Runs step_reference.py and reads its `python <shape> key=value ...` line.
ImplResult time_python(const BenchShape& shape, const Options& o, int steps, int64_t expect_params) {
  ImplResult r;
  r.name = "python eager";
  std::ostringstream cmd;
  cmd << o.python << " " << HNAS_SOURCE_DIR << "/tools/bench/step_reference.py --shape " << shape.name
      << " --threads " << o.threads << " --steps " << steps << " --warmup " << o.warmup
      << " --expect-params " << expect_params << " 2>&1";
  FILE* pipe = popen(cmd.str().c_str(), "r");
  if (!pipe) {
    std::fprintf(stderr, "step_bench: cannot run %s\n", cmd.str().c_str());
    return r;
  }
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  const int status = pclose(pipe);
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("python ", 0) != 0) continue;
    std::istringstream fields(line);
    std::string field;
    while (fields >> field) {
      const auto eq = field.find('=');
      if (eq == std::string::npos) continue;
      const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
      if (key == "ms_per_step") r.seconds = 1e-3 * std::stod(value);
      if (key == "min_ms") r.best = 1e-3 * std::stod(value);
      if (key == "loss0") r.loss0 = std::stod(value);
    }
  }
  if (status != 0 || r.seconds == 0)
    std::fprintf(stderr, "step_bench: the Python reference failed (%s):\n%s\n", cmd.str().c_str(), output.c_str());
  return r;
}

void print_table(const BenchShape& b, const std::vector<ImplResult>& results, double peak_flops, int64_t params) {
  const double fwd_flops = arch::forward_flops_per_token(b.genome(), b.shape, b.seq_len);
  const double step_flops = 3.0 * fwd_flops * static_cast<double>(b.tokens());
  std::printf("\n== %s: %s %s, seq %ld x batch %ld = %ld tokens/step\n", b.name.c_str(), b.arch.c_str(),
              b.shape.describe().c_str(), static_cast<long>(b.seq_len), static_cast<long>(b.batch),
              static_cast<long>(b.tokens()));
  std::printf("   %ld parameters, %.3f MFLOP/token forward, %.2f GFLOP/step (3 x forward)\n",
              static_cast<long>(params), 1e-6 * fwd_flops, 1e-9 * step_flops);
  double python_s = 0;
  for (const auto& r : results)
    if (r.name == "python eager") python_s = r.seconds;
  std::printf("%-14s %10s %9s %10s %9s %7s %10s %8s\n", "impl", "ms/step", "best ms", "tokens/s", "GFLOP/s", "%sgemm",
              "vs python", "loss0");
  for (const auto& r : results) {
    if (r.seconds <= 0) {
      std::printf("%-14s %10s\n", r.name.c_str(), "failed");
      continue;
    }
    const double flops = step_flops / r.seconds;
    char ratio[32] = "-";
    if (python_s > 0) std::snprintf(ratio, sizeof(ratio), "%.2fx", python_s / r.seconds);
    std::printf("%-14s %10.1f %9.1f %10.0f %9.1f %6.1f%% %10s %8.4f\n", r.name.c_str(), 1e3 * r.seconds, 1e3 * r.best,
                static_cast<double>(b.tokens()) / r.seconds, 1e-9 * flops, 100.0 * flops / peak_flops, ratio, r.loss0);
  }
  for (const auto& r : results) {
    if (!r.has_phases) continue;
    const auto& p = r.phases;
    std::printf("   %-13s phases (ms): zero_grad %.1f | forward %.1f | loss %.1f | backward %.1f | clip %.1f | adamw %.1f"
                " | %.0f page faults/step\n",
                r.name.c_str(), 1e3 * p.zero_grad, 1e3 * p.forward, 1e3 * p.loss, 1e3 * p.backward, 1e3 * p.clip,
                1e3 * p.optimizer, r.faults_per_step);
  }
  std::fflush(stdout);
}

}  // namespace

StepRunner::StepRunner(const BenchShape& b, model::Kernels kernels, ZeroGrad zero_grad, uint64_t seed)
    : zero_grad_(zero_grad), normaliser_(static_cast<double>(b.tokens())) {
  model::HybridModelOptions options;
  options.genome = b.genome();
  options.shape = b.shape;
  options.kernels = kernels;
  options.seed = seed;
  model_ = model::HybridModel(options);
  model_->train();
  parameters_ = model_->parameters();
  // As the trainer's make_optimizer: matrices (and the embedding) decay, gains do not.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : parameters_) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto defaults = torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.1);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(defaults));
  auto exempt = defaults;
  exempt.weight_decay(0.0);
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(exempt));
  optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups), defaults);

  auto generator = at::detail::createCPUGenerator(seed + 1);
  for (int i = 0; i < 4; ++i)
    batches_.emplace_back(torch::randint(b.shape.vocab_size, {b.batch, b.seq_len}, generator),
                          torch::randint(b.shape.vocab_size, {b.batch, b.seq_len}, generator));
}

PhaseTimes StepRunner::step() {
  const auto& [inputs, targets] = batches_[next_batch_++ % batches_.size()];
  PhaseTimes t;
  auto mark = Clock::now();
  auto lap = [&mark](double& into) {
    const auto now = Clock::now();
    into = seconds_between(mark, now);
    mark = now;
  };
  {
    RECORD_USER_SCOPE("step.zero_grad");
    if (zero_grad_ == ZeroGrad::Memset) {
      optimizer_->zero_grad();
    } else {
      for (auto& p : parameters_) p.mutable_grad().reset();
    }
  }
  lap(t.zero_grad);
  torch::Tensor logits, loss;
  {
    RECORD_USER_SCOPE("step.forward");
    logits = model_->forward(inputs);
  }
  lap(t.forward);
  {
    RECORD_USER_SCOPE("step.loss");
    loss = train::summed_cross_entropy(logits, targets) / normaliser_;
  }
  lap(t.loss);
  {
    RECORD_USER_SCOPE("step.backward");
    loss.backward();
  }
  lap(t.backward);
  {
    RECORD_USER_SCOPE("step.clip");
    torch::nn::utils::clip_grad_norm_(parameters_, 1.0);
  }
  lap(t.clip);
  {
    RECORD_USER_SCOPE("step.optimizer");
    optimizer_->step();
  }
  lap(t.optimizer);
  last_loss_ = loss.item<double>();
  return t;
}

}  // namespace hnas::bench

int main(int argc, char** argv) {
  using namespace hnas;
  const bench::Options o = bench::parse_options(argc, argv);
  if (o.caching_allocator) bench::install_caching_cpu_allocator();
  at::set_num_threads(o.threads);
  bench::set_blas_threads(o.threads);
  const std::string core = bench::blas_core();
  bench::ForeignLoad load;

  const double peak = train::measure_cpu_sgemm_flops(/*n=*/2048, /*repeats=*/10);
  std::printf("step_bench: %d threads, OpenBLAS core %s, sgemm peak %.1f GFLOP/s (n=2048, best of 10)\n", o.threads,
              core.c_str(), 1e-9 * peak);
  if (o.caching_allocator) std::printf("   C++ runs use the caching CPU allocator (--caching-allocator)\n");
  if (core == "Prescott")
    std::printf("   note: OpenBLAS did not recognise this CPU and runs its SSE3 kernels; "
                "OPENBLAS_CORETYPE=SkylakeX (AVX-512) is ~2.5x faster\n");
  std::fflush(stdout);

  bool any = false;
  for (const auto& shape : bench::bench_shapes()) {
    if (o.shape != "all" && o.shape != shape.name) continue;
    any = true;
    const int steps = o.steps > 0 ? o.steps : shape.default_steps;
    std::vector<bench::ImplResult> results;
    results.push_back(bench::time_cpp(shape, model::Kernels::Fused, o, steps));
    if (o.reference) results.push_back(bench::time_cpp(shape, model::Kernels::Reference, o, steps));
    const int64_t params = arch::count_parameters(shape.genome(), shape.shape).total;
    if (o.run_python) results.push_back(bench::time_python(shape, o, steps, params));
    bench::print_table(shape, results, peak, params);
  }
  if (!any) {
    std::fprintf(stderr, "step_bench: unknown --shape %s (search, large or all)\n", o.shape.c_str());
    return 2;
  }
  const int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const double foreign = load.fraction(cpus);
  std::printf("\nother processes used %.0f%% of %d CPUs during the run%s\n", 100.0 * foreign, cpus,
              foreign > 0.05 ? ": timings are disturbed, rerun on a quiet machine" : "");
  return 0;
}

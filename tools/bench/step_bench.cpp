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
#include <sstream>
#include <string>
#include <vector>

#include "hnas/core/process.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/train/trainer.hpp"

#ifndef HNAS_SOURCE_DIR
#error "HNAS_SOURCE_DIR must name the source tree (it locates step_reference.py)"
#endif

namespace hnas::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

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
      {"search", "AAMMMMMAAMMMAMMM", make_shape(128, 16, 4, 8, 352, 16, 128), 128, 32, 12},
      {"large", "AMAMAMAM", make_shape(512, 8, 4, 64, 1536, 4096, 256), 256, 8, 6},
  };
}

struct Options {
  int threads = 0;
  int steps = 0;  // 0: the shape's default
  int warmup = 2;
  int rounds = 3;
  std::string shape = "all";
  std::string python = "/usr/bin/python3";
  bool run_python = true;
  bool reference = true;
  bool breakdown = false;
  bool profile_ops = false;
  bool caching_allocator = false;
  bool fused_adamw = true;
  bool keep_environment = false;
  ZeroGrad zero_grad = ZeroGrad::SetToNone;
};

void usage(const char* argv0) {
  std::printf(
      "usage: %s [options]\n"
      "  --threads N        intra-op and BLAS threads for both C++ and Python (default: all cores)\n"
      "  --steps N          timed steps per implementation; the median is reported (default: 12 search, 6 large)\n"
      "  --warmup N         untimed steps first (default 2)\n"
      "  --rounds N         split the timed steps into N rounds that alternate the implementations (default 3)\n"
      "  --shape S          search | large | all (default all)\n"
      "  --python PATH      interpreter with torch (default /usr/bin/python3)\n"
      "  --keep-environment do not restart with OPENBLAS_CORETYPE / OMP_WAIT_POLICY as hnas does\n"
      "  --no-python        skip the PyTorch reference\n"
      "  --no-reference     skip the C++ model with Kernels::Reference\n"
      "  --no-fused-adamw   skip the C++ fused model with train::FusedAdamW\n"
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
    if (arg == "--threads")
      o.threads = std::stoi(value());
    else if (arg == "--steps")
      o.steps = std::stoi(value());
    else if (arg == "--warmup")
      o.warmup = std::stoi(value());
    else if (arg == "--rounds")
      o.rounds = std::stoi(value());
    else if (arg == "--shape")
      o.shape = value();
    else if (arg == "--python")
      o.python = value();
    else if (arg == "--no-python")
      o.run_python = false;
    else if (arg == "--no-reference")
      o.reference = false;
    else if (arg == "--no-fused-adamw")
      o.fused_adamw = false;
    else if (arg == "--keep-environment")
      o.keep_environment = true;
    else if (arg == "--breakdown")
      o.breakdown = true;
    else if (arg == "--profile-ops")
      o.profile_ops = true;
    else if (arg == "--caching-allocator")
      o.caching_allocator = true;
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

// One implementation under test; its step times accumulate over the rounds.
struct Impl {
  std::string name;
  std::unique_ptr<StepRunner> runner;  // null for the Python reference
  model::Kernels kernels = model::Kernels::Fused;
  Optimizer optimizer = Optimizer::Torch;
  std::vector<PhaseTimes> phases;  // C++ only
  std::vector<double> seconds;     // every timed step
  double loss0 = 0;
  long faults = 0;
};

Impl make_cpp_impl(const BenchShape& shape, model::Kernels kernels, Optimizer optimizer, const Options& o) {
  Impl impl;
  impl.name = kernels == model::Kernels::Fused ? "c++ fused" : "c++ reference";
  if (optimizer == Optimizer::Fused) impl.name += "+adamw";
  impl.kernels = kernels;
  impl.optimizer = optimizer;
  impl.runner = std::make_unique<StepRunner>(shape, kernels, optimizer, o.zero_grad, /*seed=*/0);
  impl.runner->step();
  impl.loss0 = impl.runner->last_loss();
  for (int i = 1; i < o.warmup; ++i) impl.runner->step();
  return impl;
}

void time_cpp(Impl& impl, int steps) {
  const long faults_before = minor_faults();
  for (int i = 0; i < steps; ++i) {
    impl.phases.push_back(impl.runner->step());
    impl.seconds.push_back(impl.phases.back().total());
  }
  impl.faults += minor_faults() - faults_before;
}

// Runs step_reference.py (a fresh process: its own warm-up) and reads its
// `python <shape> key=value ...` line.
void time_python(Impl& impl, const BenchShape& shape, const Options& o, int steps, int64_t expect_params) {
  std::ostringstream cmd;
  cmd << o.python << " " << HNAS_SOURCE_DIR << "/tools/bench/step_reference.py --shape " << shape.name << " --threads "
      << o.threads << " --steps " << steps << " --warmup " << o.warmup << " --expect-params " << expect_params
      << " 2>&1";
  FILE* pipe = popen(cmd.str().c_str(), "r");
  if (!pipe) {
    std::fprintf(stderr, "step_bench: cannot run %s\n", cmd.str().c_str());
    return;
  }
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  const int status = pclose(pipe);
  std::istringstream lines(output);
  std::string line;
  bool found = false;
  while (std::getline(lines, line)) {
    if (line.rfind("python ", 0) != 0) continue;
    std::istringstream fields(line);
    std::string field;
    while (fields >> field) {
      const auto eq = field.find('=');
      if (eq == std::string::npos) continue;
      const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
      if (key == "loss0") impl.loss0 = std::stod(value);
      if (key == "times_ms") {
        std::istringstream list(value);
        std::string item;
        while (std::getline(list, item, ',')) impl.seconds.push_back(1e-3 * std::stod(item));
        found = true;
      }
    }
  }
  if (status != 0 || !found)
    std::fprintf(stderr, "step_bench: the Python reference failed (%s):\n%s\n", cmd.str().c_str(), output.c_str());
}

ImplResult summarise(const Impl& impl) {
  ImplResult r;
  r.name = impl.name;
  r.loss0 = impl.loss0;
  if (impl.seconds.empty()) return r;
  r.seconds = median(impl.seconds);
  r.best = *std::min_element(impl.seconds.begin(), impl.seconds.end());
  if (impl.phases.empty()) return r;
  auto med = [&](double PhaseTimes::*field) {
    std::vector<double> v;
    for (const auto& t : impl.phases) v.push_back(t.*field);
    return median(v);
  };
  r.phases = {med(&PhaseTimes::zero_grad), med(&PhaseTimes::forward), med(&PhaseTimes::loss),
              med(&PhaseTimes::backward),  med(&PhaseTimes::clip),    med(&PhaseTimes::optimizer)};
  r.faults_per_step = static_cast<double>(impl.faults) / static_cast<double>(impl.phases.size());
  r.has_phases = true;
  return r;
}

// Times every implementation of one shape in rounds, rotating their order, so that a
// drift in the machine's speed (shared hosts) spreads over all of them; measures the
// sgemm peak after each round.
std::vector<ImplResult> run_shape(const BenchShape& shape, const Options& o, std::vector<double>& peaks) {
  const int steps = o.steps > 0 ? o.steps : shape.default_steps;
  const int rounds = std::max(1, std::min(o.rounds, steps));
  const int per_round = (steps + rounds - 1) / rounds;
  const int64_t params = arch::count_parameters(shape.genome(), shape.shape).total;

  std::vector<Impl> impls;
  impls.push_back(make_cpp_impl(shape, model::Kernels::Fused, Optimizer::Torch, o));
  if (o.fused_adamw) impls.push_back(make_cpp_impl(shape, model::Kernels::Fused, Optimizer::Fused, o));
  if (o.reference) impls.push_back(make_cpp_impl(shape, model::Kernels::Reference, Optimizer::Torch, o));
  if (o.run_python) {
    impls.emplace_back();
    impls.back().name = "python eager";
  }
  for (int round = 0; round < rounds; ++round) {
    for (size_t j = 0; j < impls.size(); ++j) {
      Impl& impl = impls[(j + static_cast<size_t>(round)) % impls.size()];
      if (impl.runner) {
        time_cpp(impl, per_round);
      } else {
        time_python(impl, shape, o, per_round, params);
      }
    }
    peaks.push_back(train::measure_cpu_sgemm_flops(/*n=*/2048, /*repeats=*/5));
  }

  std::vector<ImplResult> results;
  for (auto& impl : impls) {
    results.push_back(summarise(impl));
    if (!impl.runner || impl.optimizer != Optimizer::Torch) continue;
    const auto& p = results.back().phases;
    if (o.breakdown) print_component_breakdown(shape, impl.kernels, /*repeats=*/5, p.forward + p.loss + p.backward);
    if (o.profile_ops) {
      std::printf("-- op profile, %s (1 step; profiler overhead inflates small ops)\n", impl.name.c_str());
      print_op_profile(*impl.runner, shape, /*steps=*/1, /*top=*/30);
    }
  }
  return results;
}

void print_table(const BenchShape& b, const std::vector<ImplResult>& results, double peak_flops, int64_t params) {
  const double fwd_flops = arch::forward_flops_per_token(b.genome(), b.shape, b.seq_len);
  const double step_flops = 3.0 * fwd_flops * static_cast<double>(b.tokens());
  std::printf("\n== %s: %s %s, seq %ld x batch %ld = %ld tokens/step\n", b.name.c_str(), b.arch.c_str(),
              b.shape.describe().c_str(), static_cast<long>(b.seq_len), static_cast<long>(b.batch),
              static_cast<long>(b.tokens()));
  std::printf("   %ld parameters, %.3f MFLOP/token forward, %.2f GFLOP/step (3 x forward)\n", static_cast<long>(params),
              1e-6 * fwd_flops, 1e-9 * step_flops);
  double python_s = 0;
  for (const auto& r : results)
    if (r.name == "python eager") python_s = r.seconds;
  std::printf("%-16s %10s %9s %10s %9s %7s %10s %8s\n", "impl", "ms/step", "best ms", "tokens/s", "GFLOP/s", "%sgemm",
              "vs python", "loss0");
  for (const auto& r : results) {
    if (r.seconds <= 0) {
      std::printf("%-16s %10s\n", r.name.c_str(), "failed");
      continue;
    }
    const double flops = step_flops / r.seconds;
    char ratio[32] = "-";
    if (python_s > 0) std::snprintf(ratio, sizeof(ratio), "%.2fx", python_s / r.seconds);
    std::printf("%-16s %10.1f %9.1f %10.0f %9.1f %6.1f%% %10s %8.4f\n", r.name.c_str(), 1e3 * r.seconds, 1e3 * r.best,
                static_cast<double>(b.tokens()) / r.seconds, 1e-9 * flops, 100.0 * flops / peak_flops, ratio, r.loss0);
  }
  for (const auto& r : results) {
    if (!r.has_phases) continue;
    const auto& p = r.phases;
    std::printf(
        "   %-16s phases (ms): zero_grad %.1f | forward %.1f | loss %.1f | backward %.1f | clip %.1f | adamw %.1f"
        " | %.0f page faults/step\n",
        r.name.c_str(), 1e3 * p.zero_grad, 1e3 * p.forward, 1e3 * p.loss, 1e3 * p.backward, 1e3 * p.clip,
        1e3 * p.optimizer, r.faults_per_step);
  }
  std::fflush(stdout);
}

}  // namespace

StepRunner::StepRunner(const BenchShape& b, model::Kernels kernels, Optimizer optimizer, ZeroGrad zero_grad,
                       uint64_t seed)
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
  if (optimizer == Optimizer::Fused) {
    fused_optimizer_ = std::make_unique<train::FusedAdamW>(
        std::vector<train::FusedAdamWGroup>{{decay, 0.1}, {no_decay, 0.0}}, train::FusedAdamWOptions{});
  } else {
    auto defaults = torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.1);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(defaults));
    auto exempt = defaults;
    exempt.weight_decay(0.0);
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(exempt));
    optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups), defaults);
  }

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
      for (auto& p : parameters_)
        if (p.grad().defined()) p.mutable_grad().zero_();
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
  double grad_scale = 1.0;
  {
    RECORD_USER_SCOPE("step.clip");
    if (fused_optimizer_) {
      grad_scale = std::min(1.0, 1.0 / (fused_optimizer_->grad_norm() + 1e-6));  // clip_grad_norm_'s rule
    } else {
      torch::nn::utils::clip_grad_norm_(parameters_, 1.0);
    }
  }
  lap(t.clip);
  {
    RECORD_USER_SCOPE("step.optimizer");
    if (fused_optimizer_) {
      fused_optimizer_->step(grad_scale);
    } else {
      optimizer_->step();
    }
  }
  lap(t.optimizer);
  last_loss_ = loss.item<double>();
  return t;
}

}  // namespace hnas::bench

int main(int argc, char** argv) {
  using namespace hnas;
  const bench::Options o = bench::parse_options(argc, argv);
  // As main() of hnas: restart once with the BLAS core type and OpenMP wait policy this
  // machine wants. The Python reference inherits the environment, so both sides run the
  // same kernels and thread pools.
  if (!o.keep_environment) restart_with_launch_environment(argv);
  keep_freed_memory();  // as hnas does
  if (o.caching_allocator) bench::install_caching_cpu_allocator();
  train::set_compute_threads(o.threads);
  const std::string core = bench::blas_core();
  bench::ForeignLoad load;

  // The machine's speed drifts (shared hosts): the peak is measured before the runs and
  // after each round, and the highest value kept, so that a slow moment does not flatter
  // the fractions.
  const double peak_before = train::measure_cpu_sgemm_flops(/*n=*/2048, /*repeats=*/10);
  std::printf("step_bench: %d threads, OpenBLAS core %s, sgemm %.1f GFLOP/s before the runs (n=2048, best of 10)\n",
              o.threads, core.c_str(), 1e-9 * peak_before);
  std::string env;
  for (const char* name : {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_CORETYPE",
                           "OPENBLAS_NUM_THREADS", "GLIBC_TUNABLES"})
    if (const char* value = std::getenv(name)) env += std::string(" ") + name + "=" + value;
  std::printf("   environment:%s\n", env.empty() ? " (no threading or BLAS variables set)" : env.c_str());
  if (o.caching_allocator) std::printf("   C++ runs use the caching CPU allocator (--caching-allocator)\n");
  if (core == "Prescott")
    std::printf(
        "   note: OpenBLAS runs its generic SSE3 kernels (--keep-environment, or no better core "
        "type for this CPU); both sides are ~2.5x slower in their matrix products\n");
  std::fflush(stdout);

  bool any = false;
  std::vector<double> peaks = {peak_before};
  std::vector<std::pair<bench::BenchShape, std::vector<bench::ImplResult>>> tables;
  for (const auto& shape : bench::bench_shapes()) {
    if (o.shape != "all" && o.shape != shape.name) continue;
    any = true;
    tables.emplace_back(shape, bench::run_shape(shape, o, peaks));
  }
  if (!any) {
    std::fprintf(stderr, "step_bench: unknown --shape %s (search, large or all)\n", o.shape.c_str());
    return 2;
  }
  const double peak = *std::max_element(peaks.begin(), peaks.end());
  const double slowest = *std::min_element(peaks.begin(), peaks.end());
  std::printf(
      "\nsgemm peak %.1f GFLOP/s (best of %zu measurements, the lowest %.1f); "
      "model FLOP/s = 3 x forward FLOPs/token x tokens/s\n",
      1e-9 * peak, peaks.size(), 1e-9 * slowest);
  for (const auto& [shape, results] : tables)
    bench::print_table(shape, results, peak, arch::count_parameters(shape.genome(), shape.shape).total);
  const int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const double foreign = load.fraction(cpus);
  std::printf("\nother processes used %.0f%% of %d CPUs during the run%s\n", 100.0 * foreign, cpus,
              foreign > 0.05 ? ": timings are disturbed, rerun on a quiet machine" : "");
  return 0;
}

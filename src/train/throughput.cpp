// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/throughput.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace hnas::train {

void set_compute_threads(int threads) {
  at::set_num_threads(threads);
  // Looked up at run time: the BLAS is whatever libblas.so.3 the system resolves to.
  using SetThreads = void (*)(int);
  if (auto set_openblas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_openblas(threads);
}

void keep_freed_memory() {
  // Blocks up to 1 GiB come from the heap instead of fresh mmaps, and the heap is not
  // trimmed below 2 GiB of free space; larger blocks are still mapped and unmapped.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
}

std::string better_openblas_core() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core_name == nullptr || std::string(core_name()) != "Prescott") return "";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

std::vector<std::pair<std::string, std::string>> launch_environment() {
  std::vector<std::pair<std::string, std::string>> missing;
  const std::string core = better_openblas_core();
  if (!core.empty() && std::getenv("OPENBLAS_CORETYPE") == nullptr) missing.emplace_back("OPENBLAS_CORETYPE", core);
  using GetParallel = int (*)();
  auto get_parallel = reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  const bool openblas_pthreads = get_parallel != nullptr && get_parallel() == 1;
  if (openblas_pthreads && std::getenv("OMP_WAIT_POLICY") == nullptr)
    missing.emplace_back("OMP_WAIT_POLICY", "passive");
  return missing;
}

void restart_with_launch_environment(char** argv) {
  const auto missing = launch_environment();
  if (missing.empty()) return;
  for (const auto& [name, value] : missing) setenv(name.c_str(), value.c_str(), /*overwrite=*/0);
  execv("/proc/self/exe", argv);
}

double measure_cpu_sgemm_flops(int n, int repeats) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::empty({n, n});
  torch::mm_out(c, a, b);  // warm-up: thread pool and BLAS buffers
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * n * static_cast<double>(n) * n / best;
}

}  // namespace hnas::train

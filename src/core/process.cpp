// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/process.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <thread>

namespace hnas {

void keep_freed_memory() {
  // Blocks up to 1 GiB come from the heap instead of fresh mmaps, and the heap is not
  // trimmed below 2 GiB of free space; larger blocks are still mapped and unmapped.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
}

std::string better_openblas_core() {
  // Looked up at run time: the BLAS is whatever libblas.so.3 the system resolves to.
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

int resolve_threads(int requested, int ranks_on_node) {
  if (requested > 0) return requested;
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK")) {
    const int n = std::atoi(slurm);
    if (n > 0) return n;
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, ranks_on_node));
}

}  // namespace hnas

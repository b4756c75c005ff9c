// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/throughput.hpp"

#include <dlfcn.h>
#include <torch/torch.h>

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

double known_bf16_peak_tflops(const std::string& name) {
  const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  // More specific names first: "H100 PCIe" and "H100 NVL" before "H100".
  if (has("H200") || has("GH200")) return 989;
  if (has("H100") && (has("PCIe") || has("PCIE"))) return 756;
  if (has("H100") && has("NVL")) return 835;
  if (has("H100") || has("H800")) return 989;
  if (has("A100") || has("A800")) return 312;
  if (has("L40S")) return 362;
  if (has("A10") && !has("A100")) return 125;
  return 0;
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

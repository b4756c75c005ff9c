// SPDX-License-Identifier: Apache-2.0
// A caching CPU allocator for the step benchmark: a training step allocates the same
// sizes every step, and glibc hands large ones back to the kernel on free, so each step
// page-faults its activations in again. Keeping freed blocks per size removes that cost.
// Blocks are never returned to the system (fine for a benchmark, not for a library).
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "step_bench.hpp"

namespace hnas::bench {
namespace {

constexpr size_t kHeader = 64;  // keeps the data 64-byte aligned, as c10's allocator
constexpr size_t kHugePage = 2 << 20;

size_t round_size(size_t n) {
  const size_t page = 4096;
  return (n + kHeader + page - 1) / page * page;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    const size_t size = round_size(n);
    void* base = take(size);
    if (!base) {
      // Big blocks are 2 MiB aligned and may use transparent huge pages (fewer faults and TLB misses).
      const size_t align = size >= kHugePage ? kHugePage : 64;
      base = std::aligned_alloc(align, (size + align - 1) / align * align);
      if (!base) throw std::bad_alloc();
      if (size >= kHugePage) madvise(base, size, MADV_HUGEPAGE);
      *static_cast<size_t*>(base) = size;
    }
    return {static_cast<char*>(base) + kHeader, base, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static CachingCpuAllocator& instance() {
    static CachingCpuAllocator allocator;
    return allocator;
  }

 private:
  void* take(size_t size) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* base = it->second.back();
    it->second.pop_back();
    return base;
  }
  static void release(void* base) {
    auto& self = instance();
    std::lock_guard<std::mutex> lock(self.mutex_);
    self.free_[*static_cast<size_t*>(base)].push_back(base);
  }

  mutable std::mutex mutex_;
  mutable std::map<size_t, std::vector<void*>> free_;
};

}  // namespace

void install_caching_cpu_allocator() {
  // Priority above the default allocator's; tensors allocated before keep their own deleter.
  c10::SetCPUAllocator(&CachingCpuAllocator::instance(), /*priority=*/100);
}

}  // namespace hnas::bench

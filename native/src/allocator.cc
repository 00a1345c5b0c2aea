// CPU memory: keep freed blocks instead of handing them back to the kernel.
// glibc returns large blocks (mmap threshold) to the kernel on free, so every batch page-faults its
// activations back in; measured here this made efficientnet_b0 at batch 16 ~9x slower. A caching
// allocator reuses large blocks; mallopt keeps the heap from being trimmed for the rest.
// CONVZOO_ALLOCATOR=system turns both off (used by bench/allocator.mjs to show the difference).
// Cacheable blocks are mapped from the kernel directly, so a block the cache cannot keep (it is over its
// bound) goes back to the kernel at once instead of staying in glibc's arenas: resident memory is then
// live tensors + the cache's bound + malloc's small blocks, which matters to a long-running server.
#include <sys/mman.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>
#include <malloc.h>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unordered_map>
#include <mutex>
#include <string>

namespace cz {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheMin = 256 << 10;  // smaller blocks stay with malloc, which keeps them anyway

// libtorch's raw_allocate() requires the DataPtr context to be the data pointer itself, so block
// sizes live in a side table keyed by pointer; one deleter serves every block.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) const override {
    void* p = nbytes < kCacheMin ? raw_alloc(nbytes) : take_or_alloc((nbytes + 4095) & ~size_t(4095));
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static size_t cached_bytes() { std::lock_guard<std::mutex> l(mu()); return cached(); }
  // A new bound for the cache; blocks beyond it are freed, largest first.
  static void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> l(mu());
    limit() = bytes;
    while (cached() > bytes && !pool().empty()) {
      auto it = std::prev(pool().end());
      cached() -= it->first;
      live().erase(it->second);
      unmap(it->second, it->first);
      pool().erase(it);
    }
  }
  static void empty_cache() {
    std::lock_guard<std::mutex> l(mu());
    for (auto& [size, p] : pool()) { live().erase(p); unmap(p, size); }
    pool().clear();
    cached() = 0;
  }

 private:
  static std::mutex& mu() { static std::mutex m; return m; }
  static std::multimap<size_t, void*>& pool() { static std::multimap<size_t, void*> p; return p; }  // free blocks by size
  static std::unordered_map<void*, size_t>& live() { static std::unordered_map<void*, size_t> m; return m; }  // cacheable blocks
  static size_t& cached() { static size_t c = 0; return c; }
  static size_t& limit() {  // read and written under mu()
    static size_t l = [] {
      const char* v = std::getenv("CONVZOO_CPU_CACHE_MB");
      return (v ? std::strtoull(v, nullptr, 10) : 4096ULL) << 20;
    }();
    return l;
  }

  static void* raw_alloc(size_t n) {
    void* p = nullptr;
    // c10::OutOfMemoryError, as CUDA's allocator raises, so the error funnel knows the kind by type.
    TORCH_CHECK_WITH(OutOfMemoryError, posix_memalign(&p, kAlign, n ? n : kAlign) == 0,
                     "CPU out of memory: tried to allocate ", n, " bytes");
    return p;
  }

  static void* map(size_t n) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK_WITH(OutOfMemoryError, p != MAP_FAILED, "CPU out of memory: tried to allocate ", n, " bytes");
    return p;
  }
  static void unmap(void* p, size_t n) { munmap(p, n); }

  // Best fit among cached blocks, accepting up to 25% slack so that slightly different batches reuse.
  static void* take_or_alloc(size_t size) {
    {
      std::lock_guard<std::mutex> l(mu());
      auto it = pool().lower_bound(size);
      if (it != pool().end() && it->first <= size + size / 4) {
        void* p = it->second;
        cached() -= it->first;
        pool().erase(it);
        return p;
      }
    }
    void* p = map(size);
    std::lock_guard<std::mutex> l(mu());
    live()[p] = size;
    return p;
  }

  static void release(void* p) {
    if (!p) return;
    size_t size = 0;
    {
      std::lock_guard<std::mutex> l(mu());
      auto it = live().find(p);
      if (it != live().end()) {
        size = it->second;
        if (cached() + size <= limit()) {
          pool().emplace(size, p);
          cached() += size;
          return;
        }
        live().erase(it);
      }
    }
    if (size) unmap(p, size);
    else std::free(p);
  }
};

CachingCpuAllocator g_allocator;
bool g_enabled = false;

}  // namespace

void install_allocator() {
  const char* mode = std::getenv("CONVZOO_ALLOCATOR");
  if (mode && std::string(mode) == "system") return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);   // the most glibc allows; disables its dynamic threshold
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  c10::SetCPUAllocator(&g_allocator, /*priority=*/10);
  g_enabled = true;
}

bool caching_allocator_enabled() { return g_enabled; }
size_t allocator_cached_bytes() { return CachingCpuAllocator::cached_bytes(); }
void allocator_empty_cache() { CachingCpuAllocator::empty_cache(); }
void allocator_set_cache_limit(size_t bytes) { CachingCpuAllocator::set_limit(bytes); }

}  // namespace cz

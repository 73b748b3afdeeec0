// A CUDA executor for the CPU: runs the GPU wing's kernels, unchanged, in tests.
//
// Test-only (never shipped). The stand-in CuPy (tests/gpu_emu/cupy) compiles a
// kernel source with g++ after this header, and exports each kernel it was
// asked for with FMEMU_EXPORT. A launch runs the blocks one after another on
// the calling OS thread; inside a block every CUDA thread is a fiber with its
// own stack, switched only where CUDA threads meet: __syncthreads, the warp
// shuffles and votes, and exit. Fibers and blocks run in an order chosen per
// launch (forward, reverse or a seeded shuffle), so a missing barrier shows up
// as a wrong result in some order rather than never.
//
// What fails loudly, naming the kernel, block and thread (never a hang):
// a __syncthreads that some threads of the block never reach (they exited, or
// wait elsewhere), a shuffle whose mask does not name the calling lane, a
// shuffle reading a lane that does not take part, lanes of one warp that wait
// for each other in different intrinsics (a deadlock), and a block of more
// than 1024 threads. __shared__ variables are refilled with garbage before
// every block, so a value read before a thread of this block wrote it is
// garbage, not the previous block's.
//
// What this cannot catch: races of the real memory model (fibers only switch
// at the points above, so code between them runs atomically), NVRTC's own
// parsing, and anything about speed.
#ifndef FASTMOMENTS_CUDA_EMU_H
#define FASTMOMENTS_CUDA_EMU_H

#include <algorithm>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include <csetjmp>
#include <csignal>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// -- the CUDA dialect, as plain C++ -------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#ifndef FMEMU_KEEP_LAUNCH_BOUNDS  // kept when the stand-in reads the bounds (g++ -E)
#define __launch_bounds__(...)
#endif
#define __constant__
// A __shared__ variable is a static: one per module, which is one per block
// since blocks run one at a time. It is refilled with garbage before every
// block: file-scope and plain functions' ones lie in the section fmemu_shared;
// GCC drops the section of a template function's statics, so the stand-in
// CuPy finds those in the symbol table and registers them (fmemu_add_shared).
#define __shared__ static __attribute__((section("fmemu_shared"), aligned(16)))

struct dim3 {
    unsigned int x, y, z;
};
typedef dim3 uint3;
static const int warpSize = 32;

// ld's bounds of the fmemu_shared section (null when it is empty).
extern "C" char __start_fmemu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_fmemu_shared[] __attribute__((weak, visibility("hidden")));

namespace fmemu {

enum State { READY, BARRIER, SHUFFLE, DONE };

struct Fiber;

void yield_to_scheduler(Fiber* f);
[[noreturn]] void fail(const std::string& msg);

struct Fiber {
    void* sp = nullptr;  // saved stack pointer while switched out
#if !defined(__x86_64__)
    ucontext_t uc;
#endif
    char* stack = nullptr;
    dim3 tid;
    int linear = 0;  // x + y * Dx + z * Dx * Dy
    int lane = 0, warp = 0;
    State state = READY;
    const char* site_file = "";
    int site_line = 0;
    const char* site_what = "";
    // shuffle / vote in flight
    unsigned mask = 0;
    unsigned long long value = 0, result = 0;
    unsigned ballot = 0, need = 0;  // the vote of the exchange, and who took part
    int src = 0;
    int pred = 0;  // __syncthreads_count / _and / _or
};

// One launch's fixed data and the block being run.
struct Launch {
    const char* kernel = "";
    dim3 grid{1, 1, 1}, block{1, 1, 1};
    dim3 block_idx{0, 0, 0};
    int nthreads = 0;
    std::vector<Fiber>* fibers = nullptr;
    std::vector<int> order;  // scheduling order of fibers in this block
    Fiber* current = nullptr;
    void* sched_sp = nullptr;
#if !defined(__x86_64__)
    ucontext_t sched_uc;
#endif
    int barrier_waiting = 0;
    int barrier_count = 0;  // predicates of __syncthreads_count/and/or at the barrier
    int exited = 0;
    std::vector<unsigned> live;   // per warp: lanes that exist and have not exited
    std::vector<int> waiting;     // per warp: lanes waiting in a shuffle or vote
    const char* barrier_file = "";
    int barrier_line = 0;
    bool failed = false;
    std::string error;
    void (*body)(void*) = nullptr;  // runs the kernel with its arguments
    void* body_arg = nullptr;
};

inline Launch& L() {
    static Launch launch;
    return launch;
}

inline std::string where(const Fiber* f) {
    const Launch& l = L();
    char buf[256];
    std::snprintf(buf, sizeof buf, "kernel %s, block (%u, %u, %u), thread (%u, %u, %u)", l.kernel, l.block_idx.x,
                  l.block_idx.y, l.block_idx.z, f ? f->tid.x : 0u, f ? f->tid.y : 0u, f ? f->tid.z : 0u);
    return buf;
}

// -- fibers ------------------------------------------------------------------------

#if defined(__x86_64__)
// Saves the callee-saved registers, the SSE and x87 control words on the
// current stack, stores the stack pointer in *from, switches to `to`.
extern "C" void fmemu_switch(void** from, void* to);
extern "C" void fmemu_fiber_entry();
asm(R"(
.text
.p2align 4
.hidden fmemu_switch
.type fmemu_switch,@function
fmemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size fmemu_switch,.-fmemu_switch
.p2align 4
.hidden fmemu_fiber_entry
.type fmemu_fiber_entry,@function
fmemu_fiber_entry:
    movq %r12, %rdi
    call fmemu_fiber_main
    ud2
.size fmemu_fiber_entry,.-fmemu_fiber_entry
)");
#endif

extern "C" void fmemu_fiber_main(Fiber* f);

// Each thread's stack: 256 KiB (pages are committed only when touched) above
// an inaccessible guard, so an overflow faults (reported) instead of
// corrupting a neighbour. Mapped per launch for its block size and unmapped
// after it: every stack and guard is a mapping of its own, and the
// process's number of mappings is limited (vm.max_map_count).
constexpr size_t STACK = 256 * 1024;
constexpr size_t GUARD_BYTES = 16 * 1024;
constexpr int MAX_THREADS = 1024;

struct Stacks {
    char* lo = nullptr;
    char* hi = nullptr;
};

inline Stacks& stacks() {
    static Stacks s;
    return s;
}

inline std::vector<Fiber>& fiber_pool() {
    static std::vector<Fiber> pool(MAX_THREADS);
    return pool;
}

class StackArena {
  public:
    explicit StackArena(int n) : bytes_(size_t(n) * (STACK + GUARD_BYTES)) {
        void* base = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) {
            std::fprintf(stderr, "fmemu: cannot map the fibers' stacks\n");
            std::abort();
        }
        base_ = static_cast<char*>(base);
        auto& pool = fiber_pool();
        for (int i = 0; i < n; ++i) {
            char* lo = base_ + size_t(i) * (STACK + GUARD_BYTES);
            mprotect(lo, GUARD_BYTES, PROT_NONE);
            pool[size_t(i)].stack = lo + GUARD_BYTES;
        }
        stacks().lo = base_;
        stacks().hi = base_ + bytes_;
    }
    ~StackArena() {
        munmap(base_, bytes_);
        stacks() = Stacks();
    }

  private:
    size_t bytes_;
    char* base_ = nullptr;
};

inline bool in_stack_guard(const char* addr) {
    const Stacks& s = stacks();
    if (addr < s.lo || addr >= s.hi) return false;
    return size_t(addr - s.lo) % (STACK + GUARD_BYTES) < GUARD_BYTES;
}

inline void start_fiber(Fiber* f) {
#if defined(__x86_64__)
    // The frame fmemu_switch pops: control words, r15..r12, rbx, rbp, return
    // address (fmemu_fiber_entry), with r12 = the fiber. After its `ret` the
    // stack is 16-byte aligned, as the call in fmemu_fiber_entry needs.
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + STACK) & ~uintptr_t(15);
    uint64_t* sp = reinterpret_cast<uint64_t*>(top - 128);
    std::memset(sp, 0, 64);
    uint32_t* cw = reinterpret_cast<uint32_t*>(sp);
    cw[0] = 0x1F80;                                 // MXCSR default
    cw[1] = 0x037F;                                 // x87 control word default
    sp[4] = reinterpret_cast<uint64_t>(f);          // r12
    sp[7] = reinterpret_cast<uint64_t>(&fmemu_fiber_entry);
    f->sp = sp;
#else
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = STACK;
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, reinterpret_cast<void (*)()>(&fmemu_fiber_main), 1, f);
#endif
}

inline void switch_to(Fiber* f) {
    Launch& l = L();
    l.current = f;
#if defined(__x86_64__)
    fmemu_switch(&l.sched_sp, f->sp);
#else
    swapcontext(&l.sched_uc, &f->uc);
#endif
    l.current = nullptr;
}

inline void yield_to_scheduler(Fiber* f) {
    Launch& l = L();
#if defined(__x86_64__)
    fmemu_switch(&f->sp, l.sched_sp);
#else
    swapcontext(&f->uc, &l.sched_uc);
#endif
}

// Record the error and leave the fiber for good: the scheduler abandons the launch.
[[noreturn]] inline void fail(const std::string& msg) {
    Launch& l = L();
    if (!l.failed) {
        l.failed = true;
        l.error = msg;
    }
    Fiber* f = l.current;
    if (!f) {  // not inside a fiber: cannot happen from kernel code
        std::fprintf(stderr, "fmemu: %s\n", msg.c_str());
        std::abort();
    }
    f->state = DONE;
    yield_to_scheduler(f);
    __builtin_unreachable();
}

inline Fiber* self() {
    Fiber* f = L().current;
    if (!f) {
        std::fprintf(stderr, "fmemu: CUDA built-in used outside a kernel\n");
        std::abort();
    }
    return f;
}

// -- barriers ------------------------------------------------------------------------

// Every thread of the block must arrive; the predicates of
// __syncthreads_count/_and/_or are counted on the way.
inline int syncthreads(const char* file, int line, int pred = 0) {
    Launch& l = L();
    Fiber* f = self();
    if (l.exited) {
        fail(where(f) + ": reaches __syncthreads (" + file + ":" + std::to_string(line) + ") after " +
             std::to_string(l.exited) + " thread(s) of its block exited without reaching it");
    }
    if (l.barrier_waiting == 0) {
        l.barrier_file = file;
        l.barrier_line = line;
        l.barrier_count = 0;
    } else if (l.barrier_line != line || std::strcmp(l.barrier_file, file) != 0) {
        fail(where(f) + ": reaches __syncthreads at " + file + ":" + std::to_string(line) + " while " +
             std::to_string(l.barrier_waiting) + " thread(s) of its block wait at another __syncthreads (" +
             l.barrier_file + ":" + std::to_string(l.barrier_line) + "): a barrier in divergent code");
    }
    f->state = BARRIER;
    f->site_file = file;
    f->site_line = line;
    f->site_what = "__syncthreads";
    l.barrier_count += pred != 0;
    if (++l.barrier_waiting == l.nthreads) {
        for (int i = 0; i < l.nthreads; ++i) {
            (*l.fibers)[size_t(i)].state = READY;
            (*l.fibers)[size_t(i)].pred = l.barrier_count;
        }
        l.barrier_waiting = 0;
    }
    yield_to_scheduler(f);
    return f->pred;
}

// -- warps: shuffles and votes ------------------------------------------------------------

inline unsigned warp_members(int warp) {
    const Launch& l = L();
    int first = warp * 32, n = std::min(32, l.nthreads - first);
    return n == 32 ? 0xffffffffu : ((1u << n) - 1u);
}

inline unsigned warp_live(int warp) { return L().live[size_t(warp)]; }

inline std::string hex32(unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

inline std::string site(const Fiber& f) {
    return std::string(f.site_what) + " (" + f.site_file + ":" + std::to_string(f.site_line) + ")";
}

// Complete the exchange of `mask` in `warp` if every live lane it names is
// waiting in it; each participant gets the value of its source lane. Lanes
// named in the mask must wait in the same intrinsic at the same place (CUDA
// leaves anything else undefined); __syncwarp may meet __syncwarp anywhere.
inline void try_complete(int warp, unsigned mask) {
    Launch& l = L();
    Fiber* lanes = &(*l.fibers)[size_t(warp) * 32];
    unsigned need = mask & warp_live(warp);
    const Fiber* first = nullptr;
    for (int j = 0; j < 32; ++j) {
        if (!(need >> j & 1u)) continue;
        const Fiber& p = lanes[j];
        if (p.state != SHUFFLE || p.mask != mask) return;
        if (!first) {
            first = &p;
        } else if (std::strcmp(p.site_what, first->site_what) != 0 ||
                   (std::strcmp(p.site_what, "__syncwarp") != 0 &&
                    (p.site_line != first->site_line || std::strcmp(p.site_file, first->site_file) != 0))) {
            fail(where(&p) + ": " + site(p) + " meets " + site(*first) + " of lane " + std::to_string(first->lane) +
                 " under mask " + hex32(mask) + ": lanes of a mask must run the same intrinsic");
        }
    }
    unsigned vote = 0;
    int n = 0;
    for (int j = 0; j < 32; ++j)
        if (need >> j & 1u) {
            ++n;
            if (lanes[j].value) vote |= 1u << j;
        }
    for (int j = 0; j < 32; ++j) {
        if (!(need >> j & 1u)) continue;
        Fiber& p = lanes[j];
        if (!(need >> p.src & 1u)) {
            fail(where(&p) + ": " + site(p) + " reads lane " + std::to_string(p.src) +
                 ", which does not take part (mask " + hex32(mask) + ")");
        }
        p.result = lanes[p.src].value;
        if (std::strcmp(p.site_what, "__match_any_sync") == 0) {  // the lanes holding p's value
            unsigned same = 0;
            for (int k = 0; k < 32; ++k)
                if ((need >> k & 1u) && lanes[k].value == p.value) same |= 1u << k;
            p.result = same;
        }
        p.ballot = vote;
        p.need = need;
        p.state = READY;
    }
    l.waiting[size_t(warp)] -= n;
}

inline unsigned long long exchange(unsigned mask, unsigned long long value, int src, const char* what,
                                   const char* file, int line) {
    Launch& l = L();
    Fiber* f = self();
    if (!(mask >> f->lane & 1u)) {
        fail(where(f) + ": " + what + " (" + file + ":" + std::to_string(line) + ") with mask " + hex32(mask) +
             ", which does not name the calling lane " + std::to_string(f->lane));
    }
    f->state = SHUFFLE;
    f->mask = mask;
    f->value = value;
    f->src = src;
    f->site_file = file;
    f->site_line = line;
    f->site_what = what;
    // Lanes beyond the block's last thread count as exited, as on a GPU.
    if (++l.waiting[size_t(f->warp)] >= __builtin_popcount(mask & warp_live(f->warp))) try_complete(f->warp, mask);
    yield_to_scheduler(f);
    return f->result;
}

template <typename T>
inline unsigned long long to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 8 bytes");
    unsigned long long b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}

template <typename T>
inline T from_bits(unsigned long long b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

inline void check_width(int width, const char* what) {
    if (width <= 0 || width > 32 || (width & (width - 1)))
        fail(where(self()) + ": " + what + " with width " + std::to_string(width) + " (a power of 2 up to 32)");
}

template <typename T>
inline T shfl_down(unsigned mask, T v, unsigned delta, int width, const char* file, int line) {
    check_width(width, "__shfl_down_sync");
    int lane = self()->lane;
    int seg = lane % width;
    int src = (unsigned)seg + delta < (unsigned)width ? lane + (int)delta : lane;
    return from_bits<T>(exchange(mask, to_bits(v), src, "__shfl_down_sync", file, line));
}

template <typename T>
inline T shfl_up(unsigned mask, T v, unsigned delta, int width, const char* file, int line) {
    check_width(width, "__shfl_up_sync");
    int lane = self()->lane;
    int seg = lane % width;
    int src = (unsigned)seg >= delta ? lane - (int)delta : lane;
    return from_bits<T>(exchange(mask, to_bits(v), src, "__shfl_up_sync", file, line));
}

template <typename T>
inline T shfl_xor(unsigned mask, T v, int lane_mask, int width, const char* file, int line) {
    check_width(width, "__shfl_xor_sync");
    int lane = self()->lane;
    int src = (lane ^ lane_mask) & 31;
    if (src >= (lane / width + 1) * width) src = lane;  // later groups: own value
    return from_bits<T>(exchange(mask, to_bits(v), src, "__shfl_xor_sync", file, line));
}

template <typename T>
inline T shfl(unsigned mask, T v, int src_lane, int width, const char* file, int line) {
    check_width(width, "__shfl_sync");
    int lane = self()->lane;
    int src = (lane / width) * width + (src_lane % width + width) % width;
    return from_bits<T>(exchange(mask, to_bits(v), src, "__shfl_sync", file, line));
}

// The lanes of `mask` whose value equals the caller's (its bits, 4 or 8 bytes).
template <typename T>
inline unsigned match_any(unsigned mask, T v, const char* file, int line) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_any_sync takes 32- or 64-bit values");
    return (unsigned)exchange(mask, to_bits(v), self()->lane, "__match_any_sync", file, line);
}

// Votes: the ballot of the predicates of the lanes that took part.
inline unsigned vote(unsigned mask, int pred, const char* what, const char* file, int line, int kind) {
    Fiber* f = self();
    exchange(mask, pred ? 1 : 0, f->lane, what, file, line);
    if (kind == 1) return f->ballot != 0;
    if (kind == 2) return f->ballot == f->need;
    return f->ballot;
}

// -- the scheduler ----------------------------------------------------------------------

enum Order { FORWARD = 0, REVERSE = 1, SHUFFLED = 2 };

inline void order_of(std::vector<int>& idx, int n, int mode, std::mt19937_64& rng) {
    idx.resize(n);
    for (int i = 0; i < n; ++i) idx[i] = i;
    if (mode == REVERSE) std::reverse(idx.begin(), idx.end());
    if (mode == SHUFFLED) std::shuffle(idx.begin(), idx.end(), rng);
}

struct Region {
    char* p;
    size_t n;
};

inline std::vector<Region>& shared_regions() {
    static std::vector<Region> regions;
    return regions;
}

inline std::string describe_deadlock() {
    const Launch& l = L();
    std::string out = "deadlock in kernel " + std::string(l.kernel) + ", block (" + std::to_string(l.block_idx.x) +
                      ", " + std::to_string(l.block_idx.y) + ", " + std::to_string(l.block_idx.z) + "):";
    int shown = 0;
    for (int i = 0; i < l.nthreads && shown < 8; ++i) {
        const Fiber& f = (*l.fibers)[i];
        if (f.state == DONE || f.state == READY) continue;
        char hex[16];
        std::snprintf(hex, sizeof hex, "0x%08x", f.mask);
        out += " thread (" + std::to_string(f.tid.x) + ", " + std::to_string(f.tid.y) + ", " +
               std::to_string(f.tid.z) + ") waits in " + f.site_what + " (" + f.site_file + ":" +
               std::to_string(f.site_line) + (f.state == SHUFFLE ? std::string(", mask ") + hex : "") + ");";
        ++shown;
    }
    if (l.exited) out += " " + std::to_string(l.exited) + " thread(s) exited";
    return out;
}

// Run one block: every thread a fiber, resumed in `order` until all are done.
inline bool run_block() {
    Launch& l = L();
    auto& fibers = *l.fibers;
    for (int i = 0; i < l.nthreads; ++i) {
        Fiber& f = fibers[i];
        f.linear = i;
        f.tid = dim3{unsigned(i % l.block.x), unsigned((i / l.block.x) % l.block.y),
                     unsigned(i / (l.block.x * l.block.y))};
        f.lane = i % 32;
        f.warp = i / 32;
        f.state = READY;
        f.site_what = "";
        f.site_file = "";
        f.site_line = 0;
        start_fiber(&f);
    }
    l.barrier_waiting = 0;
    l.exited = 0;
    int nwarps = (l.nthreads + 31) / 32;
    l.live.assign(size_t(nwarps), 0u);
    l.waiting.assign(size_t(nwarps), 0);
    for (int w = 0; w < nwarps; ++w) l.live[size_t(w)] = warp_members(w);
    int done = 0;
    while (done < l.nthreads) {
        bool ran = false;
        for (int i : l.order) {
            Fiber& f = fibers[i];
            if (f.state != READY) continue;
            ran = true;
            switch_to(&f);
            if (l.failed) return false;
            if (f.state == DONE) ++done;
        }
        if (!ran) {
            l.error = describe_deadlock();
            l.failed = true;
            return false;
        }
    }
    return true;
}

extern "C" __attribute__((used)) void fmemu_fiber_main(Fiber* f) {
    Launch& l = L();
    l.body(l.body_arg);
    // Leaving while others wait at a barrier would hang a GPU.
    if (l.barrier_waiting) {
        fail(where(f) + ": exits while " + std::to_string(l.barrier_waiting) +
             " thread(s) of its block wait at __syncthreads (" + l.barrier_file + ":" +
             std::to_string(l.barrier_line) + ")");
    }
    f->state = DONE;
    ++l.exited;
    l.live[size_t(f->warp)] &= ~(1u << f->lane);
    // Lanes waiting in a shuffle no longer wait for this one.
    Fiber* lanes = &(*l.fibers)[size_t(f->warp) * 32];
    for (int j = 0; j < 32 && l.waiting[size_t(f->warp)]; ++j)
        if (lanes[j].state == SHUFFLE) try_complete(f->warp, lanes[j].mask);
    yield_to_scheduler(f);
    __builtin_unreachable();
}

struct Config {
    unsigned long long seed = 0;
    int mode = -1;  // -1: derived from the seed and the launch number
    unsigned long long launches = 0;
    unsigned char garbage = 0x5A;
    double timeout_s = 60.0;  // a launch running longer is stopped and reported
};

inline Config& config() {
    static Config c;
    return c;
}

// Parameter descriptions for the Python side: one token per parameter,
// "p<kind><size>" for a pointer to that type, "<kind><size>" for a value;
// kind is i (signed), u (unsigned), f (floating), b (bool), s (anything else).
template <typename T>
inline std::string type_token() {
    using U = std::remove_cv_t<T>;
    char k = std::is_same<U, bool>::value            ? 'b'
             : std::is_floating_point<U>::value      ? 'f'
             : std::is_integral<U>::value            ? (std::is_signed<U>::value ? 'i' : 'u')
                                                     : 's';
    return k + std::to_string(sizeof(U));
}

template <typename T>
inline std::string param_token() {
    if constexpr (std::is_pointer<T>::value) {
        using P = std::remove_pointer_t<T>;
        if constexpr (std::is_void<std::remove_cv_t<P>>::value)
            return "pv0";
        else
            return "p" + type_token<P>();
    } else {
        return type_token<T>();
    }
}

template <typename... A>
inline const char* signature(void (*)(A...)) {
    static std::string s = [] {
        std::string out;
        ((out += param_token<A>() + " "), ...);
        return out;
    }();
    return s.c_str();
}

template <typename... A, size_t... I>
inline void call_with(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*reinterpret_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <typename... A>
struct Bound {
    void (*k)(A...);
    void** args;
    static void run(void* p) {
        Bound* b = static_cast<Bound*>(p);
        call_with(b->k, b->args, std::index_sequence_for<A...>{});
    }
};

// Faults inside a launch (a bad address, a stack overflow, the watchdog)
// jump back to the launch and become its error, instead of killing Python.
struct Faults {
    sigjmp_buf jump;
    volatile sig_atomic_t sig = 0;
    void* addr = nullptr;
};

inline Faults& faults() {
    static Faults f;
    return f;
}

inline const int WATCHDOG_SIGNAL = SIGRTMIN + 7;

extern "C" inline void fmemu_on_fault(int sig, siginfo_t* info, void*) {
    Faults& f = faults();
    f.sig = sig;
    f.addr = info ? info->si_addr : nullptr;
    siglongjmp(f.jump, 1);
}

// Installs the handlers, an alternate signal stack and the watchdog for one
// launch; puts back what was there before.
class FaultScope {
  public:
    explicit FaultScope(double timeout_s) {
        static thread_local std::vector<char> alt(1 << 16);
        stack_t ss{};
        ss.ss_sp = alt.data();
        ss.ss_size = alt.size();
        sigaltstack(&ss, &old_stack_);
        struct sigaction sa {};
        sa.sa_sigaction = &fmemu_on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_[0]);
        sigaction(SIGBUS, &sa, &old_[1]);
        sigaction(SIGFPE, &sa, &old_[2]);
        sigaction(WATCHDOG_SIGNAL, &sa, &old_[3]);
        sigevent ev{};
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = WATCHDOG_SIGNAL;
        ev._sigev_un._tid = int(gettid());
        timer_ok_ = timer_create(CLOCK_MONOTONIC, &ev, &timer_) == 0;
        if (timer_ok_) {
            itimerspec its{};
            its.it_value.tv_sec = time_t(timeout_s);
            its.it_value.tv_nsec = long((timeout_s - double(time_t(timeout_s))) * 1e9);
            timer_settime(timer_, 0, &its, nullptr);
        }
    }
    ~FaultScope() {
        if (timer_ok_) timer_delete(timer_);
        sigaction(SIGSEGV, &old_[0], nullptr);
        sigaction(SIGBUS, &old_[1], nullptr);
        sigaction(SIGFPE, &old_[2], nullptr);
        sigaction(WATCHDOG_SIGNAL, &old_[3], nullptr);
        sigaltstack(&old_stack_, nullptr);
    }

  private:
    struct sigaction old_[4];
    stack_t old_stack_{};
    timer_t timer_{};
    bool timer_ok_ = false;
};

inline std::string fault_message(double timeout_s) {
    const Launch& l = L();
    const Faults& f = faults();
    std::string who = where(l.current);
    char addr[32];
    std::snprintf(addr, sizeof addr, "%p", f.addr);
    if (f.sig == WATCHDOG_SIGNAL)
        return who + ": the launch ran past " + std::to_string(int(timeout_s)) +
               " s: an endless loop, or a thread waiting for another to change memory (fibers switch only at "
               "barriers, shuffles, votes and exit; FASTMOMENTS_EMU_TIMEOUT sets the limit)";
    if (in_stack_guard(static_cast<const char*>(f.addr)))
        return who + ": stack overflow (more than " + std::to_string(STACK / 1024) +
               " KiB of local variables or recursion)";
    return who + ": " + (f.sig == SIGFPE ? "arithmetic fault (an integer division by zero?)" : "invalid memory access") +
           " at " + addr + (f.sig == SIGBUS ? " (SIGBUS)" : "");
}

// A permutation of [0, n) without storing it: i -> (a * i + c) mod n with
// gcd(a, n) = 1, so grids of any size cost no memory.
struct Permutation {
    unsigned long long n, a = 1, c = 0;
    bool reverse = false;
    Permutation(unsigned long long n_, int mode, std::mt19937_64& rng) : n(n_) {
        reverse = mode == REVERSE;
        if (mode == SHUFFLED && n > 1) {
            do {
                a = rng() % n;
            } while (a == 0 || std::__gcd(a, n) != 1);
            c = rng() % n;
        }
    }
    unsigned long long operator()(unsigned long long i) const {
        if (reverse) return n - 1 - i;
        return (unsigned long long)(((unsigned __int128)a * i + c) % n);
    }
};

// Launch `k` over `grid` x `block` with the argument storage `args` (one
// pointer per parameter). Returns 0, or 1 with the message in `err`.
template <typename... A>
inline int launch(void (*k)(A...), const long long* grid, const long long* block, void** args, const char* name,
                  char* err, long long errlen) {
    Launch& l = L();
    auto report = [&](const std::string& msg) {
        std::snprintf(err, size_t(errlen), "%s", msg.c_str());
        return 1;
    };
    long long nthreads = block[0] * block[1] * block[2];
    if (nthreads < 1 || nthreads > MAX_THREADS)
        return report(std::string("kernel ") + name + ": block of " + std::to_string(nthreads) +
                      " threads (1 to 1024)");
    Bound<A...> bound{k, args};
    l = Launch();
    l.kernel = name;
    l.grid = dim3{unsigned(grid[0]), unsigned(grid[1]), unsigned(grid[2])};
    l.block = dim3{unsigned(block[0]), unsigned(block[1]), unsigned(block[2])};
    l.nthreads = int(nthreads);
    l.fibers = &fiber_pool();
    l.body = &Bound<A...>::run;
    l.body_arg = &bound;
    Config& c = config();
    unsigned long long launch_no = c.launches++;
    std::mt19937_64 rng(c.seed * 0x9E3779B97F4A7C15ull + launch_no);
    int mode = c.mode >= 0 ? c.mode : int((c.seed + launch_no) % 3);
    unsigned long long nblocks = (unsigned long long)(grid[0] * grid[1] * grid[2]);
    Permutation blocks(nblocks, mode, rng);
    order_of(l.order, l.nthreads, mode, rng);
    size_t section = __start_fmemu_shared ? size_t(__stop_fmemu_shared - __start_fmemu_shared) : 0;
    StackArena arena(l.nthreads);
    FaultScope scope(c.timeout_s);
    if (sigsetjmp(faults().jump, 1)) return report(fault_message(c.timeout_s));
    for (unsigned long long i = 0; i < nblocks; ++i) {
        unsigned long long b = blocks(i);
        l.block_idx = dim3{unsigned(b % grid[0]), unsigned((b / grid[0]) % grid[1]), unsigned(b / (grid[0] * grid[1]))};
        if (section) std::memset(__start_fmemu_shared, c.garbage, section);
        for (const Region& r : shared_regions()) std::memset(r.p, c.garbage, r.n);
        if (mode == SHUFFLED) std::shuffle(l.order.begin(), l.order.end(), rng);
        if (!run_block()) return report(l.error);
    }
    return 0;
}

}  // namespace fmemu

// -- built-in variables and functions ---------------------------------------------------

#define threadIdx (::fmemu::self()->tid)
#define blockIdx (::fmemu::L().block_idx)
#define blockDim (::fmemu::L().block)
#define gridDim (::fmemu::L().grid)

#define __syncthreads() ((void)::fmemu::syncthreads(__FILE__, __LINE__))
#define __syncthreads_count(p) ::fmemu::syncthreads(__FILE__, __LINE__, (p))
#define __syncthreads_and(p) (::fmemu::syncthreads(__FILE__, __LINE__, !(p)) == 0)
#define __syncthreads_or(p) (::fmemu::syncthreads(__FILE__, __LINE__, (p)) != 0)
#define __activemask() (::fmemu::warp_live(::fmemu::self()->warp))
#define __syncwarp(...) ((void)::fmemu::vote(FMEMU_MASK(__VA_ARGS__), 1, "__syncwarp", __FILE__, __LINE__, 0))
#define __shfl_down_sync(mask, v, d, ...) ::fmemu::shfl_down((mask), (v), (d), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, d, ...) ::fmemu::shfl_up((mask), (v), (d), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_xor_sync(mask, v, m, ...) ::fmemu::shfl_xor((mask), (v), (m), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_sync(mask, v, s, ...) ::fmemu::shfl((mask), (v), (s), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __match_any_sync(mask, v) ::fmemu::match_any((mask), (v), __FILE__, __LINE__)
#define __ballot_sync(mask, p) ::fmemu::vote((mask), (p), "__ballot_sync", __FILE__, __LINE__, 0)
#define __any_sync(mask, p) (::fmemu::vote((mask), (p), "__any_sync", __FILE__, __LINE__, 1) != 0u)
#define __all_sync(mask, p) (::fmemu::vote((mask), (p), "__all_sync", __FILE__, __LINE__, 2) != 0u)
// The optional width (default warpSize) and mask (default all lanes).
#define FMEMU_WIDTH(...) (32 __VA_OPT__(*0 + (__VA_ARGS__)))
#define FMEMU_MASK(...) (0xffffffffu __VA_OPT__(*0u + (__VA_ARGS__)))

__device__ __forceinline__ double __longlong_as_double(long long v) { return fmemu::from_bits<double>((unsigned long long)v); }
__device__ __forceinline__ long long __double_as_longlong(double v) { return (long long)fmemu::to_bits(v); }
__device__ __forceinline__ float __int_as_float(int v) { return fmemu::from_bits<float>((unsigned)v); }
__device__ __forceinline__ int __float_as_int(float v) { return (int)(unsigned)fmemu::to_bits(v); }
__device__ __forceinline__ unsigned __float_as_uint(float v) { return (unsigned)fmemu::to_bits(v); }
__device__ __forceinline__ float __uint_as_float(unsigned v) { return fmemu::from_bits<float>(v); }
__device__ __forceinline__ int __popc(unsigned v) { return __builtin_popcount(v); }
__device__ __forceinline__ int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
__device__ __forceinline__ int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }
__device__ __forceinline__ int __ffs(int v) { return __builtin_ffs(v); }
__device__ __forceinline__ void __threadfence() {}
__device__ __forceinline__ void __threadfence_block() {}
template <typename T>
__device__ __forceinline__ T __ldg(const T* p) { return *p; }

// Fibers never run at once, so atomics are plain read-modify-writes.
template <typename T, typename U>
__device__ __forceinline__ T atomicAdd(T* p, U v) { T old = *p; *p = T(old + v); return old; }
template <typename T, typename U>
__device__ __forceinline__ T atomicSub(T* p, U v) { T old = *p; *p = T(old - v); return old; }
template <typename T, typename U>
__device__ __forceinline__ T atomicExch(T* p, U v) { T old = *p; *p = T(v); return old; }
template <typename T, typename U>
__device__ __forceinline__ T atomicMin(T* p, U v) { T old = *p; *p = T(v) < old ? T(v) : old; return old; }
template <typename T, typename U>
__device__ __forceinline__ T atomicMax(T* p, U v) { T old = *p; *p = T(v) > old ? T(v) : old; return old; }
template <typename T, typename U, typename V>
__device__ __forceinline__ T atomicCAS(T* p, U cmp, V v) { T old = *p; if (old == T(cmp)) *p = T(v); return old; }
template <typename T, typename U>
__device__ __forceinline__ T atomicAnd(T* p, U v) { T old = *p; *p = T(old & v); return old; }
template <typename T, typename U>
__device__ __forceinline__ T atomicOr(T* p, U v) { T old = *p; *p = T(old | v); return old; }
__device__ __forceinline__ double rsqrt(double v) { return 1.0 / sqrt(v); }
__device__ __forceinline__ float rsqrtf(float v) { return 1.0f / sqrtf(v); }
__device__ __forceinline__ double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ unsigned __brev(unsigned v) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
    return r;
}
__device__ __forceinline__ int __ffsll(long long v) { return __builtin_ffsll(v); }
__device__ __forceinline__ int __clzll(long long v) { return v ? __builtin_clzll((unsigned long long)v) : 64; }
__device__ __forceinline__ long long clock64() { return 0; }

// CUDA's integer min/max overloads (device code calls them unqualified).
#define FMEMU_MINMAX(T)                                                  \
    __device__ __forceinline__ T min(T a, T b) { return b < a ? b : a; } \
    __device__ __forceinline__ T max(T a, T b) { return a < b ? b : a; }
FMEMU_MINMAX(int)
FMEMU_MINMAX(unsigned int)
FMEMU_MINMAX(long)
FMEMU_MINMAX(unsigned long)
FMEMU_MINMAX(long long)
FMEMU_MINMAX(unsigned long long)
#undef FMEMU_MINMAX
__device__ __forceinline__ float min(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ float max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double min(double a, double b) { return fmin(a, b); }
__device__ __forceinline__ double max(double a, double b) { return fmax(a, b); }

// -- exporting kernels to the stand-in CuPy -------------------------------------------------

#define FMEMU_API extern "C" __attribute__((visibility("default")))

FMEMU_API void fmemu_add_shared(void* p, unsigned long long n) {
    fmemu::shared_regions().push_back(fmemu::Region{static_cast<char*>(p), size_t(n)});
}
FMEMU_API void fmemu_configure(unsigned long long seed, int mode, int garbage, double timeout_s) {
    fmemu::config().seed = seed;
    fmemu::config().mode = mode;
    fmemu::config().garbage = (unsigned char)garbage;
    fmemu::config().timeout_s = timeout_s;
}
FMEMU_API unsigned long long fmemu_section_bytes() {
    return __start_fmemu_shared ? (unsigned long long)(__stop_fmemu_shared - __start_fmemu_shared) : 0;
}

// FMEMU_EXPORT(7, fm_segment_partial<float, 0>) defines fmemu_sig_7 and fmemu_launch_7.
#define FMEMU_EXPORT(ID, ...)                                                                                  \
    FMEMU_API const char* fmemu_sig_##ID() { return ::fmemu::signature(&__VA_ARGS__); }                        \
    FMEMU_API int fmemu_launch_##ID(const long long* grid, const long long* block, void** args, const char* name, \
                                    char* err, long long errlen) {                                              \
        return ::fmemu::launch(&__VA_ARGS__, grid, block, args, name, err, errlen);                             \
    }

#endif  // FASTMOMENTS_CUDA_EMU_H

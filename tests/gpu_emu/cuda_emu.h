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
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// -- the CUDA dialect, as plain C++ -------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__
// A __shared__ variable is a function-local static: one per module, which is
// one per block since blocks run one at a time. The stand-in CuPy finds them
// in the module's symbol table and registers them (fmemu_add_shared), so they
// are refilled with garbage before every block.
#define __shared__ static __attribute__((aligned(16)))

struct dim3 {
    unsigned int x, y, z;
};
typedef dim3 uint3;
static const int warpSize = 32;

namespace fmemu {

enum State { READY, BARRIER, SHUFFLE, DONE };

struct Fiber;
struct Block;

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
    int exited = 0;
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

constexpr size_t STACK = 64 * 1024;
constexpr int MAX_THREADS = 1024;

inline std::vector<Fiber>& fiber_pool() {
    static std::vector<Fiber> pool;
    if (pool.empty()) {
        pool.resize(MAX_THREADS);
        for (auto& f : pool) f.stack = static_cast<char*>(std::aligned_alloc(64, STACK));
    }
    return pool;
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

inline void syncthreads(const char* file, int line) {
    Launch& l = L();
    Fiber* f = self();
    if (l.exited) {
        fail(where(f) + ": reaches __syncthreads (" + file + ":" + std::to_string(line) + ") after " +
             std::to_string(l.exited) + " thread(s) of its block exited without reaching it");
    }
    if (l.barrier_waiting == 0) {
        l.barrier_file = file;
        l.barrier_line = line;
    } else if (l.barrier_line != line || std::strcmp(l.barrier_file, file) != 0) {
        fail(where(f) + ": reaches __syncthreads at " + file + ":" + std::to_string(line) + " while " +
             std::to_string(l.barrier_waiting) + " thread(s) of its block wait at another __syncthreads (" +
             l.barrier_file + ":" + std::to_string(l.barrier_line) + "): a barrier in divergent code");
    }
    f->state = BARRIER;
    f->site_file = file;
    f->site_line = line;
    f->site_what = "__syncthreads";
    if (++l.barrier_waiting == l.nthreads) {
        for (int i = 0; i < l.nthreads; ++i) (*l.fibers)[i].state = READY;
        l.barrier_waiting = 0;
    }
    yield_to_scheduler(f);
}

// -- warps: shuffles and votes ------------------------------------------------------------

inline unsigned warp_members(int warp) {
    const Launch& l = L();
    int first = warp * 32, n = std::min(32, l.nthreads - first);
    return n == 32 ? 0xffffffffu : ((1u << n) - 1u);
}

inline unsigned warp_live(int warp) {
    const Launch& l = L();
    unsigned live = 0, members = warp_members(warp);
    for (int j = 0; j < 32; ++j)
        if ((members >> j & 1u) && (*l.fibers)[warp * 32 + j].state != DONE) live |= 1u << j;
    return live;
}

// Complete the exchange of `mask` in `warp` if every live lane it names is
// waiting in it; each participant gets the value of its source lane.
inline void try_complete(int warp, unsigned mask) {
    Launch& l = L();
    Fiber* lanes = &(*l.fibers)[warp * 32];
    unsigned need = mask & warp_live(warp);
    for (int j = 0; j < 32; ++j) {
        if (!(need >> j & 1u)) continue;
        if (lanes[j].state != SHUFFLE || lanes[j].mask != mask) return;
    }
    unsigned vote = 0;
    for (int j = 0; j < 32; ++j)
        if ((need >> j & 1u) && lanes[j].value) vote |= 1u << j;
    for (int j = 0; j < 32; ++j) {
        if (!(need >> j & 1u)) continue;
        Fiber& p = lanes[j];
        if (!(need >> p.src & 1u)) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "0x%08x", mask);
            fail(where(&p) + ": " + p.site_what + " (" + p.site_file + ":" + std::to_string(p.site_line) +
                 ") reads lane " + std::to_string(p.src) + ", which does not take part (mask " + hex +
                 ")");
        }
        p.result = lanes[p.src].value;
        p.ballot = vote;
        p.need = need;
        p.state = READY;
    }
}

inline unsigned long long exchange(unsigned mask, unsigned long long value, int src, const char* what,
                                   const char* file, int line) {
    Fiber* f = self();
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", mask);
    if (!(mask >> f->lane & 1u)) {
        fail(where(f) + ": " + what + " (" + file + ":" + std::to_string(line) + ") with mask " + hex +
             ", which does not name the calling lane " + std::to_string(f->lane));
    }
    unsigned members = warp_members(f->warp);
    if (mask & ~members) {
        fail(where(f) + ": " + what + " (" + file + ":" + std::to_string(line) + ") with mask " + hex +
             " naming lanes beyond the block's last thread");
    }
    f->state = SHUFFLE;
    f->mask = mask;
    f->value = value;
    f->src = src;
    f->site_file = file;
    f->site_line = line;
    f->site_what = what;
    try_complete(f->warp, mask);
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
    // Lanes waiting in a shuffle no longer wait for this one.
    Fiber* lanes = &(*l.fibers)[f->warp * 32];
    unsigned members = warp_members(f->warp);
    for (int j = 0; j < 32; ++j)
        if ((members >> j & 1u) && lanes[j].state == SHUFFLE) try_complete(f->warp, lanes[j].mask);
    yield_to_scheduler(f);
    __builtin_unreachable();
}

struct Config {
    unsigned long long seed = 0;
    int mode = -1;  // -1: derived from the seed and the launch number
    unsigned long long launches = 0;
    unsigned char garbage = 0x5A;
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
    long long nblocks = grid[0] * grid[1] * grid[2];
    std::vector<long long> blocks(static_cast<size_t>(nblocks));
    for (long long i = 0; i < nblocks; ++i) blocks[size_t(i)] = i;
    if (mode == REVERSE) std::reverse(blocks.begin(), blocks.end());
    if (mode == SHUFFLED) std::shuffle(blocks.begin(), blocks.end(), rng);
    order_of(l.order, l.nthreads, mode, rng);
    for (long long b : blocks) {
        l.block_idx = dim3{unsigned(b % grid[0]), unsigned((b / grid[0]) % grid[1]), unsigned(b / (grid[0] * grid[1]))};
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

#define __syncthreads() ::fmemu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ((void)::fmemu::vote(FMEMU_MASK(__VA_ARGS__), 1, "__syncwarp", __FILE__, __LINE__, 0))
#define __shfl_down_sync(mask, v, d, ...) ::fmemu::shfl_down((mask), (v), (d), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, d, ...) ::fmemu::shfl_up((mask), (v), (d), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_xor_sync(mask, v, m, ...) ::fmemu::shfl_xor((mask), (v), (m), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_sync(mask, v, s, ...) ::fmemu::shfl((mask), (v), (s), FMEMU_WIDTH(__VA_ARGS__), __FILE__, __LINE__)
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
template <typename T>
__device__ __forceinline__ T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
template <typename T>
__device__ __forceinline__ T atomicSub(T* p, T v) { T old = *p; *p = old - v; return old; }
template <typename T>
__device__ __forceinline__ T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }
template <typename T>
__device__ __forceinline__ T atomicMin(T* p, T v) { T old = *p; *p = v < old ? v : old; return old; }
template <typename T>
__device__ __forceinline__ T atomicMax(T* p, T v) { T old = *p; *p = v > old ? v : old; return old; }
template <typename T>
__device__ __forceinline__ T atomicCAS(T* p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }

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
FMEMU_API void fmemu_configure(unsigned long long seed, int mode, int garbage) {
    fmemu::config().seed = seed;
    fmemu::config().mode = mode;
    fmemu::config().garbage = (unsigned char)garbage;
}

// FMEMU_EXPORT(7, fm_segment_partial<float, 0>) defines fmemu_sig_7 and fmemu_launch_7.
#define FMEMU_EXPORT(ID, ...)                                                                                  \
    FMEMU_API const char* fmemu_sig_##ID() { return ::fmemu::signature(&__VA_ARGS__); }                        \
    FMEMU_API int fmemu_launch_##ID(const long long* grid, const long long* block, void** args, const char* name, \
                                    char* err, long long errlen) {                                              \
        return ::fmemu::launch(&__VA_ARGS__, grid, block, args, name, err, errlen);                             \
    }

#endif  // FASTMOMENTS_CUDA_EMU_H

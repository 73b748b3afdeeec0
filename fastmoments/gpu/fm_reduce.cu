// One-pass moment and summary reductions: the RawModule behind
// fastmoments.gpu.moments / summarize / summarize_each / reduce.
//
// Every kernel writes states as seven field arrays (structure of arrays):
// n, mean, m2, lo, hi, nnf, nz; the last four are only touched for summaries
// (null pointers otherwise). The partial kernels also take hist: null, or
// the int64 magnitude histograms of the outputs (FM_HIST_BINS per output,
// zeroed by the caller), which they count into with atomics in the same pass
// (summaries with histogram=True). A "partial" kernel reduces a tile of the input to
// one state per (output, chunk) slot, o * C + c; when C == 1 that slot is the
// output itself and no second launch is needed. fm_finalize merges the C
// partial states of each output, and also serves Moments.reduce, whose states
// are already laid out that way.
//
// Inside a thread values are folded in groups of FM_GROUP (two-pass in
// registers, one Chan merge per group); threads, warps and blocks are merged
// with the same Chan formula in binary trees. Never sum-of-squares. Means are
// relative to an origin per output (fm_origin, a value of the data): partial
// states of a split reduction (C > 1) are stored relative to it, with the
// origin in origin[o], and fm_finalize adds it back; fm_finalize called on
// states from outside (reduce) takes the mean of the first nonempty state of
// each range as its origin.
#include "fm_state.cuh"

#define FM_THREADS 256

// origin: added to the (relative) mean as it is written; NaN stays NaN.
template <int KIND>
__device__ __forceinline__ void fm_store(const fm_state& s, double origin, long long slot, long long* n, double* mean,
                                         double* m2, double* lo, double* hi, long long* nnf, long long* nz) {
    n[slot] = s.n;
    mean[slot] = s.mean + origin;
    m2[slot] = s.m2;
    if (KIND == FM_SUMMARY) {
        lo[slot] = s.lo;
        hi[slot] = s.hi;
        nnf[slot] = s.nnf;
        nz[slot] = s.nz;
    }
}

// shift: subtracted from the stored mean (0 for means already relative).
template <int KIND>
__device__ __forceinline__ fm_state fm_load(long long slot, double shift, const long long* n, const double* mean,
                                            const double* m2, const double* lo, const double* hi,
                                            const long long* nnf, const long long* nz) {
    fm_state s = fm_empty();
    s.n = n[slot];
    if (s.n > 0) {
        s.mean = mean[slot] - shift;
        s.m2 = m2[slot];
    }
    if (KIND == FM_SUMMARY) {
        s.lo = lo[slot];
        s.hi = hi[slot];
        s.nnf = nnf[slot];
        s.nz = nz[slot];
    }
    return s;
}

template <int KIND>
__device__ __forceinline__ fm_state fm_shfl_down(const fm_state& s, int offset) {
    fm_state o;
    o.n = __shfl_down_sync(0xffffffffu, s.n, offset);
    o.mean = __shfl_down_sync(0xffffffffu, s.mean, offset);
    o.m2 = __shfl_down_sync(0xffffffffu, s.m2, offset);
    if (KIND == FM_SUMMARY) {
        o.lo = __shfl_down_sync(0xffffffffu, s.lo, offset);
        o.hi = __shfl_down_sync(0xffffffffu, s.hi, offset);
        o.nnf = __shfl_down_sync(0xffffffffu, s.nnf, offset);
        o.nz = __shfl_down_sync(0xffffffffu, s.nz, offset);
    } else {
        o.lo = o.hi = fm_nan();
        o.nnf = o.nz = 0;
    }
    return o;
}

// Tree over the 32 lanes of a full warp; lane 0 holds the result.
template <int KIND>
__device__ __forceinline__ fm_state fm_warp_reduce(fm_state s) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        fm_state o = fm_shfl_down<KIND>(s, offset);
        s = fm_merge<KIND>(s, o);
    }
    return s;
}

// Tree over a block of FM_THREADS threads (one dimension); thread 0 holds the
// result. Every thread of the block must call it.
template <int KIND>
__device__ __forceinline__ fm_state fm_block_reduce(fm_state s) {
    __shared__ fm_state warps[FM_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    s = fm_warp_reduce<KIND>(s);
    if (lane == 0) warps[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < FM_THREADS / 32 ? warps[lane] : fm_empty();
        s = fm_warp_reduce<KIND>(s);
    }
    return s;
}

// A block's shared histogram: zeroed by all threads before counting, then
// added to the output's row of hist (int64, FM_HIST_BINS per output) with one
// global atomic per non-empty bin. hist is uniform across the block, so the
// barriers are reached by all threads or none.
__device__ __forceinline__ void fm_hist_zero(unsigned int* sh) {
    for (int i = threadIdx.x; i <= FM_HIST_BINS; i += FM_THREADS) sh[i] = 0u;
    __syncthreads();
}

__device__ __forceinline__ void fm_hist_flush(const unsigned int* sh, long long* hist, long long o) {
    __syncthreads();
    for (int i = threadIdx.x; i < FM_HIST_BINS; i += FM_THREADS) {
        unsigned int c = sh[i];
        if (c) atomicAdd(reinterpret_cast<unsigned long long*>(hist) + o * FM_HIST_BINS + i, (unsigned long long)c);
    }
}

// Long reductions (a reduced axis of length K, contiguous when sK == 1): one
// block per (output, chunk) tile; element k of output o is at x + (o / B) * sA
// + (o % B) * sB + k * sK. Grid: M * C blocks of FM_THREADS, chunk-major, so
// the blocks running together read neighbouring outputs (shared cache lines
// when the outputs interleave, sK > 1).
template <typename T, int KIND>
__global__ void __launch_bounds__(FM_THREADS)
    fm_segment_partial(const T* __restrict__ x, long long M, long long B, long long sA, long long sB, long long K,
                       long long sK, long long C, long long chunk, double* origin, long long* n, double* mean,
                       double* m2, double* lo, double* hi, long long* nnf, long long* nz, long long* hist) {
    __shared__ unsigned int sh[FM_HIST_BINS + 1];
    long long c = blockIdx.x / M, o = blockIdx.x - c * M;
    long long slot = o * C + c;
    const T* row = x + (o / B) * sA + (o % B) * sB;
    long long end = min(K, (c + 1) * chunk);
    long long first = c * chunk + threadIdx.x;
    long long cnt = first < end ? (end - first + FM_THREADS - 1) / FM_THREADS : 0;
    if (hist) fm_hist_zero(sh);
    double org = fm_origin(row, sK, K);
    fm_state s = fm_empty();
    fm_accumulate<T, KIND>(row + first * sK, FM_THREADS * sK, cnt, s, org, hist ? sh : nullptr);
    s = fm_block_reduce<KIND>(s);
    if (threadIdx.x == 0) {
        if (origin && c == 0) origin[o] = org;
        fm_store<KIND>(s, origin ? 0.0 : org, slot, n, mean, m2, lo, hi, nnf, nz);
    }
    if (hist) fm_hist_flush(sh, hist, o);
}

// Strided reductions: one thread per output along x (32 outputs per block),
// 8 threads along y sharing a chunk of the reduced axis. Element k of output o
// is at x + (o / B) * sA + (o % B) * sB + k * sK, so neighbouring threads read
// neighbouring addresses when the kept axis is the contiguous one.
// Grid: (ceil(M / 32), C) blocks of (32, 8).
template <typename T, int KIND>
__global__ void __launch_bounds__(FM_THREADS)
    fm_lane_partial(const T* __restrict__ x, long long M, long long B, long long sA, long long sB, long long K,
                    long long sK, long long C, long long chunk, double* origin, long long* n, double* mean,
                    double* m2, double* lo, double* hi, long long* nnf, long long* nz, long long* hist) {
    // 32 outputs per block: their histograms would not fit in shared memory,
    // so values are counted with global atomics into their output's row.
    __shared__ fm_state tile[8][32];
    long long o = (long long)blockIdx.x * 32 + threadIdx.x;
    long long c = blockIdx.y;
    fm_state s = fm_empty();
    double org = 0.0;
    if (o < M) {
        const T* base = x + (o / B) * sA + (o % B) * sB;
        org = fm_origin(base, sK, K);
        long long end = min(K, (c + 1) * chunk);
        long long first = c * chunk + threadIdx.y;
        long long cnt = first < end ? (end - first + 7) / 8 : 0;
        unsigned long long* hrow = hist ? reinterpret_cast<unsigned long long*>(hist) + o * FM_HIST_BINS : nullptr;
        fm_accumulate<T, KIND>(base + first * sK, 8 * sK, cnt, s, org, nullptr, hrow);
    }
    tile[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < M) {
        fm_state a = fm_merge<KIND>(tile[0][threadIdx.x], tile[1][threadIdx.x]);
        fm_state b = fm_merge<KIND>(tile[2][threadIdx.x], tile[3][threadIdx.x]);
        fm_state d = fm_merge<KIND>(tile[4][threadIdx.x], tile[5][threadIdx.x]);
        fm_state e = fm_merge<KIND>(tile[6][threadIdx.x], tile[7][threadIdx.x]);
        s = fm_merge<KIND>(fm_merge<KIND>(a, b), fm_merge<KIND>(d, e));
        if (origin && c == 0) origin[o] = org;
        fm_store<KIND>(s, origin ? 0.0 : org, o * C + c, n, mean, m2, lo, hi, nnf, nz);
    }
}

// The table of summarize_each, one row of four int64 per array and a final
// row whose chunk0 is the total number of chunks.
struct fm_entry {
    long long ptr;
    long long size;
    long long chunk0;  // index of the array's first chunk (block) in the grid
    long long dtype;   // FM_DT_* below
};

#define FM_DT_BOOL 0
#define FM_DT_INT8 1
#define FM_DT_UINT8 2
#define FM_DT_INT16 3
#define FM_DT_UINT16 4
#define FM_DT_INT32 5
#define FM_DT_UINT32 6
#define FM_DT_INT64 7
#define FM_DT_UINT64 8
#define FM_DT_FLOAT16 9
#define FM_DT_FLOAT32 10
#define FM_DT_FLOAT64 11

template <typename T, int KIND>
__device__ __forceinline__ double fm_each_tile(long long ptr, long long size, long long first, long long cnt,
                                               fm_state& s, unsigned int* sh) {
    const T* p = reinterpret_cast<const T*>(ptr);
    double org = fm_origin(p, 1, size);
    fm_accumulate<T, KIND>(p + first, FM_THREADS, cnt, s, org, sh);
    return org;
}

// Many arrays of any sizes and dtypes in one launch: block b finds its array
// by binary search over chunk0 (ChainerMN's packing, Apex's chunking). The
// partial states are relative to each array's origin, written to origin[t]
// for fm_finalize. Grid: total chunks blocks of FM_THREADS.
template <int KIND>
__global__ void __launch_bounds__(FM_THREADS)
    fm_each_partial(const fm_entry* __restrict__ tab, long long count, long long chunk, double* origin,
                    long long* n, double* mean, double* m2, double* lo, double* hi, long long* nnf, long long* nz,
                    long long* hist) {
    __shared__ unsigned int sh_hist[FM_HIST_BINS + 1];
    long long slot = blockIdx.x;
    // Largest t with chunk0 <= slot: empty arrays share their chunk0 with the
    // next array and are skipped.
    long long lo_t = 0, hi_t = count - 1;
    while (lo_t < hi_t) {
        long long mid = (lo_t + hi_t + 1) >> 1;
        if (tab[mid].chunk0 <= slot)
            lo_t = mid;
        else
            hi_t = mid - 1;
    }
    const fm_entry e = tab[lo_t];
    long long c = slot - e.chunk0;
    long long end = min(e.size, (c + 1) * chunk);
    long long first = c * chunk + threadIdx.x;
    long long cnt = first < end ? (end - first + FM_THREADS - 1) / FM_THREADS : 0;
    if (hist) fm_hist_zero(sh_hist);
    unsigned int* sh = hist ? sh_hist : nullptr;
    fm_state s = fm_empty();
    double org;
    switch (e.dtype) {  // uniform across the block
        case FM_DT_BOOL: org = fm_each_tile<fm_bool, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_INT8: org = fm_each_tile<signed char, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_UINT8: org = fm_each_tile<unsigned char, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_INT16: org = fm_each_tile<short, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_UINT16: org = fm_each_tile<unsigned short, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_INT32: org = fm_each_tile<int, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_UINT32: org = fm_each_tile<unsigned int, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_INT64: org = fm_each_tile<long long, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_UINT64: org = fm_each_tile<unsigned long long, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_FLOAT16: org = fm_each_tile<fm_half, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        case FM_DT_FLOAT32: org = fm_each_tile<float, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
        default: org = fm_each_tile<double, KIND>(e.ptr, e.size, first, cnt, s, sh); break;
    }
    s = fm_block_reduce<KIND>(s);
    if (threadIdx.x == 0) {
        if (c == 0) origin[lo_t] = org;
        fm_store<KIND>(s, 0.0, slot, n, mean, m2, lo, hi, nnf, nz);
    }
    if (hist) fm_hist_flush(sh_hist, hist, lo_t);
}

// Merge the states [start(o), end(o)) of each of M outputs into output o, with
// TPO threads per output (1, 32 or FM_THREADS). The ranges are o * C .. o * C
// + C, or, when offs is given, offs[o * offs_stride] .. offs[(o + 1) *
// offs_stride]. With origin, the input means are relative to origin[o] (the
// partial kernels' split reductions); with shift (fm_grouped.cu), each input
// mean is relative to its own shift[j], and the origin is the shift of the
// range's state of most values (each mean moved to it: mean + (shift[j] -
// origin)); with neither, the mean of the first nonempty state among the
// first FM_ORIGIN_SCAN of the range serves.
// Grid: ceil(M * TPO / FM_THREADS) blocks of FM_THREADS.
template <int KIND, int TPO>
__global__ void __launch_bounds__(FM_THREADS)
    fm_finalize(long long M, long long C, const long long* __restrict__ offs, long long offs_stride,
                const double* __restrict__ origin, const double* __restrict__ shift, const long long* in_n,
                const double* in_mean,
                const double* in_m2, const double* in_lo, const double* in_hi, const long long* in_nnf,
                const long long* in_nz, long long* n, double* mean, double* m2, double* lo, double* hi,
                long long* nnf, long long* nz) {
    long long o = ((long long)blockIdx.x * FM_THREADS + threadIdx.x) / TPO;
    int lane = threadIdx.x % TPO;
    fm_state s = fm_empty();
    double org = 0.0;
    if (o < M) {
        long long begin = offs ? offs[o * offs_stride] : o * C;
        long long end = offs ? offs[(o + 1) * offs_stride] : begin + C;
        if (origin) {
            org = origin[o];
        } else if (shift) {  // the shift of the state of most values (the first of them)
            long long most = 0;
            for (long long j = begin; j < end; ++j)
                if (in_n[j] > most) {
                    org = shift[j];
                    most = in_n[j];
                }
        } else if (end > begin) {  // states from outside: as fm_origin, over their means
            double c[FM_ORIGIN_SAMPLES];
            int k = 0;
            for (int j = 0; j < FM_ORIGIN_SAMPLES; ++j) {
                long long at = begin + (end - 1 - begin) * j / (FM_ORIGIN_SAMPLES - 1);
                if (in_n[at] > 0 && fm_origin_usable(in_mean[at])) c[k++] = in_mean[at];
            }
            if (k) {
                org = fm_median_small(c, k);
            } else {
                long long scan = end - begin < FM_ORIGIN_SCAN ? end - begin : FM_ORIGIN_SCAN;
                for (long long j = begin; j < begin + scan; ++j)
                    if (in_n[j] > 0 && fm_origin_usable(in_mean[j])) {
                        org = in_mean[j];
                        break;
                    }
            }
        }
        // From the partial kernels the loaded means already are relative (subtract nothing).
        double sub = origin ? 0.0 : org;
        for (long long j = begin + lane; j < end; j += TPO) {
            if (shift) sub = org - shift[j];
            s = fm_merge<KIND>(s, fm_load<KIND>(j, sub, in_n, in_mean, in_m2, in_lo, in_hi, in_nnf, in_nz));
        }
    }
    if (TPO == 32) s = fm_warp_reduce<KIND>(s);
    if (TPO == FM_THREADS) s = fm_block_reduce<KIND>(s);
    if (lane == 0 && o < M) fm_store<KIND>(s, org, o, n, mean, m2, lo, hi, nnf, nz);
}

// Weighted and higher-order moments in one pass: the RawModule behind
// fastmoments.gpu.weighted_moments and reduce of the "weighted<p>" kinds.
//
// The same geometry as fm_reduce.cu (fastmoments/gpu/_layout.py plans both):
// fm_wsegment_partial (one block per (output, chunk) tile, for long
// reductions) and fm_wlane_partial (a thread per output, 8 threads sharing a
// chunk of a strided reduction) write one state per slot o * C + c; when C >
// 1, fm_wfinalize merges each output's C states. Weights are read with their
// own strides (a broadcast view has zero strides) at the data's indices.
//
// A state is written as seven field arrays: n, w, w2, mean, m2, m3, m4 (the
// last ones null below their ORDER). Within a thread values are folded in
// groups of FM_GROUP (fm_wpush_group); threads, warps and blocks are merged
// in binary trees with Pebay's formulas (fm_wmerge_into). Means are relative
// to an origin per output (fm_worigin): partial states of a split reduction
// (C > 1) are stored relative to it, with the origin, and fm_wfinalize adds
// it back; fm_wfinalize called on states from outside (reduce) takes the
// mean of the first nonempty state of each range as its origin.
//
// Weights that are negative, NaN or infinite set *bad (when bad is given):
// the caller reads it once and raises.
#include "fm_wstate.cuh"

#define FM_THREADS 256  // as fm_reduce.cu and _layout.THREADS

template <int ORDER>
__device__ __forceinline__ void fm_wstore(const fm_wstate<ORDER>& s, double origin, long long slot, long long* n,
                                          double* w, double* w2, double* mean, double* m2, double* m3, double* m4) {
    n[slot] = s.n;
    w[slot] = s.w;
    w2[slot] = s.w2;
    mean[slot] = s.mean + origin;  // NaN stays NaN for empty states
    m2[slot] = s.m[0];
    if (ORDER >= 3) m3[slot] = s.m[1 < ORDER - 1 ? 1 : 0];
    if (ORDER >= 4) m4[slot] = s.m[2 < ORDER - 1 ? 2 : 0];
}

template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wload(long long slot, double origin, const long long* n,
                                                     const double* w, const double* w2, const double* mean,
                                                     const double* m2, const double* m3, const double* m4) {
    fm_wstate<ORDER> s = fm_wempty<ORDER>();
    s.n = n[slot];
    s.w = w[slot];
    s.w2 = w2[slot];
    if (s.n > 0) {
        s.mean = mean[slot] - origin;
        s.m[0] = m2[slot];
        if (ORDER >= 3) s.m[1 < ORDER - 1 ? 1 : 0] = m3[slot];
        if (ORDER >= 4) s.m[2 < ORDER - 1 ? 2 : 0] = m4[slot];
    }
    return s;
}

template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wshfl_down(const fm_wstate<ORDER>& s, int offset) {
    fm_wstate<ORDER> o;
    o.n = __shfl_down_sync(0xffffffffu, s.n, offset);
    o.w = __shfl_down_sync(0xffffffffu, s.w, offset);
    o.w2 = __shfl_down_sync(0xffffffffu, s.w2, offset);
    o.mean = __shfl_down_sync(0xffffffffu, s.mean, offset);
#pragma unroll
    for (int q = 0; q < ORDER - 1; ++q) o.m[q] = __shfl_down_sync(0xffffffffu, s.m[q], offset);
    return o;
}

// Tree over the 32 lanes of a full warp; lane 0 holds the result.
template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wwarp_reduce(fm_wstate<ORDER> s) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) fm_wmerge_into(s, fm_wshfl_down(s, offset));
    return s;
}

// Tree over a block of FM_THREADS threads (one dimension); thread 0 holds the
// result. Every thread of the block must call it.
template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wblock_reduce(fm_wstate<ORDER> s) {
    __shared__ fm_wstate<ORDER> warps[FM_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    s = fm_wwarp_reduce(s);
    if (lane == 0) warps[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < FM_THREADS / 32 ? warps[lane] : fm_wempty<ORDER>();
        s = fm_wwarp_reduce(s);
    }
    return s;
}

// Long reductions: one block per (output, chunk) tile; element k of output o
// is at x + (o / B) * sA + (o % B) * sB + k * sK, its weight at w + (o / B) *
// wA + (o % B) * wB + k * wK. Grid: M * C blocks of FM_THREADS, chunk-major.
// origin: null when C == 1 (absolute means stored); else the origin of each
// output is stored there and the partial means are relative to it.
template <typename T, typename TW, int ORDER>
__global__ void __launch_bounds__(FM_THREADS)
    fm_wsegment_partial(const T* __restrict__ x, const TW* __restrict__ w, long long M, long long B, long long sA,
                        long long sB, long long K, long long sK, long long wA, long long wB, long long wK,
                        int skipna, long long C, long long chunk, int* bad, double* origin, long long* n,
                        double* sw, double* sw2, double* mean, double* m2, double* m3, double* m4) {
    long long c = blockIdx.x / M, o = blockIdx.x - c * M;
    long long slot = o * C + c;
    const T* row = x + (o / B) * sA + (o % B) * sB;
    const TW* wrow = w + (o / B) * wA + (o % B) * wB;
    double org = fm_worigin(row, sK, wrow, wK, K);
    long long end = min(K, (c + 1) * chunk);
    long long first = c * chunk + threadIdx.x;
    long long cnt = first < end ? (end - first + FM_THREADS - 1) / FM_THREADS : 0;
    fm_wstate<ORDER> s = fm_wempty<ORDER>();
    bool badw = false;
    fm_waccumulate<T, TW, ORDER>(row + first * sK, FM_THREADS * sK, wrow + first * wK, FM_THREADS * wK, cnt, org,
                                 skipna != 0, s, badw);
    if (badw && bad) *bad = 1;  // every writer writes 1
    s = fm_wblock_reduce(s);
    if (threadIdx.x == 0) {
        if (origin && c == 0) origin[o] = org;
        fm_wstore(s, origin ? 0.0 : org, slot, n, sw, sw2, mean, m2, m3, m4);
    }
}

// Strided reductions: one thread per output along x (32 outputs per block),
// 8 threads along y sharing a chunk of the reduced axis. Grid: (ceil(M / 32),
// C) blocks of (32, 8). Arguments as fm_wsegment_partial.
template <typename T, typename TW, int ORDER>
__global__ void __launch_bounds__(FM_THREADS)
    fm_wlane_partial(const T* __restrict__ x, const TW* __restrict__ w, long long M, long long B, long long sA,
                     long long sB, long long K, long long sK, long long wA, long long wB, long long wK, int skipna,
                     long long C, long long chunk, int* bad, double* origin, long long* n, double* sw, double* sw2,
                     double* mean, double* m2, double* m3, double* m4) {
    __shared__ fm_wstate<ORDER> tile[8][32];
    long long o = (long long)blockIdx.x * 32 + threadIdx.x;
    long long c = blockIdx.y;
    fm_wstate<ORDER> s = fm_wempty<ORDER>();
    double org = 0.0;
    if (o < M) {
        const T* base = x + (o / B) * sA + (o % B) * sB;
        const TW* wbase = w + (o / B) * wA + (o % B) * wB;
        org = fm_worigin(base, sK, wbase, wK, K);
        long long end = min(K, (c + 1) * chunk);
        long long first = c * chunk + threadIdx.y;
        long long cnt = first < end ? (end - first + 7) / 8 : 0;
        bool badw = false;
        fm_waccumulate<T, TW, ORDER>(base + first * sK, 8 * sK, wbase + first * wK, 8 * wK, cnt, org, skipna != 0,
                                     s, badw);
        if (badw && bad) *bad = 1;
    }
    tile[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < M) {
        fm_wstate<ORDER> a = tile[0][threadIdx.x], b = tile[2][threadIdx.x];
        fm_wstate<ORDER> d = tile[4][threadIdx.x], e = tile[6][threadIdx.x];
        fm_wmerge_into(a, tile[1][threadIdx.x]);
        fm_wmerge_into(b, tile[3][threadIdx.x]);
        fm_wmerge_into(d, tile[5][threadIdx.x]);
        fm_wmerge_into(e, tile[7][threadIdx.x]);
        fm_wmerge_into(a, b);
        fm_wmerge_into(d, e);
        fm_wmerge_into(a, d);
        if (origin && c == 0) origin[o] = org;
        fm_wstore(a, origin ? 0.0 : org, o * C + c, n, sw, sw2, mean, m2, m3, m4);
    }
}

// Merge the states o * C .. o * C + C - 1 of each of M outputs into output o,
// with TPO threads per output (1, 32 or FM_THREADS). With origin, the input
// means are relative to origin[o] (fm_w*_partial's split reductions); with
// shift (fm_wgrouped.cu), each input mean is relative to its own shift[j] and
// the origin is the shift of the heaviest state (each mean moved to it:
// mean + (shift[j] - origin)); with neither, the mean of the first nonempty
// state of the first FM_ORIGIN_SCAN serves.
// Grid: ceil(M * TPO / FM_THREADS) blocks of FM_THREADS.
template <int ORDER, int TPO>
__global__ void __launch_bounds__(FM_THREADS)
    fm_wfinalize(long long M, long long C, const double* __restrict__ origin, const double* __restrict__ shift,
                 const long long* in_n,
                 const double* in_w, const double* in_w2, const double* in_mean, const double* in_m2,
                 const double* in_m3, const double* in_m4, long long* n, double* sw, double* sw2, double* mean,
                 double* m2, double* m3, double* m4) {
    long long o = ((long long)blockIdx.x * FM_THREADS + threadIdx.x) / TPO;
    int lane = threadIdx.x % TPO;
    fm_wstate<ORDER> s = fm_wempty<ORDER>();
    double org = 0.0;
    if (o < M) {
        long long begin = o * C, end = begin + C;
        if (origin) {
            org = origin[o];
        } else if (shift) {  // the shift of the heaviest state (the first of them)
            double most = 0.0;
            for (long long j = begin; j < end; ++j)
                if (in_n[j] > 0 && in_w[j] > most) {
                    org = shift[j];
                    most = in_w[j];
                }
        } else {
            long long scan = C < FM_ORIGIN_SCAN ? C : FM_ORIGIN_SCAN;
            for (long long j = begin; j < begin + scan; ++j) {
                double mj = in_mean[j];
                if (in_n[j] > 0 && fabs(mj) < 0x1p969) {  // 2**969, as fm_worigin
                    org = mj;
                    break;
                }
            }
        }
        // The loaded means are relative to org: from the partial kernels they
        // already are (subtract nothing).
        double sub = origin ? 0.0 : org;
        for (long long j = begin + lane; j < end; j += TPO) {
            if (shift) sub = org - shift[j];
            fm_wmerge_into(s, fm_wload<ORDER>(j, sub, in_n, in_w, in_w2, in_mean, in_m2, in_m3, in_m4));
        }
    }
    if (TPO == 32) s = fm_wwarp_reduce(s);
    if (TPO == FM_THREADS) s = fm_wblock_reduce(s);
    if (lane == 0 && o < M) fm_wstore(s, org, o, n, sw, sw2, mean, m2, m3, m4);
}

// Grouped moments and summaries in one pass: the RawModule behind
// fastmoments.gpu.group_moments / group_summarize (for few slots).
//
// The input is an (N, m) C-contiguous array read as one stream of N * m
// values; value e lies in row e / m, column e % m, and goes to slot
// lab[row] * m + column (a negative label: to none). Block c reduces the
// values [c * chunk, (c + 1) * chunk), split into W = blockDim.x / 32 equal
// runs, one per warp. Each warp keeps a private state for every slot in
// shared memory, so no two warps ever write the same state and no atomic is
// needed: every sum has an order fixed by the shape, and the results are the
// same on every run and device.
//
// A warp reads 32 consecutive values per step. The lanes holding the same
// slot (__match_any_sync) are one batch, reduced by the corrected two-pass
// algorithm in a binary tree over the batch's lanes (fm_peers.cuh), around
// the slot's origin in this warp: a value of its first batch, that nearest
// the batch's mean (fm_peer_origin), as the CPU's tasks take a value of the
// data near the mean of their first values. The batch's first lane then
// merges it into the warp's state of the slot (Chan et al.), kept relative to
// that origin. Non-finite values (and a batch whose mean overflows) take
// fm_push1 one lane at a time, in lane order.
//
// At the block's end its warps' states are merged per slot in warp order and
// written relative to the block's origin of the slot (that of its warp of
// most values), stored in shift[o * C + c]: fm_finalize (fm_reduce.cu), given
// shift, moves them to the origin of the slot's block of most values and
// merges the C blocks in a tree. Merges start from the heavier side's mean
// (fm_merge_moments_into), so a light state far from its slot's values (a
// first value far off) rounds nothing but itself.
#include "fm_state.cuh"
#include "fm_peers.cuh"

// Doubles of shared memory for the warps' states: the static limit of a
// block (48 KiB), so that no launch needs an opt-in attribute. A warp keeps
// FM_GSTATE_FIELDS(KIND) per slot: moments n, mean, m2, origin; summaries
// also lo, hi, nnf, nz.
#define FM_GSHARED 6144
#define FM_GSTATE_FIELDS(KIND) ((KIND) == FM_SUMMARY ? 8 : 4)

// Field f of slot o of a warp's states (structure of arrays over S slots).
#define FM_GF(base, f, o, S) ((base) + (long long)(f) * (S) + (o))

template <int KIND>
__device__ __forceinline__ fm_state fm_gload(const double* base, long long o, long long S) {
    fm_state s = fm_empty();
    s.n = __double_as_longlong(*FM_GF(base, 0, o, S));
    s.mean = *FM_GF(base, 1, o, S);
    s.m2 = *FM_GF(base, 2, o, S);
    if (KIND == FM_SUMMARY) {
        s.lo = *FM_GF(base, 4, o, S);
        s.hi = *FM_GF(base, 5, o, S);
        s.nnf = __double_as_longlong(*FM_GF(base, 6, o, S));
        s.nz = __double_as_longlong(*FM_GF(base, 7, o, S));
    }
    return s;
}

template <int KIND>
__device__ __forceinline__ void fm_gstore(double* base, long long o, long long S, const fm_state& s) {
    *FM_GF(base, 0, o, S) = __longlong_as_double(s.n);
    *FM_GF(base, 1, o, S) = s.mean;
    *FM_GF(base, 2, o, S) = s.m2;
    if (KIND == FM_SUMMARY) {
        *FM_GF(base, 4, o, S) = s.lo;
        *FM_GF(base, 5, o, S) = s.hi;
        *FM_GF(base, 6, o, S) = __longlong_as_double(s.nnf);
        *FM_GF(base, 7, o, S) = __longlong_as_double(s.nz);
    }
}

// Per-block partial states of S = G * m slots, at o * C + c (slot-major), each
// mean relative to shift[o * C + c]. Grid: C blocks of 32 * W threads, W * S *
// FM_GSTATE_FIELDS(KIND) <= FM_GSHARED; chunk a multiple of 32 * W.
template <typename T, int KIND>
__global__ void __launch_bounds__(256)
    fm_group_partial(const T* __restrict__ x, const long long* __restrict__ lab, long long N, long long m,
                     long long G, long long C, long long chunk, double* shift, long long* n, double* mean,
                     double* m2, double* lo, double* hi, long long* nnf, long long* nz) {
    __shared__ double fm_gbuf[FM_GSHARED];
    const long long S = G * m;
    const int F = FM_GSTATE_FIELDS(KIND);
    const int W = blockDim.x >> 5;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long c = blockIdx.x;
    const long long total = N * m;

    for (long long j = threadIdx.x; j < (long long)W * S; j += blockDim.x) {
        double* base = fm_gbuf + (j / S) * S * F;
        long long o = j % S;
        fm_gstore<KIND>(base, o, S, fm_empty());
        *FM_GF(base, 3, o, S) = fm_nan();  // no origin yet
    }
    __syncthreads();

    double* mine = fm_gbuf + (long long)warp * S * F;
    const long long per = chunk / W;
    long long e0 = c * chunk + warp * per;
    long long e1 = min(total, e0 + per);
    for (; e0 < e1; e0 += 32) {  // uniform over the warp: e0 and e1 are the warp's
        long long e = e0 + lane;
        long long slot = -1;
        double v = 0.0;
        if (e < e1) {
            long long row = m == 1 ? e : e / m;
            long long g = lab[row];
            if (g >= 0) {
                slot = g * m + (e - row * m);
                v = fm_to_double(x[e]);
            }
        }
        bool finite = slot >= 0 && fm_finite(v);
        // Lanes without a finite value share the key -1: a batch never merged.
        unsigned peers = __match_any_sync(0xffffffffu, finite ? (int)slot : -1);  // 32-bit keys: slots fit in shared memory
        int first = __ffs(peers) - 1;
        int cnt = __popc(peers);
        // The batch is summed around its slot's origin in this warp, chosen by its first batch.
        double k = finite ? *FM_GF(mine, 3, slot, S) : 0.0;
        bool need = finite && k != k;
        if (__any_sync(0xffffffffu, need)) {
            double o = fm_peer_origin(peers, first, finite, v);
            if (need) k = o;
        }
        double s[1] = {v - k};
        fm_peer_sums<1>(peers, s);
        double mb = __shfl_sync(0xffffffffu, s[0] / cnt, first);
        bool batched = finite && fm_finite(mb);
        double d = (v - k) - mb;
        double cq[2] = {d, d * d};
        fm_peer_sums<2>(peers, cq);
        double cs = cq[0], q = cq[1];
        // A batch that outweighs the warp's state of its slot and lies far from
        // the slot's origin against its own spread (the origin came from a
        // lighter first batch far off) lost digits in v - k: it is summed again
        // around a value of its own, which becomes the slot's origin (fm_far).
        double kb = k;
        bool lead = lane == first && batched && cnt > __double_as_longlong(*FM_GF(mine, 0, slot, S));
        bool again = fm_far(lead, mb, q / cnt, first);
        if (__any_sync(0xffffffffu, again)) {
            double o = fm_peer_origin(peers, first, finite, v);
            if (again) kb = o;
            s[0] = v - kb;
            fm_peer_sums<1>(peers, s);
            mb = __shfl_sync(0xffffffffu, s[0] / cnt, first);
            batched = finite && fm_finite(mb);
            d = (v - kb) - mb;
            cq[0] = d;
            cq[1] = d * d;
            fm_peer_sums<2>(peers, cq);
            cs = cq[0];
            q = cq[1];
        }
        double blo = v, bhi = v;
        if (KIND == FM_SUMMARY) fm_peer_extremes(peers, blo, bhi);
        unsigned zeros = __ballot_sync(0xffffffffu, finite && v == 0.0);
        if (batched && lane == first) {
            fm_state st = fm_gload<KIND>(mine, slot, S);
            double inv = 1.0 / cnt;
            double bmean = mb + cs * inv;  // relative to kb
            double org = k;
            if (kb != k) {  // summed again (it outweighs the state): its origin becomes the slot's
                if (st.n > 0) st.mean += k - kb;
                org = kb;
            }
            *FM_GF(mine, 3, slot, S) = org;
            double bq = fm_finite(q) ? fmax(q - cs * (cs * inv), 0.0) : q;
            fm_merge_moments_into(st, cnt, bmean, bq);
            if (KIND == FM_SUMMARY) {
                st.lo = fmin(st.lo, blo);
                st.hi = fmax(st.hi, bhi);
                st.nz += __popc(zeros & peers);
            }
            fm_gstore<KIND>(mine, slot, S, st);
        }
        __syncwarp();
        // One lane at a time: values not batched (NaN and Inf; a batch whose
        // mean overflowed), but never a NaN that skipna leaves out.
        bool single = slot >= 0 && !batched && !(KIND == FM_MOMENTS_SKIPNA && v != v);
        unsigned singles = __ballot_sync(0xffffffffu, single);
        while (singles) {
            int b = __ffs(singles) - 1;
            singles &= singles - 1;
            if (lane == b) {
                fm_state st = fm_gload<KIND>(mine, slot, S);
                double o = *FM_GF(mine, 3, slot, S);
                if (finite && o != o) {  // an overflowed batch: the origin chosen above
                    o = k;
                    *FM_GF(mine, 3, slot, S) = o;
                }
                fm_push1<KIND>(st, v, o == o ? o : 0.0);
                fm_gstore<KIND>(mine, slot, S, st);
            }
            __syncwarp();
        }
    }
    __syncthreads();

    // The block's state of each slot: its warps merged in order, relative to
    // the origin of its warp of most values (the first of them on a tie).
    for (long long o = threadIdx.x; o < S; o += blockDim.x) {
        double borg = fm_nan();
        long long most = 0;
        for (int w = 0; w < W; ++w) {
            const double* base = fm_gbuf + (long long)w * S * F;
            long long nw = __double_as_longlong(*FM_GF(base, 0, o, S));
            double ow = *FM_GF(base, 3, o, S);
            if (ow == ow && (borg != borg || nw > most)) {
                borg = ow;
                most = nw;
            }
        }
        if (borg != borg) borg = 0.0;
        fm_state s = fm_empty();
        for (int w = 0; w < W; ++w) {
            const double* base = fm_gbuf + (long long)w * S * F;
            fm_state ws = fm_gload<KIND>(base, o, S);
            double worg = *FM_GF(base, 3, o, S);
            if (ws.n > 0 && worg == worg) ws.mean += worg - borg;
            s = fm_merge<KIND>(s, ws);
        }
        long long at = o * C + c;
        shift[at] = borg;
        n[at] = s.n;
        mean[at] = s.mean;
        m2[at] = s.m2;
        if (KIND == FM_SUMMARY) {
            lo[at] = s.lo;
            hi[at] = s.hi;
            nnf[at] = s.nnf;
            nz[at] = s.nz;
        }
    }
}

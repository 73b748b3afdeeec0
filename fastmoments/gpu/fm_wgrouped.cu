// Grouped weighted and higher-order moments in one pass: the RawModule behind
// fastmoments.gpu.group_weighted_moments (for few slots).
//
// fm_grouped.cu's scheme (read it first) with fm_wstate.cuh's states: blocks
// of values of an (N, m) C-contiguous array, split among warps, each warp
// keeping a private state per slot (group x column) in shared memory; the
// lanes of a step holding the same slot are one batch, reduced by the
// weighted two-pass of fm_wpush_group (around the slot's origin in the warp,
// chosen as there; corrected for the rounding of the batch's mean) in a tree
// over the lanes, then merged by its first lane with Pebay's formulas
// (fm_wmerge_into). The
// weight of value (row, column) is w[row * swr + column * swc]: a broadcast
// view of 1-D weights along rows is read as it is. Values of weight 0 (and
// NaN with skipna) are left out; non-finite values, and batches whose sums
// overflow, take fm_wpush1 one lane at a time, in lane order. Weights that
// are negative, NaN or infinite set *bad (when bad is given).
//
// The block's states, merged per slot in warp order, are written relative to
// the origin of the slot's heaviest warp (shift[o * C + c]); fm_wfinalize
// (fm_weighted.cu), given shift, takes the heaviest block's as the slot's
// origin and merges the C blocks of each slot.
#include "fm_wstate.cuh"
#include "fm_peers.cuh"

// Doubles of shared memory for the warps' states (a block's static 48 KiB),
// and per slot and warp: n, w, w2, mean, m2..m<ORDER>, origin.
#define FM_WGSHARED 6144
#define FM_WGFIELDS(ORDER) ((ORDER) + 4)

#define FM_WGF(base, f, o, S) ((base) + (long long)(f) * (S) + (o))

template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wgload(const double* base, long long o, long long S) {
    fm_wstate<ORDER> s;
    s.n = __double_as_longlong(*FM_WGF(base, 0, o, S));
    s.w = *FM_WGF(base, 1, o, S);
    s.w2 = *FM_WGF(base, 2, o, S);
    s.mean = *FM_WGF(base, 3, o, S);
#pragma unroll
    for (int q = 0; q < ORDER - 1; ++q) s.m[q] = *FM_WGF(base, 4 + q, o, S);
    return s;
}

template <int ORDER>
__device__ __forceinline__ void fm_wgstore(double* base, long long o, long long S, const fm_wstate<ORDER>& s) {
    *FM_WGF(base, 0, o, S) = __longlong_as_double(s.n);
    *FM_WGF(base, 1, o, S) = s.w;
    *FM_WGF(base, 2, o, S) = s.w2;
    *FM_WGF(base, 3, o, S) = s.mean;
#pragma unroll
    for (int q = 0; q < ORDER - 1; ++q) *FM_WGF(base, 4 + q, o, S) = s.m[q];
}

// Per-block partial states of S = G * m slots at o * C + c (slot-major), each
// mean relative to shift[o * C + c]. Grid: C blocks of 32 * W threads, W * S *
// FM_WGFIELDS(ORDER) <= FM_WGSHARED; chunk a multiple of 32 * W.
template <typename T, typename TW, int ORDER>
__global__ void __launch_bounds__(256)
    fm_wgroup_partial(const T* __restrict__ x, const TW* __restrict__ w, long long swr, long long swc,
                      const long long* __restrict__ lab, long long N, long long m, long long G, int skipna,
                      long long C, long long chunk, int* bad, double* shift, long long* n, double* sw, double* sw2,
                      double* mean, double* m2, double* m3, double* m4) {
    __shared__ double fm_wgbuf[FM_WGSHARED];
    const long long S = G * m;
    const int F = FM_WGFIELDS(ORDER);
    const int OG = F - 1;  // the origin's field
    const int W = blockDim.x >> 5;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long c = blockIdx.x;
    const long long total = N * m;

    for (long long j = threadIdx.x; j < (long long)W * S; j += blockDim.x) {
        double* base = fm_wgbuf + (j / S) * S * F;
        long long o = j % S;
        fm_wgstore<ORDER>(base, o, S, fm_wempty<ORDER>());
        *FM_WGF(base, OG, o, S) = fm_nan();  // no origin yet
    }
    __syncthreads();

    double* mine = fm_wgbuf + (long long)warp * S * F;
    const long long per = chunk / W;
    long long e0 = c * chunk + warp * per;
    long long e1 = min(total, e0 + per);
    bool flagged = false;
    for (; e0 < e1; e0 += 32) {  // uniform over the warp
        long long e = e0 + lane;
        long long slot = -1;
        double v = 0.0, wt = 0.0;
        if (e < e1) {
            long long row = m == 1 ? e : e / m;
            long long col = e - row * m;
            // Every weight is checked, those of values left out too (as on the CPU).
            wt = fm_weight_at(w, row * swr + col * swc);
            flagged = flagged || fm_weight_bad(wt);
            long long g = lab[row];
            if (g >= 0) {
                slot = g * m + col;
                v = fm_to_double(x[e]);
            }
        }
        bool taken = slot >= 0 && wt > 0.0 && !(skipna && v != v);
        bool finite = taken && fm_finite(v);
        unsigned peers = __match_any_sync(0xffffffffu, finite ? (int)slot : -1);  // 32-bit keys: slots fit in shared memory
        int first = __ffs(peers) - 1;
        // Around the slot's origin in this warp, chosen by its first batch (fm_peer_origin).
        double k = finite ? *FM_WGF(mine, OG, slot, S) : 0.0;
        bool need = finite && k != k;
        if (__any_sync(0xffffffffu, need)) {
            double o = fm_peer_origin(peers, first, finite, v);
            if (need) k = o;
        }
        // Twice where the batch outweighs the warp's state of its slot and lies
        // far from the slot's origin against its own spread (fm_far: the
        // origin came from a lighter first batch far off): then around a value
        // of its own, which becomes the slot's origin.
        double kb = k, mb, Wb, b[5];
        bool ok;
        for (int pass = 0;; ++pass) {
            double a[2] = {finite ? wt * (v - kb) : 0.0, finite ? wt : 0.0};
            fm_peer_sums<2>(peers, a);
            // Lanes outside any batch divide 0 by 0: NaN, never used.
            mb = __shfl_sync(0xffffffffu, a[0] / a[1], first);
            double d = (v - kb) - mb;
            double wd = finite ? wt * d : 0.0;
            b[0] = wd;
            b[1] = wd * d;
            b[2] = wd * d * d;
            b[3] = (wd * d * d) * d;
            b[4] = finite ? wt * wt : 0.0;
            fm_peer_sums<5>(peers, b);
            Wb = a[1];
            // Overflow of a sum (the lanes' values are finite): one value at a time instead.
            ok = fm_finite(mb) && fm_finite(Wb) && fm_finite(b[1]) && (ORDER < 3 || fm_finite(b[2])) &&
                 (ORDER < 4 || fm_finite(b[3]));
            if (pass == 1) break;
            bool lead = lane == first && finite && ok && Wb > *FM_WGF(mine, 1, slot, S);
            bool again = fm_far(lead, mb, b[1] / Wb, first);
            if (!__any_sync(0xffffffffu, again)) break;
            double o = fm_peer_origin(peers, first, finite, v);
            if (again) kb = o;
        }
        int batch_ok = __shfl_sync(0xffffffffu, (int)ok, first);  // every lane: not behind finite &&
        bool batched = finite && batch_ok != 0;
        if (batched && lane == first) {
            fm_wstate<ORDER> st = fm_wgload<ORDER>(mine, slot, S);
            double cc = b[0], s2 = b[1], s3 = b[2], s4 = b[3];
            double ee = cc / Wb;
            fm_wstate<ORDER> bs;
            bs.n = __popc(peers);
            bs.w = Wb;
            bs.w2 = b[4];
            bs.mean = mb + ee;
            bs.m[0] = s2 - cc * ee;
            if (ORDER >= 3) bs.m[1 < ORDER - 1 ? 1 : 0] = s3 - 3.0 * ee * s2 + 2.0 * ee * (ee * cc);
            if (ORDER >= 4)
                bs.m[2 < ORDER - 1 ? 2 : 0] = s4 - 4.0 * ee * s3 + 6.0 * ee * (ee * s2) - 3.0 * ee * (ee * (ee * cc));
            double org = k;  // bs.mean is relative to kb
            if (kb != k) {  // summed again (it outweighs the state): its origin becomes the slot's
                if (st.n > 0) st.mean += k - kb;
                org = kb;
            }
            *FM_WGF(mine, OG, slot, S) = org;
            fm_wmerge_into(st, bs);
            fm_wgstore<ORDER>(mine, slot, S, st);
        }
        __syncwarp();
        unsigned singles = __ballot_sync(0xffffffffu, taken && !batched);
        while (singles) {
            int lb = __ffs(singles) - 1;
            singles &= singles - 1;
            if (lane == lb) {
                fm_wstate<ORDER> st = fm_wgload<ORDER>(mine, slot, S);
                double o = *FM_WGF(mine, OG, slot, S);
                if (finite && o != o) {  // an overflowed batch: the origin chosen above
                    o = k;
                    *FM_WGF(mine, OG, slot, S) = o;
                }
                fm_wpush1<ORDER>(st, v - (o == o ? o : 0.0), wt);
                fm_wgstore<ORDER>(mine, slot, S, st);
            }
            __syncwarp();
        }
    }
    if (bad && flagged) *bad = 1;
    __syncthreads();

    // Relative to the origin of the slot's heaviest warp (the first of them on a tie).
    for (long long o = threadIdx.x; o < S; o += blockDim.x) {
        double borg = fm_nan(), most = 0.0;
        for (int q = 0; q < W; ++q) {
            const double* base = fm_wgbuf + (long long)q * S * F;
            double ww = *FM_WGF(base, 1, o, S), ow = *FM_WGF(base, OG, o, S);
            if (ow == ow && (borg != borg || ww > most)) {
                borg = ow;
                most = ww;
            }
        }
        if (borg != borg) borg = 0.0;
        fm_wstate<ORDER> s = fm_wempty<ORDER>();
        for (int q = 0; q < W; ++q) {
            const double* base = fm_wgbuf + (long long)q * S * F;
            fm_wstate<ORDER> ws = fm_wgload<ORDER>(base, o, S);
            double worg = *FM_WGF(base, OG, o, S);
            if (ws.n > 0 && worg == worg) ws.mean += worg - borg;
            fm_wmerge_into(s, ws);
        }
        long long at = o * C + c;
        shift[at] = borg;
        n[at] = s.n;
        sw[at] = s.w;
        sw2[at] = s.w2;
        mean[at] = s.mean;
        m2[at] = s.m[0];
        if (ORDER >= 3) m3[at] = s.m[1 < ORDER - 1 ? 1 : 0];
        if (ORDER >= 4) m4[at] = s.m[2 < ORDER - 1 ? 2 : 0];
    }
}

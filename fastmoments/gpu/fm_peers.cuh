// Reductions over the lanes of a warp that hold the same key: the batches of
// fm_grouped.cu and fm_wgrouped.cu (peers from __match_any_sync, sm_70+).
//
// The lanes of `peers` are ranked by lane number; in round r each lane of
// rank j * 2**(r+1) takes in the lane of rank j * 2**(r+1) + 2**r: a binary
// tree whose shape depends on the peer set alone, so sums have one order on
// every device and run. The first lane of `peers` ends with the result.
// Every lane of the warp calls these (each with its own peers): the shuffles
// and votes inside need the whole warp.
#ifndef FASTMOMENTS_FM_PEERS_CUH
#define FASTMOMENTS_FM_PEERS_CUH

#include "fm_state.cuh"

// The lanes of `peers` above the calling one, and the caller's rank.
__device__ __forceinline__ unsigned fm_peers_above(unsigned peers, int lane, int& rank) {
    rank = __popc(peers & ((1u << lane) - 1u));
    return peers & ~((2u << lane) - 1u);  // lane 31: 2u << 31 wraps to 0, leaving none above
}

// The tree itself: each round, every lane calls combine(from, take) with the
// lane whose value it takes in (take), or with its own lane (nothing to take:
// the shuffles inside need every lane all the same).
template <typename Combine>
__device__ __forceinline__ void fm_peer_tree(unsigned peers, Combine combine) {
    int lane = threadIdx.x & 31, rank;
    unsigned above = fm_peers_above(peers, lane, rank);
    while (__any_sync(0xffffffffu, above != 0u)) {
        int next = __ffs(above) - 1;
        combine(next < 0 ? lane : next, next >= 0);
        // Odd ranks have just been taken in by the lane below them.
        above &= ~__ballot_sync(0xffffffffu, rank & 1);
        rank >>= 1;
    }
}

// Sums of x[0..K-1] over the lanes of `peers`.
template <int K>
__device__ __forceinline__ void fm_peer_sums(unsigned peers, double (&x)[K]) {
    fm_peer_tree(peers, [&](int from, bool take) {
#pragma unroll
        for (int i = 0; i < K; ++i) {
            double t = __shfl_sync(0xffffffffu, x[i], from);
            if (take) x[i] += t;
        }
    });
}

// The extremes (fmin/fmax: NaN never wins).
__device__ __forceinline__ void fm_peer_extremes(unsigned peers, double& lo, double& hi) {
    fm_peer_tree(peers, [&](int from, bool take) {
        double tl = __shfl_sync(0xffffffffu, lo, from);
        double th = __shfl_sync(0xffffffffu, hi, from);
        if (take) {
            lo = fmin(lo, tl);
            hi = fmax(hi, th);
        }
    });
}

// The value of the lowest distance (ties: the lower lane's, so the choice
// depends on the peer set alone); dist never NaN.
__device__ __forceinline__ void fm_peer_nearest(unsigned peers, double& dist, double& value) {
    fm_peer_tree(peers, [&](int from, bool take) {
        double td = __shfl_sync(0xffffffffu, dist, from);
        double tv = __shfl_sync(0xffffffffu, value, from);
        if (take && td < dist) {
            dist = td;
            value = tv;
        }
    });
}

// An origin for the batch of `peers` (first lane `first`; `finite`: the
// caller's value v is one of the batch), as the CPU's tasks choose their
// shifts: the batch's value nearest its mean, so that neither an outlier nor
// a run of equal extremes becomes it, among the values usable as origins
// (|v| < 2**969: every finite value less it stays finite); 0 where none is.
// A value of the data, so that deviations of integer data stay exact.
// Returned to every lane of the batch.
__device__ __forceinline__ double fm_peer_origin(unsigned peers, int first, bool finite, double v) {
    double s[1] = {finite ? v : 0.0};
    fm_peer_sums<1>(peers, s);
    double mean = __shfl_sync(0xffffffffu, s[0] / __popc(peers), first);
    bool usable = finite && fm_origin_usable(v);
    // Where the sum overflowed, the value nearest 0.
    double dist = !usable ? fm_inf() : fabs(fm_finite(mean) ? v - mean : v);
    double value = usable ? v : 0.0;
    fm_peer_nearest(peers, dist, value);
    return __shfl_sync(0xffffffffu, value, first);
}

// Whether a batch summed around an origin lies so far from it against its
// own spread that more than ~10 bits of its deviations were lost (its mean
// less the origin, mb, past 2**10 times its root-mean-square deviation, msd
// being the mean square): decided by the batch's first lane where lead (the
// callers: where the batch outweighs its slot's state, so that summing it
// again moves the slot's origin to it; a batch of one value then always is),
// returned to every lane of the batch.
#define FM_FAR 0x1p20
__device__ __forceinline__ bool fm_far(bool lead, double mb, double msd, int first) {
    int far = lead && mb * mb > FM_FAR * msd;
    return __shfl_sync(0xffffffffu, far, first) != 0;
}

#endif

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

// The lanes of `peers` above the calling one, and the caller's rank.
__device__ __forceinline__ unsigned fm_peers_above(unsigned peers, int lane, int& rank) {
    rank = __popc(peers & ((1u << lane) - 1u));
    return peers & ~((2u << lane) - 1u);  // lane 31: 2u << 31 wraps to 0, leaving none above
}

// Sums of x[0..K-1] over the lanes of `peers`.
template <int K>
__device__ __forceinline__ void fm_peer_sums(unsigned peers, double (&x)[K]) {
    int lane = threadIdx.x & 31, rank;
    unsigned above = fm_peers_above(peers, lane, rank);
    while (__any_sync(0xffffffffu, above != 0u)) {
        int next = __ffs(above) - 1;
        int from = next < 0 ? lane : next;
#pragma unroll
        for (int i = 0; i < K; ++i) {
            double t = __shfl_sync(0xffffffffu, x[i], from);
            if (next >= 0) x[i] += t;
        }
        // Odd ranks have just been taken in by the lane below them.
        above &= ~__ballot_sync(0xffffffffu, rank & 1);
        rank >>= 1;
    }
}

// The same tree for the extremes (fmin/fmax: NaN never wins).
__device__ __forceinline__ void fm_peer_extremes(unsigned peers, double& lo, double& hi) {
    int lane = threadIdx.x & 31, rank;
    unsigned above = fm_peers_above(peers, lane, rank);
    while (__any_sync(0xffffffffu, above != 0u)) {
        int next = __ffs(above) - 1;
        int from = next < 0 ? lane : next;
        double tl = __shfl_sync(0xffffffffu, lo, from);
        double th = __shfl_sync(0xffffffffu, hi, from);
        if (next >= 0) {
            lo = fmin(lo, tl);
            hi = fmax(hi, th);
        }
        above &= ~__ballot_sync(0xffffffffu, rank & 1);
        rank >>= 1;
    }
}

#endif

// Weighted, higher-order moment states on the device (kinds "weighted2/3/4").
//
// Included (as text) into the RawModule of fm_weighted.cu and into the
// preamble of the weighted merge ElementwiseKernels; like fm_state.cuh, whose
// conversions and helpers it uses, it includes no system header and every
// name starts with fm_.
//
// A state of ORDER p is (n, w, w2, mean, m[0..p-2]): n values taken (weight
// > 0), w and w2 the sums of their weights and squared weights, and m[q-2] =
// sum(weight * (v - mean)**q) for q = 2..p. An empty state has n = 0, w = w2
// = 0, mean NaN and m = 0. Merging is Pebay (2008, eq. 3.1) with sums of
// weights in place of counts, written as fastmoments/_pebay.py writes it (the
// reference the kernels are tested against), including its non-finite rules.
//
// Means may be kept relative to an origin (a value of the data): a kernel
// subtracts it from every value it reads and adds it back when it stores a
// mean. The merges only see differences of means, so this changes nothing in
// exact arithmetic; in float64 it keeps the rounding of each stored mean at
// the scale of the spread rather than of the mean, which M3 and M4 (unlike
// M2) feel at first order through the next merge's mean difference.
#ifndef FASTMOMENTS_FM_WSTATE_CUH
#define FASTMOMENTS_FM_WSTATE_CUH

#include "fm_state.cuh"

template <int ORDER>
struct fm_wstate {
    long long n;
    double w;
    double w2;
    double mean;
    double m[ORDER - 1];  // M2, M3, M4
};

// Data without weights: every value weighs 1 (the pointer is null, never read).
struct fm_unit {
    unsigned char unused;
};

template <typename TW>
__device__ __forceinline__ double fm_weight_at(const TW* w, long long i) {
    return fm_to_double(w[i]);
}
template <>
__device__ __forceinline__ double fm_weight_at<fm_unit>(const fm_unit*, long long) {
    return 1.0;
}

// Negative, NaN or infinite weights are an error (reported by the caller).
__device__ __forceinline__ bool fm_weight_bad(double wt) { return !(wt >= 0.0 && wt <= 1.7976931348623157e308); }

template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wempty() {
    fm_wstate<ORDER> s;
    s.n = 0;
    s.w = 0.0;
    s.w2 = 0.0;
    s.mean = fm_nan();
#pragma unroll
    for (int q = 0; q < ORDER - 1; ++q) s.m[q] = 0.0;
    return s;
}

// Fold b into a: counts and sums of weights always add; an empty side is the
// identity whatever its other fields hold (as _pebay.merge_weighted).
template <int ORDER>
__device__ __forceinline__ void fm_wmerge_into(fm_wstate<ORDER>& a, const fm_wstate<ORDER>& b) {
    double Wa = a.w, Wb = b.w;
    double W = Wa + Wb;
    bool a_empty = a.n == 0;
    a.n += b.n;
    a.w = W;
    a.w2 += b.w2;
    if (b.n == 0) return;
    if (a_empty) {
        a.mean = b.mean;
#pragma unroll
        for (int q = 0; q < ORDER - 1; ++q) a.m[q] = b.m[q];
        return;
    }
    double ma = a.mean, mb = b.mean;
    double safe = W > 0.0 ? W : 1.0;
    double ra = Wa / safe, rb = Wb / safe;
    if (!(fm_finite(ma) && fm_finite(mb))) {
        // IEEE sums of the means (Inf, or NaN for both signs); no spread.
        a.mean = ma + mb;
#pragma unroll
        for (int q = 0; q < ORDER - 1; ++q) a.m[q] = fm_nan();
        return;
    }
    double d = mb - ma;
    if (!fm_finite(d)) {
        // Finite means of opposite signs near the range's end: their weighted
        // sum fits, the spread does not.
        a.mean = ma * ra + mb * rb;
        a.m[0] = fm_inf();
        if (ORDER >= 3) a.m[1 < ORDER - 1 ? 1 : 0] = fm_nan();
        if (ORDER >= 4) a.m[2 < ORDER - 1 ? 2 : 0] = fm_inf();
        return;
    }
    double d2 = d * d;
    double war = Wa * rb;
    double a2 = a.m[0], b2 = b.m[0];
    a.mean = Wb > Wa ? mb - d * ra : ma + d * rb;  // from the heavier side's mean (see fm_merge_moments_into)
    // d * (d * war), not d * d * war: d * d may pass the range where the term does not.
    a.m[0] = a2 + b2 + d * (d * war);
    if (ORDER >= 3) {
        const int i3 = 1 < ORDER - 1 ? 1 : 0;  // in range for every ORDER (unused below 3)
        double a3 = a.m[i3], b3 = b.m[i3];
        a.m[i3] = a3 + b3 + d2 * d * war * (ra - rb) + 3.0 * d * (ra * b2 - rb * a2);
        if (ORDER >= 4) {
            const int i4 = 2 < ORDER - 1 ? 2 : 0;
            double a4 = a.m[i4], b4 = b.m[i4], t4 = d2 * d2 * war * (ra * ra - ra * rb + rb * rb);
            double m4 = a4 + b4 + t4 + 6.0 * d2 * (ra * ra * b2 + rb * rb * a2) + 4.0 * d * (ra * b3 - rb * a3);
            // M4 >= 0: where a side's M4 or the spread term overflowed, inf - inf
            // from the M3 term (of either sign) is no reason for NaN (the CPU's
            // kernels give inf there).
            if (m4 != m4 && (a4 == fm_inf() || b4 == fm_inf() || t4 == fm_inf())) m4 = fm_inf();
            a.m[i4] = m4;
        }
    }
}

// One value v (already relative to the origin) of weight wt > 0.
template <int ORDER>
__device__ __forceinline__ void fm_wpush1(fm_wstate<ORDER>& s, double v, double wt) {
    fm_wstate<ORDER> one;
    one.n = 1;
    one.w = wt;
    one.w2 = wt * wt;
    one.mean = v;
    // One non-finite value has an undefined spread, as in the order-2 kinds.
    double m0 = fm_finite(v) ? 0.0 : fm_nan();
#pragma unroll
    for (int q = 0; q < ORDER - 1; ++q) one.m[q] = m0;
    fm_wmerge_into(s, one);
}

// FM_GROUP values and weights: values left out get weight 0 and value 0;
// the rest are folded in by a weighted two-pass in registers, corrected for
// the rounding of the group mean (the binomial shift of the central sums by
// e = sum(w * (v - m)) / W), then one merge. A group whose taken values or
// sums are not all finite takes the per-value path. Sets bad for weights
// that are negative, NaN or infinite.
template <int ORDER>
__device__ __forceinline__ void fm_wpush_group(fm_wstate<ORDER>& s, double* v, double* wt, bool skipna,
                                               bool& bad) {
    long long n = 0;
    double W = 0.0, W2 = 0.0, S = 0.0;
#pragma unroll
    for (int j = 0; j < FM_GROUP; ++j) {
        bad = bad || fm_weight_bad(wt[j]);
        bool take = wt[j] > 0.0 && !(skipna && v[j] != v[j]);
        wt[j] = take ? wt[j] : 0.0;
        v[j] = take ? v[j] : 0.0;
        n += take;
        W += wt[j];
        W2 += wt[j] * wt[j];
        S += wt[j] * v[j];
    }
    if (n == 0) return;
    double m = S / W;
    double c = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
#pragma unroll
    for (int j = 0; j < FM_GROUP; ++j) {
        double d = v[j] - m;
        double wd = wt[j] * d;
        c += wd;
        double wd2 = wd * d;
        s2 += wd2;
        if (ORDER >= 3) s3 += wd2 * d;
        if (ORDER >= 4) s4 += (wd2 * d) * d;
    }
    // A NaN or Inf taken (or an overflow, rare and safe) makes a sum non-finite.
    bool ok = fm_finite(m) && fm_finite(s2) && fm_finite(W) && (ORDER < 3 || fm_finite(s3)) &&
              (ORDER < 4 || fm_finite(s4));
    if (!ok) {
#pragma unroll
        for (int j = 0; j < FM_GROUP; ++j)
            if (wt[j] > 0.0) fm_wpush1(s, v[j], wt[j]);
        return;
    }
    double e = c / W;
    fm_wstate<ORDER> g;
    g.n = n;
    g.w = W;
    g.w2 = W2;
    g.mean = m + e;
    g.m[0] = s2 - c * e;
    if (ORDER >= 3) g.m[1 < ORDER - 1 ? 1 : 0] = s3 - 3.0 * e * s2 + 2.0 * e * (e * c);
    if (ORDER >= 4) g.m[2 < ORDER - 1 ? 2 : 0] = s4 - 4.0 * e * s3 + 6.0 * e * (e * s2) - 3.0 * e * (e * (e * c));
    fm_wmerge_into(s, g);
}

// Fold x[0], x[xs], ..., x[(cnt-1)*xs] with weights w[0], w[ws], ... into s,
// each value less origin.
template <typename T, typename TW, int ORDER>
__device__ __forceinline__ void fm_waccumulate(const T* x, long long xs, const TW* w, long long ws, long long cnt,
                                               double origin, bool skipna, fm_wstate<ORDER>& s, bool& bad) {
    long long i = 0;
    for (; i + FM_GROUP <= cnt; i += FM_GROUP) {
        double v[FM_GROUP], wt[FM_GROUP];
#pragma unroll
        for (int j = 0; j < FM_GROUP; ++j) {
            v[j] = fm_to_double(x[(i + j) * xs]) - origin;
            wt[j] = fm_weight_at(w, (i + j) * ws);
        }
        fm_wpush_group<ORDER>(s, v, wt, skipna, bad);
    }
    for (; i < cnt; ++i) {
        double v = fm_to_double(x[i * xs]) - origin;
        double wt = fm_weight_at(w, i * ws);
        bad = bad || fm_weight_bad(wt);
        if (wt > 0.0 && !(skipna && v != v)) fm_wpush1(s, v, wt);
    }
}

// The origin of a reduced run, as fm_origin: the median of the usable values
// (finite, |v| < 2**969 so that no value less it overflows) of positive
// weight among FM_ORIGIN_SAMPLES spread over the run, so that an outlier or a
// run of NaN at the start does not become it; where none is usable, the
// first such value among the first FM_ORIGIN_SCAN; else 0. Deterministic, so
// every thread and block of one output finds the same.
#ifndef FM_ORIGIN_SCAN  // also in fm_state.cuh
#define FM_ORIGIN_SCAN 16
#endif
template <typename T, typename TW>
__device__ __forceinline__ bool fm_worigin_take(const T* x, long long xs, const TW* w, long long ws, long long k,
                                                double& v) {
    double wt = fm_weight_at(w, k * ws);
    if (!(wt > 0.0) || fm_weight_bad(wt)) return false;
    v = fm_to_double(x[k * xs]);
    return fm_origin_usable(v);
}

template <typename T, typename TW>
__device__ __forceinline__ double fm_worigin(const T* x, long long xs, const TW* w, long long ws, long long K) {
    double c[FM_ORIGIN_SAMPLES];
    int n = 0;
    double v;
    if (K > 0) {
#pragma unroll
        for (int j = 0; j < FM_ORIGIN_SAMPLES; ++j)
            if (fm_worigin_take(x, xs, w, ws, (K - 1) * j / (FM_ORIGIN_SAMPLES - 1), v)) c[n++] = v;
    }
    if (n) return fm_median_small(c, n);
    long long scan = K < FM_ORIGIN_SCAN ? K : FM_ORIGIN_SCAN;
    for (long long k = 0; k < scan; ++k)
        if (fm_worigin_take(x, xs, w, ws, k, v)) return v;
    return 0.0;
}

// -- the elementwise merges of whole field arrays (cupy.ElementwiseKernel) -----

template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wstate_from(long long n, double w, double w2, double mean, double m2,
                                                           double m3, double m4) {
    fm_wstate<ORDER> s = fm_wempty<ORDER>();
    s.n = n;
    s.w = w;
    s.w2 = w2;
    if (n > 0) {
        s.mean = mean;
        s.m[0] = m2;
        if (ORDER >= 3) s.m[1 < ORDER - 1 ? 1 : 0] = m3;
        if (ORDER >= 4) s.m[2 < ORDER - 1 ? 2 : 0] = m4;
    }
    return s;
}

// The merged state of two states given as fields (m3, m4 unused below their order).
template <int ORDER>
__device__ __forceinline__ fm_wstate<ORDER> fm_wmerge_ew(long long na, double wa, double w2a, double ma, double m2a,
                                                         double m3a, double m4a, long long nb, double wb, double w2b,
                                                         double mb, double m2b, double m3b, double m4b) {
    fm_wstate<ORDER> a = fm_wstate_from<ORDER>(na, wa, w2a, ma, m2a, m3a, m4a);
    fm_wmerge_into(a, fm_wstate_from<ORDER>(nb, wb, w2b, mb, m2b, m3b, m4b));
    return a;
}

#endif  // FASTMOMENTS_FM_WSTATE_CUH

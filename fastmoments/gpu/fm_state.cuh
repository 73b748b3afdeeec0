// Mergeable moment states on the device: the one source of truth for the GPU wing.
//
// Included (as text, by fastmoments/gpu/_kernels.py) into the RawModule of
// fm_reduce.cu and into the preamble of the merge ElementwiseKernels, and
// compiled on its own by tests/test_cuda_sources.py. It includes no header so
// that it compiles the same under nvcc, under NVRTC and inside CuPy's own
// generated kernel sources; every name starts with fm_ to stay out of theirs.
//
// A state is (n, mean, m2) and, for summaries, also (lo, hi, nnf, nz): min,
// max, number of non-finite values and number of exact zeros. An empty state
// has n = 0, mean = NaN, m2 = 0, lo = hi = NaN, so it is written out as is.
//
// KIND: 0 moments, 1 moments skipping NaN, 2 summary (finite values only).
#ifndef FASTMOMENTS_FM_STATE_CUH
#define FASTMOMENTS_FM_STATE_CUH

#define FM_MOMENTS 0
#define FM_MOMENTS_SKIPNA 1
#define FM_SUMMARY 2
// Values a thread loads before folding them into its state: enough loads in
// flight to hide memory latency, and one division per group, not per value.
#define FM_GROUP 8

struct fm_state {
    long long n;
    double mean;
    double m2;
    double lo;
    double hi;
    long long nnf;
    long long nz;
};

// bool as its byte: a C++ bool may only hold 0 or 1, but a NumPy bool array
// can hold any byte (np.frombuffer, a uint8 array viewed as bool), and every
// nonzero byte is True there.
struct fm_bool {
    unsigned char bits;
};

// float16 as raw bits: no cuda_fp16.h, so the same text compiles everywhere.
struct fm_half {
    unsigned short bits;
};

__device__ __forceinline__ double fm_nan() { return __longlong_as_double(0x7ff8000000000000LL); }
__device__ __forceinline__ double fm_inf() { return __longlong_as_double(0x7ff0000000000000LL); }

// False for NaN and +-Inf (written without isfinite so no header is needed).
__device__ __forceinline__ bool fm_finite(double v) { return fabs(v) <= 1.7976931348623157e308; }

__device__ __forceinline__ fm_state fm_empty() {
    fm_state s;
    s.n = 0;
    s.mean = fm_nan();
    s.m2 = 0.0;
    s.lo = fm_nan();
    s.hi = fm_nan();
    s.nnf = 0;
    s.nz = 0;
    return s;
}

// -- conversion of one stored value to float64 --------------------------------

__device__ __forceinline__ double fm_to_double(fm_bool v) { return v.bits != 0 ? 1.0 : 0.0; }
__device__ __forceinline__ double fm_to_double(signed char v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(unsigned char v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(short v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(unsigned short v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(int v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(unsigned int v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(long long v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(unsigned long long v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(float v) { return (double)v; }
__device__ __forceinline__ double fm_to_double(double v) { return v; }

// IEEE binary16 -> binary64, exact for every input (subnormals, Inf, NaN).
__device__ __forceinline__ double fm_to_double(fm_half h) {
    unsigned int b = h.bits;
    unsigned long long sign = (unsigned long long)(b >> 15) << 63;
    unsigned int e = (b >> 10) & 0x1f;
    unsigned long long m = b & 0x3ff;
    if (e == 0) {  // zero or subnormal: m * 2^-24, exact in float64
        double v = (double)m * 5.9604644775390625e-08;
        return sign ? -v : v;
    }
    unsigned long long bits;
    if (e == 31) {
        bits = sign | (0x7ffULL << 52) | (m << 42);  // Inf, or NaN keeping its payload
    } else {
        bits = sign | ((unsigned long long)(e - 15 + 1023) << 52) | (m << 42);
    }
    return __longlong_as_double((long long)bits);
}

// -- merging (Chan, Golub & LeVeque) ------------------------------------------

// Fold the moments (nb, mb, qb), nb > 0, into s. Non-finite means follow the
// sum's IEEE rules and leave the spread undefined, as on the CPU.
__device__ __forceinline__ void fm_merge_moments_into(fm_state& s, long long nb, double mb, double qb) {
    if (s.n == 0) {
        s.n = nb;
        s.mean = mb;
        s.m2 = qb;
        return;
    }
    long long n = s.n + nb;
    if (!(fm_finite(s.mean) && fm_finite(mb))) {
        s.n = n;
        s.mean = s.mean + mb;
        s.m2 = fm_nan();
        return;
    }
    double d = mb - s.mean;
    double fb = (double)nb / (double)n;
    if (!fm_finite(d)) {
        // Finite means of opposite signs near the range's end: their difference
        // overflows, their weighted sum does not; the spread does (inf).
        s.mean = s.mean * ((double)s.n / (double)n) + mb * fb;
        s.m2 = fm_inf();
        s.n = n;
        return;
    }
    // From the heavier side's mean, which then moves least: a light state
    // far away (a grouped kernel's slot whose origin lies far from its later
    // values) does not round the result to its ulps.
    s.mean = nb > s.n ? mb - d * ((double)s.n / (double)n) : s.mean + d * fb;
    // d * (d * w), not d * d * w: with w = na * nb / n < 1, d * d may pass
    // the range where the term does not.
    s.m2 = s.m2 + qb + d * (d * ((double)s.n * fb));
    s.n = n;
}

// fmin/fmax return the other operand for NaN, so "no finite value" never wins.
template <int KIND>
__device__ __forceinline__ fm_state fm_merge(fm_state a, const fm_state& b) {
    if (b.n > 0) fm_merge_moments_into(a, b.n, b.mean, b.m2);
    if (KIND == FM_SUMMARY) {
        a.lo = fmin(a.lo, b.lo);
        a.hi = fmax(a.hi, b.hi);
        a.nnf += b.nnf;
        a.nz += b.nz;
    }
    return a;
}

// -- accumulating values ---------------------------------------------------------

// One value: a state of count one merged in (the slow path, for the groups
// that hold NaN/Inf and for the tails).
// The state's mean is kept relative to origin (see fm_origin); the extremes,
// zeros and non-finite counts are of v itself.
template <int KIND>
__device__ __forceinline__ void fm_push1(fm_state& s, double v, double origin) {
    if (KIND == FM_SUMMARY) {
        s.nz += (v == 0.0);
        if (!fm_finite(v)) {
            s.nnf += 1;
            return;
        }
        s.lo = fmin(s.lo, v);
        s.hi = fmax(s.hi, v);
        fm_merge_moments_into(s, 1, v - origin, 0.0);
        return;
    }
    if (KIND == FM_MOMENTS_SKIPNA && v != v) return;
    // One non-finite value has an undefined spread, as NumPy's var([inf]).
    fm_merge_moments_into(s, 1, v - origin, fm_finite(v) ? 0.0 : fm_nan());
}

// FM_GROUP values: corrected two-pass in registers, then one Chan merge. A
// group with a non-finite value (or NaN, for skipna) takes the slow path.
template <int KIND>
__device__ __forceinline__ void fm_push_group(fm_state& s, const double* v, double origin) {
    const double inv = 1.0 / FM_GROUP;
    double sum = 0.0;
    bool ok = true;
#pragma unroll
    for (int j = 0; j < FM_GROUP; ++j) {
        sum += v[j] - origin;
        if (KIND == FM_SUMMARY) ok = ok && fm_finite(v[j]);
    }
    double m = sum * inv;
    // A NaN or Inf makes the sum non-finite; so does overflow, rare and safe.
    ok = ok && fm_finite(m);
    if (!ok) {
#pragma unroll
        for (int j = 0; j < FM_GROUP; ++j) fm_push1<KIND>(s, v[j], origin);
        return;
    }
    double c = 0.0, q = 0.0;
#pragma unroll
    for (int j = 0; j < FM_GROUP; ++j) {
        double d = (v[j] - origin) - m;
        c += d;
        q += d * d;
    }
    if (KIND == FM_SUMMARY) {
        double lo = v[0], hi = v[0];
        long long nz = 0;
#pragma unroll
        for (int j = 0; j < FM_GROUP; ++j) {
            lo = fmin(lo, v[j]);
            hi = fmax(hi, v[j]);
            nz += (v[j] == 0.0);
        }
        s.lo = fmin(s.lo, lo);
        s.hi = fmax(s.hi, hi);
        s.nz += nz;
    }
    // Where q overflowed, so did m2 (inf, not the NaN of inf - c*c).
    fm_merge_moments_into(s, FM_GROUP, m + c * inv, fm_finite(q) ? q - c * (c * inv) : q);
}

// -- magnitude histograms (summaries with histogram=True) -------------------------
// The layout of fastmoments/_histogram.py: bin 1 + E - FM_HIST_MIN_EXP holds
// 2**E <= |v| < 2**(E+1) for E in [-149, 127], bin 0 what lies below, the last
// bin what lies above. The bin is the float64 exponent field, clamped; zeros,
// NaN and +-Inf go to the trash bin FM_HIST_BINS, never copied out.
#define FM_HIST_MIN_EXP (-149)
#define FM_HIST_MAX_EXP 127
#define FM_HIST_BINS (FM_HIST_MAX_EXP - FM_HIST_MIN_EXP + 3)
#define FM_HIST_OFFSET (1023 + FM_HIST_MIN_EXP - 1)

__device__ __forceinline__ int fm_hist_bin(double v) {
    unsigned long long bits = (unsigned long long)__double_as_longlong(v);
    int field = (int)((bits >> 52) & 0x7FF);
    int k = min(max(field - FM_HIST_OFFSET, 0), FM_HIST_BINS - 1);
    return (field == 0x7FF || (bits << 1) == 0) ? FM_HIST_BINS : k;
}

// Count v into a histogram: a block's shared one (shared atomics), or, for
// kernels without one, an output's row in global memory (global atomics).
__device__ __forceinline__ void fm_hist_count(unsigned int* sh, unsigned long long* row, double v) {
    int k = fm_hist_bin(v);
    if (sh)
        atomicAdd(sh + k, 1u);
    else if (row && k < FM_HIST_BINS)
        atomicAdd(row + k, 1ull);
}

// Fold p[0], p[stride], ..., p[(cnt-1)*stride] into s; with sh or row (see
// fm_hist_count) the values are also counted into a histogram, in the same pass.
// The origin of a reduced run x[0], x[xs], ..., K values: the median of the
// usable values among FM_ORIGIN_SAMPLES spread over the run (first, last and
// evenly between), so that an outlier or a run of NaN at the start does not
// become the origin; failing those, the first usable value of the first
// FM_ORIGIN_SCAN; else 0. Usable: finite and below FM_ORIGIN_MAX in
// magnitude, so that no value less it overflows (|v - origin| then rounds to
// at most the largest double). Deterministic, so every thread and block of
// one output finds the same one. States keep their means relative to it, so
// merges subtract means of the spread's size, not of the data's (at 1e9 with
// a spread of 1, M2 keeps ~14 digits instead of ~8).
#ifndef FM_ORIGIN_SCAN
#define FM_ORIGIN_SCAN 16
#endif
#define FM_ORIGIN_SAMPLES 5
#define FM_ORIGIN_MAX 0x1p969

__device__ __forceinline__ bool fm_origin_usable(double v) { return fabs(v) < FM_ORIGIN_MAX; }

// The median of the n <= FM_ORIGIN_SAMPLES values of c (the lower middle for even n).
__device__ __forceinline__ double fm_median_small(double* c, int n) {
    for (int a = 1; a < n; ++a)
        for (int b = a; b > 0 && c[b - 1] > c[b]; --b) {
            double t = c[b - 1];
            c[b - 1] = c[b];
            c[b] = t;
        }
    return c[(n - 1) / 2];
}

template <typename T>
__device__ __forceinline__ double fm_origin(const T* x, long long xs, long long K) {
    double c[FM_ORIGIN_SAMPLES];
    int n = 0;
    if (K > 0) {
#pragma unroll
        for (int j = 0; j < FM_ORIGIN_SAMPLES; ++j) {
            double v = fm_to_double(x[((K - 1) * j / (FM_ORIGIN_SAMPLES - 1)) * xs]);
            if (fm_origin_usable(v)) c[n++] = v;
        }
    }
    if (n) return fm_median_small(c, n);
    long long scan = K < FM_ORIGIN_SCAN ? K : FM_ORIGIN_SCAN;
    for (long long k = 0; k < scan; ++k) {
        double v = fm_to_double(x[k * xs]);
        if (fm_origin_usable(v)) return v;
    }
    return 0.0;
}

template <typename T, int KIND>
__device__ __forceinline__ void fm_accumulate(const T* p, long long stride, long long cnt, fm_state& s, double origin,
                                              unsigned int* sh = nullptr, unsigned long long* row = nullptr) {
    long long i = 0;
    const bool counting = sh || row;
    for (; i + FM_GROUP <= cnt; i += FM_GROUP) {
        double v[FM_GROUP];
#pragma unroll
        for (int j = 0; j < FM_GROUP; ++j) v[j] = fm_to_double(p[(i + j) * stride]);
        if (counting) {
#pragma unroll
            for (int j = 0; j < FM_GROUP; ++j) fm_hist_count(sh, row, v[j]);
        }
        fm_push_group<KIND>(s, v, origin);
    }
    if (counting)  // the tail (fewer than FM_GROUP values, read again from cache)
        for (long long t = i; t < cnt; ++t) fm_hist_count(sh, row, fm_to_double(p[t * stride]));
    for (; i < cnt; ++i) fm_push1<KIND>(s, fm_to_double(p[i * stride]), origin);
}

// -- the elementwise merges of whole field arrays (cupy.ElementwiseKernel) -----

__device__ __forceinline__ fm_state fm_state_from(long long n, double mean, double m2) {
    fm_state s = fm_empty();
    s.n = n;
    if (n > 0) {
        s.mean = mean;
        s.m2 = m2;
    }
    return s;
}

__device__ __forceinline__ fm_state fm_merge_moments_ew(long long na, double ma, double qa, long long nb,
                                                        double mb, double qb) {
    return fm_merge<FM_MOMENTS>(fm_state_from(na, ma, qa), fm_state_from(nb, mb, qb));
}

__device__ __forceinline__ fm_state fm_merge_summary_ew(long long na, double ma, double qa, double loa, double hia,
                                                        long long nnfa, long long nza, long long nb, double mb,
                                                        double qb, double lob, double hib, long long nnfb,
                                                        long long nzb) {
    fm_state a = fm_state_from(na, ma, qa);
    a.lo = loa;
    a.hi = hia;
    a.nnf = nnfa;
    a.nz = nza;
    fm_state b = fm_state_from(nb, mb, qb);
    b.lo = lob;
    b.hi = hib;
    b.nnf = nnfb;
    b.nz = nzb;
    return fm_merge<FM_SUMMARY>(a, b);
}

#endif  // FASTMOMENTS_FM_STATE_CUH

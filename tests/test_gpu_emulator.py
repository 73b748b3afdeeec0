"""The CUDA emulator of the GPU tests catches broken kernels.

Each case breaks the GPU wing's own kernel source in one place, as a slip of
the pen would (a barrier removed, a shuffle mask naming half the lanes, a
wrong shuffle offset, a loop bound off by one), and asserts that the emulated
run fails: the emulator raises, or the result differs from NumPy's, in at
least one of the three thread and block orders. The unbroken source passes
in every order. Runs only on the stand-in CuPy (tests/gpu_emu).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmoments as fm

cupy = pytest.importorskip("cupy")
pytestmark = pytest.mark.skipif(
    not getattr(cupy, "__fmemu__", False), reason="needs the CUDA emulator (FASTMOMENTS_GPU_EMULATOR=1 or CI=true)"
)

if getattr(cupy, "__fmemu__", False):
    from cupy import _emu
    from cupy._emu import EmulatorError

from fastmoments.gpu import _kernels, _sources

ORDERS = (0, 1, 2)  # forward, reverse, shuffled

# (what, text to find in fm_reduce.cu with fm_state.cuh inlined, its broken form)
BREAKS = [
    ("block barrier removed", "    if (lane == 0) warps[warp] = s;\n    __syncthreads();\n",
     "    if (lane == 0) warps[warp] = s;\n"),
    ("lane-kernel barrier removed", "    tile[threadIdx.y][threadIdx.x] = s;\n    __syncthreads();\n",
     "    tile[threadIdx.y][threadIdx.x] = s;\n"),
    ("shuffle mask of half the lanes", "o.n = __shfl_down_sync(0xffffffffu, s.n, offset);",
     "o.n = __shfl_down_sync(0x0000ffffu, s.n, offset);"),
    ("wrong shuffle offset", "for (int offset = 16; offset > 0; offset >>= 1)",
     "for (int offset = 8; offset > 0; offset >>= 1)"),
    ("off-by-one in the tail loop", "for (; i < cnt; ++i) fm_push1<KIND>",
     "for (; i <= cnt; ++i) fm_push1<KIND>"),
    ("off-by-one in the merge of partial states", "for (long long j = begin + lane; j < end; j += TPO)",
     "for (long long j = begin + lane; j <= end; j += TPO)"),
    ("chunk bound off by one", "long long end = min(K, (c + 1) * chunk);\n    long long first = c * chunk + threadIdx.x;",
     "long long end = min(K, (c + 1) * chunk + 1);\n    long long first = c * chunk + threadIdx.x;"),
]

RNG = np.random.default_rng(20261205)
CASES = [
    (RNG.standard_normal(100_003), None),  # segment kernel, several chunks, then fm_finalize
    (RNG.standard_normal((37, 300)), 1),  # segment-free: lane kernel over rows
    (RNG.standard_normal((3000, 40)), 0),  # lane kernel over columns, chunked, then fm_finalize
    (RNG.standard_normal(1001).astype(np.float32), None),
]


def _fails(source: str, monkeypatch) -> list[str]:
    """How the emulated reductions with ``source`` go wrong, per order (empty: they all pass)."""
    monkeypatch.setattr(_sources, "read_source", lambda path=_sources.REDUCE_SOURCE: source
                        if path == _sources.REDUCE_SOURCE else _sources.__dict__["_orig_read"](path))
    problems = []
    for mode in ORDERS:
        monkeypatch.setattr(_emu.settings, "mode", mode)
        _kernels._modules.clear()
        for x, axis in CASES:
            try:
                for skipna in (False, True):
                    got = fm.moments(cupy.asarray(x), axis=axis, skipna=skipna).to_numpy()
                    x64 = x.astype(np.float64)
                    ok = (
                        np.array_equal(got.count, np.full(np.shape(got.mean), x.size // max(np.size(got.mean), 1)))
                        and np.allclose(got.mean, x64.mean(axis=axis), rtol=1e-12, atol=1e-12)
                        and np.allclose(got.var(), x64.var(axis=axis), rtol=1e-10)
                    )
                    if not ok:
                        problems.append(f"order {mode}, shape {x.shape}, axis {axis}: wrong result")
                        break
            except EmulatorError as e:
                problems.append(f"order {mode}, shape {x.shape}, axis {axis}: {str(e)[:200]}")
    _kernels._modules.clear()
    return problems


@pytest.fixture(autouse=True)
def _keep_reader(monkeypatch):
    _sources.__dict__.setdefault("_orig_read", _sources.read_source)
    yield
    _kernels._modules.clear()


def test_unbroken_kernels_pass_in_every_order(monkeypatch):
    assert _fails(_sources.__dict__["_orig_read"](), monkeypatch) == []


@pytest.mark.parametrize("what, find, broken", BREAKS, ids=[b[0] for b in BREAKS])
def test_broken_kernel_fails(what, find, broken, monkeypatch):
    source = _sources.__dict__["_orig_read"]()
    assert source.count(find) == 1, f"the text to break is not in the source once: {find!r}"
    problems = _fails(source.replace(find, broken), monkeypatch)
    assert problems, f"{what}: the emulated run did not notice"


# -- the executor and the stand-in on small kernels of their own ----------------------------

KERNELS = r"""
extern "C" __global__ void where_am_i(long long* out) {
    long long t = threadIdx.x + blockDim.x * (threadIdx.y + (long long)blockDim.y * threadIdx.z);
    long long b = blockIdx.x + gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
    long long g = b * (blockDim.x * blockDim.y * blockDim.z) + t;
    out[6 * g + 0] = threadIdx.x; out[6 * g + 1] = threadIdx.y; out[6 * g + 2] = threadIdx.z;
    out[6 * g + 3] = blockIdx.x; out[6 * g + 4] = blockIdx.y; out[6 * g + 5] = blockIdx.z;
}

extern "C" __global__ void shuffles(const int* in, int* down, int* up, int* xr, int* bc, unsigned* vote,
                                    double* dd) {
    int t = threadIdx.x;
    int v = in[t];
    down[t] = __shfl_down_sync(0xffffffffu, v, 3);
    up[t] = __shfl_up_sync(0xffffffffu, v, 5, 16);
    xr[t] = __shfl_xor_sync(0xffffffffu, v, 6);
    bc[t] = __shfl_sync(0xffffffffu, v, 7, 8);
    vote[t] = __ballot_sync(0xffffffffu, v & 1);
    dd[t] = __shfl_down_sync(0xffffffffu, v * 0.5, 1);
}

extern "C" __global__ void block_sum(const double* x, double* out) {
    __shared__ double buf[256];
    buf[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        BARRIER;
    }
    if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

extern "C" __global__ void read_shared_first(long long* out) {
    __shared__ long long s;
    if (threadIdx.x == 0) {
        out[blockIdx.x] = s;
        s = blockIdx.x;
    }
}

extern "C" __global__ void divergent_barrier(int* out) {
    if (threadIdx.x < 16) __syncthreads();
    out[threadIdx.x] = 1;
}

extern "C" __global__ void shuffle_deadlock(int* out) {
    int v = threadIdx.x;
    if (threadIdx.x % 32 < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
    else __syncthreads();
    out[threadIdx.x] = v;
}

extern "C" __global__ void shuffle_from_exited(int* out) {
    int v = threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

extern "C" __global__ void mask_without_caller(int* out) {
    out[threadIdx.x] = __shfl_down_sync(0x1u, (int)threadIdx.x, 1);
}

extern "C" __global__ void write_past_end(double* out, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0;
}

extern "C" __global__ void takes_ints(int a, long long b, const double* p, double* out) {
    out[0] = a + b + p[0];
}

__shared__ double file_scope_acc;

extern "C" __global__ void file_scope_shared(const double* x, double* out) {
    __syncthreads();
    if (threadIdx.x == 0) file_scope_acc += x[blockIdx.x];  // never zeroed: garbage on a GPU
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = file_scope_acc;
}

extern "C" __global__ void block_order(unsigned long long* counter, unsigned long long* out) {
    if (threadIdx.x == 0) out[blockIdx.x] = atomicAdd(counter, 1);
}

extern "C" __global__ void mixed_intrinsics(int* out) {
    int lane = threadIdx.x % 32;
    if (lane < 16) out[threadIdx.x] = __shfl_down_sync(0xffffffffu, lane, 16);
    else out[threadIdx.x] = __ballot_sync(0xffffffffu, 1);
}

extern "C" __global__ void uninitialized(const double* x, double* out) {
    double acc;
    for (int i = 0; i < 4; ++i) acc += x[threadIdx.x * 4 + i];
    out[threadIdx.x] = acc;
}

extern "C" __global__ void deep_stack(double* out, int n) {
    volatile double buf[60000];  // 480 KB of local memory: past the emulated stack
    for (int i = 0; i < n; ++i) buf[i] = i;
    out[threadIdx.x] = buf[n - 1];
}

extern "C" __global__ void null_write(double* out) {
    double* p = out;
    if (threadIdx.x == 3) p = 0;
    p[threadIdx.x] = 1.0;
}

extern "C" __global__ void spin_on_flag(volatile int* flag, int* out) {
    if (threadIdx.x == 0) { while (*flag == 0) {} }
    if (threadIdx.x == 31) *flag = 1;
    out[threadIdx.x] = 1;
}

extern "C" __global__ void __launch_bounds__(64) bounded(int* out) {
    out[threadIdx.x] = (int)__syncthreads_count(threadIdx.x % 3 == 0);
}

extern "C" {
__global__ void in_block(unsigned* u, float* f) {
    atomicAdd(u, 1);
    atomicAdd(f, 1.0f);
}
}

extern "C" __global__ void match_any(const long long* keys, const int* vals, unsigned* out32, unsigned* out64) {
    // Lanes 0..23 only (a partial mask): 32-bit values, then 64-bit keys.
    if (threadIdx.x % 32 < 24) {
        out32[threadIdx.x] = __match_any_sync(0x00ffffffu, vals[threadIdx.x]);
        out64[threadIdx.x] = __match_any_sync(0x00ffffffu, keys[threadIdx.x]);
    }
}

extern "C" __global__ void partial_warp(int* out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}
"""


def _module(barrier="__syncthreads()"):
    return cupy.RawModule(code=KERNELS.replace("BARRIER", barrier))


@pytest.fixture(params=ORDERS, ids=["forward", "reverse", "shuffled"])
def order(request, monkeypatch):
    monkeypatch.setattr(_emu.settings, "mode", request.param)
    return request.param


def test_thread_and_block_indices_are_3d(order):
    grid, block = (3, 2, 2), (4, 3, 2)
    out = cupy.zeros(6 * 12 * 24, np.int64)
    _module().get_function("where_am_i")(grid, block, (out,))
    got = out.get().reshape(-1, 6)
    tz, ty, tx = np.meshgrid(range(2), range(3), range(4), indexing="ij")
    bz, by, bx = np.meshgrid(range(2), range(2), range(3), indexing="ij")
    t = np.stack([tx.ravel(), ty.ravel(), tz.ravel()], 1)
    b = np.stack([bx.ravel(), by.ravel(), bz.ravel()], 1)
    want = np.concatenate([np.tile(t, (len(b), 1)), np.repeat(b, len(t), 0)], 1)
    np.testing.assert_array_equal(got, want)


def test_shuffles_and_votes_follow_cuda(order):
    n = 64  # two warps
    vals = np.random.default_rng(1).integers(-1000, 1000, n).astype(np.int32)
    outs = [cupy.zeros(n, np.int32) for _ in range(4)] + [cupy.zeros(n, np.uint32), cupy.zeros(n, np.float64)]
    _module().get_function("shuffles")((1,), (n,), (cupy.asarray(vals), *outs))
    lane = np.arange(n) % 32
    base = np.arange(n) - lane

    down = vals[base + np.where(lane % 32 + 3 < 32, lane + 3, lane)]
    up = vals[base + np.where(lane % 16 >= 5, lane - 5, lane)]
    xr = vals[base + np.where((lane ^ 6) < (lane // 32 + 1) * 32, lane ^ 6, lane)]
    bc = vals[base + (lane // 8) * 8 + 7]
    vote = np.array([sum(int(vals[b + j] & 1) << j for j in range(32)) for b in base], np.uint32)
    dd = vals[base + np.where(lane + 1 < 32, lane + 1, lane)] * 0.5
    for got, want in zip(outs, (down, up, xr, bc, vote, dd)):
        np.testing.assert_array_equal(got.get(), want)


def test_match_any_follows_cuda(order):
    n = 64  # two warps, lanes 24..31 of each left out
    rng = np.random.default_rng(4)
    vals = rng.integers(0, 4, n).astype(np.int32)
    keys = rng.integers(-2, 3, n) * (1 << 40)  # equal in their low 32 bits: the whole key must count
    out32, out64 = cupy.zeros(n, np.uint32), cupy.zeros(n, np.uint32)
    _module().get_function("match_any")((1,), (n,), (cupy.asarray(keys), cupy.asarray(vals), out32, out64))
    for src, got in ((vals, out32.get()), (keys, out64.get())):
        for t in range(n):
            w, lane = divmod(t, 32)
            if lane >= 24:
                assert got[t] == 0
                continue
            want = sum(1 << j for j in range(24) if src[32 * w + j] == src[t])
            assert got[t] == want, (t, hex(got[t]), hex(want))


def test_block_reduction_with_barriers(order):
    x = np.random.default_rng(2).standard_normal(256 * 5)
    out = cupy.zeros(5)
    _module().get_function("block_sum")((5,), (256,), (cupy.asarray(x), out))
    np.testing.assert_allclose(out.get(), x.reshape(5, 256).sum(1), rtol=1e-12)


def test_a_missing_barrier_gives_a_wrong_sum_in_some_order(monkeypatch):
    x = np.random.default_rng(2).standard_normal(256 * 5)
    wrong = 0
    for mode in ORDERS:
        monkeypatch.setattr(_emu.settings, "mode", mode)
        out = cupy.zeros(5)
        _module(barrier="").get_function("block_sum")((5,), (256,), (cupy.asarray(x), out))
        wrong += not np.allclose(out.get(), x.reshape(5, 256).sum(1), rtol=1e-12)
    assert wrong


def test_new_memory_and_shared_memory_hold_garbage(order):
    g = cupy.empty(10, np.float64).get().view(np.uint8)
    assert np.all(g == 0x5A)
    out = cupy.zeros(4, np.int64)
    _module().get_function("read_shared_first")((4,), (32,), (out,))
    # every block reads garbage, never the previous block's value
    assert np.all(out.get().view(np.uint8) == 0x5A)


@pytest.mark.parametrize(
    "kernel, block, match",
    [
        ("divergent_barrier", 32, r"__syncthreads"),
        ("shuffle_deadlock", 32, r"deadlock in kernel shuffle_deadlock, block \(0, 0, 0\)"),
        ("shuffle_from_exited", 32, r"reads lane 16, which does not take part"),
        ("mask_without_caller", 32, r"mask 0x00000001(, which does not name the calling lane|\))"),
    ],
)
def test_kernel_faults_are_errors_naming_kernel_block_and_thread(kernel, block, match, order):
    out = cupy.zeros(block, np.int32)
    with pytest.raises(EmulatorError, match=match) as e:
        _module().get_function(kernel)((1,), (block,), (out,))
    assert kernel in str(e.value)


def test_writes_past_an_allocation_are_errors():
    out = cupy.zeros(100)
    with pytest.raises(EmulatorError, match="wrote outside"):
        _module().get_function("write_past_end")((1,), (128,), (out, np.int64(100)))


def test_launch_arguments_are_checked_against_the_signature():
    f = _module().get_function("takes_ints")
    p, out = cupy.ones(1), cupy.zeros(1)
    f((1,), (1,), (np.int32(2), np.int64(3), p, out))
    assert float(out[0]) == 6.0
    bad = [
        ((np.int64(2), np.int64(3), p, out), r"argument 0 is int64 \(8 bytes\).*32-bit"),
        ((np.int32(2), np.int32(3), p, out), r"argument 1 is int32"),
        ((np.int32(2), np.int64(3), np.ones(1), out), r"argument 2 is a ndarray"),
        ((np.int32(2), np.int64(3), cupy.ones(1, np.float32), out), r"float32 array.*64-bit floating"),
        ((np.int32(2), np.int64(3), np.uint64(12345), out), r"neither null nor an address"),
        ((np.int32(2), np.int64(3), p), r"takes 4 arguments, 3 given"),
        ((np.int32(2), cupy.ones(1, np.int64), p, out), r"device array, but the parameter is a 64-bit"),
    ]
    for args, match in bad:
        with pytest.raises(EmulatorError, match=match):
            f((1,), (1,), args)
    for grid, block, match in [((1,), (1025,), "at most 1024"), ((1, 65536), (1,), "65535"),
                               ((0,), (1,), "positive"), ((1,), (32, 32, 2), "at most 1024")]:
        with pytest.raises(EmulatorError, match=match):
            f(grid, block, (np.int32(2), np.int64(3), p, out))


def test_device_arrays_are_not_host_arrays():
    a = cupy.arange(5.0)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(5)
    assert isinstance(a.sum(), cupy.ndarray) and a.sum().ndim == 0
    np.testing.assert_array_equal((a * 2 + 1).get(), np.arange(5.0) * 2 + 1)


def test_elementwise_kernel_broadcasts_like_cupy():
    k = cupy.ElementwiseKernel("int64 a, float64 b", "float64 c, int64 d", "c = a * b + i; d = a - 1;",
                               "fmemu_test_ew")
    a = np.arange(3, dtype=np.int64).reshape(3, 1)
    b = np.linspace(0, 1, 4)
    c, d = k(cupy.asarray(a), cupy.asarray(b))
    np.testing.assert_array_equal(c.get(), a * b + np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(d.get(), np.broadcast_to(a - 1, (3, 4)))


def test_file_scope_shared_memory_holds_garbage_in_every_block(order):
    out = cupy.zeros(4)
    _module().get_function("file_scope_shared")((4,), (32,), (cupy.ones(4), out))
    # garbage + 1 in every block, never the previous block's running sum
    assert len(set(out.get().tolist())) == 1 and out.get()[0] != 1.0


def test_orders_are_pinned_per_launch_and_vary_otherwise(monkeypatch):
    def run():
        counter, out = cupy.zeros(1, np.uint64), cupy.zeros(16, np.uint64)
        _module().get_function("block_order")((16,), (32,), (counter, out))
        return out.get().tolist()

    monkeypatch.setattr(_emu.settings, "mode", 0)
    assert run() == list(range(16))
    monkeypatch.setattr(_emu.settings, "mode", 1)
    assert run() == list(range(15, -1, -1))
    monkeypatch.setattr(_emu.settings, "mode", -1)
    seen = {tuple(run()) for _ in range(6)}
    assert len(seen) >= 3  # forward, reverse and shuffles, launch by launch


def test_lanes_in_different_intrinsics_are_an_error(order):
    with pytest.raises(EmulatorError, match="must run the same intrinsic"):
        _module().get_function("mixed_intrinsics")((1,), (32,), (cupy.zeros(32, np.int32),))


def test_uninitialized_locals_read_garbage():
    x = cupy.ones(4 * 32)
    out = cupy.zeros(32)
    _module().get_function("uninitialized")((1,), (32,), (x, out))
    assert not np.any(out.get() == 4.0)


@pytest.mark.parametrize(
    "kernel, args, match",
    [
        ("deep_stack", lambda: (cupy.zeros(32), np.int32(60000)), "stack overflow"),
        ("null_write", lambda: (cupy.zeros(32),), r"thread \(3, 0, 0\): invalid memory access"),
    ],
)
def test_memory_faults_are_errors_not_crashes(kernel, args, match):
    with pytest.raises(EmulatorError, match=match):
        _module().get_function(kernel)((1,), (32,), args())
    # and the emulator still works afterwards
    test_block_reduction_with_barriers(0)


def test_a_thread_spinning_on_another_is_stopped_by_the_watchdog(monkeypatch):
    monkeypatch.setattr(_emu.settings, "mode", 0)
    monkeypatch.setattr(_emu.settings, "timeout", 1.0)
    with pytest.raises(EmulatorError, match="ran past 1 s"):
        _module().get_function("spin_on_flag")((1,), (32,), (cupy.zeros(1, np.int32), cupy.zeros(32, np.int32)))


def test_launch_bounds_and_barrier_counts():
    f = _module().get_function("bounded")
    out = cupy.zeros(64, np.int32)
    f((1,), (64,), (out,))
    np.testing.assert_array_equal(out.get(), np.full(64, len(range(0, 64, 3))))
    with pytest.raises(EmulatorError, match=r"__launch_bounds__\(64\)"):
        f((1,), (128,), (cupy.zeros(128, np.int32),))


def test_cuda_forms_the_emulator_accepts():
    u, f = cupy.zeros(1, np.uint32), cupy.zeros(1, np.float32)
    _module().get_function("in_block")((2,), (32,), (u, f))
    assert int(u[0]) == 64 and float(f[0]) == 64.0
    # lanes past the block's last thread count as exited, as on a GPU
    out = cupy.zeros(48, np.int32)
    _module().get_function("partial_warp")((1,), (48,), (out,))
    np.testing.assert_array_equal(out.get(), np.arange(48) ^ 1)


def test_too_much_shared_memory_is_refused():
    code = "extern \"C\" __global__ void big(double* o) { __shared__ double a[5000]; __shared__ double b[5000];" \
           " a[threadIdx.x] = 1; b[threadIdx.x] = 2; o[threadIdx.x] = a[threadIdx.x] + b[threadIdx.x]; }"
    with pytest.raises(EmulatorError, match="static shared memory"):
        cupy.RawModule(code=code)


def test_views_alias_as_in_cupy():
    a = cupy.zeros(4)
    v = a[1]
    a[1] = 5.0
    assert float(v) == 5.0 and v.ndim == 0
    k = cupy.ElementwiseKernel("int64 n", "float64 y", "y = n * 0.5;", "fmemu_test_types")
    with pytest.raises(TypeError, match="mismatched"):
        k(cupy.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(k(cupy.arange(3, dtype=np.int64)).get(), np.arange(3) * 0.5)

"""cuflow/kernels/gpu.py (our CUDA kernels) against cpu.py and naive float64 NumPy references, on a GPU.

Every primitive of ``gpu.py`` runs on the same inputs as its ``cpu.py`` twin and must agree with it; matmul,
convolution and pooling are also checked against the slow, obviously-correct float64 references below.
The shapes target the kernels' edges: sizes 1, odd and prime, K = 0 and K < GEMM_TILE, several tiles plus a
remainder, broadcast batches, more batches than CUDA's gridDim.z limit (65535), non-contiguous inputs, strided,
dilated and asymmetrically padded convolutions, split-K backward filter, overlapping and padded pooling windows
and max-pooling ties (the first max in row-major window order takes the gradient).

Shapes are kept tiny on purpose: this module also runs under ``compute-sanitizer`` (memcheck, racecheck) and
under the CPU emulator of CUDA. Set ``CUFLOW_EXACT_ALLOC=1`` to allocate every array with its own exact-size
``cudaMalloc`` (no memory pool), so memcheck sees an overrun past the end of an array.
"""
import os

import numpy as np
import pytest

from cuflow.kernels import cpu, cuda

pytestmark = pytest.mark.gpu

if cuda.gpu_count() == 0:
    pytest.skip(f"no GPU: {cuda.unavailable_reason()}", allow_module_level=True)

from cuflow.kernels import gpu  # noqa: E402  (importing gpu.py needs a GPU)

cp = gpu.cupy  # the CuPy gpu.py uses (a stand-in under the mock GPU)

# Largest allowed |gpu - expected|, as a fraction of max(1, max |expected|). float32: accumulation error of
# fp32 dot products; float64: the same at double precision; float16: computed in float32, rounded to half.
TOLERANCE = {
    np.dtype(np.float16): 2e-2,
    np.dtype(np.float32): 1e-5,
    np.dtype(np.float64): 1e-12,
    np.dtype(np.int32): 0,
}
FLOATS = [pytest.param(np.dtype(np.float32), id="f32"), pytest.param(np.dtype(np.float64), id="f64")]
ZERO = ((0, 0), (0, 0))


@pytest.fixture(scope="module", autouse=True)
def exact_alloc():
    """With CUFLOW_EXACT_ALLOC=1, one exact-size cudaMalloc per array (no pool) while this module runs."""
    if os.environ.get("CUFLOW_EXACT_ALLOC") != "1":
        yield
        return
    get_allocator = getattr(cp.cuda, "get_allocator", None)
    previous = get_allocator() if get_allocator else cp.get_default_memory_pool().malloc
    cp.cuda.set_allocator(None)
    try:
        yield
    finally:
        cp.cuda.Device().synchronize()  # a fault of the last test surfaces here, before the allocator changes
        cp.cuda.set_allocator(previous)


# ---------------------------------------------------------------- checking

def assert_close(got, want, dtype, what):
    """``got`` (a device array from gpu.py) has ``want``'s shape, ``dtype``, and values within TOLERANCE."""
    assert isinstance(got, cp.ndarray), f"{what}: gpu.py returned {type(got).__name__}, not a device array"
    got = cp.asnumpy(got)
    dtype = np.dtype(dtype)
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    want = np.asarray(want, dtype=np.float64)
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max(initial=0.0)))
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=TOLERANCE[dtype] * scale,
                               equal_nan=True, err_msg=f"{what} (scale {scale:g})")


def check(got, want_cpu, want_ref, dtype):
    """GPU result against cpu.py's on the same input, and against the float64 reference (if given)."""
    assert_close(got, np.asarray(want_cpu), dtype, "gpu vs cpu.py")
    if want_ref is not None:
        assert_close(got, want_ref, dtype, "gpu vs float64 reference")


def rand(rng, shape, dtype):
    """Standard normal values rounded to ``dtype``: (array in dtype, the same values in float64)."""
    x = rng.standard_normal(shape).astype(dtype)
    return x, x.astype(np.float64)


# ---------------------------------------------------------------- float64 references

def out_size(size, k, stride, pads, dilation=1):
    return (size + pads[0] + pads[1] - ((k - 1) * dilation + 1)) // stride + 1


def ref_conv2d(x, w, s, p, d):
    n, h, wd, _ = x.shape
    kh, kw, _, f = w.shape
    oh, ow = out_size(h, kh, s[0], p[0], d[0]), out_size(wd, kw, s[1], p[1], d[1])
    xp = np.pad(x, ((0, 0), p[0], p[1], (0, 0)))
    out = np.zeros((n, oh, ow, f))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i * d[0]:i * d[0] + (oh - 1) * s[0] + 1:s[0],
                      j * d[1]:j * d[1] + (ow - 1) * s[1] + 1:s[1]] @ w[i, j]
    return out


def ref_conv2d_grads(x, w, dy, s, p, d):
    """(dx, dw) of conv2d by scattering dy through every kernel offset."""
    _, h, wd, _ = x.shape
    kh, kw, _, _ = w.shape
    _, oh, ow, _ = dy.shape
    xp = np.pad(x, ((0, 0), p[0], p[1], (0, 0)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            cells = (slice(None), slice(i * d[0], i * d[0] + (oh - 1) * s[0] + 1, s[0]),
                     slice(j * d[1], j * d[1] + (ow - 1) * s[1] + 1, s[1]))
            dxp[cells] += dy @ w[i, j].T
            dw[i, j] = np.einsum("nhwc,nhwf->cf", xp[cells], dy)
    return dxp[:, p[0][0]:p[0][0] + h, p[1][0]:p[1][0] + wd], dw


def ref_pool_windows(shape, k, s, p):
    """Yield (oh, ow, rows, cols): each output cell's window, clipped to the real (non-padding) input."""
    _, h, wd, _ = shape
    for i in range(out_size(h, k[0], s[0], p[0])):
        for j in range(out_size(wd, k[1], s[1], p[1])):
            h0, w0 = i * s[0] - p[0][0], j * s[1] - p[1][0]
            yield i, j, slice(max(h0, 0), min(h0 + k[0], h)), slice(max(w0, 0), min(w0 + k[1], wd))


def ref_pool(x, k, s, p, mode):
    n, h, wd, c = x.shape
    out = np.zeros((n, out_size(h, k[0], s[0], p[0]), out_size(wd, k[1], s[1], p[1]), c))
    for i, j, rows, cols in ref_pool_windows(x.shape, k, s, p):
        win = x[:, rows, cols]
        out[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return out


def ref_pool_backward(x, out, dy, k, s, p, mode):
    """dx of pooling; for max, each window's gradient goes to its first cell (row-major) equal to its max."""
    n, _, _, c = x.shape
    dx = np.zeros(x.shape)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i, j, rows, cols in ref_pool_windows(x.shape, k, s, p):
        win = x[:, rows, cols]
        if mode == "avg":
            dx[:, rows, cols] += dy[:, i, j][:, None, None] / (win.shape[1] * win.shape[2])
            continue
        equal = win.reshape(n, -1, c) == out[:, i, j][:, None]    # NaN max: no cell equals it, no gradient
        first = equal.argmax(axis=1)
        r, q = np.divmod(first, win.shape[2])
        np.add.at(dx, (nn, rows.start + r, cols.start + q, cc), np.where(equal.any(axis=1), dy[:, i, j], 0))
    return dx


# ---------------------------------------------------------------- matmul

MATMUL_SHAPES = [  # (M, N, K); GEMM_TILE is 16
    pytest.param((1, 1, 1), id="1x1x1"),
    pytest.param((1, 7, 3), id="row"),
    pytest.param((5, 1, 2), id="column"),
    pytest.param((3, 5, 0), id="K0"),
    pytest.param((17, 13, 5), id="odd-K5"),
    pytest.param((16, 16, 16), id="one-tile"),
    pytest.param((37, 41, 53), id="primes-tiles+rem"),
]
TRANSPOSES = [pytest.param((False, False), id="NN"), pytest.param((True, False), id="TN"),
              pytest.param((False, True), id="NT"), pytest.param((True, True), id="TT")]


def matmul_operands(rng, batch_a, batch_b, m, n, k, ta, tb, dtype):
    """Stored operands for op(a) (M, K) and op(b) (K, N), and op(a), op(b) in float64."""
    a, a64 = rand(rng, batch_a + ((k, m) if ta else (m, k)), dtype)
    b, b64 = rand(rng, batch_b + ((n, k) if tb else (k, n)), dtype)
    return a, b, (a64.swapaxes(-1, -2) if ta else a64), (b64.swapaxes(-1, -2) if tb else b64)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("transposes", TRANSPOSES)
@pytest.mark.parametrize("shape", MATMUL_SHAPES)
def test_matmul(shape, transposes, dtype, rng):
    (m, n, k), (ta, tb) = shape, transposes
    a, b, op_a, op_b = matmul_operands(rng, (), (), m, n, k, ta, tb, dtype)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=ta, transpose_b=tb)
    check(got, cpu.matmul(a, b, transpose_a=ta, transpose_b=tb), op_a @ op_b, dtype)


BATCH_CASES = [  # batch shapes of a and b, (M, N, K)
    pytest.param((2, 1), (3,), (5, 4, 3), id="broadcast-both"),
    pytest.param((), (4,), (5, 6, 3), id="shared-a"),  # one matrix for every batch: stride 0
    pytest.param((2, 3), (2, 3), (7, 5, 9), id="4d"),
    pytest.param((3, 1), (1, 5), (4, 3, 2), id="cross-broadcast"),
    pytest.param((0,), (), (4, 3, 2), id="empty-batch"),
]


@pytest.mark.parametrize("transposes", TRANSPOSES)
@pytest.mark.parametrize("batch_a, batch_b, mnk", BATCH_CASES)
def test_matmul_batched(batch_a, batch_b, mnk, transposes, rng):
    (ta, tb), dtype = transposes, np.dtype(np.float64)
    a, b, op_a, op_b = matmul_operands(rng, batch_a, batch_b, *mnk, ta, tb, dtype)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_a=ta, transpose_b=tb)
    check(got, cpu.matmul(a, b, transpose_a=ta, transpose_b=tb), np.matmul(op_a, op_b), dtype)


@pytest.mark.slow_on_mock("65535 emulated blocks take ~4 minutes under ThreadSanitizer", modes=("racecheck",))
def test_matmul_more_batches_than_grid_z(rng):
    """70000 batches > CUDA's 65535 limit on gridDim.z: blocks loop over batches. Tiny matrices, ~2 MB in all."""
    dtype = np.dtype(np.float32)
    a, a64 = rand(rng, (70000, 2, 2), dtype)
    b, b64 = rand(rng, (70000, 2, 1), dtype)
    check(gpu.matmul(cp.asarray(a), cp.asarray(b)), cpu.matmul(a, b), np.matmul(a64, b64), dtype)


@pytest.mark.parametrize("layout", ["strided-rows", "transposed-broadcast-views"])
def test_matmul_noncontiguous(layout, rng):
    dtype = np.dtype(np.float64)
    a_full, _ = rand(rng, (20, 30), dtype)
    b_full, _ = rand(rng, (40, 30), dtype)
    a_dev, b_dev = cp.asarray(a_full), cp.asarray(b_full)
    if layout == "strided-rows":  # every other row of a; b a transposed view (column-major)
        a, b, a_d, b_d, flags = a_full[::2], b_full[::2].T, a_dev[::2], b_dev[::2].T, {}
        want = a @ b
    else:  # a.T read back with transpose_a; b a zero-stride batch broadcast of a transposed view
        a, a_d = a_full.T, a_dev.T
        b, b_d = np.broadcast_to(b_full.T, (3, 30, 40)), cp.broadcast_to(b_dev.T, (3, 30, 40))
        flags = dict(transpose_a=True)
        want = np.matmul(a_full, b)
    assert not a_d.flags.c_contiguous and not b_d.flags.c_contiguous
    check(gpu.matmul(a_d, b_d, **flags), cpu.matmul(a, b, **flags), want, dtype)


def test_matmul_float16(rng):
    dtype = np.dtype(np.float16)
    a, a64 = rand(rng, (9, 21), dtype)
    b, b64 = rand(rng, (7, 21), dtype)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_b=True)
    check(got, cpu.matmul(a, b, transpose_b=True), a64 @ b64.T, dtype)


def test_matmul_int32(rng):
    """Integer matmul takes CuPy's path, and must still match cpu.py exactly."""
    a = rng.integers(-5, 5, (4, 6)).astype(np.int32)
    b = rng.integers(-5, 5, (5, 6)).astype(np.int32)
    got = gpu.matmul(cp.asarray(a), cp.asarray(b), transpose_b=True)
    check(got, cpu.matmul(a, b, transpose_b=True), a.astype(np.float64) @ b.T, np.int32)


# ---------------------------------------------------------------- conv2d

CONV_CASES = [  # (N, H, W, C), (KH, KW, F), strides, padding ((top, bottom), (left, right)), dilations
    pytest.param((1, 1, 1, 1), (1, 1, 1), (1, 1), ZERO, (1, 1), id="1x1x1"),
    pytest.param((2, 5, 5, 3), (3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), id="same-pad"),
    pytest.param((2, 7, 6, 3), (3, 2, 5), (2, 2), ZERO, (1, 1), id="stride2"),
    pytest.param((1, 8, 9, 2), (3, 3, 17), (2, 3), ((1, 2), (0, 3)), (1, 1), id="asym-pad-stride23"),
    pytest.param((3, 9, 10, 5), (3, 3, 3), (1, 2), ((2, 2), (1, 1)), (2, 3), id="dilation23"),
    pytest.param((2, 11, 7, 1), (2, 3, 1), (2, 1), ((2, 0), (1, 2)), (2, 2), id="dilation2-asym-pad"),
    pytest.param((2, 3, 3, 2), (5, 5, 3), (1, 1), ((2, 2), (2, 2)), (1, 1), id="kernel>input"),
    pytest.param((2, 6, 6, 4), (2, 2, 6), (3, 3), ((0, 1), (0, 1)), (1, 1), id="stride>kernel"),
    # implicit GEMM M = 2*7*9 = 126, N = F = 37, K = 3*3*7 = 63: several tiles plus a remainder on each side
    pytest.param((2, 9, 11, 7), (3, 3, 37), (1, 1), ZERO, (1, 1), id="tiles+rem"),
    # backward filter reduces over N*OH*OW = 3125 >= 3 * gpu.SPLIT_K_MIN_CHUNK (1024): split-K into 3 slices,
    # the last one shorter
    pytest.param((5, 27, 27, 2), (3, 3, 3), (1, 1), ZERO, (1, 1), id="split-K"),
]
CONV_PRIMITIVES = ["conv2d", "conv2d_backward_input", "conv2d_backward_filter"]


def run_conv(primitive, x, w, dy, geometry, xp):
    """One conv primitive on (x, w, dy) through module ``xp`` (gpu or cpu); shapes taken from x and w."""
    if primitive == "conv2d":
        return xp.conv2d(x, w, **geometry)
    if primitive == "conv2d_backward_input":
        return xp.conv2d_backward_input(dy, w, tuple(x.shape), **geometry)
    return xp.conv2d_backward_filter(x, dy, tuple(w.shape), **geometry)


def conv_refs(primitive, x64, w64, dy64, geometry):
    s, p, d = geometry["strides"], geometry["padding"], geometry["dilations"]
    if primitive == "conv2d":
        return ref_conv2d(x64, w64, s, p, d)
    dx, dw = ref_conv2d_grads(x64, w64, dy64, s, p, d)
    return dx if primitive == "conv2d_backward_input" else dw


def conv_inputs(rng, xshape, kshape, geometry, dtype):
    (n, h, wd, c), (kh, kw, f) = xshape, kshape
    s, p, d = geometry["strides"], geometry["padding"], geometry["dilations"]
    oh, ow = out_size(h, kh, s[0], p[0], d[0]), out_size(wd, kw, s[1], p[1], d[1])
    return rand(rng, xshape, dtype), rand(rng, (kh, kw, c, f), dtype), rand(rng, (n, oh, ow, f), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xshape, kshape, strides, padding, dilations", CONV_CASES)
@pytest.mark.parametrize("primitive", CONV_PRIMITIVES)
def test_conv2d(primitive, xshape, kshape, strides, padding, dilations, dtype, rng):
    geometry = dict(strides=strides, padding=padding, dilations=dilations)
    (x, x64), (w, w64), (dy, dy64) = conv_inputs(rng, xshape, kshape, geometry, dtype)
    got = run_conv(primitive, cp.asarray(x), cp.asarray(w), cp.asarray(dy), geometry, gpu)
    check(got, run_conv(primitive, x, w, dy, geometry, cpu), conv_refs(primitive, x64, w64, dy64, geometry), dtype)


@pytest.mark.parametrize("primitive", CONV_PRIMITIVES)
def test_conv2d_float16(primitive, rng):
    geometry = dict(strides=(1, 1), padding=((1, 1), (0, 0)), dilations=(1, 1))
    dtype = np.dtype(np.float16)
    (x, x64), (w, w64), (dy, dy64) = conv_inputs(rng, (2, 6, 6, 3), (3, 3, 4), geometry, dtype)
    got = run_conv(primitive, cp.asarray(x), cp.asarray(w), cp.asarray(dy), geometry, gpu)
    check(got, run_conv(primitive, x, w, dy, geometry, cpu), conv_refs(primitive, x64, w64, dy64, geometry), dtype)


@pytest.mark.parametrize("primitive", CONV_PRIMITIVES)
def test_conv2d_noncontiguous(primitive, rng):
    """x is every other row of a taller image, w and dy are axis-swapped views: gpu.py must not read raw memory."""
    geometry = dict(strides=(2, 1), padding=((1, 0), (0, 1)), dilations=(1, 1))
    dtype = np.dtype(np.float64)
    (x, x64), (w, w64), (dy, dy64) = conv_inputs(rng, (2, 5, 6, 3), (3, 3, 4), geometry, dtype)
    x_store = np.full((2, 10, 6, 3), np.nan)            # x_store[:, ::2] == x; the rows between are NaN
    x_store[:, ::2] = x
    w_store = np.ascontiguousarray(w.swapaxes(2, 3))   # w_store.swapaxes(2, 3) == w
    dy_store = np.ascontiguousarray(dy.swapaxes(1, 2))  # dy_store.swapaxes(1, 2) == dy
    x_h, w_h, dy_h = x_store[:, ::2], w_store.swapaxes(2, 3), dy_store.swapaxes(1, 2)
    x_d = cp.asarray(x_store)[:, ::2]
    w_d, dy_d = cp.asarray(w_store).swapaxes(2, 3), cp.asarray(dy_store).swapaxes(1, 2)
    assert not (x_d.flags.c_contiguous or w_d.flags.c_contiguous or dy_d.flags.c_contiguous)
    got = run_conv(primitive, x_d, w_d, dy_d, geometry, gpu)
    check(got, run_conv(primitive, x_h, w_h, dy_h, geometry, cpu),
          conv_refs(primitive, x64, w64, dy64, geometry), dtype)


# ---------------------------------------------------------------- pooling

POOL_CASES = [  # (N, H, W, C), ksize, strides, padding ((top, bottom), (left, right))
    pytest.param((1, 1, 1, 1), (1, 1), (1, 1), ZERO, id="1x1"),
    pytest.param((2, 5, 5, 3), (2, 2), (2, 2), ((0, 1), (0, 1)), id="odd-pad-end"),
    pytest.param((2, 7, 6, 5), (3, 3), (2, 2), ((1, 1), (1, 1)), id="overlap-pad"),
    pytest.param((1, 10, 11, 4), (4, 3), (3, 2), ((2, 1), (1, 2)), id="asym"),
    pytest.param((2, 6, 7, 3), (2, 3), (3, 1), ((0, 0), (2, 0)), id="stride>k"),
    # 3*13*13*17 = 8619 input cells, 1836 output cells: several 256-thread blocks plus a remainder
    pytest.param((3, 13, 13, 17), (3, 2), (2, 2), ((1, 0), (0, 1)), id="blocks+rem"),
]
POOL_PRIMITIVES = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def run_pool(primitive, x, out, dy, geometry, xp):
    """One pooling primitive through module ``xp``; ``out`` is max_pool2d's output (the backward's input)."""
    if primitive in ("max_pool2d", "avg_pool2d"):
        return getattr(xp, primitive)(x, **geometry)
    if primitive == "max_pool2d_backward":
        return xp.max_pool2d_backward(x, out, dy, **geometry)
    return xp.avg_pool2d_backward(dy, tuple(x.shape), **geometry)


def pool_check(primitive, x, x64, geometry, rng, dtype):
    """Runs ``primitive`` on gpu and cpu with the same x, out and dy, and compares with the reference."""
    k, s, p = geometry["ksize"], geometry["strides"], geometry["padding"]
    mode = primitive[:3]
    out64 = ref_pool(x64, k, s, p, "max")  # exact in any dtype: a max is one of the inputs
    dy, dy64 = rand(rng, out64.shape, dtype)
    if primitive.endswith("backward"):
        want = ref_pool_backward(x64, out64 if mode == "max" else None, dy64, k, s, p, mode)
    else:
        want = ref_pool(x64, k, s, p, mode)
    out = out64.astype(dtype)
    got = run_pool(primitive, cp.asarray(x), cp.asarray(out), cp.asarray(dy), geometry, gpu)
    check(got, run_pool(primitive, x, out, dy, geometry, cpu), want, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, ksize, strides, padding", POOL_CASES)
@pytest.mark.parametrize("primitive", POOL_PRIMITIVES)
def test_pool(primitive, shape, ksize, strides, padding, dtype, rng):
    x, x64 = rand(rng, shape, dtype)
    pool_check(primitive, x, x64, dict(ksize=ksize, strides=strides, padding=padding), rng, dtype)


@pytest.mark.parametrize("primitive", POOL_PRIMITIVES)
def test_pool_float16(primitive, rng):
    x, x64 = rand(rng, (2, 5, 5, 3), np.dtype(np.float16))
    pool_check(primitive, x, x64, dict(ksize=(2, 2), strides=(2, 2), padding=((0, 1), (0, 1))), rng,
               np.dtype(np.float16))


@pytest.mark.parametrize("shape, ksize, strides, padding", [POOL_CASES[2], POOL_CASES[3], POOL_CASES[5]])
def test_max_pool2d_backward_ties(shape, ksize, strides, padding, rng):
    """Values in {0, 1, 2}: most windows hold several maxima, and only the first (row-major) takes the gradient."""
    x = rng.integers(0, 3, shape).astype(np.float32)
    pool_check("max_pool2d_backward", x, x.astype(np.float64),
               dict(ksize=ksize, strides=strides, padding=padding), rng, np.dtype(np.float32))


@pytest.mark.parametrize("padding", [ZERO, ((1, 1), (1, 1))], ids=["no-pad", "pad1"])
def test_max_pool2d_backward_all_equal(padding):
    """A constant input with overlapping windows: each window's gradient lands on its first real cell only."""
    geometry = dict(ksize=(2, 2), strides=(1, 1), padding=padding)
    x = np.ones((1, 3, 3, 2))
    out = np.ones((1, *(out_size(3, 2, 1, padding[a]) for a in range(2)), 2))
    dy = np.arange(1, out.size + 1, dtype=np.float64).reshape(out.shape)
    want = np.zeros_like(x)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            want[0, max(i - padding[0][0], 0), max(j - padding[1][0], 0)] += dy[0, i, j]
    got = gpu.max_pool2d_backward(cp.asarray(x), cp.asarray(out), cp.asarray(dy), **geometry)
    check(got, cpu.max_pool2d_backward(x, out, dy, **geometry), want, np.float64)


@pytest.mark.parametrize("primitive", ["max_pool2d", "max_pool2d_backward"])
def test_max_pool2d_nan(primitive, rng):
    """A NaN wins its window, and a window whose max is NaN passes no gradient (cpu.py's semantics)."""
    x, x64 = rand(rng, (1, 4, 4, 2), np.dtype(np.float64))
    x[0, 1, 1, 0] = x64[0, 1, 1, 0] = np.nan
    pool_check(primitive, x, x64, dict(ksize=(2, 2), strides=(2, 2), padding=ZERO), rng, np.dtype(np.float64))


# --- every GEMM tiling, forced ----------------------------------------------------------------------------------------
# The tiling table sends the small shapes above to the 16x16 tiling, so each tiling is also forced here (through
# CUFLOW_GEMM_TILING) on shapes that cover a whole block tile plus a remainder: under the mock GPU's memcheck and
# racecheck this is what proves the register-blocked kernels' bounds checks and barriers.
TILING_MATMUL_SHAPES = [(1, 1, 1), (130, 67, 19), (37, 133, 41)]
TILING_CONV_CASES = [CONV_CASES[1], next(c for c in CONV_CASES if c.id == "tiles+rem")]


@pytest.fixture(params=[t.name for t in gpu.GEMM_TILINGS])
def gemm_tiling(request, monkeypatch):
    monkeypatch.setenv(gpu.GEMM_TILING_ENV, request.param)
    return request.param


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("transposes", [(False, False), (True, True)], ids=["NN", "TT"])
@pytest.mark.parametrize("shape", TILING_MATMUL_SHAPES)
def test_matmul_with_every_tiling(gemm_tiling, shape, transposes, dtype, rng):
    test_matmul(shape, transposes, dtype, rng)


@pytest.mark.parametrize("xshape, kshape, strides, padding, dilations", TILING_CONV_CASES)
@pytest.mark.parametrize("primitive", CONV_PRIMITIVES)
def test_conv2d_with_every_tiling(gemm_tiling, primitive, xshape, kshape, strides, padding, dilations, rng):
    test_conv2d(primitive, xshape, kshape, strides, padding, dilations, np.float32, rng)

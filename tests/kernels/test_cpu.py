"""cuflow/kernels/cpu.py against slow, obviously-correct loop references (float64, tiny shapes).

Each reference loops over output pixels and reads the window straight from a padded copy of the input; the
backward references scatter each output pixel's gradient back the same way. Besides matching them, the backward
primitives must be the adjoints of the forward ones (<f(x), g> == <x, f^T(g)>), and the batch is also run one
image per chunk and in uneven chunks, so chunk boundaries in the im2col/col2im loops are exercised.
"""
import numpy as np
import pytest

from cuflow.kernels import cpu

ZERO = ((0, 0), (0, 0))


# ---------------------------------------------------------------- references

def ref_pad(x, padding, value=0.0):
    (pt, pb), (pl, pr) = padding
    n, h, w, c = x.shape
    xp = np.full((n, h + pt + pb, w + pl + pr, c), value)
    xp[:, pt:pt + h, pl:pl + w] = x
    return xp


def ref_out_size(size, k, stride, pads, dilation=1):
    return (size + pads[0] + pads[1] - ((k - 1) * dilation + 1)) // stride + 1


def ref_window(oy, ox, ksize, strides, dilations=(1, 1)):
    """Index (rows, cols) of output pixel (oy, ox)'s window in the padded input."""
    (kh, kw), (sh, sw), (dh, dw) = ksize, strides, dilations
    return (slice(oy * sh, oy * sh + (kh - 1) * dh + 1, dh), slice(ox * sw, ox * sw + (kw - 1) * dw + 1, dw))


def ref_conv2d(x, w, strides, padding, dilations):
    kh, kw, c, f = w.shape
    xp = ref_pad(x, padding)
    oh, ow = (ref_out_size(x.shape[1 + a], w.shape[a], strides[a], padding[a], dilations[a]) for a in range(2))
    out = np.zeros((x.shape[0], oh, ow, f))
    for n in range(x.shape[0]):
        for oy in range(oh):
            for ox in range(ow):
                rows, cols = ref_window(oy, ox, (kh, kw), strides, dilations)
                out[n, oy, ox] = np.tensordot(xp[n, rows, cols], w, axes=3)
    return out


def ref_conv2d_backward(x, w, g, strides, padding, dilations):
    """(dx, dw) by scattering each output pixel's gradient through its window."""
    (pt, _), (pl, _) = padding
    xp = ref_pad(x, padding)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(g.shape[0]):
        for oy in range(g.shape[1]):
            for ox in range(g.shape[2]):
                rows, cols = ref_window(oy, ox, w.shape[:2], strides, dilations)
                dxp[n, rows, cols] += w @ g[n, oy, ox]
                dw += xp[n, rows, cols][..., None] * g[n, oy, ox]
    return dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]], dw


def ref_pool_windows(x, ksize, strides, padding):
    """Yield (n, oy, ox, rows, cols): the window's real (non-padding) input rows and columns."""
    (pt, _), (pl, _) = padding
    oh, ow = (ref_out_size(x.shape[1 + a], ksize[a], strides[a], padding[a]) for a in range(2))
    for n in range(x.shape[0]):
        for oy in range(oh):
            for ox in range(ow):
                y0, x0 = oy * strides[0] - pt, ox * strides[1] - pl
                rows = range(max(y0, 0), min(y0 + ksize[0], x.shape[1]))
                cols = range(max(x0, 0), min(x0 + ksize[1], x.shape[2]))
                yield n, oy, ox, rows, cols


def ref_pool(x, ksize, strides, padding, kind):
    oh, ow = (ref_out_size(x.shape[1 + a], ksize[a], strides[a], padding[a]) for a in range(2))
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for n, oy, ox, rows, cols in ref_pool_windows(x, ksize, strides, padding):
        patch = x[n, rows.start:rows.stop, cols.start:cols.stop]
        out[n, oy, ox] = patch.max(axis=(0, 1)) if kind == "max" else patch.mean(axis=(0, 1))
    return out


def ref_pool_backward(x, g, ksize, strides, padding, kind):
    dx = np.zeros_like(x)
    for n, oy, ox, rows, cols in ref_pool_windows(x, ksize, strides, padding):
        patch = x[n, rows.start:rows.stop, cols.start:cols.stop]
        if kind == "avg":
            dx[n, rows.start:rows.stop, cols.start:cols.stop] += g[n, oy, ox] / (len(rows) * len(cols))
            continue
        first = patch.reshape(-1, x.shape[3]).argmax(axis=0)      # argmax returns the first max, row-major
        for c, k in enumerate(first):
            dx[n, rows[k // len(cols)], cols[k % len(cols)], c] += g[n, oy, ox, c]
    return dx


def ref_matmul(a, b):
    """Triple loop over one (M, K) @ (K, N) pair, broadcast over the leading axes."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    out = np.zeros(batch + (a.shape[-2], b.shape[-1]))
    for idx in np.ndindex(*batch):
        for i in range(a.shape[-2]):
            for j in range(b.shape[-1]):
                out[idx + (i, j)] = sum(a[idx + (i, k)] * b[idx + (k, j)] for k in range(a.shape[-1]))
    return out


# ---------------------------------------------------------------- fixtures

@pytest.fixture(params=["one chunk", "one image per chunk"])
def chunking(request, monkeypatch):
    if request.param != "one chunk":
        monkeypatch.setattr(cpu, "_CHUNK_BYTES", 1)
    return request.param


def rand(rng, *shape):
    return rng.standard_normal(shape)


# ---------------------------------------------------------------- matmul

@pytest.mark.parametrize("a_shape,b_shape", [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((2, 3, 7), (7, 2)),            # batch on one side
    ((4, 1, 2, 3), (5, 3, 2)),      # broadcast batch (4, 1) x (5,) -> (4, 5)
    ((1, 5, 3), (2, 3, 1)),
])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_matches_loops(a_shape, b_shape, transpose_a, transpose_b):
    rng = np.random.default_rng(0)
    a, b = rand(rng, *a_shape), rand(rng, *b_shape)
    a_in = np.ascontiguousarray(a.swapaxes(-1, -2)) if transpose_a else a
    b_in = np.ascontiguousarray(b.swapaxes(-1, -2)) if transpose_b else b
    got = cpu.matmul(a_in, b_in, transpose_a=transpose_a, transpose_b=transpose_b)
    np.testing.assert_allclose(got, ref_matmul(a, b), rtol=1e-12, atol=1e-12)


def test_matmul_rejects_mismatched_inner_dimension():
    with pytest.raises(ValueError, match=r"inner dimensions.*\(3, 4\).*\(5, 2\)"):
        cpu.matmul(np.ones((3, 4)), np.ones((5, 2)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_matmul_keeps_dtype(dtype):
    rng = np.random.default_rng(1)
    a, b = rand(rng, 2, 8, 16), rand(rng, 16, 4)
    got = cpu.matmul(a.astype(dtype), b.astype(dtype))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, a @ b, rtol=2e-2 if dtype == np.float16 else 1e-5, atol=2e-2)


# ---------------------------------------------------------------- conv2d

CONV_CASES = [
    # N, H,  W,  C, KH, KW, F, strides, padding,            dilations
    (1, 5, 5, 1, 1, 1, 2, (1, 1), ZERO, (1, 1)),                     # 1x1 kernel, one channel
    (2, 7, 6, 3, 3, 3, 4, (1, 1), ZERO, (1, 1)),                     # plain 3x3 valid
    (2, 7, 7, 3, 3, 3, 2, (2, 2), ((1, 1), (1, 1)), (1, 1)),         # stride 2, 'same'-like padding
    (1, 11, 13, 5, 2, 3, 3, (3, 2), ((2, 0), (0, 1)), (1, 1)),       # 2x3 kernel, strides 3/2, asymmetric pad
    (2, 9, 10, 3, 3, 3, 2, (1, 1), ((1, 2), (2, 1)), (2, 2)),        # dilation 2
    (2, 13, 11, 1, 3, 2, 3, (3, 3), ((0, 1), (1, 0)), (2, 1)),       # stride 3 + dilation, primes
    (1, 1, 1, 3, 1, 1, 2, (1, 1), ZERO, (1, 1)),                     # 1x1 image
    (2, 3, 3, 2, 3, 3, 2, (1, 1), ZERO, (1, 1)),                     # output 1x1
    (1, 2, 2, 1, 3, 3, 1, (1, 1), ((1, 1), (1, 1)), (1, 1)),         # kernel larger than the image
    (3, 8, 8, 2, 1, 1, 3, (3, 3), ZERO, (1, 1)),                     # stride > kernel: skipped cells
    (1, 3, 3, 1, 2, 2, 1, (1, 1), ((3, 0), (0, 3)), (1, 1)),         # padding wider than the kernel
    (2, 5, 7, 7, 3, 3, 5, (2, 3), ((0, 2), (1, 0)), (1, 1)),         # odd C, uneven strides
]


def conv_case(case, rng):
    n, h, w, c, kh, kw, f, strides, padding, dilations = case
    x, filt = rand(rng, n, h, w, c), rand(rng, kh, kw, c, f)
    oh, ow = ref_out_size(h, kh, strides[0], padding[0], dilations[0]), ref_out_size(w, kw, strides[1], padding[1],
                                                                                      dilations[1])
    return x, filt, rand(rng, n, oh, ow, f), dict(strides=strides, padding=padding, dilations=dilations)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_and_gradients_match_loops(case, chunking):
    x, w, g, geometry = conv_case(case, np.random.default_rng(2))
    np.testing.assert_allclose(cpu.conv2d(x, w, **geometry), ref_conv2d(x, w, **geometry), rtol=1e-12, atol=1e-12)
    dx_ref, dw_ref = ref_conv2d_backward(x, w, g, **geometry)
    np.testing.assert_allclose(cpu.conv2d_backward_input(g, w, x.shape, **geometry), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpu.conv2d_backward_filter(x, g, w.shape, **geometry), dw_ref, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradients_are_adjoints(case):
    x, w, g, geometry = conv_case(case, np.random.default_rng(3))
    forward = np.vdot(cpu.conv2d(x, w, **geometry), g)
    np.testing.assert_allclose(np.vdot(x, cpu.conv2d_backward_input(g, w, x.shape, **geometry)), forward, rtol=1e-11)
    np.testing.assert_allclose(np.vdot(w, cpu.conv2d_backward_filter(x, g, w.shape, **geometry)), forward, rtol=1e-11)


def test_conv2d_uneven_chunks(monkeypatch):
    """5 images, 2 per chunk: the last chunk is partial."""
    x, w, g, geometry = conv_case((5, 6, 5, 3, 3, 2, 4, (1, 2), ((1, 0), (0, 1)), (1, 1)), np.random.default_rng(4))
    oh, ow = g.shape[1:3]
    monkeypatch.setattr(cpu, "_CHUNK_BYTES", 2 * oh * ow * 3 * 2 * 3 * 8)
    assert len(cpu._batch_chunks(5, oh * ow * 3 * 2 * 3 * 8)) == 3
    dx_ref, dw_ref = ref_conv2d_backward(x, w, g, **geometry)
    np.testing.assert_allclose(cpu.conv2d(x, w, **geometry), ref_conv2d(x, w, **geometry), rtol=1e-12)
    np.testing.assert_allclose(cpu.conv2d_backward_input(g, w, x.shape, **geometry), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpu.conv2d_backward_filter(x, g, w.shape, **geometry), dw_ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_conv2d_keeps_dtype(dtype):
    x, w, g, geometry = conv_case(CONV_CASES[4], np.random.default_rng(5))
    tol = dict(rtol=2e-2, atol=5e-2) if dtype == np.float16 else dict(rtol=1e-4, atol=1e-4)
    dx_ref, dw_ref = ref_conv2d_backward(x, w, g, **geometry)
    xs, ws, gs = x.astype(dtype), w.astype(dtype), g.astype(dtype)
    results = [(cpu.conv2d(xs, ws, **geometry), ref_conv2d(x, w, **geometry)),
               (cpu.conv2d_backward_input(gs, ws, x.shape, **geometry), dx_ref),
               (cpu.conv2d_backward_filter(xs, gs, w.shape, **geometry), dw_ref)]
    for got, want in results:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_conv2d_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"3 channels.*\(3, 3, 2, 4\)"):
        cpu.conv2d(np.ones((1, 5, 5, 3)), np.ones((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="does not fit"):
        cpu.conv2d(np.ones((1, 2, 2, 1)), np.ones((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="rank 4"):
        cpu.conv2d(np.ones((5, 5, 3)), np.ones((3, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"grad_out has shape \(1, 2, 2, 4\).*\(1, 3, 3, 4\)"):
        cpu.conv2d_backward_input(np.ones((1, 2, 2, 4)), np.ones((3, 3, 3, 4)), (1, 5, 5, 3))


# ---------------------------------------------------------------- pooling

POOL_CASES = [
    # N, H, W, C, ksize,  strides, padding
    (2, 4, 4, 3, (2, 2), (2, 2), ZERO),                       # Keras default: tiles
    (1, 5, 7, 1, (2, 2), (2, 2), ZERO),                       # odd sizes: last row/column dropped
    (2, 5, 5, 2, (3, 3), (1, 1), ((1, 1), (1, 1))),           # overlapping, 'same'
    (1, 7, 6, 3, (2, 3), (3, 2), ((1, 0), (0, 2))),           # 2x3, asymmetric padding
    (2, 6, 5, 1, (3, 2), (2, 1), ((0, 2), (1, 1))),
    (1, 1, 1, 2, (1, 1), (1, 1), ZERO),                       # 1x1 image
    (1, 2, 3, 1, (2, 2), (1, 1), ((1, 1), (1, 1))),           # some windows hold one real cell
    (3, 11, 13, 5, (3, 3), (3, 3), ((1, 0), (0, 2))),         # primes, odd C
]


def pool_case(case, rng):
    n, h, w, c, ksize, strides, padding = case
    x = rand(rng, n, h, w, c) - 3.0     # all negative: a padding cell that wins as 0 would show up
    oh, ow = (ref_out_size((h, w)[a], ksize[a], strides[a], padding[a]) for a in range(2))
    return x, rand(rng, n, oh, ow, c), dict(ksize=ksize, strides=strides, padding=padding)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_and_gradient_match_loops(case, kind):
    x, g, geometry = pool_case(case, np.random.default_rng(6))
    pool = cpu.max_pool2d if kind == "max" else cpu.avg_pool2d
    out = pool(x, **geometry)
    np.testing.assert_allclose(out, ref_pool(x, kind=kind, **geometry), rtol=1e-12)
    dx = cpu.max_pool2d_backward(x, out, g, **geometry) if kind == "max" else \
        cpu.avg_pool2d_backward(g, x.shape, **geometry)
    np.testing.assert_allclose(dx, ref_pool_backward(x, g, kind=kind, **geometry), rtol=1e-12, atol=1e-12)
    # adjoint: exact for avg (linear) and for max too (each window's gradient lands on a cell equal to its max)
    np.testing.assert_allclose(np.vdot(x, dx), np.vdot(out, g), rtol=1e-11)


@pytest.mark.parametrize("ksize,strides", [((2, 2), (2, 2)), ((2, 2), (1, 1)), ((3, 2), (1, 2))])
def test_max_pool_ties_go_to_the_first_max(ksize, strides):
    x = np.zeros((1, 4, 4, 2))                      # every window is a tie, like ReLU output full of zeros
    x[0, 3, 3, 1] = 1.0
    g = np.ones((1, ref_out_size(4, ksize[0], strides[0], (0, 0)), ref_out_size(4, ksize[1], strides[1], (0, 0)), 2))
    geometry = dict(ksize=ksize, strides=strides, padding=ZERO)
    dx = cpu.max_pool2d_backward(x, cpu.max_pool2d(x, **geometry), g, **geometry)
    np.testing.assert_array_equal(dx, ref_pool_backward(x, g, kind="max", **geometry))
    if strides == ksize:                            # tiled 2x2: exactly the top-left cell of each tile
        np.testing.assert_array_equal(dx[0, :, :, 0], np.kron(np.ones((2, 2)), [[1, 0], [0, 0]]))


def test_max_pool_backward_routes_non_finite_gradients_exactly():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    g = np.array([np.inf, 1.0, np.nan, -np.inf]).reshape(1, 2, 2, 1)
    geometry = dict(ksize=(2, 2), strides=(2, 2), padding=ZERO)
    dx = cpu.max_pool2d_backward(x, cpu.max_pool2d(x, **geometry), g, **geometry)
    np.testing.assert_array_equal(dx, ref_pool_backward(x, g, kind="max", **geometry))


@pytest.mark.parametrize("case", [POOL_CASES[2], POOL_CASES[7]])  # overlapping; tiled with padding
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_keeps_dtype(dtype, kind, case):
    x, g, geometry = pool_case(case, np.random.default_rng(7))
    xs, gs = x.astype(dtype), g.astype(dtype)
    if kind == "max":
        out = cpu.max_pool2d(xs, **geometry)
        dx = cpu.max_pool2d_backward(xs, out, gs, **geometry)
    else:
        out = cpu.avg_pool2d(xs, **geometry)
        dx = cpu.avg_pool2d_backward(gs, x.shape, **geometry)
    assert out.dtype == dtype and dx.dtype == dtype
    tol = dict(rtol=1e-2, atol=1e-2) if dtype == np.float16 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref_pool(xs.astype(np.float64), kind=kind, **geometry), **tol)
    np.testing.assert_allclose(dx, ref_pool_backward(xs.astype(np.float64), gs.astype(np.float64), kind=kind,
                                                     **geometry), **tol)


def test_pooling_rejects_padding_as_wide_as_the_window():
    with pytest.raises(ValueError, match=r"padding \(\(2, 0\), \(0, 0\)\).*window \(2, 2\)"):
        cpu.max_pool2d(np.ones((1, 4, 4, 1)), ksize=(2, 2), strides=(1, 1), padding=((2, 0), (0, 0)))
    with pytest.raises(ValueError, match="rank 4"):
        cpu.avg_pool2d(np.ones((4, 4, 1)), ksize=(2, 2), strides=(2, 2), padding=ZERO)

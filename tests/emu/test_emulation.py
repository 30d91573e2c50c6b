"""Correct CUDA kernels (kernels.cu) give NumPy's answers on the mock GPU, in every thread order."""
import ctypes

import numpy as np
import pytest

ORDERS = ["forward", "reverse", "random", "rotate"]
rng = np.random.default_rng(0)


def sgemm(kernels, a, b, order="rotate", seed=0):
    (m, k), n = a.shape, b.shape[1]
    c = np.full((m, n), np.nan, np.float32)
    kernels.get_function("sgemm_tiled")(((n + 15) // 16, (m + 15) // 16), (16, 16),
                                        (a, b, c, np.int32(m), np.int32(n), np.int32(k)), order=order, seed=seed)
    return c


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 17, 1), (7, 5, 3), (16, 16, 16), (17, 19, 23), (31, 1, 37),
                                   (64, 48, 5), (40, 33, 15), (13, 29, 64)])
def test_tiled_sgemm_matches_numpy(kernels, m, n, k):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    np.testing.assert_allclose(sgemm(kernels, a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", ORDERS)
def test_thread_order_does_not_change_a_correct_kernel(kernels, order):
    a = rng.standard_normal((45, 37)).astype(np.float32)
    b = rng.standard_normal((37, 29)).astype(np.float32)
    np.testing.assert_array_equal(sgemm(kernels, a, b, order=order, seed=3), sgemm(kernels, a, b, order="forward"))
    x = rng.standard_normal(1000).astype(np.float32)
    sums = [np.zeros(4, np.float32) for _ in range(2)]
    for out, o in zip(sums, [order, "forward"]):
        kernels.get_function("block_sum")((4,), (256,), (x, out, np.int32(1000)), order=o, seed=5)
    np.testing.assert_array_equal(sums[0], sums[1])


def test_dynamic_shared_memory(kernels):
    n, block = 100, 32
    x = rng.standard_normal(n).astype(np.float32)
    out = np.zeros(n, np.float32)
    kernels.get_function("reverse_blocks")((4,), (block,), (x, out, np.int32(n)), shared_mem=block * 4)
    padded = np.concatenate([x, np.zeros(4 * block - n, np.float32)])
    np.testing.assert_array_equal(out, padded.reshape(4, block)[:, ::-1].ravel()[:n])


@pytest.mark.parametrize("name,dtype", [("axpy<float, 4>", np.float32), ("axpy<double, 2>", np.float64)])
def test_template_kernel_from_name_expression(kernels, name, dtype):
    n, items = 1000, int(name[-2])
    x, y = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    expected = y + dtype(0.5) * x
    per_block = 64 * items
    kernels.get_function(name)(((n + per_block - 1) // per_block,), (64,), (dtype(0.5), x, y, np.int32(n)))
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("block", [96, 256])
def test_warp_shuffle_reduction(kernels, block):
    n = 1000
    x = rng.standard_normal(n).astype(np.float32)
    grid = (n + block - 1) // block
    out = np.zeros(grid, np.float32)
    kernels.get_function("block_sum")((grid,), (block,), (x, out, np.int32(n)))
    padded = np.concatenate([x, np.zeros(grid * block - n, np.float32)]).astype(np.float64)
    np.testing.assert_allclose(out, padded.reshape(grid, block).sum(axis=1), rtol=1e-5, atol=1e-5)


def test_warp_votes_shuffles_and_reductions(kernels):
    v = rng.integers(-3, 10, 64).astype(np.int32)
    v[32:] = np.abs(v[32:])  # second warp: all non-negative
    out = np.zeros((64, 6), np.int32)
    kernels.get_function("warp_votes")((1,), (64,), (v, out))
    for lane in range(64):
        warp = v[lane // 32 * 32:lane // 32 * 32 + 32]
        group = lane // 8 * 8
        expected = [sum(1 << i for i in range(32) if warp[i] > 0), int(any(warp > 5)), int(all(warp >= 0)),
                    warp[3], v[lane - 1] if lane % 8 else v[lane], warp.max()]
        assert out[lane].view(np.uint32)[0] == np.uint32(expected[0]), lane
        assert list(out[lane, 1:]) == expected[1:], (lane, group)


def test_atomic_histogram(kernels):
    data = rng.integers(0, 256, 5000).astype(np.uint8)
    bins = np.zeros(256, np.uint32)
    kernels.get_function("histogram")((4,), (128,), (data, bins, np.int32(5000)))
    np.testing.assert_array_equal(bins, np.bincount(data, minlength=256))


@pytest.mark.parametrize("order", ORDERS)
def test_threads_returning_early_drop_out_of_barriers(kernels, order):
    x = rng.standard_normal(256).astype(np.float32)
    out = np.full(256, -1.0, np.float32)
    kernels.get_function("shift_left_early_return")((1,), (128,), (x, out, np.int32(100)), order=order)
    np.testing.assert_array_equal(out[:100], np.append(x[1:100], 0))
    assert (out[100:] == -1).all()


def test_syncthreads_count(kernels):
    x = rng.standard_normal(3 * 96).astype(np.float32)
    out = np.zeros(3, np.int32)
    kernels.get_function("count_positive")((3,), (96,), (x, out))
    np.testing.assert_array_equal(out, (x.reshape(3, 96) > 0).sum(axis=1))


def test_thread_and_block_coordinates_are_x_major(kernels):
    grid, block = (2, 3, 2), (4, 2, 3)
    out = np.zeros((12, 24, 6), np.int32)
    kernels.get_function("coordinates")(grid, block, (out,))
    for b, (bz, by, bx) in enumerate(np.ndindex(2, 3, 2)):
        for t, (tz, ty, tx) in enumerate(np.ndindex(3, 2, 4)):
            assert list(out[b, t]) == [tx, ty, tz, bx, by, bz]


def test_cuda_arch_is_not_defined_so_ptx_takes_its_cpu_branch(kernels):
    x = np.arange(8, dtype=np.float32)
    kernels.get_function("halve")((1,), (8,), (x,))
    np.testing.assert_array_equal(x, np.arange(8) / 2)


def test_printf_in_a_kernel(kernels, capfd):
    kernels.get_function("hello")((2,), (4,), (np.int32(7),))
    assert capfd.readouterr().out.splitlines() == ["hello 7 from block 0 thread 1", "hello 7 from block 1 thread 1"]


def test_shared_declaration_forms(kernels):
    out = np.zeros(64, np.int32)
    kernels.get_function("shared_forms")((2,), (64,), (out,))
    np.testing.assert_array_equal(out, 10 * np.arange(64) + 7)


def test_constant_memory_is_reached_through_get_global(kernels):
    scale = np.ctypeslib.as_array((ctypes.c_float * 4).from_address(kernels.get_global("scale")))
    scale[:] = [1, 2, 3, 4]
    x = np.ones(8, np.float32)
    kernels.get_function("apply_scale")((1,), (8,), (x,))
    np.testing.assert_array_equal(x, [1, 2, 3, 4, 1, 2, 3, 4])
    with pytest.raises(KeyError, match="no __constant__ variable 'missing'"):
        kernels.get_global("missing")


def test_sgemm_256_cubed(kernels):
    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 256)).astype(np.float32)
    np.testing.assert_allclose(sgemm(kernels, a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)

"""Planted bugs (planted_bugs.cu) are caught: by NaN-filled shared memory, by thread orders, by deadlock reports,
by assert/__trap, by memcheck (AddressSanitizer) and by racecheck (ThreadSanitizer).

Bugs that end the process (sanitizer reports, assert, __trap) run in a subprocess; the others raise or give wrong
values, so they run here.
"""
import textwrap

import numpy as np
import pytest

from cuflow.kernels import emu


def test_uninitialized_shared_memory_reads_nan(planted):
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(3 * 64, np.float32)
    planted.get_function("stale_shared")((3,), (64,), (x, out))
    np.testing.assert_array_equal(out[:64], x)
    assert np.isnan(out[64:]).all()  # without the refill, blocks 1 and 2 would see block 0's values


def test_missing_barrier_is_wrong_in_some_thread_order(planted):
    x = np.arange(1, 65, dtype=np.float32)
    expected = np.append(x[1:], 0)
    results = {}
    for order in ["forward", "reverse", "random"]:
        out = np.zeros(64, np.float32)
        planted.get_function("shift_left_racy")((1,), (64,), (x, out), order=order)
        results[order] = np.array_equal(out, expected)
    assert results == {"forward": False, "reverse": True, "random": False}
    for order in ["forward", "reverse", "random"]:
        out = np.zeros(64, np.float32)
        planted.get_function("shift_left_synced")((1,), (64,), (x, out), order=order)
        np.testing.assert_array_equal(out, expected)


def test_divergent_barriers_are_reported_as_a_deadlock(planted):
    out = np.zeros(64, np.float32)
    with pytest.raises(emu.KernelError) as error:
        planted.get_function("divergent_barriers")((2,), (64,), (out,), order="forward")
    message = str(error.value)
    assert "deadlock in kernel 'divergent_barriers', block (0,0,0)" in message
    assert "32 threads at __syncthreads (" in message and "planted_bugs.cu:64" in message
    assert "planted_bugs.cu:67" in message
    # The module is still usable after a failed launch.
    x = np.arange(64, dtype=np.float32)
    planted.get_function("shift_left_synced")((1,), (64,), (x, out))
    np.testing.assert_array_equal(out, np.append(x[1:], 0))


def test_a_shuffle_half_the_warp_skips_is_reported(planted):
    with pytest.raises(emu.KernelError, match=r"16 threads at __shfl_sync .*16 threads at __syncthreads"):
        planted.get_function("divergent_shuffle")((1,), (32,), (np.zeros(32, np.float32),), order="forward")


def test_assert_names_block_and_thread(run_script):
    result = run_script("""
        index = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0, 9, 0, 0, 0], np.int32)  # 9 is out of range
        planted.get_function("gather_checked")((2,), (8,), (index, np.ones(4, np.float32), np.zeros(16, np.float32), np.int32(4)))
        print("not caught")
    """)
    assert result.returncode != 0 and "not caught" not in result.stdout
    assert "assertion `i >= 0 && i < n` failed" in result.stderr
    assert "kernel 'gather_checked', block (1,0,0) thread (4,0,0)" in result.stderr


def test_trap_names_block_and_thread(run_script):
    result = run_script("""
        x = np.ones(64, np.float32)
        x[37] = -1
        planted.get_function("trap_on_negative")((2,), (32,), (x,))
        print("not caught")
    """)
    assert result.returncode != 0 and "not caught" not in result.stdout
    assert "__trap() in kernel 'trap_on_negative', block (1,0,0) thread (5,0,0)" in result.stderr


MEMCHECK_CASES = {
    "global write past an exact-size array": ("scale_off_by_one", """
        x = np.ones(100, np.float32)
        kernel((1,), (128,), (x, np.int32(99)))     # the right bound for this buffer
        print("clean launch ok", flush=True)
        kernel((1,), (128,), (x, np.int32(100)))    # writes x[100]
    """, "heap-buffer-overflow", "thread (100,0,0)"),
    "static shared read past the end": ("shared_off_by_one", """
        x, out = np.ones(64, np.float32), np.zeros(64, np.float32)
        kernel((1,), (63,), (x, out))               # reads s[63]: inside the array
        print("clean launch ok", flush=True)
        kernel((1,), (64,), (x, out))               # reads s[64]
    """, "heap-buffer-overflow", "thread (63,0,0)"),
    "static shared read past the end in a template kernel": ("shared_off_by_one_tiled<64>", """
        x, out = np.ones(64, np.float32), np.zeros(64, np.float32)
        kernel((1,), (63,), (x, out))
        print("clean launch ok", flush=True)
        kernel((1,), (64,), (x, out))
    """, "heap-buffer-overflow", "thread (63,0,0)"),
    "dynamic shared read past the requested size": ("dynamic_off_by_one", """
        x, out = np.ones(64, np.float32), np.zeros(64, np.float32)
        kernel((1,), (64,), (x, out), shared_mem=65 * 4)
        print("clean launch ok", flush=True)
        kernel((1,), (64,), (x, out), shared_mem=64 * 4)
    """, "use-after-poison", "thread (63,0,0)"),
}


@pytest.mark.parametrize("case", list(MEMCHECK_CASES))
def test_memcheck_catches_out_of_bounds_access(run_script, case):
    name, launches, report, thread = MEMCHECK_CASES[case]
    code = f"kernel = planted.get_function({name!r})\n" + textwrap.dedent(launches) + "print('not caught')"
    result = run_script(code, sanitizer="memcheck")
    assert result.returncode != 0
    assert "clean launch ok" in result.stdout and "not caught" not in result.stdout
    assert f"ERROR: AddressSanitizer: {report}" in result.stderr
    assert f"launching kernel '{name}' grid (1,1,1)" in result.stderr
    assert f"made by kernel '{name}', block (0,0,0) {thread}" in result.stderr


def test_racecheck_catches_a_missing_barrier(run_script):
    result = run_script("""
        x, out = np.arange(64, dtype=np.float32), np.zeros(64, np.float32)
        planted.get_function("shift_left_synced")((2,), (64,), (x, out))
        print("clean launch ok", flush=True)
        planted.get_function("shift_left_racy")((2,), (64,), (x, out))
        print("not caught")
    """, sanitizer="racecheck")
    assert result.returncode == 66, result.stderr[-3000:]
    assert "clean launch ok" in result.stdout and "not caught" not in result.stdout
    assert "WARNING: ThreadSanitizer: data race" in result.stderr
    assert "launching kernel 'shift_left_racy'" in result.stderr
    assert "kernel 'shift_left_racy' block (0,0,0) thread (" in result.stderr  # the racing fibers' names
    assert "planted_bugs.cu:17" in result.stderr and "planted_bugs.cu:19" in result.stderr


@pytest.mark.parametrize("sanitizer", ["memcheck", "racecheck"])
def test_correct_kernels_pass_both_sanitizers(run_script, sanitizer):
    """No false reports from barriers, warp operations, atomics, dynamic shared memory or early returns."""
    result = run_script("""
        rng = np.random.default_rng(1)
        a, b = rng.standard_normal((20, 19)).astype(np.float32), rng.standard_normal((19, 18)).astype(np.float32)
        c = np.zeros((20, 18), np.float32)
        kernels.get_function("sgemm_tiled")((2, 2), (16, 16), (a, b, c, np.int32(20), np.int32(18), np.int32(19)))
        assert np.allclose(c, a @ b, atol=1e-4)
        x = rng.standard_normal(300).astype(np.float32)
        sums = np.zeros(2, np.float32)
        kernels.get_function("block_sum")((2,), (160,), (x, sums, np.int32(300)))
        assert np.allclose(sums, [x[:160].sum(), x[160:].sum()], atol=1e-4)
        data, bins = rng.integers(0, 256, 999).astype(np.uint8), np.zeros(256, np.uint32)
        kernels.get_function("histogram")((3,), (64,), (data, bins, np.int32(999)))
        assert (bins == np.bincount(data, minlength=256)).all()
        out = np.zeros(300, np.float32)
        kernels.get_function("reverse_blocks")((10,), (32,), (x, out, np.int32(300)), shared_mem=128)
        kernels.get_function("shift_left_early_return")((1,), (128,), (x, out, np.int32(100)), order="random")
        y = np.zeros(300, np.float32)
        kernels.get_function("axpy<float, 4>")((2,), (64,), (np.float32(2), x, y, np.int32(300)))
        assert np.allclose(y, 2 * x)
        votes = np.zeros((64, 6), np.int32)
        kernels.get_function("warp_votes")((1,), (64,), (rng.integers(-3, 9, 64).astype(np.int32), votes))
        forms = np.zeros(64, np.int32)
        kernels.get_function("shared_forms")((2,), (64,), (forms,))
        assert (forms == 10 * np.arange(64) + 7).all()
        print("clean", flush=True)
    """, sanitizer=sanitizer)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clean" in result.stdout and "Sanitizer" not in result.stderr

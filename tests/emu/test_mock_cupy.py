"""The mock GPU's CuPy stand-in (cuflow/kernels/emu/mock_cupy): cuflow sees one GPU and runs its GPU path unchanged.

Most tests switch the mock on in-process with the `mock_gpu` fixture (cuflow.testing.mock_gpu), so they run in every
CI job, mock or not. Sanitizer reports end the process: those tests run a fresh interpreter (or a fresh pytest).
"""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cuflow as tf
from cuflow import errors, testing
from cuflow.kernels import cuda, emu
from cuflow.kernels.emu import mock_cupy
from cuflow.kernels.emu.mock_cupy import pytest_plugin

needs_compiler = pytest.mark.skipif(not emu.compiler_available(), reason="the mock GPU needs g++ 10+ or clang++ 12+")
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tf.__file__)))  # the directory cuflow came from

OFF_BY_ONE = r"""
extern "C" __global__ void scale_off_by_one(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) x[i] *= 2.0f;  // BUG: one past the end when n == len(x)
}
"""
RACY = r"""
extern "C" __global__ void shift_left_racy(const float* in, float* out) {
    __shared__ float s[256];
    s[threadIdx.x] = in[threadIdx.x];
    // BUG: no __syncthreads() before reading a neighbour's element
    out[threadIdx.x] = threadIdx.x + 1 < blockDim.x ? s[threadIdx.x + 1] : 0.0f;
}
"""


@pytest.fixture
def cp(mock_gpu):
    return cuda.cupy()


# ---------------------------------------------------------------- cuflow sees one GPU

def test_the_mock_is_one_gpu_that_says_it_is_not_hardware(mock_gpu):
    gpus = tf.config.list_physical_devices("GPU")
    assert gpus == [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]
    details = tf.config.experimental.get_device_details(gpus[0])
    assert details == {"device_name": "cuflow mock GPU (CPU emulation)", "compute_capability": (9, 0)}
    assert cuda.gpu_count() == 1 and cuda.unavailable_reason() == ""
    x = tf.constant([1.0, 2.0])
    assert x.device == "/job:localhost/replica:0/task:0/device:GPU:0"
    assert isinstance(x._data, mock_cupy.ndarray) and type(x._data) is not np.ndarray


@needs_compiler
def test_gpu_ops_and_kernels_match_numpy(mock_gpu, rng):
    a, b = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((7, 3)).astype(np.float32)
    images = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    filters = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    out = tf.nn.relu(tf.matmul(tf.constant(a), tf.constant(b)) + 1.0)  # matmul.cu through the emulator
    assert out.device.endswith("GPU:0")
    np.testing.assert_allclose(out.numpy(), np.maximum(a @ b + 1, 0), rtol=1e-5, atol=1e-5)
    conv = tf.nn.conv2d(tf.constant(images), tf.constant(filters), strides=1, padding="VALID")  # conv2d.cu
    with tf.device("/CPU:0"):
        want = tf.nn.conv2d(tf.constant(images), tf.constant(filters), strides=1, padding="VALID").numpy()
    np.testing.assert_allclose(conv.numpy(), want, rtol=1e-5, atol=1e-5)
    total = tf.reduce_sum(out)
    assert total.device.endswith("GPU:0") and total.shape == ()


def test_cpu_gpu_round_trip(mock_gpu):
    with tf.device("/CPU:0"):
        host = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    assert type(host._data) is np.ndarray
    dev = host.gpu()
    assert dev.device.endswith("GPU:0") and isinstance(dev._data, mock_cupy.ndarray)
    assert not np.shares_memory(dev._data.view(np.ndarray), host._data)  # a transfer copies, as to a device
    back = dev.cpu()
    assert back.device.endswith("CPU:0") and type(back._data) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), host.numpy())
    assert dev.gpu() is dev and back.cpu() is back


def test_mixing_devices_raises_under_the_mock(mock_gpu):
    on_gpu = tf.constant([1.0, 2.0])
    with tf.device("/CPU:0"):
        on_cpu = tf.constant([1.0, 2.0])
    with pytest.raises(errors.DeviceMismatchError, match=r"x is on /GPU:0, y is on /CPU:0"):
        tf.add(on_gpu, on_cpu)


def test_mock_gpu_restores_the_state_it_found():
    before = (os.environ.get(cuda.MOCK_ENV), cuda.gpu_count(), cuda.unavailable_reason(),
              tf.config.list_physical_devices("GPU"), tf.constant(1.0).device)
    with testing.mock_gpu():
        assert cuda.gpu_count() == 1
        assert tf.constant(1.0).device.endswith("GPU:0")
    after = (os.environ.get(cuda.MOCK_ENV), cuda.gpu_count(), cuda.unavailable_reason(),
             tf.config.list_physical_devices("GPU"), tf.constant(1.0).device)
    assert after == before
    if before[1] == 0:  # no GPU outside: asking for one is the usual clear error again
        assert tf.config.list_physical_devices("GPU") == []
        with pytest.raises(errors.UnavailableError, match="no GPU is available"):
            tf.constant(1.0).gpu()


def test_an_unknown_mode_is_an_error_not_a_silent_cpu_run(monkeypatch):
    monkeypatch.setenv(cuda.MOCK_ENV, "yes please")
    cuda._probe.cache_clear()
    try:
        with pytest.raises(ValueError, match="CUFLOW_MOCK_GPU must be 1 .*memcheck.*racecheck.*'yes please'"):
            cuda.gpu_count()
    finally:
        monkeypatch.undo()
        cuda._probe.cache_clear()
    with pytest.raises(ValueError, match="mode must be one of"):
        with testing.mock_gpu("on"):
            pass


@pytest.mark.skipif(pytest_plugin.runtime_loaded("memcheck"), reason="checks a process without the ASan runtime")
def test_a_sanitizer_mode_needs_its_runtime_at_process_start():
    with pytest.raises(RuntimeError, match=r"CUFLOW_MOCK_GPU=memcheck pytest"):
        with testing.mock_gpu("memcheck"):
            pass


# ---------------------------------------------------------------- CuPy's behaviour where cuflow relies on it

def test_results_stay_on_the_device_and_reductions_are_0d_arrays(cp):
    x = cp.arange(6, dtype=np.float32).reshape(2, 3)
    for result in (x.sum(), x.max(), x.mean(), x.argmax(), x[1, 2], cp.sum(x), np.sum(x), cp.add(1, 2), x.all()):
        assert type(result) is cp.ndarray and result.ndim == 0, result
    assert float(x.sum()) == 15.0 and int(x[1, 2]) == 5
    for result in (x + 1, np.exp(x), x.T, x.astype(np.float64), cp.moveaxis(x, 0, 1), cp.concatenate([x, x]),
                   cp.where(x > 2, x, 0), cp.pad(x, 1), cp.take(x, cp.asarray([0, 2]), axis=1), *cp.nonzero(x)):
        assert type(result) is cp.ndarray
    assert [type(row) for row in x[0]] == [cp.ndarray] * 3
    assert x.device.id == 0 and x.device == cp.cuda.Device(0)
    assert type(x.get()) is np.ndarray and type(cp.asnumpy(x)) is np.ndarray


def test_host_arrays_are_refused_as_operands_like_cupy(cp):
    x, host = cp.ones(3), np.ones(3)
    for use in (lambda: x + host, lambda: host * x, lambda: cp.add(x, host), lambda: cp.concatenate([x, host]),
                lambda: cp.where(x > 0, host, x), lambda: x.dot(host), lambda: cp.ascontiguousarray(host)):
        with pytest.raises(TypeError):
            use()
    np.testing.assert_array_equal((x + np.float32(2) + np.array(1.0)).get(), [4.0, 4.0, 4.0])  # scalars are fine


def test_transfers_copy_and_ufunc_methods_work_in_place(cp):
    host = np.arange(4.0)
    dev = cp.asarray(host)
    host[0] = 100.0
    assert float(dev[0]) == 0.0
    assert cp.asarray(dev) is dev and cp.ascontiguousarray(dev) is dev
    cp.add.at(dev, cp.asarray([1, 1, 3]), 10.0)
    np.testing.assert_array_equal(dev.get(), [0.0, 21.0, 2.0, 13.0])
    np.testing.assert_array_equal(cp.add.reduce(dev).get(), 36.0)
    out = cp.empty(4)
    assert cp.multiply(dev, 2, out=out) is out
    assert type(pickle.loads(pickle.dumps(dev))) is cp.ndarray
    shared = cp.from_dlpack(tf.constant([1.0, 2.0]))
    assert type(shared) is cp.ndarray


def test_device_queries_streams_events_and_memory_pool(cp):
    props = cp.cuda.runtime.getDeviceProperties(0)
    assert props["name"] == b"cuflow mock GPU (CPU emulation)" and (props["major"], props["minor"]) == (9, 0)
    assert cp.cuda.runtime.getDeviceCount() == 1 and cp.__version__ == "mock"
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device ordinal 1"):
        cp.cuda.Device(1)
    with cp.cuda.Device(0) as device:
        device.synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    with cp.cuda.Stream() as stream:
        start.record(stream)
        end.record(stream)
        assert cp.cuda.get_current_stream() is stream
    end.synchronize()
    assert cp.cuda.get_elapsed_time(start, end) >= 0.0
    pool = cp.get_default_memory_pool()
    used = pool.used_bytes()
    block = cp.zeros(1 << 20, dtype=np.uint8)
    assert pool.used_bytes() >= used + (1 << 20) and pool.total_bytes() >= pool.used_bytes()
    del block
    assert pool.used_bytes() == used
    pool.free_all_blocks()
    assert pool.total_bytes() == pool.used_bytes()
    with pytest.raises(AttributeError, match="Philox"):
        cp.random


@needs_compiler
def test_raw_kernels_follow_cupys_launch_rules(cp):
    kernel = cp.RawModule(code=OFF_BY_ONE).get_function("scale_off_by_one")
    x = cp.ones(100, dtype=np.float32)
    kernel((1,), (128,), (x, np.int32(99)))
    np.testing.assert_array_equal(x.get(), np.full(100, 2.0, np.float32))
    with pytest.raises(TypeError, match="host"):
        kernel((1,), (128,), (np.ones(100, np.float32), np.int32(99)))
    with pytest.raises(TypeError, match="tuples"):
        kernel(1, (128,), (x, np.int32(99)))
    with pytest.raises(TypeError, match="int"):  # a Python int is a long long, the kernel takes an int
        kernel((1,), (128,), (x, 99))
    with pytest.raises(ValueError, match="max_dynamic_shared_size_bytes"):
        kernel((1,), (128,), (x, np.int32(99)), shared_mem=64 * 1024)
    kernel.max_dynamic_shared_size_bytes = 64 * 1024
    kernel((1,), (128,), (x, np.int32(99)), shared_mem=64 * 1024)
    raw = cp.RawKernel(OFF_BY_ONE, "scale_off_by_one")
    raw((1,), (32,), (x, np.int32(31)))
    assert float(x[0]) == 8.0 and float(x[99]) == 4.0


# ---------------------------------------------------------------- sanitizer modes catch planted bugs

def _run(argv, mode, cwd=None, sanitizer_preloaded=True):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", pytest_plugin.REEXEC_ENV)}
    env.update({cuda.MOCK_ENV: mode, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT,
                                                                                 os.environ.get("PYTHONPATH")]))})
    if sanitizer_preloaded:
        env.update(emu.sanitizer_env(mode))
    # sys.executable, not a `python3` wrapper script: a shell started under libtsan crashes.
    return subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@needs_compiler
@pytest.mark.parametrize("mode, source, kernel, launch, report", [
    ("memcheck", OFF_BY_ONE, "scale_off_by_one",
     "x = cp.ones(100, dtype=np.float32)\nkernel((1,), (128,), (x, np.int32(99)))\n"
     "print('clean launch ok', flush=True)\nkernel((1,), (128,), (x, np.int32(100)))",
     "ERROR: AddressSanitizer: heap-buffer-overflow"),
    ("racecheck", RACY, "shift_left_racy",
     "x, out = cp.arange(64, dtype=np.float32), cp.zeros(64, dtype=np.float32)\nprint('clean launch ok', flush=True)\n"
     "kernel((1,), (64,), (x, out))", "WARNING: ThreadSanitizer: data race"),
], ids=["memcheck", "racecheck"])
def test_a_planted_bug_fails_the_process_naming_the_kernel(mode, source, kernel, launch, report):
    code = (f"import numpy as np\nfrom cuflow.kernels import cuda\ncp = cuda.cupy()\n"
            f"kernel = cp.RawModule(code={source!r}).get_function({kernel!r})\n{launch}\nprint('not caught')\n")
    result = _run(["-c", code], mode)
    assert result.returncode != 0, result.stdout + result.stderr[-3000:]
    assert "clean launch ok" in result.stdout and "not caught" not in result.stdout
    assert report in result.stderr
    assert f"cuflow mock GPU ({mode}): launching kernel '{kernel}'" in result.stderr
    assert f"in {kernel}" in result.stderr  # the report's SUMMARY line names the kernel function


@needs_compiler
def test_pytest_restarts_itself_with_the_sanitizer_and_a_report_fails_the_run(tmp_path):
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(f"""
        import numpy as np
        from cuflow.kernels import cuda

        def test_runtime_is_loaded():
            from cuflow.kernels.emu.mock_cupy import pytest_plugin
            assert pytest_plugin.runtime_loaded("memcheck")

        def test_off_by_one():
            cp = cuda.cupy()
            kernel = cp.RawModule(code={OFF_BY_ONE!r}).get_function("scale_off_by_one")
            kernel((1,), (128,), (cp.ones(100, dtype=np.float32), np.int32(100)))
    """))
    result = _run(["-m", "pytest", "-p", "cuflow.kernels.emu.mock_cupy.pytest_plugin", "-p", "no:cacheprovider",
                   "-v", "test_planted.py"], "memcheck", cwd=tmp_path, sanitizer_preloaded=False)
    assert result.returncode != 0
    assert "test_runtime_is_loaded PASSED" in result.stdout
    assert "test_off_by_one" in result.stdout
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in result.stderr
    assert "launching kernel 'scale_off_by_one'" in result.stderr
    assert "in test_off_by_one" in result.stderr  # faulthandler's stack names the test that was running


@pytest.mark.skipif(mock_cupy.sanitizer() is None, reason="runs under CUFLOW_MOCK_GPU=memcheck or racecheck")
def test_this_sanitizer_run_has_its_runtime_loaded():
    assert pytest_plugin.runtime_loaded(mock_cupy.sanitizer())

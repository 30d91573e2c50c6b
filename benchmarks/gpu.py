"""Everything that needs a real GPU, in one call: the gpu tests, compute-sanitizer, and the kernel benchmarks.

    python -m benchmarks.gpu [--skip-tests] [--skip-sanitizer] [--only matmul,conv,...] [--tag T] [--out DIR]

Writes ``gpu-<date>-<device>.json`` and ``.md`` to ``benchmarks/results/`` (and to ``$OUT`` when set). Each kernel
result is ``{"name", "shape", "dtype", "ours_ms", "ours_tflops", "reference", "reference_ms", "reference_tflops",
"ratio"}`` with ``ratio = ours_tflops / reference_tflops`` (higher is better), measured side by side in this
process with CUDA events (median of repeated runs after warm-up). Refuses to run under the mock GPU.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

try:
    from benchmarks.common import refuse_mock_gpu
except ImportError:
    from common import refuse_mock_gpu


# --- facts ----------------------------------------------------------------------------------------------------------
def _git_commit():
    if os.environ.get("CUFLOW_COMMIT"):
        return os.environ["CUFLOW_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_facts():
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    driver = cupy.cuda.runtime.driverGetVersion()
    runtime = cupy.cuda.runtime.runtimeGetVersion()
    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "device": name,
        "compute_capability": f"{props['major']}.{props['minor']}",
        "multiprocessors": props["multiProcessorCount"],
        "driver": f"{driver // 1000}.{driver % 1000 // 10}",
        "cuda": f"{runtime // 1000}.{runtime % 1000 // 10}",
        "cupy": cupy.__version__,
        "python": platform.python_version(),
    }
    try:
        import pynvml
        pynvml.nvmlInit()
        facts["driver"] = pynvml.nvmlSystemGetDriverVersion()
        if isinstance(facts["driver"], bytes):
            facts["driver"] = facts["driver"].decode()
        pynvml.nvmlShutdown()
    except Exception:  # nvidia-ml-py missing or NVML unavailable: the CUDA driver API version stays
        pass
    try:
        import torch
        facts["torch"] = torch.__version__
        facts["cudnn"] = str(torch.backends.cudnn.version())
    except ImportError:
        pass
    return facts


# --- tests and sanitizers -------------------------------------------------------------------------------------------
def _summary_line(text):
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    return lines[-1].strip("= ") if lines else text.strip().splitlines()[-1] if text.strip() else ""


def _compile_one(name):
    """Child process of :func:`warm_kernel_cache`: compiles one module of compile.MODULES into CuPy's disk cache."""
    sys.path.insert(0, str(ROOT))
    from cuflow.kernels import gpu
    start = time.perf_counter()
    gpu._raw_module(name).get_function(gpu._MODULES[name].instances()[0])  # loading one kernel compiles them all
    return name, round(time.perf_counter() - start, 1)


def warm_kernel_cache(workers=12):
    """Compiles every kernel module once, in parallel processes, so the tests and benchmarks after it load cubins
    from CuPy's disk cache instead of each compiling the same modules (NVRTC is CPU-bound; a fresh machine has none)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from cuflow.kernels.compile import MODULES
    start = time.perf_counter()
    # spawn, not fork: this process has a CUDA context already, which a forked child cannot use
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        per_module = dict(pool.map(_compile_one, [m.name for m in MODULES]))
    return {"seconds": round(time.perf_counter() - start, 1), "modules": per_module}


def _pytest_summary(text):
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error)", line) and " in " in line]
    return lines[-1].strip("= ") if lines else ""


def run_gpu_tests(workers=0):
    """``pytest -m gpu`` (on ``workers`` xdist processes when pytest-xdist is there and workers > 1)."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-o", "addopts=-rfE"]
    if workers > 1 and importlib.util.find_spec("xdist") is not None:  # pytest-xdist is there
        command += ["-n", str(workers), "--dist", "loadfile"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"command": " ".join(command[2:]), "returncode": proc.returncode, "summary": _summary_line(proc.stdout),
            "failures": failures[:50], "seconds": round(time.perf_counter() - start, 1),
            "tail": proc.stdout[-6000:] if proc.returncode else ""}


SANITIZED_TESTS = ("tests/kernels/test_gpu_parity.py", "tests/kernels/test_fused.py", "tests/kernels/test_gemm.py",
                   "tests/kernels/test_conv_fused.py")


def run_sanitizers(tools=("memcheck", "racecheck", "synccheck"), timeout=180, tests=None):
    """The kernel tests under each compute-sanitizer tool, the tools side by side (each its own process)."""
    sanitizer = shutil.which("compute-sanitizer") or next(
        (str(p) for p in Path("/usr/local/cuda/bin").glob("compute-sanitizer")), None)
    if sanitizer is None:
        return [{"tool": t, "skipped": "compute-sanitizer not found"} for t in tools]
    env = dict(os.environ, CUFLOW_EXACT_ALLOC="1")
    start = time.perf_counter()
    procs = {tool: subprocess.Popen([sanitizer, "--tool", tool, "--error-exitcode", "99", sys.executable, "-m",
                                     "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-rfE",
                                     *(tests or SANITIZED_TESTS)], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env) for tool in tools}
    results = []
    for tool, proc in procs.items():
        try:
            text, _ = proc.communicate(timeout=max(1.0, timeout - (time.perf_counter() - start)))
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
            timed_out = True
        found = re.findall(r"ERROR SUMMARY: (\d+) error", text) or re.findall(r"\((\d+) errors, \d+ warnings\)", text)
        hazards = re.findall(r"RACECHECK SUMMARY: (\d+) hazard", text)
        results.append({"tool": tool, "returncode": proc.returncode, "timed_out": timed_out,
                        "errors": int(found[-1]) if found else None,
                        "hazards": int(hazards[-1]) if hazards else None,
                        "pytest": _pytest_summary(text),
                        "summary": (re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", text) or [""])[-1],
                        "seconds": round(time.perf_counter() - start, 1),
                        "tail": text[-3000:] if proc.returncode or timed_out else ""})
    return results


# --- kernel benchmarks ----------------------------------------------------------------------------------------------
def _median_ms(fn, repeat=15, inner=None):
    """Median milliseconds of ``fn`` over ``repeat`` timed runs (CUDA events), after warm-up."""
    import cupy
    fn()
    cupy.cuda.Device().synchronize()
    if inner is None:  # aim for about 20 ms per timed run, so launch overhead does not dominate small problems
        start = time.perf_counter()
        fn()
        cupy.cuda.Device().synchronize()
        inner = max(1, min(200, int(0.02 / max(time.perf_counter() - start, 1e-6))))
    times = []
    for _ in range(repeat):
        begin, end = cupy.cuda.Event(), cupy.cuda.Event()
        begin.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(begin, end) / inner)
    return statistics.median(times)


def _result(name, shape, dtype, flops, ours_ms, reference, reference_ms):
    ours = flops / ours_ms / 1e9
    ref = flops / reference_ms / 1e9 if reference_ms else None
    return {"name": name, "shape": shape, "dtype": dtype, "ours_ms": round(ours_ms, 4),
            "ours_tflops": round(ours, 3), "reference": reference,
            "reference_ms": round(reference_ms, 4) if reference_ms else None,
            "reference_tflops": round(ref, 3) if ref else None, "ratio": round(ours / ref, 3) if ref else None}


def _rel_err(got, want):
    """||got - want|| / ||want|| in float64 (METHOD: float32 far under 1e-3, TF32 near 3e-4, bf16 1e-3..1e-2)."""
    import cupy
    got, want = cupy.asarray(got).astype(cupy.float64), cupy.asarray(want).astype(cupy.float64)
    return float(cupy.linalg.norm(got - want) / cupy.linalg.norm(want))


# Dense peak TFLOP/s of an H100 SXM (the H200 has the same SMs and clocks), per precision: beside each result.
PEAK_TFLOPS = {"float32": 67.0, "tf32": 495.0, "bfloat16": 989.0, "float16": 989.0}


def _with_peak(row, precision):
    import cupy
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    row["device_peak_tflops"] = PEAK_TFLOPS[precision] if ("H100" in name or "H200" in name) else None
    return row


def _torch_matmul_ms(a, b, precision, repeat):
    """cuBLAS through PyTorch on the same CuPy buffers (zero-copy DLPack): the reference for TF32/BF16/FP16."""
    try:
        import torch
    except ImportError:
        return None
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    ta, tb = torch.from_dlpack(a), torch.from_dlpack(b)
    try:
        return _median_ms(lambda: torch.matmul(ta, tb), repeat=repeat)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False


def bench_matmul(quick=False):
    """SGEMM (ours: the cp.async-pipelined kernel the table picks, and the register-blocked one with
    CUFLOW_GEMM_PIPELINE=0) vs cuBLAS FP32; TF32, BF16 and FP16 tensor-core GEMMs vs cuBLAS of the same precision
    (PyTorch); the fused Dense epilogue (bias + relu in the GEMM) vs cupy.matmul + bias + relu."""
    import cupy
    import cuflow
    from cuflow.kernels import gpu
    rng = cupy.random.default_rng(0)
    big = [(4096, 4096, 4096)] + ([] if quick else [(8192, 8192, 8192)])
    rows = []
    for m, n, k in [(1024, 1024, 1024), (128, 128, 784), (128, 10, 5408)] + big:
        a = rng.standard_normal((m, k), dtype=cupy.float32)
        b = rng.standard_normal((k, n), dtype=cupy.float32)
        repeat = 5 if m >= 8192 else 15
        ref = _median_ms(lambda: cupy.matmul(a, b), repeat=repeat)
        ours = _median_ms(lambda: gpu.matmul(a, b), repeat=repeat)
        row = _result("sgemm", [m, n, k], "float32", 2.0 * m * n * k, ours, "cupy.matmul (cuBLAS, TF32 off)", ref)
        row["rel_err"] = _rel_err(gpu.matmul(a, b), cupy.matmul(a.astype(cupy.float64), b.astype(cupy.float64)))
        rows.append(_with_peak(row, "float32"))
        os.environ[gpu.GEMM_PIPELINE_ENV] = "0"
        try:
            blocked = _median_ms(lambda: gpu.matmul(a, b), repeat=repeat)
        finally:
            del os.environ[gpu.GEMM_PIPELINE_ENV]
        rows.append(_with_peak(_result("sgemm register-blocked", [m, n, k], "float32", 2.0 * m * n * k, blocked,
                                       "cupy.matmul (cuBLAS, TF32 off)", ref), "float32"))
    for precision in ("tf32", "bfloat16", "float16"):
        for m, n, k in big:
            repeat = 5 if m >= 8192 else 15
            try:
                dtype = {"tf32": cupy.float32, "float16": cupy.float16}.get(precision)
                if dtype is None:
                    import ml_dtypes
                    dtype = ml_dtypes.bfloat16
                a = rng.standard_normal((m, k), dtype=cupy.float32).astype(dtype)
                b = rng.standard_normal((k, n), dtype=cupy.float32).astype(dtype)
            except Exception as e:  # e.g. a CuPy without bfloat16 arrays
                rows.append({"name": f"gemm {precision}", "shape": [m, n, k], "dtype": precision, "ours_ms": None,
                             "ours_tflops": None, "reference": f"not run: {type(e).__name__}: {e}",
                             "reference_ms": None, "reference_tflops": None, "ratio": None})
                continue
            cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
            try:
                ours = _median_ms(lambda: gpu.matmul(a, b), repeat=repeat)
            finally:
                cuflow.config.experimental.enable_tensor_float_32_execution(False)
            cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
            try:
                got = gpu.matmul(a, b)
            finally:
                cuflow.config.experimental.enable_tensor_float_32_execution(False)
            ref = _torch_matmul_ms(a, b, precision, repeat)
            row = _result(f"gemm {precision}", [m, n, k], precision, 2.0 * m * n * k, ours,
                          f"torch.matmul (cuBLAS {precision})", ref)
            try:
                row["rel_err"] = _rel_err(got, cupy.matmul(a.astype(cupy.float64), b.astype(cupy.float64)))
            except Exception as e:  # e.g. a CuPy that cannot upcast this dtype
                row["rel_err"] = f"not checked: {type(e).__name__}: {e}"
            rows.append(_with_peak(row, precision))
    for m, n, k in [(128, 128, 784), (4096, 4096, 4096)]:
        a = rng.standard_normal((m, k), dtype=cupy.float32)
        b = rng.standard_normal((k, n), dtype=cupy.float32)
        bias = rng.standard_normal((n,), dtype=cupy.float32)
        ours = _median_ms(lambda: gpu.fused_matmul(a, b, bias, activation="relu"))
        ref = _median_ms(lambda: cupy.maximum(cupy.matmul(a, b) + bias, 0))
        rows.append(_with_peak(_result("dense bias+relu (fused epilogue)", [m, n, k], "float32", 2.0 * m * n * k,
                                       ours, "cupy.matmul + bias + relu (cuBLAS, TF32 off)", ref), "float32"))
    return rows


CONV_LAYERS = [  # (name, N, H, W, C, F, padding)
    ("seed conv1", 128, 28, 28, 1, 32, "valid"),
    ("seed conv2", 128, 13, 13, 32, 64, "valid"),
    ("resnet 56x56x64", 64, 56, 56, 64, 64, "same"),
    ("resnet 28x28x128", 64, 28, 28, 128, 128, "same"),
    ("resnet 14x14x256", 64, 14, 14, 256, 256, "same"),
]


def _precision_arrays(rng, precision, *shapes):
    """Standard-normal CuPy arrays of ``shapes`` in ``precision``'s dtype (tf32: float32)."""
    import cupy
    dtype = {"float32": cupy.float32, "tf32": cupy.float32, "float16": cupy.float16}.get(precision)
    if dtype is None:
        import ml_dtypes
        dtype = ml_dtypes.bfloat16
    return [rng.standard_normal(shape, dtype=cupy.float32).astype(dtype) for shape in shapes]


def _torch_conv_reference(x, k, bias, tpad, activation=None):
    """float64 NHWC conv2d (+ bias, relu) by PyTorch on the CPU-free path: x NHWC, k HWIO CuPy arrays, via DLPack."""
    import cupy
    import torch
    tx = torch.from_dlpack(x.astype(cupy.float64)).permute(0, 3, 1, 2)
    tk = torch.from_dlpack(k.astype(cupy.float64)).permute(3, 2, 0, 1)
    tb = torch.from_dlpack(bias.astype(cupy.float64)) if bias is not None else None
    out = torch.nn.functional.conv2d(tx, tk, tb, padding=tpad)
    if activation == "relu":
        out = torch.relu(out)
    return cupy.from_dlpack(out.permute(0, 2, 3, 1).contiguous())


def _torch_conv_fwd_bwd_ms(n, h, w, c, f, tpad, precision):
    """PyTorch conv2d forward + autograd of the input and filter gradients (cuDNN, channels_last, 3 x 3), in
    ``precision`` (TF32 only for "tf32"); None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    tdtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision, torch.float32)
    oh, ow = h + 2 * tpad - 2, w + 2 * tpad - 2
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    tx = torch.randn(n, c, h, w, device="cuda", dtype=tdtype).to(memory_format=torch.channels_last).requires_grad_()
    tw = torch.randn(f, c, 3, 3, device="cuda", dtype=tdtype).to(memory_format=torch.channels_last).requires_grad_()
    tdy = torch.randn(n, f, oh, ow, device="cuda", dtype=tdtype).to(memory_format=torch.channels_last)

    def reference():
        out = torch.nn.functional.conv2d(tx, tw, padding=tpad)
        torch.autograd.grad(out, (tx, tw), tdy)
    try:
        return _median_ms(reference)
    finally:
        torch.backends.cudnn.allow_tf32 = False


def bench_conv(quick=False, precisions=("float32", "tf32", "bfloat16")):
    """conv2d forward + backward-input + backward-filter (ours) vs PyTorch conv2d forward + autograd of both
    gradients (cuDNN, channels_last), per precision (TF32 on only for "tf32", both sides)."""
    import cupy
    import cuflow
    from cuflow.kernels import gpu
    try:
        import torch
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:
        torch = None
    rng = cupy.random.default_rng(0)
    rows = []
    for name, n, h, w, c, f, padding in (CONV_LAYERS[:2] if quick else CONV_LAYERS):
        pad = ((1, 1), (1, 1)) if padding == "same" else ((0, 0), (0, 0))
        tpad = 1 if padding == "same" else 0
        oh, ow = (h, w) if padding == "same" else (h - 2, w - 2)
        flops = 2.0 * n * oh * ow * f * 9 * c
        for precision in precisions:
            try:
                x, k, dy = _precision_arrays(rng, precision, (n, h, w, c), (3, 3, c, f), (n, oh, ow, f))
            except Exception as e:  # e.g. a CuPy without bfloat16 arrays
                rows.append({"name": "error", "error": f"conv2d {precision} {name}: {type(e).__name__}: {e}"})
                continue

            def ours():
                gpu.conv2d(x, k, padding=pad)
                gpu.conv2d_backward_input(dy, k, x.shape, strides=(1, 1), padding=pad, dilations=(1, 1))
                gpu.conv2d_backward_filter(x, dy, k.shape, strides=(1, 1), padding=pad, dilations=(1, 1))
            cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
            try:
                ours_ms = _median_ms(ours)
                parts = {part: _median_ms(fn) for part, fn in (
                    ("fwd", lambda: gpu.conv2d(x, k, padding=pad)),
                    ("bwd_input", lambda: gpu.conv2d_backward_input(dy, k, x.shape, strides=(1, 1), padding=pad,
                                                                    dilations=(1, 1))),
                    ("bwd_filter", lambda: gpu.conv2d_backward_filter(x, dy, k.shape, strides=(1, 1), padding=pad,
                                                                      dilations=(1, 1))))}
                got = gpu.conv2d(x, k, padding=pad)
            finally:
                cuflow.config.experimental.enable_tensor_float_32_execution(False)
            ref_ms, rel = None, None
            if torch is not None:
                ref_ms = _torch_conv_fwd_bwd_ms(n, h, w, c, f, tpad, precision)
                rel = _rel_err(got, _torch_conv_reference(x, k, None, tpad))
            kernel = gpu._conv_forward_kernel(x.dtype, n * oh * ow, f, 9 * c, c)[1]
            row = _result(f"conv2d fwd+bwd {precision} {name}", [n, h, w, c, f], precision, 3 * flops, ours_ms,
                          f"torch conv2d fwd+bwd channels_last (cuDNN {precision})" if torch else None, ref_ms)
            row["parts_ms"] = {part: round(ms, 4) for part, ms in parts.items()}
            row["forward_kernel"] = kernel
            row["rel_err"] = rel
            rows.append(_with_peak(row, precision))
    return rows


def bench_tilings(quick=False):
    """Every tiling of the CUDA-core GEMM and the FP32 implicit-GEMM convolution, forced one at a time
    (CUFLOW_GEMM_TILING), on the benchmark's shapes: the measurements GEMM_TABLE's estimates are refined from."""
    import cupy
    from cuflow.kernels import gpu
    from cuflow.kernels.compile import GEMM_TILINGS, PIPELINED_TILINGS
    rng = cupy.random.default_rng(1)
    names = [t.name for t in PIPELINED_TILINGS + GEMM_TILINGS]
    rows = []
    shapes = [(4096, 4096, 4096), (1024, 1024, 1024), (128, 128, 784), (128, 10, 5408), (5408, 10, 128),
              (128, 5408, 10), (2048, 512, 2048), (512, 2048, 512)]
    for m, n, k in shapes[:4] if quick else shapes:
        a = rng.standard_normal((m, k), dtype=cupy.float32)
        b = rng.standard_normal((k, n), dtype=cupy.float32)
        ref = _median_ms(lambda: cupy.matmul(a, b))
        chosen = gpu._gemm_kernel(a.dtype, m, n, k, False, False, 1)[3].name
        for name in names:
            os.environ[gpu.GEMM_TILING_ENV] = name
            try:
                ms = _median_ms(lambda: gpu.matmul(a, b))
            finally:
                del os.environ[gpu.GEMM_TILING_ENV]
            row = _result(f"sweep sgemm {name}", [m, n, k], "float32", 2.0 * m * n * k, ms, "cupy.matmul", ref)
            row["table_choice"] = chosen
            rows.append(row)
    for layer, n, h, w, c, f, padding in CONV_LAYERS[1:]:
        pad = ((1, 1), (1, 1)) if padding == "same" else ((0, 0), (0, 0))
        x = rng.standard_normal((n, h, w, c), dtype=cupy.float32)
        k = rng.standard_normal((3, 3, c, f), dtype=cupy.float32)
        oh, ow = (h, w) if padding == "same" else (h - 2, w - 2)
        dy = rng.standard_normal((n, oh, ow, f), dtype=cupy.float32)
        flops = 2.0 * n * oh * ow * f * 9 * c
        for name in [t.name for t in GEMM_TILINGS]:
            os.environ[gpu.GEMM_TILING_ENV] = name
            try:
                for part, fn in (("fwd", lambda: gpu.conv2d(x, k, padding=pad)),
                                 ("bwd_input", lambda: gpu.conv2d_backward_input(
                                     dy, k, x.shape, strides=(1, 1), padding=pad, dilations=(1, 1))),
                                 ("bwd_filter", lambda: gpu.conv2d_backward_filter(
                                     x, dy, k.shape, strides=(1, 1), padding=pad, dilations=(1, 1)))):
                    rows.append(_result(f"sweep conv2d {part} {layer} {name}", [n, h, w, c, f], "float32", flops,
                                        _median_ms(fn), None, None))
            finally:
                del os.environ[gpu.GEMM_TILING_ENV]
    return rows


def _torch_conv_forward_ms(n, h, w, c, f, padding, precision, repeat=15):
    """cuDNN forward (PyTorch, channels_last) with bias and relu, in ``precision`` (TF32 only when asked)."""
    try:
        import torch
    except ImportError:
        return None
    dtype = {"float32": torch.float32, "tf32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[precision]
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    tx = torch.randn(n, c, h, w, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    tw = torch.randn(f, c, 3, 3, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    tb = torch.randn(f, device="cuda", dtype=dtype)
    tpad = 1 if padding == "same" else 0
    try:
        with torch.no_grad():
            return _median_ms(lambda: torch.relu(torch.nn.functional.conv2d(tx, tw, tb, padding=tpad)), repeat=repeat)
    finally:
        torch.backends.cudnn.allow_tf32 = False


def bench_conv_fused(quick=False):
    """Conv2D forward with bias + relu in the epilogue (fused_conv2d): FP32 (the seed layer's direct kernel beside the
    implicit GEMM the table would pick), TF32 / BF16 / FP16 tensor cores, each vs cuDNN (PyTorch, channels_last)
    conv2d + bias + relu of the same precision."""
    import cupy
    import numpy as np
    import cuflow
    from cuflow.kernels import gpu
    rng = cupy.random.default_rng(0)
    rows = []
    for name, n, h, w, c, f, padding in (CONV_LAYERS[:2] if quick else CONV_LAYERS):
        pad = ((1, 1), (1, 1)) if padding == "same" else ((0, 0), (0, 0))
        oh, ow = (h, w) if padding == "same" else (h - 2, w - 2)
        flops = 2.0 * n * oh * ow * f * 9 * c
        for precision in ("float32", "tf32", "bfloat16", "float16"):
            try:
                dtype = {"float32": cupy.float32, "tf32": cupy.float32, "float16": cupy.float16}.get(precision)
                if dtype is None:
                    import ml_dtypes
                    dtype = ml_dtypes.bfloat16
                x = rng.standard_normal((n, h, w, c), dtype=cupy.float32).astype(dtype)
                k = rng.standard_normal((3, 3, c, f), dtype=cupy.float32).astype(dtype)
                b = rng.standard_normal((f,), dtype=cupy.float32).astype(dtype)
            except Exception as e:  # e.g. a CuPy without bfloat16 arrays
                rows.append({"name": f"conv2d bias+relu {precision} {name}", "shape": [n, h, w, c, f],
                             "dtype": precision, "ours_ms": None, "ours_tflops": None,
                             "reference": f"not run: {type(e).__name__}: {e}", "reference_ms": None,
                             "reference_tflops": None, "ratio": None})
                continue
            reference = f"torch conv2d + bias + relu channels_last (cuDNN {precision})"
            ref = _torch_conv_forward_ms(n, h, w, c, f, padding, precision)
            fused = lambda: gpu.fused_conv2d(x, k, b, activation="relu", padding=pad)  # noqa: E731
            cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
            try:
                kernel = gpu._conv_forward_kernel(np.dtype(dtype), n * oh * ow, f, 9 * c, c)[1]
                ours = _median_ms(fused)
            finally:
                cuflow.config.experimental.enable_tensor_float_32_execution(False)
            row = _result(f"conv2d bias+relu {precision} {name} [{kernel}]", [n, h, w, c, f], precision, flops,
                          ours, reference, ref)
            cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
            try:
                got = fused()
            finally:
                cuflow.config.experimental.enable_tensor_float_32_execution(False)
            try:
                row["rel_err"] = _rel_err(got, _torch_conv_reference(x, k, b, pad[0][0], "relu"))
            except Exception as e:  # no torch
                row["rel_err"] = f"not checked: {type(e).__name__}: {e}"
            rows.append(_with_peak(row, precision))
            if kernel == "conv2d_direct" and precision == "float32":  # the implicit GEMM it replaces, side by side
                tiling, _ = gpu._gemm_plan(n * oh * ow, f, 9 * c)
                os.environ[gpu.GEMM_TILING_ENV] = tiling.name
                try:
                    gemm = _median_ms(fused)
                finally:
                    del os.environ[gpu.GEMM_TILING_ENV]
                rows.append(_with_peak(_result(f"conv2d bias+relu {precision} {name} [implicit GEMM {tiling.name}]",
                                               [n, h, w, c, f], precision, flops, gemm, reference, ref), precision))
    return rows


def bench_pool():
    import cupy
    from cuflow.kernels import gpu
    x = cupy.random.default_rng(0).standard_normal((128, 26, 26, 32), dtype=cupy.float32)
    attrs = dict(ksize=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0)))
    out = gpu.max_pool2d(x, **attrs)
    ours = _median_ms(lambda: (gpu.max_pool2d(x, **attrs), gpu.max_pool2d_backward(x, out, out, **attrs)))
    ref = None
    try:
        import torch
        tx = torch.randn(128, 32, 26, 26, device="cuda").to(memory_format=torch.channels_last).requires_grad_()

        def reference():
            y = torch.nn.functional.max_pool2d(tx, 2)
            torch.autograd.grad(y, tx, y)
        ref = _median_ms(reference)
    except ImportError:
        pass
    moved = 4.0 * (x.size * 2 + out.size * 3)  # bytes read and written by forward + backward
    row = _result("max_pool2d fwd+bwd seed", [128, 26, 26, 32], "float32", moved / 1e3, ours,
                  "torch max_pool2d channels_last" if ref else None, ref)
    row["note"] = "'tflops' here is GB/s of the minimal traffic, not FLOP/s"
    return [row]


# The fused-Adam benchmark: 10M float32 parameters in layers of a model's sizes (weights and biases).
ADAM_LAYERS = [(2048, 2048), (2048,), (2048, 1024), (1024,), (1024, 2048), (2048,), (1000, 1600), (1600,), (97, 13),
               (13,)]


def bench_fused_adam():
    """optim.cu's Adam over ~10M parameters (one launch for all tensors) as memory bandwidth, against a device copy
    measured here: Adam reads variable, gradient, m, v and writes variable, m, v (28 bytes per parameter). The
    reference row is the copy's time scaled to Adam's bytes, so ``ratio`` is Adam's bandwidth / copy bandwidth
    (target >= 0.80). Also: the whole ``Adam.apply_gradients`` step and PyTorch's fused Adam, when torch is there."""
    import cupy
    import numpy as np

    import cuflow as tf
    from cuflow import optim
    from cuflow.kernels import fused
    rng = cupy.random.default_rng(0)
    params = [rng.standard_normal(shape, dtype=cupy.float32) for shape in ADAM_LAYERS]
    grads = [rng.standard_normal(shape, dtype=cupy.float32) for shape in ADAM_LAYERS]
    count = sum(int(p.size) for p in params)
    moved = 28.0 * count
    slots = [(cupy.zeros_like(p), cupy.zeros_like(p)) for p in params]
    tensors = fused.tensor_list(params, slots)
    scalars = (np.float32(1e-3), np.float32(0.1), np.float32(0.001), np.float32(1e-7), np.int32(0))
    ours = _median_ms(lambda: fused.optimizer_update("adam_update", tensors, grads, None, scalars))
    src = cupy.empty(count * 7 // 2, dtype=cupy.float32)  # a copy moving Adam's 28 bytes per parameter
    dst = cupy.empty_like(src)
    copy_ms = _median_ms(lambda: cupy.copyto(dst, src))  # reads and writes 2 * 4 * len(src) bytes = moved
    rows = [_result("fused adam (optim.cu)", [count, len(ADAM_LAYERS)], "float32", moved / 1e3, ours,
                    "device copy of the same bytes (cupy.copyto)", copy_ms)]
    with tf.device("/GPU:0"):
        variables = [tf.Variable(tf.constant(p)) for p in params]
        pairs = list(zip([tf.constant(g) for g in grads], variables))
        adam = optim.Adam(1e-3)
        step_ms = _median_ms(lambda: adam.apply_gradients(pairs))
    rows.append(_result("Adam.apply_gradients step", [count, len(ADAM_LAYERS)], "float32", moved / 1e3, step_ms,
                        "device copy of the same bytes (cupy.copyto)", copy_ms))
    try:
        import torch
        tp = [torch.randn(shape, device="cuda", requires_grad=True) for shape in ADAM_LAYERS]
        for t in tp:
            t.grad = torch.randn_like(t)
        torch_adam = torch.optim.Adam(tp, lr=1e-3, fused=True)
        torch_ms = _median_ms(torch_adam.step)
        rows.append(_result("torch fused Adam", [count, len(ADAM_LAYERS)], "float32", moved / 1e3, torch_ms,
                            "device copy of the same bytes (cupy.copyto)", copy_ms))
    except Exception as e:  # no torch, or one without CUDA: our rows stand without it
        rows.append({"name": "error", "error": f"torch fused Adam: {type(e).__name__}: {e}"})
    for row in rows:
        if "error" not in row:
            row["note"] = "'tflops' here is GB/s of the minimal traffic (28 B/parameter); ratio = bandwidth / copy's"
    return rows


# --- report ---------------------------------------------------------------------------------------------------------
def markdown(report):
    facts = report["facts"]
    lines = [f"# GPU check {facts['date']}", "",
             f"{facts['device']} (sm_{facts['compute_capability'].replace('.', '')}), driver {facts['driver']}, "
             f"CUDA {facts['cuda']}, CuPy {facts['cupy']}, torch {facts.get('torch', '-')}, commit "
             f"`{facts['commit'][:12]}`", ""]
    tests = report.get("tests")
    if tests:
        lines += [f"- `pytest -m gpu`: {tests['summary']} (rc {tests['returncode']}, {tests['seconds']} s)"]
        lines += [f"  - {failure}" for failure in tests["failures"]]
    for san in report.get("sanitizers", []):
        lines.append(f"- compute-sanitizer {san['tool']}: " + (san.get("skipped") or
                     f"{san['summary']}; pytest {san.get('pytest')} (rc {san['returncode']}"
                     f"{', timed out' if san.get('timed_out') else ''})"))
    lines += [f"- error: {e}" for e in report.get("errors", [])]
    lines += ["", "| kernel | shape | ours ms | ours TFLOP/s | reference | ref TFLOP/s | ratio | rel. error |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report["kernels"]:
        err = r.get("rel_err")
        err = f"{err:.2e}" if isinstance(err, float) else (err or "-")
        lines.append(f"| {r['name']} | {r['shape']} | {r['ours_ms']} | {r['ours_tflops']} | {r['reference'] or '-'} | "
                     f"{r['reference_tflops'] or '-'} | {r['ratio'] or '-'} | {err} |")
    return "\n".join(lines) + "\n"


# Tilings of the tensor-core GEMM swept by bench_mma_tilings (BMxBNxBK-cpSTAGES; BK in elements): per precision
# group, the default first.
# The first sweep (2026-11-26, call2) also had 128x128x32-cp3/-cp4, 128x128x64-cp4, 64x128x64-cp4, 128x64x64-cp4,
# 64x128x32-cp4 (16-bit) and 128x128x16-cp3/-cp4, 128x128x32-cp3, 64x128x32-cp4, 128x64x32-cp4 (TF32); the
# defaults below won it. 128 x 256 and 256 x 128 spill registers in TF32 (kernel report), so are swept in 16-bit only.
MMA_SWEEP = {
    "16bit": ("128x128x64-cp3", "128x256x32-cp3", "128x256x64-cp3", "256x128x32-cp3"),
    "tf32": ("128x128x32-cp4",),
}
# The tensor-core convolutions' tilings swept by bench_conv_mma_tilings (CUFLOW_CONV_MMA_TILING), the default first.
CONV_MMA_SWEEP = {"tf32": ("128x128x16-cp3", "128x128x32-cp3", "128x128x32-cp4"),
                  "bfloat16": ("128x128x32-cp3", "128x128x64-cp3")}


def _compile_mma_variant(job):
    """Child process of the tensor-core sweeps: compiles module ``base`` ("matmul_mma", "conv2d_mma",
    "conv2d_mma_filter") built for tiling ``name``."""
    base, name = job
    sys.path.insert(0, str(ROOT))
    os.environ["CUFLOW_MMA_TILING" if base == "matmul_mma" else "CUFLOW_CONV_MMA_TILING"] = name
    from cuflow.kernels import gpu
    start = time.perf_counter()
    module_name, _ = gpu._mma_module(base, "tf32")
    gpu._raw_module(module_name).get_function(gpu._MODULES[module_name].instances()[0])
    return f"{base} {name}", round(time.perf_counter() - start, 1)


def _compile_variants(jobs):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(pool.map(_compile_mma_variant, jobs))


def bench_mma_tilings(quick=False):
    """The tensor-core GEMM at 4096^3 and 8192^3 in TF32, BF16 and FP16 with each tiling of MMA_SWEEP forced
    (CUFLOW_MMA_TILING), against cuBLAS of the same precision: which tiling should be the default."""
    import cupy
    import ml_dtypes
    import cuflow
    from cuflow.kernels import gpu
    names = sorted({name for group in MMA_SWEEP.values() for name in group})
    print("compiled tensor-core variants:", _compile_variants([("matmul_mma", n) for n in names]), flush=True)
    rng = cupy.random.default_rng(2)
    rows = []
    for precision, dtype, group in (("bfloat16", ml_dtypes.bfloat16, "16bit"), ("float16", cupy.float16, "16bit"),
                                    ("tf32", cupy.float32, "tf32")):
        for size in (4096,) if quick else (4096, 8192):
            a = rng.standard_normal((size, size), dtype=cupy.float32).astype(dtype)
            b = rng.standard_normal((size, size), dtype=cupy.float32).astype(dtype)
            repeat = 5 if size >= 8192 else 10
            ref = _torch_matmul_ms(a, b, precision, repeat)
            want = cupy.matmul(a.astype(cupy.float32), b.astype(cupy.float32)) if size <= 4096 else None
            for name in MMA_SWEEP[group]:
                os.environ[gpu.MMA_TILING_ENV] = name
                cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
                try:
                    ms = _median_ms(lambda: gpu.matmul(a, b), repeat=repeat)
                    got = gpu.matmul(a, b) if want is not None else None
                except Exception as e:  # e.g. a tiling over the shared-memory limit
                    rows.append({"name": "error", "error": f"mma sweep {precision} {name}: {type(e).__name__}: {e}"})
                    continue
                finally:
                    del os.environ[gpu.MMA_TILING_ENV]
                    cuflow.config.experimental.enable_tensor_float_32_execution(False)
                row = _result(f"sweep gemm {precision} {name}", [size] * 3, precision, 2.0 * size ** 3, ms,
                              f"torch.matmul (cuBLAS {precision})", ref)
                if got is not None:
                    row["rel_err"] = _rel_err(got, want)
                rows.append(_with_peak(row, precision))
    return rows


def bench_conv_mma_tilings(quick=False):
    """The tensor-core convolutions (forward, backward-input, backward-filter) with each tiling of CONV_MMA_SWEEP
    forced (CUFLOW_CONV_MMA_TILING; the backward-filter kernel is TF32 for every precision and takes the same
    tiling), on the benchmark's layers with C, F multiples of 8. Forward checked against PyTorch in float64."""
    import cupy
    import cuflow
    from cuflow.kernels import gpu
    jobs = [(base, name) for names in CONV_MMA_SWEEP.values() for name in names
            for base in ("conv2d_mma", "conv2d_mma_filter")]
    print("compiled conv tensor-core variants:", _compile_variants(sorted(set(jobs))), flush=True)
    rng = cupy.random.default_rng(3)
    rows = []
    for layer, n, h, w, c, f, padding in CONV_LAYERS[1:2] if quick else CONV_LAYERS[1:]:
        pad = ((1, 1), (1, 1)) if padding == "same" else ((0, 0), (0, 0))
        oh, ow = (h, w) if padding == "same" else (h - 2, w - 2)
        flops = 2.0 * n * oh * ow * f * 9 * c
        for precision, names in CONV_MMA_SWEEP.items():
            x, k, dy = _precision_arrays(rng, precision, (n, h, w, c), (3, 3, c, f), (n, oh, ow, f))
            want = _torch_conv_reference(x, k, None, pad[0][0])
            ref_ms = _torch_conv_fwd_bwd_ms(n, h, w, c, f, pad[0][0], precision)
            for name in names:
                os.environ[gpu.CONV_MMA_TILING_ENV] = name
                cuflow.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
                try:
                    parts = {part: _median_ms(fn, repeat=10) for part, fn in (
                        ("fwd", lambda: gpu.conv2d(x, k, padding=pad)),
                        ("bwd_input", lambda: gpu.conv2d_backward_input(dy, k, x.shape, strides=(1, 1),
                                                                        padding=pad, dilations=(1, 1))),
                        ("bwd_filter", lambda: gpu.conv2d_backward_filter(x, dy, k.shape, strides=(1, 1),
                                                                          padding=pad, dilations=(1, 1))))}
                    got = gpu.conv2d(x, k, padding=pad)
                except Exception as e:  # e.g. over the shared-memory limit
                    rows.append({"name": "error", "error": f"conv mma sweep {precision} {name} {layer}: "
                                                           f"{type(e).__name__}: {e}"})
                    continue
                finally:
                    del os.environ[gpu.CONV_MMA_TILING_ENV]
                    cuflow.config.experimental.enable_tensor_float_32_execution(False)
                row = _result(f"sweep conv2d fwd+bwd {precision} {layer} {name}", [n, h, w, c, f], precision,
                              3 * flops, sum(parts.values()),
                              f"torch conv2d fwd+bwd channels_last (cuDNN {precision})", ref_ms)
                row["parts_ms"] = {part: round(ms, 4) for part, ms in parts.items()}
                row["rel_err"] = _rel_err(got, want)
                rows.append(_with_peak(row, precision))
    return rows


BENCHMARKS = {  # name -> function(quick) returning rows; --only picks some
    "matmul": bench_matmul,
    "conv": bench_conv,
    "conv_fused": bench_conv_fused,
    "pool": lambda quick: bench_pool(),
    "adam": lambda quick: bench_fused_adam(),
    "tilings": bench_tilings,
    "mma_tilings": bench_mma_tilings,
    "conv_mma_tilings": bench_conv_mma_tilings,
}


def _write(report, folders, stem):
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        (folder / f"{stem}.md").write_text(markdown(report))


def main(argv=None):
    refuse_mock_gpu()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-sanitizer", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller benchmark shapes")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {list(BENCHMARKS)}")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="compile processes, and pytest-xdist workers for pytest -m gpu")
    parser.add_argument("--sanitize", nargs="*", default=None, help="test files for compute-sanitizer (default: "
                        "the kernel tests)")
    parser.add_argument("--tag", default="", help="appended to the result files' names")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    report = {"facts": device_facts()}
    print(json.dumps(report["facts"]), flush=True)
    stem = f"gpu-{report['facts']['date'][:10]}-{re.sub(r'[^A-Za-z0-9]+', '-', report['facts']['device']).strip('-')}"
    stem += f"-{args.tag}" if args.tag else ""
    folders = [Path(args.out)] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else [])
    try:
        report["compile"] = warm_kernel_cache(max(1, args.workers))
        print("compiled every module:", report["compile"], flush=True)
    except Exception as e:  # the tests and benchmarks compile what they need themselves
        report["compile"] = {"error": f"{type(e).__name__}: {e}"}
        print("compiling ahead failed:", report["compile"], flush=True)
    if not args.skip_tests:
        report["tests"] = run_gpu_tests(args.workers)
        print("pytest -m gpu:", report["tests"]["summary"], report["tests"]["seconds"], "s", flush=True)
        for failure in report["tests"]["failures"]:
            print("  ", failure, flush=True)
    report["kernels"] = []
    for name in args.only.split(","):
        start = time.perf_counter()
        try:
            rows = BENCHMARKS[name](args.quick)
        except Exception as e:  # one failing family must not lose the others' figures
            rows = [{"name": "error", "error": f"{name}: {type(e).__name__}: {e}"}]
        for row in rows:
            print(row, flush=True)
        report["kernels"] += [r for r in rows if "error" not in r]
        report.setdefault("errors", []).extend(r["error"] for r in rows if "error" in r)
        report.setdefault("bench_seconds", {})[name] = round(time.perf_counter() - start, 1)
        _write(report, folders, stem)  # a run cut short still leaves what it measured
    if not args.skip_sanitizer:
        report["sanitizers"] = run_sanitizers(tests=args.sanitize)
        for san in report["sanitizers"]:
            print("sanitizer", san, flush=True)
    _write(report, folders, stem)
    print(markdown(report))


if __name__ == "__main__":
    main()

"""Everything that needs a real GPU, in one call: the gpu tests, compute-sanitizer, and the kernel benchmarks.

    python -m benchmarks.gpu [--skip-tests] [--skip-sanitizer] [--out DIR]

Writes ``gpu-<date>-<device>.json`` and ``.md`` to ``benchmarks/results/`` (and to ``$OUT`` when set). Each kernel
result is ``{"name", "shape", "dtype", "ours_ms", "ours_tflops", "reference", "reference_ms", "reference_tflops",
"ratio"}`` with ``ratio = ours_tflops / reference_tflops`` (higher is better), measured side by side in this
process with CUDA events (median of repeated runs after warm-up). Refuses to run under the mock GPU.
"""
import argparse
import datetime
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


def run_gpu_tests():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=-rfE"], cwd=ROOT, capture_output=True, text=True)
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"command": "pytest -m gpu", "returncode": proc.returncode, "summary": _summary_line(proc.stdout),
            "failures": failures[:50], "seconds": round(time.perf_counter() - start, 1),
            "tail": proc.stdout[-3000:] if proc.returncode else ""}


def run_sanitizers(tools=("memcheck", "racecheck", "synccheck")):
    sanitizer = shutil.which("compute-sanitizer") or next(
        (str(p) for p in Path("/usr/local/cuda/bin").glob("compute-sanitizer")), None)
    if sanitizer is None:
        return [{"tool": t, "skipped": "compute-sanitizer not found"} for t in tools]
    results = []
    env = dict(os.environ, CUFLOW_EXACT_ALLOC="1")
    for tool in tools:
        start = time.perf_counter()
        proc = subprocess.run([sanitizer, "--tool", tool, "--error-exitcode", "99", sys.executable, "-m", "pytest",
                               "-q", "-x", "-p", "no:cacheprovider", "tests/kernels/test_gpu_parity.py"],
                              cwd=ROOT, capture_output=True, text=True, env=env)
        text = proc.stdout + proc.stderr
        found = re.findall(r"ERROR SUMMARY: (\d+) error", text)
        results.append({"tool": tool, "returncode": proc.returncode, "errors": int(found[-1]) if found else None,
                        "summary": _summary_line(proc.stdout), "seconds": round(time.perf_counter() - start, 1),
                        "tail": text[-2000:] if proc.returncode else ""})
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


def bench_matmul(quick=False):
    import cupy
    from cuflow.kernels import gpu
    rng = cupy.random.default_rng(0)
    shapes = [(1024, 1024, 1024), (4096, 4096, 4096), (128, 128, 784), (128, 10, 5408)]
    if not quick:
        shapes.append((8192, 8192, 8192))
    rows = []
    for m, n, k in shapes:
        a = rng.standard_normal((m, k), dtype=cupy.float32)
        b = rng.standard_normal((k, n), dtype=cupy.float32)
        ours = _median_ms(lambda: gpu.matmul(a, b), repeat=5 if m >= 8192 else 15)
        ref = _median_ms(lambda: cupy.matmul(a, b), repeat=5 if m >= 8192 else 15)
        rows.append(_result("sgemm", [m, n, k], "float32", 2.0 * m * n * k, ours, "cupy.matmul (cuBLAS, TF32 off)",
                            ref))
    return rows


CONV_LAYERS = [  # (name, N, H, W, C, F, padding)
    ("seed conv1", 128, 28, 28, 1, 32, "valid"),
    ("seed conv2", 128, 13, 13, 32, 64, "valid"),
    ("resnet 56x56x64", 64, 56, 56, 64, 64, "same"),
    ("resnet 28x28x128", 64, 28, 28, 128, 128, "same"),
    ("resnet 14x14x256", 64, 14, 14, 256, 256, "same"),
]


def bench_conv(quick=False):
    import cupy
    from cuflow.kernels import gpu
    try:
        import torch
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:
        torch = None
    rng = cupy.random.default_rng(0)
    rows = []
    for name, n, h, w, c, f, padding in (CONV_LAYERS[:2] if quick else CONV_LAYERS):
        pad = ((1, 1), (1, 1)) if padding == "same" else ((0, 0), (0, 0))
        x = rng.standard_normal((n, h, w, c), dtype=cupy.float32)
        k = rng.standard_normal((3, 3, c, f), dtype=cupy.float32)
        y = gpu.conv2d(x, k, padding=pad)
        dy = rng.standard_normal(y.shape, dtype=cupy.float32)
        flops = 2.0 * y.size * 9 * c

        def ours():
            gpu.conv2d(x, k, padding=pad)
            gpu.conv2d_backward_input(dy, k, x.shape, strides=(1, 1), padding=pad, dilations=(1, 1))
            gpu.conv2d_backward_filter(x, dy, k.shape, strides=(1, 1), padding=pad, dilations=(1, 1))
        ours_ms = _median_ms(ours)
        ref_ms = None
        if torch is not None:
            tx = torch.randn(n, c, h, w, device="cuda").to(memory_format=torch.channels_last).requires_grad_()
            tw = torch.randn(f, c, 3, 3, device="cuda").to(memory_format=torch.channels_last).requires_grad_()
            tdy = torch.randn(n, f, y.shape[1], y.shape[2], device="cuda").to(memory_format=torch.channels_last)
            tpad = 1 if padding == "same" else 0

            def reference():
                out = torch.nn.functional.conv2d(tx, tw, padding=tpad)
                torch.autograd.grad(out, (tx, tw), tdy)
            ref_ms = _median_ms(reference)
        for part, fn in (("forward", lambda: gpu.conv2d(x, k, padding=pad)),):
            rows.append(_result(f"conv2d {part} {name}", [n, h, w, c, f], "float32", flops, _median_ms(fn), None,
                                None))
        rows.append(_result(f"conv2d fwd+bwd {name}", [n, h, w, c, f], "float32", 3 * flops, ours_ms,
                            "torch conv2d channels_last (cuDNN, TF32 off)" if torch else None, ref_ms))
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
                     f"{san['errors']} errors, {san['summary']} (rc {san['returncode']})"))
    lines += ["", "| kernel | shape | ours ms | ours TFLOP/s | reference | ref TFLOP/s | ratio |", "|---|---|---|---|---|---|---|"]
    for r in report["kernels"]:
        lines.append(f"| {r['name']} | {r['shape']} | {r['ours_ms']} | {r['ours_tflops']} | {r['reference'] or '-'} | "
                     f"{r['reference_tflops'] or '-'} | {r['ratio'] or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    refuse_mock_gpu()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-sanitizer", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller benchmark shapes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    report = {"facts": device_facts()}
    print(json.dumps(report["facts"]), flush=True)
    if not args.skip_tests:
        report["tests"] = run_gpu_tests()
        print("pytest -m gpu:", report["tests"]["summary"], flush=True)
    if not args.skip_sanitizer:
        report["sanitizers"] = run_sanitizers()
        for san in report["sanitizers"]:
            print("sanitizer", san, flush=True)
    report["kernels"] = []
    for bench in (lambda: bench_matmul(args.quick), lambda: bench_conv(args.quick), bench_pool):
        try:
            rows = bench()
        except Exception as e:  # one failing family must not lose the others' figures
            rows = [{"name": "error", "error": f"{type(e).__name__}: {e}"}]
        for row in rows:
            print(row, flush=True)
        report["kernels"] += [r for r in rows if "error" not in r]
        report.setdefault("errors", []).extend(r["error"] for r in rows if "error" in r)
    stem = f"gpu-{report['facts']['date'][:10]}-{re.sub(r'[^A-Za-z0-9]+', '-', report['facts']['device']).strip('-')}"
    targets = [Path(args.out)] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        (folder / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()

"""Benchmark: cuflow's CPU primitives (``cuflow/kernels/cpu.py``) against a naive NumPy version and PyTorch CPU.

Shapes are the seed CNN's: batch 128, 28x28x1 -> 32 filters 3x3 valid, 26x26x32 -> 64 filters 3x3, its 2x2 max pool,
and its dense layers as matmuls (128x784 @ 784x128, 128x5408 @ 5408x10). Each row times the forward alone and
forward + backward (input and filter/operand gradients), as the median of several repeats after warm-up.

Ratios are cuflow time / reference time: LOWER IS BETTER, below 1.00 means cuflow is faster.
References: "numpy" is a straightforward NumPy implementation (whole-batch im2col by sliding_window_view +
tensordot, col2im with per-offset adds; plain np.matmul); "torch" is torch.nn.functional + autograd on NCHW
tensors (PyTorch's default), "torch-cl" the same on channels_last tensors (oneDNN's preferred layout).

Run from the repository root:  python3 benchmarks/cpu_primitives.py [--repeats 15] [--json results/x.json]
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_cpu_primitives():
    """``cuflow.kernels.cpu``, or the file loaded by path when the package itself does not import."""
    sys.path.insert(0, ROOT)
    try:
        from cuflow.kernels import cpu
        return cpu
    except Exception as e:  # the package may be mid-edit; cpu.py needs only NumPy
        print(f"(cuflow package import failed: {e!r}; loading cuflow/kernels/cpu.py by path)")
        spec = importlib.util.spec_from_file_location("cuflow_cpu", os.path.join(ROOT, "cuflow", "kernels", "cpu.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def load_torch():
    try:
        import torch
        return torch
    except Exception:
        return None


def median_ms(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


# ---- naive NumPy references (valid 3x3 stride-1 convolution, like the seed CNN) ----

def naive_conv2d(x, w):
    kh, kw = w.shape[:2]
    cols = sliding_window_view(x, (kh, kw), axis=(1, 2))            # (N, OH, OW, C, KH, KW)
    return np.tensordot(cols, w, axes=([3, 4, 5], [2, 0, 1]))


def naive_conv2d_backward(x, w, g):
    kh, kw = w.shape[:2]
    cols = sliding_window_view(x, (kh, kw), axis=(1, 2))
    dw = np.tensordot(cols, g, axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)
    dcols = np.tensordot(g, w, axes=([3], [3]))                      # (N, OH, OW, KH, KW, C)
    dx = np.zeros_like(x)
    oh, ow = g.shape[1:3]
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + oh, j:j + ow] += dcols[:, :, :, i, j]
    return dx, dw


def naive_max_pool(x, k):
    n, h, w, c = x.shape
    return x[:, :h // k * k, :w // k * k].reshape(n, h // k, k, w // k, k, c).max(axis=(2, 4))


def conv_cases(cpu, torch, rng, repeats):
    rows = []
    for n, h, w_, c, f in [(128, 28, 28, 1, 32), (128, 26, 26, 32, 64)]:
        x = rng.standard_normal((n, h, w_, c), dtype=np.float32)
        w = rng.standard_normal((3, 3, c, f), dtype=np.float32)
        g = rng.standard_normal((n, h - 2, w_ - 2, f), dtype=np.float32)

        def ours_fb():
            cpu.conv2d(x, w)
            cpu.conv2d_backward_input(g, w, x.shape)
            cpu.conv2d_backward_filter(x, g, w.shape)

        def naive_fb():
            naive_conv2d(x, w)
            naive_conv2d_backward(x, w, g)

        case = {"name": f"conv {n}x{h}x{w_}x{c} -> {f} 3x3",
                "fwd": {"cuflow": median_ms(lambda: cpu.conv2d(x, w), repeats),
                        "numpy": median_ms(lambda: naive_conv2d(x, w), repeats)},
                "fwd+bwd": {"cuflow": median_ms(ours_fb, repeats), "numpy": median_ms(naive_fb, repeats)}}
        if torch is not None:
            for label, layout in [("torch", torch.contiguous_format), ("torch-cl", torch.channels_last)]:
                xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=layout)
                wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()
                gt = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(memory_format=layout)
                xr, wr = xt.clone().requires_grad_(), wt.clone().requires_grad_()

                def torch_fb():
                    y = torch.nn.functional.conv2d(xr, wr)
                    torch.autograd.grad(y, (xr, wr), gt)

                with torch.no_grad():
                    case["fwd"][label] = median_ms(lambda: torch.nn.functional.conv2d(xt, wt), repeats)
                case["fwd+bwd"][label] = median_ms(torch_fb, repeats)
        rows.append(case)
    return rows


def matmul_cases(cpu, torch, rng, repeats):
    rows = []
    for m, k, n in [(128, 784, 128), (128, 5408, 10)]:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        g = rng.standard_normal((m, n), dtype=np.float32)

        def ours_fb():
            cpu.matmul(a, b)
            cpu.matmul(g, b, transpose_b=True)
            cpu.matmul(a, g, transpose_a=True)

        def numpy_fb():
            a @ b
            g @ b.T
            a.T @ g

        case = {"name": f"matmul {m}x{k} @ {k}x{n}",
                "fwd": {"cuflow": median_ms(lambda: cpu.matmul(a, b), repeats),
                        "numpy": median_ms(lambda: a @ b, repeats)},
                "fwd+bwd": {"cuflow": median_ms(ours_fb, repeats), "numpy": median_ms(numpy_fb, repeats)}}
        if torch is not None:
            at, bt, gt = (torch.from_numpy(v) for v in (a, b, g))
            ar, br = at.clone().requires_grad_(), bt.clone().requires_grad_()

            def torch_fb():
                torch.autograd.grad(ar @ br, (ar, br), gt)

            with torch.no_grad():
                case["fwd"]["torch"] = median_ms(lambda: at @ bt, repeats)
            case["fwd+bwd"]["torch"] = median_ms(torch_fb, repeats)
        rows.append(case)
    return rows


def pool_cases(cpu, torch, rng, repeats):
    x = rng.standard_normal((128, 24, 24, 64), dtype=np.float32)
    pool = dict(ksize=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0)))
    out = cpu.max_pool2d(x, **pool)
    g = rng.standard_normal(out.shape, dtype=np.float32)

    def ours_fb():
        cpu.max_pool2d_backward(x, cpu.max_pool2d(x, **pool), g, **pool)

    case = {"name": "max_pool 128x24x24x64 2x2/2",
            "fwd": {"cuflow": median_ms(lambda: cpu.max_pool2d(x, **pool), repeats),
                    "numpy": median_ms(lambda: naive_max_pool(x, 2), repeats)},
            "fwd+bwd": {"cuflow": median_ms(ours_fb, repeats)}}
    if torch is not None:
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)                 # an NHWC buffer is channels_last already
        gt = torch.from_numpy(g).permute(0, 3, 1, 2)
        xr = xt.clone().requires_grad_()

        def torch_fb():
            torch.autograd.grad(torch.nn.functional.max_pool2d(xr, 2), (xr,), gt)

        with torch.no_grad():
            case["fwd"]["torch-cl"] = median_ms(lambda: torch.nn.functional.max_pool2d(xt, 2), repeats)
        case["fwd+bwd"]["torch-cl"] = median_ms(torch_fb, repeats)
    return [case]


def report(rows):
    refs = ["numpy", "torch", "torch-cl"]
    print("times in ms (median); ratio = cuflow / reference, LOWER IS BETTER (< 1.00: cuflow faster)")
    print(f"{'case':34s} {'pass':8s} {'cuflow':>8s} " + " ".join(f"{r:>9s} {'ratio':>6s}" for r in refs))
    for case in rows:
        for phase in ("fwd", "fwd+bwd"):
            t = case[phase]
            cells = [f"{t[r]:9.2f} {t['cuflow'] / t[r]:6.2f}" if r in t else f"{'-':>9s} {'-':>6s}" for r in refs]
            print(f"{case['name']:34s} {phase:8s} {t['cuflow']:8.2f} " + " ".join(cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    cpu, torch = load_cpu_primitives(), load_torch()
    torch_info = f"{torch.__version__} ({torch.get_num_threads()} threads)" if torch else "not installed"
    print(f"numpy {np.__version__}, torch {torch_info}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(0)
    rows = conv_cases(cpu, torch, rng, args.repeats) + matmul_cases(cpu, torch, rng, args.repeats) \
        + pool_cases(cpu, torch, rng, args.repeats)
    report(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()

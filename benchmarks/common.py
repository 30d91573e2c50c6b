"""Shared timing helpers for the benchmark scripts: medians of repeated runs, printed as ratios."""
import statistics
import time


def per_call_seconds(fn, number=10000, repeat=7):
    """Median over ``repeat`` runs of the time of one call of ``fn`` (averaged over ``number`` calls)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def refuse_mock_gpu():
    """Benchmarks never report timings of the mock GPU as GPU timings."""
    from cuflow.kernels import cuda
    if cuda.is_mock():
        raise SystemExit("benchmarks refuse to run under CUFLOW_MOCK_GPU: the mock GPU runs kernels on the CPU, so "
                         "its timings say nothing about a GPU. Unset CUFLOW_MOCK_GPU.")


def report(rows, header=("what", "ours", "reference", "ratio")):
    """Prints rows of (name, ours, reference name, reference, unit) with ratio = ours / reference."""
    print(f"{'benchmark':44s} {'cuflow':>12s} {'reference':>22s} {'ratio':>8s}")
    for name, ours, ref_name, ref, unit in rows:
        ratio = ours / ref if ref else float("nan")
        print(f"{name:44s} {ours:10.3f}{unit:>2s} {ref_name + f' {ref:.3f}{unit}':>22s} {ratio:7.2f}x")

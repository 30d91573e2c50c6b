"""Eager overhead of a tiny op: a 1-element add with no tape active, on the CPU.

Target (issue: core stack): <= 2 us per op and <= 1.5x PyTorch. Prints time per call and the ratio
cuflow / reference (lower is better). Run: python benchmarks/eager_overhead.py
"""
import numpy as np

try:
    from benchmarks.common import per_call_seconds, refuse_mock_gpu, report
except ImportError:  # run as a script from the benchmarks folder
    from common import per_call_seconds, refuse_mock_gpu, report

import cuflow as tf


def main():
    refuse_mock_gpu()
    with tf.device("/CPU:0"):
        a, b = tf.constant([1.0]), tf.constant([2.0])
        x = tf.Variable([1.0])
    na, nb = np.array([1.0], np.float32), np.array([2.0], np.float32)
    us = 1e6
    ours = per_call_seconds(lambda: a + b) * us
    ours_fn = per_call_seconds(lambda: tf.add(a, b)) * us
    ours_scalar = per_call_seconds(lambda: a * 2.0) * us
    ours_relu = per_call_seconds(lambda: tf.nn.relu(a)) * us
    ours_var = per_call_seconds(lambda: x + b) * us
    numpy_add = per_call_seconds(lambda: na + nb) * us
    rows = [("a + b (Tensor operator)", ours, "numpy", numpy_add, "us"),
            ("tf.add(a, b)", ours_fn, "numpy", numpy_add, "us"),
            ("a * 2.0 (Python scalar)", ours_scalar, "numpy", per_call_seconds(lambda: na * 2.0) * us, "us"),
            ("tf.nn.relu(a)", ours_relu, "numpy", per_call_seconds(lambda: np.maximum(na, 0)) * us, "us"),
            ("variable + b", ours_var, "numpy", numpy_add, "us")]
    try:
        import torch
        torch.set_num_threads(1)
        ta, tb = torch.tensor([1.0]), torch.tensor([2.0])
        torch_add = per_call_seconds(lambda: ta + tb) * us
        rows += [("a + b (Tensor operator)", ours, "torch", torch_add, "us"),
                 ("tf.nn.relu(a)", ours_relu, "torch", per_call_seconds(lambda: torch.relu(ta)) * us, "us")]
    except ImportError:
        print("(PyTorch not installed: pip install torch==2.13.0 for the PyTorch reference)")
    report(rows)
    print(f"target: <= 2 us per op (measured {ours:.2f} us) and <= 1.5x PyTorch; ratio = cuflow / reference, "
          "lower is better")


if __name__ == "__main__":
    main()

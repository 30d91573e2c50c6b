"""``CUFLOW_KERNEL_LOG=1``: one line on stderr per kernel launch of cuflow's own CUDA kernels.

Every launcher in ``gpu.py`` (and the fused elementwise kernels) calls :func:`launch` right before launching, so a
user can see which kernel and configuration ran for which problem::

    CUFLOW_KERNEL_LOG=1 python train.py
    cuflow kernel: gemm_pipelined<float, 128, 128, 8, 8, 8, 3> [matmul_128x128-cp3] grid=(8, 8, 1) block=(256,) \
shape=m=1024 n=1024 k=1024 batches=1 NN epilogue=bias+relu

The variable is read at each launch (set it or unset it at any time); ``0`` or empty is off, ``1`` on.
"""
import os
import sys

__all__ = ["ENV", "enabled", "launch"]

ENV = "CUFLOW_KERNEL_LOG"


def enabled():
    """Whether launches are logged: ``CUFLOW_KERNEL_LOG`` is ``1``. Any value but ``0``, ``1`` or empty is an error."""
    value = os.environ.get(ENV, "")
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(f"{ENV} must be 0 or 1 (or unset), got {value!r}")


def launch(kernel, config, grid, block, shape, shared_bytes=0):
    """Prints ``cuflow kernel: <kernel> [<config>] grid=... block=... [smem=...] shape=<shape>`` to stderr when
    logging is on.

    Args:
        kernel: the kernel's name (its template instance, e.g. ``gemm<float, 128, 128, 16, 8, 8>``).
        config: the configuration chosen (module / tiling name, e.g. ``matmul_128x128``).
        grid, block: the launch dimensions (tuples).
        shape: the problem, as a string or a dict (``{"m": 128, "n": 10}`` prints ``m=128 n=10``).
        shared_bytes: dynamic shared memory of the launch (printed when not 0).
    """
    if not enabled():
        return
    if isinstance(shape, dict):
        shape = " ".join(f"{k}={v}" for k, v in shape.items())
    smem = f" smem={shared_bytes}" if shared_bytes else ""
    print(f"cuflow kernel: {kernel} [{config}] grid={tuple(grid)} block={tuple(block)}{smem} shape={shape}",
          file=sys.stderr, flush=True)

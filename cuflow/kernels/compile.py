"""The table of cuflow's CUDA kernels, and the compile check CI runs without a GPU.

:data:`MODULES` lists every CUDA module: the ``.cu`` files it is built from and the template instances it exports.
``gpu.py`` loads exactly these instances with ``cupy.RawModule``, the mock GPU builds the same sources, and
``python -m cuflow.kernels.compile`` compiles each of them to **cubin** for sm_80 and sm_90 with NVRTC (through
NVIDIA's ``cuda-bindings``), so ptxas runs and an instruction the target lacks fails here, not on a user's GPU.
Compiling to PTX only would prove that the C++ parses (see ``GPU_FACTS.md``).

Tile sizes live here, beside the instances that bake them in, so the checked instances are the launched ones.
This module imports neither CuPy nor cuda-bindings at import time: ``gpu.py`` reads the table on machines that lack
cuda-bindings, and only the compile functions need it.
"""
import dataclasses
import pathlib
import sys

__all__ = [
    "GemmTiling", "GEMM_TILINGS", "GEMM_TILE", "GEMM_THREADS", "POOL_THREADS", "KERNEL_DTYPES", "NVRTC_OPTIONS",
    "PIPELINED_TILINGS", "SPLIT_K_TILINGS", "MmaTiling", "MMA_TILING", "MMA_PRECISIONS", "MMA_LARGE_PRECISIONS",
    "CONV_MMA_TILING", "CONV_MMA_PRECISIONS", "DirectConvTiling", "DIRECT_CONV",
    "CONV_MMA_KERNELS",
    "MODULES", "KernelModule", "gemm_module_name", "CompileError",
    "module_source", "compile_source", "compile_module", "compile_all",
]

# --- Tiling choices (read by gpu.py's launchers) ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GemmTiling:
    """A tiling of matmul.cu's register-blocked GEMM core (see the comment on top of matmul.cu).

    One block of GEMM_THREADS threads (a 16 x 16 grid) computes a ``bm x bn`` tile of C, each thread ``tm x tn``
    outputs in registers (``bm = 16 * tm``, ``bn = 16 * tn``), walking K ``bk`` at a time through shared memory.
    ``str()`` gives the kernels' template arguments after the dtype: ``gemm<float, 128, 128, 8, 8, 8>``.
    """
    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    stages: int = 0  # > 0: matmul_async.cu's cp.async-pipelined SGEMM with this many shared-memory stages

    def __str__(self):
        return f"{self.bm}, {self.bn}, {self.bk}, {self.tm}, {self.tn}" + (f", {self.stages}" if self.stages else "")

    @property
    def name(self):
        return f"{self.bm}x{self.bn}" + (f"-cp{self.stages}" if self.stages else "")


@dataclasses.dataclass(frozen=True)
class MmaTiling:
    """A tiling of matmul_async.cu's tensor-core GEMM ``gemm_mma<P, bm, bn, bk, stages>``: 8 warps (2 x 4), each a
    ``bm/2 x bn/4`` tile of mma tiles, K walked ``bk`` at a time through ``stages`` cp.async stages held in dynamic
    shared memory (:meth:`shared_bytes`)."""
    bm: int
    bn: int
    bk: int
    stages: int

    def __str__(self):
        return f"{self.bm}, {self.bn}, {self.bk}, {self.stages}"

    @property
    def name(self):
        return f"{self.bm}x{self.bn}x{self.bk}-cp{self.stages}"

    def shared_bytes(self, element_bytes):
        """Dynamic shared memory of the kernel: matmul_async.cu's StagedTile sizes for the larger of the two layouts
        of each operand (k inner: rows x (bk + pad), pad 16 bytes (TF32) or 8 halves; k outer: bk x (rows + 8))."""
        pad_k = 4 if element_bytes == 4 else 8
        tile = lambda rows: max(rows * (self.bk + pad_k), self.bk * (rows + 8))  # noqa: E731
        return self.stages * (tile(self.bm) + tile(self.bn)) * element_bytes


# Every tiling gpu.py may launch, largest first (gpu.py's table picks one per problem size). The 16 x 16 one is the
# one-output-per-thread kernel, for problems too small to fill the GPU with bigger tiles.
GEMM_TILINGS = (
    GemmTiling(128, 128, 16, 8, 8),
    GemmTiling(128, 64, 8, 8, 4),
    GemmTiling(64, 64, 16, 4, 4),
    GemmTiling(16, 16, 16, 1, 1),
)
GEMM_TILE = GEMM_TILINGS[0]  # the tiling of MODULES[0], the big-problem matmul
SPLIT_K_TILINGS = (GEMM_TILINGS[2], GEMM_TILINGS[3])  # 64 x 64 and 16 x 16: the split-K kernels' tilings
# The cp.async-pipelined versions (float32 only, 16-byte aligned operands; matmul_async.cu) of the big tilings. BK is
# what keeps 3 stages of both tiles in static shared memory (< 48 KB).
PIPELINED_TILINGS = (
    GemmTiling(128, 128, 8, 8, 8, stages=3),
    GemmTiling(128, 64, 16, 8, 4, stages=3),
    GemmTiling(64, 64, 16, 4, 4, stages=3),
)
# The tensor-core GEMM: 128 x 128 blocks; BK = 32 (TF32, 4 mma k-steps of 8) with 4 stages, 64 (BF16/FP16, 4 of 16)
# with 3. Chosen by the H200 sweep of 2026-11-26 (benchmarks/results/gpu-2026-11-26-NVIDIA-H200-call2.json, "sweep
# gemm" rows, 4096^3 / 8192^3 TFLOP/s): BF16 194 / 205 against 165 / 163 for the earlier BK = 32, 3 stages; TF32
# 74 / 76 against 61 / 64 for BK = 16, 3 stages. A deeper K tile halves the barriers and fragment-load bubbles per
# mma; 64 x 128 and 128 x 64 blocks were slower (more blocks, each re-reading its operands).
# For big 16-bit problems (gpu.py's _mma_gemm: at least a full wave of its tiles), 128 x 256 blocks, each warp a
# 64 x 64 tile (twice the mma per fragment load): BF16 243 / 277 TFLOP/s at 4096^3 / 8192^3 against 188 / 184 for
# 128 x 128 in the same run (call3 of that date; 246 registers, no spills). In TF32 it spills, so TF32 has none.
MMA_TILING = {"tf32": MmaTiling(128, 128, 32, 4), "16bit": MmaTiling(128, 128, 64, 3),
              "16bit_large": MmaTiling(128, 256, 64, 3)}
# The convolutions' tensor-core tilings: the earlier ones, until a GPU run measures the deeper tiles on them (their
# K = KH*KW*C is often short: 288 for the seed's 3 x 3 x 32, which a 64-deep tile would pad by a third).
CONV_MMA_TILING = {"tf32": MmaTiling(128, 128, 16, 3), "16bit": MmaTiling(128, 128, 32, 3)}
# Precision keys of gemm_mma (and of the conv kernels) -> its template argument P, and the tiling each uses.
MMA_PRECISIONS = {"tf32": ("0", MMA_TILING["tf32"]), "bfloat16": ("1", MMA_TILING["16bit"]),
                  "float16": ("2", MMA_TILING["16bit"])}
MMA_LARGE_PRECISIONS = {"bfloat16": ("1", MMA_TILING["16bit_large"]), "float16": ("2", MMA_TILING["16bit_large"])}
CONV_MMA_PRECISIONS = {"tf32": ("0", CONV_MMA_TILING["tf32"]), "bfloat16": ("1", CONV_MMA_TILING["16bit"]),
                       "float16": ("2", CONV_MMA_TILING["16bit"])}


@dataclasses.dataclass(frozen=True)
class DirectConvTiling:
    """conv2d.cu's ``conv2d_direct`` (float32): a block computes ``bm`` output cells (8 warps x DIRECT_PIXELS) x
    ``bn`` output channels (one per lane), for filters of at most ``max_taps`` taps (KH * KW * C)."""
    bm: int = 32
    bn: int = 32
    max_taps: int = 16
    name: str = "direct"


DIRECT_CONV = DirectConvTiling()
GEMM_THREADS = 256   # threads per block of every GEMM tiling (matmul.cu's GEMM_THREADS)
POOL_THREADS = 256   # pooling: threads per block of the 1-D grid-stride kernels

# dtypes our kernels are instantiated for (numpy dtype name -> CUDA type); others take CuPy paths in gpu.py.
KERNEL_DTYPES = {"float32": "float", "float64": "double"}

NVRTC_OPTIONS = ("-std=c++17",)  # gpu.py passes these to RawModule, which adds -arch for the present GPU
ARCHS = ("sm_80", "sm_90")

_HERE = pathlib.Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class KernelModule:
    """One CUDA module: ``files`` concatenated in order, exporting ``kernels`` for every key of ``dtypes``.

    ``dtypes`` maps a key (a numpy dtype name, or a precision such as ``"tf32"``) to the kernels' first template
    argument (default KERNEL_DTYPES: ``float32 -> float``). ``tile`` gives the template arguments after it (a
    GemmTiling: ``gemm<float, 128, 128, 8, 8, 8>``), or is None if they take only the first. ``shared`` maps a key to
    the dynamic shared memory its kernels are launched with (bytes; the report's occupancy counts it).
    """
    name: str
    files: tuple
    kernels: tuple
    tile: object = None
    dtypes: tuple = tuple(KERNEL_DTYPES.items())
    shared: tuple = ()

    def instance(self, kernel, dtype):
        """The name expression of ``kernel`` for ``dtype`` (a key of ``dtypes``, or a numpy dtype):
        ``gemm<float, 16, 16, ...>``."""
        args = [dict(self.dtypes)[str(dtype)]] + ([] if self.tile is None else [str(self.tile)])
        return f"{kernel}<{', '.join(args)}>"

    def instances(self):
        """Every name expression this module exports."""
        return tuple(self.instance(k, d) for k in self.kernels for d, _ in self.dtypes)

    def dynamic_shared(self, dtype):
        """Dynamic shared memory (bytes) the kernels of ``dtype`` are launched with; 0 for static-only kernels."""
        return dict(self.shared).get(str(dtype), 0)


def gemm_module_name(family, tiling):
    """The name of the module of GEMM ``family`` ("matmul" or "conv2d") built for ``tiling``: ``matmul_128x128``."""
    return f"{family}_{tiling.name}"


# The tensor-core modules' instances: one per precision (template arguments "P, BM, BN, BK, STAGES") and the dynamic
# shared memory each is launched with.
def _mma_instances(precisions):
    """KernelModule arguments of a tensor-core module: one instance per precision (template arguments "P, BM, BN,
    BK, STAGES") and the dynamic shared memory each is launched with."""
    return {"dtypes": tuple((key, f"{p}, {t}") for key, (p, t) in precisions.items()),
            "shared": tuple((key, t.shared_bytes(4 if key == "tf32" else 2)) for key, (_, t) in precisions.items())}


_MMA_INSTANCES = _mma_instances(MMA_PRECISIONS)
_CONV_MMA_INSTANCES = _mma_instances(CONV_MMA_PRECISIONS)
CONV_MMA_KERNELS = ("conv2d_forward_mma", "conv2d_backward_input_mma")  # conv2d_mma.cu's kernels of every precision
# conv2d_mma.cu's backward-filter kernel, TF32 only: its split-K partial sums stay float32 (gpu.py feeds it 16-bit
# inputs as float32 copies, exact in TF32), so one instance serves the three precisions.
_CONV_MMA_FILTER = {key: tuple(item for item in items if item[0] == "tf32")
                    for key, items in _CONV_MMA_INSTANCES.items()}

# One module per GEMM family and tiling, so gpu.py compiles only the tilings a program launches.
MODULES = (
    *(KernelModule(gemm_module_name("matmul", t), ("matmul.cu",), ("gemm",), tile=t) for t in GEMM_TILINGS),
    # conv2d.cu reuses matmul.cu's GEMM core, so it is compiled after it in one module.
    *(KernelModule(gemm_module_name("conv2d", t), ("matmul.cu", "conv2d.cu"),
                   ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter"), tile=t)
      for t in GEMM_TILINGS),
    # Split-K for products with few output tiles and a long K (gpu.py's _split_k_plan): the slices, and their sum.
    *(KernelModule(gemm_module_name("matmul_split_k", t), ("matmul.cu",), ("gemm_split_k",), tile=t)
      for t in SPLIT_K_TILINGS),
    KernelModule("matmul_split_k_reduce", ("matmul.cu",), ("gemm_split_k_reduce",)),
    KernelModule("pool", ("pool.cu",), ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")),
    # Fused kernels, launched by fused.py: multi-tensor optimizer updates, softmax cross-entropy, Philox.
    KernelModule("optim", ("optim.cu",), ("sgd_update", "adam_update", "rmsprop_update", "adagrad_update")),
    KernelModule("softmax_ce", ("softmax_ce.cu",), ("sparse_softmax_cross_entropy",
                                                    "sparse_softmax_cross_entropy_backward", "softmax_cross_entropy",
                                                    "softmax_cross_entropy_backward")),
    KernelModule("philox", ("philox.cu",), ("philox_uniform", "philox_normal", "philox_truncated_normal")),
    # The cp.async pipelines need ptx.cuh (NVRTC has no include paths: its text comes first) and matmul.cu's epilogue.
    *(KernelModule(gemm_module_name("matmul", t), ("ptx.cuh", "matmul.cu", "matmul_async.cu"), ("gemm_pipelined",),
                   tile=t, dtypes=(("float32", "float"),)) for t in PIPELINED_TILINGS),
    KernelModule("matmul_mma", ("ptx.cuh", "matmul.cu", "matmul_async.cu"), ("gemm_mma",), **_MMA_INSTANCES),
    KernelModule("matmul_mma_large", ("ptx.cuh", "matmul.cu", "matmul_async.cu"), ("gemm_mma",),
                 **_mma_instances(MMA_LARGE_PRECISIONS)),
    # Convolution: the direct kernel for few taps, and the implicit GEMMs on tensor cores (matmul_async.cu's core).
    KernelModule("conv2d_direct", ("matmul.cu", "conv2d.cu"), ("conv2d_direct",), dtypes=(("float32", "float"),)),
    KernelModule("conv2d_mma", ("ptx.cuh", "matmul.cu", "matmul_async.cu", "conv2d.cu", "conv2d_mma.cu"),
                 CONV_MMA_KERNELS, **_CONV_MMA_INSTANCES),
    KernelModule("conv2d_mma_filter", ("ptx.cuh", "matmul.cu", "matmul_async.cu", "conv2d.cu", "conv2d_mma.cu"),
                 ("conv2d_backward_filter_mma",), **_CONV_MMA_FILTER),
)


class CompileError(RuntimeError):
    """NVRTC rejected a CUDA source; the message holds its log."""


def module_source(module):
    """The CUDA source of ``module``: its files in order, each under a ``#line`` so errors name the right file."""
    return "".join(f'#line 1 "{name}"\n' + (_HERE / name).read_text() for name in module.files)


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as e:
        raise ImportError(
            "the CUDA compile check needs NVIDIA's NVRTC bindings: pip install cuda-bindings "
            "(or pip install 'cuflow[test]')") from e
    return nvrtc


def _check(nvrtc, result, what, prog=None):
    """Unpacks a cuda-bindings ``(err, *values)`` tuple; raises CompileError with the program log on failure."""
    err, *values = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = _program_log(nvrtc, prog) if prog is not None else ""
        raise CompileError(f"{what} failed ({err.name})\n{log}")
    return values[0] if len(values) == 1 else values


def _program_log(nvrtc, prog):
    _, size = nvrtc.nvrtcGetProgramLogSize(prog)
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, log)
    return log.rstrip(b"\x00 ").decode(errors="replace")


def compile_source(source, name, arch, name_expressions=(), options=NVRTC_OPTIONS):
    """Compiles CUDA ``source`` to a cubin for ``arch`` (e.g. ``"sm_90"``) with NVRTC, and returns its bytes.

    Args:
        source: CUDA C++ text.
        name: file name used in diagnostics.
        arch: a real architecture (``sm_80``, ``sm_90``, ``sm_90a``), so ptxas runs.
        name_expressions: template instances to instantiate (``"gemm<float, 16, 16, 16, 1, 1>"``); each must resolve.
        options: extra NVRTC options.

    Raises:
        CompileError: NVRTC or ptxas rejected the source (the message holds the log), or a name expression did
            not resolve to a kernel.
        ImportError: cuda-bindings is not installed.
    """
    nvrtc = _nvrtc()
    prog = _check(nvrtc, nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        for expr in name_expressions:
            _check(nvrtc, nvrtc.nvrtcAddNameExpression(prog, expr.encode()), f"adding {expr}", prog)
        opts = [o.encode() for o in (*options, f"-arch={arch}")]
        _check(nvrtc, nvrtc.nvrtcCompileProgram(prog, len(opts), opts), f"compiling {name} for {arch}", prog)
        for expr in name_expressions:
            _check(nvrtc, nvrtc.nvrtcGetLoweredName(prog, expr.encode()), f"resolving {expr} in {name}", prog)
        size = _check(nvrtc, nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize", prog)
        cubin = b" " * size
        _check(nvrtc, nvrtc.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN", prog)
        return cubin
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


_CUBINS = {}  # (module name, arch) -> cubin: the CI check and the kernel report compile each module once


def compile_module(module, arch):
    """Compiles one entry of :data:`MODULES` with all its instances for ``arch``; returns the cubin bytes."""
    key = (module.name, arch)
    if key not in _CUBINS:
        _CUBINS[key] = compile_source(module_source(module), f"{module.name}.cu", arch, module.instances())
    return _CUBINS[key]


def _compile_task(module_name, arch):
    """A worker of compile_all(jobs > 1): the cubin of one module for one arch, compiled in its own process."""
    return compile_module(next(m for m in MODULES if m.name == module_name), arch)


def compile_all(archs=ARCHS, jobs=1):
    """Compiles every module for every arch; returns ``[(module name, files, arch, cubin size in bytes), ...]``.

    With ``jobs > 1`` the modules not yet in this process's cache are compiled by that many processes at once (NVRTC
    serializes compiles inside one process) and their cubins stored in the cache, so :func:`compile_module` and the
    kernel report then find them.

    Raises CompileError on the first failure.
    """
    archs = tuple(archs)
    missing = [(m.name, arch) for m in MODULES for arch in archs if (m.name, arch) not in _CUBINS]
    if jobs > 1 and len(missing) > 1:
        import concurrent.futures
        import multiprocessing
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(missing)),
                                                    mp_context=multiprocessing.get_context("spawn")) as pool:
            for key, cubin in zip(missing, pool.map(_compile_task, *zip(*missing))):
                _CUBINS[key] = cubin
    return [(m.name, m.files, arch, len(compile_module(m, arch))) for m in MODULES for arch in archs]


def main(argv=None):
    """``python -m cuflow.kernels.compile [arch ...]``: one line per (module, arch); exit 1 with the log on failure."""
    archs = tuple(argv if argv is not None else sys.argv[1:]) or ARCHS
    for module in MODULES:
        for arch in archs:
            try:
                size = len(compile_module(module, arch))
            except CompileError as e:
                print(f"FAILED {module.name} ({' + '.join(module.files)}) for {arch}:\n{e}", file=sys.stderr)
                return 1
            print(f"{module.name:14s} {' + '.join(module.files):22s} {arch}  cubin {size:7d} bytes  "
                  f"{len(module.instances())} kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cuflow/kernels/ptx.cuh: its inline PTX passes ptxas (cubin for sm_80 and sm_90, no GPU needed), and its CPU
emulations, run by the mock GPU, give NumPy's answers — and a fragment-layout bug gives a large error."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cuflow.kernels import compile as kernels_compile
from cuflow.kernels import emu

HEADER = Path(kernels_compile.__file__).parent / "ptx.cuh"
KERNELS = Path(__file__).parent / "ptx_kernels.cu"
KERNEL_NAMES = ("mma_tile_tf32", "mma_tile_tf32_swapped", "round_tf32", "cp_async_stage_sum",
                "cp_async_stage_sum_racy", "mma_tile_bf16", "mma_tile_bf16_trans_b", "mma_tile_f16",
                "mma_tile_f16_trans_b", "mma_tile_bf16_swapped", "convert_16bit")
PACKAGE_ROOT = Path(kernels_compile.__file__).parents[2]
STAGE_THREADS, TILE = 64, 256  # ptx_kernels.cu's cp_async_stage_sum


def ptx_source():
    """ptx.cuh followed by the test kernels; NVRTC has no include paths, so the header text is prepended."""
    return (f'#line 1 "{HEADER}"\n' + HEADER.read_text() + f'\n#line 1 "{KERNELS}"\n' + KERNELS.read_text())


# --- (a) compile check: ptxas validates every asm statement ---------------------------------------------------
@pytest.mark.parametrize("arch", kernels_compile.ARCHS)
def test_ptx_kernels_compile_to_cubin(arch):
    pytest.importorskip("cuda.bindings.nvrtc")
    cubin = kernels_compile.compile_source(ptx_source(), "ptx_kernels.cu", arch)
    assert cubin[:4] == b"\x7fELF"
    for name in KERNEL_NAMES:
        assert name.encode() in cubin


def test_broken_ptx_in_the_header_fails_the_compile_check():
    """A wrong fragment operand count in the mma asm is caught by ptxas, not just parsed."""
    pytest.importorskip("cuda.bindings.nvrtc")
    broken = ptx_source().replace("{%8, %9}", "{%8}", 1)
    assert broken != ptx_source()
    with pytest.raises(kernels_compile.CompileError):
        kernels_compile.compile_source(broken, "ptx_kernels.cu", "sm_80")


# --- (b) the emulations under the mock GPU --------------------------------------------------------------------
@pytest.fixture(scope="module")
def module():
    if not emu.compiler_available():
        pytest.skip("the mock GPU needs g++ 10+ or clang++ 12+")
    return emu.Module(ptx_source(), filename="ptx_kernels.cu")


def tf32(x):
    """NumPy's cvt.rna.tf32.f32 for finite values: round to nearest, ties away, to 10 mantissa bits."""
    bits = np.asarray(x, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def test_cvt_rna_tf32_matches_the_rounding_rule(module):
    one = np.float32(1)
    tie = np.float32(1 + 2.0 ** -11)                   # exactly half a tf32 ulp above 1: rounds away from zero
    below = np.nextafter(tie, one)
    specials = np.array([0, -0.0, tie, -tie, below, -below, 3.0e-39, np.finfo(np.float32).max,
                         np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([specials, np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 100])
    out = np.zeros_like(x)
    module.get_function("round_tf32")(((x.size + 127) // 128,), (128,), (x, out, np.int32(x.size)))
    assert out[2] == np.float32(1 + 2.0 ** -10) and out[3] == -np.float32(1 + 2.0 ** -10)
    assert out[4] == 1 and out[5] == -1
    assert out[7] == np.inf                            # FLT_MAX rounds up to Inf
    assert out[8] == np.inf and out[9] == -np.inf and np.isnan(out[10])
    finite = np.isfinite(x)
    finite[7] = False
    np.testing.assert_array_equal(out[finite].view(np.uint32), tf32(x[finite]).view(np.uint32))


def mma(module, a, b, c, name="mma_tile_tf32", order="rotate"):
    d = np.full((16, 8), np.nan, np.float32)
    module.get_function(name)((1,), (32,), (a, b, c, d), order=order, seed=7)
    return d


@pytest.mark.parametrize("order", ["forward", "reverse", "random"])
def test_mma_m16n8k8_tf32_matches_numpy(module, order):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal((8, 8)).astype(np.float32)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    expected = tf32(a).astype(np.float64) @ tf32(b).astype(np.float64) + c
    scale = np.abs(tf32(a)).astype(np.float64) @ np.abs(tf32(b)) + np.abs(c)
    d = mma(module, a, b, c, order=order)
    assert np.all(np.abs(d - expected) <= 1e-5 * scale), np.abs(d - expected).max()
    # Inputs are rounded (not truncated) to tf32 before the product: off from the f32 product by ~1e-3 relative.
    assert np.abs(d - (a.astype(np.float64) @ b + c)).max() > 1e-5


def test_swapped_fragment_register_gives_a_large_error(module):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal((8, 8)).astype(np.float32)
    c = np.zeros((16, 8), np.float32)
    expected = tf32(a).astype(np.float64) @ tf32(b).astype(np.float64)
    right = mma(module, a, b, c)
    wrong = mma(module, a, b, c, name="mma_tile_tf32_swapped")
    assert np.abs(right - expected).max() < 1e-4
    assert np.abs(wrong - expected).max() > 1.0


@pytest.mark.parametrize("blocks,tiles", [(1, 1), (3, 2), (2, 5)])
def test_cp_async_stage_sum_matches_numpy(module, blocks, tiles):
    x = np.random.default_rng(3).standard_normal(blocks * tiles * TILE).astype(np.float32)
    assert x.ctypes.data % 16 == 0
    out = np.full(blocks * STAGE_THREADS, np.nan, np.float32)
    module.get_function("cp_async_stage_sum")((blocks,), (STAGE_THREADS,), (x, out, np.int32(tiles)),
                                              order="random", seed=blocks)
    expected = x.astype(np.float64).reshape(blocks, tiles, TILE // STAGE_THREADS, STAGE_THREADS).sum(axis=(1, 2))
    np.testing.assert_allclose(out, expected.ravel(), rtol=1e-5, atol=1e-5)


def _half_types():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return {"bf16": np.dtype(ml_dtypes.bfloat16), "f16": np.dtype(np.float16)}


def test_16bit_conversions_match_numpy_rounding(module):
    """float -> bfloat16 / float16 bits round to nearest even (NumPy's and ml_dtypes' casts), and back exactly."""
    types = _half_types()
    rng = np.random.default_rng(5)
    specials = [0.0, -0.0, 1.0, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 65504.0, 65520.0,
                65519.0, 1e5, 6.0e-8, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -14, 2.0 ** -15 * 1.5, 3.0e38, np.inf, -np.inf]
    x = np.concatenate([np.array(specials, np.float32), rng.standard_normal(2000).astype(np.float32) * 10.0 ** rng.
                        integers(-9, 6, 2000)]).astype(np.float32)
    n = x.size
    bf, h = np.zeros(n, np.uint16), np.zeros(n, np.uint16)
    bf_back, h_back = np.zeros(n, np.float32), np.zeros(n, np.float32)
    module.get_function("convert_16bit")(((n + 127) // 128,), (128,), (x, bf, h, bf_back, h_back, np.int32(n)))
    with np.errstate(over="ignore"):  # 1e5 and 3e38 overflow float16 to Inf, as they should
        want_bf, want_h = x.astype(types["bf16"]), x.astype(types["f16"])
    np.testing.assert_array_equal(bf, want_bf.view(np.uint16))
    np.testing.assert_array_equal(h, want_h.view(np.uint16))
    np.testing.assert_array_equal(bf_back, want_bf.astype(np.float32))
    np.testing.assert_array_equal(h_back, want_h.astype(np.float32))
    nan = np.full(1, np.nan, np.float32)
    outs = [np.zeros(1, np.uint16), np.zeros(1, np.uint16), np.zeros(1, np.float32), np.zeros(1, np.float32)]
    module.get_function("convert_16bit")((1,), (32,), (nan, *outs, np.int32(1)))
    assert np.isnan(outs[2][0]) and np.isnan(outs[3][0])


def mma16(module, name, a, b, c):
    d = np.full((16, 8), np.nan, np.float32)
    module.get_function(name)((1,), (32,), (a.view(np.uint16), b.view(np.uint16), c, d), order="random", seed=3)
    return d


@pytest.mark.parametrize("kind", ["bf16", "f16"])
@pytest.mark.parametrize("layout", ["", "_trans_b"], ids=["b-k-outer-ldmatrix.trans", "b-k-inner-ldmatrix"])
def test_mma_m16n8k16_through_ldmatrix_matches_numpy(module, kind, layout):
    """ldmatrix (with and without .trans) puts A and B in the PTX ISA's m16n8k16 fragments, and the mma gives
    NumPy's float64 product of the 16-bit values (summed in float32: ~1e-6 relative)."""
    dtype = _half_types()[kind]
    rng = np.random.default_rng(6)
    a = rng.standard_normal((16, 16)).astype(dtype)
    b = rng.standard_normal((16, 8)).astype(dtype)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64) + c
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)) + np.abs(c)
    d = mma16(module, f"mma_tile_{kind}{layout}", a, b, c)
    assert np.all(np.abs(d - expected) <= 1e-6 * scale), np.abs(d - expected).max()


def test_swapped_16bit_fragment_register_gives_a_large_error(module):
    dtype = _half_types()["bf16"]
    rng = np.random.default_rng(7)
    a = rng.standard_normal((16, 16)).astype(dtype)
    b = rng.standard_normal((16, 8)).astype(dtype)
    c = np.zeros((16, 8), np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(mma16(module, "mma_tile_bf16", a, b, c) - expected).max() < 1e-4
    assert np.abs(mma16(module, "mma_tile_bf16_swapped", a, b, c) - expected).max() > 1.0


# --- (c) the emulations are clean under memcheck and racecheck ------------------------------------------------
@pytest.mark.parametrize("sanitizer", ["memcheck", "racecheck"])
def test_ptx_kernels_pass_the_sanitizers(module, sanitizer):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from cuflow.kernels import emu
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_ptx import ptx_source
        m = emu.Module(ptx_source(), sanitizer={sanitizer!r}, filename="ptx_kernels.cu")
        rng = np.random.default_rng(4)
        a, b = rng.standard_normal((16, 8)).astype(np.float32), rng.standard_normal((8, 8)).astype(np.float32)
        c, d = np.zeros((16, 8), np.float32), np.zeros((16, 8), np.float32)
        m.get_function("mma_tile_tf32")((1,), (32,), (a, b, c, d))
        assert np.abs(d - a.astype(np.float64) @ b).max() < 0.05
        a16, b16 = rng.standard_normal((16, 16)).astype(np.float16), rng.standard_normal((16, 8)).astype(np.float16)
        m.get_function("mma_tile_f16_trans_b")((1,), (32,), (a16.view(np.uint16), b16.view(np.uint16), c, d))
        assert np.abs(d - a16.astype(np.float64) @ b16.astype(np.float64)).max() < 1e-3
        x, out = rng.standard_normal(2 * 3 * 256).astype(np.float32), np.zeros(2 * 64, np.float32)
        m.get_function("cp_async_stage_sum")((2,), (64,), (x, out, np.int32(3)), order="random")
        assert np.allclose(out.sum(), x.sum(), atol=1e-3)
        print("clean", flush=True)
        if {sanitizer!r} == "racecheck":
            m.get_function("cp_async_stage_sum_racy")((1,), (64,), (x, out, np.int32(3)))
            print("not caught", flush=True)
    """)
    env = {**os.environ, **emu.sanitizer_env(sanitizer),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "clean" in result.stdout, result.stderr[-3000:]
    if sanitizer == "memcheck":
        assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr[-3000:]
    else:  # the clean kernels gave no report; the one without the barrier after the wait did
        assert result.returncode != 0 and "not caught" not in result.stdout
        assert "WARNING: ThreadSanitizer: data race" in result.stderr
        assert "launching kernel 'cp_async_stage_sum_racy'" in result.stderr
        assert "ThreadSanitizer" not in result.stderr.split("launching kernel 'cp_async_stage_sum_racy'")[0]
        assert "cp_async_16" in result.stderr and "ptx.cuh:" in result.stderr  # the copy is the racing write


@pytest.mark.gpu
def test_mma_layout_matches_the_emulation_on_a_real_gpu():
    """The emulation encodes our reading of the ISA's fragment tables; on real tensor cores the same kernel must give
    the same tile (and the swapped-register twin must not)."""
    from cuflow.kernels import cuda
    if cuda.is_mock() or cuda.gpu_count() == 0:
        pytest.skip("needs real tensor cores (the mock would check the emulation against itself)")
    cp = cuda.cupy()
    module = cp.RawModule(code=ptx_source(), options=("-std=c++17",))
    rng = np.random.default_rng(4)
    a, b, c = (rng.standard_normal(s).astype(np.float32) for s in ((16, 8), (8, 8), (16, 8)))
    expected = tf32(a).astype(np.float64) @ tf32(b).astype(np.float64) + c
    results = {}
    for name in ("mma_tile_tf32", "mma_tile_tf32_swapped"):
        d = cp.full((16, 8), np.nan, np.float32)
        module.get_function(name)((1,), (32,), (cp.asarray(a), cp.asarray(b), cp.asarray(c), d))
        results[name] = cp.asnumpy(d)
    scale = np.abs(tf32(a)).astype(np.float64) @ np.abs(tf32(b)) + np.abs(c)
    assert np.all(np.abs(results["mma_tile_tf32"] - expected) <= 1e-5 * scale)
    assert np.abs(results["mma_tile_tf32_swapped"] - expected).max() > 1.0

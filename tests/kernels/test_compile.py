"""The CI compile check: every CUDA kernel builds to cubin for sm_80 and sm_90 without a GPU, and broken code fails."""
import os
import pathlib

import pytest

from cuflow.kernels import compile as kernels_compile


@pytest.fixture(scope="module", autouse=True)
def nvrtc():
    """Skips only when NVIDIA's NVRTC bindings are missing (pip install cuda-bindings, or the 'test' extra); then
    compiles every module on all cores at once (the tests below, and test_report.py, find the cubins cached)."""
    module = pytest.importorskip("cuda.bindings.nvrtc")
    kernels_compile.compile_all(kernels_compile.ARCHS, jobs=os.cpu_count() or 1)
    return module


@pytest.mark.parametrize("arch", kernels_compile.ARCHS)
@pytest.mark.parametrize("module", kernels_compile.MODULES, ids=lambda m: m.name)
def test_every_kernel_compiles_to_cubin(module, arch):
    cubin = kernels_compile.compile_module(module, arch)
    assert cubin[:4] == b"\x7fELF"


def test_table_lists_every_cu_file():
    kernel_dir = pathlib.Path(kernels_compile.__file__).parent
    listed = {name for module in kernels_compile.MODULES for name in module.files}
    assert {name for name in listed if name.endswith(".cu")} == {path.name for path in kernel_dir.glob("*.cu")}
    assert listed - {path.name for path in kernel_dir.glob("*.cu*")} == set()


def test_every_kernel_has_an_instance_per_dtype():
    instances = kernels_compile.MODULES[0].instances()
    assert instances == (f"gemm<float, {kernels_compile.GEMM_TILE}>", f"gemm<double, {kernels_compile.GEMM_TILE}>")
    for module in kernels_compile.MODULES:
        assert len(module.instances()) == len(module.dtypes) * len(module.kernels)
    mma = next(m for m in kernels_compile.MODULES if m.name == "matmul_mma")
    assert mma.instances() == ("gemm_mma<0, 128, 128, 32, 4>", "gemm_mma<1, 128, 128, 64, 3>",
                               "gemm_mma<2, 128, 128, 64, 3>")
    assert mma.dynamic_shared("bfloat16") == 3 * 2 * 128 * (64 + 8) * 2  # the k-inner layout is the larger
    assert mma.dynamic_shared("tf32") == 4 * 2 * 128 * (32 + 4) * 4
    conv = {m.name: m for m in kernels_compile.MODULES if m.name.startswith("conv2d_")}
    assert conv["conv2d_mma"].instances() == ("conv2d_forward_mma<0, 128, 128, 16, 3>",
                                              "conv2d_forward_mma<1, 128, 128, 32, 3>",
                                              "conv2d_forward_mma<2, 128, 128, 32, 3>",
                                              "conv2d_backward_input_mma<0, 128, 128, 16, 3>",
                                              "conv2d_backward_input_mma<1, 128, 128, 32, 3>",
                                              "conv2d_backward_input_mma<2, 128, 128, 32, 3>")
    assert conv["conv2d_mma"].dynamic_shared("float16") == 3 * 2 * 128 * (32 + 8) * 2
    # the filter gradient: TF32 only (16-bit inputs run it as exact float32 copies, so its partial sums stay float32)
    assert conv["conv2d_mma_filter"].instances() == ("conv2d_backward_filter_mma<0, 128, 128, 16, 3>",)
    assert conv["conv2d_mma_filter"].dynamic_shared("tf32") == conv["conv2d_mma"].dynamic_shared("tf32")
    assert conv["conv2d_direct"].instances() == ("conv2d_direct<float>",)  # float32 only: the float64 one spilled


_PTX_KERNEL = r'''
extern "C" __global__ void to_tf32(float* out, float v)
{
    unsigned int r;
    asm volatile("cvt.rna.tf32.%s %%0, %%1;" : "=r"(r) : "f"(v));
    out[0] = __uint_as_float(r);
}
'''

BROKEN = {  # (source, name expressions)
    "syntax error": ('extern "C" __global__ void k(float* x) { x[0] = 1.0f }', ()),
    # NVRTC accepts this when it only emits PTX; ptxas (run for a cubin) rejects the misspelled type.
    "invalid inline PTX": (_PTX_KERNEL % "f33", ()),
    "unknown template instance": ("template <typename T> __global__ void k(T* x) { x[0] = T(1); }", ("k<no_such_type>",)),
}


@pytest.mark.parametrize("arch", kernels_compile.ARCHS)
@pytest.mark.parametrize("source, name_expressions", BROKEN.values(), ids=BROKEN.keys())
def test_broken_source_fails_to_compile(source, name_expressions, arch):
    with pytest.raises(kernels_compile.CompileError):
        kernels_compile.compile_source(source, "broken.cu", arch, name_expressions)


@pytest.mark.parametrize("arch", kernels_compile.ARCHS)
def test_valid_inline_ptx_compiles(arch):
    """The control for the broken-PTX case: the same kernel spelled right builds."""
    assert kernels_compile.compile_source(_PTX_KERNEL % "f32", "ptx.cu", arch)[:4] == b"\x7fELF"


def test_main_prints_one_line_per_module_and_arch(capsys):
    assert kernels_compile.main(["sm_80"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [m.name for m in kernels_compile.MODULES]
    assert all("sm_80" in line and "cubin" in line for line in lines)

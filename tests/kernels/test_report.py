"""The kernel report (cuflow/kernels/report.py): every kernel keeps the properties it is built for, read from its cubin
without a GPU (NVRTC from cuda-bindings, cuobjdump and nvdisasm from PyPI).

Skips only when those tools are missing: pip install cuda-bindings nvidia-cuda-nvdisasm nvidia-cuda-cuobjdump.
"""
import json
import os

import pytest

from cuflow.kernels import compile as kernels_compile
from cuflow.kernels import report

pytest.importorskip("cuda.bindings.nvrtc")
try:
    report.find_tools()
except report.ToolsMissing as e:
    pytest.skip(str(e), allow_module_level=True)

ARCHS = kernels_compile.ARCHS
GEMM_MODULES = [m for m in kernels_compile.MODULES if isinstance(m.tile, kernels_compile.GemmTiling)]
PIPELINED_MODULES = [m for m in GEMM_MODULES if m.tile.stages]
MMA_MODULES = [m for m in kernels_compile.MODULES if m.name in ("matmul_mma", "matmul_mma_large")]

# Kernels allowed to spill, with the most stack (bytes per thread) they may use. Only float64 on the 8 x 8 register
# tilings: 64 double accumulators (128 registers) plus the a/b fragments and the slice in flight pass the 255
# registers a thread may have, so ptxas spills 104-224 bytes (ptxas -v: up to 688 bytes of spill stores per thread
# in gemm<double, 128, 128, ...>). float64 is not a hot path on these GPUs; every float32 kernel must spill nothing.
EXPECTED_SPILLS = {
    (m.name, m.instance(kernel, "float64")): 512
    for m in GEMM_MODULES if m.tile.tm == 8 and m.tile.tn == 8 and "float64" in dict(m.dtypes) for kernel in m.kernels
}
# philox.cu's float64 normals: libdevice's double sin/cos keep a 40-byte frame for the Payne-Hanek reduction of huge
# arguments, a path Box-Muller's angles in (0, 2 pi] never take.
EXPECTED_SPILLS.update({("philox", f"{kernel}<double>"): 64 for kernel in ("philox_normal", "philox_truncated_normal")})
# The fused elementwise and row kernels (fused.py): no shared memory, so no barrier either.
FUSED_MODULES = ("optim", "softmax_ce", "philox")


@pytest.fixture(scope="module")
def rows():
    """The report for every module and arch, in this process (compile.py's cubin cache: the compile test's cubins
    are reused when it ran first; else they are compiled here on all cores)."""
    kernels_compile.compile_all(ARCHS, jobs=os.cpu_count() or 1)
    return report.report(ARCHS)


def _is_float32(row):
    return "<float" in row["kernel"] and "<double" not in row["kernel"]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_kernel_instance_appears_once(rows, arch):
    for module in kernels_compile.MODULES:
        names = [r["kernel"] for r in rows if r["module"] == module.name and r["arch"] == arch]
        assert sorted(names) == sorted(module.instances()), module.name


def test_resources_and_occupancy_are_read(rows):
    for r in rows:
        assert 0 < r["registers"] <= 255, r
        assert r["instructions"] > 0, r
        assert 0 < r["occupancy"] <= 1 and r["blocks_per_sm"] >= 1, r
        if r["module"] == "pool":  # no __launch_bounds__: the launch table's block size
            assert (r["threads"], r["threads_from"]) == (kernels_compile.POOL_THREADS, "compile.py"), r
        else:                      # __launch_bounds__(GEMM_THREADS) recorded in the cubin
            assert (r["threads"], r["threads_from"]) == (kernels_compile.GEMM_THREADS, "launch_bounds"), r


def test_hot_kernels_do_not_spill(rows):
    """Every float32 GEMM/conv tiling and every pooling kernel: no stack, no local loads or stores. float64 spills
    only where EXPECTED_SPILLS says, and no more than it says."""
    for r in rows:
        if _is_float32(r) or r["module"] == "pool":
            assert (r["spill_bytes"], r["ldl"], r["stl"]) == (0, 0, 0), f"hot kernel spills: {r}"
        elif r["spill_bytes"] or r["ldl"] or r["stl"]:
            key = (r["module"], r["kernel"])
            assert key in EXPECTED_SPILLS, f"unexpected spill: {r}"
            assert r["spill_bytes"] <= EXPECTED_SPILLS[key], f"spills more than expected: {r}"


@pytest.mark.parametrize("module", [m for m in GEMM_MODULES if m.tile.tm >= 4 and m.tile.tn >= 4 and not m.tile.stages],
                         ids=lambda m: m.name)
def test_register_blocked_float32_gemm_uses_16_byte_shared_loads_and_ffma(rows, module):
    """With 4 or more rows and columns per thread, a thread reads its A and B runs as float4 (LDS.128), and every
    k step of a slice is TM x TN FFMAs, unrolled over BK (gemm has one copy of the core per transpose pair)."""
    t = module.tile
    copies = 4 if module.name.startswith("matmul") else 1
    for r in rows:
        if r["module"] == module.name and _is_float32(r):
            assert r["lds128"] >= copies * (t.tm + t.tn) // 4 * t.bk, r
            assert r["ffma"] >= copies * t.tm * t.tn * t.bk, r


def test_kernels_with_shared_tiles_synchronize(rows):
    for r in rows:
        if r["module"] not in ("pool", "matmul_split_k_reduce") and r["module"] not in FUSED_MODULES:
            assert r["shared_bytes"] + r["dynamic_shared_bytes"] > 0, r
        if r["shared_bytes"] + r["dynamic_shared_bytes"] > 0:
            assert r["bar_sync"] > 0, r


def test_fused_kernels_are_memory_bound_shapes(rows):
    """Every instance of the fused kernels compiled for both archs, with their __launch_bounds__ block, no shared
    memory; the float32 ones spill nothing (test_hot_kernels_do_not_spill) and keep at least 48 warps per SM resident,
    which a bandwidth-bound kernel needs to hide memory latency."""
    for module in FUSED_MODULES:
        got = [r for r in rows if r["module"] == module]
        assert len(got) == len(ARCHS) * len(next(m for m in kernels_compile.MODULES if m.name == module).instances())
        for r in got:  # 256: fused.py's THREADS (importing fused.py needs a GPU)
            assert (r["threads"], r["threads_from"], r["shared_bytes"]) == (256, "launch_bounds", 0), r
            if _is_float32(r):
                assert r["warps_per_sm"] >= 48, r


_PLANTED_MMA = r'''
extern "C" __global__ void planted_mma(const unsigned* a, const unsigned* b, float* c)
{
    const unsigned* pa = a + 4 * threadIdx.x;
    const unsigned* pb = b + 2 * threadIdx.x;
    float* pc = c + 4 * threadIdx.x;
    float d0, d1, d2, d3;
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
                 : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
                 : "r"(pa[0]), "r"(pa[1]), "r"(pa[2]), "r"(pa[3]), "r"(pb[0]), "r"(pb[1]),
                   "f"(pc[0]), "f"(pc[1]), "f"(pc[2]), "f"(pc[3]));
    pc[0] = d0; pc[1] = d1; pc[2] = d2; pc[3] = d3;
}
'''

_PLANTED_LOCAL = r'''
extern "C" __global__ void planted_local(const int* index, float* out)
{
    float table[256];  // indexed at run time: it cannot live in registers
    for (int i = 0; i < 256; ++i) {
        table[i] = out[i] * i;
    }
    out[threadIdx.x] = table[index[threadIdx.x] & 255];
}
'''


_PLANTED_COPIES = r'''
extern "C" __global__ void planted_copies(const float4* in, float4* out)
{
    __shared__ float4 tile[256];
    const unsigned slot = (unsigned)__cvta_generic_to_shared(&tile[threadIdx.x]);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(slot), "l"(in + threadIdx.x));
    asm volatile("cp.async.wait_all;" ::: "memory");
    __syncthreads();
    const float4 mine = in[blockDim.x + threadIdx.x];    // a 16-byte global load
    const float4 other = tile[255 - threadIdx.x];        // a 16-byte shared load
    out[threadIdx.x] = make_float4(mine.x + other.x, mine.y + other.y, mine.z + other.z, mine.w + other.w);
}
'''


@pytest.mark.parametrize("arch", ARCHS)
def test_planted_tensor_core_kernel_shows_hmma(arch):
    """Proves that the SASS is read: an inline-PTX mma.sync TF32 kernel is an HMMA; the GEMM core is not."""
    cubin = kernels_compile.compile_source(_PLANTED_MMA, "planted_mma.cu", arch)
    (row,) = report.analyze_cubin(cubin, arch, "planted", threads=32)
    assert row["kernel"] == "planted_mma" and row["threads_from"] == "given"
    assert row["hmma"] >= 1 and row["ffma"] == 0 and row["spill_bytes"] == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_planted_local_array_shows_local_memory(arch):
    """Proves that spills are read: a dynamically indexed local array takes a stack frame and local stores."""
    cubin = kernels_compile.compile_source(_PLANTED_LOCAL, "planted_local.cu", arch)
    (row,) = report.analyze_cubin(cubin, arch, "planted", threads=256)
    assert row["spill_bytes"] >= 256 * 4 and row["stl"] > 0 and row["ldl"] > 0


# (arch, registers, threads, static shared bytes) -> blocks per SM. The sm_90 cases are kernels of this report whose
# blocks per SM cudaOccupancyMaxActiveBlocksPerMultiprocessor gave on an H200 (driver 580, CUDA 13.2).
OCCUPANCY = [
    (("sm_90", 227, 256, 33792), 1, "registers"),
    (("sm_90", 128, 256, 12800), 2, "registers"),
    (("sm_90", 77, 256, 17408), 3, "registers"),
    (("sm_90", 58, 256, 0), 4, "registers"),
    (("sm_90", 48, 256, 4352), 5, "registers"),
    (("sm_90", 40, 256, 8704), 6, "registers"),
    (("sm_90", 32, 256, 4352), 8, "warps"),
    (("sm_90", 12, 256, 4), 8, "warps"),
    (("sm_80", 32, 128, 48 * 1024), 3, "shared"),  # (48 KB + 1 KB reserved) into 164 KB
    (("sm_90", 32, 128, 48 * 1024), 4, "shared"),  # into 228 KB
    (("sm_80", 16, 32, 0), 32, "blocks"),
    (("sm_80", 255, 1024, 0), 0, "registers"),     # 255 x 1024 registers pass the 64K a block may have
]


@pytest.mark.parametrize("args, blocks, limited_by", OCCUPANCY)
def test_occupancy_matches_the_cuda_occupancy_calculator(args, blocks, limited_by):
    occ = report.occupancy(*args)
    assert (occ["blocks_per_sm"], occ["limited_by"]) == (blocks, limited_by)
    warps = -(-args[2] // 32)
    assert occ["warps_per_sm"] == blocks * warps and occ["occupancy"] == blocks * warps / 64


def test_demangler_fallback_agrees_with_kernel_names(rows):
    """Without c++filt the built-in demangler gives the same names: those of KernelModule.instance."""
    for r in rows:
        assert report._demangle_simple(r["mangled"]) == r["kernel"]


def test_main_prints_json_and_table(capsys):
    assert report.main(["--arch", "sm_80", "--module", "pool", "--json", "--jobs", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    pool = next(m for m in kernels_compile.MODULES if m.name == "pool")
    assert sorted(r["kernel"] for r in data["kernels"]) == sorted(pool.instances())
    assert set(data["tools"]) == {"cuobjdump", "nvdisasm"}
    assert report.main(["--arch", "sm_80", "--module", "pool", "--jobs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["module", "kernel", "arch"] and len(lines) == 1 + len(pool.instances())


def test_missing_tools_say_how_to_install(monkeypatch):
    monkeypatch.setattr(report, "_candidate_dirs", lambda: iter(()))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(report.ToolsMissing, match="pip install nvidia-cuda-nvdisasm nvidia-cuda-cuobjdump"):
        report.find_tools()


@pytest.mark.parametrize("arch", ARCHS)
def test_planted_copies_show_ldgsts_and_16_byte_loads(arch):
    """Proves the cp.async (LDGSTS) and 128-bit load counts: what a pipelined, vectorized GEMM must show."""
    cubin = kernels_compile.compile_source(_PLANTED_COPIES, "planted_copies.cu", arch)
    (row,) = report.analyze_cubin(cubin, arch, "planted", threads=256)
    assert row["ldgsts"] >= 1 and row["ldg128"] >= 1 and row["lds128"] >= 1 and row["bar_sync"] >= 1, row
    assert row["shared_bytes"] == 256 * 16, row  # static shared as the driver counts it (sm_90: 1 KB reserve left out)


@pytest.mark.parametrize("module", PIPELINED_MODULES, ids=lambda m: m.name)
def test_pipelined_sgemm_uses_16_byte_cp_async(rows, module):
    """The cp.async pipeline is there (16-byte LDGSTS, at least one per operand and transpose pair), its tiles are
    read with LDS.128, and nothing spills (checked for every float32 kernel above)."""
    for r in rows:
        if r["module"] == module.name:
            assert r["ldgsts128"] >= 4 * 2 and r["ldgsts"] == r["ldgsts128"], r
            # its k loop is rolled in groups of 4 (register pressure): per group, (TM + TN) 16-byte reads per
            # copy of the core at least, and TM x TN x 4 FFMAs
            t = module.tile
            assert r["lds128"] >= 4 * (t.tm + t.tn) and r["ffma"] >= 4 * t.tm * t.tn * 4, r
            assert r["spill_bytes"] == 0 and r["bar_sync"] > 0, r
            assert r["shared_bytes"] <= 48 * 1024, r


def test_tensor_core_gemm_uses_hmma_ldgsts_and_ldmatrix(rows):
    """gemm_mma: every instance runs on tensor cores (HMMA: 4 transpose pairs x 16 mma tiles x 2 k-steps per
    stage), stages its tiles with 16-byte cp.async, spills nothing, and the 16-bit ones read fragments with
    ldmatrix (LDSM); the launcher's dynamic shared memory enters the occupancy."""
    seen = set()
    for r in rows:
        if r["module"] not in [m.name for m in MMA_MODULES]:
            continue
        seen.add((r["kernel"], r["arch"]))
        assert r["hmma"] >= 4 * 16 * 2 and r["ldgsts128"] >= 4 * 2, r
        assert (r["spill_bytes"], r["ldl"], r["stl"]) == (0, 0, 0), r
        assert r["dynamic_shared_bytes"] > 48 * 1024 and r["bar_sync"] > 0, r
        assert r["blocks_per_sm"] >= 1, r
        if not r["kernel"].startswith("gemm_mma<0"):
            assert r["opcodes"].get("LDSM", 0) >= 4 * 2 * 6, r
    assert len(seen) == sum(len(m.instances()) for m in MMA_MODULES) * len(ARCHS)


CONV_MMA_MODULES = [m for m in kernels_compile.MODULES if m.name in ("conv2d_mma", "conv2d_mma_filter")]


def test_tensor_core_conv_uses_hmma_ldgsts_and_ldmatrix(rows):
    """conv2d_mma.cu's forward and backward passes: on tensor cores (HMMA: a warp's 4 x 4 mma tiles x 2 k-steps per
    stage), both operand tiles staged with 16-byte cp.async (the implicit-GEMM gathers and the filter or gradient
    rows), nothing spilled, and the 16-bit ones read fragments with ldmatrix (LDSM: 4 A + 2 B per k-step). One
    operand layout per kernel instead of gemm_mma's four transpose pairs keeps each at <= 128 registers: 2 blocks
    (16 warps) per SM, with its 60 KB of dynamic shared memory."""
    seen = set()
    for r in rows:
        if r["module"] not in [m.name for m in CONV_MMA_MODULES]:
            continue
        seen.add((r["kernel"], r["arch"]))
        assert r["hmma"] >= 16 * 2 and r["ldgsts128"] >= 2 and r["ldgsts"] == r["ldgsts128"], r
        assert (r["spill_bytes"], r["ldl"], r["stl"]) == (0, 0, 0), r
        assert r["dynamic_shared_bytes"] > 48 * 1024 and r["bar_sync"] > 0, r
        assert r["registers"] <= 128 and r["blocks_per_sm"] >= 2, r
        if "_mma<0" not in r["kernel"]:  # 16-bit
            assert r["opcodes"].get("LDSM", 0) >= 2 * (4 + 2), r
    assert len(seen) == sum(len(m.instances()) for m in CONV_MMA_MODULES) * len(ARCHS) == 7 * len(ARCHS)


def test_direct_conv_keeps_half_the_warps_resident(rows):
    """conv2d_direct (few taps: the 1-channel seed layer) is bound by its output stores: __launch_bounds__(256, 4)
    caps it at 64 registers, so 4 blocks (32 warps) per SM hide the memory latency; its filter columns sit in static
    shared memory behind one barrier; it multiplies with FFMA and spills nothing."""
    got = [r for r in rows if r["module"] == "conv2d_direct"]
    assert len(got) == len(ARCHS)
    for r in got:
        assert r["registers"] <= 64 and r["warps_per_sm"] >= 32, r
        assert r["shared_bytes"] > 0 and r["bar_sync"] >= 1 and r["ffma"] > 0, r
        assert (r["spill_bytes"], r["ldl"], r["stl"]) == (0, 0, 0), r

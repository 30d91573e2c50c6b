// ptx.cuh — every inline-PTX instruction cuflow uses, behind small device functions.
//
// On the GPU (`__CUDA_ARCH__` defined: NVRTC/nvcc device code) each function is one `asm volatile` statement. On
// the CPU (the mock GPU, cuflow/kernels/emu/cuda_emu.h: `__CUDA_ARCH__` undefined, `__CUFLOW_EMU__` defined) each
// has an emulation written from the PTX ISA's documented semantics and fragment layouts, cited in comments below
// ("PTX ISA" = NVIDIA's "Parallel Thread Execution ISA" reference, chapter "Instructions").
//
// This file has no #include: NVRTC gets no include paths, so users prepend its text to their kernel source (as
// tests/kernels/test_ptx.py does). 32-bit registers are `unsigned` (NVRTC has no <cstdint> without includes).
//
// CUFLOW_PTX_EMULATED — THE one place that says what the mock GPU can and cannot run:
//   emulated    cvt.rna.tf32.f32                         cvt_rna_tf32, cvt_rna_tf32_f
//               mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32   mma_m16n8k8_tf32 (warp-wide, sm_80+)
//               cp.async.cg.shared.global 16 bytes      cp_async_16 (sm_80+)
//               cp.async.commit_group                    cp_async_commit
//               cp.async.wait_all / wait_group N         cp_async_wait_all, cp_async_wait_group<N>
//   NOT emulated: wgmma (warpgroup MMA), TMA (cp.async.bulk.tensor), bulk copies (cp.async.bulk), mbarrier-based
//               pipelines, and the BF16/FP16 mma / ldmatrix forms (not written yet). A kernel that uses any of
//               these must have a fallback kernel for the same shape, and its launcher must pick the fallback when
//               running under the mock GPU (CUFLOW_MOCK_GPU) and say which kernel ran. Do not add such
//               instructions here without either an emulation or that fallback.
//
// The emulations are checked against NumPy (tests/kernels/test_ptx.py) but are NOT an independent check of the
// fragment layouts (they encode our reading of the ISA tables): confirm on a real GPU the first time one is lent.
#pragma once

#ifndef CUFLOW_PTX_CUH
#define CUFLOW_PTX_CUH

// --- cvt.rna.tf32.f32 -----------------------------------------------------------------------------------------
// PTX ISA, "Data Movement and Conversion Instructions: cvt": `.rna` = round to nearest, ties away from zero;
// `.tf32` keeps the 10 explicit mantissa bits of an f32 (8-bit exponent), in a .b32 register whose low 13 bits
// are zero. Inf stays Inf; a finite value may round up to Inf; NaN stays a NaN (canonical 0x7fffffff here).
__device__ __forceinline__ unsigned cvt_rna_tf32(float x)
{
#ifdef __CUDA_ARCH__
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#else
    unsigned bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) == 0x7f800000u)                 // Inf or NaN: no rounding
        return (bits & 0x007fffffu) ? 0x7fffffffu : bits;
    return (bits + 0x1000u) & 0xffffe000u;                   // add half an ulp of tf32 (ties away), truncate
#endif
}

// The rounded value as a float (the same bits).
__device__ __forceinline__ float cvt_rna_tf32_f(float x) { return __uint_as_float(cvt_rna_tf32(x)); }

// --- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 -------------------------------------------------------
// D (16x8, f32) = A (16x8, tf32, row) * B (8x8, tf32, col) + C (16x8, f32). Warp-wide: all 32 lanes must call it
// together (same call site, converged), each passing its own fragment.
//
// Fragment layouts: PTX ISA, "Warp Level Matrix Multiply-Accumulate Instructions" > "Matrix Fragments for
// mma.m16n8k8", the figures/tables for `.tf32` ("MMA .m16n8k8 fragment layout for matrix A with .tf32 type",
// "... matrix B with .tf32 type", "... accumulator matrix C/D with .f32 type"), with
//     groupID = laneid >> 2,  threadID_in_group = laneid % 4:
//   A: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//        (row = g for a0,a2 and g+8 for a1,a3; col = t for a0,a1 and t+4 for a2,a3)
//   B: b0 = B[t][g], b1 = B[t+4][g]                          (row k = t / t+4, col n = g)
//   C/D: c_i = C[g + 8*(i >= 2)][2*t + (i & 1)]              (c0,c1 in row g; c2,c3 in row g+8)
// where g = groupID, t = threadID_in_group.
//
// CPU emulation: every lane gathers the A and B elements its four outputs need from the owning lanes with
// `__shfl_sync(0xffffffff, reg, owner)` (32 shuffles; exact, and uses only the emulator's warp primitives, so a
// lane that diverged or returned shows as a deadlock / NaN just as the GPU would misbehave). A tf32 operand's low
// 13 bits are ignored (masked), so unrounded f32 inputs behave as truncated: round with cvt_rna_tf32 first, as on
// the GPU. Products of tf32 values are exact in f32; the k-sum is done in double and rounded once, then added to C
// — the tensor core's own summation order/precision is unspecified, so compare with a tolerance (~1e-5 relative).
__device__ __forceinline__ void mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2],
                                                 const float c[4])
{
#ifdef __CUDA_ARCH__
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    const unsigned full = 0xffffffffu, tf32_mask = 0xffffe000u;
    const int lane = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    const int g = lane >> 2, t = lane & 3;
    // arow[h][k] = A[g + 8h][k]: register (h + 2*(k >= 4)) of lane g*4 + k%4.
    float arow[2][8];
    for (int reg = 0; reg < 4; ++reg)
        for (int kk = 0; kk < 4; ++kk) {
            unsigned v = __shfl_sync(full, a[reg], g * 4 + kk);
            arow[reg & 1][kk + 4 * (reg >> 1)] = __uint_as_float(v & tf32_mask);
        }
    // bcol[j][k] = B[k][2t + j]: register (k >= 4) of lane (2t + j)*4 + k%4.
    float bcol[2][8];
    for (int j = 0; j < 2; ++j)
        for (int reg = 0; reg < 2; ++reg)
            for (int kk = 0; kk < 4; ++kk) {
                unsigned v = __shfl_sync(full, b[reg], (2 * t + j) * 4 + kk);
                bcol[j][kk + 4 * reg] = __uint_as_float(v & tf32_mask);
            }
    float out[4];
    for (int i = 0; i < 4; ++i) {
        double acc = 0.0;
        for (int k = 0; k < 8; ++k) acc += double(arow[i >> 1][k]) * double(bcol[i & 1][k]);
        out[i] = float(double(c[i]) + acc);
    }
    for (int i = 0; i < 4; ++i) d[i] = out[i];  // after reading c: d may alias c
#endif
}

// --- cp.async (sm_80+) ----------------------------------------------------------------------------------------
// PTX ISA, "Data Movement and Conversion Instructions: cp.async", "cp.async.commit_group", "cp.async.wait_group /
// cp.async.wait_all". cp_async_16 copies 16 bytes global -> shared, bypassing L1 (.cg); both addresses must be
// 16-byte aligned. The copy completes asynchronously: wait for its group, then __syncthreads() before other threads
// read the data.
//
// CPU emulation is SYNCHRONOUS: the copy happens at the call, commit and wait are no-ops. A kernel that reads the
// data too early therefore still works on the CPU; what the emulation does keep checkable is the cross-thread part:
// the __syncthreads() after the wait is still required, and racecheck (ThreadSanitizer sees the copy as the calling
// thread's write) and memcheck (AddressSanitizer checks the 16 bytes on both sides) still see it. A misaligned
// address traps, as it faults on the GPU.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem)
{
#ifdef __CUDA_ARCH__
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(s), "l"(gmem) : "memory");
#else
    if ((reinterpret_cast<unsigned long long>(smem) | reinterpret_cast<unsigned long long>(gmem)) & 15ull)
        __trap();  // cp.async of 16 bytes needs 16-byte aligned addresses
    memcpy(smem, gmem, 16);
#endif
}

__device__ __forceinline__ void cp_async_commit()
{
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

__device__ __forceinline__ void cp_async_wait_all()
{
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

// Waits until at most N of this thread's most recent committed groups are still pending.
template <int N>
__device__ __forceinline__ void cp_async_wait_group()
{
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
#endif
}

#endif  // CUFLOW_PTX_CUH

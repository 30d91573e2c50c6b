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
//               cp.async.cg.shared.global 16 bytes, src-size 0 or 16 (zero fill)   cp_async_16_zfill (sm_80+)
//               cp.async.wait_all / wait_group N         cp_async_wait_all, cp_async_wait_group<N>
//               mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32  mma_m16n8k16_bf16 (warp-wide, sm_80+)
//               mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32    mma_m16n8k16_f16 (warp-wide, sm_80+)
//               ldmatrix.sync.aligned.m8n8.x4.shared.b16 (and .trans)  ldmatrix_x4, ldmatrix_x4_trans (sm_75+)
//               cvt.rn.bf16.f32, cvt.rn.f16.f32, cvt.f32.f16       float_to_bf16, float_to_f16, f16_to_float
//   NOT emulated: wgmma (warpgroup MMA), TMA (cp.async.bulk.tensor), bulk copies (cp.async.bulk), mbarrier-based
//               pipelines, and the other mma shapes/types (int8, fp8, m16n8k4...). A kernel that uses any of
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

// Like cp_async_16, but copies 16 bytes only when `valid`; otherwise the 16 shared bytes are zero-filled and
// global memory is not read (PTX `cp.async ... 16, src-size` with src-size 0: "the remaining bytes are zero"). Pass
// any valid pointer as `gmem` then (the tile loaders pass the matrix base). This is how the pipelined GEMMs read the
// ragged edges of a tile: out-of-range chunks become zeros, no branch around the copy.
__device__ __forceinline__ void cp_async_16_zfill(void* smem, const void* gmem, bool valid)
{
#ifdef __CUDA_ARCH__
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    int src_size = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(s), "l"(gmem), "r"(src_size) : "memory");
#else
    if (reinterpret_cast<unsigned long long>(smem) & 15ull)
        __trap();  // the shared address must be 16-byte aligned
    if (valid)
        cp_async_16(smem, gmem);
    else
        memset(smem, 0, 16);
#endif
}

// --- 16-bit floating point conversions --------------------------------------------------------------------------
// bfloat16 and float16 values travel as their raw bits (`unsigned short`): NVRTC has no <cuda_bf16.h> without include
// paths and the CPU emulator has no half types. PTX ISA "cvt": `.rn` = round to nearest, ties to even; NaN stays NaN.
__device__ __forceinline__ float bf16_to_float(unsigned short h) { return __uint_as_float(unsigned(h) << 16); }

__device__ __forceinline__ unsigned short float_to_bf16(float x)
{
#ifdef __CUDA_ARCH__
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
#else
    unsigned bits = __float_as_uint(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return 0x7fff;                                       // NaN (canonical)
    return (unsigned short)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);  // ties to even; overflow -> Inf
#endif
}

__device__ __forceinline__ float f16_to_float(unsigned short h)
{
#ifdef __CUDA_ARCH__
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
    return r;
#else
    const unsigned sign = (unsigned(h) & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return __uint_as_float(sign | 0x7f800000u | (man << 13));             // Inf, NaN
    if (exp == 0)                                                               // zero, subnormal: man * 2^-24
        return __uint_as_float(sign) + (sign ? -1.0f : 1.0f) * float(man) * 5.9604644775390625e-8f;
    return __uint_as_float(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

__device__ __forceinline__ unsigned short float_to_f16(float x)
{
#ifdef __CUDA_ARCH__
    unsigned short r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
#else
    const unsigned bits = __float_as_uint(x), sign = (bits >> 16) & 0x8000u, abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return (unsigned short)(sign | 0x7e00u);                              // NaN
    if (abs >= 0x477ff000u)                                                   // >= 65520 rounds to Inf
        return (unsigned short)(sign | 0x7c00u);
    if (abs < 0x38800000u) {                                                  // below 2^-14: a subnormal (or 0)
        const float scaled = __uint_as_float(abs) * 16777216.0f;              // in units of 2^-24, exact
        return (unsigned short)(sign | (unsigned)nearbyintf(scaled));         // ties to even (default mode)
    }
    const unsigned r = abs - 0x38000000u;                                     // rebias the exponent by 112
    return (unsigned short)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13)); // ties to even
#endif
}

// --- ldmatrix.sync.aligned.m8n8.x4.shared.b16 (sm_75+) ------------------------------------------------------------
// PTX ISA, "Warp-level matrix load instruction: ldmatrix". Warp-wide. Four 8x8 matrices of 16-bit elements; lane
// 8j + r gives the shared address of row r of matrix j (16 contiguous bytes, 16-byte aligned). Each lane l receives
// one .b32 register per matrix j: without .trans, the elements (row l/4, columns 2(l%4) and 2(l%4)+1) of matrix j;
// with .trans, the elements (rows 2(l%4) and 2(l%4)+1, column l/4), i.e. the same of the transposed matrix. The
// element with the lower column (row) index sits in the lower 16 bits.
// CPU emulation: every lane fetches the row addresses it needs from the owning lanes with __shfl_sync and reads them.
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* row)
{
#ifdef __CUDA_ARCH__
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
#else
    if (reinterpret_cast<unsigned long long>(row) & 15ull)
        __trap();  // each row address must be 16-byte aligned
    const int lane = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    unsigned out[4];
    for (int j = 0; j < 4; ++j) {
        const char* p = __shfl_sync(0xffffffffu, static_cast<const char*>(row), 8 * j + lane / 4);
        memcpy(&out[j], p + 4 * (lane % 4), 4);
    }
    for (int j = 0; j < 4; ++j) r[j] = out[j];
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* row)
{
#ifdef __CUDA_ARCH__
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
#else
    if (reinterpret_cast<unsigned long long>(row) & 15ull)
        __trap();
    const int lane = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    unsigned out[4];
    for (int j = 0; j < 4; ++j) {
        const char* lo = __shfl_sync(0xffffffffu, static_cast<const char*>(row), 8 * j + 2 * (lane % 4));
        const char* hi = __shfl_sync(0xffffffffu, static_cast<const char*>(row), 8 * j + 2 * (lane % 4) + 1);
        unsigned short a, b;
        memcpy(&a, lo + 2 * (lane / 4), 2);
        memcpy(&b, hi + 2 * (lane / 4), 2);
        out[j] = unsigned(a) | (unsigned(b) << 16);
    }
    for (int j = 0; j < 4; ++j) r[j] = out[j];
#endif
}

// --- mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 (sm_80+) ------------------------------------
// D (16x8, f32) = A (16x16, row) * B (16x8, col) + C. PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type" (.f16/.bf16), g = laneid >> 2, t = laneid % 4; each .b32 register holds two elements, the lower index
// in the lower half:
//   A: a0 = {A[g][2t], A[g][2t+1]},  a1 = {A[g+8][2t], ..+1},  a2 = {A[g][2t+8], ..+1},  a3 = {A[g+8][2t+8], ..+1}
//   B: b0 = {B[2t][g], B[2t+1][g]},  b1 = {B[2t+8][g], B[2t+9][g]}
//   C/D: as m16n8k8 above (c0, c1 in row g, columns 2t, 2t+1; c2, c3 in row g+8).
// CPU emulation as for TF32: lanes gather the A rows and B columns of their outputs with __shfl_sync; products of
// 16-bit values are exact in double, the k-sum is rounded once. Compare with a tolerance.
template <bool BF16>
__device__ __forceinline__ void mma_m16n8k16_emulated(float d[4], const unsigned a[4], const unsigned b[2],
                                                      const float c[4])
{
    const unsigned full = 0xffffffffu;
    const int lane = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    const int g = lane >> 2, t = lane & 3;
    auto value = [](unsigned bits) { return BF16 ? bf16_to_float((unsigned short)bits)
                                                 : f16_to_float((unsigned short)bits); };
    // arow[h][k] = A[g + 8h][k]: register h + 2*(k >= 8) of lane g*4 + (k%8)/2, half k%2.
    float arow[2][16];
    for (int reg = 0; reg < 4; ++reg)
        for (int q = 0; q < 4; ++q) {
            unsigned v = __shfl_sync(full, a[reg], g * 4 + q);
            const int k = 8 * (reg >> 1) + 2 * q;
            arow[reg & 1][k] = value(v & 0xffffu);
            arow[reg & 1][k + 1] = value(v >> 16);
        }
    // bcol[j][k] = B[k][2t + j]: register k >= 8 of lane (2t + j)*4 + (k%8)/2, half k%2.
    float bcol[2][16];
    for (int j = 0; j < 2; ++j)
        for (int reg = 0; reg < 2; ++reg)
            for (int q = 0; q < 4; ++q) {
                unsigned v = __shfl_sync(full, b[reg], (2 * t + j) * 4 + q);
                bcol[j][8 * reg + 2 * q] = value(v & 0xffffu);
                bcol[j][8 * reg + 2 * q + 1] = value(v >> 16);
            }
    float out[4];
    for (int i = 0; i < 4; ++i) {
        double acc = 0.0;
        for (int k = 0; k < 16; ++k) acc += double(arow[i >> 1][k]) * double(bcol[i & 1][k]);
        out[i] = float(double(c[i]) + acc);
    }
    for (int i = 0; i < 4; ++i) d[i] = out[i];
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2],
                                                  const float c[4])
{
#ifdef __CUDA_ARCH__
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    mma_m16n8k16_emulated<true>(d, a, b, c);
#endif
}

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const unsigned a[4], const unsigned b[2],
                                                 const float c[4])
{
#ifdef __CUDA_ARCH__
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    mma_m16n8k16_emulated<false>(d, a, b, c);
#endif
}

#endif  // CUFLOW_PTX_CUH

// Test-only kernels for cuflow/kernels/ptx.cuh. Not standalone: tests/kernels/test_ptx.py prepends the text of
// ptx.cuh (NVRTC has no include paths), for both NVRTC (cubin for sm_80/sm_90) and the mock GPU.

// One warp computes D (16x8) = A (16x8) * B (8x8) + C with one mma.m16n8k8 TF32, all row-major in global memory.
// Fragments are loaded per the PTX ISA's "Matrix Fragments for mma.m16n8k8" (.tf32) layout, see ptx.cuh.
// kSwapped exchanges registers a1 and a2 (rows g+8 / columns t+4 mixed up): a layout bug the test must see.
template <bool kSwapped>
__device__ void mma_tile_tf32_impl(const float* A, const float* B, const float* C, float* D)
{
    const int lane = threadIdx.x % 32;
    const int g = lane >> 2, t = lane & 3;
    unsigned a[4], b[2];
    a[0] = cvt_rna_tf32(A[g * 8 + t]);
    a[1] = cvt_rna_tf32(A[(g + 8) * 8 + t]);
    a[2] = cvt_rna_tf32(A[g * 8 + t + 4]);
    a[3] = cvt_rna_tf32(A[(g + 8) * 8 + t + 4]);
    if (kSwapped) {
        unsigned tmp = a[1];
        a[1] = a[2];
        a[2] = tmp;
    }
    b[0] = cvt_rna_tf32(B[t * 8 + g]);
    b[1] = cvt_rna_tf32(B[(t + 4) * 8 + g]);
    float c[4], d[4];
    for (int i = 0; i < 4; ++i) c[i] = C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
    mma_m16n8k8_tf32(d, a, b, c);
    for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[i];
}

extern "C" __global__ void mma_tile_tf32(const float* A, const float* B, const float* C, float* D)
{
    mma_tile_tf32_impl<false>(A, B, C, D);
}

extern "C" __global__ void mma_tile_tf32_swapped(const float* A, const float* B, const float* C, float* D)
{
    mma_tile_tf32_impl<true>(A, B, C, D);
}

// Rounds every element to TF32 (cvt.rna.tf32.f32), so the test can compare the bits with NumPy's rounding.
extern "C" __global__ void round_tf32(const float* x, float* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = cvt_rna_tf32_f(x[i]);
}

// Each block of STAGE_THREADS threads streams `tiles` tiles of TILE floats through a two-stage cp.async pipeline
// in shared memory: thread i copies 16 bytes (floats 4i..4i+3) of each tile, and sums floats i, i+64, i+128, i+192
// of every tile — written by other threads, so the barrier after the wait matters.
// out[block * STAGE_THREADS + i] = sum over the block's tiles.
#define STAGE_THREADS 64
#define TILE (4 * STAGE_THREADS)

// kSynced = false drops the barrier after the wait (a planted bug): racecheck must report it even though the
// CPU emulation of cp.async is synchronous.
template <bool kSynced>
__device__ void cp_async_stage_sum_impl(const float* x, float* out, int tiles)
{
    __shared__ __align__(16) float buf[2][TILE];
    const int i = threadIdx.x;
    const float* src = x + (size_t)blockIdx.x * tiles * TILE;
    float sum = 0.0f;
    cp_async_16(&buf[0][4 * i], src + 4 * i);
    cp_async_commit();
    for (int tile = 0; tile < tiles; ++tile) {
        if (tile + 1 < tiles) {
            cp_async_16(&buf[(tile + 1) & 1][4 * i], src + (size_t)(tile + 1) * TILE + 4 * i);
        }
        cp_async_commit();           // an empty group on the last tile keeps the count uniform
        cp_async_wait_group<1>();    // this thread's copy of `tile` has landed
        if (kSynced) __syncthreads(); // ... and every other thread's
        const float* s = buf[tile & 1];
        for (int j = i; j < TILE; j += STAGE_THREADS) sum += s[j];
        __syncthreads();             // everyone is done reading before the buffer is refilled
    }
    cp_async_wait_all();
    out[blockIdx.x * STAGE_THREADS + i] = sum;
}

extern "C" __global__ void cp_async_stage_sum(const float* x, float* out, int tiles)
{
    cp_async_stage_sum_impl<true>(x, out, tiles);
}

extern "C" __global__ void cp_async_stage_sum_racy(const float* x, float* out, int tiles)
{
    cp_async_stage_sum_impl<false>(x, out, tiles);
}

// One warp computes D (16x8) = A (16x16) * B (16x8) + C with one mma.m16n8k16 (P = 1: bfloat16, 2: float16), A and
// B given row-major as raw 16-bit values. Both go through shared memory and ldmatrix.x4, as in matmul_async.cu: A
// [m][k] without .trans; B stored [k][n] and read with .trans, or (kTransB) stored [n][k] and read without. Rows are
// padded to 24 elements (48 bytes, 16-byte aligned). kSwapped exchanges A registers a1 and a2 (a layout bug).
template <int P, bool kTransB, bool kSwapped>
__device__ void mma_tile_16bit_impl(const unsigned short* A, const unsigned short* B, const float* C, float* D)
{
    __shared__ __align__(16) unsigned short sa[16][24];
    __shared__ __align__(16) unsigned short sb[16][24];
    const int lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3, j = lane / 8, r = lane % 8;
    for (int i = lane; i < 16 * 24; i += 32) {
        sa[i / 24][i % 24] = 0;
        sb[i / 24][i % 24] = 0;
    }
    __syncwarp();
    for (int i = lane; i < 256; i += 32) sa[i / 16][i % 16] = A[i];
    for (int i = lane; i < 128; i += 32) {
        if (kTransB) sb[i % 8][i / 8] = B[i];   // sb[n][k]
        else sb[i / 8][i % 8] = B[i];           // sb[k][n]
    }
    __syncwarp();
    unsigned a[4], q[4];
    ldmatrix_x4(a, &sa[r + 8 * (j % 2)][8 * (j / 2)]);
    if (kSwapped) {
        unsigned tmp = a[1];
        a[1] = a[2];
        a[2] = tmp;
    }
    if (kTransB) ldmatrix_x4(q, &sb[r + 8 * (j / 2)][8 * (j % 2)]);
    else ldmatrix_x4_trans(q, &sb[r + 8 * (j % 2)][8 * (j / 2)]);
    const unsigned b[2] = {q[0], q[1]};
    float c[4], d[4];
    for (int i = 0; i < 4; ++i) c[i] = C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
    if (P == 1) mma_m16n8k16_bf16(d, a, b, c);
    else mma_m16n8k16_f16(d, a, b, c);
    for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[i];
}

extern "C" __global__ void mma_tile_bf16(const unsigned short* A, const unsigned short* B, const float* C, float* D)
{
    mma_tile_16bit_impl<1, false, false>(A, B, C, D);
}

extern "C" __global__ void mma_tile_bf16_trans_b(const unsigned short* A, const unsigned short* B, const float* C,
                                                 float* D)
{
    mma_tile_16bit_impl<1, true, false>(A, B, C, D);
}

extern "C" __global__ void mma_tile_f16(const unsigned short* A, const unsigned short* B, const float* C, float* D)
{
    mma_tile_16bit_impl<2, false, false>(A, B, C, D);
}

extern "C" __global__ void mma_tile_f16_trans_b(const unsigned short* A, const unsigned short* B, const float* C,
                                                float* D)
{
    mma_tile_16bit_impl<2, true, false>(A, B, C, D);
}

extern "C" __global__ void mma_tile_bf16_swapped(const unsigned short* A, const unsigned short* B, const float* C,
                                                 float* D)
{
    mma_tile_16bit_impl<1, false, true>(A, B, C, D);
}

// The 16-bit conversions: x -> bfloat16 / float16 bits (round to nearest even) and back to float.
extern "C" __global__ void convert_16bit(const float* x, unsigned short* bf, unsigned short* h, float* bf_back,
                                         float* h_back, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        bf[i] = float_to_bf16(x[i]);
        h[i] = float_to_f16(x[i]);
        bf_back[i] = bf16_to_float(bf[i]);
        h_back[i] = f16_to_float(h[i]);
    }
}

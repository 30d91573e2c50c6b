// Correct kernels that exercise the mock GPU's emulation (tests/emu/test_emulation.py).

// C = A @ B, row-major, 16x16 output tile per block, one output per thread, K walked in 16-wide shared tiles.
#define TILE 16
extern "C" __global__ void sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B,
                                       float* __restrict__ C, int M, int N, int K) {
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        As[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
        Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; ++k) acc += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

// Reverses each block's slice through dynamic shared memory (blockDim.x floats, given at launch).
extern "C" __global__ void reverse_blocks(const float* in, float* out, int n) {
    extern __shared__ float buf[];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    buf[threadIdx.x] = i < n ? in[i] : 0.0f;
    __syncthreads();
    const int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - threadIdx.x);
    if (j < n) out[j] = buf[threadIdx.x];
}

// y = alpha * x + y with the element type and items per thread as template parameters.
template <typename T, int ITEMS>
__global__ void axpy(T alpha, const T* x, T* y, int n) {
    __shared__ T staged[ITEMS * 64];  // a shared array inside a template kernel
    const int base = (blockIdx.x * blockDim.x + threadIdx.x) * ITEMS;
    for (int k = 0; k < ITEMS; ++k) staged[threadIdx.x * ITEMS + k] = base + k < n ? x[base + k] : T(0);
    __syncthreads();
    for (int k = 0; k < ITEMS; ++k)
        if (base + k < n) y[base + k] += alpha * staged[threadIdx.x * ITEMS + k];
}

// Sum of each block's values: a warp-shuffle reduction, then one partial per warp through shared memory.
extern "C" __global__ void block_sum(const float* in, float* out, int n) {
    __shared__ float partial[32];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? in[i] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffff, v, offset);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x + 31) / 32 ? partial[lane] : 0.0f;
        for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffff, v, mask);
        if (lane == 0) out[blockIdx.x] = v;
    }
}

// Per-lane results of the other warp intrinsics, 6 ints per thread.
extern "C" __global__ void warp_votes(const int* in, int* out) {
    const int t = threadIdx.x, v = in[t];
    int* o = out + 6 * t;
    o[0] = __ballot_sync(0xffffffff, v > 0);
    o[1] = __any_sync(0xffffffff, v > 5);
    o[2] = __all_sync(0xffffffff, v >= 0);
    o[3] = __shfl_sync(0xffffffff, v, 3);
    o[4] = __shfl_up_sync(0xffffffff, v, 1, 8);
    o[5] = __reduce_max_sync(0xffffffff, v);
}

// Histogram of byte values with atomicAdd on shared counters, merged into global counters.
extern "C" __global__ void histogram(const unsigned char* data, unsigned int* bins, int n) {
    __shared__ unsigned int local[256];
    for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[data[i]], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x) atomicAdd(&bins[b], local[b]);
}

// Threads past n return at once; the others still meet at barriers (exited threads drop out, as on the GPU).
extern "C" __global__ void shift_left_early_return(const float* in, float* out, int n) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    if (t >= n) return;
    s[t] = in[t];
    __syncthreads();
    const float right = t + 1 < n ? s[t + 1] : 0.0f;
    __syncthreads();
    s[t] = right;
    __syncthreads();
    out[t] = s[t];
}

// Number of threads of the block whose value is positive, via __syncthreads_count.
extern "C" __global__ void count_positive(const float* in, int* out) {
    const int c = __syncthreads_count(in[blockIdx.x * blockDim.x + threadIdx.x] > 0.0f);
    if (threadIdx.x == 0) out[blockIdx.x] = c;
}

// Writes each thread's coordinates: checks the x-major thread numbering of 3-D blocks and grids.
extern "C" __global__ void coordinates(int* out) {
    const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int* o = out + 6 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
}

// Inline PTX sits behind __CUDA_ARCH__; the mock GPU compiles the #else branch.
__device__ float half_of(float x) {
#ifdef __CUDA_ARCH__
    float r;
    asm("mul.rn.f32 %0, %1, 0f3F000000;" : "=f"(r) : "f"(x));
    return r;
#else
    return x * 0.5f;
#endif
}

extern "C" __global__ void halve(float* x) { x[threadIdx.x] = half_of(x[threadIdx.x]); }

__constant__ float scale[4];

extern "C" __global__ void apply_scale(float* x) { x[threadIdx.x] *= scale[threadIdx.x % 4]; }

extern "C" __global__ void hello(int tag) {
    if (threadIdx.x == 1) printf("hello %d from block %d thread %d\n", tag, blockIdx.x, threadIdx.x);
}

// The declaration forms of shared memory the loader rewrites, all in one kernel: out[t] = 10 * t + 7.
extern "C" __global__ void __launch_bounds__(64) shared_forms(int* out) {
    __shared__ __align__(16) float aligned[64];
    volatile __shared__ int flag;
    __shared__ int2 pairs[8][8];
    static __shared__ double total;
    __shared__
        int spread_over_lines
            [64];
    __shared__ float first_half[32], second_half[32];  // not rewritten: the __shared__ macro's static fallback
    const int t = threadIdx.x;
    aligned[t] = float(t);
    pairs[t / 8][t % 8] = make_int2(t, 7);
    spread_over_lines[t] = 10 * t;
    const bool fresh = t >= 32 || (isnan(first_half[t]) && isnan(second_half[t]));  // NaN-filled in every block
    __syncthreads();
    if (t < 32) first_half[t] = second_half[t] = 1.0f;
    if (t == 0) { flag = 1; total = 0.0; }
    __syncthreads();
    if (t == 0) for (int i = 0; i < 64; ++i) total += aligned[i];
    __syncthreads();
    const bool ok = fresh && flag == 1 && total == 2016.0 && ((uintptr_t)aligned % 16) == 0 && sizeof(pairs) == 512;
    out[t] = ok ? spread_over_lines[t] + pairs[t / 8][t % 8].y : -1;
}

// matmul.cu — batched C = op(A) @ op(B) for float and double, and the register-blocked GEMM core conv2d.cu reuses.
//
// Tiling (`tile_gemm`, template arguments BM, BN, BK, TM, TN): a block of 256 threads, a 16 x 16 grid, computes one
// BM x BN tile of C (BM = 16 * TM, BN = 16 * TN); each thread keeps TM x TN outputs in registers. K is walked BK at a
// time: the block stages the BM x BK slice of op(A) and the BK x BN slice of op(B) in shared memory, A transposed
// (a[k][m]), so that for each k a thread reads a column run of A and a row run of B, both contiguous. A thread's
// rows come in runs of V = min(TM, 4) adjacent rows, runs 16 * V apart (row = run * 16V + ty * V + v; columns alike):
// the threads sharing a k read consecutive runs, so the 16-byte shared loads are conflict-free. Each warp covers
// 4 x 8 threads of the grid (4 A runs, 8 B runs per k). The next slice is read from global memory into registers
// while the current one is multiplied, then stored to the other of two shared buffers: one barrier per slice. (A
// tiling whose two buffers would pass the 48 KB of static shared memory, 128 x 128 x 16 in double, keeps one buffer
// and takes a second barrier per slice.)
// Loads outside op(A) or op(B) read as zero and stores outside C are skipped, so any M, N, K works (1, odd, prime,
// K < BK, K = 0). The 16 x 16 x 16 tiling with TM = TN = 1 is the one-output-per-thread kernel, for small problems.
//
// Operands are read through small loader functors, `load(i, j)` = element (i, j), so the same core serves matmul
// (transposes handled in the load, never materialized) and the implicit-GEMM convolutions in conv2d.cu (which is
// compiled after this file). A loader's `columns_adjacent` says which way its elements lie in memory, so the global
// loads of a slice walk the contiguous direction (coalesced). The kernel that calls `tile_gemm` owns its shared
// memory (`GemmShared`): one allocation, however many loader types the kernel instantiates the core with.
//
// Grid of `gemm`: x = ceil(M / BM) row tiles, y = ceil(N / BN) column tiles, z = batch entries (a block loops over
// batch entries z, z + gridDim.z, ... so any batch count fits CUDA's 65535 limit on gridDim.z). Block: (256, 1, 1).

// Epilogue (every GEMM kernel of matmul.cu and matmul_async.cu): out = act(acc + bias[col] + residual[row, col]),
// bias and residual optional (flags), act one of the ACT_* codes below (gpu.py's ACTIVATIONS has the same numbers).

#define GEMM_TILING_PARAMS int BM, int BN, int BK, int TM, int TN
#define GEMM_TILING BM, BN, BK, TM, TN
#define GEMM_THREADS 256

// --- Fused epilogue -----------------------------------------------------------------------------------------------
#define ACT_LINEAR 0
#define ACT_RELU 1
#define ACT_GELU 2     // exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), Keras's default (approximate=False)
#define ACT_SIGMOID 3
#define ACT_TANH 4
#define EPILOGUE_BIAS 1      // flags: bias (n,) is added to every row
#define EPILOGUE_RESIDUAL 2  // residual, shaped like the output, is added (before the activation)

__device__ __forceinline__ float act_erf(float x) { return erff(x); }
__device__ __forceinline__ double act_erf(double x) { return erf(x); }
__device__ __forceinline__ float act_exp(float x) { return expf(x); }
__device__ __forceinline__ double act_exp(double x) { return exp(x); }
__device__ __forceinline__ float act_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double act_tanh(double x) { return tanh(x); }

// act(v) for one of the ACT_* codes (any other code is linear; the launcher validates names).
template <typename T>
__device__ __forceinline__ T activate(T v, int activation)
{
    switch (activation) {
    case ACT_RELU:
        return v > T(0) || v != v ? v : T(0);  // relu(NaN) = NaN, as max(x, 0) in NumPy
    case ACT_GELU:
        return T(0.5) * v * (T(1) + act_erf(v * T(0.70710678118654752440)));
    case ACT_SIGMOID: {  // exp(-|v|) never overflows, and the tail below 0 keeps its relative precision
        const T e = act_exp(v < T(0) ? v : -v);
        const T r = T(1) / (T(1) + e);
        return v >= T(0) ? r : e * r;
    }
    case ACT_TANH:
        return act_tanh(v);
    default:
        return v;
    }
}

// out[index] = store(act(load(out[index]))) for every in-bounds output `at(e)` gives (e < count): at(e, row, col).
// Rolled: one copy of the activation code per kernel. The deferred half of every GEMM epilogue (Epilogue below,
// matmul_async.cu's MmaEpilogue with its 16-bit load and store).
template <typename E, typename Load, typename Store, typename At>
__device__ void activate_in_place(E* out, int count, int m, int n, int activation, const Load& load, const Store& store,
                                  const At& at)
{
#pragma unroll 1
    for (int e = 0; e < count; ++e) {
        int row, col;
        at(e, row, col);
        if (row < m && col < n) {
            const long long index = (long long)row * n + col;
            out[index] = store(activate(load(out[index]), activation));
        }
    }
}

// What a GEMM does with each accumulator before storing it: bias, residual and activation.
// The transcendental activations (gelu, sigmoid, tanh: erf/exp/tanh are 20-60 instructions each) are NOT applied in
// the unrolled store of the TM x TN accumulators: inlined 64 times per transpose pair they made the cubins 7x larger
// and ptxas minutes slower. The store writes the pre-activation (`operator()`); then, if `deferred()`, each thread
// re-reads its own outputs in a rolled loop (`deferred_loop`, one copy of the activation code) and activates them in
// place: same thread, same addresses, so program order suffices (no barrier), and the re-read hits L1/L2. It costs
// one extra read and write of the output tile, small beside the K-long GEMM.
template <typename T>
struct Epilogue {
    const T* bias;      // (n,), read when flags & EPILOGUE_BIAS
    const T* residual;  // like the output (offset to the batch entry), read when flags & EPILOGUE_RESIDUAL
    int flags;
    int activation;

    __device__ T operator()(T acc, long long index, int col) const
    {
        if (flags & EPILOGUE_BIAS) acc += bias[col];
        if (flags & EPILOGUE_RESIDUAL) acc += residual[index];
        return activation == ACT_RELU ? activate(acc, ACT_RELU) : acc;
    }

    __device__ bool deferred() const { return activation >= ACT_GELU; }

    // out[index] = act(out[index]) for every in-bounds output `at(e)` gives (e < count): at(e, row, col).
    template <typename At>
    __device__ void deferred_loop(T* out, int count, int m, int n, const At& at) const
    {
        if (!deferred()) return;
        activate_in_place(out, count, m, n, activation, [](T v) { return v; }, [](T v) { return v; }, at);
    }
};

// Element (i, j) of op(X), where X is stored row-major with leading dimension ld; TRANSPOSED reads X[j][i].
// Every loader says, in columns_adjacent, whether (i, j) and (i, j + 1) are neighbours in memory (else (i, j) and
// (i + 1, j) are).
template <typename T, bool TRANSPOSED>
struct MatrixLoad {
    static constexpr bool columns_adjacent = !TRANSPOSED;
    const T* data;
    int ld;

    __device__ T operator()(long long i, long long j) const
    {
        return TRANSPOSED ? data[j * ld + i] : data[i * ld + j];
    }
};

// The shared-memory buffers of a slice: a[buf][k][row] (op(A) transposed) and b[buf][k][col]. Rows are padded by
// V elements: the runs stay 16-byte aligned, and the slice stores of successive k fall in other banks.
template <typename T, GEMM_TILING_PARAMS>
struct GemmShared {
    static constexpr int A_STRIDE = BM + (TM < 4 ? TM : 4);
    static constexpr int B_STRIDE = BN + (TN < 4 ? TN : 4);
    static constexpr int BUFFERS = 2 * BK * (A_STRIDE + B_STRIDE) * sizeof(T) <= 48 * 1024 ? 2 : 1;
    alignas(16) T a[BUFFERS][BK][A_STRIDE];
    alignas(16) T b[BUFFERS][BK][B_STRIDE];
};

// One BK-deep slice of op(A) (BM x BK) and op(B) (BK x BN) in flight between global memory and shared memory:
// each of the 256 threads holds A_LOADS + B_LOADS elements of it in registers.
template <typename T, GEMM_TILING_PARAMS>
struct GemmSlice {
    static constexpr int A_LOADS = BM * BK / GEMM_THREADS;
    static constexpr int B_LOADS = BK * BN / GEMM_THREADS;
    static_assert(A_LOADS * GEMM_THREADS == BM * BK && B_LOADS * GEMM_THREADS == BK * BN,
                  "a slice must split evenly over the block's threads");
    T a[A_LOADS];
    T b[B_LOADS];

    // Element e of the slice at (row, k) of a ROWS x BK tile: k fastest when k runs along memory, else rows.
    template <int ROWS, bool K_FASTEST>
    __device__ static void place(int e, int& row, int& k)
    {
        row = K_FASTEST ? e / BK : e % ROWS;
        k = K_FASTEST ? e % BK : e / ROWS;
    }

    template <typename LoadA, typename LoadB>
    __device__ void load(const LoadA& load_a, const LoadB& load_b, int m0, int n0, int m, int n, long long k0,
                         long long k_end)
    {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            int row, k;
            place<BM, LoadA::columns_adjacent>(threadIdx.x + l * GEMM_THREADS, row, k);
            a[l] = (m0 + row < m && k0 + k < k_end) ? load_a(m0 + row, k0 + k) : T(0);
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            int col, k;
            place<BN, !LoadB::columns_adjacent>(threadIdx.x + l * GEMM_THREADS, col, k);
            b[l] = (k0 + k < k_end && n0 + col < n) ? load_b(k0 + k, n0 + col) : T(0);
        }
    }

    // The same placement as load(), into buffer buf of `shared`.
    template <typename LoadA, typename LoadB>
    __device__ void store(GemmShared<T, GEMM_TILING>& shared, int buf) const
    {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            int row, k;
            place<BM, LoadA::columns_adjacent>(threadIdx.x + l * GEMM_THREADS, row, k);
            shared.a[buf][k][row] = a[l];
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            int col, k;
            place<BN, !LoadB::columns_adjacent>(threadIdx.x + l * GEMM_THREADS, col, k);
            shared.b[buf][k][col] = b[l];
        }
    }
};

// Offset inside the tile of a thread's i-th row (or column): runs of V adjacent ones, 16 * V apart.
template <int T_PER_THREAD>
__device__ __forceinline__ int run_offset(int i, int thread_coord)
{
    constexpr int V = T_PER_THREAD < 4 ? T_PER_THREAD : 4;
    static_assert(T_PER_THREAD % V == 0, "outputs per thread must be 1, 2, or a multiple of 4");
    return (i / V) * (16 * V) + thread_coord * V + i % V;
}

// out[row, col] = sum over p in [k_begin, k_end) of A(row, p) * B(p, col) over the block's BM x BN tile of the
// m x n row-major result, through `epilogue`. Every thread of the block must call it (it synchronizes); no thread
// returns early.
template <typename T, GEMM_TILING_PARAMS, typename LoadA, typename LoadB>
__device__ void tile_gemm(GemmShared<T, GEMM_TILING>& shared, const LoadA& load_a, const LoadB& load_b, T* out,
                          int m, int n, long long k_begin, long long k_end, const Epilogue<T>& epilogue = {})
{
    static_assert(BM == 16 * TM && BN == 16 * TN, "the block is a 16 x 16 grid of threads");

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int tx = (warp % 2) * 8 + lane % 8;  // warp = 4 x 8 threads; the 8 warps tile the 16 x 16 grid 4 x 2
    const int ty = (warp / 2) * 4 + lane / 8;
    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            acc[i][j] = T(0);
        }
    }

    GemmSlice<T, GEMM_TILING> slice;
    slice.load(load_a, load_b, m0, n0, m, n, k_begin, k_end);
    slice.template store<LoadA, LoadB>(shared, 0);
    __syncthreads();
    int buf = 0;
    for (long long k0 = k_begin; k0 < k_end; k0 += BK) {
        const bool more = k0 + BK < k_end;  // the same in every thread: the barrier below is reached by all
        if (more) {
            slice.load(load_a, load_b, m0, n0, m, n, k0 + BK, k_end);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            T a[TM];
            T b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) {
                a[i] = shared.a[buf][kk][run_offset<TM>(i, ty)];
            }
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                b[j] = shared.b[buf][kk][run_offset<TN>(j, tx)];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i) {
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    acc[i][j] += a[i] * b[j];
                }
            }
        }
        constexpr int BUFFERS = GemmShared<T, GEMM_TILING>::BUFFERS;
        if (BUFFERS == 1) {
            __syncthreads();  // one buffer: every thread is done reading it before it is overwritten
        }
        const int next = (buf + 1) % BUFFERS;  // with two, the other buffer was last read before the last barrier
        if (more) {
            slice.template store<LoadA, LoadB>(shared, next);
        }
        __syncthreads();
        buf = next;
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int row = m0 + run_offset<TM>(i, ty);
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int col = n0 + run_offset<TN>(j, tx);
            if (row < m && col < n) {
                const long long index = (long long)row * n + col;
                out[index] = epilogue(acc[i][j], index, col);
            }
        }
    }
    epilogue.deferred_loop(out, TM * TN, m, n, [&](int e, int& row, int& col) {
        row = m0 + run_offset<TM>(e / TN, ty);
        col = n0 + run_offset<TN>(e % TN, tx);
    });
}

template <typename T, GEMM_TILING_PARAMS, bool TRANSPOSE_A, bool TRANSPOSE_B>
__device__ void gemm_batches(GemmShared<T, GEMM_TILING>& shared, const T* a, const T* b, T* c, int m, int n, int k,
                             int batches, long long batch_stride_a, long long batch_stride_b, Epilogue<T> epilogue)
{
    const T* residual = epilogue.residual;
    for (int batch = blockIdx.z; batch < batches; batch += gridDim.z) {
        const MatrixLoad<T, TRANSPOSE_A> load_a{a + batch * batch_stride_a, TRANSPOSE_A ? m : k};
        const MatrixLoad<T, TRANSPOSE_B> load_b{b + batch * batch_stride_b, TRANSPOSE_B ? k : n};
        epilogue.residual = residual + (long long)batch * m * n;
        tile_gemm<T, GEMM_TILING>(shared, load_a, load_b, c + (long long)batch * m * n, m, n, 0, k, epilogue);
    }
}

// c[batch] = epilogue(op(a[batch]) @ op(b[batch])), c contiguous (batches, m, n). a is stored (m, k), or (k, m) when
// transpose_a; b is stored (k, n), or (n, k) when transpose_b. A batch stride of 0 broadcasts that operand.
// bias (n,) and residual (batches, m, n) are read only when `flags` says so (pass any array otherwise).
// Each transpose pair gets its own copy of the core, so every load walks memory the contiguous way.
template <typename T, GEMM_TILING_PARAMS>
__global__ void __launch_bounds__(GEMM_THREADS)
gemm(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int m, int n, int k, int transpose_a,
     int transpose_b, int batches, long long batch_stride_a, long long batch_stride_b, const T* __restrict__ bias,
     const T* __restrict__ residual, int flags, int activation)
{
    __shared__ GemmShared<T, GEMM_TILING> shared;
    const Epilogue<T> epi{bias, residual, flags, activation};
    if (transpose_a && transpose_b) {
        gemm_batches<T, GEMM_TILING, true, true>(shared, a, b, c, m, n, k, batches, batch_stride_a, batch_stride_b,
                                                 epi);
    } else if (transpose_a) {
        gemm_batches<T, GEMM_TILING, true, false>(shared, a, b, c, m, n, k, batches, batch_stride_a, batch_stride_b,
                                                  epi);
    } else if (transpose_b) {
        gemm_batches<T, GEMM_TILING, false, true>(shared, a, b, c, m, n, k, batches, batch_stride_a, batch_stride_b,
                                                  epi);
    } else {
        gemm_batches<T, GEMM_TILING, false, false>(shared, a, b, c, m, n, k, batches, batch_stride_a, batch_stride_b,
                                                   epi);
    }
}

// --- Split-K ------------------------------------------------------------------------------------------------------
// For products whose m x n has too few tiles to fill the GPU but whose K is long (the seed CNN's Dense layer,
// 128 x 5408 -> 10, is one tile): block z of `gemm_split_k` sums the K range [z * k_chunk, (z + 1) * k_chunk) of
// op(a) @ op(b) into partial + z * m * n, with no epilogue; `gemm_split_k_reduce` then adds the slices of each output
// in order and applies the epilogue. Deterministic: no atomics. Grid of gemm_split_k: x, y as `gemm`, z = slices.
template <typename T, GEMM_TILING_PARAMS, bool TRANSPOSE_A, bool TRANSPOSE_B>
__device__ void gemm_k_slice(GemmShared<T, GEMM_TILING>& shared, const T* a, const T* b, T* partial, int m, int n,
                             int k, int k_chunk)
{
    const long long k_begin = (long long)blockIdx.z * k_chunk;
    const long long k_end = k_begin + k_chunk < k ? k_begin + k_chunk : k;
    const MatrixLoad<T, TRANSPOSE_A> load_a{a, TRANSPOSE_A ? m : k};
    const MatrixLoad<T, TRANSPOSE_B> load_b{b, TRANSPOSE_B ? k : n};
    tile_gemm<T, GEMM_TILING>(shared, load_a, load_b, partial + (long long)blockIdx.z * m * n, m, n, k_begin, k_end);
}

template <typename T, GEMM_TILING_PARAMS>
__global__ void __launch_bounds__(GEMM_THREADS)
gemm_split_k(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ partial, int m, int n, int k,
             int transpose_a, int transpose_b, int k_chunk)
{
    __shared__ GemmShared<T, GEMM_TILING> shared;
    if (transpose_a && transpose_b) {
        gemm_k_slice<T, GEMM_TILING, true, true>(shared, a, b, partial, m, n, k, k_chunk);
    } else if (transpose_a) {
        gemm_k_slice<T, GEMM_TILING, true, false>(shared, a, b, partial, m, n, k, k_chunk);
    } else if (transpose_b) {
        gemm_k_slice<T, GEMM_TILING, false, true>(shared, a, b, partial, m, n, k, k_chunk);
    } else {
        gemm_k_slice<T, GEMM_TILING, false, false>(shared, a, b, partial, m, n, k, k_chunk);
    }
}

// out[i] = act(sum over s < splits of partial[s][i] + bias + residual) for the m x n outputs; grid-stride, one
// output per thread (1-D grid of any size, blocks of GEMM_THREADS).
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS) gemm_split_k_reduce(const T* __restrict__ partial, T* __restrict__ out, int splits, int m, int n,
                                    const T* __restrict__ bias, const T* __restrict__ residual, int flags,
                                    int activation)
{
    const Epilogue<T> epilogue{bias, residual, flags, activation};
    const long long count = (long long)m * n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) {
        T acc = T(0);
        for (int s = 0; s < splits; ++s) acc += partial[s * count + i];
        const T v = epilogue(acc, i, (int)(i % n));
        out[i] = epilogue.deferred() ? activate(v, activation) : v;
    }
}

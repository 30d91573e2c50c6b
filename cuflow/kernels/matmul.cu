// matmul.cu — batched C = op(A) @ op(B) for float and double, plus the tiled-GEMM core the conv kernels reuse.
//
// Tiling: one TILE x TILE block of threads computes one TILE x TILE tile of C, one output per thread
// (threadIdx.x walks the columns, threadIdx.y the rows). The K dimension is walked TILE at a time: each thread
// loads one element of the A tile and one of the B tile into shared memory, the block synchronizes, and every
// thread accumulates a TILE-long dot product from shared memory. Loads outside op(A) or op(B) read as zero, so any
// M, N, K (1, odd, prime, K < TILE, K = 0) is handled without a separate edge path.
//
// Operands are read through small loader functors, so the same core serves matmul (transposes handled in the
// load, never materialized) and the implicit-GEMM convolutions in conv2d.cu (which is compiled after this file).
//
// Grid of `gemm`: x = ceil(M / TILE) row tiles, y = ceil(N / TILE) column tiles, z = batch entries (a block loops
// over batch entries z, z + gridDim.z, ... so any batch count fits CUDA's 65535 limit on gridDim.z).
// Block: (TILE, TILE, 1).

// Element (i, j) of op(X), where X is stored row-major with leading dimension ld; transposed reads X[j][i].
template <typename T>
struct MatrixLoad {
    const T* data;
    int ld;
    int transposed;

    __device__ T operator()(long long i, long long j) const
    {
        return transposed ? data[j * ld + i] : data[i * ld + j];
    }
};

// out[row, col] = sum over p in [k_begin, k_end) of A(row, p) * B(p, col) for this thread's (row, col) of the
// block's tile of the m x n row-major result. Every thread of the block must call it (it synchronizes): threads
// outside the result still load their share of the tiles and then store nothing.
template <typename T, int TILE, typename LoadA, typename LoadB>
__device__ void tile_gemm(const LoadA& load_a, const LoadB& load_b, T* out, int m, int n,
                          long long k_begin, long long k_end)
{
    __shared__ T a_tile[TILE][TILE];
    __shared__ T b_tile[TILE][TILE];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int row = blockIdx.x * TILE + ty;
    const int col = blockIdx.y * TILE + tx;
    T acc = T(0);
    for (long long k0 = k_begin; k0 < k_end; k0 += TILE) {
        const long long a_col = k0 + tx;
        const long long b_row = k0 + ty;
        a_tile[ty][tx] = (row < m && a_col < k_end) ? load_a(row, a_col) : T(0);
        b_tile[ty][tx] = (b_row < k_end && col < n) ? load_b(b_row, col) : T(0);
        __syncthreads();
        for (int kk = 0; kk < TILE; ++kk) {
            acc += a_tile[ty][kk] * b_tile[kk][tx];
        }
        __syncthreads();  // the next iteration overwrites the tiles
    }
    if (row < m && col < n) {
        out[(long long)row * n + col] = acc;
    }
}

// c[batch] = op(a[batch]) @ op(b[batch]), c contiguous (batches, m, n). a is stored (m, k), or (k, m) when
// transpose_a; b is stored (k, n), or (n, k) when transpose_b. A batch stride of 0 broadcasts that operand.
template <typename T, int TILE>
__global__ void gemm(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                     int m, int n, int k, int transpose_a, int transpose_b, int batches,
                     long long batch_stride_a, long long batch_stride_b)
{
    const int lda = transpose_a ? m : k;
    const int ldb = transpose_b ? k : n;
    for (int batch = blockIdx.z; batch < batches; batch += gridDim.z) {
        const MatrixLoad<T> load_a{a + batch * batch_stride_a, lda, transpose_a};
        const MatrixLoad<T> load_b{b + batch * batch_stride_b, ldb, transpose_b};
        tile_gemm<T, TILE>(load_a, load_b, c + (long long)batch * m * n, m, n, 0, k);
    }
}

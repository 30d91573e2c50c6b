// conv2d_mma.cu — conv2d.cu's implicit-GEMM forward on tensor cores: matmul_async.cu's mma_tile_staged (TF32, BF16,
// FP16 operands, float32 accumulate, STAGES cp.async stages), fed by an im2col tile copier instead of a matrix one.
// Compiled after ptx.cuh, matmul.cu, matmul_async.cu and conv2d.cu (ConvGeometry, FastDivmod, RowMajorSplit);
// compile.py lists the five.
//
//   out[(n,oh,ow), f] = epilogue( sum_(kh,kw,c) x~[(n,oh,ow), (kh,kw,c)] * w[(kh,kw,c), f] )
//   A = x~ (M = N*OH*OW, K = KH*KW*C) staged k inner [BM][BK + pad] by Im2colTileCopy;
//   B = w as the row-major (K, F) matrix it is, staged k outer [BK][BN + 8] by StagedTile::copy.
// A cp.async chunk is VEC = 16 / sizeof(E) elements (8 halves, 4 floats) of k. With C a multiple of VEC, the VEC
// consecutive k of a chunk are VEC consecutive channels of one tap, i.e. 16 contiguous, 16-byte aligned bytes of one
// input cell, or wholly padding (zero-filled): so gpu.py sends a convolution here only when C and F are multiples of
// VEC (F: whole chunks of w's rows and aligned output rows) and x and w are 16-byte aligned; any other one runs
// conv2d.cu's FP32 kernels. The 256 threads copy the same BM * BK / VEC chunks of every A tile, so each thread
// splits its rows into (n, oh, ow) once, in the copier's constructor, and per K tile splits one k into (kh, kw, c).
// Grid: x = ceil(M / BM), y = ceil(F / BN). Block: GEMM_THREADS. Dynamic shared memory as gemm_mma's.

template <typename E, int BM, int BK, int STRIDE>
struct Im2colTileCopy {
    static constexpr int VEC = 16 / sizeof(E);
    static constexpr int CHUNKS = BK / VEC;                       // chunks per tile row
    static constexpr int ROWS = BM * CHUNKS / GEMM_THREADS;       // tile rows per thread
    static_assert(ROWS * GEMM_THREADS == BM * CHUNKS && CHUNKS * VEC == BK, "chunks must split evenly");
    const E* x;
    ConvGeometry g;
    int k_end;
    FastDivmod channels, k_w;
    int top[ROWS], left[ROWS];  // the window's first input row and column of each of this thread's tile rows
    long long image[ROWS];      // n * H of the row's cell; -1 for rows past M

    __device__ Im2colTileCopy(const E* x_, const ConvGeometry& g_, int m0, int m)
        : x(x_), g(g_), k_end(g_.k_h * g_.k_w * g_.in_c), channels(g_.in_c), k_w(g_.k_w)
    {
        const RowMajorSplit<GridCell> cells(g.out_h, g.out_w);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const int row = m0 + (threadIdx.x + r * GEMM_THREADS) / CHUNKS;
            const GridCell o = cells(row < m ? row : 0);
            top[r] = o.h * g.stride_h - g.pad_top;
            left[r] = o.w * g.stride_w - g.pad_left;
            image[r] = row < m ? (long long)o.n * g.in_h : -1;
        }
    }

    // This thread's chunks of the A tile whose first column is k0, into `smem` (one stage, layout [BM][STRIDE]).
    __device__ void operator()(E* smem, long long k0) const
    {
        const int col = (threadIdx.x % CHUNKS) * VEC;
        const int k = (int)k0 + col;  // the launcher checks K + BK < 2^31
        const int tap = channels.div(k);
        const int kh = k_w.div(tap);
        const int dh = kh * g.dilation_h, dw = (tap - kh * g.k_w) * g.dilation_w, c = k - tap * g.in_c;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const int ih = top[r] + dh, iw = left[r] + dw;
            const bool valid = k < k_end && image[r] >= 0 && ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w;
            const E* src = valid ? x + ((image[r] + ih) * g.in_w + iw) * g.in_c + c : x;
            cp_async_16_zfill(smem + ((threadIdx.x + r * GEMM_THREADS) / CHUNKS) * STRIDE + col, src, valid);
        }
    }
};

// conv2d.cu's conv2d_forward (same arguments after the pointers' types) on tensor cores; x, w, out, bias and residual
// in precision P's storage type (void*, as gemm_mma).
template <int P, int BM, int BN, int BK, int STAGES>
__global__ void __launch_bounds__(GEMM_THREADS)
conv2d_forward_mma(const void* __restrict__ x, const void* __restrict__ w, void* __restrict__ out,
                   const void* __restrict__ bias, const void* __restrict__ residual, int flags, int activation,
                   CONV_GEOMETRY_PARAMS)
{
    extern __shared__ float4 mma_smem[];
    using E = typename MmaType<P>::E;
    using Tiles = MmaTiles<P, false, false, BM, BN, BK>;
    const ConvGeometry g = CONV_GEOMETRY;
    const int m = g.batch * g.out_h * g.out_w, n = g.out_c, k = g.k_h * g.k_w * g.in_c, n0 = blockIdx.y * BN;
    const E* filter = static_cast<const E*>(w);
    const Im2colTileCopy<E, BM, BK, Tiles::TileA::STRIDE> copy_a(static_cast<const E*>(x), g, blockIdx.x * BM, m);
    mma_tile_staged<P, false, false, BM, BN, BK, STAGES>(
        mma_smem, copy_a, [&](E* stage, long long k0) { Tiles::TileB::copy(stage, filter, n, n0, n, k0, k); },
        static_cast<E*>(out), m, n, 0, k,
        MmaEpilogue<P>{static_cast<const E*>(bias), static_cast<const E*>(residual), flags, activation});
}

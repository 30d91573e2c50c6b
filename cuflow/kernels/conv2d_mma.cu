// conv2d_mma.cu — conv2d.cu's three implicit GEMMs on tensor cores: matmul_async.cu's mma_tile_staged (TF32, BF16,
// FP16 operands, float32 accumulate, STAGES cp.async stages), fed by gathering tile copiers instead of matrix ones.
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
// The backward passes (conv2d.cu's equations) need the same 16-byte chunks, under the same conditions:
//   backward_input   A = dy~ (M = N*H*W, K = KH*KW*F) k inner, by OutputGradTileCopy: a chunk is VEC channels of one
//                    output cell (or zero: padding, or a tap the stride skips); B = w read as (.., F, C), staged k
//                    inner [BN][BK + pad] (TRANSPOSE_B) by FilterTransposedTileCopy: per tap, w[tap] is (C, F), so
//                    a chunk is VEC consecutive f of one (tap, c) row.
//   backward_filter  A = x~^T (M = KH*KW*C, K = N*OH*OW), staged k outer [BK][BM + 8] (TRANSPOSE_A) by
//                    Im2colColumnsTileCopy: a chunk is VEC channels of one tap of one output cell's window; B = dy,
//                    the row-major (K, F) matrix it is (StagedTile::copy). Split-K as conv2d.cu's: block z sums
//                    [z * k_chunk, ...) into out + z * M * F. Instantiated for TF32 only: its partial sums must stay
//                    float32, and mma_tile_staged stores in the operands' type, so gpu.py runs 16-bit inputs through
//                    it as float32 copies, which TF32 holds exactly (10 mantissa bits >= FP16's 10, BF16's 7).
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

// dy~ tiles for backward_input (layout [BM][STRIDE], k inner): row (n, ih, iw), k = (kh, kw, f). Each thread keeps,
// per tile row, ih + pad_top and iw + pad_left; per K tile it splits one k and finds, per row, the output cell whose
// window puts tap (kh, kw) on (ih, iw), if the stride lets one.
template <typename E, int BM, int BK, int STRIDE>
struct OutputGradTileCopy {
    static constexpr int VEC = 16 / sizeof(E);
    static constexpr int CHUNKS = BK / VEC;
    static constexpr int ROWS = BM * CHUNKS / GEMM_THREADS;
    static_assert(ROWS * GEMM_THREADS == BM * CHUNKS && CHUNKS * VEC == BK, "chunks must split evenly");
    const E* dy;
    ConvGeometry g;
    int k_end;
    FastDivmod channels, k_w, stride_h, stride_w;
    int down[ROWS], right[ROWS];  // ih + pad_top, iw + pad_left of each of this thread's tile rows
    long long image[ROWS];        // n * OH of the row's cell; -1 for rows past M

    __device__ OutputGradTileCopy(const E* dy_, const ConvGeometry& g_, int m0, int m)
        : dy(dy_), g(g_), k_end(g_.k_h * g_.k_w * g_.out_c), channels(g_.out_c), k_w(g_.k_w), stride_h(g_.stride_h),
          stride_w(g_.stride_w)
    {
        const RowMajorSplit<GridCell> cells(g.in_h, g.in_w);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const int row = m0 + (threadIdx.x + r * GEMM_THREADS) / CHUNKS;
            const GridCell i = cells(row < m ? row : 0);
            down[r] = i.h + g.pad_top;
            right[r] = i.w + g.pad_left;
            image[r] = row < m ? (long long)i.n * g.out_h : -1;
        }
    }

    __device__ void operator()(E* smem, long long k0) const
    {
        const int col = (threadIdx.x % CHUNKS) * VEC;
        const int k = (int)k0 + col;  // the launcher checks K + BK < 2^31
        const int tap = channels.div(k);
        const int kh = k_w.div(tap);
        const int dh = kh * g.dilation_h, dw = (tap - kh * g.k_w) * g.dilation_w, f = k - tap * g.out_c;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const int th = down[r] - dh, tw = right[r] - dw;  // = oh * stride_h (ow * stride_w) for a real cell
            const int oh = stride_h.div(th < 0 ? 0 : th), ow = stride_w.div(tw < 0 ? 0 : tw);
            const bool valid = k < k_end && image[r] >= 0 && th >= 0 && tw >= 0 && oh * g.stride_h == th &&
                               ow * g.stride_w == tw && oh < g.out_h && ow < g.out_w;
            const E* src = valid ? dy + ((image[r] + oh) * g.out_w + ow) * g.out_c + f : dy;
            cp_async_16_zfill(smem + ((threadIdx.x + r * GEMM_THREADS) / CHUNKS) * STRIDE + col, src, valid);
        }
    }
};

// w read as [(kh, kw, f), c], staged k inner ([BN][STRIDE]: row c, k along it) for backward_input. CHUNKS divides
// GEMM_THREADS, so a thread's column (and the tap of its k) is the same for all its chunks of a tile.
template <typename E, int BN, int BK, int STRIDE>
struct FilterTransposedTileCopy {
    static constexpr int VEC = 16 / sizeof(E);
    static constexpr int CHUNKS = BK / VEC;
    static constexpr int LINES = BN * CHUNKS / GEMM_THREADS;
    static_assert(LINES * GEMM_THREADS == BN * CHUNKS && CHUNKS * VEC == BK, "chunks must split evenly");
    const E* w;
    ConvGeometry g;
    int n0, k_end;
    FastDivmod channels;

    __device__ FilterTransposedTileCopy(const E* w_, const ConvGeometry& g_, int n0_)
        : w(w_), g(g_), n0(n0_), k_end(g_.k_h * g_.k_w * g_.out_c), channels(g_.out_c) {}

    __device__ void operator()(E* smem, long long k0) const
    {
        const int col = (threadIdx.x % CHUNKS) * VEC;
        const int k = (int)k0 + col;
        const int tap = channels.div(k);
        const int f = k - tap * g.out_c;
#pragma unroll
        for (int r = 0; r < LINES; ++r) {
            const int line = (threadIdx.x + r * GEMM_THREADS) / CHUNKS, c = n0 + line;
            const bool valid = k < k_end && c < g.in_c;
            const E* src = valid ? w + ((long long)tap * g.in_c + c) * g.out_c + f : w;
            cp_async_16_zfill(smem + line * STRIDE + col, src, valid);
        }
    }
};

// x~^T tiles for backward_filter (layout [BK][STRIDE], k outer: line = output cell (n, oh, ow), columns = taps
// (kh, kw, c)). CHUNKS divides GEMM_THREADS, so each thread splits its column's tap once, in the constructor, and per
// K tile splits the output cell of each of its lines.
template <typename E, int BM, int BK, int STRIDE>
struct Im2colColumnsTileCopy {
    static constexpr int VEC = 16 / sizeof(E);
    static constexpr int CHUNKS = BM / VEC;
    static constexpr int LINES = BK * CHUNKS / GEMM_THREADS;
    static_assert(LINES * GEMM_THREADS == BK * CHUNKS && CHUNKS * VEC == BM, "chunks must split evenly");
    const E* x;
    ConvGeometry g;
    long long k_end;
    RowMajorSplit<GridCell> cells;
    int dh, dw, channel;
    bool column_valid;

    __device__ Im2colColumnsTileCopy(const E* x_, const ConvGeometry& g_, int m0, int m, long long k_end_)
        : x(x_), g(g_), k_end(k_end_), cells(g_.out_h, g_.out_w)
    {
        const int p = m0 + (threadIdx.x % CHUNKS) * VEC;
        const Tap t = RowMajorSplit<Tap>(g.k_w, g.in_c)(p < m ? p : 0);
        dh = t.kh * g.dilation_h - g.pad_top;
        dw = t.kw * g.dilation_w - g.pad_left;
        channel = t.channel;
        column_valid = p < m;
    }

    __device__ void operator()(E* smem, long long k0) const
    {
        const int col = (threadIdx.x % CHUNKS) * VEC;
#pragma unroll
        for (int r = 0; r < LINES; ++r) {
            const int line = (threadIdx.x + r * GEMM_THREADS) / CHUNKS;
            const long long k = k0 + line;
            const GridCell o = cells(k < k_end ? (int)k : 0);  // the launcher checks K < 2^31
            const int ih = o.h * g.stride_h + dh, iw = o.w * g.stride_w + dw;
            const bool valid = column_valid && k < k_end && ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w;
            const E* src = valid ? x + (((long long)o.n * g.in_h + ih) * g.in_w + iw) * g.in_c + channel : x;
            cp_async_16_zfill(smem + line * STRIDE + col, src, valid);
        }
    }
};

// conv2d.cu's conv2d_backward_input (same arguments after the pointers' types) on tensor cores; grad_out, w and dx
// in precision P's storage type.
template <int P, int BM, int BN, int BK, int STAGES>
__global__ void __launch_bounds__(GEMM_THREADS)
conv2d_backward_input_mma(const void* __restrict__ grad_out, const void* __restrict__ w, void* __restrict__ dx,
                          CONV_GEOMETRY_PARAMS)
{
    extern __shared__ float4 mma_smem[];
    using E = typename MmaType<P>::E;
    using Tiles = MmaTiles<P, false, true, BM, BN, BK>;
    const ConvGeometry g = CONV_GEOMETRY;
    const int m = g.batch * g.in_h * g.in_w, k = g.k_h * g.k_w * g.out_c;
    const OutputGradTileCopy<E, BM, BK, Tiles::TileA::STRIDE> copy_a(static_cast<const E*>(grad_out), g,
                                                                     blockIdx.x * BM, m);
    const FilterTransposedTileCopy<E, BN, BK, Tiles::TileB::STRIDE> copy_b(static_cast<const E*>(w), g,
                                                                           blockIdx.y * BN);
    mma_tile_staged<P, false, true, BM, BN, BK, STAGES>(mma_smem, copy_a, copy_b, static_cast<E*>(dx), m, g.in_c, 0,
                                                        k, MmaEpilogue<P>{nullptr, nullptr, 0, ACT_LINEAR});
}

// conv2d.cu's conv2d_backward_filter (same arguments after the pointers' types, split-K included) on tensor cores.
template <int P, int BM, int BN, int BK, int STAGES>
__global__ void __launch_bounds__(GEMM_THREADS)
conv2d_backward_filter_mma(const void* __restrict__ x, const void* __restrict__ grad_out, void* __restrict__ out,
                           int k_chunk, CONV_GEOMETRY_PARAMS)
{
    extern __shared__ float4 mma_smem[];
    using E = typename MmaType<P>::E;
    using Tiles = MmaTiles<P, true, false, BM, BN, BK>;
    const ConvGeometry g = CONV_GEOMETRY;
    const int m = g.k_h * g.k_w * g.in_c, n = g.out_c, n0 = blockIdx.y * BN;
    const long long k = (long long)g.batch * g.out_h * g.out_w;
    const long long k_begin = (long long)blockIdx.z * k_chunk;
    const long long k_end = k_begin + k_chunk < k ? k_begin + k_chunk : k;
    const E* dy = static_cast<const E*>(grad_out);
    const Im2colColumnsTileCopy<E, BM, BK, Tiles::TileA::STRIDE> copy_a(static_cast<const E*>(x), g,
                                                                        blockIdx.x * BM, m, k_end);
    mma_tile_staged<P, true, false, BM, BN, BK, STAGES>(
        mma_smem, copy_a, [&](E* stage, long long k0) { Tiles::TileB::copy(stage, dy, n, n0, n, k0, k_end); },
        static_cast<E*>(out) + (long long)blockIdx.z * m * n, m, n, k_begin, k_end,
        MmaEpilogue<P>{nullptr, nullptr, 0, ACT_LINEAR});
}

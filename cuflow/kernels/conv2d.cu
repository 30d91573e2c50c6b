// conv2d.cu — 2-D convolution forward, backward-data and backward-filter as implicit GEMMs (NHWC input, HWIO filter).
//
// Compiled after matmul.cu (the table in compile.py lists both files for this module) and reuses its register-blocked
// core `tile_gemm` (a BM x BN tile of the GEMM per block of 256 threads, TM x TN outputs per thread, K walked through
// shared memory BK at a time). No im2col matrix is ever built; the loaders below compute, per element, which input,
// filter or gradient cell a GEMM operand element is (zero for padding), so any stride, padding and dilation works.
//
//   forward          out[(n,oh,ow), f]   = sum_(kh,kw,c)  x~[(n,oh,ow), (kh,kw,c)] * w[(kh,kw,c), f]
//   backward_input   dx[(n,ih,iw), c]    = sum_(kh,kw,f)  dy~[(n,ih,iw), (kh,kw,f)] * w[(kh,kw,f), c]   (w read as (.., F, C))
//   backward_filter  dw[(kh,kw,c), f]    = sum_(n,oh,ow)  x~[(n,oh,ow), (kh,kw,c)]^T * dy[(n,oh,ow), f]
//
// x~ is the implicit im2col view of x; dy~ gathers, for input cell (ih, iw) and tap (kh, kw), the one output cell
// whose window puts that tap there (zero if the stride skips it). Each GEMM's row-major result is already the NHWC
// or HWIO array. Grids: x = ceil(M / BM), y = ceil(N / BN); block (256, 1, 1). backward_filter splits its long
// K = N*OH*OW over gridDim.z: block z sums its own K range into out + z*M*N, and the launcher adds the slices.
// Row and column indices fit in int (the launchers check M, N and K < 2^31); memory offsets are 64-bit.
// The forward applies matmul.cu's Epilogue (bias, residual, activation) to the GEMM's results; so does
// `conv2d_direct`, the kernel for filters with few taps (K = KH*KW*C <= 16, the 1-channel seed layer), at the end.

// The convolution's sizes, passed to every kernel as the same 15 ints in this order.
struct ConvGeometry {
    int batch, in_h, in_w, in_c;
    int k_h, k_w, out_c;
    int out_h, out_w;
    int stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
};

#define CONV_GEOMETRY_PARAMS                                                                                    \
    int batch, int in_h, int in_w, int in_c, int k_h, int k_w, int out_c, int out_h, int out_w, int stride_h,  \
        int stride_w, int pad_top, int pad_left, int dilation_h, int dilation_w
#define CONV_GEOMETRY                                                                                           \
    ConvGeometry{batch, in_h, in_w, in_c, k_h, k_w, out_c, out_h, out_w, stride_h, stride_w, pad_top, pad_left,  \
                 dilation_h, dilation_w}

// n / d for 0 <= n < 2^31 by one multiply and shift (Granlund & Montgomery, with a 33-bit magic; n % d is then
// n - q * d): the loaders split indices for every element they load, and an integer division costs ~20 instructions.
struct FastDivmod {
    int d;
    int shift;
    unsigned long long magic;

    __device__ explicit FastDivmod(int divisor) : d(divisor)
    {
        int log2_ceil = 0;
        while ((1LL << log2_ceil) < divisor) {
            ++log2_ceil;
        }
        shift = 31 + log2_ceil;  // then n * (magic * d - 2^shift) < 2^shift for every n < 2^31: the quotient is exact
        magic = divisor > 0 ? ((1ULL << shift) + divisor - 1) / divisor : 0;  // d = 0: an empty axis, never split
    }

    __device__ int div(int n) const { return (int)((unsigned long long)(unsigned)n * magic >> shift); }
};

// Index (n, h, w) of a cell of an (N, H, W) grid.
struct GridCell {
    int n, h, w;
};

// Index (kh, kw, channel) of a filter tap over `channels` channels.
struct Tap {
    int kh, kw, channel;
};

// A row-major index over an (*, J, K) grid, split into its three coordinates (Parts: GridCell or Tap).
template <typename Parts>
struct RowMajorSplit {
    FastDivmod j_extent, k_extent;

    __device__ RowMajorSplit(int j, int k) : j_extent(j), k_extent(k) {}

    __device__ Parts operator()(int index) const
    {
        const int ij = k_extent.div(index);
        const int i = j_extent.div(ij);
        return Parts{i, ij - i * j_extent.d, index - ij * k_extent.d};
    }
};

// x~[row, p]: row = (n, oh, ow) an output cell, p = (kh, kw, c) a filter tap; zero where the tap lands in padding.
template <typename T>
struct Im2colLoad {
    static constexpr bool columns_adjacent = true;  // channels
    const T* x;
    ConvGeometry g;
    RowMajorSplit<GridCell> cells;
    RowMajorSplit<Tap> taps;

    __device__ Im2colLoad(const T* x_, const ConvGeometry& g_)
        : x(x_), g(g_), cells(g_.out_h, g_.out_w), taps(g_.k_w, g_.in_c) {}

    __device__ T operator()(long long row, long long p) const
    {
        const GridCell o = cells((int)row);
        const Tap t = taps((int)p);
        const int ih = o.h * g.stride_h - g.pad_top + t.kh * g.dilation_h;
        const int iw = o.w * g.stride_w - g.pad_left + t.kw * g.dilation_w;
        if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) {
            return T(0);
        }
        return x[(((long long)o.n * g.in_h + ih) * g.in_w + iw) * g.in_c + t.channel];
    }
};

// x~ transposed: rows are filter taps (kh, kw, c), columns output cells (n, oh, ow); channels lie along the rows.
template <typename T>
struct Im2colTransposedLoad {
    static constexpr bool columns_adjacent = false;
    Im2colLoad<T> im2col;

    __device__ T operator()(long long p, long long row) const { return im2col(row, p); }
};

// dy~[row, p]: row = (n, ih, iw) an input cell, p = (kh, kw, f); the gradient of the output cell (oh, ow) with
// oh * stride_h - pad_top + kh * dilation_h == ih (likewise for w), or zero if no output cell puts tap kh there.
template <typename T>
struct OutputGradGatherLoad {
    static constexpr bool columns_adjacent = true;  // output channels
    const T* grad_out;
    ConvGeometry g;
    RowMajorSplit<GridCell> cells;
    RowMajorSplit<Tap> taps;
    FastDivmod stride_h, stride_w;

    __device__ OutputGradGatherLoad(const T* grad_out_, const ConvGeometry& g_)
        : grad_out(grad_out_), g(g_), cells(g_.in_h, g_.in_w), taps(g_.k_w, g_.out_c), stride_h(g_.stride_h),
          stride_w(g_.stride_w) {}

    __device__ T operator()(long long row, long long p) const
    {
        const GridCell i = cells((int)row);
        const Tap t = taps((int)p);
        const int th = i.h + g.pad_top - t.kh * g.dilation_h;  // = oh * stride_h when tap kh of output row oh hits ih
        const int tw = i.w + g.pad_left - t.kw * g.dilation_w;
        if (th < 0 || tw < 0) {
            return T(0);
        }
        const int oh = stride_h.div(th);
        const int ow = stride_w.div(tw);
        if (oh * g.stride_h != th || ow * g.stride_w != tw || oh >= g.out_h || ow >= g.out_w) {
            return T(0);
        }
        return grad_out[(((long long)i.n * g.out_h + oh) * g.out_w + ow) * g.out_c + t.channel];
    }
};

// w read as [(kh, kw, f), c]: the HWIO filter with its last two axes swapped; f lies along the rows.
template <typename T>
struct FilterTransposedLoad {
    static constexpr bool columns_adjacent = false;
    const T* w;
    ConvGeometry g;
    FastDivmod out_c;

    __device__ FilterTransposedLoad(const T* w_, const ConvGeometry& g_) : w(w_), g(g_), out_c(g_.out_c) {}

    __device__ T operator()(long long p, long long c) const
    {
        const int tap = out_c.div((int)p);
        const int f = (int)p - tap * g.out_c;
        return w[((long long)tap * g.in_c + c) * g.out_c + f];
    }
};

// out (N, OH, OW, F) = epilogue(conv2d(x (N, H, W, C), w (KH, KW, C, F))): bias (F,) and residual (N, OH, OW, F)
// are read only when `flags` says so (EPILOGUE_BIAS, EPILOGUE_RESIDUAL); activation is an ACT_* code.
template <typename T, GEMM_TILING_PARAMS>
__global__ void __launch_bounds__(GEMM_THREADS)
conv2d_forward(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, const T* __restrict__ bias,
               const T* __restrict__ residual, int flags, int activation, CONV_GEOMETRY_PARAMS)
{
    __shared__ GemmShared<T, GEMM_TILING> shared;
    const ConvGeometry g = CONV_GEOMETRY;
    const Im2colLoad<T> load_a(x, g);
    const MatrixLoad<T, false> load_b{w, g.out_c};
    tile_gemm<T, GEMM_TILING>(shared, load_a, load_b, out, g.batch * g.out_h * g.out_w, g.out_c, 0,
                              g.k_h * g.k_w * g.in_c, Epilogue<T>{bias, residual, flags, activation});
}

// dx (N, H, W, C) from grad_out (N, OH, OW, F) and w (KH, KW, C, F); input cells no window touches get zero.
template <typename T, GEMM_TILING_PARAMS>
__global__ void __launch_bounds__(GEMM_THREADS)
conv2d_backward_input(const T* __restrict__ grad_out, const T* __restrict__ w, T* __restrict__ dx,
                      CONV_GEOMETRY_PARAMS)
{
    __shared__ GemmShared<T, GEMM_TILING> shared;
    const ConvGeometry g = CONV_GEOMETRY;
    const OutputGradGatherLoad<T> load_a(grad_out, g);
    const FilterTransposedLoad<T> load_b(w, g);
    tile_gemm<T, GEMM_TILING>(shared, load_a, load_b, dx, g.batch * g.in_h * g.in_w, g.in_c, 0,
                              g.k_h * g.k_w * g.out_c);
}

// dw (KH, KW, C, F) from x (N, H, W, C) and grad_out (N, OH, OW, F). Block z sums K range
// [z * k_chunk, (z + 1) * k_chunk) into out + z * KH*KW*C*F; with gridDim.z == 1, out is dw itself.
template <typename T, GEMM_TILING_PARAMS>
__global__ void __launch_bounds__(GEMM_THREADS)
conv2d_backward_filter(const T* __restrict__ x, const T* __restrict__ grad_out, T* __restrict__ out, int k_chunk,
                       CONV_GEOMETRY_PARAMS)
{
    __shared__ GemmShared<T, GEMM_TILING> shared;
    const ConvGeometry g = CONV_GEOMETRY;
    const int m = g.k_h * g.k_w * g.in_c;
    const long long k = (long long)g.batch * g.out_h * g.out_w;
    const long long k_begin = (long long)blockIdx.z * k_chunk;
    const long long k_end = k_begin + k_chunk < k ? k_begin + k_chunk : k;
    const Im2colTransposedLoad<T> load_a{Im2colLoad<T>(x, g)};
    const MatrixLoad<T, false> load_b{grad_out, g.out_c};
    tile_gemm<T, GEMM_TILING>(shared, load_a, load_b, out + (long long)blockIdx.z * m * g.out_c, m, g.out_c, k_begin,
                              k_end);
}

// --- Direct convolution for filters with few taps ------------------------------------------------------------------
// With K = KH*KW*C <= DIRECT_MAX_TAPS (the seed CNN's first layer: 3 x 3 x 1 = 9) an implicit GEMM wastes most of
// its tile: one BK slice of 8 or 16 holds K, and the im2col index math of every A element costs more than its
// K multiply-adds. Here a block of 8 warps computes DIRECT_PIXELS x 8 output cells x 32 output channels: lane l owns
// channel blockIdx.y * 32 + l, warp w the cells blockIdx.x * 8 * DIRECT_PIXELS + w * DIRECT_PIXELS + i. The block's
// filter columns, (K, 32), sit in shared memory (lanes read consecutive words); each input value is one load that
// all 32 lanes share (a broadcast), used for 32 channels; each store of a warp writes 32 consecutive channels of one
// cell (128 coalesced bytes when F >= 32). Grid: x = ceil(N*OH*OW / (8 * DIRECT_PIXELS)), y = ceil(F / 32).
#define DIRECT_MAX_TAPS 16
#define DIRECT_PIXELS 4
#define DIRECT_CHANNELS 32

template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 4)  // <= 64 registers: 4 blocks (32 warps) per SM
conv2d_direct(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, const T* __restrict__ bias,
              const T* __restrict__ residual, int flags, int activation, CONV_GEOMETRY_PARAMS)
{
    __shared__ T filter[DIRECT_MAX_TAPS][DIRECT_CHANNELS];
    const ConvGeometry g = CONV_GEOMETRY;
    const int taps = g.k_h * g.k_w * g.in_c;  // <= DIRECT_MAX_TAPS (the launcher checks)
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int f0 = blockIdx.y * DIRECT_CHANNELS;
    for (int e = threadIdx.x; e < taps * DIRECT_CHANNELS; e += GEMM_THREADS) {
        const int p = e / DIRECT_CHANNELS, f = f0 + e % DIRECT_CHANNELS;
        filter[p][e % DIRECT_CHANNELS] = f < g.out_c ? w[(long long)p * g.out_c + f] : T(0);
    }
    __syncthreads();

    const int m = g.batch * g.out_h * g.out_w;
    const int cell0 = (blockIdx.x * (GEMM_THREADS / 32) + warp) * DIRECT_PIXELS;
    const RowMajorSplit<GridCell> cells(g.out_h, g.out_w);
    int top[DIRECT_PIXELS], left[DIRECT_PIXELS];  // the window's first input row and column (may be padding)
    long long corner[DIRECT_PIXELS];              // offset in x of (top, left) of the cell's image (if it were real)
    T acc[DIRECT_PIXELS];
#pragma unroll
    for (int i = 0; i < DIRECT_PIXELS; ++i) {
        const GridCell o = cells(cell0 + i < m ? cell0 + i : 0);
        top[i] = cell0 + i < m ? o.h * g.stride_h - g.pad_top : -(1 << 30);  // past the last cell: never in bounds
        left[i] = o.w * g.stride_w - g.pad_left;
        corner[i] = (((long long)o.n * g.in_h + top[i]) * g.in_w + left[i]) * g.in_c;
        acc[i] = T(0);
    }
    int p = 0;
    for (int kh = 0; kh < g.k_h; ++kh) {
        for (int kw = 0; kw < g.k_w; ++kw) {
            const int dh = kh * g.dilation_h, dw = kw * g.dilation_w;
            const long long offset = ((long long)dh * g.in_w + dw) * g.in_c;  // the tap's offset from the corner
            for (int c = 0; c < g.in_c; ++c, ++p) {
                const T weight = filter[p][lane];
#pragma unroll
                for (int i = 0; i < DIRECT_PIXELS; ++i) {
                    if ((unsigned)(top[i] + dh) < (unsigned)g.in_h && (unsigned)(left[i] + dw) < (unsigned)g.in_w) {
                        acc[i] += x[corner[i] + offset + c] * weight;
                    }
                }
            }
        }
    }

    const Epilogue<T> epilogue{bias, residual, flags, activation};
    const int f = f0 + lane;
#pragma unroll
    for (int i = 0; i < DIRECT_PIXELS; ++i) {
        if (cell0 + i < m && f < g.out_c) {
            const long long index = (long long)(cell0 + i) * g.out_c + f;
            out[index] = epilogue(acc[i], index, f);
        }
    }
    epilogue.deferred_loop(out, DIRECT_PIXELS, m, g.out_c, [&](int i, int& row, int& col) {
        row = cell0 + i;
        col = f;
    });
}

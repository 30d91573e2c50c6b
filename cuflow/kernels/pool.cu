// pool.cu — 2-D max and average pooling, forward and backward, NHWC, explicit padding.
//
// Tiling: none needed, each element is read by only a few threads. Forward kernels run one thread per output cell
// (n, oh, ow, c); backward kernels run one thread per input cell (n, ih, iw, c) and gather from the output windows
// that cover it, so they write each dx element exactly once: no atomics, deterministic sums.
// Neighbouring threads differ in c, the fastest NHWC axis, so global reads and writes are coalesced.
// Launch: 1-D grid-stride loop over the cells (for_each_cell); block (POOL_THREADS, 1, 1) from compile.py; any
// grid size covers any tensor.
//
// Semantics (TensorFlow's, and cpu.py's): padded cells never take part. Max: NaN propagates; a window's gradient
// goes to the first cell in row-major window order that compares equal (==) to its max, so a NaN max passes no
// gradient. Average: the mean over the window's non-padded cells. A window made only of padding (the ops layer
// forbids padding >= window size) gives -inf for max, 0 for average, and passes no gradient.

// The pooling's sizes, passed to every kernel as the same 12 ints in this order.
struct PoolGeometry {
    int batch, in_h, in_w, channels;
    int out_h, out_w;
    int k_h, k_w, stride_h, stride_w, pad_top, pad_left;
};

#define POOL_GEOMETRY_PARAMS                                                                                    \
    int batch, int in_h, int in_w, int channels, int out_h, int out_w, int k_h, int k_w, int stride_h,          \
        int stride_w, int pad_top, int pad_left
#define POOL_GEOMETRY                                                                                           \
    PoolGeometry{batch, in_h, in_w, channels, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_top, pad_left}

// An NHWC cell (n, h, w, c) of a tensor with the given height, width and channels.
struct Cell {
    long long n;
    int h, w, c;
};

__device__ Cell unflatten(long long index, int height, int width, int channels)
{
    const int c = (int)(index % channels);
    const long long nhw = index / channels;
    const int w = (int)(nhw % width);
    const long long nh = nhw / width;
    return Cell{nh / height, (int)(nh % height), w, c};
}

__device__ long long flatten(long long n, int h, int w, int c, int height, int width, int channels)
{
    return ((n * height + h) * width + w) * channels + c;
}

// Calls body(index, cell) for every cell of an NHWC tensor (batch, height, width, channels): the grid-stride loop.
template <typename Body>
__device__ void for_each_cell(const PoolGeometry& g, int height, int width, Body body)
{
    const long long total = (long long)g.batch * height * width * g.channels;
    for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        body(index, unflatten(index, height, width, g.channels));
    }
}

// Input rows [h0, h1) x columns [w0, w1) of output cell (oh, ow)'s window, padding clipped off.
struct Window {
    int h0, h1, w0, w1;

    __device__ int count() const { return (h1 - h0) * (w1 - w0); }
};

__device__ Window pool_window(const PoolGeometry& g, int oh, int ow)
{
    const int top = oh * g.stride_h - g.pad_top;
    const int left = ow * g.stride_w - g.pad_left;
    Window win;
    win.h0 = top > 0 ? top : 0;
    win.h1 = top + g.k_h < g.in_h ? top + g.k_h : g.in_h;
    win.w0 = left > 0 ? left : 0;
    win.w1 = left + g.k_w < g.in_w ? left + g.k_w : g.in_w;
    if (win.h1 < win.h0) win.h1 = win.h0;  // a window entirely in the padding is empty
    if (win.w1 < win.w0) win.w1 = win.w0;
    return win;
}

// The output positions o in [first, last] (inclusive; empty if first > last) whose window, start
// o * stride - pad and size k, covers input position i.
struct Cover {
    int first, last;
};

__device__ Cover covering_outputs(int i, int pad, int k, int stride, int out_size)
{
    const int t = i + pad;  // >= 0
    const int lowest = t - k + 1;
    Cover cover;
    cover.first = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
    cover.last = t / stride < out_size - 1 ? t / stride : out_size - 1;
    return cover;
}

template <typename T>
__device__ T negative_infinity()
{
    return -T(1) / T(0);  // IEEE: no <cmath> needed
}

// Calls visit(h, w, x[n, h, w, c]) for each non-padded cell of the window of output cell o = (n, oh, ow, c).
template <typename T, typename Visit>
__device__ void for_each_in_window(const T* x, const PoolGeometry& g, const Cell& o, Visit visit)
{
    const Window win = pool_window(g, o.h, o.w);
    for (int h = win.h0; h < win.h1; ++h) {
        for (int w = win.w0; w < win.w1; ++w) {
            visit(h, w, x[flatten(o.n, h, w, o.c, g.in_h, g.in_w, g.channels)]);
        }
    }
}

// Calls visit(o, o_index) for each output cell o whose window covers input cell i (o_index: o's flat index).
template <typename Visit>
__device__ void for_each_covering_output(const PoolGeometry& g, const Cell& i, Visit visit)
{
    const Cover rows = covering_outputs(i.h, g.pad_top, g.k_h, g.stride_h, g.out_h);
    const Cover cols = covering_outputs(i.w, g.pad_left, g.k_w, g.stride_w, g.out_w);
    for (int oh = rows.first; oh <= rows.last; ++oh) {
        for (int ow = cols.first; ow <= cols.last; ++ow) {
            visit(Cell{i.n, oh, ow, i.c}, flatten(i.n, oh, ow, i.c, g.out_h, g.out_w, g.channels));
        }
    }
}

template <typename T>
__global__ void max_pool2d(const T* __restrict__ x, T* __restrict__ out, POOL_GEOMETRY_PARAMS)
{
    const PoolGeometry g = POOL_GEOMETRY;
    for_each_cell(g, g.out_h, g.out_w, [&](long long index, const Cell& o) {
        T best = negative_infinity<T>();
        for_each_in_window(x, g, o, [&](int, int, T v) {
            if (v > best || v != v) best = v;  // the first NaN wins and stays
        });
        out[index] = best;
    });
}

template <typename T>
__global__ void avg_pool2d(const T* __restrict__ x, T* __restrict__ out, POOL_GEOMETRY_PARAMS)
{
    const PoolGeometry g = POOL_GEOMETRY;
    for_each_cell(g, g.out_h, g.out_w, [&](long long index, const Cell& o) {
        T sum = T(0);
        for_each_in_window(x, g, o, [&](int, int, T v) { sum += v; });
        const int count = pool_window(g, o.h, o.w).count();
        out[index] = count > 0 ? sum / T(count) : T(0);
    });
}

// dx[n, ih, iw, c] = sum of grad_out over the windows covering (ih, iw) whose first max is (ih, iw).
template <typename T>
__global__ void max_pool2d_backward(const T* __restrict__ x, const T* __restrict__ out,
                                    const T* __restrict__ grad_out, T* __restrict__ dx, POOL_GEOMETRY_PARAMS)
{
    const PoolGeometry g = POOL_GEOMETRY;
    for_each_cell(g, g.in_h, g.in_w, [&](long long index, const Cell& i) {
        T sum = T(0);
        for_each_covering_output(g, i, [&](const Cell& o, long long o_index) {
            bool found = false;  // whether an earlier cell of this window already equals its max
            bool here = false;
            for_each_in_window(x, g, o, [&](int h, int w, T v) {
                if (!found && v == out[o_index]) {
                    found = true;
                    here = (h == i.h && w == i.w);
                }
            });
            if (here) sum += grad_out[o_index];
        });
        dx[index] = sum;
    });
}

// dx[n, ih, iw, c] = sum over the windows covering (ih, iw) of grad_out / (the window's non-padded cell count).
template <typename T>
__global__ void avg_pool2d_backward(const T* __restrict__ grad_out, T* __restrict__ dx, POOL_GEOMETRY_PARAMS)
{
    const PoolGeometry g = POOL_GEOMETRY;
    for_each_cell(g, g.in_h, g.in_w, [&](long long index, const Cell& i) {
        T share = T(0);
        for_each_covering_output(g, i, [&](const Cell& o, long long o_index) {
            share += grad_out[o_index] / T(pool_window(g, o.h, o.w).count());
        });
        dx[index] = share;
    });
}

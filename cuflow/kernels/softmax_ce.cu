// softmax_ce.cu — fused softmax cross-entropy, forward and backward, against integer labels (sparse) or a
// distribution per row (dense), over the last axis of a (rows, classes) array.
//
// Tiling: one warp per row (SOFTMAX_THREADS / 32 rows per block, grid-stride over rows). The lanes stride over the
// row's classes (coalesced) and combine their partial max and sums with __shfl_xor_sync butterflies, so every lane
// ends with the row's totals: no shared memory, no barrier. A row is read two or three times; it stays in L1/L2.
// Numerics are those of cuflow/ops/nn.py on the CPU, step for step: shifted = x - max(x), logsum =
// log(sum(exp(shifted))), log_probs = shifted - logsum; the loss is -log_probs[label] (sparse) or
// -sum(labels * log_probs) (dense); the gradients are g * (exp(shifted) / sum - one_hot(label)) and
// g * (exp(log_probs) * sum(labels) - labels).
// Labels out of [0, classes) (sparse): the row's loss and gradient are NaN, as TensorFlow's GPU kernel does, so the
// check costs no host sync; the CPU path raises instead.

#define SOFTMAX_THREADS 256
#define SOFTMAX_WARP 32

template <typename T>
__device__ T warp_max(T v)
{
    for (int offset = SOFTMAX_WARP / 2; offset > 0; offset /= 2) {
        const T other = __shfl_xor_sync(0xffffffffu, v, offset);
        v = (other > v || other != other) ? other : v;  // NaN wins, as numpy.max
    }
    return v;
}

template <typename T>
__device__ T warp_sum(T v)
{
    for (int offset = SOFTMAX_WARP / 2; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// The row statistics every kernel starts from: max(x) and sum(exp(x - max)), the same on every lane.
template <typename T>
struct RowStats {
    T max, sum;
};

template <typename T>
__device__ RowStats<T> row_stats(const T* x, int classes, int lane)
{
    T best = -T(1) / T(0);
    for (int j = lane; j < classes; j += SOFTMAX_WARP) {
        const T v = x[j];
        best = (v > best || v != v) ? v : best;
    }
    best = warp_max(best);
    T sum = T(0);
    for (int j = lane; j < classes; j += SOFTMAX_WARP) {
        sum += exp(x[j] - best);
    }
    return RowStats<T>{best, warp_sum(sum)};
}

// Calls body(row, lane) for each row, one warp per row. Whole warps stay together (the shuffles need all 32 lanes).
template <typename Body>
__device__ void for_each_row(int rows, Body body)
{
    const int warps_per_block = blockDim.x / SOFTMAX_WARP;
    const int lane = threadIdx.x % SOFTMAX_WARP;
    for (long long row = (long long)blockIdx.x * warps_per_block + threadIdx.x / SOFTMAX_WARP; row < rows;
         row += (long long)gridDim.x * warps_per_block) {
        body(row, lane);
    }
}

template <typename T>
__device__ T quiet_nan()
{
    return T(0) / T(0);
}

// loss[r] = -log_softmax(logits[r])[labels[r]]
template <typename T>
__global__ void __launch_bounds__(SOFTMAX_THREADS)
    sparse_softmax_cross_entropy(const T* __restrict__ logits, const long long* __restrict__ labels,
                                 T* __restrict__ loss, int rows, int classes)
{
    for_each_row(rows, [&](long long row, int lane) {
        const T* x = logits + row * classes;
        const RowStats<T> s = row_stats(x, classes, lane);
        const long long label = labels[row];
        if (lane == 0) {
            loss[row] = (label < 0 || label >= classes) ? quiet_nan<T>() : -((x[label] - s.max) - log(s.sum));
        }
    });
}

// dlogits[r, j] = grad[r] * (softmax(logits[r])[j] - (j == labels[r]))
template <typename T>
__global__ void __launch_bounds__(SOFTMAX_THREADS)
    sparse_softmax_cross_entropy_backward(const T* __restrict__ logits, const long long* __restrict__ labels,
                                          const T* __restrict__ grad, T* __restrict__ dlogits, int rows, int classes)
{
    for_each_row(rows, [&](long long row, int lane) {
        const T* x = logits + row * classes;
        T* dx = dlogits + row * classes;
        const RowStats<T> s = row_stats(x, classes, lane);
        const long long label = labels[row];
        const bool bad = label < 0 || label >= classes;
        const T g = grad[row];
        for (int j = lane; j < classes; j += SOFTMAX_WARP) {
            const T p = exp(x[j] - s.max) / s.sum;
            dx[j] = bad ? quiet_nan<T>() : g * (p - (j == label ? T(1) : T(0)));
        }
    });
}

// loss[r] = -sum_j labels[r, j] * log_softmax(logits[r])[j]
template <typename T>
__global__ void __launch_bounds__(SOFTMAX_THREADS)
    softmax_cross_entropy(const T* __restrict__ logits, const T* __restrict__ labels, T* __restrict__ loss, int rows,
                          int classes)
{
    for_each_row(rows, [&](long long row, int lane) {
        const T* x = logits + row * classes;
        const T* y = labels + row * classes;
        const RowStats<T> s = row_stats(x, classes, lane);
        const T logsum = log(s.sum);
        T total = T(0);
        for (int j = lane; j < classes; j += SOFTMAX_WARP) {
            total += y[j] * ((x[j] - s.max) - logsum);
        }
        total = warp_sum(total);
        if (lane == 0) {
            loss[row] = -total;
        }
    });
}

// dlogits[r, j] = grad[r] * (exp(log_softmax(logits[r])[j]) * sum(labels[r]) - labels[r, j])
template <typename T>
__global__ void __launch_bounds__(SOFTMAX_THREADS)
    softmax_cross_entropy_backward(const T* __restrict__ logits, const T* __restrict__ labels,
                                   const T* __restrict__ grad, T* __restrict__ dlogits, int rows, int classes)
{
    for_each_row(rows, [&](long long row, int lane) {
        const T* x = logits + row * classes;
        const T* y = labels + row * classes;
        T* dx = dlogits + row * classes;
        const RowStats<T> s = row_stats(x, classes, lane);
        const T logsum = log(s.sum);
        T mass = T(0);
        for (int j = lane; j < classes; j += SOFTMAX_WARP) {
            mass += y[j];
        }
        mass = warp_sum(mass);
        const T g = grad[row];
        for (int j = lane; j < classes; j += SOFTMAX_WARP) {
            dx[j] = g * (exp((x[j] - s.max) - logsum) * mass - y[j]);
        }
    });
}

// Kernels with planted bugs that the mock GPU must catch (tests/emu/test_planted_bugs.py), each next to a
// correct twin that must pass cleanly. Never ship code like this.

// Uninitialized shared memory: only block 0 stages its input. Without refilling shared memory before every
// block, later blocks would silently read block 0's values; with the refill they read NaN.
extern "C" __global__ void stale_shared(const float* in, float* out) {
    __shared__ float s[64];
    if (blockIdx.x == 0) s[threadIdx.x] = in[threadIdx.x];  // BUG: other blocks never write s
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
}

// Neighbour read without a barrier: right only when thread t+1 happens to run before thread t.
extern "C" __global__ void shift_left_racy(const float* in, float* out) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = in[t];
    // BUG: missing __syncthreads()
    out[t] = t + 1 < blockDim.x ? s[t + 1] : 0.0f;
}

extern "C" __global__ void shift_left_synced(const float* in, float* out) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = in[t];
    __syncthreads();
    out[t] = t + 1 < blockDim.x ? s[t + 1] : 0.0f;
}

// Off-by-one bound: writes x[n], one element past an exact-size buffer.
extern "C" __global__ void scale_off_by_one(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) x[i] *= 2.0f;  // BUG: should be i < n
}

// Static shared memory read one past the end (the last thread reads s[64]).
extern "C" __global__ void shared_off_by_one(const float* in, float* out) {
    __shared__ float s[64];
    s[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x] + s[threadIdx.x + 1];  // BUG: no bound on threadIdx.x + 1
}

// The same inside a template kernel (tile size as a template parameter, as cuflow's kernels are written).
template <int N>
__global__ void shared_off_by_one_tiled(const float* in, float* out) {
    __shared__ float s[N];
    s[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x] + s[threadIdx.x + 1];  // BUG
}

// Dynamic shared memory read past the size given at launch (blockDim.x floats).
extern "C" __global__ void dynamic_off_by_one(const float* in, float* out) {
    extern __shared__ float buf[];
    buf[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = buf[threadIdx.x + 1];  // BUG: buf has blockDim.x elements
}

// Divergent barriers: the two halves of the block wait at different __syncthreads.
extern "C" __global__ void divergent_barriers(float* out) {
    if (threadIdx.x < 32) {
        __syncthreads();  // BUG: barrier inside a divergent branch
        out[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}

// A full-mask shuffle that half of the warp never reaches (it waits at the block barrier instead).
extern "C" __global__ void divergent_shuffle(float* out) {
    float v = threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_sync(0xffffffff, v, 0);  // BUG: lanes 16-31 are named in the mask
    __syncthreads();
    out[threadIdx.x] = v;
}

// Device-side checks: assert and __trap end the launch (and, as on a GPU, the process's context).
extern "C" __global__ void gather_checked(const int* index, const float* in, float* out, int n) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = index[t];
    assert(i >= 0 && i < n);
    out[t] = in[i];
}

extern "C" __global__ void trap_on_negative(const float* x) {
    if (x[blockIdx.x * blockDim.x + threadIdx.x] < 0.0f) __trap();
}

// philox.cu — cuflow.random on the GPU in one launch: Philox4x32-10 blocks turned into uniform, normal or
// truncated normal floats, the same numbers as the NumPy path of cuflow/ops/random.py.
//
// Tiling: one thread per Philox block (grid-stride), each block is four 32-bit words from
// philox(key, counter + block), with the 128-bit counter addition carrying into the high words. What a block makes
// (cuflow/ops/random.py documents the same layout for the CPU):
//   uniform, float:   4 values, value i from word i: (word >> 8 [+ offset]) * 2^-24 (23 bits for offset 0.5);
//   uniform, double:  2 values from the 64-bit words (w0 << 32 | w1), (w2 << 32 | w3), 53 (52) bits;
//   normal:           Box-Muller on pairs of those uniforms taken with offset 1, so in (0, 1]: (u_r, u_a) gives
//                     r cos(a), r sin(a) with r = sqrt(-2 log u_r), a = 2 pi u_a: 4 floats or 2 doubles per block;
//   truncated normal: output i owns block i; its candidates are that block's normals, in order, and the first with
//                     |z| <= 2 is kept. If none is, round k = 1, 2, ... retries with 2^96 k added to the counter (a
//                     part of the stream no draw reaches), so the stream always moves by exactly `count` blocks.
// Then out = value * scale + shift, each step rounded on its own (as the CPU's `values *= scale; values += shift`,
// skipped where scale is 1 and shift 0), never contracted to an FMA.

#define PHILOX_THREADS 256

struct Words4 {
    unsigned w[4];
};

__device__ Words4 philox4x32_10(unsigned c0, unsigned c1, unsigned c2, unsigned c3, unsigned k0, unsigned k1)
{
    for (int round = 0; round < 10; ++round) {
        const unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        const unsigned n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return Words4{{c0, c1, c2, c3}};
}

// The stream: a 64-bit key and the 128-bit counter of its first block (low word first), plus `round` << 96.
struct Stream {
    unsigned k0, k1, c0, c1, c2, c3;

    __device__ Words4 block(unsigned long long index, unsigned round) const
    {
        const unsigned long long base = ((unsigned long long)c1 << 32) | c0;
        const unsigned long long low = base + index;
        const unsigned long long high = (((unsigned long long)c3 << 32) | c2) + (low < base ? 1ull : 0ull);
        return philox4x32_10((unsigned)low, (unsigned)(low >> 32), (unsigned)high,
                             (unsigned)(high >> 32) + round, k0, k1);
    }
};

#define STREAM_PARAMS unsigned k0, unsigned k1, unsigned c0, unsigned c1, unsigned c2, unsigned c3
#define STREAM Stream{k0, k1, c0, c1, c2, c3}

template <typename T>
struct Unit;

// Uniform floats of a block: (k + offset) * 2^-bits, exact, where offset is 0, 1 or 0.5 (`half`: one bit fewer).
template <>
struct Unit<float> {
    static constexpr int per_block = 4;

    __device__ static float at(const Words4& b, int i, float offset)
    {
        const int bits = offset == 0.5f ? 23 : 24;
        return ((float)(b.w[i] >> (32 - bits)) + offset) * (offset == 0.5f ? 0x1p-23f : 0x1p-24f);
    }
};

template <>
struct Unit<double> {
    static constexpr int per_block = 2;

    __device__ static double at(const Words4& b, int i, double offset)
    {
        const unsigned long long word = ((unsigned long long)b.w[2 * i] << 32) | b.w[2 * i + 1];
        const int bits = offset == 0.5 ? 52 : 53;
        return ((double)(word >> (64 - bits)) + offset) * (offset == 0.5 ? 0x1p-52 : 0x1p-53);
    }
};

__device__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename T>
__device__ T scaled(T v, T scale, T shift)
{
    if (scale != T(1)) v = mul_rn(v, scale);
    if (shift != T(0)) v = add_rn(v, shift);
    return v;
}

// The normals of a block, in order: pair p = (unit 2p, unit 2p + 1) gives r cos(a), then r sin(a).
template <typename T>
__device__ void block_normals(const Words4& b, T* z)
{
    for (int p = 0; p < Unit<T>::per_block / 2; ++p) {
        const T radius = sqrt(T(-2) * log(Unit<T>::at(b, 2 * p, T(1))));
        const T angle = T(6.283185307179586) * Unit<T>::at(b, 2 * p + 1, T(1));
        z[2 * p] = radius * cos(angle);
        z[2 * p + 1] = radius * sin(angle);
    }
}

// Calls body(block index) for every block of `blocks`, grid-stride.
template <typename Body>
__device__ void for_each_block(long long blocks, Body body)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < blocks;
         i += (long long)blockDim.x * gridDim.x) {
        body(i);
    }
}

template <typename T>
__global__ void __launch_bounds__(PHILOX_THREADS)
    philox_uniform(T* __restrict__ out, long long count, STREAM_PARAMS, T offset, T scale, T shift)
{
    const Stream stream = STREAM;
    constexpr int n = Unit<T>::per_block;
    for_each_block((count + n - 1) / n, [&](long long i) {
        const Words4 b = stream.block(i, 0);
        for (int k = 0; k < n && i * n + k < count; ++k) {
            out[i * n + k] = scaled(Unit<T>::at(b, k, offset), scale, shift);
        }
    });
}

template <typename T>
__global__ void __launch_bounds__(PHILOX_THREADS)
    philox_normal(T* __restrict__ out, long long count, STREAM_PARAMS, T scale, T shift)
{
    const Stream stream = STREAM;
    constexpr int n = Unit<T>::per_block;
    for_each_block((count + n - 1) / n, [&](long long i) {
        T z[n];
        block_normals(stream.block(i, 0), z);
        for (int k = 0; k < n && i * n + k < count; ++k) {
            out[i * n + k] = scaled(z[k], scale, shift);
        }
    });
}

template <typename T>
__global__ void __launch_bounds__(PHILOX_THREADS)
    philox_truncated_normal(T* __restrict__ out, long long count, STREAM_PARAMS, T scale, T shift)
{
    const Stream stream = STREAM;
    constexpr int n = Unit<T>::per_block;
    for_each_block(count, [&](long long i) {
        for (unsigned round = 0;; ++round) {  // ends with probability 1: a round fails with p = 0.0455^n
            T z[n];
            block_normals(stream.block(i, round), z);
            for (int k = 0; k < n; ++k) {
                if (abs(z[k]) <= T(2)) {
                    out[i] = scaled(z[k], scale, shift);
                    return;
                }
            }
        }
    });
}

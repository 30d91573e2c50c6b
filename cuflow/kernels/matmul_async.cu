// matmul_async.cu — the cp.async-pipelined GEMMs: FP32 SGEMM on CUDA cores (`gemm_pipelined`) and the tensor-core
// GEMM (`gemm_mma`: TF32, BF16, FP16 in, float32 accumulate). Compiled after ptx.cuh (cp.async, ldmatrix, mma and
// their CPU emulations) and matmul.cu (Epilogue, activate, run_offset, GEMM_THREADS); compile.py lists the three.
//
// Both stream K through a ring of STAGES shared-memory buffers filled by 16-byte cp.async copies (LDGSTS): tile
// kt + STAGES - 1 is in flight while tile kt is multiplied, and one barrier per K tile orders it all. A tile of an
// operand is copied as it lies in memory (cp.async cannot transpose), so each operand is staged in one of two layouts:
//   "k inner"  [rows][BK + pad]   A stored (m, k) or B stored (n, k) (the transposed B): k contiguous;
//   "k outer"  [BK][rows + pad]   A stored (k, m) (transposed A) or B stored (k, n): rows contiguous;
// and the fragment reads below are written for both, so no transpose is ever materialized.
// 16-byte copies need 16-byte alignment: the launcher picks these kernels only when every operand's leading
// dimension is a multiple of 16 bytes (4 floats, 8 halves) and the arrays are aligned (CuPy allocations are). Then a
// 16-byte chunk is either wholly inside the matrix or wholly outside it: outside chunks are zero-filled
// (cp_async_16_zfill), so ragged edges in M, N and K (1, odd, primes, K < BK) need no other code. Any other problem
// takes matmul.cu's register-blocked kernel.
//
// Grids: x = ceil(M / BM), y = ceil(N / BN), z = batch entries (looped past 65535). Block: GEMM_THREADS (256).

// The shared-memory layout of one operand tile of ROWS (m or n) x BK (k) elements of E.
template <typename E, int ROWS, int BK, bool K_INNER, int PAD_K, int PAD_ROWS>
struct StagedTile {
    static constexpr int STRIDE = K_INNER ? BK + PAD_K : ROWS + PAD_ROWS;  // elements per smem row
    static constexpr int SIZE = K_INNER ? ROWS * STRIDE : BK * STRIDE;     // elements per stage
    static constexpr int VEC = 16 / sizeof(E);                             // elements per cp.async
    static_assert((STRIDE * sizeof(E)) % 16 == 0, "smem rows must stay 16-byte aligned");

    // Issues this thread's cp.async copies of the tile whose top-left element is (row0, k0) of the operand, stored
    // row-major with leading dimension ld: (rows, k) when K_INNER, else (k, rows); `rows`, `k_end` bound it.
    __device__ static void copy(E* smem, const E* g, long long ld, int row0, int rows, long long k0, long long k_end)
    {
        constexpr int LINES = K_INNER ? ROWS : BK;            // smem rows of the tile
        constexpr int CHUNKS = (K_INNER ? BK : ROWS) / VEC;   // 16-byte chunks per smem row
        static_assert(CHUNKS * VEC == (K_INNER ? BK : ROWS), "a tile row must be whole 16-byte chunks");
#pragma unroll
        for (int c = threadIdx.x; c < LINES * CHUNKS; c += GEMM_THREADS) {
            const int line = c / CHUNKS, col = (c % CHUNKS) * VEC;
            const long long r = K_INNER ? row0 + line : k0 + line;       // row of the stored matrix
            const long long q = K_INNER ? k0 + col : row0 + col;         // its column
            const bool valid = K_INNER ? (r < rows && q < k_end) : (r < k_end && q < rows);
            cp_async_16_zfill(smem + line * STRIDE + col, valid ? g + r * ld + q : g, valid);
        }
    }
};

// =================================================================================================================
// FP32 SGEMM on CUDA cores: a 16 x 16 grid of threads, TM x TN outputs each (as matmul.cu's tile_gemm, TM, TN
// multiples of 4), reading 16-byte runs out of the staged tiles:
//   A k-outer: TM/4 float4 per k (runs of 4 rows, as tile_gemm);  A k-inner: one float4 = 4 k steps per row.
//   B k-outer: TN/4 float4 per k;                                  B k-inner: one float4 = 4 k steps per column.
// Bank conflicts (LDS.128 is served a quarter warp, 8 lanes, at a time; lanes 8q..8q+7 share ty and differ in tx):
// A reads are broadcasts (same ty); B k-outer reads are 8 consecutive float4; B k-inner reads take the thread's
// columns interleaved (col = j * 16 + tx, not runs of 4), so 8 lanes read 8 consecutive smem rows whose stride of
// BK + 4 floats (48 or 80 bytes) puts them in 8 different 16-byte bank groups.
template <bool TRANSPOSE_A, bool TRANSPOSE_B, int BM, int BN, int BK, int STAGES>
struct SgemmStages {
    using TileA = StagedTile<float, BM, BK, !TRANSPOSE_A, 4, 4>;
    using TileB = StagedTile<float, BN, BK, TRANSPOSE_B, 4, 4>;
    float a[STAGES][TileA::SIZE];
    float b[STAGES][TileB::SIZE];
};

template <int BM, int BN, int BK, int STAGES>
union SgemmShared {  // one allocation for the four transpose pairs
    alignas(16) SgemmStages<false, false, BM, BN, BK, STAGES> nn;
    alignas(16) SgemmStages<true, false, BM, BN, BK, STAGES> tn;
    alignas(16) SgemmStages<false, true, BM, BN, BK, STAGES> nt;
    alignas(16) SgemmStages<true, true, BM, BN, BK, STAGES> tt;
};

template <bool TRANSPOSE_A, bool TRANSPOSE_B, GEMM_TILING_PARAMS, int STAGES>
__device__ void sgemm_pipelined_tile(SgemmStages<TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK, STAGES>& s, const float* a,
                                     const float* b, float* out, int m, int n, int k, const Epilogue<float>& epilogue)
{
    static_assert(BM == 16 * TM && BN == 16 * TN && TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "tiling");
    using TileA = typename SgemmStages<TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK, STAGES>::TileA;
    using TileB = typename SgemmStages<TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK, STAGES>::TileB;
    constexpr bool A_K_INNER = !TRANSPOSE_A, B_K_INNER = TRANSPOSE_B;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int tx = (warp % 2) * 8 + lane % 8;  // as tile_gemm: a warp is 4 x 8 threads of the 16 x 16 grid
    const int ty = (warp / 2) * 4 + lane / 8;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const long long lda = TRANSPOSE_A ? m : k, ldb = TRANSPOSE_B ? k : n;
    auto col_of = [&](int j) { return B_K_INNER ? j * 16 + tx : run_offset<TN>(j, tx); };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    const int k_tiles = (k + BK - 1) / BK;
    auto issue = [&](int tile) {
        if (tile < k_tiles) {
            TileA::copy(s.a[tile % STAGES], a, lda, m0, m, (long long)tile * BK, k);
            TileB::copy(s.b[tile % STAGES], b, ldb, n0, n, (long long)tile * BK, k);
        }
        cp_async_commit();  // an empty group past the end keeps the group count uniform
    };
#pragma unroll
    for (int t = 0; t < STAGES - 1; ++t) issue(t);

    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait_group<STAGES - 2>();  // this thread's copies of tile kt have landed ...
        __syncthreads();                    // ... and everyone's; everyone is also done with tile kt - 1
        issue(kt + STAGES - 1);             // refills the buffer tile kt - 1 used
        const float* sa = s.a[kt % STAGES];
        const float* sb = s.b[kt % STAGES];
#pragma unroll 1  // rolled: unrolled over BK, the four transpose pairs of one kernel passed 255 registers at 8 x 8
        for (int kq = 0; kq < BK; kq += 4) {
            // k-inner operands: one float4 = 4 k steps per row / column, read once per 4 k; k-outer operands: read
            // per k step (fewer live registers: 4 x TM fragments plus 64 accumulators spilled at 8 x 8).
            float ia[A_K_INNER ? TM : 1][4], ib[B_K_INNER ? TN : 1][4];
            if (A_K_INNER) {
#pragma unroll
                for (int i = 0; i < TM; ++i) {
                    const float4 v = *reinterpret_cast<const float4*>(sa + run_offset<TM>(i, ty) * TileA::STRIDE + kq);
                    ia[i][0] = v.x, ia[i][1] = v.y, ia[i][2] = v.z, ia[i][3] = v.w;
                }
            }
            if (B_K_INNER) {
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    const float4 v = *reinterpret_cast<const float4*>(sb + col_of(j) * TileB::STRIDE + kq);
                    ib[j][0] = v.x, ib[j][1] = v.y, ib[j][2] = v.z, ib[j][3] = v.w;
                }
            }
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                float fa[TM], fb[TN];
#pragma unroll
                for (int i = 0; i < TM; i += A_K_INNER ? 1 : 4) {
                    if (A_K_INNER) {
                        fa[i] = ia[i][q];
                    } else {
                        const float4 v = *reinterpret_cast<const float4*>(sa + (kq + q) * TileA::STRIDE +
                                                                          run_offset<TM>(i, ty));
                        fa[i] = v.x, fa[i + 1] = v.y, fa[i + 2] = v.z, fa[i + 3] = v.w;
                    }
                }
#pragma unroll
                for (int j = 0; j < TN; j += B_K_INNER ? 1 : 4) {
                    if (B_K_INNER) {
                        fb[j] = ib[j][q];
                    } else {
                        const float4 v = *reinterpret_cast<const float4*>(sb + (kq + q) * TileB::STRIDE +
                                                                          run_offset<TN>(j, tx));
                        fb[j] = v.x, fb[j + 1] = v.y, fb[j + 2] = v.z, fb[j + 3] = v.w;
                    }
                }
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] += fa[i] * fb[j];
            }
        }
    }
    cp_async_wait_all();
    __syncthreads();  // the next batch entry's first copies must not overwrite a tile someone still reads

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int row = m0 + run_offset<TM>(i, ty);
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int col = n0 + col_of(j);
            if (row < m && col < n) {
                const long long index = (long long)row * n + col;
                out[index] = epilogue(acc[i][j], index, col);
            }
        }
    }
    epilogue.deferred_loop(out, TM * TN, m, n, [&](int e, int& row, int& col) {
        row = m0 + run_offset<TM>(e / TN, ty);
        col = n0 + col_of(e % TN);
    });
}

template <bool TRANSPOSE_A, bool TRANSPOSE_B, GEMM_TILING_PARAMS, int STAGES>
__device__ void sgemm_pipelined_batches(SgemmStages<TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK, STAGES>& s, const float* a,
                                        const float* b, float* c, int m, int n, int k, int batches,
                                        long long batch_stride_a, long long batch_stride_b, Epilogue<float> epilogue)
{
    const float* residual = epilogue.residual;
    for (int batch = blockIdx.z; batch < batches; batch += gridDim.z) {
        epilogue.residual = residual + (long long)batch * m * n;
        sgemm_pipelined_tile<TRANSPOSE_A, TRANSPOSE_B, GEMM_TILING, STAGES>(
            s, a + batch * batch_stride_a, b + batch * batch_stride_b, c + (long long)batch * m * n, m, n, k,
            epilogue);
    }
}

// matmul.cu's `gemm` (same arguments, float only) through the cp.async pipeline; 16-byte aligned operands only.
template <typename T, GEMM_TILING_PARAMS, int STAGES>
__global__ void __launch_bounds__(GEMM_THREADS)
gemm_pipelined(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int m, int n, int k,
               int transpose_a, int transpose_b, int batches, long long batch_stride_a, long long batch_stride_b,
               const T* __restrict__ bias, const T* __restrict__ residual, int flags, int activation)
{
    static_assert(sizeof(T) == 4, "the pipelined SGEMM is float only");
    __shared__ SgemmShared<BM, BN, BK, STAGES> s;
    const Epilogue<float> e{bias, residual, flags, activation};
    if (transpose_a && transpose_b) {
        sgemm_pipelined_batches<true, true, GEMM_TILING, STAGES>(s.tt, a, b, c, m, n, k, batches, batch_stride_a,
                                                                 batch_stride_b, e);
    } else if (transpose_a) {
        sgemm_pipelined_batches<true, false, GEMM_TILING, STAGES>(s.tn, a, b, c, m, n, k, batches, batch_stride_a,
                                                                  batch_stride_b, e);
    } else if (transpose_b) {
        sgemm_pipelined_batches<false, true, GEMM_TILING, STAGES>(s.nt, a, b, c, m, n, k, batches, batch_stride_a,
                                                                  batch_stride_b, e);
    } else {
        sgemm_pipelined_batches<false, false, GEMM_TILING, STAGES>(s.nn, a, b, c, m, n, k, batches, batch_stride_a,
                                                                   batch_stride_b, e);
    }
}

// =================================================================================================================
// Tensor-core GEMM: mma.sync through ptx.cuh, float32 accumulators. Precision P: 0 = float32 operands rounded to
// TF32 (cvt.rna) and mma.m16n8k8.tf32; 1 = bfloat16 and 2 = float16 operands (raw 16-bit storage) with ldmatrix and
// mma.m16n8k16. Output, bias and residual are in the operands' storage type (float for TF32).
// Block: 8 warps as 2 (m) x 4 (n), each warp a (BM/2) x (BN/4) tile of (BM/32) x (BN/32) mma tiles of 16 x 8.
// Fragment reads, per layout (g = lane / 4, t = lane % 4; strides are what keep them conflict-free):
//   TF32, scalar LDS + cvt.rna: k-inner stride BK + 4 floats (BK = 16 or 32): lanes read (g * (BK+4) + t), which
//     is 20g + t or 4g + t (mod 32) -> 32 different banks; k-outer stride rows + 8: lanes read (t * (rows+8) + g)
//     = 8t + g (mod 32) -> 32 different banks.
//   16-bit, ldmatrix.x4 (k-outer with .trans): each 8-lane phase reads 8 rows of 16 bytes; strides of BK + 8 (80 B
//     at BK = 32, 144 B at 64) and rows + 8 halves (272 B at 128, 528 B at 256) are odd multiples of 16 bytes, so
//     the 8 rows fall in 8 different bank groups.
template <int P>
struct MmaType;
template <>
struct MmaType<0> {
    using E = float;
    static constexpr int K_STEP = 8, PAD_K = 4;
    __device__ static float load(E v) { return v; }
    __device__ static E store(float v) { return v; }
};
template <>
struct MmaType<1> {
    using E = unsigned short;
    static constexpr int K_STEP = 16, PAD_K = 8;
    __device__ static float load(E v) { return bf16_to_float(v); }
    __device__ static E store(float v) { return float_to_bf16(v); }
};
template <>
struct MmaType<2> {
    using E = unsigned short;
    static constexpr int K_STEP = 16, PAD_K = 8;
    __device__ static float load(E v) { return f16_to_float(v); }
    __device__ static E store(float v) { return float_to_f16(v); }
};

template <int P>
struct MmaEpilogue {
    using E = typename MmaType<P>::E;
    const E* bias;
    const E* residual;
    int flags;
    int activation;

    // As matmul.cu's Epilogue: the store applies bias, residual and relu; gelu, sigmoid and tanh are applied by
    // deferred_loop, rolled, on the stored values (for 16-bit outputs: on the pre-activation rounded to 16 bits).
    __device__ E operator()(float acc, long long index, int col) const
    {
        if (flags & EPILOGUE_BIAS) acc += MmaType<P>::load(bias[col]);
        if (flags & EPILOGUE_RESIDUAL) acc += MmaType<P>::load(residual[index]);
        return MmaType<P>::store(activation == ACT_RELU ? activate(acc, ACT_RELU) : acc);
    }

    template <typename At>
    __device__ void deferred_loop(E* out, int count, int m, int n, const At& at) const
    {
        if (activation < ACT_GELU) return;
        activate_in_place(out, count, m, n, activation, [](E v) { return MmaType<P>::load(v); },
                          [](float v) { return MmaType<P>::store(v); }, at);
    }
};

#define MMA_WARPS_M 2
#define MMA_WARPS_N 4

// The shared-memory layouts of the tensor-core GEMM's operand tiles: A k-inner unless TRANSPOSE_A, B k-inner when
// TRANSPOSE_B (see StagedTile).
template <int P, bool TRANSPOSE_A, bool TRANSPOSE_B, int BM, int BN, int BK>
struct MmaTiles {
    using TileA = StagedTile<typename MmaType<P>::E, BM, BK, !TRANSPOSE_A, MmaType<P>::PAD_K, 8>;
    using TileB = StagedTile<typename MmaType<P>::E, BN, BK, TRANSPOSE_B, MmaType<P>::PAD_K, 8>;
};

// One BM x BN tile of out (m x n, row-major) = sum over K range [k_begin, k_end) of A x B, through `epilogue`.
// The operand tiles are staged by the caller's copiers: copy_a(stage, k0) / copy_b(stage, k0) issue this thread's
// cp.async copies of the K tile starting at k0 into the layouts of MmaTiles (zero-filling what lies outside the
// operand or past k_end). matmul copies matrix tiles (mma_tile below); conv2d_mma.cu gathers implicit-GEMM tiles.
template <int P, bool TRANSPOSE_A, bool TRANSPOSE_B, int BM, int BN, int BK, int STAGES, typename CopyA,
          typename CopyB>
__device__ void mma_tile_staged(float4* smem, const CopyA& copy_a, const CopyB& copy_b, typename MmaType<P>::E* out,
                                int m, int n, long long k_begin, long long k_end, const MmaEpilogue<P>& epilogue)
{
    using Type = MmaType<P>;
    using E = typename Type::E;
    using TileA = typename MmaTiles<P, TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK>::TileA;
    using TileB = typename MmaTiles<P, TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK>::TileB;
    constexpr int WM = BM / MMA_WARPS_M, WN = BN / MMA_WARPS_N, MT = WM / 16, NT = WN / 8, KS = Type::K_STEP;
    static_assert(MT * 16 == WM && NT * 8 == WN && NT % 2 == 0 && BK % KS == 0, "tiling");
    static_assert(MMA_WARPS_M * MMA_WARPS_N * 32 == GEMM_THREADS, "8 warps");
    E* sa_all = reinterpret_cast<E*>(smem);
    E* sb_all = sa_all + STAGES * TileA::SIZE;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / MMA_WARPS_N, wn = warp % MMA_WARPS_N, g = lane >> 2, t = lane & 3;
    const int j8 = lane / 8, r8 = lane % 8;  // ldmatrix: this lane gives row r8 of matrix j8
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

    const int k_tiles = (int)((k_end - k_begin + BK - 1) / BK);
    auto issue = [&](int tile) {
        if (tile < k_tiles) {
            copy_a(sa_all + (tile % STAGES) * TileA::SIZE, k_begin + (long long)tile * BK);
            copy_b(sb_all + (tile % STAGES) * TileB::SIZE, k_begin + (long long)tile * BK);
        }
        cp_async_commit();
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) issue(s);

    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait_group<STAGES - 2>();
        __syncthreads();
        issue(kt + STAGES - 1);
        const E* sa = sa_all + (kt % STAGES) * TileA::SIZE;
        const E* sb = sb_all + (kt % STAGES) * TileB::SIZE;
        constexpr int SA = TileA::STRIDE, SB = TileB::STRIDE;
#pragma unroll
        for (int ks = 0; ks < BK; ks += KS) {
            unsigned fa[MT][4], fb[NT][2];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                const int r = wm * WM + mt * 16;
                if constexpr (P == 0) {
                    const float* f = reinterpret_cast<const float*>(sa);
                    const int lo = TRANSPOSE_A ? (ks + t) * SA + r + g : (r + g) * SA + ks + t;
                    const int down = TRANSPOSE_A ? 8 : 8 * SA, right = TRANSPOSE_A ? 4 * SA : 4;  // row + 8, k + 4
                    fa[mt][0] = cvt_rna_tf32(f[lo]);
                    fa[mt][1] = cvt_rna_tf32(f[lo + down]);
                    fa[mt][2] = cvt_rna_tf32(f[lo + right]);
                    fa[mt][3] = cvt_rna_tf32(f[lo + down + right]);
                } else if (TRANSPOSE_A) {
                    ldmatrix_x4_trans(fa[mt], sa + (ks + r8 + 8 * (j8 / 2)) * SA + r + 8 * (j8 % 2));
                } else {
                    ldmatrix_x4(fa[mt], sa + (r + r8 + 8 * (j8 % 2)) * SA + ks + 8 * (j8 / 2));
                }
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt += 2) {
                const int c = wn * WN + nt * 8;
                if constexpr (P == 0) {
                    const float* f = reinterpret_cast<const float*>(sb);
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int lo = TRANSPOSE_B ? (c + 8 * h + g) * SB + ks + t : (ks + t) * SB + c + 8 * h + g;
                        fb[nt + h][0] = cvt_rna_tf32(f[lo]);
                        fb[nt + h][1] = cvt_rna_tf32(f[lo + (TRANSPOSE_B ? 4 : 4 * SB)]);
                    }
                } else {
                    unsigned q[4];
                    if (TRANSPOSE_B) {
                        ldmatrix_x4(q, sb + (c + r8 + 8 * (j8 / 2)) * SB + ks + 8 * (j8 % 2));
                    } else {
                        ldmatrix_x4_trans(q, sb + (ks + r8 + 8 * (j8 % 2)) * SB + c + 8 * (j8 / 2));
                    }
                    fb[nt][0] = q[0], fb[nt][1] = q[1], fb[nt + 1][0] = q[2], fb[nt + 1][1] = q[3];
                }
            }
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                    if constexpr (P == 0) {
                        mma_m16n8k8_tf32(acc[mt][nt], fa[mt], fb[nt], acc[mt][nt]);
                    } else if constexpr (P == 1) {
                        mma_m16n8k16_bf16(acc[mt][nt], fa[mt], fb[nt], acc[mt][nt]);
                    } else {
                        mma_m16n8k16_f16(acc[mt][nt], fa[mt], fb[nt], acc[mt][nt]);
                    }
                }
        }
    }
    cp_async_wait_all();
    __syncthreads();

#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int row = m0 + wm * WM + mt * 16 + g + 8 * (q >> 1);
                const int col = n0 + wn * WN + nt * 8 + 2 * t + (q & 1);
                if (row < m && col < n) {
                    const long long index = (long long)row * n + col;
                    out[index] = epilogue(acc[mt][nt][q], index, col);
                }
            }
    epilogue.deferred_loop(out, MT * NT * 4, m, n, [&](int e, int& row, int& col) {
        const int mt = e / (NT * 4), nt = e / 4 % NT, q = e % 4;
        row = m0 + wm * WM + mt * 16 + g + 8 * (q >> 1);
        col = n0 + wn * WN + nt * 8 + 2 * t + (q & 1);
    });
}

// out = epilogue(op(a) @ op(b)) over the block's tile: a stored (m, k), or (k, m) when TRANSPOSE_A; b (k, n) or (n, k).
template <int P, bool TRANSPOSE_A, bool TRANSPOSE_B, int BM, int BN, int BK, int STAGES>
__device__ void mma_tile(float4* smem, const typename MmaType<P>::E* a, const typename MmaType<P>::E* b,
                         typename MmaType<P>::E* out, int m, int n, int k, const MmaEpilogue<P>& epilogue)
{
    using Tiles = MmaTiles<P, TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK>;
    using E = typename MmaType<P>::E;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const long long lda = TRANSPOSE_A ? m : k, ldb = TRANSPOSE_B ? k : n;
    mma_tile_staged<P, TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK, STAGES>(
        smem, [&](E* stage, long long k0) { Tiles::TileA::copy(stage, a, lda, m0, m, k0, k); },
        [&](E* stage, long long k0) { Tiles::TileB::copy(stage, b, ldb, n0, n, k0, k); }, out, m, n, 0, k, epilogue);
}

template <int P, bool TRANSPOSE_A, bool TRANSPOSE_B, int BM, int BN, int BK, int STAGES>
__device__ void mma_batches(float4* smem, const void* a, const void* b, void* c, int m, int n, int k, int batches,
                            long long batch_stride_a, long long batch_stride_b, MmaEpilogue<P> epilogue)
{
    using E = typename MmaType<P>::E;
    const E* residual = epilogue.residual;
    for (int batch = blockIdx.z; batch < batches; batch += gridDim.z) {
        epilogue.residual = residual + (long long)batch * m * n;
        mma_tile<P, TRANSPOSE_A, TRANSPOSE_B, BM, BN, BK, STAGES>(
            smem, static_cast<const E*>(a) + batch * batch_stride_a, static_cast<const E*>(b) + batch * batch_stride_b,
            static_cast<E*>(c) + (long long)batch * m * n, m, n, k, epilogue);
    }
}

// matmul.cu's `gemm` arguments on tensor cores; a, b, c, bias and residual in precision P's storage (void* so one
// signature serves float, bfloat16 and float16). Dynamic shared memory: STAGES stages of both staged tiles, sized
// for the largest of the four layouts (compile.py's MmaTiling.shared_bytes; over 48 KB, so the launcher raises the
// kernel's limit first).
template <int P, int BM, int BN, int BK, int STAGES>
__global__ void __launch_bounds__(GEMM_THREADS)
gemm_mma(const void* __restrict__ a, const void* __restrict__ b, void* __restrict__ c, int m, int n, int k,
         int transpose_a, int transpose_b, int batches, long long batch_stride_a, long long batch_stride_b,
         const void* __restrict__ bias, const void* __restrict__ residual, int flags, int activation)
{
    extern __shared__ float4 mma_smem[];
    using E = typename MmaType<P>::E;
    const MmaEpilogue<P> e{static_cast<const E*>(bias), static_cast<const E*>(residual), flags, activation};
    if (transpose_a && transpose_b) {
        mma_batches<P, true, true, BM, BN, BK, STAGES>(mma_smem, a, b, c, m, n, k, batches, batch_stride_a,
                                                        batch_stride_b, e);
    } else if (transpose_a) {
        mma_batches<P, true, false, BM, BN, BK, STAGES>(mma_smem, a, b, c, m, n, k, batches, batch_stride_a,
                                                         batch_stride_b, e);
    } else if (transpose_b) {
        mma_batches<P, false, true, BM, BN, BK, STAGES>(mma_smem, a, b, c, m, n, k, batches, batch_stride_a,
                                                         batch_stride_b, e);
    } else {
        mma_batches<P, false, false, BM, BN, BK, STAGES>(mma_smem, a, b, c, m, n, k, batches, batch_stride_a,
                                                          batch_stride_b, e);
    }
}

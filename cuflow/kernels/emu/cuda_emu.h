// cuda_emu.h — runs cuflow's CUDA C kernels on the CPU (the "mock GPU").
//
// loader.py compiles a .cu source as C++20 with this header force-included (`g++ -include cuda_emu.h`), so the
// kernel text is the same one NVRTC compiles for the GPU. `__CUDA_ARCH__` is NOT defined: code behind
// `#ifdef __CUDA_ARCH__` (inline PTX) takes its `#else` branch; `__CUFLOW_EMU__` is defined for the rare kernel
// that must know.
//
// Execution model
// - Blocks run one after another. The threads of a block are fibers: each has its own mmap'd stack (guard page
//   below it) and a hand-written x86-64 context switch (`cuemu_switch_context`: push the six callee-saved
//   registers, swap rsp, pop, ret). No signal masks, no OS threads: a switch costs a few nanoseconds.
// - A scheduler (running on the caller's stack) resumes runnable fibers in the block's thread order (forward,
//   reverse or a seeded random permutation, re-drawn every barrier phase). A fiber runs until it waits at a
//   barrier or returns.
// - `__syncthreads()` marks the fiber waiting and switches back to the scheduler. When nothing is runnable and
//   every thread that has not returned waits at the block barrier, the barrier releases (threads that returned
//   early drop out, as on the GPU). If they wait at different `__syncthreads` call sites, or some wait at a warp
//   operation that can never complete, the launch fails with a deadlock report (block, sites, counts).
// - Warp operations (`__shfl*_sync`, `__ballot_sync`, `__any/__all_sync`, `__syncwarp`, `__reduce_*_sync`,
//   `__match_any_sync`) are warp-level barriers: warps are 32 consecutive threads in x-major linear order; each
//   lane deposits its value, the last lane of the group to arrive computes every lane's result, and the group
//   resumes. Lanes that returned do not take part; reading from one gives all-ones bits (NaN).
// - Shared memory is filled with 0xFF bytes (NaN for floats) before every block, so reading it before writing
//   shows. loader.py rewrites `__shared__ T x[N];` declarations into heap-backed `cuemu::Shared` holders (which
//   also gives AddressSanitizer redzones around each array, template kernels included) and
//   `extern __shared__ T x[];` into a pointer to the per-launch dynamic buffer. Declarations it cannot rewrite
//   fall back to the `__shared__` macro below: a static in the `cuemu_shared` section, filled per block too
//   (GCC ignores the section for statics inside templates: those are not filled).
//
// Sanitizers (loader.py adds the flags; the Python process must preload the runtime, see sanitizer_env())
// - memcheck = AddressSanitizer. Global buffers are exact-size NumPy allocations; shared holders are exact-size
//   heap blocks; the dynamic buffer is poisoned past the launch's requested size. Fiber switches are announced
//   with __sanitizer_start/finish_switch_fiber so ASan knows which stack is live.
// - racecheck = ThreadSanitizer. Every fiber is a TSan fiber, switched with "no sync", so TSan sees the
//   threads of a block as concurrent. Barrier phases are made explicit with sync objects: a thread arriving at
//   the barrier that ends phase k (or returning during phase k) releases object k % 2, and acquires it when the
//   barrier lets it go. An access is thus ordered after everything before the previous barrier and unordered
//   with the other threads' accesses in the same phase: exactly the accesses a missing `__syncthreads` leaves
//   racing. Two alternating objects, not one, because fibers leave a barrier lazily: thread 0 may already have
//   arrived at barrier k+1 when thread 1 leaves barrier k, and thread 1 must not acquire thread 0's phase k+1.
//   Fibers start by acquiring a block-start object that only the scheduler releases (after the host's writes
//   and the previous block). `__syncwarp` does the same per warp; shuffles and ballots give no ordering (as on
//   the GPU). Blocks are ordered one after another (like compute-sanitizer's racecheck, only hazards within a
//   block are reported).
//   Emulator internals are compiled without sanitizer instrumentation (CUEMU_INTERNAL) so that their own
//   bookkeeping, shared by all fibers, never shows up in a report.
//
// Not emulated: partial-mask warp groups running concurrently in one warp, independent thread scheduling within
// a warp (spin-waits on another thread never finish), grid-wide sync / cooperative groups, the GPU memory model
// (fences are full fences), half/bfloat16 types, texture/surface memory, wgmma/TMA/bulk copies, rounding-mode
// intrinsics other than round-to-nearest, and GPU fast-math precision (`__expf` is the exact expf).
#pragma once

#ifdef __CUDA_ARCH__
#error "cuda_emu.h emulates a GPU on the host: __CUDA_ARCH__ must not be defined"
#endif

#include <assert.h>
#include <cassert>
#include <climits>
#include <cstdarg>
#include <limits>
#include <string>
#include <cmath>
#include <math.h>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <bit>
#include <mutex>
#include <type_traits>
#include <utility>
#include <sys/mman.h>

#define __CUFLOW_EMU__ 1

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define CUEMU_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define CUEMU_TSAN 1
#endif
#endif

#if defined(CUEMU_ASAN) || defined(CUEMU_TSAN)
#define CUEMU_INTERNAL __attribute__((no_sanitize("address", "thread"), noinline))
#ifndef CUEMU_STACK_SIZE
#define CUEMU_STACK_SIZE (256 * 1024)
#endif
#else
#define CUEMU_INTERNAL
#ifndef CUEMU_STACK_SIZE
#define CUEMU_STACK_SIZE (64 * 1024)
#endif
#endif

#ifndef CUEMU_MAX_DYN_SHARED
#define CUEMU_MAX_DYN_SHARED (227 * 1024)  // an H100's opt-in maximum per block
#endif

// ---------------------------------------------------------------------------------------------------------------
// Qualifiers
#define __global__ __attribute__((noinline))
#define __device__
#define __host__
#define __constant__ __attribute__((visibility("default")))  // found by Module.get_global
#define __managed__
#define __grid_constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("cuemu_shared")))  // fallback; loader.py rewrites most uses

// ---------------------------------------------------------------------------------------------------------------
// Vector types (alignments as in CUDA's vector_types.h)
#define CUEMU_VECTOR(T, N, A2, A4)                                                                             \
    struct alignas(sizeof(T)) N##1 { T x; };                                                                    \
    struct alignas(A2) N##2 { T x, y; };                                                                        \
    struct alignas(sizeof(T)) N##3 { T x, y, z; };                                                              \
    struct alignas(A4) N##4 { T x, y, z, w; };                                                                  \
    inline N##1 make_##N##1(T x) { return {x}; }                                                                \
    inline N##2 make_##N##2(T x, T y) { return {x, y}; }                                                        \
    inline N##3 make_##N##3(T x, T y, T z) { return {x, y, z}; }                                                \
    inline N##4 make_##N##4(T x, T y, T z, T w) { return {x, y, z, w}; }
CUEMU_VECTOR(signed char, char, 2, 4)
CUEMU_VECTOR(unsigned char, uchar, 2, 4)
CUEMU_VECTOR(short, short, 4, 8)
CUEMU_VECTOR(unsigned short, ushort, 4, 8)
CUEMU_VECTOR(int, int, 8, 16)
CUEMU_VECTOR(unsigned int, uint, 8, 16)
CUEMU_VECTOR(long, long, 16, 16)
CUEMU_VECTOR(unsigned long, ulong, 16, 16)
CUEMU_VECTOR(long long, longlong, 16, 16)
CUEMU_VECTOR(unsigned long long, ulonglong, 16, 16)
CUEMU_VECTOR(float, float, 8, 16)
CUEMU_VECTOR(double, double, 16, 16)
#undef CUEMU_VECTOR

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return {x, y, z}; }
};
constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------------------------
// Math and bit intrinsics (exact CPU versions of the GPU's fast approximations)
template <class A, class B>
    requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    return C(a) < C(b) ? C(b) : C(a);
}
template <class A, class B>
    requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    return C(b) < C(a) ? C(b) : C(a);
}
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { sincosf(x, s, c); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float sinpif(float x) { return sinf(float(M_PI) * x); }
inline float cospif(float x) { return cosf(float(M_PI) * x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

namespace cuemu {
// The GPU's float->int conversions saturate and map NaN to 0; a plain C++ cast is undefined there.
template <class I>
inline I saturate(double v) {
    if (v != v) return 0;
    if (v <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
    if (v >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
    return I(v);
}
}  // namespace cuemu
inline int __float2int_rn(float x) { return cuemu::saturate<int>(nearbyint(x)); }
inline int __float2int_rz(float x) { return cuemu::saturate<int>(trunc(x)); }
inline int __float2int_rd(float x) { return cuemu::saturate<int>(floor(x)); }
inline int __float2int_ru(float x) { return cuemu::saturate<int>(ceil(x)); }
inline unsigned __float2uint_rn(float x) { return cuemu::saturate<unsigned>(nearbyint(x)); }
inline unsigned __float2uint_rz(float x) { return cuemu::saturate<unsigned>(trunc(x)); }
inline long long __float2ll_rn(float x) { return cuemu::saturate<long long>(nearbyint(x)); }
inline long long __float2ll_rz(float x) { return cuemu::saturate<long long>(trunc(x)); }
inline int __double2int_rn(double x) { return cuemu::saturate<int>(nearbyint(x)); }
inline int __double2int_rz(double x) { return cuemu::saturate<int>(trunc(x)); }
inline float __double2float_rn(double x) { return float(x); }
inline float __int2float_rn(int x) { return float(x); }
inline float __uint2float_rn(unsigned x) { return float(x); }
inline float __ll2float_rn(long long x) { return float(x); }
inline double __int2double_rn(int x) { return double(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __double2hiint(double x) { return int(std::bit_cast<unsigned long long>(x) >> 32); }
inline int __double2loint(double x) { return int(std::bit_cast<unsigned long long>(x)); }
inline double __hiloint2double(int hi, int lo) {
    return std::bit_cast<double>((static_cast<unsigned long long>(unsigned(hi)) << 32) | unsigned(lo));
}
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(unsigned(x)); }
inline int __clzll(long long x) { return std::countl_zero((unsigned long long)x); }
inline int __ffs(int x) { return x ? std::countr_zero(unsigned(x)) + 1 : 0; }
inline int __ffsll(long long x) { return x ? std::countr_zero((unsigned long long)x) + 1 : 0; }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline int __mulhi(int a, int b) { return int((long long)a * b >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((unsigned long long)a * b >> 32); }
inline long long __mul64hi(long long a, long long b) { return (long long)((__int128)a * b >> 64); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)((unsigned __int128)a * b >> 64);
}
inline int __mul24(int a, int b) { return (a << 8 >> 8) * (b << 8 >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x, r = 0;
    for (int i = 0; i < 4; ++i) r |= ((v >> (8 * ((s >> (4 * i)) & 7))) & 0xffu) << (8 * i);
    return unsigned(r);
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    return unsigned((((unsigned long long)hi << 32 | lo) << (s & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    return unsigned(((unsigned long long)hi << 32 | lo) >> (s & 31));
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned s) { return s >= 32 ? lo : __funnelshift_l(lo, hi, s); }
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned s) { return s >= 32 ? hi : __funnelshift_r(lo, hi, s); }
inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }
inline void __nanosleep(unsigned) {}

// Cache-hinted loads and stores are plain accesses on the CPU.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// ---------------------------------------------------------------------------------------------------------------
// Atomics: relaxed, like CUDA's. Real atomic instructions even though fibers never overlap, so that
// ThreadSanitizer treats them as synchronised accesses.
#define CUEMU_RELAXED __ATOMIC_RELAXED
#define CUEMU_ATOMIC_INTEGER(T)                                                                                \
    inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, CUEMU_RELAXED); }                         \
    inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, CUEMU_RELAXED); }                         \
    inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, CUEMU_RELAXED); }                       \
    inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, CUEMU_RELAXED); }                         \
    inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, CUEMU_RELAXED); }                          \
    inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, CUEMU_RELAXED); }                         \
    inline T atomicCAS(T* p, T compare, T v) {                                                                  \
        __atomic_compare_exchange_n(p, &compare, v, false, CUEMU_RELAXED, CUEMU_RELAXED);                       \
        return compare;                                                                                         \
    }                                                                                                           \
    inline T atomicMin(T* p, T v) { return cuemu::atomic_update(p, [v](T old) { return v < old ? v : old; }); } \
    inline T atomicMax(T* p, T v) { return cuemu::atomic_update(p, [v](T old) { return v > old ? v : old; }); }

namespace cuemu {
// Compare-and-swap loop applying f to the current value; returns the value before the update.
template <class T, class F>
inline T atomic_update(T* p, F f) {
    using Bits = std::conditional_t<sizeof(T) == 4, unsigned, unsigned long long>;
    Bits* word = reinterpret_cast<Bits*>(p);
    Bits old = __atomic_load_n(word, CUEMU_RELAXED);
    while (!__atomic_compare_exchange_n(word, &old, std::bit_cast<Bits>(f(std::bit_cast<T>(old))), true,
                                        CUEMU_RELAXED, CUEMU_RELAXED)) {
    }
    return std::bit_cast<T>(old);
}
}  // namespace cuemu

CUEMU_ATOMIC_INTEGER(int)
CUEMU_ATOMIC_INTEGER(unsigned int)
CUEMU_ATOMIC_INTEGER(long long)
CUEMU_ATOMIC_INTEGER(unsigned long long)
#undef CUEMU_ATOMIC_INTEGER
inline float atomicAdd(float* p, float v) { return cuemu::atomic_update(p, [v](float old) { return old + v; }); }
inline double atomicAdd(double* p, double v) { return cuemu::atomic_update(p, [v](double old) { return old + v; }); }
inline float atomicExch(float* p, float v) { return std::bit_cast<float>(atomicExch((unsigned*)p, std::bit_cast<unsigned>(v))); }
inline unsigned atomicInc(unsigned* p, unsigned limit) {
    return cuemu::atomic_update(p, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
    return cuemu::atomic_update(p, [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1; });
}
#define CUEMU_ATOMIC_SCOPED(op)                                                                                 \
    template <class... A> inline auto op##_block(A... a) { return op(a...); }                                  \
    template <class... A> inline auto op##_system(A... a) { return op(a...); }
CUEMU_ATOMIC_SCOPED(atomicAdd)
CUEMU_ATOMIC_SCOPED(atomicSub)
CUEMU_ATOMIC_SCOPED(atomicExch)
CUEMU_ATOMIC_SCOPED(atomicMin)
CUEMU_ATOMIC_SCOPED(atomicMax)
CUEMU_ATOMIC_SCOPED(atomicAnd)
CUEMU_ATOMIC_SCOPED(atomicOr)
CUEMU_ATOMIC_SCOPED(atomicXor)
CUEMU_ATOMIC_SCOPED(atomicCAS)
#undef CUEMU_ATOMIC_SCOPED
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---------------------------------------------------------------------------------------------------------------
// Sanitizer hooks (declared here so that no sanitizer header is needed)
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
void __asan_poison_memory_region(const volatile void* addr, size_t size);
void __asan_unpoison_memory_region(const volatile void* addr, size_t size);
void __asan_set_error_report_callback(void (*callback)(const char*));
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

// The context switch: saves the callee-saved registers and rsp of the running context into *save_sp and
// resumes the one whose rsp is load_sp. A new fiber's stack is prepared so that the final `ret` enters
// fiber_entry (see prepare_fiber). Top-level asm keeps it opaque to the optimizer: a call to it may change
// any memory, as a switch to another thread does.
__asm__(R"(
    .pushsection .text
    .p2align 4
    .globl cuemu_switch_context
    .hidden cuemu_switch_context
    .type cuemu_switch_context, @function
cuemu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch_context, .-cuemu_switch_context
    .popsection
)");
extern "C" __attribute__((visibility("hidden"))) void cuemu_switch_context(void** save_sp, void* load_sp);

extern "C" char __start_cuemu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_cuemu_shared[] __attribute__((weak, visibility("hidden")));

namespace cuemu {

constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr unsigned kMaxSharedArrays = 4096;  // __shared__ declarations (per template instantiation) in one module

enum class Wait : unsigned char { Ready, Block, Warp, Done };
enum WarpOp : int { kNone, kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncwarp,
                    kReduceAdd, kReduceMin, kReduceMax, kReduceAnd, kReduceOr, kReduceXor, kMatchAny };
enum BlockOp : int { kSync, kSyncCount, kSyncAnd, kSyncOr };
enum Order : int { kRotate, kForward, kReverse, kRandom };

struct Fiber {
    void* sp;                   // saved stack pointer while switched out
    char* stack;                // lowest usable byte, above the guard page
    uint3 tid;
    unsigned linear;
    Wait state;
    const char* what;           // where it waits, for deadlock reports
    const char* file;
    int line;
    int op;                     // BlockOp or WarpOp it waits in
    unsigned long long xin;     // value deposited at a barrier / warp op
    int xarg;                   // per-lane argument (source lane, delta, ...)
    unsigned long long xout;    // result handed back by the barrier / warp op
    void* asan_fake_stack;
    void* tsan_fiber;
    char name[96];
};

struct WarpGroup {              // the warp operation the lanes of one warp are gathering for
    int op;
    unsigned mask, arrived;
    int width;
};

struct State {
    std::mutex mutex;           // one launch at a time per module
    // launch
    void (*invoke)(void (*)(), void**);
    void (*fn)();
    void** args;
    const char* kernel;
    dim3 grid, block;
    uint3 block_idx;
    size_t dyn_shared;
    int order_mode;
    unsigned long long seed;
    // block
    unsigned nthreads, nwarps, n_done, n_block_wait, phase, order_now;
    unsigned pos;               // position in `order` of the running fiber during a pass
    bool ran;                   // whether the current pass resumed any fiber
    const Fiber* bar_first;     // first thread to arrive at the block barrier in this phase
    bool bar_mismatch;          // some thread arrived at another __syncthreads site than bar_first
    unsigned long long bar_count;  // sum of the predicates (__syncthreads_count/and/or)
    unsigned long long rng;
    Fiber* cur;
    void* sched_sp;
    unsigned live[kMaxThreads / 32];
    WarpGroup warp[kMaxThreads / 32];
    // shared memory holders (see Shared); a plain table, as std::vector's methods would be instrumented
    struct { void* ptr; size_t size; } shared[kMaxSharedArrays];
    unsigned n_shared;
    // errors
    bool failed;
    char error[4096];
    // sanitizers
    void* asan_sched_fake_stack;
    const void* asan_sched_bottom;
    size_t asan_sched_size;
    bool asan_from_sched;       // the last switch came from the scheduler (so ASan reported its stack)
    void* tsan_sched;
    char tsan_block_start;      // the addresses of these are TSan sync objects (see the top of this file)
    char tsan_phase[2];
    char tsan_warp[kMaxThreads / 32][2];
    unsigned warp_phase[kMaxThreads / 32];
};
static State g;
static Fiber fibers[kMaxThreads];
static unsigned order[kMaxThreads];
alignas(128) static unsigned char dyn_shared_buffer[CUEMU_MAX_DYN_SHARED];

// Not instrumented, and invisible to sanitizers: fills shared memory between blocks.
CUEMU_INTERNAL static void fill_ff(void* p, size_t n) {
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0xff) : "memory");
}

static const char* const kOrderNames[] = {"rotate", "forward", "reverse", "random"};

CUEMU_INTERNAL static const char* where(const Fiber* f) {
    static char buf[320];
    snprintf(buf, sizeof buf, "kernel '%s', block (%u,%u,%u) thread (%u,%u,%u) [grid (%u,%u,%u), block (%u,%u,%u), %s order]",
             g.kernel ? g.kernel : "?", g.block_idx.x, g.block_idx.y, g.block_idx.z, f ? f->tid.x : 0, f ? f->tid.y : 0,
             f ? f->tid.z : 0, g.grid.x, g.grid.y, g.grid.z, g.block.x, g.block.y, g.block.z,
             kOrderNames[g.order_now]);
    return buf;
}

// A kernel that cannot go on (trap, assert): like the GPU, the whole process's context is lost.
[[noreturn]] CUEMU_INTERNAL inline void die(const char* what) {
    fflush(stdout);
    fprintf(stderr, "cuflow mock GPU: %s in %s\n", what, where(g.cur));
    fflush(stderr);
    abort();
}

// ---------------------------------------------------------------------------------------------------------------
// Fibers

// ASan must be told which stack runs next; a fiber that is switched to learns the scheduler's stack from it.
CUEMU_INTERNAL static void asan_arrived(Fiber* f) {
#ifdef CUEMU_ASAN
    const void* bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(f ? f->asan_fake_stack : nullptr, &bottom, &size);
    if (g.asan_from_sched) {
        g.asan_sched_bottom = bottom;
        g.asan_sched_size = size;
    }
#endif
    (void)f;
}

// Scheduler -> the fiber at order[pos]; returns when a pass has run through the order.
CUEMU_INTERNAL static void switch_to(Fiber* f) {
    g.cur = f;
    g.ran = true;
#ifdef CUEMU_ASAN
    g.asan_from_sched = true;
    __sanitizer_start_switch_fiber(&g.asan_sched_fake_stack, f->stack, CUEMU_STACK_SIZE);
#endif
#ifdef CUEMU_TSAN
    __tsan_switch_to_fiber(f->tsan_fiber, 1 /* no sync: threads of a block are concurrent */);
#endif
    cuemu_switch_context(&g.sched_sp, f->sp);
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(g.asan_sched_fake_stack, nullptr, nullptr);
#endif
}

// The running fiber waits or has returned: resume the next runnable fiber of this pass directly (half the
// switches of going through the scheduler), or the scheduler at the end of the pass.
CUEMU_INTERNAL static void yield(bool exiting) {
    Fiber* f = g.cur;
    Fiber* next = nullptr;
    while (!g.failed && ++g.pos < g.nthreads) {
        Fiber* c = &fibers[order[g.pos]];
        if (c->state == Wait::Ready) { next = c; break; }
    }
    void* to = next ? next->sp : g.sched_sp;
#ifdef CUEMU_ASAN
    g.asan_from_sched = false;
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f->asan_fake_stack, next ? next->stack : g.asan_sched_bottom,
                                   next ? CUEMU_STACK_SIZE : g.asan_sched_size);
#endif
#ifdef CUEMU_TSAN
    __tsan_switch_to_fiber(next ? next->tsan_fiber : g.tsan_sched, 1);
#endif
    if (next) g.cur = next;
    cuemu_switch_context(&f->sp, to);
    asan_arrived(f);
    (void)exiting;
}

CUEMU_INTERNAL static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
CUEMU_INTERNAL static void fail(const char* fmt, ...) {
    if (g.failed) return;
    int n = snprintf(g.error, sizeof g.error, "%s: ", where(g.cur));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.error + n, sizeof g.error - n, fmt, ap);
    va_end(ap);
    g.failed = true;
}

// The running fiber stops for good: the scheduler never resumes it after a failure.
CUEMU_INTERNAL static void fail_in_fiber() {
    g.cur->state = Wait::Done;
    yield(true);
    __builtin_unreachable();
}

static void complete_warp(unsigned w);

CUEMU_INTERNAL static void thread_exit() {
    Fiber* f = g.cur;
#ifdef CUEMU_TSAN
    __tsan_release(&g.tsan_phase[g.phase % 2]);
#endif
    f->state = Wait::Done;
    ++g.n_done;
    unsigned w = f->linear / 32;
    g.live[w] &= ~(1u << (f->linear % 32));
    WarpGroup& grp = g.warp[w];
    if (grp.op != kNone && (grp.arrived & grp.mask & g.live[w]) == (grp.mask & g.live[w])) complete_warp(w);
    yield(true);
    __builtin_unreachable();
}

// Entered by the `ret` of the first switch into a fiber; never returns.
[[noreturn]] CUEMU_INTERNAL static void fiber_entry() {
    asan_arrived(nullptr);
#ifdef CUEMU_TSAN
    __tsan_acquire(&g.tsan_block_start);
#endif
    g.invoke(g.fn, g.args);
    thread_exit();
    __builtin_unreachable();
}

CUEMU_INTERNAL static bool prepare_fiber(Fiber* f) {
    if (!f->stack) {
        const size_t page = 4096;
        void* p = mmap(nullptr, CUEMU_STACK_SIZE + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return false;
        mprotect(p, page, PROT_NONE);  // a stack overflow faults instead of corrupting the next stack
        f->stack = static_cast<char*>(p) + page;
#ifdef CUEMU_TSAN
        f->tsan_fiber = __tsan_create_fiber(0);
#endif
    }
    // Stack tops are staggered across a page so that the hot top frames of hundreds of fibers do not all map
    // to the same few cache sets. `ret` pops fiber_entry from a 16-byte aligned slot, so fiber_entry starts
    // with rsp % 16 == 8, as if called.
    const uintptr_t top = reinterpret_cast<uintptr_t>(f->stack + CUEMU_STACK_SIZE) - (f->linear * 320u) % 4096u;
    void** sp = reinterpret_cast<void**>(top & ~uintptr_t(15));
    *--sp = nullptr;                                   // fiber_entry's return address: none (ends backtraces)
    *--sp = reinterpret_cast<void*>(&fiber_entry);
    for (int i = 0; i < 6; ++i) *--sp = nullptr;       // rbp, rbx, r12-r15
    f->sp = sp;
    f->state = Wait::Ready;
    f->asan_fake_stack = nullptr;
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Barriers

CUEMU_INTERNAL static unsigned long long block_barrier(int op, int pred, const char* what, const char* file, int line) {
    Fiber* f = g.cur;
#ifdef CUEMU_TSAN
    __tsan_release(&g.tsan_phase[g.phase % 2]);
#endif
    f->state = Wait::Block;
    f->op = op;
    f->xin = pred != 0;
    f->what = what;
    f->file = file;
    f->line = line;
    if (g.n_block_wait++ == 0) {
        g.bar_first = f;
        g.bar_count = 0;
    } else if (line != g.bar_first->line || op != g.bar_first->op ||
               (file != g.bar_first->file && strcmp(file, g.bar_first->file) != 0)) {
        g.bar_mismatch = true;
    }
    g.bar_count += pred != 0;
    yield(false);
#ifdef CUEMU_TSAN
    __tsan_acquire(&g.tsan_phase[(g.phase - 1) % 2]);  // the release that let us go incremented g.phase
#endif
    return f->xout;
}

CUEMU_INTERNAL static void complete_warp(unsigned w) {
    WarpGroup& grp = g.warp[w];
    Fiber* lane0 = &fibers[w * 32];
    const unsigned arrived = grp.arrived;
    // Warp-wide values for ballots and reductions (reductions see 32-bit values; xarg says whether signed).
    unsigned ballot = 0, sum = 0, band = ~0u, bor = 0, bxor = 0;
    long long lo = LLONG_MAX, hi = LLONG_MIN;
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(arrived >> lane & 1)) continue;
        const Fiber* f = &lane0[lane];
        const unsigned v = unsigned(f->xin);
        const long long value = f->xarg ? (long long)int(v) : (long long)v;
        ballot |= (f->xin != 0) << lane;
        sum += v;
        band &= v;
        bor |= v;
        bxor ^= v;
        lo = value < lo ? value : lo;
        hi = value > hi ? value : hi;
    }
    const unsigned width = unsigned(grp.width);
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(arrived >> lane & 1)) continue;
        Fiber* f = &lane0[lane];
        const unsigned seg = lane & ~(width - 1), arg = unsigned(f->xarg);
        unsigned src = lane;
        switch (grp.op) {
            case kShflIdx: src = seg + (arg & (width - 1)); break;
            case kShflUp: src = lane - seg >= arg ? lane - arg : lane; break;
            case kShflDown: src = lane - seg + arg < width ? lane + arg : lane; break;
            case kShflXor: src = lane ^ (arg & 31); src = src < seg + width ? src : lane; break;
            default: break;
        }
        switch (grp.op) {
            case kShflIdx: case kShflUp: case kShflDown: case kShflXor:
                f->xout = (arrived >> src & 1) ? lane0[src].xin : ~0ull;  // a lane that is not there: garbage
                break;
            case kBallot: f->xout = ballot; break;
            case kAny: f->xout = ballot != 0; break;
            case kAll: f->xout = ballot == arrived; break;
            case kReduceAdd: f->xout = sum; break;
            case kReduceMin: f->xout = unsigned(lo); break;
            case kReduceMax: f->xout = unsigned(hi); break;
            case kReduceAnd: f->xout = band; break;
            case kReduceOr: f->xout = bor; break;
            case kReduceXor: f->xout = bxor; break;
            case kMatchAny: {
                unsigned m = 0;
                for (unsigned j = 0; j < 32; ++j) m |= unsigned((arrived >> j & 1) && lane0[j].xin == f->xin) << j;
                f->xout = m;
                break;
            }
            default: f->xout = 0; break;
        }
        if (f->state == Wait::Warp) f->state = Wait::Ready;
    }
    if (grp.op == kSyncwarp) ++g.warp_phase[w];
    grp.op = kNone;
    grp.arrived = 0;
}

CUEMU_INTERNAL static unsigned long long warp_op(int op, unsigned mask, unsigned long long value, int arg, int width,
                                                 const char* what, const char* file, int line) {
    Fiber* f = g.cur;
    const unsigned w = f->linear / 32, lane = f->linear % 32;
    WarpGroup& grp = g.warp[w];
    if (!(mask >> lane & 1)) {
        fail("%s at %s:%d with mask 0x%08x that does not include the calling lane %u", what, file, line, mask, lane);
        fail_in_fiber();
    }
    if (width < 1 || width > 32 || (width & (width - 1))) {
        fail("%s at %s:%d with width %d: must be a power of two from 1 to 32", what, file, line, width);
        fail_in_fiber();
    }
    if (grp.op == kNone) {
        grp.op = op;
        grp.mask = mask;
        grp.width = width;
        grp.arrived = 0;
    } else if (grp.op != op || grp.mask != mask || grp.width != width) {
        const Fiber* other = nullptr;
        for (unsigned j = 0; j < 32 && !other; ++j)
            if (grp.arrived >> j & 1) other = &fibers[w * 32 + j];
        fail("warp %u diverged: lane %u calls %s (mask 0x%08x) at %s:%d while lane %u waits in %s (mask 0x%08x) at "
             "%s:%d (different masks or intrinsics in one warp at the same time are not emulated)",
             w, lane, what, mask, file, line, other ? other->linear % 32 : 0, other ? other->what : "?", grp.mask,
             other ? other->file : "?", other ? other->line : 0);
        fail_in_fiber();
    }
#ifdef CUEMU_TSAN
    if (op == kSyncwarp) __tsan_release(&g.tsan_warp[w][g.warp_phase[w] % 2]);
#endif
    f->xin = value;
    f->xarg = arg;
    f->op = op;
    f->what = what;
    f->file = file;
    f->line = line;
    grp.arrived |= 1u << lane;
    const unsigned need = mask & g.live[w];
    if ((grp.arrived & need) == need) {
        complete_warp(w);
    } else {
        f->state = Wait::Warp;
        yield(false);
    }
#ifdef CUEMU_TSAN
    if (op == kSyncwarp) __tsan_acquire(&g.tsan_warp[w][(g.warp_phase[w] - 1) % 2]);
#endif
    return f->xout;
}

// ---------------------------------------------------------------------------------------------------------------
// Scheduler

CUEMU_INTERNAL static unsigned long long next_random() {
    g.rng ^= g.rng >> 12;
    g.rng ^= g.rng << 25;
    g.rng ^= g.rng >> 27;
    return g.rng * 0x2545F4914F6CDD1Dull;
}

CUEMU_INTERNAL static void shuffle_order() {
    const unsigned n = g.nthreads;
    for (unsigned i = 0; i < n; ++i) order[i] = g.order_now == kReverse ? n - 1 - i : i;
    if (g.order_now == kRandom)
        for (unsigned i = n - 1; i > 0; --i) std::swap(order[i], order[next_random() % (i + 1)]);
}

// Nothing is runnable: either every live thread waits at the same __syncthreads (release it) or it is a deadlock.
CUEMU_INTERNAL static bool release_block_barrier() {
    const unsigned n = g.nthreads;
    const bool same = g.n_block_wait > 0 && g.n_block_wait + g.n_done == n && !g.bar_mismatch;
    if (!same) {
        struct Site { const Fiber* f; unsigned count; } sites[8];
        unsigned nsites = 0, extra = 0;
        for (unsigned i = 0; i < n; ++i) {
            const Fiber* f = &fibers[i];
            if (f->state == Wait::Done) continue;
            unsigned s = 0;
            while (s < nsites && !(sites[s].f->line == f->line && sites[s].f->op == f->op &&
                                   sites[s].f->state == f->state && strcmp(sites[s].f->file, f->file) == 0))
                ++s;
            if (s == nsites) {
                if (nsites == 8) { ++extra; continue; }
                sites[nsites++] = {f, 0};
            }
            ++sites[s].count;
        }
        g.cur = nullptr;
        int len = snprintf(g.error, sizeof g.error,
                           "deadlock in kernel '%s', block (%u,%u,%u) [grid (%u,%u,%u), block (%u,%u,%u), %s order]: "
                           "threads wait at barriers that cannot complete:",
                           g.kernel, g.block_idx.x, g.block_idx.y, g.block_idx.z, g.grid.x, g.grid.y, g.grid.z,
                           g.block.x, g.block.y, g.block.z, kOrderNames[g.order_now]);
        for (unsigned s = 0; s < nsites && len < (int)sizeof g.error; ++s) {
            const Fiber* f = sites[s].f;
            len += snprintf(g.error + len, sizeof g.error - len, "%s %u thread%s at %s (%s:%d, first thread (%u,%u,%u))",
                            s ? ";" : "", sites[s].count, sites[s].count == 1 ? "" : "s", f->what, f->file, f->line,
                            f->tid.x, f->tid.y, f->tid.z);
        }
        if (len < (int)sizeof g.error)
            snprintf(g.error + len, sizeof g.error - len, "%s; %u of %u threads had returned",
                     extra ? "; and more" : "", g.n_done, n);
        g.failed = true;
        return false;
    }
    const int op = g.bar_first->op;
    const unsigned long long result = op == kSyncCount ? g.bar_count
                                    : op == kSyncAnd   ? g.bar_count == g.n_block_wait
                                    : op == kSyncOr    ? g.bar_count != 0
                                                       : 0;
    for (unsigned i = 0; i < n; ++i) {
        Fiber* f = &fibers[i];
        if (f->state != Wait::Block) continue;
        f->xout = result;
        f->state = Wait::Ready;
    }
    g.n_block_wait = 0;
    ++g.phase;
    if (g.order_now == kRandom) shuffle_order();
    return true;
}

CUEMU_INTERNAL static bool run_block(unsigned block_linear) {
    const unsigned n = g.nthreads;
    g.order_now = g.order_mode == kRotate ? 1 + block_linear % 3 : g.order_mode;
    g.rng = (g.seed + 1) * 0x9E3779B97F4A7C15ull ^ (block_linear + 1) * 0xD1B54A32D192ED03ull;
    shuffle_order();
    g.n_done = g.n_block_wait = g.phase = 0;
    g.bar_mismatch = false;
    for (unsigned w = 0; w < g.nwarps; ++w) {
        const unsigned lanes = n - w * 32 < 32 ? n - w * 32 : 32;
        g.live[w] = lanes == 32 ? kFullMask : (1u << lanes) - 1;
        g.warp[w] = WarpGroup{kNone, 0, 0, 32};
        g.warp_phase[w] = 0;
    }
    for (unsigned i = 0; i < n; ++i) {
        Fiber* f = &fibers[i];
        f->linear = i;
        f->tid = {i % g.block.x, (i / g.block.x) % g.block.y, i / (g.block.x * g.block.y)};
        if (!prepare_fiber(f)) {
            snprintf(g.error, sizeof g.error, "kernel '%s': out of memory for %u thread stacks", g.kernel, n);
            g.failed = true;
            return false;
        }
#ifdef CUEMU_TSAN
        snprintf(f->name, sizeof f->name, "kernel '%s' block (%u,%u,%u) thread (%u,%u,%u)", g.kernel, g.block_idx.x,
                 g.block_idx.y, g.block_idx.z, f->tid.x, f->tid.y, f->tid.z);
        __tsan_set_fiber_name(f->tsan_fiber, f->name);
#endif
    }
    // Shared memory starts as NaN in every block, so a read before the write that should precede it shows.
    for (unsigned i = 0; i < g.n_shared; ++i) fill_ff(g.shared[i].ptr, g.shared[i].size);
    if (__stop_cuemu_shared != __start_cuemu_shared) fill_ff(__start_cuemu_shared, __stop_cuemu_shared - __start_cuemu_shared);
    fill_ff(dyn_shared_buffer, g.dyn_shared);
#ifdef CUEMU_TSAN
    // The host's writes and the previous blocks happen before this block; its threads start from here.
    __tsan_acquire(&g.tsan_phase[0]);
    __tsan_acquire(&g.tsan_phase[1]);
    __tsan_release(&g.tsan_block_start);
#endif
    // One pass resumes every runnable fiber once, in order; fibers hand over to each other (see yield).
    for (;;) {
        g.ran = false;
        for (g.pos = 0; g.pos < n && fibers[order[g.pos]].state != Wait::Ready; ++g.pos) {
        }
        if (g.pos < n) switch_to(&fibers[order[g.pos]]);
        if (g.failed) return false;
        if (g.n_done == n) {
#ifdef CUEMU_TSAN
            __tsan_acquire(&g.tsan_phase[0]);  // the block's writes happen before what the host does next
            __tsan_acquire(&g.tsan_phase[1]);
#endif
            return true;
        }
        if (!g.ran && !release_block_barrier()) return false;
    }
}

// After a failed launch the abandoned fibers' stacks still hold sanitizer state of frames that never returned.
CUEMU_INTERNAL static void reset_fibers() {
    for (unsigned i = 0; i < kMaxThreads; ++i) {
        Fiber* f = &fibers[i];
        if (!f->stack) continue;
#ifdef CUEMU_ASAN
        __asan_unpoison_memory_region(f->stack, CUEMU_STACK_SIZE);
#endif
#ifdef CUEMU_TSAN
        __tsan_destroy_fiber(f->tsan_fiber);
        f->tsan_fiber = __tsan_create_fiber(0);
#endif
    }
}

#ifdef CUEMU_ASAN
CUEMU_INTERNAL static void asan_report(const char*) {
    if (g.cur) fprintf(stderr, "cuflow mock GPU (memcheck): the access above was made by %s\n", where(g.cur));
}
#endif

CUEMU_INTERNAL static int run_grid(const unsigned* grid, const unsigned* block, size_t dyn_shared, int order_mode,
                                   unsigned long long seed) {
    g.grid = dim3(grid[0], grid[1], grid[2]);
    g.block = dim3(block[0], block[1], block[2]);
    g.dyn_shared = dyn_shared;
    g.order_mode = order_mode;
    g.order_now = order_mode;
    g.seed = seed;
    g.failed = false;
    g.cur = nullptr;
    g.error[0] = 0;
    g.nthreads = block[0] * block[1] * block[2];
    g.nwarps = (g.nthreads + 31) / 32;
    if (g.nthreads == 0 || g.nthreads > kMaxThreads) {
        snprintf(g.error, sizeof g.error, "kernel '%s': a block has 1 to %u threads, got %u", g.kernel, kMaxThreads, g.nthreads);
        return 1;
    }
    if (dyn_shared > CUEMU_MAX_DYN_SHARED) {
        snprintf(g.error, sizeof g.error, "kernel '%s': %zu bytes of dynamic shared memory requested, at most %d", g.kernel,
                 dyn_shared, CUEMU_MAX_DYN_SHARED);
        return 1;
    }
#ifdef CUEMU_ASAN
    __asan_set_error_report_callback(asan_report);
    __asan_unpoison_memory_region(dyn_shared_buffer, dyn_shared);
    __asan_poison_memory_region(dyn_shared_buffer + dyn_shared, CUEMU_MAX_DYN_SHARED - dyn_shared);
#endif
#if defined(CUEMU_ASAN) || defined(CUEMU_TSAN)
    fprintf(stderr, "cuflow mock GPU (%s): launching kernel '%s' grid (%u,%u,%u) block (%u,%u,%u) dynamic shared %zu bytes\n",
#ifdef CUEMU_ASAN
            "memcheck",
#else
            "racecheck",
#endif
            g.kernel, grid[0], grid[1], grid[2], block[0], block[1], block[2], dyn_shared);
#endif
#ifdef CUEMU_TSAN
    g.tsan_sched = __tsan_get_current_fiber();
#endif
    bool ok = true;
    for (unsigned z = 0; z < grid[2] && ok; ++z)
        for (unsigned y = 0; y < grid[1] && ok; ++y)
            for (unsigned x = 0; x < grid[0] && ok; ++x) {
                g.block_idx = {x, y, z};
                ok = run_block(x + grid[0] * (y + grid[1] * z));
            }

    g.cur = nullptr;
    fflush(stdout);  // printf from kernels shows at the end of the launch, as after a GPU sync
    if (!ok) reset_fibers();
    return ok ? 0 : 1;
}

// Calls the kernel with the cuLaunchKernel-style argument array: args[i] points to the value of parameter i.
template <class... P>
CUEMU_INTERNAL void invoke(void (*fn)(), void** args) {
    auto kernel = reinterpret_cast<void (*)(P...)>(fn);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
    }(std::index_sequence_for<P...>{});
}

template <class... P>
CUEMU_INTERNAL int launch(void (*kernel)(P...), const char* name, const unsigned* grid, const unsigned* block,
                          size_t dyn_shared, void** args, int order_mode, unsigned long long seed) {
    std::lock_guard<std::mutex> lock(g.mutex);
    g.invoke = &invoke<P...>;
    g.fn = reinterpret_cast<void (*)()>(kernel);
    g.args = args;
    g.kernel = name;
    return run_grid(grid, block, dyn_shared, order_mode, seed);
}

// Parameter list for the Python side's argument checks, e.g. "p:f4 p:f4 i4": p:<pointee> for pointers, then a
// kind (i/u signed/unsigned integer, f floating, b bool, s anything else, v void) and a size in bytes.
template <class U>
void describe_value(std::string& s) {
    if constexpr (std::is_void_v<U>) {
        s += "v0";
    } else {
        s += std::is_same_v<U, bool> ? 'b' : std::is_floating_point_v<U> ? 'f' : !std::is_integral_v<U> ? 's'
           : std::is_signed_v<U> ? 'i' : 'u';
        s += std::to_string(sizeof(U));
    }
}
template <class T>
void describe_param(std::string& s) {
    if (!s.empty()) s += ' ';
    if constexpr (std::is_pointer_v<T>) {
        s += "p:";
        describe_value<std::remove_cv_t<std::remove_pointer_t<T>>>(s);
    } else {
        describe_value<std::remove_cv_t<T>>(s);
    }
}
template <class... P>
CUEMU_INTERNAL const char* signature(void (*)(P...)) {
    static const std::string s = [] { std::string out; (describe_param<P>(out), ...); return out; }();
    return s.c_str();
}

// A `__shared__` array rewritten by loader.py: an exact-size heap block (so AddressSanitizer puts redzones
// around it) refilled with 0xFF before every block. Never freed: the kernel may run again.
template <class T, size_t Align = alignof(T)>
struct Shared {
    T* ptr;
    CUEMU_INTERNAL Shared() {
        void* p = nullptr;
        if (g.n_shared == kMaxSharedArrays) die("more than 4096 __shared__ declarations in one module");
        if (posix_memalign(&p, Align < 16 ? 16 : Align, sizeof(T)) != 0) die("out of memory for __shared__");
        fill_ff(p, sizeof(T));
        g.shared[g.n_shared++] = {p, sizeof(T)};
        ptr = static_cast<T*>(p);
    }
    T& get() { return *ptr; }
};

}  // namespace cuemu

// ---------------------------------------------------------------------------------------------------------------
// The thread hierarchy as kernels see it
#define threadIdx (static_cast<const uint3&>(::cuemu::g.cur->tid))
#define blockIdx (static_cast<const uint3&>(::cuemu::g.block_idx))
#define blockDim (static_cast<const dim3&>(::cuemu::g.block))
#define gridDim (static_cast<const dim3&>(::cuemu::g.grid))

#define CUEMU_SITE const char *cuemu_file = __builtin_FILE(), int cuemu_line = __builtin_LINE()

inline void __syncthreads(CUEMU_SITE) { cuemu::block_barrier(cuemu::kSync, 0, "__syncthreads", cuemu_file, cuemu_line); }
inline int __syncthreads_count(int pred, CUEMU_SITE) {
    return int(cuemu::block_barrier(cuemu::kSyncCount, pred, "__syncthreads_count", cuemu_file, cuemu_line));
}
inline int __syncthreads_and(int pred, CUEMU_SITE) {
    return int(cuemu::block_barrier(cuemu::kSyncAnd, pred, "__syncthreads_and", cuemu_file, cuemu_line));
}
inline int __syncthreads_or(int pred, CUEMU_SITE) {
    return int(cuemu::block_barrier(cuemu::kSyncOr, pred, "__syncthreads_or", cuemu_file, cuemu_line));
}
inline void __syncwarp(unsigned mask = cuemu::kFullMask, CUEMU_SITE) {
    cuemu::warp_op(cuemu::kSyncwarp, mask, 0, 0, 32, "__syncwarp", cuemu_file, cuemu_line);
}

namespace cuemu {
template <class T>
inline T shuffle(int op, unsigned mask, T var, int arg, int width, const char* what, const char* file, int line) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move values of at most 8 bytes");
    unsigned long long bits = 0;
    memcpy(&bits, &var, sizeof(T));
    bits = warp_op(op, mask, bits, arg, width, what, file, line);
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}
}  // namespace cuemu

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, CUEMU_SITE) {
    return cuemu::shuffle(cuemu::kShflIdx, mask, var, src_lane, width, "__shfl_sync", cuemu_file, cuemu_line);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUEMU_SITE) {
    return cuemu::shuffle(cuemu::kShflUp, mask, var, int(delta), width, "__shfl_up_sync", cuemu_file, cuemu_line);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUEMU_SITE) {
    return cuemu::shuffle(cuemu::kShflDown, mask, var, int(delta), width, "__shfl_down_sync", cuemu_file, cuemu_line);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, CUEMU_SITE) {
    return cuemu::shuffle(cuemu::kShflXor, mask, var, lane_mask, width, "__shfl_xor_sync", cuemu_file, cuemu_line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, CUEMU_SITE) {
    return unsigned(cuemu::warp_op(cuemu::kBallot, mask, pred != 0, 0, 32, "__ballot_sync", cuemu_file, cuemu_line));
}
inline int __any_sync(unsigned mask, int pred, CUEMU_SITE) {
    return int(cuemu::warp_op(cuemu::kAny, mask, pred != 0, 0, 32, "__any_sync", cuemu_file, cuemu_line));
}
inline int __all_sync(unsigned mask, int pred, CUEMU_SITE) {
    return int(cuemu::warp_op(cuemu::kAll, mask, pred != 0, 0, 32, "__all_sync", cuemu_file, cuemu_line));
}
#define CUEMU_REDUCE(name, op, T, is_signed)                                                                    \
    inline T name(unsigned mask, T value, CUEMU_SITE) {                                                         \
        return T(cuemu::warp_op(op, mask, (unsigned)value, is_signed, 32, #name, cuemu_file, cuemu_line));      \
    }
CUEMU_REDUCE(__reduce_add_sync, cuemu::kReduceAdd, unsigned, 0)
CUEMU_REDUCE(__reduce_add_sync, cuemu::kReduceAdd, int, 1)
CUEMU_REDUCE(__reduce_min_sync, cuemu::kReduceMin, unsigned, 0)
CUEMU_REDUCE(__reduce_min_sync, cuemu::kReduceMin, int, 1)
CUEMU_REDUCE(__reduce_max_sync, cuemu::kReduceMax, unsigned, 0)
CUEMU_REDUCE(__reduce_max_sync, cuemu::kReduceMax, int, 1)
CUEMU_REDUCE(__reduce_and_sync, cuemu::kReduceAnd, unsigned, 0)
CUEMU_REDUCE(__reduce_or_sync, cuemu::kReduceOr, unsigned, 0)
CUEMU_REDUCE(__reduce_xor_sync, cuemu::kReduceXor, unsigned, 0)
#undef CUEMU_REDUCE
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value, CUEMU_SITE) {
    static_assert(sizeof(T) <= 8, "__match_any_sync compares values of at most 8 bytes");
    unsigned long long bits = 0;
    memcpy(&bits, &value, sizeof(T));
    return unsigned(cuemu::warp_op(cuemu::kMatchAny, mask, bits, 0, 32, "__match_any_sync", cuemu_file, cuemu_line));
}
// Approximation: the lanes of the warp that have not returned (the GPU reports the currently converged lanes).
inline unsigned __activemask() { return cuemu::g.live[cuemu::g.cur->linear / 32]; }

[[noreturn]] inline void __trap() { cuemu::die("__trap()"); }
[[noreturn]] inline void __brkpt() { cuemu::die("__brkpt()"); }

// assert() in a kernel ends here (glibc's assert macro calls __assert_fail; this hidden definition wins inside
// the module), so the message names the block and thread as well as the failed condition.
extern "C" __attribute__((visibility("hidden"))) void __assert_fail(const char* expr, const char* file, unsigned line,
                                                                   const char* function) noexcept {
    static char what[1024];
    snprintf(what, sizeof what, "assertion `%s` failed at %s:%u in %s", expr, file, line, function);
    cuemu::die(what);
}

// Exported once per module for loader.py.
extern "C" __attribute__((visibility("default"))) const char* cuemu_last_error() { return cuemu::g.error; }

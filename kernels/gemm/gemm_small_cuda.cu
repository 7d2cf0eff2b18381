// gemm_small_cuda.cu - C = A x B (+ bias) (+ C) for m <= 16 and a 16-bit B: the
// decode projections, where B (the weight) is read once and the time is B's bytes
// over memory bandwidth.
//
// Layout of the work:
//  - A block is 8 warps over one tile of 256 columns.  Lane l of every warp owns
//    columns [8l, 8l + 8) of the tile and reads them as one 16-byte piece per row
//    of B, so a warp reads 512 contiguous bytes a row (coalesced along n).
//  - The 8 warps split the block's rows of B: a step is U = 4 rows per warp, warp
//    w taking rows [4w, 4w + 4) of each 32.  B travels global -> shared by
//    cp.async into a per-thread ring of S = 2 steps, so 8 loads a thread are in
//    flight without holding registers.  All M rows of A reuse each piece of B:
//    8 x M FMAs per 16 bytes, fp32.
//  - A is staged in shared memory as fp32 ([128 rows of k][M], converted exactly
//    from its dtype), double-buffered: chunk c + 1 is loaded into registers while
//    chunk c is used and stored after it, so one barrier a chunk suffices; the B
//    copies stay in flight across it.  Reads of A are warp-wide broadcasts.
//  - The blocks along y split k, as many splits as keep tiles x splits within one
//    wave of resident blocks (a partial second wave would cost a whole one).  The
//    warps' sums meet in shared memory; with one split the block writes C (bias,
//    accumulate), otherwise its sums go to partials [splits][m][n] in the
//    workspace and a second small kernel, launched as a programmatic dependent on
//    sm_90 so its launch overlaps, adds them in split order (deterministic, no
//    atomics) and writes C.  (Adding them in the tile's last block to finish, with
//    an arrival counter a tile, ran a 7B decode step 0.08 ms slower at m = 1: one
//    block then sums all the splits of its tile alone, at the tail.)
//  - The main kernel is a programmatic dependent of the kernel before it too: its
//    blocks start the weight copies before griddepcontrol.wait and read A after,
//    so a projection's ramp to full bandwidth overlaps the tail of the norm,
//    attention or silu kernel before it (those trigger their dependents early).
//
// The cuts (TMI_GEMM_SMALL_M_DEFAULT = 1 for an fp32 A, _A16 = 1 for a 16-bit A).
// In isolation, from cutest_gemm's CUTEST_BENCH on the H200 (small_m_notes.md):
// Summed over one layer's qkv, o, gate_up and down, in us, two runs:
//                      this kernel      cuBLAS
//   m = 1, A fp32      121.6, 122.3     136.8, 130.3 (A rounded by a kernel first)
//   m = 1, A 16-bit    121.5, 122.0     126.0, 119.8 (its o shape moves 15 - 20 us)
//   m = 4, A fp32      135.3            136.0
//   m = 4, A 16-bit    139.3            123.8
// So this kernel pays at m = 1 with an fp32 A (it reads A as it is: no rounding
// kernel, and exact), is even in isolation with a 16-bit A, and loses from m = 4
// on.  Inside a 7B decode step replayed as a CUDA graph, m = 1 with a 16-bit A
// was 0.21 ms a step faster than cuBLAS (4.23 against 4.44 ms), which set _A16.
// The FMA work grows with m (8M per 16 bytes of B, about B's streaming time at
// m = 16, where the accumulators also leave room for one block per SM), while
// cuBLAS's tensor cores keep m = 16 at m = 1's time: m = 16 runs 3 to 4 times
// slower here.  TMRUN_GEMM_SMALL_M moves the cut for comparisons.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../attention/attention_merge_cuda.h"
#include "../pdl_cuda.h"
#include "../rmsnorm/rmsnorm_cuda.h"
#include "../silu_mul/silu_mul_cuda.h"
#include "../split_sums_cuda.h"
#include "../vec_cuda.h"

extern "C" {
#include "gemm_small.h"
}

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileN = 256;     // columns of a block: 32 lanes x 8
constexpr int kChunk = 128;     // rows of k per staged A chunk
constexpr int kMaxBlocks = 512; // grid cap, which bounds the partials for any n
constexpr int kReduceThreads = 256;

// Blocks an SM must hold (the register cap): more blocks, more copies in flight.
constexpr int min_blocks(int M) { return M <= 4 ? 3 : M <= 8 ? 2 : 1; }

// Where A comes from (gemm.h's a_src), as the fused kernels read it: kind 0, A in
// memory; otherwise the producing op's inputs, and A[i][j] is computed from them as
// that op would have stored it (then rounded to a_dtype, the op's output dtype).
struct a_source {
    int kind; // 0 or a tmi_gemm_a_kind
    // silu: silu(gate[i][j]) * up[i][j], both read through the gate/up GEMM's split sums
    const float *gate, *up; // [m][ldg], [m][ldu] fp32
    int64_t ldg, ldu;
    tmi_split_sums sums;
    // norm: w[j] * (x[i][j] * scale_i), scale_i as rmsnorm's float4 kernel computes it
    const float *x; // [m][ldx] fp32, rows 16-byte aligned
    int64_t ldx, d;
    const void *w; // [d] of w_dtype
    tm_dtype w_dtype;
    float eps;
    int threads, vec; // the float4 kernel's shape for these rows (tmi_rms_vec_plan)
    // merge: row i is sequence i's one decode row
    const tmi_kv_cuda::SeqMeta *meta; // [m]
    const float *acc;                 // [m][n_head][nsplit][head_dim]
    const float2 *ml;                 // [m][n_head][nsplit]
    int nsplit, split_len, window, n_head, head_dim;
};

struct small_params {
    int m, n, k, splits;
    const void *a; // [m][lda], a_dtype
    int64_t lda;
    tm_dtype a_dtype;
    const void *b; // [k][ldb], 16-bit, 16-byte aligned, ldb % 8 == 0
    int64_t ldb;
    const void *bias; // [n] of bias_dtype, or NULL
    tm_dtype bias_dtype;
    float *c; // [m][ldc] fp32
    int64_t ldc;
    int accumulate;
    float *part; // [splits][m][n] fp32 when splits > 1, else NULL
};



// B goes global -> shared by cp.async (sm_80+): the copies hold no registers, so
// a thread keeps S steps of loads in flight whatever M is.  Each thread copies
// exactly the 16-byte pieces it later reads itself, so it needs only its own
// cp.async.wait_group, never a barrier.  src_bytes < 16 zero-fills the rest (the
// columns past n, and rows past the block's k range with src_bytes 0).  Builds
// for older targets (the project's default CUDA architecture may be 75) copy
// through registers instead: right, not fast.
__device__ __forceinline__ void copy16(void *smem, const void *gmem, int src_bytes)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
#else
    uint4 v = make_uint4(0, 0, 0, 0);
    if (src_bytes == 16) {
        v = *static_cast<const uint4 *>(gmem);
    } else {
        unsigned short h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma unroll
        for (int e = 0; e < 8; e++)
            if (2 * e < src_bytes) h[e] = static_cast<const unsigned short *>(gmem)[e];
        v = make_uint4(h[0] | (unsigned)h[1] << 16, h[2] | (unsigned)h[3] << 16, h[4] | (unsigned)h[5] << 16,
                       h[6] | (unsigned)h[7] << 16);
    }
    *static_cast<uint4 *>(smem) = v;
#endif
}
__device__ __forceinline__ void copy_commit()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void copy_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

template <class TB> __device__ __forceinline__ void unpack8(const uint4 &v, float (&f)[8]);

template <> __device__ __forceinline__ void unpack8<__half>(const uint4 &v, float (&f)[8])
{
    const unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2 h = *reinterpret_cast<const __half2 *>(&w[i]);
        float2 t = __half22float2(h);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

template <> __device__ __forceinline__ void unpack8<__nv_bfloat16>(const uint4 &v, float (&f)[8])
{
    const unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

// Starts the copies of rows [row0, row0 + U) of the lane's 8 columns into slot[u]
// (slot[u] is this thread's piece of [U][kThreads] uint4); rows past k1 become zeros.
template <int U>
__device__ __forceinline__ void issue_step(uint4 *slot, const unsigned short *bcol, int64_t ldb, int64_t row0, int64_t k1,
                                  int col_bytes)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int64_t row = row0 + u;
        const bool in = row < k1;
        copy16(slot + u * kThreads, in ? bcol + row * ldb : bcol, in ? col_bytes : 0);
    }
    copy_commit();
}

// acc[r][e] += A[r][row u] * B[row u][e] for the U rows of a step: B from this
// thread's slot, a_rows the step's [U][M] fp32 slice of the staged A chunk.
template <int M, int U, class TB>
__device__ __forceinline__ void fma_step(float (&acc)[M][8], const uint4 *slot, const float *a_rows)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        float bf[8];
        unpack8<TB>(slot[u * kThreads], bf);
        float av[M];
        if constexpr (M % 4 == 0) {
#pragma unroll
            for (int q = 0; q < M / 4; q++) {
                float4 t = reinterpret_cast<const float4 *>(a_rows + u * M)[q];
                av[4 * q] = t.x, av[4 * q + 1] = t.y, av[4 * q + 2] = t.z, av[4 * q + 3] = t.w;
            }
        } else {
#pragma unroll
            for (int r = 0; r < M; r++) av[r] = a_rows[u * M + r];
        }
#pragma unroll
        for (int r = 0; r < M; r++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[r][e] = fmaf(av[r], bf[e], acc[r][e]);
    }
}

// The elements of A's chunk at rows [base, base + kChunk) of k that this thread
// stages: element e = r * kChunk + p (consecutive threads, consecutive k of one
// row of A: coalesced), zero past m, past k1 or past the chunk.
template <int M> constexpr int a_regs() { return (kChunk * M + kThreads - 1) / kThreads; }

// A[r][kk]: read, or (SRC, a tmi_gemm_a_kind) computed from the producing op's
// inputs by that op's own device functions, so the value is the bits it would store.
// rs: row r's rmsnorm scale (SRC == TMI_GEMM_A_RMSNORM).
template <int SRC>
__device__ __forceinline__ float a_value(const small_params &p, const a_source &s, int r, int64_t kk, float rs)
{
    if constexpr (SRC == TMI_GEMM_A_SILU_MUL) {
        const float *const at[2] = {s.gate + r * s.ldg + kk, s.up + r * s.ldu + kk};
        float gu[2];
        tmi_sums_read_n<2>(s.sums, at, r, gu);
        return tmi_round_to(p.a_dtype, tmi_silu_times(gu[0], gu[1]));
    } else if constexpr (SRC == TMI_GEMM_A_RMSNORM) {
        return tmi_round_to(p.a_dtype, tmi_load_any(s.w, s.w_dtype, kk) * (s.x[r * s.ldx + kk] * rs));
    } else if constexpr (SRC == TMI_GEMM_A_ATTN_MERGE) {
        const int32_t ns = tmi_attn_seq_splits(s.meta[r], s.window, s.split_len);
        if (ns <= 1) return tmi_load_any(p.a, p.a_dtype, r * p.lda + kk); // its one split wrote out
        const int32_t d = s.head_dim, h = (int32_t)(kk / d), i = (int32_t)(kk - (int64_t)h * d);
        const int64_t ps0 = ((int64_t)r * s.n_head + h) * s.nsplit;
        return tmi_round_to(p.a_dtype, tmi_attn_merge_elem(s.acc + ps0 * d, s.ml + ps0, ns, d, i));
    } else {
        return tmi_load_any(p.a, p.a_dtype, r * p.lda + kk);
    }
}

template <int M, int SRC>
__device__ __forceinline__ void load_a(float (&ar)[a_regs<M>()], const small_params &p, const a_source &src,
                                       int64_t base, int64_t k1, float rs)
{
#pragma unroll
    for (int i = 0; i < a_regs<M>(); i++) {
        const int e = threadIdx.x + i * kThreads, r = e / kChunk, pp = e % kChunk;
        const int64_t kk = base + pp;
        ar[i] = e < kChunk * M && r < p.m && kk < k1 ? a_value<SRC>(p, src, r, kk, rs) : 0.0f;
    }
}

template <int M> __device__ __forceinline__ void store_a(float *as /* [kChunk][M] */, const float (&ar)[a_regs<M>()])
{
#pragma unroll
    for (int i = 0; i < a_regs<M>(); i++) {
        const int e = threadIdx.x + i * kThreads;
        if (e < kChunk * M) as[(e % kChunk) * M + e / kChunk] = ar[i];
    }
}

// C[i][j] (op)= sum (+ bias[j]), in the CPU twin's order: (sum + bias) + old C.
__device__ __forceinline__ void write_c(const small_params &p, int i, int64_t j, float sum)
{
    if (p.bias) sum += tmi_load_any(p.bias, p.bias_dtype, j);
    float *c = p.c + i * p.ldc + j;
    *c = p.accumulate ? *c + sum : sum;
}

// Grid (tiles of 256 columns, splits of k); see the file comment.  A step is U rows
// of B per warp; S steps are in flight per thread (the cp.async ring).
template <int M, int U, int S, class TB, int SRC>
__global__ void __launch_bounds__(kThreads, min_blocks(M)) small_m_kernel(small_params p, a_source src)
{
    static_assert(SRC == 0 || M == 1, "A is computed from its producer at m = 1 only");
    constexpr int kSteps = kChunk / (kWarps * U); // steps per warp per A chunk
    static_assert(kSteps % S == 0, "a ring slot must be a compile-time index");
    constexpr int kRingU4 = S * U * kThreads, kRedU4 = kWarps * kTileN / 4;
    __shared__ uint4 ring[kRingU4 > kRedU4 ? kRingU4 : kRedU4]; // [S][U][kThreads] B pieces; then the sums
    __shared__ __align__(16) float as[2][kChunk * M];            // A chunks, [kChunk][M] fp32 each
    tmi_pdl_trigger(); // the reduce may launch now; it waits for us to finish
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, split = blockIdx.y;
    const int64_t col = (int64_t)blockIdx.x * kTileN + lane * 8;
    const int64_t k0 = (int64_t)p.k * split / p.splits, k1 = (int64_t)p.k * (split + 1) / p.splits;
    const int nchunks = (int)((k1 - k0 + kChunk - 1) / kChunk);
    const int64_t ncols = p.n - col < 8 ? p.n - col : 8;
    const int col_bytes = ncols > 0 ? (int)ncols * 2 : 0;
    const unsigned short *bcol = static_cast<const unsigned short *>(p.b) + (ncols > 0 ? col : 0);
    uint4 *mine = ring + threadIdx.x;

    float acc[M][8];
#pragma unroll
    for (int r = 0; r < M; r++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[r][e] = 0.0f;

    // steps are numbered i = 0, 1, ... over the block's rows: rows k0 + (i * 8 + warp) * U + u
#pragma unroll
    for (int i = 0; i < S; i++) issue_step<U>(mine + i * U * kThreads, bcol, p.ldb, k0 + (i * kWarps + warp) * U, k1, col_bytes);
    // launched as a programmatic dependent (sm_90): B is the weights, so its first
    // steps stream in while the kernel before (which wrote A, and C when
    // accumulating) finishes; this waits for that kernel, a no-op otherwise
    tmi_pdl_wait();
    float rs = 0.0f; // the one row's rmsnorm scale, from the whole row (every block computes it)
    if constexpr (SRC == TMI_GEMM_A_RMSNORM) {
        __shared__ float norm_part[33];
        rs = tmi_rms_scale_as(src.x, src.d, src.eps, src.threads, src.vec, norm_part);
    }
    float ar[a_regs<M>()];
    load_a<M, SRC>(ar, p, src, k0, k1, rs);
    store_a<M>(as[0], ar);
    __syncthreads();
    for (int c = 0; c < nchunks; c++) {
        const int64_t base = k0 + (int64_t)c * kChunk;
        if (c + 1 < nchunks) load_a<M, SRC>(ar, p, src, base + kChunk, k1, rs);
        const float *ab = as[c & 1];
#pragma unroll
        for (int s = 0; s < kSteps; s++) {
            const int64_t row0 = base + (s * kWarps + warp) * U;
            uint4 *slot = mine + (s % S) * U * kThreads;
            copy_wait<S - 1>(); // this step's group is in
            if (row0 < k1) fma_step<M, U, TB>(acc, slot, ab + (s * kWarps + warp) * U * M);
            // the slot is read (the FMAs used it): refill it S steps ahead
            issue_step<U>(slot, bcol, p.ldb, row0 + S * kWarps * U, k1, col_bytes);
        }
        if (c + 1 < nchunks) store_a<M>(as[(c + 1) & 1], ar);
        __syncthreads();
    }
    copy_wait<0>(); // the zero-fill copies past k1 still write the ring, which the sums reuse
    __syncthreads();

    // the 8 warps' sums, one row of C at a time: thread t ends with column t of the tile
    float(*red)[kTileN] = reinterpret_cast<float(*)[kTileN]>(ring);
    const int64_t j = (int64_t)blockIdx.x * kTileN + threadIdx.x;
#pragma unroll
    for (int r = 0; r < M; r++) {
        if (r >= p.m) break;
        float4 *dst = reinterpret_cast<float4 *>(&red[warp][lane * 8]);
        dst[0] = make_float4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
        dst[1] = make_float4(acc[r][4], acc[r][5], acc[r][6], acc[r][7]);
        __syncthreads();
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; w++) sum += red[w][threadIdx.x];
        if (j < p.n) {
            if (p.part) p.part[((int64_t)split * p.m + r) * p.n + j] = sum;
            else write_c(p, r, j, sum);
        }
        __syncthreads();
    }
}

// C[i][j] (op)= sum over splits of part[s][i][j], in split order.  Launched as a
// programmatic dependent of the main kernel on sm_90, so its launch overlaps that
// kernel; griddepcontrol.wait returns once the main kernel is done and visible.
__global__ void small_m_reduce(small_params p)
{
    tmi_pdl_wait();
    const int64_t total = (int64_t)p.m * p.n, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int i = (int)(idx / p.n);
        const int64_t j = idx - (int64_t)i * p.n;
        float sum = 0.0f;
        for (int s = 0; s < p.splits; s++) sum += p.part[((int64_t)s * p.m + i) * p.n + j];
        write_c(p, i, j, sum);
    }
}

// The rows of A the kernel is compiled for: the smallest of 1, 2, 4, 8, 16 >= m.
int rows_for(int m) { return m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 8 ? 8 : 16; }

typedef void (*small_kernel)(small_params, a_source);

// The kernel for M rows.  Steps of U = 4 rows, S = 2 in flight (8 rows of 16 bytes
// a thread) measured faster at m = 1 than U = 2, S = 4, the same ring (run 2 in
// small_m_notes.md).
template <class TB> small_kernel kernel_for(int M)
{
    switch (M) {
    case 1: return small_m_kernel<1, 4, 2, TB, 0>;
    case 2: return small_m_kernel<2, 4, 2, TB, 0>;
    case 4: return small_m_kernel<4, 4, 2, TB, 0>;
    case 8: return small_m_kernel<8, 4, 2, TB, 0>;
    default: return small_m_kernel<16, 4, 2, TB, 0>;
    }
}

// The m = 1 kernel that computes A from its producer (kind, a tmi_gemm_a_kind).
template <class TB> small_kernel fused_kernel_for(int kind)
{
    switch (kind) {
    case TMI_GEMM_A_SILU_MUL: return small_m_kernel<1, 4, 2, TB, TMI_GEMM_A_SILU_MUL>;
    case TMI_GEMM_A_RMSNORM: return small_m_kernel<1, 4, 2, TB, TMI_GEMM_A_RMSNORM>;
    default: return small_m_kernel<1, 4, 2, TB, TMI_GEMM_A_ATTN_MERGE>;
    }
}

// Splits of k: as many as keep tiles x splits within one wave of resident blocks,
// at most kMaxBlocks blocks in all and at least kChunk rows of k a split.
tm_status choose_splits(small_kernel kern, int tiles, int k, int *splits)
{
    int dev = 0, sms = 0, per_sm = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, kThreads, 0);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: small-m occupancy: %s", cudaGetErrorString(e));
    int s = sms * (per_sm > 0 ? per_sm : 1) / tiles;
    int cap = kMaxBlocks / tiles, by_k = k / kChunk;
    if (s > cap) s = cap;
    if (s > by_k) s = by_k;
    *splits = s < 1 ? 1 : s;
    return TM_OK;
}

} // namespace

extern "C" int tmi_gemm_small_fits(const tmi_gemm_args *a)
{
    return (a->b_dtype == TM_F16 || a->b_dtype == TM_BF16) && a->m >= 1 && a->m <= TMI_GEMM_SMALL_M_LIMIT &&
           a->k >= 1 && a->n >= 1 && ((uintptr_t)a->b & 15u) == 0 && a->ldb % 8 == 0;
}

extern "C" size_t tmi_gemm_small_workspace(int64_t m)
{
    if (m <= 0) return 0;
    if (m > TMI_GEMM_SMALL_M_LIMIT) m = TMI_GEMM_SMALL_M_LIMIT; /* larger m never takes this path */
    return (size_t)m * kMaxBlocks * kTileN * sizeof(float);
}

namespace {

// The end of [p, p + bytes) as an offset into ex's workspace when it lies there, else 0.
size_t end_in_workspace(const tmi_exec *ex, const void *p, size_t bytes)
{
    const char *w = static_cast<const char *>(ex->workspace), *q = static_cast<const char *>(p);
    if (!w || !q || q < w || q >= w + ex->workspace_bytes) return 0;
    return (size_t)(q - w) + bytes;
}

size_t up256(size_t n) { return (n + 255) / 256 * 256; }

// a's A source as the m = 1 kernel computes it (src->kind 0 when it cannot: A is then
// the producer's to write first), and the workspace bytes its inputs occupy, which
// the partials must not overwrite while blocks still read them.
void source_of(const tmi_exec *ex, const tmi_gemm_args *a, a_source *src, size_t *live)
{
    *src = a_source{};
    *live = 0;
    const tmi_gemm_a_src *as = a->a_src;
    if (a->m != 1 || !tmi_gemm_a_src_active(as)) return;
    if (as->kind == TMI_GEMM_A_SILU_MUL) {
        const tmi_silu_mul_args *f = as->silu;
        src->gate = f->gate, src->up = f->up, src->ldg = f->ldg, src->ldu = f->ldu;
        src->sums = tmi_sums_value(f->sums);
        if (src->sums.splits > 0)
            *live = end_in_workspace(ex, src->sums.part, (size_t)src->sums.splits * src->sums.m * src->sums.n * 4);
    } else if (as->kind == TMI_GEMM_A_RMSNORM) {
        const tmi_rmsnorm_args *f = as->norm;
        src->vec = tmi_rms_vec_plan(f->d, f->ldx, f->ldo, f->x, f->out, &src->threads);
        if (!src->vec) return; // rmsnorm's scalar kernel sums in another order
        src->x = f->x, src->ldx = f->ldx, src->d = f->d, src->w = f->weight, src->w_dtype = f->w_dtype;
        src->eps = f->eps;
    } else {
        const tmi_attn_merge *f = as->merge;
        src->meta = reinterpret_cast<const tmi_kv_cuda::SeqMeta *>(f->meta);
        src->acc = f->part_acc, src->ml = reinterpret_cast<const float2 *>(f->part_ml);
        src->nsplit = f->nsplit, src->split_len = f->split_len, src->window = f->window;
        src->n_head = f->n_head, src->head_dim = f->head_dim;
        const size_t states = (size_t)f->n_seq * f->n_head * f->nsplit;
        size_t e1 = end_in_workspace(ex, f->part_acc, states * f->head_dim * 4);
        size_t e2 = end_in_workspace(ex, f->part_ml, states * 8), e3 = end_in_workspace(ex, f->meta, (size_t)f->n_seq * 16);
        *live = e1 > e2 ? e1 : e2;
        if (e3 > *live) *live = e3;
    }
    src->kind = as->kind;
}

// What one call launches.
struct small_plan {
    small_kernel kern;
    int tiles;
    small_params p;
    a_source src; // kind 0: A in memory
};

tm_status plan_of(const tmi_exec *ex, const tmi_gemm_args *a, small_plan *pl)
{
    const int M = rows_for((int)a->m);
    pl->tiles = (int)((a->n + kTileN - 1) / kTileN);
    size_t live = 0;
    a_source src;
    source_of(ex, a, &src, &live);
    const bool f16 = a->b_dtype == TM_F16;
    for (int attempt = 0; attempt < 2; attempt++) { // the fused kernel, unless its partials find no room
        pl->kern = src.kind ? (f16 ? fused_kernel_for<__half>(src.kind) : fused_kernel_for<__nv_bfloat16>(src.kind))
                            : (f16 ? kernel_for<__half>(M) : kernel_for<__nv_bfloat16>(M));
        int splits = 1;
        tm_status st = choose_splits(pl->kern, pl->tiles, (int)a->k, &splits);
        if (st != TM_OK) return st;
        pl->p = small_params{(int)a->m, (int)a->n, (int)a->k, splits, a->a, a->lda, a->a_dtype, a->b, a->ldb,
                             a->bias, a->bias_dtype, a->c, a->ldc, a->accumulate, NULL};
        pl->src = src;
        if (splits == 1) return TM_OK;
        const size_t off = up256(live), need = (size_t)splits * (size_t)a->m * (size_t)a->n * sizeof(float);
        if (ex->workspace && ex->workspace_bytes >= off + need) {
            pl->p.part = reinterpret_cast<float *>(static_cast<char *>(ex->workspace) + off);
            return TM_OK;
        }
        if (!src.kind)
            return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: workspace must hold %zu bytes of partial sums for m %lld, "
                            "n %lld (tmi_gemm_cuda_workspace), got %zu", need, (long long)a->m, (long long)a->n,
                            ex->workspace ? ex->workspace_bytes : (size_t)0);
        src = a_source{}, live = 0;
    }
    return TM_OK; // not reached: the second attempt has no source
}

} // namespace

extern "C" int tmi_gemm_small_fuses(const tmi_exec *ex, const tmi_gemm_args *a)
{
    small_plan pl;
    return plan_of(ex, a, &pl) == TM_OK && pl.src.kind != 0;
}

extern "C" tm_status tmi_gemm_small_run(const tmi_exec *ex, const tmi_gemm_args *a)
{
    small_plan pl;
    tm_status st = plan_of(ex, a, &pl);
    if (st != TM_OK) return st;
    // a source the kernel does not compute itself: its op writes A, which the kernel reads
    if (tmi_gemm_a_src_active(a->a_src) && !pl.src.kind && (st = tmi_gemm_run_a_src(ex, a->a_src)) != TM_OK)
        return st;
    const small_params &p = pl.p;
    const int splits = p.splits;
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    cudaError_t e = tmi_launch_pdl(pl.kern, dim3((unsigned)pl.tiles, (unsigned)splits), kThreads, 0, stream, p, pl.src);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: small-m launch failed: %s", cudaGetErrorString(e));
    if (splits > 1 && a->defer) { // the op after it adds them up (gemm.h)
        *a->defer = tmi_split_sums{splits, p.part, a->m, a->n, a->c, a->ldc, a->bias, a->bias_dtype, a->accumulate};
        return TM_OK;
    }
    if (splits > 1) {
        int64_t total = a->m * a->n, blocks = (total + kReduceThreads - 1) / kReduceThreads;
        if ((e = tmi_launch_pdl(small_m_reduce, dim3((unsigned)(blocks < 4096 ? blocks : 4096)), kReduceThreads, 0,
                                stream, p)) != cudaSuccess)
            return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: small-m reduce launch failed: %s", cudaGetErrorString(e));
    }
    return TM_OK;
}

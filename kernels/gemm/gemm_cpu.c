/* gemm_cpu.c - C = A x B (+ bias) (+ C), fp32 accumulation, on the CPU.
 *
 * Two paths (AVX2 + FMA + F16C):
 *  - blocked, for m > GEMV_MAX_M (prefill): per K block, a KC x NC block of B is
 *    converted to fp32 and packed into 16-column panels, and the task's rows of A
 *    into 6-row strips, both in the thread's workspace; a 6x16 register tile of C
 *    is then computed by broadcast-A x panel-B FMAs.  A panel (KC x 16 fp32 =
 *    16 KiB) stays in L1 while every strip passes over it; the strips stay in L2.
 *    The next K block's rows of B are prefetched a few per tile, so the DRAM
 *    latency of packing overlaps the FMAs (without it, packing took a third of
 *    the time at m = 64).
 *  - GEMV, for m <= GEMV_MAX_M (decode): packing B would cost as much as the
 *    maths, so B rows are streamed directly, converted on the fly, into sums
 *    kept in L1.
 * Both thread over tasks of C (blocks of columns, and of rows when m is large).
 * Without AVX2 a plain scalar loop does the same work.
 *
 * A is fp32 or of B's 16-bit dtype, converted exactly to fp32 where it is read
 * (the A pack, the GEMV broadcasts); an fp32 A takes the same instructions as
 * before 16-bit A existed, so its results are bit for bit those.
 *
 * tmi_gemm_cpu_workspace() never decreases when m, n, k or threads grow, so a
 * workspace sized for the largest product serves every smaller one. */
#include "gemm.h"

#include "../../runtime/threadpool.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

enum {
    GEMM_MR = 6,       /* rows of the register tile */
    GEMM_NR = 16,      /* columns of the register tile = one packed panel */
    GEMM_KC = 256,     /* K block: a 16-column panel is KC*16*4 = 16 KiB */
    GEMM_NC = 256,     /* most columns a task packs at once: KC*NC*4 = 256 KiB */
    GEMM_MC = 144,     /* most rows a task covers: MC*KC*4 = 144 KiB of A */
    GEMV_MAX_M = 8,    /* at or below this m, skip packing (measured crossover ~12) */
    GEMV_GROUP = 4,    /* rows a GEMV pass shares each B load between */
    GEMV_TASK_COLS = 256,  /* a GEMV task's columns; its sums take 4 KiB of stack */
    SCALAR_TASK_COLS = 256,
    WS_ALIGN = 64
};

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
/* bytes of a B element: F32 or one of the 16-bit kinds (checked before use) */
static inline int64_t elt_size(tm_dtype d) { return d == TM_F32 ? 4 : 2; }

/* C[i][j] for k == 0: only the bias (and the old C) remain. */
static void gemm_k0(const tmi_gemm_args *g)
{
    for (int64_t i = 0; i < g->m; i++) {
        float *c = g->c + i * g->ldc;
        for (int64_t j = 0; j < g->n; j++) {
            float v = g->bias ? tmi_load_f32(g->bias, g->bias_dtype, j) : 0.0f;
            c[j] = g->accumulate ? c[j] + v : v;
        }
    }
}

#ifdef __AVX2__

#define TMI_INLINE static inline __attribute__((always_inline))

/* 8 consecutive elements of a F32/F16/BF16 vector starting at index i, as fp32. */
TMI_INLINE __m256 load8(const void *p, tm_dtype dtype, int64_t i)
{
    if (dtype == TM_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    if (dtype == TM_BF16) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    return _mm256_loadu_ps((const float *)p + i);
}

/* Element i of a F32/F16/BF16 vector, as fp32, through F16C rather than the
 * portable bit twiddling (both exact). */
TMI_INLINE float load1(const void *p, tm_dtype dtype, int64_t i)
{
    if (dtype == TM_F16) return _cvtsh_ss(((const uint16_t *)p)[i]);
    if (dtype == TM_BF16) return tmi_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* ---- blocked path --------------------------------------------------------------- */

typedef struct gemm_plan {
    const tmi_gemm_args *g;
    int64_t mc, nc;             /* rows and columns of a task (last ones shorter) */
    int64_t m_blocks, n_blocks;
    char *ws;                   /* 64-byte aligned */
    size_t ws_per_thread;       /* bytes, a multiple of 64 */
    int64_t a_off, bias_off;    /* floats from a thread's B pack to its A pack, bias */
} gemm_plan;

/* A thread's packing space, in floats: B block [KC][NC], A block [MC][KC], bias [NC]
 * (each bounded by the shape, so small products need little). */
static void gemm_thread_floats(int64_t m, int64_t n, int64_t k, int64_t *b_fl, int64_t *a_fl, int64_t *bias_fl)
{
    int64_t kc = min64(k, GEMM_KC), nc = min64(round_up(n, GEMM_NR), GEMM_NC);
    int64_t mc = min64(round_up(m, GEMM_MR), GEMM_MC);
    *b_fl = round_up(kc * nc, 16);
    *a_fl = round_up(mc * kc, 16);
    *bias_fl = nc;
}

static size_t gemm_thread_bytes(int64_t m, int64_t n, int64_t k)
{
    int64_t b_fl, a_fl, bias_fl;
    gemm_thread_floats(m, n, k, &b_fl, &a_fl, &bias_fl);
    return (size_t)round_up((b_fl + a_fl + bias_fl) * (int64_t)sizeof(float), WS_ALIGN);
}

/* Packs B[k0 .. k0+kc)[j0 .. j0+nc) as fp32 panels bp[nc/16][kc][16]; the last
 * panel is zero-padded to 16 columns.  Row-major reads keep B streaming. */
static void pack_b(const tmi_gemm_args *g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *bp)
{
    int64_t es = elt_size(g->b_dtype);
    for (int64_t p = 0; p < kc; p++) {
        const char *row = (const char *)g->b + ((k0 + p) * g->ldb + j0) * es;
        for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
            float *dst = bp + (jr / GEMM_NR) * kc * GEMM_NR + p * GEMM_NR;
            int64_t nr = min64(GEMM_NR, nc - jr);
            if (nr == GEMM_NR) {
                _mm256_store_ps(dst, load8(row, g->b_dtype, jr));
                _mm256_store_ps(dst + 8, load8(row, g->b_dtype, jr + 8));
            } else {
                for (int64_t j = 0; j < GEMM_NR; j++) dst[j] = j < nr ? tmi_load_f32(row, g->b_dtype, jr + j) : 0.0f;
            }
        }
    }
}

/* Packs A[i0 .. i1)[k0 .. k0+kc) as fp32 strips ap[ceil(rows/6)][kc][6], zero-padded.
 * Unpacked, the 6 rows of a strip sit lda apart; with lda a multiple of 4 KiB they
 * all fall into one cache set and evict each other. */
static void pack_a(const tmi_gemm_args *g, int64_t i0, int64_t i1, int64_t k0, int64_t kc, float *ap)
{
    for (int64_t i = i0; i < i1; i += GEMM_MR) {
        int64_t mr = min64(GEMM_MR, i1 - i);
        float *dst = ap + ((i - i0) / GEMM_MR) * kc * GEMM_MR;
        for (int64_t r = 0; r < GEMM_MR; r++) {
            int64_t row = (i + r) * g->lda + k0; /* element index of A[i + r][k0] */
            if (r >= mr)
                for (int64_t p = 0; p < kc; p++) dst[p * GEMM_MR + r] = 0.0f;
            else if (g->a_dtype == TM_F32)
                for (int64_t p = 0; p < kc; p++) dst[p * GEMM_MR + r] = ((const float *)g->a)[row + p];
            else
                for (int64_t p = 0; p < kc; p++) dst[p * GEMM_MR + r] = load1(g->a, g->a_dtype, row + p);
        }
    }
}

/* Stores one row of a tile: c = acc (+ bias) (+ old c), the first nr columns. */
TMI_INLINE void tile_store_row(__m256 v0, __m256 v1, float *c, int64_t nr, int load_c, const float *bias)
{
    if (bias) {
        v0 = _mm256_add_ps(v0, _mm256_load_ps(bias));
        v1 = _mm256_add_ps(v1, _mm256_load_ps(bias + 8));
    }
    if (nr == GEMM_NR) {
        if (load_c) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + 8));
        }
        _mm256_storeu_ps(c, v0);
        _mm256_storeu_ps(c + 8, v1);
        return;
    }
    float t[GEMM_NR];
    _mm256_storeu_ps(t, v0);
    _mm256_storeu_ps(t + 8, v1);
    for (int64_t j = 0; j < nr; j++) c[j] = load_c ? c[j] + t[j] : t[j];
}

/* The register tile: C[mr][nr] (op)= strip[kc][6] x panel[kc][16], 12 accumulators.
 * Padded rows of the strip are zero, so all 6 rows are computed and mr only
 * limits the stores. */
static void micro_tile(int64_t mr, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int64_t nr,
                       int load_c, const float *bias)
{
    __m256 acc[GEMM_MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < GEMM_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp + p * GEMM_NR);
        __m256 b1 = _mm256_load_ps(bp + p * GEMM_NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < GEMM_MR; r++) {
            __m256 av = _mm256_broadcast_ss(ap + p * GEMM_MR + r);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < GEMM_MR; r++)
        if (r < mr) tile_store_row(acc[r][0], acc[r][1], c + r * ldc, nr, load_c, bias);
}

/* Pulls rows [p0, p1) x columns [j0, j0+nc) of B towards L2.  Spread over the
 * compute of one K block, it hides the DRAM latency of packing the next. */
static void prefetch_b(const tmi_gemm_args *g, int64_t p0, int64_t p1, int64_t j0, int64_t nc)
{
    int64_t es = elt_size(g->b_dtype);
    for (int64_t p = p0; p < p1; p++) {
        const char *row = (const char *)g->b + (p * g->ldb + j0) * es;
        for (int64_t off = 0; off < nc * es; off += 64) _mm_prefetch(row + off, _MM_HINT_T1);
    }
}

/* Task (row block, column block): every K block is packed, then the tiles pass. */
static void gemm_block_task(void *ctx, int64_t idx, int thread)
{
    const gemm_plan *pl = ctx;
    const tmi_gemm_args *g = pl->g;
    int64_t i0 = (idx % pl->m_blocks) * pl->mc, i1 = min64(g->m, i0 + pl->mc);
    int64_t j0 = (idx / pl->m_blocks) * pl->nc, nc = min64(g->n - j0, pl->nc);
    float *bp = (float *)(pl->ws + (size_t)thread * pl->ws_per_thread); /* [nc/16][kc][16] fp32 */
    float *ap = bp + pl->a_off;                                         /* [mc/6][kc][6] fp32 */
    float *bias = NULL;                                                 /* [round16(nc)] fp32 */
    if (g->bias) {
        bias = bp + pl->bias_off;
        for (int64_t j = 0; j < round_up(nc, GEMM_NR); j++)
            bias[j] = j < nc ? tmi_load_f32(g->bias, g->bias_dtype, j0 + j) : 0.0f;
    }
    for (int64_t k0 = 0; k0 < g->k; k0 += GEMM_KC) {
        int64_t kc = min64(GEMM_KC, g->k - k0);
        int first = k0 == 0;
        pack_b(g, k0, kc, j0, nc, bp);
        pack_a(g, i0, i1, k0, kc, ap);
        /* the next block's rows, a few per tile, so the misses overlap the FMAs */
        int64_t next = min64(GEMM_KC, g->k - k0 - kc);
        int64_t n_tiles = ceil_div(nc, GEMM_NR) * ceil_div(i1 - i0, GEMM_MR), tile = 0;
        for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
            const float *panel = bp + (jr / GEMM_NR) * kc * GEMM_NR;
            for (int64_t i = i0; i < i1; i += GEMM_MR, tile++) {
                prefetch_b(g, k0 + kc + next * tile / n_tiles, k0 + kc + next * (tile + 1) / n_tiles, j0, nc);
                micro_tile(min64(GEMM_MR, i1 - i), kc, ap + ((i - i0) / GEMM_MR) * kc * GEMM_MR, panel,
                           g->c + i * g->ldc + j0 + jr, g->ldc, min64(GEMM_NR, nc - jr), !first || g->accumulate,
                           first && bias ? bias + jr : NULL);
            }
        }
    }
}

static void gemm_blocked(const tmi_exec *ex, const tmi_gemm_args *g)
{
    int threads = tmi_pool_threads(ex->pool);
    gemm_plan pl = {.g = g, .ws_per_thread = gemm_thread_bytes(g->m, g->n, g->k)};
    int64_t b_fl, a_fl, bias_fl;
    gemm_thread_floats(g->m, g->n, g->k, &b_fl, &a_fl, &bias_fl);
    pl.a_off = b_fl;
    pl.bias_off = b_fl + a_fl;
    pl.ws = (char *)(((uintptr_t)ex->workspace + WS_ALIGN - 1) & ~(uintptr_t)(WS_ALIGN - 1));
    pl.n_blocks = ceil_div(g->n, GEMM_NC);
    pl.nc = round_up(ceil_div(g->n, pl.n_blocks), GEMM_NR); /* even blocks, <= GEMM_NC */
    pl.n_blocks = ceil_div(g->n, pl.nc);
    pl.mc = min64(round_up(g->m, GEMM_MR), GEMM_MC);
    /* Too few column blocks to feed every thread: cut the rows finer. */
    if (pl.n_blocks * ceil_div(g->m, pl.mc) < 2 * threads) {
        int64_t want = ceil_div(2 * threads, pl.n_blocks);
        pl.mc = round_up(ceil_div(g->m, want), GEMM_MR);
        if (pl.mc < 4 * GEMM_MR) pl.mc = min64(round_up(g->m, GEMM_MR), 4 * GEMM_MR);
    }
    pl.m_blocks = ceil_div(g->m, pl.mc);
    tmi_pool_run(ex->pool, gemm_block_task, &pl, pl.m_blocks * pl.n_blocks);
}

/* ---- GEMV path --------------------------------------------------------------------- */

/* acc[r][0 .. 8*nv) += sum over p in [p0, p1) of a[r][p] * B[p][j0 .. j0+8*nv), for
 * MR rows, KU rows of B at a time: B streams row by row (each row a contiguous run,
 * so pages and prefetchers are kept happy) and the sums live in L1. */
TMI_INLINE void gemv_rows(const tm_dtype dt, const tm_dtype adt, const int MR, const int KU, const tmi_gemm_args *g,
                          int64_t i0, int64_t j0, int64_t nv, int64_t p0, int64_t p1, float (*acc)[GEMV_TASK_COLS])
{
    int64_t es = elt_size(dt);
    for (int64_t p = p0; p + KU <= p1; p += KU) {
        __m256 av[4][8];
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
            for (int u = 0; u < KU; u++) {
                int64_t idx = (i0 + r) * g->lda + p + u;
                av[r][u] = adt == TM_F32 ? _mm256_broadcast_ss((const float *)g->a + idx)
                                         : _mm256_set1_ps(load1(g->a, adt, idx));
            }
        const char *row = (const char *)g->b + (p * g->ldb + j0) * es;
        for (int64_t v = 0; v < nv; v++) {
            __m256 b[8];
#pragma GCC unroll 8
            for (int u = 0; u < KU; u++) b[u] = load8(row + u * g->ldb * es, dt, 8 * v);
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                __m256 s = _mm256_load_ps(acc[r] + 8 * v);
#pragma GCC unroll 8
                for (int u = 0; u < KU; u++) s = _mm256_fmadd_ps(av[r][u], b[u], s);
                _mm256_store_ps(acc[r] + 8 * v, s);
            }
        }
    }
}

/* All k for MR rows: KU = 8 / MR at a time (broadcasts stay in registers), then one. */
TMI_INLINE void gemv_group(const tm_dtype dt, const tm_dtype adt, const int MR, const tmi_gemm_args *g, int64_t i0,
                           int64_t j0, int64_t nv, float (*acc)[GEMV_TASK_COLS])
{
    const int KU = MR == 1 ? 8 : MR == 2 ? 4 : 2;
    int64_t kmain = g->k / KU * KU;
    gemv_rows(dt, adt, MR, KU, g, i0, j0, nv, 0, kmain, acc);
    gemv_rows(dt, adt, MR, 1, g, i0, j0, nv, kmain, g->k, acc);
}

TMI_INLINE void gemv_dtype(const tm_dtype dt, const tm_dtype adt, const tmi_gemm_args *g, int64_t i0, int64_t mr,
                           int64_t j0, int64_t nv, float (*acc)[GEMV_TASK_COLS])
{
    switch (mr) {
    case 4: gemv_group(dt, adt, 4, g, i0, j0, nv, acc); break;
    case 3: gemv_group(dt, adt, 3, g, i0, j0, nv, acc); break;
    case 2: gemv_group(dt, adt, 2, g, i0, j0, nv, acc); break;
    default: gemv_group(dt, adt, 1, g, i0, j0, nv, acc); break;
    }
}

/* The (B, A) dtype pairs gemm_check allows, each compiled on its own. */
static void gemv_pass(const tmi_gemm_args *g, int64_t i0, int64_t mr, int64_t j0, int64_t nv,
                      float (*acc)[GEMV_TASK_COLS])
{
    int a16 = g->a_dtype != TM_F32;
    switch (g->b_dtype) {
    case TM_F16:
        if (a16) gemv_dtype(TM_F16, TM_F16, g, i0, mr, j0, nv, acc);
        else gemv_dtype(TM_F16, TM_F32, g, i0, mr, j0, nv, acc);
        break;
    case TM_BF16:
        if (a16) gemv_dtype(TM_BF16, TM_BF16, g, i0, mr, j0, nv, acc);
        else gemv_dtype(TM_BF16, TM_F32, g, i0, mr, j0, nv, acc);
        break;
    default: gemv_dtype(TM_F32, TM_F32, g, i0, mr, j0, nv, acc); break;
    }
}

/* Task: columns [j0, j0 + GEMV_TASK_COLS) of every row. */
static void gemv_task(void *ctx, int64_t idx, int thread)
{
    const tmi_gemm_args *g = ctx;
    int64_t j0 = idx * GEMV_TASK_COLS, j1 = min64(g->n, j0 + GEMV_TASK_COLS);
    int64_t nv = (j1 - j0) / 8, jv = j0 + 8 * nv;
    float acc[GEMV_GROUP][GEMV_TASK_COLS] __attribute__((aligned(32))); /* fp32 sums of the rows */
    for (int64_t i0 = 0; i0 < g->m && nv > 0; i0 += GEMV_GROUP) {
        int64_t mr = min64(GEMV_GROUP, g->m - i0);
        memset(acc, 0, sizeof acc);
        gemv_pass(g, i0, mr, j0, nv, acc);
        for (int64_t r = 0; r < mr; r++) {
            float *c = g->c + (i0 + r) * g->ldc;
            for (int64_t j = j0; j < jv; j++) {
                float s = acc[r][j - j0] + (g->bias ? tmi_load_f32(g->bias, g->bias_dtype, j) : 0.0f);
                c[j] = g->accumulate ? c[j] + s : s;
            }
        }
    }
    /* fewer than 8 columns left (last task only): one dot product each */
    for (int64_t i = 0; i < g->m; i++) {
        float *c = g->c + i * g->ldc;
        for (int64_t j = jv; j < j1; j++) {
            float s = 0.0f;
            for (int64_t p = 0; p < g->k; p++)
                s += load1(g->a, g->a_dtype, i * g->lda + p) * tmi_load_f32(g->b, g->b_dtype, p * g->ldb + j);
            if (g->bias) s += tmi_load_f32(g->bias, g->bias_dtype, j);
            c[j] = g->accumulate ? c[j] + s : s;
        }
    }
}

#else /* !__AVX2__ : portable scalar path */

/* Task (row i, block of columns): C[i][j0..j1) in place, k outermost so B rows stream. */
static void gemm_scalar_task(void *ctx, int64_t idx, int thread)
{
    const tmi_gemm_args *g = ctx;
    int64_t n_blocks = ceil_div(g->n, SCALAR_TASK_COLS);
    int64_t i = idx / n_blocks, j0 = (idx % n_blocks) * SCALAR_TASK_COLS, j1 = min64(g->n, j0 + SCALAR_TASK_COLS);
    float acc[SCALAR_TASK_COLS];
    for (int64_t j = j0; j < j1; j++) acc[j - j0] = 0.0f;
    for (int64_t p = 0; p < g->k; p++) {
        float ap = tmi_load_f32(g->a, g->a_dtype, i * g->lda + p);
        for (int64_t j = j0; j < j1; j++) acc[j - j0] += ap * tmi_load_f32(g->b, g->b_dtype, p * g->ldb + j);
    }
    float *c = g->c + i * g->ldc;
    for (int64_t j = j0; j < j1; j++) {
        float s = acc[j - j0] + (g->bias ? tmi_load_f32(g->bias, g->bias_dtype, j) : 0.0f);
        c[j] = g->accumulate ? c[j] + s : s;
    }
}

#endif

size_t tmi_gemm_cpu_workspace(int64_t m, int64_t n, int64_t k, int threads)
{
#ifdef __AVX2__
    if (m <= GEMV_MAX_M || n <= 0 || k <= 0) return 0;
    if (threads < 1) threads = 1;
    return (size_t)threads * gemm_thread_bytes(m, n, k) + WS_ALIGN;
#else
    (void)m, (void)n, (void)k, (void)threads;
    return 0;
#endif
}

static tm_status gemm_check(const tmi_exec *ex, const tmi_gemm_args *g)
{
    if (!ex || !g) return tmi_fail(TM_ERR_INVALID_ARG, "gemm: exec and args must not be NULL");
    if (g->m < 0 || g->n < 0 || g->k < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: m, n, k must be >= 0, got %lld, %lld, %lld", (long long)g->m,
                        (long long)g->n, (long long)g->k);
    if (g->m == 0 || g->n == 0) return TM_OK;
    if (!g->c || g->ldc < g->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: c must be non-NULL with ldc >= n (%lld), got ldc %lld",
                        (long long)g->n, (long long)g->ldc);
    if (g->bias && !tmi_is_float_dtype(g->bias_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: bias dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(g->bias_dtype));
    if (g->k == 0) return TM_OK;
    if (!g->a || g->lda < g->k)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: a must be non-NULL with lda >= k (%lld), got lda %lld",
                        (long long)g->k, (long long)g->lda);
    if (!g->b || g->ldb < g->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: b must be non-NULL with ldb >= n (%lld), got ldb %lld",
                        (long long)g->n, (long long)g->ldb);
    if (!tmi_is_float_dtype(g->b_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: b dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(g->b_dtype));
    if (g->a_dtype != TM_F32 && g->a_dtype != g->b_dtype)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm: a dtype must be F32 or equal to b dtype (%s), got %s",
                        tm_dtype_name(g->b_dtype), tm_dtype_name(g->a_dtype));
    size_t need = tmi_gemm_cpu_workspace(g->m, g->n, g->k, tmi_pool_threads(ex->pool));
    if (need && (!ex->workspace || ex->workspace_bytes < need))
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "gemm: workspace must hold tmi_gemm_cpu_workspace() = %zu bytes for %lldx%lldx%lld, got %zu",
                        need, (long long)g->m, (long long)g->n, (long long)g->k,
                        ex->workspace ? ex->workspace_bytes : (size_t)0);
    return TM_OK;
}

/* ---- a_src (gemm.h): the rule both twins check, and the CPU twin's way, which runs the op first ---- */

int tmi_gemm_a_src_active(const tmi_gemm_a_src *src)
{
    if (!src) return 0;
    if (src->kind == TMI_GEMM_A_ATTN_MERGE) return src->merge && src->merge->nsplit > 0;
    return 1;
}

/* The producer's output, rows and width, or NULL for an unknown kind or a missing op. */
static const void *output_of(const tmi_gemm_a_src *src, tm_dtype *dtype, int64_t *ld, int64_t *rows, int64_t *width)
{
    switch (src->kind) {
    case TMI_GEMM_A_SILU_MUL:
        if (!src->silu) return NULL;
        *dtype = src->silu->out_dtype, *ld = src->silu->ldo, *rows = src->silu->n, *width = src->silu->d;
        return src->silu->out;
    case TMI_GEMM_A_RMSNORM:
        if (!src->norm) return NULL;
        *dtype = src->norm->out_dtype, *ld = src->norm->ldo, *rows = src->norm->n, *width = src->norm->d;
        return src->norm->out;
    case TMI_GEMM_A_ATTN_MERGE:
        if (!src->merge) return NULL;
        *dtype = src->merge->out_dtype, *ld = src->merge->ldo, *rows = src->merge->n_seq;
        *width = (int64_t)src->merge->n_head * src->merge->head_dim;
        return src->merge->out;
    }
    return NULL;
}

tm_status tmi_gemm_check_a_src(const char *op, const tmi_gemm_args *g)
{
    const tmi_gemm_a_src *src = g->a_src;
    if (!tmi_gemm_a_src_active(src)) return TM_OK;
    tm_dtype dtype = TM_F32;
    int64_t ld = 0, rows = 0, width = 0;
    const void *out = output_of(src, &dtype, &ld, &rows, &width);
    if (!out)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: a_src must be a silu_mul, rmsnorm or merge source with its args",
                        op);
    if (out != g->a || dtype != g->a_dtype || ld != g->lda || rows != g->m || width != g->k)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "%s: a_src's output (%lld x %lld, ld %lld, %s) must be A (%lld x %lld, lda %lld, %s)", op,
                        (long long)rows, (long long)width, (long long)ld, tm_dtype_name(dtype), (long long)g->m,
                        (long long)g->k, (long long)g->lda, tm_dtype_name(g->a_dtype));
    return TM_OK;
}

/* Runs the op that writes A (the CPU has no merge left over: its attention never splits). */
static tm_status run_a_src(const tmi_exec *ex, const tmi_gemm_a_src *src)
{
    switch (src->kind) {
    case TMI_GEMM_A_SILU_MUL: return tmi_silu_mul_cpu(ex, src->silu);
    case TMI_GEMM_A_RMSNORM: return tmi_rmsnorm_cpu(ex, src->norm);
    default: return tmi_fail(TM_ERR_UNSUPPORTED, "gemm: a split-K merge source is the CUDA attention's");
    }
}

tm_status tmi_gemm_cpu(const tmi_exec *ex, const tmi_gemm_args *g)
{
    if (g && g->defer) g->defer->splits = 0; /* C is always written here */
    tm_status st = gemm_check(ex, g);
    if (st != TM_OK || g->m == 0 || g->n == 0) return st;
    if ((st = tmi_gemm_check_a_src("gemm", g)) != TM_OK) return st;
    if (tmi_gemm_a_src_active(g->a_src) && g->k > 0 && (st = run_a_src(ex, g->a_src)) != TM_OK) return st;
    if (g->k == 0) {
        gemm_k0(g);
        return TM_OK;
    }
#ifdef __AVX2__
    if (g->m <= GEMV_MAX_M)
        tmi_pool_run(ex->pool, gemv_task, (void *)g, ceil_div(g->n, GEMV_TASK_COLS));
    else
        gemm_blocked(ex, g);
#else
    tmi_pool_run(ex->pool, gemm_scalar_task, (void *)g, g->m * ceil_div(g->n, SCALAR_TASK_COLS));
#endif
    return TM_OK;
}

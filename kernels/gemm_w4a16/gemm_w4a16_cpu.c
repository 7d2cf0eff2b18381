/* gemm_w4a16_cpu.c - the int4-weight GEMM of gemm_w4a16.h on the CPU.
 *
 * Two AVX2 paths, threaded over tasks of C like kernels/gemm:
 *  - GEMV, m <= GEMV_MAX_M (decode): per 32-column chunk and per group,
 *    sum_k a[k] q[k][j] and sum_k a[k] are accumulated on the raw nibbles, and
 *    the group's scale and zero are applied once:
 *        y[j] += s[j] * (sum_k a[k] q[k][j] - z[j] * sum_k a[k])
 *    so each weight costs a shift, an and, a convert and one FMA, read as 4 bits.
 *  - blocked, larger m (prefill): a 32 x 64 tile of W is decoded to fp32 (8 KiB,
 *    stays in L1) and every row of the task's 64-row block passes over it with 8
 *    accumulators; the C block lives on the stack across the whole k loop.
 * The scalar path is the readable reference of the same arithmetic and runs on
 * builds without AVX2 and for column tails. */
#include "gemm_w4a16.h"

#include "../../runtime/threadpool.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

enum {
    GEMV_MAX_M = 8,
    GEMV_COLS = 32,   /* columns of a GEMV chunk: 4 vectors */
    TILE_K = 32,      /* rows of a decoded tile; divides every allowed group */
    TILE_N = 64,      /* columns of a tile: 8 vectors */
    BLOCK_M = 64,     /* rows of a blocked task */
    SCALAR_COLS = 64
};

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static tm_status check_args(const tmi_gemm_w4a16_args *g)
{
    if (!g) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: NULL args");
    if (g->m < 0 || g->n < 0 || g->k < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: m, n, k must be >= 0, got %lld, %lld, %lld",
                        (long long)g->m, (long long)g->n, (long long)g->k);
    if (g->group < 32 || g->group % 32)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: group must be a positive multiple of 32, got %d", g->group);
    if (g->k % g->group)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: group %d must divide k = %lld", g->group, (long long)g->k);
    if (g->m == 0 || g->n == 0) return TM_OK;
    if (!g->c || g->ldc < g->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: c must be non-NULL with ldc >= n");
    if (g->k == 0) return TM_OK;
    if (!g->a || !g->qweight || !g->scales_zeros || g->lda < g->k)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: a, qweight, scales_zeros must be non-NULL with lda >= k");
    if (g->bias && !tmi_is_float_dtype(g->bias_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_w4a16: bias dtype must be F32, F16 or BF16");
    return TM_OK;
}

/* C[i][j0, j1) = bias (+ C). */
static void init_rows(const tmi_gemm_w4a16_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t i = i0; i < i1; i++) {
        float *c = g->c + i * g->ldc;
        for (int64_t j = j0; j < j1; j++) {
            float b = g->bias ? tmi_load_f32(g->bias, g->bias_dtype, j) : 0.0f;
            c[j] = g->accumulate ? c[j] + b : b;
        }
    }
}

static inline int q_at(const tmi_gemm_w4a16_args *g, int64_t row, int64_t j)
{
    uint32_t w = (uint32_t)g->qweight[(row / 8) * g->n + j];
    return (int)((w >> (4 * (row % 8))) & 15u);
}

/* Adds A[i0, i1) x W[:, j0, j1) into C (already initialised), group by group. */
static void scalar_block(const tmi_gemm_w4a16_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    int64_t n_groups = g->k / g->group;
    for (int64_t i = i0; i < i1; i++) {
        const float *a = g->a + i * g->lda;
        float *c = g->c + i * g->ldc;
        for (int64_t j = j0; j < j1; j++) {
            float y = 0.0f;
            for (int64_t gi = 0; gi < n_groups; gi++) {
                const uint16_t *sz = g->scales_zeros + (gi * g->n + j) * 2;
                float accq = 0.0f, asum = 0.0f;
                for (int64_t r = gi * g->group; r < (gi + 1) * g->group; r++) {
                    accq += a[r] * (float)q_at(g, r, j);
                    asum += a[r];
                }
                y += tmi_f16_to_f32(sz[0]) * (accq - tmi_f16_to_f32(sz[1]) * asum);
            }
            c[j] += y;
        }
    }
}

typedef struct scalar_plan {
    const tmi_gemm_w4a16_args *g;
    int64_t col_tasks;
} scalar_plan;

static void scalar_task(void *ctx, int64_t index, int thread)
{
    (void)thread;
    const scalar_plan *p = ctx;
    int64_t i = index / p->col_tasks, j0 = (index % p->col_tasks) * SCALAR_COLS;
    int64_t j1 = min64(j0 + SCALAR_COLS, p->g->n);
    init_rows(p->g, i, i + 1, j0, j1);
    scalar_block(p->g, i, i + 1, j0, j1);
}

tm_status tmi_gemm_w4a16_cpu_scalar(const tmi_exec *ex, const tmi_gemm_w4a16_args *g)
{
    tm_status s = check_args(g);
    if (s || g->m == 0 || g->n == 0) return s;
    scalar_plan p = {.g = g, .col_tasks = ceil_div(g->n, SCALAR_COLS)};
    tmi_pool_run(ex ? ex->pool : NULL, scalar_task, &p, g->m * p.col_tasks);
    return TM_OK;
}

#ifdef __AVX2__

/* Scale and zero of group gi for columns [j, j + cnt) as fp32 arrays. */
static inline void load_sz(const tmi_gemm_w4a16_args *g, int64_t gi, int64_t j, int cnt, float *s, float *z)
{
    const uint16_t *sz = g->scales_zeros + (gi * g->n + j) * 2;
    for (int c = 0; c < cnt; c++) {
        s[c] = tmi_f16_to_f32(sz[2 * c]);
        z[c] = tmi_f16_to_f32(sz[2 * c + 1]);
    }
}

/* One row, columns [j0, j0 + 32): the group-sum form of the file comment. */
static void gemv_chunk(const tmi_gemm_w4a16_args *g, int64_t i, int64_t j0)
{
    const float *a = g->a + i * g->lda;
    float *c = g->c + i * g->ldc + j0;
    const __m256i mask = _mm256_set1_epi32(15);
    __m256 y[4];
    for (int v = 0; v < 4; v++) y[v] = _mm256_loadu_ps(c + 8 * v);
    float s[GEMV_COLS], z[GEMV_COLS];
    for (int64_t gi = 0; gi < g->k / g->group; gi++) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256 asum = _mm256_setzero_ps();
        for (int64_t r8 = gi * g->group / 8; r8 < (gi + 1) * g->group / 8; r8++) {
            const int32_t *wp = g->qweight + r8 * g->n + j0;
            __m256i w[4];
            for (int v = 0; v < 4; v++) w[v] = _mm256_loadu_si256((const __m256i *)(wp + 8 * v));
            const float *a8 = a + r8 * 8;
            for (int t = 0; t < 8; t++) {
                __m256 ab = _mm256_broadcast_ss(a8 + t);
                asum = _mm256_add_ps(asum, ab);
                for (int v = 0; v < 4; v++) {
                    __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(w[v], mask));
                    acc[v] = _mm256_fmadd_ps(ab, q, acc[v]);
                    w[v] = _mm256_srli_epi32(w[v], 4);
                }
            }
        }
        load_sz(g, gi, j0, GEMV_COLS, s, z);
        for (int v = 0; v < 4; v++) {
            __m256 sv = _mm256_loadu_ps(s + 8 * v), zv = _mm256_loadu_ps(z + 8 * v);
            y[v] = _mm256_fmadd_ps(sv, _mm256_fnmadd_ps(zv, asum, acc[v]), y[v]);
        }
    }
    for (int v = 0; v < 4; v++) _mm256_storeu_ps(c + 8 * v, y[v]);
}

static void gemv_task(void *ctx, int64_t index, int thread)
{
    (void)thread;
    const tmi_gemm_w4a16_args *g = ctx;
    int64_t j0 = index * GEMV_COLS, j1 = min64(j0 + GEMV_COLS, g->n);
    init_rows(g, 0, g->m, j0, j1);
    for (int64_t i = 0; i < g->m; i++) {
        if (j1 - j0 == GEMV_COLS)
            gemv_chunk(g, i, j0);
        else
            scalar_block(g, i, i + 1, j0, j1);
    }
}

/* tile[TILE_K][TILE_N] = W[k0, k0 + 32)[j0, j0 + 64) as fp32; columns past n are 0. */
static void decode_tile(const tmi_gemm_w4a16_args *g, int64_t k0, int64_t j0, float *tile)
{
    int64_t gi = k0 / g->group;
    int cols = (int)min64(TILE_N, g->n - j0);
    float s[TILE_N] = {0}, z[TILE_N] = {0};
    load_sz(g, gi, j0, cols, s, z);
    const __m256i mask = _mm256_set1_epi32(15);
    for (int v = 0; v < TILE_N / 8; v++) {
        int jv = 8 * v;
        if (jv + 8 <= cols) {
            __m256 sv = _mm256_loadu_ps(s + jv), zs = _mm256_mul_ps(_mm256_loadu_ps(z + jv), sv);
            for (int r8 = 0; r8 < TILE_K / 8; r8++) {
                __m256i w = _mm256_loadu_si256((const __m256i *)(g->qweight + (k0 / 8 + r8) * g->n + j0 + jv));
                for (int t = 0; t < 8; t++) {
                    __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(w, mask));
                    _mm256_store_ps(tile + (r8 * 8 + t) * TILE_N + jv, _mm256_fmsub_ps(q, sv, zs));
                    w = _mm256_srli_epi32(w, 4);
                }
            }
        } else {
            for (int r = 0; r < TILE_K; r++)
                for (int c = jv; c < jv + 8; c++)
                    tile[r * TILE_N + c] = c < cols ? ((float)q_at(g, k0 + r, j0 + c) - z[c]) * s[c] : 0.0f;
        }
    }
}

typedef struct blocked_plan {
    const tmi_gemm_w4a16_args *g;
    int64_t col_tasks;
} blocked_plan;

static void blocked_task(void *ctx, int64_t index, int thread)
{
    (void)thread;
    const blocked_plan *p = ctx;
    const tmi_gemm_w4a16_args *g = p->g;
    int64_t i0 = (index / p->col_tasks) * BLOCK_M, j0 = (index % p->col_tasks) * TILE_N;
    int64_t i1 = min64(i0 + BLOCK_M, g->m), cols = min64(TILE_N, g->n - j0);
    _Alignas(32) float tile[TILE_K * TILE_N];  /* [TILE_K][TILE_N] decoded W */
    _Alignas(32) float cblk[BLOCK_M * TILE_N]; /* [rows][TILE_N] the task's C */
    init_rows(g, i0, i1, j0, j0 + cols);
    for (int64_t i = i0; i < i1; i++)
        for (int64_t c = 0; c < TILE_N; c++) cblk[(i - i0) * TILE_N + c] = c < cols ? g->c[i * g->ldc + j0 + c] : 0.0f;
    for (int64_t k0 = 0; k0 < g->k; k0 += TILE_K) {
        decode_tile(g, k0, j0, tile);
        for (int64_t i = i0; i < i1; i++) {
            float *cr = cblk + (i - i0) * TILE_N;
            const float *a = g->a + i * g->lda + k0;
            __m256 acc[8];
            for (int v = 0; v < 8; v++) acc[v] = _mm256_load_ps(cr + 8 * v);
            for (int kk = 0; kk < TILE_K; kk++) {
                __m256 ab = _mm256_broadcast_ss(a + kk);
                const float *tr = tile + kk * TILE_N;
                for (int v = 0; v < 8; v++) acc[v] = _mm256_fmadd_ps(ab, _mm256_load_ps(tr + 8 * v), acc[v]);
            }
            for (int v = 0; v < 8; v++) _mm256_store_ps(cr + 8 * v, acc[v]);
        }
    }
    for (int64_t i = i0; i < i1; i++)
        memcpy(g->c + i * g->ldc + j0, cblk + (i - i0) * TILE_N, (size_t)cols * sizeof(float));
}

#endif

tm_status tmi_gemm_w4a16_cpu(const tmi_exec *ex, const tmi_gemm_w4a16_args *g)
{
    tm_status s = check_args(g);
    if (s || g->m == 0 || g->n == 0) return s;
    tmi_pool *pool = ex ? ex->pool : NULL;
    if (g->k == 0) {
        init_rows(g, 0, g->m, 0, g->n);
        return TM_OK;
    }
#ifdef __AVX2__
    if (g->m <= GEMV_MAX_M) {
        tmi_pool_run(pool, gemv_task, (void *)g, ceil_div(g->n, GEMV_COLS));
    } else {
        blocked_plan p = {.g = g, .col_tasks = ceil_div(g->n, TILE_N)};
        tmi_pool_run(pool, blocked_task, &p, ceil_div(g->m, BLOCK_M) * p.col_tasks);
    }
    return TM_OK;
#else
    return tmi_gemm_w4a16_cpu_scalar(ex, g);
#endif
}

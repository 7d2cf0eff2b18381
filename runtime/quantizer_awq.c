/* quantizer_awq.c - the AWQ searches: the activation-aware scale of a smoothing
 * group and the clipping range of each weight group.
 *
 * Both minimise an output error ||X Wq^T - X W^T||^2 over the calibration rows X.
 * With D = Wq - W that is sum_o d_o^T G d_o for the Gram matrix G = X^T X, so the
 * observers accumulate G over every calibration token (runtime/quantizer.c) and the
 * searches never touch activations: the error is exact over all tokens, and a grid
 * point costs out x in^2 instead of tokens x in x out. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/gemm/gemm.h"
#include "quantizer.h"
#include "threadpool.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

enum { MAX_GROUP_LINEARS = 16 };

/* sum_o d_o^T G d_o for D [out][in], via U = D G (the CPU GEMM) and sum(U * D). */
static double quad_error(tmi_pool *pool, void *ws, size_t ws_bytes, const float *d, const float *g, int64_t out,
                         int64_t in, float *u)
{
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_gemm_args a = {
        .m = out, .n = in, .k = in, .a = d, .lda = in, .b = g, .b_dtype = TM_F32, .ldb = in, .c = u, .ldc = in,
    };
    if (tmi_gemm_cpu(&ex, &a) != TM_OK) return INFINITY;
    double e = 0.0;
    for (int64_t i = 0; i < out * in; i++) e += (double)u[i] * d[i];
    return e;
}

typedef struct search_ws {
    tmi_pool *pool;
    void *gemm_ws;
    size_t gemm_bytes;
    float *ws, *d, *u; /* [max_out][in] each */
} search_ws;

static void search_ws_free(search_ws *s)
{
    tmi_pool_destroy(s->pool);
    free(s->gemm_ws);
    free(s->ws);
    free(s->d);
    free(s->u);
}

static tm_status search_ws_init(search_ws *s, int32_t num_threads, int64_t max_out, int64_t in)
{
    memset(s, 0, sizeof *s);
    tm_status st = tmi_pool_create(num_threads, &s->pool);
    if (st) return st;
    s->gemm_bytes = tmi_gemm_cpu_workspace(max_out, in, in, tmi_pool_threads(s->pool));
    s->gemm_ws = aligned_alloc(64, (s->gemm_bytes + 63) / 64 * 64 + 64);
    size_t n = (size_t)(max_out * in) * sizeof(float);
    s->ws = malloc(n);
    s->d = malloc(n);
    s->u = malloc(n);
    if (!s->gemm_ws || !s->ws || !s->d || !s->u) {
        search_ws_free(s);
        return tmi_fail(TM_ERR_NOMEM, "AWQ search: out of memory");
    }
    return TM_OK;
}

static tm_status check_gram(const char *fn, const float *gram, int64_t in, int32_t group)
{
    if (!gram) return tmi_fail(TM_ERR_INVALID_ARG, "%s: NULL gram", fn);
    if (group < 8 || in < group || in % group)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: group %d must be >= 8 and divide in = %lld", fn, group, (long long)in);
    return TM_OK;
}

/* scales[c] = max(x_absmean[c], 1e-4)^alpha, normalised so max * min = 1 (AutoAWQ). */
static void alpha_scales(const float *x_absmean, int64_t in, float alpha, float *s)
{
    float lo = INFINITY, hi = 0.0f;
    for (int64_t c = 0; c < in; c++) {
        s[c] = fmaxf(powf(fmaxf(x_absmean[c], 1e-4f), alpha), 1e-4f);
        lo = fminf(lo, s[c]);
        hi = fmaxf(hi, s[c]);
    }
    float norm = sqrtf(lo * hi);
    for (int64_t c = 0; c < in; c++) s[c] /= norm;
}

tm_status tm_awq_search_scale(const float *gram, int64_t in, const float *x_absmean, const float *const *w,
                              const int64_t *outs, int32_t n_w, int32_t group, int32_t n_grid, int32_t num_threads,
                              float *scales, float *errors)
{
    tm_status st = check_gram("tm_awq_search_scale", gram, in, group);
    if (st) return st;
    if (!x_absmean || !w || !outs || !scales)
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_awq_search_scale: NULL argument");
    if (n_w < 1 || n_w > MAX_GROUP_LINEARS)
        return tmi_fail(TM_ERR_INVALID_ARG, "n_w must be in [1, %d], got %d", MAX_GROUP_LINEARS, n_w);
    if (n_grid < 1 || n_grid > 1000) return tmi_fail(TM_ERR_INVALID_ARG, "n_grid must be in [1, 1000], got %d", n_grid);
    int64_t max_out = 0;
    for (int32_t i = 0; i < n_w; i++) {
        if (!w[i] || outs[i] < 1) return tmi_fail(TM_ERR_INVALID_ARG, "linear %d: NULL weight or out < 1", i);
        if (outs[i] > max_out) max_out = outs[i];
    }
    float *s = malloc((size_t)in * sizeof *s);
    search_ws sw;
    if (!s) return tmi_fail(TM_ERR_NOMEM, "AWQ search: out of memory");
    if ((st = search_ws_init(&sw, num_threads, max_out, in))) {
        free(s);
        return st;
    }
    double best = INFINITY;
    for (int32_t k = 0; k < n_grid; k++) {
        float alpha = (float)k / (float)n_grid; /* [0, 1): alpha 0 is plain RTN */
        alpha_scales(x_absmean, in, alpha, s);
        double err = 0.0;
        for (int32_t i = 0; i < n_w; i++) {
            int64_t out = outs[i];
            for (int64_t o = 0; o < out; o++)
                for (int64_t c = 0; c < in; c++) sw.ws[o * in + c] = w[i][o * in + c] * s[c];
            tmi_int4_quantize(sw.ws, out, in, group, NULL, NULL, NULL, NULL, sw.d);
            /* the effective weight Q(W s) / s against W: X' Q(W')^T = X (Q(W s) / s)^T */
            for (int64_t o = 0; o < out; o++)
                for (int64_t c = 0; c < in; c++) sw.d[o * in + c] = sw.d[o * in + c] / s[c] - w[i][o * in + c];
            err += quad_error(sw.pool, sw.gemm_ws, sw.gemm_bytes, sw.d, gram, out, in, sw.u);
        }
        if (errors) errors[k] = (float)err;
        if (err < best) {
            best = err;
            memcpy(scales, s, (size_t)in * sizeof *s);
        }
    }
    search_ws_free(&sw);
    free(s);
    if (!isfinite(best)) return tmi_fail(TM_ERR_INTERNAL, "AWQ scale search: no finite error (NaN in the inputs?)");
    return TM_OK;
}

/* sum x[i] y[i], i < n (n a multiple of 8: groups are multiples of 32). */
static float dot(const float *x, const float *y, int32_t n)
{
#ifdef __AVX2__
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    __m256 acc = _mm256_add_ps(acc0, acc1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    float sum = _mm_cvtss_f32(h);
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
#else
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) sum += x[i] * y[i];
    return sum;
#endif
}

typedef struct clip_plan {
    const float *gram, *w;
    int64_t in, out;
    int32_t group, n_ratios, n_grid;
    float *max_val;
} clip_plan;

/* One output row: for each of its groups, the shrink ratio of max|w| whose clamped
 * quantization minimises d^T G_gg d (G_gg the group's diagonal block of G). */
static void clip_row(void *ctx, int64_t o, int thread)
{
    (void)thread;
    const clip_plan *p = ctx;
    int32_t g = p->group;
    int64_t n_groups = p->in / g;
    float deq[1024], d[1024];
    for (int64_t gi = 0; gi < n_groups; gi++) {
        const float *wg = p->w + o * p->in + gi * g;
        const float *G = p->gram + gi * g * p->in + gi * g; /* [g][g] block, row stride in */
        float amax = 0.0f;
        for (int32_t t = 0; t < g; t++) amax = fmaxf(amax, fabsf(wg[t]));
        double best = INFINITY;
        float best_max = amax;
        for (int32_t r = 0; r < p->n_ratios; r++) {
            float mv = amax * (1.0f - (float)r / (float)p->n_grid);
            tmi_int4_quantize(wg, 1, g, g, &mv, NULL, NULL, NULL, deq);
            for (int32_t t = 0; t < g; t++) d[t] = deq[t] - wg[t];
            double e = 0.0;
            for (int32_t a = 0; a < g; a++) e += (double)dot(G + a * p->in, d, g) * d[a];
            if (e < best) {
                best = e;
                best_max = mv;
            }
        }
        p->max_val[o * n_groups + gi] = best_max;
    }
}

tm_status tm_awq_search_clip(const float *gram, int64_t in, const float *w, int64_t out, int32_t group, int32_t n_grid,
                             float max_shrink, int32_t num_threads, float *max_val)
{
    tm_status st = check_gram("tm_awq_search_clip", gram, in, group);
    if (st) return st;
    if (!w || !max_val || out < 1) return tmi_fail(TM_ERR_INVALID_ARG, "tm_awq_search_clip: NULL argument or out < 1");
    if (group > 1024) return tmi_fail(TM_ERR_INVALID_ARG, "tm_awq_search_clip: group must be <= 1024, got %d", group);
    if (n_grid < 1 || n_grid > 1000) return tmi_fail(TM_ERR_INVALID_ARG, "n_grid must be in [1, 1000], got %d", n_grid);
    if (!(max_shrink >= 0.0f && max_shrink < 1.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "max_shrink must be in [0, 1), got %g", max_shrink);
    tmi_pool *pool = NULL;
    if ((st = tmi_pool_create(num_threads, &pool))) return st;
    clip_plan p = {
        .gram = gram, .w = w, .in = in, .out = out, .group = group, .n_grid = n_grid,
        .n_ratios = (int32_t)(max_shrink * (float)n_grid) + 1, .max_val = max_val,
    };
    tmi_pool_run(pool, clip_row, &p, out);
    tmi_pool_destroy(pool);
    return TM_OK;
}

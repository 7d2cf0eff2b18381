/* attention_cpu.c - causal GQA attention over the paged KV cache, the reference.
 *
 * Row t of sequence s is at absolute position p = kv_len - q_len + t and attends
 * to keys 0..p (only the last `window` of them, j > p - window, when window > 0).
 * Query head h reads kv head h / (n_head / n_kv_head).  Scores go to the
 * thread's scratch, softmax subtracts the row maximum, all in fp32.
 *
 * Tasks are (sequence, row slice, head): a slice takes rows t = slice, slice + R,
 * ... so the long causal rows of a prefill spread evenly over the slices.
 *
 * A row's output accumulates in fp32 on the stack, ATTN_DIMS dims at a time (one
 * pass for head_dim <= ATTN_DIMS), and is stored as out_dtype: F32, or F16 / BF16
 * rounded to nearest even. */
#include "attention.h"

#include <math.h>

#include "kv_quant.h"
#include "paged_kv.h"
#include "../../runtime/threadpool.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

enum { ATTN_ALIGN = 16 }; /* floats: each thread's scores start on a 64-byte line */
enum { ATTN_DIMS = 256 };  /* output dims accumulated per pass over the values */

typedef struct attn_job {
    const tmi_attention_args *a;
    float *scratch;        /* [threads][stride] fp32 */
    int64_t stride;        /* floats per thread */
    int32_t slices;        /* R */
    int32_t group;         /* n_head / n_kv_head */
} attn_job;

#ifdef __AVX2__
static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 kv_load8(const void *kv, tm_dtype dtype, int32_t i)
{
    if (dtype == TM_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)kv + i)));
    return _mm256_loadu_ps((const float *)kv + i);
}
#endif

/* q . k over d elements; k is a cache row of dtype F32 or F16. */
static inline float dot_row(const float *q, const void *k, tm_dtype dtype, int32_t d)
{
    float s = 0.0f;
    int32_t i = 0;
#ifdef __AVX2__
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= d; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv_load8(k, dtype, i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), kv_load8(k, dtype, i + 8), acc1);
    }
    for (; i + 8 <= d; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv_load8(k, dtype, i), acc0);
    s = hsum8(_mm256_add_ps(acc0, acc1));
#endif
    for (; i < d; i++) s += q[i] * tmi_load_f32(k, dtype, i);
    return s;
}

/* out += w * v over d elements. */
static inline void axpy_row(float *out, float w, const void *v, tm_dtype dtype, int32_t d)
{
    int32_t i = 0;
#ifdef __AVX2__
    __m256 wv = _mm256_set1_ps(w);
    for (; i + 8 <= d; i += 8)
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, kv_load8(v, dtype, i), _mm256_loadu_ps(out + i)));
#endif
    for (; i < d; i++) out[i] += w * tmi_load_f32(v, dtype, i);
}

/* sum_i q[i] * code_i over a quantized row of d codes. */
static inline float dot_codes(const float *q, const uint8_t *row, int bits, int32_t d)
{
    float s = 0.0f;
    if (bits == 8) {
        const int8_t *r = (const int8_t *)row;
        for (int32_t i = 0; i < d; i++) s += q[i] * (float)r[i];
        return s;
    }
    for (int32_t i = 0; i < d; i += 2) {
        s += q[i] * (float)((int32_t)(row[i >> 1] & 15u) - 8);
        s += q[i + 1] * (float)((int32_t)(row[i >> 1] >> 4) - 8);
    }
    return s;
}

/* out += w * code over a quantized row. */
static inline void axpy_codes(float *out, float w, const uint8_t *row, int bits, int32_t d)
{
    if (bits == 8) {
        const int8_t *r = (const int8_t *)row;
        for (int32_t i = 0; i < d; i++) out[i] += w * (float)r[i];
        return;
    }
    for (int32_t i = 0; i < d; i += 2) {
        out[i] += w * (float)((int32_t)(row[i >> 1] & 15u) - 8);
        out[i + 1] += w * (float)((int32_t)(row[i >> 1] >> 4) - 8);
    }
}

/* {scale, zp} of K (v = 0) or V (v = 1) of token slot, kv head g. */
static inline void row_params(const tmi_kv_cache *c, int32_t block, int32_t g, int32_t slot, int v, float sz[2])
{
    if (c->qparams) {
        sz[0] = c->qparams[(2 * v) * c->n_kv_head + g];
        sz[1] = c->qparams[(2 * v + 1) * c->n_kv_head + g];
        return;
    }
    int64_t off = tmi_kv_param_offset(c, block, g, slot) + (v ? c->v_offset : 0);
    memcpy(sz, (const char *)c->base + off, 2 * sizeof(float));
}

/* scores[i] = exp(scores[i] - mx) in place; returns their sum (softmax numerator). */
static float exp_shifted(float *scores, int32_t n, float mx)
{
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        float e = expf(scores[i] - mx);
        scores[i] = e;
        sum += e;
    }
    return sum;
}

/* out[i] = (acc[i] + add) * inv for i < n, as out_dtype. */
static void store_out(void *out, tm_dtype dtype, int64_t idx, const float *acc, int32_t n, float add, float inv)
{
    for (int32_t i = 0; i < n; i++) tmi_store_f32(out, dtype, idx + i, (acc[i] + add) * inv);
}

/* attend_row over a quantized cache.  With k = code*ks + kz the score is
 * ks * (q . code) + kz * sum(q); with v = code*vs + vz the output is
 * sum_j w_j vs_j code_j + sum_j w_j vz_j, the second term the same for every
 * element, so the codes are never expanded to floats in memory. */
static void attend_row_quant(const attn_job *job, const tmi_attn_seq *sq, int32_t t, int32_t h, float *scores)
{
    const tmi_attention_args *a = job->a;
    const tmi_kv_cache *c = &a->cache;
    int32_t d = c->head_dim, bl = c->block_len, g = h / job->group, bits = tmi_kv_bits(c->dtype);
    int32_t p = sq->kv_len - sq->q_len + t;
    int32_t j0 = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
    const uint8_t *base = c->base;
    const float *q = a->q + (int64_t)(sq->q_start + t) * a->ldq + (int64_t)h * d; /* [head_dim] */
    int64_t o_idx = (int64_t)(sq->q_start + t) * a->ldo + (int64_t)h * d;         /* out[head_dim] */
    float qsum = 0.0f, sz[2];
    for (int32_t i = 0; i < d; i++) qsum += q[i];

    float mx = -INFINITY;
    for (int32_t j = j0; j <= p; j++) {
        int32_t block = sq->block_table[j / bl], slot = j % bl;
        row_params(c, block, g, slot, 0, sz);
        float dot = dot_codes(q, base + tmi_kv_k_offset(c, block, g, slot), bits, d);
        float s = (sz[0] * dot + sz[1] * qsum) * a->scale;
        scores[j - j0] = s;
        if (s > mx) mx = s;
    }
    float sum = exp_shifted(scores, p - j0 + 1, mx);
    float zacc = 0.0f;
    for (int32_t j = j0; j <= p; j++) {
        row_params(c, sq->block_table[j / bl], g, j % bl, 1, sz);
        zacc += scores[j - j0] * sz[1];
    }
    /* q is fully read by now (qsum too), so out may share its storage */
    float acc[ATTN_DIMS];
    for (int32_t i0 = 0; i0 < d; i0 += ATTN_DIMS) { /* i0 is even: whole int4 bytes */
        int32_t n = d - i0 < ATTN_DIMS ? d - i0 : ATTN_DIMS;
        int64_t skip = bits == 8 ? i0 : i0 / 2;
        for (int32_t i = 0; i < n; i++) acc[i] = 0.0f;
        for (int32_t j = j0; j <= p; j++) {
            int32_t block = sq->block_table[j / bl], slot = j % bl;
            row_params(c, block, g, slot, 1, sz);
            axpy_codes(acc, scores[j - j0] * sz[0], base + tmi_kv_k_offset(c, block, g, slot) + c->v_offset + skip,
                       bits, n);
        }
        store_out(a->out, a->out_dtype, o_idx + i0, acc, n, zacc, 1.0f / sum);
    }
}

/* One query row of one head.  scores: [p + 1] fp32 scratch. */
static void attend_row(const attn_job *job, const tmi_attn_seq *sq, int32_t t, int32_t h, float *scores)
{
    const tmi_attention_args *a = job->a;
    const tmi_kv_cache *c = &a->cache;
    if (tmi_kv_is_quant(c->dtype)) {
        attend_row_quant(job, sq, t, h, scores);
        return;
    }
    int32_t d = c->head_dim, bl = c->block_len, g = h / job->group;
    int32_t p = sq->kv_len - sq->q_len + t;
    int32_t j0 = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
    size_t es = c->dtype == TM_F16 ? 2 : 4;
    const char *base = c->base;
    const float *q = a->q + (int64_t)(sq->q_start + t) * a->ldq + (int64_t)h * d; /* [head_dim] */
    int64_t o_idx = (int64_t)(sq->q_start + t) * a->ldo + (int64_t)h * d;         /* out[head_dim] */

    float mx = -INFINITY;
    for (int32_t j = j0; j <= p; j++) {
        int64_t off = tmi_kv_k_offset(c, sq->block_table[j / bl], g, j % bl);
        float s = dot_row(q, base + off * es, c->dtype, d) * a->scale;
        scores[j - j0] = s;
        if (s > mx) mx = s;
    }
    float sum = exp_shifted(scores, p - j0 + 1, mx);
    /* q is fully read by now, so out may share its storage */
    float acc[ATTN_DIMS];
    for (int32_t i0 = 0; i0 < d; i0 += ATTN_DIMS) {
        int32_t n = d - i0 < ATTN_DIMS ? d - i0 : ATTN_DIMS;
        for (int32_t i = 0; i < n; i++) acc[i] = 0.0f;
        for (int32_t j = j0; j <= p; j++) {
            int64_t off = tmi_kv_k_offset(c, sq->block_table[j / bl], g, j % bl) + c->v_offset + i0;
            axpy_row(acc, scores[j - j0], base + off * es, c->dtype, n);
        }
        store_out(a->out, a->out_dtype, o_idx + i0, acc, n, 0.0f, 1.0f / sum);
    }
}

static void attn_task(void *ctx, int64_t idx, int thread)
{
    const attn_job *job = ctx;
    const tmi_attention_args *a = job->a;
    int32_t h = (int32_t)(idx % a->n_head);
    int64_t rest = idx / a->n_head;
    int32_t slice = (int32_t)(rest % job->slices);
    const tmi_attn_seq *sq = &a->seqs[rest / job->slices];
    float *scores = job->scratch + (int64_t)thread * job->stride;
    for (int32_t t = slice; t < sq->q_len; t += job->slices) attend_row(job, sq, t, h, scores);
}

size_t tmi_attention_cpu_workspace(int32_t max_kv_len, int threads)
{
    if (max_kv_len <= 0) return 0;
    if (threads < 1) threads = 1;
    int64_t stride = ((int64_t)max_kv_len + ATTN_ALIGN - 1) / ATTN_ALIGN * ATTN_ALIGN;
    return (size_t)threads * (size_t)stride * sizeof(float) + 64;
}

static tm_status attention_check(const tmi_exec *ex, const tmi_attention_args *a, int32_t *max_kv_len)
{
    const tmi_kv_cache *c = &a->cache;
    tm_status st = tmi_kv_check_cache("attention", c);
    if (st != TM_OK) return st;
    if (a->n_head <= 0 || a->n_head % c->n_kv_head != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "attention: n_head must be a positive multiple of n_kv_head (%d), got %d",
                        c->n_kv_head, a->n_head);
    if (a->window < 0) return tmi_fail(TM_ERR_INVALID_ARG, "attention: window must be >= 0, got %d", a->window);
    if (a->out_dtype != TM_F32 && a->out_dtype != TM_F16 && a->out_dtype != TM_BF16)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention: out_dtype must be F32, F16 or BF16, got %d", (int)a->out_dtype);
    int64_t width = (int64_t)a->n_head * c->head_dim;
    if (!a->q || !a->out) return tmi_fail(TM_ERR_INVALID_ARG, "attention: q and out must not be NULL");
    if (a->ldq < width || a->ldo < width)
        return tmi_fail(TM_ERR_INVALID_ARG, "attention: ldq and ldo must be >= n_head * head_dim (%lld), got %lld, %lld",
                        (long long)width, (long long)a->ldq, (long long)a->ldo);
    if ((st = tmi_kv_check_seqs("attention", a->seqs, a->n_seq, c->block_len, max_kv_len)) != TM_OK) return st;
    size_t need = tmi_attention_cpu_workspace(*max_kv_len, tmi_pool_threads(ex->pool));
    if (need && (!ex->workspace || ex->workspace_bytes < need))
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "attention: workspace must hold tmi_attention_cpu_workspace(%d) = %zu bytes, got %zu",
                        *max_kv_len, need, ex->workspace ? ex->workspace_bytes : (size_t)0);
    return TM_OK;
}

tm_status tmi_attention_cpu(const tmi_exec *ex, const tmi_attention_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "attention: exec and args must not be NULL");
    if (a->defer_merge) a->defer_merge->nsplit = 0; /* no splits here: out is always written */
    if (a->n_seq == 0) return TM_OK;
    int32_t max_kv_len = 0;
    tm_status st = attention_check(ex, a, &max_kv_len);
    if (st != TM_OK) return st;
    int32_t max_q_len = 0;
    for (int32_t s = 0; s < a->n_seq; s++)
        if (a->seqs[s].q_len > max_q_len) max_q_len = a->seqs[s].q_len;
    if (max_q_len == 0) return TM_OK;

    int threads = tmi_pool_threads(ex->pool);
    attn_job job = {.a = a, .group = a->n_head / a->cache.n_kv_head};
    job.scratch = (float *)(((uintptr_t)ex->workspace + 63) & ~(uintptr_t)63);
    job.stride = ((int64_t)max_kv_len + ATTN_ALIGN - 1) / ATTN_ALIGN * ATTN_ALIGN;
    /* enough slices for ~4 tasks per thread, never more than the longest q_len */
    int64_t pairs = (int64_t)a->n_seq * a->n_head;
    int64_t slices = (4 * (int64_t)threads + pairs - 1) / pairs;
    job.slices = (int32_t)(slices < 1 ? 1 : slices > max_q_len ? max_q_len : slices);
    if (threads == 1) job.slices = 1;
    tmi_pool_run(ex->pool, attn_task, &job, pairs * job.slices);
    return TM_OK;
}

/* kv_write_cpu.c - copy the new rows' K and V of one layer into their cache slots
 * (fp32, fp16 rounded to nearest even, or INT8 / INT4 codes with online or
 * static parameters: attention.h and kv_quant.h give the layout and format). */
#include "kv_write.h"

#include "../attention/kv_quant.h"
#include "../attention/paged_kv.h"
#include "../../runtime/threadpool.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

static void store_row(void *base, tm_dtype dtype, int64_t off, const float *src, int32_t d)
{
    if (dtype == TM_F32) {
        memcpy((float *)base + off, src, (size_t)d * sizeof(float));
        return;
    }
    uint16_t *dst = (uint16_t *)base + off;
    int32_t i = 0;
#ifdef __AVX2__
    for (; i + 8 <= d; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < d; i++) dst[i] = tmi_f32_to_f16(src[i]);
}

/* One quantized row of K (v = 0) or V (v = 1): codes, and online its params. */
static void store_row_quant(const tmi_kv_cache *c, int32_t block, int32_t g, int32_t slot, int v, const float *src)
{
    int bits = tmi_kv_bits(c->dtype);
    float sz[2];
    uint8_t *base = c->base;
    int64_t voff = v ? c->v_offset : 0;
    if (c->qparams) {
        sz[0] = c->qparams[(2 * v) * c->n_kv_head + g];
        sz[1] = c->qparams[(2 * v + 1) * c->n_kv_head + g];
    } else {
        tmi_kv_row_params(src, c->head_dim, bits, &sz[0], &sz[1]);
        memcpy(base + tmi_kv_param_offset(c, block, g, slot) + voff, sz, sizeof sz);
    }
    tmi_kv_quantize_row(src, c->head_dim, bits, sz[0], sz[1], base + tmi_kv_k_offset(c, block, g, slot) + voff);
}

/* One task per sequence: its rows, every kv head, K and V. */
static void kv_write_task(void *ctx, int64_t s, int thread)
{
    const tmi_kv_write_args *a = ctx;
    const tmi_kv_cache *c = &a->cache;
    const tmi_attn_seq *sq = &a->seqs[s];
    for (int32_t t = 0; t < sq->q_len; t++) {
        int32_t p = sq->kv_len - sq->q_len + t;
        int32_t block = sq->block_table[p / c->block_len], slot = p % c->block_len;
        const float *k = a->k + (int64_t)(sq->q_start + t) * a->ldk; /* [n_kv_head][head_dim] */
        const float *v = a->v + (int64_t)(sq->q_start + t) * a->ldv;
        for (int32_t g = 0; g < c->n_kv_head; g++) {
            if (tmi_kv_is_quant(c->dtype)) {
                store_row_quant(c, block, g, slot, 0, k + (int64_t)g * c->head_dim);
                store_row_quant(c, block, g, slot, 1, v + (int64_t)g * c->head_dim);
                continue;
            }
            int64_t off = tmi_kv_k_offset(c, block, g, slot);
            store_row(c->base, c->dtype, off, k + (int64_t)g * c->head_dim, c->head_dim);
            store_row(c->base, c->dtype, off + c->v_offset, v + (int64_t)g * c->head_dim, c->head_dim);
        }
    }
}

tm_status tmi_kv_write_cpu(const tmi_exec *ex, const tmi_kv_write_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "kv_write: exec and args must not be NULL");
    if (a->n_seq == 0) return TM_OK;
    tm_status st = tmi_kv_check_cache("kv_write", &a->cache);
    if (st != TM_OK) return st;
    int32_t max_kv_len;
    if ((st = tmi_kv_check_seqs("kv_write", a->seqs, a->n_seq, a->cache.block_len, &max_kv_len)) != TM_OK)
        return st;
    int64_t width = (int64_t)a->cache.n_kv_head * a->cache.head_dim;
    if (!a->k || !a->v) return tmi_fail(TM_ERR_INVALID_ARG, "kv_write: k and v must not be NULL");
    if (a->ldk < width || a->ldv < width)
        return tmi_fail(TM_ERR_INVALID_ARG, "kv_write: ldk and ldv must be >= n_kv_head * head_dim (%lld), got %lld, %lld",
                        (long long)width, (long long)a->ldk, (long long)a->ldv);
    if ((st = tmi_kv_write_check_rope("kv_write", a)) != TM_OK) return st;
    if (tmi_sums_active(a->sums)) { /* the product into c, then as without */
        const tmi_split_sums *s = a->sums;
        int64_t rows = tmi_kv_batch_rows(a->seqs, a->n_seq);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < s->n; j++) {
                float *p = (float *)s->c + i * s->ldc + j;
                *p = tmi_sums_at(s, p, i);
            }
    }
    if (a->rope && (st = tmi_rope_cpu(ex, a->rope)) != TM_OK) return st;
    tmi_pool_run(ex->pool, kv_write_task, (void *)a, a->n_seq);
    return TM_OK;
}

tm_status tmi_kv_write_check_rope(const char *op, const tmi_kv_write_args *a)
{
    const tmi_rope_args *r = a->rope;
    int64_t rows = tmi_kv_batch_rows(a->seqs, a->n_seq);
    const char *bad = tmi_sums_invalid(a->sums, rows);
    if (bad) return tmi_fail(TM_ERR_INVALID_ARG, "%s: %s", op, bad);
    if (tmi_sums_active(a->sums) && !r) return tmi_fail(TM_ERR_INVALID_ARG, "%s: split sums need rope", op);
    if (tmi_sums_active(a->sums) &&
        (r->x < a->sums->c || r->ld != a->sums->ldc || a->v < a->sums->c || a->ldv != a->sums->ldc ||
         (r->x - a->sums->c) + (int64_t)r->n_head * r->head_dim > a->sums->n ||
         (a->v - a->sums->c) + (int64_t)a->cache.n_kv_head * a->cache.head_dim > a->sums->n))
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: rope->x, k and v must lie in the split sums' c (ld %lld)", op,
                        (long long)a->sums->ldc);
    if (!r) return TM_OK;
    const tmi_kv_cache *c = &a->cache;
    if (!r->x || r->head_dim != c->head_dim || r->head_dim % 2 || r->n_head < c->n_kv_head || r->ld != a->ldk ||
        a->k != r->x + (int64_t)(r->n_head - c->n_kv_head) * r->head_dim)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "%s: rope's last n_kv_head (%d) heads must be k (even head_dim %d, ld %lld), got %d heads of %d, "
                        "ld %lld",
                        op, c->n_kv_head, c->head_dim, (long long)a->ldk, r->n_head, r->head_dim, (long long)r->ld);
    if (r->n_tok != rows)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: rope must cover the batch's %lld rows, got %lld", op, (long long)rows,
                        (long long)r->n_tok);
    return TM_OK;
}

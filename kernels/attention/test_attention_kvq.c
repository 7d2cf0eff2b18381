/* test_attention_kvq.c - the INT8 / INT4 KV cache: exact round trips of the codes,
 * then K/V written quantized by tmi_kv_write_cpu and read by tmi_attention_cpu,
 * checked two ways on ragged batches with shuffled block tables:
 *   - against dense attention in double over the values the cache holds
 *     (dequantized here): the kernels' own arithmetic, KVQ_EXACT_TOL;
 *   - against the same kernels over an fp32 cache of the same inputs: the
 *     quantization error, KVQ_INT8_TOL / KVQ_INT4_TOL relative (L2 over the output). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/attention/kv_quant.h"
#include "kernels/attention/paged_kv.h"
#include "kernels/kv_write/kv_write.h"
#include "kernels/test_util.h"
#include "runtime/threadpool.h"

#define KVQ_EXACT_TOL 1e-5
#define KVQ_INT8_TOL 1e-2
#define KVQ_INT4_TOL 1e-1

enum { MAX_SEQ = 4, N_LAYER = 2, LAYER = 1 };

typedef struct kvq_case {
    int32_t n_head, n_kv_head, head_dim, block_len;
    int32_t n_seq;
    int32_t hist[MAX_SEQ], q_len[MAX_SEQ];
} kvq_case;

/* Round trips: |x - deq(q(x))| <= scale / 2, q(deq(q(x))) == q(x), constant rows exact. */
static void test_kvq_round_trip(void)
{
    enum { D = 66 };
    float x[D], back[D];
    uint8_t codes[D], again[D];
    for (int bits = 4; bits <= 8; bits += 4) {
        for (unsigned seed = 1; seed <= 20; seed++) {
            tt_fill_random(x, D, seed);
            for (int i = 0; i < D; i++) x[i] = x[i] * (float)seed + 0.25f * (float)seed;
            float scale, zp;
            tmi_kv_row_params(x, D, bits, &scale, &zp);
            int32_t nbytes = bits == 8 ? D : D / 2;
            tmi_kv_quantize_row(x, D, bits, scale, zp, codes);
            double worst = 0;
            for (int i = 0; i < D; i++) {
                back[i] = tmi_kv_dequant(codes, bits, i, scale, zp);
                double e = fabs((double)back[i] - x[i]);
                if (e > worst) worst = e;
            }
            /* half a step, plus fp32 rounding of (x - zp) / scale and q * scale + zp */
            if (!CHECK(worst <= 0.5 * scale + 4e-7 * (fabsf(zp) + 128.0f * scale)))
                fprintf(stderr, "  bits %d seed %u: worst %.9g, half step %.9g\n", bits, seed, worst, 0.5 * scale);
            tmi_kv_quantize_row(back, D, bits, scale, zp, again);
            CHECK(memcmp(codes, again, (size_t)nbytes) == 0);
        }
        for (int i = 0; i < D; i++) x[i] = -1.5f;
        float scale, zp;
        tmi_kv_row_params(x, D, bits, &scale, &zp);
        CHECK(scale == 0.0f && zp == -1.5f);
        tmi_kv_quantize_row(x, D, bits, scale, zp, codes);
        CHECK(tmi_kv_dequant(codes, bits, D - 1, scale, zp) == -1.5f);
    }
    /* every int4 code survives the nibble packing, low nibble first */
    uint8_t packed[8];
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (float)(i - 8);
    tmi_kv_quantize_row(v, 16, 4, 1.0f, 0.0f, packed);
    CHECK(packed[0] == 0x10);
    for (int i = 0; i < 16; i++) CHECK(tmi_kv_code_at(packed, 4, i) == (float)(i - 8));
    /* out of range clamps; int8 covers [-128, 127] */
    CHECK(tmi_kv_code(1e9f, 1.0f, 0.0f, 8) == 127 && tmi_kv_code(-1e9f, 1.0f, 0.0f, 8) == -128);
    CHECK(tmi_kv_code(9.0f, 1.0f, 0.0f, 4) == 7 && tmi_kv_code(-9.0f, 1.0f, 0.0f, 4) == -8);
    CHECK(tmi_kv_code(NAN, 1.0f, 0.0f, 8) == 0);
}

typedef struct kvq_run {
    tmi_kv_cache cache;
    int32_t *tables[MAX_SEQ];
    tmi_attn_seq all[MAX_SEQ];  /* every token as a row: what kv_write stores */
    tmi_attn_seq step[MAX_SEQ]; /* the q_len rows attention computes */
    int32_t n_all, n_step, max_kv_len;
} kvq_run;

static void run_free(kvq_run *r)
{
    for (int s = 0; s < MAX_SEQ; s++) free(r->tables[s]);
    free(r->cache.base);
}

/* A pool of the case's shape in dtype, garbage-filled (0xff: NaN params), K/V of
 * every token written through tmi_kv_write_cpu. */
static void run_build(kvq_run *r, const kvq_case *c, tm_dtype dtype, const float *qparams, const float *k,
                      const float *v, int64_t ld, tmi_pool *pool)
{
    memset(r, 0, sizeof *r);
    int64_t half = tmi_kv_half_units(dtype, c->n_kv_head, c->block_len, c->head_dim, qparams == NULL);
    r->cache = (tmi_kv_cache){.dtype = dtype, .n_kv_head = c->n_kv_head, .head_dim = c->head_dim,
                              .block_len = c->block_len, .block_stride = N_LAYER * 2 * half,
                              .layer_offset = LAYER * 2 * half, .v_offset = half, .qparams = qparams};
    int32_t n_blocks = 3;
    for (int32_t s = 0; s < c->n_seq; s++) n_blocks += (c->hist[s] + c->q_len[s] + c->block_len - 1) / c->block_len;
    size_t bytes = (size_t)(n_blocks * r->cache.block_stride) * tmi_kv_unit_bytes(dtype);
    r->cache.base = malloc(bytes);
    memset(r->cache.base, 0xff, bytes);
    int32_t next = n_blocks - 1; /* blocks handed out from the top down: tables are not the identity */
    for (int32_t s = 0; s < c->n_seq; s++) {
        int32_t kv_len = c->hist[s] + c->q_len[s], nb = (kv_len + c->block_len - 1) / c->block_len;
        r->tables[s] = malloc((size_t)(nb + 1) * sizeof(int32_t));
        for (int32_t b = 0; b < nb; b++) r->tables[s][b] = next--;
        r->all[s] = (tmi_attn_seq){.q_start = r->n_all, .q_len = kv_len, .kv_len = kv_len, .block_table = r->tables[s]};
        r->step[s] = (tmi_attn_seq){.q_start = r->n_step, .q_len = c->q_len[s], .kv_len = kv_len,
                                    .block_table = r->tables[s]};
        r->n_all += kv_len;
        r->n_step += c->q_len[s];
        if (kv_len > r->max_kv_len) r->max_kv_len = kv_len;
    }
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tmi_kv_write_args w = {.n_seq = c->n_seq, .seqs = r->all, .k = k, .ldk = ld, .v = v, .ldv = ld,
                           .cache = r->cache};
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &w), TM_OK);
}

static void run_attention(const kvq_run *r, const kvq_case *c, const float *q, int64_t ldq, float *out,
                          tmi_pool *pool)
{
    size_t ws_bytes = tmi_attention_cpu_workspace(r->max_kv_len, tmi_pool_threads(pool));
    void *ws = malloc(ws_bytes + 1);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_attention_args a = {.n_seq = c->n_seq, .seqs = r->step, .n_head = c->n_head, .q = q, .ldq = ldq,
                            .out = out, .ldo = ldq, .cache = r->cache, .scale = 1.0f / sqrtf((float)c->head_dim)};
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK);
    free(ws);
}

/* The value the quantized cache holds for element e of K (v = 0) or V of token j. */
static double cached_value(const kvq_run *r, int32_t s, int32_t j, int32_t g, int32_t e, int v)
{
    const tmi_kv_cache *c = &r->cache;
    int32_t block = r->tables[s][j / c->block_len], slot = j % c->block_len;
    float sz[2];
    if (c->qparams) {
        sz[0] = c->qparams[2 * v * c->n_kv_head + g];
        sz[1] = c->qparams[(2 * v + 1) * c->n_kv_head + g];
    } else {
        memcpy(sz, (const uint8_t *)c->base + tmi_kv_param_offset(c, block, g, slot) + (v ? c->v_offset : 0), 8);
    }
    const uint8_t *row = (const uint8_t *)c->base + tmi_kv_k_offset(c, block, g, slot) + (v ? c->v_offset : 0);
    return tmi_kv_dequant(row, tmi_kv_bits(c->dtype), e, sz[0], sz[1]);
}

/* ||out - dense attention over the cached values|| / ||that||, in double. */
static double exact_error(const kvq_run *r, const kvq_case *c, const float *q, int64_t ldq, const float *out)
{
    double err2 = 0, ref2 = 0, *w = malloc((size_t)r->max_kv_len * sizeof *w), *ref = malloc((size_t)c->head_dim * 8);
    for (int32_t s = 0; s < c->n_seq; s++)
        for (int32_t t = 0; t < c->q_len[s]; t++)
            for (int32_t h = 0; h < c->n_head; h++) {
                int32_t p = c->hist[s] + t, g = h / (c->n_head / c->n_kv_head);
                const float *qr = q + (r->step[s].q_start + t) * ldq + (int64_t)h * c->head_dim;
                double mx = -INFINITY, sum = 0;
                for (int32_t j = 0; j <= p; j++) {
                    double d = 0;
                    for (int32_t e = 0; e < c->head_dim; e++) d += qr[e] * cached_value(r, s, j, g, e, 0);
                    w[j] = d / sqrt((double)c->head_dim);
                    if (w[j] > mx) mx = w[j];
                }
                for (int32_t j = 0; j <= p; j++) sum += (w[j] = exp(w[j] - mx));
                for (int32_t e = 0; e < c->head_dim; e++) {
                    ref[e] = 0;
                    for (int32_t j = 0; j <= p; j++) ref[e] += w[j] / sum * cached_value(r, s, j, g, e, 1);
                    double d = out[(r->step[s].q_start + t) * ldq + (int64_t)h * c->head_dim + e] - ref[e];
                    err2 += d * d;
                    ref2 += ref[e] * ref[e];
                }
            }
    free(w);
    free(ref);
    return sqrt(err2 / ref2);
}

static double rel_diff(const float *a, const float *b, int64_t n)
{
    double e2 = 0, r2 = 0;
    for (int64_t i = 0; i < n; i++) {
        e2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r2 += (double)b[i] * b[i];
    }
    return sqrt(e2 / r2);
}

static void run_kvq_case(const kvq_case *c, tmi_pool *pool)
{
    int32_t n_all = 0, n_step = 0;
    for (int32_t s = 0; s < c->n_seq; s++) n_all += c->hist[s] + c->q_len[s], n_step += c->q_len[s];
    int64_t ldkv = (int64_t)c->n_kv_head * c->head_dim + 2, ldq = (int64_t)c->n_head * c->head_dim;
    float *k = malloc((size_t)(n_all * ldkv) * 4), *v = malloc((size_t)(n_all * ldkv) * 4);
    float *q = malloc((size_t)(n_step * ldq) * 4), *ref = malloc((size_t)(n_step * ldq) * 4);
    float *out = malloc((size_t)(n_step * ldq) * 4), qp[4 * 16];
    tt_fill_random(k, n_all * ldkv, 11);
    tt_fill_random(v, n_all * ldkv, 12);
    tt_fill_random(q, n_step * ldq, 13);
    for (int64_t i = 0; i < n_all * ldkv; i++) k[i] = 2.0f * k[i] + 0.5f; /* off-centre, like real keys */
    for (int64_t i = 0; i < n_step * ldq; i++) q[i] *= 2.0f;

    kvq_run r;
    run_build(&r, c, TM_F32, NULL, k, v, ldkv, pool);
    run_attention(&r, c, q, ldq, ref, pool);
    run_free(&r);
    const tm_dtype kinds[2] = {TM_I8, TMI_KV_INT4};
    for (int kind = 0; kind < 2; kind++)
        for (int st = 0; st < 2; st++) {
            if (st)
                tt_kv_static_params(k, ldkv, v, ldkv, n_all, c->n_kv_head, c->head_dim, tmi_kv_bits(kinds[kind]), 1.0f,
                                    qp);
            run_build(&r, c, kinds[kind], st ? qp : NULL, k, v, ldkv, pool);
            run_attention(&r, c, q, ldq, out, pool);
            double exact = exact_error(&r, c, q, ldq, out), quant = rel_diff(out, ref, n_step * ldq);
            double tol = kinds[kind] == TM_I8 ? KVQ_INT8_TOL : KVQ_INT4_TOL;
            if (!CHECK(exact < KVQ_EXACT_TOL) || !CHECK(quant < tol) || !CHECK(quant > 0))
                fprintf(stderr, "  heads %d/%d head_dim %d block_len %d %s %s: exact %.3g quant %.3g\n", c->n_head,
                        c->n_kv_head, c->head_dim, c->block_len, kind ? "int4" : "int8", st ? "static" : "online",
                        exact, quant);
            run_free(&r);
        }
    free(k), free(v), free(q), free(ref), free(out);
}

static tmi_pool *pool2;

/* Decode rows over history, prefill chunks that attend to their own quantized
 * keys, GQA 1..4, block_len 1, 3, 16, head_dim 2 .. 128. */
static void test_kvq_attention(void)
{
    static const kvq_case cases[] = {
        {1, 1, 2, 1, 1, {0}, {3}},
        {2, 1, 8, 3, 2, {5, 0}, {1, 7}},
        {4, 2, 16, 16, 3, {40, 0, 17}, {1, 33, 2}},
        {6, 2, 64, 16, 2, {70, 3}, {1, 20}},
        {8, 2, 128, 3, 2, {9, 0}, {2, 12}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_kvq_case(&cases[i], NULL);
        run_kvq_case(&cases[i], pool2);
    }
}

static void test_kvq_layout_errors(void)
{
    int8_t pool[4096];
    tmi_kv_cache c = {.base = pool, .dtype = TM_I8, .n_kv_head = 2, .head_dim = 8, .block_len = 4};
    c.v_offset = tmi_kv_half_units(TM_I8, 2, 4, 8, 1);
    CHECK(c.v_offset == 2 * 4 * (8 + 8));
    c.block_stride = 2 * c.v_offset;
    CHECK_STATUS(tmi_kv_check_cache("t", &c), TM_OK);
    c.v_offset -= 1; /* online params do not fit */
    CHECK_STATUS(tmi_kv_check_cache("t", &c), TM_ERR_INVALID_ARG);
    float qp[8] = {0};
    c.qparams = qp; /* static blocks hold codes only */
    c.v_offset = tmi_kv_half_units(TM_I8, 2, 4, 8, 0);
    CHECK(c.v_offset == 2 * 4 * 8);
    CHECK_STATUS(tmi_kv_check_cache("t", &c), TM_OK);
    c.dtype = TMI_KV_INT4;
    CHECK(tmi_kv_half_units(TMI_KV_INT4, 2, 4, 8, 1) == 2 * 4 * (4 + 8));
    c.head_dim = 7;
    CHECK_STATUS(tmi_kv_check_cache("t", &c), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "even head_dim") != NULL);
    c.head_dim = 8;
    c.dtype = (tm_dtype)63;
    CHECK_STATUS(tmi_kv_check_cache("t", &c), TM_ERR_UNSUPPORTED);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) return 1;
    RUN(test_kvq_round_trip);
    RUN(test_kvq_attention);
    RUN(test_kvq_layout_errors);
    tmi_pool_destroy(pool2);
    return tt_finish();
}

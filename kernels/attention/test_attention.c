/* test_attention.c - tmi_attention_cpu against dense causal attention computed
 * here in double, with K/V scattered through shuffled block tables into a pool
 * whose every other element is NaN (so a read outside the sequence shows). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/paged_kv.h"
#include "kernels/registry.h"
#include "runtime/threadpool.h"

/* ||out - ref|| / ||ref||, fp32 scores, softmax and accumulation. */
#define ATTN_REL_TOL 1e-5

enum { MAX_SEQ = 6 };

typedef struct attn_case {
    int32_t n_head, n_kv_head, head_dim, block_len, window;
    tm_dtype dtype;
    int32_t n_seq;
    int32_t hist[MAX_SEQ], q_len[MAX_SEQ];
} attn_case;

typedef struct attn_fixture {
    tmi_attn_seq seqs[MAX_SEQ];
    int32_t *tables[MAX_SEQ];
    float *dense_k[MAX_SEQ], *dense_v[MAX_SEQ]; /* [kv_len][n_kv_head][head_dim], as stored */
    tmi_kv_cache cache;
    int64_t pool_elems;
    int32_t n_tok, max_kv_len;
} attn_fixture;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static void pool_put(tmi_kv_cache *c, int64_t off, float x)
{
    if (c->dtype == TM_F32) ((float *)c->base)[off] = x;
    else ((uint16_t *)c->base)[off] = tmi_f32_to_f16(x);
}

/* Builds the sequences (rows in reverse order of sequences), shuffled block
 * tables and a NaN-filled pool holding each sequence's K/V. */
static void fixture_build(attn_fixture *f, const attn_case *c)
{
    memset(f, 0, sizeof *f);
    const int32_t n_layer = 3, layer = 2;
    int64_t kv_elems = (int64_t)c->n_kv_head * c->block_len * c->head_dim;
    f->cache = (tmi_kv_cache){.dtype = c->dtype, .n_kv_head = c->n_kv_head, .head_dim = c->head_dim,
                              .block_len = c->block_len, .block_stride = n_layer * 2 * kv_elems,
                              .layer_offset = layer * 2 * kv_elems, .v_offset = kv_elems};
    int32_t n_blocks = 4; /* spare blocks nobody owns */
    for (int32_t s = 0; s < c->n_seq; s++) n_blocks += (c->hist[s] + c->q_len[s] + c->block_len - 1) / c->block_len;
    int32_t *perm = malloc((size_t)n_blocks * sizeof *perm);
    uint64_t r = 0x9E3779B97F4A7C15ull ^ (uint64_t)n_blocks;
    for (int32_t b = 0; b < n_blocks; b++) perm[b] = b;
    for (int32_t b = n_blocks - 1; b > 0; b--) {
        int32_t j = (int32_t)(rng_next(&r) % (uint64_t)(b + 1)), t = perm[b];
        perm[b] = perm[j], perm[j] = t;
    }
    f->pool_elems = n_blocks * f->cache.block_stride;
    f->cache.base = malloc((size_t)f->pool_elems * 4);
    for (int64_t i = 0; i < f->pool_elems; i++) pool_put(&f->cache, i, NAN);

    int32_t next = 0, row = 0;
    for (int32_t s = 0; s < c->n_seq; s++) row += c->q_len[s];
    f->n_tok = row;
    for (int32_t s = 0; s < c->n_seq; s++) {
        int32_t kv_len = c->hist[s] + c->q_len[s], nb = (kv_len + c->block_len - 1) / c->block_len;
        row -= c->q_len[s];
        f->tables[s] = malloc((size_t)(nb + 1) * sizeof(int32_t));
        for (int32_t b = 0; b < nb; b++) f->tables[s][b] = perm[next++];
        f->seqs[s] = (tmi_attn_seq){.q_start = row, .q_len = c->q_len[s], .kv_len = kv_len, .block_table = f->tables[s]};
        if (kv_len > f->max_kv_len) f->max_kv_len = kv_len;
        int64_t n = (int64_t)kv_len * c->n_kv_head * c->head_dim;
        f->dense_k[s] = malloc((size_t)(n + 1) * sizeof(float));
        f->dense_v[s] = malloc((size_t)(n + 1) * sizeof(float));
        tt_fill_random(f->dense_k[s], n, 100 + (unsigned long long)s);
        tt_fill_random(f->dense_v[s], n, 200 + (unsigned long long)s);
        for (int32_t j = 0; j < kv_len; j++)
            for (int32_t g = 0; g < c->n_kv_head; g++)
                for (int32_t e = 0; e < c->head_dim; e++) {
                    int64_t di = ((int64_t)j * c->n_kv_head + g) * c->head_dim + e;
                    int64_t off = f->tables[s][j / c->block_len] * f->cache.block_stride + f->cache.layer_offset +
                                  ((int64_t)g * c->block_len + j % c->block_len) * c->head_dim + e;
                    pool_put(&f->cache, off, f->dense_k[s][di]);
                    pool_put(&f->cache, off + kv_elems, f->dense_v[s][di]);
                    if (c->dtype == TM_F16) { /* the reference sees what the cache holds */
                        f->dense_k[s][di] = tmi_f16_to_f32(tmi_f32_to_f16(f->dense_k[s][di]));
                        f->dense_v[s][di] = tmi_f16_to_f32(tmi_f32_to_f16(f->dense_v[s][di]));
                    }
                }
    }
    free(perm);
}

static void fixture_free(attn_fixture *f)
{
    for (int32_t s = 0; s < MAX_SEQ; s++) {
        free(f->tables[s]);
        free(f->dense_k[s]);
        free(f->dense_v[s]);
    }
    free(f->cache.base);
}

/* Dense causal attention of one row and head, in double, into ref[head_dim]. */
static void reference_row(const attn_case *c, const attn_fixture *f, int32_t s, int32_t t, int32_t h,
                          const float *q, double *ref)
{
    int32_t p = f->seqs[s].kv_len - f->seqs[s].q_len + t, g = h / (c->n_head / c->n_kv_head);
    int32_t j0 = c->window > 0 && p - c->window + 1 > 0 ? p - c->window + 1 : 0;
    double scale = 1.0 / sqrt((double)c->head_dim), mx = -INFINITY, sum = 0;
    double *w = malloc((size_t)(p + 1) * sizeof *w);
    for (int32_t j = j0; j <= p; j++) {
        const float *k = f->dense_k[s] + ((int64_t)j * c->n_kv_head + g) * c->head_dim;
        double d = 0;
        for (int32_t e = 0; e < c->head_dim; e++) d += (double)q[e] * k[e];
        w[j] = d * scale;
        if (w[j] > mx) mx = w[j];
    }
    for (int32_t j = j0; j <= p; j++) sum += (w[j] = exp(w[j] - mx));
    for (int32_t e = 0; e < c->head_dim; e++) ref[e] = 0;
    for (int32_t j = j0; j <= p; j++) {
        const float *v = f->dense_v[s] + ((int64_t)j * c->n_kv_head + g) * c->head_dim;
        for (int32_t e = 0; e < c->head_dim; e++) ref[e] += w[j] / sum * v[e];
    }
    free(w);
}

static void run_case(const attn_case *c, tmi_pool *pool)
{
    attn_fixture f;
    fixture_build(&f, c);
    int64_t width = (int64_t)c->n_head * c->head_dim, ldq = width + 3, ldo = width + 1;
    float *q = malloc((size_t)(f.n_tok * ldq + 1) * sizeof *q);   /* [n_tok][ldq] */
    float *out = malloc((size_t)(f.n_tok * ldo + 1) * sizeof *out); /* [n_tok][ldo] */
    tt_fill_random(q, f.n_tok * ldq, 7);
    for (int64_t i = 0; i < f.n_tok * ldq; i++) q[i] *= 3.0f; /* peakier softmax */
    for (int64_t i = 0; i < f.n_tok * ldo; i++) out[i] = NAN;
    size_t ws_bytes = tmi_attention_cpu_workspace(f.max_kv_len, tmi_pool_threads(pool));
    void *ws = malloc(ws_bytes + 1);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_attention_args a = {.n_seq = c->n_seq, .seqs = f.seqs, .n_head = c->n_head, .q = q, .ldq = ldq, .out = out,
                            .ldo = ldo, .cache = f.cache, .scale = 1.0f / sqrtf((float)c->head_dim),
                            .window = c->window};
    if (CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK)) {
        double err2 = 0, ref2 = 0;
        int pad_ok = 1;
        double *ref = malloc((size_t)c->head_dim * sizeof *ref);
        for (int32_t s = 0; s < c->n_seq; s++)
            for (int32_t t = 0; t < f.seqs[s].q_len; t++) {
                int64_t row = f.seqs[s].q_start + t;
                for (int32_t h = 0; h < c->n_head; h++) {
                    reference_row(c, &f, s, t, h, q + row * ldq + (int64_t)h * c->head_dim, ref);
                    for (int32_t e = 0; e < c->head_dim; e++) {
                        double d = out[row * ldo + (int64_t)h * c->head_dim + e] - ref[e];
                        err2 += d * d;
                        ref2 += ref[e] * ref[e];
                    }
                }
                pad_ok &= isnan(out[row * ldo + width]);
            }
        double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
        if (!CHECK(rel < ATTN_REL_TOL) || !CHECK(pad_ok))
            fprintf(stderr, "  heads %d/%d head_dim %d block_len %d window %d dtype %d threads %d: rel %.3g\n",
                    c->n_head, c->n_kv_head, c->head_dim, c->block_len, c->window, (int)c->dtype,
                    tmi_pool_threads(pool), rel);
        free(ref);
    }
    free(q);
    free(out);
    free(ws);
    fixture_free(&f);
}

static tmi_pool *pool2, *pool3;

/* GQA ratios 1, 2, 4; block_len 1, 3, 16; window on and off; F32 and F16 caches;
 * batches that mix prefill (no history), chunked prefill, decode and idle rows. */
static void test_attention_cases(void)
{
    static const attn_case cases[] = {
        {1, 1, 4, 1, 0, TM_F32, 1, {0}, {1}},
        {2, 2, 8, 1, 0, TM_F32, 3, {0, 4, 9}, {5, 1, 3}},
        {4, 2, 16, 3, 0, TM_F32, 4, {0, 7, 2, 5}, {6, 1, 0, 9}},
        {8, 2, 32, 16, 0, TM_F16, 3, {0, 40, 15}, {33, 1, 17}},
        {8, 8, 64, 16, 5, TM_F32, 3, {0, 40, 3}, {20, 1, 4}},
        {4, 1, 8, 3, 4, TM_F16, 4, {10, 0, 1, 30}, {3, 13, 1, 2}},
        {6, 3, 12, 1, 2, TM_F16, 2, {3, 0}, {1, 7}},
        {16, 4, 128, 16, 64, TM_F32, 2, {100, 0}, {1, 90}},
        {4, 4, 20, 3, 100, TM_F32, 2, {5, 0}, {4, 1}}, /* window past every sequence */
        {2, 1, 8, 16, 0, TM_F32, 5, {0, 0, 3, 0, 0}, {0, 1, 0, 0, 2}}, /* idle sequences */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_case(&cases[i], NULL);
        run_case(&cases[i], pool2);
        run_case(&cases[i], pool3);
    }
}

/* out may share q's storage: each (row, head) reads its q before writing. */
static void test_attention_in_place(void)
{
    attn_case c = {4, 2, 16, 3, 0, TM_F32, 2, {3, 0}, {2, 5}};
    attn_fixture f;
    fixture_build(&f, &c);
    int64_t ld = 4 * 16;
    float *q = malloc((size_t)(f.n_tok * ld) * sizeof *q), *q0 = malloc((size_t)(f.n_tok * ld) * sizeof *q0);
    float *out = malloc((size_t)(f.n_tok * ld) * sizeof *out);
    tt_fill_random(q, f.n_tok * ld, 3);
    memcpy(q0, q, (size_t)(f.n_tok * ld) * sizeof *q);
    size_t ws_bytes = tmi_attention_cpu_workspace(f.max_kv_len, 2);
    void *ws = malloc(ws_bytes);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool2, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_attention_args a = {.n_seq = 2, .seqs = f.seqs, .n_head = 4, .q = q0, .ldq = ld, .out = out, .ldo = ld,
                            .cache = f.cache, .scale = 0.25f};
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK);
    a.q = q;
    a.out = q;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK);
    CHECK(memcmp(q, out, (size_t)(f.n_tok * ld) * sizeof *q) == 0);
    free(q);
    free(q0);
    free(out);
    free(ws);
    fixture_free(&f);
}

static void test_attention_errors(void)
{
    attn_case c = {4, 2, 8, 3, 0, TM_F32, 1, {2}, {3}};
    attn_fixture f;
    fixture_build(&f, &c);
    float q[3 * 32] = {0}, out[3 * 32];
    size_t ws_bytes = tmi_attention_cpu_workspace(f.max_kv_len, 1);
    void *ws = malloc(ws_bytes);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_attention_args a = {.n_seq = 1, .seqs = f.seqs, .n_head = 4, .q = q, .ldq = 32, .out = out, .ldo = 32,
                            .cache = f.cache, .scale = 0.3f};
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK);
    a.n_head = 3; /* not a multiple of 2 kv heads */
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "multiple of n_kv_head") != NULL);
    a.n_head = 4;
    f.seqs[0].q_len = 6;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    f.seqs[0].q_len = 3;
    f.tables[0][1] = -1;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "block_table[1] = -1") != NULL);
    f.tables[0][1] = 0;
    a.cache.dtype = TM_BF16;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_UNSUPPORTED);
    a.cache.dtype = TM_F32;
    ex.workspace_bytes = ws_bytes - 1;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "workspace") != NULL);
    ex.workspace_bytes = ws_bytes;
    a.ldo = 31;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.ldo = 32;
    a.window = -1;
    CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(tmi_ops_get(TM_BACKEND_CPU)->attention == tmi_attention_cpu);
    CHECK(tmi_attention_cpu_workspace(0, 4) == 0);
    CHECK(tmi_attention_cpu_workspace(4096, 4) >= tmi_attention_cpu_workspace(100, 2));
    free(ws);
    fixture_free(&f);
}

/* F16 / BF16 out: the same fp32 row, rounded to nearest even (bit for bit what the
 * F32 run gives, converted), and nothing written past each row's width. */
static void test_attention_out_dtype(void)
{
    static const attn_case cases[] = {
        {8, 2, 32, 16, 0, TM_F16, 3, {0, 40, 15}, {33, 1, 17}},
        {4, 1, 300, 3, 4, TM_F32, 2, {10, 0}, {3, 13}}, /* head_dim > one 256-dim pass */
        {2, 1, 8, 16, 0, TM_I8, 1, {0}, {1}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        attn_case c = cases[ci];
        int quant = c.dtype == TM_I8;
        if (quant) c.dtype = TM_F32; /* the fixture builds float pools; the quantized kinds below */
        attn_fixture f;
        fixture_build(&f, &c);
        tmi_kv_cache cache = f.cache;
        uint8_t *qpool = NULL;
        float qp[4] = {0.02f, 0.1f, 0.03f, -0.2f};
        if (quant) { /* static INT8 codes from a counter: any codes are valid */
            int64_t half = tmi_kv_half_units(TM_I8, 1, c.block_len, c.head_dim, 0);
            cache = (tmi_kv_cache){.dtype = TM_I8, .n_kv_head = 1, .head_dim = c.head_dim, .block_len = c.block_len,
                                   .block_stride = 2 * half, .v_offset = half, .qparams = qp};
            qpool = malloc((size_t)(8 * 2 * half));
            for (int64_t i = 0; i < 8 * 2 * half; i++) qpool[i] = (uint8_t)(i * 37 + 11);
            cache.base = qpool;
        }
        int64_t width = (int64_t)c.n_head * c.head_dim, ldq = width + 3, ldo = width + 2;
        float *q = malloc((size_t)(f.n_tok * ldq) * sizeof *q), *o32 = malloc((size_t)(f.n_tok * ldo) * sizeof *o32);
        uint16_t *o16 = malloc((size_t)(f.n_tok * ldo) * sizeof *o16);
        tt_fill_random(q, f.n_tok * ldq, 31 + ci);
        size_t ws_bytes = tmi_attention_cpu_workspace(f.max_kv_len, tmi_pool_threads(pool2));
        void *ws = malloc(ws_bytes);
        tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool2, .workspace = ws, .workspace_bytes = ws_bytes};
        tmi_attention_args a = {.n_seq = c.n_seq, .seqs = f.seqs, .n_head = c.n_head, .q = q, .ldq = ldq, .out = o32,
                                .ldo = ldo, .cache = cache, .scale = 1.0f / sqrtf((float)c.head_dim)};
        CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK);
        for (int k = 0; k < 2; k++) {
            tm_dtype dt = k ? TM_BF16 : TM_F16;
            for (int64_t i = 0; i < f.n_tok * ldo; i++) o16[i] = 0xabcd;
            a.out = o16;
            a.out_dtype = dt;
            CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_OK);
            int64_t bad = 0, pad = 0;
            for (int64_t r = 0; r < f.n_tok; r++)
                for (int64_t e = 0; e < ldo; e++) {
                    uint16_t want = dt == TM_F16 ? tmi_f32_to_f16(o32[r * ldo + e]) : tmi_f32_to_bf16(o32[r * ldo + e]);
                    if (e < width) bad += o16[r * ldo + e] != want;
                    else pad += o16[r * ldo + e] != 0xabcd;
                }
            if (!CHECK(bad == 0) || !CHECK(pad == 0))
                fprintf(stderr, "  case %zu %s: %lld wrong, %lld padding written\n", ci, tm_dtype_name(dt),
                        (long long)bad, (long long)pad);
        }
        a.out_dtype = TM_I8;
        CHECK_STATUS(tmi_attention_cpu(&ex, &a), TM_ERR_UNSUPPORTED);
        CHECK(strstr(tm_last_error(), "out_dtype") != NULL);
        free(q), free(o32), free(o16), free(ws), free(qpool);
        fixture_free(&f);
    }
}

/* tmi_kv_meta_fill: meta[n_seq][4] then the block tables back to back; strided, each
 * table at a fixed offset. */
static void test_kv_meta_layout(void)
{
    int32_t t0[3] = {7, 2, 9}, t2[1] = {4};
    tmi_attn_seq seqs[3] = {{.q_start = 0, .q_len = 1, .kv_len = 33, .block_table = t0},
                            {.q_start = 1, .q_len = 0, .kv_len = 0, .block_table = NULL},
                            {.q_start = 1, .q_len = 5, .kv_len = 5, .block_table = t2}};
    CHECK(tmi_kv_meta_ints(seqs, 3, 16) == 12 + 3 + 0 + 1);
    CHECK(tmi_kv_meta_ints(seqs, 0, 16) == 0);
    int32_t buf[17];
    buf[16] = -77;
    tmi_kv_meta_fill(buf, seqs, 3, 16);
    const int32_t want[16] = {0, 1, 33, 0, 1, 0, 0, 3, 1, 5, 5, 3, 7, 2, 9, 4};
    CHECK(memcmp(buf, want, sizeof want) == 0);
    CHECK(buf[16] == -77);
    /* strided (a graph's fixed layout): sequence s's table at s * 4, the gaps untouched */
    int32_t fixed[12 + 12 + 1];
    for (int i = 0; i < 25; i++) fixed[i] = -1;
    tmi_kv_meta_fill_strided(fixed, seqs, 3, 16, 4);
    const int32_t want_fixed[24] = {0, 1, 33, 0, 1, 0, 0, 4, 1, 5, 5, 8, 7, 2, 9, -1, -1, -1, -1, -1, 4, -1, -1, -1};
    CHECK(memcmp(fixed, want_fixed, sizeof want_fixed) == 0);
    CHECK(fixed[24] == -1);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK || tmi_pool_create(3, &pool3) != TM_OK) return 1;
    RUN(test_attention_cases);
    RUN(test_attention_in_place);
    RUN(test_attention_errors);
    RUN(test_attention_out_dtype);
    RUN(test_kv_meta_layout);
    tmi_pool_destroy(pool2);
    tmi_pool_destroy(pool3);
    return tt_finish();
}

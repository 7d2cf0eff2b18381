/* test_kv_write.c - tmi_kv_write_cpu puts each new row's K and V, per kv head, in
 * the slot its position names, through shuffled block tables, and nowhere else. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/kv_write/kv_write.h"
#include "kernels/registry.h"
#include "kernels/test_util.h"
#include "runtime/threadpool.h"

static const float SENTINEL = 777.0f;

typedef struct kv_case {
    int32_t n_kv_head, head_dim, block_len;
    tm_dtype dtype;
    int32_t n_seq;
    int32_t hist[4], q_len[4]; /* history kept in the cache, new rows */
} kv_case;

static float pool_get(const void *base, tm_dtype dt, int64_t i) { return tmi_load_f32(base, dt, i); }

static void run_case(const kv_case *c, tmi_pool *pool)
{
    const int32_t n_layer = 2, layer = 1;
    int64_t kv_elems = (int64_t)c->n_kv_head * c->block_len * c->head_dim;
    tmi_kv_cache cache = {.dtype = c->dtype, .n_kv_head = c->n_kv_head, .head_dim = c->head_dim,
                          .block_len = c->block_len, .v_offset = kv_elems};
    cache.block_stride = n_layer * 2 * kv_elems + 5; /* a loose stride on purpose */
    cache.layer_offset = layer * 2 * kv_elems;
    tmi_attn_seq seqs[4];
    int32_t tables[4][64];
    int32_t n_blocks = 0, n_tok = 0;
    for (int32_t s = 0; s < c->n_seq; s++) {
        int32_t kv_len = c->hist[s] + c->q_len[s];
        seqs[s] = (tmi_attn_seq){.q_start = n_tok, .q_len = c->q_len[s], .kv_len = kv_len, .block_table = tables[s]};
        n_tok += c->q_len[s];
        n_blocks += (kv_len + c->block_len - 1) / c->block_len;
    }
    n_blocks += 3; /* blocks nobody owns */
    /* hand out block ids in a shuffled order */
    int32_t *perm = malloc((size_t)n_blocks * sizeof *perm);
    for (int32_t b = 0; b < n_blocks; b++) perm[b] = b;
    unsigned long long r = 88172645463325252ull;
    for (int32_t b = n_blocks - 1; b > 0; b--) { /* Fisher-Yates */
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int32_t j = (int32_t)(r % (unsigned long long)(b + 1)), t = perm[b];
        perm[b] = perm[j], perm[j] = t;
    }
    int32_t next = 0;
    for (int32_t s = 0; s < c->n_seq; s++)
        for (int32_t b = 0; b < (seqs[s].kv_len + c->block_len - 1) / c->block_len; b++) tables[s][b] = perm[next++];

    int64_t pool_elems = n_blocks * cache.block_stride;
    size_t es = c->dtype == TM_F32 ? 4 : 2;
    cache.base = malloc((size_t)pool_elems * es);
    for (int64_t i = 0; i < pool_elems; i++) {
        if (c->dtype == TM_F32) ((float *)cache.base)[i] = SENTINEL;
        else ((uint16_t *)cache.base)[i] = tmi_f32_to_f16(SENTINEL);
    }
    int64_t width = (int64_t)c->n_kv_head * c->head_dim, ldk = width + 2, ldv = width + 7;
    float *k = malloc((size_t)(n_tok * ldk + 1) * sizeof *k); /* [n_tok][ldk] */
    float *v = malloc((size_t)(n_tok * ldv + 1) * sizeof *v); /* [n_tok][ldv] */
    tt_fill_random(k, n_tok * ldk, 11);
    tt_fill_random(v, n_tok * ldv, 12);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tmi_kv_write_args a = {.n_seq = c->n_seq, .seqs = seqs, .k = k, .ldk = ldk, .v = v, .ldv = ldv, .cache = cache};
    if (CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_OK)) {
        int64_t bad = 0, written = 0;
        for (int32_t s = 0; s < c->n_seq; s++)
            for (int32_t t = 0; t < seqs[s].q_len; t++) {
                int32_t p = seqs[s].kv_len - seqs[s].q_len + t;
                int64_t blk = tables[s][p / c->block_len], slot = p % c->block_len;
                for (int32_t g = 0; g < c->n_kv_head; g++)
                    for (int32_t e = 0; e < c->head_dim; e++) {
                        int64_t off = blk * cache.block_stride + cache.layer_offset +
                                      ((int64_t)g * c->block_len + slot) * c->head_dim + e;
                        float kw = k[(seqs[s].q_start + t) * ldk + g * c->head_dim + e];
                        float vw = v[(seqs[s].q_start + t) * ldv + g * c->head_dim + e];
                        if (c->dtype == TM_F16) {
                            kw = tmi_f16_to_f32(tmi_f32_to_f16(kw));
                            vw = tmi_f16_to_f32(tmi_f32_to_f16(vw));
                        }
                        bad += pool_get(cache.base, c->dtype, off) != kw;
                        bad += pool_get(cache.base, c->dtype, off + kv_elems) != vw;
                        written += 2;
                    }
            }
        int64_t untouched = 0;
        for (int64_t i = 0; i < pool_elems; i++) untouched += pool_get(cache.base, c->dtype, i) == SENTINEL;
        if (!CHECK(bad == 0) || !CHECK(untouched == pool_elems - written)) /* nothing else was written */
            fprintf(stderr, "  heads=%d head_dim=%d block_len=%d dtype=%d: %lld wrong, %lld of %lld untouched\n",
                    c->n_kv_head, c->head_dim, c->block_len, (int)c->dtype, (long long)bad, (long long)untouched,
                    (long long)(pool_elems - written));
    }
    free(perm);
    free(cache.base);
    free(k);
    free(v);
}

static tmi_pool *pool2;

static void test_kv_write_cases(void)
{
    static const kv_case cases[] = {
        {1, 4, 1, TM_F32, 1, {0}, {1}},
        {2, 8, 3, TM_F32, 3, {0, 5, 2}, {7, 1, 0}},
        {2, 8, 3, TM_F16, 3, {0, 5, 2}, {7, 1, 0}},
        {4, 64, 16, TM_F16, 4, {0, 31, 16, 100}, {33, 1, 16, 3}},
        {8, 13, 16, TM_F32, 2, {15, 0}, {2, 17}},
        {1, 128, 4, TM_F16, 2, {3, 0}, {0, 0}},
        {3, 13, 5, TM_F16, 2, {6, 0}, {4, 9}}, /* a head_dim with a scalar tail */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], i & 1 ? pool2 : NULL);
}

static void test_kv_write_errors(void)
{
    float pool_mem[2 * 2 * 4 * 2] = {0}, k[8] = {0}, v[8] = {0};
    int32_t table[2] = {0, 1};
    tmi_attn_seq seq = {.q_start = 0, .q_len = 2, .kv_len = 4, .block_table = table};
    tmi_kv_cache cache = {.base = pool_mem, .dtype = TM_F32, .n_kv_head = 1, .head_dim = 4, .block_len = 2,
                          .block_stride = 16, .layer_offset = 0, .v_offset = 8};
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_kv_write_args a = {.n_seq = 1, .seqs = &seq, .k = k, .ldk = 4, .v = v, .ldv = 4, .cache = cache};
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_OK);
    table[1] = -2;
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "block_table[1] = -2") != NULL);
    table[1] = 1;
    seq.q_len = 5;
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "q_len <= kv_len") != NULL);
    seq.q_len = 2;
    a.cache.dtype = TM_BF16; /* I8 and INT4 are test_attention_kvq's */
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_UNSUPPORTED);
    a.cache.dtype = TM_F32;
    a.cache.v_offset = 4; /* V would overlap K */
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.cache.v_offset = 8;
    a.ldk = 3;
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(tmi_ops_get(TM_BACKEND_CPU)->kv_write == tmi_kv_write_cpu);
}

/* With rope the op is tmi_rope_cpu and then the plain write, bit for bit: the same
 * pool and the same rotated q and k.  With the QKV GEMM's split sums too (common.h)
 * it reads q, k and v as the sums (the CPU twin writes them into C first, which is
 * NaN here): the same again as rope + write over the C they add up to.  Rope
 * arguments that break its rule fail, and so do sums without rope or not holding
 * x and v. */
static void rope_case(int with_sums)
{
    enum { N_Q = 4, N_KV = 2, HD = 8, BL = 4, ROWS = 3, LD = (N_Q + 2 * N_KV) * HD, SPLITS = 3 };
    int32_t table[2] = {1, 0}, pos[ROWS] = {3, 4, 5};
    tmi_attn_seq seq = {.q_start = 0, .q_len = ROWS, .kv_len = 6, .block_table = table};
    static float part[SPLITS * ROWS * LD], bias[LD], x1[ROWS * LD], x2[ROWS * LD];
    float inv_freq[HD / 2], pool1[2 * 2 * N_KV * BL * HD], pool2[sizeof pool1 / 4];
    tt_fill_random(bias, LD, 61);
    tt_split_sums_fill(part, SPLITS, ROWS, LD, bias, x1, LD, 62);
    for (int i = 0; i < ROWS * LD; i++) x2[i] = with_sums ? NAN : x1[i];
    for (int i = 0; i < HD / 2; i++) inv_freq[i] = powf(10000.0f, -2.0f * (float)i / HD);
    for (size_t i = 0; i < sizeof pool1 / 4; i++) pool1[i] = pool2[i] = SENTINEL;
    tmi_kv_cache cache = {.base = pool1, .dtype = TM_F32, .n_kv_head = N_KV, .head_dim = HD, .block_len = BL,
                          .v_offset = N_KV * BL * HD, .block_stride = 2 * N_KV * BL * HD};
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_rope_args r = {.n_tok = ROWS, .n_head = N_Q + N_KV, .head_dim = HD, .x = x1, .ld = LD, .pos = pos,
                       .inv_freq = inv_freq, .attn_factor = 1.0f};
    tmi_kv_write_args a = {.n_seq = 1, .seqs = &seq, .k = x1 + N_Q * HD, .ldk = LD, .v = x1 + (N_Q + N_KV) * HD,
                           .ldv = LD, .cache = cache};
    CHECK_STATUS(tmi_rope_cpu(&ex, &r), TM_OK);
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_OK);
    tmi_split_sums s = {.splits = SPLITS, .part = part, .m = ROWS, .n = LD, .c = x2, .ldc = LD, .bias = bias,
                        .bias_dtype = TM_F32};
    r.x = x2;
    a.k = x2 + N_Q * HD;
    a.v = x2 + (N_Q + N_KV) * HD;
    a.cache.base = pool2;
    a.rope = &r;
    a.sums = with_sums ? &s : NULL;
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_OK);
    CHECK(memcmp(x1, x2, sizeof x1) == 0);
    CHECK(memcmp(pool1, pool2, sizeof pool1) == 0);
    if (with_sums) {
        a.rope = NULL;
        CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
        CHECK(strstr(tm_last_error(), "split sums need rope") != NULL);
        a.rope = &r;
        s.n = LD - 1; /* v's last column outside the sums */
        CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
        CHECK(strstr(tm_last_error(), "must lie in the split sums' c") != NULL);
        s.n = LD;
        s.part = NULL;
        CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
        return;
    }
    tmi_rope_args bad = r;
    bad.n_head = N_Q; /* k is not its last heads */
    a.rope = &bad;
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    bad = r;
    bad.n_tok = ROWS - 1;
    CHECK_STATUS(tmi_kv_write_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "must cover the batch's 3 rows, got 2") != NULL);
}

static void test_kv_write_rope(void) { rope_case(0); }

static void test_kv_write_split_sums(void) { rope_case(1); }

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) return 1;
    RUN(test_kv_write_cases);
    RUN(test_kv_write_errors);
    RUN(test_kv_write_rope);
    RUN(test_kv_write_split_sums);
    tmi_pool_destroy(pool2);
    return tt_finish();
}

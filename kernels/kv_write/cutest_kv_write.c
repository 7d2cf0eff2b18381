/* cutest_kv_write.c - tmi_kv_write_cuda against tmi_kv_write_cpu on the GPU
 * machine: F32, F16, INT8 and INT4 pools (online and static params) poisoned with
 * 0xff bytes (NaN for the float kinds), ragged batches with shuffled block tables,
 * rows landing mid-block after a history, aligned and misaligned layouts, a
 * constant row (zero scale) and static params that clamp; the packed-metadata and
 * meta_dev paths.  The whole pool must come out bit-identical; with RoPE fused in,
 * within RoPE's rounding. */
#include "harness.h"
#include "kernels/attention/cutest_paged_kv.h"
#include "kernels/kv_write/kv_write.h"
#include "kernels/registry.h"
#include "kernels/test_util.h"

/* Both twins store fp32 as is, round to nearest even fp16, or code with the same
 * fp32 operations (kv_quant.h): exact agreement. */
#define CU_KV_WRITE_MISMATCH_TOL 0

enum { KV_F32, KV_F16, KV_I8, KV_I8_STATIC, KV_I4, KV_I4_STATIC, KV_KINDS };
static const char *const kv_names[KV_KINDS] = {"F32", "F16", "I8", "I8 static", "INT4", "INT4 static"};
static int64_t mismatched_total[KV_KINDS], rope_mismatched[KV_KINDS];

typedef struct kv_case {
    int32_t n_seq, n_kv_head, head_dim, block_len, aligned;
    int32_t q_len[8], kv_len[8];
} kv_case;

static tm_dtype kv_dtype(int kind)
{
    return kind == KV_F32 ? TM_F32 : kind == KV_F16 ? TM_F16 : kind <= KV_I8_STATIC ? TM_I8 : TMI_KV_INT4;
}

static int kv_static(int kind) { return kind == KV_I8_STATIC || kind == KV_I4_STATIC; }

static void run_case(const kv_case *kc, int kind, int use_meta)
{
    tm_dtype dt = kv_dtype(kind);
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, kc->n_seq, kc->q_len, kc->kv_len, kc->n_kv_head, kc->head_dim, kc->block_len, dt,
                             !kv_static(kind), kc->aligned, (unsigned long long)(kc->n_seq * 131 + kc->head_dim + kind))))
        return;
    int64_t width = (int64_t)kc->n_kv_head * kc->head_dim, ld = width + 1;
    size_t kv_bytes = (size_t)(b.n_tok * ld + 1) * 4;
    float *k = malloc(kv_bytes), *v = malloc(kv_bytes), qp[4 * 64];
    void *ref = malloc(b.pool_bytes), *got = malloc(b.pool_bytes);
    size_t meta_ints = tmi_kv_meta_ints(b.seqs, b.n_seq, kc->block_len);
    int32_t *meta = malloc((meta_ints + 1) * sizeof(int32_t));
    if (!CHECK(k && v && ref && got && meta)) goto done;
    tt_fill_random(k, (long)(b.n_tok * ld + 1), 11 + (unsigned long long)kind);
    tt_fill_random(v, (long)(b.n_tok * ld + 1), 12 + (unsigned long long)kind);
    for (int64_t i = 0; i < b.n_tok * ld; i++) k[i] = 3.0f * k[i] + 0.5f; /* off-centre, like real keys */
    if (b.n_tok > 0)
        for (int32_t e = 0; e < kc->head_dim; e++) v[e] = 0.375f; /* a constant row: scale 0 */
    /* static params that cover 80 % of each head's range: the tails clamp */
    if (kv_static(kind))
        tt_kv_static_params(k, ld, v, ld, b.n_tok, kc->n_kv_head, kc->head_dim, dt == TM_I8 ? 8 : 4, 0.8f, qp);
    memset(ref, 0xff, b.pool_bytes);
    memcpy(got, ref, b.pool_bytes);
    tmi_kv_cache cache = b.cache;
    cache.base = ref;
    cache.qparams = kv_static(kind) ? qp : NULL;
    tmi_exec cpu = {.backend = TM_BACKEND_CPU};
    tmi_kv_write_args a = {.n_seq = b.n_seq, .seqs = b.seqs, .k = k, .ldk = ld, .v = v, .ldv = ld, .cache = cache};
    int ok = CHECK_STATUS(tmi_kv_write_cpu(&cpu, &a), TM_OK);
    tmi_kv_meta_fill(meta, b.seqs, b.n_seq, kc->block_len);
    size_t ws_bytes = use_meta ? 0 : tmi_kv_write_cuda_workspace(b.seqs, b.n_seq, kc->block_len);
    void *dk = cu_upload(k, kv_bytes), *dv = cu_upload(v, kv_bytes), *dpool = cu_upload(got, b.pool_bytes);
    void *dws = ws_bytes ? cu_upload(NULL, ws_bytes) : NULL, *dqp = kv_static(kind) ? cu_upload(qp, sizeof qp) : NULL;
    void *dmeta = use_meta ? cu_upload(meta, (meta_ints + 1) * sizeof(int32_t)) : NULL;
    ok = ok && dk && dv && dpool && (dws || !ws_bytes) && (dqp || !kv_static(kind)) && (dmeta || !use_meta);
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .workspace = dws, .workspace_bytes = ws_bytes};
        a.k = dk;
        a.v = dv;
        a.cache.base = dpool;
        a.cache.qparams = dqp;
        a.meta_dev = dmeta;
        ok = CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_OK) && cu_download(got, dpool, b.pool_bytes);
    }
    if (ok) {
        size_t es = tmi_kv_unit_bytes(dt);
        int64_t mismatched = 0;
        for (int64_t i = 0; i < b.pool_units; i++) mismatched += memcmp((char *)got + i * es, (char *)ref + i * es, es) != 0;
        mismatched_total[kind] += mismatched;
        if (!CHECK(mismatched <= CU_KV_WRITE_MISMATCH_TOL))
            fprintf(stderr, "  n_seq=%d kv_heads=%d head_dim=%d block_len=%d aligned=%d %s meta_dev=%d: %lld of %lld "
                            "units differ\n",
                    kc->n_seq, kc->n_kv_head, kc->head_dim, kc->block_len, kc->aligned, kv_names[kind], use_meta,
                    (long long)mismatched, (long long)b.pool_units);
    }
    tmi_cuda_free(dk);
    tmi_cuda_free(dv);
    tmi_cuda_free(dpool);
    tmi_cuda_free(dws);
    tmi_cuda_free(dqp);
    tmi_cuda_free(dmeta);
done:
    free(k), free(v), free(ref), free(got), free(meta);
    cu_batch_free(&b);
}

/* Units of a pool that differ, the float kinds within rounding (RoPE's cosf / sinf
 * differ between the twins by an ulp or so), the quantized ones exactly. */
static int64_t pool_mismatch(const void *got, const void *ref, const cu_batch *b, tm_dtype dt)
{
    int64_t bad = 0;
    size_t es = tmi_kv_unit_bytes(dt);
    for (int64_t i = 0; i < b->pool_units; i++) {
        if (!memcmp((const char *)got + i * es, (const char *)ref + i * es, es)) continue;
        if (dt != TM_F32 && dt != TM_F16) {
            bad++;
            continue;
        }
        float g = tmi_load_f32(got, dt, i), r = tmi_load_f32(ref, dt, i);
        bad += !(fabsf(g - r) <= (dt == TM_F32 ? 1e-5f : 2e-3f) * (1.0f + fabsf(r)));
    }
    return bad;
}

/* kv_write with rope (q heads, then k, rotated in place; v apart) against the CPU
 * twin's rope-then-write: float pools within rounding, the rotated q and k within
 * 1e-5, and quantized pools with at most 1% of their codes one step apart (an
 * ulp of the rotated k moves a code across a rounding boundary now and then). */
static void run_rope_case(const kv_case *kc, int kind)
{
    tm_dtype dt = kv_dtype(kind);
    cu_batch b;
    if (kc->head_dim % 2 ||
        !CHECK(cu_batch_make(&b, kc->n_seq, kc->q_len, kc->kv_len, kc->n_kv_head, kc->head_dim, kc->block_len, dt,
                             !kv_static(kind), kc->aligned, (unsigned long long)(kc->n_seq * 71 + kind))))
        return;
    int32_t n_q = 2 * kc->n_kv_head, half = kc->head_dim / 2;
    int64_t ld = (int64_t)(n_q + kc->n_kv_head) * kc->head_dim, vld = (int64_t)kc->n_kv_head * kc->head_dim;
    size_t x_bytes = (size_t)(b.n_tok * ld + 1) * 4, v_bytes = (size_t)(b.n_tok * vld + 1) * 4;
    float *x = malloc(x_bytes), *xg = malloc(x_bytes), *v = malloc(v_bytes), *freq = malloc((size_t)half * 4), qp[4 * 64];
    int32_t *pos = malloc((size_t)(b.n_tok + 1) * 4);
    void *ref = malloc(b.pool_bytes), *got = malloc(b.pool_bytes);
    size_t meta_ints = tmi_kv_meta_ints(b.seqs, b.n_seq, kc->block_len);
    int32_t *meta = malloc((meta_ints + 1) * sizeof(int32_t));
    if (!CHECK(x && xg && v && freq && pos && ref && got && meta)) goto done;
    tt_fill_random(x, (long)(b.n_tok * ld + 1), 31 + (unsigned long long)kind);
    tt_fill_random(v, (long)(b.n_tok * vld + 1), 32 + (unsigned long long)kind);
    for (int32_t i = 0; i < half; i++) freq[i] = powf(10000.0f, -(float)i / (float)half);
    for (int32_t s = 0; s < b.n_seq; s++)
        for (int32_t t = 0; t < b.seqs[s].q_len; t++) pos[b.seqs[s].q_start + t] = b.seqs[s].kv_len - b.seqs[s].q_len + t;
    if (kv_static(kind))
        tt_kv_static_params(x + (int64_t)n_q * kc->head_dim, ld, v, vld, b.n_tok, kc->n_kv_head, kc->head_dim,
                            dt == TM_I8 ? 8 : 4, 0.8f, qp);
    memset(ref, 0xff, b.pool_bytes);
    memcpy(got, ref, b.pool_bytes);
    tmi_exec cpu = {.backend = TM_BACKEND_CPU};
    tmi_rope_args r = {.n_tok = b.n_tok, .n_head = n_q + kc->n_kv_head, .head_dim = kc->head_dim, .x = x, .ld = ld,
                       .pos = pos, .inv_freq = freq, .attn_factor = 1.0f};
    tmi_kv_write_args a = {.n_seq = b.n_seq, .seqs = b.seqs, .k = x + (int64_t)n_q * kc->head_dim, .ldk = ld, .v = v,
                           .ldv = vld, .cache = b.cache, .rope = &r};
    a.cache.base = ref;
    a.cache.qparams = kv_static(kind) ? qp : NULL;
    void *dx = cu_upload(x, x_bytes); /* before the CPU rotates x */
    int ok = CHECK_STATUS(tmi_kv_write_cpu(&cpu, &a), TM_OK);
    tmi_kv_meta_fill(meta, b.seqs, b.n_seq, kc->block_len);
    void *dv = cu_upload(v, v_bytes), *dpool = cu_upload(got, b.pool_bytes), *dpos = cu_upload(pos, (size_t)(b.n_tok + 1) * 4);
    void *dfreq = cu_upload(freq, (size_t)half * 4), *dqp = kv_static(kind) ? cu_upload(qp, sizeof qp) : NULL;
    void *dmeta = cu_upload(meta, (meta_ints + 1) * sizeof(int32_t));
    ok = ok && dx && dv && dpool && dpos && dfreq && (dqp || !kv_static(kind)) && dmeta;
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        tmi_rope_args rg = r;
        rg.x = dx;
        rg.pos = dpos;
        rg.inv_freq = dfreq;
        a.rope = &rg;
        a.k = (float *)dx + (int64_t)n_q * kc->head_dim;
        a.v = dv;
        a.cache.base = dpool;
        a.cache.qparams = dqp;
        a.meta_dev = dmeta;
        ok = CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_OK) && cu_download(got, dpool, b.pool_bytes) &&
             cu_download(xg, dx, x_bytes);
    }
    if (ok) {
        int64_t bad = pool_mismatch(got, ref, &b, dt), limit = tmi_kv_is_quant(dt) ? b.pool_units / 100 : 0;
        double rel = cu_rel_err(xg, x, b.n_tok, ld, ld);
        rope_mismatched[kind] += bad;
        if (!CHECK(bad <= limit) || !CHECK(rel < 1e-5))
            fprintf(stderr, "  rope n_seq=%d kv_heads=%d head_dim=%d %s: %lld of %lld units differ, q/k rel %.3g\n",
                    kc->n_seq, kc->n_kv_head, kc->head_dim, kv_names[kind], (long long)bad, (long long)b.pool_units,
                    rel);
    }
    void *dev[] = {dx, dv, dpool, dpos, dfreq, dqp, dmeta};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) tmi_cuda_free(dev[i]);
done:
    free(x), free(xg), free(v), free(freq), free(pos), free(ref), free(got), free(meta);
    cu_batch_free(&b);
}

static void test_cuda_kv_write_shapes(void)
{
    static const kv_case cases[] = {
        {1, 1, 2, 1, 0, {1}, {1}},
        {3, 2, 64, 16, 1, {1, 33, 0}, {17, 100, 5}},
        {5, 8, 128, 32, 1, {1, 1, 1, 257, 3}, {1, 64, 1000, 257, 40}},
        {2, 4, 80, 7, 0, {13, 1}, {29, 8}},
        {1, 1, 256, 64, 1, {2048}, {4096}},
        {4, 32, 128, 64, 1, {1, 1, 17, 1}, {1, 65, 300, 4096}}, /* Llama-2-7B rows */
        {2, 3, 34, 5, 0, {9, 4}, {31, 4}},                      /* odd sizes, misaligned */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int kind = 0; kind < KV_KINDS; kind++) {
            run_case(&cases[c], kind, 0);
            run_case(&cases[c], kind, 1);
            run_rope_case(&cases[c], kind);
        }
    printf("worst kv_write F32/F16/I8/INT4 (online, static), packed and meta_dev: %lld/%lld/%lld+%lld/%lld+%lld units "
           "differ (bit-identical pools when 0)\n",
           (long long)mismatched_total[KV_F32], (long long)mismatched_total[KV_F16], (long long)mismatched_total[KV_I8],
           (long long)mismatched_total[KV_I8_STATIC], (long long)mismatched_total[KV_I4],
           (long long)mismatched_total[KV_I4_STATIC]);
    printf("worst kv_write with rope F32/F16 past rounding, I8/INT4 (online+static) codes apart: %lld/%lld/%lld/%lld\n",
           (long long)rope_mismatched[KV_F32], (long long)rope_mismatched[KV_F16],
           (long long)(rope_mismatched[KV_I8] + rope_mismatched[KV_I8_STATIC]),
           (long long)(rope_mismatched[KV_I4] + rope_mismatched[KV_I4_STATIC]));
}

/* With the QKV GEMM's split sums (x = [q | k | v] a row, C itself NaN): the same
 * pool bits, and the same rotated q and k, as the CUDA op over the C they add up
 * to; float caches (the quantized ones refuse sums), meta_dev required. */
static void run_sums_case(const kv_case *kc, tm_dtype dt)
{
    cu_batch b;
    if (kc->head_dim % 2 || !kc->aligned ||
        !CHECK(cu_batch_make(&b, kc->n_seq, kc->q_len, kc->kv_len, kc->n_kv_head, kc->head_dim, kc->block_len, dt, 0,
                             1, (unsigned long long)(kc->n_seq * 73))))
        return;
    enum { SPLITS = 6 };
    int32_t n_q = 2 * kc->n_kv_head, half = kc->head_dim / 2;
    int64_t qk = (int64_t)(n_q + kc->n_kv_head) * kc->head_dim, ld = qk + (int64_t)kc->n_kv_head * kc->head_dim;
    size_t x_bytes = (size_t)(b.n_tok * ld) * 4, part_bytes = (size_t)SPLITS * x_bytes;
    float *part = malloc(part_bytes), *x = malloc(x_bytes), *nan_x = malloc(x_bytes), *x1 = malloc(x_bytes);
    float *x2 = malloc(x_bytes), *freq = malloc((size_t)half * 4);
    int32_t *pos = malloc((size_t)b.n_tok * 4);
    void *p1 = malloc(b.pool_bytes), *p2 = malloc(b.pool_bytes);
    size_t meta_ints = tmi_kv_meta_ints(b.seqs, b.n_seq, kc->block_len);
    int32_t *meta = malloc(meta_ints * sizeof(int32_t));
    if (!CHECK(part && x && nan_x && x1 && x2 && freq && pos && p1 && p2 && meta)) goto done;
    tt_split_sums_fill(part, SPLITS, b.n_tok, ld, NULL, x, ld, 81);
    cu_fill_nan(nan_x, b.n_tok * ld);
    for (int32_t i = 0; i < half; i++) freq[i] = powf(10000.0f, -(float)i / (float)half);
    for (int32_t s = 0; s < b.n_seq; s++)
        for (int32_t t = 0; t < b.seqs[s].q_len; t++) pos[b.seqs[s].q_start + t] = b.seqs[s].kv_len - b.seqs[s].q_len + t;
    memset(p1, 0xff, b.pool_bytes);
    tmi_kv_meta_fill(meta, b.seqs, b.n_seq, kc->block_len);
    void *dx = cu_upload(x, x_bytes), *dnan = cu_upload(nan_x, x_bytes), *dpart = cu_upload(part, part_bytes);
    void *dp1 = cu_upload(p1, b.pool_bytes), *dp2 = cu_upload(p1, b.pool_bytes), *dpos = cu_upload(pos, (size_t)b.n_tok * 4);
    void *dfreq = cu_upload(freq, (size_t)half * 4), *dmeta = cu_upload(meta, meta_ints * sizeof(int32_t));
    int ok = dx && dnan && dpart && dp1 && dp2 && dpos && dfreq && dmeta;
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_rope_args r = {.n_tok = b.n_tok, .n_head = n_q + kc->n_kv_head, .head_dim = kc->head_dim, .x = dx, .ld = ld,
                       .pos = dpos, .inv_freq = dfreq, .attn_factor = 1.0f};
    tmi_kv_write_args a = {.n_seq = b.n_seq, .seqs = b.seqs, .k = (float *)dx + (int64_t)n_q * kc->head_dim, .ldk = ld,
                           .v = (float *)dx + qk, .ldv = ld, .cache = b.cache, .meta_dev = dmeta, .rope = &r};
    a.cache.base = dp1;
    ok = ok && CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_OK);
    tmi_split_sums s = {.splits = SPLITS, .part = dpart, .m = b.n_tok, .n = ld, .c = dnan, .ldc = ld};
    r.x = dnan;
    a.k = (float *)dnan + (int64_t)n_q * kc->head_dim;
    a.v = (float *)dnan + qk;
    a.cache.base = dp2;
    a.sums = &s;
    ok = ok && CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_OK) && cu_download(p1, dp1, b.pool_bytes) &&
         cu_download(p2, dp2, b.pool_bytes) && cu_download(x1, dx, x_bytes) && cu_download(x2, dnan, x_bytes);
    if (ok) {
        int64_t qk_diff = 0;
        for (int64_t i = 0; i < b.n_tok; i++) qk_diff += memcmp(x1 + i * ld, x2 + i * ld, (size_t)qk * 4) != 0;
        if (!CHECK(memcmp(p1, p2, b.pool_bytes) == 0) || !CHECK(qk_diff == 0))
            fprintf(stderr, "  split sums n_seq=%d kv_heads=%d head_dim=%d %s: pool or q/k rows differ\n", kc->n_seq,
                    kc->n_kv_head, kc->head_dim, tm_dtype_name(dt));
    }
    a.meta_dev = NULL; /* the partials live in the workspace, which packing would overwrite */
    if (ok) CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_UNSUPPORTED);
    void *dev[] = {dx, dnan, dpart, dp1, dp2, dpos, dfreq, dmeta};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) tmi_cuda_free(dev[i]);
done:
    free(part), free(x), free(nan_x), free(x1), free(x2), free(freq), free(pos), free(p1), free(p2), free(meta);
    cu_batch_free(&b);
}

static void test_cuda_kv_write_split_sums(void)
{
    static const kv_case cases[] = {
        {1, 1, 2, 1, 1, {1}, {1}},
        {4, 32, 128, 64, 1, {1, 1, 17, 1}, {1, 65, 300, 4096}}, /* Llama-2-7B rows */
        {3, 2, 64, 16, 1, {1, 33, 0}, {17, 100, 5}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        run_sums_case(&cases[c], TM_F32);
        run_sums_case(&cases[c], TM_F16);
    }
}

static void test_cuda_kv_write_args(void)
{
    int32_t q_len[1] = {2}, kv_len[1] = {4};
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, 1, q_len, kv_len, 1, 4, 4, TM_I8, 1, 1, 1))) return;
    float dummy[8];
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_kv_write_args a = {.n_seq = 1, .seqs = b.seqs, .k = dummy, .ldk = 4, .v = dummy, .ldv = 4, .cache = b.cache};
    a.cache.base = dummy;
    CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* INT8 is fine; no workspace */
    a.cache.v_offset = 4 * 4; /* online params do not fit */
    CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
    a.cache = b.cache;
    a.cache.dtype = TM_BF16;
    a.cache.base = dummy;
    CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_UNSUPPORTED);
    a.cache.dtype = TM_I8;
    b.seqs[0].q_len = 5;
    CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* q_len > kv_len */
    cu_batch_free(&b);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->kv_write == tmi_kv_write_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_kv_write_shapes);
    RUN(test_cuda_kv_write_args);
    RUN(test_cuda_kv_write_split_sums);
    return tt_finish();
}

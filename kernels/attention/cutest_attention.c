/* cutest_attention.c - tmi_attention_cuda against tmi_attention_cpu on the GPU
 * machine: decode batches, a long prefill, mixed prefill + decode batches with an
 * empty sequence, GQA groups 1 to 4, head_dim 2 to 256, sliding windows, F32 and
 * F16 caches filled with random values (block tables shuffled), out poisoned with
 * NaN; and out == q in place. */
#include "harness.h"
#include "kernels/attention/cutest_paged_kv.h"
#include "kernels/registry.h"

/* fp32 softmax and sums on both sides over the same cache values (the F16 cache
 * is read, not rounded, by each twin); only the summation order differs. */
#define CU_ATTENTION_REL_TOL 1e-5

static double worst[2];

typedef struct attn_case {
    int32_t n_seq, n_head, n_kv_head, head_dim, block_len, window;
    int32_t q_len[CU_MAX_SEQ], kv_len[CU_MAX_SEQ];
} attn_case;

static void run_case(const attn_case *ac, tm_dtype dt, int in_place)
{
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, ac->n_seq, ac->q_len, ac->kv_len, ac->n_kv_head, ac->head_dim, ac->block_len, dt,
                             (unsigned long long)(ac->n_seq * 17 + ac->head_dim * 3 + ac->window + dt))))
        return;
    int64_t width = (int64_t)ac->n_head * ac->head_dim, ldq = width + 2, ldo = in_place ? ldq : width + 5;
    size_t es = dt == TM_F32 ? 4 : 2, pool_bytes = (size_t)b.pool_units * es;
    size_t q_bytes = (size_t)(b.n_tok * ldq + 1) * 4, o_bytes = (size_t)(b.n_tok * ldo + 1) * 4;
    float *poolf = malloc((size_t)b.pool_units * 4), *q = malloc(q_bytes), *ref = malloc(o_bytes), *got = malloc(o_bytes);
    void *pool = malloc(pool_bytes);
    int32_t max_kv = 0;
    for (int32_t s = 0; s < b.n_seq; s++)
        if (b.seqs[s].kv_len > max_kv) max_kv = b.seqs[s].kv_len;
    size_t cpu_ws_bytes = tmi_attention_cpu_workspace(max_kv, 1) + 64;
    void *cpu_ws = malloc(cpu_ws_bytes);
    tt_fill_random(poolf, (long)b.pool_units, 21 + (unsigned long long)ac->head_dim);
    for (int64_t i = 0; i < b.pool_units; i++) {
        if (dt == TM_F32) ((float *)pool)[i] = poolf[i] * 2.0f;
        else ((uint16_t *)pool)[i] = tmi_f32_to_f16(poolf[i] * 2.0f);
    }
    tt_fill_random(q, (long)(b.n_tok * ldq + 1), 22 + (unsigned long long)ac->n_head);
    for (int64_t i = 0; i < b.n_tok * ldq; i++) q[i] *= 2.0f; /* peaked enough softmaxes */
    if (in_place) memcpy(ref, q, q_bytes);
    else cu_fill_nan(ref, b.n_tok * ldo + 1);
    tmi_kv_cache cache = b.cache;
    cache.base = pool;
    tmi_exec cpu = {.backend = TM_BACKEND_CPU, .workspace = cpu_ws, .workspace_bytes = cpu_ws_bytes};
    tmi_attention_args a = {.n_seq = b.n_seq, .seqs = b.seqs, .n_head = ac->n_head, .q = in_place ? ref : q,
                            .ldq = ldq, .out = ref, .ldo = ldo, .cache = cache,
                            .scale = 1.0f / sqrtf((float)ac->head_dim), .window = ac->window};
    int ok = CHECK_STATUS(tmi_attention_cpu(&cpu, &a), TM_OK);

    size_t ws_bytes = tmi_attention_cuda_workspace(b.seqs, b.n_seq, ac->block_len);
    cu_fill_nan(got, b.n_tok * ldo + 1);
    void *dq = cu_upload(q, q_bytes), *dout = in_place ? NULL : cu_upload(got, o_bytes);
    void *dpool = cu_upload(pool, pool_bytes), *dws = cu_upload(NULL, ws_bytes);
    ok = ok && dq && (dout || in_place) && dpool && dws;
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .workspace = dws, .workspace_bytes = ws_bytes};
        a.q = dq;
        a.out = in_place ? dq : dout;
        a.cache.base = dpool;
        ok = CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_OK) && cu_download(got, a.out, in_place ? q_bytes : o_bytes);
    }
    if (ok) {
        double rel = cu_rel_err(got, ref, b.n_tok, width, ldo);
        int64_t stray = in_place ? cu_padding_changed(got, q, b.n_tok, width, ldo)
                                 : cu_padding_changed(got, ref, b.n_tok, width, ldo);
        cu_note(&worst[dt], rel);
        if (!CHECK(rel < CU_ATTENTION_REL_TOL) || !CHECK(stray == 0))
            fprintf(stderr, "  n_seq=%d heads=%d/%d head_dim=%d block_len=%d window=%d %s in_place=%d: rel %.3g\n",
                    ac->n_seq, ac->n_head, ac->n_kv_head, ac->head_dim, ac->block_len, ac->window, tm_dtype_name(dt),
                    in_place, rel);
    }
    tmi_cuda_free(dq);
    tmi_cuda_free(dout);
    tmi_cuda_free(dpool);
    tmi_cuda_free(dws);
    free(poolf); free(q); free(ref); free(got); free(pool); free(cpu_ws);
    cu_batch_free(&b);
}

static void test_cuda_attention_shapes(void)
{
    static const attn_case cases[] = {
        {1, 1, 1, 2, 1, 0, {1}, {1}},                                   /* smallest */
        {5, 8, 2, 64, 16, 0, {1, 1, 1, 1, 1}, {1, 17, 300, 64, 1000}},  /* decode batch, GQA 4 */
        {1, 4, 4, 128, 32, 0, {257}, {257}},                            /* prefill, MHA */
        {4, 12, 4, 80, 16, 0, {33, 1, 0, 7}, {100, 50, 9, 7}},          /* mixed, an empty row set */
        {4, 12, 4, 80, 16, 20, {33, 1, 0, 7}, {100, 50, 9, 7}},         /* the same with a window */
        {2, 2, 1, 256, 8, 0, {5, 1}, {40, 3}},                          /* head_dim 256, GQA 2 */
        {1, 32, 8, 128, 64, 0, {1}, {4096}},                            /* long decode */
        {3, 6, 2, 96, 128, 100, {300, 1, 50}, {300, 1000, 450}},        /* windowed prefill chunks */
        {2, 3, 3, 33, 5, 0, {9, 4}, {31, 4}},                           /* odd sizes */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int dt = 0; dt < 2; dt++) run_case(&cases[c], (tm_dtype)dt, 0);
    run_case(&cases[3], TM_F32, 1);
    run_case(&cases[7], TM_F16, 1);
    printf("worst attention F32 cache: %.3g, F16 cache: %.3g\n", worst[0], worst[1]);
}

static void test_cuda_attention_args(void)
{
    int32_t q_len[1] = {2}, kv_len[1] = {4};
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, 1, q_len, kv_len, 1, 300, 4, TM_F32, 1))) return;
    float dummy[8];
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_attention_args a = {.n_seq = 1, .seqs = b.seqs, .n_head = 1, .q = dummy, .ldq = 300, .out = dummy,
                            .ldo = 300, .cache = b.cache, .scale = 1.0f};
    a.cache.base = dummy;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_UNSUPPORTED); /* head_dim > 256 */
    a.cache.head_dim = 256;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* valid but no workspace */
    a.n_head = 0;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* n_head must be a positive multiple */
    cu_batch_free(&b);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->attention == tmi_attention_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_attention_shapes);
    RUN(test_cuda_attention_args);
    return tt_finish();
}

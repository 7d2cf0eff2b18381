/* cutest_kv_write.c - tmi_kv_write_cuda against tmi_kv_write_cpu on the GPU
 * machine: F32 and F16 pools poisoned with NaN, ragged batches with shuffled
 * block tables, rows landing mid-block after a history; the whole pool must come
 * out bit-identical (slots nobody writes stay NaN on both sides). */
#include "harness.h"
#include "kernels/attention/cutest_paged_kv.h"
#include "kernels/kv_write/kv_write.h"
#include "kernels/registry.h"

/* Both twins store fp32 as is or round to nearest even fp16: exact agreement. */
#define CU_KV_WRITE_MISMATCH_TOL 0

typedef struct kv_case {
    int32_t n_seq, n_kv_head, head_dim, block_len;
    int32_t q_len[CU_MAX_SEQ], kv_len[CU_MAX_SEQ];
} kv_case;

static void run_case(const kv_case *kc, tm_dtype dt)
{
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, kc->n_seq, kc->q_len, kc->kv_len, kc->n_kv_head, kc->head_dim, kc->block_len, dt,
                             (unsigned long long)(kc->n_seq * 131 + kc->head_dim + dt))))
        return;
    int64_t width = (int64_t)kc->n_kv_head * kc->head_dim, ld = width + 1;
    size_t es = dt == TM_F32 ? 4 : 2, pool_bytes = (size_t)b.pool_units * es, kv_bytes = (size_t)(b.n_tok * ld + 1) * 4;
    float *k = malloc(kv_bytes), *v = malloc(kv_bytes);
    void *ref = malloc(pool_bytes), *got = malloc(pool_bytes);
    tt_fill_random(k, (long)(b.n_tok * ld + 1), 11);
    tt_fill_random(v, (long)(b.n_tok * ld + 1), 12);
    for (int64_t i = 0; i < b.pool_units; i++) {
        if (dt == TM_F32) ((float *)ref)[i] = NAN;
        else ((uint16_t *)ref)[i] = 0x7e00u; /* fp16 NaN */
    }
    memcpy(got, ref, pool_bytes);
    tmi_kv_cache cache = b.cache;
    cache.base = ref;
    tmi_exec cpu = {.backend = TM_BACKEND_CPU};
    tmi_kv_write_args a = {.n_seq = b.n_seq, .seqs = b.seqs, .k = k, .ldk = ld, .v = v, .ldv = ld, .cache = cache};
    int ok = CHECK_STATUS(tmi_kv_write_cpu(&cpu, &a), TM_OK);
    size_t ws_bytes = tmi_kv_write_cuda_workspace(b.seqs, b.n_seq, kc->block_len);
    void *dk = cu_upload(k, kv_bytes), *dv = cu_upload(v, kv_bytes), *dpool = cu_upload(got, pool_bytes);
    void *dws = cu_upload(NULL, ws_bytes);
    ok = ok && dk && dv && dpool && dws;
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .workspace = dws, .workspace_bytes = ws_bytes};
        a.k = dk;
        a.v = dv;
        a.cache.base = dpool;
        ok = CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_OK) && cu_download(got, dpool, pool_bytes);
    }
    if (ok) {
        int64_t mismatched = 0;
        for (int64_t i = 0; i < b.pool_units; i++) mismatched += memcmp((char *)got + i * es, (char *)ref + i * es, es) != 0;
        if (!CHECK(mismatched <= CU_KV_WRITE_MISMATCH_TOL))
            fprintf(stderr, "  n_seq=%d kv_heads=%d head_dim=%d block_len=%d %s: %lld of %lld units differ\n", kc->n_seq,
                    kc->n_kv_head, kc->head_dim, kc->block_len, tm_dtype_name(dt), (long long)mismatched,
                    (long long)b.pool_units);
    }
    tmi_cuda_free(dk);
    tmi_cuda_free(dv);
    tmi_cuda_free(dpool);
    tmi_cuda_free(dws);
    free(k); free(v); free(ref); free(got);
    cu_batch_free(&b);
}

static void test_cuda_kv_write_shapes(void)
{
    static const kv_case cases[] = {
        {1, 1, 2, 1, {1}, {1}},
        {3, 2, 64, 16, {1, 33, 0}, {17, 100, 5}},
        {5, 8, 128, 32, {1, 1, 1, 257, 3}, {1, 64, 1000, 257, 40}},
        {2, 4, 80, 7, {13, 1}, {29, 8}},
        {1, 1, 256, 64, {2048}, {4096}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        run_case(&cases[c], TM_F32);
        run_case(&cases[c], TM_F16);
    }
    printf("worst kv_write F32/F16: bit-identical pools (%d checks)\n", tt_checks);
}

static void test_cuda_kv_write_args(void)
{
    int32_t q_len[1] = {2}, kv_len[1] = {4};
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, 1, q_len, kv_len, 1, 4, 4, TM_I8, 1))) return;
    float dummy[8];
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_kv_write_args a = {.n_seq = 1, .seqs = b.seqs, .k = dummy, .ldk = 4, .v = dummy, .ldv = 4, .cache = b.cache};
    a.cache.base = dummy;
    a.cache.v_offset = 4 * 4 + 8 * 4; /* room for the online params */
    a.cache.block_stride = 4 * a.cache.v_offset;
    CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_UNSUPPORTED); /* INT8: not on CUDA yet */
    a.cache = b.cache;
    a.cache.dtype = TM_F32;
    a.cache.base = dummy;
    CHECK_STATUS(tmi_kv_write_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* no workspace */
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
    return tt_finish();
}

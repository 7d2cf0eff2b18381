/* cutest_rope.c - tmi_rope_cuda against tmi_rope_cpu on the GPU machine: head
 * counts and sizes from 1 to 64 x 256, padded rows, positions up to 32k, in place
 * on the same random input. */
#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/registry.h"
#include "kernels/rope/rope.h"

/* fp32 cosf / sinf on both sides (CUDA's accurate ones are within 2 ulp). */
#define CU_ROPE_REL_TOL 1e-5

static double worst;

static void run_case(int64_t n_tok, int32_t n_head, int32_t head_dim, float attn_factor)
{
    int64_t ld = (int64_t)n_head * head_dim + 3;
    size_t x_bytes = (size_t)(n_tok * ld) * 4;
    float *x = malloc(x_bytes), *ref = malloc(x_bytes), *got = malloc(x_bytes), *posf = malloc((size_t)n_tok * 4);
    float *inv_freq = malloc((size_t)head_dim / 2 * 4);
    int32_t *pos = malloc((size_t)n_tok * 4);
    tt_fill_random(x, (long)(n_tok * ld), (unsigned long long)(n_tok * 31 + n_head * 7 + head_dim));
    tt_fill_random(posf, (long)n_tok, (unsigned long long)n_tok + 5);
    for (int64_t t = 0; t < n_tok; t++) pos[t] = (int32_t)((posf[t] + 1.0f) * 16384.0f); /* [0, 32768) */
    if (n_tok > 1) pos[0] = 0;
    for (int32_t i = 0; i < head_dim / 2; i++) inv_freq[i] = powf(10000.0f, -2.0f * (float)i / (float)head_dim);
    memcpy(ref, x, x_bytes);
    tmi_exec cpu = {.backend = TM_BACKEND_CPU};
    tmi_rope_args a = {.n_tok = n_tok, .n_head = n_head, .head_dim = head_dim, .x = ref, .ld = ld, .pos = pos,
                       .inv_freq = inv_freq, .attn_factor = attn_factor};
    int ok = CHECK_STATUS(tmi_rope_cpu(&cpu, &a), TM_OK);
    void *dx = cu_upload(x, x_bytes), *dpos = cu_upload(pos, (size_t)n_tok * 4),
         *dinv = cu_upload(inv_freq, (size_t)head_dim / 2 * 4);
    ok = ok && dx && dpos && dinv;
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        a.x = dx;
        a.pos = dpos;
        a.inv_freq = dinv;
        ok = CHECK_STATUS(tmi_rope_cuda(&gpu, &a), TM_OK) && cu_download(got, dx, x_bytes);
    }
    if (ok) {
        double rel = cu_rel_err(got, ref, n_tok, (int64_t)n_head * head_dim, ld);
        cu_note(&worst, rel);
        if (!CHECK(rel < CU_ROPE_REL_TOL) || !CHECK(cu_padding_changed(got, x, n_tok, (int64_t)n_head * head_dim, ld) == 0))
            fprintf(stderr, "  n_tok=%lld n_head=%d head_dim=%d: rel %.3g\n", (long long)n_tok, n_head, head_dim, rel);
    }
    tmi_cuda_free(dx);
    tmi_cuda_free(dpos);
    tmi_cuda_free(dinv);
    free(x); free(ref); free(got); free(posf); free(inv_freq); free(pos);
}

static void test_cuda_rope_shapes(void)
{
    run_case(1, 1, 2, 1.0f);
    run_case(3, 5, 18, 1.0f);
    run_case(17, 32, 128, 1.0f);
    run_case(1000, 8, 64, 1.0f);
    run_case(2049, 40, 80, 1.0f);
    run_case(5, 64, 256, 0.75f);
    printf("worst rope F32: %.3g\n", worst);
}

static void test_cuda_rope_args(void)
{
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    float dummy[4];
    int32_t pos = 0;
    tmi_rope_args a = {.n_tok = 1, .n_head = 1, .head_dim = 3, .x = dummy, .ld = 4, .pos = &pos, .inv_freq = dummy};
    CHECK_STATUS(tmi_rope_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* odd head_dim */
    a.head_dim = 4;
    a.ld = 2;
    CHECK_STATUS(tmi_rope_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
    a.n_tok = 0;
    CHECK_STATUS(tmi_rope_cuda(&gpu, &a), TM_OK);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->rope == tmi_rope_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_rope_shapes);
    RUN(test_cuda_rope_args);
    return tt_finish();
}

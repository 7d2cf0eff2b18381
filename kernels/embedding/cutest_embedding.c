/* cutest_embedding.c - tmi_embedding_cuda against tmi_embedding_cpu on the GPU
 * machine: every table dtype, padded output rows, repeated and random ids, and
 * the NaN row an out-of-range id writes; outputs poisoned with NaN first. */
#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/embedding/embedding.h"
#include "kernels/registry.h"

/* A lookup converts each element exactly, so the twins must agree bit for bit. */
#define CU_EMBEDDING_REL_TOL 0.0

static double worst[3];

static void run_case(int64_t n, int64_t vocab, int64_t d, tm_dtype dt)
{
    int64_t ldo = d + 2;
    size_t es = dt == TM_F32 ? 4 : 2, t_bytes = (size_t)(vocab * d) * es, o_bytes = (size_t)(n * ldo) * 4;
    float *tf = malloc((size_t)(vocab * d) * 4), *ref = malloc(o_bytes), *got = malloc(o_bytes);
    float *ids_f = malloc((size_t)n * 4);
    int32_t *ids = malloc((size_t)n * 4);
    void *table = malloc(t_bytes);
    tt_fill_random(tf, (long)(vocab * d), (unsigned long long)(vocab + d));
    tt_fill_random(ids_f, (long)n, (unsigned long long)n);
    for (int64_t i = 0; i < vocab * d; i++) {
        if (dt == TM_F32) ((float *)table)[i] = tf[i];
        else ((uint16_t *)table)[i] = dt == TM_F16 ? tmi_f32_to_f16(tf[i]) : tmi_f32_to_bf16(tf[i]);
    }
    for (int64_t t = 0; t < n; t++) ids[t] = (int32_t)((ids_f[t] + 1.0f) * 0.5f * (float)(vocab - 1) + 0.5f);
    if (n > 2) ids[n - 1] = ids[0]; /* a repeated id */
    cu_fill_nan(ref, n * ldo);
    cu_fill_nan(got, n * ldo);
    tmi_exec cpu = {.backend = TM_BACKEND_CPU};
    tmi_embedding_args a = {.n = n, .ids = ids, .table = table, .dtype = dt, .vocab = vocab, .d = d, .out = ref, .ldo = ldo};
    int ok = CHECK_STATUS(tmi_embedding_cpu(&cpu, &a), TM_OK);
    void *dids = cu_upload(ids, (size_t)n * 4), *dt_ = cu_upload(table, t_bytes), *dout = cu_upload(got, o_bytes);
    ok = ok && dids && dt_ && dout;
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        a.ids = dids;
        a.table = dt_;
        a.out = dout;
        ok = CHECK_STATUS(tmi_embedding_cuda(&gpu, &a), TM_OK) && cu_download(got, dout, o_bytes);
    }
    if (ok) {
        double rel = cu_rel_err(got, ref, n, d, ldo);
        cu_note(&worst[dt], rel);
        if (!CHECK(rel <= CU_EMBEDDING_REL_TOL) || !CHECK(cu_padding_changed(got, ref, n, d, ldo) == 0))
            fprintf(stderr, "  n=%lld vocab=%lld d=%lld %s: rel %.3g\n", (long long)n, (long long)vocab, (long long)d,
                    tm_dtype_name(dt), rel);
    }
    tmi_cuda_free(dids);
    tmi_cuda_free(dt_);
    tmi_cuda_free(dout);
    free(tf); free(ref); free(got); free(ids_f); free(ids); free(table);
}

static void test_cuda_embedding_shapes(void)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 17}, {1000, 32000, 64}, {77, 1001, 4096}, {5, 128256, 2048}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int dt = 0; dt < 3; dt++) run_case(shapes[s][0], shapes[s][1], shapes[s][2], (tm_dtype)dt);
    for (int dt = 0; dt < 3; dt++) printf("worst embedding %s: %.3g\n", tm_dtype_name((tm_dtype)dt), worst[dt]);
}

/* An id outside [0, vocab) cannot be rejected without a sync: its row is NaN. */
static void test_cuda_embedding_bad_id(void)
{
    int32_t ids[3] = {1, 7, -1};
    float table[4 * 2] = {0, 1, 2, 3, 4, 5, 6, 7}, out[3 * 2];
    void *dids = cu_upload(ids, sizeof ids), *dtab = cu_upload(table, sizeof table), *dout = cu_upload(NULL, sizeof out);
    if (dids && dtab && dout) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        tmi_embedding_args a = {.n = 3, .ids = dids, .table = dtab, .dtype = TM_F32, .vocab = 4, .d = 2, .out = dout, .ldo = 2};
        if (CHECK_STATUS(tmi_embedding_cuda(&gpu, &a), TM_OK) && cu_download(out, dout, sizeof out))
            CHECK(out[0] == 2 && out[1] == 3 && isnan(out[2]) && isnan(out[3]) && isnan(out[4]) && isnan(out[5]));
        a.dtype = TM_I8;
        CHECK_STATUS(tmi_embedding_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
        a.dtype = TM_F32;
        a.ldo = 1;
        CHECK_STATUS(tmi_embedding_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
    }
    tmi_cuda_free(dids);
    tmi_cuda_free(dtab);
    tmi_cuda_free(dout);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->embedding == tmi_embedding_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_embedding_shapes);
    RUN(test_cuda_embedding_bad_id);
    return tt_finish();
}

/* test_embedding.c - tmi_embedding_cpu: exact rows for every dtype, id checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/embedding/embedding.h"
#include "kernels/registry.h"
#include "runtime/threadpool.h"

static tmi_pool *pool2;

static void run_case(int64_t n, int64_t vocab, int64_t d, tm_dtype dt, tmi_pool *pool)
{
    float *tf = malloc((size_t)(vocab * d + 1) * sizeof *tf); /* [vocab][d] fp32 source */
    tt_fill_random(tf, vocab * d, (unsigned long long)(vocab + d));
    void *table = malloc((size_t)(vocab * d + 1) * 4);
    for (int64_t i = 0; i < vocab * d; i++) {
        if (dt == TM_F32) ((float *)table)[i] = tf[i];
        else ((uint16_t *)table)[i] = dt == TM_F16 ? tmi_f32_to_f16(tf[i]) : tmi_f32_to_bf16(tf[i]);
    }
    int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
    for (int64_t t = 0; t < n; t++) ids[t] = (int32_t)((t * 2654435761u + 11) % (uint64_t)vocab);
    if (n > 1) ids[n - 1] = (int32_t)(vocab - 1);
    int64_t ldo = d + 2;
    float *out = malloc((size_t)(n * ldo + 1) * sizeof *out);
    for (int64_t i = 0; i < n * ldo; i++) out[i] = NAN;
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tmi_embedding_args a = {.n = n, .ids = ids, .table = table, .dtype = dt, .vocab = vocab, .d = d, .out = out,
                            .ldo = ldo};
    if (CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_OK)) {
        int64_t bad = 0;
        for (int64_t t = 0; t < n; t++) {
            for (int64_t j = 0; j < d; j++) bad += out[t * ldo + j] != tmi_load_f32(table, dt, (int64_t)ids[t] * d + j);
            for (int64_t j = d; j < ldo; j++) bad += !isnan(out[t * ldo + j]);
        }
        if (!CHECK(bad == 0)) fprintf(stderr, "  n=%lld vocab=%lld d=%lld dtype=%d\n", (long long)n, (long long)vocab, (long long)d, (int)dt);
    }
    free(tf);
    free(table);
    free(ids);
    free(out);
}

static void test_embedding_shapes(void)
{
    for (int dt = 0; dt < 3; dt++) {
        run_case(0, 10, 4, (tm_dtype)dt, NULL);
        run_case(1, 1, 1, (tm_dtype)dt, NULL);
        run_case(3, 17, 0, (tm_dtype)dt, NULL);
        run_case(7, 33, 5, (tm_dtype)dt, pool2);
        run_case(513, 1000, 64, (tm_dtype)dt, pool2);
        run_case(40, 3000, 1024, (tm_dtype)dt, pool2);
    }
}

static void test_embedding_bad_ids(void)
{
    float table[3 * 2] = {1, 2, 3, 4, 5, 6}, out[4 * 2];
    int32_t ids[4] = {0, 2, 3, 1};
    for (int i = 0; i < 8; i++) out[i] = -1;
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_embedding_args a = {.n = 4, .ids = ids, .table = table, .dtype = TM_F32, .vocab = 3, .d = 2, .out = out,
                            .ldo = 2};
    CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "ids[2] = 3") != NULL);
    CHECK(out[0] == -1 && out[7] == -1); /* nothing written */
    ids[2] = -1;
    CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "ids[2] = -1") != NULL);
    ids[2] = 1;
    CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_OK);
    CHECK(out[0] == 1 && out[3] == 6 && out[4] == 3 && out[7] == 4);
    a.dtype = TM_I32;
    CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.dtype = TM_F32;
    a.ldo = 1;
    CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.ldo = 2;
    a.vocab = 0;
    CHECK_STATUS(tmi_embedding_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(tmi_ops_get(TM_BACKEND_CPU)->embedding == tmi_embedding_cpu);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) return 1;
    RUN(test_embedding_shapes);
    RUN(test_embedding_bad_ids);
    tmi_pool_destroy(pool2);
    return tt_finish();
}

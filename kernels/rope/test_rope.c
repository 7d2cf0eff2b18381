/* test_rope.c - tmi_rope_cpu against HF's recipe computed here: the angle as the
 * fp32 product float(pos) * inv_freq (what torch does), cos/sin in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/registry.h"
#include "kernels/rope/rope.h"
#include "runtime/threadpool.h"

/* Per element |out - ref| <= ROPE_TOL * (|x_i| + |x_i+half|) * attn_factor: cosf/sinf
 * within 1 ulp plus two fp32 roundings. */
#define ROPE_TOL 4e-7

static tmi_pool *pool2;

static void run_case(int64_t n_tok, int32_t n_head, int32_t head_dim, float theta, float attn_factor, int32_t max_pos,
                     tmi_pool *pool)
{
    int32_t half = head_dim / 2;
    int64_t ld = (int64_t)n_head * head_dim + 3;
    float *x = malloc((size_t)(n_tok * ld + 1) * sizeof *x); /* [n_tok][ld] */
    float *x0 = malloc((size_t)(n_tok * ld + 1) * sizeof *x0);
    int32_t *pos = malloc((size_t)(n_tok + 1) * sizeof *pos);
    float *inv_freq = malloc((size_t)(half + 1) * sizeof *inv_freq);
    tt_fill_random(x, n_tok * ld, (unsigned long long)(n_tok * 7 + head_dim));
    memcpy(x0, x, (size_t)(n_tok * ld) * sizeof *x);
    for (int32_t i = 0; i < half; i++) inv_freq[i] = (float)(1.0 / pow(theta, (double)(2 * i) / head_dim));
    for (int64_t t = 0; t < n_tok; t++) pos[t] = (int32_t)((t * 7919) % (max_pos + 1)); /* shuffled, repeats */
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tmi_rope_args a = {.n_tok = n_tok, .n_head = n_head, .head_dim = head_dim, .x = x, .ld = ld, .pos = pos,
                       .inv_freq = inv_freq, .attn_factor = attn_factor};
    if (CHECK_STATUS(tmi_rope_cpu(&ex, &a), TM_OK)) {
        double worst = 0;
        int pad_ok = 1;
        for (int64_t t = 0; t < n_tok; t++) {
            for (int32_t h = 0; h < n_head; h++) {
                const float *in = x0 + t * ld + (int64_t)h * head_dim;
                const float *out = x + t * ld + (int64_t)h * head_dim;
                for (int32_t i = 0; i < half; i++) {
                    float angle = (float)pos[t] * inv_freq[i];
                    double c = cos((double)angle) * attn_factor, s = sin((double)angle) * attn_factor;
                    double r0 = in[i] * c - in[i + half] * s, r1 = in[i + half] * c + in[i] * s;
                    double bound = ROPE_TOL * (fabs(in[i]) + fabs(in[i + half])) * attn_factor + 1e-30;
                    double e = fmax(fabs(out[i] - r0), fabs(out[i + half] - r1)) / bound;
                    if (e > worst) worst = e;
                }
            }
            for (int64_t j = (int64_t)n_head * head_dim; j < ld; j++) pad_ok &= x[t * ld + j] == x0[t * ld + j];
        }
        if (!CHECK(worst <= 1.0) || !CHECK(pad_ok))
            fprintf(stderr, "  n_tok=%lld heads=%d head_dim=%d max_pos=%d: worst/bound %.3g\n", (long long)n_tok,
                    n_head, head_dim, max_pos, worst);
    }
    free(x);
    free(x0);
    free(pos);
    free(inv_freq);
}

static void test_rope_shapes(void)
{
    run_case(0, 4, 8, 10000.0f, 1.0f, 10, NULL);
    run_case(3, 0, 8, 10000.0f, 1.0f, 10, NULL);
    run_case(1, 1, 2, 10000.0f, 1.0f, 0, NULL);
    run_case(5, 3, 8, 10000.0f, 1.0f, 100, pool2);
    run_case(17, 4, 64, 10000.0f, 1.0f, 4096, NULL);
    run_case(300, 8, 128, 500000.0f, 1.0f, 131072, pool2);
    run_case(33, 2, 96, 1000000.0f, 1.2f, 32768, pool2); /* attention scaling */
    run_case(2, 32, 128, 10000.0f, 1.0f, 2000000, NULL); /* long positions */
}

static void test_rope_errors(void)
{
    float x[16] = {0}, inv[4] = {1, 1, 1, 1};
    int32_t pos[2] = {0, 1};
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_rope_args a = {.n_tok = 2, .n_head = 1, .head_dim = 7, .x = x, .ld = 8, .pos = pos, .inv_freq = inv,
                       .attn_factor = 1};
    CHECK_STATUS(tmi_rope_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "even") != NULL);
    a.head_dim = 8;
    CHECK_STATUS(tmi_rope_cpu(&ex, &a), TM_OK);
    a.ld = 7;
    CHECK_STATUS(tmi_rope_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.ld = 8;
    pos[1] = -3;
    CHECK_STATUS(tmi_rope_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "pos[1] = -3") != NULL);
    CHECK(tmi_ops_get(TM_BACKEND_CPU)->rope == tmi_rope_cpu);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) return 1;
    RUN(test_rope_shapes);
    RUN(test_rope_errors);
    tmi_pool_destroy(pool2);
    return tt_finish();
}

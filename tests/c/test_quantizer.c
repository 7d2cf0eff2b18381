/* test_quantizer.c - int4 packing (AutoAWQ and engine layouts), the AutoAWQ golden
 * made with torch on the GPU machine, the converter's repack through the int4 GEMM,
 * the AWQ searches, and the observers' statistics against a direct computation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/gemm_w4a16/gemm_w4a16.h"
#include "runtime/quantizer.h"

static tm_weights *store(void)
{
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    return w;
}

/* Each AutoAWQ nibble where the layout's definition puts it. */
static void test_awq_layout_by_definition(void)
{
    enum { OUT = 16, IN = 64, G = 32 };
    float w[OUT * IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) w[o * IN + i] = (float)((o * 7 + i * 3) % 16) - 7.5f;
    tm_weights *dst = store();
    CHECK_STATUS(tm_awq_quantize(dst, "l", w, OUT, IN, G, NULL), TM_OK);
    tm_tensor_info qw, qz, sc;
    CHECK_STATUS(tm_weights_find(dst, "l.qweight", &qw), TM_OK);
    CHECK_STATUS(tm_weights_find(dst, "l.qzeros", &qz), TM_OK);
    CHECK_STATUS(tm_weights_find(dst, "l.scales", &sc), TM_OK);
    CHECK(qw.shape[0] == IN && qw.shape[1] == OUT / 8 && qz.shape[0] == IN / G && sc.shape[1] == OUT);
    uint8_t q[OUT * IN];
    float s[OUT * IN / G], z[OUT * IN / G];
    tmi_int4_quantize(w, OUT, IN, G, NULL, q, s, z, NULL);
    const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    int bad = 0;
    for (int i = 0; i < IN; i++)
        for (int c = 0; c < OUT / 8; c++) {
            uint32_t word = (uint32_t)((const int32_t *)qw.data)[i * (OUT / 8) + c];
            for (int p = 0; p < 8; p++) bad += (int)((word >> (4 * p)) & 15u) != q[(8 * c + order[p]) * IN + i];
        }
    CHECK(bad == 0);
    for (int gi = 0; gi < IN / G; gi++)
        for (int c = 0; c < OUT / 8; c++) {
            uint32_t word = (uint32_t)((const int32_t *)qz.data)[gi * (OUT / 8) + c];
            for (int p = 0; p < 8; p++) bad += (float)((word >> (4 * p)) & 15u) != z[(8 * c + order[p]) * (IN / G) + gi];
        }
    CHECK(bad == 0);
    tm_weights_destroy(dst);
}

/* quantize -> AutoAWQ tensors -> dequantize equals the quantizer's own dequant, and
 * stays within half a step of w. */
static void test_round_trip(void)
{
    const int32_t groups[] = {32, 64, 128};
    for (int gi = 0; gi < 3; gi++) {
        int64_t out = 48, in = 256;
        float *w = malloc(sizeof(float) * (size_t)(out * in)), *back = malloc(sizeof(float) * (size_t)(out * in));
        float *deq = malloc(sizeof(float) * (size_t)(out * in)), *s = malloc(sizeof(float) * (size_t)(out * in));
        tt_fill_random(w, (long)(out * in), 5 + gi);
        tm_weights *dst = store();
        CHECK_STATUS(tm_awq_quantize(dst, "x", w, out, in, groups[gi], NULL), TM_OK);
        CHECK_STATUS(tm_awq_dequantize(dst, "x", out, in, back), TM_OK);
        tmi_int4_quantize(w, out, in, groups[gi], NULL, NULL, s, NULL, deq);
        int same = 1, near = 1;
        for (int64_t i = 0; i < out * in; i++) {
            same &= back[i] == deq[i];
            /* half a step, plus 15 steps of the scale's fp16 rounding (2^-11 relative) */
            near &= fabsf(back[i] - w[i]) <= 0.51f * s[(i / in) * (in / groups[gi]) + (i % in) / groups[gi]] + 1e-6f;
        }
        CHECK(same);
        CHECK(near);
        CHECK_STATUS(tm_awq_dequantize(dst, "x", out, in + 1, back), TM_ERR_INVALID_ARG);
        CHECK_STATUS(tm_awq_quantize(dst, "y", w, 12, in, groups[gi], NULL), TM_ERR_INVALID_ARG);
        tm_weights_destroy(dst);
        free(w);
        free(back);
        free(deq);
        free(s);
    }
}

/* The committed golden (scripts/device/make_awq_golden.py, torch): decoding its
 * qweight / qzeros / scales gives its w exactly. */
static void test_golden(void)
{
    const char *files[] = {"tests/data/awq_golden/awq_in256_out64_g128.safetensors",
                           "tests/data/awq_golden/awq_in256_out64_g32.safetensors"};
    for (int f = 0; f < 2; f++) {
        tm_weights *src = store();
        CHECK_STATUS(tm_weights_load(src, files[f]), TM_OK);
        /* the golden names its tensors without a prefix: alias them under "g" */
        tm_weights *ren = store();
        const char *names[] = {"qweight", "qzeros", "scales"};
        for (int k = 0; k < 3; k++) {
            tm_tensor_info t;
            char to[32];
            CHECK_STATUS(tm_weights_find(src, names[k], &t), TM_OK);
            snprintf(to, sizeof to, "g.%s", names[k]);
            CHECK_STATUS(tm_weights_add(ren, to, t.dtype, t.ndim, t.shape, t.data), TM_OK);
        }
        tm_tensor_info wt;
        CHECK_STATUS(tm_weights_find(src, "w", &wt), TM_OK);
        float *w = malloc(sizeof(float) * 64 * 256);
        CHECK_STATUS(tm_awq_dequantize(ren, "g", 64, 256, w), TM_OK);
        CHECK(memcmp(w, wt.data, sizeof(float) * 64 * 256) == 0);
        free(w);
        tm_weights_destroy(ren);
        tm_weights_destroy(src);
    }
}

/* Two fused sources, tp 2, column and row split: the engine tensors through the
 * int4 GEMM give x * dequant(W)^T of the rank's slice. */
static void test_converter_awq(void)
{
    enum { IN = 256, O1 = 64, O2 = 32, G = 64, M = 3 };
    float *w1 = malloc(sizeof(float) * O1 * IN), *w2 = malloc(sizeof(float) * O2 * IN);
    float *d1 = malloc(sizeof(float) * O1 * IN), *d2 = malloc(sizeof(float) * O2 * IN);
    tt_fill_random(w1, O1 * IN, 21);
    tt_fill_random(w2, O2 * IN, 22);
    tm_weights *src = store();
    CHECK_STATUS(tm_awq_quantize(src, "a", w1, O1, IN, G, NULL), TM_OK);
    CHECK_STATUS(tm_awq_quantize(src, "b", w2, O2, IN, G, NULL), TM_OK);
    CHECK_STATUS(tm_awq_dequantize(src, "a", O1, IN, d1), TM_OK);
    CHECK_STATUS(tm_awq_dequantize(src, "b", O2, IN, d2), TM_OK);
    tm_converter_params cp = tm_converter_default_params();
    cp.tp = 2;
    tm_converter *conv = NULL;
    CHECK_STATUS(tm_converter_create(&cp, &conv), TM_OK);
    float x[M * IN], y[M * (O1 + O2)];
    tt_fill_random(x, M * IN, 23);
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    for (int split = TM_SPLIT_COLUMN; split <= TM_SPLIT_ROW; split++)
        for (int rank = 0; rank < 2; rank++) {
            tm_weights *dst = store();
            const char *names[] = {"a", "b"};
            CHECK_STATUS(tm_converter_awq(conv, dst, "e", src, names, 2, G, (tm_split)split, rank), TM_OK);
            tm_tensor_info qw, sz;
            CHECK_STATUS(tm_weights_find(dst, "e.qweight", &qw), TM_OK);
            CHECK_STATUS(tm_weights_find(dst, "e.scales_zeros", &sz), TM_OK);
            int col = split == TM_SPLIT_COLUMN;
            int64_t n = col ? (O1 + O2) / 2 : O1 + O2, k = col ? IN : IN / 2;
            CHECK(qw.shape[0] == k / 8 && qw.shape[1] == n && sz.shape[0] == k / G && sz.ndim == 3);
            tmi_gemm_w4a16_args g = {.m = M, .n = n, .k = k, .a = x + (col ? 0 : rank * k), .lda = IN,
                                     .qweight = qw.data, .scales_zeros = sz.data, .group = G, .c = y, .ldc = n};
            CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_OK);
            double max_err = 0.0;
            for (int i = 0; i < M; i++)
                for (int64_t j = 0; j < n; j++) {
                    /* column j of the rank: source a's slice first, then b's */
                    int64_t half1 = col ? O1 / 2 : O1;
                    const float *row = j < half1 ? d1 + ((col ? rank * half1 : 0) + j) * IN
                                                 : d2 + ((col ? rank * (O2 / 2) : 0) + j - half1) * IN;
                    double ref = 0.0;
                    for (int64_t p = 0; p < k; p++) ref += (double)x[i * IN + (col ? 0 : rank * k) + p] * row[(col ? 0 : rank * k) + p];
                    max_err = fmax(max_err, fabs(ref - y[i * n + j]));
                }
            CHECK(max_err < 1e-3);
            tm_weights_destroy(dst);
        }
    const char *bad[] = {"a"};
    tm_weights *dst = store();
    CHECK_STATUS(tm_converter_awq(conv, dst, "e", src, bad, 1, 128, TM_SPLIT_COLUMN, 0), TM_ERR_FORMAT);
    tm_weights_destroy(dst);
    tm_converter_destroy(conv);
    tm_weights_destroy(src);
    free(w1);
    free(w2);
    free(d1);
    free(d2);
}

/* The scale search returns the grid's best point; alpha 0 is RTN, so AWQ's error is
 * never above it, and on outlier channels it is clearly below. */
static void test_search(void)
{
    enum { IN = 128, OUT = 32, ROWS = 256, G = 32 };
    float *x = malloc(sizeof(float) * ROWS * IN), *w = malloc(sizeof(float) * OUT * IN);
    float *gram = calloc(IN * IN, sizeof(float)), absmean[IN] = {0};
    tt_fill_random(x, ROWS * IN, 31);
    tt_fill_random(w, OUT * IN, 32);
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < IN; c += 16) x[r * IN + c] *= 20.0f; /* salient channels */
    for (int r = 0; r < ROWS; r++)
        for (int a = 0; a < IN; a++) {
            absmean[a] += fabsf(x[r * IN + a]) / ROWS;
            for (int b = 0; b < IN; b++) gram[a * IN + b] += x[r * IN + a] * x[r * IN + b];
        }
    const float *ws[] = {w};
    int64_t outs[] = {OUT};
    float s[IN], errs[20];
    CHECK_STATUS(tm_awq_search_scale(gram, IN, absmean, ws, outs, 1, G, 20, 1, s, errs), TM_OK);
    float best = errs[0];
    for (int k = 1; k < 20; k++) best = fminf(best, errs[k]);
    CHECK(best < 0.8f * errs[0]);
    /* the direct error of alpha 0 (RTN) from the activations */
    float *deq = malloc(sizeof(float) * OUT * IN);
    tmi_int4_quantize(w, OUT, IN, G, NULL, NULL, NULL, NULL, deq);
    double direct = 0.0;
    for (int r = 0; r < ROWS; r++)
        for (int o = 0; o < OUT; o++) {
            double d = 0.0;
            for (int c = 0; c < IN; c++) d += (double)x[r * IN + c] * (deq[o * IN + c] - w[o * IN + c]);
            direct += d * d;
        }
    CHECK(fabs(direct - errs[0]) < 1e-3 * direct);
    float mv[OUT * IN / G];
    CHECK_STATUS(tm_awq_search_clip(gram, IN, w, OUT, G, 20, 0.5f, 1, mv), TM_OK);
    int in_range = 1;
    for (int i = 0; i < OUT * IN / G; i++) in_range &= mv[i] > 0.0f && mv[i] <= 1.0f;
    CHECK(in_range);
    CHECK_STATUS(tm_awq_search_scale(gram, IN, absmean, ws, outs, 1, 48, 20, 1, s, errs), TM_ERR_INVALID_ARG);
    free(x);
    free(w);
    free(gram);
    free(deq);
}

static void add_random(tm_weights *w, const char *name, int ndim, int64_t d0, int64_t d1, unsigned long long seed,
                       float scale, float offset)
{
    int64_t shape[2] = {d0, d1}, n = ndim == 1 ? d0 : d0 * d1;
    float *buf = malloc(sizeof(float) * (size_t)n);
    tt_fill_random(buf, (long)n, seed);
    for (int64_t i = 0; i < n; i++) buf[i] = buf[i] * scale + offset;
    CHECK_STATUS(tm_weights_add(w, name, TM_F32, ndim, shape, buf), TM_OK);
    free(buf);
}

/* Layer 0's attention input is rmsnorm(embedding): its statistics and Gram from the
 * observers equal the ones computed here from the weights. */
static void test_observer_stats(void)
{
    enum { V = 32, H = 64, HD = 32, NH = 2, I = 64, T = 40 };
    tm_weights *w = store();
    add_random(w, "tok_embeddings.weight", 2, V, H, 1, 1.0f, 0.0f);
    add_random(w, "norm.weight", 1, H, 0, 2, 0.1f, 1.0f);
    add_random(w, "output.weight", 2, H, V, 3, 0.1f, 0.0f);
    add_random(w, "layers.0.attention_norm.weight", 1, H, 0, 4, 0.5f, 1.0f);
    add_random(w, "layers.0.attention.w_qkv.0.weight", 2, H, 3 * NH * HD, 5, 0.1f, 0.0f);
    add_random(w, "layers.0.attention.wo.0.weight", 2, NH * HD, H, 6, 0.1f, 0.0f);
    add_random(w, "layers.0.ffn_norm.weight", 1, H, 0, 7, 0.1f, 1.0f);
    add_random(w, "layers.0.feed_forward.w1.0.weight", 2, H, I, 8, 0.1f, 0.0f);
    add_random(w, "layers.0.feed_forward.w3.0.weight", 2, H, I, 9, 0.1f, 0.0f);
    add_random(w, "layers.0.feed_forward.w2.0.weight", 2, I, H, 10, 0.1f, 0.0f);
    tm_model_params p = tm_model_default_params();
    p.vocab_size = V, p.hidden_size = H, p.num_layer = 1, p.head_num = NH, p.kv_head_num = NH;
    p.size_per_head = HD, p.inter_size = I, p.max_position_embeddings = 128, p.num_threads = 2;
    tm_model *m = NULL;
    CHECK_STATUS(tm_model_create(&p, w, &m), TM_OK);
    tm_quantizer *q = NULL;
    tm_quantizer_params qp = tm_quantizer_default_params();
    qp.max_seq_len = T;
    CHECK_STATUS(tm_quantizer_create(m, &qp, &q), TM_OK);
    int32_t toks[T];
    for (int i = 0; i < T; i++) toks[i] = (i * 7 + 3) % V;
    tm_weights *st = store();
    CHECK_STATUS(tm_quantizer_export(q, st), TM_ERR_STATE);
    CHECK_STATUS(tm_quantizer_observe(q, toks, T / 2), TM_OK);
    CHECK_STATUS(tm_quantizer_observe(q, toks + T / 2, T / 2), TM_OK);
    CHECK_STATUS(tm_quantizer_observe(q, toks, T + 1), TM_ERR_INVALID_ARG);
    CHECK(tm_quantizer_tokens(q) == T);
    CHECK_STATUS(tm_quantizer_export(q, st), TM_OK);

    tm_tensor_info emb, nw, t;
    CHECK_STATUS(tm_weights_find(w, "tok_embeddings.weight", &emb), TM_OK);
    CHECK_STATUS(tm_weights_find(w, "layers.0.attention_norm.weight", &nw), TM_OK);
    double hx[T][H];
    for (int r = 0; r < T; r++) {
        const float *e = (const float *)emb.data + toks[r] * H;
        double ss = 0.0;
        for (int c = 0; c < H; c++) ss += (double)e[c] * e[c];
        double inv = 1.0 / sqrt(ss / H + p.norm_eps);
        for (int c = 0; c < H; c++) hx[r][c] = e[c] * inv * ((const float *)nw.data)[c];
    }
    const char *names[] = {"min", "max", "mean", "absmax", "absmean"};
    for (int k = 0; k < 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "layers.0.attn_in.%s", names[k]);
        CHECK_STATUS(tm_weights_find(st, name, &t), TM_OK);
        double max_err = 0.0;
        for (int c = 0; c < H; c++) {
            double v = k == 0 ? INFINITY : k == 1 ? -INFINITY : 0.0;
            for (int r = 0; r < T; r++) {
                double x = hx[r][c];
                if (k == 0) v = fmin(v, x);
                if (k == 1) v = fmax(v, x);
                if (k == 2) v += x / T;
                if (k == 3) v = fmax(v, fabs(x));
                if (k == 4) v += fabs(x) / T;
            }
            max_err = fmax(max_err, fabs(v - ((const float *)t.data)[c]));
        }
        if (!CHECK(max_err < 1e-4)) fprintf(stderr, "  %s: max err %g\n", name, max_err);
    }
    CHECK_STATUS(tm_weights_find(st, "layers.0.attn_in.gram", &t), TM_OK);
    double gerr = 0.0;
    for (int a = 0; a < H; a++)
        for (int b = 0; b < H; b++) {
            double g = 0.0;
            for (int r = 0; r < T; r++) g += hx[r][a] * hx[r][b];
            gerr = fmax(gerr, fabs(g - ((const float *)t.data)[a * H + b]) / (1.0 + fabs(g)));
        }
    CHECK(gerr < 1e-4);
    CHECK_STATUS(tm_weights_find(st, "layers.0.k.absmax", &t), TM_OK);
    CHECK(t.ndim == 2 && t.shape[0] == NH && t.shape[1] == HD);
    tm_tensor_info kmin, kmax;
    CHECK_STATUS(tm_weights_find(st, "layers.0.k.min", &kmin), TM_OK);
    CHECK_STATUS(tm_weights_find(st, "layers.0.k.max", &kmax), TM_OK);
    int consistent = 1;
    for (int i = 0; i < NH * HD; i++) {
        float lo = ((const float *)kmin.data)[i], hi = ((const float *)kmax.data)[i];
        consistent &= lo <= hi && ((const float *)t.data)[i] == fmaxf(fabsf(lo), fabsf(hi));
    }
    CHECK(consistent);
    CHECK_STATUS(tm_weights_find(st, "layers.0.down_in.gram", &t), TM_OK);
    CHECK(t.shape[0] == I && t.shape[1] == I);
    tm_weights_destroy(st);
    tm_quantizer_destroy(q);
    tm_model_destroy(m);
    tm_weights_destroy(w);
}

int main(void)
{
    RUN(test_awq_layout_by_definition);
    RUN(test_round_trip);
    RUN(test_golden);
    RUN(test_converter_awq);
    RUN(test_search);
    RUN(test_observer_stats);
    return tt_finish();
}

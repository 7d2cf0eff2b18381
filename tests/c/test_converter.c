/* test_converter.c - tm_converter: transposes, fused QKV with GQA shapes, the
 * column and row tensor-parallel splits, casts and the bias rules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/common.h"

/* GQA attention: 8 query heads, 2 KV heads, head_dim 4, hidden 16. */
enum { IN = 16, Q_OUT = 32, KV_OUT = 8, QKV_OUT = Q_OUT + 2 * KV_OUT };

static const char *const qkv_names[3] = {"q.weight", "k.weight", "v.weight"};
static const char *const qkv_bias_names[3] = {"q.bias", "k.bias", "v.bias"};
static const int64_t qkv_out[3] = {Q_OUT, KV_OUT, KV_OUT};

static tm_converter *make_conv(int32_t tp, int32_t keep, tm_dtype dtype)
{
    tm_converter_params p = tm_converter_default_params();
    p.tp = tp;
    p.keep_dtype = keep;
    p.dtype = dtype;
    tm_converter *c = NULL;
    CHECK_STATUS(tm_converter_create(&p, &c), TM_OK);
    return c;
}

/* HF-layout sources: q/k/v [out][in] and biases, o [IN][Q_OUT], all F32. */
static tm_weights *make_src(float *w[3], float *b[3], float *o)
{
    tm_weights *s = NULL;
    CHECK_STATUS(tm_weights_create(&s), TM_OK);
    for (int i = 0; i < 3; i++) {
        int64_t ws[2] = {qkv_out[i], IN}, bs[1] = {qkv_out[i]};
        tt_fill_random(w[i], qkv_out[i] * IN, 10 + (unsigned)i);
        tt_fill_random(b[i], qkv_out[i], 20 + (unsigned)i);
        CHECK_STATUS(tm_weights_add(s, qkv_names[i], TM_F32, 2, ws, w[i]), TM_OK);
        CHECK_STATUS(tm_weights_add(s, qkv_bias_names[i], TM_F32, 1, bs, b[i]), TM_OK);
    }
    int64_t os[2] = {IN, Q_OUT};
    tt_fill_random(o, IN * Q_OUT, 30);
    CHECK_STATUS(tm_weights_add(s, "o.weight", TM_F32, 2, os, o), TM_OK);
    return s;
}

static const float *get_f32(const tm_weights *w, const char *name, int ndim, int64_t d0, int64_t d1)
{
    tm_tensor_info t;
    if (!CHECK_STATUS(tm_weights_find(w, name, &t), TM_OK)) return NULL;
    int ok = t.dtype == TM_F32 && t.ndim == ndim && t.shape[0] == d0 && (ndim == 1 || t.shape[1] == d1);
    if (!CHECK(ok)) {
        fprintf(stderr, "  %s: dtype %s ndim %d shape [%lld, %lld], want [%lld, %lld]\n", name, tm_dtype_name(t.dtype),
                t.ndim, (long long)t.shape[0], (long long)(t.ndim > 1 ? t.shape[1] : 0), (long long)d0, (long long)d1);
        return NULL;
    }
    return t.data;
}

/* tp = 1: the fused tensor is [in][q | k | v], element by element the transpose. */
static void test_fused_qkv_tp1(void)
{
    float wq[Q_OUT * IN], wk[KV_OUT * IN], wv[KV_OUT * IN], bq[Q_OUT], bk[KV_OUT], bv[KV_OUT], o[IN * Q_OUT];
    float *w[3] = {wq, wk, wv}, *b[3] = {bq, bk, bv};
    tm_weights *src = make_src(w, b, o), *dst = NULL;
    tm_converter *c = make_conv(1, 1, TM_F16);
    CHECK_STATUS(tm_weights_create(&dst), TM_OK);
    CHECK_STATUS(tm_converter_linear(c, dst, "qkv", src, qkv_names, 3, TM_SPLIT_COLUMN, 0), TM_OK);
    CHECK_STATUS(tm_converter_linear(c, dst, "qkv.b", src, qkv_bias_names, 3, TM_SPLIT_COLUMN, 0), TM_OK);
    const float *f = get_f32(dst, "qkv", 2, IN, QKV_OUT), *fb = get_f32(dst, "qkv.b", 1, QKV_OUT, 0);
    int bad = 0;
    for (int i = 0, off = 0; f && fb && i < 3; off += (int)qkv_out[i], i++)
        for (int r = 0; r < qkv_out[i]; r++) {
            for (int col = 0; col < IN; col++) bad += f[col * QKV_OUT + off + r] != w[i][r * IN + col];
            bad += fb[off + r] != b[i][r];
        }
    CHECK(bad == 0);
    tm_converter_destroy(c);
    tm_weights_destroy(dst);
    tm_weights_destroy(src);
}

/* Column split for tp 1, 2, 4: each rank's [in][q_r | k_r | v_r] put back in
 * its place equals the tp = 1 tensor; every column is covered exactly once. */
static void test_column_split_reassembles(void)
{
    float wq[Q_OUT * IN], wk[KV_OUT * IN], wv[KV_OUT * IN], bq[Q_OUT], bk[KV_OUT], bv[KV_OUT], o[IN * Q_OUT];
    float *w[3] = {wq, wk, wv}, *b[3] = {bq, bk, bv};
    tm_weights *src = make_src(w, b, o), *full_w = NULL;
    tm_converter *c1 = make_conv(1, 1, TM_F16);
    CHECK_STATUS(tm_weights_create(&full_w), TM_OK);
    CHECK_STATUS(tm_converter_linear(c1, full_w, "qkv", src, qkv_names, 3, TM_SPLIT_COLUMN, 0), TM_OK);
    CHECK_STATUS(tm_converter_linear(c1, full_w, "b", src, qkv_bias_names, 3, TM_SPLIT_COLUMN, 0), TM_OK);
    const float *full = get_f32(full_w, "qkv", 2, IN, QKV_OUT), *full_b = get_f32(full_w, "b", 1, QKV_OUT, 0);
    static const int tps[3] = {1, 2, 4};
    for (int ti = 0; ti < 3 && full && full_b; ti++) {
        int tp = tps[ti], cols = QKV_OUT / tp, bad = 0;
        int covered[QKV_OUT] = {0};
        tm_converter *c = make_conv(tp, 1, TM_F16);
        for (int r = 0; r < tp; r++) {
            tm_weights *d = NULL;
            CHECK_STATUS(tm_weights_create(&d), TM_OK);
            CHECK_STATUS(tm_converter_linear(c, d, "qkv", src, qkv_names, 3, TM_SPLIT_COLUMN, r), TM_OK);
            CHECK_STATUS(tm_converter_linear(c, d, "b", src, qkv_bias_names, 3, TM_SPLIT_COLUMN, r), TM_OK);
            const float *part = get_f32(d, "qkv", 2, IN, cols), *pb = get_f32(d, "b", 1, cols, 0);
            /* rank column j: source i, row r * out_i / tp + local; full column off_i + that row */
            for (int i = 0, j = 0, off = 0; part && pb && i < 3; off += (int)qkv_out[i], i++) {
                int slice = (int)qkv_out[i] / tp;
                for (int local = 0; local < slice; local++, j++) {
                    int fc = off + r * slice + local;
                    covered[fc]++;
                    for (int row = 0; row < IN; row++) bad += part[row * cols + j] != full[row * QKV_OUT + fc];
                    bad += pb[j] != full_b[fc];
                }
            }
            tm_weights_destroy(d);
        }
        for (int k = 0; k < QKV_OUT; k++) bad += covered[k] != 1;
        if (!CHECK(bad == 0)) fprintf(stderr, "  tp %d: %d mismatches\n", tp, bad);
        tm_converter_destroy(c);
    }
    tm_converter_destroy(c1);
    tm_weights_destroy(full_w);
    tm_weights_destroy(src);
}

/* Row split of o [IN][Q_OUT]: rank r holds rows [r * Q_OUT / tp, ...) of the
 * transposed [Q_OUT][IN]; a row-split bias is on rank 0, zeros elsewhere. */
static void test_row_split_reassembles(void)
{
    float wq[Q_OUT * IN], wk[KV_OUT * IN], wv[KV_OUT * IN], bq[Q_OUT], bk[KV_OUT], bv[KV_OUT], o[IN * Q_OUT];
    float *w[3] = {wq, wk, wv}, *b[3] = {bq, bk, bv};
    tm_weights *src = make_src(w, b, o);
    const char *oname[1] = {"o.weight"};
    static const int tps[3] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
        int tp = tps[ti], rows = Q_OUT / tp, bad = 0;
        tm_converter *c = make_conv(tp, 1, TM_F16);
        for (int r = 0; r < tp; r++) {
            tm_weights *d = NULL;
            CHECK_STATUS(tm_weights_create(&d), TM_OK);
            CHECK_STATUS(tm_converter_linear(c, d, "o", src, oname, 1, TM_SPLIT_ROW, r), TM_OK);
            CHECK_STATUS(tm_converter_linear(c, d, "b", src, qkv_bias_names, 3, TM_SPLIT_ROW, r), TM_OK);
            const float *part = get_f32(d, "o", 2, rows, IN), *pb = get_f32(d, "b", 1, QKV_OUT, 0);
            for (int i = 0; part && i < rows; i++)
                for (int j = 0; j < IN; j++) bad += part[i * IN + j] != o[j * Q_OUT + r * rows + i];
            for (int i = 0, off = 0; pb && i < 3; off += (int)qkv_out[i], i++)
                for (int k = 0; k < qkv_out[i]; k++) bad += pb[off + k] != (r == 0 ? b[i][k] : 0.0f);
            tm_weights_destroy(d);
        }
        if (!CHECK(bad == 0)) fprintf(stderr, "  tp %d: %d mismatches\n", tp, bad);
        tm_converter_destroy(c);
    }
    /* TM_SPLIT_NONE: every rank gets the whole transposed tensor */
    tm_converter *c = make_conv(4, 1, TM_F16);
    tm_weights *d = NULL;
    CHECK_STATUS(tm_weights_create(&d), TM_OK);
    CHECK_STATUS(tm_converter_linear(c, d, "o", src, oname, 1, TM_SPLIT_NONE, 3), TM_OK);
    const float *whole = get_f32(d, "o", 2, Q_OUT, IN);
    int bad = 0;
    for (int i = 0; whole && i < Q_OUT; i++)
        for (int j = 0; j < IN; j++) bad += whole[i * IN + j] != o[j * Q_OUT + i];
    CHECK(bad == 0);
    tm_weights_destroy(d);
    tm_converter_destroy(c);
    tm_weights_destroy(src);
}

static uint16_t h16(const tm_weights *w, const char *name, int64_t i)
{
    tm_tensor_info t;
    if (tm_weights_find(w, name, &t) != TM_OK) return 0xffff;
    return ((const uint16_t *)t.data)[i];
}

/* Casts round to nearest even; keep_dtype keeps bits; integers are never cast. */
static void test_casts(void)
{
    /* 1, 1/3, 1 + 2^-11 (an f16 tie), 1 + 3 * 2^-11, 1 + 2^-8 (a bf16 tie), 1 + 3 * 2^-8, -2, 65520 */
    float v[8] = {1.0f, 1.0f / 3.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.0f,
                  65520.0f};
    static const uint16_t want_f16[8] = {0x3c00, 0x3555, 0x3c00, 0x3c02, 0x3c04, 0x3c0c, 0xc000, 0x7c00};
    static const uint16_t want_bf16[8] = {0x3f80, 0x3eab, 0x3f80, 0x3f80, 0x3f80, 0x3f82, 0xc000, 0x4780};
    tm_weights *src = NULL, *dst = NULL;
    CHECK_STATUS(tm_weights_create(&src), TM_OK);
    CHECK_STATUS(tm_weights_create(&dst), TM_OK);
    int64_t s1[1] = {8}, s2[2] = {2, 4};
    CHECK_STATUS(tm_weights_add(src, "v", TM_F32, 1, s1, v), TM_OK);
    CHECK_STATUS(tm_weights_add(src, "m", TM_F32, 2, s2, v), TM_OK);
    tm_converter *c16 = make_conv(1, 0, TM_F16), *cb = make_conv(1, 0, TM_BF16), *keep = make_conv(1, 1, TM_F32);
    const char *vn[1] = {"v"}, *mn[1] = {"m"};
    CHECK_STATUS(tm_converter_copy(c16, dst, "v16", src, "v", 0), TM_OK);
    CHECK_STATUS(tm_converter_copy(cb, dst, "vb", src, "v", 0), TM_OK);
    CHECK_STATUS(tm_converter_linear(c16, dst, "lin16", src, vn, 1, TM_SPLIT_NONE, 0), TM_OK);
    CHECK_STATUS(tm_converter_linear(cb, dst, "mb", src, mn, 1, TM_SPLIT_COLUMN, 0), TM_OK);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        bad += h16(dst, "v16", i) != want_f16[i];
        bad += h16(dst, "vb", i) != want_bf16[i];
        bad += h16(dst, "lin16", i) != want_f16[i];
    }
    /* mb is m [2][4] transposed: mb[col][row] = bf16(v[row * 4 + col]) */
    for (int r = 0; r < 2; r++)
        for (int col = 0; col < 4; col++) bad += h16(dst, "mb", col * 2 + r) != want_bf16[r * 4 + col];
    if (!CHECK(bad == 0)) fprintf(stderr, "  %d cast mismatches\n", bad);
    tm_tensor_info t;
    CHECK_STATUS(tm_weights_find(dst, "mb", &t), TM_OK);
    CHECK(t.dtype == TM_BF16 && t.ndim == 2 && t.shape[0] == 4 && t.shape[1] == 2);

    /* BF16 source: kept bit-exact (a NaN payload too), and cast exactly to F32 */
    uint16_t hb[4] = {0x3f80, 0x7fc1, 0x0001, 0xc2f7};
    int64_t s4[1] = {4};
    CHECK_STATUS(tm_weights_add(src, "hb", TM_BF16, 1, s4, hb), TM_OK);
    CHECK_STATUS(tm_converter_copy(keep, dst, "hb.keep", src, "hb", 0), TM_OK);
    for (int i = 0; i < 4; i++) bad += h16(dst, "hb.keep", i) != hb[i];
    tm_converter *c32 = make_conv(1, 0, TM_F32);
    CHECK_STATUS(tm_converter_copy(c32, dst, "hb.f32", src, "hb", 0), TM_OK);
    CHECK_STATUS(tm_weights_find(dst, "hb.f32", &t), TM_OK);
    CHECK(t.dtype == TM_F32 && ((const float *)t.data)[0] == 1.0f && isnan(((const float *)t.data)[1]));
    CHECK(((const float *)t.data)[3] == tmi_bf16_to_f32(0xc2f7));
    CHECK(bad == 0);

    /* an integer tensor (AWQ qweight) is copied unchanged even when casting */
    int32_t q[6] = {1, -2, 3, -4, 5, 0x7fffffff};
    int64_t sq[2] = {2, 3};
    CHECK_STATUS(tm_weights_add(src, "qweight", TM_I32, 2, sq, q), TM_OK);
    CHECK_STATUS(tm_converter_copy(c16, dst, "qweight.t", src, "qweight", 1), TM_OK);
    CHECK_STATUS(tm_weights_find(dst, "qweight.t", &t), TM_OK);
    const int32_t *qt = t.data;
    CHECK(t.dtype == TM_I32 && t.shape[0] == 3 && t.shape[1] == 2);
    CHECK(qt[0] == 1 && qt[1] == -4 && qt[2] == -2 && qt[3] == 5 && qt[4] == 3 && qt[5] == 0x7fffffff);
    tm_converter_destroy(c32);
    tm_converter_destroy(c16);
    tm_converter_destroy(cb);
    tm_converter_destroy(keep);
    tm_weights_destroy(dst);
    tm_weights_destroy(src);
}

/* A tied embedding [vocab][hidden] becomes output.weight [hidden][vocab]; sizes
 * that are not multiples of the block, and a bigger matrix, element by element. */
static void test_copy_transpose(void)
{
    static const int64_t dims[3][2] = {{10, 6}, {1, 1}, {300, 257}};
    tm_converter *c = make_conv(1, 1, TM_F16), *c16 = make_conv(2, 0, TM_F16);
    for (int k = 0; k < 3; k++) {
        int64_t rows = dims[k][0], cols = dims[k][1];
        float *e = malloc((size_t)(rows * cols) * sizeof *e);
        tt_fill_random(e, (long)(rows * cols), 40 + (unsigned)k);
        tm_weights *src = NULL, *dst = NULL;
        CHECK_STATUS(tm_weights_create(&src), TM_OK);
        CHECK_STATUS(tm_weights_create(&dst), TM_OK);
        int64_t s[2] = {rows, cols};
        CHECK_STATUS(tm_weights_add(src, "embed", TM_F32, 2, s, e), TM_OK);
        CHECK_STATUS(tm_converter_copy(c, dst, "output.weight", src, "embed", 1), TM_OK);
        CHECK_STATUS(tm_converter_copy(c, dst, "embed.copy", src, "embed", 0), TM_OK);
        CHECK_STATUS(tm_converter_copy(c16, dst, "output.f16", src, "embed", 1), TM_OK);
        const float *t = get_f32(dst, "output.weight", 2, cols, rows), *same = get_f32(dst, "embed.copy", 2, rows, cols);
        int bad = 0;
        for (int64_t i = 0; t && same && i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                bad += t[j * rows + i] != e[i * cols + j];
                bad += same[i * cols + j] != e[i * cols + j];
                bad += h16(dst, "output.f16", j * rows + i) != tmi_f32_to_f16(e[i * cols + j]);
            }
        if (!CHECK(bad == 0)) fprintf(stderr, "  [%lld][%lld]: %d mismatches\n", (long long)rows, (long long)cols, bad);
        tm_weights_destroy(dst);
        tm_weights_destroy(src);
        free(e);
    }
    tm_converter_destroy(c16);
    tm_converter_destroy(c);
}

static void expect_error(tm_status got, tm_status want, const char *needle)
{
    int ok = got == want && strstr(tm_last_error(), needle) != NULL;
    if (!CHECK(ok)) fprintf(stderr, "  got %s \"%s\", want %s naming \"%s\"\n", tm_status_name(got), tm_last_error(),
                            tm_status_name(want), needle);
}

static void test_errors(void)
{
    float wq[Q_OUT * IN], wk[KV_OUT * IN], wv[KV_OUT * IN], bq[Q_OUT], bk[KV_OUT], bv[KV_OUT], o[IN * Q_OUT];
    float *w[3] = {wq, wk, wv}, *b[3] = {bq, bk, bv};
    tm_weights *src = make_src(w, b, o), *dst = NULL;
    CHECK_STATUS(tm_weights_create(&dst), TM_OK);
    /* odd sizes and other dtypes */
    int64_t s6[2] = {6, IN}, s8[2] = {8, IN}, bad_in[2] = {8, 12};
    uint16_t h[8 * IN] = {0};
    int32_t ints[8 * IN] = {0};
    CHECK_STATUS(tm_weights_add(src, "six.weight", TM_F32, 2, s6, wq), TM_OK);
    CHECK_STATUS(tm_weights_add(src, "k16.weight", TM_F16, 2, s8, h), TM_OK);
    CHECK_STATUS(tm_weights_add(src, "in12.weight", TM_F32, 2, bad_in, wq), TM_OK);
    CHECK_STATUS(tm_weights_add(src, "int.weight", TM_I32, 2, s8, ints), TM_OK);
    tm_converter *c4 = make_conv(4, 1, TM_F16), *c3 = make_conv(3, 1, TM_F16);
    const char *odd[2] = {"q.weight", "six.weight"};
    expect_error(tm_converter_linear(c4, dst, "x", src, odd, 2, TM_SPLIT_COLUMN, 0), TM_ERR_INVALID_ARG,
                 "tensor \"six.weight\": out = 6 does not divide by tp = 4");
    const char *o1[1] = {"o.weight"};
    expect_error(tm_converter_linear(c3, dst, "x", src, o1, 1, TM_SPLIT_ROW, 0), TM_ERR_INVALID_ARG,
                 "tensor \"o.weight\": in = 32 does not divide by tp = 3");
    const char *missing[3] = {"q.weight", "nope.weight", "v.weight"};
    expect_error(tm_converter_linear(c4, dst, "x", src, missing, 3, TM_SPLIT_COLUMN, 0), TM_ERR_NOT_FOUND,
                 "nope.weight");
    const char *mixed[2] = {"q.weight", "k16.weight"};
    expect_error(tm_converter_linear(c4, dst, "x", src, mixed, 2, TM_SPLIT_COLUMN, 0), TM_ERR_INVALID_ARG,
                 "tensor \"k16.weight\": dtype F16, but \"q.weight\" is F32");
    const char *ins[2] = {"q.weight", "in12.weight"};
    expect_error(tm_converter_linear(c4, dst, "x", src, ins, 2, TM_SPLIT_COLUMN, 0), TM_ERR_INVALID_ARG,
                 "tensor \"in12.weight\": in = 12");
    const char *wb[2] = {"q.weight", "k.bias"};
    expect_error(tm_converter_linear(c4, dst, "x", src, wb, 2, TM_SPLIT_COLUMN, 0), TM_ERR_INVALID_ARG, "k.bias");
    const char *ints_n[1] = {"int.weight"};
    expect_error(tm_converter_linear(c4, dst, "x", src, ints_n, 1, TM_SPLIT_COLUMN, 0), TM_ERR_INVALID_ARG,
                 "tensor \"int.weight\": dtype I32");
    expect_error(tm_converter_linear(c4, dst, "x", src, qkv_names, 3, TM_SPLIT_COLUMN, 4), TM_ERR_INVALID_ARG,
                 "rank must be in [0, 4)");
    expect_error(tm_converter_linear(c4, dst, "x", src, qkv_names, 0, TM_SPLIT_COLUMN, 0), TM_ERR_INVALID_ARG,
                 "n_src");
    expect_error(tm_converter_linear(c4, dst, "x", src, qkv_names, 3, (tm_split)7, 0), TM_ERR_INVALID_ARG, "split");
    CHECK_STATUS(tm_converter_linear(c4, dst, "x", src, qkv_names, 3, TM_SPLIT_COLUMN, 1), TM_OK);
    expect_error(tm_converter_linear(c4, dst, "x", src, qkv_names, 3, TM_SPLIT_COLUMN, 1), TM_ERR_INVALID_ARG,
                 "tensor \"x\": already");
    expect_error(tm_converter_copy(c4, dst, "y", src, "q.bias", 1), TM_ERR_INVALID_ARG, "transpose needs a 2-D");
    expect_error(tm_converter_copy(c4, dst, "y", src, "gone", 0), TM_ERR_NOT_FOUND, "gone");
    CHECK(tm_weights_count(dst) == 1); /* failed calls add nothing */

    tm_converter_params p = tm_converter_default_params();
    CHECK(p.tp == 1 && p.keep_dtype == 1);
    tm_converter *c = NULL;
    p.tp = 0;
    expect_error(tm_converter_create(&p, &c), TM_ERR_INVALID_ARG, "tp must be in [1, 64]");
    p.tp = 65;
    expect_error(tm_converter_create(&p, &c), TM_ERR_INVALID_ARG, "tp must be in [1, 64]");
    p.tp = 2;
    p.keep_dtype = 0;
    p.dtype = TM_I32;
    expect_error(tm_converter_create(&p, &c), TM_ERR_INVALID_ARG, "dtype must be TM_F32, TM_F16 or TM_BF16");
    CHECK(c == NULL);
    tm_converter_destroy(NULL);
    tm_converter_destroy(c3);
    tm_converter_destroy(c4);
    tm_weights_destroy(dst);
    tm_weights_destroy(src);
}

int main(void)
{
    RUN(test_fused_qkv_tp1);
    RUN(test_column_split_reassembles);
    RUN(test_row_split_reassembles);
    RUN(test_casts);
    RUN(test_copy_transpose);
    RUN(test_errors);
    return tt_finish();
}

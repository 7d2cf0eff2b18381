/* converter.c - HF layout to workspace layout: transpose, fuse, cast and split
 * linear layers for tensor parallelism (see tm_converter_linear in tmrun.h).
 *
 * Every 2-D result is a blocked transpose: a BLOCK x BLOCK tile is read row by
 * row from the source and written row by row to the destination, so both sides
 * stream through whole cache lines even for 4096 x 11008 matrices. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/common.h"
#include "quantizer.h"
#include "tmrun.h"
#include "weights.h"

enum { BLOCK = 32, MAX_SOURCES = 64 };

struct tm_converter {
    tm_converter_params p;
};

tm_converter_params tm_converter_default_params(void)
{
    tm_converter_params p;
    memset(&p, 0, sizeof p);
    p.tp = 1;
    p.keep_dtype = 1;
    p.dtype = TM_F16;
    return p;
}

tm_status tm_converter_create(const tm_converter_params *params, tm_converter **out)
{
    if (!params || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_converter_create: NULL argument");
    if (params->tp < 1 || params->tp > 64)
        return tmi_fail(TM_ERR_INVALID_ARG, "tp must be in [1, 64], got %d", params->tp);
    if (params->keep_dtype != 0 && params->keep_dtype != 1)
        return tmi_fail(TM_ERR_INVALID_ARG, "keep_dtype must be 0 or 1, got %d", params->keep_dtype);
    if (!params->keep_dtype && !tmi_is_float_dtype(params->dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "dtype must be TM_F32, TM_F16 or TM_BF16, got %d", (int)params->dtype);
    tm_converter *c = calloc(1, sizeof *c);
    if (!c) return tmi_fail(TM_ERR_NOMEM, "tm_converter_create: out of memory");
    c->p = *params;
    *out = c;
    return TM_OK;
}

void tm_converter_destroy(tm_converter *conv) { free(conv); }

/* ------------------------------------------------------ element moves -- */

/* t[0, n) = src[0, n) as fp32; src of a float dtype, any alignment for F32. */
static void load_run(float *t, const void *src, tm_dtype dt, int64_t n)
{
    const uint16_t *h = src;
    switch (dt) {
    case TM_F16:
        for (int64_t i = 0; i < n; i++) t[i] = tmi_f16_to_f32(h[i]);
        break;
    case TM_BF16:
        for (int64_t i = 0; i < n; i++) t[i] = tmi_bf16_to_f32(h[i]);
        break;
    default: memcpy(t, src, (size_t)n * sizeof *t);
    }
}

/* dst[0, n) = t[0, n) rounded to nearest even in dt. */
static void store_run(void *dst, tm_dtype dt, const float *t, int64_t n)
{
    uint16_t *h = dst;
    switch (dt) {
    case TM_F16:
        for (int64_t i = 0; i < n; i++) h[i] = tmi_f32_to_f16(t[i]);
        break;
    case TM_BF16:
        for (int64_t i = 0; i < n; i++) h[i] = tmi_f32_to_bf16(t[i]);
        break;
    default: memcpy(dst, t, (size_t)n * sizeof *t);
    }
}

/* dst[0, n) = src[0, n), cast from sdt to ddt; bit-exact when they are equal. */
static void convert_run(void *dst, tm_dtype ddt, const void *src, tm_dtype sdt, int64_t n)
{
    size_t ses = tm_dtype_size(sdt), des = tm_dtype_size(ddt);
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)n * ses);
        return;
    }
    float t[256];
    for (int64_t i = 0; i < n; i += 256) {
        int64_t k = n - i < 256 ? n - i : 256;
        load_run(t, (const char *)src + (size_t)i * ses, sdt, k);
        store_run((char *)dst + (size_t)i * des, ddt, t, k);
    }
}

/* dst[c * dst_ld + r] = src[r * src_ld + c] for r < rows, c < cols, elements of
 * esz bytes.  Each tile is gathered from whole source rows into a local buffer
 * and written out as whole destination rows, so neither side keeps strided
 * lines resident: with power-of-two strides (4096 columns) those would all map
 * to one cache set.  always_inline so each esz below gets a constant-size copy. */
static inline __attribute__((always_inline)) void transpose_raw_esz(char *dst, int64_t dst_ld, const char *src,
                                                                    int64_t src_ld, int64_t rows, int64_t cols,
                                                                    size_t esz)
{
    _Alignas(64) char tile[BLOCK * BLOCK * 8]; /* [BLOCK c][BLOCK r] elements */
    for (int64_t r0 = 0; r0 < rows; r0 += BLOCK) {
        int64_t nr = rows - r0 < BLOCK ? rows - r0 : BLOCK;
        for (int64_t c0 = 0; c0 < cols; c0 += BLOCK) {
            int64_t nc = cols - c0 < BLOCK ? cols - c0 : BLOCK;
            for (int64_t r = 0; r < nr; r++) {
                const char *row = src + (size_t)((r0 + r) * src_ld + c0) * esz;
                for (int64_t c = 0; c < nc; c++) memcpy(tile + (size_t)(c * BLOCK + r) * esz, row + (size_t)c * esz, esz);
            }
            for (int64_t c = 0; c < nc; c++)
                memcpy(dst + (size_t)((c0 + c) * dst_ld + r0) * esz, tile + (size_t)(c * BLOCK) * esz, (size_t)nr * esz);
        }
    }
}

static void transpose_raw(void *dst, int64_t dst_ld, const void *src, int64_t src_ld, int64_t rows, int64_t cols,
                          size_t esz)
{
    switch (esz) {
    case 1: transpose_raw_esz(dst, dst_ld, src, src_ld, rows, cols, 1); break;
    case 2: transpose_raw_esz(dst, dst_ld, src, src_ld, rows, cols, 2); break;
    case 4: transpose_raw_esz(dst, dst_ld, src, src_ld, rows, cols, 4); break;
    default: transpose_raw_esz(dst, dst_ld, src, src_ld, rows, cols, 8); break;
    }
}

/* The same as transpose_raw with a cast between float dtypes: each tile goes
 * through an fp32 buffer, converted one contiguous run at a time. */
static void transpose_cast(void *dst, tm_dtype ddt, int64_t dst_ld, const void *src, tm_dtype sdt, int64_t src_ld,
                           int64_t rows, int64_t cols)
{
    size_t ses = tm_dtype_size(sdt), des = tm_dtype_size(ddt);
    if (sdt == ddt) {
        transpose_raw(dst, dst_ld, src, src_ld, rows, cols, ses);
        return;
    }
    float run[BLOCK], tile[BLOCK][BLOCK]; /* tile[c][r] */
    for (int64_t r0 = 0; r0 < rows; r0 += BLOCK) {
        int64_t nr = rows - r0 < BLOCK ? rows - r0 : BLOCK;
        for (int64_t c0 = 0; c0 < cols; c0 += BLOCK) {
            int64_t nc = cols - c0 < BLOCK ? cols - c0 : BLOCK;
            for (int64_t r = 0; r < nr; r++) {
                load_run(run, (const char *)src + (size_t)((r0 + r) * src_ld + c0) * ses, sdt, nc);
                for (int64_t c = 0; c < nc; c++) tile[c][r] = run[c];
            }
            for (int64_t c = 0; c < nc; c++)
                store_run((char *)dst + (size_t)((c0 + c) * dst_ld + r0) * des, ddt, tile[c], nr);
        }
    }
}

/* -------------------------------------------------------------- linear -- */

/* The part of one source a rank takes: rows [row0, row0 + rows) and columns
 * [col0, col0 + cols) of [out][in] (a bias: elements [row0, row0 + rows)). */
typedef struct src_slice {
    tm_tensor_info t;
    int64_t row0, rows, col0, cols;
    int zero; /* row-split bias on a rank other than 0 */
} src_slice;

static tm_status find_source(const tm_weights *src, const char *name, tm_tensor_info *t)
{
    if (!name) return tmi_fail(TM_ERR_INVALID_ARG, "tm_converter: a source name is NULL");
    tm_status st = tm_weights_find(src, name, t);
    if (st != TM_OK) return st;
    if (!tmi_is_float_dtype(t->dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": dtype %s, a linear layer must be F32, F16 or BF16",
                        name, tm_dtype_name(t->dtype));
    return TM_OK;
}

/* Looks up and checks the sources, and works out each one's slice for rank. */
static tm_status plan_linear(const tm_converter *conv, const tm_weights *src, const char *const *names, int32_t n,
                             tm_split split, int32_t rank, src_slice *s)
{
    int32_t tp = split == TM_SPLIT_NONE ? 1 : conv->p.tp;
    int32_t r = split == TM_SPLIT_NONE ? 0 : rank;
    for (int32_t i = 0; i < n; i++) {
        tm_tensor_info *t = &s[i].t;
        tm_status st = find_source(src, names[i], t);
        if (st != TM_OK) return st;
        if (t->ndim != 1 && t->ndim != 2)
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": a linear source must be [out][in] or [out], got %d dims",
                            names[i], t->ndim);
        if (i > 0 && t->ndim != s[0].t.ndim)
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": %d dims, but \"%.200s\" has %d (weights and biases "
                            "are converted in separate calls)", names[i], t->ndim, names[0], s[0].t.ndim);
        if (i > 0 && t->dtype != s[0].t.dtype)
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": dtype %s, but \"%.200s\" is %s (fused sources must "
                            "share a dtype)", names[i], tm_dtype_name(t->dtype), names[0], tm_dtype_name(s[0].t.dtype));
        int64_t out = t->shape[0], in = t->ndim == 2 ? t->shape[1] : 1;
        if (i > 0 && t->ndim == 2 && in != s[0].t.shape[1])
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": in = %lld, but \"%.200s\" has in = %lld", names[i],
                            (long long)in, names[0], (long long)s[0].t.shape[1]);
        s[i].row0 = 0;
        s[i].rows = out;
        s[i].col0 = 0;
        s[i].cols = in;
        s[i].zero = 0;
        if (split == TM_SPLIT_COLUMN) {
            if (out % tp != 0)
                return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": out = %lld does not divide by tp = %d",
                                names[i], (long long)out, tp);
            s[i].rows = out / tp;
            s[i].row0 = r * s[i].rows;
        } else if (split == TM_SPLIT_ROW && t->ndim == 2) {
            if (in % tp != 0)
                return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": in = %lld does not divide by tp = %d",
                                names[i], (long long)in, tp);
            s[i].cols = in / tp;
            s[i].col0 = r * s[i].cols;
        } else if (split == TM_SPLIT_ROW) {
            s[i].zero = r != 0; /* the bias is added once, after the all-reduce */
        }
    }
    return TM_OK;
}

static tm_status check_linear_args(const tm_converter *conv, const tm_weights *dst, const char *dst_name,
                                   const tm_weights *src, const char *const *src_names, int32_t n_src, tm_split split,
                                   int32_t rank)
{
    if (!conv || !dst || !dst_name || !src || !src_names)
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_converter_linear: NULL argument");
    if (n_src < 1 || n_src > MAX_SOURCES)
        return tmi_fail(TM_ERR_INVALID_ARG, "n_src must be in [1, %d], got %d", MAX_SOURCES, n_src);
    if (split != TM_SPLIT_NONE && split != TM_SPLIT_COLUMN && split != TM_SPLIT_ROW)
        return tmi_fail(TM_ERR_INVALID_ARG, "split must be 0 (none), 1 (column) or 2 (row), got %d", (int)split);
    if (rank < 0 || rank >= conv->p.tp)
        return tmi_fail(TM_ERR_INVALID_ARG, "rank must be in [0, %d), got %d", conv->p.tp, rank);
    if (tmi_weights_has(dst, dst_name))
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": already in the destination store", dst_name);
    return TM_OK;
}

tm_status tm_converter_linear(tm_converter *conv, tm_weights *dst, const char *dst_name, const tm_weights *src,
                              const char *const *src_names, int32_t n_src, tm_split split, int32_t rank)
{
    tm_status st = check_linear_args(conv, dst, dst_name, src, src_names, n_src, split, rank);
    if (st != TM_OK) return st;
    src_slice s[MAX_SOURCES];
    if ((st = plan_linear(conv, src, src_names, n_src, split, rank, s)) != TM_OK) return st;
    tm_dtype sdt = s[0].t.dtype, ddt = conv->p.keep_dtype ? sdt : conv->p.dtype;
    size_t ses = tm_dtype_size(sdt), des = tm_dtype_size(ddt);
    int is_weight = s[0].t.ndim == 2;
    int64_t total_out = 0, in_slice = is_weight ? s[0].cols : 1;
    for (int32_t i = 0; i < n_src; i++) total_out += s[i].rows;
    size_t nbytes = (size_t)(in_slice * total_out) * des;
    char *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return tmi_fail(TM_ERR_NOMEM, "tensor \"%.200s\": out of memory (%zu bytes)", dst_name, nbytes);
    int64_t off = 0; /* output column where source i's slice starts */
    for (int32_t i = 0; i < n_src; i++) {
        const char *base = s[i].t.data;
        if (is_weight) /* [rows][in] slice at (row0, col0) -> buf[c][off + r] */
            transpose_cast(buf + (size_t)off * des, ddt, total_out,
                           base + (size_t)(s[i].row0 * s[i].t.shape[1] + s[i].col0) * ses, sdt, s[i].t.shape[1],
                           s[i].rows, s[i].cols);
        else if (s[i].zero)
            memset(buf + (size_t)off * des, 0, (size_t)s[i].rows * des); /* 0.0 in every float dtype */
        else
            convert_run(buf + (size_t)off * des, ddt, base + (size_t)s[i].row0 * ses, sdt, s[i].rows);
        off += s[i].rows;
    }
    int64_t weight_shape[2] = {in_slice, total_out}; /* [in_slice][sum of out slices] */
    int64_t bias_shape[1] = {total_out};
    return tmi_weights_adopt(dst, dst_name, ddt, is_weight ? 2 : 1, is_weight ? weight_shape : bias_shape, buf);
}

tm_status tm_converter_copy(tm_converter *conv, tm_weights *dst, const char *dst_name, const tm_weights *src,
                            const char *src_name, int32_t transpose)
{
    if (!conv || !dst || !dst_name || !src || !src_name)
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_converter_copy: NULL argument");
    tm_tensor_info t;
    tm_status st = tm_weights_find(src, src_name, &t);
    if (st != TM_OK) return st;
    if (transpose && t.ndim != 2)
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": transpose needs a 2-D tensor, got %d dims", src_name,
                        t.ndim);
    if (tmi_weights_has(dst, dst_name))
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": already in the destination store", dst_name);
    /* Integer tensors (AWQ qweight, qzeros) are never cast. */
    tm_dtype ddt = conv->p.keep_dtype || !tmi_is_float_dtype(t.dtype) ? t.dtype : conv->p.dtype;
    size_t des = tm_dtype_size(ddt);
    int64_t n = t.nbytes / (int64_t)tm_dtype_size(t.dtype);
    char *buf = malloc(n ? (size_t)n * des : 1);
    if (!buf) return tmi_fail(TM_ERR_NOMEM, "tensor \"%.200s\": out of memory", dst_name);
    int64_t shape[8];
    memcpy(shape, t.shape, sizeof shape);
    if (transpose) {
        transpose_cast(buf, ddt, t.shape[0], t.data, t.dtype, t.shape[1], t.shape[0], t.shape[1]);
        shape[0] = t.shape[1];
        shape[1] = t.shape[0];
    } else {
        convert_run(buf, ddt, t.data, t.dtype, n);
    }
    return tmi_weights_adopt(dst, dst_name, ddt, t.ndim, shape, buf);
}

/* ------------------------------------------------------------ AWQ repack -- */

typedef struct awq_slice {
    tm_tensor_info qw, qz, sc;
    int64_t out, in;      /* the source's shape */
    int64_t o0, n_out;    /* this rank's output columns */
    int64_t i0, n_in;     /* this rank's input rows */
} awq_slice;

static tm_status plan_awq(const tm_converter *conv, const tm_weights *src, const char *const *prefixes, int32_t n,
                          int32_t group, tm_split split, int32_t rank, awq_slice *s)
{
    int32_t tp = conv->p.tp;
    for (int32_t i = 0; i < n; i++) {
        int32_t g;
        tm_status st = tmi_awq_find(src, prefixes[i], &s[i].qw, &s[i].qz, &s[i].sc, &s[i].out, &s[i].in, &g);
        if (st) return st;
        if (g != group)
            return tmi_fail(TM_ERR_FORMAT, "%.200s: AWQ group size is %d, the conversion asked for %d", prefixes[i], g,
                            group);
        if (s[i].in != s[0].in)
            return tmi_fail(TM_ERR_INVALID_ARG, "%.200s: %lld input features, the first source has %lld", prefixes[i],
                            (long long)s[i].in, (long long)s[0].in);
        s[i].o0 = 0, s[i].n_out = s[i].out, s[i].i0 = 0, s[i].n_in = s[i].in;
        if (split == TM_SPLIT_COLUMN) {
            if (s[i].out % tp)
                return tmi_fail(TM_ERR_INVALID_ARG, "%.200s: %lld outputs do not divide by tp %d", prefixes[i],
                                (long long)s[i].out, tp);
            s[i].n_out = s[i].out / tp;
            s[i].o0 = rank * s[i].n_out;
        } else if (split == TM_SPLIT_ROW) {
            if (s[i].in % ((int64_t)tp * group))
                return tmi_fail(TM_ERR_INVALID_ARG, "%.200s: in / tp (%lld / %d) must be a multiple of group %d",
                                prefixes[i], (long long)s[i].in, tp, group);
            s[i].n_in = s[i].in / tp;
            s[i].i0 = rank * s[i].n_in;
        }
    }
    return TM_OK;
}

/* Source i's slice into the engine tensors at output column off. */
static void repack_awq(const awq_slice *s, int32_t group, int64_t total, int64_t off, int32_t *qw, uint16_t *sz)
{
    const int32_t *q = s->qw.data, *z = s->qz.data;
    const uint16_t *sc = s->sc.data;
    int64_t words = s->out / 8;
    for (int64_t r = 0; r < s->n_in; r++) {
        const int32_t *row = q + (s->i0 + r) * words;
        int32_t *dst = qw + (r / 8) * total + off;
        for (int64_t o = 0; o < s->n_out; o++)
            dst[o] = (int32_t)((uint32_t)dst[o] | ((uint32_t)tmi_awq_get(row, s->o0 + o) << (4 * (r % 8))));
    }
    for (int64_t gr = 0; gr < s->n_in / group; gr++) {
        int64_t gi = s->i0 / group + gr;
        uint16_t *dst = sz + (gr * total + off) * 2;
        for (int64_t o = 0; o < s->n_out; o++) {
            dst[2 * o] = sc[gi * s->out + s->o0 + o];
            dst[2 * o + 1] = tmi_f32_to_f16((float)tmi_awq_get(z + gi * words, s->o0 + o)); /* exact: 0 .. 15 */
        }
    }
}

tm_status tm_converter_awq(tm_converter *conv, tm_weights *dst, const char *dst_prefix, const tm_weights *src,
                           const char *const *src_prefixes, int32_t n_src, int32_t group_size, tm_split split,
                           int32_t rank)
{
    char qname[512], szname[512];
    if (!dst_prefix) return tmi_fail(TM_ERR_INVALID_ARG, "tm_converter_awq: NULL argument");
    snprintf(qname, sizeof qname, "%s.qweight", dst_prefix);
    snprintf(szname, sizeof szname, "%s.scales_zeros", dst_prefix);
    tm_status st = check_linear_args(conv, dst, qname, src, src_prefixes, n_src, split, rank);
    if (st) return st;
    if (tmi_weights_has(dst, szname))
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": already in the destination store", szname);
    if (group_size < 32 || group_size % 32)
        return tmi_fail(TM_ERR_INVALID_ARG, "group_size must be a positive multiple of 32, got %d", group_size);
    awq_slice s[MAX_SOURCES];
    if ((st = plan_awq(conv, src, src_prefixes, n_src, group_size, split, rank, s))) return st;
    int64_t total = 0, n_in = s[0].n_in;
    for (int32_t i = 0; i < n_src; i++) total += s[i].n_out;
    int32_t *qw = calloc((size_t)(n_in / 8 * total), sizeof *qw);              /* [in/8][total] */
    uint16_t *sz = malloc((size_t)(n_in / group_size * total * 2) * sizeof *sz); /* [in/g][total][2] */
    if (!qw || !sz) {
        free(qw);
        free(sz);
        return tmi_fail(TM_ERR_NOMEM, "%.200s: out of memory", dst_prefix);
    }
    for (int32_t i = 0, off = 0; i < n_src; off += (int32_t)s[i].n_out, i++) repack_awq(&s[i], group_size, total, off, qw, sz);
    int64_t qshape[2] = {n_in / 8, total}, szshape[3] = {n_in / group_size, total, 2};
    st = tmi_weights_adopt(dst, qname, TM_I32, 2, qshape, qw);
    if (st) {
        free(sz);
        return st;
    }
    return tmi_weights_adopt(dst, szname, TM_F16, 3, szshape, sz);
}

/* common.h - what every kernel shares: the execution context and dtype helpers.
 *
 * A kernel is `tm_status tmi_<op>_<device>(const tmi_exec *ex, const tmi_<op>_args *a)`.
 * Kernels never allocate: scratch memory comes from ex->workspace, sized by the
 * op's *_workspace() function where it has one.  They validate shapes and dtypes,
 * return TM_OK at once on empty input, and report errors with tmi_fail().
 */
#ifndef TMI_KERNELS_COMMON_H
#define TMI_KERNELS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tmrun.h"
#include "../runtime/error.h"

struct tmi_pool;

typedef struct tmi_exec {
    tm_backend backend;
    struct tmi_pool *pool; /* CPU: worker threads (NULL: run on the caller) */
    void *stream;          /* CUDA: cudaStream_t */
    void *blas;            /* CUDA: the GEMM's handle, created by the caller (tmi_gemm_cuda_blas_create) */
    void *workspace;       /* scratch provided by the caller */
    size_t workspace_bytes;
    int tune;              /* CUDA: 1 in a decode step, whose GEMM shapes recur: the GEMM may time its
                              kernels for a new one (gemm_tune.h) */
} tmi_exec;

/* fp16 / bf16 <-> fp32, exact where the format allows (round to nearest even). */
static inline float tmi_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t tmi_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float tmi_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while ((man & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t tmi_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    if (a < 0x38800000u) {                                   /* subnormal or zero */
        if (a <= 0x33000000u) return (uint16_t)sign;         /* <= 2^-25 rounds to zero */
        /* value = man * 2^(e - 150) and the f16 unit is 2^-24: r = man >> (126 - e) */
        uint32_t man = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);                     /* 14 .. 24 */
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;    /* may carry into the smallest normal */
        return (uint16_t)(sign | r);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u;
    return (uint16_t)(sign | (r >> 13));
}

/* Element i of a weight vector of dtype TM_F32, TM_F16 or TM_BF16, as fp32. */
static inline float tmi_load_f32(const void *p, tm_dtype dtype, int64_t i)
{
    switch (dtype) {
    case TM_F16: return tmi_f16_to_f32(((const uint16_t *)p)[i]);
    case TM_BF16: return tmi_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

/* Stores v as element i of an F32, F16 or BF16 array (round to nearest even). */
static inline void tmi_store_f32(void *p, tm_dtype dtype, int64_t i, float v)
{
    switch (dtype) {
    case TM_F16: ((uint16_t *)p)[i] = tmi_f32_to_f16(v); break;
    case TM_BF16: ((uint16_t *)p)[i] = tmi_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

static inline int tmi_is_float_dtype(tm_dtype d) { return d == TM_F32 || d == TM_F16 || d == TM_BF16; }

/* A product C (+)= A x B (+ bias) that a GEMM left as k-split partial sums for the
 * op after it to finish (tmi_gemm_args.defer), which saves a kernel of its own:
 * the value C[i][j] would have had is sum over s < splits, in that order, of
 * part[(s * m + i) * n + j], then + bias[j], then, with accumulate, added to the C
 * in memory: exactly as the GEMM writes it.  An op that takes one reads the element
 * at &c[i * ldc + j] that way.  splits == 0: nothing deferred, C holds the product. */
typedef struct tmi_split_sums {
    int32_t splits;
    const float *part;  /* [splits][m][n] fp32 */
    int64_t m, n;
    const float *c;     /* the C the GEMM did not write, [m][ldc] */
    int64_t ldc;
    const void *bias;   /* [n] of bias_dtype, or NULL */
    tm_dtype bias_dtype;
    int accumulate;     /* 1: the value is C's old value + the sum */
} tmi_split_sums;

static inline int tmi_sums_active(const tmi_split_sums *s) { return s && s->splits > 0; }

/* The value of the element at p, row i of s->c (p lies in that row's first n). */
static inline float tmi_sums_at(const tmi_split_sums *s, const float *p, int64_t i)
{
    if (!tmi_sums_active(s)) return *p;
    int64_t j = (int64_t)(p - s->c) - i * s->ldc;
    float sum = 0.0f;
    for (int32_t k = 0; k < s->splits; k++) sum += s->part[((int64_t)k * s->m + i) * s->n + j];
    if (s->bias) sum += tmi_load_f32(s->bias, s->bias_dtype, j);
    return s->accumulate ? *p + sum : sum;
}

/* NULL when s is usable by an op over rows [0, rows) of C: active sums cover those
 * rows and have a part to read; else the reason. */
static inline const char *tmi_sums_invalid(const tmi_split_sums *s, int64_t rows)
{
    if (!tmi_sums_active(s)) return NULL;
    if (!s->part || !s->c) return "split sums need part and c";
    if (rows > s->m || s->n < 1 || s->ldc < s->n) return "split sums do not cover the rows";
    return NULL;
}

#endif

/* cutest_util.h - what the cutest_<op>.c files share (CUDA twin against CPU twin):
 * NaN poisoning, device upload / download through runtime/cuda/cuda_runtime.h, and
 * ||got - ref|| / ||ref|| over a strided matrix.  Header-only, static functions. */
#ifndef TMI_CUTEST_UTIL_H
#define TMI_CUTEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/common.h"
#include "runtime/cuda/cuda_runtime.h"

static inline void cu_fill_nan(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
}

/* A device copy of host[bytes] (NULL host: uninitialised), or NULL after a failed CHECK. */
static inline void *cu_upload(const void *host, size_t bytes)
{
    void *d = NULL;
    if (!CHECK_STATUS(tmi_cuda_malloc(&d, bytes), TM_OK)) return NULL;
    if (host && !CHECK_STATUS(tmi_cuda_memcpy(d, host, bytes, 0), TM_OK)) {
        tmi_cuda_free(d);
        return NULL;
    }
    return d;
}

static inline int cu_download(void *host, const void *dev, size_t bytes)
{
    return CHECK_STATUS(tmi_cuda_sync(), TM_OK) && CHECK_STATUS(tmi_cuda_memcpy(host, dev, bytes, 1), TM_OK);
}

/* Relative error of got against ref over rows x cols with leading dimension ld;
 * any NaN in got (an element never written) makes it infinite. */
static inline double cu_rel_err(const float *got, const float *ref, int64_t rows, int64_t cols, int64_t ld)
{
    double e2 = 0, r2 = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double g = got[i * ld + j], r = ref[i * ld + j];
            if (isnan(g) || isinf(g)) return INFINITY;
            e2 += (g - r) * (g - r);
            r2 += r * r;
        }
    return r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
}

/* The same over 16-bit (F16 or BF16) matrices; an all-ones pattern (0xffff, a NaN
 * in both: the poison) or any other NaN in got makes it infinite. */
static inline double cu_rel_err16(const uint16_t *got, const uint16_t *ref, tm_dtype dt, int64_t rows, int64_t cols,
                                  int64_t ld)
{
    double e2 = 0, r2 = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            uint16_t gb = got[i * ld + j], rb = ref[i * ld + j];
            double g = dt == TM_F16 ? tmi_f16_to_f32(gb) : tmi_bf16_to_f32(gb);
            double r = dt == TM_F16 ? tmi_f16_to_f32(rb) : tmi_bf16_to_f32(rb);
            if (isnan(g) || isinf(g)) return INFINITY;
            e2 += (g - r) * (g - r);
            r2 += r * r;
        }
    return r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
}

/* The check of a 16-bit output (an op's out_dtype F16 / BF16) against its CPU twin's:
 * relative error under 1e-3 (F16) or 8e-3 (BF16) - one sum-order difference can flip
 * a rounding - and the padding columns [cols, ld) still the 0xffff poison.  Notes
 * the error in worst[dt]; prints what failed.  Returns 1 when it passed. */
static inline int cu_check_out16(const uint16_t *got, const uint16_t *ref, tm_dtype dt, int64_t rows, int64_t cols,
                                 int64_t ld, double *worst, const char *what)
{
    double rel = cu_rel_err16(got, ref, dt, rows, cols, ld);
    int64_t pad = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = cols; j < ld; j++) pad += got[i * ld + j] != 0xffff;
    if (rel > worst[dt] || isnan(rel)) worst[dt] = rel;
    if (CHECK(rel < (dt == TM_F16 ? 1e-3 : 8e-3)) && CHECK(pad == 0)) return 1;
    fprintf(stderr, "  %s 16-bit out %lld x %lld dtype %s: rel %.3g, %lld padding elements written\n", what,
            (long long)rows, (long long)cols, tm_dtype_name(dt), rel, (long long)pad);
    return 0;
}

/* Elements of columns [cols, ld) of got that differ from before (bitwise; NaN = NaN). */
static inline int64_t cu_padding_changed(const float *got, const float *before, int64_t rows, int64_t cols, int64_t ld)
{
    int64_t n = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = cols; j < ld; j++) n += memcmp(&got[i * ld + j], &before[i * ld + j], sizeof(float)) != 0;
    return n;
}

/* The largest error of each case kind, printed last as "worst <label>: <rel>". */
static inline void cu_note(double *worst, double rel)
{
    if (rel > *worst || isnan(rel)) *worst = rel;
}

#endif

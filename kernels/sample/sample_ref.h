/* sample_ref.h - the sample tests' judge (test_sample.c, cutest_sample.c): the
 * semantics of sample.h recomputed in double with a full sort of the row, and a
 * verdict on whether a token is a draw those semantics allow when each
 * probability may be off by a relative tol_p and each cumulative mass by tol_mass
 * times the kept mass.  Two exact implementations (CPU Cephes exp, CUDA expf,
 * different summation) can then differ only where the judge says they may.
 * Header-only, static functions; not part of the library. */
#ifndef TMI_SAMPLE_REF_H
#define TMI_SAMPLE_REF_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/sample/sample.h"

typedef struct sref_cand {
    double p;
    int32_t id;
} sref_cand;

static int sref_order(const void *pa, const void *pb)
{
    const sref_cand *a = pa, *b = pb;
    if (a->p != b->p) return a->p > b->p ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* The sanitised copy of sample.h's first steps; returns the maximum (-inf: nothing to sample). */
static float sref_sanitise(const float *logits, int32_t vocab, float *x)
{
    float m = -INFINITY;
    for (int32_t i = 0; i < vocab; i++) {
        x[i] = isnan(logits[i]) ? -INFINITY : logits[i];
        if (x[i] > m) m = x[i];
    }
    if (m == INFINITY) {
        for (int32_t i = 0; i < vocab; i++) x[i] = x[i] == INFINITY ? 0.0f : -INFINITY;
        m = 0.0f;
    }
    return m;
}

/* log-softmax at temperature 1 of token t, in double (NaN for t = -1). */
static double sref_logprob(const float *logits, int32_t vocab, int32_t t)
{
    float *x = malloc((size_t)vocab * sizeof *x);
    double r = NAN;
    float m = x ? sref_sanitise(logits, vocab, x) : -INFINITY;
    if (m != -INFINITY && t >= 0 && t < vocab) {
        double s = 0.0;
        for (int32_t i = 0; i < vocab; i++) s += exp((double)x[i] - (double)m);
        r = (double)x[t] - ((double)m + log(s));
    }
    free(x);
    return r;
}

/* Prefix lengths [lo, hi] the kept set may have, given the sorted probabilities
 * c[0, n) and their prefix sums cum[0, n]. */
static void sref_kept_range(const sref_cand *c, const double *cum, int32_t n, const tmi_sample_row *r, double tol_p,
                            double tol_mass, int32_t *lo, int32_t *hi)
{
    int32_t lk = r->top_k > 0 && r->top_k < n ? r->top_k : n;
    int32_t plo = lk, phi = lk;
    if (r->top_p < 1.0f) {
        double t = (double)r->top_p * cum[lk], e = tol_mass * cum[lk];
        plo = phi = 0;
        while (plo < lk && cum[plo] < t - e) plo++;
        while (phi < lk && cum[phi] < t + e) phi++;
        if (plo < 1) plo = 1;
        if (phi < 1) phi = 1;
    }
    int32_t mlo = n, mhi = n;
    if (r->min_p > 0.0f) {
        mlo = mhi = 0;
        while (mlo < n && c[mlo].p >= (double)r->min_p * (1.0 + tol_p)) mlo++;
        while (mhi < n && c[mhi].p >= (double)r->min_p * (1.0 - tol_p)) mhi++;
        if (mlo < 1) mlo = 1; /* p_max = 1 always stays */
        if (mhi < 1) mhi = 1;
    }
    *lo = plo < mlo ? plo : mlo;
    *hi = phi < mhi ? phi : mhi;
}

/* 1 when token may be the row's answer.  *dist (may be NULL): for a sampled row
 * the smallest distance, relative to the kept mass, between u times the kept
 * mass and the span token can occupy (0 inside it); 0 for greedy and -1 rows. */
static int sref_explains(const float *logits, int32_t vocab, const tmi_sample_row *r, int32_t token, double tol_p,
                         double tol_mass, double *dist)
{
    if (dist) *dist = 0.0;
    float *x = malloc((size_t)vocab * sizeof *x);
    sref_cand *c = malloc((size_t)vocab * sizeof *c);
    double *cum = malloc(((size_t)vocab + 1) * sizeof *cum);
    int ok = 0;
    if (!x || !c || !cum) goto done;
    float m = sref_sanitise(logits, vocab, x);
    if (m == -INFINITY || r->temperature == 0.0f) {
        int32_t first = -1;
        for (int32_t i = 0; m != -INFINITY && first < 0; i++)
            if (x[i] == m) first = i;
        ok = token == first;
        goto done;
    }
    /* the float exponent both implementations compute, then exp in double */
    const float scale = 1.0f / r->temperature;
    int32_t n = 0;
    for (int32_t i = 0; i < vocab; i++) {
        float arg = (x[i] - m) * scale;
        if (arg >= -87.0f) c[n++] = (sref_cand){exp((double)arg), i};
    }
    qsort(c, (size_t)n, sizeof *c, sref_order);
    cum[0] = 0.0;
    for (int32_t j = 0; j < n; j++) cum[j + 1] = cum[j] + c[j].p;
    int32_t rank = 0;
    while (rank < n && c[rank].id != token) rank++;
    if (rank == n) goto done; /* out of range, or probability 0 */
    int32_t a = rank, b = rank; /* near-ties may come in either order */
    while (a > 0 && c[a - 1].p - c[rank].p <= tol_p * c[rank].p) a--;
    while (b + 1 < n && c[rank].p - c[b + 1].p <= tol_p * c[rank].p) b++;
    int32_t lo, hi;
    sref_kept_range(c, cum, n, r, tol_p, tol_mass, &lo, &hi);
    double best = INFINITY;
    for (int32_t len = lo; len <= hi; len++) {
        if (a >= len) continue;
        double mass = cum[len], target = r->u * mass;
        double from = cum[a], to = cum[b + 1 < len ? b + 1 : len];
        double d = target < from ? from - target : target >= to ? target - to : 0.0;
        if (d / mass < best) best = d / mass;
    }
    ok = best <= tol_mass;
    if (dist) *dist = best;
done:
    free(x);
    free(c);
    free(cum);
    return ok;
}

#endif

/* sampler_select.c - the sampler's O(vocab) half: a vectorised exp for the softmax,
 * and top-k, top-p, min-p and the inverse-CDF draw without sorting the vocabulary.
 *
 * Tokens are counted into buckets by a monotone function of p's float bits (16
 * buckets an octave), so every token of bucket b comes before every token of
 * bucket b + 1 in the order (p desc, id asc).  Each truncation and the draw walk
 * the bucket counts or masses to the one bucket where their cut falls, gather
 * that bucket's tokens (one branch-free pass over the probabilities) and order
 * only those, with a quickselect: a cut costs O(vocab) however many tokens it
 * keeps.  The order is strict, so every cut is unique and a seed reproduces its
 * tokens whatever the pivots did. */
#include "sampler.h"

#include <math.h>
#include <string.h>

enum {
    BUCKET_SHIFT = 19,                        /* keeps 4 mantissa bits: neighbours 4.4% apart */
    ZERO_BUCKET = 0x3f800000 >> BUCKET_SHIFT, /* where p = 0 lands: last, never kept */
    N_BUCKETS = ZERO_BUCKET + 1,
    SMALL_RANGE = 24,  /* selections finish a range this short with an insertion sort */
    MAX_PARTITIONS = 64 /* past this many (an order that defeats the pivots) sort the rest */
};

/* One token still in the running. */
typedef struct cand {
    float p; /* exp((logit - max) / temperature): (0, 1], 1 for the most likely */
    int32_t id;
} cand;

/* ------------------------------------------------------------------- exp -- */

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32))); /* bit work: wraps, never overflows */

/* exp(x) for x <= 0: Cephes' expf (Cody-Waite reduction by ln 2, degree-6
 * polynomial), within 2 ulp; exactly 1 at 0; 0 below -87, where the result would
 * leave the normal floats, and at -inf.  Never above 1. */
static inline void exp8_nonpositive(v8f *v)
{
    v8f x = *v;
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    v8f t = x * 1.44269504088896341f + magic;
    v8f n = t - magic;
    v8f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8f q = r * 1.9875691500e-4f + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    v8f y = q * r * r + r + 1.0f;
    v8u scale = ((v8u)t - 0x4b400000u + 127u) << 23; /* 2^n: n sits in t's low mantissa bits */
    v8f res = y * (v8f)scale;
    res = (v8f)((v8u)res & (v8u)(x >= -87.0f));
    v8u over = (v8u)(res > 1.0f);
    const v8f one = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    *v = (v8f)(((v8u)res & ~over) | ((v8u)one & over));
}

static double sum_lanes(const v8f *v)
{
    float lane[8];
    memcpy(lane, v, sizeof lane);
    double s = 0.0;
    for (int j = 0; j < 8; j++) s += lane[j];
    return s;
}

/* Multiplies by 1 / temperature rather than dividing: exact at temperature 1, and
 * the one rounding step it differs by is far below what sampling can resolve. */
double tmi_sampler_exp(const float *x, int32_t n, float max, float temperature, float *out)
{
    const float scale = 1.0f / temperature;
    double sum = 0.0;
    v8f acc = {0};
    int32_t i = 0, block = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        v = (v - max) * scale;
        exp8_nonpositive(&v);
        memcpy(out + i, &v, sizeof v);
        acc += v;
        if (++block == 32) { /* a float lane sums at most 32 values before going to double */
            sum += sum_lanes(&acc);
            acc = (v8f){0};
            block = 0;
        }
    }
    if (i < n) { /* the tail through the same code, padded with -inf (exp 0) */
        v8f v = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        memcpy(&v, x + i, sizeof(float) * (size_t)(n - i));
        v = (v - max) * scale;
        exp8_nonpositive(&v);
        memcpy(out + i, &v, sizeof(float) * (size_t)(n - i));
        acc += v;
    }
    return sum + sum_lanes(&acc);
}

float tmi_sampler_row_max(float *x, int32_t n)
{
    const v8f neg_inf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    v8f m = neg_inf;
    v8i nan = {0};
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        nan |= v != v;
        v8u greater = (v8u)(v > m); /* NaN is never greater: it never becomes the maximum */
        m = (v8f)(((v8u)v & greater) | ((v8u)m & ~greater));
    }
    float lane[8], max = -INFINITY;
    int any_nan = 0;
    memcpy(lane, &m, sizeof lane);
    for (int j = 0; j < 8; j++) {
        max = lane[j] > max ? lane[j] : max;
        any_nan |= nan[j] != 0;
    }
    for (; i < n; i++) {
        any_nan |= isnan(x[i]);
        max = x[i] > max ? x[i] : max;
    }
    if (any_nan) /* rare: only then is the row written */
        for (i = 0; i < n; i++)
            if (isnan(x[i])) x[i] = -INFINITY;
    return max;
}

/* ------------------------------------------------------------- selection -- */

static inline int cand_before(cand a, cand b) { return (a.p > b.p) | ((a.p == b.p) & (a.id < b.id)); }

static inline void cand_swap(cand *a, int32_t i, int32_t j)
{
    cand t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Heapsort, for the rare range a selection gives up partitioning: in place and
 * O(n log n) whatever the order (qsort may allocate, which the engine thread must not). */
static void cand_heapsort(cand *a, int32_t n)
{
    for (int32_t end = n, start = n / 2; end > 1;) {
        if (start > 0) start--;
        else cand_swap(a, 0, --end);
        for (int32_t root = start, child; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && cand_before(a[child], a[child + 1])) child++;
            if (!cand_before(a[root], a[child])) break; /* a max-heap of "after": the last first */
            cand_swap(a, root, child);
        }
    }
}

static void cand_sort(cand *a, int32_t n)
{
    if (n > SMALL_RANGE) {
        cand_heapsort(a, n);
        return;
    }
    for (int32_t i = 1; i < n; i++) {
        cand c = a[i];
        int32_t j = i;
        for (; j > 0 && cand_before(c, a[j - 1]); j--) a[j] = a[j - 1];
        a[j] = c;
    }
}

/* Partitions a[lo, hi) (hi - lo >= 3) around the median of its first, middle and
 * last entries: returns the pivot's place m, with a[lo, m) before it and a[m + 1, hi)
 * after it; *left_mass = the mass of a[lo, m).  The loop is branch-free (Lomuto
 * with an unconditional swap), since which side a token goes is a coin flip, and
 * moves each candidate as one 8-byte word: two 4-byte stores read back as one
 * 8-byte load defeat store forwarding. */
static int32_t partition(cand *a, int32_t lo, int32_t hi, double *left_mass)
{
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (cand_before(a[mid], a[lo])) cand_swap(a, mid, lo);
    if (cand_before(a[last], a[lo])) cand_swap(a, last, lo);
    if (cand_before(a[mid], a[last])) cand_swap(a, mid, last); /* a[last] is now the median */
    cand pivot = a[last];
    int32_t store = lo;
    double mass = 0.0;
    for (int32_t i = lo; i < last; i++) {
        uint64_t word, other;
        cand c;
        memcpy(&word, &a[i], sizeof word);
        memcpy(&c, &word, sizeof c);
        int before = cand_before(c, pivot);
        memcpy(&other, &a[store], sizeof other);
        memcpy(&a[i], &other, sizeof other);
        memcpy(&a[store], &word, sizeof word);
        store += before;
        mass += (double)c.p * (double)before;
    }
    cand_swap(a, store, last);
    *left_mass = mass;
    return store;
}

/* Rearranges a[0, n) so that a[0, k) are its k first in the order (as a set). */
static void select_first(cand *a, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n; /* a[0, lo) are first, a[hi, n) last, lo <= k <= hi */
    for (int rounds = 0; hi - lo > SMALL_RANGE && rounds < MAX_PARTITIONS; rounds++) {
        double unused;
        int32_t m = partition(a, lo, hi, &unused);
        if (m == k || m + 1 == k) return;
        if (m > k) hi = m;
        else lo = m + 1;
    }
    cand_sort(a + lo, hi - lo);
}

static inline int reaches(double cum, double target, int strict) { return strict ? cum > target : cum >= target; }

/* The smallest L whose first L candidates have a mass reaching target (> target
 * when strict, else >=); n when rounding keeps the total short of it.  Rearranges
 * a[0, n) so that a[0, L) holds them, a[L - 1] being the L-th. */
static int32_t select_mass_prefix(cand *a, int32_t n, double target, int strict)
{
    int32_t lo = 0, hi = n; /* a[0, lo) are first, of mass acc short of target; a[hi, n) last */
    double acc = 0.0;
    for (int rounds = 0; hi - lo > SMALL_RANGE && rounds < MAX_PARTITIONS; rounds++) {
        double left;
        int32_t m = partition(a, lo, hi, &left);
        if (reaches(acc + left, target, strict)) {
            hi = m;
            continue;
        }
        acc += left + a[m].p;
        if (reaches(acc, target, strict)) return m + 1;
        lo = m + 1;
    }
    cand_sort(a + lo, hi - lo);
    for (int32_t i = lo; i < hi; i++) {
        acc += a[i].p;
        if (reaches(acc, target, strict)) return i + 1;
    }
    return hi; /* a[0, hi) reached it when summed in another order */
}

/* ---------------------------------------------------------------- buckets -- */

/* A bucket's tokens share one float exponent, so their mass is kept exactly, as a
 * sum of 24-bit significands: no rounding, and no dependence on the order. */
typedef struct bucket {
    uint64_t significands;
    int32_t count;
    int32_t pad; /* 16 bytes: one line access per token in the counting pass */
} bucket;

/* The kept set: every token of the buckets [0, edge), and of bucket edge all its
 * tokens (part == NULL) or just part[0, n_part). */
typedef struct kept {
    const float *prob;  /* [vocab] */
    int32_t vocab;
    const bucket *hist; /* [N_BUCKETS] */
    int32_t edge;
    cand *part;         /* NULL, or the buffer: [n_part] */
    int32_t n_part;
    cand *buffer;       /* [vocab] */
} kept;

size_t tmi_sampler_select_workspace(int32_t vocab)
{
    if (vocab < 1) return 0;
    return N_BUCKETS * sizeof(bucket) + (size_t)vocab * sizeof(cand);
}

/* For p in [0, 1]: larger p, smaller bucket; equal p, same bucket.  Bucket 0 holds
 * p = 1 alone, then 16 buckets an octave; each bucket is one exponent's slice. */
static inline int32_t bucket_of_bits(uint32_t u) { return ZERO_BUCKET - (int32_t)(u >> BUCKET_SHIFT); }

static inline uint32_t float_bits(float p)
{
    uint32_t u;
    memcpy(&u, &p, sizeof u);
    return u;
}

static inline int32_t bucket_of(float p) { return bucket_of_bits(float_bits(p)); }

static double bucket_mass(const bucket *h, int32_t b)
{
    int exponent = (ZERO_BUCKET - b) >> (23 - BUCKET_SHIFT); /* biased */
    return ldexp((double)h[b].significands, exponent - 127 - 23);
}

static kept count_buckets(const float *prob, int32_t vocab, void *workspace)
{
    bucket *hist = workspace;
    memset(hist, 0, N_BUCKETS * sizeof *hist);
    for (int32_t i = 0; i < vocab; i++) {
        uint32_t u = float_bits(prob[i]);
        bucket *b = &hist[bucket_of_bits(u)];
        b->significands += (u & 0x7fffffu) | 0x800000u;
        b->count++;
    }
    kept s = {prob, vocab, hist, ZERO_BUCKET - 1, NULL, 0, (cand *)(hist + N_BUCKETS)};
    while (hist[s.edge].count == 0) s.edge--; /* bucket 0 holds the maximum */
    return s;
}

/* Makes part the tokens of bucket b (b <= edge) and b the edge, in one pass: with
 * a branch when the bucket is sparse (the branch is then predictable), else
 * branch-free. */
static void gather(kept *s, int32_t b)
{
    if (b == s->edge && s->part) return;
    int32_t n = 0;
    uint32_t key = (uint32_t)(ZERO_BUCKET - b); /* bucket b is the p with bits >> BUCKET_SHIFT == key */
    if (s->hist[b].count < s->vocab / 32) {
        for (int32_t i = 0; i < s->vocab; i++)
            if (float_bits(s->prob[i]) >> BUCKET_SHIFT == key) s->buffer[n++] = (cand){s->prob[i], i};
    } else {
        for (int32_t i = 0; i < s->vocab; i++) {
            s->buffer[n] = (cand){s->prob[i], i};
            n += float_bits(s->prob[i]) >> BUCKET_SHIFT == key;
        }
    }
    s->edge = b;
    s->part = s->buffer;
    s->n_part = n;
}

static double edge_mass(const kept *s)
{
    if (!s->part) return bucket_mass(s->hist, s->edge);
    double m = 0.0;
    for (int32_t i = 0; i < s->n_part; i++) m += s->part[i].p;
    return m;
}

static double kept_mass(const kept *s)
{
    double m = 0.0;
    for (int32_t b = 0; b < s->edge; b++) m += bucket_mass(s->hist, b);
    return m + edge_mass(s);
}

/* Keeps the k first, k < the kept count. */
static void keep_first(kept *s, int32_t k)
{
    int32_t b = 0, before = 0;
    for (; b < s->edge && before + s->hist[b].count < k; b++) before += s->hist[b].count;
    gather(s, b);
    select_first(s->part, s->n_part, k - before);
    s->n_part = k - before;
}

/* Cuts the kept set to its shortest prefix reaching target (see select_mass_prefix);
 * the token ending it is then part[n_part - 1]. */
static void keep_mass_prefix(kept *s, double target, int strict)
{
    int32_t b = 0;
    double acc = 0.0;
    for (; b < s->edge && !reaches(acc + bucket_mass(s->hist, b), target, strict); b++)
        acc += bucket_mass(s->hist, b);
    gather(s, b);
    s->n_part = select_mass_prefix(s->part, s->n_part, target - acc, strict);
}

/* Drops p < threshold, threshold in (0, 1]: only its own bucket needs a look. */
static void keep_at_least(kept *s, float threshold)
{
    int32_t b = bucket_of(threshold);
    if (b > s->edge) return;
    gather(s, b);
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_part; i++)
        if (s->part[i].p >= threshold) s->part[n++] = s->part[i];
    s->n_part = n;
    if (n == 0) { /* keep the edge bucket non-empty; bucket 0 holds p = 1, which always stays */
        do s->edge--;
        while (s->hist[s->edge].count == 0);
        s->part = NULL;
    }
}

int32_t tmi_sampler_draw(const tm_sampling_params *p, const float *prob, int32_t vocab, double u,
                         void *workspace)
{
    kept s = count_buckets(prob, vocab, workspace);
    int32_t n = 0;
    for (int32_t b = 0; b <= s.edge; b++) n += s.hist[b].count;
    if (p->top_k > 0 && p->top_k < n) keep_first(&s, p->top_k);
    if (p->top_p < 1.0f) keep_mass_prefix(&s, (double)p->top_p * kept_mass(&s), 0);
    if (p->min_p > 0.0f) keep_at_least(&s, p->min_p); /* p_max is exp(0) = 1 */
    keep_mass_prefix(&s, u * kept_mass(&s), 1);
    return s.part[s.n_part - 1].id;
}

/* cutest_gemm_a_src.c - a GEMM that takes the op writing its A (gemm.h's a_src), on
 * the GPU machine.  For each source - silu_mul with and without the gate/up GEMM's
 * deferred split sums, rmsnorm, and a split-K attention merge (partials made up
 * here, some sequences with one split) - at m = 1 the small-m kernel must fuse it
 * (tmi_gemm_small_fuses), leave A unwritten (still poisoned) and give the bits of
 * running the op's own CUDA kernel and then the plain GEMM.  On the paths that
 * cannot fuse (cuBLAS forced; m = 2; rmsnorm rows its float4 kernel cannot take)
 * the GEMM runs the op itself: A must then hold the op's output and C the plain
 * GEMM's bits.  Each fused result is also checked against the CPU twin, which
 * runs the op first (the op's own rounding may differ by an ulp: 1e-3). */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_small.h"
#include "runtime/threadpool.h"

#define TOL_CPU 1e-3

static tmi_pool *pool;
static void *blas;

/* A device copy of n random values in [-scale, scale) as dtype dt; host copy in *host (fp32 or 16-bit). */
static void *random_dev(int64_t n, tm_dtype dt, float scale, unsigned long long seed, void **host)
{
    size_t es = dt == TM_F32 ? 4 : 2;
    float *f = malloc((size_t)(n + 1) * 4);
    void *h = malloc((size_t)(n + 1) * es);
    if (!f || !h) {
        free(f), free(h);
        return NULL;
    }
    tt_fill_random(f, (long)n, seed);
    for (int64_t i = 0; i < n; i++) {
        float v = scale * f[i];
        if (dt == TM_F32) ((float *)h)[i] = v;
        else ((uint16_t *)h)[i] = dt == TM_F16 ? tmi_f32_to_f16(v) : tmi_f32_to_bf16(v);
    }
    free(f);
    void *d = cu_upload(h, (size_t)n * es);
    if (host) *host = h;
    else free(h);
    return d;
}

/* Poisons A (16-bit all ones, a NaN) on the device. */
static int poison16(void *da, int64_t n)
{
    uint16_t *p = malloc((size_t)n * 2);
    if (!p) return 0;
    memset(p, 0xff, (size_t)n * 2);
    int ok = CHECK_STATUS(tmi_cuda_memcpy(da, p, (size_t)n * 2, 0), TM_OK);
    free(p);
    return ok;
}

static int64_t still_poisoned(const uint16_t *a, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += a[i] == 0xffff;
    return k;
}

/* The device side of one case: A = out of the source (m x k, 16-bit dtype dt),
 * B = [k][n] weights of dt, C [m][n] fp32.  run_op runs the source's own CUDA op. */
typedef struct src_case {
    const char *name;
    int64_t m, k, n;
    tm_dtype dt;
    void *da, *db, *dc, *dws;
    size_t ws_bytes;
    tmi_gemm_a_src src;
    tm_status (*run_op)(const tmi_exec *, const tmi_gemm_a_src *);
    int (*before)(void *ctx); /* remakes inputs a run consumes (deferred split sums), or NULL */
    void *ctx;
    int want_fused;           /* 1: the small-m kernel must fuse it at this m */
    const void *a_input;      /* A's [m][k] host values when the source reads A itself (a merge's
                                 one-split sequence), else NULL: A is poisoned before each run */
} src_case;

/* A before a run: poisoned, or its input values. */
static int prep_a(const src_case *c)
{
    if (c->a_input) return CHECK_STATUS(tmi_cuda_memcpy(c->da, c->a_input, (size_t)(c->m * c->k) * 2, 0), TM_OK);
    return poison16(c->da, c->m * c->k);
}

static tm_status op_silu(const tmi_exec *ex, const tmi_gemm_a_src *s) { return tmi_silu_mul_cuda(ex, s->silu); }
static tm_status op_norm(const tmi_exec *ex, const tmi_gemm_a_src *s) { return tmi_rmsnorm_cuda(ex, s->norm); }
static tm_status op_merge(const tmi_exec *ex, const tmi_gemm_a_src *s) { return tmi_attention_cuda_merge(ex, s->merge); }

/* C (and A) of one GEMM on path; src NULL: A as it is.  got [m][n], a_got [m][k] 16-bit. */
static int gemm_run(src_case *c, const tmi_gemm_a_src *src, tmi_gemm_path path, float *got, uint16_t *a_got)
{
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = c->dws, .workspace_bytes = c->ws_bytes};
    tmi_gemm_args g = {.m = c->m, .n = c->n, .k = c->k, .a = c->da, .a_dtype = c->dt, .lda = c->k, .b = c->db,
                       .b_dtype = c->dt, .ldb = c->n, .c = c->dc, .ldc = c->n, .a_src = src};
    float *nan = malloc((size_t)(c->m * c->n) * 4);
    int ok = CHECK(nan != NULL);
    if (ok) cu_fill_nan(nan, c->m * c->n);
    ok = ok && CHECK_STATUS(tmi_cuda_memcpy(c->dc, nan, (size_t)(c->m * c->n) * 4, 0), TM_OK);
    ok = ok && (!c->before || c->before(c->ctx)) && CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, path), TM_OK) &&
         cu_download(got, c->dc, (size_t)(c->m * c->n) * 4) && cu_download(a_got, c->da, (size_t)(c->m * c->k) * 2);
    free(nan);
    return ok;
}

/* The checks of the header for one case; cpu_ref: the CPU twin's C, or NULL. */
static void check_case(src_case *c, const float *cpu_ref)
{
    int64_t cn = c->m * c->n, an = c->m * c->k;
    float *ref = malloc((size_t)cn * 4), *got = malloc((size_t)cn * 4);
    uint16_t *a_ref = malloc((size_t)an * 2), *a_got = malloc((size_t)an * 2);
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = c->dws, .workspace_bytes = c->ws_bytes};
    int ok = CHECK(ref && got && a_ref && a_got);
    for (int path = TMI_GEMM_PATH_BLAS; ok && path <= TMI_GEMM_PATH_SMALL_M; path++) {
        /* the reference: the op's kernel, then the plain GEMM on the same path */
        ok = prep_a(c) && (!c->before || c->before(c->ctx)) && CHECK_STATUS(c->run_op(&gpu, &c->src), TM_OK);
        int (*before)(void *) = c->before; /* the plain GEMM reads A, not the source's inputs */
        c->before = NULL;
        ok = ok && gemm_run(c, NULL, (tmi_gemm_path)path, ref, a_ref);
        c->before = before;
        tmi_gemm_args probe = {.m = c->m, .n = c->n, .k = c->k, .a = c->da, .a_dtype = c->dt, .lda = c->k,
                               .b = c->db, .b_dtype = c->dt, .ldb = c->n, .c = c->dc, .ldc = c->n, .a_src = &c->src};
        int fuses = path == TMI_GEMM_PATH_SMALL_M && tmi_gemm_small_fuses(&gpu, &probe);
        ok = ok && prep_a(c) && gemm_run(c, &c->src, (tmi_gemm_path)path, got, a_got);
        if (!ok) break;
        int64_t differ = 0, poisoned = still_poisoned(a_got, an);
        for (int64_t j = 0; j < cn; j++) differ += memcmp(&got[j], &ref[j], 4) != 0;
        int want_fused = path == TMI_GEMM_PATH_SMALL_M && c->want_fused;
        int a_ok = fuses && !c->a_input ? poisoned == an : memcmp(a_got, a_ref, (size_t)an * 2) == 0;
        double rel = cpu_ref && fuses ? cu_rel_err(got, cpu_ref, c->m, c->n, c->n) : 0.0;
        if (!CHECK(fuses == want_fused) || !CHECK(differ == 0) || !CHECK(a_ok) || !CHECK(rel < TOL_CPU))
            fprintf(stderr, "  %s m=%lld k=%lld n=%lld %s path %d: fused %d (want %d), %lld of C differ, A %s, "
                    "cpu rel %.3g\n", c->name, (long long)c->m, (long long)c->k, (long long)c->n,
                    tm_dtype_name(c->dt), path, fuses, want_fused, (long long)differ,
                    fuses ? "written" : "not the op's output", rel);
        if (fuses) printf("%s m=%lld %s: fused, %s, cpu rel %.3g\n", c->name, (long long)c->m,
                          tm_dtype_name(c->dt), differ ? "DIFFERENT bits" : "same bits", rel);
    }
    free(ref), free(got), free(a_ref), free(a_got);
}

/* The CPU twin's C for a host copy of the source: tmi_gemm_cpu runs the op first. */
static int cpu_gemm(const tmi_gemm_a_src *src, void *a, const void *b, int64_t m, int64_t k, int64_t n, tm_dtype dt,
                    float *c)
{
    size_t ws_bytes = tmi_gemm_cpu_workspace(m, n, k, tmi_pool_threads(pool));
    void *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    tmi_exec cpu = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = a, .a_dtype = dt, .lda = k, .b = b, .b_dtype = dt, .ldb = n,
                       .c = c, .ldc = n, .a_src = src};
    int ok = CHECK_STATUS(tmi_gemm_cpu(&cpu, &g), TM_OK);
    free(ws);
    return ok;
}

/* ---- silu_mul: gate and up from a gate/up GEMM (k kg, n 2 inter), deferred or written ---- */

typedef struct gu_ctx {
    void *dx, *dwg, *dgu, *dws; /* its A [kg] 16-bit, B [kg][2 inter], C [2 inter] fp32 */
    int64_t kg, inter;
    size_t ws_bytes;
    tm_dtype dt;
    tmi_split_sums sums;
    int defer;
} gu_ctx;

static int gu_run(void *p)
{
    gu_ctx *g = p;
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = g->dws, .workspace_bytes = g->ws_bytes};
    tmi_gemm_args a = {.m = 1, .n = 2 * g->inter, .k = g->kg, .a = g->dx, .a_dtype = g->dt, .lda = g->kg,
                       .b = g->dwg, .b_dtype = g->dt, .ldb = 2 * g->inter, .c = g->dgu, .ldc = 2 * g->inter,
                       .defer = g->defer ? &g->sums : NULL};
    return CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &a, TMI_GEMM_PATH_SMALL_M), TM_OK) &&
           CHECK(!g->defer || g->sums.splits > 1);
}

static void silu_case(int64_t inter, int64_t n, int64_t m, tm_dtype dt, int defer, unsigned long long seed)
{
    int64_t kg = 4096;
    gu_ctx g = {.kg = kg, .inter = inter, .dt = dt, .defer = defer && m == 1};
    size_t ws_bytes = tmi_gemm_cuda_workspace(16, inter > kg ? inter : kg, dt);
    void *hw = NULL;
    g.ws_bytes = ws_bytes;
    g.dx = random_dev(kg, dt, 1.0f, seed, NULL);
    g.dwg = random_dev(kg * 2 * inter, dt, 0.05f, seed + 1, NULL);
    /* m = 1: gate and up come from the gate/up GEMM; m > 1: random values in memory */
    g.dgu = m == 1 ? cu_upload(NULL, (size_t)(2 * inter) * 4) : random_dev(m * 2 * inter, TM_F32, 4.0f, seed + 3, NULL);
    g.dws = cu_upload(NULL, ws_bytes);
    src_case c = {.name = defer && m == 1 ? "silu_mul (split sums)" : "silu_mul", .m = m, .k = inter, .n = n,
                  .dt = dt, .ws_bytes = ws_bytes, .run_op = op_silu, .want_fused = m == 1};
    c.db = random_dev(inter * n, dt, 0.05f, seed + 2, &hw);
    c.da = cu_upload(NULL, (size_t)(m * inter) * 2);
    c.dc = cu_upload(NULL, (size_t)(m * n) * 4);
    c.dws = g.dws;
    int ok = CHECK(g.dx && g.dwg && g.dgu && g.dws && c.db && c.da && c.dc);
    tmi_silu_mul_args s = {.n = m, .d = inter, .gate = g.dgu, .ldg = 2 * inter, .up = (float *)g.dgu + inter,
                           .ldu = 2 * inter, .out = c.da, .ldo = inter, .out_dtype = dt, .sums = &g.sums};
    c.src = (tmi_gemm_a_src){.kind = TMI_GEMM_A_SILU_MUL, .silu = &s};
    if (ok && m == 1) c.before = gu_run, c.ctx = &g;
    /* the CPU twin over host copies of what the fused kernel reads */
    float *cpu_c = NULL;
    if (ok && m == 1 && gu_run(&g)) {
        size_t part = g.defer ? (size_t)g.sums.splits * 2 * inter * 4 : 0;
        float *hgu = malloc((size_t)(2 * inter) * 4), *hpart = part ? malloc(part) : NULL;
        void *ha = malloc((size_t)inter * 2);
        cpu_c = malloc((size_t)n * 4);
        if (CHECK(hgu && (hpart || !part) && ha && cpu_c) && cu_download(hgu, g.dgu, (size_t)(2 * inter) * 4) &&
            (!part || cu_download(hpart, g.sums.part, part))) {
            tmi_split_sums hs = g.sums;
            hs.part = hpart, hs.c = hgu;
            tmi_silu_mul_args h = s;
            h.gate = hgu, h.up = hgu + inter, h.out = ha, h.sums = g.defer ? &hs : NULL;
            tmi_gemm_a_src hsrc = {.kind = TMI_GEMM_A_SILU_MUL, .silu = &h};
            if (!cpu_gemm(&hsrc, ha, hw, 1, inter, n, dt, cpu_c)) free(cpu_c), cpu_c = NULL;
        }
        free(hgu), free(hpart), free(ha);
    }
    if (ok) check_case(&c, cpu_c);
    free(cpu_c), free(hw);
    tmi_cuda_free(g.dx), tmi_cuda_free(g.dwg), tmi_cuda_free(g.dgu), tmi_cuda_free(g.dws);
    tmi_cuda_free(c.db), tmi_cuda_free(c.da), tmi_cuda_free(c.dc);
}

/* ---- rmsnorm: x [m][ldx] fp32; ldx off a multiple of 4 takes rmsnorm's scalar kernel, which is not fused ---- */

static void norm_case(int64_t d, int64_t ldx, int64_t n, int64_t m, tm_dtype dt, unsigned long long seed)
{
    void *hx = NULL, *hw = NULL, *hb = NULL;
    size_t ws_bytes = tmi_gemm_cuda_workspace(16, d, dt);
    src_case c = {.name = ldx % 4 ? "rmsnorm (scalar layout)" : "rmsnorm", .m = m, .k = d, .n = n, .dt = dt,
                  .ws_bytes = ws_bytes, .run_op = op_norm, .want_fused = m == 1 && ldx % 4 == 0};
    void *dx = random_dev(m * ldx, TM_F32, 3.0f, seed, &hx), *dw = random_dev(d, dt, 1.0f, seed + 1, &hw);
    c.db = random_dev(d * n, dt, 0.05f, seed + 2, &hb);
    c.da = cu_upload(NULL, (size_t)(m * d) * 2);
    c.dc = cu_upload(NULL, (size_t)(m * n) * 4);
    c.dws = cu_upload(NULL, ws_bytes);
    tmi_rmsnorm_args r = {.n = m, .d = d, .x = dx, .ldx = ldx, .weight = dw, .w_dtype = dt, .eps = 1e-5f,
                          .out = c.da, .out_dtype = dt, .ldo = d};
    c.src = (tmi_gemm_a_src){.kind = TMI_GEMM_A_RMSNORM, .norm = &r};
    float *cpu_c = malloc((size_t)(m * n) * 4);
    void *ha = malloc((size_t)(m * d) * 2);
    int ok = CHECK(dx && dw && c.db && c.da && c.dc && c.dws && cpu_c && ha);
    if (ok) {
        tmi_rmsnorm_args h = r;
        h.x = hx, h.weight = hw, h.out = ha;
        tmi_gemm_a_src hsrc = {.kind = TMI_GEMM_A_RMSNORM, .norm = &h};
        ok = cpu_gemm(&hsrc, ha, hb, m, d, n, dt, cpu_c);
    }
    if (ok) check_case(&c, cpu_c);
    free(hx), free(hw), free(hb), free(cpu_c), free(ha);
    tmi_cuda_free(dx), tmi_cuda_free(dw), tmi_cuda_free(c.db), tmi_cuda_free(c.da), tmi_cuda_free(c.dc);
    tmi_cuda_free(c.dws);
}

/* ---- the split-K merge: partial states made up here, the sequence's splits from its kv_len ---- */

/* The partials and meta in the workspace, as attention leaves them; a small-m GEMM's
 * own partials overwrite them, so they go back before every run. */
typedef struct merge_ctx {
    void *dacc, *dml, *dmeta;
    const float *acc, *ml;
    const int32_t *meta;
    size_t acc_bytes, ml_bytes;
} merge_ctx;

static int merge_upload(void *p)
{
    merge_ctx *m = p;
    return CHECK_STATUS(tmi_cuda_memcpy(m->dacc, m->acc, m->acc_bytes, 0), TM_OK) &&
           CHECK_STATUS(tmi_cuda_memcpy(m->dml, m->ml, m->ml_bytes, 0), TM_OK) &&
           CHECK_STATUS(tmi_cuda_memcpy(m->dmeta, m->meta, 16, 0), TM_OK);
}

static void merge_case(int32_t kv_len, int32_t window, tm_dtype dt, unsigned long long seed)
{
    const int32_t n_head = 32, head_dim = 128, nsplit = 8, split_len = 64;
    const int64_t k = (int64_t)n_head * head_dim, n = 4096, states = (int64_t)n_head * nsplit;
    size_t ws_bytes = tmi_gemm_cuda_workspace(16, k, dt) + (size_t)states * (head_dim + 2) * 4 + 4096;
    src_case c = {.name = "attention merge", .m = 1, .k = k, .n = n, .dt = dt, .ws_bytes = ws_bytes,
                  .run_op = op_merge, .want_fused = 1};
    void *hb = NULL, *hout = NULL;
    c.db = random_dev(k * n, dt, 0.05f, seed, &hb);
    c.dc = cu_upload(NULL, (size_t)n * 4);
    c.dws = cu_upload(NULL, ws_bytes);
    float *acc = malloc((size_t)(states * head_dim) * 4), *ml = malloc((size_t)states * 8);
    float *hcpu = malloc((size_t)n * 4), *ha = malloc((size_t)k * 4);
    int32_t meta[4] = {0, 1, kv_len, 0};
    int ok = CHECK(c.db && c.dc && c.dws && acc && ml && hcpu && ha);
    if (ok) {
        tt_fill_random(acc, (long)(states * head_dim), seed + 1);
        tt_fill_random(ml, (long)(2 * states), seed + 2);
        for (int64_t s = 0; s < states; s++) {
            ml[2 * s] *= 6.0f;                        /* max, log2 units */
            ml[2 * s + 1] = 1.5f + ml[2 * s + 1];     /* sum > 0 */
            if (s % 13 == 5) ml[2 * s] = -INFINITY, ml[2 * s + 1] = 0.0f; /* an empty split weighs nothing */
        }
    }
    /* the partials, then the meta, in the workspace; out random (it is A when the sequence has one split) */
    char *ws = c.dws;
    const float *dacc = (const float *)ws, *dml = (const float *)(ws + (size_t)states * head_dim * 4);
    const int32_t *dmeta = (const int32_t *)(ws + (size_t)states * (head_dim + 2) * 4);
    merge_ctx mc = {(void *)dacc, (void *)dml, (void *)dmeta, acc, ml, meta, (size_t)(states * head_dim) * 4,
                    (size_t)states * 8};
    c.before = merge_upload, c.ctx = &mc;
    c.da = ok ? random_dev(k, dt, 1.0f, seed + 3, &hout) : NULL;
    tmi_attn_merge mg = {.nsplit = nsplit, .split_len = split_len, .n_seq = 1, .n_head = n_head,
                         .head_dim = head_dim, .window = window, .meta = dmeta, .part_acc = dacc,
                         .part_ml = dml, .out = c.da, .ldo = k, .out_dtype = dt};
    c.src = (tmi_gemm_a_src){.kind = TMI_GEMM_A_ATTN_MERGE, .merge = &mg};
    int32_t hist = kv_len - 1, kb = window > 0 && hist - window + 1 > 0 ? hist - window + 1 : 0;
    int32_t ns = (kv_len - kb + split_len - 1) / split_len;
    if (ns <= 1) c.a_input = hout;
    /* the CPU side: the merge in double, rounded to dt, then the CPU GEMM */
    if (ok && CHECK(c.da != NULL)) {
        for (int32_t h = 0; h < n_head; h++)
            for (int32_t i = 0; i < head_dim; i++) {
                int64_t e = (int64_t)h * head_dim + i;
                double v;
                if (ns <= 1) {
                    v = dt == TM_F16 ? tmi_f16_to_f32(((uint16_t *)hout)[e]) : tmi_bf16_to_f32(((uint16_t *)hout)[e]);
                } else {
                    double mm = -INFINITY, l = 0, a = 0;
                    for (int32_t j = 0; j < ns; j++) mm = fmax(mm, ml[2 * (h * nsplit + j)]);
                    for (int32_t j = 0; j < ns; j++) {
                        const float *st = ml + 2 * (h * nsplit + j);
                        double w = st[0] == -INFINITY ? 0.0 : exp2(st[0] - mm);
                        l += w * st[1];
                        a += w * acc[(int64_t)(h * nsplit + j) * head_dim + i];
                    }
                    v = a / l;
                }
                ha[e] = (float)v;
            }
        void *ha16 = malloc((size_t)k * 2);
        for (int64_t e = 0; ha16 && e < k; e++)
            ((uint16_t *)ha16)[e] = dt == TM_F16 ? tmi_f32_to_f16(ha[e]) : tmi_f32_to_bf16(ha[e]);
        ok = CHECK(ha16 != NULL) && cpu_gemm(NULL, ha16, hb, 1, k, n, dt, hcpu);
        free(ha16);
        if (ok) check_case(&c, hcpu);
    }
    free(hb), free(hout), free(acc), free(ml), free(hcpu), free(ha);
    tmi_cuda_free(c.db), tmi_cuda_free(c.dc), tmi_cuda_free(c.dws), tmi_cuda_free(c.da);
}

static void test_cuda_gemm_a_src_silu(void)
{
    silu_case(11008, 4096, 1, TM_F16, 1, 11); /* the 7B down projection after its gate/up GEMM */
    silu_case(11008, 4096, 1, TM_F16, 0, 12);
    silu_case(1000, 296, 1, TM_BF16, 1, 13);
    silu_case(1000, 296, 2, TM_F16, 0, 14);   /* m = 2: the GEMM runs silu_mul itself */
}

static void test_cuda_gemm_a_src_norm(void)
{
    norm_case(4096, 4096, 12288, 1, TM_F16, 21); /* the 7B QKV projection */
    norm_case(4096, 4100, 22016, 1, TM_BF16, 22);
    norm_case(1000, 1000, 296, 1, TM_F16, 23);
    norm_case(1002, 1003, 296, 1, TM_F16, 24);   /* rows rmsnorm's float4 kernel cannot take */
    norm_case(4096, 4096, 4096, 3, TM_F16, 25);  /* m = 3 */
}

static void test_cuda_gemm_a_src_merge(void)
{
    merge_case(300, 0, TM_F16, 31); /* 5 splits */
    merge_case(512, 0, TM_BF16, 32);
    merge_case(300, 100, TM_F16, 33); /* a window: 2 splits */
    merge_case(40, 0, TM_F16, 34);    /* one split: A is out as attention wrote it */
}

/* The rule of a_src, on both twins: the source's output must be A. */
static void test_gemm_a_src_args(void)
{
    float x[8] = {0}, c[8];
    uint16_t a[8], b[64];
    tmi_rmsnorm_args r = {.n = 1, .d = 8, .x = x, .ldx = 8, .weight = b, .w_dtype = TM_F16, .out = a,
                          .out_dtype = TM_F16, .ldo = 8};
    tmi_gemm_a_src src = {.kind = TMI_GEMM_A_RMSNORM, .norm = &r};
    tmi_gemm_args g = {.m = 1, .n = 8, .k = 8, .a = a, .a_dtype = TM_F16, .lda = 8, .b = b, .b_dtype = TM_F16,
                       .ldb = 8, .c = c, .ldc = 8, .a_src = &src};
    r.ldo = 9;
    CHECK_STATUS(tmi_gemm_check_a_src("gemm", &g), TM_ERR_INVALID_ARG);
    r.ldo = 8, r.out_dtype = TM_BF16;
    CHECK_STATUS(tmi_gemm_check_a_src("gemm", &g), TM_ERR_INVALID_ARG);
    r.out_dtype = TM_F16;
    CHECK_STATUS(tmi_gemm_check_a_src("gemm", &g), TM_OK);
    src.norm = NULL;
    CHECK_STATUS(tmi_gemm_check_a_src("gemm", &g), TM_ERR_INVALID_ARG);
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas};
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    if (tmi_pool_create(0, &pool) != TM_OK || tmi_gemm_cuda_blas_create(&blas) != TM_OK) {
        fprintf(stderr, "setup: %s\n", tm_last_error());
        return 1;
    }
    RUN(test_gemm_a_src_args);
    RUN(test_cuda_gemm_a_src_silu);
    RUN(test_cuda_gemm_a_src_norm);
    RUN(test_cuda_gemm_a_src_merge);
    tmi_gemm_cuda_blas_destroy(blas);
    tmi_pool_destroy(pool);
    return tt_finish();
}

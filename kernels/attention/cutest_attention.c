/* cutest_attention.c - tmi_attention_cuda against tmi_attention_cpu on the GPU
 * machine.  Fresh random q and caches for every case, out poisoned with NaN:
 *   - Llama-2-7B decode (32 heads, 32 kv heads, head_dim 128, block_len 64) at
 *     batch 1 over kv_len 1, 63, 64, 65, 2047, 4096 (split-K, its last split
 *     partial), batch 64 of mixed lengths; GQA 32 / 8; sliding windows;
 *   - ragged batches: prefill chunks over a history, decode rows with q_len 1..8,
 *     idle sequences; head_dim 2 to 256, odd sizes, misaligned layouts;
 *   - every KV kind: F32, F16, INT8 and INT4 with online and static params;
 *   - out F32, F16 and BF16; out == q in place;
 *   - meta_dev given (the forward's path), called directly and captured in a CUDA
 *     graph (global capture mode) and replayed, and with the split merge left to
 *     the caller and run by tmi_attention_cuda_merge, must give the bits of the
 *     packed path.
 * CUTEST_BENCH=1 adds decode timings (cudaEvents, 50 reps) with the K/V bandwidth:
 * direct calls (host launch cost included) and graph replays (the GPU's time). */
#include <cuda_runtime_api.h>

#include "harness.h"
#include "kernels/attention/cutest_paged_kv.h"
#include "kernels/registry.h"
#include "runtime/threadpool.h"

/* fp32 softmax and sums on both sides over the same cache values; only the
 * summation order differs (and exp2 of log2-scaled scores on the GPU). */
#define CU_ATTENTION_REL_TOL 1e-5
/* 16-bit outputs against the fp32 reference: the rounding of the output alone. */
#define CU_ATTENTION_F16_OUT_TOL 1e-3
#define CU_ATTENTION_BF16_OUT_TOL 8e-3

enum { MAX_CASE_SEQ = 64 };
enum { KV_F32, KV_F16, KV_I8, KV_I8_STATIC, KV_I4, KV_I4_STATIC, KV_KINDS };
static const char *const kv_names[KV_KINDS] = {"F32", "F16", "I8", "I8 static", "INT4", "INT4 static"};
static double worst_kv[KV_KINDS], worst_out[3];
static tmi_pool *pool;

typedef struct attn_case {
    int32_t n_seq, n_head, n_kv_head, head_dim, block_len, window, aligned;
    int32_t q_len[MAX_CASE_SEQ], kv_len[MAX_CASE_SEQ];
} attn_case;

static tm_dtype kv_dtype(int kind)
{
    return kind == KV_F32 ? TM_F32 : kind == KV_F16 ? TM_F16 : kind <= KV_I8_STATIC ? TM_I8 : TMI_KV_INT4;
}

static int kv_static(int kind) { return kind == KV_I8_STATIC || kind == KV_I4_STATIC; }

/* Random pool contents: values in [-2, 2) for the float kinds; random codes and,
 * online, a valid {scale, zp} in every row's params for the quantized ones. */
static int fill_pool(const cu_batch *b, int kind, void *pool_host, float *qparams, unsigned long long seed)
{
    const tmi_kv_cache *c = &b->cache;
    float *r = malloc((size_t)b->pool_units * sizeof(float));
    if (!r) return 0;
    tt_fill_random(r, (long)b->pool_units, seed);
    tm_dtype dt = kv_dtype(kind);
    for (int64_t i = 0; i < b->pool_units; i++) {
        if (dt == TM_F32) ((float *)pool_host)[i] = 2.0f * r[i];
        else if (dt == TM_F16) ((uint16_t *)pool_host)[i] = tmi_f32_to_f16(2.0f * r[i]);
        else ((uint8_t *)pool_host)[i] = (uint8_t)(int)((r[i] + 1.0f) * 127.99f);
    }
    float step = dt == TM_I8 ? 2.0f / 255.0f : 2.0f / 15.0f; /* codes span about [-1, 1] */
    if (tmi_kv_is_quant(dt) && !kv_static(kind)) {
        for (int32_t blk = 0; blk < b->n_blocks; blk++)
            for (int32_t g = 0; g < c->n_kv_head; g++)
                for (int32_t slot = 0; slot < c->block_len; slot++)
                    for (int v = 0; v < 2; v++) {
                        int64_t k = ((int64_t)(blk * c->n_kv_head + g) * c->block_len + slot) * 2 + v;
                        float sz[2] = {step * (0.5f + fabsf(r[k % b->pool_units])),
                                       0.5f * r[(k * 7 + 3) % b->pool_units] + (v ? 0.0f : 0.5f)};
                        int64_t off = tmi_kv_param_offset(c, blk, g, slot) + (v ? c->v_offset : 0);
                        memcpy((uint8_t *)pool_host + off, sz, sizeof sz);
                    }
    }
    if (kv_static(kind))
        for (int32_t g = 0; g < c->n_kv_head; g++)
            for (int v = 0; v < 2; v++) {
                qparams[(2 * v) * c->n_kv_head + g] = step * (0.5f + fabsf(r[g * 2 + v]));
                qparams[(2 * v + 1) * c->n_kv_head + g] = 0.3f * r[g * 2 + v + 17] + (v ? 0.0f : 0.5f);
            }
    free(r);
    return 1;
}

static float out_value(const void *out, tm_dtype dt, int64_t i)
{
    return dt == TM_F32 ? ((const float *)out)[i] : tmi_load_f32(out, dt, i);
}

/* Relative error over the rows of out (out_dtype) against ref (fp32); NaN or an
 * infinite value anywhere in the rows makes it infinite. */
static double out_rel_err(const void *out, tm_dtype dt, const float *ref, int64_t rows, int64_t width, int64_t ld)
{
    double e2 = 0, r2 = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < width; j++) {
            double g = out_value(out, dt, i * ld + j), r = ref[i * ld + j];
            if (isnan(g) || isinf(g)) return INFINITY;
            e2 += (g - r) * (g - r);
            r2 += r * r;
        }
    return r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
}

typedef struct gpu_run {
    void *dq, *dout, *dpool, *dqp, *dmeta;
    size_t q_bytes, o_bytes;
} gpu_run;

/* RUN_DEFER: meta_dev, the merge left to the caller (defer_merge) and then run by
 * tmi_attention_cuda_merge, which must give the same bits. */
enum { RUN_PACKED, RUN_META, RUN_GRAPH, RUN_DEFER };

/* The call captured into a CUDA graph (strict, global capture mode: any copy or
 * synchronisation inside the op fails the capture) and replayed on its stream. */
static int graph_call(const tmi_exec *gpu, const tmi_attention_args *a)
{
    cudaStream_t st = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    tmi_exec ex = *gpu;
    int ok = CHECK(cudaStreamCreate(&st) == cudaSuccess);
    ex.stream = st;
    ok = ok && CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess);
    if (ok) {
        tm_status s = tmi_attention_cuda(&ex, a);
        cudaError_t e = cudaStreamEndCapture(st, &graph);
        ok = CHECK_STATUS(s, TM_OK) && CHECK(e == cudaSuccess);
        if (e != cudaSuccess) fprintf(stderr, "  capture: %s\n", cudaGetErrorString(e));
    }
    ok = ok && CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess) &&
         CHECK(cudaGraphLaunch(exec, st) == cudaSuccess) && CHECK(cudaStreamSynchronize(st) == cudaSuccess);
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (st) cudaStreamDestroy(st);
    return ok;
}

/* One call of tmi_attention_cuda into a poisoned out; got: out_dtype, host. */
static int gpu_attention(tmi_attention_args a, const cu_batch *b, const gpu_run *g, int in_place, const void *poison,
                         int mode, void *got)
{
    a.q = g->dq;
    a.out = in_place ? g->dq : g->dout;
    a.cache.base = g->dpool;
    a.cache.qparams = g->dqp;
    a.meta_dev = mode != RUN_PACKED ? g->dmeta : NULL;
    size_t ws_bytes = tmi_attention_cuda_workspace(&a);
    void *dws = cu_upload(NULL, ws_bytes);
    int ok = dws != NULL && CHECK_STATUS(tmi_cuda_memcpy(a.out, poison, in_place ? g->q_bytes : g->o_bytes, 0), TM_OK);
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .workspace = dws, .workspace_bytes = ws_bytes};
        tmi_attn_merge left = {.nsplit = -1};
        if (mode == RUN_DEFER) a.defer_merge = &left;
        ok = mode == RUN_GRAPH ? graph_call(&gpu, &a) : CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_OK);
        if (ok && mode == RUN_DEFER) {
            int one_row_each = 1; /* what a merge may be left for (attention.h) */
            for (int32_t s = 0; s < b->n_seq; s++)
                one_row_each &= b->seqs[s].q_len == 1 && b->seqs[s].q_start == s;
            ok = CHECK(left.nsplit >= 0) && CHECK(left.nsplit == 0 || one_row_each) &&
                 CHECK_STATUS(tmi_attention_cuda_merge(&gpu, &left), TM_OK);
        }
        ok = ok && cu_download(got, a.out, in_place ? g->q_bytes : g->o_bytes);
    }
    size_t bound = tmi_attention_cuda_workspace_bound(b->n_tok > 0 ? b->n_tok : 1, b->n_seq, b->max_kv_len,
                                                      a.cache.block_len, a.n_head, a.cache.head_dim);
    CHECK(ws_bytes <= bound);
    tmi_cuda_free(dws);
    return ok;
}

static void run_case(const attn_case *ac, int kind, tm_dtype out_dt, int in_place, unsigned long long seed)
{
    tm_dtype dt = kv_dtype(kind);
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, ac->n_seq, ac->q_len, ac->kv_len, ac->n_kv_head, ac->head_dim, ac->block_len, dt,
                             !kv_static(kind), ac->aligned, seed)))
        return;
    int64_t width = (int64_t)ac->n_head * ac->head_dim, ldq = width + (ac->aligned ? 4 : 2);
    int64_t ldo = in_place ? ldq : width + (ac->aligned ? 8 : 5);
    size_t oes = out_dt == TM_F32 ? 4 : 2;
    gpu_run g = {.q_bytes = (size_t)(b.n_tok * ldq + 1) * 4, .o_bytes = (size_t)(b.n_tok * ldo + 1) * oes};
    size_t ref_bytes = (size_t)(b.n_tok * ldo + 1) * 4, cmp_bytes = in_place ? g.q_bytes : g.o_bytes;
    float *q = malloc(g.q_bytes), *ref = malloc(ref_bytes), qp[4 * 64];
    void *pool_host = malloc(b.pool_bytes), *poison = malloc(cmp_bytes), *got = malloc(cmp_bytes);
    void *got_meta = malloc(cmp_bytes), *got_graph = malloc(cmp_bytes), *got_defer = malloc(cmp_bytes);
    int32_t *meta = malloc((tmi_kv_meta_ints(b.seqs, b.n_seq, ac->block_len) + 1) * sizeof(int32_t));
    size_t cpu_ws_bytes = tmi_attention_cpu_workspace(b.max_kv_len, tmi_pool_threads(pool)) + 64;
    void *cpu_ws = malloc(cpu_ws_bytes);
    int ok = q && ref && pool_host && poison && got && got_meta && got_graph && got_defer && meta && cpu_ws &&
             fill_pool(&b, kind, pool_host, qp, seed * 3 + 1);
    if (!CHECK(ok)) goto done;
    tt_fill_random(q, (long)(b.n_tok * ldq + 1), seed * 5 + 2);
    for (int64_t i = 0; i < b.n_tok * ldq; i++) q[i] *= 2.0f; /* peaked enough softmaxes */
    if (in_place) memcpy(poison, q, g.q_bytes); /* padding columns must keep q's values */
    else if (out_dt == TM_F32) cu_fill_nan(poison, b.n_tok * ldo + 1);
    else for (int64_t i = 0; i < b.n_tok * ldo + 1; i++) ((uint16_t *)poison)[i] = 0x7fffu; /* NaN in both */

    tmi_kv_cache cache = b.cache;
    cache.base = pool_host;
    cache.qparams = kv_static(kind) ? qp : NULL;
    tmi_exec cpu = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = cpu_ws, .workspace_bytes = cpu_ws_bytes};
    tmi_attention_args a = {.n_seq = b.n_seq, .seqs = b.seqs, .n_head = ac->n_head, .q = q, .ldq = ldq, .out = ref,
                            .ldo = ldo, .cache = cache, .scale = 1.0f / sqrtf((float)ac->head_dim),
                            .window = ac->window};
    cu_fill_nan(ref, b.n_tok * ldo + 1);
    ok = CHECK_STATUS(tmi_attention_cpu(&cpu, &a), TM_OK);
    a.out_dtype = out_dt;

    tmi_kv_meta_fill(meta, b.seqs, b.n_seq, ac->block_len);
    g.dq = cu_upload(q, g.q_bytes);
    g.dout = in_place ? NULL : cu_upload(NULL, g.o_bytes);
    g.dpool = cu_upload(pool_host, b.pool_bytes);
    g.dqp = kv_static(kind) ? cu_upload(qp, sizeof qp) : NULL;
    g.dmeta = cu_upload(meta, tmi_kv_meta_ints(b.seqs, b.n_seq, ac->block_len) * sizeof(int32_t) + 4);
    ok = ok && g.dq && (g.dout || in_place) && g.dpool && (g.dqp || !kv_static(kind)) && g.dmeta;
    ok = ok && gpu_attention(a, &b, &g, in_place, poison, RUN_PACKED, got);
    if (ok && in_place) ok = CHECK_STATUS(tmi_cuda_memcpy(g.dq, q, g.q_bytes, 0), TM_OK);
    ok = ok && gpu_attention(a, &b, &g, in_place, poison, RUN_META, got_meta);
    if (ok && in_place) ok = CHECK_STATUS(tmi_cuda_memcpy(g.dq, q, g.q_bytes, 0), TM_OK);
    ok = ok && gpu_attention(a, &b, &g, in_place, poison, RUN_GRAPH, got_graph);
    if (ok && in_place) ok = CHECK_STATUS(tmi_cuda_memcpy(g.dq, q, g.q_bytes, 0), TM_OK);
    ok = ok && gpu_attention(a, &b, &g, in_place, poison, RUN_DEFER, got_defer);
    if (ok) {
        double rel = out_rel_err(got, out_dt, ref, b.n_tok, width, ldo);
        int64_t stray = 0;
        for (int64_t i = 0; i < b.n_tok; i++)
            for (int64_t j = width; j < ldo; j++)
                stray += memcmp((char *)got + (i * ldo + j) * oes, (char *)poison + (i * ldo + j) * oes, oes) != 0;
        int same = memcmp(got, got_meta, cmp_bytes) == 0 && memcmp(got, got_graph, cmp_bytes) == 0 &&
                   memcmp(got, got_defer, cmp_bytes) == 0;
        double tol = out_dt == TM_F32 ? CU_ATTENTION_REL_TOL
                     : out_dt == TM_F16 ? CU_ATTENTION_F16_OUT_TOL
                                        : CU_ATTENTION_BF16_OUT_TOL;
        if (out_dt == TM_F32) cu_note(&worst_kv[kind], rel);
        cu_note(&worst_out[out_dt], rel);
        if (!CHECK(rel < tol) || !CHECK(stray == 0) || !CHECK(same))
            fprintf(stderr,
                    "  n_seq=%d heads=%d/%d head_dim=%d block_len=%d window=%d aligned=%d kv %s out %s in_place=%d: "
                    "rel %.3g, %lld padding written, meta_dev, graph replay and left merge %s\n",
                    ac->n_seq, ac->n_head, ac->n_kv_head, ac->head_dim, ac->block_len, ac->window, ac->aligned,
                    kv_names[kind], tm_dtype_name(out_dt), in_place, rel, (long long)stray,
                    same ? "same" : "DIFFERENT");
    }
done:
    tmi_cuda_free(g.dq);
    tmi_cuda_free(g.dout);
    tmi_cuda_free(g.dpool);
    tmi_cuda_free(g.dqp);
    tmi_cuda_free(g.dmeta);
    free(q), free(ref), free(pool_host), free(poison), free(got), free(got_meta), free(got_graph), free(got_defer);
    free(meta);
    free(cpu_ws);
    cu_batch_free(&b);
}

static attn_case llama(int32_t n_kv_head, int32_t n_seq, int32_t window)
{
    attn_case c = {.n_seq = n_seq, .n_head = 32, .n_kv_head = n_kv_head, .head_dim = 128, .block_len = 64,
                   .window = window, .aligned = 1};
    return c;
}

/* Llama-2-7B decode at batch 1 over the split-K edges, batch 64, GQA, windows. */
static void test_cuda_attention_llama(void)
{
    static const int32_t lens[] = {1, 63, 64, 65, 2047, 4096};
    unsigned long long seed = 1000;
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        attn_case c = llama(32, 1, 0);
        c.q_len[0] = 1, c.kv_len[0] = lens[i];
        for (int kind = 0; kind < KV_KINDS; kind++) run_case(&c, kind, TM_F32, 0, seed++);
        run_case(&c, KV_F16, TM_F16, 0, seed++);
    }
    attn_case b64 = llama(32, 64, 0);
    float r[MAX_CASE_SEQ];
    tt_fill_random(r, MAX_CASE_SEQ, 77);
    for (int s = 0; s < 64; s++) b64.q_len[s] = 1, b64.kv_len[s] = 1 + (int32_t)((r[s] + 1.0f) * 1023.0f);
    b64.kv_len[5] = 2048, b64.kv_len[6] = 1;
    run_case(&b64, KV_F16, TM_F32, 0, seed++);
    run_case(&b64, KV_I8, TM_F32, 0, seed++);
    run_case(&b64, KV_F16, TM_F16, 0, seed++);
    attn_case gqa = llama(8, 1, 0);
    gqa.q_len[0] = 1, gqa.kv_len[0] = 4096;
    for (int kind = 0; kind < KV_KINDS; kind++) run_case(&gqa, kind, TM_F32, 0, seed++);
    run_case(&gqa, KV_F16, TM_BF16, 0, seed++);
    attn_case gqa4 = llama(8, 4, 0);
    const int32_t g4q[4] = {1, 2, 3, 8}, g4kv[4] = {3000, 130, 700, 1500}; /* q_len 8: the widest decode rows */
    memcpy(gqa4.q_len, g4q, sizeof g4q), memcpy(gqa4.kv_len, g4kv, sizeof g4kv);
    run_case(&gqa4, KV_F16, TM_F32, 0, seed++);
    run_case(&gqa4, KV_I4, TM_F32, 0, seed++);
    attn_case win = llama(8, 3, 100); /* the splits tile only the window */
    const int32_t wq[3] = {1, 1, 4}, wkv[3] = {4096, 90, 1000};
    memcpy(win.q_len, wq, sizeof wq), memcpy(win.kv_len, wkv, sizeof wkv);
    run_case(&win, KV_F16, TM_F32, 0, seed++);
    run_case(&win, KV_I8_STATIC, TM_F32, 0, seed++);
    run_case(&b64, KV_F32, TM_F32, 1, seed++); /* in place */
}

/* Ragged batches: prefill chunks with history next to decode rows, odd shapes. */
static void test_cuda_attention_shapes(void)
{
    static const attn_case cases[] = {
        {1, 1, 1, 2, 1, 0, 0, {1}, {1}},                                  /* smallest */
        {5, 8, 2, 64, 16, 0, 1, {1, 1, 1, 1, 1}, {1, 17, 300, 64, 1000}}, /* decode batch, GQA 4 */
        {1, 4, 4, 128, 32, 0, 1, {257}, {257}},                           /* prefill, MHA */
        {4, 12, 4, 80, 16, 0, 0, {33, 1, 0, 7}, {100, 50, 9, 7}},         /* mixed, an idle sequence */
        {4, 12, 4, 80, 16, 20, 1, {33, 1, 0, 7}, {100, 50, 9, 7}},        /* the same with a window */
        {2, 2, 1, 256, 8, 0, 1, {5, 1}, {40, 3}},                         /* head_dim 256, GQA 2 */
        {3, 6, 2, 96, 128, 100, 1, {300, 1, 50}, {300, 1000, 450}},       /* windowed prefill chunks */
        {2, 3, 3, 34, 5, 0, 0, {9, 4}, {31, 4}},                          /* odd sizes */
        {6, 32, 32, 128, 64, 0, 1, {300, 1, 17, 1, 9, 8}, {700, 1500, 17, 64, 200, 2000}}, /* ragged 7B */
        {3, 32, 8, 128, 64, 0, 0, {120, 1, 2}, {1200, 3000, 65}},         /* GQA, misaligned layout */
    };
    unsigned long long seed = 1;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int kind = 0; kind < KV_KINDS; kind++) run_case(&cases[c], kind, TM_F32, 0, seed++);
    run_case(&cases[3], KV_F32, TM_F32, 1, seed++);
    run_case(&cases[6], KV_F16, TM_F32, 1, seed++);
    run_case(&cases[8], KV_F16, TM_F16, 0, seed++);
    run_case(&cases[8], KV_I4_STATIC, TM_BF16, 0, seed++);
    run_case(&cases[7], KV_I8, TM_F16, 0, seed++);
    for (int kind = 0; kind < KV_KINDS; kind++)
        printf("worst attention %s cache: %.3g\n", kv_names[kind], worst_kv[kind]);
    printf("worst attention out F16: %.3g, out BF16: %.3g\n", worst_out[TM_F16], worst_out[TM_BF16]);
}

static void test_cuda_attention_args(void)
{
    int32_t q_len[1] = {2}, kv_len[1] = {4};
    cu_batch b;
    if (!CHECK(cu_batch_make(&b, 1, q_len, kv_len, 1, 300, 4, TM_F32, 1, 1, 1))) return;
    float dummy[8];
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_attention_args a = {.n_seq = 1, .seqs = b.seqs, .n_head = 1, .q = dummy, .ldq = 300, .out = dummy + 4,
                            .ldo = 300, .cache = b.cache, .scale = 1.0f};
    a.cache.base = dummy;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_UNSUPPORTED); /* head_dim > 256 */
    a.cache.head_dim = 256;
    a.ldq = a.ldo = 256;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* out overlaps q but is not q */
    CHECK(strstr(tm_last_error(), "overlap") != NULL);
    a.out = dummy;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* valid (in place) but no workspace */
    CHECK(strstr(tm_last_error(), "workspace") != NULL);
    a.out_dtype = TM_F16;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* in place is for F32 out only */
    a.out_dtype = TM_I8;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_UNSUPPORTED);
    a.out_dtype = TM_F32;
    a.n_head = 0;
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_ERR_INVALID_ARG); /* n_head must be a positive multiple */
    a.n_head = 1;
    b.seqs[0].q_len = 0; /* nothing to do: no workspace needed */
    CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_OK);
    CHECK(tmi_attention_cuda_workspace(&a) == 0);
    CHECK(tmi_attention_cuda_workspace_bound(0, 1, 1, 1, 1, 1) == 0);
    cu_batch_free(&b);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->attention == tmi_attention_cuda);
}

/* Decode timings: Llama-2-7B shapes, every sequence at kv_len, one layer's pool. */
static void bench_one(int32_t batch, int32_t kv_len, tm_dtype dt, int use_meta)
{
    const int32_t n_head = 32, n_kv = 32, d = 128, bl = 64, reps = 50;
    int32_t *ql = malloc((size_t)batch * 4), *kl = malloc((size_t)batch * 4);
    for (int32_t s = 0; s < batch; s++) ql[s] = 1, kl[s] = kv_len;
    cu_batch b;
    int ok = ql && kl && cu_batch_make(&b, batch, ql, kl, n_kv, d, bl, dt, 1, 1, 5);
    free(ql), free(kl);
    if (!CHECK(ok)) return;
    b.cache.layer_offset = 0; /* one layer a block: the pool is what one layer reads */
    b.cache.block_stride = 2 * b.cache.v_offset;
    b.pool_bytes = (size_t)b.n_blocks * b.cache.block_stride * tmi_kv_unit_bytes(dt);
    size_t chunk = 64u << 20, q_bytes = (size_t)batch * n_head * d * 4;
    float *rnd = malloc(chunk);
    void *dpool = cu_upload(NULL, b.pool_bytes), *dq = cu_upload(NULL, q_bytes), *dout = cu_upload(NULL, q_bytes);
    int32_t *meta = malloc(tmi_kv_meta_ints(b.seqs, b.n_seq, bl) * 4);
    void *dmeta = NULL, *dws = NULL;
    ok = rnd && dpool && dq && dout && meta;
    if (ok) { /* random bytes: zeros would hide wrong reads and run faster than data */
        tt_fill_random(rnd, (long)(chunk / 4), 9);
        for (size_t off = 0; ok && off < b.pool_bytes; off += chunk)
            ok = CHECK_STATUS(
                tmi_cuda_memcpy((char *)dpool + off, rnd, b.pool_bytes - off < chunk ? b.pool_bytes - off : chunk, 0),
                TM_OK);
        for (size_t i = 0; i < q_bytes / 4 && i < chunk / 4; i++) rnd[i] *= 0.1f; /* valid fp32 q, no overflow */
        ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dq, rnd, q_bytes < chunk ? q_bytes : chunk, 0), TM_OK);
        tmi_kv_meta_fill(meta, b.seqs, b.n_seq, bl);
        ok = ok && (dmeta = cu_upload(meta, tmi_kv_meta_ints(b.seqs, b.n_seq, bl) * 4)) != NULL;
    }
    tmi_attention_args a = {.n_seq = batch, .seqs = b.seqs, .n_head = n_head, .q = dq, .ldq = n_head * d, .out = dout,
                            .ldo = n_head * d, .cache = b.cache, .scale = 0.088f, .meta_dev = use_meta ? dmeta : NULL};
    a.cache.base = dpool;
    size_t ws_bytes = tmi_attention_cuda_workspace(&a);
    ok = ok && (dws = cu_upload(NULL, ws_bytes)) != NULL;
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .workspace = dws, .workspace_bytes = ws_bytes};
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaStream_t st = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    ok = ok && cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess &&
         cudaStreamCreate(&st) == cudaSuccess;
    gpu.stream = st;
    float ms[2] = {0, 0}; /* direct calls, graph replays */
    for (int i = 0; ok && i < 5; i++) ok = CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_OK);
    ok = ok && cudaEventRecord(e0, st) == cudaSuccess;
    for (int i = 0; ok && i < reps; i++) ok = CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_OK);
    ok = ok && cudaEventRecord(e1, st) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
         cudaEventElapsedTime(&ms[0], e0, e1) == cudaSuccess;
    int graphed = 0;
    if (ok && use_meta) { /* one graph of reps calls, as a forward captures a step */
        ok = cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess;
        for (int i = 0; ok && i < reps; i++) ok = CHECK_STATUS(tmi_attention_cuda(&gpu, &a), TM_OK);
        ok = CHECK(cudaStreamEndCapture(st, &graph) == cudaSuccess && ok) &&
             CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess) &&
             cudaGraphLaunch(exec, st) == cudaSuccess && cudaEventRecord(e0, st) == cudaSuccess &&
             cudaGraphLaunch(exec, st) == cudaSuccess && cudaEventRecord(e1, st) == cudaSuccess &&
             cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms[1], e0, e1) == cudaSuccess;
        graphed = ok;
    }
    if (CHECK(ok)) {
        double row = (double)d * tmi_kv_unit_bytes(dt) * (dt == TMI_KV_INT4 ? 0.5 : 1.0);
        if (tmi_kv_is_quant(dt)) row += 8; /* the online params */
        double bytes = (double)batch * kv_len * n_kv * 2 * row;
        for (int k = 0; k <= graphed; k++) {
            double us = ms[k] * 1000.0 / reps;
            printf("bench attention %-4s batch %3d kv_len %4d %s %s: %8.1f us  %7.1f GB/s of K/V\n",
                   dt == TMI_KV_INT4 ? "INT4" : tm_dtype_name(dt), batch, kv_len, use_meta ? "meta_dev" : "packed  ",
                   k ? "graph " : "direct", us, bytes / us * 1e-3);
        }
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (st) cudaStreamDestroy(st);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    tmi_cuda_free(dpool), tmi_cuda_free(dq), tmi_cuda_free(dout), tmi_cuda_free(dmeta), tmi_cuda_free(dws);
    free(rnd), free(meta);
    cu_batch_free(&b);
}

static void bench_decode(void)
{
    static const int32_t batches[] = {1, 64, 256}, lens[] = {256, 2048};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 2; j++) {
            bench_one(batches[i], lens[j], TM_F16, 1);
            if (batches[i] == 1) bench_one(batches[i], lens[j], TM_F16, 0);
        }
    bench_one(1, 4096, TM_F16, 1);
    bench_one(64, 2048, TM_I8, 1);
    bench_one(64, 2048, TMI_KV_INT4, 1);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    if (tmi_pool_create(0, &pool) != TM_OK) return 1;
    RUN(test_cuda_attention_llama);
    RUN(test_cuda_attention_shapes);
    RUN(test_cuda_attention_args);
    const char *bench = getenv("CUTEST_BENCH");
    if (bench && strcmp(bench, "1") == 0) RUN(bench_decode);
    tmi_pool_destroy(pool);
    return tt_finish();
}

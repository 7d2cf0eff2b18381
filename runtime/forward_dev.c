/* forward_dev.c - the CUDA side of a runner's forward buffers: device activations
 * and scratch, one stream, and the per-step staging of everything the host
 * computes (token ids, positions, logit rows, the paged-KV metadata, RoPE
 * frequencies) into one pinned buffer that goes over in a single async copy.
 *
 * Staging layout (int32 units, each section starting on a 64-unit boundary):
 *   tokens[n_tok] pos[n_tok] rows[n_logits] meta[tmi_kv_meta_ints] inv_freq[n_freq][head_dim/2] (fp32,
 *   the forward's step_freqs)
 * or, for a step a CUDA graph replays (fixed), the same sections at offsets that
 * depend on n_tok alone: rows get n_tok units, and meta holds meta[n_seq][4] then
 * sequence s's block ids at s x max_blocks (max_kv_len / block_len, rounded up),
 * so the addresses the graph's kernels were captured with stay right as the
 * sequences grow.
 * The pinned buffer is rewritten at the next step only after this step's stream
 * work has been waited for (every step ends with a sync: the logits or tokens
 * copy), so a copy in flight never reads a half-written buffer. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/attention/paged_kv.h"
#include "model.h"

#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"

/* cuBLAS's workspace: what NVIDIA recommends for Hopper. */
#define TMI_BLAS_WORKSPACE ((size_t)32 << 20)

static int64_t up64(int64_t n) { return (n + 63) / 64 * 64; }

static int64_t qkv_cols(const tm_model_params *p) { return (int64_t)(p->head_num + 2 * p->kv_head_num) * p->size_per_head; }

static size_t workspace_bytes(const tm_model *m, int32_t cap_tok, int32_t max_kv_len, int32_t block_len)
{
    const tm_model_params *p = &m->p;
    int64_t max_k = p->hidden_size > p->inter_size ? p->hidden_size : p->inter_size;
    int64_t max_n = qkv_cols(p) > 2 * (int64_t)p->inter_size ? qkv_cols(p) : 2 * (int64_t)p->inter_size;
    if (p->vocab_size > max_n) max_n = p->vocab_size;
    size_t gemm = tmi_gemm_cuda_workspace(cap_tok, max_k, TM_F16);
    size_t tune = tmi_gemm_cuda_tune_workspace(cap_tok, max_n); /* the decode GEMMs' timing scratch */
    if (tune > gemm) gemm = tune;
    size_t attn = tmi_attention_cuda_workspace_bound(cap_tok, cap_tok, max_kv_len, block_len, p->head_num,
                                                     p->size_per_head);
    return gemm > attn ? gemm : attn;
}

/* $TMRUN_GEMM_FUSE: unset, every TMI_FUSE_* kind; "0", none; or a comma list of
 * norm, silu and merge. */
static tm_status fuse_setting(const char *env, int *kinds)
{
    static const char *const names[] = {"norm", "silu", "merge"};
    *kinds = TMI_FUSE_NORM | TMI_FUSE_SILU | TMI_FUSE_MERGE;
    if (!env) return TM_OK;
    *kinds = 0;
    if (strcmp(env, "0") == 0) return TM_OK;
    for (const char *p = env; *p;) {
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < 3; i++)
            if (len == strlen(names[i]) && strncmp(p, names[i], len) == 0) *kinds |= 1 << i, found = 1;
        if (!found || len == 0)
            return tmi_fail(TM_ERR_INVALID_ARG, "TMRUN_GEMM_FUSE must be 0 or a comma list of norm, silu and merge, "
                            "got \"%s\"", env);
        p += len + (p[len] == ',');
    }
    return TM_OK;
}

tm_status tmi_fwd_dev_init(tmi_fwd_buffers *fb, const tm_model *m, size_t n)
{
    const tm_model_params *p = &m->p;
    tm_status s;
    fb->on_device = 1;
    /* the GEMM input dtype: the weights' 16-bit kind, or fp32 for an fp32 model */
    fb->act_dtype = m->layers[0].qkv.dtype;
    size_t es = tm_dtype_size(fb->act_dtype), inter = (size_t)p->inter_size, hid = (size_t)p->hidden_size;
    size_t q_cols = (size_t)p->head_num * p->size_per_head;
    if ((s = tmi_dev_alloc((void **)&fb->x, n * hid * sizeof(float))) ||
        (s = tmi_dev_alloc((void **)&fb->h, n * hid * sizeof(float))) ||
        (s = tmi_dev_alloc(&fb->hn, n * hid * es)) ||
        (s = tmi_dev_alloc((void **)&fb->qkv, n * qkv_cols(p) * sizeof(float))) ||
        (s = tmi_dev_alloc(&fb->attn_out, n * q_cols * es)) ||
        (s = tmi_dev_alloc((void **)&fb->gate, n * 2 * inter * sizeof(float))) ||
        (s = tmi_dev_alloc(&fb->act, n * inter * es)) ||
        (s = tmi_dev_alloc((void **)&fb->dev.logits, (size_t)fb->max_logits * p->vocab_size * sizeof(float))) ||
        (s = tmi_dev_blas_create(&fb->dev.blas)) || (s = tmi_cuda_stream_create(&fb->dev.stream)) ||
        (s = tmi_dev_alloc(&fb->dev.blas_ws, TMI_BLAS_WORKSPACE)) ||
        (s = tmi_gemm_cuda_blas_workspace(fb->dev.blas, fb->dev.blas_ws, TMI_BLAS_WORKSPACE)))
        return s;
    const char *env = getenv("TMRUN_CUDA_GRAPHS");
    fb->dev.graphs_on = !env ? 1 : strcmp(env, "0") == 0 ? 0 : strcmp(env, "require") == 0 ? 2 : 1;
    env = getenv("TMRUN_GEMM_DEFER");
    fb->dev.defer_splits = !(env && strcmp(env, "0") == 0);
    if ((s = fuse_setting(getenv("TMRUN_GEMM_FUSE"), &fb->dev.fuse_a))) return s;
    fb->attn = NULL; /* fp32 views of attn_out and up: the CPU's, not used here */
    fb->up = fb->gate + inter;
    /* the forward always passes meta_dev, so the attention part is its split-K
       partials, which do not depend on the block length */
    fb->workspace_bytes = workspace_bytes(m, fb->cap_tok, fb->max_kv_len, 64);
    return tmi_dev_alloc(&fb->workspace, fb->workspace_bytes);
}

void tmi_fwd_dev_free(tmi_fwd_buffers *fb)
{
    if (fb->dev.stream) tmi_cuda_stream_sync(fb->dev.stream);
    tmi_fwd_graphs_clear(fb);
    void *dev[] = {fb->x, fb->h, fb->hn, fb->qkv, fb->attn_out, fb->gate, fb->act, fb->workspace,
                   fb->dev.logits, fb->dev.stage_dev, fb->dev.blas_ws};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) tmi_dev_free(dev[i]);
    tmi_cuda_host_free(fb->dev.stage);
    tmi_dev_blas_destroy(fb->dev.blas);
    tmi_cuda_stream_destroy(fb->dev.stream);
}

/* Room for ints staged int32 units on both sides (allocates only when growing). */
static tm_status stage_reserve(tmi_fwd_buffers *fb, int64_t ints)
{
    if (ints <= fb->dev.stage_cap) return TM_OK;
    int64_t cap = fb->dev.stage_cap ? fb->dev.stage_cap : 4096;
    while (cap < ints) cap *= 2;
    tm_status s;
    if (fb->dev.stream && (s = tmi_cuda_stream_sync(fb->dev.stream))) return s;
    tmi_fwd_graphs_clear(fb); /* they read the old buffer */
    tmi_cuda_host_free(fb->dev.stage);
    tmi_dev_free(fb->dev.stage_dev);
    fb->dev.stage = NULL;
    fb->dev.stage_dev = NULL;
    fb->dev.stage_cap = 0;
    if ((s = tmi_cuda_host_alloc((void **)&fb->dev.stage, (size_t)cap * 4)) ||
        (s = tmi_dev_alloc((void **)&fb->dev.stage_dev, (size_t)cap * 4)))
        return s;
    fb->dev.stage_cap = cap;
    return TM_OK;
}

tm_status tmi_fwd_dev_stage(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, int32_t block_len,
                            int fixed)
{
    int64_t n = b->n_tok, half = m->p.size_per_head / 2;
    int64_t max_blocks = ((int64_t)fb->max_kv_len + block_len - 1) / block_len;
    int64_t meta = fixed ? 4 * (int64_t)b->n_seq + b->n_seq * max_blocks
                         : (int64_t)tmi_kv_meta_ints(b->seqs, b->n_seq, block_len);
    int64_t o_pos = up64(n), o_rows = o_pos + up64(n), o_meta = o_rows + up64(fixed ? n : b->n_logits);
    int64_t o_freq = o_meta + up64(meta), total = o_freq + half * fb->n_freq;
    tm_status s = stage_reserve(fb, total);
    if (s) return s;
    int32_t *st = fb->dev.stage, *dv = fb->dev.stage_dev;
    memcpy(st, b->tokens, (size_t)n * 4);
    memcpy(st + o_pos, fb->pos, (size_t)n * 4);
    if (b->n_logits) memcpy(st + o_rows, b->logit_rows, (size_t)b->n_logits * 4);
    tmi_kv_meta_fill_strided(st + o_meta, b->seqs, b->n_seq, block_len, fixed ? max_blocks : 0);
    memcpy(st + o_freq, fb->inv_freq, (size_t)(half * fb->n_freq) * sizeof(float));
    fb->dev.tokens = dv;
    fb->dev.pos = dv + o_pos;
    fb->dev.rows = dv + o_rows;
    fb->dev.meta = dv + o_meta;
    fb->dev.inv_freq = (float *)(dv + o_freq);
    return tmi_cuda_memcpy_async(dv, st, (size_t)total * 4, 0, fb->dev.stream);
}

tm_status tmi_fwd_dev_logits_to_host(tmi_fwd_buffers *fb, float *dst, size_t n)
{
    tm_status s = tmi_cuda_memcpy_async(dst, fb->dev.logits, n * sizeof(float), 1, fb->dev.stream);
    return s ? s : tmi_cuda_stream_sync(fb->dev.stream);
}

tm_status tmi_fwd_dev_sync(tmi_fwd_buffers *fb) { return tmi_cuda_stream_sync(fb->dev.stream); }

#else
tm_status tmi_fwd_dev_init(tmi_fwd_buffers *fb, const tm_model *m, size_t n)
{
    (void)fb, (void)m, (void)n;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
void tmi_fwd_dev_free(tmi_fwd_buffers *fb) { (void)fb; }
tm_status tmi_fwd_dev_stage(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, int32_t block_len,
                            int fixed)
{
    (void)m, (void)fb, (void)b, (void)block_len, (void)fixed;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
tm_status tmi_fwd_dev_logits_to_host(tmi_fwd_buffers *fb, float *dst, size_t n)
{
    (void)fb, (void)dst, (void)n;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
tm_status tmi_fwd_dev_sync(tmi_fwd_buffers *fb)
{
    (void)fb;
    return TM_OK;
}
#endif

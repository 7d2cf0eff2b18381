/* forward.c - one forward pass of a Llama-family model over a ragged batch.
 *
 * Rows are new tokens of several sequences (prefill chunks and decode tokens
 * alike); each layer writes its rows' K/V into the paged cache and attends over
 * the sequence's blocks, so a prefill chunk and a decode step are the same code. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/attention/paged_kv.h"
#include "model.h"
#include "profile.h"

static int64_t qkv_cols(const tm_model_params *p)
{
    return (int64_t)(p->head_num + 2 * p->kv_head_num) * p->size_per_head;
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
    int64_t m = a > b ? a : b;
    return m > c ? m : c;
}

tm_status tmi_fwd_buffers_init(tmi_fwd_buffers *fb, const tm_model *m, int32_t cap_tok, int32_t max_kv_len,
                               int32_t max_logits)
{
    const tm_model_params *p = &m->p;
    memset(fb, 0, sizeof *fb);
    if (cap_tok < 1) return tmi_fail(TM_ERR_INVALID_ARG, "forward capacity must be >= 1 token, got %d", cap_tok);
    tm_status s = tmi_pool_create(p->num_threads, &fb->pool);
    if (s) return s;
    int threads = tmi_pool_threads(fb->pool);
    size_t n = (size_t)cap_tok;
    fb->cap_tok = cap_tok;
    fb->max_kv_len = max_kv_len;
    fb->max_logits = max_logits < 1 ? 1 : max_logits > cap_tok ? cap_tok : max_logits;
    fb->pos = malloc(n * sizeof(int32_t));
    fb->inv_freq = malloc((size_t)p->size_per_head / 2 * sizeof(float));
    fb->cap_freq = 1;
    if (p->backend == TM_BACKEND_CUDA) {
        if (!fb->pos || !fb->inv_freq) s = tmi_fail(TM_ERR_NOMEM, "forward buffers: out of memory");
        else s = tmi_fwd_dev_init(fb, m, n);
        if (s) tmi_fwd_buffers_free(fb);
        return s;
    }
    fb->x = malloc(n * p->hidden_size * sizeof(float));
    fb->h = malloc(n * p->hidden_size * sizeof(float));
    fb->qkv = malloc(n * qkv_cols(p) * sizeof(float));
    fb->attn = malloc(n * p->head_num * p->size_per_head * sizeof(float));
    fb->gate = malloc(n * p->inter_size * sizeof(float));
    fb->up = malloc(n * p->inter_size * sizeof(float));
    int64_t max_n = max3(qkv_cols(p), p->inter_size, p->vocab_size);
    int64_t max_k = max3(p->hidden_size, p->inter_size, (int64_t)p->head_num * p->size_per_head);
    size_t ws = tmi_gemm_cpu_workspace(cap_tok, max_n, max_k, threads);
    size_t ws_attn = tmi_attention_cpu_workspace(max_kv_len, threads);
    fb->workspace_bytes = ws > ws_attn ? ws : ws_attn;
    fb->workspace = aligned_alloc(64, (fb->workspace_bytes + 63) / 64 * 64 + 64);
    if (!fb->x || !fb->h || !fb->qkv || !fb->attn || !fb->gate || !fb->up || !fb->pos || !fb->inv_freq ||
        !fb->workspace) {
        tmi_fwd_buffers_free(fb);
        return tmi_fail(TM_ERR_NOMEM, "forward buffers for %d tokens: out of memory", cap_tok);
    }
    fb->act_dtype = TM_F32; /* the CPU computes in fp32: the 16-bit views are the fp32 buffers */
    fb->hn = fb->h;
    fb->attn_out = fb->attn;
    fb->act = fb->gate;
    return TM_OK;
}

void tmi_fwd_buffers_free(tmi_fwd_buffers *fb)
{
    if (fb->on_device) {
        tmi_fwd_dev_free(fb);
    } else {
        free(fb->x);
        free(fb->h);
        free(fb->qkv);
        free(fb->attn);
        free(fb->gate);
        free(fb->up);
        free(fb->workspace);
    }
    tmi_prof_destroy(fb->prof);
    free(fb->pos);
    free(fb->inv_freq);
    tmi_pool_destroy(fb->pool);
    memset(fb, 0, sizeof *fb);
}

tmi_kv_cache tmi_model_kv_layout(const tm_model *m, int32_t block_len)
{
    tmi_kv_cache c = {0};
    c.dtype = m->kv_dtype;
    c.n_kv_head = m->p.kv_head_num;
    c.head_dim = m->p.size_per_head;
    c.block_len = block_len;
    /* static params live in the model, so only online blocks carry them */
    c.v_offset = tmi_kv_half_units(c.dtype, c.n_kv_head, block_len, c.head_dim, m->kv_static == NULL);
    c.block_stride = (int64_t)m->p.num_layer * 2 * c.v_offset;
    return c;
}

int64_t tmi_model_kv_block_bytes(const tm_model *m, int32_t block_len)
{
    tmi_kv_cache c = tmi_model_kv_layout(m, block_len);
    return c.block_stride * (int64_t)tmi_kv_unit_bytes(c.dtype);
}

/* y = x l (+ y): x is [rows][ldx] of the buffers' act_dtype.  defer (NULL, or zeroed
 * by the caller): the GEMM may leave y as split sums for the next op (gemm.h).
 * src (NULL, or from fuse_into): x is that op's output, not yet written. */
static tm_status linear(const tm_model *m, const tmi_exec *ex, const tmi_fwd_buffers *fb, const tmi_linear *l,
                        const void *x, int64_t ldx, int64_t rows, float *y, int64_t ldy, int accumulate,
                        tmi_split_sums *defer, const tmi_gemm_a_src *src)
{
    if (l->qweight && src) return tmi_fail(TM_ERR_INTERNAL, "forward: an int4 projection cannot take its input's op");
    if (l->qweight) {
        if (!m->ops->gemm_w4a16)
            return tmi_fail(TM_ERR_UNSUPPORTED, "backend %s has no int4 (W4A16) GEMM", m->ops->name);
        if (fb->act_dtype != TM_F32)
            return tmi_fail(TM_ERR_UNSUPPORTED, "the int4 (W4A16) GEMM takes fp32 activations only");
        tmi_gemm_w4a16_args q = {
            .m = rows, .n = l->out, .k = l->in, .a = x, .lda = ldx,
            .qweight = l->qweight, .scales_zeros = l->scales_zeros, .group = l->group,
            .bias = l->bias, .bias_dtype = l->bias_dtype, .c = y, .ldc = ldy, .accumulate = accumulate,
        };
        return m->ops->gemm_w4a16(ex, &q);
    }
    tmi_gemm_args g = {
        .m = rows, .n = l->out, .k = l->in,
        .a = x, .a_dtype = fb->act_dtype, .lda = ldx,
        .b = l->w, .b_dtype = l->dtype, .ldb = l->out,
        .bias = l->bias, .bias_dtype = l->bias_dtype,
        .c = y, .ldc = ldy, .accumulate = accumulate, .defer = defer, .a_src = src,
    };
    return m->ops->gemm(ex, &g);
}

static void observe(const tmi_fwd_buffers *fb, tmi_obs_site site, const float *x, int64_t ld, int64_t rows,
                    int64_t cols)
{
    if (fb->observer && !fb->on_device) fb->observer->fn(fb->observer->ctx, fb->layer, site, x, ld, rows, cols);
}

static tmi_rmsnorm_args norm_args(const tm_model *m, const tmi_vec *w, const float *x, void *out,
                                  tm_dtype out_dtype, int64_t rows)
{
    int64_t d = m->p.hidden_size;
    tmi_rmsnorm_args a = {
        .n = rows, .d = d, .x = x, .ldx = d, .weight = w->data, .w_dtype = w->dtype,
        .eps = m->p.norm_eps, .out = out, .ldo = d, .out_dtype = out_dtype,
    };
    return a;
}

static tm_status rmsnorm(const tm_model *m, const tmi_exec *ex, const tmi_vec *w, const float *x, void *out,
                         tm_dtype out_dtype, int64_t rows)
{
    tmi_rmsnorm_args a = norm_args(m, w, x, out, out_dtype, rows);
    return m->ops->rmsnorm(ex, &a);
}

/* The step's RoPE frequencies into fb->inv_freq, once for all layers: one row when
 * every sequence has the same (all but dynamic NTK past its original length), else
 * one row per sequence. */
static tm_status step_freqs(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b)
{
    int32_t half = m->p.size_per_head / 2, first = -1;
    int32_t rows = m->p.rope_type == TM_ROPE_DYNAMIC && b->n_seq > 1 ? b->n_seq : 1;
    if (rows > fb->cap_freq) {
        float *grown = realloc(fb->inv_freq, (size_t)rows * half * sizeof(float));
        if (!grown) return tmi_fail(TM_ERR_NOMEM, "RoPE frequencies of %d sequences: out of memory", rows);
        fb->inv_freq = grown;
        fb->cap_freq = rows;
    }
    for (int32_t s = 0; s < b->n_seq && first < 0; s++)
        if (b->seqs[s].q_len > 0) first = s;
    tmi_rope_inv_freq(&m->p, first >= 0 ? b->seqs[first].kv_len : 1, fb->inv_freq);
    fb->shared_freq = 1;
    fb->n_freq = rows;
    for (int32_t s = 0; s < b->n_seq && rows > 1; s++) {
        float *row = fb->inv_freq + (int64_t)s * half;
        tmi_rope_inv_freq(&m->p, b->seqs[s].kv_len > 0 ? b->seqs[s].kv_len : 1, row);
        if (memcmp(row, fb->inv_freq, (size_t)half * sizeof(float))) fb->shared_freq = 0;
    }
    return TM_OK;
}

/* RoPE on the q and k heads of every row, with its sequence's frequencies: one
 * call over all rows when the sequences share them, else one per sequence.  On
 * CUDA the positions and frequencies are the staged device copies. */
static tm_status rotary(const tm_model *m, const tmi_exec *ex, tmi_fwd_buffers *fb, const tmi_batch *b)
{
    const tm_model_params *p = &m->p;
    int64_t ld = qkv_cols(p), half = p->size_per_head / 2;
    const int32_t *pos = fb->on_device ? fb->dev.pos : fb->pos;
    const float *freq = fb->on_device ? fb->dev.inv_freq : fb->inv_freq;
    tmi_rope_args r = {
        .n_head = p->head_num + p->kv_head_num, .head_dim = p->size_per_head, .ld = ld, .attn_factor = 1.0f,
        .n_tok = b->n_tok, .x = fb->qkv, .pos = pos, .inv_freq = freq,
    };
    if (fb->shared_freq) return m->ops->rope(ex, &r);
    for (int32_t s = 0; s < b->n_seq; s++) {
        const tmi_attn_seq *sq = &b->seqs[s];
        if (sq->q_len == 0) continue;
        r.n_tok = sq->q_len;
        r.x = fb->qkv + (int64_t)sq->q_start * ld;
        r.pos = pos + sq->q_start;
        r.inv_freq = freq + (int64_t)s * half;
        tm_status st = m->ops->rope(ex, &r);
        if (st) return st;
    }
    return TM_OK;
}

/* Where a GEMM on the device may leave its k splits (gemm.h) when the op after it
 * can take them (next_takes), or NULL: it writes C. */
static tmi_split_sums *defer_into(const tmi_fwd_buffers *fb, int next_takes, tmi_split_sums *sums)
{
    return fb->on_device && fb->dev.defer_splits && next_takes ? sums : NULL;
}

/* src, when the GEMM of projection l on the device is to take the op that writes its
 * input (gemm.h's a_src: at one row, the op's kernel is saved), or NULL: the forward
 * runs that op itself.  Only the input's one reader may take it. */
static const tmi_gemm_a_src *fuse_into(const tmi_fwd_buffers *fb, const tmi_linear *l, const tmi_gemm_a_src *src)
{
    int kind = src->kind == TMI_GEMM_A_RMSNORM ? TMI_FUSE_NORM
               : src->kind == TMI_GEMM_A_SILU_MUL ? TMI_FUSE_SILU
                                                  : TMI_FUSE_MERGE;
    return fb->on_device && (fb->dev.fuse_a & kind) && !l->qweight ? src : NULL;
}

static tm_status attention_block(const tm_model *m, const tmi_exec *ex, tmi_fwd_buffers *fb, const tmi_batch *b,
                                 const tmi_layer *L, tmi_kv_cache cache, int64_t n)
{
    const tm_model_params *p = &m->p;
    int64_t hd = p->size_per_head, ldq = qkv_cols(p);
    int64_t q_cols = (int64_t)p->head_num * hd, kv_cols = (int64_t)p->kv_head_num * hd;
    tm_status s;
    tmi_rmsnorm_args norm = norm_args(m, &L->attn_norm, fb->x, fb->hn, fb->act_dtype, n);
    const tmi_gemm_a_src norm_src = {.kind = TMI_GEMM_A_RMSNORM, .norm = &norm};
    const tmi_gemm_a_src *qkv_src = fuse_into(fb, &L->qkv, &norm_src);
    if (!qkv_src && (s = m->ops->rmsnorm(ex, &norm))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_NORM);
    observe(fb, TMI_OBS_ATTN_IN, fb->h, p->hidden_size, n, p->hidden_size);
    /* on CUDA with one set of frequencies, kv_write rotates q and k itself (one
     * kernel), and with a float cache it also adds up the QKV GEMM's k splits */
    tmi_rope_args fused = {
        .n_head = p->head_num + p->kv_head_num, .head_dim = p->size_per_head, .ld = ldq, .attn_factor = 1.0f,
        .n_tok = n, .x = fb->qkv, .pos = fb->dev.pos, .inv_freq = fb->dev.inv_freq,
    };
    int fuse = fb->on_device && fb->shared_freq;
    tmi_split_sums qkv_sums = {0};
    tmi_split_sums *defer = defer_into(fb, fuse && !tmi_kv_is_quant(cache.dtype), &qkv_sums);
    if ((s = linear(m, ex, fb, &L->qkv, fb->hn, p->hidden_size, n, fb->qkv, ldq, 0, defer, qkv_src))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_QKV);
    if (!fuse && (s = rotary(m, ex, fb, b))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_ROPE);
    observe(fb, TMI_OBS_K, fb->qkv + q_cols, ldq, n, kv_cols);
    observe(fb, TMI_OBS_V, fb->qkv + q_cols + kv_cols, ldq, n, kv_cols);
    tmi_kv_write_args kw = {
        .n_seq = b->n_seq, .seqs = b->seqs,
        .k = fb->qkv + q_cols, .ldk = ldq, .v = fb->qkv + q_cols + kv_cols, .ldv = ldq, .cache = cache,
        .meta_dev = fb->dev.meta, .rope = fuse ? &fused : NULL, .sums = &qkv_sums,
    };
    if ((s = m->ops->kv_write(ex, &kw))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_KV_WRITE);
    tmi_attention_args at = {
        .n_seq = b->n_seq, .seqs = b->seqs, .n_head = p->head_num,
        .q = fb->qkv, .ldq = ldq, .out = fb->attn_out, .out_dtype = fb->act_dtype, .ldo = q_cols, .cache = cache,
        .scale = 1.0f / sqrtf((float)hd), .window = p->sliding_window, .meta_dev = fb->dev.meta,
        .plan_kv_len = fb->dev.plan_kv_len,
    };
    tmi_attn_merge merge = {0}; /* on CUDA at one row, the o projection merges the splits */
    const tmi_gemm_a_src merge_src = {.kind = TMI_GEMM_A_ATTN_MERGE, .merge = &merge};
    const tmi_gemm_a_src *o_src = fuse_into(fb, &L->wo, &merge_src);
    at.defer_merge = o_src ? &merge : NULL;
    if ((s = m->ops->attention(ex, &at))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_ATTENTION);
    observe(fb, TMI_OBS_O_IN, fb->attn, q_cols, n, q_cols);
    s = linear(m, ex, fb, &L->wo, fb->attn_out, q_cols, n, fb->x, p->hidden_size, 1, NULL, o_src);
    tmi_prof_mark(fb->prof, TMI_PROF_O);
    return s;
}

/* gate and up (one fused GEMM on CUDA, two on the CPU), silu(gate) * up into the
 * buffers' act (in place over gate on the CPU), then down added into x. */
static tm_status ffn_block(const tm_model *m, const tmi_exec *ex, tmi_fwd_buffers *fb, const tmi_layer *L, int64_t n)
{
    const tm_model_params *p = &m->p;
    int64_t inter = p->inter_size;
    tm_status s;
    tmi_rmsnorm_args norm = norm_args(m, &L->ffn_norm, fb->x, fb->hn, fb->act_dtype, n);
    const tmi_gemm_a_src norm_src = {.kind = TMI_GEMM_A_RMSNORM, .norm = &norm};
    const tmi_gemm_a_src *gu_src = L->w13.w ? fuse_into(fb, &L->w13, &norm_src) : NULL; /* w1, w3: two readers */
    if (!gu_src && (s = m->ops->rmsnorm(ex, &norm))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_NORM);
    observe(fb, TMI_OBS_FFN_IN, fb->h, p->hidden_size, n, p->hidden_size);
    tmi_silu_mul_args a = {
        .n = n, .d = inter, .gate = fb->gate, .ldg = inter, .up = fb->up, .ldu = inter,
        .out = fb->act, .ldo = inter, .out_dtype = fb->act_dtype,
    };
    tmi_split_sums gu_sums = {0}; /* on CUDA, silu_mul adds up the gate/up GEMM's k splits */
    a.sums = &gu_sums;
    if (L->w13.w) {
        tmi_split_sums *defer = defer_into(fb, 1, &gu_sums);
        if ((s = linear(m, ex, fb, &L->w13, fb->hn, p->hidden_size, n, fb->gate, 2 * inter, 0, defer, gu_src)))
            return s;
        a.ldg = a.ldu = 2 * inter;
        a.up = fb->gate + inter;
    } else {
        if ((s = linear(m, ex, fb, &L->w1, fb->hn, p->hidden_size, n, fb->gate, inter, 0, NULL, NULL))) return s;
        if ((s = linear(m, ex, fb, &L->w3, fb->hn, p->hidden_size, n, fb->up, inter, 0, NULL, NULL))) return s;
    }
    tmi_prof_mark(fb->prof, TMI_PROF_GATE_UP);
    const tmi_gemm_a_src silu_src = {.kind = TMI_GEMM_A_SILU_MUL, .silu = &a};
    const tmi_gemm_a_src *down_src = fuse_into(fb, &L->w2, &silu_src);
    if (!down_src && (s = m->ops->silu_mul(ex, &a))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_SILU);
    observe(fb, TMI_OBS_DOWN_IN, fb->gate, inter, n, inter);
    s = linear(m, ex, fb, &L->w2, fb->act, inter, n, fb->x, p->hidden_size, 1, NULL, down_src);
    tmi_prof_mark(fb->prof, TMI_PROF_DOWN);
    return s;
}

/* Final norm of the wanted rows, gathered into h, then the lm head.  On CUDA the
 * gather is the embedding op over x (the staged row ids) into dev.logits; the
 * forward copies them out unless the caller samples there (b->logits == NULL). */
static tm_status logits(const tm_model *m, const tmi_exec *ex, tmi_fwd_buffers *fb, const tmi_batch *b)
{
    int64_t d = m->p.hidden_size, vocab = m->p.vocab_size;
    tm_status s;
    if (!fb->on_device) {
        for (int32_t i = 0; i < b->n_logits; i++)
            memcpy(fb->h + (int64_t)i * d, fb->x + (int64_t)b->logit_rows[i] * d, (size_t)d * sizeof(float));
        if ((s = rmsnorm(m, ex, &m->norm, fb->h, fb->h, TM_F32, b->n_logits))) return s;
        return linear(m, ex, fb, &m->output, fb->h, d, b->n_logits, b->logits, vocab, 0, NULL, NULL);
    }
    tmi_embedding_args g = {
        .n = b->n_logits, .ids = fb->dev.rows, .table = fb->x, .dtype = TM_F32, .vocab = b->n_tok, .d = d,
        .out = fb->h, .ldo = d,
    };
    if ((s = m->ops->embedding(ex, &g)) || (s = rmsnorm(m, ex, &m->norm, fb->h, fb->hn, fb->act_dtype, b->n_logits)))
        return s;
    return linear(m, ex, fb, &m->output, fb->hn, d, b->n_logits, fb->dev.logits, vocab, 0, NULL, NULL);
}

static tm_status check_batch(const tm_model *m, const tmi_fwd_buffers *fb, const tmi_batch *b)
{
    if (b->n_tok < 1 || b->n_tok > fb->cap_tok)
        return tmi_fail(TM_ERR_INVALID_ARG, "batch of %d tokens: must be in [1, %d]", b->n_tok, fb->cap_tok);
    if (b->n_logits < 0 || b->n_logits > b->n_tok || b->n_logits > fb->max_logits)
        return tmi_fail(TM_ERR_INVALID_ARG, "batch wants %d logit rows of %d tokens (at most %d)", b->n_logits,
                        b->n_tok, fb->max_logits);
    int32_t next = 0;
    for (int32_t s = 0; s < b->n_seq; s++) {
        const tmi_attn_seq *q = &b->seqs[s];
        if (q->q_start != next || q->q_len < 0 || q->q_len > q->kv_len || q->kv_len > fb->max_kv_len)
            return tmi_fail(TM_ERR_INTERNAL, "batch sequence %d: rows [%d, +%d) kv_len %d out of order or range", s,
                            q->q_start, q->q_len, q->kv_len);
        next += q->q_len;
    }
    if (next != b->n_tok)
        return tmi_fail(TM_ERR_INTERNAL, "batch sequences cover %d rows of %d", next, b->n_tok);
    for (int32_t i = 0; i < b->n_logits; i++)
        if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n_tok)
            return tmi_fail(TM_ERR_INTERNAL, "logit row %d outside the batch", b->logit_rows[i]);
    (void)m;
    return TM_OK;
}

tm_status tmi_forward_layers(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache,
                             const tmi_exec *ex)
{
    const int32_t *ids = fb->on_device ? fb->dev.tokens : b->tokens;
    tmi_embedding_args e = {
        .n = b->n_tok, .ids = ids, .table = m->embed.data, .dtype = m->embed.dtype,
        .vocab = m->p.vocab_size, .d = m->p.hidden_size, .out = fb->x, .ldo = m->p.hidden_size,
    };
    tm_status s = m->ops->embedding(ex, &e);
    if (s) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_EMBED);
    for (int32_t l = 0; l < m->p.num_layer; l++) {
        tmi_kv_cache c = cache;
        c.layer_offset = (int64_t)l * 2 * c.v_offset;
        const float *qp = fb->on_device ? m->kv_static_dev : m->kv_static;
        c.qparams = qp ? qp + (int64_t)l * 4 * m->p.kv_head_num : NULL;
        fb->layer = l;
        if ((s = attention_block(m, ex, fb, b, &m->layers[l], c, b->n_tok))) return s;
        if ((s = ffn_block(m, ex, fb, &m->layers[l], b->n_tok))) return s;
    }
    if (b->n_logits == 0) return TM_OK;
    if ((s = logits(m, ex, fb, b))) return s;
    tmi_prof_mark(fb->prof, TMI_PROF_LOGITS);
    return TM_OK;
}

tm_status tmi_forward(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache)
{
    tm_status s = check_batch(m, fb, b);
    if (s) return s;
    tmi_exec ex = {
        .backend = m->p.backend, .pool = fb->pool, .workspace = fb->workspace, .workspace_bytes = fb->workspace_bytes,
        .blas = fb->dev.blas, .stream = fb->dev.stream,
    };
    tmi_prof_begin(fb->prof);
    for (int32_t sq = 0; sq < b->n_seq; sq++)
        for (int32_t t = 0; t < b->seqs[sq].q_len; t++)
            fb->pos[b->seqs[sq].q_start + t] = b->seqs[sq].kv_len - b->seqs[sq].q_len + t;
    if ((s = step_freqs(m, fb, b))) return s;
    if (fb->on_device) { /* ids, positions, logit rows, block tables, RoPE freqs: one copy */
        int graph = tmi_fwd_graph_wanted(fb, b);
        ex.tune = tmi_batch_is_decode(b); /* its GEMM shapes come back every step */
        fb->dev.plan_kv_len = tmi_fwd_plan_kv_len(fb, b);
        if ((s = tmi_fwd_dev_stage(m, fb, b, cache.block_len, graph))) return s;
        tmi_prof_mark(fb->prof, TMI_PROF_STAGE);
        s = graph ? tmi_fwd_graph_step(m, fb, b, cache, &ex) : tmi_forward_layers(m, fb, b, cache, &ex);
        if (s) return s;
        if (b->n_logits == 0) {
            if ((s = tmi_fwd_dev_sync(fb))) return s;
            return tmi_prof_end(fb->prof);
        }
        if (!b->logits) return TM_OK; /* logits left on the device: the caller samples there, marks it and ends the step */
        if ((s = tmi_fwd_dev_logits_to_host(fb, b->logits, (size_t)b->n_logits * m->p.vocab_size))) return s;
        return tmi_prof_end(fb->prof);
    }
    tmi_prof_mark(fb->prof, TMI_PROF_STAGE);
    if ((s = tmi_forward_layers(m, fb, b, cache, &ex))) return s;
    return tmi_prof_end(fb->prof);
}

tm_status tmi_fwd_buffers_profile(tmi_fwd_buffers *fb, const tm_model *m)
{
    if (fb->prof) return TM_OK;
    return tmi_prof_create(m->p.num_layer * 12 + 8, fb->on_device, fb->dev.stream, &fb->prof);
}

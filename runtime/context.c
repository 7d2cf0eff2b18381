/* context.c - tm_context: one sequence with a private KV cache.
 *
 * The cache is a pool of blocks used in order (block table = 0, 1, 2 ...), so the
 * context runs the same paged forward as the engine.  Long inputs are fed in
 * chunks of the forward capacity; the paged attention makes chunking exact. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

enum { CONTEXT_CHUNK = 512 }; /* default tokens per forward call */

struct tm_context {
    tm_model *model;
    int32_t max_tokens;
    int32_t len;
    int32_t block_len;
    int32_t *block_table; /* [n_blocks] = 0 .. n_blocks-1 */
    int kv_on_device;     /* CUDA backend: kv is device memory */
    void *kv;             /* [n_blocks] blocks of tmi_model_kv_block_bytes, the model's kv kind
                             (attention.h has the layout) */
    tmi_kv_cache cache;
    int32_t *rows;        /* [chunk_len] logit rows 0 .. n-1 */
    tmi_fwd_buffers fb;
};

tm_context_params tm_context_default_params(void)
{
    tm_context_params p = {0};
    return p;
}

tm_status tm_context_create(tm_model *model, const tm_context_params *params, tm_context **out)
{
    if (!model || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_context_create: NULL argument");
    tm_context_params p = params ? *params : tm_context_default_params();
    if (p.max_tokens == 0) p.max_tokens = model->p.max_position_embeddings;
    if (p.block_len == 0) p.block_len = 64;
    if (p.max_tokens < 1 || p.max_tokens > (1 << 24))
        return tmi_fail(TM_ERR_INVALID_ARG, "max_tokens must be in [1, 16777216], got %d", p.max_tokens);
    if (p.block_len < 1 || p.block_len > 4096)
        return tmi_fail(TM_ERR_INVALID_ARG, "block_len must be in [1, 4096], got %d", p.block_len);
    if (p.chunk_len == 0) p.chunk_len = CONTEXT_CHUNK;
    if (p.chunk_len < 1 || p.chunk_len > 4096)
        return tmi_fail(TM_ERR_INVALID_ARG, "chunk_len must be in [1, 4096], got %d", p.chunk_len);

    tm_context *c = calloc(1, sizeof *c);
    if (!c) return tmi_fail(TM_ERR_NOMEM, "tm_context_create: out of memory");
    c->model = model;
    c->max_tokens = p.max_tokens;
    c->block_len = p.block_len;
    int32_t n_blocks = (p.max_tokens + p.block_len - 1) / p.block_len;
    size_t kv_bytes = (size_t)n_blocks * (size_t)tmi_model_kv_block_bytes(model, p.block_len);
    int32_t cap = p.max_tokens < p.chunk_len ? p.max_tokens : p.chunk_len;
    c->block_table = malloc((size_t)n_blocks * sizeof(int32_t));
    c->rows = malloc((size_t)cap * sizeof(int32_t));
    c->kv_on_device = model->p.backend == TM_BACKEND_CUDA;
    tm_status s = TM_OK;
    if (c->kv_on_device) {
        if ((s = tmi_dev_alloc(&c->kv, kv_bytes))) goto err;
    } else {
        c->kv = malloc(kv_bytes);
    }
    if (!c->block_table || !c->kv || !c->rows) {
        s = tmi_fail(TM_ERR_NOMEM, "tm_context_create: KV cache of %zu bytes: out of memory", kv_bytes);
        goto err;
    }
    for (int32_t i = 0; i < n_blocks; i++) c->block_table[i] = i;
    for (int32_t i = 0; i < cap; i++) c->rows[i] = i;
    c->cache = tmi_model_kv_layout(model, p.block_len);
    c->cache.base = c->kv;
    if ((s = tmi_fwd_buffers_init(&c->fb, model, cap, p.max_tokens, cap))) goto err;
    *out = c;
    return TM_OK;
err:
    tm_context_destroy(c);
    return s;
}

void tm_context_destroy(tm_context *ctx)
{
    if (!ctx) return;
    tmi_fwd_buffers_free(&ctx->fb);
    free(ctx->block_table);
    if (ctx->kv_on_device) tmi_dev_free(ctx->kv);
    else free(ctx->kv);
    free(ctx->rows);
    free(ctx);
}

void tm_context_reset(tm_context *ctx)
{
    if (ctx) ctx->len = 0;
}

int32_t tm_context_length(const tm_context *ctx) { return ctx ? ctx->len : 0; }

tm_status tm_context_eval(tm_context *ctx, const int32_t *tokens, int32_t n, float *logits, int32_t all_logits)
{
    if (!ctx || !tokens) return tmi_fail(TM_ERR_INVALID_ARG, "tm_context_eval: NULL argument");
    if (n < 1) return tmi_fail(TM_ERR_INVALID_ARG, "tm_context_eval: need at least 1 token, got %d", n);
    if (n > ctx->max_tokens - ctx->len)
        return tmi_fail(TM_ERR_INVALID_ARG, "context holds %d of %d tokens: %d more do not fit", ctx->len,
                        ctx->max_tokens, n);
    int32_t vocab = ctx->model->p.vocab_size;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return tmi_fail(TM_ERR_INVALID_ARG, "token %d at index %d is outside the vocabulary [0, %d)", tokens[i],
                            i, vocab);
    int32_t start = ctx->len;
    for (int32_t done = 0; done < n;) {
        int32_t chunk = n - done < ctx->fb.cap_tok ? n - done : ctx->fb.cap_tok;
        int last_chunk = done + chunk == n;
        tmi_attn_seq seq = {
            .q_start = 0, .q_len = chunk, .kv_len = start + done + chunk, .block_table = ctx->block_table,
        };
        tmi_batch b = {.n_tok = chunk, .tokens = tokens + done, .n_seq = 1, .seqs = &seq};
        if (logits && all_logits) {
            b.n_logits = chunk;
            b.logit_rows = ctx->rows;
            b.logits = logits + (size_t)done * vocab;
        } else if (logits && last_chunk) {
            b.n_logits = 1;
            b.logit_rows = &ctx->rows[chunk - 1];
            b.logits = logits;
        }
        tm_status s = tmi_forward(ctx->model, &ctx->fb, &b, ctx->cache);
        if (s) {
            ctx->len = start; /* the cache past start may be partly written: forget it */
            return s;
        }
        done += chunk;
    }
    ctx->len = start + n;
    return TM_OK;
}

tm_status tm_context_kv_read(const tm_context *ctx, int32_t layer, int32_t start, int32_t n, float *k, float *v)
{
    if (!ctx || !k || !v) return tmi_fail(TM_ERR_INVALID_ARG, "tm_context_kv_read: NULL argument");
    if (ctx->kv_on_device) return tmi_fail(TM_ERR_UNSUPPORTED, "tm_context_kv_read: the KV cache is on the GPU");
    const tmi_kv_cache *c = &ctx->cache;
    if (c->dtype != TM_F32)
        return tmi_fail(TM_ERR_UNSUPPORTED, "tm_context_kv_read: needs a float KV cache (kv_dtype TM_KV_FP)");
    if (layer < 0 || layer >= ctx->model->p.num_layer)
        return tmi_fail(TM_ERR_INVALID_ARG, "layer must be in [0, %d), got %d", ctx->model->p.num_layer, layer);
    if (start < 0 || n < 0 || n > ctx->len - start)
        return tmi_fail(TM_ERR_INVALID_ARG, "tokens [%d, %d + %d) must lie inside the context's %d", start, start, n,
                        ctx->len);
    int32_t d = c->head_dim, h = c->n_kv_head;
    const float *base = c->base;
    int64_t layer_off = (int64_t)layer * 2 * c->v_offset;
    for (int32_t t = 0; t < n; t++) {
        int32_t j = start + t, block = ctx->block_table[j / c->block_len], slot = j % c->block_len;
        for (int32_t g = 0; g < h; g++) {
            int64_t off = (int64_t)block * c->block_stride + layer_off + ((int64_t)g * c->block_len + slot) * d;
            memcpy(k + ((int64_t)t * h + g) * d, base + off, (size_t)d * sizeof(float));
            memcpy(v + ((int64_t)t * h + g) * d, base + off + c->v_offset, (size_t)d * sizeof(float));
        }
    }
    return TM_OK;
}

/* model.h - the model's bound weights and the forward pass over a ragged batch. */
#ifndef TMI_MODEL_H
#define TMI_MODEL_H

#include "tmrun.h"
#include "kernels/registry.h"
#include "threadpool.h"

typedef struct tmi_vec {
    const void *data; /* [n] */
    tm_dtype dtype;
} tmi_vec;

typedef struct tmi_linear {
    const void *w;    /* [in][out], dtype */
    tm_dtype dtype;
    int64_t in, out;
    const void *bias; /* [out] or NULL */
    tm_dtype bias_dtype;
    /* int4 (weight_type int4, kernels/gemm_w4a16): w is NULL and these are set */
    const int32_t *qweight;        /* [in / 8][out] packed int4, or NULL for a float w */
    const uint16_t *scales_zeros;  /* [in / group][out][2] fp16 (scale, zero point) */
    int32_t group;
} tmi_linear;

/* Calibration hooks (runtime/quantizer.c): the forward hands each observed
 * activation to fn as rows x cols fp32 values, ld apart.  Sites: the inputs of the
 * linears (attention input = the normed x that q, k, v read; o; ffn input that
 * gate, up read; down) and K, V after RoPE, as written to the cache. */
typedef enum tmi_obs_site {
    TMI_OBS_ATTN_IN = 0,
    TMI_OBS_O_IN = 1,
    TMI_OBS_FFN_IN = 2,
    TMI_OBS_DOWN_IN = 3,
    TMI_OBS_K = 4,
    TMI_OBS_V = 5,
    TMI_OBS_SITES = 6
} tmi_obs_site;

typedef struct tmi_observer {
    void (*fn)(void *ctx, int32_t layer, tmi_obs_site site, const float *x, int64_t ld, int64_t rows, int64_t cols);
    void *ctx;
} tmi_observer;

typedef struct tmi_layer {
    tmi_vec attn_norm; /* [hidden] */
    tmi_linear qkv;    /* [hidden][(head_num + 2 kv_head_num) size_per_head] */
    tmi_linear wo;     /* [head_num size_per_head][hidden] */
    tmi_vec ffn_norm;  /* [hidden] */
    tmi_linear w1;     /* gate [hidden][inter] */
    tmi_linear w3;     /* up   [hidden][inter] */
    tmi_linear w2;     /* down [inter][hidden] */
    tmi_linear w13;    /* CUDA: gate and up as one [hidden][2 inter] matrix (row r = w1 row r, then
                          w3 row r), so one GEMM does both; w.w NULL on the CPU */
} tmi_layer;

struct tm_model {
    tm_model_params p;
    const tmi_ops *ops;
    const tm_weights *weights;
    tmi_vec embed;     /* [vocab][hidden] */
    tmi_vec norm;      /* [hidden] */
    tmi_linear output; /* [hidden][vocab] */
    tmi_layer *layers; /* [num_layer] */
    int64_t n_params;
    tm_dtype kv_dtype; /* the cache kind p.kv_dtype asks for: TM_F32, TM_I8 or TMI_KV_INT4 */
    float *kv_static;  /* [num_layer][4][kv_head_num] fp32 k_scale, k_zp, v_scale, v_zp for
                          kv_dtype's bit width; NULL: online params (or a float cache) */
    const float *kv_static_dev; /* CUDA: the device copy of kv_static (NULL without) */
    void **dev;        /* CUDA: the device copies of the bound weights (model_cuda.c) */
    int32_t n_dev, cap_dev;
    void **owned;      /* host tensors the model allocated itself (random weights, CPU) */
    int32_t n_owned, cap_owned;
};

/* A model with checked params, its backend's op table and zeroed layers, no weights
 * bound (model.c); tm_model_destroy frees it. */
tm_status tmi_model_new(const tm_model_params *params, tm_model **out);

/* One forward call: n_tok new tokens of n_seq sequences, rows grouped by sequence
 * in order (seqs[i].q_start ascending, contiguous). */
typedef struct tmi_batch {
    int32_t n_tok;
    const int32_t *tokens;    /* [n_tok] */
    int32_t n_seq;
    const tmi_attn_seq *seqs; /* [n_seq] */
    int32_t n_logits;
    const int32_t *logit_rows; /* [n_logits] rows whose logits are wanted */
    float *logits;             /* [n_logits][vocab] host; NULL on CUDA: they stay in the device
                                  buffer (fb->dev.logits) for sampling there */
} tmi_batch;

/* Captured decode-step shapes a runner keeps (forward_graph.c). */
#define TMI_FWD_GRAPHS 64
/* The ops a projection's GEMM may take from before it (fuse_a, forward.c). */
enum { TMI_FUSE_NORM = 1, TMI_FUSE_SILU = 2, TMI_FUSE_MERGE = 4 };

/* Activations and scratch of one runner (a context, or an engine rank): sized
 * once for up to cap_tok rows per forward, so the token loop never allocates. */
typedef struct tmi_fwd_buffers {
    int32_t cap_tok;
    int32_t max_kv_len;
    int32_t max_logits;
    float *x;       /* [cap_tok][hidden] residual stream */
    float *h;       /* [cap_tok][hidden] normed input of a block */
    float *qkv;     /* [cap_tok][(head_num + 2 kv_head_num) size_per_head] */
    float *attn;    /* [cap_tok][head_num size_per_head] */
    float *gate;    /* [cap_tok][inter] */
    float *up;      /* [cap_tok][inter] */
    int32_t *pos;   /* [cap_tok] absolute positions */
    float *inv_freq; /* [cap_freq][size_per_head / 2] this step's RoPE frequencies (step_freqs):
                        row 0 serves every sequence when shared_freq, else row s sequence s */
    int32_t cap_freq, n_freq;
    int shared_freq;
    void *workspace;
    size_t workspace_bytes;
    tmi_pool *pool;
    const tmi_observer *observer; /* NULL (the default): no calibration hooks */
    struct tmi_prof *prof;        /* NULL (the default): no per-op timing (profile.h) */
    int32_t layer;                /* the layer being run, for the observer */
    /* the inputs of the GEMMs, in act_dtype: F32 on the CPU, where they are h, attn
     * and gate themselves; on CUDA the weights' dtype (16-bit activations, fp32
     * residual x and GEMM outputs) in buffers of their own */
    tm_dtype act_dtype;
    void *hn;       /* [cap_tok][hidden] normed block input */
    void *attn_out; /* [cap_tok][head_num size_per_head] attention output */
    void *act;      /* [cap_tok][inter] silu(gate) * up */
    /* CUDA (forward_dev.c): x .. act and workspace are device memory; gate holds
     * [cap_tok][2 inter] (the fused gate/up output, up = gate + inter) */
    int on_device;
    struct {
        void *stream;     /* cudaStream_t of every op of this runner */
        void *blas;       /* the GEMM handle (tmi_gemm_cuda_blas_create) */
        int32_t *stage;   /* pinned host staging of the step's inputs */
        int32_t *stage_dev;
        int64_t stage_cap; /* int32 units of each */
        /* this step's sections of stage_dev */
        int32_t *tokens, *pos, *rows, *meta;
        float *inv_freq;  /* the device copy of the host inv_freq rows */
        float *logits;    /* [max_logits][vocab] */
        void *blas_ws;    /* cuBLAS's workspace, set on the handle (graph capture needs one) */
        int32_t plan_kv_len; /* this step's attention split plan bound (forward_graph.c) */
        int graphs_on;    /* decode steps replay CUDA graphs: 1; 0 never ($TMRUN_CUDA_GRAPHS=0);
                             2 a failed capture is an error ($TMRUN_CUDA_GRAPHS=require) */
        int defer_splits; /* the QKV and gate/up GEMMs may leave their k splits to the op after
                             them (gemm.h): 1; 0 with $TMRUN_GEMM_DEFER=0 */
        int fuse_a;       /* TMI_FUSE_* kinds of op a GEMM takes from before it (gemm.h's
                             a_src): all; $TMRUN_GEMM_FUSE=0 none, or a list (forward_dev.c) */
        int32_t n_graphs, graph_evict;
        struct tmi_fwd_graph {
            int32_t n_tok, n_logits, plan_kv_len, block_len;
            const void *kv_base;
            int32_t seen; /* steps of this shape: captured at the second */
            void *exec;   /* cudaGraphExec_t, NULL until captured */
        } graphs[TMI_FWD_GRAPHS];
    } dev;
} tmi_fwd_buffers;

/* Room for forwards of up to cap_tok rows over sequences of up to max_kv_len
 * tokens, wanting up to max_logits rows of logits (the device logits buffer is
 * [max_logits][vocab]: a batch's last rows, not every prefill row). */
tm_status tmi_fwd_buffers_init(tmi_fwd_buffers *fb, const tm_model *m, int32_t cap_tok, int32_t max_kv_len,
                               int32_t max_logits);
void tmi_fwd_buffers_free(tmi_fwd_buffers *fb);

/* Turns per-op timing on for this runner (profile.h): fb->prof. */
tm_status tmi_fwd_buffers_profile(tmi_fwd_buffers *fb, const tm_model *m);

/* The layout of a KV pool in the model's kv_dtype (base set by caller). */
tmi_kv_cache tmi_model_kv_layout(const tm_model *m, int32_t block_len);
/* Bytes of one block (all layers, K and V, online params included). */
int64_t tmi_model_kv_block_bytes(const tm_model *m, int32_t block_len);

/* Binds the static KV params (kv_static) as p.kv_dtype and p.kv_qparams ask (model_kv.c). */
tm_status tmi_model_bind_kv(tm_model *m);

/* model_cuda.c: weights to the device at create, device memory for the buffers. */
tm_status tmi_model_upload(tm_model *m);
/* Records a device allocation for tm_model_destroy (model_cuda.c); frees it on failure. */
tm_status tmi_model_own_device(tm_model *m, void *dev);
/* The CUDA backend can hold this model (a device, a KV kind it has). */
tm_status tmi_model_check_device(const tm_model *m);
tm_status tmi_model_upload_kv(tm_model *m);
tm_status tmi_dev_sync(void);
void tmi_model_free_device(tm_model *m);
tm_status tmi_dev_alloc(void **ptr, size_t bytes);
void tmi_dev_free(void *ptr);
double tmi_dev_mem_free(void); /* free device memory in bytes (0 without CUDA) */
tm_status tmi_dev_copy(void *dst, const void *src, size_t bytes, int kind); /* 0 H2D, 1 D2H, 2 D2D */
tm_status tmi_dev_blas_create(void **blas);
void tmi_dev_blas_destroy(void *blas);

/* forward_dev.c: the CUDA half of the forward buffers and the step's staging. */
tm_status tmi_fwd_dev_init(tmi_fwd_buffers *fb, const tm_model *m, size_t n);
void tmi_fwd_dev_free(tmi_fwd_buffers *fb);
/* fixed: the block tables at s x max_blocks, so every step of one shape stages at
 * the same addresses (what a captured graph reads); else packed. */
tm_status tmi_fwd_dev_stage(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, int32_t block_len,
                            int fixed);
tm_status tmi_fwd_dev_logits_to_host(tmi_fwd_buffers *fb, float *dst, size_t n);
tm_status tmi_fwd_dev_sync(tmi_fwd_buffers *fb);

/* Runs the batch; cache.layer_offset and cache.qparams are ignored (set per layer). */
tm_status tmi_forward(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache);
/* The device work of a staged step: embedding, layers, logits into dev.logits. */
tm_status tmi_forward_layers(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache,
                             const tmi_exec *ex);

/* forward_graph.c: CUDA graphs of decode steps.  A decode step: every sequence adds one row. */
int tmi_batch_is_decode(const tmi_batch *b);
int32_t tmi_fwd_plan_kv_len(const tmi_fwd_buffers *fb, const tmi_batch *b);
int tmi_fwd_graph_wanted(const tmi_fwd_buffers *fb, const tmi_batch *b);
tm_status tmi_fwd_graph_step(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache,
                             const tmi_exec *ex);
void tmi_fwd_graphs_clear(tmi_fwd_buffers *fb);

/* inv_freq[size_per_head/2] for a sequence whose length after this step is seq_len. */
void tmi_rope_inv_freq(const tm_model_params *p, int32_t seq_len, float *inv_freq);

#endif

/*
 * tmrun.h - the one public C header of libtmrun.
 *
 * Conventions (see docs/API.md):
 *  - Opaque handles with tm_<obj>_create / tm_<obj>_destroy; destroy is NULL-safe.
 *  - Every fallible call returns tm_status; TM_OK is 0.  On failure the message is
 *    in tm_last_error() (thread-local, valid until the next failing call on the
 *    same thread).  Results come back through out-parameters, which are left
 *    untouched on failure.
 *  - Unless a declaration says otherwise a handle may be used by one thread at a
 *    time; distinct handles are independent.
 *
 * The block between the tmrun-ffi markers is mirrored, declaration for
 * declaration, by lua/tmrun/ffi.lua; tests/lua/ffi_spec.lua fails if they drift.
 * Inside it: no macros, no includes, one declaration per statement.
 */
#ifndef TMRUN_H
#define TMRUN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* tmrun-ffi-begin */

typedef enum tm_status {
    TM_OK = 0,
    TM_ERR_INVALID_ARG = 1, /* caller passed a value outside the documented rule */
    TM_ERR_IO = 2,          /* a file could not be opened, read, mapped or written */
    TM_ERR_FORMAT = 3,      /* a file's content is malformed */
    TM_ERR_NOMEM = 4,       /* an allocation failed */
    TM_ERR_UNSUPPORTED = 5, /* valid, but not implemented by this build or backend */
    TM_ERR_NOT_FOUND = 6,   /* a named item (tensor, key) does not exist */
    TM_ERR_STATE = 7,       /* the object is not in a state that allows the call */
    TM_ERR_DEVICE = 8,      /* a device (CUDA) error; the object is poisoned */
    TM_ERR_INTERNAL = 9     /* a broken internal invariant: a bug in tmrun */
} tm_status;

/* The name of a status code ("TM_ERR_FORMAT"); never NULL. */
const char *tm_status_name(tm_status status);

/* The message of the last failing call on this thread; "" when none. */
const char *tm_last_error(void);

/* Library version string, e.g. "0.1.0". */
const char *tm_version(void);

/* Whether this build can run on CUDA devices (1) or not (0), and how many are visible. */
int tm_cuda_available(void);
int tm_cuda_device_count(void);

typedef enum tm_dtype {
    TM_F32 = 0,
    TM_F16 = 1,
    TM_BF16 = 2,
    TM_I32 = 3,
    TM_I64 = 4,
    TM_I16 = 5,
    TM_I8 = 6,
    TM_U8 = 7,
    TM_BOOL = 8,
    TM_F64 = 9
} tm_dtype;

/* Bytes per element, and the safetensors spelling ("F32", "BF16" ...); 0 and
 * "INVALID" for a value outside the enum. */
size_t tm_dtype_size(tm_dtype dtype);
const char *tm_dtype_name(tm_dtype dtype);

/* ---------------------------------------------------------------- tensors -- */

/* A read-only view of one tensor in a tm_weights store.  name and data live as long
 * as the store (and are not moved by later additions). */
typedef struct tm_tensor_info {
    const char *name;
    tm_dtype dtype;
    int32_t ndim;
    int64_t shape[8];
    const void *data;
    int64_t nbytes;
} tm_tensor_info;

/*
 * tm_weights: a store of named tensors.  Tensors loaded from safetensors files are
 * views into the file's read-only mapping (zero copy); tensors added with
 * tm_weights_add are owned copies.  Every file is validated before any tensor is
 * visible (header length, JSON, dtypes, shapes against byte ranges, ranges inside
 * the data area, no overlap, unique names); a bad file is TM_ERR_FORMAT with a
 * message naming the file and the field.  As in the reference implementation the
 * ranges must tile the data area exactly: gaps and trailing bytes are errors.
 * Every data pointer is aligned to its element size: a tensor stored misaligned
 * in the file (packing puts an F32 after an odd-length F16 anywhere) is copied
 * once at load time instead of viewed.
 * Threads: loading and adding need exclusive access; lookups may run concurrently.
 */
typedef struct tm_weights tm_weights;

tm_status tm_weights_create(tm_weights **out);
void tm_weights_destroy(tm_weights *weights);

/* Maps one .safetensors file and adds all its tensors.  A name already in the store
 * is TM_ERR_FORMAT.  Codes: TM_ERR_IO, TM_ERR_FORMAT, TM_ERR_NOMEM. */
tm_status tm_weights_load(tm_weights *weights, const char *path);

/* Adds a tensor, copying data (nbytes = product(shape) * tm_dtype_size(dtype)).
 * Codes: TM_ERR_INVALID_ARG (ndim outside [0, 8], negative dim, duplicate name),
 * TM_ERR_NOMEM. */
tm_status tm_weights_add(tm_weights *weights, const char *name, tm_dtype dtype, int32_t ndim,
                         const int64_t *shape, const void *data);

int64_t tm_weights_count(const tm_weights *weights);

/* Tensor by position (insertion order) or by name.  Codes: TM_ERR_INVALID_ARG,
 * TM_ERR_NOT_FOUND. */
tm_status tm_weights_info(const tm_weights *weights, int64_t index, tm_tensor_info *out);
tm_status tm_weights_find(const tm_weights *weights, const char *name, tm_tensor_info *out);

/* The __metadata__ of the n-th loaded file as a JSON object text ("{}" when none);
 * the pointer lives as long as the store.  Codes: TM_ERR_INVALID_ARG. */
tm_status tm_weights_file_metadata(const tm_weights *weights, int32_t file_index, const char **json);

/* Writes every tensor, in insertion order, to one safetensors file (via a temporary
 * file renamed into place).  metadata_json: NULL or a JSON object whose values are
 * strings.  Codes: TM_ERR_INVALID_ARG, TM_ERR_IO. */
tm_status tm_weights_save(const tm_weights *weights, const char *path, const char *metadata_json);

/* -------------------------------------------------------------- converter -- */

typedef enum tm_split {
    TM_SPLIT_NONE = 0,   /* every rank gets the whole tensor */
    TM_SPLIT_COLUMN = 1, /* split along the output features (qkv, gate, up) */
    TM_SPLIT_ROW = 2     /* split along the input features (o, down); a bias goes to rank 0 */
} tm_split;

typedef struct tm_converter_params {
    int32_t tp;         /* tensor-parallel ranks, [1, 64] */
    int32_t keep_dtype; /* 1: keep each source's dtype; 0: cast to dtype */
    tm_dtype dtype;     /* target dtype when keep_dtype == 0: TM_F32, TM_F16 or TM_BF16 */
} tm_converter_params;

/*
 * tm_converter: tensor transforms from HuggingFace layout to the workspace layout.
 * HF linear weights are [out][in]; workspace linear weights are [in][out]
 * (TurboMind's), so every linear is transposed.
 * Threads: one at a time.
 */
typedef struct tm_converter tm_converter;

tm_converter_params tm_converter_default_params(void);
tm_status tm_converter_create(const tm_converter_params *params, tm_converter **out);
void tm_converter_destroy(tm_converter *conv);

/*
 * Writes rank `rank`'s share of a linear layer into dst as dst_name.
 * src_names: n_src HF tensors from src, each [out_i][in] (weights) or [out_i]
 * (biases).  The rank's slice of each source (column split: out_i / tp rows of
 * it; row split: in / tp columns) is transposed and the slices are concatenated
 * along the output axis: fused QKV is {q, k, v}.  Every out_i (column) or in
 * (row) must divide by tp.  A row-split bias is written on rank 0 and zeros on the
 * others.  TM_SPLIT_NONE gives every rank the whole (transposed) tensor.
 * n_src in [1, 64]; the sources share one dtype (F32, F16 or BF16) and are all
 * weights or all biases.  The result is [in or in / tp][sum of out slices], or
 * [sum of out slices] for biases.  A dst_name already in dst is
 * TM_ERR_INVALID_ARG.  Codes: TM_ERR_INVALID_ARG, TM_ERR_NOT_FOUND, TM_ERR_NOMEM.
 */
tm_status tm_converter_linear(tm_converter *conv, tm_weights *dst, const char *dst_name,
                              const tm_weights *src, const char *const *src_names, int32_t n_src,
                              tm_split split, int32_t rank);

/* Copies (cast as the params say) a tensor unchanged in layout; transpose != 0
 * transposes a 2-D tensor (tied embeddings become output.weight [hidden][vocab]).
 * Integer tensors (AWQ qweight, qzeros) are copied bit-exact, never cast.
 * Codes: TM_ERR_INVALID_ARG, TM_ERR_NOT_FOUND, TM_ERR_NOMEM. */
tm_status tm_converter_copy(tm_converter *conv, tm_weights *dst, const char *dst_name,
                            const tm_weights *src, const char *src_name, int32_t transpose);

/* AutoAWQ int4 linears (prefix.qweight, .qzeros, .scales, layout in runtime/quantizer.h)
 * to the engine's int4 layout (kernels/gemm_w4a16/gemm_w4a16.h): dst_prefix.qweight
 * I32 [in / 8][sum of out slices] and dst_prefix.scales_zeros F16
 * [in / group][sum of out slices][2], with the same fuse and split rules as
 * tm_converter_linear (a row split needs in / tp to be a multiple of group_size).
 * group_size must match the sources'.  Codes: TM_ERR_INVALID_ARG, TM_ERR_NOT_FOUND,
 * TM_ERR_FORMAT, TM_ERR_NOMEM. */
tm_status tm_converter_awq(tm_converter *conv, tm_weights *dst, const char *dst_prefix,
                           const tm_weights *src, const char *const *src_prefixes, int32_t n_src,
                           int32_t group_size, tm_split split, int32_t rank);

/* ------------------------------------------------------------------ model -- */

typedef enum tm_rope_type {
    TM_ROPE_DEFAULT = 0,
    TM_ROPE_LINEAR = 1,  /* positions divided by factor */
    TM_ROPE_DYNAMIC = 2, /* dynamic NTK: base grows once a sequence passes original_max */
    TM_ROPE_LLAMA3 = 3   /* Llama 3.1 frequency-dependent scaling */
} tm_rope_type;

typedef enum tm_backend {
    TM_BACKEND_CPU = 0,
    TM_BACKEND_CUDA = 1
} tm_backend;

/* KV cache storage (docs/QUANTIZATION.md): the backend's float kind (fp32 on the
 * CPU), or INT8 / INT4 codes dequantized inside attention. */
typedef enum tm_kv_dtype {
    TM_KV_FP = 0,
    TM_KV_INT8 = 1,
    TM_KV_INT4 = 2
} tm_kv_dtype;

/* Where a quantized cache takes its scale and zero point from. */
typedef enum tm_kv_qparams {
    TM_KV_QPARAMS_AUTO = 0,   /* static when layers.{L}.past_kv_scale.0.weight exist, else online */
    TM_KV_QPARAMS_ONLINE = 1, /* per token and kv head, computed when K/V are written */
    TM_KV_QPARAMS_STATIC = 2  /* per layer (and kv head) from the weights; missing is TM_ERR_FORMAT */
} tm_kv_qparams;

typedef struct tm_model_params {
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t num_layer;
    int32_t head_num;
    int32_t kv_head_num;
    int32_t size_per_head;
    int32_t inter_size;
    float norm_eps;
    int32_t attn_bias;      /* 1: w_qkv has a bias */
    int32_t attn_out_bias;  /* 1: wo has a bias */
    int32_t max_position_embeddings;
    int32_t sliding_window; /* 0: none */
    tm_rope_type rope_type;
    float rope_theta;
    float rope_factor;          /* linear, dynamic, llama3 */
    float rope_low_freq_factor; /* llama3 */
    float rope_high_freq_factor;
    int32_t rope_original_max;  /* llama3 and dynamic: original_max_position_embeddings */
    int32_t tp;                 /* shards in the weight store; the CPU backend runs tp = 1 */
    tm_backend backend;
    int32_t num_threads;        /* CPU worker threads; 0: one per core */
    tm_kv_dtype kv_dtype;       /* KV cache storage; TM_KV_FP default */
    tm_kv_qparams kv_qparams;   /* quantized kv_dtype only */
    int32_t group_size;         /* int4 weights (weight_type int4): the AWQ group along the input
                                   features, a multiple of 32 in [32, 1024]; 0: float weights only */
} tm_model_params;

/*
 * tm_model: the immutable part of a network (config and weights), shareable by
 * contexts and engines.  The weights store must outlive the model; it is read,
 * never changed.  Tensor names and shapes are checked at create time: a missing
 * or mis-shaped tensor is TM_ERR_FORMAT naming it.
 * Threads: after create, any number of threads may use the model through their
 * own contexts.
 */
typedef struct tm_model tm_model;

tm_model_params tm_model_default_params(void);
tm_status tm_model_create(const tm_model_params *params, const tm_weights *weights, tm_model **out);
void tm_model_destroy(tm_model *model);
/* Number of parameters (weights) the model reads per token. */
int64_t tm_model_param_count(const tm_model *model);

/*
 * A model of params' shape with random weights made where the backend keeps them
 * (device memory on CUDA: no checkpoint and no host copy, so a 7B benchmark
 * starts in seconds).  dtype: TM_F32, TM_F16 or TM_BF16.  Norm weights are 1;
 * every other tensor is uniform noise, [-1, 1) for the embedding, +-1/sqrt(in)
 * for a linear, the same values on both backends for the same seed (the noise is
 * a counter hash, not a sequential generator).  int4 weights (group_size > 0)
 * and static KV params are not made.  Codes as tm_model_create, plus
 * TM_ERR_NOMEM / TM_ERR_DEVICE when the backend's memory is short.
 */
tm_status tm_model_create_random(const tm_model_params *params, tm_dtype dtype, uint64_t seed, tm_model **out);

/* Bytes of the model's weights in the backend's memory (what a decode step reads,
 * plus the embedding table). */
int64_t tm_model_weight_bytes(const tm_model *model);

/* Free and total memory of the current CUDA device in bytes; TM_ERR_UNSUPPORTED
 * without CUDA, TM_ERR_DEVICE when the driver fails. */
tm_status tm_cuda_memory(int64_t *free_bytes, int64_t *total_bytes);

typedef struct tm_context_params {
    int32_t max_tokens;  /* tokens the context may hold, [1, 1 << 24]; 0: max_position_embeddings */
    int32_t block_len;   /* KV block length in tokens, [1, 4096]; 0: 64 */
    int32_t chunk_len;   /* tokens per forward call, [1, 4096]; 0: 512.  Later chunks read the
                            earlier ones' K/V from the cache (quantized when the cache is) */
} tm_context_params;

/*
 * tm_context: one sequence with its own KV cache over a model: the simple path
 * (generate.lua, goldens, tests).  The engine serves many sequences at once.
 * Threads: one at a time.
 */
typedef struct tm_context tm_context;

tm_context_params tm_context_default_params(void);
tm_status tm_context_create(tm_model *model, const tm_context_params *params, tm_context **out);
void tm_context_destroy(tm_context *ctx);

/*
 * Appends n tokens and runs them through the model.  logits: NULL, or
 * [n][vocab] fp32 when all_logits != 0, else [1][vocab] for the last token.
 * Codes: TM_ERR_INVALID_ARG (n < 1, token outside [0, vocab), more tokens than
 * max_tokens; the context is unchanged), TM_ERR_DEVICE.
 */
tm_status tm_context_eval(tm_context *ctx, const int32_t *tokens, int32_t n, float *logits,
                          int32_t all_logits);
/* Forgets all tokens. */
void tm_context_reset(tm_context *ctx);
int32_t tm_context_length(const tm_context *ctx);
/*
 * Copies the cached K and V (after RoPE, fp32) of tokens [start, start + n) of one
 * layer: k and v are [n][kv_head_num][size_per_head].  The calibration observer
 * (lua/tmrun/quant/kv_stats.lua) reads what a quantized cache would store.
 * Codes: TM_ERR_INVALID_ARG (layer outside [0, num_layer), range outside
 * [0, length), NULL buffers), TM_ERR_UNSUPPORTED (the cache is quantized).
 */
tm_status tm_context_kv_read(const tm_context *ctx, int32_t layer, int32_t start, int32_t n, float *k, float *v);

/* -------------------------------------------------------------- tokenizer -- */

/*
 * tm_tokenizer: BPE tokenizers from HuggingFace tokenizer.json (SentencePiece-style
 * with byte fallback and "▁", and byte-level with PCRE2 pre-tokenizer regexes),
 * or a SentencePiece tokenizer.model; tokenizer_config.json beside either supplies
 * add_bos_token / add_eos_token, bos/eos tokens and clean_up_tokenization_spaces.
 * Ids match transformers.js (@lenml/tokenizers) for the same files.
 * Threads: encode uses a per-handle cache, so one thread at a time encodes; decode,
 * the lookups and streams only read the handle and may run on any threads at once.
 */
typedef struct tm_tokenizer tm_tokenizer;

/* path_or_dir: a tokenizer.json or tokenizer.model file, or a folder holding one
 * (tokenizer.json preferred).  Codes: TM_ERR_INVALID_ARG, TM_ERR_IO (no such file),
 * TM_ERR_FORMAT (malformed file; the message names the file and the field),
 * TM_ERR_UNSUPPORTED (a model, normalizer, pre-tokenizer or decoder type this
 * build does not implement, named in the message), TM_ERR_NOMEM. */
tm_status tm_tokenizer_create(const char *path_or_dir, tm_tokenizer **out);
void tm_tokenizer_destroy(tm_tokenizer *tok);

/*
 * Encodes text[0, len) (any bytes: ill-formed UTF-8 is read as U+FFFD, like a
 * TextDecoder).  add_special != 0 adds the BOS/EOS the tokenizer's post-processor
 * and config ask for.  Writes min(count, cap) ids to ids (which may be NULL when
 * cap is 0) and the full count to *n_ids: when *n_ids > cap, call again with a
 * buffer of *n_ids.  Codes: TM_ERR_INVALID_ARG, TM_ERR_NOMEM, TM_ERR_INTERNAL (the
 * regex engine failed, e.g. past its match limit; the message says how).
 */
tm_status tm_tokenizer_encode(tm_tokenizer *tok, const char *text, size_t len, int32_t add_special,
                              int32_t *ids, int64_t cap, int64_t *n_ids);

/*
 * Decodes ids[0, n_ids) to UTF-8.  skip_special != 0 leaves out special tokens.
 * Writes min(length, cap) bytes to text, then a NUL when it fits, and the full
 * length (without NUL) to *len: when *len >= cap, call again with cap = *len + 1.
 * Codes: TM_ERR_INVALID_ARG (an id outside [0, vocab size) or without a token).
 */
tm_status tm_tokenizer_decode(const tm_tokenizer *tok, const int32_t *ids, int64_t n_ids,
                              int32_t skip_special, char *text, size_t cap, size_t *len);

/* Vocabulary size: the largest id + 1 (ids inside it may be unused). */
int32_t tm_tokenizer_vocab_size(const tm_tokenizer *tok);
/* BOS / EOS ids from tokenizer_config.json (or the post-processor); -1 when none. */
int32_t tm_tokenizer_bos_id(const tm_tokenizer *tok);
int32_t tm_tokenizer_eos_id(const tm_tokenizer *tok);

/* The token text of id as tokenizer.json spells it ("Ġthe", "▁the", "<|im_end|>");
 * *text lives as long as tok and is NUL-terminated.  Codes: TM_ERR_INVALID_ARG
 * (outside [0, vocab size)), TM_ERR_NOT_FOUND (an unused id). */
tm_status tm_tokenizer_token_text(const tm_tokenizer *tok, int32_t id, const char **text, size_t *len);

/* The id of the token spelled text[0, len) (vocabulary or added, e.g. "<|im_end|>").
 * Codes: TM_ERR_INVALID_ARG, TM_ERR_NOT_FOUND. */
tm_status tm_tokenizer_token_id(const tm_tokenizer *tok, const char *text, size_t len, int32_t *id);

/* 1 when id is a special token (skipped by skip_special), else 0. */
int32_t tm_tokenizer_is_special(const tm_tokenizer *tok, int32_t id);

/*
 * tm_tokenizer_stream: incremental decoding for streaming output.  Each feed returns
 * the text that became final: never part of a UTF-8 character, byte-fallback bytes
 * held until their character is complete, and the concatenation of all feeds and the
 * flush equals tm_tokenizer_decode of the same ids.  The tokenizer must outlive
 * the stream.  Threads: one at a time per stream.
 */
typedef struct tm_tokenizer_stream tm_tokenizer_stream;

tm_status tm_tokenizer_stream_create(const tm_tokenizer *tok, int32_t skip_special,
                                     tm_tokenizer_stream **out);
void tm_tokenizer_stream_destroy(tm_tokenizer_stream *stream);

/* Feeds one id; *text / *len: the new text ("" and 0 when none), NUL-terminated,
 * valid until the next call on the stream.  Codes: TM_ERR_INVALID_ARG (bad id: the
 * stream is unchanged), TM_ERR_NOMEM. */
tm_status tm_tokenizer_stream_feed(tm_tokenizer_stream *stream, int32_t id, const char **text,
                                   size_t *len);

/* Ends the text: returns what was held back (an unfinished character becomes
 * U+FFFD) and makes the stream ready for a new text.  Codes: TM_ERR_NOMEM. */
tm_status tm_tokenizer_stream_flush(tm_tokenizer_stream *stream, const char **text, size_t *len);

/* --------------------------------------------------------------- sampling -- */

/* How one request picks its next token.  tm_sampling_default_params() gives greedy.
 * The order the fields act in is documented in runtime/sampler.h. */
typedef struct tm_sampling_params {
    float temperature;         /* 0: greedy (argmax, first index on ties); else > 0, <= 100 */
    int32_t top_k;             /* 0: off; else keep the k largest, [1, vocab] */
    float top_p;               /* (0, 1]; 1: off.  Smallest set whose probability >= top_p (always >= 1 token) */
    float min_p;               /* [0, 1]; 0: off.  Drop tokens with p < min_p * p_max */
    float repetition_penalty;  /* (0, 100]; 1: off.  HF/CTRL rule over prompt + generated tokens: logit > 0 ? logit / r : logit * r */
    float presence_penalty;    /* [-2, 2]; OpenAI rule over generated tokens: logit -= presence if count > 0 */
    float frequency_penalty;   /* [-2, 2]; OpenAI rule over generated tokens: logit -= frequency * count */
    const int32_t *logit_bias_ids;  /* [n_logit_bias] token ids */
    const float *logit_bias_values; /* [n_logit_bias] added to the logits, [-100, 100] */
    int32_t n_logit_bias;      /* [0, 1024] */
    uint64_t seed;             /* the request's PRNG seed: same seed + same logits = same tokens */
    int32_t top_logprobs;      /* [0, 20]: how many alternatives to report with logprobs */
} tm_sampling_params;

tm_sampling_params tm_sampling_default_params(void);
/* Checks every field against the rule in its comment, for a vocabulary of vocab ids;
 * the message names the field and the rule.  Codes: TM_ERR_INVALID_ARG. */
tm_status tm_sampling_params_check(const tm_sampling_params *p, int32_t vocab);

/* quantizer-begin */
/* -------------------------------------------------------------- quantizer -- */

typedef struct tm_quantizer_params {
    int32_t max_seq_len; /* longest calibration sample in tokens, [1, 1 << 20]; default 2048 */
} tm_quantizer_params;

/*
 * tm_quantizer: calibration observers (docs/QUANTIZATION.md).  Each observed sample
 * runs through the model's fp forward pass (a private fp KV cache; the model must
 * use the cpu backend and a float KV cache) and adds to per-layer statistics: for
 * the input of each linear site (attn_in: what q, k, v read; o_in; ffn_in: what
 * gate, up read; down_in) per-channel min, max, mean, absmax, absmean and the Gram
 * matrix X^T X over all tokens; for K and V after RoPE, per head and dim min, max,
 * absmax.  The model must outlive the quantizer.  Threads: one at a time.
 */
typedef struct tm_quantizer tm_quantizer;

tm_quantizer_params tm_quantizer_default_params(void);
/* Codes: TM_ERR_INVALID_ARG, TM_ERR_UNSUPPORTED (not the cpu backend), TM_ERR_NOMEM. */
tm_status tm_quantizer_create(tm_model *model, const tm_quantizer_params *params, tm_quantizer **out);
void tm_quantizer_destroy(tm_quantizer *quantizer);

/* Runs tokens[0, n) as one fresh sequence and adds its activations to the statistics.
 * Codes: TM_ERR_INVALID_ARG (n outside [1, max_seq_len], a token outside the
 * vocabulary), TM_ERR_NOMEM; a failure inside the forward poisons the quantizer. */
tm_status tm_quantizer_observe(tm_quantizer *quantizer, const int32_t *tokens, int32_t n);
/* Tokens observed so far. */
int64_t tm_quantizer_tokens(const tm_quantizer *quantizer);

/* Adds the statistics to dst as F32 tensors "layers.{L}.{site}.{stat}": sites attn_in,
 * o_in, ffn_in, down_in with min, max, absmax, mean, absmean [cols] and gram
 * [cols][cols]; sites k, v with min, max, absmax [kv_head_num][size_per_head].
 * Codes: TM_ERR_STATE (nothing observed), TM_ERR_INVALID_ARG (a name already in dst),
 * TM_ERR_NOMEM. */
tm_status tm_quantizer_export(const tm_quantizer *quantizer, tm_weights *dst);

/*
 * AWQ scale search for one smoothing group: n_w linears w[i] ([outs[i]][in] fp32,
 * HF layout) reading one input X whose Gram matrix is gram ([in][in], X^T X) and
 * per-channel mean |x| is x_absmean ([in]).  For alpha = k / n_grid, k in [0, n_grid),
 * s = x_absmean^alpha (normalised so max(s) min(s) = 1); the error is
 * sum_i ||X' Q(W_i')^T - X W_i^T||^2 with W' = W diag(s), X' = X diag(1/s) and Q the
 * group-wise asymmetric int4 of tm_awq_quantize, computed exactly from gram.  Writes the best s to scales ([in]) and, when errors is not NULL,
 * each grid point's error to errors ([n_grid]).  num_threads 0: one per core.
 * Codes: TM_ERR_INVALID_ARG (group not dividing in, n_w outside [1, 16], n_grid
 * outside [1, 1000]), TM_ERR_NOMEM.
 */
tm_status tm_awq_search_scale(const float *gram, int64_t in, const float *x_absmean, const float *const *w,
                              const int64_t *outs, int32_t n_w, int32_t group, int32_t n_grid, int32_t num_threads,
                              float *scales, float *errors);

/* AWQ clipping search: for each (output row, group) of w ([out][in] fp32), the range
 * max|w| (1 - r / n_grid), r in [0, max_shrink n_grid], whose clamped int4
 * quantization minimises the group's output error d^T G_gg d over the Gram block.
 * Writes max_val ([out][in / group]), for tm_awq_quantize.  Codes: TM_ERR_INVALID_ARG,
 * TM_ERR_NOMEM. */
tm_status tm_awq_search_clip(const float *gram, int64_t in, const float *w, int64_t out, int32_t group,
                             int32_t n_grid, float max_shrink, int32_t num_threads, float *max_val);

/* Group-wise asymmetric int4 (scale = (max - min) / 15 in fp16, zero = round(-min /
 * scale) in [0, 15], q = clamp(round(w / scale) + zero, 0, 15)) of w ([out][in] fp32),
 * after clamping each group to [-max_val, max_val] when max_val ([out][in / group]) is
 * not NULL; adds AutoAWQ's GEMM tensors prefix.qweight I32 [in][out / 8], prefix.qzeros
 * I32 [in / group][out / 8] and prefix.scales F16 [in / group][out] to dst.  Codes:
 * TM_ERR_INVALID_ARG (out not a multiple of 8, group not dividing in, a name already
 * in dst), TM_ERR_NOMEM. */
tm_status tm_awq_quantize(tm_weights *dst, const char *prefix, const float *w, int64_t out, int64_t in,
                          int32_t group, const float *max_val);

/* Decodes AutoAWQ's prefix.{qweight, qzeros, scales} from src to w ([out][in] fp32,
 * w = (q - z) s).  Codes: TM_ERR_NOT_FOUND, TM_ERR_FORMAT (dtypes, shapes that
 * disagree), TM_ERR_INVALID_ARG (out, in differ from the tensors'). */
tm_status tm_awq_dequantize(const tm_weights *src, const char *prefix, int64_t out, int64_t in, float *w);
/* quantizer-end */

/* ------------------------------------------------------------- benchmarks -- */

/* GFLOP/s of the CPU GEMM on an m x k (fp32) by k x n (dtype) product, best of
 * reps, using num_threads (0: one per core).  Codes: TM_ERR_INVALID_ARG, TM_ERR_NOMEM. */
tm_status tm_bench_gemm_cpu(int64_t m, int64_t n, int64_t k, tm_dtype dtype, int32_t num_threads,
                            int32_t reps, double *gflops);

/* The fp32 FMA throughput the CPU can issue (GFLOP/s): independent vector FMA
 * chains on num_threads threads (0: one per core) - the peak GEMM is measured
 * against.  Codes: TM_ERR_INVALID_ARG, TM_ERR_NOMEM. */
tm_status tm_bench_fma_peak_cpu(int32_t num_threads, double *gflops);

/* ----------------------------------------------------------------- engine -- */

/*
 * tm_engine: continuous batching over a paged KV cache (TurboMind's persistent
 * batch).  One engine thread owns the batch, the KV block pool and the sessions;
 * other threads talk to it through tm_engine_submit, tm_request_* and
 * tm_engine_end_session, all thread-safe.  See docs/ENGINE.md.
 */
typedef struct tm_engine tm_engine;

typedef struct tm_engine_params {
    int32_t max_batch_size;        /* sequences decoded together, [1, 4096]; default 64 */
    int32_t max_prefill_token_num; /* prompt tokens per step over all prefill chunks, [1, 1 << 20]; default 8192 */
    int32_t session_len;           /* tokens a sequence may hold, [1, 1 << 24]; 0: the model's max_position_embeddings */
    int32_t cache_block_seq_len;   /* tokens per KV block, [1, 4096]; default 64 */
    double cache_max_entry_count;  /* (0, 1]: that fraction of free memory for KV blocks; > 1: a block count.
                                      The pool always holds at least one session_len sequence. Default 0.5 */
    const tm_tokenizer *tokenizer; /* optional; needed for stop strings; must outlive the engine */
    int32_t eos_ids[8];            /* the model's end ids (generation_config.json), each in [0, vocab) */
    int32_t n_eos_ids;             /* [0, 8] */
    int32_t profile;               /* 1: time every op of every step (tm_engine_profile); costs a
                                      sync a step on CUDA, so not for throughput runs.  Default 0 */
} tm_engine_params;

tm_engine_params tm_engine_default_params(void);

/* Starts the engine thread.  The model must outlive the engine.  Codes:
 * TM_ERR_INVALID_ARG (a parameter outside its rule), TM_ERR_NOMEM, TM_ERR_UNSUPPORTED. */
tm_status tm_engine_create(tm_model *model, const tm_engine_params *params, tm_engine **out);
/* Cancels every request, stops and joins the thread, frees the pool.  Requests
 * not yet destroyed stay valid (finished, cancelled) until tm_request_destroy. */
void tm_engine_destroy(tm_engine *engine);

typedef struct tm_request_params {
    uint64_t session_id;        /* 0: one-shot; else the session whose history this continues */
    int32_t interactive;        /* 1: keep the session's tokens and KV after this request */
    int32_t max_new_tokens;     /* [0, 1 << 24]; 0: only add the prompt to the session */
    int32_t ignore_eos;         /* 1: do not stop at the model's end ids */
    const int32_t *stop_ids;    /* [n_stop_ids] extra ids that stop generation */
    int32_t n_stop_ids;         /* [0, 64] */
    const char *const *stop_strings; /* [n_stop_strings] NUL-terminated, matched on decoded text */
    int32_t n_stop_strings;     /* [0, 16]; each string 1..256 bytes; needs the engine's tokenizer */
    int32_t n;                  /* independent samples sharing the prompt's KV, [1, 128]; > 1 needs session_id 0 */
    int32_t logprobs;           /* 1: each token event carries its logprob and sampling.top_logprobs alternatives */
    tm_sampling_params sampling;
} tm_request_params;

tm_request_params tm_request_default_params(void);

typedef enum tm_finish_reason {
    TM_FINISH_NONE = 0,
    TM_FINISH_STOP = 1,      /* an end id, a stop id or a stop string */
    TM_FINISH_LENGTH = 2,    /* max_new_tokens or session_len reached */
    TM_FINISH_CANCELLED = 3,
    TM_FINISH_ERROR = 4      /* see tm_request_error */
} tm_finish_reason;

typedef enum tm_event_kind {
    TM_EVENT_TOKEN = 1,
    TM_EVENT_FINISH = 2
} tm_event_kind;

typedef struct tm_event {
    int32_t kind;            /* tm_event_kind */
    int32_t sample;          /* which of the request's n samples, [0, n) */
    int32_t token;           /* TOKEN: the new id.  FINISH: the stop id that ended it, or -1 */
    float logprob;           /* TOKEN with logprobs */
    int32_t n_top;
    int32_t top_ids[20];
    float top_logprobs[20];
    int32_t finish_reason;   /* FINISH: tm_finish_reason */
    int32_t stop_string;     /* FINISH by a stop string: its index, else -1 */
    int32_t prompt_tokens;   /* FINISH: tokens this request sent */
    int32_t history_tokens;  /* FINISH: tokens the session held before this request */
    int32_t completion_tokens; /* FINISH: tokens generated for this sample */
    double time;             /* when the engine pushed it: CLOCK_MONOTONIC seconds (libuv's
                                uv_hrtime clock), for latency measurements */
} tm_event;

typedef struct tm_request tm_request;

/*
 * Queues a request: tokens[0, n_tokens) continue the session (or start a one-shot
 * sequence).  Never blocks on the engine.  Codes: TM_ERR_INVALID_ARG (ids outside the
 * vocabulary, a parameter outside its rule, a prompt longer than session_len:
 * message "context_length_exceeded: ..."), TM_ERR_STATE (the engine is stopping),
 * TM_ERR_NOMEM.  A session that turns out busy or too long is reported as a FINISH
 * event with TM_FINISH_ERROR.
 */
tm_status tm_engine_submit(tm_engine *engine, const int32_t *tokens, int32_t n_tokens,
                           const tm_request_params *params, tm_request **out);

/* Moves up to cap events to events (oldest first); returns how many.  Never blocks. */
int32_t tm_request_poll(tm_request *request, tm_event *events, int32_t cap);
/* Blocks until the request has events or has finished, or timeout_ms passed (-1: no
 * limit); returns 1 when events are ready or it finished, 0 on timeout. */
int32_t tm_request_wait(tm_request *request, int32_t timeout_ms);
/* 1 once every sample has finished and its FINISH event was queued. */
int32_t tm_request_finished(const tm_request *request);
/* Asks the engine to stop the request; any thread, any time, idempotent. */
void tm_request_cancel(tm_request *request);
/* The error message of a TM_FINISH_ERROR, "" otherwise; lives as long as the request. */
const char *tm_request_error(const tm_request *request);
/* Cancels if still running and releases the caller's reference. */
void tm_request_destroy(tm_request *request);

/* Drops a session's tokens and KV (LMDeploy's end).  A running request of that
 * session finishes first.  Codes: TM_ERR_STATE (the engine is stopping). */
tm_status tm_engine_end_session(tm_engine *engine, uint64_t session_id);

/* A file descriptor that becomes readable when any request has new events; read
 * it (8 bytes) or call tm_engine_event_drain to re-arm it. */
int32_t tm_engine_event_fd(const tm_engine *engine);
void tm_engine_event_drain(tm_engine *engine);

typedef struct tm_engine_stats {
    int32_t queued;           /* requests waiting to start */
    int32_t running;          /* sequences in the batch */
    int32_t sessions;         /* sessions known (running or cached) */
    int32_t blocks_total;
    int32_t blocks_used;
    int32_t blocks_free;
    int64_t steps;            /* forward passes so far */
    int64_t tokens_prefilled; /* prompt tokens run, re-prefills included */
    int64_t tokens_generated;
    int64_t preemptions;
    int64_t evictions;        /* cached sessions whose KV was dropped */
    double schedule_seconds;  /* engine-thread time outside the forward and sampling */
    double forward_seconds;
    double sample_seconds;
} tm_engine_stats;

/* A snapshot (any thread). */
void tm_engine_get_stats(tm_engine *engine, tm_engine_stats *stats);

/* Per-op time of the steps so far (an engine made with profile = 1) as a markdown
 * table (op, calls, total ms, ms a step, share) into buf[cap], NUL-terminated when
 * cap > 0.  Returns the length the whole table needs (snprintf's rule); 0 when the
 * engine does not profile.  Any thread; the numbers are as of the last step. */
int32_t tm_engine_profile(tm_engine *engine, char *buf, int32_t cap);

/* tmrun-ffi-end */

#ifdef __cplusplus
}
#endif

#endif /* TMRUN_H */

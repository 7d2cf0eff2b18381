-- tmrun.ffi: the one ffi.cdef of runtime/include/tmrun.h, and the one place the library is found.
--
-- The cdef below mirrors the header's block between the tmrun-ffi markers,
-- declaration for declaration and in the same order (comments are free);
-- tests/lua/ffi_spec.lua fails when they drift apart.
local ffi = require("ffi")

local M = {}

M.cdef = [[
typedef enum tm_status {
    TM_OK = 0,
    TM_ERR_INVALID_ARG = 1,
    TM_ERR_IO = 2,
    TM_ERR_FORMAT = 3,
    TM_ERR_NOMEM = 4,
    TM_ERR_UNSUPPORTED = 5,
    TM_ERR_NOT_FOUND = 6,
    TM_ERR_STATE = 7,
    TM_ERR_DEVICE = 8,
    TM_ERR_INTERNAL = 9
} tm_status;

const char *tm_status_name(tm_status status);

const char *tm_last_error(void);

const char *tm_version(void);

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

size_t tm_dtype_size(tm_dtype dtype);
const char *tm_dtype_name(tm_dtype dtype);

typedef struct tm_tensor_info {
    const char *name;
    tm_dtype dtype;
    int32_t ndim;
    int64_t shape[8];
    const void *data;
    int64_t nbytes;
} tm_tensor_info;

typedef struct tm_weights tm_weights;

tm_status tm_weights_create(tm_weights **out);
void tm_weights_destroy(tm_weights *weights);

tm_status tm_weights_load(tm_weights *weights, const char *path);

tm_status tm_weights_add(tm_weights *weights, const char *name, tm_dtype dtype, int32_t ndim,
                         const int64_t *shape, const void *data);

int64_t tm_weights_count(const tm_weights *weights);

tm_status tm_weights_info(const tm_weights *weights, int64_t index, tm_tensor_info *out);
tm_status tm_weights_find(const tm_weights *weights, const char *name, tm_tensor_info *out);

tm_status tm_weights_file_metadata(const tm_weights *weights, int32_t file_index, const char **json);

tm_status tm_weights_save(const tm_weights *weights, const char *path, const char *metadata_json);

typedef enum tm_split {
    TM_SPLIT_NONE = 0,
    TM_SPLIT_COLUMN = 1,
    TM_SPLIT_ROW = 2
} tm_split;

typedef struct tm_converter_params {
    int32_t tp;
    int32_t keep_dtype;
    tm_dtype dtype;
} tm_converter_params;

typedef struct tm_converter tm_converter;

tm_converter_params tm_converter_default_params(void);
tm_status tm_converter_create(const tm_converter_params *params, tm_converter **out);
void tm_converter_destroy(tm_converter *conv);

tm_status tm_converter_linear(tm_converter *conv, tm_weights *dst, const char *dst_name,
                              const tm_weights *src, const char *const *src_names, int32_t n_src,
                              tm_split split, int32_t rank);

tm_status tm_converter_copy(tm_converter *conv, tm_weights *dst, const char *dst_name,
                            const tm_weights *src, const char *src_name, int32_t transpose);

tm_status tm_converter_awq(tm_converter *conv, tm_weights *dst, const char *dst_prefix,
                           const tm_weights *src, const char *const *src_prefixes, int32_t n_src,
                           int32_t group_size, tm_split split, int32_t rank);

typedef enum tm_rope_type {
    TM_ROPE_DEFAULT = 0,
    TM_ROPE_LINEAR = 1,
    TM_ROPE_DYNAMIC = 2,
    TM_ROPE_LLAMA3 = 3
} tm_rope_type;

typedef enum tm_backend {
    TM_BACKEND_CPU = 0,
    TM_BACKEND_CUDA = 1
} tm_backend;

typedef enum tm_kv_dtype {
    TM_KV_FP = 0,
    TM_KV_INT8 = 1,
    TM_KV_INT4 = 2
} tm_kv_dtype;

typedef enum tm_kv_qparams {
    TM_KV_QPARAMS_AUTO = 0,
    TM_KV_QPARAMS_ONLINE = 1,
    TM_KV_QPARAMS_STATIC = 2
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
    int32_t attn_bias;
    int32_t attn_out_bias;
    int32_t max_position_embeddings;
    int32_t sliding_window;
    tm_rope_type rope_type;
    float rope_theta;
    float rope_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int32_t rope_original_max;
    int32_t tp;
    tm_backend backend;
    int32_t num_threads;
    tm_kv_dtype kv_dtype;
    tm_kv_qparams kv_qparams;
    int32_t group_size;
} tm_model_params;

typedef struct tm_model tm_model;

tm_model_params tm_model_default_params(void);
tm_status tm_model_create(const tm_model_params *params, const tm_weights *weights, tm_model **out);
void tm_model_destroy(tm_model *model);

int64_t tm_model_param_count(const tm_model *model);
tm_status tm_model_create_random(const tm_model_params *params, tm_dtype dtype, uint64_t seed, tm_model **out);
int64_t tm_model_weight_bytes(const tm_model *model);
tm_status tm_cuda_memory(int64_t *free_bytes, int64_t *total_bytes);

typedef struct tm_context_params {
    int32_t max_tokens;
    int32_t block_len;
    int32_t chunk_len;
} tm_context_params;

typedef struct tm_context tm_context;

tm_context_params tm_context_default_params(void);
tm_status tm_context_create(tm_model *model, const tm_context_params *params, tm_context **out);
void tm_context_destroy(tm_context *ctx);

tm_status tm_context_eval(tm_context *ctx, const int32_t *tokens, int32_t n, float *logits,
                          int32_t all_logits);

void tm_context_reset(tm_context *ctx);
int32_t tm_context_length(const tm_context *ctx);
tm_status tm_context_kv_read(const tm_context *ctx, int32_t layer, int32_t start, int32_t n, float *k, float *v);

/* tokenizer-begin */
typedef struct tm_tokenizer tm_tokenizer;

tm_status tm_tokenizer_create(const char *path_or_dir, tm_tokenizer **out);
void tm_tokenizer_destroy(tm_tokenizer *tok);

tm_status tm_tokenizer_encode(tm_tokenizer *tok, const char *text, size_t len, int32_t add_special,
                              int32_t *ids, int64_t cap, int64_t *n_ids);

tm_status tm_tokenizer_decode(const tm_tokenizer *tok, const int32_t *ids, int64_t n_ids,
                              int32_t skip_special, char *text, size_t cap, size_t *len);

int32_t tm_tokenizer_vocab_size(const tm_tokenizer *tok);

int32_t tm_tokenizer_bos_id(const tm_tokenizer *tok);
int32_t tm_tokenizer_eos_id(const tm_tokenizer *tok);

tm_status tm_tokenizer_token_text(const tm_tokenizer *tok, int32_t id, const char **text, size_t *len);

tm_status tm_tokenizer_token_id(const tm_tokenizer *tok, const char *text, size_t len, int32_t *id);

int32_t tm_tokenizer_is_special(const tm_tokenizer *tok, int32_t id);

typedef struct tm_tokenizer_stream tm_tokenizer_stream;

tm_status tm_tokenizer_stream_create(const tm_tokenizer *tok, int32_t skip_special,
                                     tm_tokenizer_stream **out);
void tm_tokenizer_stream_destroy(tm_tokenizer_stream *stream);

tm_status tm_tokenizer_stream_feed(tm_tokenizer_stream *stream, int32_t id, const char **text,
                                   size_t *len);

tm_status tm_tokenizer_stream_flush(tm_tokenizer_stream *stream, const char **text, size_t *len);
/* tokenizer-end */

/* sampling-begin */
typedef struct tm_sampling_params {
    float temperature;
    int32_t top_k;
    float top_p;
    float min_p;
    float repetition_penalty;
    float presence_penalty;
    float frequency_penalty;
    const int32_t *logit_bias_ids;
    const float *logit_bias_values;
    int32_t n_logit_bias;
    uint64_t seed;
    int32_t top_logprobs;
} tm_sampling_params;

tm_sampling_params tm_sampling_default_params(void);
tm_status tm_sampling_params_check(const tm_sampling_params *p, int32_t vocab);
/* sampling-end */

/* quantizer-begin */
typedef struct tm_quantizer_params {
    int32_t max_seq_len;
} tm_quantizer_params;

typedef struct tm_quantizer tm_quantizer;

tm_quantizer_params tm_quantizer_default_params(void);
tm_status tm_quantizer_create(tm_model *model, const tm_quantizer_params *params, tm_quantizer **out);
void tm_quantizer_destroy(tm_quantizer *quantizer);
tm_status tm_quantizer_observe(tm_quantizer *quantizer, const int32_t *tokens, int32_t n);
int64_t tm_quantizer_tokens(const tm_quantizer *quantizer);
tm_status tm_quantizer_export(const tm_quantizer *quantizer, tm_weights *dst);
tm_status tm_awq_search_scale(const float *gram, int64_t in, const float *x_absmean, const float *const *w,
                              const int64_t *outs, int32_t n_w, int32_t group, int32_t n_grid, int32_t num_threads,
                              float *scales, float *errors);
tm_status tm_awq_search_clip(const float *gram, int64_t in, const float *w, int64_t out, int32_t group,
                             int32_t n_grid, float max_shrink, int32_t num_threads, float *max_val);
tm_status tm_awq_quantize(tm_weights *dst, const char *prefix, const float *w, int64_t out, int64_t in,
                          int32_t group, const float *max_val);
tm_status tm_awq_dequantize(const tm_weights *src, const char *prefix, int64_t out, int64_t in, float *w);
/* quantizer-end */

tm_status tm_bench_gemm_cpu(int64_t m, int64_t n, int64_t k, tm_dtype dtype, int32_t num_threads,
                            int32_t reps, double *gflops);

tm_status tm_bench_fma_peak_cpu(int32_t num_threads, double *gflops);

/* engine */
typedef struct tm_engine tm_engine;

typedef struct tm_engine_params {
    int32_t max_batch_size;
    int32_t max_prefill_token_num;
    int32_t session_len;
    int32_t cache_block_seq_len;
    double cache_max_entry_count;
    const tm_tokenizer *tokenizer;
    int32_t eos_ids[8];
    int32_t n_eos_ids;
    int32_t profile;
} tm_engine_params;

tm_engine_params tm_engine_default_params(void);

tm_status tm_engine_create(tm_model *model, const tm_engine_params *params, tm_engine **out);

void tm_engine_destroy(tm_engine *engine);

typedef struct tm_request_params {
    uint64_t session_id;
    int32_t interactive;
    int32_t max_new_tokens;
    int32_t ignore_eos;
    const int32_t *stop_ids;
    int32_t n_stop_ids;
    const char *const *stop_strings;
    int32_t n_stop_strings;
    int32_t n;
    int32_t logprobs;
    tm_sampling_params sampling;
} tm_request_params;

tm_request_params tm_request_default_params(void);

typedef enum tm_finish_reason {
    TM_FINISH_NONE = 0,
    TM_FINISH_STOP = 1,
    TM_FINISH_LENGTH = 2,
    TM_FINISH_CANCELLED = 3,
    TM_FINISH_ERROR = 4
} tm_finish_reason;

typedef enum tm_event_kind {
    TM_EVENT_TOKEN = 1,
    TM_EVENT_FINISH = 2
} tm_event_kind;

typedef struct tm_event {
    int32_t kind;
    int32_t sample;
    int32_t token;
    float logprob;
    int32_t n_top;
    int32_t top_ids[20];
    float top_logprobs[20];
    int32_t finish_reason;
    int32_t stop_string;
    int32_t prompt_tokens;
    int32_t history_tokens;
    int32_t completion_tokens;
    double time;
} tm_event;

typedef struct tm_request tm_request;

tm_status tm_engine_submit(tm_engine *engine, const int32_t *tokens, int32_t n_tokens,
                           const tm_request_params *params, tm_request **out);

int32_t tm_request_poll(tm_request *request, tm_event *events, int32_t cap);

int32_t tm_request_wait(tm_request *request, int32_t timeout_ms);

int32_t tm_request_finished(const tm_request *request);

void tm_request_cancel(tm_request *request);

const char *tm_request_error(const tm_request *request);

void tm_request_destroy(tm_request *request);

tm_status tm_engine_end_session(tm_engine *engine, uint64_t session_id);

int32_t tm_engine_event_fd(const tm_engine *engine);
void tm_engine_event_drain(tm_engine *engine);

typedef struct tm_engine_stats {
    int32_t queued;
    int32_t running;
    int32_t sessions;
    int32_t blocks_total;
    int32_t blocks_used;
    int32_t blocks_free;
    int64_t steps;
    int64_t tokens_prefilled;
    int64_t tokens_generated;
    int64_t preemptions;
    int64_t evictions;
    double schedule_seconds;
    double forward_seconds;
    double sample_seconds;
} tm_engine_stats;

void tm_engine_get_stats(tm_engine *engine, tm_engine_stats *stats);
int32_t tm_engine_profile(tm_engine *engine, char *buf, int32_t cap);
]]

ffi.cdef(M.cdef)

-- Inside the tmrun host the library is linked into the executable (ffi.C); a plain
-- luajit finds libtmrun.so through $TMRUN_LIB, the build folder or the loader path.
local function has_symbols(lib)
  return pcall(function() return lib.tm_version end)
end

local function find_library()
  if has_symbols(ffi.C) then return ffi.C end
  local candidates = {}
  local env = os.getenv("TMRUN_LIB")
  if env and env ~= "" then candidates[#candidates + 1] = env end
  local home = rawget(_G, "TMRUN_HOME") or os.getenv("TMRUN_HOME")
  if home then candidates[#candidates + 1] = home .. "/build/libtmrun.so" end
  candidates[#candidates + 1] = "tmrun"
  local errors = {}
  for _, path in ipairs(candidates) do
    local ok, lib = pcall(ffi.load, path)
    if ok and has_symbols(lib) then return lib end
    errors[#errors + 1] = path .. ": " .. tostring(lib)
  end
  error("tmrun: cannot find libtmrun (set TMRUN_LIB):\n  " .. table.concat(errors, "\n  "), 2)
end

M.C = find_library()
M.ffi = ffi

return M

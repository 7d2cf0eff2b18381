/* model.c - tm_model: validated parameters and weights bound by workspace name. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "model.h"

tm_model_params tm_model_default_params(void)
{
    tm_model_params p = {0};
    p.norm_eps = 1e-6f;
    p.max_position_embeddings = 2048;
    p.rope_type = TM_ROPE_DEFAULT;
    p.rope_theta = 10000.0f;
    p.rope_factor = 1.0f;
    p.rope_low_freq_factor = 1.0f;
    p.rope_high_freq_factor = 4.0f;
    p.tp = 1;
    p.backend = TM_BACKEND_CPU;
    return p;
}

#define CHECK_RANGE(field, lo, hi)                                                                   \
    do {                                                                                             \
        if (p->field < (lo) || p->field > (hi))                                                      \
            return tmi_fail(TM_ERR_INVALID_ARG, #field " must be in [%lld, %lld], got %lld",         \
                            (long long)(lo), (long long)(hi), (long long)p->field);                  \
    } while (0)

static tm_status check_params(const tm_model_params *p)
{
    CHECK_RANGE(vocab_size, 1, 1 << 24);
    CHECK_RANGE(hidden_size, 1, 1 << 17);
    CHECK_RANGE(num_layer, 1, 4096);
    CHECK_RANGE(head_num, 1, 4096);
    CHECK_RANGE(kv_head_num, 1, p->head_num);
    CHECK_RANGE(size_per_head, 2, 1024);
    CHECK_RANGE(inter_size, 1, 1 << 20);
    CHECK_RANGE(max_position_embeddings, 1, 1 << 24);
    CHECK_RANGE(sliding_window, 0, 1 << 24);
    CHECK_RANGE(tp, 1, 1);
    CHECK_RANGE(num_threads, 0, 512);
    if (p->group_size != 0 && (p->group_size < 32 || p->group_size > 1024 || p->group_size % 32))
        return tmi_fail(TM_ERR_INVALID_ARG, "group_size must be 0 (no int4 weights) or a multiple of 32 in [32, 1024], got %d",
                        p->group_size);
    if (p->head_num % p->kv_head_num)
        return tmi_fail(TM_ERR_INVALID_ARG, "head_num (%d) must be a multiple of kv_head_num (%d)", p->head_num,
                        p->kv_head_num);
    if (p->size_per_head % 2)
        return tmi_fail(TM_ERR_INVALID_ARG, "size_per_head must be even, got %d", p->size_per_head);
    if (!(p->norm_eps > 0.0f && p->norm_eps < 1.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "norm_eps must be in (0, 1), got %g", p->norm_eps);
    if (!(p->rope_theta > 1.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_theta must be > 1, got %g", p->rope_theta);
    if (p->rope_type < TM_ROPE_DEFAULT || p->rope_type > TM_ROPE_LLAMA3)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_type must be in [0, 3], got %d", (int)p->rope_type);
    if (p->rope_type != TM_ROPE_DEFAULT && !(p->rope_factor >= 1.0f && p->rope_factor <= 1024.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_factor must be in [1, 1024], got %g", p->rope_factor);
    if (p->rope_type == TM_ROPE_LLAMA3) {
        if (p->rope_original_max < 1)
            return tmi_fail(TM_ERR_INVALID_ARG, "llama3 rope needs rope_original_max >= 1, got %d",
                            p->rope_original_max);
        if (!(p->rope_high_freq_factor > p->rope_low_freq_factor && p->rope_low_freq_factor > 0.0f))
            return tmi_fail(TM_ERR_INVALID_ARG,
                            "llama3 rope needs 0 < low_freq_factor < high_freq_factor, got %g and %g",
                            p->rope_low_freq_factor, p->rope_high_freq_factor);
    }
    if (p->kv_dtype < TM_KV_FP || p->kv_dtype > TM_KV_INT4)
        return tmi_fail(TM_ERR_INVALID_ARG, "kv_dtype must be 0 (fp), 1 (int8) or 2 (int4), got %d", (int)p->kv_dtype);
    if (p->kv_qparams < TM_KV_QPARAMS_AUTO || p->kv_qparams > TM_KV_QPARAMS_STATIC)
        return tmi_fail(TM_ERR_INVALID_ARG, "kv_qparams must be 0 (auto), 1 (online) or 2 (static), got %d",
                        (int)p->kv_qparams);
    if (p->backend != TM_BACKEND_CPU && p->backend != TM_BACKEND_CUDA)
        return tmi_fail(TM_ERR_INVALID_ARG, "backend must be 0 (cpu) or 1 (cuda), got %d", (int)p->backend);
    return TM_OK;
}

/* Finds name and checks its dtype is a float kind and its shape is exactly the given one. */
static tm_status bind(const tm_weights *w, const char *name, int ndim, int64_t d0, int64_t d1, const void **data,
                      tm_dtype *dtype)
{
    tm_tensor_info t;
    if (tm_weights_find(w, name, &t) != TM_OK)
        return tmi_fail(TM_ERR_FORMAT, "missing tensor %s", name);
    if (!tmi_is_float_dtype(t.dtype))
        return tmi_fail(TM_ERR_FORMAT, "tensor %s: dtype %s, want F32, F16 or BF16", name, tm_dtype_name(t.dtype));
    int ok = t.ndim == ndim && t.shape[0] == d0 && (ndim == 1 || t.shape[1] == d1);
    if (!ok) {
        if (ndim == 1)
            return tmi_fail(TM_ERR_FORMAT, "tensor %s: shape has %d dims [%lld ...], want [%lld]", name, t.ndim,
                            (long long)(t.ndim ? t.shape[0] : 0), (long long)d0);
        return tmi_fail(TM_ERR_FORMAT, "tensor %s: shape has %d dims [%lld, %lld ...], want [%lld, %lld]", name,
                        t.ndim, (long long)(t.ndim ? t.shape[0] : 0), (long long)(t.ndim > 1 ? t.shape[1] : 0),
                        (long long)d0, (long long)d1);
    }
    *data = t.data;
    *dtype = t.dtype;
    return TM_OK;
}

static tm_status bind_vec(const tm_weights *w, const char *name, int64_t n, tmi_vec *v)
{
    return bind(w, name, 1, n, 0, &v->data, &v->dtype);
}

/* Finds name and checks it is exactly dtype [d0][d1] (or [d0][d1][2] when pairs). */
static tm_status bind_exact(const tm_weights *w, const char *name, tm_dtype dtype, int64_t d0, int64_t d1, int pairs,
                            const void **data)
{
    tm_tensor_info t;
    if (tm_weights_find(w, name, &t) != TM_OK) return tmi_fail(TM_ERR_FORMAT, "missing tensor %s", name);
    int ndim = pairs ? 3 : 2;
    if (t.dtype != dtype || t.ndim != ndim || t.shape[0] != d0 || t.shape[1] != d1 || (pairs && t.shape[2] != 2))
        return tmi_fail(TM_ERR_FORMAT, "tensor %s: %s with %d dims [%lld, %lld ...], want %s [%lld, %lld%s]", name,
                        tm_dtype_name(t.dtype), t.ndim, (long long)(t.ndim ? t.shape[0] : 0),
                        (long long)(t.ndim > 1 ? t.shape[1] : 0), tm_dtype_name(dtype), (long long)d0, (long long)d1,
                        pairs ? ", 2" : "");
    *data = t.data;
    return TM_OK;
}

/* The int4 form of a linear (kernels/gemm_w4a16/gemm_w4a16.h): "<prefix>.qweight"
 * I32 [in / 8][out] and "<prefix>.scales_zeros" F16 [in / group][out][2]. */
static tm_status bind_int4(const tm_weights *w, const char *prefix, int64_t in, int64_t out, int32_t group,
                           tmi_linear *l)
{
    char name[256];
    if (group <= 0)
        return tmi_fail(TM_ERR_FORMAT, "%s.qweight: an int4 linear needs group_size > 0 in the model params", prefix);
    if (in % group || in % 8)
        return tmi_fail(TM_ERR_FORMAT, "%s: group_size %d must divide the %lld input features", prefix, group,
                        (long long)in);
    snprintf(name, sizeof name, "%s.qweight", prefix);
    tm_status s = bind_exact(w, name, TM_I32, in / 8, out, 0, (const void **)&l->qweight);
    if (s) return s;
    snprintf(name, sizeof name, "%s.scales_zeros", prefix);
    if ((s = bind_exact(w, name, TM_F16, in / group, out, 1, (const void **)&l->scales_zeros))) return s;
    l->group = group;
    l->w = NULL;
    return TM_OK;
}

/* "<prefix>.weight" [in][out], or its int4 form when "<prefix>.qweight" exists, and,
 * when has_bias, "<prefix>.bias" [out]. */
static tm_status bind_linear(const tm_weights *w, const char *prefix, int64_t in, int64_t out, int has_bias,
                             int32_t group, tmi_linear *l)
{
    char name[256];
    tm_tensor_info probe;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    tm_status s;
    if (tm_weights_find(w, name, &probe) == TM_OK)
        s = bind_int4(w, prefix, in, out, group, l);
    else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        l->qweight = NULL;
        s = bind(w, name, 2, in, out, &l->w, &l->dtype);
    }
    if (s) return s;
    l->in = in;
    l->out = out;
    l->bias = NULL;
    if (!has_bias) return TM_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return bind(w, name, 1, out, 0, &l->bias, &l->bias_dtype);
}

static tm_status bind_layer(tm_model *m, int i)
{
    const tm_model_params *p = &m->p;
    const tm_weights *w = m->weights;
    tmi_layer *L = &m->layers[i];
    int64_t hd = p->size_per_head;
    int64_t q = (int64_t)p->head_num * hd, kv = (int64_t)p->kv_head_num * hd;
    char name[256];
    tm_status s;

    snprintf(name, sizeof name, "layers.%d.attention_norm.weight", i);
    if ((s = bind_vec(w, name, p->hidden_size, &L->attn_norm))) return s;
    snprintf(name, sizeof name, "layers.%d.attention.w_qkv.0", i);
    if ((s = bind_linear(w, name, p->hidden_size, q + 2 * kv, p->attn_bias, p->group_size, &L->qkv))) return s;
    snprintf(name, sizeof name, "layers.%d.attention.wo.0", i);
    if ((s = bind_linear(w, name, q, p->hidden_size, p->attn_out_bias, p->group_size, &L->wo))) return s;
    snprintf(name, sizeof name, "layers.%d.ffn_norm.weight", i);
    if ((s = bind_vec(w, name, p->hidden_size, &L->ffn_norm))) return s;
    snprintf(name, sizeof name, "layers.%d.feed_forward.w1.0", i);
    if ((s = bind_linear(w, name, p->hidden_size, p->inter_size, 0, p->group_size, &L->w1))) return s;
    snprintf(name, sizeof name, "layers.%d.feed_forward.w3.0", i);
    if ((s = bind_linear(w, name, p->hidden_size, p->inter_size, 0, p->group_size, &L->w3))) return s;
    snprintf(name, sizeof name, "layers.%d.feed_forward.w2.0", i);
    if ((s = bind_linear(w, name, p->inter_size, p->hidden_size, 0, p->group_size, &L->w2))) return s;
    m->n_params += L->qkv.in * L->qkv.out + L->wo.in * L->wo.out + 3 * L->w1.in * L->w1.out + 2 * p->hidden_size;
    return TM_OK;
}

tm_status tmi_model_new(const tm_model_params *params, tm_model **out)
{
    tm_status s = check_params(params);
    if (s) return s;
    const tmi_ops *ops = tmi_ops_get(params->backend);
    if (!ops || !ops->gemm || !ops->attention || !ops->rope || !ops->kv_write || !ops->embedding)
        return tmi_fail(TM_ERR_UNSUPPORTED, "backend %s: the full forward pass is not available in this build",
                        params->backend == TM_BACKEND_CUDA ? "cuda" : "cpu");
    tm_model *m = calloc(1, sizeof *m);
    if (!m) return tmi_fail(TM_ERR_NOMEM, "tm_model_create: out of memory");
    m->p = *params;
    m->ops = ops;
    m->layers = calloc((size_t)params->num_layer, sizeof *m->layers);
    if (!m->layers) {
        tm_model_destroy(m);
        return tmi_fail(TM_ERR_NOMEM, "tm_model_create: out of memory");
    }
    *out = m;
    return TM_OK;
}

tm_status tm_model_create(const tm_model_params *params, const tm_weights *weights, tm_model **out)
{
    if (!params || !weights || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_model_create: NULL argument");
    tm_model *m;
    tm_status s = tmi_model_new(params, &m);
    if (s) return s;
    m->weights = weights;
    if ((s = bind(weights, "tok_embeddings.weight", 2, params->vocab_size, params->hidden_size, &m->embed.data,
                  &m->embed.dtype)))
        goto err;
    if ((s = bind_vec(weights, "norm.weight", params->hidden_size, &m->norm))) goto err;
    if ((s = bind_linear(weights, "output", params->hidden_size, params->vocab_size, 0, params->group_size, &m->output))) goto err;
    m->n_params = 2 * (int64_t)params->vocab_size * params->hidden_size + params->hidden_size;
    for (int i = 0; i < params->num_layer; i++)
        if ((s = bind_layer(m, i))) goto err;
    if ((s = tmi_model_bind_kv(m))) goto err;
    if (params->backend == TM_BACKEND_CUDA && (s = tmi_model_upload(m))) goto err;
    *out = m;
    return TM_OK;
err:
    tm_model_destroy(m);
    return s;
}

void tm_model_destroy(tm_model *model)
{
    if (!model) return;
    tmi_model_free_device(model);
    for (int32_t i = 0; i < model->n_owned; i++) free(model->owned[i]);
    free(model->owned);
    free(model->layers);
    free(model->kv_static);
    free(model);
}

static int64_t linear_bytes(const tmi_linear *l)
{
    int64_t b = l->bias ? l->out * (int64_t)tm_dtype_size(l->bias_dtype) : 0;
    if (l->qweight) return b + l->in / 8 * l->out * 4 + l->in / l->group * l->out * 4;
    return b + (l->w ? l->in * l->out * (int64_t)tm_dtype_size(l->dtype) : 0);
}

int64_t tm_model_weight_bytes(const tm_model *model)
{
    if (!model) return 0;
    const tm_model_params *p = &model->p;
    int64_t vec = p->hidden_size * (int64_t)tm_dtype_size(model->norm.dtype);
    int64_t b = (int64_t)p->vocab_size * p->hidden_size * (int64_t)tm_dtype_size(model->embed.dtype) + vec +
                linear_bytes(&model->output);
    for (int32_t i = 0; i < p->num_layer; i++) {
        const tmi_layer *L = &model->layers[i];
        b += 2 * vec + linear_bytes(&L->qkv) + linear_bytes(&L->wo) + linear_bytes(&L->w2);
        b += L->w13.w ? linear_bytes(&L->w13) : linear_bytes(&L->w1) + linear_bytes(&L->w3);
    }
    return b;
}

int64_t tm_model_param_count(const tm_model *model) { return model ? model->n_params : 0; }

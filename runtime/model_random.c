/* model_random.c - tm_model_create_random: a model of a given shape whose weights
 * are made in place (host buffers on the CPU, device buffers on CUDA), for
 * benchmarks that need no checkpoint.  Each tensor t of the model gets seed
 * (seed, t) and the counter noise of random_fill.h, so the CPU and CUDA models of
 * one seed hold the same numbers; the CUDA model's fused gate/up matrix is filled
 * as its two halves would be, row by row. */
#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "model.h"
#include "random_fill.h"
#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"
#endif

typedef struct maker {
    tm_model *m;
    tm_dtype dtype;
    uint64_t seed;
    uint64_t next; /* tensor counter: the per-tensor seed */
} maker;

static tm_status own_host(tm_model *m, void *p)
{
    if (m->n_owned == m->cap_owned) {
        int32_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **grown = realloc(m->owned, (size_t)cap * sizeof *grown);
        if (!grown) return tmi_fail(TM_ERR_NOMEM, "random model: out of memory");
        m->owned = grown;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return TM_OK;
}

static tm_status alloc_tensor(maker *k, size_t bytes, void **out)
{
    if (k->m->p.backend == TM_BACKEND_CUDA) {
        tm_status s = tmi_dev_alloc(out, bytes);
        if (s) return s;
        return tmi_model_own_device(k->m, *out);
    }
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return tmi_fail(TM_ERR_NOMEM, "random model: out of memory for %zu bytes", bytes);
    return own_host(k->m, *out);
}

/* A rows x cols block of dst (leading dimension ld) from the next tensor seed. */
static tm_status fill(maker *k, void *dst, int64_t rows, int64_t cols, int64_t ld, float scale, float offset)
{
    uint64_t seed = k->seed * 1000003ull + k->next++;
    if (k->m->p.backend == TM_BACKEND_CUDA) {
#ifdef TMRUN_HAVE_CUDA
        return tmi_cuda_fill_random(dst, k->dtype, rows, cols, ld, seed, scale, offset);
#else
        return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
#endif
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            tmi_store_f32(dst, k->dtype, r * ld + c, offset + scale * tmi_random_unit(seed, (uint64_t)(r * cols + c)));
    return TM_OK;
}

static tm_status make_vec(maker *k, tmi_vec *v, int64_t n)
{
    void *d;
    tm_status s = alloc_tensor(k, (size_t)n * tm_dtype_size(k->dtype), &d);
    if (s || (s = fill(k, d, 1, n, n, 0.0f, 1.0f))) return s;
    v->data = d;
    v->dtype = k->dtype;
    return TM_OK;
}

static tm_status make_linear(maker *k, tmi_linear *l, int64_t in, int64_t out)
{
    void *d;
    tm_status s = alloc_tensor(k, (size_t)(in * out) * tm_dtype_size(k->dtype), &d);
    if (s || (s = fill(k, d, in, out, out, 1.0f / sqrtf((float)in), 0.0f))) return s;
    *l = (tmi_linear){.w = d, .dtype = k->dtype, .in = in, .out = out};
    return TM_OK;
}

/* gate and up: two [hidden][inter] linears on the CPU, one fused matrix on CUDA. */
static tm_status make_gate_up(maker *k, tmi_layer *L, int64_t hidden, int64_t inter)
{
    if (k->m->p.backend != TM_BACKEND_CUDA) {
        tm_status s = make_linear(k, &L->w1, hidden, inter);
        return s ? s : make_linear(k, &L->w3, hidden, inter);
    }
    void *d;
    size_t es = tm_dtype_size(k->dtype);
    tm_status s = alloc_tensor(k, (size_t)(hidden * 2 * inter) * es, &d);
    float scale = 1.0f / sqrtf((float)hidden);
    if (s || (s = fill(k, d, hidden, inter, 2 * inter, scale, 0.0f)) ||
        (s = fill(k, (char *)d + (size_t)inter * es, hidden, inter, 2 * inter, scale, 0.0f)))
        return s;
    L->w13 = (tmi_linear){.w = d, .dtype = k->dtype, .in = hidden, .out = 2 * inter};
    L->w1 = (tmi_linear){.dtype = k->dtype, .in = hidden, .out = inter};
    L->w3 = L->w1;
    return TM_OK;
}

static tm_status make_weights(maker *k)
{
    tm_model *m = k->m;
    const tm_model_params *p = &m->p;
    int64_t hd = p->size_per_head, q = (int64_t)p->head_num * hd, kv = (int64_t)p->kv_head_num * hd;
    void *embed;
    tm_status s = alloc_tensor(k, (size_t)p->vocab_size * p->hidden_size * tm_dtype_size(k->dtype), &embed);
    if (s || (s = fill(k, embed, p->vocab_size, p->hidden_size, p->hidden_size, 1.0f, 0.0f))) return s;
    m->embed = (tmi_vec){.data = embed, .dtype = k->dtype};
    if ((s = make_vec(k, &m->norm, p->hidden_size)) || (s = make_linear(k, &m->output, p->hidden_size, p->vocab_size)))
        return s;
    m->n_params = 2 * (int64_t)p->vocab_size * p->hidden_size + p->hidden_size;
    for (int32_t i = 0; i < p->num_layer; i++) {
        tmi_layer *L = &m->layers[i];
        if ((s = make_vec(k, &L->attn_norm, p->hidden_size)) || (s = make_linear(k, &L->qkv, p->hidden_size, q + 2 * kv)) ||
            (s = make_linear(k, &L->wo, q, p->hidden_size)) || (s = make_vec(k, &L->ffn_norm, p->hidden_size)) ||
            (s = make_gate_up(k, L, p->hidden_size, p->inter_size)) ||
            (s = make_linear(k, &L->w2, p->inter_size, p->hidden_size)))
            return s;
        m->n_params += L->qkv.in * L->qkv.out + L->wo.in * L->wo.out + 3 * L->w1.in * L->w1.out + 2 * p->hidden_size;
    }
    return TM_OK;
}

tm_status tm_model_create_random(const tm_model_params *params, tm_dtype dtype, uint64_t seed, tm_model **out)
{
    if (!params || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_model_create_random: NULL argument");
    if (!tmi_is_float_dtype(dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_model_create_random: dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(dtype));
    if (params->group_size != 0)
        return tmi_fail(TM_ERR_UNSUPPORTED, "tm_model_create_random: int4 weights (group_size %d) are not made",
                        params->group_size);
    if (params->attn_bias || params->attn_out_bias)
        return tmi_fail(TM_ERR_UNSUPPORTED, "tm_model_create_random: biases are not made (attn_bias 0 only)");
    tm_model *m;
    tm_status s = tmi_model_new(params, &m);
    if (s) return s;
    maker k = {.m = m, .dtype = dtype, .seed = seed};
    if (params->backend == TM_BACKEND_CUDA && (s = tmi_model_check_device(m))) goto err;
    if ((s = make_weights(&k)) || (s = tmi_model_bind_kv(m))) goto err;
    if (params->backend == TM_BACKEND_CUDA && (s = tmi_model_upload_kv(m))) goto err;
    if (params->backend == TM_BACKEND_CUDA && (s = tmi_dev_sync())) goto err;
    *out = m;
    return TM_OK;
err:
    tm_model_destroy(m);
    return s;
}

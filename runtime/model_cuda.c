/* model_cuda.c - the CUDA backend's memory for a model and its forward buffers:
 * weights uploaded once at model create, activations and scratch in device memory,
 * and the few host arrays the forward computes (token ids, positions, RoPE
 * frequencies) copied over per step.  Without CUDA these report TM_ERR_UNSUPPORTED. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"

static size_t dtype_bytes(tm_dtype d) { return tm_dtype_size(d); }

tm_status tmi_model_own_device(tm_model *m, void *dev)
{
    if (m->n_dev == m->cap_dev) {
        int32_t cap = m->cap_dev ? m->cap_dev * 2 : 64;
        void **grown = realloc(m->dev, (size_t)cap * sizeof *grown);
        if (!grown) {
            tmi_cuda_free(dev);
            return tmi_fail(TM_ERR_NOMEM, "model upload: out of memory");
        }
        m->dev = grown;
        m->cap_dev = cap;
    }
    m->dev[m->n_dev++] = dev;
    return TM_OK;
}

/* Copies n bytes of host data to a new device allocation recorded in the model. */
static tm_status upload(tm_model *m, const void **ptr, size_t bytes)
{
    if (!*ptr || bytes == 0) return TM_OK;
    void *d = NULL;
    tm_status s = tmi_cuda_malloc(&d, bytes);
    if (s || (s = tmi_model_own_device(m, d))) return s;
    if ((s = tmi_cuda_memcpy(d, *ptr, bytes, 0))) return s;
    *ptr = d;
    return TM_OK;
}

static tm_status upload_vec(tm_model *m, tmi_vec *v, int64_t n)
{
    return upload(m, &v->data, (size_t)n * dtype_bytes(v->dtype));
}

static tm_status upload_linear(tm_model *m, tmi_linear *l)
{
    if (l->qweight) return tmi_fail(TM_ERR_UNSUPPORTED, "the CUDA backend has no int4 (W4A16) GEMM yet");
    tm_status s = upload(m, &l->w, (size_t)(l->in * l->out) * dtype_bytes(l->dtype));
    if (s) return s;
    return upload(m, &l->bias, (size_t)l->out * dtype_bytes(l->bias_dtype));
}

/* gate (w1) and up (w3) side by side in one [in][2 out] device matrix: one GEMM
 * computes both.  Only float weights of one dtype and no bias (Llama's FFN). */
static tm_status upload_gate_up(tm_model *m, tmi_layer *L)
{
    const tmi_linear *g = &L->w1, *u = &L->w3;
    if (g->qweight || u->qweight || g->dtype != u->dtype || g->bias || u->bias) {
        tm_status s = upload_linear(m, &L->w1);
        if (s) return s;
        return upload_linear(m, &L->w3);
    }
    size_t es = dtype_bytes(g->dtype), row = (size_t)g->out * es;
    void *d = NULL;
    tm_status s = tmi_cuda_malloc(&d, (size_t)g->in * 2 * row);
    if (s || (s = tmi_model_own_device(m, d))) return s;
    if ((s = tmi_cuda_memcpy2d(d, 2 * row, g->w, row, row, (size_t)g->in, 0)) ||
        (s = tmi_cuda_memcpy2d((char *)d + row, 2 * row, u->w, row, row, (size_t)u->in, 0)))
        return s;
    L->w13 = (tmi_linear){.w = d, .dtype = g->dtype, .in = g->in, .out = 2 * g->out};
    return TM_OK;
}

tm_status tmi_model_check_device(const tm_model *m)
{
    if (tmi_cuda_device_count() == 0) return tmi_fail(TM_ERR_DEVICE, "backend cuda: no CUDA device is visible");
    return TM_OK;
}

/* The static KV params (host [num_layer][4][kv_head_num]) as a device twin. */
tm_status tmi_model_upload_kv(tm_model *m)
{
    if (!m->kv_static) return TM_OK;
    const void *p = m->kv_static;
    tm_status s = upload(m, &p, (size_t)m->p.num_layer * 4 * m->p.kv_head_num * sizeof(float));
    if (s) return s;
    m->kv_static_dev = (const float *)p;
    return TM_OK;
}

tm_status tmi_model_upload(tm_model *m)
{
    const tm_model_params *p = &m->p;
    tm_status s = tmi_model_check_device(m);
    if (s || (s = tmi_model_upload_kv(m))) return s;
    if ((s = upload(m, &m->embed.data, (size_t)p->vocab_size * p->hidden_size * dtype_bytes(m->embed.dtype))))
        return s;
    if ((s = upload_vec(m, &m->norm, p->hidden_size))) return s;
    if ((s = upload_linear(m, &m->output))) return s;
    for (int32_t i = 0; i < p->num_layer; i++) {
        tmi_layer *L = &m->layers[i];
        if ((s = upload_vec(m, &L->attn_norm, p->hidden_size)) || (s = upload_linear(m, &L->qkv)) ||
            (s = upload_linear(m, &L->wo)) || (s = upload_vec(m, &L->ffn_norm, p->hidden_size)) ||
            (s = upload_gate_up(m, L)) || (s = upload_linear(m, &L->w2)))
            return s;
    }
    return TM_OK;
}

void tmi_model_free_device(tm_model *m)
{
    for (int32_t i = 0; i < m->n_dev; i++) tmi_cuda_free(m->dev[i]);
    free(m->dev);
    m->dev = NULL;
    m->n_dev = m->cap_dev = 0;
}

tm_status tmi_dev_alloc(void **ptr, size_t bytes) { return tmi_cuda_malloc(ptr, bytes); }
tm_status tmi_dev_sync(void) { return tmi_cuda_sync(); }
double tmi_dev_mem_free(void) { return (double)tmi_cuda_mem_free(); }
void tmi_dev_free(void *ptr) { tmi_cuda_free(ptr); }
tm_status tmi_dev_copy(void *dst, const void *src, size_t bytes, int kind) { return tmi_cuda_memcpy(dst, src, bytes, kind); }
tm_status tmi_dev_blas_create(void **blas) { return tmi_gemm_cuda_blas_create(blas); }
void tmi_dev_blas_destroy(void *blas) { tmi_gemm_cuda_blas_destroy(blas); }
#else
tm_status tmi_model_check_device(const tm_model *m)
{
    (void)m;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend (nvcc was not found)");
}
tm_status tmi_model_own_device(tm_model *m, void *dev)
{
    (void)m, (void)dev;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
tm_status tmi_dev_sync(void) { return TM_OK; }
tm_status tmi_model_upload_kv(tm_model *m)
{
    (void)m;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
tm_status tmi_model_upload(tm_model *m)
{
    (void)m;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend (nvcc was not found)");
}
void tmi_model_free_device(tm_model *m) { (void)m; }
tm_status tmi_dev_alloc(void **ptr, size_t bytes)
{
    (void)ptr;
    (void)bytes;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
void tmi_dev_free(void *ptr) { (void)ptr; }
double tmi_dev_mem_free(void) { return 0; }
tm_status tmi_dev_copy(void *dst, const void *src, size_t bytes, int kind)
{
    (void)dst, (void)src, (void)bytes, (void)kind;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
tm_status tmi_dev_blas_create(void **blas)
{
    (void)blas;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
void tmi_dev_blas_destroy(void *blas) { (void)blas; }
#endif

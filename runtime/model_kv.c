/* model_kv.c - the model's KV cache kind and its static quantization parameters.
 *
 * Static parameters are TurboMind's `layers.{L}.past_kv_scale.0.weight`:
 * [k_scale, k_zp, v_scale, v_zp] for INT8 (scale = range / 255), shape [4] (one
 * set per layer, as TurboMind stores it) or [4][kv_head_num] (one per kv head,
 * what scripts/kv_qparams.lua writes).  The same file serves an INT4 cache: the
 * zero point is the range's centre in both widths, so the INT4 scale is the
 * INT8 one times 255 / 15 (docs/QUANTIZATION.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "kernels/attention/attention.h"
#include "model.h"

static tm_status find_layer_params(const tm_model *m, int32_t l, tm_tensor_info *t, int *found)
{
    char name[96];
    snprintf(name, sizeof name, "layers.%d.past_kv_scale.0.weight", l);
    *found = tm_weights_find(m->weights, name, t) == TM_OK;
    if (!*found) return TM_OK;
    int32_t h = m->p.kv_head_num;
    int per_layer = t->ndim == 1 && t->shape[0] == 4;
    int per_head = t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == h;
    if (!tmi_is_float_dtype(t->dtype) || (!per_layer && !per_head))
        return tmi_fail(TM_ERR_FORMAT, "tensor %s: want F32/F16/BF16 [4] or [4][%d] (k_scale, k_zp, v_scale, v_zp), "
                        "got %s with %d dims", name, h, tm_dtype_name(t->dtype), t->ndim);
    return TM_OK;
}

/* Copies layer l's params into dst[4][kv_head_num], scaled for the cache width. */
static tm_status load_layer_params(const tm_model *m, int32_t l, const tm_tensor_info *t, float *dst)
{
    int32_t h = m->p.kv_head_num;
    float widen = m->kv_dtype == TMI_KV_INT4 ? 255.0f / 15.0f : 1.0f;
    for (int32_t r = 0; r < 4; r++)
        for (int32_t g = 0; g < h; g++) {
            float x = tmi_load_f32(t->data, t->dtype, t->ndim == 1 ? r : (int64_t)r * h + g);
            int is_scale = r % 2 == 0;
            if (!isfinite(x) || (is_scale && x < 0.0f))
                return tmi_fail(TM_ERR_FORMAT, "tensor layers.%d.past_kv_scale.0.weight: %s of kv head %d must be "
                                "finite%s, got %g", l, (const char *[]){"k_scale", "k_zp", "v_scale", "v_zp"}[r], g,
                                is_scale ? " and >= 0" : "", x);
            dst[r * h + g] = is_scale ? x * widen : x;
        }
    return TM_OK;
}

tm_status tmi_model_bind_kv(tm_model *m)
{
    const tm_model_params *p = &m->p;
    m->kv_static = NULL;
    /* the float kind: fp32 on the CPU; on CUDA fp16 for 16-bit weights (half the
       bytes a decode step reads, as LMDeploy keeps it), fp32 for fp32 weights */
    tm_dtype fp = p->backend == TM_BACKEND_CUDA && m->embed.dtype != TM_F32 ? TM_F16 : TM_F32;
    m->kv_dtype = p->kv_dtype == TM_KV_INT8 ? TM_I8 : p->kv_dtype == TM_KV_INT4 ? TMI_KV_INT4 : fp;
    if (p->kv_dtype == TM_KV_FP || p->kv_qparams == TM_KV_QPARAMS_ONLINE) return TM_OK;

    int32_t n_found = 0, first_missing = -1;
    tm_tensor_info t;
    for (int32_t l = 0; l < p->num_layer; l++) {
        int found;
        tm_status s = find_layer_params(m, l, &t, &found);
        if (s) return s;
        if (found) n_found++;
        else if (first_missing < 0) first_missing = l;
    }
    if (n_found == 0 && p->kv_qparams == TM_KV_QPARAMS_AUTO) return TM_OK;
    if (first_missing >= 0)
        return tmi_fail(TM_ERR_FORMAT,
                        "static KV params: missing tensor layers.%d.past_kv_scale.0.weight (%d of %d layers have "
                        "one; run kv_qparams.lua, or use online params)",
                        first_missing, n_found, p->num_layer);
    size_t per_layer = 4 * (size_t)p->kv_head_num;
    m->kv_static = malloc((size_t)p->num_layer * per_layer * sizeof(float));
    if (!m->kv_static) return tmi_fail(TM_ERR_NOMEM, "static KV params: out of memory");
    for (int32_t l = 0; l < p->num_layer; l++) {
        int found;
        tm_status s = find_layer_params(m, l, &t, &found);
        if (!s) s = load_layer_params(m, l, &t, m->kv_static + l * per_layer);
        if (s) {
            free(m->kv_static);
            m->kv_static = NULL;
            return s;
        }
    }
    return TM_OK;
}

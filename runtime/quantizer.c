/* quantizer.c - tm_quantizer: calibration observers over the fp forward pass.
 *
 * The quantizer runs its own single-sequence forward (a private fp KV cache, like
 * tm_context) with the observer hooks of model.h set.  Per layer it keeps, for the
 * input of each linear site (attention input, o, ffn input, down): per-channel min,
 * max, sum, |x| sum and |x| max, and the Gram matrix X^T X over every token that
 * the AWQ searches need (quantizer_awq.c); for K and V (after RoPE) per head and
 * dim min, max and |x| max.  Nothing is sampled: the statistics cover all tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "weights.h"

enum { N_LINEAR_SITES = 4, QUANT_CHUNK = 512, QUANT_BLOCK = 64 };

static const char *const SITE_NAMES[TMI_OBS_SITES] = {"attn_in", "o_in", "ffn_in", "down_in", "k", "v"};

typedef struct site_stats {
    int64_t cols;
    float *min, *max, *absmax; /* [cols] */
    double *sum, *abssum;      /* [cols]; linear sites only */
    float *gram;               /* [cols][cols] X^T X; linear sites only */
} site_stats;

struct tm_quantizer {
    tm_model *model;
    tm_quantizer_params p;
    tmi_fwd_buffers fb;
    tmi_kv_cache cache;
    void *kv;               /* the private cache, fp */
    int32_t *block_table;   /* [n_blocks] 0 .. n_blocks-1 */
    tmi_observer obs;
    site_stats *stats;      /* [num_layer][TMI_OBS_SITES] */
    float *xt;              /* [max_cols][QUANT_CHUNK] transposed rows of one observation */
    void *gemm_ws;
    size_t gemm_bytes;
    int64_t tokens;
    tm_status failed;       /* the first failure inside an observer call */
};

tm_quantizer_params tm_quantizer_default_params(void)
{
    tm_quantizer_params p = {0};
    p.max_seq_len = 2048;
    return p;
}

static int64_t site_cols(const tm_model_params *p, int site)
{
    int64_t q = (int64_t)p->head_num * p->size_per_head, kv = (int64_t)p->kv_head_num * p->size_per_head;
    switch (site) {
    case TMI_OBS_ATTN_IN:
    case TMI_OBS_FFN_IN: return p->hidden_size;
    case TMI_OBS_O_IN: return q;
    case TMI_OBS_DOWN_IN: return p->inter_size;
    default: return kv;
    }
}

static tm_status stats_init(site_stats *s, int64_t cols, int linear)
{
    s->cols = cols;
    s->min = malloc((size_t)cols * sizeof(float));
    s->max = malloc((size_t)cols * sizeof(float));
    s->absmax = calloc((size_t)cols, sizeof(float));
    if (!s->min || !s->max || !s->absmax) return TM_ERR_NOMEM;
    for (int64_t c = 0; c < cols; c++) {
        s->min[c] = INFINITY;
        s->max[c] = -INFINITY;
    }
    if (!linear) return TM_OK;
    s->sum = calloc((size_t)cols, sizeof(double));
    s->abssum = calloc((size_t)cols, sizeof(double));
    s->gram = calloc((size_t)(cols * cols), sizeof(float));
    return s->sum && s->abssum && s->gram ? TM_OK : TM_ERR_NOMEM;
}

static void stats_free(site_stats *s)
{
    free(s->min);
    free(s->max);
    free(s->absmax);
    free(s->sum);
    free(s->abssum);
    free(s->gram);
}

/* G += X^T X for rows x cols of x (ld apart), through the CPU GEMM on the forward's pool. */
static tm_status add_gram(tm_quantizer *q, site_stats *s, const float *x, int64_t ld, int64_t rows)
{
    int64_t cols = s->cols;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) q->xt[c * rows + r] = x[r * ld + c];
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = q->fb.pool, .workspace = q->gemm_ws,
                   .workspace_bytes = q->gemm_bytes};
    tmi_gemm_args g = {
        .m = cols, .n = cols, .k = rows, .a = q->xt, .lda = rows, .b = x, .b_dtype = TM_F32, .ldb = ld,
        .c = s->gram, .ldc = cols, .accumulate = 1,
    };
    return tmi_gemm_cpu(&ex, &g);
}

static void on_activation(void *ctx, int32_t layer, tmi_obs_site site, const float *x, int64_t ld, int64_t rows,
                          int64_t cols)
{
    tm_quantizer *q = ctx;
    if (q->failed) return;
    site_stats *s = &q->stats[(int64_t)layer * TMI_OBS_SITES + site];
    if (cols != s->cols || rows > QUANT_CHUNK) {
        q->failed = tmi_fail(TM_ERR_INTERNAL, "observer: layer %d site %s got %lld x %lld, want <= %d x %lld", layer,
                             SITE_NAMES[site], (long long)rows, (long long)cols, QUANT_CHUNK, (long long)s->cols);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * ld;
        for (int64_t c = 0; c < cols; c++) {
            float v = row[c], a = fabsf(v);
            if (v < s->min[c]) s->min[c] = v;
            if (v > s->max[c]) s->max[c] = v;
            if (a > s->absmax[c]) s->absmax[c] = a;
            if (s->sum) {
                s->sum[c] += v;
                s->abssum[c] += a;
            }
        }
    }
    if (s->gram) {
        tm_status st = add_gram(q, s, x, ld, rows);
        if (st) q->failed = st;
    }
}

static tm_status alloc_state(tm_quantizer *q)
{
    const tm_model_params *mp = &q->model->p;
    int64_t n_sites = (int64_t)mp->num_layer * TMI_OBS_SITES, max_cols = 0;
    q->stats = calloc((size_t)n_sites, sizeof *q->stats);
    if (!q->stats) return TM_ERR_NOMEM;
    for (int64_t i = 0; i < n_sites; i++) {
        int site = (int)(i % TMI_OBS_SITES);
        int64_t cols = site_cols(mp, site);
        if (cols > max_cols) max_cols = cols;
        if (stats_init(&q->stats[i], cols, site < N_LINEAR_SITES)) return TM_ERR_NOMEM;
    }
    q->xt = malloc((size_t)(max_cols * QUANT_CHUNK) * sizeof(float));
    q->gemm_bytes = tmi_gemm_cpu_workspace(max_cols, max_cols, QUANT_CHUNK, tmi_pool_threads(q->fb.pool));
    q->gemm_ws = aligned_alloc(64, (q->gemm_bytes + 63) / 64 * 64 + 64);
    int32_t n_blocks = (q->p.max_seq_len + QUANT_BLOCK - 1) / QUANT_BLOCK;
    q->block_table = malloc((size_t)n_blocks * sizeof(int32_t));
    q->kv = malloc((size_t)n_blocks * (size_t)tmi_model_kv_block_bytes(q->model, QUANT_BLOCK));
    if (!q->xt || !q->gemm_ws || !q->block_table || !q->kv) return TM_ERR_NOMEM;
    for (int32_t i = 0; i < n_blocks; i++) q->block_table[i] = i;
    q->cache = tmi_model_kv_layout(q->model, QUANT_BLOCK);
    q->cache.base = q->kv;
    return TM_OK;
}

tm_status tm_quantizer_create(tm_model *model, const tm_quantizer_params *params, tm_quantizer **out)
{
    if (!model || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_quantizer_create: NULL argument");
    tm_quantizer_params p = params ? *params : tm_quantizer_default_params();
    if (p.max_seq_len < 1 || p.max_seq_len > (1 << 20))
        return tmi_fail(TM_ERR_INVALID_ARG, "max_seq_len must be in [1, 1048576], got %d", p.max_seq_len);
    if (model->p.backend != TM_BACKEND_CPU)
        return tmi_fail(TM_ERR_UNSUPPORTED, "tm_quantizer runs on the cpu backend");
    if (model->kv_dtype != TM_F32)
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_quantizer: calibrate on a float KV cache (kv_dtype fp)");
    tm_quantizer *q = calloc(1, sizeof *q);
    if (!q) return tmi_fail(TM_ERR_NOMEM, "tm_quantizer_create: out of memory");
    q->model = model;
    q->p = p;
    int32_t chunk = p.max_seq_len < QUANT_CHUNK ? p.max_seq_len : QUANT_CHUNK;
    tm_status s = tmi_fwd_buffers_init(&q->fb, model, chunk, p.max_seq_len, chunk);
    if (s) {
        free(q);
        return s;
    }
    if (alloc_state(q)) {
        tm_quantizer_destroy(q);
        return tmi_fail(TM_ERR_NOMEM, "tm_quantizer_create: out of memory for the statistics");
    }
    q->obs.fn = on_activation;
    q->obs.ctx = q;
    q->fb.observer = &q->obs;
    *out = q;
    return TM_OK;
}

void tm_quantizer_destroy(tm_quantizer *q)
{
    if (!q) return;
    if (q->stats)
        for (int64_t i = 0; i < (int64_t)q->model->p.num_layer * TMI_OBS_SITES; i++) stats_free(&q->stats[i]);
    free(q->stats);
    free(q->xt);
    free(q->gemm_ws);
    free(q->block_table);
    free(q->kv);
    tmi_fwd_buffers_free(&q->fb);
    free(q);
}

tm_status tm_quantizer_observe(tm_quantizer *q, const int32_t *tokens, int32_t n)
{
    if (!q || !tokens) return tmi_fail(TM_ERR_INVALID_ARG, "tm_quantizer_observe: NULL argument");
    if (q->failed) return tmi_fail(q->failed, "tm_quantizer: an earlier observation failed");
    if (n < 1 || n > q->p.max_seq_len)
        return tmi_fail(TM_ERR_INVALID_ARG, "a calibration sample must have [1, %d] tokens, got %d", q->p.max_seq_len,
                        n);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= q->model->p.vocab_size)
            return tmi_fail(TM_ERR_INVALID_ARG, "token %d at index %d is outside the vocabulary [0, %d)", tokens[i], i,
                            q->model->p.vocab_size);
    for (int32_t done = 0; done < n;) {
        int32_t chunk = n - done < q->fb.cap_tok ? n - done : q->fb.cap_tok;
        tmi_attn_seq seq = {.q_start = 0, .q_len = chunk, .kv_len = done + chunk, .block_table = q->block_table};
        tmi_batch b = {.n_tok = chunk, .tokens = tokens + done, .n_seq = 1, .seqs = &seq};
        tm_status s = tmi_forward(q->model, &q->fb, &b, q->cache);
        if (!s && q->failed) s = q->failed;
        if (s) {
            q->failed = s;
            return s;
        }
        done += chunk;
    }
    q->tokens += n;
    return TM_OK;
}

int64_t tm_quantizer_tokens(const tm_quantizer *q) { return q ? q->tokens : 0; }

static tm_status add_f32(tm_weights *dst, const char *name, int32_t ndim, const int64_t *shape, const float *data)
{
    return tm_weights_add(dst, name, TM_F32, ndim, shape, data);
}

/* One site's tensors: min, max, absmax, and for linear sites mean, absmean and gram. */
static tm_status export_site(const tm_quantizer *q, tm_weights *dst, int32_t layer, int site, float *tmp)
{
    const site_stats *s = &q->stats[(int64_t)layer * TMI_OBS_SITES + site];
    const tm_model_params *mp = &q->model->p;
    int is_kv = site >= N_LINEAR_SITES;
    int64_t shape[2] = {s->cols, s->cols};
    int64_t kv_shape[2] = {mp->kv_head_num, mp->size_per_head}; /* K/V: [kv_head][head_dim] */
    int32_t ndim = is_kv ? 2 : 1;
    const int64_t *vshape = is_kv ? kv_shape : shape;
    char name[128];
    tm_status st;
#define ADD(suffix, nd, shp, data)                                                                                   \
    do {                                                                                                           \
        snprintf(name, sizeof name, "layers.%d.%s.%s", layer, SITE_NAMES[site], suffix);                           \
        if ((st = add_f32(dst, name, nd, shp, data))) return st;                                                   \
    } while (0)
    ADD("min", ndim, vshape, s->min);
    ADD("max", ndim, vshape, s->max);
    ADD("absmax", ndim, vshape, s->absmax);
    if (is_kv) return TM_OK;
    double n = q->tokens > 0 ? (double)q->tokens : 1.0;
    for (int64_t c = 0; c < s->cols; c++) tmp[c] = (float)(s->sum[c] / n);
    ADD("mean", 1, shape, tmp);
    for (int64_t c = 0; c < s->cols; c++) tmp[c] = (float)(s->abssum[c] / n);
    ADD("absmean", 1, shape, tmp);
    ADD("gram", 2, shape, s->gram);
#undef ADD
    return TM_OK;
}

tm_status tm_quantizer_export(const tm_quantizer *q, tm_weights *dst)
{
    if (!q || !dst) return tmi_fail(TM_ERR_INVALID_ARG, "tm_quantizer_export: NULL argument");
    if (q->tokens == 0) return tmi_fail(TM_ERR_STATE, "tm_quantizer_export: no tokens observed yet");
    int64_t max_cols = 0;
    for (int site = 0; site < TMI_OBS_SITES; site++)
        if (site_cols(&q->model->p, site) > max_cols) max_cols = site_cols(&q->model->p, site);
    float *tmp = malloc((size_t)max_cols * sizeof *tmp);
    if (!tmp) return tmi_fail(TM_ERR_NOMEM, "tm_quantizer_export: out of memory");
    tm_status st = TM_OK;
    for (int32_t l = 0; l < q->model->p.num_layer && !st; l++)
        for (int site = 0; site < TMI_OBS_SITES && !st; site++) st = export_site(q, dst, l, site, tmp);
    free(tmp);
    return st;
}

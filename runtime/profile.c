/* profile.c - see profile.h. */
#define _POSIX_C_SOURCE 200809L
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"
#endif

static const char *const NAMES[TMI_PROF_KINDS] = {
    "stage", "embedding", "rmsnorm", "qkv gemm", "rope", "kv_write", "attention",
    "o gemm", "gate/up gemm", "silu_mul", "down gemm", "logits", "sample",
};

const char *tmi_prof_name(tmi_prof_kind kind) { return kind < TMI_PROF_KINDS ? NAMES[kind] : "?"; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

tm_status tmi_prof_create(int32_t marks_per_step, int on_device, void *stream, tmi_prof **out)
{
    *out = NULL;
    tmi_prof *p = calloc(1, sizeof *p);
    if (!p) return tmi_fail(TM_ERR_NOMEM, "profile: out of memory");
    p->cap = marks_per_step + 1; /* + the begin mark */
    p->on_device = on_device;
    p->stream = stream;
    p->kind = calloc((size_t)p->cap, sizeof *p->kind);
    p->t = calloc((size_t)p->cap, sizeof *p->t);
    p->ev = calloc((size_t)p->cap, sizeof *p->ev);
    if (!p->kind || !p->t || !p->ev) {
        tmi_prof_destroy(p);
        return tmi_fail(TM_ERR_NOMEM, "profile: out of memory");
    }
#ifdef TMRUN_HAVE_CUDA
    for (int32_t i = 0; i < p->cap && on_device; i++) {
        tm_status s = tmi_cuda_event_create(&p->ev[i]);
        if (s) {
            tmi_prof_destroy(p);
            return s;
        }
    }
#else
    if (on_device) {
        tmi_prof_destroy(p);
        return tmi_fail(TM_ERR_UNSUPPORTED, "profile: this build has no CUDA backend");
    }
#endif
    *out = p;
    return TM_OK;
}

void tmi_prof_destroy(tmi_prof *p)
{
    if (!p) return;
#ifdef TMRUN_HAVE_CUDA
    for (int32_t i = 0; i < p->cap && p->ev; i++) tmi_cuda_event_destroy(p->ev[i]);
#endif
    free(p->kind);
    free(p->t);
    free(p->ev);
    free(p);
}

static void record(tmi_prof *p, tmi_prof_kind kind)
{
    if (p->n >= p->cap) return; /* more marks than the bound: the rest go uncounted */
    p->kind[p->n] = kind;
#ifdef TMRUN_HAVE_CUDA
    if (p->on_device) {
        tmi_cuda_event_record(p->ev[p->n], p->stream);
        p->n++;
        return;
    }
#endif
    p->t[p->n++] = now_s();
}

void tmi_prof_begin(tmi_prof *p)
{
    if (!p || p->open) return;
    p->open = 1;
    p->n = 0;
    record(p, TMI_PROF_STAGE);
}

void tmi_prof_mark(tmi_prof *p, tmi_prof_kind kind)
{
    if (p && p->open) record(p, kind);
}

tm_status tmi_prof_end(tmi_prof *p)
{
    if (!p || !p->open) return TM_OK;
    p->open = 0;
#ifdef TMRUN_HAVE_CUDA
    if (p->on_device && p->n > 0) {
        tm_status s = tmi_cuda_event_sync(p->ev[p->n - 1]);
        if (s) return s;
        for (int32_t i = 1; i < p->n; i++) {
            double dt = tmi_cuda_event_elapsed(p->ev[i - 1], p->ev[i]);
            p->totals.seconds[p->kind[i]] += dt;
            p->totals.calls[p->kind[i]]++;
        }
        p->totals.steps++;
        return TM_OK;
    }
#endif
    for (int32_t i = 1; i < p->n; i++) {
        p->totals.seconds[p->kind[i]] += p->t[i] - p->t[i - 1];
        p->totals.calls[p->kind[i]]++;
    }
    p->totals.steps++;
    return TM_OK;
}

int32_t tmi_prof_format(const tmi_prof_totals *t, char *buf, int32_t cap)
{
    double total = 0;
    for (int k = 0; k < TMI_PROF_KINDS; k++) total += t->seconds[k];
    size_t len = 0, room = cap > 0 ? (size_t)cap : 0;
    int w = snprintf(buf, room, "| op | calls | total ms | ms a step | share |\n|---|---|---|---|---|\n");
    len += (size_t)(w > 0 ? w : 0);
    for (int k = 0; k < TMI_PROF_KINDS; k++) {
        if (t->calls[k] == 0) continue;
        w = snprintf(len < room ? buf + len : NULL, len < room ? room - len : 0, "| %s | %lld | %.3f | %.4f | %.1f%% |\n",
                     NAMES[k], (long long)t->calls[k], t->seconds[k] * 1e3,
                     t->steps ? t->seconds[k] * 1e3 / (double)t->steps : 0.0,
                     total > 0 ? 100.0 * t->seconds[k] / total : 0.0);
        len += (size_t)(w > 0 ? w : 0);
    }
    w = snprintf(len < room ? buf + len : NULL, len < room ? room - len : 0, "| all | %lld steps | %.3f | %.4f | 100%% |\n",
                 (long long)t->steps, total * 1e3, t->steps ? total * 1e3 / (double)t->steps : 0.0);
    len += (size_t)(w > 0 ? w : 0);
    return (int32_t)len;
}

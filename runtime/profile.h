/* profile.h - per-op time of the forward pass (and the engine's device sampling),
 * for finding where a step goes; off unless a runner asks for it.
 *
 * A step is a sequence of marks: tmi_prof_begin at its start, tmi_prof_mark(kind)
 * after each op, tmi_prof_end when the step's work is complete.  The time between
 * one mark and the previous is the op's.  On the CPU the ops are synchronous, so
 * a mark is a clock read; on CUDA it is an event recorded on the runner's stream
 * and tmi_prof_end waits for the last one and adds the elapsed times up, which
 * costs a sync a step: profile numbers are for breakdowns, not for throughput. */
#ifndef TMI_PROFILE_H
#define TMI_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "tmrun.h"

typedef enum tmi_prof_kind {
    TMI_PROF_STAGE = 0, /* host work and copies before the first op */
    TMI_PROF_EMBED,
    TMI_PROF_NORM,
    TMI_PROF_QKV,
    TMI_PROF_ROPE,
    TMI_PROF_KV_WRITE,
    TMI_PROF_ATTENTION,
    TMI_PROF_O,
    TMI_PROF_GATE_UP,
    TMI_PROF_SILU,
    TMI_PROF_DOWN,
    TMI_PROF_LOGITS,
    TMI_PROF_SAMPLE,
    TMI_PROF_KINDS
} tmi_prof_kind;

typedef struct tmi_prof_totals {
    double seconds[TMI_PROF_KINDS];
    int64_t calls[TMI_PROF_KINDS];
    int64_t steps;
} tmi_prof_totals;

typedef struct tmi_prof {
    tmi_prof_totals totals;
    int on_device;
    void *stream;
    int32_t cap, n;        /* marks of the open step */
    tmi_prof_kind *kind;   /* [cap] */
    double *t;             /* [cap] CPU clock */
    void **ev;             /* [cap] CUDA events */
    int open;
} tmi_prof;

/* marks_per_step: an upper bound of the marks of one step.  on_device: events on stream. */
tm_status tmi_prof_create(int32_t marks_per_step, int on_device, void *stream, tmi_prof **out);
void tmi_prof_destroy(tmi_prof *p);
/* No-ops for p == NULL, so call sites need no test. */
void tmi_prof_begin(tmi_prof *p);
void tmi_prof_mark(tmi_prof *p, tmi_prof_kind kind);
tm_status tmi_prof_end(tmi_prof *p);

const char *tmi_prof_name(tmi_prof_kind kind);
/* A table of t (one line per op with calls, total ms, ms a step and share) into
 * buf; returns the bytes it needs (snprintf's rule). */
int32_t tmi_prof_format(const tmi_prof_totals *t, char *buf, int32_t cap);

#endif

/* engine_seq.h - sequence, queue and session helpers of engine_step.c, used by
 * engine_sched.c.  Engine thread only. */
#ifndef TMI_ENGINE_SEQ_H
#define TMI_ENGINE_SEQ_H

#include "engine.h"

tmi_seq *tmi_seq_new(int32_t cap_tokens);
void tmi_seq_free(tm_engine *e, tmi_seq *s);
void tmi_seq_release_blocks(tm_engine *e, tmi_seq *s);
int tmi_seq_reserve_tokens(tmi_seq *s, int32_t n);
int tmi_seq_reserve_blocks(tmi_seq *s, int32_t n);
int tmi_seq_grow_blocks(tm_engine *e, tmi_seq *s, int32_t n_tokens);
int tmi_seq_start_request(tm_engine *e, tmi_seq *s, tm_request *r, int32_t sample);
int tmi_waiting_push(tm_engine *e, tmi_seq *s, int front);
tmi_seq *tmi_waiting_pop(tm_engine *e);
void tmi_running_remove(tm_engine *e, int32_t i);
void tmi_lru_remove(tm_engine *e, tmi_seq *s);

#endif

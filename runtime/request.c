/* request.c - a request's event queue: the engine thread pushes, any client thread
 * polls or waits.  One mutex per request, so clients never contend on the engine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "error.h"

void tmi_request_unref(tm_request *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->events);
    free(r->prompt);
    for (int i = 0; i < TMI_MAX_STOP_STRINGS; i++) free(r->stop_strings[i]);
    free(r->bias_ids);
    free(r->bias_values);
    free(r);
}

/* Appends an event; a FINISH also counts the sample as done.  Engine thread.
 * On allocation failure the oldest TOKEN event is dropped rather than the new
 * one, so FINISH events always get through. */
void tmi_request_push(tm_request *r, const tm_event *ev)
{
    pthread_mutex_lock(&r->mu);
    if (r->n_events == r->cap_events) {
        int32_t cap = r->cap_events ? r->cap_events * 2 : 16;
        tm_event *grown = malloc((size_t)cap * sizeof *grown);
        if (grown) {
            for (int32_t i = 0; i < r->n_events; i++) grown[i] = r->events[(r->head + i) % r->cap_events];
            free(r->events);
            r->events = grown;
            r->cap_events = cap;
            r->head = 0;
        } else if (r->n_events > 0) {
            r->head = (r->head + 1) % r->cap_events;
            r->n_events--;
        }
    }
    if (r->cap_events > 0) {
        tm_event *slot = &r->events[(r->head + r->n_events) % r->cap_events];
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        *slot = *ev;
        slot->time = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
        r->n_events++;
    }
    if (ev->kind == TM_EVENT_FINISH && ++r->finished_samples >= r->params.n) r->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Finishes every sample of a request that never started, with an error. */
void tmi_request_fail(tm_request *r, const char *msg)
{
    snprintf(r->error, sizeof r->error, "%s", msg);
    for (int32_t k = 0; k < r->params.n; k++) {
        tm_event ev = {0};
        ev.kind = TM_EVENT_FINISH;
        ev.sample = k;
        ev.token = -1;
        ev.stop_string = -1;
        ev.finish_reason = TM_FINISH_ERROR;
        ev.prompt_tokens = r->n_prompt;
        tmi_request_push(r, &ev);
    }
}

int32_t tm_request_poll(tm_request *request, tm_event *events, int32_t cap)
{
    if (!request || !events || cap <= 0) return 0;
    pthread_mutex_lock(&request->mu);
    int32_t n = request->n_events < cap ? request->n_events : cap;
    for (int32_t i = 0; i < n; i++) events[i] = request->events[(request->head + i) % request->cap_events];
    if (n) {
        request->head = (request->head + n) % request->cap_events;
        request->n_events -= n;
    }
    pthread_mutex_unlock(&request->mu);
    return n;
}

int32_t tm_request_wait(tm_request *request, int32_t timeout_ms)
{
    if (!request) return 1;
    struct timespec deadline;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&request->mu);
    int ready = 1;
    while (request->n_events == 0 && !request->done) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&request->cv, &request->mu);
        } else if (pthread_cond_timedwait(&request->cv, &request->mu, &deadline) == ETIMEDOUT) {
            ready = request->n_events > 0 || request->done;
            break;
        }
    }
    pthread_mutex_unlock(&request->mu);
    return ready;
}

int32_t tm_request_finished(const tm_request *request)
{
    if (!request) return 1;
    tm_request *r = (tm_request *)request;
    pthread_mutex_lock(&r->mu);
    int32_t done = r->done;
    pthread_mutex_unlock(&r->mu);
    return done;
}

const char *tm_request_error(const tm_request *request) { return request ? request->error : ""; }

void tm_request_cancel(tm_request *request)
{
    if (!request) return;
    atomic_store(&request->cancel, 1);
    /* a finished request may have outlived its engine: nothing to wake */
    if (tm_request_finished(request)) return;
    tm_engine *e = request->engine;
    /* wake the engine thread, which may be idle-waiting */
    pthread_mutex_lock(&e->mu);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void tm_request_destroy(tm_request *request)
{
    if (!request) return;
    if (!tm_request_finished(request)) tm_request_cancel(request);
    tmi_request_unref(request);
}

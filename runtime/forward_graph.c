/* forward_graph.c - CUDA graphs of decode steps.
 *
 * A decode step of a 7B model is some 450 kernel launches; at batch 1 their host
 * side (argument checks, cuBLAS's heuristics, the launches themselves) takes
 * longer than the GPU needs to run them, so the GPU waits on the CPU.  A step
 * whose every sequence adds one token is captured once per shape into a graph and
 * replayed after: one launch a step.
 *
 * What makes a replay right for a later step of the same shape:
 *  - every buffer a kernel reads or writes is the runner's, at a fixed address;
 *  - the step's inputs are staged at offsets that depend on the shape alone
 *    (tmi_fwd_dev_stage with fixed set: block tables at s x max_blocks);
 *  - no launch shape comes from the step's data: rows, sequences and logit rows
 *    are the shape, and attention plans its split-K for a bound on the key range
 *    (tmi_fwd_plan_kv_len, a power of two, part of the shape) with the splits past
 *    a sequence's keys exiting on the device;
 *  - cuBLAS has a workspace of the runner's (cublasSetWorkspace).
 * The eager path plans attention for the same bound, so a replay computes the
 * same bits as the eager step it stands for (test_model_random checks this).
 *
 * The shape: (rows, logit rows, plan bound, KV pool, block length).  A shape is
 * captured the second time it is seen, so the shapes of a changing batch that
 * come once cost no capture; at most TMI_FWD_GRAPHS are kept, replaced in turn.
 * A step whose ops fail inside the capture runs again eagerly (the capture may have
 * been broken from another thread).  A capture that the graph machinery refuses
 * after its ops succeeded turns graphs off for the runner, which then runs every step eagerly, unless
 * $TMRUN_CUDA_GRAPHS is "require" (tests): then the step fails with the reason.
 * $TMRUN_CUDA_GRAPHS=0 runs every step eagerly. */
#include <string.h>

#include "error.h"
#include "kernels/attention/paged_kv.h"
#include "model.h"

#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"
#endif

/* Rows of a decode step a graph may cover: what the decode batch can reach. */
#define TMI_GRAPH_MAX_ROWS 512
/* The smallest plan bound: shorter ranges share one split plan. */
#define TMI_GRAPH_MIN_PLAN 256

int32_t tmi_fwd_plan_kv_len(const tmi_fwd_buffers *fb, const tmi_batch *b)
{
    int32_t longest = 0;
    for (int32_t s = 0; s < b->n_seq; s++)
        if (b->seqs[s].q_len > 0 && b->seqs[s].q_len <= TMI_ATTN_DECODE_MAX_Q && b->seqs[s].kv_len > longest) longest = b->seqs[s].kv_len;
    if (longest == 0) return 0;
    int64_t plan = TMI_GRAPH_MIN_PLAN;
    while (plan < longest) plan *= 2;
    return plan < fb->max_kv_len ? (int32_t)plan : fb->max_kv_len;
}

int tmi_batch_is_decode(const tmi_batch *b)
{
    if (b->n_tok != b->n_seq) return 0;
    for (int32_t s = 0; s < b->n_seq; s++)
        if (b->seqs[s].q_len != 1) return 0;
    return 1;
}

int tmi_fwd_graph_wanted(const tmi_fwd_buffers *fb, const tmi_batch *b)
{
    if (!fb->on_device || !fb->dev.graphs_on || fb->prof || fb->observer || !fb->shared_freq) return 0;
    return b->n_tok <= TMI_GRAPH_MAX_ROWS && tmi_batch_is_decode(b);
}

#ifdef TMRUN_HAVE_CUDA

void tmi_fwd_graphs_clear(tmi_fwd_buffers *fb)
{
    for (int32_t i = 0; i < fb->dev.n_graphs; i++) tmi_cuda_graph_destroy(fb->dev.graphs[i].exec);
    fb->dev.n_graphs = 0;
    fb->dev.graph_evict = 0;
}

/* The entry of this step's shape, made (or taken over from the next in turn) if new. */
static struct tmi_fwd_graph *entry_of(tmi_fwd_buffers *fb, const tmi_batch *b, const tmi_kv_cache *cache)
{
    struct tmi_fwd_graph key = {
        .n_tok = b->n_tok, .n_logits = b->n_logits, .plan_kv_len = fb->dev.plan_kv_len,
        .block_len = cache->block_len, .kv_base = cache->base,
    };
    for (int32_t i = 0; i < fb->dev.n_graphs; i++) {
        struct tmi_fwd_graph *g = &fb->dev.graphs[i];
        if (g->n_tok == key.n_tok && g->n_logits == key.n_logits && g->plan_kv_len == key.plan_kv_len &&
            g->block_len == key.block_len && g->kv_base == key.kv_base)
            return g;
    }
    struct tmi_fwd_graph *g;
    if (fb->dev.n_graphs < TMI_FWD_GRAPHS) {
        g = &fb->dev.graphs[fb->dev.n_graphs++];
    } else {
        g = &fb->dev.graphs[fb->dev.graph_evict];
        fb->dev.graph_evict = (fb->dev.graph_evict + 1) % TMI_FWD_GRAPHS;
        tmi_cuda_graph_destroy(g->exec);
    }
    *g = key;
    return g;
}

tm_status tmi_fwd_graph_step(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache,
                             const tmi_exec *ex)
{
    /* the ops check the block tables at each eager call; a replay skips them, so once here */
    int32_t longest;
    tm_status s = tmi_kv_check_seqs("forward", b->seqs, b->n_seq, cache.block_len, &longest);
    if (s) return s;
    struct tmi_fwd_graph *g = entry_of(fb, b, &cache);
    if (!g->exec && ++g->seen < 2) return tmi_forward_layers(m, fb, b, cache, ex);
    if (!g->exec) {
        if ((s = tmi_cuda_graph_begin(fb->dev.stream))) return s;
        tm_status body = tmi_forward_layers(m, fb, b, cache, ex);
        void *exec = NULL;
        s = tmi_cuda_graph_end(fb->dev.stream, body == TM_OK, &exec);
        /* An op that fails inside a capture may fail for the capture's sake: another
         * thread's device-wide call (a second engine's cudaFree, a synchronous copy)
         * can invalidate this thread's capture, and the next launch or cuBLAS call
         * then reports that.  Nothing captured has run, so the step runs eagerly:
         * an op's own error comes back from there, as the eager step gives it, and
         * the shape is captured again the next time it comes. */
        if (body) return tmi_forward_layers(m, fb, b, cache, ex);
        if (s) { /* the graph machinery refused: run eagerly from now on (unless graphs are required) */
            if (fb->dev.graphs_on == 2) return s;
            fb->dev.graphs_on = 0;
            return tmi_forward_layers(m, fb, b, cache, ex);
        }
        if (!exec) return tmi_forward_layers(m, fb, b, cache, ex); /* broken from outside: eager now, again later */
        g->exec = exec;
    }
    return tmi_cuda_graph_launch(g->exec, fb->dev.stream);
}

#else

void tmi_fwd_graphs_clear(tmi_fwd_buffers *fb) { (void)fb; }

tm_status tmi_fwd_graph_step(const tm_model *m, tmi_fwd_buffers *fb, const tmi_batch *b, tmi_kv_cache cache,
                             const tmi_exec *ex)
{
    return tmi_forward_layers(m, fb, b, cache, ex);
}

#endif

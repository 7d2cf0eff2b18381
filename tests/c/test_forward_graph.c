/* test_forward_graph.c - which steps the CUDA forward replays as graphs, and the
 * attention plan bound that is part of a graph's shape (runtime/forward_graph.c).
 * Policy only: it runs without a GPU (the replays themselves are checked on one by
 * test_model_random). */
#include <string.h>

#include "harness.h"
#include "runtime/model.h"

static tmi_fwd_buffers device_runner(void)
{
    tmi_fwd_buffers fb;
    memset(&fb, 0, sizeof fb);
    fb.on_device = 1;
    fb.dev.graphs_on = 1;
    fb.shared_freq = 1;
    fb.max_kv_len = 4096;
    return fb;
}

/* n sequences of q_len rows each, kv_len tokens after the step. */
static tmi_batch batch_of(tmi_attn_seq *seqs, int32_t n, int32_t q_len, const int32_t *kv_len)
{
    for (int32_t s = 0; s < n; s++)
        seqs[s] = (tmi_attn_seq){.q_start = s * q_len, .q_len = q_len, .kv_len = kv_len[s]};
    return (tmi_batch){.n_tok = n * q_len, .n_seq = n, .seqs = seqs, .n_logits = n};
}

/* The bound is the next power of two >= 256 of the longest decode sequence, capped at
 * the runner's session length; a batch of prefill chunks alone has none. */
static void test_plan_bound(void)
{
    tmi_fwd_buffers fb = device_runner();
    tmi_attn_seq seqs[3];
    static const struct { int32_t kv[3], want; } cases[] = {
        {{1, 1, 1}, 256}, {{256, 3, 9}, 256}, {{257, 3, 9}, 512}, {{10, 1000, 1024}, 1024},
        {{1025, 1, 1}, 2048}, {{4000, 1, 1}, 4096}, {{4096, 5, 5}, 4096},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tmi_batch b = batch_of(seqs, 3, 1, cases[i].kv);
        CHECK(tmi_fwd_plan_kv_len(&fb, &b) == cases[i].want);
    }
    fb.max_kv_len = 300; /* a short session caps the bound */
    int32_t kv[3] = {290, 2, 2};
    tmi_batch b = batch_of(seqs, 3, 1, kv);
    CHECK(tmi_fwd_plan_kv_len(&fb, &b) == 300);
    int32_t long_kv[3] = {100, 200, 300};
    b = batch_of(seqs, 3, 100, long_kv); /* q_len 100: prefill chunks, which attention does not split */
    CHECK(tmi_fwd_plan_kv_len(&fb, &b) == 0);
    seqs[1].q_len = 1; /* one decode row among them sets the bound for it */
    CHECK(tmi_fwd_plan_kv_len(&fb, &b) == 256);
}

/* Graphs replay the steps where every sequence adds one token, on a device runner
 * with graphs on, no profiler or observer, one set of RoPE frequencies and at most
 * 512 rows. */
static void test_graph_wanted(void)
{
    tmi_attn_seq seqs[600];
    int32_t kv[600];
    for (int i = 0; i < 600; i++) kv[i] = 10 + i;
    tmi_fwd_buffers fb = device_runner();
    tmi_batch b = batch_of(seqs, 4, 1, kv);
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 1);
    tmi_batch pre = batch_of(seqs, 4, 2, kv);
    CHECK(tmi_fwd_graph_wanted(&fb, &pre) == 0); /* two rows a sequence */
    b = batch_of(seqs, 4, 1, kv);
    seqs[2].q_len = 0; /* a sequence with no row this step: the rows are no longer the sequences */
    b.n_tok = 3;
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 0);
    b = batch_of(seqs, 512, 1, kv);
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 1);
    b = batch_of(seqs, 513, 1, kv);
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 0);
    b = batch_of(seqs, 4, 1, kv);
    fb.shared_freq = 0; /* dynamic NTK: a RoPE launch per sequence */
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 0);
    fb = device_runner();
    fb.dev.graphs_on = 0; /* TMRUN_CUDA_GRAPHS=0, or a capture that failed */
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 0);
    fb = device_runner();
    fb.prof = (struct tmi_prof *)&fb; /* any profiler: it times eager ops */
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 0);
    fb = device_runner();
    fb.on_device = 0;
    CHECK(tmi_fwd_graph_wanted(&fb, &b) == 0);
}

int main(void)
{
    RUN(test_plan_bound);
    RUN(test_graph_wanted);
    return tt_finish();
}

/* tokenizer_bpe.c - the BPE model: symbols, merge ranks, the merge loop, the cache.
 *
 * A word starts as one symbol per character (byte-level: per byte), kept in a
 * doubly linked list over an array.  Candidate merges sit in a binary heap keyed
 * by (rank, position of the left symbol's first character), which is the
 * reference's order (rank + i / n with a left-keeps-its-bias rule); entries go
 * stale when a neighbour merges and are checked when popped.  O(n log n) for a
 * word of n characters, which matters for SentencePiece-style vocabularies where
 * a whole sentence is one word.
 *
 * Results of short byte-level words are cached (pre-tokens repeat a lot); the
 * cache only changes speed, never the ids. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

#define CACHE_MAX_WORD 255
#define CACHE_MAX_ENTRIES (1u << 16)

/* ----------------------------------------------------------------- symbols -- */

tm_status tmi_bpe_add_symbol(tm_tokenizer *tok, const char *s, size_t n, int32_t *sym)
{
    if (tmi_strmap_get(&tok->sym_map, s, n, sym)) return TM_OK;
    if (tok->n_syms == tok->sym_cap) {
        size_t cap = tok->sym_cap ? (size_t)tok->sym_cap * 2 : 1024;
        const char **syms = realloc(tok->syms, cap * sizeof *syms);
        if (syms) tok->syms = syms;
        uint32_t *lens = syms ? realloc(tok->sym_lens, cap * sizeof *lens) : NULL;
        if (lens) tok->sym_lens = lens;
        if (!syms || !lens) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory (symbols)", tok->path);
        tok->sym_cap = (int32_t)cap;
    }
    char *copy = tmi_arena_strdup(&tok->arena, s, n);
    if (!copy) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory (symbols)", tok->path);
    int32_t id = tok->n_syms++;
    tok->syms[id] = copy;
    tok->sym_lens[id] = (uint32_t)n;
    *sym = id;
    return tmi_strmap_put(&tok->sym_map, copy, n, id);
}

/* ------------------------------------------------------------------ merges -- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

tm_status tmi_bpe_init_merges(tm_tokenizer *tok, size_t n_merges)
{
    size_t cap = 64;
    while (cap < n_merges * 2 + 2) cap *= 2;
    tok->merges = malloc(cap * sizeof *tok->merges);
    if (!tok->merges) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory (%zu merges)", tok->path, n_merges);
    for (size_t i = 0; i < cap; i++) tok->merges[i].key = UINT64_MAX;
    tok->merge_mask = (uint32_t)(cap - 1);
    return TM_OK;
}

static const tmi_merge_slot *merge_find(const tm_tokenizer *tok, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t j = mix64(key) & tok->merge_mask;; j = (j + 1) & tok->merge_mask) {
        const tmi_merge_slot *s = &tok->merges[j];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

tm_status tmi_bpe_add_merge(tm_tokenizer *tok, const char *a, size_t na, const char *b, size_t nb,
                            uint32_t rank)
{
    int32_t sa, sb, sm;
    tm_status st = tmi_bpe_add_symbol(tok, a, na, &sa);
    if (!st) st = tmi_bpe_add_symbol(tok, b, nb, &sb);
    if (st) return st;
    char stack[256];
    char *cat = na + nb <= sizeof stack ? stack : malloc(na + nb);
    if (!cat) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory (merges)", tok->path);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    st = tmi_bpe_add_symbol(tok, cat, na + nb, &sm);
    if (cat != stack) free(cat);
    if (st) return st;
    uint64_t key = ((uint64_t)(uint32_t)sa << 32) | (uint32_t)sb;
    for (size_t j = mix64(key) & tok->merge_mask;; j = (j + 1) & tok->merge_mask) {
        tmi_merge_slot *s = &tok->merges[j];
        if (s->key == key) return TM_OK; /* the first (lowest) rank of a repeated pair wins */
        if (s->key == UINT64_MAX) {
            s->key = key;
            s->rank = rank;
            s->merged = sm;
            return TM_OK;
        }
    }
}

/* ------------------------------------------------------------------- cache -- */

typedef struct cache_slot {
    const char *key; /* NULL: empty; key bytes then the ids live in the cache arena */
    uint32_t len, hash;
    uint32_t n_ids;
    const int32_t *ids;
} cache_slot;

struct tmi_bpe_cache {
    cache_slot slots[CACHE_MAX_ENTRIES * 2];
    uint32_t count;
    tmi_arena arena;
};

static void cache_clear(tmi_bpe_cache *c)
{
    memset(c->slots, 0, sizeof c->slots);
    c->count = 0;
    tmi_arena_free(&c->arena);
}

static cache_slot *cache_find(tmi_bpe_cache *c, const char *w, size_t n, uint32_t h)
{
    const uint32_t mask = CACHE_MAX_ENTRIES * 2 - 1;
    for (uint32_t j = h & mask;; j = (j + 1) & mask) {
        cache_slot *s = &c->slots[j];
        if (!s->key || (s->hash == h && s->len == n && memcmp(s->key, w, n) == 0)) return s;
    }
}

static void cache_put(tmi_bpe_cache *c, const char *w, size_t n, uint32_t h, const int32_t *ids,
                      size_t n_ids)
{
    if (c->count >= CACHE_MAX_ENTRIES) cache_clear(c); /* simple and deterministic */
    cache_slot *s = cache_find(c, w, n, h);
    if (s->key) return;
    /* ids first (aligned), then the key bytes, in one arena string */
    char *mem = tmi_arena_strdup(&c->arena, NULL, n_ids * sizeof(int32_t) + n + 3);
    if (!mem) return; /* a cache miss next time, nothing worse */
    char *aligned = (char *)(((uintptr_t)mem + 3) & ~(uintptr_t)3);
    memcpy(aligned, ids, n_ids * sizeof(int32_t));
    memcpy(aligned + n_ids * sizeof(int32_t), w, n);
    s->ids = (const int32_t *)aligned;
    s->key = aligned + n_ids * sizeof(int32_t);
    s->len = (uint32_t)n;
    s->hash = h;
    s->n_ids = (uint32_t)n_ids;
    c->count++;
}

/* ------------------------------------------------------------------ finish -- */

tm_status tmi_bpe_finish(tm_tokenizer *tok)
{
    tok->sym_out = malloc((size_t)(tok->n_syms ? tok->n_syms : 1) * sizeof *tok->sym_out);
    if (!tok->sym_out) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    for (int32_t s = 0; s < tok->n_syms; s++) {
        int32_t id;
        tok->sym_out[s] = tmi_strmap_get(&tok->tok2id, tok->syms[s], tok->sym_lens[s], &id) ? id : -1;
    }
    for (int b = 0; b < 256; b++) {
        char u[4];
        int n = tmi_utf8_encode(tmi_byte_to_cp((uint8_t)b), u);
        tok->byte_utf8[b][0] = (unsigned char)n; /* the alphabet is below U+0800: 1 or 2 bytes */
        memcpy(tok->byte_utf8[b] + 1, u, (size_t)n);
        int32_t sym;
        tok->byte_sym[b] = tmi_strmap_get(&tok->sym_map, u, (size_t)n, &sym) ? sym : -1;
        char hex[8];
        static const char digits[] = "0123456789ABCDEF";
        memcpy(hex, "<0x", 3);
        hex[3] = digits[b >> 4];
        hex[4] = digits[b & 15];
        hex[5] = '>';
        int32_t id;
        tok->byte_fallback_id[b] = tmi_strmap_get(&tok->tok2id, hex, 6, &id) ? id : -1;
    }
    tok->cache = calloc(1, sizeof *tok->cache);
    if (!tok->cache) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory (BPE cache)", tok->path);
    return TM_OK;
}

void tmi_bpe_free(tm_tokenizer *tok)
{
    if (tok->cache) {
        tmi_arena_free(&tok->cache->arena);
        free(tok->cache);
    }
    free(tok->syms);
    free(tok->sym_lens);
    free(tok->sym_out);
    free(tok->merges);
    tmi_strmap_free(&tok->sym_map);
}

/* ------------------------------------------------------------- the merges -- */

typedef struct bpe_node {
    int32_t sym;   /* -1: a character no merge knows */
    int32_t prev;  /* -1: none */
    int32_t next;  /* -1: none */
    uint32_t start; /* byte offset of the first character in the word */
} bpe_node;

typedef struct bpe_cand {
    uint32_t rank;
    uint32_t pos;  /* node index of the left symbol (= its first character's index) */
    int32_t left, right; /* symbols when pushed; stale when they changed */
} bpe_cand;

static int cand_less(const bpe_cand *a, const bpe_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n)
{
    bpe_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < *n && cand_less(&h[l], &last)) m = l;
        if (l + 1 < *n && cand_less(&h[l + 1], m == i ? &last : &h[l])) m = l + 1;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const tm_tokenizer *tok, const bpe_node *nodes, int32_t i, bpe_cand *heap,
                      size_t *n_heap)
{
    int32_t j = nodes[i].next;
    if (j < 0 || nodes[i].sym < 0 || nodes[j].sym < 0) return;
    const tmi_merge_slot *m = merge_find(tok, nodes[i].sym, nodes[j].sym);
    if (!m) return;
    bpe_cand c = {m->rank, (uint32_t)i, nodes[i].sym, nodes[j].sym};
    heap_push(heap, n_heap, c);
}

/* Splits word into nodes (bytes or code points), returns the node count. */
static int32_t bpe_init_nodes(const tm_tokenizer *tok, const char *word, size_t n, bpe_node *nodes)
{
    const unsigned char *u = (const unsigned char *)word;
    int32_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        int32_t sym;
        if (tok->byte_level_model) {
            sym = tok->byte_sym[u[i]];
        } else {
            uint32_t cp;
            int bad;
            int l = tmi_utf8_decode(u + i, n - i, &cp, &bad);
            len = l ? (size_t)l : (size_t)bad; /* input was sanitized; belt and braces */
            if (!tmi_strmap_get(&tok->sym_map, word + i, len, &sym)) sym = -1;
        }
        nodes[k] = (bpe_node){sym, k - 1, -1, (uint32_t)i};
        if (k > 0) nodes[k - 1].next = k;
        k++;
        i += len;
    }
    return k;
}

static void bpe_merge_all(const tm_tokenizer *tok, bpe_node *nodes, int32_t n_nodes, bpe_cand *heap)
{
    size_t n_heap = 0;
    for (int32_t i = 0; i + 1 < n_nodes; i++) push_pair(tok, nodes, i, heap, &n_heap);
    while (n_heap) {
        bpe_cand c = heap_pop(heap, &n_heap);
        int32_t i = (int32_t)c.pos, j = nodes[i].next;
        if (nodes[i].sym != c.left || j < 0 || nodes[j].sym != c.right) continue; /* stale */
        nodes[i].sym = merge_find(tok, c.left, c.right)->merged;
        nodes[i].next = nodes[j].next;
        if (nodes[j].next >= 0) nodes[nodes[j].next].prev = i;
        nodes[j].sym = -2; /* dead: never equal to a pushed symbol */
        if (nodes[i].prev >= 0) push_pair(tok, nodes, nodes[i].prev, heap, &n_heap);
        push_pair(tok, nodes, i, heap, &n_heap);
    }
}

/* Appends the id of a final symbol, or its byte-fallback ids, or unk. */
static tm_status emit_symbol(const tm_tokenizer *tok, int32_t sym, const char *bytes, size_t n,
                             tmi_ivec *out)
{
    if (sym >= 0 && tok->sym_out[sym] >= 0) return tmi_ivec_push(out, tok->sym_out[sym]);
    if (tok->byte_fallback) {
        size_t i = 0;
        while (i < n && tok->byte_fallback_id[(unsigned char)bytes[i]] >= 0) i++;
        if (i == n) {
            for (i = 0; i < n; i++) {
                tm_status st = tmi_ivec_push(out, tok->byte_fallback_id[(unsigned char)bytes[i]]);
                if (st) return st;
            }
            return TM_OK;
        }
    }
    /* The reference emits the unk token; without one it emits an undefined id,
     * which has no integer spelling, so nothing is emitted. */
    return tok->unk_id >= 0 ? tmi_ivec_push(out, tok->unk_id) : TM_OK;
}

/* ignore_merges: a whole word that is a token is taken as is. */
static int bpe_whole_word(tm_tokenizer *tok, const char *word, size_t n, int32_t *id)
{
    if (!tok->byte_level_model) return tmi_strmap_get(&tok->tok2id, word, n, id);
    tmi_buf *m = &tok->scratch_map;
    m->len = 0;
    if (tmi_buf_reserve(m, n * 2)) return 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *u = tok->byte_utf8[(unsigned char)word[i]];
        m->data[m->len++] = (char)u[1];
        if (u[0] == 2) m->data[m->len++] = (char)u[2];
    }
    return tmi_strmap_get(&tok->tok2id, m->data, m->len, id);
}

tm_status tmi_bpe_word(tm_tokenizer *tok, const char *word, size_t n, tmi_ivec *out)
{
    if (n == 0) return TM_OK;
    uint32_t h = 0;
    if (n <= CACHE_MAX_WORD) {
        h = tmi_hash_bytes(word, n);
        cache_slot *s = cache_find(tok->cache, word, n, h);
        if (s->key) {
            for (uint32_t i = 0; i < s->n_ids; i++) {
                tm_status st = tmi_ivec_push(out, s->ids[i]);
                if (st) return st;
            }
            return TM_OK;
        }
    }
    size_t first = out->len;
    int32_t id;
    tm_status st;
    if (tok->ignore_merges && bpe_whole_word(tok, word, n, &id)) {
        st = tmi_ivec_push(out, id);
    } else {
        /* nodes [n] and candidates [3n]: n - 1 initial pairs plus two per merge */
        tmi_buf *w = &tok->scratch_bpe;
        w->len = 0;
        st = tmi_buf_reserve(w, n * sizeof(bpe_node) + 3 * n * sizeof(bpe_cand));
        if (st) return st;
        bpe_node *nodes = (bpe_node *)w->data;
        bpe_cand *heap = (bpe_cand *)(w->data + n * sizeof(bpe_node));
        int32_t n_nodes = bpe_init_nodes(tok, word, n, nodes);
        bpe_merge_all(tok, nodes, n_nodes, heap);
        for (int32_t i = 0; !st && i >= 0 && i < n_nodes; i = nodes[i].next) {
            size_t end = nodes[i].next >= 0 ? nodes[nodes[i].next].start : n;
            st = emit_symbol(tok, nodes[i].sym, word + nodes[i].start, end - nodes[i].start, out);
        }
    }
    if (!st && n <= CACHE_MAX_WORD) cache_put(tok->cache, word, n, h, out->data + first, out->len - first);
    return st;
}

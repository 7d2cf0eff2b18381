/* tokenizer_spm.c - a SentencePiece tokenizer.model (BPE type) read as the same
 * pipeline as its HuggingFace conversion (transformers' LlamaConverter): Prepend
 * "▁" (add_dummy_prefix), Replace " " -> "▁" (escape_whitespaces), BPE with byte
 * fallback, the "▁"/ByteFallback/Fuse/Strip decoder, BOS added.
 *
 * SentencePiece's BPE merges the adjacent pair whose concatenation is the piece
 * with the best score (ties: leftmost).  The same order comes out of rank-based
 * BPE when every split (a, b) of a piece into two pieces is a merge ranked by that
 * piece's score, which is how the merges are built here.
 *
 * Wire format (sentencepiece_model.proto): ModelProto { 1: repeated SentencePiece
 * { 1: piece, 2: score (float), 3: type }, 2: TrainerSpec { 3: model_type,
 * 35: byte_fallback, 40: unk_id }, 3: NormalizerSpec { 2: precompiled_charsmap,
 * 3: add_dummy_prefix, 4: remove_extra_whitespaces, 5: escape_whitespaces } }. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3, PIECE_USER = 4, PIECE_UNUSED = 5, PIECE_BYTE = 6 };

typedef struct spm_piece {
    const char *s;
    uint32_t len;
    float score;
    int type;
} spm_piece;

typedef struct spm_model {
    spm_piece *pieces;
    int32_t n;
    int model_type, byte_fallback, unk_id;
    int add_dummy_prefix, remove_extra_ws, escape_ws, has_charsmap;
} spm_model;

typedef struct pb {
    const unsigned char *p, *end;
} pb;

static int pb_varint(pb *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        unsigned char b = *r->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* Reads one field: *field, *wire, and for length-delimited *sub. Skips others' payloads. */
static int pb_field(pb *r, uint32_t *field, int *wire, uint64_t *val, pb *sub)
{
    uint64_t key;
    if (!pb_varint(r, &key)) return 0;
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    switch (*wire) {
    case 0: return pb_varint(r, val);
    case 1: if (r->end - r->p < 8) return 0; r->p += 8; return 1;
    case 5:
        if (r->end - r->p < 4) return 0;
        memcpy(val, r->p, 4); /* little-endian fixed32, low half of val */
        r->p += 4;
        return 1;
    case 2:
        if (!pb_varint(r, val) || *val > (uint64_t)(r->end - r->p)) return 0;
        sub->p = r->p;
        sub->end = r->p + *val;
        r->p += *val;
        return 1;
    default: return 0;
    }
}

static tm_status parse_piece(const char *path, pb r, spm_piece *out)
{
    uint32_t f;
    int w;
    uint64_t v = 0;
    pb sub;
    out->type = PIECE_NORMAL;
    while (r.p < r.end) {
        if (!pb_field(&r, &f, &w, &v, &sub)) return tmi_fail(TM_ERR_FORMAT, "%s: truncated SentencePiece entry", path);
        if (f == 1 && w == 2) out->s = (const char *)sub.p, out->len = (uint32_t)(sub.end - sub.p);
        else if (f == 2 && w == 5) { uint32_t u = (uint32_t)v; memcpy(&out->score, &u, 4); }
        else if (f == 3 && w == 0) out->type = (int)v;
        v = 0;
    }
    if (!out->s) return tmi_fail(TM_ERR_FORMAT, "%s: a SentencePiece entry has no piece", path);
    return TM_OK;
}

static tm_status parse_model(const char *path, const unsigned char *data, size_t len, spm_model *m)
{
    pb r = {data, data + len}, sub;
    uint32_t f;
    int w;
    uint64_t v;
    int32_t cap = 0;
    m->model_type = 1, m->unk_id = 0, m->add_dummy_prefix = 1, m->remove_extra_ws = 1, m->escape_ws = 1;
    while (r.p < r.end) {
        if (!pb_field(&r, &f, &w, &v, &sub)) return tmi_fail(TM_ERR_FORMAT, "%s: not a SentencePiece model (bad protobuf)", path);
        if (f == 1 && w == 2) {
            if (m->n == cap) {
                cap = cap ? cap * 2 : 1024;
                spm_piece *p = realloc(m->pieces, (size_t)cap * sizeof *p);
                if (!p) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", path);
                m->pieces = p;
            }
            memset(&m->pieces[m->n], 0, sizeof m->pieces[0]);
            tm_status st = parse_piece(path, sub, &m->pieces[m->n]);
            if (st) return st;
            m->n++;
        } else if ((f == 2 || f == 3) && w == 2) {
            while (sub.p < sub.end) {
                pb inner;
                uint32_t g;
                int x;
                uint64_t u = 0;
                if (!pb_field(&sub, &g, &x, &u, &inner)) return tmi_fail(TM_ERR_FORMAT, "%s: truncated spec", path);
                if (f == 2 && g == 3 && x == 0) m->model_type = (int)u;
                if (f == 2 && g == 35 && x == 0) m->byte_fallback = u != 0;
                if (f == 2 && g == 40 && x == 0) m->unk_id = (int)u;
                if (f == 3 && g == 2 && x == 2) m->has_charsmap = inner.end > inner.p;
                if (f == 3 && g == 3 && x == 0) m->add_dummy_prefix = u != 0;
                if (f == 3 && g == 4 && x == 0) m->remove_extra_ws = u != 0;
                if (f == 3 && g == 5 && x == 0) m->escape_ws = u != 0;
            }
        }
    }
    if (m->n == 0 || m->n >= (1 << 24)) return tmi_fail(TM_ERR_FORMAT, "%s: the model has %d pieces", path, (int)m->n);
    if (m->model_type != 2)
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: SentencePiece model_type %d is not supported (only BPE = 2)", path, m->model_type);
    if (m->has_charsmap || m->remove_extra_ws)
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: SentencePiece normalization rules (charsmap, remove_extra_whitespaces) "
                                            "are not supported", path);
    return TM_OK;
}

typedef struct rank_entry {
    float score;
    int32_t id;
} rank_entry;

static int by_score(const void *a, const void *b)
{
    const rank_entry *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Every split of a NORMAL/USER piece into two vocabulary pieces is a merge. */
static tm_status build_merges(tm_tokenizer *tok, const spm_model *m)
{
    rank_entry *order = malloc((size_t)m->n * sizeof *order);
    if (!order) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    for (int32_t i = 0; i < m->n; i++) order[i] = (rank_entry){m->pieces[i].score, i};
    qsort(order, (size_t)m->n, sizeof *order, by_score);
    size_t total = 0;
    for (int32_t i = 0; i < m->n; i++) total += m->pieces[i].len;
    tm_status st = tmi_bpe_init_merges(tok, total);
    for (int32_t r = 0; !st && r < m->n; r++) {
        const spm_piece *p = &m->pieces[order[r].id];
        if (p->type != PIECE_NORMAL && p->type != PIECE_USER) continue;
        for (uint32_t k = 1; !st && k < p->len; k++) {
            if (((unsigned char)p->s[k] & 0xC0) == 0x80) continue; /* split at characters only */
            int32_t a, b;
            if (tmi_strmap_get(&tok->tok2id, p->s, k, &a) && tmi_strmap_get(&tok->tok2id, p->s + k, p->len - k, &b))
                st = tmi_bpe_add_merge(tok, p->s, k, p->s + k, p->len - k, (uint32_t)r);
        }
    }
    free(order);
    return st;
}

static tm_status setup_pipeline(tm_tokenizer *tok, const spm_model *m)
{
    static const char SPACE[] = "\xE2\x96\x81"; /* ▁ */
    tok->norms = calloc(2, sizeof *tok->norms);
    tok->pres = calloc(1, sizeof *tok->pres);
    if (!tok->norms || !tok->pres) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    if (m->add_dummy_prefix) tok->norms[tok->n_norms++] = (tmi_norm){TMI_NORM_PREPEND, SPACE, 3, NULL, 0};
    if (m->escape_ws) tok->norms[tok->n_norms++] = (tmi_norm){TMI_NORM_REPLACE, " ", 1, SPACE, 3};
    tok->byte_fallback = m->byte_fallback;
    tok->fuse_unk = 1;
    tok->unk_id = m->unk_id >= 0 && m->unk_id < m->n ? m->unk_id : -1;
    tmi_decoder *d = &tok->dec;
    d->n_replace = 1;
    d->replace_pat[0] = SPACE, d->replace_pat_len[0] = 3;
    d->replace_with[0] = " ", d->replace_with_len[0] = 1;
    d->byte_fallback = d->strip_bom_in_runs = 1;
    d->strip_first_space = m->add_dummy_prefix;
    /* BOS by default (add_bos_token true for Llama); tokenizer_config.json may say otherwise */
    tok->prefix_ids = malloc(2 * sizeof(int32_t));
    tok->suffix_ids = malloc(2 * sizeof(int32_t));
    if (!tok->prefix_ids || !tok->suffix_ids) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    int32_t bos;
    if (tmi_strmap_get(&tok->tok2id, "<s>", 3, &bos)) tok->prefix_ids[tok->n_prefix++] = bos;
    int32_t eos;
    if (tmi_strmap_get(&tok->tok2id, "</s>", 4, &eos)) tok->eos_id = eos;
    return TM_OK;
}

tm_status tmi_tok_load_spm(tm_tokenizer *tok, const char *model_path, const char *config_path)
{
    char *data;
    size_t len;
    tm_status st = tmi_read_file(model_path, &data, &len);
    if (st) return st;
    spm_model m = {0};
    st = parse_model(model_path, (const unsigned char *)data, len, &m);
    if (!st) st = tmi_tok_alloc_ids(tok, m.n);
    if (!st) st = tmi_strmap_init(&tok->sym_map, (size_t)m.n * 2);
    tok->added = calloc((size_t)m.n, sizeof *tok->added);
    if (!st && !tok->added) st = tmi_fail(TM_ERR_NOMEM, "%s: out of memory", model_path);
    for (int32_t i = 0; !st && i < m.n; i++) {
        const spm_piece *p = &m.pieces[i];
        int32_t sym;
        st = tmi_tok_set_piece(tok, i, p->s, p->len);
        if (!st) st = tmi_bpe_add_symbol(tok, p->s, p->len, &sym);
        /* control, unknown and user-defined pieces are matched in text, as after HF conversion */
        if (!st && (p->type == PIECE_CONTROL || p->type == PIECE_UNKNOWN || p->type == PIECE_USER) && p->len) {
            tmi_added *a = &tok->added[tok->n_added++];
            *a = (tmi_added){tok->pieces[i], p->len, i, 0, 0, (uint8_t)(p->type != PIECE_USER)};
        }
    }
    if (!st) st = build_merges(tok, &m);
    if (!st) st = setup_pipeline(tok, &m);
    int32_t eos = tok->eos_id;
    if (!st) st = tmi_tok_finish(tok, config_path);
    if (!st && tok->eos_id < 0) tok->eos_id = eos;
    free(m.pieces);
    free(data);
    return st;
}

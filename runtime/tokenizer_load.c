/* tokenizer_load.c - reading tokenizer.json: the BPE model, added tokens, the
 * normalizer / pre-tokenizer / post-processor / decoder configuration.
 * Anything this build does not implement is TM_ERR_UNSUPPORTED naming the type,
 * never silently approximated (the ids would differ). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/json.h"
#include "runtime/tokenizer.h"

#define MAX_IDS (1 << 24)

/* ------------------------------------------------------------ JSON helpers -- */

const char *tmi_jstr(const tmi_json *obj, const char *key, size_t *len)
{
    const tmi_json *v = tmi_json_get(obj, key);
    if (!v || v->type != TMI_JSON_STRING) return NULL;
    if (len) *len = (size_t)v->len;
    return v->str;
}

/* 1 / 0 for true / false, dflt when absent or null. */
int tmi_jbool(const tmi_json *obj, const char *key, int dflt)
{
    const tmi_json *v = tmi_json_get(obj, key);
    if (!v || v->type == TMI_JSON_NULL) return dflt;
    if (v->type == TMI_JSON_TRUE) return 1;
    if (v->type == TMI_JSON_FALSE) return 0;
    return dflt;
}

/* A type string of a config object ("" when absent). */
static const char *jtype(const tmi_json *obj)
{
    const char *t = tmi_jstr(obj, "type", NULL);
    return t ? t : "";
}

tm_status tmi_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tmi_fail(TM_ERR_IO, "%s: cannot open", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : (1u << 16);
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return tmi_fail(TM_ERR_NOMEM, "%s: out of memory reading", path);
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return tmi_fail(TM_ERR_IO, "%s: read error", path);
    }
    *data = buf;
    *len = n;
    return TM_OK;
}

/* ------------------------------------------------------------------- ids -- */

tm_status tmi_tok_alloc_ids(tm_tokenizer *tok, int32_t n_ids)
{
    tok->n_ids = n_ids;
    tok->pieces = calloc((size_t)n_ids + 1, sizeof *tok->pieces);
    tok->piece_lens = calloc((size_t)n_ids + 1, sizeof *tok->piece_lens);
    tok->flags = calloc((size_t)n_ids + 1, 1);
    if (!tok->pieces || !tok->piece_lens || !tok->flags)
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory (%d ids)", tok->path, (int)n_ids);
    return tmi_strmap_init(&tok->tok2id, (size_t)n_ids);
}

tm_status tmi_tok_set_piece(tm_tokenizer *tok, int32_t id, const char *s, size_t n)
{
    char *copy = tmi_arena_strdup(&tok->arena, s, n);
    if (!copy) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    tok->pieces[id] = copy;
    tok->piece_lens[id] = (uint32_t)n;
    tok->flags[id] |= TMI_TOK_PRESENT;
    return tmi_strmap_put(&tok->tok2id, copy, n, id);
}

static tm_status json_id(const tm_tokenizer *tok, const tmi_json *v, const char *field, int32_t *id)
{
    if (!v || v->type != TMI_JSON_NUMBER || !v->is_int || v->i < 0 || v->i >= MAX_IDS)
        return tmi_fail(TM_ERR_FORMAT, "%s: %s must be an integer id in [0, %d)", tok->path, field, MAX_IDS);
    *id = (int32_t)v->i;
    return TM_OK;
}

/* -------------------------------------------------------------- the model -- */

static tm_status load_vocab(tm_tokenizer *tok, const tmi_json *model, const tmi_json *added)
{
    const tmi_json *vocab = tmi_json_get(model, "vocab");
    if (!vocab || vocab->type != TMI_JSON_OBJECT)
        return tmi_fail(TM_ERR_FORMAT, "%s: model.vocab must be an object of token -> id", tok->path);
    int32_t max_id = -1, id = 0;
    for (int64_t i = 0; i < vocab->len; i++) {
        tm_status st = json_id(tok, &vocab->items[i], "model.vocab values", &id);
        if (st) return st;
        if (id > max_id) max_id = id;
    }
    for (int64_t i = 0; added && i < added->len; i++) {
        tm_status st = json_id(tok, tmi_json_get(&added->items[i], "id"), "added_tokens[].id", &id);
        if (st) return st;
        if (id > max_id) max_id = id;
    }
    tm_status st = tmi_tok_alloc_ids(tok, max_id + 1);
    if (st) return st;
    st = tmi_strmap_init(&tok->sym_map, (size_t)vocab->len * 2);
    for (int64_t i = 0; !st && i < vocab->len; i++) {
        id = (int32_t)vocab->items[i].i;
        int32_t sym;
        st = tmi_tok_set_piece(tok, id, vocab->keys[i], (size_t)vocab->key_lens[i]);
        if (!st) st = tmi_bpe_add_symbol(tok, vocab->keys[i], (size_t)vocab->key_lens[i], &sym);
    }
    return st;
}

static tm_status load_merges(tm_tokenizer *tok, const tmi_json *model)
{
    const tmi_json *merges = tmi_json_get(model, "merges");
    if (!merges || merges->type != TMI_JSON_ARRAY)
        return tmi_fail(TM_ERR_FORMAT, "%s: model.merges must be an array", tok->path);
    tm_status st = tmi_bpe_init_merges(tok, (size_t)merges->len);
    for (int64_t i = 0; !st && i < merges->len; i++) {
        const tmi_json *m = &merges->items[i];
        const char *a, *b;
        size_t na, nb;
        if (m->type == TMI_JSON_ARRAY && m->len == 2 && m->items[0].type == TMI_JSON_STRING &&
            m->items[1].type == TMI_JSON_STRING) {
            a = m->items[0].str, na = (size_t)m->items[0].len;
            b = m->items[1].str, nb = (size_t)m->items[1].len;
        } else if (m->type == TMI_JSON_STRING) {
            /* "a b": JavaScript's split(" ", 2) keeps the first two fields */
            const char *sp = memchr(m->str, ' ', (size_t)m->len);
            if (!sp) return tmi_fail(TM_ERR_FORMAT, "%s: model.merges[%lld] has no space", tok->path, (long long)i);
            a = m->str, na = (size_t)(sp - m->str);
            b = sp + 1;
            const char *end = memchr(b, ' ', (size_t)(m->str + m->len - b));
            nb = (size_t)((end ? end : m->str + m->len) - b);
        } else {
            return tmi_fail(TM_ERR_FORMAT, "%s: model.merges[%lld] must be \"a b\" or [a, b]", tok->path,
                            (long long)i);
        }
        st = tmi_bpe_add_merge(tok, a, na, b, nb, (uint32_t)i);
    }
    return st;
}

static tm_status load_model(tm_tokenizer *tok, const tmi_json *model, const tmi_json *added)
{
    if (!model || model->type != TMI_JSON_OBJECT)
        return tmi_fail(TM_ERR_FORMAT, "%s: model must be an object", tok->path);
    const char *type = jtype(model);
    if (*type && strcmp(type, "BPE") != 0)
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: model.type %s is not supported (only BPE)", tok->path, type);
    if (!*type && !tmi_json_get(model, "merges"))
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: a model without type and merges is not BPE", tok->path);
    size_t n;
    const char *eow = tmi_jstr(model, "end_of_word_suffix", &n);
    if (eow && n) return tmi_fail(TM_ERR_UNSUPPORTED, "%s: model.end_of_word_suffix is not supported", tok->path);
    tm_status st = load_vocab(tok, model, added);
    if (!st) st = load_merges(tok, model);
    if (st) return st;
    tok->byte_fallback = tmi_jbool(model, "byte_fallback", 0);
    tok->fuse_unk = tmi_jbool(model, "fuse_unk", 0);
    tok->ignore_merges = tmi_jbool(model, "ignore_merges", 0);
    const char *unk = tmi_jstr(model, "unk_token", &n);
    tok->unk_id = -1;
    if (unk && !tmi_strmap_get(&tok->tok2id, unk, n, &tok->unk_id)) tok->unk_id = -1;
    return TM_OK;
}

static tm_status load_added(tm_tokenizer *tok, const tmi_json *added)
{
    if (!added || added->type == TMI_JSON_NULL) return TM_OK;
    if (added->type != TMI_JSON_ARRAY) return tmi_fail(TM_ERR_FORMAT, "%s: added_tokens must be an array", tok->path);
    tok->added = calloc((size_t)(added->len ? added->len : 1), sizeof *tok->added);
    if (!tok->added) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    for (int64_t i = 0; i < added->len; i++) {
        const tmi_json *a = &added->items[i];
        size_t n;
        const char *content = tmi_jstr(a, "content", &n);
        if (!content || n == 0)
            return tmi_fail(TM_ERR_FORMAT, "%s: added_tokens[%lld].content must be a non-empty string", tok->path,
                            (long long)i);
        int32_t id = (int32_t)tmi_json_get(a, "id")->i; /* checked by load_vocab */
        tm_status st = tmi_tok_set_piece(tok, id, content, n);
        int32_t sym;
        if (!st) st = tmi_bpe_add_symbol(tok, content, n, &sym);
        if (st) return st;
        tmi_added *t = &tok->added[tok->n_added++];
        t->content = tok->pieces[id];
        t->len = (uint32_t)n;
        t->id = id;
        t->lstrip = (uint8_t)tmi_jbool(a, "lstrip", 0);
        t->rstrip = (uint8_t)tmi_jbool(a, "rstrip", 0);
        t->special = (uint8_t)tmi_jbool(a, "special", 0);
    }
    return TM_OK;
}

/* --------------------------------------------------------------- the file -- */

static tm_status load_root(tm_tokenizer *tok, const tmi_json *root)
{
    if (root->type != TMI_JSON_OBJECT) return tmi_fail(TM_ERR_FORMAT, "%s: the top level must be an object", tok->path);
    const tmi_json *added = tmi_json_get(root, "added_tokens");
    if (added && added->type != TMI_JSON_ARRAY && added->type != TMI_JSON_NULL)
        return tmi_fail(TM_ERR_FORMAT, "%s: added_tokens must be an array", tok->path);
    if (added && added->type == TMI_JSON_NULL) added = NULL;
    tm_status st = load_model(tok, tmi_json_get(root, "model"), added);
    if (!st) st = load_added(tok, added);
    if (!st) st = tmi_load_normalizer(tok, tmi_json_get(root, "normalizer"));
    if (!st) st = tmi_load_pre_tokenizer(tok, tmi_json_get(root, "pre_tokenizer"));
    if (!st) st = tmi_load_post_processor(tok, tmi_json_get(root, "post_processor"));
    if (!st) st = tmi_load_decoder(tok, tmi_json_get(root, "decoder"));
    return st;
}

tm_status tmi_tok_load_json(tm_tokenizer *tok, const char *json_path, const char *config_path)
{
    char *text;
    size_t len;
    tm_status st = tmi_read_file(json_path, &text, &len);
    if (st) return st;
    tmi_json_doc *doc = NULL;
    const tmi_json *root;
    st = tmi_json_parse(text, len, json_path, 64, &doc, &root);
    free(text);
    if (st) return st;
    st = load_root(tok, root);
    tmi_json_free(doc);
    if (!st) st = tmi_tok_finish(tok, config_path);
    return st;
}

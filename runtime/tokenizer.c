/* tokenizer.c - tm_tokenizer's public entry points: create (which file to read),
 * destroy, encode, and the lookups.  The stages live in tokenizer_*.c. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* Finds the tokenizer file and the config beside it. */
static tm_status resolve(const char *path_or_dir, char **file, char **config, int *spm)
{
    char *dir = NULL;
    *file = *config = NULL;
    if (is_dir(path_or_dir)) {
        dir = strdup(path_or_dir);
        *file = dir ? join(dir, "tokenizer.json") : NULL;
        if (*file && !is_file(*file)) {
            free(*file);
            *file = join(dir, "tokenizer.model");
            if (*file && !is_file(*file)) {
                free(*file);
                free(dir);
                *file = NULL;
                return tmi_fail(TM_ERR_IO, "%s: no tokenizer.json or tokenizer.model in this folder", path_or_dir);
            }
        }
    } else {
        if (!is_file(path_or_dir)) return tmi_fail(TM_ERR_IO, "%s: no such file or folder", path_or_dir);
        *file = strdup(path_or_dir);
        dir = dir_of(path_or_dir);
    }
    if (dir && *file) *config = join(dir, "tokenizer_config.json");
    free(dir);
    if (!*file || !*config) {
        free(*file);
        free(*config);
        return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t n = strlen(*file);
    *spm = n >= 6 && strcmp(*file + n - 6, ".model") == 0;
    return TM_OK;
}

tm_status tm_tokenizer_create(const char *path_or_dir, tm_tokenizer **out)
{
    if (!path_or_dir || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_create: path and out must not be NULL");
    char *file, *config;
    int spm = 0;
    tm_status st = resolve(path_or_dir, &file, &config, &spm);
    if (st) return st;
    tm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        free(file);
        free(config);
        return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory");
    }
    tok->path = file;
    tok->unk_id = tok->bos_id = tok->eos_id = -1;
    st = spm ? tmi_tok_load_spm(tok, file, config) : tmi_tok_load_json(tok, file, config);
    free(config);
    if (st) {
        tm_tokenizer_destroy(tok);
        return st;
    }
    *out = tok;
    return TM_OK;
}

void tm_tokenizer_destroy(tm_tokenizer *tok)
{
    if (!tok) return;
    for (int32_t i = 0; tok->pres && i < tok->n_pres; i++) tmi_pre_free_regex(tok->pres[i].regex, tok->pres[i].match_data);
    free(tok->pres);
    free(tok->norms);
    tmi_bpe_free(tok);
    tmi_decode_free(tok);
    tmi_strmap_free(&tok->tok2id);
    free(tok->pieces);
    free(tok->piece_lens);
    free(tok->flags);
    free(tok->added);
    free(tok->added_by_byte);
    free(tok->prefix_ids);
    free(tok->suffix_ids);
    tmi_buf_free(&tok->scratch_norm);
    tmi_buf_free(&tok->scratch_pre);
    tmi_buf_free(&tok->scratch_map);
    tmi_buf_free(&tok->scratch_text);
    tmi_buf_free(&tok->scratch_bpe);
    for (int i = 0; i < 2; i++) {
        tmi_buf_free(&tok->scratch_pieces[i].text);
        tmi_ivec_free(&tok->scratch_pieces[i].spans);
    }
    tmi_arena_free(&tok->arena);
    free(tok->path);
    free(tok);
}

tm_status tm_tokenizer_encode(tm_tokenizer *tok, const char *text, size_t len, int32_t add_special,
                              int32_t *ids, int64_t cap, int64_t *n_ids)
{
    if (!tok || !n_ids || (len > 0 && !text) || (cap > 0 && !ids))
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_encode: tok, n_ids, text (len > 0) and ids (cap > 0) "
                                            "must not be NULL");
    if (cap < 0) return tmi_fail(TM_ERR_INVALID_ARG, "cap must be >= 0, got %lld", (long long)cap);
    tmi_ivec v = {0};
    tm_status st = TM_OK;
    if (add_special)
        for (int32_t i = 0; !st && i < tok->n_prefix; i++) st = tmi_ivec_push(&v, tok->prefix_ids[i]);
    if (!st && len > 0) {
        int valid = tmi_utf8_sanitize(text, len, &tok->scratch_text, &st);
        if (!st && valid) st = tmi_encode_text(tok, text, len, &v);
        else if (!st) st = tmi_encode_text(tok, tok->scratch_text.data, tok->scratch_text.len, &v);
    }
    if (add_special)
        for (int32_t i = 0; !st && i < tok->n_suffix; i++) st = tmi_ivec_push(&v, tok->suffix_ids[i]);
    if (!st) {
        *n_ids = (int64_t)v.len;
        size_t k = (size_t)cap < v.len ? (size_t)cap : v.len;
        if (k) memcpy(ids, v.data, k * sizeof *ids);
    }
    tmi_ivec_free(&v);
    return st;
}

int32_t tm_tokenizer_vocab_size(const tm_tokenizer *tok) { return tok ? tok->n_ids : 0; }
int32_t tm_tokenizer_bos_id(const tm_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int32_t tm_tokenizer_eos_id(const tm_tokenizer *tok) { return tok ? tok->eos_id : -1; }

int32_t tm_tokenizer_is_special(const tm_tokenizer *tok, int32_t id)
{
    return tok && id >= 0 && id < tok->n_ids && (tok->flags[id] & TMI_TOK_SPECIAL) ? 1 : 0;
}

tm_status tm_tokenizer_token_text(const tm_tokenizer *tok, int32_t id, const char **text, size_t *len)
{
    if (!tok || !text) return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_token_text: tok and text must not be NULL");
    if (id < 0 || id >= tok->n_ids)
        return tmi_fail(TM_ERR_INVALID_ARG, "token id %d is outside [0, %d)", (int)id, (int)tok->n_ids);
    if (!tok->pieces[id]) return tmi_fail(TM_ERR_NOT_FOUND, "token id %d is unused", (int)id);
    *text = tok->pieces[id];
    if (len) *len = tok->piece_lens[id];
    return TM_OK;
}

tm_status tm_tokenizer_token_id(const tm_tokenizer *tok, const char *text, size_t len, int32_t *id)
{
    if (!tok || !id || (len > 0 && !text))
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_token_id: tok, text and id must not be NULL");
    if (!tmi_strmap_get(&tok->tok2id, text, len, id))
        return tmi_fail(TM_ERR_NOT_FOUND, "no token \"%.*s\"", (int)(len > 200 ? 200 : len), text);
    return TM_OK;
}

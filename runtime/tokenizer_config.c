/* tokenizer_config.c - the pipeline stages named in tokenizer.json (normalizer,
 * pre_tokenizer, post_processor, decoder) and the settings of tokenizer_config.json.
 *
 * BOS/EOS: a TemplateProcessing post-processor gives the tokens around the text;
 * when tokenizer_config.json sets add_bos_token or add_eos_token, those decide
 * instead (what transformers' Llama fast tokenizers do when the flags change). */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

#define MAX_STAGES 16

static const char *jtype(const tmi_json *obj)
{
    const char *t = obj ? tmi_jstr(obj, "type", NULL) : NULL;
    return t ? t : "";
}

static int is_null(const tmi_json *cfg) { return !cfg || cfg->type == TMI_JSON_NULL; }

static const char *keep(tm_tokenizer *tok, const char *s, size_t n)
{
    return tmi_arena_strdup(&tok->arena, s, n);
}

/* A {"String": s} pattern; a Regex pattern is unsupported where only strings work. */
static tm_status string_pattern(tm_tokenizer *tok, const tmi_json *cfg, const char *what, const char **s,
                                size_t *n)
{
    const tmi_json *pat = tmi_json_get(cfg, "pattern");
    *s = pat ? tmi_jstr(pat, "String", n) : NULL;
    if (*s) return TM_OK;
    if (pat && tmi_json_get(pat, "Regex"))
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: %s with a Regex pattern is not supported", tok->path, what);
    return tmi_fail(TM_ERR_FORMAT, "%s: %s.pattern must be {\"String\": ...}", tok->path, what);
}

/* ------------------------------------------------------------- normalizer -- */

static tm_status add_norm(tm_tokenizer *tok, const tmi_json *cfg)
{
    const char *type = jtype(cfg);
    if (strcmp(type, "Sequence") == 0) {
        const tmi_json *list = tmi_json_get(cfg, "normalizers");
        if (!list || list->type != TMI_JSON_ARRAY)
            return tmi_fail(TM_ERR_FORMAT, "%s: normalizer Sequence needs a normalizers array", tok->path);
        for (int64_t i = 0; i < list->len; i++) {
            tm_status st = add_norm(tok, &list->items[i]);
            if (st) return st;
        }
        return TM_OK;
    }
    if (tok->n_norms == MAX_STAGES) return tmi_fail(TM_ERR_UNSUPPORTED, "%s: more than %d normalizers", tok->path, MAX_STAGES);
    tmi_norm *nm = &tok->norms[tok->n_norms];
    memset(nm, 0, sizeof *nm);
    size_t n = 0, m = 0;
    const char *s;
    if (strcmp(type, "NFC") == 0) {
        nm->kind = TMI_NORM_NFC;
    } else if (strcmp(type, "Prepend") == 0) {
        s = tmi_jstr(cfg, "prepend", &n);
        if (!s) return tmi_fail(TM_ERR_FORMAT, "%s: normalizer Prepend needs a prepend string", tok->path);
        nm->kind = TMI_NORM_PREPEND;
        nm->a = keep(tok, s, n);
        nm->a_len = (uint32_t)n;
    } else if (strcmp(type, "Replace") == 0) {
        tm_status st = string_pattern(tok, cfg, "normalizer Replace", &s, &n);
        if (st) return st;
        const char *c = tmi_jstr(cfg, "content", &m);
        if (!c) return tmi_fail(TM_ERR_FORMAT, "%s: normalizer Replace needs a content string", tok->path);
        nm->kind = TMI_NORM_REPLACE;
        nm->a = keep(tok, s, n);
        nm->a_len = (uint32_t)n;
        nm->b = keep(tok, c, m);
        nm->b_len = (uint32_t)m;
    } else {
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: normalizer type \"%s\" is not supported", tok->path, type);
    }
    if ((nm->a_len && !nm->a) || (nm->b_len && !nm->b)) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    tok->n_norms++;
    return TM_OK;
}

tm_status tmi_load_normalizer(tm_tokenizer *tok, const tmi_json *cfg)
{
    tok->norms = calloc(MAX_STAGES, sizeof *tok->norms);
    if (!tok->norms) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    return is_null(cfg) ? TM_OK : add_norm(tok, cfg);
}

/* ---------------------------------------------------------- pre-tokenizer -- */

/* GPT-2's pattern, what ByteLevel with use_regex splits by. */
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static tm_status split_regex_of(tm_tokenizer *tok, const tmi_json *cfg, tmi_pre *pre)
{
    const tmi_json *pat = tmi_json_get(cfg, "pattern");
    size_t n;
    const char *re = pat ? tmi_jstr(pat, "Regex", &n) : NULL;
    tmi_buf quoted = {0};
    tm_status st = TM_OK;
    if (!re) {
        const char *s = pat ? tmi_jstr(pat, "String", &n) : NULL;
        if (!s) return tmi_fail(TM_ERR_FORMAT, "%s: pre_tokenizer Split needs pattern.Regex or pattern.String", tok->path);
        for (size_t i = 0; !st && i < n; i++) { /* a literal: escape what is not alphanumeric ASCII */
            unsigned char c = (unsigned char)s[i];
            int plain = c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            if (!plain) st = tmi_buf_append(&quoted, "\\", 1);
            if (!st) st = tmi_buf_append(&quoted, s + i, 1);
        }
        re = quoted.data ? quoted.data : "";
        n = quoted.len;
    }
    if (!st) st = tmi_pre_compile_regex(re, n, &pre->regex, &pre->match_data);
    if (st) tmi_error_prefix("%s: pre_tokenizer Split", tok->path);
    tmi_buf_free(&quoted);
    return st;
}

static tm_status add_pre(tm_tokenizer *tok, const tmi_json *cfg)
{
    const char *type = jtype(cfg);
    if (strcmp(type, "Sequence") == 0) {
        const tmi_json *list = tmi_json_get(cfg, "pretokenizers");
        if (!list || list->type != TMI_JSON_ARRAY)
            return tmi_fail(TM_ERR_FORMAT, "%s: pre_tokenizer Sequence needs a pretokenizers array", tok->path);
        for (int64_t i = 0; i < list->len; i++) {
            tm_status st = add_pre(tok, &list->items[i]);
            if (st) return st;
        }
        return TM_OK;
    }
    if (tok->n_pres == MAX_STAGES) return tmi_fail(TM_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizers", tok->path, MAX_STAGES);
    tmi_pre *pre = &tok->pres[tok->n_pres];
    memset(pre, 0, sizeof *pre);
    tm_status st = TM_OK;
    if (strcmp(type, "Split") == 0) {
        const char *behavior = tmi_jstr(cfg, "behavior", NULL);
        /* the reference treats every behaviour but Removed as Isolated */
        if (behavior && strcmp(behavior, "Removed") == 0)
            return tmi_fail(TM_ERR_UNSUPPORTED, "%s: pre_tokenizer Split behavior Removed is not supported", tok->path);
        pre->kind = TMI_PRE_SPLIT;
        pre->invert = tmi_jbool(cfg, "invert", 0);
        st = split_regex_of(tok, cfg, pre);
    } else if (strcmp(type, "ByteLevel") == 0) {
        pre->kind = TMI_PRE_BYTELEVEL;
        pre->add_prefix_space = tmi_jbool(cfg, "add_prefix_space", 0);
        if (tmi_jbool(cfg, "use_regex", 1))
            st = tmi_pre_compile_regex(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, &pre->regex, &pre->match_data);
        tok->byte_level_model = 1;
    } else if (strcmp(type, "Metaspace") == 0) {
        size_t n;
        const char *r = tmi_jstr(cfg, "replacement", &n);
        if (!r || !n) return tmi_fail(TM_ERR_FORMAT, "%s: pre_tokenizer Metaspace needs a replacement", tok->path);
        const char *scheme = tmi_jstr(cfg, "prepend_scheme", NULL);
        if (scheme && strcmp(scheme, "always") && strcmp(scheme, "first") && strcmp(scheme, "never"))
            return tmi_fail(TM_ERR_FORMAT, "%s: Metaspace prepend_scheme must be always, first or never", tok->path);
        pre->kind = TMI_PRE_METASPACE;
        pre->repl = keep(tok, r, n);
        pre->repl_len = (uint32_t)n;
        pre->add_prefix_space = tmi_jbool(cfg, "add_prefix_space", 0) && !(scheme && strcmp(scheme, "never") == 0);
        pre->prepend_first = scheme && strcmp(scheme, "first") == 0;
        if (!pre->repl) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    } else {
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported", tok->path, type);
    }
    if (st) return st;
    tok->n_pres++;
    return TM_OK;
}

tm_status tmi_load_pre_tokenizer(tm_tokenizer *tok, const tmi_json *cfg)
{
    tok->pres = calloc(MAX_STAGES, sizeof *tok->pres);
    if (!tok->pres) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    return is_null(cfg) ? TM_OK : add_pre(tok, cfg);
}

/* --------------------------------------------------------- post-processor -- */

static tm_status special_id(tm_tokenizer *tok, const char *name, size_t n, int32_t *id)
{
    if (tmi_strmap_get(&tok->tok2id, name, n, id)) return TM_OK;
    return tmi_fail(TM_ERR_FORMAT, "%s: post_processor names the token \"%.*s\", which is not in the vocabulary",
                    tok->path, (int)n, name);
}

static tm_status load_template(tm_tokenizer *tok, const tmi_json *cfg)
{
    const tmi_json *single = tmi_json_get(cfg, "single");
    if (!single || single->type != TMI_JSON_ARRAY)
        return tmi_fail(TM_ERR_FORMAT, "%s: TemplateProcessing needs a single array", tok->path);
    free(tok->prefix_ids);
    free(tok->suffix_ids);
    tok->prefix_ids = malloc((size_t)(single->len + 1) * sizeof(int32_t));
    tok->suffix_ids = malloc((size_t)(single->len + 1) * sizeof(int32_t));
    if (!tok->prefix_ids || !tok->suffix_ids) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    tok->n_prefix = tok->n_suffix = 0;
    int seen_a = 0;
    for (int64_t i = 0; i < single->len; i++) {
        const tmi_json *item = &single->items[i];
        const tmi_json *sp = tmi_json_get(item, "SpecialToken");
        if (sp) {
            size_t n;
            const char *name = tmi_jstr(sp, "id", &n);
            int32_t id;
            if (!name) return tmi_fail(TM_ERR_FORMAT, "%s: TemplateProcessing SpecialToken needs an id", tok->path);
            tm_status st = special_id(tok, name, n, &id);
            if (st) return st;
            if (seen_a) tok->suffix_ids[tok->n_suffix++] = id;
            else tok->prefix_ids[tok->n_prefix++] = id;
        } else if (tmi_json_get(item, "Sequence")) {
            seen_a = 1;
        } else {
            return tmi_fail(TM_ERR_FORMAT, "%s: TemplateProcessing items are SpecialToken or Sequence", tok->path);
        }
    }
    return TM_OK;
}

tm_status tmi_load_post_processor(tm_tokenizer *tok, const tmi_json *cfg)
{
    if (is_null(cfg)) return TM_OK;
    const char *type = jtype(cfg);
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(tok, cfg);
    if (strcmp(type, "ByteLevel") == 0) return TM_OK; /* adds nothing for one text */
    if (strcmp(type, "Sequence") == 0) {
        const tmi_json *list = tmi_json_get(cfg, "processors");
        if (!list || list->type != TMI_JSON_ARRAY)
            return tmi_fail(TM_ERR_FORMAT, "%s: post_processor Sequence needs a processors array", tok->path);
        for (int64_t i = 0; i < list->len; i++) {
            tm_status st = tmi_load_post_processor(tok, &list->items[i]);
            if (st) return st;
        }
        return TM_OK;
    }
    return tmi_fail(TM_ERR_UNSUPPORTED, "%s: post_processor type \"%s\" is not supported", tok->path, type);
}

/* ---------------------------------------------------------------- decoder -- */

static tm_status add_replace(tm_tokenizer *tok, const char *pat, size_t pn, const char *with, size_t wn)
{
    tmi_decoder *d = &tok->dec;
    if (d->n_replace == TMI_DEC_MAX_REPLACE)
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: more than %d Replace decoders", tok->path, TMI_DEC_MAX_REPLACE);
    d->replace_pat[d->n_replace] = keep(tok, pat, pn);
    d->replace_pat_len[d->n_replace] = (uint32_t)pn;
    d->replace_with[d->n_replace] = keep(tok, with, wn);
    d->replace_with_len[d->n_replace] = (uint32_t)wn;
    if (!d->replace_pat[d->n_replace] || !d->replace_with[d->n_replace])
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    d->n_replace++;
    return TM_OK;
}

static tm_status add_decoder(tm_tokenizer *tok, const tmi_json *cfg, int *fused)
{
    const char *type = jtype(cfg);
    tmi_decoder *d = &tok->dec;
    size_t n, m;
    if (strcmp(type, "Sequence") == 0) {
        const tmi_json *list = tmi_json_get(cfg, "decoders");
        if (!list || list->type != TMI_JSON_ARRAY)
            return tmi_fail(TM_ERR_FORMAT, "%s: decoder Sequence needs a decoders array", tok->path);
        for (int64_t i = 0; i < list->len; i++) {
            tm_status st = add_decoder(tok, &list->items[i], fused);
            if (st) return st;
        }
        return TM_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        d->byte_level = 1;
        return TM_OK;
    }
    if (strcmp(type, "ByteFallback") == 0) {
        d->byte_fallback = d->strip_bom_in_runs = 1;
        return TM_OK;
    }
    if (strcmp(type, "Fuse") == 0) {
        *fused = 1;
        return TM_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const char *pat;
        tm_status st = string_pattern(tok, cfg, "decoder Replace", &pat, &n);
        if (st) return st;
        const char *with = tmi_jstr(cfg, "content", &m);
        if (!with) return tmi_fail(TM_ERR_FORMAT, "%s: decoder Replace needs a content string", tok->path);
        if (d->byte_fallback || *fused)
            return tmi_fail(TM_ERR_UNSUPPORTED, "%s: a Replace decoder after ByteFallback or Fuse is not supported",
                            tok->path);
        return add_replace(tok, pat, n, with, m);
    }
    if (strcmp(type, "Strip") == 0) {
        const char *content = tmi_jstr(cfg, "content", &n);
        const tmi_json *start = tmi_json_get(cfg, "start"), *stop = tmi_json_get(cfg, "stop");
        int64_t a = start && start->is_int ? start->i : 0, b = stop && stop->is_int ? stop->i : 0;
        if (!content || n != 1 || content[0] != ' ' || a > 1 || b != 0 || (a == 1 && !*fused))
            return tmi_fail(TM_ERR_UNSUPPORTED, "%s: only Strip(content \" \", start <= 1, stop 0) after Fuse is "
                                                "supported", tok->path);
        d->strip_first_space = a == 1;
        return TM_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *r = tmi_jstr(cfg, "replacement", &n);
        if (!r || !n) return tmi_fail(TM_ERR_FORMAT, "%s: decoder Metaspace needs a replacement", tok->path);
        d->metaspace_prefix = tmi_jbool(cfg, "add_prefix_space", 0);
        return add_replace(tok, r, n, " ", 1);
    }
    return tmi_fail(TM_ERR_UNSUPPORTED, "%s: decoder type \"%s\" is not supported", tok->path, type);
}

tm_status tmi_load_decoder(tm_tokenizer *tok, const tmi_json *cfg)
{
    if (is_null(cfg)) return tmi_fail(TM_ERR_UNSUPPORTED, "%s: a tokenizer without a decoder is not supported", tok->path);
    int fused = 0;
    return add_decoder(tok, cfg, &fused);
}

/* -------------------------------------------------------- tokenizer_config -- */

/* bos_token / eos_token: a string or {"content": ...}; -1 when absent, null or unknown. */
static int32_t config_token(const tm_tokenizer *tok, const tmi_json *cfg, const char *key)
{
    const tmi_json *v = cfg ? tmi_json_get(cfg, key) : NULL;
    if (v && v->type == TMI_JSON_OBJECT) v = tmi_json_get(v, "content");
    int32_t id;
    if (!v || v->type != TMI_JSON_STRING || !tmi_strmap_get(&tok->tok2id, v->str, (size_t)v->len, &id)) return -1;
    return id;
}

static tm_status apply_config(tm_tokenizer *tok, const tmi_json *cfg, const char *config_path)
{
    if (tmi_jbool(cfg, "remove_space", 0) || tmi_jbool(cfg, "do_lowercase_and_remove_accent", 0))
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: remove_space / do_lowercase_and_remove_accent are not supported",
                        config_path);
    const char *cls = tmi_jstr(cfg, "tokenizer_class", NULL);
    if (cls && strncmp(cls, "LlamaTokenizer", 14) == 0 && !tmi_jbool(cfg, "legacy", 1))
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: a LlamaTokenizer with legacy false is not supported", config_path);
    tok->dec.cleanup = tmi_jbool(cfg, "clean_up_tokenization_spaces", 1);
    int32_t bos = config_token(tok, cfg, "bos_token"), eos = config_token(tok, cfg, "eos_token");
    if (bos >= 0) tok->bos_id = bos;
    if (eos >= 0) tok->eos_id = eos;
    const tmi_json *ab = tmi_json_get(cfg, "add_bos_token"), *ae = tmi_json_get(cfg, "add_eos_token");
    if ((ab && ab->type != TMI_JSON_NULL) || (ae && ae->type != TMI_JSON_NULL)) {
        int add_bos = tmi_jbool(cfg, "add_bos_token", 0), add_eos = tmi_jbool(cfg, "add_eos_token", 0);
        tok->n_prefix = tok->n_suffix = 0;
        if (add_bos && tok->bos_id >= 0) tok->prefix_ids[tok->n_prefix++] = tok->bos_id;
        if (add_eos && tok->eos_id >= 0) tok->suffix_ids[tok->n_suffix++] = tok->eos_id;
    }
    const tmi_json *extra = tmi_json_get(cfg, "additional_special_tokens");
    for (int64_t i = 0; extra && extra->type == TMI_JSON_ARRAY && i < extra->len; i++) {
        const tmi_json *v = &extra->items[i];
        if (v->type == TMI_JSON_OBJECT) v = tmi_json_get(v, "content");
        int32_t id;
        if (v && v->type == TMI_JSON_STRING && tmi_strmap_get(&tok->tok2id, v->str, (size_t)v->len, &id))
            tok->flags[id] |= TMI_TOK_SPECIAL;
    }
    return TM_OK;
}

/* Marks ids whose text equals an added (special) token's: the reference compares
 * token strings, so a vocabulary id spelled like an added token counts too. */
static tm_status mark_added(tm_tokenizer *tok)
{
    tmi_strmap set = {0};
    tm_status st = tmi_strmap_init(&set, (size_t)tok->n_added);
    for (int32_t i = 0; !st && i < tok->n_added; i++) {
        int32_t prev = 0;
        int special = tok->added[i].special;
        if (tmi_strmap_get(&set, tok->added[i].content, tok->added[i].len, &prev)) special |= prev;
        st = tmi_strmap_put(&set, tok->added[i].content, tok->added[i].len, special);
    }
    for (int32_t id = 0; !st && id < tok->n_ids; id++) {
        int32_t special;
        if (tok->pieces[id] && tmi_strmap_get(&set, tok->pieces[id], tok->piece_lens[id], &special))
            tok->flags[id] |= TMI_TOK_ADDED | (special ? TMI_TOK_SPECIAL : 0);
    }
    tmi_strmap_free(&set);
    return st;
}

tm_status tmi_tok_finish(tm_tokenizer *tok, const char *config_path)
{
    if (!tok->prefix_ids) {
        tok->prefix_ids = malloc(2 * sizeof(int32_t));
        tok->suffix_ids = malloc(2 * sizeof(int32_t));
        if (!tok->prefix_ids || !tok->suffix_ids) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    tok->bos_id = tok->n_prefix ? tok->prefix_ids[0] : -1;
    tok->eos_id = tok->n_suffix ? tok->suffix_ids[tok->n_suffix - 1] : -1;
    tok->dec.cleanup = 1; /* the reference's default without a config */
    tm_status st = mark_added(tok);
    if (!st && config_path) {
        char *text = NULL;
        size_t len;
        st = tmi_read_file(config_path, &text, &len);
        if (st == TM_ERR_IO) {
            st = TM_OK; /* no tokenizer_config.json: defaults */
        } else if (!st) {
            tmi_json_doc *doc = NULL;
            const tmi_json *root;
            st = tmi_json_parse(text, len, config_path, 64, &doc, &root);
            if (!st && root->type != TMI_JSON_OBJECT)
                st = tmi_fail(TM_ERR_FORMAT, "%s: the top level must be an object", config_path);
            if (!st) st = apply_config(tok, root, config_path);
            tmi_json_free(doc);
        }
        free(text);
    }
    if (!st) st = tmi_added_index(tok);
    if (!st) st = tmi_bpe_finish(tok);
    if (!st) st = tmi_decode_build(tok);
    return st;
}

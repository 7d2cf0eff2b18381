/* tokenizer_pretok.c - normalizers and pre-tokenizers: what happens to a text
 * section between the added-token split and BPE.
 *
 * Regexes come from tokenizer.json in Python syntax and the reference runs them as
 * JavaScript /gu regexes after a few rewrites; PCRE2 runs them here after the same
 * rewrites plus one more: \s is spelled out as JavaScript's whitespace set, and the
 * pattern is compiled with PCRE2_UTF but without PCRE2_UCP, so \d, \w and \b stay
 * ASCII as in JavaScript while \p{L} and \p{N} are Unicode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

#ifdef TMRUN_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

/* ------------------------------------------------------- byte-level alphabet -- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other
 * 68 bytes to U+0100.. in byte order. */
uint32_t tmi_byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) n++;
    return 256 + n;
}

int tmi_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return tmi_byte_to_cp((uint8_t)cp) == cp ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    for (int b = 0; b < 256; b++)
        if (tmi_byte_to_cp((uint8_t)b) == cp) return b;
    return -1;
}

/* ------------------------------------------------------------------ regexes -- */

static const char JS_SPACE_CLASS[] =
    "\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}\\x{FEFF}";

/* The reference's PROBLEMATIC_REGEX_MAP: Python's (?i:...) is not JavaScript. */
static const char *const JS_REWRITES[][2] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))"},
};

static tm_status append_rewritten(tmi_buf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        int done = 0;
        for (size_t r = 0; r < sizeof JS_REWRITES / sizeof JS_REWRITES[0]; r++) {
            size_t k = strlen(JS_REWRITES[r][0]);
            if (k <= n - i && memcmp(p + i, JS_REWRITES[r][0], k) == 0) {
                tm_status st = tmi_buf_append(out, JS_REWRITES[r][1], strlen(JS_REWRITES[r][1]));
                if (st) return st;
                i += k;
                done = 1;
                break;
            }
        }
        if (done) continue;
        /* \# \& \~ lose their backslash in the reference */
        if (p[i] == '\\' && i + 1 < n && (p[i + 1] == '#' || p[i + 1] == '&' || p[i + 1] == '~')) i++;
        tm_status st = tmi_buf_append(out, p + i, 1);
        if (st) return st;
        i++;
    }
    return TM_OK;
}

/* Rewrites JavaScript-isms PCRE2 reads differently: \s, \S, \uXXXX. */
static tm_status translate_escapes(const char *p, size_t n, tmi_buf *out)
{
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        tm_status st = TM_OK;
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[++i];
            if (e == 's') {
                if (!in_class) st = tmi_buf_append(out, "[", 1);
                if (!st) st = tmi_buf_append(out, JS_SPACE_CLASS, sizeof JS_SPACE_CLASS - 1);
                if (!st && !in_class) st = tmi_buf_append(out, "]", 1);
            } else if (e == 'S') {
                if (in_class) return tmi_fail(TM_ERR_UNSUPPORTED, "\\S inside a character class");
                st = tmi_buf_append(out, "[^", 2);
                if (!st) st = tmi_buf_append(out, JS_SPACE_CLASS, sizeof JS_SPACE_CLASS - 1);
                if (!st) st = tmi_buf_append(out, "]", 1);
            } else if (e == 'u' && i + 4 < n) {
                char tmp[16];
                snprintf(tmp, sizeof tmp, "\\x{%.4s}", p + i + 1);
                st = tmi_buf_append(out, tmp, strlen(tmp));
                i += 4;
            } else {
                char two[2] = {'\\', e};
                st = tmi_buf_append(out, two, 2);
            }
        } else {
            if (c == '[' && !in_class) in_class = 1;
            else if (c == ']' && in_class) in_class = 0;
            st = tmi_buf_append(out, &c, 1);
        }
        if (st) return st;
    }
    return tmi_buf_append(out, "", 1); /* NUL for messages */
}

tm_status tmi_pre_compile_regex(const char *js_pattern, size_t len, void **code, void **match_data)
{
#ifdef TMRUN_HAVE_PCRE2
    tmi_buf a = {0}, b = {0};
    tm_status st = append_rewritten(&a, js_pattern, len);
    if (!st) st = translate_escapes(a.data ? a.data : "", a.len, &b);
    if (st) goto done;
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.data, b.len - 1, PCRE2_UTF, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        st = tmi_fail(TM_ERR_FORMAT, "regex /%.*s/ at offset %zu: %s", (int)len, js_pattern, (size_t)off,
                      (const char *)msg);
        goto done;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter runs the same when JIT is absent */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        st = tmi_fail(TM_ERR_NOMEM, "regex: out of memory");
        goto done;
    }
    *code = re;
    *match_data = md;
done:
    tmi_buf_free(&a);
    tmi_buf_free(&b);
    return st;
#else
    (void)js_pattern, (void)len, (void)code, (void)match_data;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no PCRE2: Split pre-tokenizers need it");
#endif
}

void tmi_pre_free_regex(void *code, void *match_data)
{
#ifdef TMRUN_HAVE_PCRE2
    if (match_data) pcre2_match_data_free(match_data);
    if (code) pcre2_code_free(code);
#else
    (void)code, (void)match_data;
#endif
}

/* -------------------------------------------------------------- piece lists -- */

/* Pieces are (offset, length) pairs into one text buffer; every step writes a new
 * buffer and list, so pieces never alias what they were made from. */
typedef tmi_pieces pieces;

static tm_status piece_add(pieces *p, const char *s, size_t n)
{
    tm_status st = tmi_ivec_push(&p->spans, (int32_t)p->text.len);
    if (!st) st = tmi_ivec_push(&p->spans, (int32_t)n);
    if (!st) st = tmi_buf_append(&p->text, s, n);
    return st;
}

/* Appends s with every occurrence of pat replaced by rep (left to right, not
 * overlapping: String.prototype.replaceAll). */
static tm_status append_replaced(tmi_buf *out, const char *s, size_t n, const char *pat, size_t pn,
                                 const char *rep, size_t rn)
{
    size_t i = 0;
    while (pn && i + pn <= n) {
        const char *hit = memchr(s + i, pat[0], n - i - pn + 1);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        if (memcmp(hit, pat, pn) != 0) {
            tm_status st = tmi_buf_append(out, s + i, at + 1 - i);
            if (st) return st;
            i = at + 1;
            continue;
        }
        tm_status st = tmi_buf_append(out, s + i, at - i);
        if (!st) st = tmi_buf_append(out, rep, rn);
        if (st) return st;
        i = at + pn;
    }
    return tmi_buf_append(out, s + i, n - i);
}

#ifdef TMRUN_HAVE_PCRE2
/* regexSplit: the gaps and the matches, empty ones dropped (invert: matches only). */
static tm_status split_regex(const tmi_pre *pre, const char *s, size_t n, pieces *out)
{
    pcre2_code *re = pre->regex;
    pcre2_match_data *md = pre->match_data;
    size_t prev = 0, at = 0;
    while (at <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return tmi_fail(TM_ERR_INTERNAL, "regex match failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        tm_status st = TM_OK;
        if (!pre->invert && prev < ms) st = piece_add(out, s + prev, ms - prev);
        if (!st && me > ms) st = piece_add(out, s + ms, me - ms);
        if (st) return st;
        prev = me;
        if (me > ms) {
            at = me;
        } else { /* an empty match: step over one code point, as /u does */
            if (me >= n) break;
            at = me + 1;
            while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
        }
    }
    if (!pre->invert && prev < n) return piece_add(out, s + prev, n - prev);
    return TM_OK;
}
#endif

static tm_status pre_step(const tmi_pre *pre, const pieces *in, int section_index, pieces *out)
{
    for (size_t k = 0; k < in->spans.len; k += 2) {
        const char *s = in->text.data + in->spans.data[k];
        size_t n = (size_t)in->spans.data[k + 1];
        tm_status st = TM_OK;
        if (pre->kind == TMI_PRE_METASPACE) {
            size_t at = out->text.len;
            int prepend = pre->add_prefix_space && (!pre->prepend_first || section_index == 0);
            tmi_buf *t = &out->text;
            st = append_replaced(t, s, n, " ", 1, pre->repl, pre->repl_len);
            size_t len = t->len - at;
            if (!st && prepend && !(len >= pre->repl_len && memcmp(t->data + at, pre->repl, pre->repl_len) == 0)) {
                st = tmi_buf_reserve(t, pre->repl_len);
                if (!st) {
                    memmove(t->data + at + pre->repl_len, t->data + at, len);
                    memcpy(t->data + at, pre->repl, pre->repl_len);
                    t->len += pre->repl_len;
                    len += pre->repl_len;
                }
            }
            if (!st) st = tmi_ivec_push(&out->spans, (int32_t)at);
            if (!st) st = tmi_ivec_push(&out->spans, (int32_t)len);
        } else {
            pieces tmp = {0};
            const char *src = s;
            size_t src_n = n;
            if (pre->kind == TMI_PRE_BYTELEVEL && pre->add_prefix_space && !(n > 0 && s[0] == ' ')) {
                st = tmi_buf_append(&tmp.text, " ", 1);
                if (!st) st = tmi_buf_append(&tmp.text, s, n);
                src = tmp.text.data;
                src_n = n + 1;
            }
#ifdef TMRUN_HAVE_PCRE2
            if (!st && pre->regex) st = split_regex(pre, src, src_n, out);
            else
#endif
            if (!st) st = piece_add(out, src, src_n);
            tmi_buf_free(&tmp.text);
        }
        if (st) return st;
    }
    return TM_OK;
}

/* ---------------------------------------------------------------- sections -- */

static tm_status normalize(tm_tokenizer *tok, const char *s, size_t n, tmi_buf *out)
{
    tmi_buf *cur = out, *nxt = &tok->scratch_pre;
    out->len = 0;
    tm_status st = tmi_buf_append(out, s, n);
    for (int32_t i = 0; !st && i < tok->n_norms; i++) {
        const tmi_norm *nm = &tok->norms[i];
        nxt->len = 0;
        if (nm->kind == TMI_NORM_PREPEND) {
            st = tmi_buf_append(nxt, nm->a, nm->a_len);
            if (!st) st = tmi_buf_append(nxt, cur->data, cur->len);
        } else if (nm->kind == TMI_NORM_REPLACE) {
            st = append_replaced(nxt, cur->data, cur->len, nm->a, nm->a_len, nm->b, nm->b_len);
        } else {
            st = tmi_nfc(cur->data, cur->len, nxt);
        }
        tmi_buf *t = cur;
        cur = nxt;
        nxt = t;
    }
    if (!st && cur != out) {
        tmi_buf t = *out;
        *out = *cur;
        *cur = t;
    }
    return st;
}

static void fuse_unk(const tm_tokenizer *tok, tmi_ivec *out, size_t first)
{
    size_t w = first;
    for (size_t r = first; r < out->len; r++) {
        if (out->data[r] == tok->unk_id && w > first && out->data[w - 1] == tok->unk_id) continue;
        out->data[w++] = out->data[r];
    }
    out->len = w;
}

tm_status tmi_encode_section(tm_tokenizer *tok, const char *s, size_t n, int section_index, tmi_ivec *out)
{
    tm_status st = normalize(tok, s, n, &tok->scratch_norm);
    if (st || tok->scratch_norm.len == 0) return st;
    pieces *a = &tok->scratch_pieces[0], *b = &tok->scratch_pieces[1];
    a->text.len = a->spans.len = 0;
    st = piece_add(a, tok->scratch_norm.data, tok->scratch_norm.len);
    for (int32_t i = 0; !st && i < tok->n_pres; i++) {
        b->text.len = b->spans.len = 0;
        st = pre_step(&tok->pres[i], a, section_index, b);
        pieces *t = a;
        a = b;
        b = t;
    }
    size_t first = out->len;
    for (size_t k = 0; !st && k < a->spans.len; k += 2)
        st = tmi_bpe_word(tok, a->text.data + a->spans.data[k], (size_t)a->spans.data[k + 1], out);
    if (!st && tok->fuse_unk && tok->unk_id >= 0) fuse_unk(tok, out, first);
    return st;
}

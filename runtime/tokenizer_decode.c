/* tokenizer_decode.c - ids to text, all at once or one id at a time.
 *
 * Every id has a piece: raw bytes (byte-level tokens; byte-fallback <0xXX>
 * tokens), or text (SentencePiece pieces with "▁" made " "; byte-level added
 * tokens).  Runs of raw-byte pieces are decoded as UTF-8 like a WHATWG TextDecoder:
 * each maximal ill-formed subpart is one U+FFFD, an unfinished character at the end
 * of a run is one U+FFFD, and the ByteFallback decoder's TextDecoder also drops a
 * BOM that starts a run.  Then the Strip decoder drops one leading space, and
 * clean_up_tokenization_spaces rewrites " ." to "." and the like.
 *
 * The stream runs the same machine one id at a time.  It holds back the bytes of
 * an unfinished character, and with cleanup on, the text after the last point no
 * cleanup pattern can straddle (a cut with no space in the three bytes before it),
 * so that the concatenation of what it returns equals decode() of all the ids. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

struct tm_tokenizer_stream {
    const tm_tokenizer *tok;
    int skip_special;
    int in_run;      /* inside a run of raw-byte pieces */
    int run_first;   /* the next character is the run's first (BOM check) */
    int at_start;    /* no character yet (Strip) */
    int first_token; /* no token yet (Metaspace's first-token prefix) */
    unsigned char pend[4]; /* bytes of an unfinished character */
    int pend_len;
    tmi_buf pending;       /* decoded text not yet returned (cleanup hold-back) */
    unsigned char tail[3]; /* the last raw bytes before pending */
    int tail_len;
    tmi_buf out; /* what the last call returned */
};

/* ------------------------------------------------------------- the pieces -- */

/* parseInt(s, 16) of two characters, as the reference reads <0xXX>: the leading hex
 * digits count, the first must be one. */
static int js_parse_hex2(const char *s)
{
    int v = 0, k = 0;
    for (; k < 2; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) break;
        v = v * 16 + d;
    }
    return k ? v : -1;
}

/* The piece of a byte-level token: each character's byte (characters outside the
 * alphabet become 0, as Uint8Array.from does with undefined). */
static char *byte_level_piece(tm_tokenizer *tok, const char *s, size_t n, uint32_t *len)
{
    char *p = tmi_arena_strdup(&tok->arena, NULL, n);
    if (!p) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int bad;
        int l = tmi_utf8_decode((const unsigned char *)s + i, n - i, &cp, &bad);
        i += l ? (size_t)l : (size_t)bad;
        int b = l ? tmi_cp_to_byte(cp) : -1;
        p[k++] = (char)(b < 0 ? 0 : b);
    }
    *len = (uint32_t)k;
    return p;
}

tm_status tmi_decode_build(tm_tokenizer *tok)
{
    tok->dec_pieces = calloc((size_t)tok->n_ids, sizeof *tok->dec_pieces);
    tok->dec_lens = calloc((size_t)tok->n_ids, sizeof *tok->dec_lens);
    if (!tok->dec_pieces || !tok->dec_lens) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    const tmi_decoder *d = &tok->dec;
    for (int32_t id = 0; id < tok->n_ids; id++) {
        const char *s = tok->pieces[id];
        size_t n = tok->piece_lens[id];
        if (!s) continue;
        char *p;
        uint32_t len = 0;
        if (d->byte_level && !(tok->flags[id] & TMI_TOK_ADDED)) {
            p = byte_level_piece(tok, s, n, &len);
        } else if (d->byte_fallback && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
                   js_parse_hex2(s + 3) >= 0) {
            char b = (char)js_parse_hex2(s + 3);
            p = tmi_arena_strdup(&tok->arena, &b, 1);
            len = 1;
            tok->flags[id] |= TMI_TOK_BYTE;
        } else {
            tmi_buf t = {0};
            tm_status st = tmi_buf_append(&t, s, n);
            for (int32_t r = 0; !st && r < d->n_replace; r++) {
                tmi_buf u = {0};
                st = tmi_buf_append(&u, "", 0);
                for (size_t i = 0; !st && i < t.len;) {
                    size_t pl = d->replace_pat_len[r];
                    if (pl && i + pl <= t.len && memcmp(t.data + i, d->replace_pat[r], pl) == 0) {
                        st = tmi_buf_append(&u, d->replace_with[r], d->replace_with_len[r]);
                        i += pl;
                    } else {
                        st = tmi_buf_append(&u, t.data + i, 1);
                        i++;
                    }
                }
                tmi_buf_free(&t);
                t = u;
            }
            if (st) {
                tmi_buf_free(&t);
                return st;
            }
            p = tmi_arena_strdup(&tok->arena, t.data, t.len);
            len = (uint32_t)t.len;
            tmi_buf_free(&t);
        }
        if (!p) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
        tok->dec_pieces[id] = p;
        tok->dec_lens[id] = len;
    }
    return TM_OK;
}

void tmi_decode_free(tm_tokenizer *tok)
{
    free(tok->dec_pieces);
    free(tok->dec_lens);
}

/* ----------------------------------------------------------------- cleanup -- */

size_t tmi_cleanup_spaces(char *s, size_t n)
{
    /* clean_up_tokenization: ten global replaces, each over the previous result */
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]), w = 0;
        for (size_t i = 0; i < n;) {
            if (i + fl <= n && memcmp(s + i, from[r], fl) == 0) {
                memmove(s + w, to[r], tl);
                w += tl;
                i += fl;
            } else {
                s[w++] = s[i++];
            }
        }
        n = w;
    }
    return n;
}

/* ------------------------------------------------------------ the machine -- */

static tm_status emit_cp(tm_tokenizer_stream *s, uint32_t cp)
{
    if (s->run_first) {
        s->run_first = 0;
        if (cp == 0xFEFF && s->tok->dec.strip_bom_in_runs) return TM_OK;
    }
    if (s->at_start) {
        s->at_start = 0;
        if (cp == ' ' && s->tok->dec.strip_first_space) return TM_OK;
    }
    char u[4];
    return tmi_buf_append(&s->pending, u, (size_t)tmi_utf8_encode(cp, u));
}

static int lead_ok(unsigned char c) { return c < 0x80 || (c >= 0xC2 && c <= 0xF4); }

static tm_status feed_byte(tm_tokenizer_stream *s, unsigned char b)
{
    s->pend[s->pend_len++] = b;
    while (s->pend_len > 0) {
        uint32_t cp;
        int bad = 1;
        int k = lead_ok(s->pend[0]) ? tmi_utf8_decode(s->pend, (size_t)s->pend_len, &cp, &bad) : 0;
        if (k) {
            s->pend_len = 0;
            return emit_cp(s, cp);
        }
        if (lead_ok(s->pend[0]) && bad == s->pend_len) return TM_OK; /* unfinished: wait */
        tm_status st = emit_cp(s, 0xFFFD);
        if (st) return st;
        memmove(s->pend, s->pend + bad, (size_t)(s->pend_len - bad));
        s->pend_len -= bad;
    }
    return TM_OK;
}

static tm_status end_run(tm_tokenizer_stream *s)
{
    tm_status st = TM_OK;
    if (s->pend_len) st = emit_cp(s, 0xFFFD); /* an unfinished character */
    s->pend_len = 0;
    s->in_run = 0;
    s->run_first = 0;
    return st;
}

static tm_status feed_piece(tm_tokenizer_stream *s, int32_t id)
{
    const tm_tokenizer *tok = s->tok;
    const unsigned char *p = (const unsigned char *)tok->dec_pieces[id];
    size_t n = tok->dec_lens[id];
    int raw = tok->dec.byte_level ? !(tok->flags[id] & TMI_TOK_ADDED) : (tok->flags[id] & TMI_TOK_BYTE) != 0;
    int first_token = s->first_token;
    s->first_token = 0;
    tm_status st = TM_OK;
    if (raw) {
        if (!s->in_run) {
            s->in_run = 1;
            s->run_first = 1;
        }
        for (size_t i = 0; !st && i < n; i++) st = feed_byte(s, p[i]);
        return st;
    }
    if (s->in_run && (st = end_run(s))) return st;
    if (first_token && tok->dec.metaspace_prefix && n > 0 && p[0] == ' ') p++, n--;
    if (n == 0) return TM_OK;
    if (s->at_start) {
        s->at_start = 0;
        if (p[0] == ' ' && tok->dec.strip_first_space) p++, n--;
    }
    return tmi_buf_append(&s->pending, p, n);
}

/* Moves the returnable part of pending to out (all of it when final). */
static tm_status release(tm_tokenizer_stream *s, int final)
{
    tmi_buf *pd = &s->pending;
    s->out.len = 0;
    size_t cut = pd->len;
    if (s->tok->dec.cleanup && !final) {
        for (;; cut--) {
            int ok = cut == pd->len || ((unsigned char)pd->data[cut] & 0xC0) != 0x80;
            for (int k = 1; ok && k <= 3; k++) {
                unsigned char c;
                if (cut >= (size_t)k) c = (unsigned char)pd->data[cut - k];
                else if ((size_t)k - cut <= (size_t)s->tail_len) c = s->tail[s->tail_len - (int)(k - cut)];
                else break;
                ok = c != ' ';
            }
            if (ok || cut == 0) break;
        }
        if (cut == 0) return TM_OK;
    }
    /* remember the raw bytes before the cut for the next decision */
    unsigned char t[6];
    int tl = 0;
    for (int k = 0; k < s->tail_len; k++) t[tl++] = s->tail[k];
    for (size_t i = cut >= 3 ? cut - 3 : 0; i < cut; i++) t[tl++] = (unsigned char)pd->data[i];
    s->tail_len = tl < 3 ? tl : 3;
    memcpy(s->tail, t + tl - s->tail_len, (size_t)s->tail_len);

    tm_status st = tmi_buf_append(&s->out, pd->data, cut);
    if (st) return st;
    if (s->tok->dec.cleanup) s->out.len = tmi_cleanup_spaces(s->out.data, s->out.len);
    if (cut) memmove(pd->data, pd->data + cut, pd->len - cut);
    pd->len -= cut;
    return tmi_buf_reserve(&s->out, 1);
}

static void stream_restart(tm_tokenizer_stream *s)
{
    s->in_run = s->run_first = 0;
    s->at_start = s->first_token = 1;
    s->pend_len = 0;
    s->pending.len = 0;
    s->tail_len = 0;
}

static tm_status check_id(const tm_tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_ids)
        return tmi_fail(TM_ERR_INVALID_ARG, "token id %d is outside [0, %d)", (int)id, (int)tok->n_ids);
    if (!tok->dec_pieces[id]) return tmi_fail(TM_ERR_INVALID_ARG, "token id %d has no token", (int)id);
    return TM_OK;
}

/* ------------------------------------------------------------- public API -- */

tm_status tm_tokenizer_stream_create(const tm_tokenizer *tok, int32_t skip_special, tm_tokenizer_stream **out)
{
    if (!tok || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_stream_create: tok and out must not be NULL");
    tm_tokenizer_stream *s = calloc(1, sizeof *s);
    if (!s) return tmi_fail(TM_ERR_NOMEM, "tokenizer stream: out of memory");
    s->tok = tok;
    s->skip_special = skip_special != 0;
    stream_restart(s);
    *out = s;
    return TM_OK;
}

void tm_tokenizer_stream_destroy(tm_tokenizer_stream *stream)
{
    if (!stream) return;
    tmi_buf_free(&stream->pending);
    tmi_buf_free(&stream->out);
    free(stream);
}

tm_status tm_tokenizer_stream_feed(tm_tokenizer_stream *stream, int32_t id, const char **text, size_t *len)
{
    if (!stream || !text || !len)
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_stream_feed: stream, text and len must not be NULL");
    tm_status st = check_id(stream->tok, id);
    if (st) return st;
    if (!(stream->skip_special && (stream->tok->flags[id] & TMI_TOK_SPECIAL))) st = feed_piece(stream, id);
    if (!st) st = release(stream, 0);
    if (st) return st;
    *text = stream->out.data ? stream->out.data : "";
    *len = stream->out.len;
    if (stream->out.data) stream->out.data[stream->out.len] = 0;
    return TM_OK;
}

tm_status tm_tokenizer_stream_flush(tm_tokenizer_stream *stream, const char **text, size_t *len)
{
    if (!stream || !text || !len)
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_stream_flush: stream, text and len must not be NULL");
    tm_status st = stream->in_run ? end_run(stream) : TM_OK;
    if (!st) st = release(stream, 1);
    if (st) return st;
    *text = stream->out.data ? stream->out.data : "";
    *len = stream->out.len;
    if (stream->out.data) stream->out.data[stream->out.len] = 0;
    stream_restart(stream);
    return TM_OK;
}

tm_status tm_tokenizer_decode(const tm_tokenizer *tok, const int32_t *ids, int64_t n_ids, int32_t skip_special,
                              char *text, size_t cap, size_t *len)
{
    if (!tok || !len || (n_ids > 0 && !ids) || (cap > 0 && !text))
        return tmi_fail(TM_ERR_INVALID_ARG, "tm_tokenizer_decode: tok, len, ids (n_ids > 0) and text (cap > 0) "
                                            "must not be NULL");
    if (n_ids < 0) return tmi_fail(TM_ERR_INVALID_ARG, "n_ids must be >= 0, got %lld", (long long)n_ids);
    for (int64_t i = 0; i < n_ids; i++) {
        tm_status st = check_id(tok, ids[i]);
        if (st) return st;
    }
    tm_tokenizer_stream s = {0};
    s.tok = tok;
    s.skip_special = skip_special != 0;
    stream_restart(&s);
    tm_status st = TM_OK;
    for (int64_t i = 0; !st && i < n_ids; i++)
        if (!(s.skip_special && (tok->flags[ids[i]] & TMI_TOK_SPECIAL))) st = feed_piece(&s, ids[i]);
    if (!st && s.in_run) st = end_run(&s);
    if (!st) st = release(&s, 1);
    if (!st) {
        *len = s.out.len;
        if (cap > 0) {
            size_t k = s.out.len < cap ? s.out.len : cap;
            memcpy(text, s.out.data, k);
            if (k < cap) text[k] = 0;
        }
    }
    tmi_buf_free(&s.pending);
    tmi_buf_free(&s.out);
    return st;
}

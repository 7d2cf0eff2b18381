/* tokenizer_added.c - added and special tokens: found in the raw text before any
 * normalization (so "<|im_start|>" is never split by the regex), longest match
 * first at each position, and their lstrip/rstrip eat whitespace next to them.
 *
 * Like the reference, every added token is matched whatever its `normalized` or
 * `single_word` flag says, and only tokenizer.json's added_tokens count. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

tm_status tmi_added_index(tm_tokenizer *tok)
{
    free(tok->added_by_byte);
    tok->added_by_byte = malloc((size_t)(tok->n_added ? tok->n_added : 1) * sizeof(int32_t));
    if (!tok->added_by_byte) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", tok->path);
    int32_t counts[256] = {0};
    for (int32_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len) counts[(unsigned char)tok->added[i].content[0]]++;
    tok->added_start[0] = 0;
    for (int b = 0; b < 256; b++) tok->added_start[b + 1] = tok->added_start[b] + counts[b];
    int32_t fill[256];
    memcpy(fill, tok->added_start, sizeof fill);
    for (int32_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len) tok->added_by_byte[fill[(unsigned char)tok->added[i].content[0]]++] = i;
    return TM_OK;
}

/* The longest added token that text[at, len) starts with, or -1. */
static int32_t longest_added_at(const tm_tokenizer *tok, const char *text, size_t len, size_t at)
{
    unsigned b = (unsigned char)text[at];
    int32_t best = -1;
    uint32_t best_len = 0;
    for (int32_t k = tok->added_start[b]; k < tok->added_start[b + 1]; k++) {
        const tmi_added *a = &tok->added[tok->added_by_byte[k]];
        if (a->len > best_len && a->len <= len - at && memcmp(text + at, a->content, a->len) == 0) {
            best = tok->added_by_byte[k];
            best_len = a->len;
        }
    }
    return best;
}

/* An added token whose content is exactly s[0, n), or -1. */
static int32_t added_exact(const tm_tokenizer *tok, const char *s, size_t n)
{
    if (n == 0) return -1;
    int32_t i = longest_added_at(tok, s, n, 0);
    return i >= 0 && tok->added[i].len == n ? i : -1;
}

typedef struct section {
    size_t off, len;
    int32_t added; /* index into tok->added, -1: text */
} section;

static size_t trim_end(const char *s, size_t n)
{
    while (n > 0) {
        size_t i = n - 1;
        while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
        uint32_t cp;
        int bad;
        if (!tmi_utf8_decode((const unsigned char *)s + i, n - i, &cp, &bad) || !tmi_js_space(cp)) break;
        n = i;
    }
    return n;
}

static size_t trim_start(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int bad;
        int k = tmi_utf8_decode((const unsigned char *)s + i, n - i, &cp, &bad);
        if (!k || !tmi_js_space(cp)) break;
        i += (size_t)k;
    }
    return i;
}

static tm_status split_added(const tm_tokenizer *tok, const char *text, size_t len, section **out,
                             size_t *n_out)
{
    size_t cap = 16, n = 0, start = 0;
    section *secs = malloc(cap * sizeof *secs);
    if (!secs) return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i <= len; i++) {
        if (i < len) {
            unsigned b = (unsigned char)text[i];
            if (tok->added_start[b] == tok->added_start[b + 1]) continue; /* no token starts so */
        }
        int32_t a = i < len ? longest_added_at(tok, text, len, i) : -1;
        if (a < 0 && i < len) continue;
        if (n + 2 > cap) {
            cap *= 2;
            section *p = realloc(secs, cap * sizeof *p);
            if (!p) {
                free(secs);
                return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory");
            }
            secs = p;
        }
        if (i > start) secs[n++] = (section){start, i - start, -1};
        if (a < 0) break;
        secs[n++] = (section){i, tok->added[a].len, a};
        i += tok->added[a].len - 1;
        start = i + 1;
    }
    *out = secs;
    *n_out = n;
    return TM_OK;
}

tm_status tmi_encode_text(tm_tokenizer *tok, const char *text, size_t len, tmi_ivec *out)
{
    section *secs = NULL;
    size_t n = 0;
    tm_status st = split_added(tok, text, len, &secs, &n);
    if (st) return st;
    for (size_t i = 0; i < n; i++) {
        if (secs[i].added < 0) continue;
        const tmi_added *a = &tok->added[secs[i].added];
        if (a->lstrip && i > 0) secs[i - 1].len = trim_end(text + secs[i - 1].off, secs[i - 1].len);
        if (a->rstrip && i + 1 < n) {
            size_t cut = trim_start(text + secs[i + 1].off, secs[i + 1].len);
            secs[i + 1].off += cut;
            secs[i + 1].len -= cut;
        }
    }
    for (size_t i = 0; !st && i < n; i++) {
        const section *s = &secs[i];
        if (s->len == 0) continue;
        /* a trimmed token is text again, unless it is still some added token */
        int32_t a = s->added >= 0 && s->len == tok->added[s->added].len ? s->added
                                                                        : added_exact(tok, text + s->off, s->len);
        if (a >= 0) st = tmi_ivec_push(out, tok->added[a].id);
        else st = tmi_encode_section(tok, text + s->off, s->len, (int)i, out);
    }
    free(secs);
    return st;
}

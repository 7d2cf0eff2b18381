/* json.c - the strict JSON reader declared in json.h.
 *
 * The parser is iterative: containers live on an explicit frame stack, so the
 * nesting limit is the caller's max_depth and never the C stack.  Finished
 * values wait on a value stack; when a container closes, its children are copied
 * from the top of that stack into one contiguous arena array, so every node is
 * written twice at most and the whole parse is linear in the input. */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---------------------------------------------------------------- arena -- */

typedef struct arena_chunk arena_chunk;
struct arena_chunk {
    arena_chunk *next;
    size_t used, cap;
    /* cap bytes follow, 16-aligned by the struct's size */
    _Alignas(16) unsigned char mem[];
};

struct tmi_json_doc {
    arena_chunk *chunks; /* newest first */
    size_t next_cap;     /* size of the next chunk; grows geometrically */
    tmi_json root;
};

enum { ARENA_FIRST = 16 * 1024, ARENA_MAX_CHUNK = 16 * 1024 * 1024 };

/* n bytes, 8-aligned, or NULL when out of memory. */
static void *arena_alloc(tmi_json_doc *d, size_t n)
{
    n = (n + 7u) & ~(size_t)7u;
    arena_chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = d->next_cap;
        if (cap < n) cap = n;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = d->chunks;
        c->used = 0;
        c->cap = cap;
        d->chunks = c;
        if (d->next_cap < ARENA_MAX_CHUNK) d->next_cap *= 2;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

void tmi_json_free(tmi_json_doc *doc)
{
    if (!doc) return;
    arena_chunk *c = doc->chunks;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

/* --------------------------------------------------------------- parser -- */

typedef struct key_ref {
    const char *str;
    int64_t len;
} key_ref;

typedef struct frame {
    int is_object;
    int64_t first_val; /* index in vals of the container's first child */
    int64_t first_key; /* index in keys of its first member name */
} frame;

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    const char *what;
    int max_depth;
    char decimal_point; /* the C library's, for strtod under any locale */
    tmi_json_doc *doc;
    tmi_json *vals; /* value stack */
    int64_t n_vals, cap_vals;
    key_ref *keys; /* member-name stack */
    int64_t n_keys, cap_keys;
    frame *frames;
    int64_t n_frames, cap_frames;
} parser;

static tm_status perr(const parser *p, size_t at, const char *reason)
{
    return tmi_fail(TM_ERR_FORMAT, "%s: JSON at byte %zu: %s", p->what, at, reason);
}

static tm_status nomem(const parser *p)
{
    return tmi_fail(TM_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
}

/* Grows *buf (elements of size esz) so that it holds at least need; doubling. */
static int grow(void **buf, int64_t *cap, int64_t need, size_t esz)
{
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *n = realloc(*buf, (size_t)c * esz);
    if (!n) return 0;
    *buf = n;
    *cap = c;
    return 1;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex4(const unsigned char *h, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = h[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0, n) (lead byte >= 0x80), or 0 when it
 * is invalid: a stray continuation, an overlong form, a UTF-16 surrogate
 * (U+D800..U+DFFF) or a code point above U+10FFFF (RFC 3629's table). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

/* A \uXXXX escape at s[pos] ('\\'), maybe the first half of a surrogate pair. */
static tm_status parse_u_escape(parser *p, size_t *pos, char *out, size_t *o)
{
    size_t at = *pos;
    unsigned cp, lo;
    if (at + 6 > p->len || !hex4(p->s + at + 2, &cp)) return perr(p, at, "bad \\u escape: want 4 hex digits");
    at += 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return perr(p, *pos, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (at + 6 > p->len || p->s[at] != '\\' || p->s[at + 1] != 'u' || !hex4(p->s + at + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return perr(p, *pos, "high surrogate in \\u escape not followed by a low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        at += 6;
    }
    *o += put_utf8(out + *o, cp);
    *pos = at;
    return TM_OK;
}

static tm_status parse_escape(parser *p, size_t *pos, char *out, size_t *o)
{
    size_t at = *pos;
    if (at + 1 >= p->len) return perr(p, at, "unterminated string");
    char c;
    switch (p->s[at + 1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': return parse_u_escape(p, pos, out, o);
    default: return perr(p, at, "invalid escape in string");
    }
    out[(*o)++] = c;
    *pos = at + 2;
    return TM_OK;
}

/* The string starting at the '"' at p->pos, decoded into the arena. */
static tm_status parse_string(parser *p, const char **str, int64_t *len)
{
    size_t start = p->pos + 1, end = start;
    /* Find the closing quote first: decoding never lengthens a string, so its
     * raw length bounds the arena space it needs. */
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return perr(p, p->pos, "unterminated string");
    char *out = arena_alloc(p->doc, end - start + 1);
    if (!out) return nomem(p);
    size_t o = 0, i = start;
    while (i < end) {
        unsigned char c = p->s[i];
        if (c == '\\') {
            tm_status st = parse_escape(p, &i, out, &o);
            if (st != TM_OK) return st;
        } else if (c < 0x20) {
            return perr(p, i, "control character in string (must be escaped)");
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            size_t n = utf8_seq(p->s + i, end - i);
            if (!n) return perr(p, i, "invalid UTF-8 in string");
            memcpy(out + o, p->s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    *str = out;
    *len = (int64_t)o;
    p->pos = end + 1;
    return TM_OK;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Exact int64 value of the integer literal s[0, n) ('-'? digits), or 0 when it
 * does not fit. */
static int exact_int(const unsigned char *s, size_t n, int64_t *out)
{
    int neg = s[0] == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX, v = 0;
    for (size_t i = (size_t)neg; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10u) return 0;
        v = v * 10u + d;
    }
    *out = neg ? (int64_t)(0u - v) : (int64_t)v; /* two's complement, no UB */
    return 1;
}

static tm_status parse_number(parser *p, tmi_json *v)
{
    size_t at = p->pos, i = at;
    const unsigned char *s = p->s;
    int integral = 1;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || !is_digit(s[i])) return perr(p, i, "invalid number: want a digit");
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i])) return perr(p, at, "invalid number: leading zero");
    } else {
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len || !is_digit(s[i])) return perr(p, i, "invalid number: want a digit after '.'");
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) return perr(p, i, "invalid number: want a digit in the exponent");
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t n = i - at;
    v->type = TMI_JSON_NUMBER;
    if (integral && exact_int(s + at, n, &v->i)) {
        /* int64 -> double rounds to nearest, as strtod would; -0 keeps its sign */
        v->is_int = 1;
        v->num = v->i == 0 && s[at] == '-' ? -0.0 : (double)v->i;
        p->pos = i;
        return TM_OK;
    }
    /* strtod wants a NUL-terminated copy, with the locale's decimal point. */
    char small[128], *buf = small;
    if (n + 1 > sizeof small && !(buf = malloc(n + 1))) return nomem(p);
    memcpy(buf, s + at, n);
    buf[n] = '\0';
    char *dot = memchr(buf, '.', n);
    if (dot) *dot = p->decimal_point;
    errno = 0;
    double d = strtod(buf, NULL);
    int range = errno == ERANGE && isinf(d);
    if (buf != small) free(buf);
    if (range) return perr(p, at, "number out of the range of a double");
    v->num = d;
    v->is_int = 0;
    v->i = 0;
    p->pos = i;
    return TM_OK;
}

static int match_word(parser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return 0;
    p->pos += n;
    return 1;
}

/* A scalar (not '[' or '{') at p->pos, pushed on the value stack. */
static tm_status parse_scalar(parser *p)
{
    if (!grow((void **)&p->vals, &p->cap_vals, p->n_vals + 1, sizeof *p->vals)) return nomem(p);
    tmi_json *v = &p->vals[p->n_vals];
    memset(v, 0, sizeof *v);
    if (p->pos >= p->len) return perr(p, p->pos, "unexpected end of input, want a value");
    unsigned char c = p->s[p->pos];
    tm_status st = TM_OK;
    if (c == '"') {
        v->type = TMI_JSON_STRING;
        st = parse_string(p, &v->str, &v->len);
    } else if (c == '-' || is_digit(c)) {
        st = parse_number(p, v);
    } else if (c == 't' && match_word(p, "true")) {
        v->type = TMI_JSON_TRUE;
    } else if (c == 'f' && match_word(p, "false")) {
        v->type = TMI_JSON_FALSE;
    } else if (c == 'n' && match_word(p, "null")) {
        v->type = TMI_JSON_NULL;
    } else {
        return perr(p, p->pos, "unexpected character, want a value");
    }
    if (st == TM_OK) p->n_vals++;
    return st;
}

/* A member name and its ':' at p->pos (after whitespace). */
static tm_status parse_key(parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '"') return perr(p, p->pos, "want a string member name");
    if (!grow((void **)&p->keys, &p->cap_keys, p->n_keys + 1, sizeof *p->keys)) return nomem(p);
    key_ref *k = &p->keys[p->n_keys];
    tm_status st = parse_string(p, &k->str, &k->len);
    if (st != TM_OK) return st;
    p->n_keys++;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':') return perr(p, p->pos, "want ':' after member name");
    p->pos++;
    return TM_OK;
}

static tm_status open_container(parser *p, int is_object)
{
    if (p->n_frames >= p->max_depth) {
        char why[96];
        snprintf(why, sizeof why, "nesting deeper than %d levels", p->max_depth);
        return perr(p, p->pos, why);
    }
    if (!grow((void **)&p->frames, &p->cap_frames, p->n_frames + 1, sizeof *p->frames)) return nomem(p);
    p->frames[p->n_frames++] = (frame){is_object, p->n_vals, p->n_keys};
    p->pos++;
    return TM_OK;
}

/* Pops the innermost container, moving its children into the arena, and pushes
 * it as a finished value. */
static tm_status close_container(parser *p)
{
    frame f = p->frames[--p->n_frames];
    int64_t n = p->n_vals - f.first_val;
    tmi_json c;
    memset(&c, 0, sizeof c);
    c.type = f.is_object ? TMI_JSON_OBJECT : TMI_JSON_ARRAY;
    c.len = n;
    if (n > 0) {
        tmi_json *items = arena_alloc(p->doc, (size_t)n * sizeof *items);
        if (!items) return nomem(p);
        memcpy(items, p->vals + f.first_val, (size_t)n * sizeof *items);
        c.items = items;
    }
    if (f.is_object && n > 0) {
        const char **keys = arena_alloc(p->doc, (size_t)n * sizeof *keys);
        int64_t *lens = arena_alloc(p->doc, (size_t)n * sizeof *lens);
        if (!keys || !lens) return nomem(p);
        for (int64_t i = 0; i < n; i++) {
            keys[i] = p->keys[f.first_key + i].str;
            lens[i] = p->keys[f.first_key + i].len;
        }
        c.keys = keys;
        c.key_lens = lens;
    }
    p->n_vals = f.first_val;
    p->n_keys = f.first_key;
    if (!grow((void **)&p->vals, &p->cap_vals, p->n_vals + 1, sizeof *p->vals)) return nomem(p);
    p->vals[p->n_vals++] = c;
    p->pos++;
    return TM_OK;
}

/* After a value: ',' and the next member, or the close of containers, until a
 * value is wanted again (*want_value) or the document is complete. */
static tm_status after_value(parser *p, int *want_value)
{
    *want_value = 0;
    while (p->n_frames > 0) {
        const frame *f = &p->frames[p->n_frames - 1];
        skip_ws(p);
        unsigned char c = p->pos < p->len ? p->s[p->pos] : 0;
        if (c == ',') {
            p->pos++;
            *want_value = 1;
            return f->is_object ? parse_key(p) : TM_OK;
        }
        if (c == (f->is_object ? '}' : ']')) {
            tm_status st = close_container(p);
            if (st != TM_OK) return st;
            continue;
        }
        if (p->pos >= p->len) return perr(p, p->pos, "unexpected end of input inside a container");
        return perr(p, p->pos, f->is_object ? "want ',' or '}' after object member" : "want ',' or ']' after array item");
    }
    return TM_OK;
}

static tm_status parse_doc(parser *p)
{
    for (;;) {
        skip_ws(p);
        unsigned char c = p->pos < p->len ? p->s[p->pos] : 0;
        tm_status st;
        if (c == '{' || c == '[') {
            st = open_container(p, c == '{');
            if (st != TM_OK) return st;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (c == '{' ? '}' : ']')) {
                st = close_container(p); /* empty container */
            } else {
                if (c == '{' && (st = parse_key(p)) != TM_OK) return st;
                continue;
            }
        } else {
            st = parse_scalar(p);
        }
        if (st != TM_OK) return st;
        int want_value;
        st = after_value(p, &want_value);
        if (st != TM_OK) return st;
        if (!want_value) break;
    }
    skip_ws(p);
    if (p->pos != p->len) return perr(p, p->pos, "trailing characters after the JSON value");
    return TM_OK;
}

tm_status tmi_json_parse(const char *text, size_t len, const char *what, int max_depth, tmi_json_doc **doc,
                         const tmi_json **root)
{
    if (!what) what = "JSON";
    if (!text || !doc || !root) return tmi_fail(TM_ERR_INVALID_ARG, "%s: tmi_json_parse: NULL argument", what);
    if (max_depth < 1) return tmi_fail(TM_ERR_INVALID_ARG, "%s: max_depth must be >= 1, got %d", what, max_depth);
    parser p;
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)text;
    p.len = len;
    p.what = what;
    p.max_depth = max_depth;
    const char *dp = localeconv()->decimal_point;
    p.decimal_point = dp && dp[0] && !dp[1] ? dp[0] : '.';
    p.doc = calloc(1, sizeof *p.doc);
    if (!p.doc) return nomem(&p);
    p.doc->next_cap = ARENA_FIRST;
    tm_status st = parse_doc(&p);
    if (st == TM_OK) p.doc->root = p.vals[0];
    free(p.vals);
    free(p.keys);
    free(p.frames);
    if (st != TM_OK) {
        tmi_json_free(p.doc);
        return st;
    }
    *doc = p.doc;
    *root = &p.doc->root;
    return TM_OK;
}

const tmi_json *tmi_json_get(const tmi_json *obj, const char *key)
{
    if (!obj || obj->type != TMI_JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (int64_t i = 0; i < obj->len; i++)
        if ((size_t)obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) return &obj->items[i];
    return NULL;
}

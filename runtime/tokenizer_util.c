/* tokenizer_util.c - the tokenizer's containers (buffers, arena, string map) and
 * UTF-8 helpers.  Kept apart so each pipeline stage file reads as its stage. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tokenizer.h"

/* --------------------------------------------------------------- buffers -- */

tm_status tmi_buf_reserve(tmi_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap) return TM_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory (buffer of %zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return TM_OK;
}

tm_status tmi_buf_append(tmi_buf *b, const void *src, size_t n)
{
    tm_status st = tmi_buf_reserve(b, n);
    if (st) return st;
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return TM_OK;
}

void tmi_buf_free(tmi_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

tm_status tmi_ivec_push(tmi_ivec *v, int32_t x)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->data, cap * sizeof *p);
        if (!p) return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory (%zu ids)", cap);
        v->data = p;
        v->cap = cap;
    }
    v->data[v->len++] = x;
    return TM_OK;
}

void tmi_ivec_free(tmi_ivec *v)
{
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

/* ----------------------------------------------------------------- arena -- */

struct tmi_arena_block {
    tmi_arena_block *next;
    size_t used, cap;
    char data[];
};

char *tmi_arena_strdup(tmi_arena *a, const char *s, size_t n)
{
    tmi_arena_block *b = a->head;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    char *p = b->data + b->used;
    if (n && s) memcpy(p, s, n);
    p[n] = 0;
    b->used += n + 1;
    return p;
}

void tmi_arena_free(tmi_arena *a)
{
    while (a->head) {
        tmi_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* ------------------------------------------------------------ string map -- */

uint32_t tmi_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a with a final avalanche: keys are short token strings. */
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    return h;
}

tm_status tmi_strmap_init(tmi_strmap *m, size_t expected)
{
    size_t cap = 64;
    while (cap < expected * 2 + 2) cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory (map of %zu)", cap);
    m->mask = (uint32_t)(cap - 1);
    m->count = 0;
    return TM_OK;
}

static tm_status strmap_grow(tmi_strmap *m)
{
    size_t cap = ((size_t)m->mask + 1) * 2;
    tmi_strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return tmi_fail(TM_ERR_NOMEM, "tokenizer: out of memory (map of %zu)", cap);
    for (size_t i = 0; i <= m->mask; i++) {
        tmi_strmap_slot *s = &m->slots[i];
        if (!s->key) continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = (uint32_t)(cap - 1);
    return TM_OK;
}

tm_status tmi_strmap_put(tmi_strmap *m, const char *key, size_t len, int32_t val)
{
    if ((size_t)(m->count + 1) * 2 > (size_t)m->mask + 1) {
        tm_status st = strmap_grow(m);
        if (st) return st;
    }
    uint32_t h = tmi_hash_bytes(key, len);
    size_t j = h & m->mask;
    for (;; j = (j + 1) & m->mask) {
        tmi_strmap_slot *s = &m->slots[j];
        if (!s->key) {
            s->key = key;
            s->len = (uint32_t)len;
            s->hash = h;
            s->val = val;
            m->count++;
            return TM_OK;
        }
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            s->val = val;
            return TM_OK;
        }
    }
}

int tmi_strmap_get(const tmi_strmap *m, const char *key, size_t len, int32_t *val)
{
    if (!m->slots) return 0;
    uint32_t h = tmi_hash_bytes(key, len);
    for (size_t j = h & m->mask;; j = (j + 1) & m->mask) {
        const tmi_strmap_slot *s = &m->slots[j];
        if (!s->key) return 0;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            *val = s->val;
            return 1;
        }
    }
}

void tmi_strmap_free(tmi_strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

/* ----------------------------------------------------------------- UTF-8 -- */

int tmi_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, int *bad)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (int i = 1; i <= need; i++) {
        unsigned b = (size_t)i < n ? s[i] : 0x100;
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = i; /* the lead and the valid continuations so far */
            return 0;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

int tmi_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int bad;
        int k = tmi_utf8_decode(s + i, n - i, &cp, &bad);
        if (!k) return i;
        i += (size_t)k;
    }
    return n;
}

int tmi_utf8_sanitize(const char *text, size_t len, tmi_buf *out, tm_status *st)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = utf8_valid_prefix(s, len);
    *st = TM_OK;
    if (i == len) return 1;
    out->len = 0;
    if ((*st = tmi_buf_append(out, text, i))) return 0;
    while (i < len) {
        uint32_t cp;
        int bad = 0;
        int k = tmi_utf8_decode(s + i, len - i, &cp, &bad);
        if (k) {
            *st = tmi_buf_append(out, s + i, (size_t)k);
            i += (size_t)k;
        } else {
            *st = tmi_buf_append(out, "\xEF\xBF\xBD", 3);
            i += (size_t)bad;
        }
        if (*st) {
            out->len = 0;
            return 0;
        }
    }
    return 0;
}

int tmi_js_space(uint32_t cp)
{
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
    case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000: case 0xFEFF:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

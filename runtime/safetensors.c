/* safetensors.c - the safetensors reader (validate, then map) and writer.
 *
 * Layout rule, taken from the HuggingFace `safetensors` crate (Metadata::validate
 * and SafeTensors::read_metadata): once the tensors are sorted by data_offsets,
 * each must begin exactly where the previous one ended (the first at 0), and the
 * last must end exactly at the end of the file.  So gaps between tensors and
 * unreferenced bytes after the last one are rejected, as they are there: a file
 * this reader accepts is one the Python package accepts too, and a cut-short
 * download is caught even when its header is intact.  Zero-size tensors take no
 * room and may share an offset with the tensor after them. */
#define _GNU_SOURCE
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

enum { ST_HEADER_DEPTH = 8 }; /* root > tensor > shape is 3; anything deeper is malformed */

/* ------------------------------------------------------------- text out -- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_i64(sbuf *b, int64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, "%lld", (long long)v);
    sb_put(b, t, (size_t)n);
}

/* s[0, n) (valid UTF-8) as a JSON string literal: '"', '\\' and control
 * characters escaped, everything else verbatim. */
static void sb_json_string(sbuf *b, const char *s, size_t n)
{
    sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_put(b, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        }
        run = i + 1;
    }
    sb_put(b, s + run, n - run);
    sb_put(b, "\"", 1);
}

/* An object of strings, re-serialised compactly. */
static void sb_string_object(sbuf *b, const tmi_json *obj)
{
    sb_put(b, "{", 1);
    for (int64_t i = 0; i < obj->len; i++) {
        if (i) sb_put(b, ",", 1);
        sb_json_string(b, obj->keys[i], (size_t)obj->key_lens[i]);
        sb_put(b, ":", 1);
        sb_json_string(b, obj->items[i].str, (size_t)obj->items[i].len);
    }
    sb_put(b, "}", 1);
}

/* Whether s[0, n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || n - i < len) return 0;
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

/* ---------------------------------------------------------- validation -- */

static int dtype_from_name(const tmi_json *v, tm_dtype *out)
{
    for (int d = TM_F32; d <= TM_F64; d++) {
        const char *name = tm_dtype_name((tm_dtype)d);
        if ((size_t)v->len == strlen(name) && memcmp(v->str, name, (size_t)v->len) == 0) {
            *out = (tm_dtype)d;
            return 1;
        }
    }
    return 0;
}

static void shape_text(char *buf, size_t cap, const int64_t *shape, int32_t ndim)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Where one tensor's bytes lie in the data area, for the tiling check. */
typedef struct st_range {
    uint64_t begin, end;
    int64_t index;
} st_range;

typedef struct st_check {
    const char *path;
    uint64_t data_len;
    const char *name; /* tensor being checked */
} st_check;

static tm_status bad(const st_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tm_status bad(const st_check *c, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tmi_fail(TM_ERR_FORMAT, "%s: tensor \"%.200s\": %s", c->path, c->name, what);
}

static tm_status check_shape(const st_check *c, const tmi_json *v, tmi_st_tensor *t, uint64_t *elems)
{
    if (v->type != TMI_JSON_ARRAY) return bad(c, "shape must be an array of non-negative integers");
    if (v->len > TMI_ST_MAX_DIMS)
        return bad(c, "shape has %lld dims, at most %d are supported", (long long)v->len, TMI_ST_MAX_DIMS);
    for (int64_t i = 0; i < v->len; i++) {
        const tmi_json *d = &v->items[i];
        if (d->type != TMI_JSON_NUMBER || !d->is_int || d->i < 0)
            return bad(c, "shape[%lld] must be a non-negative integer", (long long)i);
        t->shape[i] = d->i;
    }
    t->ndim = (int32_t)v->len;
    /* A zero dim anywhere makes the count 0, whatever the other dims are. */
    uint64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) n = 0;
    for (int32_t i = 0; i < t->ndim && n != 0; i++) {
        if (n > (uint64_t)INT64_MAX / (uint64_t)t->shape[i]) return bad(c, "shape's element count overflows 64 bits");
        n *= (uint64_t)t->shape[i];
    }
    *elems = n;
    return TM_OK;
}

static tm_status check_offsets(const st_check *c, const tmi_json *v, st_range *r)
{
    if (v->type != TMI_JSON_ARRAY || v->len != 2 || v->items[0].type != TMI_JSON_NUMBER ||
        v->items[1].type != TMI_JSON_NUMBER || !v->items[0].is_int || !v->items[1].is_int || v->items[0].i < 0 ||
        v->items[1].i < 0)
        return bad(c, "data_offsets must be two non-negative integers [begin, end]");
    r->begin = (uint64_t)v->items[0].i;
    r->end = (uint64_t)v->items[1].i;
    if (r->begin > r->end)
        return bad(c, "data_offsets [%llu, %llu]: begin is after end", (unsigned long long)r->begin,
                   (unsigned long long)r->end);
    if (r->end > c->data_len)
        return bad(c, "data_offsets [%llu, %llu] end beyond the data area of %llu bytes (file truncated?)",
                   (unsigned long long)r->begin, (unsigned long long)r->end, (unsigned long long)c->data_len);
    return TM_OK;
}

/* One header member other than __metadata__: {"dtype", "shape", "data_offsets"}. */
static tm_status check_tensor(const st_check *c, const tmi_json *e, tmi_st_tensor *t, st_range *r)
{
    if (e->type != TMI_JSON_OBJECT) return bad(c, "entry must be an object {dtype, shape, data_offsets}");
    const tmi_json *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (int64_t i = 0; i < e->len; i++) {
        const char *k = e->keys[i];
        const tmi_json **slot = !strcmp(k, "dtype") ? &dtype
                                : !strcmp(k, "shape") ? &shape
                                : !strcmp(k, "data_offsets") ? &offsets
                                                               : NULL;
        if (!slot || (size_t)e->key_lens[i] != strlen(k))
            return bad(c, "unknown key \"%.64s\" (allowed: dtype, shape, data_offsets)", k);
        if (*slot) return bad(c, "key \"%s\" given twice", k);
        *slot = &e->items[i];
    }
    if (!dtype) return bad(c, "missing field \"dtype\"");
    if (!shape) return bad(c, "missing field \"shape\"");
    if (!offsets) return bad(c, "missing field \"data_offsets\"");
    if (dtype->type != TMI_JSON_STRING) return bad(c, "dtype must be a string");
    if (!dtype_from_name(dtype, &t->dtype))
        return bad(c, "unknown dtype \"%.32s\" (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)", dtype->str);
    uint64_t elems = 0;
    tm_status st = check_shape(c, shape, t, &elems);
    if (st == TM_OK) st = check_offsets(c, offsets, r);
    if (st != TM_OK) return st;
    uint64_t esz = tm_dtype_size(t->dtype);
    if (elems > (uint64_t)INT64_MAX / esz) return bad(c, "shape's byte size overflows 64 bits");
    if (r->end - r->begin != elems * esz) {
        char sh[256];
        shape_text(sh, sizeof sh, t->shape, t->ndim);
        return bad(c, "data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu",
                   (unsigned long long)r->begin, (unsigned long long)r->end,
                   (unsigned long long)(r->end - r->begin), sh, tm_dtype_name(t->dtype),
                   (unsigned long long)(elems * esz));
    }
    t->nbytes = (int64_t)(elems * esz);
    return TM_OK;
}

static tm_status check_metadata(const char *path, const tmi_json *m)
{
    if (m->type != TMI_JSON_OBJECT)
        return tmi_fail(TM_ERR_FORMAT, "%s: __metadata__ must be an object of strings", path);
    for (int64_t i = 0; i < m->len; i++) {
        if (m->items[i].type != TMI_JSON_STRING)
            return tmi_fail(TM_ERR_FORMAT, "%s: __metadata__ \"%.200s\": value must be a string", path, m->keys[i]);
        for (int64_t j = 0; j < i; j++)
            if (m->key_lens[i] == m->key_lens[j] && !memcmp(m->keys[i], m->keys[j], (size_t)m->key_lens[i]))
                return tmi_fail(TM_ERR_FORMAT, "%s: __metadata__ \"%.200s\": key given twice", path, m->keys[i]);
    }
    return TM_OK;
}

static int range_cmp(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The sorted ranges must tile [0, data_len) exactly (see the top comment). */
static tm_status check_tiling(const tmi_st_file *f, st_range *r, int64_t n, uint64_t data_len)
{
    qsort(r, (size_t)n, sizeof *r, range_cmp);
    uint64_t at = 0;
    const char *prev = NULL;
    for (int64_t i = 0; i < n; i++) {
        st_check c = {f->path, data_len, f->tensors[r[i].index].name};
        if (r[i].begin < at)
            return bad(&c, "data_offsets [%llu, %llu] overlap tensor \"%.200s\" (which ends at %llu)",
                       (unsigned long long)r[i].begin, (unsigned long long)r[i].end, prev,
                       (unsigned long long)at);
        if (r[i].begin > at)
            return bad(&c, "data_offsets [%llu, %llu] leave a gap of unreferenced bytes [%llu, %llu)",
                       (unsigned long long)r[i].begin, (unsigned long long)r[i].end, (unsigned long long)at,
                       (unsigned long long)r[i].begin);
        at = r[i].end;
        prev = c.name;
    }
    if (at != data_len)
        return tmi_fail(TM_ERR_FORMAT,
                        "%s: data area: %llu bytes but its tensors cover %llu (unreferenced bytes at the end)",
                        f->path, (unsigned long long)data_len, (unsigned long long)at);
    return TM_OK;
}

static int name_cmp(const void *a, const void *b)
{
    const tmi_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static tm_status check_unique_names(const tmi_st_file *f)
{
    if (f->n_tensors < 2) return TM_OK;
    const tmi_st_tensor **by_name = malloc((size_t)f->n_tensors * sizeof *by_name);
    if (!by_name) return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", f->path);
    for (int64_t i = 0; i < f->n_tensors; i++) by_name[i] = &f->tensors[i];
    qsort(by_name, (size_t)f->n_tensors, sizeof *by_name, name_cmp);
    tm_status st = TM_OK;
    for (int64_t i = 1; i < f->n_tensors && st == TM_OK; i++)
        if (!strcmp(by_name[i - 1]->name, by_name[i]->name))
            st = tmi_fail(TM_ERR_FORMAT, "%s: tensor \"%.200s\": name appears twice in the header", f->path,
                          by_name[i]->name);
    free(by_name);
    return st;
}

/* Validates the parsed header root against a data area of data_len bytes at
 * data, and fills f->tensors and f->metadata_json. */
static tm_status read_header(tmi_st_file *f, const tmi_json *root, const unsigned char *data, uint64_t data_len)
{
    if (root->type != TMI_JSON_OBJECT) return tmi_fail(TM_ERR_FORMAT, "%s: header: must be a JSON object", f->path);
    const tmi_json *meta = NULL;
    f->tensors = calloc((size_t)root->len + 1, sizeof *f->tensors);
    st_range *ranges = calloc((size_t)root->len + 1, sizeof *ranges);
    if (!f->tensors || !ranges) {
        free(ranges);
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", f->path);
    }
    tm_status st = TM_OK;
    for (int64_t i = 0; i < root->len && st == TM_OK; i++) {
        const char *key = root->keys[i];
        if (!strcmp(key, "__metadata__") && (size_t)root->key_lens[i] == strlen(key)) {
            if (meta) st = tmi_fail(TM_ERR_FORMAT, "%s: __metadata__ given twice", f->path);
            else st = check_metadata(f->path, meta = &root->items[i]);
            continue;
        }
        st_check c = {f->path, data_len, key};
        if ((size_t)root->key_lens[i] != strlen(key)) {
            st = bad(&c, "name contains a NUL byte");
            continue;
        }
        tmi_st_tensor *t = &f->tensors[f->n_tensors];
        st_range *r = &ranges[f->n_tensors];
        st = check_tensor(&c, &root->items[i], t, r);
        if (st != TM_OK) continue;
        t->name = key;
        t->data = data + r->begin;
        r->index = f->n_tensors++;
    }
    if (st == TM_OK) st = check_unique_names(f);
    if (st == TM_OK) st = check_tiling(f, ranges, f->n_tensors, data_len);
    free(ranges);
    if (st != TM_OK) return st;
    sbuf b = {0};
    if (meta) sb_string_object(&b, meta);
    else sb_str(&b, "{}");
    if (b.oom) {
        free(b.p);
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", f->path);
    }
    f->metadata_json = b.p;
    return TM_OK;
}

/* ---------------------------------------------------------------- open -- */

static tm_status map_file(tmi_st_file *f)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tmi_fail(TM_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    tm_status st = TM_OK;
    if (fstat(fd, &sb) != 0) {
        st = tmi_fail(TM_ERR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = tmi_fail(TM_ERR_IO, "%s: not a regular file", f->path);
    } else if (sb.st_size < 8) {
        st = tmi_fail(TM_ERR_FORMAT, "%s: file is %lld bytes, shorter than the 8-byte header length", f->path,
                      (long long)sb.st_size);
    } else if ((uint64_t)sb.st_size > SIZE_MAX) {
        st = tmi_fail(TM_ERR_IO, "%s: file too large to map", f->path);
    } else {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = tmi_fail(TM_ERR_IO, "%s: cannot mmap: %s", f->path, strerror(errno));
        } else {
            f->map = m;
            f->map_len = (size_t)sb.st_size;
        }
    }
    close(fd); /* the mapping keeps the file alive */
    return st;
}

tm_status tmi_st_open(const char *path, tmi_st_file **out)
{
    if (!path || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tmi_st_open: NULL argument");
    tmi_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", path);
    }
    tm_status st = map_file(f);
    if (st != TM_OK) goto err;
    const unsigned char *bytes = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    uint64_t room = (uint64_t)f->map_len - 8;
    if (n == 0 || n > TMI_ST_MAX_HEADER || n > room) {
        if (n == 0) st = tmi_fail(TM_ERR_FORMAT, "%s: header length is 0; a header is at least \"{}\"", path);
        else if (n > TMI_ST_MAX_HEADER)
            st = tmi_fail(TM_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", path,
                          (unsigned long long)n, TMI_ST_MAX_HEADER);
        else
            st = tmi_fail(TM_ERR_FORMAT, "%s: header length %llu exceeds the %llu bytes after it (file truncated?)",
                          path, (unsigned long long)n, (unsigned long long)room);
        goto err;
    }
    char what[600];
    snprintf(what, sizeof what, "%s: header", path);
    const tmi_json *root;
    /* Trailing spaces (the writers' padding) are JSON whitespace; anything else
     * after the object is the parser's "trailing characters" error. */
    st = tmi_json_parse((const char *)bytes + 8, (size_t)n, what, ST_HEADER_DEPTH, &f->header, &root);
    if (st != TM_OK) goto err;
    st = read_header(f, root, bytes + 8 + n, room - n);
    if (st != TM_OK) goto err;
    *out = f;
    return TM_OK;
err:
    tmi_st_close(f);
    return st;
}

void tmi_st_close(tmi_st_file *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    tmi_json_free(f->header);
    free(f->tensors);
    free(f->metadata_json);
    free(f->path);
    free(f);
}

/* --------------------------------------------------------------- write -- */

static tm_status check_entries(const tmi_st_entry *e, int64_t n, const tmi_json *metadata)
{
    for (int64_t i = 0; i < n; i++) {
        if (!e[i].name) return tmi_fail(TM_ERR_INVALID_ARG, "tensor %lld: name is NULL", (long long)i);
        if (!strcmp(e[i].name, "__metadata__"))
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"__metadata__\": that name is reserved by safetensors");
        if (!utf8_valid((const unsigned char *)e[i].name, strlen(e[i].name)))
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": name must be valid UTF-8", e[i].name);
        if (!tm_dtype_size(e[i].dtype) || e[i].ndim < 0 || e[i].ndim > TMI_ST_MAX_DIMS || e[i].nbytes < 0 ||
            (e[i].nbytes > 0 && !e[i].data))
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": bad dtype, ndim or data", e[i].name);
    }
    if (metadata) {
        int ok = metadata->type == TMI_JSON_OBJECT;
        for (int64_t i = 0; ok && i < metadata->len; i++) ok = metadata->items[i].type == TMI_JSON_STRING;
        if (!ok) return tmi_fail(TM_ERR_INVALID_ARG, "metadata must be a JSON object whose values are strings");
    }
    return TM_OK;
}

/* The header text, padded with spaces so the data area starts at a multiple of
 * 8 bytes from the file's start (as the reference writer does). */
static tm_status build_header(const tmi_st_entry *e, int64_t n, const tmi_json *metadata, sbuf *b)
{
    sb_put(b, "{", 1);
    int first = 1;
    if (metadata && metadata->len > 0) {
        sb_str(b, "\"__metadata__\":");
        sb_string_object(b, metadata);
        first = 0;
    }
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++, first = 0) {
        if (!first) sb_put(b, ",", 1);
        sb_json_string(b, e[i].name, strlen(e[i].name));
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, tm_dtype_name(e[i].dtype));
        sb_str(b, "\",\"shape\":[");
        for (int32_t d = 0; d < e[i].ndim; d++) {
            if (d) sb_put(b, ",", 1);
            sb_i64(b, e[i].shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_i64(b, at);
        sb_put(b, ",", 1);
        sb_i64(b, at + e[i].nbytes);
        sb_str(b, "]}");
        at += e[i].nbytes;
    }
    sb_put(b, "}", 1);
    while (!b->oom && b->len % 8 != 0) sb_put(b, " ", 1);
    return b->oom ? tmi_fail(TM_ERR_NOMEM, "out of memory building a safetensors header") : TM_OK;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : (size_t)1 << 30;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

static tm_status write_file(int fd, const char *tmp, const sbuf *header, const tmi_st_entry *e, int64_t n)
{
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header->len >> (8 * i));
    int ok = write_all(fd, len8, 8) && write_all(fd, header->p, header->len);
    for (int64_t i = 0; ok && i < n; i++) ok = write_all(fd, e[i].data, (size_t)e[i].nbytes);
    if (!ok) return tmi_fail(TM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    return TM_OK;
}

tm_status tmi_st_write(const char *path, const tmi_st_entry *entries, int64_t n, const tmi_json *metadata)
{
    if (!path || (n > 0 && !entries) || n < 0) return tmi_fail(TM_ERR_INVALID_ARG, "tmi_st_write: bad arguments");
    tm_status st = check_entries(entries, n, metadata);
    if (st != TM_OK) return st;
    sbuf header = {0};
    st = build_header(entries, n, metadata, &header);
    size_t tmp_cap = strlen(path) + 32;
    char *tmp = st == TM_OK ? malloc(tmp_cap) : NULL;
    if (st == TM_OK && !tmp) st = tmi_fail(TM_ERR_NOMEM, "%s: out of memory", path);
    if (st != TM_OK) goto done;
    snprintf(tmp, tmp_cap, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = tmi_fail(TM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    st = write_file(fd, tmp, &header, entries, n);
    if (close(fd) != 0 && st == TM_OK) st = tmi_fail(TM_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == TM_OK && rename(tmp, path) != 0)
        st = tmi_fail(TM_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (st != TM_OK) unlink(tmp);
done:
    free(tmp);
    free(header.p);
    return st;
}

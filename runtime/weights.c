/* weights.c - tm_weights: named tensors from mapped safetensors files and owned
 * copies, with an open-addressing hash index for lookups by name.
 *
 * Alignment: safetensors packs tensors back to back, so a F32 tensor may start
 * at an odd offset when a F16 tensor of odd length precedes it.  Kernels read
 * weights through typed pointers, so a file tensor whose data is not aligned to
 * its element size is copied once, at load time, into an owned (malloc-aligned)
 * buffer; every other file tensor stays a zero-copy view of the mapping. */
#define _GNU_SOURCE
#include "weights.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "safetensors.h"

typedef struct wt_tensor {
    const char *name; /* in a file's header arena, or == owned_name */
    char *owned_name;
    tm_dtype dtype;
    int32_t ndim;
    int64_t shape[TMI_ST_MAX_DIMS];
    const void *data; /* [nbytes]: in a mapping, or == owned_data */
    int64_t nbytes;
    void *owned_data;
} wt_tensor;

struct tm_weights {
    wt_tensor *t; /* [n] in insertion order */
    int64_t n, cap;
    int64_t *slots; /* [n_slots]: 1 + index into t, 0 when empty; n_slots a power of 2 */
    uint64_t n_slots;
    tmi_st_file **files; /* [n_files] in load order */
    int32_t n_files, cap_files;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int64_t lookup(const tm_weights *w, const char *name)
{
    if (!w->n_slots) return -1;
    uint64_t mask = w->n_slots - 1;
    for (uint64_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        int64_t s = w->slots[i];
        if (!s) return -1;
        if (!strcmp(w->t[s - 1].name, name)) return s - 1;
    }
}

static void index_insert(tm_weights *w, int64_t index)
{
    uint64_t mask = w->n_slots - 1;
    uint64_t i = name_hash(w->t[index].name) & mask;
    while (w->slots[i]) i = (i + 1) & mask;
    w->slots[i] = index + 1;
}

/* Room for extra more tensors, so that inserting them cannot fail. */
static tm_status reserve(tm_weights *w, int64_t extra)
{
    int64_t need = w->n + extra;
    if (need > w->cap) {
        int64_t cap = w->cap ? w->cap : 64;
        while (cap < need) cap *= 2;
        wt_tensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return tmi_fail(TM_ERR_NOMEM, "tm_weights: out of memory");
        w->t = t;
        w->cap = cap;
    }
    if ((uint64_t)need * 2 > w->n_slots) { /* keep the load factor under 1/2 */
        uint64_t n_slots = w->n_slots ? w->n_slots : 128;
        while ((uint64_t)need * 2 > n_slots) n_slots *= 2;
        int64_t *slots = calloc(n_slots, sizeof *slots);
        if (!slots) return tmi_fail(TM_ERR_NOMEM, "tm_weights: out of memory");
        free(w->slots);
        w->slots = slots;
        w->n_slots = n_slots;
        for (int64_t i = 0; i < w->n; i++) index_insert(w, i);
    }
    return TM_OK;
}

tm_status tm_weights_create(tm_weights **out)
{
    if (!out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_create: out is NULL");
    tm_weights *w = calloc(1, sizeof *w);
    if (!w) return tmi_fail(TM_ERR_NOMEM, "tm_weights_create: out of memory");
    *out = w;
    return TM_OK;
}

void tm_weights_destroy(tm_weights *w)
{
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) {
        free(w->t[i].owned_name);
        free(w->t[i].owned_data);
    }
    for (int32_t i = 0; i < w->n_files; i++) tmi_st_close(w->files[i]);
    free(w->t);
    free(w->slots);
    free(w->files);
    free(w);
}

/* Copies of the file's tensors whose data is misaligned (see the top comment);
 * copies[i] is NULL where the view is used. */
static tm_status realign(const tmi_st_file *f, void **copies)
{
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const tmi_st_tensor *t = &f->tensors[i];
        copies[i] = NULL;
        if ((uintptr_t)t->data % tm_dtype_size(t->dtype) == 0) continue;
        /* zero-size tensors too, so that every data pointer is aligned */
        if (!(copies[i] = malloc(t->nbytes > 0 ? (size_t)t->nbytes : 1))) {
            for (int64_t k = 0; k < i; k++) free(copies[k]);
            return tmi_fail(TM_ERR_NOMEM, "%s: out of memory copying misaligned tensor \"%s\"", f->path, t->name);
        }
        memcpy(copies[i], t->data, (size_t)t->nbytes);
    }
    return TM_OK;
}

tm_status tm_weights_load(tm_weights *w, const char *path)
{
    if (!w || !path) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_load: NULL argument");
    tmi_st_file *f = NULL;
    void **copies = NULL;
    tm_status st = tmi_st_open(path, &f);
    if (st != TM_OK) return st;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        if (lookup(w, f->tensors[i].name) >= 0) {
            st = tmi_fail(TM_ERR_FORMAT, "%s: tensor \"%.200s\": a tensor of that name is already in the store",
                          path, f->tensors[i].name);
            goto err;
        }
    }
    if ((st = reserve(w, f->n_tensors)) != TM_OK) goto err;
    if (w->n_files == w->cap_files) {
        int32_t cap = w->cap_files ? w->cap_files * 2 : 8;
        tmi_st_file **files = realloc(w->files, (size_t)cap * sizeof *files);
        if (!files) {
            st = tmi_fail(TM_ERR_NOMEM, "%s: out of memory", path);
            goto err;
        }
        w->files = files;
        w->cap_files = cap;
    }
    copies = calloc((size_t)f->n_tensors + 1, sizeof *copies);
    if (!copies) {
        st = tmi_fail(TM_ERR_NOMEM, "%s: out of memory", path);
        goto err;
    }
    if ((st = realign(f, copies)) != TM_OK) goto err;
    /* Nothing below can fail: the tensors become visible all at once. */
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const tmi_st_tensor *s = &f->tensors[i];
        wt_tensor *t = &w->t[w->n];
        memset(t, 0, sizeof *t);
        t->name = s->name;
        t->dtype = s->dtype;
        t->ndim = s->ndim;
        memcpy(t->shape, s->shape, sizeof t->shape);
        t->nbytes = s->nbytes;
        t->owned_data = copies[i];
        t->data = copies[i] ? copies[i] : s->data;
        index_insert(w, w->n++);
    }
    w->files[w->n_files++] = f;
    free(copies);
    return TM_OK;
err:
    free(copies);
    tmi_st_close(f);
    return st;
}

/* product(shape) * size(dtype), after checking the arguments of an addition. */
static tm_status check_add(const tm_weights *w, const char *name, tm_dtype dtype, int32_t ndim, const int64_t *shape,
                           int64_t *nbytes)
{
    if (!w || !name) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_add: NULL weights or name");
    if (!tm_dtype_size(dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": dtype must be a tm_dtype, got %d", name, (int)dtype);
    if (ndim < 0 || ndim > TMI_ST_MAX_DIMS)
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": ndim must be in [0, 8], got %d", name, ndim);
    if (ndim > 0 && !shape) return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": shape is NULL", name);
    if (!strcmp(name, "__metadata__"))
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"__metadata__\": that name is reserved by safetensors");
    uint64_t n = tm_dtype_size(dtype);
    int zero = 0;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": shape[%d] must be >= 0, got %lld", name, i,
                            (long long)shape[i]);
        zero |= shape[i] == 0;
    }
    for (int32_t i = 0; i < ndim && !zero; i++) {
        if (n > (uint64_t)INT64_MAX / (uint64_t)shape[i])
            return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": size overflows 64 bits", name);
        n *= (uint64_t)shape[i];
    }
    if (lookup(w, name) >= 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": a tensor of that name is already in the store", name);
    *nbytes = zero ? 0 : (int64_t)n;
    return TM_OK;
}

static tm_status adopt_checked(tm_weights *w, const char *name, tm_dtype dtype, int32_t ndim, const int64_t *shape,
                               void *data, int64_t nbytes)
{
    char *owned_name = strdup(name);
    tm_status st = owned_name ? reserve(w, 1) : tmi_fail(TM_ERR_NOMEM, "tm_weights_add: out of memory");
    if (st != TM_OK) {
        free(owned_name);
        free(data);
        return st;
    }
    wt_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = t->owned_name = owned_name;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = t->owned_data = data;
    t->nbytes = nbytes;
    index_insert(w, w->n++);
    return TM_OK;
}

tm_status tmi_weights_adopt(tm_weights *w, const char *name, tm_dtype dtype, int32_t ndim, const int64_t *shape,
                            void *data)
{
    int64_t nbytes;
    tm_status st = check_add(w, name, dtype, ndim, shape, &nbytes);
    if (st == TM_OK && nbytes > 0 && !data) st = tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": data is NULL", name);
    if (st == TM_OK && !data && !(data = malloc(1))) /* never a NULL data pointer, even for 0 bytes */
        st = tmi_fail(TM_ERR_NOMEM, "tm_weights_add: out of memory");
    if (st != TM_OK) {
        free(data);
        return st;
    }
    return adopt_checked(w, name, dtype, ndim, shape, data, nbytes);
}

tm_status tm_weights_add(tm_weights *w, const char *name, tm_dtype dtype, int32_t ndim, const int64_t *shape,
                         const void *data)
{
    int64_t nbytes;
    tm_status st = check_add(w, name, dtype, ndim, shape, &nbytes);
    if (st != TM_OK) return st;
    if (nbytes > 0 && !data) return tmi_fail(TM_ERR_INVALID_ARG, "tensor \"%.200s\": data is NULL", name);
    void *copy = malloc(nbytes > 0 ? (size_t)nbytes : 1);
    if (!copy) return tmi_fail(TM_ERR_NOMEM, "tensor \"%.200s\": out of memory (%lld bytes)", name, (long long)nbytes);
    if (nbytes > 0) memcpy(copy, data, (size_t)nbytes);
    return adopt_checked(w, name, dtype, ndim, shape, copy, nbytes);
}

int64_t tm_weights_count(const tm_weights *w) { return w ? w->n : 0; }

int tmi_weights_has(const tm_weights *w, const char *name) { return w && name && lookup(w, name) >= 0; }

static void fill_info(const wt_tensor *t, tm_tensor_info *out)
{
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->data = t->data;
    out->nbytes = t->nbytes;
}

tm_status tm_weights_info(const tm_weights *w, int64_t index, tm_tensor_info *out)
{
    if (!w || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_info: NULL argument");
    if (index < 0 || index >= w->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "tensor index must be in [0, %lld), got %lld", (long long)w->n,
                        (long long)index);
    fill_info(&w->t[index], out);
    return TM_OK;
}

tm_status tm_weights_find(const tm_weights *w, const char *name, tm_tensor_info *out)
{
    if (!w || !name || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_find: NULL argument");
    int64_t i = lookup(w, name);
    if (i < 0) return tmi_fail(TM_ERR_NOT_FOUND, "tensor \"%.200s\" not found", name);
    fill_info(&w->t[i], out);
    return TM_OK;
}

tm_status tm_weights_file_metadata(const tm_weights *w, int32_t file_index, const char **json)
{
    if (!w || !json) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_file_metadata: NULL argument");
    if (file_index < 0 || file_index >= w->n_files)
        return tmi_fail(TM_ERR_INVALID_ARG, "file_index must be in [0, %d), got %d", w->n_files, file_index);
    *json = w->files[file_index]->metadata_json;
    return TM_OK;
}

tm_status tm_weights_save(const tm_weights *w, const char *path, const char *metadata_json)
{
    if (!w || !path) return tmi_fail(TM_ERR_INVALID_ARG, "tm_weights_save: NULL weights or path");
    tmi_json_doc *doc = NULL;
    const tmi_json *meta = NULL;
    if (metadata_json) {
        tm_status st = tmi_json_parse(metadata_json, strlen(metadata_json), "metadata_json", 4, &doc, &meta);
        if (st != TM_OK) return st == TM_ERR_FORMAT ? TM_ERR_INVALID_ARG : st; /* the caller's text, not a file */
    }
    tmi_st_entry *e = calloc((size_t)w->n + 1, sizeof *e);
    if (!e) {
        tmi_json_free(doc);
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < w->n; i++)
        e[i] = (tmi_st_entry){w->t[i].name, w->t[i].dtype, w->t[i].ndim, w->t[i].shape, w->t[i].data, w->t[i].nbytes};
    tm_status st = tmi_st_write(path, e, w->n, meta);
    if (st == TM_ERR_INVALID_ARG) tmi_error_prefix("%s", path); /* IO messages name the file already */
    free(e);
    tmi_json_free(doc);
    return st;
}

/* test_weights.c - the tm_weights store: additions and their rules, lookups by
 * name and position, stable pointers, several files, concurrent lookups. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void test_store_api(void)
{
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    int64_t shape[9] = {2, 2, 1, 1, 1, 1, 1, 1, 1};
    float v[4] = {0};
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, 9, shape, v), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "ndim must be in [0, 8]"));
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, -1, shape, v), TM_ERR_INVALID_ARG);
    int64_t neg[2] = {2, -2};
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, 2, neg, v), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_add(w, NULL, TM_F32, 2, shape, v), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_add(w, "x", (tm_dtype)42, 2, shape, v), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, 2, shape, NULL), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_add(w, "__metadata__", TM_F32, 2, shape, v), TM_ERR_INVALID_ARG);
    int64_t huge[2] = {INT64_MAX / 2, 4};
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, 2, huge, v), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, 2, shape, v), TM_OK);
    CHECK_STATUS(tm_weights_add(w, "x", TM_F32, 2, shape, v), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "already"));
    int64_t zero[1] = {0};
    CHECK_STATUS(tm_weights_add(w, "z", TM_F32, 1, zero, NULL), TM_OK); /* zero-size: data may be NULL */
    tm_tensor_info t;
    CHECK_STATUS(tm_weights_find(w, "nope", &t), TM_ERR_NOT_FOUND);
    CHECK(strstr(tm_last_error(), "nope"));
    CHECK_STATUS(tm_weights_info(w, 2, &t), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_info(w, -1, &t), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_info(w, 1, &t), TM_OK);
    CHECK(t.nbytes == 0 && t.data != NULL && !strcmp(t.name, "z"));
    CHECK(tm_weights_count(NULL) == 0);
    tm_weights_destroy(NULL);

    /* metadata_json must be an object of strings; nothing is written otherwise */
    const char *path = tt_path("meta_bad.safetensors");
    CHECK_STATUS(tm_weights_save(w, path, "[1]"), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_save(w, path, "{\"a\":1}"), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_save(w, path, "{\"a\":"), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "metadata_json"));
    CHECK(file_size(path) == -1);
    CHECK_STATUS(tm_weights_save(w, tt_path("no-such-dir/x.safetensors"), NULL), TM_ERR_IO);
    CHECK(strstr(tm_last_error(), "no-such-dir"));
    tm_weights_destroy(w);

    /* a name that is not UTF-8 cannot go into a JSON header */
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    CHECK_STATUS(tm_weights_add(w, "bad\xff", TM_F32, 2, shape, v), TM_OK);
    CHECK_STATUS(tm_weights_save(w, path, NULL), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "UTF-8"));
    tm_weights_destroy(w);

    /* an empty store makes a valid empty file */
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    const char *empty = tt_path("empty.safetensors");
    CHECK_STATUS(tm_weights_save(w, empty, "{}"), TM_OK);
    CHECK(file_size(empty) == 16);
    CHECK_STATUS(tm_weights_load(w, empty), TM_OK);
    CHECK(tm_weights_count(w) == 0);
    tm_weights_destroy(w);
}

/* Thousands of names: the hash index grows and every lookup still lands. */
static void test_many_tensors(void)
{
    enum { N = 5000 };
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    char name[64];
    int ok = 1;
    for (int32_t i = 0; i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.attention.w_qkv.weight", i);
        int64_t shape[1] = {1};
        ok &= tm_weights_add(w, name, TM_I32, 1, shape, &i) == TM_OK;
    }
    CHECK(ok);
    const char *path = tt_path("many.safetensors");
    CHECK_STATUS(tm_weights_save(w, path, NULL), TM_OK);
    tm_weights *r = NULL;
    CHECK_STATUS(tm_weights_create(&r), TM_OK);
    CHECK_STATUS(tm_weights_load(r, path), TM_OK);
    for (int32_t i = N - 1; i >= 0; i--) {
        snprintf(name, sizeof name, "layers.%d.attention.w_qkv.weight", i);
        tm_tensor_info t;
        int32_t got = -1;
        if (tm_weights_find(r, name, &t) == TM_OK) memcpy(&got, t.data, 4);
        ok &= got == i;
    }
    CHECK(ok);
    tm_weights_destroy(r);
    tm_weights_destroy(w);
}

/* Names and data handed out stay where they are while the store grows. */
static void test_pointers_are_stable(void)
{
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    float v[3] = {1, 2, 3};
    int64_t shape[1] = {3};
    CHECK_STATUS(tm_weights_add(w, "first", TM_F32, 1, shape, v), TM_OK);
    v[0] = 99; /* the store holds a copy */
    tm_tensor_info first;
    CHECK_STATUS(tm_weights_find(w, "first", &first), TM_OK);
    char name[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "t%d", i);
        CHECK_STATUS(tm_weights_add(w, name, TM_F32, 1, shape, v), TM_OK);
    }
    tm_tensor_info again;
    CHECK_STATUS(tm_weights_find(w, "first", &again), TM_OK);
    CHECK(again.name == first.name && again.data == first.data && !strcmp(first.name, "first"));
    CHECK(((const float *)first.data)[0] == 1.0f && ((const float *)first.data)[2] == 3.0f);
    CHECK_STATUS(tm_weights_info(w, 0, &again), TM_OK);
    CHECK(again.data == first.data);
    CHECK_STATUS(tm_weights_info(w, 3000, &again), TM_OK);
    CHECK(!strcmp(again.name, "t2999"));
    tm_weights_destroy(w);
}

/* Several files and additions in one store: order, metadata per file, and a
 * name clash between a file and an addition. */
static void test_several_files(void)
{
    const char *paths[2] = {tt_path("shard-1.safetensors"), tt_path("shard-2.safetensors")};
    const char *metas[2] = {"{\"shard\":\"1\"}", NULL};
    for (int f = 0; f < 2; f++) {
        tm_weights *w = NULL;
        CHECK_STATUS(tm_weights_create(&w), TM_OK);
        int16_t v[4] = {(int16_t)f, 1, 2, 3};
        int64_t shape[2] = {2, 2};
        char name[32];
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "shard%d.t%d", f + 1, i);
            CHECK_STATUS(tm_weights_add(w, name, TM_I16, 2, shape, v), TM_OK);
        }
        CHECK_STATUS(tm_weights_save(w, paths[f], metas[f]), TM_OK);
        tm_weights_destroy(w);
    }
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    int64_t one[1] = {1};
    uint8_t byte = 7;
    CHECK_STATUS(tm_weights_add(w, "shard2.t1", TM_U8, 1, one, &byte), TM_OK);
    CHECK_STATUS(tm_weights_load(w, paths[0]), TM_OK);
    CHECK_STATUS(tm_weights_load(w, paths[1]), TM_ERR_FORMAT); /* shard2.t1 is taken */
    CHECK(strstr(tm_last_error(), "shard-2.safetensors") && strstr(tm_last_error(), "shard2.t1"));
    CHECK(tm_weights_count(w) == 4);
    tm_weights_destroy(w);

    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    CHECK_STATUS(tm_weights_load(w, paths[1]), TM_OK);
    CHECK_STATUS(tm_weights_load(w, paths[0]), TM_OK);
    CHECK_STATUS(tm_weights_add(w, "extra", TM_U8, 1, one, &byte), TM_OK);
    CHECK_STATUS(tm_weights_add(w, "shard1.t0", TM_U8, 1, one, &byte), TM_ERR_INVALID_ARG);
    CHECK(tm_weights_count(w) == 7);
    tm_tensor_info t;
    CHECK_STATUS(tm_weights_info(w, 0, &t), TM_OK);
    CHECK(!strcmp(t.name, "shard2.t0") && ((const int16_t *)t.data)[0] == 1);
    CHECK_STATUS(tm_weights_info(w, 3, &t), TM_OK);
    CHECK(!strcmp(t.name, "shard1.t0") && ((const int16_t *)t.data)[0] == 0 && t.shape[1] == 2);
    CHECK_STATUS(tm_weights_info(w, 6, &t), TM_OK);
    CHECK(!strcmp(t.name, "extra"));
    const char *m;
    CHECK_STATUS(tm_weights_file_metadata(w, 0, &m), TM_OK);
    CHECK(!strcmp(m, "{}"));
    CHECK_STATUS(tm_weights_file_metadata(w, 1, &m), TM_OK);
    CHECK(!strcmp(m, "{\"shard\":\"1\"}"));
    CHECK_STATUS(tm_weights_file_metadata(w, 2, &m), TM_ERR_INVALID_ARG);
    /* the combined store saves as one file again */
    const char *merged = tt_path("merged.safetensors");
    CHECK_STATUS(tm_weights_save(w, merged, "{\"note\":\"merged\"}"), TM_OK);
    tm_weights *r = NULL;
    CHECK_STATUS(tm_weights_create(&r), TM_OK);
    CHECK_STATUS(tm_weights_load(r, merged), TM_OK);
    CHECK(tm_weights_count(r) == 7);
    CHECK_STATUS(tm_weights_find(r, "shard1.t2", &t), TM_OK);
    CHECK(t.dtype == TM_I16 && t.nbytes == 8 && ((const int16_t *)t.data)[3] == 3);
    tm_weights_destroy(r);
    tm_weights_destroy(w);
}

typedef struct finder {
    const tm_weights *w;
    int n, seed, ok;
} finder;

static void *find_many(void *arg)
{
    finder *f = arg;
    char name[64];
    f->ok = 1;
    for (int k = 0; k < 20000; k++) {
        int i = (k * 7919 + f->seed) % f->n;
        snprintf(name, sizeof name, "model.layers.%d.mlp.weight", i);
        tm_tensor_info t;
        int32_t got = -1;
        if (tm_weights_find(f->w, name, &t) == TM_OK) memcpy(&got, t.data, 4);
        f->ok &= got == i;
    }
    return NULL;
}

/* "lookups may run concurrently": four threads over one store. */
static void test_concurrent_lookups(void)
{
    enum { N = 2000, THREADS = 4 };
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    char name[64];
    for (int32_t i = 0; i < N; i++) {
        snprintf(name, sizeof name, "model.layers.%d.mlp.weight", i);
        int64_t shape[1] = {1};
        CHECK(tm_weights_add(w, name, TM_I32, 1, shape, &i) == TM_OK);
    }
    pthread_t th[THREADS];
    finder f[THREADS];
    for (int i = 0; i < THREADS; i++) {
        f[i] = (finder){w, N, i * 31, 0};
        CHECK(pthread_create(&th[i], NULL, find_many, &f[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(f[i].ok);
    }
    tm_weights_destroy(w);
}

int main(void)
{
    RUN(test_store_api);
    RUN(test_many_tensors);
    RUN(test_pointers_are_stable);
    RUN(test_several_files);
    RUN(test_concurrent_lookups);
    return tt_finish();
}

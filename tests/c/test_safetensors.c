/* test_safetensors.c - the safetensors reader and writer, through tm_weights and
 * directly (runtime/safetensors.c): round trips of every dtype, and one
 * hand-built malformed file per validation rule. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "runtime/json.h"
#include "runtime/safetensors.h"

static void fill_bytes(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (unsigned char)(s >> 24);
    }
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static unsigned char *read_all(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

typedef struct spec {
    const char *name;
    tm_dtype dtype;
    int32_t ndim;
    int64_t shape[3];
} spec;

/* Every dtype, a 0-d tensor, zero-size tensors, names that need escaping, and a
 * F16 of odd length so the F32 after it lands misaligned in the file. */
static const spec specs[] = {
    {"f32", TM_F32, 2, {2, 3}},
    {"f16.odd", TM_F16, 1, {3}},
    {"f32.misaligned", TM_F32, 1, {5}},
    {"bf16", TM_BF16, 3, {2, 1, 4}},
    {"i32", TM_I32, 1, {7}},
    {"i64", TM_I64, 2, {1, 3}},
    {"i16", TM_I16, 1, {9}},
    {"i8", TM_I8, 1, {11}},
    {"u8", TM_U8, 2, {4, 4}},
    {"bool", TM_BOOL, 1, {6}},
    {"f64", TM_F64, 1, {2}},
    {"scalar", TM_F32, 0, {0}},
    {"empty", TM_F16, 1, {0}},
    {"empty.2d", TM_I64, 2, {3, 0}},
    {"q\"uote\\back\tslash\x01", TM_U8, 1, {2}},
    {"\xc3\xa9mbed.\xe4\xb8\xad", TM_BF16, 1, {2}},
};
enum { N_SPECS = sizeof specs / sizeof specs[0] };

static int64_t spec_bytes(const spec *s)
{
    int64_t n = (int64_t)tm_dtype_size(s->dtype);
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static tm_weights *build_store(unsigned char **data)
{
    tm_weights *w = NULL;
    if (!CHECK_STATUS(tm_weights_create(&w), TM_OK)) return NULL;
    for (int i = 0; i < N_SPECS; i++) {
        int64_t n = spec_bytes(&specs[i]);
        data[i] = malloc((size_t)n + 1);
        fill_bytes(data[i], (size_t)n, (unsigned)i + 1);
        CHECK_STATUS(tm_weights_add(w, specs[i].name, specs[i].dtype, specs[i].ndim, specs[i].shape, data[i]), TM_OK);
    }
    return w;
}

static void check_same(const tm_weights *w, unsigned char **data)
{
    CHECK(tm_weights_count(w) == N_SPECS);
    for (int i = 0; i < N_SPECS; i++) {
        tm_tensor_info a, b;
        if (!CHECK_STATUS(tm_weights_info(w, i, &a), TM_OK)) continue;
        CHECK(!strcmp(a.name, specs[i].name)); /* insertion order survives the file */
        CHECK(a.dtype == specs[i].dtype && a.ndim == specs[i].ndim);
        for (int d = 0; d < a.ndim; d++) CHECK(a.shape[d] == specs[i].shape[d]);
        CHECK(a.nbytes == spec_bytes(&specs[i]));
        CHECK(a.data != NULL && memcmp(a.data, data[i], (size_t)a.nbytes) == 0);
        if (!CHECK((uintptr_t)a.data % tm_dtype_size(a.dtype) == 0)) fprintf(stderr, "  misaligned %s\n", a.name); /* realigned where the file is not */
        CHECK_STATUS(tm_weights_find(w, specs[i].name, &b), TM_OK);
        CHECK(b.data == a.data && b.name == a.name);
    }
}

static void test_round_trip(void)
{
    unsigned char *data[N_SPECS] = {0};
    tm_weights *w = build_store(data);
    if (!w) return;
    const char *path = tt_path("good.safetensors");
    const char *meta = "{\"format\":\"pt\",\"note\":\"a \\\"q\\\"\\n\\u00e9\\u0000z\"}";
    CHECK_STATUS(tm_weights_save(w, path, meta), TM_OK);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(file_size(tmp) == -1); /* renamed into place */

    long n = 0;
    unsigned char *bytes = read_all(path, &n);
    if (CHECK(bytes && n >= 16)) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | bytes[i];
        CHECK(hl % 8 == 0 && bytes[8] == '{' && 8 + hl <= (uint64_t)n);
        CHECK(bytes[8 + hl - 1] == ' ' || bytes[8 + hl - 1] == '}');
        int64_t total = 0;
        for (int i = 0; i < N_SPECS; i++) total += spec_bytes(&specs[i]);
        CHECK((uint64_t)n == 8 + hl + (uint64_t)total); /* no gaps, no tail */
    }
    free(bytes);

    tm_weights *r = NULL;
    CHECK_STATUS(tm_weights_create(&r), TM_OK);
    CHECK_STATUS(tm_weights_load(r, path), TM_OK);
    check_same(r, data);
    const char *mj = NULL;
    CHECK_STATUS(tm_weights_file_metadata(r, 0, &mj), TM_OK);
    tmi_json_doc *doc = NULL;
    const tmi_json *m = NULL;
    if (CHECK(mj) && CHECK_STATUS(tmi_json_parse(mj, strlen(mj), "meta", 4, &doc, &m), TM_OK)) {
        CHECK(m->type == TMI_JSON_OBJECT && m->len == 2);
        CHECK(!strcmp(tmi_json_get(m, "format")->str, "pt"));
        const tmi_json *note = tmi_json_get(m, "note");
        CHECK(note && note->len == 10 && !memcmp(note->str, "a \"q\"\n\xc3\xa9\0z", 10));
    }
    tmi_json_free(doc);
    CHECK_STATUS(tm_weights_file_metadata(r, 1, &mj), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_weights_file_metadata(r, -1, &mj), TM_ERR_INVALID_ARG);

    /* a second save of the loaded store (views into its own mapping) is identical */
    const char *path2 = tt_path("good2.safetensors");
    CHECK_STATUS(tm_weights_save(r, path2, meta), TM_OK);
    long n1, n2;
    unsigned char *b1 = read_all(path, &n1), *b2 = read_all(path2, &n2);
    CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, (size_t)n1));
    free(b1);
    free(b2);

    /* overwrite the file the store has mapped: the old mapping stays valid */
    CHECK_STATUS(tm_weights_save(w, path, NULL), TM_OK);
    check_same(r, data);
    tm_weights_destroy(r);
    for (int i = 0; i < N_SPECS; i++) free(data[i]);
    tm_weights_destroy(w);
}

/* tmi_st_open directly: aligned tensors are views into the mapping. */
static void test_zero_copy_views(void)
{
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[1] = {6};
    CHECK_STATUS(tm_weights_add(w, "a", TM_F32, 1, shape, a), TM_OK);
    const char *path = tt_path("view.safetensors");
    CHECK_STATUS(tm_weights_save(w, path, NULL), TM_OK);
    tm_weights_destroy(w);

    tmi_st_file *f = NULL;
    if (!CHECK_STATUS(tmi_st_open(path, &f), TM_OK)) return;
    CHECK(f->n_tensors == 1 && !strcmp(f->metadata_json, "{}"));
    const unsigned char *base = f->map;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | base[i];
    CHECK((const unsigned char *)f->tensors[0].data == base + 8 + hl);
    CHECK(!memcmp(f->tensors[0].data, a, sizeof a));
    tmi_st_close(f);

    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    CHECK_STATUS(tm_weights_load(w, path), TM_OK);
    tm_tensor_info t;
    CHECK_STATUS(tm_weights_find(w, "a", &t), TM_OK);
    CHECK(t.nbytes == 24 && !memcmp(t.data, a, sizeof a));
    const char *mj;
    CHECK_STATUS(tm_weights_file_metadata(w, 0, &mj), TM_OK);
    CHECK(!strcmp(mj, "{}"));
    /* the same names again, from a second file: rejected before anything is added */
    CHECK_STATUS(tm_weights_load(w, path), TM_ERR_FORMAT);
    CHECK(strstr(tm_last_error(), "view.safetensors") && strstr(tm_last_error(), "\"a\""));
    CHECK(tm_weights_count(w) == 1);
    CHECK_STATUS(tm_weights_file_metadata(w, 1, &mj), TM_ERR_INVALID_ARG);
    tm_weights_destroy(w);
}

/* A file from the reference writer (Python safetensors 0.8.0 with torch; see
 * tests/data/safetensors/make_torch_written.py), which orders tensors by dtype
 * alignment rather than by name or insertion. */
static void test_reference_file(void)
{
    const char *path = "tests/data/safetensors/torch_written.safetensors";
    tm_weights *w = NULL, *r = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    if (!CHECK_STATUS(tm_weights_load(w, path), TM_OK)) {
        tm_weights_destroy(w);
        return;
    }
    CHECK(tm_weights_count(w) == 13);
    const char *mj;
    tmi_json_doc *doc = NULL;
    const tmi_json *m;
    CHECK_STATUS(tm_weights_file_metadata(w, 0, &mj), TM_OK);
    if (CHECK_STATUS(tmi_json_parse(mj, strlen(mj), "meta", 4, &doc, &m), TM_OK)) {
        CHECK(m->len == 2 && !strcmp(tmi_json_get(m, "format")->str, "pt"));
        CHECK(!strcmp(tmi_json_get(m, "k")->str, "v\n\"q\""));
    }
    tmi_json_free(doc);
    tm_tensor_info t;
    CHECK_STATUS(tm_weights_find(w, "e.i64", &t), TM_OK);
    const int64_t *i64 = t.data;
    CHECK(t.dtype == TM_I64 && t.ndim == 1 && t.shape[0] == 6 && i64[0] == -3 && i64[5] == 2);
    CHECK_STATUS(tm_weights_find(w, "f.scalar", &t), TM_OK);
    CHECK(t.dtype == TM_F32 && t.ndim == 0 && t.nbytes == 4 && *(const float *)t.data == 2.5f);
    CHECK_STATUS(tm_weights_find(w, "g.empty", &t), TM_OK);
    CHECK(t.ndim == 2 && t.shape[0] == 0 && t.shape[1] == 4 && t.nbytes == 0);
    CHECK_STATUS(tm_weights_find(w, "l.i32", &t), TM_OK);
    CHECK(((const int32_t *)t.data)[0] == 1 << 30 && ((const int32_t *)t.data)[1] == -5);
    CHECK_STATUS(tm_weights_find(w, "k.i16", &t), TM_OK);
    CHECK(((const int16_t *)t.data)[0] == -300 && ((const int16_t *)t.data)[1] == 300);
    CHECK_STATUS(tm_weights_find(w, "j.i8", &t), TM_OK);
    CHECK(t.dtype == TM_I8 && ((const int8_t *)t.data)[0] == -1 && ((const int8_t *)t.data)[1] == 2);
    CHECK_STATUS(tm_weights_find(w, "h.u8", &t), TM_OK);
    CHECK(t.dtype == TM_U8 && t.nbytes == 7 && ((const uint8_t *)t.data)[6] == 6);
    CHECK_STATUS(tm_weights_find(w, "d.bool", &t), TM_OK);
    CHECK(t.dtype == TM_BOOL && !memcmp(t.data, "\x01\x00\x01", 3));
    CHECK_STATUS(tm_weights_find(w, "m\xc3\xbcnich\"x", &t), TM_OK);
    CHECK(t.dtype == TM_F32 && ((const float *)t.data)[1] == 1.0f);
    /* random values, by their bits as torch wrote them */
    CHECK_STATUS(tm_weights_find(w, "a.f16.odd", &t), TM_OK);
    CHECK(t.dtype == TM_F16 && ((const uint16_t *)t.data)[0] == 0x3e2a && ((const uint16_t *)t.data)[2] == 0xc05c);
    CHECK_STATUS(tm_weights_find(w, "b.f32", &t), TM_OK);
    uint32_t u32;
    memcpy(&u32, t.data, 4);
    CHECK(t.shape[0] == 2 && t.shape[1] == 5 && u32 == 0x3f1184b6u);
    CHECK_STATUS(tm_weights_find(w, "c.bf16", &t), TM_OK);
    CHECK(t.dtype == TM_BF16 && ((const uint16_t *)t.data)[0] == 0x3f8d && ((const uint16_t *)t.data)[11] == 0x3e44);
    CHECK_STATUS(tm_weights_find(w, "i.f64", &t), TM_OK);
    uint64_t u64;
    memcpy(&u64, t.data, 8);
    CHECK(t.dtype == TM_F64 && u64 == 0x3ff43880e0000000ull);
    /* and through our writer and reader again, unchanged */
    const char *again = tt_path("torch_again.safetensors");
    CHECK_STATUS(tm_weights_save(w, again, mj), TM_OK);
    CHECK_STATUS(tm_weights_create(&r), TM_OK);
    CHECK_STATUS(tm_weights_load(r, again), TM_OK);
    CHECK(tm_weights_count(r) == 13);
    for (int64_t i = 0; i < tm_weights_count(w); i++) {
        tm_tensor_info a, b;
        CHECK_STATUS(tm_weights_info(w, i, &a), TM_OK);
        CHECK_STATUS(tm_weights_info(r, i, &b), TM_OK);
        CHECK(!strcmp(a.name, b.name) && a.dtype == b.dtype && a.nbytes == b.nbytes &&
              !memcmp(a.data, b.data, (size_t)a.nbytes));
    }
    tm_weights_destroy(r);
    tm_weights_destroy(w);
}

/* ------------------------------------------------------ malformed files -- */

/* A file of u64 hl (or strlen(header) when hl is -1), the header, then
 * data_len bytes of data. */
static const char *write_raw(const char *name, const char *header, int64_t hl, size_t data_len)
{
    const char *path = tt_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) return path;
    size_t n = strlen(header);
    uint64_t v = hl < 0 ? (uint64_t)n : (uint64_t)hl;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(v >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
    return path;
}

typedef struct bad_file {
    const char *file;
    const char *header;
    size_t data_len;
    const char *field; /* the message must name it */
} bad_file;

static void expect_bad(const char *path, tm_status want, const char *field)
{
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    tm_status st = tm_weights_load(w, path);
    const char *msg = tm_last_error();
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int ok = st == want && strstr(msg, base) && strstr(msg, field) && tm_weights_count(w) == 0;
    if (!CHECK(ok)) fprintf(stderr, "  %s: got %s \"%s\", want %s naming \"%s\"\n", base, tm_status_name(st), msg,
                            tm_status_name(want), field);
    tm_weights_destroy(w);
}

#define T(body) "{\"a\":{" body "}}"
#define OK_A "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"

static void test_malformed_headers(void)
{
    static const bad_file cases[] = {
        {"h_json.safetensors", "{\"a\":", 0, "header: JSON at byte 5"},
        {"h_not_object.safetensors", "[1,2]", 0, "header: must be a JSON object"},
        {"h_trailing.safetensors", "{}   x", 0, "trailing characters"},
        {"h_utf8.safetensors", "{\"\xc0\xaf\":{}}", 0, "invalid UTF-8"},
        {"h_dtype_unknown.safetensors", T("\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]"), 1, "unknown dtype \"F8\""},
        {"h_dtype_type.safetensors", T("\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]"), 4, "dtype must be a string"},
        {"h_shape_type.safetensors", T("\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]"), 4, "shape must be an array"},
        {"h_shape_neg.safetensors", T("\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]"), 4, "shape[1] must be a non-negative integer"},
        {"h_shape_frac.safetensors", T("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4, "shape[0] must be"},
        {"h_shape_dims.safetensors", T("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), 1, "shape has 9 dims"},
        {"h_shape_overflow.safetensors", T("\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]"), 1, "element count overflows"},
        {"h_bytes_overflow.safetensors", T("\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,1]"), 1, "byte size overflows"},
        {"h_offsets_one.safetensors", T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]"), 4, "data_offsets must be two"},
        {"h_offsets_str.safetensors", T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]"), 4, "data_offsets must be two"},
        {"h_offsets_order.safetensors", T("\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]"), 4, "begin is after end"},
        {"h_offsets_beyond.safetensors", T("\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]"), 8, "end beyond the data area"},
        {"x.safetensors", "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12,
         "tensor \"a.weight\": data_offsets [0, 12] hold 12 bytes but shape [2, 3] of F32 needs 24"},
        {"h_overlap.safetensors", "{\"a\":{" OK_A "},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}", 10, "overlap tensor \"a\""},
        {"h_gap.safetensors", "{\"a\":{" OK_A "},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "gap"},
        {"h_tail.safetensors", T(OK_A), 8, "unreferenced bytes at the end"},
        {"h_dup_name.safetensors", "{\"a\":{" OK_A "},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor \"a\": name appears twice"},
        {"h_unknown_key.safetensors", T(OK_A ",\"offsets\":[0,4]"), 4, "unknown key \"offsets\""},
        {"h_dup_key.safetensors", T(OK_A ",\"dtype\":\"F32\""), 4, "key \"dtype\" given twice"},
        {"h_missing_shape.safetensors", T("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4, "missing field \"shape\""},
        {"h_missing_dtype.safetensors", T("\"shape\":[1],\"data_offsets\":[0,4]"), 4, "missing field \"dtype\""},
        {"h_missing_offsets.safetensors", T("\"dtype\":\"F32\",\"shape\":[1]"), 4, "missing field \"data_offsets\""},
        {"h_entry_type.safetensors", "{\"a\":[1]}", 0, "tensor \"a\": entry must be an object"},
        {"h_meta_type.safetensors", "{\"__metadata__\":\"pt\"}", 0, "__metadata__ must be an object"},
        {"h_meta_value.safetensors", "{\"__metadata__\":{\"format\":1}}", 0, "__metadata__ \"format\": value must be a string"},
        {"h_nul_name.safetensors", "{\"a\\u0000b\":{" OK_A "}}", 4, "NUL"},
        {"h_deep.safetensors", "{\"a\":{\"dtype\":[[[[[[[[[[1]]]]]]]]]]}}", 0, "nesting deeper"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_raw(cases[i].file, cases[i].header, -1, cases[i].data_len);
        expect_bad(path, TM_ERR_FORMAT, cases[i].field);
    }
    CHECK(sizeof cases / sizeof cases[0] >= 14);
}

static void test_malformed_framing(void)
{
    /* shorter than the 8-byte length */
    const char *p = tt_path("f_short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\x02\0\0\0\0", 1, 5, f);
    fclose(f);
    expect_bad(p, TM_ERR_FORMAT, "shorter than the 8-byte header length");
    expect_bad(write_raw("f_zero.safetensors", "{}", 0, 0), TM_ERR_FORMAT, "header length is 0");
    expect_bad(write_raw("f_long.safetensors", "{}", 1000, 0), TM_ERR_FORMAT, "header length 1000 exceeds the 2 bytes");
    /* over 100 MB of header: a sparse file, so the length does fit the file */
    p = tt_path("f_huge.safetensors");
    f = fopen(p, "wb");
    unsigned char len8[8] = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}; /* 100000001 */
    fwrite(len8, 1, 8, f);
    fclose(f);
    CHECK(truncate(p, 100000016) == 0);
    expect_bad(p, TM_ERR_FORMAT, "header length 100000001 exceeds the limit of 100000000");
    unlink(p);
    /* trailing spaces are the writers' padding, not garbage */
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    CHECK_STATUS(tm_weights_load(w, write_raw("f_spaces.safetensors", T(OK_A) "      ", -1, 4)), TM_OK);
    CHECK(tm_weights_count(w) == 1);
    /* a zero-size tensor may share its offset with the next one */
    CHECK_STATUS(tm_weights_load(w, write_raw("f_zero_size.safetensors",
                                              "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
                                              "\"y\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                                              -1, 2)),
                 TM_OK);
    CHECK(tm_weights_count(w) == 3);
    tm_weights_destroy(w);
    expect_bad(tt_path("does-not-exist.safetensors"), TM_ERR_IO, "cannot open");
    expect_bad(tt_tmpdir(), TM_ERR_IO, "not a regular file");
}

/* A valid header whose data area was cut short (an interrupted download). */
static void test_truncated_file(void)
{
    tm_weights *w = NULL;
    CHECK_STATUS(tm_weights_create(&w), TM_OK);
    float v[64];
    tt_fill_random(v, 64, 7);
    int64_t shape[2] = {8, 8};
    CHECK_STATUS(tm_weights_add(w, "first", TM_F32, 2, shape, v), TM_OK);
    CHECK_STATUS(tm_weights_add(w, "last", TM_F32, 2, shape, v), TM_OK);
    const char *path = tt_path("truncated.safetensors");
    CHECK_STATUS(tm_weights_save(w, path, NULL), TM_OK);
    tm_weights_destroy(w);
    long n = file_size(path);
    CHECK(n > 100 && truncate(path, n - 10) == 0);
    expect_bad(path, TM_ERR_FORMAT, "tensor \"last\": data_offsets [256, 512] end beyond the data area of 502 bytes");
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_zero_copy_views);
    RUN(test_reference_file);
    RUN(test_malformed_headers);
    RUN(test_malformed_framing);
    RUN(test_truncated_file);
    return tt_finish();
}

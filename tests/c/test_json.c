/* test_json.c - the strict JSON reader (runtime/json.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "runtime/json.h"

static const tmi_json *parse_ok(const char *text, size_t len, tmi_json_doc **doc)
{
    const tmi_json *root = NULL;
    *doc = NULL;
    if (!CHECK_STATUS(tmi_json_parse(text, len, "t.json", 64, doc, &root), TM_OK)) return NULL;
    return root;
}

static void test_nesting(void)
{
    const char *s = " {\"a\": [1, {\"b\": [true, false, null]}], \"c\": {}, \"d\": [], \"a\": \"dup\"} ";
    tmi_json_doc *doc;
    const tmi_json *r = parse_ok(s, strlen(s), &doc);
    if (!r) return;
    CHECK(r->type == TMI_JSON_OBJECT && r->len == 4);
    const tmi_json *a = tmi_json_get(r, "a");
    CHECK(a && a->type == TMI_JSON_ARRAY && a->len == 2); /* the first "a" wins */
    CHECK(a->items[0].type == TMI_JSON_NUMBER && a->items[0].is_int && a->items[0].i == 1);
    const tmi_json *b = tmi_json_get(&a->items[1], "b");
    CHECK(b && b->type == TMI_JSON_ARRAY && b->len == 3);
    CHECK(b->items[0].type == TMI_JSON_TRUE && b->items[1].type == TMI_JSON_FALSE && b->items[2].type == TMI_JSON_NULL);
    const tmi_json *c = tmi_json_get(r, "c");
    CHECK(c && c->type == TMI_JSON_OBJECT && c->len == 0);
    const tmi_json *d = tmi_json_get(r, "d");
    CHECK(d && d->type == TMI_JSON_ARRAY && d->len == 0);
    CHECK(!strcmp(r->keys[3], "a") && r->items[3].type == TMI_JSON_STRING && !strcmp(r->items[3].str, "dup"));
    CHECK(tmi_json_get(r, "missing") == NULL);
    CHECK(tmi_json_get(a, "a") == NULL); /* not an object */
    tmi_json_free(doc);
}

static void test_strings(void)
{
    const char *s = "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u4E2D\\ud83d\\ude00\", \"a\\u0000b\", \"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\", \"\"]";
    tmi_json_doc *doc;
    const tmi_json *r = parse_ok(s, strlen(s), &doc);
    if (!r) return;
    CHECK(r->len == 5);
    CHECK(r->items[0].len == 8 && !memcmp(r->items[0].str, "\"\\/\b\f\n\r\t", 8));
    const char *u = "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80";
    CHECK(r->items[1].len == 9 && !memcmp(r->items[1].str, u, 9));
    CHECK(r->items[2].len == 3 && !memcmp(r->items[2].str, "a\0b", 4)); /* NUL kept, and terminated */
    CHECK(r->items[3].len == 9 && !memcmp(r->items[3].str, u, 10));
    CHECK(r->items[4].len == 0 && r->items[4].str[0] == '\0');
    /* escaped and raw member names decode the same way */
    const char *o = "{\"\\u00e9\": 1, \"k\\nx\": 2}";
    tmi_json_doc *doc2;
    const tmi_json *r2 = parse_ok(o, strlen(o), &doc2);
    if (r2) {
        CHECK(tmi_json_get(r2, "\xc3\xa9") && tmi_json_get(r2, "\xc3\xa9")->i == 1);
        CHECK(r2->key_lens[1] == 3 && tmi_json_get(r2, "k\nx")->i == 2);
    }
    tmi_json_free(doc2);
    tmi_json_free(doc);
}

static void test_numbers(void)
{
    const char *s = "[0, -0, 123, -9223372036854775808, 9223372036854775807, 9223372036854775808, 1e308, 1.5, "
                    "-2.5e-3, 1E2, 0.0, -1e-400, 12345678901234567890123]";
    tmi_json_doc *doc;
    const tmi_json *r = parse_ok(s, strlen(s), &doc);
    if (!r) return;
    const tmi_json *n = r->items;
    CHECK(r->len == 13);
    CHECK(n[0].is_int && n[0].i == 0 && n[0].num == 0.0);
    CHECK(n[1].is_int && n[1].i == 0 && n[1].num == 0.0 && signbit(n[1].num)); /* -0 keeps its sign in num */
    CHECK(n[2].is_int && n[2].i == 123 && n[2].num == 123.0);
    CHECK(n[3].is_int && n[3].i == INT64_MIN);
    CHECK(n[4].is_int && n[4].i == INT64_MAX);
    CHECK(!n[5].is_int && n[5].num == 9223372036854775808.0);
    CHECK(!n[6].is_int && n[6].num == 1e308);
    CHECK(!n[7].is_int && n[7].num == 1.5);
    CHECK(!n[8].is_int && n[8].num == -2.5e-3);
    CHECK(!n[9].is_int && n[9].num == 100.0);
    CHECK(!n[10].is_int && n[10].num == 0.0);
    CHECK(!n[11].is_int && n[11].num == 0.0); /* underflow is 0, not an error */
    CHECK(!n[12].is_int && fabs(n[12].num - 1.2345678901234568e22) < 1e7);
    tmi_json_free(doc);
    /* a bare scalar is a document too, and the buffer need not be NUL-terminated */
    char num[3] = {'4', '2', '7'};
    const tmi_json *r2 = parse_ok(num, 2, &doc);
    CHECK(r2 && r2->is_int && r2->i == 42);
    tmi_json_free(doc);
}

typedef struct bad_case {
    const char *text;
    size_t at; /* the byte offset the message must name */
} bad_case;

static void test_invalid(void)
{
    static const bad_case cases[] = {
        {"", 0},
        {"[1,]", 3},
        {"{\"a\":1,}", 7},
        {"01", 0},
        {"[1 2]", 3},
        {"\"abc", 0},
        {"\"a\x01\"", 2},
        {"\"\\q\"", 1},
        {"\"\\ud800\"", 1},
        {"\"\\ud800\\u0041\"", 1},
        {"\"\\udc00\"", 1},
        {"\"\xc0\xaf\"", 1},
        {"\"\xed\xa0\x80\"", 1},
        {"\"\xf4\x90\x80\x80\"", 1},
        {"\"\x80\"", 1},
        {"\"\xe4\xb8\"", 1},
        {"[1] x", 4},
        {"{a:1}", 1},
        {"tru", 0},
        {"1.", 2},
        {"-", 1},
        {"1e+", 3},
        {"NaN", 0},
        {"{\"a\" 1}", 5},
        {"\"\\u12G4\"", 1},
        {"1e999", 0},
        {"[", 1},
        {"\xff", 0},
        {"{\"a\":1 \"b\":2}", 7},
        {"[1,,2]", 3},
        {"+1", 0},
        {".5", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tmi_json_doc *doc = NULL;
        const tmi_json *root = NULL;
        tm_status st = tmi_json_parse(cases[i].text, strlen(cases[i].text), "bad.json", 16, &doc, &root);
        char want[64];
        snprintf(want, sizeof want, "bad.json: JSON at byte %zu: ", cases[i].at);
        int ok = st == TM_ERR_FORMAT && strncmp(tm_last_error(), want, strlen(want)) == 0 && doc == NULL;
        if (!CHECK(ok)) fprintf(stderr, "  case %zu \"%s\": %s, %s\n", i, cases[i].text, tm_status_name(st), tm_last_error());
    }
    CHECK(sizeof cases / sizeof cases[0] >= 15);
}

static void test_depth(void)
{
    enum { DEEP = 20000 };
    char *s = malloc(2 * DEEP + 1);
    if (!CHECK(s)) return;
    for (int i = 0; i < DEEP; i++) s[i] = '[', s[2 * DEEP - 1 - i] = ']';
    tmi_json_doc *doc = NULL;
    const tmi_json *r;
    /* iterative: a depth far beyond any C stack's recursion budget is fine when allowed */
    CHECK_STATUS(tmi_json_parse(s, 2 * DEEP, "deep.json", DEEP, &doc, &r), TM_OK);
    if (doc) CHECK(r->type == TMI_JSON_ARRAY && r->len == 1);
    tmi_json_free(doc);
    doc = NULL;
    CHECK_STATUS(tmi_json_parse(s, 2 * DEEP, "deep.json", DEEP - 1, &doc, &r), TM_ERR_FORMAT);
    CHECK(strstr(tm_last_error(), "nesting deeper than") != NULL);
    CHECK(doc == NULL);
    CHECK_STATUS(tmi_json_parse("[[1]]", 5, "d.json", 2, &doc, &r), TM_OK);
    tmi_json_free(doc);
    CHECK_STATUS(tmi_json_parse("[[1]]", 5, "d.json", 1, &doc, &r), TM_ERR_FORMAT);
    CHECK(strstr(tm_last_error(), "d.json: JSON at byte 1: nesting") != NULL);
    CHECK_STATUS(tmi_json_parse("[]", 2, "d.json", 0, &doc, &r), TM_ERR_INVALID_ARG);
    free(s);
}

/* A tokenizer.json-sized document: a 10 MB vocab object and merges array. */
static void test_large_document_is_linear(void)
{
    enum { N = 250000 };
    size_t cap = 16u << 20, len = 0;
    char *s = malloc(cap);
    if (!CHECK(s)) return;
    len += (size_t)snprintf(s + len, cap - len, "{\"model\":{\"vocab\":{");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"tok\\u0120%06d\xc4\xa0x\":%d", i ? "," : "", i, i);
    len += (size_t)snprintf(s + len, cap - len, "},\"merges\":[");
    for (int i = 0; i < N; i++) len += (size_t)snprintf(s + len, cap - len, "%s\"a%d b%d\"", i ? "," : "", i, i + 1);
    len += (size_t)snprintf(s + len, cap - len, "]}}");
    CHECK(len > 9u << 20);
    tmi_json_doc *doc = NULL;
    const tmi_json *r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(tmi_json_parse(s, len, "tokenizer.json", 64, &doc, &r), TM_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "  parsed %.1f MB in %.3f s\n", (double)len / 1e6, sec);
    CHECK(sec < 3.0); /* ~0.1 s optimised; the bound holds under sanitizers and catches quadratic growth */
    if (doc) {
        const tmi_json *vocab = tmi_json_get(tmi_json_get(r, "model"), "vocab");
        CHECK(vocab && vocab->len == N);
        if (vocab) {
            CHECK(vocab->items[N - 1].i == N - 1);
            CHECK(!strcmp(vocab->keys[7], "tok\xc4\xa0" "000007\xc4\xa0x"));
        }
        const tmi_json *merges = tmi_json_get(tmi_json_get(r, "model"), "merges");
        CHECK(merges && merges->len == N && !strcmp(merges->items[3].str, "a3 b4"));
    }
    tmi_json_free(doc);
    free(s);
}

int main(void)
{
    RUN(test_nesting);
    RUN(test_strings);
    RUN(test_numbers);
    RUN(test_invalid);
    RUN(test_depth);
    RUN(test_large_document_is_linear);
    return tt_finish();
}

/* test_tokenizer.c - tm_tokenizer internals: the byte-level alphabet, UTF-8 repair,
 * NFC, cleanup, a hand-made tokenizer.json and tokenizer.model with known ids,
 * stream decoding of byte-fallback characters, and malformed files.  The real
 * tokenizers are checked against the reference in tests/lua/tokenizer_spec.lua. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/tokenizer.h"

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void test_byte_level_alphabet(void)
{
    CHECK(tmi_byte_to_cp(' ') == 0x120);  /* Ġ */
    CHECK(tmi_byte_to_cp('\n') == 0x10A); /* Ċ */
    CHECK(tmi_byte_to_cp('a') == 'a');
    CHECK(tmi_byte_to_cp(0xAD) == 0x143); /* the soft hyphen is remapped */
    CHECK(tmi_byte_to_cp(0xFF) == 0xFF);
    int seen[512] = {0}, ok = 1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tmi_byte_to_cp((uint8_t)b);
        if (cp >= 512 || seen[cp]++ || tmi_cp_to_byte(cp) != b) ok = 0;
    }
    CHECK(ok); /* a bijection with an inverse */
    CHECK(tmi_cp_to_byte(' ') == -1);
    CHECK(tmi_cp_to_byte(0x200) == -1);
}

static int sanitized_is(const char *in, size_t n, const char *want)
{
    tmi_buf out = {0};
    tm_status st;
    int valid = tmi_utf8_sanitize(in, n, &out, &st);
    int ok = st == TM_OK && (valid ? n == strlen(want) && memcmp(in, want, n) == 0
                                   : out.len == strlen(want) && memcmp(out.data, want, out.len) == 0);
    tmi_buf_free(&out);
    return ok;
}

static void test_utf8_repair_like_textdecoder(void)
{
#define FFFD "\xEF\xBF\xBD"
    CHECK(sanitized_is("abc", 3, "abc"));
    CHECK(sanitized_is("\xff", 1, FFFD));
    CHECK(sanitized_is("\xc0\xaf", 2, FFFD FFFD));           /* overlong lead */
    CHECK(sanitized_is("\xe2\x82\x28", 3, FFFD "("));        /* maximal subpart, then reread */
    CHECK(sanitized_is("\xed\xa0\x80", 3, FFFD FFFD FFFD));  /* a surrogate */
    CHECK(sanitized_is("\xf0\x9f\x98", 3, FFFD));            /* truncated at the end */
    CHECK(sanitized_is("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD)); /* above U+10FFFF */
    CHECK(sanitized_is("a\xe4\xbd" "b", 4, "a" FFFD "b"));
    CHECK(sanitized_is("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"));
    CHECK(tmi_js_space(0xFEFF) && !tmi_js_space(0x85) && tmi_js_space(0x3000) && !tmi_js_space('x'));
}

static int nfc_is(const char *in, const char *want)
{
    tmi_buf out = {0};
    int ok = tmi_nfc(in, strlen(in), &out) == TM_OK && out.len == strlen(want) && memcmp(out.data, want, out.len) == 0;
    tmi_buf_free(&out);
    return ok;
}

static void test_nfc(void)
{
    CHECK(nfc_is("plain ascii", "plain ascii"));
    CHECK(nfc_is("e\xcc\x81", "\xc3\xa9"));                       /* e + U+0301 -> é */
    CHECK(nfc_is("\xe2\x84\xab", "\xc3\x85"));                    /* U+212B ANGSTROM -> Å */
    CHECK(nfc_is("d\xcc\x87\xcc\xa3", "\xe1\xb8\x8d\xcc\x87"));   /* reordered: U+1E0D U+0307 */
    CHECK(nfc_is("a\xcc\x88\xcc\x81", "\xc3\xa4\xcc\x81"));       /* ä then the acute stays */
    CHECK(nfc_is("\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc"));    /* U+0958 is excluded */
    CHECK(nfc_is("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81")); /* jamo -> 각 */
    CHECK(nfc_is("\xea\xb0\x81", "\xea\xb0\x81"));
    CHECK(nfc_is("\xe4\xbd\xa0\xe5\xa5\xbd", "\xe4\xbd\xa0\xe5\xa5\xbd"));
}

static void test_cleanup_spaces(void)
{
    char s[64];
    strcpy(s, "a , b . c ? d ! don 't I 'm he 's");
    s[tmi_cleanup_spaces(s, strlen(s))] = 0;
    CHECK(strcmp(s, "a, b. c? d! don 't I'm he's") == 0);
    strcpy(s, "x  ' m"); /* " ' " -> "'" makes a " 'm" for a later pass */
    s[tmi_cleanup_spaces(s, strlen(s))] = 0;
    CHECK(strcmp(s, "x'm") == 0);
    strcpy(s, "do n't");
    s[tmi_cleanup_spaces(s, strlen(s))] = 0;
    CHECK(strcmp(s, "don't") == 0);
}

/* A SentencePiece-style tokenizer small enough to know its ids by hand. */
static const char *MINI_JSON =
    "{\"version\": \"1.0\", \"added_tokens\": ["
    "{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
    "{\"id\": 1, \"content\": \"<s>\", \"special\": true},"
    "{\"id\": 2, \"content\": \"</s>\", \"special\": true},"
    "{\"id\": 10, \"content\": \"<x>\", \"lstrip\": true, \"rstrip\": true, \"special\": false}],"
    "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"},"
    " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xe2\x96\x81\"}]},"
    "\"pre_tokenizer\": null,"
    "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
    " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]},"
    "\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"\xe2\x96\x81\"},"
    " \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \","
    " \"start\": 1, \"stop\": 0}]},"
    "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true,"
    " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"\xe2\x96\x81\": 3, \"a\": 4, \"b\": 5, \"ab\": 6,"
    " \"\xe2\x96\x81" "ab\": 7, \"<0xC3>\": 8, \"<0xA9>\": 9},"
    " \"merges\": [\"a b\", \"\xe2\x96\x81 ab\"]}}";

static int ids_are(tm_tokenizer *tok, const char *text, int add_special, const int32_t *want, int64_t n_want)
{
    int32_t ids[64];
    int64_t n = -1;
    if (tm_tokenizer_encode(tok, text, strlen(text), add_special, ids, 64, &n) != TM_OK) return 0;
    if (n != n_want) return 0;
    return memcmp(ids, want, (size_t)n * sizeof *ids) == 0;
}

static int decodes_to(tm_tokenizer *tok, const int32_t *ids, int64_t n, const char *want)
{
    char buf[128];
    size_t len = 0;
    return tm_tokenizer_decode(tok, ids, n, 0, buf, sizeof buf, &len) == TM_OK && len == strlen(want) &&
           memcmp(buf, want, len) == 0;
}

static void test_mini_sentencepiece(void)
{
    const char *dir = tt_path("mini");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(path, MINI_JSON);
    tm_tokenizer *tok = NULL;
    if (!CHECK_STATUS(tm_tokenizer_create(dir, &tok), TM_OK)) return;
    CHECK(tm_tokenizer_vocab_size(tok) == 11);
    CHECK(tm_tokenizer_bos_id(tok) == 1);

    CHECK(ids_are(tok, "ab ab", 1, (const int32_t[]){1, 7, 7}, 3));
    CHECK(ids_are(tok, "ab ab", 0, (const int32_t[]){7, 7}, 2));
    CHECK(ids_are(tok, "\xc3\xa9", 0, (const int32_t[]){3, 8, 9}, 3));        /* é by byte fallback */
    CHECK(ids_are(tok, "\xc3\xbc\xc3\xbc", 0, (const int32_t[]){3, 0}, 2));   /* ü twice: one fused unk */
    CHECK(ids_are(tok, "ab  <x>  ab", 0, (const int32_t[]){7, 10, 7}, 3));    /* lstrip / rstrip */
    CHECK(ids_are(tok, "<s>ab", 0, (const int32_t[]){1, 7}, 2));              /* specials in text */
    CHECK(ids_are(tok, "", 1, (const int32_t[]){1}, 1));

    /* the required-size protocol */
    int64_t n = -1;
    CHECK_STATUS(tm_tokenizer_encode(tok, "ab ab", 5, 1, NULL, 0, &n), TM_OK);
    CHECK(n == 3);
    int32_t two[2] = {-1, -1};
    CHECK_STATUS(tm_tokenizer_encode(tok, "ab ab ab", 8, 1, two, 1, &n), TM_OK);
    CHECK(n == 4 && two[0] == 1 && two[1] == -1);

    CHECK(decodes_to(tok, (const int32_t[]){1, 7, 7}, 3, "<s> ab ab"));
    CHECK(decodes_to(tok, (const int32_t[]){7, 7}, 2, "ab ab"));
    CHECK(decodes_to(tok, (const int32_t[]){3, 8, 9}, 3, "\xc3\xa9"));
    CHECK(decodes_to(tok, (const int32_t[]){8}, 1, "\xef\xbf\xbd"));
    char small[4];
    size_t len = 0;
    CHECK_STATUS(tm_tokenizer_decode(tok, (const int32_t[]){7, 7}, 2, 0, small, sizeof small, &len), TM_OK);
    CHECK(len == 5 && memcmp(small, "ab a", 4) == 0);
    CHECK_STATUS(tm_tokenizer_decode(tok, (const int32_t[]){11}, 1, 0, small, sizeof small, &len), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_tokenizer_decode(tok, (const int32_t[]){-1}, 1, 0, small, sizeof small, &len), TM_ERR_INVALID_ARG);

    /* the stream holds the first byte of é back */
    tm_tokenizer_stream *s = NULL;
    if (CHECK_STATUS(tm_tokenizer_stream_create(tok, 0, &s), TM_OK)) {
        const char *t;
        size_t tl;
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 3, &t, &tl), TM_OK);
        CHECK(tl == 0); /* the leading space is stripped */
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 8, &t, &tl), TM_OK);
        CHECK(tl == 0);
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 9, &t, &tl), TM_OK);
        CHECK(tl == 2 && memcmp(t, "\xc3\xa9", 2) == 0);
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 8, &t, &tl), TM_OK);
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 7, &t, &tl), TM_OK); /* a non-byte piece ends the run */
        CHECK(tl == 3 && memcmp(t, "\xef\xbf\xbd", 3) == 0);
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 99, &t, &tl), TM_ERR_INVALID_ARG);
        /* no tokenizer_config.json: cleanup is on, so " ab" waits (a " ." could follow) */
        CHECK_STATUS(tm_tokenizer_stream_flush(s, &t, &tl), TM_OK);
        CHECK(tl == 3 && memcmp(t, " ab", 3) == 0);
        CHECK_STATUS(tm_tokenizer_stream_feed(s, 7, &t, &tl), TM_OK); /* after flush: a new text */
        CHECK(tl == 2 && memcmp(t, "ab", 2) == 0);
        tm_tokenizer_stream_destroy(s);
    }

    const char *piece;
    CHECK_STATUS(tm_tokenizer_token_text(tok, 7, &piece, &len), TM_OK);
    CHECK(len == 5 && memcmp(piece, "\xe2\x96\x81" "ab", 5) == 0);
    int32_t id = -1;
    CHECK_STATUS(tm_tokenizer_token_id(tok, "<x>", 3, &id), TM_OK);
    CHECK(id == 10);
    CHECK_STATUS(tm_tokenizer_token_id(tok, "zz", 2, &id), TM_ERR_NOT_FOUND);
    CHECK(tm_tokenizer_is_special(tok, 1) && !tm_tokenizer_is_special(tok, 10));
    tm_tokenizer_destroy(tok);
}

/* Appends a protobuf varint / length-delimited field. */
static size_t pb_varint(unsigned char *o, uint64_t v)
{
    size_t n = 0;
    do {
        o[n++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static size_t pb_piece(unsigned char *o, const char *piece, float score, int type)
{
    unsigned char body[64];
    size_t n = 0, len = strlen(piece);
    body[n++] = 0x0A;
    n += pb_varint(body + n, len);
    memcpy(body + n, piece, len);
    n += len;
    body[n++] = 0x15; /* field 2, fixed32 */
    memcpy(body + n, &score, 4);
    n += 4;
    body[n++] = 0x18; /* field 3, varint */
    n += pb_varint(body + n, (uint64_t)type);
    size_t k = 0;
    o[k++] = 0x0A; /* ModelProto.pieces */
    k += pb_varint(o + k, n);
    memcpy(o + k, body, n);
    return k + n;
}

static void test_sentencepiece_model(void)
{
    unsigned char buf[1024];
    size_t n = 0;
    n += pb_piece(buf + n, "<unk>", 0, 2);
    n += pb_piece(buf + n, "<s>", 0, 3);
    n += pb_piece(buf + n, "</s>", 0, 3);
    n += pb_piece(buf + n, "\xe2\x96\x81", -1.0f, 1);
    n += pb_piece(buf + n, "a", -2.0f, 1);
    n += pb_piece(buf + n, "b", -3.0f, 1);
    n += pb_piece(buf + n, "ab", -0.5f, 1);
    n += pb_piece(buf + n, "\xe2\x96\x81" "ab", -0.1f, 1);
    n += pb_piece(buf + n, "<0xC3>", 0, 6);
    n += pb_piece(buf + n, "<0xA9>", 0, 6);
    /* TrainerSpec { model_type: BPE, byte_fallback: true } */
    const unsigned char trainer[] = {0x12, 0x05, 0x18, 0x02, 0x98, 0x02, 0x01};
    memcpy(buf + n, trainer, sizeof trainer);
    n += sizeof trainer;
    /* NormalizerSpec { add_dummy_prefix: true, remove_extra_whitespaces: false, escape_whitespaces: true } */
    const unsigned char norm[] = {0x1A, 0x06, 0x18, 0x01, 0x20, 0x00, 0x28, 0x01};
    memcpy(buf + n, norm, sizeof norm);
    n += sizeof norm;
    const char *path = tt_path("mini.model");
    write_file(path, buf, n);
    tm_tokenizer *tok = NULL;
    if (!CHECK_STATUS(tm_tokenizer_create(path, &tok), TM_OK)) return;
    CHECK(tm_tokenizer_vocab_size(tok) == 10);
    CHECK(tm_tokenizer_bos_id(tok) == 1 && tm_tokenizer_eos_id(tok) == 2);
    CHECK(ids_are(tok, "ab ab", 1, (const int32_t[]){1, 7, 7}, 3));
    CHECK(ids_are(tok, "\xc3\xa9", 0, (const int32_t[]){3, 8, 9}, 3));
    CHECK(ids_are(tok, "x", 0, (const int32_t[]){3, 0}, 2));
    CHECK(decodes_to(tok, (const int32_t[]){1, 7, 7, 2}, 4, "<s> ab ab</s>"));
    tm_tokenizer_destroy(tok);

    write_file(path, "\x0a\x7f", 2); /* a field longer than the file */
    CHECK_STATUS(tm_tokenizer_create(path, &tok), TM_ERR_FORMAT);
}

static tm_status create_from_json(const char *name, const char *json)
{
    const char *path = tt_path(name);
    write_text(path, json);
    tm_tokenizer *tok = NULL;
    tm_status st = tm_tokenizer_create(path, &tok);
    tm_tokenizer_destroy(tok);
    return st;
}

static int error_mentions(const char *what) { return strstr(tm_last_error(), what) != NULL; }

static void test_malformed_files(void)
{
    tm_tokenizer *tok = NULL;
    CHECK_STATUS(tm_tokenizer_create(tt_path("missing.json"), &tok), TM_ERR_IO);
    CHECK_STATUS(tm_tokenizer_create(tt_tmpdir(), &tok), TM_ERR_IO);
    CHECK(error_mentions("no tokenizer.json"));
    CHECK_STATUS(tm_tokenizer_create(NULL, &tok), TM_ERR_INVALID_ARG);

    CHECK_STATUS(create_from_json("bad1.json", "{\"model\": "), TM_ERR_FORMAT);
    CHECK(error_mentions("bad1.json"));
    CHECK_STATUS(create_from_json("bad2.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}"), TM_ERR_UNSUPPORTED);
    CHECK(error_mentions("Unigram"));
    CHECK_STATUS(create_from_json("bad3.json", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}"), TM_ERR_FORMAT);
    CHECK(error_mentions("model.vocab"));
    CHECK_STATUS(create_from_json("bad4.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}"),
                 TM_ERR_FORMAT);
    CHECK(error_mentions("model.vocab values"));
    CHECK_STATUS(create_from_json("bad5.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}"),
                 TM_ERR_FORMAT);
    CHECK(error_mentions("model.merges[0]"));
    CHECK_STATUS(create_from_json("bad6.json", "{\"normalizer\": {\"type\": \"Precompiled\"}, \"decoder\": {\"type\": \"Fuse\"},"
                                               "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"),
                 TM_ERR_UNSUPPORTED);
    CHECK(error_mentions("Precompiled"));
    CHECK_STATUS(create_from_json("bad7.json", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}},"
                                               "\"decoder\": {\"type\": \"ByteLevel\"},"
                                               "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"),
                 TM_ERR_FORMAT);
    CHECK(error_mentions("regex"));
    CHECK_STATUS(create_from_json("bad8.json", "{\"added_tokens\": [{\"id\": 5, \"content\": \"\"}],"
                                               "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"),
                 TM_ERR_FORMAT);
    CHECK(error_mentions("added_tokens[0].content"));
    CHECK_STATUS(create_from_json("ok.json", "{\"decoder\": {\"type\": \"ByteLevel\"},"
                                             "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"),
                 TM_OK);
}

int main(void)
{
    RUN(test_byte_level_alphabet);
    RUN(test_utf8_repair_like_textdecoder);
    RUN(test_nfc);
    RUN(test_cleanup_spaces);
    RUN(test_mini_sentencepiece);
    RUN(test_sentencepiece_model);
    RUN(test_malformed_files);
    return tt_finish();
}

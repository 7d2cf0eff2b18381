/* json.h - a strict JSON (RFC 8259) reader for the files tmrun loads: safetensors
 * headers, tokenizer.json, model.safetensors.index.json.
 *
 * The whole document is parsed into one arena (tmi_json_doc); nodes and strings
 * live until tmi_json_free.  Strings are decoded to UTF-8 (\uXXXX and surrogate
 * pairs), keep their length (they may hold NUL bytes) and are also NUL-terminated.
 * Invalid UTF-8, lone surrogates, control characters in strings, trailing
 * commas, leading zeros, trailing garbage and nesting deeper than max_depth are
 * errors with a byte offset in the message.  Duplicate keys are kept in order;
 * callers that need unique keys check for themselves. */
#ifndef TMI_JSON_H
#define TMI_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "tmrun.h"

typedef enum tmi_json_type {
    TMI_JSON_NULL,
    TMI_JSON_FALSE,
    TMI_JSON_TRUE,
    TMI_JSON_NUMBER,
    TMI_JSON_STRING,
    TMI_JSON_ARRAY,
    TMI_JSON_OBJECT
} tmi_json_type;

typedef struct tmi_json tmi_json;
struct tmi_json {
    tmi_json_type type;
    int64_t len;           /* string: bytes; array: items; object: members */
    const char *str;       /* string: decoded UTF-8, NUL-terminated */
    double num;            /* number: value */
    int is_int;            /* number: written without fraction/exponent and fits int64 */
    int64_t i;             /* number: value when is_int */
    const tmi_json *items; /* array: [len] items; object: [len] member values */
    const char *const *keys;  /* object: [len] member names, decoded, NUL-terminated */
    const int64_t *key_lens;  /* object: [len] name lengths in bytes */
};

typedef struct tmi_json_doc tmi_json_doc;

/* Parses text[0, len).  what names the source in error messages ("x.json").
 * Codes: TM_ERR_FORMAT (message: "<what>: JSON at byte N: <reason>"), TM_ERR_NOMEM. */
tm_status tmi_json_parse(const char *text, size_t len, const char *what, int max_depth,
                         tmi_json_doc **doc, const tmi_json **root);
void tmi_json_free(tmi_json_doc *doc);

/* The first member named key of an object, or NULL (also when obj is not an object). */
const tmi_json *tmi_json_get(const tmi_json *obj, const char *key);

#endif

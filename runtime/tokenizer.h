/* tokenizer.h - internals of tm_tokenizer, shared by the runtime/tokenizer_*.c files.
 *
 * The pipeline mirrors HuggingFace tokenizers as ported by transformers.js (the
 * reference the tests compare against, ids for ids):
 *
 *   text -> (invalid UTF-8 -> U+FFFD) -> added-token split (longest match, lstrip/rstrip)
 *        -> per section: normalizers -> pre-tokenizers -> BPE (+ byte fallback, fuse_unk)
 *        -> post-processor template (BOS/EOS)
 *
 * Decoding works on bytes: every id has a precomputed piece (byte-level pieces
 * already mapped back to raw bytes, "▁" already replaced, byte-fallback tokens as
 * their byte), and the concatenation is decoded as UTF-8 the way a WHATWG
 * TextDecoder does (each maximal invalid subpart becomes one U+FFFD), which is
 * what the reference's per-run decoding amounts to.  The stream decoder walks the
 * same state machine one id at a time.
 *
 * Threads: everything here except the BPE cache (tmi_bpe_cache) is immutable after
 * load, so decoding and streams may run concurrently; encoding takes the cache.
 */
#ifndef TMI_TOKENIZER_H
#define TMI_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/json.h"
#include "tmrun.h"

/* ----------------------------------------------------------- small buffers -- */

/* A growable byte buffer. */
typedef struct tmi_buf {
    char *data;
    size_t len;
    size_t cap;
} tmi_buf;

tm_status tmi_buf_reserve(tmi_buf *b, size_t extra);
tm_status tmi_buf_append(tmi_buf *b, const void *src, size_t n);
void tmi_buf_free(tmi_buf *b);

/* A growable int32 vector. */
typedef struct tmi_ivec {
    int32_t *data;
    size_t len;
    size_t cap;
} tmi_ivec;

tm_status tmi_ivec_push(tmi_ivec *v, int32_t x);
void tmi_ivec_free(tmi_ivec *v);

/* Bump allocator for strings that live as long as the tokenizer. */
typedef struct tmi_arena_block tmi_arena_block;
typedef struct tmi_arena {
    tmi_arena_block *head;
} tmi_arena;

/* Copies s[0, n) (s NULL: leaves the bytes unset) and a NUL; NULL when out of memory. */
char *tmi_arena_strdup(tmi_arena *a, const char *s, size_t n);
void tmi_arena_free(tmi_arena *a);

/* ------------------------------------------------------------- hash maps -- */

uint32_t tmi_hash_bytes(const void *p, size_t n);

/* string -> int32; keys are not copied (they must outlive the map). */
typedef struct tmi_strmap_slot {
    const char *key; /* NULL: empty */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} tmi_strmap_slot;

typedef struct tmi_strmap {
    tmi_strmap_slot *slots;
    uint32_t mask; /* capacity - 1, capacity a power of two */
    uint32_t count;
} tmi_strmap;

tm_status tmi_strmap_init(tmi_strmap *m, size_t expected);
/* Inserts or overwrites. */
tm_status tmi_strmap_put(tmi_strmap *m, const char *key, size_t len, int32_t val);
/* 1 and *val when found, else 0. */
int tmi_strmap_get(const tmi_strmap *m, const char *key, size_t len, int32_t *val);
void tmi_strmap_free(tmi_strmap *m);

/* ------------------------------------------------------------ UTF-8 tools -- */

/* Decodes one code point from s[0, n) (n >= 1).  Returns its length in bytes, or 0
 * when s starts an ill-formed sequence; *bad then receives the length of the
 * maximal subpart to replace by one U+FFFD (WHATWG / Unicode "best practice"). */
int tmi_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, int *bad);
/* Writes cp (<= 0x10FFFF) as UTF-8 into out[4]; returns the length. */
int tmi_utf8_encode(uint32_t cp, char *out);
/* Returns 1 when text is valid UTF-8; else writes a copy with every maximal
 * ill-formed subpart replaced by U+FFFD into out and returns 0 (out->len = 0 and
 * status in *st on allocation failure). */
int tmi_utf8_sanitize(const char *text, size_t len, tmi_buf *out, tm_status *st);
/* JavaScript's \s / String.prototype.trim whitespace (not Unicode White_Space:
 * it has U+FEFF and lacks U+0085). */
int tmi_js_space(uint32_t cp);

/* NFC of s[0, n) into out (replacing its content).  Input must be valid UTF-8. */
tm_status tmi_nfc(const char *s, size_t n, tmi_buf *out);

/* ------------------------------------------------------------- structure -- */

/* Per-id flags. */
enum {
    TMI_TOK_PRESENT = 1, /* the id has a token (vocab or added) */
    TMI_TOK_ADDED = 2,   /* content equals an added token's (decoded verbatim by ByteLevel) */
    TMI_TOK_SPECIAL = 4, /* skipped by skip_special */
    TMI_TOK_BYTE = 8     /* a byte-fallback token <0xXX>: its piece is that one byte */
};

typedef struct tmi_added {
    const char *content;
    uint32_t len;
    int32_t id;
    uint8_t lstrip, rstrip, special;
} tmi_added;

/* Normalizer steps, applied in order. */
typedef enum tmi_norm_kind { TMI_NORM_PREPEND, TMI_NORM_REPLACE, TMI_NORM_NFC } tmi_norm_kind;
typedef struct tmi_norm {
    tmi_norm_kind kind;
    const char *a; /* PREPEND: text; REPLACE: pattern */
    uint32_t a_len;
    const char *b; /* REPLACE: content */
    uint32_t b_len;
} tmi_norm;

/* Pre-tokenizer steps, applied in order to the list of pieces. */
typedef enum tmi_pre_kind { TMI_PRE_SPLIT, TMI_PRE_BYTELEVEL, TMI_PRE_METASPACE } tmi_pre_kind;
typedef struct tmi_pre {
    tmi_pre_kind kind;
    void *regex;          /* SPLIT / BYTELEVEL with use_regex: pcre2_code_8 * */
    void *match_data;     /* pcre2_match_data_8 * for regex */
    int invert;           /* SPLIT: keep only the matches */
    int add_prefix_space; /* BYTELEVEL / METASPACE */
    int prepend_first;    /* METASPACE: prepend only in the first section */
    const char *repl;     /* METASPACE: replacement ("▁") */
    uint32_t repl_len;
} tmi_pre;

/* How ids become text (see the file comment). */
#define TMI_DEC_MAX_REPLACE 4
typedef struct tmi_decoder {
    int byte_level;        /* pieces are raw bytes from the byte-level alphabet */
    int byte_fallback;     /* <0xXX> tokens are raw bytes */
    int strip_bom_in_runs; /* ByteFallback runs are decoded with a BOM-eating TextDecoder */
    int strip_first_space; /* Strip(start=1) after Fuse: drop one leading ' ' of the text */
    int metaspace_prefix;  /* Metaspace: drop the first token's leading ' ' */
    int cleanup;           /* clean_up_tokenization_spaces */
    int32_t n_replace;     /* Replace decoders (and Metaspace's), applied to each token */
    const char *replace_pat[TMI_DEC_MAX_REPLACE];
    uint32_t replace_pat_len[TMI_DEC_MAX_REPLACE];
    const char *replace_with[TMI_DEC_MAX_REPLACE];
    uint32_t replace_with_len[TMI_DEC_MAX_REPLACE];
} tmi_decoder;

/* Pre-tokens: (offset, length) pairs into one text buffer. */
typedef struct tmi_pieces {
    tmi_buf text;
    tmi_ivec spans; /* [2 * count]: offset, length */
} tmi_pieces;

typedef struct tmi_merge_slot {
    uint64_t key;   /* (left << 32) | right; UINT64_MAX: empty */
    uint32_t rank;
    int32_t merged; /* symbol id of left + right */
} tmi_merge_slot;

typedef struct tmi_bpe_cache tmi_bpe_cache;

struct tm_tokenizer {
    char *path; /* what error messages name */
    tmi_arena arena;

    /* ids */
    int32_t n_ids;        /* vocab size: max id + 1 */
    const char **pieces;  /* [n_ids] token text as in tokenizer.json (NULL: gap) */
    uint32_t *piece_lens; /* [n_ids] */
    uint8_t *flags;       /* [n_ids] TMI_TOK_* */
    tmi_strmap tok2id;    /* token text -> id: vocab, then added tokens override */

    /* BPE symbols: strings that take part in merges.  sym < n_model_syms are the
     * model vocab's strings (sym == vocab id); more come from merges. */
    int32_t n_syms, sym_cap;
    const char **syms;     /* [n_syms] */
    uint32_t *sym_lens;    /* [n_syms] */
    int32_t *sym_out;      /* [n_syms] id through tok2id, -1 when not a token */
    tmi_strmap sym_map;    /* string -> sym */
    tmi_merge_slot *merges; /* open addressing, mask + 1 slots */
    uint32_t merge_mask;
    int32_t byte_sym[256]; /* byte-level: symbol of each byte's alphabet character, -1 none */
    int32_t byte_fallback_id[256]; /* <0xXX> ids, -1 when absent */
    unsigned char byte_utf8[256][3]; /* byte-level alphabet character of each byte: [len, UTF-8...] */
    int byte_fallback;
    int fuse_unk;
    int ignore_merges;
    int32_t unk_id; /* -1 when none */

    /* added tokens, bucketed by first byte for the longest-match split */
    tmi_added *added;
    int32_t n_added;
    int32_t *added_by_byte;   /* [n_added] indexes grouped by first byte */
    int32_t added_start[257]; /* bucket b: added_by_byte[added_start[b], added_start[b+1]) */

    tmi_norm *norms;
    int32_t n_norms;
    tmi_pre *pres;
    int32_t n_pres;
    int byte_level_model; /* a ByteLevel pre-tokenizer ran: BPE starts from bytes */

    int32_t *prefix_ids; /* post-processor template: ids before and after the text */
    int32_t n_prefix;
    int32_t *suffix_ids;
    int32_t n_suffix;
    int32_t bos_id, eos_id; /* -1 when none */

    tmi_decoder dec;
    char **dec_pieces;     /* [n_ids] bytes each id decodes to (before UTF-8 decoding) */
    uint32_t *dec_lens;    /* [n_ids] */

    tmi_bpe_cache *cache;
    tmi_buf scratch_norm, scratch_pre, scratch_map, scratch_text, scratch_bpe;
    tmi_pieces scratch_pieces[2];
};

/* ---------------------------------------------------------- cross-file API -- */

/* tokenizer_load.c: file and JSON helpers. */
tm_status tmi_read_file(const char *path, char **data, size_t *len);
const char *tmi_jstr(const tmi_json *obj, const char *key, size_t *len);
int tmi_jbool(const tmi_json *obj, const char *key, int dflt);

/* tokenizer_config.c: the pipeline stages from tokenizer.json (NULL or null: none). */
tm_status tmi_load_normalizer(tm_tokenizer *tok, const tmi_json *cfg);
tm_status tmi_load_pre_tokenizer(tm_tokenizer *tok, const tmi_json *cfg);
tm_status tmi_load_post_processor(tm_tokenizer *tok, const tmi_json *cfg);
tm_status tmi_load_decoder(tm_tokenizer *tok, const tmi_json *cfg);

/* tokenizer_load.c: reads tokenizer.json (+ tokenizer_config.json beside it). */
tm_status tmi_tok_load_json(tm_tokenizer *tok, const char *json_path, const char *config_path);
/* tokenizer_spm.c: reads a SentencePiece tokenizer.model. */
tm_status tmi_tok_load_spm(tm_tokenizer *tok, const char *model_path, const char *config_path);
/* tokenizer_config.c: shared tail of both loaders (config, decode pieces, flags). */
tm_status tmi_tok_finish(tm_tokenizer *tok, const char *config_path);
/* tokenizer_load.c: registers id -> text (vocab or added). */
tm_status tmi_tok_set_piece(tm_tokenizer *tok, int32_t id, const char *s, size_t n);
tm_status tmi_tok_alloc_ids(tm_tokenizer *tok, int32_t n_ids);

/* tokenizer_bpe.c */
tm_status tmi_bpe_add_symbol(tm_tokenizer *tok, const char *s, size_t n, int32_t *sym);
tm_status tmi_bpe_add_merge(tm_tokenizer *tok, const char *a, size_t na, const char *b, size_t nb,
                            uint32_t rank);
tm_status tmi_bpe_init_merges(tm_tokenizer *tok, size_t n_merges);
tm_status tmi_bpe_finish(tm_tokenizer *tok); /* sym_out, byte tables, cache */
/* Encodes one pre-token word[0, n) and appends its ids to out. */
tm_status tmi_bpe_word(tm_tokenizer *tok, const char *word, size_t n, tmi_ivec *out);
void tmi_bpe_free(tm_tokenizer *tok);

/* tokenizer_pretok.c */
tm_status tmi_pre_compile_regex(const char *js_pattern, size_t len, void **code, void **match_data);
void tmi_pre_free_regex(void *code, void *match_data);
/* Normalizes, pre-tokenizes and BPE-encodes one text section, appending ids. */
tm_status tmi_encode_section(tm_tokenizer *tok, const char *s, size_t n, int section_index,
                             tmi_ivec *out);
/* The GPT-2 byte -> alphabet code point mapping. */
uint32_t tmi_byte_to_cp(uint8_t b);
/* The inverse: -1 when cp is not in the alphabet. */
int tmi_cp_to_byte(uint32_t cp);

/* tokenizer_added.c */
tm_status tmi_added_index(tm_tokenizer *tok);
/* Splits text at added tokens and encodes everything into out. */
tm_status tmi_encode_text(tm_tokenizer *tok, const char *text, size_t len, tmi_ivec *out);

/* tokenizer_decode.c */
tm_status tmi_decode_build(tm_tokenizer *tok);
void tmi_decode_free(tm_tokenizer *tok);
/* clean_up_tokenization over s (in place); returns the new length. */
size_t tmi_cleanup_spaces(char *s, size_t n);

#endif

/* safetensors.h - reading and writing the HuggingFace safetensors format.
 *
 * A file is: u64 little-endian N, N bytes of UTF-8 JSON (an object: one member
 * per tensor, {"dtype", "shape", "data_offsets"}, plus an optional
 * "__metadata__" object of strings), then the data area that data_offsets index.
 * tmi_st_open validates the whole header against the file before it returns,
 * so every tensor it reports lies inside the mapping and has the size its shape
 * and dtype need; tm_weights (weights.c) is the public face of this module. */
#ifndef TMI_SAFETENSORS_H
#define TMI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "tmrun.h"

/* The largest header accepted, as the reference implementation (100 MB). */
#define TMI_ST_MAX_HEADER 100000000ull
#define TMI_ST_MAX_DIMS 8

typedef struct tmi_st_tensor {
    const char *name; /* decoded, NUL-terminated, no NUL inside; lives as long as the file */
    tm_dtype dtype;
    int32_t ndim;
    int64_t shape[TMI_ST_MAX_DIMS];
    const void *data; /* inside the read-only mapping; alignment not guaranteed */
    int64_t nbytes;
} tmi_st_tensor;

typedef struct tmi_st_file {
    char *path;
    void *map; /* the whole file, PROT_READ, MAP_PRIVATE */
    size_t map_len;
    tmi_st_tensor *tensors; /* [n_tensors] in header order */
    int64_t n_tensors;
    char *metadata_json; /* __metadata__ re-serialised ("{}" when absent) */
    tmi_json_doc *header;
} tmi_st_file;

/* Maps and validates path.  Codes: TM_ERR_IO (open, stat, mmap), TM_ERR_FORMAT
 * (message names the path and the field or tensor), TM_ERR_NOMEM. */
tm_status tmi_st_open(const char *path, tmi_st_file **out);
void tmi_st_close(tmi_st_file *file); /* NULL-safe */

/* One tensor to write; data holds nbytes = product(shape) * size(dtype). */
typedef struct tmi_st_entry {
    const char *name;
    tm_dtype dtype;
    int32_t ndim;
    const int64_t *shape;
    const void *data;
    int64_t nbytes;
} tmi_st_entry;

/* Writes entries, in order and contiguous, to path through path.tmp.<pid> and
 * rename(2).  metadata: NULL or a JSON object of string values.  Codes:
 * TM_ERR_INVALID_ARG (a name that is not valid UTF-8, contains NUL or is
 * "__metadata__"; metadata not an object of strings), TM_ERR_IO, TM_ERR_NOMEM. */
tm_status tmi_st_write(const char *path, const tmi_st_entry *entries, int64_t n, const tmi_json *metadata);

#endif

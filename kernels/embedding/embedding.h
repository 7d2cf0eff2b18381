/* embedding.h - out[t] = table[ids[t]] as fp32. */
#ifndef TMI_EMBEDDING_H
#define TMI_EMBEDDING_H

#include "../common.h"

typedef struct tmi_embedding_args {
    int64_t n;
    const int32_t *ids;  /* [n], each in [0, vocab) (checked) */
    const void *table;   /* [vocab][d], dtype in {F32, F16, BF16} */
    tm_dtype dtype;
    int64_t vocab, d;
    float *out;          /* [n][ldo], fp32 */
    int64_t ldo;
} tmi_embedding_args;

tm_status tmi_embedding_cpu(const tmi_exec *ex, const tmi_embedding_args *a);
/* CUDA twin: ids, table and out are device pointers.  The ids cannot be checked on
 * the host without a sync, so a row whose id is outside [0, vocab) is written as
 * NaN: the error shows in the logits instead of reading out of bounds. */
tm_status tmi_embedding_cuda(const tmi_exec *ex, const tmi_embedding_args *a);

#endif

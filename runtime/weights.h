/* weights.h - what the converter (and other runtime code) may do to a
 * tm_weights store beyond the public API. */
#ifndef TMI_WEIGHTS_H
#define TMI_WEIGHTS_H

#include "tmrun.h"

/* Adds a tensor whose buffer data (malloc'd, product(shape) * size(dtype) bytes;
 * NULL allowed for zero-size tensors) the store takes over without a copy.
 * Whatever the outcome, data belongs to the store afterwards: it is freed when
 * the call fails.  Codes as tm_weights_add. */
tm_status tmi_weights_adopt(tm_weights *weights, const char *name, tm_dtype dtype, int32_t ndim,
                            const int64_t *shape, void *data);

/* Whether the store holds a tensor of that name; sets no error message. */
int tmi_weights_has(const tm_weights *weights, const char *name);

#endif

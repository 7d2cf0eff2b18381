/* cuda_runtime.h - the few CUDA runtime calls the C code needs, wrapped so that
 * .c files never include CUDA headers. */
#ifndef TMI_CUDA_RUNTIME_H
#define TMI_CUDA_RUNTIME_H

#include <stddef.h>

#include "tmrun.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Visible devices; 0 when the driver or a device is missing. */
int tmi_cuda_device_count(void);
tm_status tmi_cuda_malloc(void **ptr, size_t bytes);
void tmi_cuda_free(void *ptr);
/* kind: 0 host->device, 1 device->host, 2 device->device; synchronous. */
tm_status tmi_cuda_memcpy(void *dst, const void *src, size_t bytes, int kind);
tm_status tmi_cuda_sync(void);
/* Free device memory in bytes (cudaMemGetInfo), 0 on error. */
size_t tmi_cuda_mem_free(void);

#ifdef __cplusplus
}
#endif

#endif

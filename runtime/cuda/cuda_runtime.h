/* cuda_runtime.h - the few CUDA runtime calls the C code needs, wrapped so that
 * .c files never include CUDA headers. */
#ifndef TMI_CUDA_RUNTIME_H
#define TMI_CUDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

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
size_t tmi_cuda_mem_total(void);

/* A rows x cols block (width bytes a row) between pitched buffers; synchronous. */
tm_status tmi_cuda_memcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t rows,
                            int kind);
/* Ordered on stream (NULL: the legacy default stream); a host side must be pinned
 * (tmi_cuda_host_alloc) for the call to return before the copy is done. */
tm_status tmi_cuda_memcpy_async(void *dst, const void *src, size_t bytes, int kind, void *stream);
tm_status tmi_cuda_host_alloc(void **ptr, size_t bytes); /* page-locked host memory */
void tmi_cuda_host_free(void *ptr);
tm_status tmi_cuda_stream_create(void **stream); /* non-blocking w.r.t. the legacy stream */
void tmi_cuda_stream_destroy(void *stream);
tm_status tmi_cuda_stream_sync(void *stream);

/* Timing events (cudaEventCreate with timing on). */
tm_status tmi_cuda_event_create(void **event);
void tmi_cuda_event_destroy(void *event);
void tmi_cuda_event_record(void *event, void *stream);
tm_status tmi_cuda_event_sync(void *event);
double tmi_cuda_event_elapsed(void *start, void *end); /* seconds; 0 on error */

/* CUDA graphs of work enqueued on one stream (forward_graph.c).  begin starts
 * capturing stream (thread-local mode: other threads' CUDA calls are not
 * disturbed); end stops it and, when *ok, instantiates what was captured into
 * *exec.  A failed op inside the capture leaves the stream capturing: end with
 * ok = 0 discards it, and returns TM_OK.  A capture invalidated from outside (a
 * device-wide call of another thread) also returns TM_OK, with *exec NULL: nothing
 * to replay, and the stream works eagerly again.  launch replays exec on stream. */
tm_status tmi_cuda_graph_begin(void *stream);
tm_status tmi_cuda_graph_end(void *stream, int ok, void **exec);
tm_status tmi_cuda_graph_launch(void *exec, void *stream);
void tmi_cuda_graph_destroy(void *exec);

/* dst[r * ld + c] = offset + scale * u(seed, r * cols + c) for a rows x cols block
 * of an F32 / F16 / BF16 matrix, u in [-1, 1) from tmi_random_unit (the CPU twin
 * in model_random.c), so a seed gives the same tensor on both backends. */
tm_status tmi_cuda_fill_random(void *dst, tm_dtype dtype, int64_t rows, int64_t cols, int64_t ld, uint64_t seed,
                               float scale, float offset);

#ifdef __cplusplus
}
#endif

#endif

/* device.c - what this build knows about CUDA devices. */
#include "error.h"
#include "tmrun.h"

#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"

int tm_cuda_available(void) { return 1; }
int tm_cuda_device_count(void) { return tmi_cuda_device_count(); }

tm_status tm_cuda_memory(int64_t *free_bytes, int64_t *total_bytes)
{
    if (!free_bytes || !total_bytes) return tmi_fail(TM_ERR_INVALID_ARG, "tm_cuda_memory: NULL argument");
    if (tmi_cuda_device_count() == 0) return tmi_fail(TM_ERR_DEVICE, "tm_cuda_memory: no CUDA device is visible");
    *total_bytes = (int64_t)tmi_cuda_mem_total();
    *free_bytes = (int64_t)tmi_cuda_mem_free();
    if (*total_bytes == 0) return tmi_fail(TM_ERR_DEVICE, "tm_cuda_memory: cudaMemGetInfo failed");
    return TM_OK;
}
#else
int tm_cuda_available(void) { return 0; }
int tm_cuda_device_count(void) { return 0; }

tm_status tm_cuda_memory(int64_t *free_bytes, int64_t *total_bytes)
{
    (void)free_bytes, (void)total_bytes;
    return tmi_fail(TM_ERR_UNSUPPORTED, "tm_cuda_memory: this build has no CUDA backend");
}
#endif

// cuda_runtime.cu - see cuda_runtime.h.
#include <cuda_runtime.h>

#include "cuda_runtime.h"
#include "../error.h"

extern "C" int tmi_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" tm_status tmi_cuda_malloc(void **ptr, size_t bytes)
{
    cudaError_t e = cudaMalloc(ptr, bytes ? bytes : 1);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
    return TM_OK;
}

extern "C" void tmi_cuda_free(void *ptr)
{
    if (ptr) cudaFree(ptr);
}

extern "C" tm_status tmi_cuda_memcpy(void *dst, const void *src, size_t bytes, int kind)
{
    cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    cudaError_t e = cudaMemcpy(dst, src, bytes, k);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaMemcpy(%zu): %s", bytes, cudaGetErrorString(e));
    return TM_OK;
}

extern "C" tm_status tmi_cuda_sync(void)
{
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaDeviceSynchronize: %s", cudaGetErrorString(e));
    return TM_OK;
}

extern "C" size_t tmi_cuda_mem_free(void)
{
    size_t free_b = 0, total = 0;
    if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return free_b;
}

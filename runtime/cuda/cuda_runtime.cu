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
    if (e != cudaSuccess) {
        /* an allocation failure is not sticky, but it stays the "last error" and the
           next launch's cudaGetLastError check would report it as its own failure */
        cudaGetLastError();
        return tmi_fail(TM_ERR_DEVICE, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
    }
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

// cudaMemGetInfo's free (0) or total (1) bytes, 0 on error.
static size_t mem_info(int which)
{
    size_t free_b = 0, total = 0;
    if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return which ? total : free_b;
}

extern "C" size_t tmi_cuda_mem_free(void) { return mem_info(0); }

extern "C" size_t tmi_cuda_mem_total(void) { return mem_info(1); }

static cudaMemcpyKind kind_of(int kind)
{
    return kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}

extern "C" tm_status tmi_cuda_memcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                       size_t rows, int kind)
{
    cudaError_t e = cudaMemcpy2D(dst, dpitch, src, spitch, width, rows, kind_of(kind));
    if (e != cudaSuccess)
        return tmi_fail(TM_ERR_DEVICE, "cudaMemcpy2D(%zu x %zu): %s", rows, width, cudaGetErrorString(e));
    return TM_OK;
}

extern "C" tm_status tmi_cuda_memcpy_async(void *dst, const void *src, size_t bytes, int kind, void *stream)
{
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind_of(kind), static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaMemcpyAsync(%zu): %s", bytes, cudaGetErrorString(e));
    return TM_OK;
}

extern "C" tm_status tmi_cuda_host_alloc(void **ptr, size_t bytes)
{
    cudaError_t e = cudaMallocHost(ptr, bytes ? bytes : 1);
    if (e != cudaSuccess) cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaMallocHost(%zu): %s", bytes, cudaGetErrorString(e));
    return TM_OK;
}

extern "C" void tmi_cuda_host_free(void *ptr)
{
    if (ptr) cudaFreeHost(ptr);
}

extern "C" tm_status tmi_cuda_stream_create(void **stream)
{
    cudaStream_t s = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaStreamCreate: %s", cudaGetErrorString(e));
    *stream = s;
    return TM_OK;
}

extern "C" void tmi_cuda_stream_destroy(void *stream)
{
    if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}

extern "C" tm_status tmi_cuda_stream_sync(void *stream)
{
    cudaError_t e = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaStreamSynchronize: %s", cudaGetErrorString(e));
    return TM_OK;
}

extern "C" tm_status tmi_cuda_graph_begin(void *stream)
{
    cudaError_t e = cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return tmi_fail(TM_ERR_DEVICE, "cudaStreamBeginCapture: %s", cudaGetErrorString(e));
    }
    return TM_OK;
}

extern "C" tm_status tmi_cuda_graph_end(void *stream, int ok, void **exec)
{
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    *exec = NULL;
    cudaError_t e = cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &g);
    if (e == cudaSuccess && ok) e = cudaGraphInstantiate(&x, g, 0);
    if (g) cudaGraphDestroy(g);
    if (!ok) cudaGetLastError(); /* a launch error of the discarded capture must not reach the next launch */
    if (e == cudaErrorStreamCaptureInvalidated) { /* broken from outside (another thread's device-wide call) */
        cudaGetLastError();
        return TM_OK;
    }
    if (e != cudaSuccess) {
        cudaGetLastError(); /* a failed capture is not sticky: the stream works eagerly again */
        return ok ? tmi_fail(TM_ERR_DEVICE, "capturing a CUDA graph: %s", cudaGetErrorString(e)) : TM_OK;
    }
    *exec = x;
    return TM_OK;
}

extern "C" tm_status tmi_cuda_graph_launch(void *exec, void *stream)
{
    cudaError_t e = cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaGraphLaunch: %s", cudaGetErrorString(e));
    return TM_OK;
}

extern "C" void tmi_cuda_graph_destroy(void *exec)
{
    if (exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../random_fill.h"

template <class T> __device__ inline T from_float(float v);
template <> __device__ inline float from_float<float>(float v) { return v; }
template <> __device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <class T>
__global__ void fill_random_kernel(T *dst, int64_t rows, int64_t cols, int64_t ld, uint64_t seed, float scale,
                                   float offset)
{
    const int64_t total = rows * cols, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / cols, c = i - r * cols;
        dst[r * ld + c] = from_float<T>(offset + scale * tmi_random_unit(seed, (uint64_t)i));
    }
}

extern "C" tm_status tmi_cuda_fill_random(void *dst, tm_dtype dtype, int64_t rows, int64_t cols, int64_t ld,
                                          uint64_t seed, float scale, float offset)
{
    if (rows <= 0 || cols <= 0) return TM_OK;
    const int threads = 256;
    int64_t want = (rows * cols + threads - 1) / threads;
    unsigned blocks = (unsigned)(want < 65536 ? want : 65536);
    if (dtype == TM_F16)
        fill_random_kernel<<<blocks, threads>>>(static_cast<__half *>(dst), rows, cols, ld, seed, scale, offset);
    else if (dtype == TM_BF16)
        fill_random_kernel<<<blocks, threads>>>(static_cast<__nv_bfloat16 *>(dst), rows, cols, ld, seed, scale, offset);
    else
        fill_random_kernel<<<blocks, threads>>>(static_cast<float *>(dst), rows, cols, ld, seed, scale, offset);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "fill_random: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}

extern "C" tm_status tmi_cuda_event_create(void **event)
{
    cudaEvent_t e = NULL;
    cudaError_t r = cudaEventCreate(&e);
    if (r != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaEventCreate: %s", cudaGetErrorString(r));
    *event = e;
    return TM_OK;
}

extern "C" void tmi_cuda_event_destroy(void *event)
{
    if (event) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

extern "C" void tmi_cuda_event_record(void *event, void *stream)
{
    cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream));
}

extern "C" tm_status tmi_cuda_event_sync(void *event)
{
    cudaError_t r = cudaEventSynchronize(static_cast<cudaEvent_t>(event));
    if (r != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "cudaEventSynchronize: %s", cudaGetErrorString(r));
    return TM_OK;
}

extern "C" double tmi_cuda_event_elapsed(void *start, void *end)
{
    float ms = 0.0f;
    if (cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)) != cudaSuccess) {
        cudaGetLastError();
        return 0.0;
    }
    return (double)ms * 1e-3;
}

// pdl_cuda.h - programmatic dependent launch (sm_90), both sides.
//
// tmi_launch_pdl launches a kernel as a programmatic dependent of the kernel before
// it in the stream: its blocks may be scheduled before that kernel has finished,
// once every block of it has called tmi_pdl_trigger() (or exited), so the gap
// between two kernels of a decode step (some microseconds each in a CUDA graph,
// hundreds of them a step) mostly goes.  The price is the rule that such a kernel
// calls tmi_pdl_wait() before it touches memory the kernel before it wrote or reads;
// the kernels here call it first thing (the small-m GEMM first starts the copies of
// its weights, which nothing writes).  Every block of such a kernel waits, so the
// kernel cannot finish before the one before it: the chain stays ordered.  On
// devices before sm_90 the launch is an ordinary one and both calls are no-ops.
#ifndef TMI_PDL_CUDA_H
#define TMI_PDL_CUDA_H

#include <cuda_runtime.h>

#include <utility>

__device__ __forceinline__ void tmi_pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

__device__ __forceinline__ void tmi_pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kern<<<grid, block, smem, stream>>>(args...), a programmatic dependent where the
// device has it; returns the launch's error.
template <class... Params, class... Args>
inline cudaError_t tmi_launch_pdl(void (*kern)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                  Args &&...args)
{
    int dev = 0, major = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e != cudaSuccess) return e;
    if (major < 9) {
        kern<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
        return cudaGetLastError();
    }
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    e = cudaLaunchKernelEx(&cfg, kern, std::forward<Args>(args)...);
    return e != cudaSuccess ? e : cudaGetLastError();
}

#endif

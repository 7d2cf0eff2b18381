// pdl_cuda.h - programmatic dependent launch (sm_90), the kernel side.  A kernel
// that calls tmi_pdl_trigger() lets the next kernel in its stream, when that one
// is launched as a programmatic dependent (the small-m GEMM), start its blocks
// before this kernel ends: they prefetch what does not depend on this kernel (the
// weights) and wait (griddepcontrol.wait) for the rest.  A no-op for an ordinary
// launch after it and on older devices.
#ifndef TMI_PDL_CUDA_H
#define TMI_PDL_CUDA_H

__device__ __forceinline__ void tmi_pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

#endif

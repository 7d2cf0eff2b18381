/* device.c - what this build knows about CUDA devices. */
#include "tmrun.h"

#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"

int tm_cuda_available(void) { return 1; }
int tm_cuda_device_count(void) { return tmi_cuda_device_count(); }
#else
int tm_cuda_available(void) { return 0; }
int tm_cuda_device_count(void) { return 0; }
#endif

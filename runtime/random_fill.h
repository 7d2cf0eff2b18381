/* random_fill.h - the counter-based uniform noise of random models (model_random.c),
 * one function for the host and the device so a seed makes the same tensor on both
 * backends: u(seed, i) in [-1, 1) from splitmix64 of (seed, i), 24 random bits. */
#ifndef TMI_RANDOM_FILL_H
#define TMI_RANDOM_FILL_H

#include <stdint.h>

#ifdef __CUDACC__
#define TMI_HOST_DEVICE __host__ __device__
#else
#define TMI_HOST_DEVICE
#endif

static inline TMI_HOST_DEVICE float tmi_random_unit(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

#endif

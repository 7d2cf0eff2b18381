/* rng.h - the per-request PRNG behind seeded sampling: xoshiro256** (Blackman and
 * Vigna, 2018) seeded through splitmix64, as the authors recommend.
 *
 * A request owns one tmi_rng; the same seed gives the same stream on every machine
 * (integer arithmetic only, no platform RNG), which is what makes a seeded request
 * repeat exactly.  Not thread-safe: one thread at a time per state. */
#ifndef TMI_RNG_H
#define TMI_RNG_H

#include <stdint.h>

typedef struct tmi_rng {
    uint64_t s[4];
} tmi_rng;

/* One step of splitmix64 on *x: the seeder, also usable as a hash of a counter. */
static inline uint64_t tmi_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Any seed is fine, 0 included: splitmix64 never yields the all-zero state that
 * would lock xoshiro at zero. */
static inline void tmi_rng_seed(tmi_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = tmi_splitmix64(&x);
}

static inline uint64_t tmi_rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* The next 64 random bits. */
static inline uint64_t tmi_rng_next(tmi_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = tmi_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tmi_rng_rotl(s[3], 45);
    return result;
}

/* A double in [0, 1): the top 53 bits, so every value is a multiple of 2^-53 and
 * 1.0 can never come out. */
static inline double tmi_rng_next_double(tmi_rng *rng)
{
    return (double)(tmi_rng_next(rng) >> 11) * 0x1.0p-53;
}

#endif

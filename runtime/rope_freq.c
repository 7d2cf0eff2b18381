/* rope_freq.c - rotary inverse frequencies for every scaling variant.
 * Follows HF transformers' modeling_rope_utils: the scaled inv_freq is what
 * differs between variants; the rotation itself is the same kernel. */
#include <math.h>

#include "model.h"

/* Dynamic NTK (HF "dynamic", LMDeploy rope_scaling_factor): once a sequence is
 * longer than the original window the base grows with its length.  The length is
 * the sequence's length at this step, as HF's generate and TurboMind use it. */
static double dynamic_base(const tm_model_params *p, int32_t seq_len, int dim)
{
    double base = p->rope_theta;
    double max_pos = p->rope_original_max > 0 ? p->rope_original_max : p->max_position_embeddings;
    if (seq_len <= max_pos) return base;
    double factor = p->rope_factor;
    return base * pow(factor * seq_len / max_pos - (factor - 1.0), (double)dim / (dim - 2));
}

void tmi_rope_inv_freq(const tm_model_params *p, int32_t seq_len, float *inv_freq)
{
    int dim = p->size_per_head;
    double base = p->rope_type == TM_ROPE_DYNAMIC ? dynamic_base(p, seq_len, dim) : p->rope_theta;
    for (int i = 0; i < dim / 2; i++) {
        /* torch: 1 / base ** (arange(0, dim, 2).float() / dim), in fp32 */
        float expo = (float)(2 * i) / (float)dim;
        float f = (float)(1.0 / pow(base, (double)expo));
        if (p->rope_type == TM_ROPE_LINEAR) {
            f = f / p->rope_factor;
        } else if (p->rope_type == TM_ROPE_LLAMA3) {
            double old_ctx = p->rope_original_max;
            double low_wavelen = old_ctx / p->rope_low_freq_factor;
            double high_wavelen = old_ctx / p->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f = (float)(f / p->rope_factor);
            } else if (wavelen >= high_wavelen) {
                double smooth = (old_ctx / wavelen - p->rope_low_freq_factor) /
                                (p->rope_high_freq_factor - p->rope_low_freq_factor);
                f = (float)((1.0 - smooth) * f / p->rope_factor + smooth * f);
            }
        }
        inv_freq[i] = f;
    }
}

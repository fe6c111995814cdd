/* engine_util.h - helpers shared by the engine tests (test_nm.c, test_r8.c; include after
 * cmocka.h). */
#ifndef PARE_TEST_ENGINE_UTIL_H
#define PARE_TEST_ENGINE_UTIL_H

#include "model/forward.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64: a test's fixed stream of numbers (set tu_rng to reseed) */
static uint64_t tu_rng = 0x2545f4914f6cdd1dull;
static inline uint32_t tu_rnd_u32(void) {
    tu_rng ^= tu_rng << 13; tu_rng ^= tu_rng >> 7; tu_rng ^= tu_rng << 17;
    return (uint32_t)(tu_rng >> 16);
}
/* roughly normal: a sum of four uniforms, centred */
static inline float tu_rnd_normal(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += (float)(tu_rnd_u32() & 0xffffff) / 16777216.0f;
    return s - 2.0f;
}

/* The logits of n_tok (<= 16) fixed tokens: a prefill (matmul) of all but the last, then
 * one decode step (matvec); out holds n_tok x n_vocab floats. */
static inline void tu_logits_of(pare_model *mdl, float *out, int n_tok) {
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(mdl, 64, &c), PARE_OK);
    int32_t tok[16];
    for (int i = 0; i < n_tok; i++) tok[i] = (int32_t)(1 + (i * 37) % (mdl->n_vocab - 1));
    float *scratch = malloc((size_t)n_tok * (size_t)mdl->n_vocab * sizeof(float));
    assert_int_equal(pare_forward(c, tok, n_tok - 1, 0, scratch), PARE_OK);
    memcpy(out, scratch, (size_t)(n_tok - 1) * (size_t)mdl->n_vocab * sizeof(float));
    assert_int_equal(pare_forward(c, tok + n_tok - 1, 1, n_tok - 1, out + (size_t)(n_tok - 1) * (size_t)mdl->n_vocab), PARE_OK);
    free(scratch);
    pare_ctx_free(c);
}

#endif

/* engine_util.h - helpers shared by the engine tests (test_nm.c, test_r8.c; include after
 * cmocka.h). */
#ifndef PARE_TEST_ENGINE_UTIL_H
#define PARE_TEST_ENGINE_UTIL_H

#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

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

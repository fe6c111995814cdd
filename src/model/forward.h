/* forward.h - pieces of the forward pass that calibration and evaluation reuse. */
#ifndef PARE_FORWARD_H
#define PARE_FORWARD_H

#include "model.h"

void rope_freqs(const pare_model *m, float *freq);           /* head_dim/2 frequencies */
void rope_apply(float *v, int n_heads, int hd, int pos, const float *freq);
void rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void linear(const pare_tensor *W, const float *X, int n, float *Y); /* Y (n x out) = X W^T */

/* Embed n tokens into x (n x n_embd). */
pare_status forward_embed(pare_ctx *c, const int32_t *tokens, int n, float *x);
/* Run block l in place on x (n x n_embd) for positions pos0.., filling its KV cache. */
pare_status block_forward(pare_ctx *c, int l, float *x, int n, int pos0);
/* Final norm and output head: logits (n x n_vocab). */
pare_status forward_head(pare_ctx *c, float *x, int n, float *logits);
int ctx_n_ctx(const pare_ctx *c);

/* Capture points: the inputs of the linear layers (q/k/v share one, gate/up share one). */
enum { FWD_ATTN_IN = 0, FWD_O_IN = 1, FWD_FFN_IN = 2, FWD_DOWN_IN = 3, FWD_N_POINTS = 4 };
/* Called from block_forward with x (n x width) just before the layers that read it. */
typedef void (*fwd_hook)(void *user, int layer, int point, const float *x, int n, int width);
void ctx_set_hook(pare_ctx *c, fwd_hook hook, void *user);
/* block_forward returns right after the hook of this capture point (-1: runs the whole block).
 * For collection passes whose output is discarded. */
void ctx_set_stop(pare_ctx *c, int point);

#endif

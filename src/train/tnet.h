/* tnet.h - the training network: the LLaMA forward pass of src/model/forward.c with its
 * activations kept, and the backward pass of every operation, written once (tnet_impl.h)
 * and compiled for two element types:
 *   float  (names ending in _f): the engine `pare train` runs, BLAS sgemm for the matmuls;
 *   double (names ending in _d): the same code in double precision, so gradient checks
 *                                against central finite differences can ask for 1e-6.
 *
 * A network is built from a model's shapes (tnet_new); its parameters are "slots" named as
 * GGUF tensors ("blk.3.attn_q.weight", LoRA adapters "blk.3.attn_q.weight.lora_a"/"_b")
 * that the caller points at memory: values in *slot->w, and a gradient buffer in *slot->gw
 * for a trained slot (NULL = frozen). Gradients are accumulated (+=), never cleared here.
 *
 * Activations are kept only from the lowest block that has a trained parameter upwards;
 * blocks below it run forward into shared scratch buffers. */
#ifndef PARE_TNET_H
#define PARE_TNET_H

#include "model/model.h"

#define TNET_R float
#define TNET_S _f
#include "tnet_decl.h"
#undef TNET_R
#undef TNET_S

#define TNET_R double
#define TNET_S _d
#include "tnet_decl.h"
#undef TNET_R
#undef TNET_S

#endif

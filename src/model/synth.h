/* synth.h - deterministic random-weight models with real LLaMA shapes. */
#ifndef PARE_SYNTH_H
#define PARE_SYNTH_H

#include "model.h"

typedef struct synth_shape { char name[32]; int dim, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx; } synth_shape;

const synth_shape *synth_find_shape(const char *name);
void synth_list_shapes(void (*fn)(const synth_shape *, void *), void *user);
/* {"dim":..,"n_layers":..,"n_heads":..,"n_kv_heads":..,"ffn":..,"vocab":..,"ctx":..} */
pare_status synth_shape_from_json(const char *path, synth_shape *out);
/* Weights ~ N(0, 0.02^2) (output projections scaled by 1/sqrt(2 L)), norms 1, a byte-level
 * SentencePiece vocabulary; all matrices of the given type. */
pare_status synth_model(const synth_shape *s, int type, uint64_t seed, pare_model **out);
/* The same with the block matrices (q, k, v, o, gate, up, down) N:M sparse: the n largest
 * of every m consecutive inputs of each row kept (nm_m = 0: dense). Embeddings and the
 * output head stay dense. Stored as zeros, so any GGUF reader runs it. */
pare_status synth_model_nm(const synth_shape *s, int type, int nm_n, int nm_m, uint64_t seed, pare_model **out);

#endif

/* model.h - the model description every part of pare shares: LLaMA-family decoder with
 * per-layer head counts and FFN widths, any number of blocks, per-tensor types. */
#ifndef PARE_MODEL_H
#define PARE_MODEL_H

#include "../core.h"
#include "../tok/vocab.h"

/* The seven linear layers of a block, in this order wherever they are listed. */
enum { PARE_LIN_Q, PARE_LIN_K, PARE_LIN_V, PARE_LIN_O, PARE_LIN_GATE, PARE_LIN_UP, PARE_LIN_DOWN, PARE_N_LIN };

typedef struct pare_layer {
    int n_head, n_head_kv, n_ff;   /* per layer: pruning changes them */
    pare_tensor *attn_norm;        /* [n_embd] */
    pare_tensor *wq, *wk, *wv;     /* [n_embd] -> n_head*hd, n_head_kv*hd; q/k rows in GGUF
                                      (interleaved rotary pair) order */
    pare_tensor *wo;               /* n_head*hd -> n_embd */
    pare_tensor *ffn_norm;
    pare_tensor *w_gate, *w_up;    /* n_embd -> n_ff */
    pare_tensor *w_down;           /* n_ff -> n_embd */
    /* Optional F32 [n_embd] biases of o and down (blk.L.attn_output.bias, blk.L.ffn_down.bias,
     * as llama.cpp's LLaMA loader reads them): FLAP's bias compensation adds them. NULL: none. */
    pare_tensor *b_o, *b_down;
    /* Channel order of an N:M layout chosen by E-Sparse for the input of q/k/v (perm_attn,
     * n_embd entries), of o (perm_o, n_head*hd entries) and of gate/up (perm_ffn, n_embd
     * entries), or NULL. The weights stay in their natural column order (a dense engine
     * ignores this); in the order W[:, perm[0]], W[:, perm[1]], ... every row holds exactly
     * N of each M. Saved in GGUF as the int32 arrays pare.blk.L.perm_{attn,o,ffn}, which
     * other readers ignore. (down's input order is folded into gate/up rows and down.) */
    int32_t *perm_attn, *perm_o, *perm_ffn;
    /* LoRA adapters (F32 A [in -> r], B [r -> out]) of the linear layers (PARE_LIN_*), or
     * NULL: y = W x + lora_scale B (A x). Only the adapted copies of blocks that an early-exit
     * model keeps after layers[n_layer - 1] (model_setup_exits) have them. */
    const pare_tensor *lora_a[PARE_N_LIN], *lora_b[PARE_N_LIN];
    float lora_scale;
} pare_layer;

/* An early exit (Edge-LLM, METHODS.md 9 C-D): the exit reads the output of block `last`
 * computed by the backbone up to block `first` and then by blocks first..last with their
 * LoRA adapters (the adapted copies layers[adapted .. adapted + last - first]), through its
 * own norm and head. In GGUF: tensors exit.K.norm.weight [n_embd], exit.K.output.weight
 * [n_embd, n_vocab], blk.L.<linear>.weight.lora_a [in, r] / .lora_b [r, out], and the keys
 * pare.exit.first / pare.exit.last (int32 arrays) and pare.lora.scale (alpha / r). */
typedef struct pare_exit {
    int first, last;
    int adapted;
    pare_tensor *norm, *head;
} pare_exit;

/* What pare_forward returns for a model with exits (pare_model.exit_mode). */
enum { PARE_EXIT_LAST = -1, /* the last exit's distribution (the default) */
       PARE_EXIT_VOTE = -2  /* p(v) = max over exits of p_e(v), renormalised (returned as log p) */
       /* k >= 0: exit k alone */ };

enum { PARE_ROPE_SCALING_NONE = 0, PARE_ROPE_SCALING_LLAMA3 = 1, PARE_ROPE_SCALING_LINEAR = 2 };

struct pare_model {
    char *path;
    char *name;                    /* general.name, may be NULL */
    int n_layer, n_embd, n_vocab, n_ctx_train, head_dim;
    float norm_eps, rope_base;
    int rope_scaling;              /* PARE_ROPE_SCALING_* */
    float rope_factor, rope_low_freq, rope_high_freq;
    int rope_orig_ctx;
    bool tied;                     /* output == tok_embd */
    pare_layer *layers;
    pare_tensor *tok_embd, *out_norm, *output;
    int n_tensors;
    pare_tensor *tensors;          /* all tensors; the pointers above point into this array */
    pare_vocab *vocab;             /* may be NULL (no tokenizer found) */
    /* early exits (model_setup_exits), in order of `last`; none when n_exit == 0 */
    int n_exit, n_xlayer;          /* exits; adapted block copies after layers[n_layer - 1] */
    pare_exit *exits;
    float lora_scale;
    int exit_mode;                 /* PARE_EXIT_* or an exit index */
    /* storage */
    int n_maps;
    pare_map maps[64];
    struct pare_spill *spill;      /* model_spill_tensor's temporary file, or NULL */
    void *owner;                   /* format-specific state kept alive (e.g. pare_gguf) */
    void (*owner_free)(void *);
};

/* Allocate an empty model with n_layer layers and room for n_tensors tensors. */
pare_model *model_new(int n_layer, int n_tensors);
/* Add a tensor (name copied); returns the slot. */
pare_tensor *model_add_tensor(pare_model *m, const char *name, int type, int n_dims,
                              const int64_t *ne, void *data, size_t nbytes, int owned);
pare_tensor *model_find_tensor(const pare_model *m, const char *name);
/* Room for extra more tensors (the array moves: every tensor pointer is rebound). */
pare_status model_reserve_tensors(pare_model *m, int extra);
/* Early exits from the model's exit.K.* and .lora_a/.lora_b tensors: exit k reads block
 * last[k] with adapters in blocks first[k]..last[k] (last strictly increasing). Makes the
 * adapted block copies; replaces exits set up before. */
pare_status model_setup_exits(pare_model *m, int n, const int *first, const int *last, float lora_scale);
/* Name of linear layer i (PARE_LIN_*) of block l: "blk.L.attn_q.weight" ... */
void model_lin_name(int l, int i, char *buf, size_t cap);
/* Give a tensor new bytes without keeping them in memory: data (nbytes) is written to the
 * model's spill file (a temporary file, gone when the model is freed) and t points at a
 * read-only mapping of it, so its pages can be released (pare_release_pages) and fault back
 * from the file. t's old data is freed (owned) or its pages released (mapped). Where no
 * spill file can be made, t gets an owned copy. This is how pruning a model larger than
 * memory keeps RSS to about one block. */
pare_status model_spill_tensor(pare_model *m, pare_tensor *t, const void *data, size_t nbytes);
void model_spill_free(struct pare_spill *sp);
/* After tensors and hyper-parameters are set: point layer fields at tensors by GGUF name and
 * check every shape against the hyper-parameters (errors name path, tensor, shape). */
pare_status model_bind(pare_model *m);
int64_t model_n_params(const pare_model *m);

/* format loaders / writers (src/io) */
pare_status model_load_gguf(const char *path, pare_model **out);
pare_status model_load_hf(const char *dir, pare_model **out);
pare_status model_load_llama2c(const char *path, const char *tok_path, pare_model **out);
pare_status model_save_gguf(const pare_model *m, const char *path);
pare_status model_save_hf(const pare_model *m, const char *dir);

/* HF <-> GGUF q/k row order. rows = n_head*hd rows of ncols elements each of elsize bytes:
 * to_gguf: dst[h*hd + 2i + j] = src[h*hd + j*hd/2 + i]; from_gguf is the inverse. */
void qk_permute_to_gguf(void *dst, const void *src, int n_head, int hd, size_t row_bytes);
void qk_permute_from_gguf(void *dst, const void *src, int n_head, int hd, size_t row_bytes);

#endif

/* pare.h - public API of libpare: load LLaMA-family models, run them, measure them.
 *
 * Every function that can fail returns a pare_status (0 = PARE_OK) and leaves a one-line
 * message, naming the file and the problem, in pare_last_error() (thread-local).
 * Handles are opaque; each _load/_new has a matching _free. */
#ifndef PARE_H
#define PARE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pare_status {
    PARE_OK = 0,
    PARE_ERR_IO = 1,          /* cannot open/read/write a file */
    PARE_ERR_FORMAT = 2,      /* the file is malformed, truncated or inconsistent */
    PARE_ERR_UNSUPPORTED = 3, /* well-formed but not something pare handles (architecture, type) */
    PARE_ERR_NOMEM = 4,       /* out of memory */
    PARE_ERR_ARG = 5          /* a bad argument from the caller */
} pare_status;

const char *pare_last_error(void);

typedef struct pare_model pare_model;
typedef struct pare_vocab pare_vocab;
typedef struct pare_ctx pare_ctx;

/* Load a model: a .gguf file, a llama2.c .bin checkpoint (tokenizer .bin found beside it,
 * or given with tokenizer_path), or a Hugging Face folder (config.json + safetensors). */
pare_status pare_model_load(const char *path, const char *tokenizer_path, pare_model **out);
void pare_model_free(pare_model *m);
const pare_vocab *pare_model_vocab(const pare_model *m);
int pare_model_n_vocab(const pare_model *m);   /* columns of a logits row */
int pare_model_n_ctx(const pare_model *m);     /* the training context (0: unknown) */

/* Write a model: fmt "gguf" (a file) or "hf" (a folder). Written to a temporary name and
 * renamed, so a failure never leaves a partial output. */
pare_status pare_model_save(const pare_model *m, const char *path, const char *fmt);

/* Tokenizer. ids is malloc'ed; the caller frees it. add_bos follows the vocab's settings
 * when add_special != 0. */
pare_status pare_tokenize(const pare_vocab *v, const char *text, size_t len, int add_special,
                          int32_t **ids, size_t *n_ids);
/* Bytes of one token as text (byte tokens become their byte, SPM's U+2581 a space).
 * Returns the length written (<= cap) or a negative number if cap is too small. */
int pare_token_to_piece(const pare_vocab *v, int32_t id, char *buf, size_t cap);
int pare_vocab_size(const pare_vocab *v);
int32_t pare_vocab_bos(const pare_vocab *v);
int32_t pare_vocab_eos(const pare_vocab *v);

/* Inference context with its own KV cache of n_ctx positions. */
pare_status pare_ctx_new(const pare_model *m, int n_ctx, pare_ctx **out);
void pare_ctx_free(pare_ctx *c);
void pare_ctx_reset(pare_ctx *c);
/* Run n tokens at positions pos0..pos0+n-1 (the cache must hold 0..pos0-1).
 * logits (may be NULL) receives n x n_vocab floats (row i = prediction after token i). */
pare_status pare_forward(pare_ctx *c, const int32_t *tokens, int n, int pos0, float *logits);

#ifdef __cplusplus
}
#endif
#endif

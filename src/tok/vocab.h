/* vocab.h - tokenizer vocabularies: SentencePiece BPE ("llama") and byte-level BPE ("gpt2"),
 * built from GGUF keys, a SentencePiece tokenizer.model, a HF tokenizer.json or a llama2.c
 * tokenizer .bin; written back as GGUF keys, tokenizer.model or tokenizer.json. */
#ifndef PARE_VOCAB_H
#define PARE_VOCAB_H

#include "../core.h"
#include "../io/gguf.h"

enum { PARE_VOCAB_SPM = 1, PARE_VOCAB_BPE = 2 };
/* token types as in GGUF tokenizer.ggml.token_type */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

struct pare_vocab {
    int type;              /* PARE_VOCAB_SPM or PARE_VOCAB_BPE */
    int n_tokens;
    char **text;           /* token strings as GGUF stores them (SPM with U+2581, BPE byte-encoded) */
    float *scores;         /* may be NULL for BPE */
    int32_t *ttype;        /* TOK_* */
    int n_merges;
    char **merges;         /* BPE: "left right" */
    char *pre;             /* BPE pre-tokenizer name as in tokenizer.ggml.pre ("gpt-2", ...), may be NULL */
    int32_t bos, eos, unk, pad;   /* -1 if none */
    bool add_bos, add_eos, add_space_prefix;
    void *impl;            /* private lookup tables, built by vocab_build */
};

/* Build lookup tables after the public fields are filled. */
pare_status vocab_build(pare_vocab *v);
void vocab_free(pare_vocab *v);

/* pare_tokenize with llama.cpp's parse_special: when true, CONTROL and UNKNOWN token texts in
 * the text become those tokens (USER_DEFINED ones always do). */
pare_status vocab_tokenize(const pare_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                           int32_t **ids, size_t *n_ids);

pare_status vocab_from_gguf(const pare_gguf *g, pare_vocab **out);
void vocab_to_gguf(const pare_vocab *v, gguf_writer *w);     /* tokenizer.ggml.* keys */
pare_status vocab_from_spm_model(const char *path, pare_vocab **out);   /* tokenizer.model */
pare_status vocab_from_hf_json(const char *path, pare_vocab **out);     /* tokenizer.json */
pare_status vocab_from_llama2c(const char *path, int n_vocab, pare_vocab **out); /* tok*.bin; n_vocab <= 0: all */
/* Write what Hugging Face loads for this vocab into folder dir (tokenizer.model for SPM,
 * tokenizer.json for BPE, plus tokenizer_config.json). */
pare_status vocab_save_hf(const pare_vocab *v, const char *dir);

#endif

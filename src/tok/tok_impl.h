/* tok_impl.h - private to src/tok: the lookup tables vocab_build makes (v->impl) and the
 * pieces the tokenizers, readers and writers share. Not part of the library's interface. */
#ifndef PARE_TOK_IMPL_H
#define PARE_TOK_IMPL_H

#include "vocab.h"

#include <string.h>

/* ---- a growable array of token ids ---------------------------------------------------- */
typedef struct tok_ivec { int32_t *v; size_t n, cap; } tok_ivec;
pare_status tok_ivec_push(tok_ivec *a, int32_t x);

/* A per-call cache: piece text (<= TOK_CACHE_MAX_LEN bytes) -> its tokens. */
#define TOK_CACHE_MAX_LEN 64
typedef struct tok_centry { uint64_t h; uint32_t text, len, ids, n; } tok_centry;
typedef struct tok_cache {
    uint32_t *tab;                 /* slots: entry + 1 */
    tok_centry *e; size_t ne;
    char *bytes; size_t nb, cap_b;
    int32_t *ids; size_t ni, cap_i;
    bool off;                      /* out of memory or full: no more entries */
} tok_cache;
/* 1: found, ids appended; 0: not there; -1: out of memory */
int tok_cache_get(const tok_cache *c, const char *p, size_t n, uint64_t h, tok_ivec *out);
void tok_cache_put(tok_cache *c, const char *p, size_t n, uint64_t h, const int32_t *ids, size_t ni);
void tok_cache_free(tok_cache *c);

/* per-token attribute bits beyond the GGUF type (llama.cpp's LSTRIP / RSTRIP) */
enum { TF_LSTRIP = 1, TF_RSTRIP = 2 };

#define TOK_MAX_RE 8

typedef struct tok_impl {
    uint32_t *len;                 /* byte length of every token text */
    uint32_t *tab, mask;           /* text -> id: open addressing, slot = id + 1, 0 = empty */
    /* BPE merges: "left right" -> rank (the first of equal pairs wins, as in llama.cpp) */
    uint32_t *mtab, mmask;
    uint32_t *msplit, *mlen;       /* where each merge splits, its length (0 = unusable) */
    /* CONTROL, USER_DEFINED and UNKNOWN tokens with a non-empty text, longest first */
    int32_t *special;
    int n_special;
    uint32_t sp_start[257];        /* special[] positions grouped by first byte: */
    int32_t *sp_idx;               /*   sp_idx[sp_start[b] .. sp_start[b + 1]) */
    uint8_t *flags;                /* TF_* per token */
    /* SPM */
    int32_t byte_tok[256];         /* byte fallback: <0xXX>, else the byte itself, else -1 */
    uint64_t *pairs;               /* adjacent character pairs found inside tokens (0 = empty) */
    uint32_t pmask;
    /* BPE */
    int n_re;
    void *re[TOK_MAX_RE];          /* pcre2_code_8 *, compiled once per vocab */
    bool ignore_merges;
    char byte_enc[256][3];         /* GPT-2 bytes_to_unicode: UTF-8 of each byte's character */
    uint8_t byte_enc_len[256];
} tok_impl;

static inline tok_impl *tok_im(const pare_vocab *v) { return (tok_impl *)v->impl; }

/* text -> id (-1 if absent); the last of equal texts wins, as in llama.cpp */
int32_t vocab_find(const pare_vocab *v, const char *s, size_t n);
/* rank of the merge "a b" (-1 if absent) */
int32_t vocab_merge_rank(const pare_vocab *v, const char *a, size_t na, const char *b, size_t nb);
uint64_t tok_hash(uint64_t h, const void *p, size_t n);   /* FNV-1a, streamable (merges) */
static inline uint64_t tok_hash_str(const char *p, size_t n) { /* token texts: 8 bytes a step */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        h = (h ^ x) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t x = 0;
    memcpy(&x, p, n);
    h = (h ^ x) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}
static inline uint32_t tok_slot(uint64_t h) { return (uint32_t)(h ^ (h >> 29) ^ (h >> 47)); }
static inline uint32_t tok_pow2(uint64_t n) { /* a power of two >= n (>= 16) */
    uint32_t m = 16;
    while (m < n && m < (1u << 31)) m <<= 1;
    return m;
}
#define TOK_HASH_SEED 0xcbf29ce484222325ull

/* llama.cpp's unicode_len_utf8: the length a lead byte announces (1 for stray bytes) */
static inline size_t tok_utf8_len(unsigned char c) {
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* ---- SentencePiece BPE (spm.c) -------------------------------------------------------- */
pare_status spm_build(pare_vocab *v);
/* One raw fragment: escape spaces to U+2581 (with a leading one when prefix != 0), merge. */
pare_status spm_tokenize(const pare_vocab *v, const char *text, size_t len, bool prefix, tok_ivec *out);
/* the same, merging the whole fragment at once (no cuts, no cache): for tests */
pare_status spm_tokenize_ref(const pare_vocab *v, const char *text, size_t len, bool prefix, tok_ivec *out);

/* ---- byte-level BPE (bpe.c) ----------------------------------------------------------- */
/* pre-tokenizer known by its tokenizer.ggml.pre name ("gpt-2", "llama-bpe", ...; NULL or
 * "default" for llama.cpp's default) */
bool bpe_pre_known(const char *pre);
/* the regexes of a pre-tokenizer (llama.cpp's list, applied one after another); n_out set */
const char *const *bpe_pre_regexes(const char *pre, int *n_out);
/* the pre name whose regex list equals re[0..n) (HF spellings accepted), or NULL */
const char *bpe_pre_from_regexes(const char *const *re, int n);
/* regex k as tokenizer.json spells it; whether the pre-tokenizer skips merges for whole tokens */
const char *bpe_pre_regex_hf(const char *pre, int k);
bool bpe_pre_ignore_merges(const char *pre);
pare_status bpe_build(pare_vocab *v);
void bpe_release(tok_impl *im);
pare_status bpe_tokenize(const pare_vocab *v, const char *text, size_t len, tok_ivec *out);
/* byte-level text back to bytes; returns the length (may exceed cap: then nothing past cap) */
size_t bpe_decode(const char *s, size_t n, char *out, size_t cap);

/* ---- readers / writers ------------------------------------------------------------------ */
pare_status spm_model_write(const pare_vocab *v, const char *path);   /* tokenizer.model */
pare_status hf_json_write(const pare_vocab *v, const char *path);     /* tokenizer.json */
/* tokenizer_config.json beside path (if any): add_bos_token / add_eos_token and the special
 * token names; a missing file changes nothing, a malformed one is an error */
pare_status hf_config_apply(pare_vocab *v, const char *tok_path);
pare_status hf_config_write(const pare_vocab *v, const char *path);

/* write a whole file through a temporary name */
pare_status tok_write_file(const char *path, const void *p, size_t n);
/* A vocab with n empty slots (text/scores/ttype allocated, NULL texts), ids -1. */
pare_vocab *vocab_alloc(int type, int n_tokens);
/* vocab_build, and on failure prefix the message with path (and free v) */
pare_status vocab_finish(pare_vocab *v, const char *path, pare_vocab **out);

#endif

/* io_util.h - helpers shared by test_io.c and test_badinput.c (include after cmocka.h):
 * a temporary folder under /tmp, whole-file reads and writes, model comparison and a tiny
 * hand-made model. Everything is static inline so each test uses what it needs. */
#ifndef PARE_TEST_IO_UTIL_H
#define PARE_TEST_IO_UTIL_H

#include "io/gguf.h"
#include "model/model.h"
#include "tok/vocab.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_DIR "/work/shared/data"
#define BROWN_DIR DATA_DIR "/bench/brown-4m"
#define BROWN_GGUF BROWN_DIR "/model.gguf"
#define STORIES_GGUF DATA_DIR "/stories260K/stories260K.gguf"
#define STORIES_BIN DATA_DIR "/stories260K/stories260K.bin"
#define STORIES_TOK DATA_DIR "/stories260K/tok512.bin"

static inline bool have_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static inline char *tu_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static inline int tu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb; (void)flag; (void)f;
    return remove(p);
}
/* remove a folder made here (refuses anything else) */
static inline void tu_rmtree(char *dir) {
    if (dir && !strncmp(dir, "/tmp/pare-test-", 15)) nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* every test group works in one mkdtemp folder, removed by the group teardown even when a
 * test fails half-way */
static char *tu_root;
static inline int tu_setup(void **state) {
    (void)state;
    char t[] = "/tmp/pare-test-XXXXXX";
    if (!mkdtemp(t)) return -1;
    tu_root = strdup(t);
    return tu_root ? 0 : -1;
}
static inline int tu_teardown(void **state) {
    (void)state;
    tu_rmtree(tu_root);
    tu_root = NULL;
    return 0;
}
/* a fresh folder inside the group's */
static inline char *tu_tmpdir(void) {
    assert_non_null(tu_root);
    char *t = tu_join(tu_root, "d-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static inline void tu_write(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static inline uint8_t *tu_read(const char *path, size_t *n) {
    /* the pointer lives on the heap: GCC 12's -Wdangling-pointer otherwise takes the result
     * for a pointer to this frame once inlined */
    char **holder = calloc(1, sizeof *holder);
    assert_non_null(holder);
    size_t len = 0;
    pare_status st = pare_read_file(path, holder, &len);
    if (st) fprintf(stderr, "read %s: %s\n", path, pare_last_error());
    assert_int_equal(st, PARE_OK);
    char *b = *holder;
    free(holder);
    *n = len;
    return (uint8_t *)b;
}

static inline bool tu_same_file(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *pa = tu_read(a, &na), *pb = tu_read(b, &nb);
    bool same = na == nb && !memcmp(pa, pb, na);
    if (!same) {
        size_t i = 0;
        while (i < na && i < nb && pa[i] == pb[i]) i++;
        fprintf(stderr, "files differ: %s (%zu bytes) and %s (%zu bytes), first at byte %zu\n", a, na, b, nb, i);
    }
    free(pa);
    free(pb);
    return same;
}

static inline void tu_copy(const char *from, const char *to) {
    size_t n;
    uint8_t *p = tu_read(from, &n);
    tu_write(to, p, n);
    free(p);
}

/* load with a readable failure */
static inline pare_model *tu_load(const char *path, const char *tok) {
    pare_model *m = NULL;
    pare_status st = pare_model_load(path, tok, &m);
    if (st) fprintf(stderr, "load %s: %s\n", path, pare_last_error());
    assert_int_equal(st, PARE_OK);
    assert_non_null(m);
    return m;
}

static inline void tu_ok(pare_status st) {
    if (st) fprintf(stderr, "unexpected failure: %s\n", pare_last_error());
    assert_int_equal(st, PARE_OK);
}

static inline void tu_tensor_equal(const pare_tensor *a, const pare_tensor *b) {
    assert_non_null(a);
    assert_non_null(b);
    if (a->type != b->type || a->n_dims != b->n_dims || a->nbytes != b->nbytes || memcmp(a->ne, b->ne, sizeof a->ne))
        fprintf(stderr, "tensor %s / %s differ in type or shape\n", a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->n_dims, b->n_dims);
    for (int d = 0; d < 4; d++) assert_int_equal(a->ne[d], b->ne[d]);
    assert_int_equal(a->nbytes, b->nbytes);
    if (a->nbytes && memcmp(a->data, b->data, a->nbytes)) {
        fprintf(stderr, "tensor %s / %s: data differ\n", a->name, b->name);
        fail();
    }
}

static inline void tu_vocab_equal(const pare_vocab *a, const pare_vocab *b) {
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->n_tokens, b->n_tokens);
    for (int i = 0; i < a->n_tokens; i++) {
        if (strcmp(a->text[i], b->text[i])) fprintf(stderr, "token %d: '%s' vs '%s'\n", i, a->text[i], b->text[i]);
        assert_string_equal(a->text[i], b->text[i]);
        assert_int_equal(a->ttype[i], b->ttype[i]);
        if (a->scores && b->scores) assert_memory_equal(&a->scores[i], &b->scores[i], sizeof(float));
    }
    assert_int_equal(a->bos, b->bos);
    assert_int_equal(a->eos, b->eos);
    assert_int_equal(a->unk, b->unk);
    assert_int_equal(a->add_bos, b->add_bos);
    assert_int_equal(a->add_eos, b->add_eos);
}

static inline void tu_hparams_equal(const pare_model *a, const pare_model *b) {
    assert_int_equal(a->n_layer, b->n_layer);
    assert_int_equal(a->n_embd, b->n_embd);
    assert_int_equal(a->n_vocab, b->n_vocab);
    assert_int_equal(a->head_dim, b->head_dim);
    assert_int_equal(a->n_ctx_train, b->n_ctx_train);
    assert_true(a->norm_eps == b->norm_eps);
    assert_true(a->rope_base == b->rope_base);
    assert_int_equal(a->rope_scaling, b->rope_scaling);
    if (a->rope_scaling) {
        assert_true(a->rope_factor == b->rope_factor);
        if (a->rope_scaling == PARE_ROPE_SCALING_LLAMA3) {
            assert_true(a->rope_low_freq == b->rope_low_freq);
            assert_true(a->rope_high_freq == b->rope_high_freq);
            assert_int_equal(a->rope_orig_ctx, b->rope_orig_ctx);
        }
    }
    assert_int_equal(a->tied, b->tied);
    for (int i = 0; i < a->n_layer; i++) {
        assert_int_equal(a->layers[i].n_head, b->layers[i].n_head);
        assert_int_equal(a->layers[i].n_head_kv, b->layers[i].n_head_kv);
        assert_int_equal(a->layers[i].n_ff, b->layers[i].n_ff);
    }
}

/* same hyper-parameters, same tensors by name (bit for bit), same vocab if both have one */
static inline void tu_models_equal(const pare_model *a, const pare_model *b) {
    tu_hparams_equal(a, b);
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const pare_tensor *tb = model_find_tensor(b, a->tensors[i].name);
        if (!tb) fprintf(stderr, "tensor %s missing\n", a->tensors[i].name);
        tu_tensor_equal(&a->tensors[i], tb);
    }
    if (a->vocab || b->vocab) tu_vocab_equal(a->vocab, b->vocab);
}

/* A tiny F32 model built by hand: E 16, 2 layers, 2 heads of 8, 1 KV head, FFN 24, vocab 32,
 * deterministic values; no tokenizer. */
static inline float tu_val(uint32_t k) {
    k = k * 2654435761u + 12345u;
    k ^= k >> 13;
    k *= 0x5bd1e995u;
    k ^= k >> 15;
    return ((float)(k & 0xffff) - 32768.0f) / 65536.0f;
}
static inline void tu_add(pare_model *m, const char *name, int64_t a, int64_t b) {
    size_t n = (size_t)a * (size_t)(b ? b : 1);
    float *d = malloc(n * sizeof(float));
    assert_non_null(d);
    static uint32_t seq = 0;
    for (size_t i = 0; i < n; i++) d[i] = tu_val(seq++);
    int64_t ne[2] = {a, b};
    assert_non_null(model_add_tensor(m, name, PARE_TYPE_F32, b ? 2 : 1, ne, d, n * sizeof(float), 1));
}
static inline pare_model *tu_tiny_model(void) {
    const int L = 2, E = 16, H = 2, KV = 1, HD = 8, FF = 24, V = 32;
    pare_model *m = model_new(L, 9 * L + 3);
    assert_non_null(m);
    m->path = strdup("tiny");
    m->name = strdup("tiny");
    m->n_embd = E; m->n_vocab = V; m->n_ctx_train = 64; m->head_dim = HD;
    m->norm_eps = 1e-5f; m->rope_base = 10000.0f;
    tu_add(m, "token_embd.weight", E, V);
    char nm[64];
    for (int l = 0; l < L; l++) {
        m->layers[l].n_head = H; m->layers[l].n_head_kv = KV; m->layers[l].n_ff = FF;
#define T(s, a, b) snprintf(nm, sizeof nm, "blk.%d." s ".weight", l); tu_add(m, nm, a, b);
        T("attn_norm", E, 0);
        T("attn_q", E, H * HD);
        T("attn_k", E, KV * HD);
        T("attn_v", E, KV * HD);
        T("attn_output", H * HD, E);
        T("ffn_norm", E, 0);
        T("ffn_gate", E, FF);
        T("ffn_up", E, FF);
        T("ffn_down", FF, E);
#undef T
    }
    tu_add(m, "output_norm.weight", E, 0);
    tu_add(m, "output.weight", E, V);
    tu_ok(model_bind(m));
    return m;
}

/* a GGUF like the tiny model's, with tweak() changing keys before the tensors go in */
static inline void tu_write_tiny_gguf(const char *path, void (*tweak)(gguf_writer *)) {
    pare_model *m = tu_tiny_model();
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_u32(w, "llama.block_count", 2);
    gguf_w_u32(w, "llama.embedding_length", 16);
    gguf_w_u32(w, "llama.feed_forward_length", 24);
    gguf_w_u32(w, "llama.attention.head_count", 2);
    gguf_w_u32(w, "llama.attention.head_count_kv", 1);
    gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (tweak) tweak(w);
    for (int i = 0; i < m->n_tensors; i++) {
        const pare_tensor *t = &m->tensors[i];
        gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    tu_ok(gguf_writer_save(w, path));
    gguf_writer_free(w);
    pare_model_free(m);
}

#endif

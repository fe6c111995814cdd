/* test_badinput.c - malformed model files: GGUF, safetensors + config.json, llama2.c
 * checkpoints and tokenizers, truncated at every offset of their headers and at a spread of
 * offsets through their data, with wrong magic, lengths and offsets past the end, absurd
 * counts, shapes that contradict config.json and unknown architectures. Each must fail with
 * a non-zero status and a one-line message naming the file, and never crash (this test is
 * also built with ASan/UBSan: make SAN=1 build-san/tests/test_badinput). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "io_util.h"
#include "io/safetensors.h"

#include <limits.h>

#define g_dir tu_root /* the mkdtemp folder of this run */

static void clear_error(void) { pare_fail(PARE_OK, "%s", ""); }

/* st must be a failure whose message is one line and contains `name` */
static void expect_fail(pare_status st, const char *name, const char *ctx) {
    const char *msg = pare_last_error();
    if (st == PARE_OK) {
        fprintf(stderr, "%s: loaded, but should have failed\n", ctx);
        fail();
    }
    assert_non_null(msg);
    if (!msg[0] || strchr(msg, '\n') || !strstr(msg, name)) {
        fprintf(stderr, "%s: bad message \"%s\" (must be one line naming %s)\n", ctx, msg, name);
        fail();
    }
}

/* load path (file or folder) with the auto-detecting loader; it must fail naming `name` */
static void expect_load_fail(const char *path, const char *name, const char *ctx) {
    pare_model *m = (pare_model *)(uintptr_t)1;
    clear_error();
    pare_status st = pare_model_load(path, NULL, &m);
    if (!st) pare_model_free(m);
    else assert_null(m);
    expect_fail(st, name, ctx);
}

/* offsets to cut at: every one in [0, header] and `spread` more through (header, end) */
static size_t cut_offsets(size_t header, size_t end, int spread, size_t **out) {
    size_t n = 0, cap = header + 2 + (size_t)spread;
    size_t *o = malloc(cap * sizeof *o);
    assert_non_null(o);
    for (size_t k = 0; k <= header && k < end; k++) o[n++] = k;
    for (int i = 1; i <= spread && end > header + 1; i++) {
        size_t k = header + (size_t)((double)(end - header - 1) * i / spread);
        if (k > header && k < end && (n == 0 || o[n - 1] != k)) o[n++] = k;
    }
    *out = o;
    return n;
}

/* ---- GGUF -------------------------------------------------------------------------------------- */
/* a small reader for our own (valid) GGUF files, to find fields to corrupt */
typedef struct gw { const uint8_t *p; size_t off; } gw;
static uint64_t gw_u(gw *r, size_t k) {
    uint64_t v = 0;
    memcpy(&v, r->p + r->off, k);
    r->off += k;
    return v;
}
static void gw_skip(gw *r, uint32_t t) {
    static const size_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t == 8) { uint64_t n = gw_u(r, 8); r->off += n; }
    else if (t == 9) {
        uint32_t at = (uint32_t)gw_u(r, 4);
        uint64_t n = gw_u(r, 8);
        for (uint64_t i = 0; i < n; i++) gw_skip(r, at);
    } else r->off += sz[t];
}
typedef struct gpos { size_t first_key_len, tinfo, last_dims, last_ne0, last_type, last_offset, arch_value; } gpos;
static gpos gguf_positions(const uint8_t *p) {
    gw r = {p, 8};
    gpos g = {0};
    uint64_t nt = gw_u(&r, 8), nkv = gw_u(&r, 8);
    g.first_key_len = r.off;
    for (uint64_t i = 0; i < nkv; i++) {
        uint64_t kl = gw_u(&r, 8);
        bool arch = kl == 20 && !memcmp(p + r.off, "general.architecture", 20);
        r.off += kl;
        uint32_t t = (uint32_t)gw_u(&r, 4);
        if (arch) g.arch_value = r.off;
        gw_skip(&r, t);
    }
    g.tinfo = r.off;
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t nl = gw_u(&r, 8);
        r.off += nl;
        g.last_dims = r.off;
        uint32_t nd = (uint32_t)gw_u(&r, 4);
        g.last_ne0 = r.off;
        r.off += 8 * nd;
        g.last_type = r.off;
        r.off += 4;
        g.last_offset = r.off;
        r.off += 8;
    }
    return g;
}

/* header size and the end of the last tensor's data */
static void gguf_extent(const char *path, size_t *header, size_t *end) {
    pare_gguf *g;
    tu_ok(gguf_open(path, &g));
    *header = g->data_offset;
    *end = g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        size_t e = g->data_offset + (size_t)g->tensors[i].offset + g->tensors[i].nbytes;
        if (e > *end) *end = e;
    }
    gguf_close(g);
}

static void gguf_truncations(const char *src, int spread, size_t header_step) {
    size_t n, header, end;
    uint8_t *p = tu_read(src, &n);
    gguf_extent(src, &header, &end);
    char *cut = tu_join(g_dir, "cut.gguf");
    size_t *offs, no = cut_offsets(header, end, spread, &offs);
    char ctx[64];
    for (size_t i = 0; i < no; i++) {
        if (offs[i] <= header && offs[i] % header_step && offs[i] > 64) continue;
        tu_write(cut, p, offs[i]);
        snprintf(ctx, sizeof ctx, "gguf cut at %zu of %zu", offs[i], n);
        expect_load_fail(cut, cut, ctx);
    }
    free(offs);
    free(cut);
    free(p);
}

static char *tiny_gguf(void) {
    char *path = tu_join(g_dir, "tiny.gguf");
    pare_model *m = tu_tiny_model();
    tu_ok(pare_model_save(m, path, "gguf"));
    pare_model_free(m);
    pare_model *back = tu_load(path, NULL); /* the intact file loads */
    pare_model_free(back);
    return path;
}

static void test_gguf_truncated(void **state) {
    (void)state;
    char *t = tiny_gguf();
    gguf_truncations(t, 300, 1);
    free(t);
    if (have_file(STORIES_GGUF)) gguf_truncations(STORIES_GGUF, 40, 37);
    if (have_file(BROWN_GGUF)) gguf_truncations(BROWN_GGUF, 6, 401);
}

/* write a copy of src with `k` bytes at `at` replaced by v (little-endian) */
static void patch(const uint8_t *p, size_t n, size_t at, uint64_t v, size_t k, const char *out) {
    uint8_t *q = malloc(n);
    assert_non_null(q);
    memcpy(q, p, n);
    memcpy(q + at, &v, k);
    tu_write(out, q, n);
    free(q);
}

static void test_gguf_corrupt(void **state) {
    (void)state;
    char *t = tiny_gguf(), *bad = tu_join(g_dir, "bad.gguf");
    size_t n;
    uint8_t *p = tu_read(t, &n);
    gpos g = gguf_positions(p);
    pare_model *m = NULL;
    struct { const char *what; size_t at; uint64_t v; size_t k; } cases[] = {
        {"wrong magic", 0, 0x58554747u, 4},
        {"version 7", 4, 7, 4},
        {"n_tensors 2^62", 8, 1ull << 62, 8},
        {"n_kv 2^62", 16, 1ull << 62, 8},
        {"n_tensors one more", 8, 0, 0}, /* filled below */
        {"key length 2^62", g.first_key_len, 1ull << 62, 8},
        {"tensor dims 9", g.last_dims, 9, 4},
        {"tensor ne0 2^62", g.last_ne0, 1ull << 62, 8},
        {"tensor ne0 2^40", g.last_ne0, 1ull << 40, 8},
        {"tensor type 99", g.last_type, 99, 4},
        {"tensor type q8_0", g.last_type, PARE_TYPE_Q8_0, 4},
        {"tensor offset past end", g.last_offset, 1ull << 40, 8},
        {"tensor offset unaligned", g.last_offset, 3, 8},
        {"architecture string length 2^62", g.arch_value, 1ull << 62, 8},
    };
    uint64_t nt;
    memcpy(&nt, p + 8, 8);
    cases[4].v = nt + 1;
    cases[4].k = 8;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        patch(p, n, cases[i].at, cases[i].v, cases[i].k, bad);
        expect_load_fail(bad, bad, cases[i].what);
        /* and through the GGUF loader itself */
        clear_error();
        expect_fail(model_load_gguf(bad, &m), bad, cases[i].what);
        assert_null(m);
    }
    /* the magic case names the problem */
    patch(p, n, 0, 0x58554747u, 4, bad);
    clear_error();
    assert_int_equal(model_load_gguf(bad, &m), PARE_ERR_FORMAT);
    assert_non_null(strstr(pare_last_error(), "magic"));
    free(p);
    free(t);
    free(bad);
}

static void tw_arch(gguf_writer *w) { gguf_w_str(w, "general.architecture", "mamba"); }
static void tw_blocks(gguf_writer *w) { gguf_w_u32(w, "llama.block_count", 1000000000u); }
static void tw_blocks3(gguf_writer *w) { gguf_w_u32(w, "llama.block_count", 3); }
static void tw_heads_arr(gguf_writer *w) { int32_t h[3] = {2, 2, 2}; gguf_w_arr_i32(w, "llama.attention.head_count", h, 3); }
static void tw_heads_neg(gguf_writer *w) { int32_t h[2] = {2, -2}; gguf_w_arr_i32(w, "llama.attention.head_count", h, 2); }
static void tw_heads_str(gguf_writer *w) { gguf_w_str(w, "llama.attention.head_count", "two"); }
static void tw_heads3(gguf_writer *w) { gguf_w_u32(w, "llama.attention.head_count", 3); }
static void tw_kv_bad(gguf_writer *w) { gguf_w_u32(w, "llama.attention.head_count_kv", 3); }
static void tw_ff(gguf_writer *w) { gguf_w_u32(w, "llama.feed_forward_length", 20); }
static void tw_embd(gguf_writer *w) { gguf_w_u32(w, "llama.embedding_length", 0x7fffffff); }
static void tw_rot(gguf_writer *w) { gguf_w_u32(w, "llama.rope.dimension_count", 4); }
static void tw_rope(gguf_writer *w) { gguf_w_str(w, "llama.rope.scaling.type", "yarn"); }
static void tw_eps(gguf_writer *w) { gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", -1.0f); }
static void tw_noarch(gguf_writer *w) { gguf_w_u32(w, "general.architecture", 5); }
static void tw_rope_freqs(gguf_writer *w) {
    static const float f[4] = {1, 2, 3, 4}; /* not Llama 3 factors */
    int64_t ne[1] = {4};
    gguf_w_tensor(w, "rope_freqs.weight", PARE_TYPE_F32, 1, ne, f, sizeof f);
}

static void test_gguf_bad_keys(void **state) {
    (void)state;
    char *p = tu_join(g_dir, "keys.gguf");
    tu_write_tiny_gguf(p, NULL);
    pare_model *m = tu_load(p, NULL); /* sanity: the untweaked file loads */
    pare_model_free(m);
    struct { const char *what; void (*tw)(gguf_writer *); const char *says; } cases[] = {
        {"unknown architecture", tw_arch, "unknown architecture 'mamba'"},
        {"architecture not a string", tw_noarch, "architecture"},
        {"block_count 1e9", tw_blocks, "block_count"},
        {"block_count 3, two blocks of tensors", tw_blocks3, "blk.2"},
        {"head_count array of 3 for 2 layers", tw_heads_arr, "head_count"},
        {"negative head count", tw_heads_neg, "head_count"},
        {"head_count a string", tw_heads_str, "head_count"},
        {"head_count 3 (16 not divisible)", tw_heads3, "head"},
        {"head_count_kv 3 for 2 heads", tw_kv_bad, "heads"},
        {"feed_forward_length contradicts the tensors", tw_ff, "ffn_gate"},
        {"embedding_length absurd", tw_embd, "embedding_length"},
        {"partial rotary", tw_rot, "rope.dimension_count"},
        {"rope scaling yarn", tw_rope, "yarn"},
        {"negative epsilon", tw_eps, "epsilon"},
        {"rope_freqs.weight of no known scaling", tw_rope_freqs, "rope_freqs.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_write_tiny_gguf(p, cases[i].tw);
        expect_load_fail(p, p, cases[i].what);
        if (!strstr(pare_last_error(), cases[i].says)) {
            fprintf(stderr, "%s: message \"%s\" does not say '%s'\n", cases[i].what, pare_last_error(), cases[i].says);
            fail();
        }
    }
    tu_write_tiny_gguf(p, tw_arch);
    clear_error();
    assert_int_equal(pare_model_load(p, NULL, &m), PARE_ERR_UNSUPPORTED);
    free(p);
}

/* ---- safetensors + config.json ------------------------------------------------------------------ */
static char *tiny_hf(const char *name) {
    char *dir = tu_join(g_dir, name);
    pare_model *m = tu_tiny_model();
    tu_ok(pare_model_save(m, dir, "hf"));
    pare_model_free(m);
    pare_model *back = tu_load(dir, NULL);
    pare_model_free(back);
    return dir;
}

static void test_safetensors_truncated(void **state) {
    (void)state;
    char *src = tiny_hf("hf0"), *dir = tu_join(g_dir, "hfcut");
    char *s0 = tu_join(src, "model.safetensors"), *c0 = tu_join(src, "config.json");
    char *s1 = tu_join(dir, "model.safetensors"), *c1 = tu_join(dir, "config.json");
    assert_int_equal(mkdir(dir, 0755), 0);
    size_t n, cn;
    uint8_t *p = tu_read(s0, &n), *cfg = tu_read(c0, &cn);
    uint64_t hl;
    memcpy(&hl, p, 8);
    tu_write(c1, cfg, cn);
    size_t *offs, no = cut_offsets(8 + (size_t)hl, n, 300, &offs);
    char ctx[64];
    for (size_t i = 0; i < no; i++) {
        tu_write(s1, p, offs[i]);
        snprintf(ctx, sizeof ctx, "safetensors cut at %zu of %zu", offs[i], n);
        expect_load_fail(dir, s1, ctx);
    }
    free(offs);
    /* config.json cut anywhere before its closing brace (only the final newline may go) */
    tu_write(s1, p, n);
    assert_true(cn >= 2 && cfg[cn - 2] == '}' && cfg[cn - 1] == '\n');
    for (size_t k = 0; k + 1 < cn; k++) {
        tu_write(c1, cfg, k);
        snprintf(ctx, sizeof ctx, "config.json cut at %zu of %zu", k, cn);
        expect_load_fail(dir, c1, ctx);
    }
    tu_write(c1, cfg, cn);
    pare_model *m = tu_load(dir, NULL);
    pare_model_free(m);
    /* the brown folder's safetensors, cut at a few places */
    if (have_file(BROWN_DIR "/model.safetensors")) {
        size_t bn;
        uint8_t *b = tu_read(BROWN_DIR "/model.safetensors", &bn);
        tu_copy(BROWN_DIR "/config.json", c1);
        size_t cuts[] = {0, 7, 8, 9, 100, 4000, 8007, 8008, 8009, 1000000, bn / 2, bn - 4, bn - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
            tu_write(s1, b, cuts[i]);
            snprintf(ctx, sizeof ctx, "brown safetensors cut at %zu", cuts[i]);
            expect_load_fail(dir, s1, ctx);
        }
        free(b);
    }
    free(p); free(cfg);
    free(s0); free(c0); free(s1); free(c1); free(src); free(dir);
}

/* a safetensors file from a header text and n data bytes */
static void write_st(const char *path, const char *header, uint64_t hlen, size_t ndata) {
    size_t hl = strlen(header), n = 8 + hl + ndata;
    uint8_t *p = calloc(1, n);
    assert_non_null(p);
    memcpy(p, &hlen, 8);
    memcpy(p + 8, header, hl);
    tu_write(path, p, n);
    free(p);
}

static void test_safetensors_corrupt(void **state) {
    (void)state;
    char *p = tu_join(g_dir, "x.safetensors");
    const char *ok = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    write_st(p, ok, strlen(ok), 16);
    pare_st *s = NULL;
    tu_ok(st_open(p, &s)); /* sanity */
    st_close(s);
    struct { const char *what, *header; int64_t hlen; size_t ndata; const char *says; } cases[] = {
        {"header length 2^62", ok, 1ll << 62, 16, "header length"},
        {"header length past the end", ok, (int64_t)strlen(ok) + 17, 16, "header length"},
        {"header length 0", ok, 0, 16, "header"},
        {"header not JSON", "{\"w\":{\"dtype\":\"F32\",", -1, 16, "JSON"},
        {"header not an object", "[1, 2, 3]", -1, 0, "header"},
        {"data past the end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", -1, 15, "past the end"},
        {"offsets far past the end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[4611686018427387904,4611686018427387920]}}", -1, 16, "w"},
        {"offsets reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,0]}}", -1, 16, "data_offsets"},
        {"offsets negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[-16,0]}}", -1, 16, "data_offsets"},
        {"size does not match the shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", -1, 16, "shape"},
        {"absurd shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", -1, 16, "shape"},
        {"huge shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}", -1, 16, "shape"},
        {"negative shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}", -1, 16, "shape"},
        {"fractional shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5,2],\"data_offsets\":[0,16]}}", -1, 16, "shape"},
        {"F64", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", -1, 16, "F64"},
        {"unknown dtype", "{\"w\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,16]}}", -1, 16, "dtype"},
        {"no dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 16, "dtype"},
        {"entry not an object", "{\"w\":5}", -1, 0, "w"},
        {"duplicate tensor", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, 16, "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_st(p, cases[i].header, cases[i].hlen < 0 ? strlen(cases[i].header) : (uint64_t)cases[i].hlen, cases[i].ndata);
        clear_error();
        s = (pare_st *)(uintptr_t)1;
        pare_status st = st_open(p, &s);
        assert_null(s);
        expect_fail(st, p, cases[i].what);
        if (!strstr(pare_last_error(), cases[i].says)) {
            fprintf(stderr, "%s: message \"%s\" does not say '%s'\n", cases[i].what, pare_last_error(), cases[i].says);
            fail();
        }
    }
    /* files too short to hold the length */
    for (size_t k = 0; k < 8; k++) {
        tu_write(p, "\x10\0\0\0\0\0\0\0", k);
        clear_error();
        expect_fail(st_open(p, &s), p, "short file");
    }
    free(p);
}

/* edit config.json of the tiny folder: replace the first `from` by `to` */
static void config_edit(const char *dir, const char *orig, const char *from, const char *to) {
    const char *at = strstr(orig, from);
    if (!at) fail_msg("config.json has no '%s'", from);
    size_t a = (size_t)(at - orig), n = strlen(orig) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, orig, a);
    strcpy(s + a, to);
    strcat(s, at + strlen(from));
    char *cp = tu_join(dir, "config.json");
    tu_write(cp, s, strlen(s));
    free(cp);
    free(s);
}

static void test_hf_config_mismatch(void **state) {
    (void)state;
    char *dir = tiny_hf("hfcfg"), *cp = tu_join(dir, "config.json"), *sp = tu_join(dir, "model.safetensors");
    size_t n;
    char *orig = (char *)tu_read(cp, &n);
    struct { const char *what, *from, *to, *file, *says; } cases[] = {
        {"intermediate_size contradicts", "\"intermediate_size\": 24", "\"intermediate_size\": 20", "model.safetensors",
         "'model.layers.0.mlp.down_proj.weight' has shape [16, 24], config.json says [16, 20]"},
        {"hidden_size contradicts", "\"hidden_size\": 16", "\"hidden_size\": 32", "model.safetensors", "config.json says"},
        {"num_key_value_heads contradicts", "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 2", "model.safetensors",
         "k_proj"},
        {"vocab_size contradicts", "\"vocab_size\": 32", "\"vocab_size\": 33", "model.safetensors", "config.json says [33, 16]"},
        {"more layers than tensors", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", "model.safetensors",
         "missing tensor 'model.layers.2."},
        {"fewer layers than tensors", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1", "model.safetensors", "layer 1"},
        {"tied but lm_head absent", "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true", "", ""},
        {"unknown architecture", "\"model_type\": \"llama\"", "\"model_type\": \"mamba\"", "config.json",
         "unknown architecture 'mamba'"},
        {"absurd layer count", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1e12", "config.json", "num_hidden_layers"},
        {"negative hidden size", "\"hidden_size\": 16", "\"hidden_size\": -16", "config.json", "hidden_size"},
        {"string head count", "\"num_attention_heads\": 2", "\"num_attention_heads\": \"2\"", "config.json", "num_attention_heads"},
        {"odd head_dim", "\"head_dim\": 8", "\"head_dim\": 7", "config.json", "head_dim"},
        {"heads do not share kv heads", "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3", "config.json", "heads"},
        {"gelu", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "config.json", "gelu"},
        {"yarn", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", "config.json", "yarn"},
        {"biases", "\"attention_bias\": false", "\"attention_bias\": true", "config.json", "bias"},
        {"per-layer array too short", "\"tie_word_embeddings\"", "\"pare_intermediate_size_per_layer\": [24], \"tie_word_embeddings\"",
         "config.json", "pare_intermediate_size_per_layer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        config_edit(dir, orig, cases[i].from, cases[i].to);
        if (!*cases[i].file) {
            /* tied: lm_head is ignored, as Hugging Face does; the load succeeds */
            pare_model *m = tu_load(dir, NULL);
            assert_true(m->tied);
            pare_model_free(m);
            continue;
        }
        char *f = tu_join(dir, cases[i].file);
        expect_load_fail(dir, f, cases[i].what);
        free(f);
        if (!strstr(pare_last_error(), cases[i].says)) {
            fprintf(stderr, "%s: message \"%s\" does not say '%s'\n", cases[i].what, pare_last_error(), cases[i].says);
            fail();
        }
    }
    /* an unknown tensor, and a shard index that points outside the folder */
    tu_write(cp, orig, n);
    size_t sn;
    uint8_t *sb = tu_read(sp, &sn);
    pare_st *s;
    tu_ok(st_open(sp, &s));
    st_writer *w = st_writer_new();
    for (int i = 0; i < s->n_tensors; i++)
        tu_ok(st_w_tensor(w, s->tensors[i].name, s->tensors[i].type, s->tensors[i].n_dims, s->tensors[i].shape,
                          s->tensors[i].data, s->tensors[i].nbytes));
    float bias[16] = {0};
    int64_t bs[1] = {16};
    tu_ok(st_w_tensor(w, "model.layers.0.self_attn.q_proj.bias", PARE_TYPE_F32, 1, bs, bias, sizeof bias));
    char *sp2 = tu_join(g_dir, "extra.safetensors");
    tu_ok(st_writer_save(w, sp2));
    st_writer_free(w);
    st_close(s);
    tu_copy(sp2, sp);
    expect_load_fail(dir, sp, "unexpected tensor");
    assert_non_null(strstr(pare_last_error(), "q_proj.bias"));
    assert_int_equal(remove(sp), 0);
    char *ip = tu_join(dir, "model.safetensors.index.json");
    const char *idx = "{\"weight_map\": {\"model.norm.weight\": \"../../etc/passwd\"}}";
    tu_write(ip, idx, strlen(idx));
    expect_load_fail(dir, ip, "index pointing outside");
    const char *idx2 = "{\"weight_map\": {\"model.norm.weight\": \"missing.safetensors\"}}";
    tu_write(ip, idx2, strlen(idx2));
    expect_load_fail(dir, "missing.safetensors", "index naming a missing shard");
    assert_int_equal(remove(ip), 0);
    expect_load_fail(dir, dir, "no safetensors at all");
    tu_write(sp, sb, sn);
    free(sb);
    free(sp2); free(ip);
    free(orig); free(cp); free(sp); free(dir);
}

/* ---- llama2.c --------------------------------------------------------------------------------------- */
/* a tiny checkpoint: dim 16, hidden 24, 2 layers, 2 heads, 1 kv head, vocab 32 (shared), seq 8 */
static uint8_t *tiny_llama2c(size_t *n) {
    int32_t h[7] = {16, 24, 2, 2, 1, 32, 8};
    size_t D = 16, F = 24, L = 2, V = 32, kvd = 8, hs = 8, S = 8;
    size_t nf = V * D + L * D + L * D * D + 2 * L * kvd * D + L * D * D + L * D + 3 * L * F * D + D + 2 * S * hs / 2;
    *n = 28 + 4 * nf;
    uint8_t *p = malloc(*n);
    assert_non_null(p);
    memcpy(p, h, 28);
    for (size_t i = 0; i < nf; i++) {
        float f = tu_val((uint32_t)i);
        memcpy(p + 28 + 4 * i, &f, 4);
    }
    return p;
}

static void test_llama2c_bad(void **state) {
    (void)state;
    size_t n;
    uint8_t *p = tiny_llama2c(&n);
    char *path = tu_join(g_dir, "tiny.bin");
    tu_write(path, p, n);
    pare_model *m = tu_load(path, NULL); /* sanity */
    assert_int_equal(m->n_layer, 2);
    assert_true(m->tied);
    assert_null(m->vocab);
    pare_model_free(m);
    size_t *offs, no = cut_offsets(28, n, 400, &offs);
    char ctx[64];
    for (size_t i = 0; i < no; i++) {
        tu_write(path, p, offs[i]);
        snprintf(ctx, sizeof ctx, "llama2.c cut at %zu of %zu", offs[i], n);
        expect_load_fail(path, path, ctx);
    }
    free(offs);
    /* one byte too many */
    uint8_t *q = malloc(n + 1);
    memcpy(q, p, n);
    q[n] = 0;
    tu_write(path, q, n + 1);
    expect_load_fail(path, path, "one byte extra");
    free(q);
    /* absurd headers */
    const int32_t bad[][7] = {
        {INT32_MAX, 24, 2, 2, 1, 32, 8}, {16, INT32_MAX, 2, 2, 1, 32, 8}, {16, 24, INT32_MAX, 2, 1, 32, 8},
        {16, 24, 2, 0, 1, 32, 8},        {16, 24, 2, 2, 0, 32, 8},        {16, 24, 2, 2, 3, 32, 8},
        {16, 24, 2, 2, 1, INT32_MIN, 8}, {16, 24, 2, 2, 1, 0, 8},         {16, 24, 2, 2, 1, 32, -8},
        {16, 24, 2, 3, 1, 32, 8},        {-16, 24, 2, 2, 1, 32, 8},       {1 << 20, 1 << 24, 4096, 1, 1, 1 << 24, 1 << 24},
        {1 << 20, 1 << 24, 4096, 2, 2, -(1 << 24), 1 << 24},              {16, 24, 2, 16, 1, 32, 8},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(p, bad[i], 28);
        tu_write(path, p, n);
        snprintf(ctx, sizeof ctx, "llama2.c absurd header %zu", i);
        expect_load_fail(path, path, ctx);
    }
    /* the real checkpoint, cut at a few places */
    if (have_file(STORIES_BIN)) {
        size_t sn;
        uint8_t *s = tu_read(STORIES_BIN, &sn);
        size_t cuts[] = {27, 28, 29, 1000, sn / 3, sn / 2, sn - 4 * 4096 - 1, sn - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
            tu_write(path, s, cuts[i]);
            snprintf(ctx, sizeof ctx, "stories260K.bin cut at %zu", cuts[i]);
            expect_load_fail(path, path, ctx);
        }
        free(s);
    }
    free(p);
    free(path);
}

/* ---- tokenizers -------------------------------------------------------------------------------------- */
static void test_llama2c_tokenizer_truncated(void **state) {
    (void)state;
    if (!have_file(STORIES_TOK)) skip();
    size_t n;
    uint8_t *p = tu_read(STORIES_TOK, &n);
    char *path = tu_join(g_dir, "tok512.bin");
    char ctx[64];
    pare_vocab *v = NULL;
    for (size_t k = 0; k < n; k += (k < 64 ? 1 : 7)) {
        tu_write(path, p, k);
        clear_error();
        v = NULL;
        pare_status st = vocab_from_llama2c(path, 512, &v);
        if (!st) vocab_free(v);
        snprintf(ctx, sizeof ctx, "tok512.bin cut at %zu of %zu", k, n);
        expect_fail(st, path, ctx);
    }
    free(p);
    free(path);
}

/* protobuf: offsets of the top-level field boundaries (where a cut leaves a valid message) */
static bool pb_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64 && *off < n; s += 7) {
        uint8_t b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) return true;
    }
    return false;
}
static bool *pb_boundaries(const uint8_t *p, size_t n) {
    bool *b = calloc(n + 1, 1);
    assert_non_null(b);
    size_t off = 0;
    b[0] = true;
    while (off < n) {
        uint64_t tag, len;
        assert_true(pb_varint(p, n, &off, &tag));
        switch (tag & 7) {
        case 0: assert_true(pb_varint(p, n, &off, &len)); break;
        case 1: off += 8; break;
        case 2: assert_true(pb_varint(p, n, &off, &len)); off += len; break;
        case 5: off += 4; break;
        default: fail();
        }
        assert_true(off <= n);
        b[off] = true;
    }
    return b;
}

static void test_spm_model_truncated(void **state) {
    (void)state;
    const char *src = BROWN_DIR "/tokenizer.model";
    if (!have_file(src)) skip();
    size_t n;
    uint8_t *p = tu_read(src, &n);
    bool *ok_cut = pb_boundaries(p, n);
    char *path = tu_join(g_dir, "tokenizer.model");
    size_t *offs, no = cut_offsets(3000, n, 300, &offs);
    char ctx[64];
    int loaded = 0;
    for (size_t i = 0; i < no; i++) {
        size_t k = offs[i];
        tu_write(path, p, k);
        clear_error();
        pare_vocab *v = NULL;
        pare_status st = vocab_from_spm_model(path, &v);
        snprintf(ctx, sizeof ctx, "tokenizer.model cut at %zu of %zu", k, n);
        if (!st) {
            /* only a cut between top-level fields leaves a valid message, never an empty vocab */
            if (!ok_cut[k] || !v || v->n_tokens < 1) {
                fprintf(stderr, "%s: loaded (%d tokens)\n", ctx, v ? v->n_tokens : -1);
                fail();
            }
            loaded++;
            vocab_free(v);
            continue;
        }
        expect_fail(st, path, ctx);
    }
    free(offs);
    /* not a tokenizer.model at all */
    const char *junk[] = {"hello, world", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        tu_write(path, junk[i], strlen(junk[i]));
        clear_error();
        pare_vocab *v = NULL;
        pare_status st = vocab_from_spm_model(path, &v);
        if (!st) vocab_free(v);
        expect_fail(st, path, "junk tokenizer.model");
    }
    if (have_file(BROWN_GGUF)) {
        /* a GGUF file given as tokenizer.model */
        size_t gn;
        uint8_t *g = tu_read(BROWN_GGUF, &gn);
        tu_write(path, g, 70000);
        free(g);
        clear_error();
        pare_vocab *v = NULL;
        pare_status st = vocab_from_spm_model(path, &v);
        if (!st) vocab_free(v);
        expect_fail(st, path, "GGUF as tokenizer.model");
    }
    free(ok_cut);
    free(p);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_truncated),
        cmocka_unit_test(test_gguf_corrupt),
        cmocka_unit_test(test_gguf_bad_keys),
        cmocka_unit_test(test_safetensors_truncated),
        cmocka_unit_test(test_safetensors_corrupt),
        cmocka_unit_test(test_hf_config_mismatch),
        cmocka_unit_test(test_llama2c_bad),
        cmocka_unit_test(test_llama2c_tokenizer_truncated),
        cmocka_unit_test(test_spm_model_truncated),
    };
    return cmocka_run_group_tests(tests, tu_setup, tu_teardown);
}

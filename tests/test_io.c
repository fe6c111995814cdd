/* test_io.c - model file formats: GGUF, Hugging Face (config.json + safetensors), llama2.c.
 * The shared brown-4m model as GGUF and as a Hugging Face folder must hold the same tensors
 * bit for bit once q/k rows are permuted; stories260K as GGUF and as a llama2.c checkpoint
 * likewise; saves are deterministic; GGUF -> HF -> GGUF gives the bytes GGUF -> GGUF gives;
 * F16/BF16 safetensors load to the right values; per-layer head counts and FFN widths and
 * rope scaling survive both formats. Temporary files live in a mkdtemp folder under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "io_util.h"
#include "io/safetensors.h"

#include <math.h>

#define NEED_DATA(p) do { if (!have_file(p)) { fprintf(stderr, "skipped: %s not found\n", p); skip(); } } while (0)

/* ---- q/k permutation ---------------------------------------------------------------------- */
static void test_qk_permute(void **state) {
    (void)state;
    const int cases[][2] = {{1, 2}, {3, 8}, {6, 32}, {2, 128}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int nh = cases[c][0], hd = cases[c][1];
        size_t rb = 12, n = (size_t)nh * hd * rb;
        uint8_t *src = malloc(n), *g = malloc(n), *back = malloc(n);
        assert_non_null(src); assert_non_null(g); assert_non_null(back);
        for (size_t i = 0; i < n; i++) src[i] = (uint8_t)(tu_val((uint32_t)i) * 1000);
        qk_permute_to_gguf(g, src, nh, hd, rb);
        /* by the definition: gguf row h*hd + 2i + j = HF row h*hd + j*hd/2 + i */
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++)
                for (int j = 0; j < 2; j++)
                    assert_memory_equal(g + ((size_t)h * hd + 2 * i + j) * rb, src + ((size_t)h * hd + j * hd / 2 + i) * rb, rb);
        qk_permute_from_gguf(back, g, nh, hd, rb);
        assert_memory_equal(back, src, n);
        free(src); free(g); free(back);
    }
}

/* ---- brown-4m: GGUF and the Hugging Face folder ------------------------------------------ */
static void test_brown_gguf_equals_hf(void **state) {
    (void)state;
    NEED_DATA(BROWN_GGUF);
    pare_model *g = tu_load(BROWN_GGUF, NULL), *h = tu_load(BROWN_DIR, NULL);
    assert_int_equal(g->n_layer, 8);
    assert_int_equal(g->n_embd, 192);
    assert_int_equal(g->head_dim, 32);
    assert_int_equal(g->layers[3].n_head, 6);
    assert_int_equal(g->layers[3].n_head_kv, 2);
    assert_int_equal(g->layers[3].n_ff, 512);
    assert_false(g->tied);
    assert_string_equal(g->name, "brown-4m");
    assert_null(h->name);
    tu_hparams_equal(g, h);
    assert_int_equal(g->n_tensors, 75);
    assert_int_equal(h->n_tensors, 75);
    for (int i = 0; i < g->n_tensors; i++) tu_tensor_equal(&g->tensors[i], model_find_tensor(h, g->tensors[i].name));
    /* the q/k rows of the files themselves, independently of the loaders */
    pare_st *s = NULL;
    tu_ok(st_open(BROWN_DIR "/model.safetensors", &s));
    for (int l = 0; l < 8; l += 7) {
        char hn[96];
        snprintf(hn, sizeof hn, "model.layers.%d.self_attn.k_proj.weight", l);
        const st_tensor *k = st_find(s, hn);
        assert_non_null(k);
        const pare_tensor *gk = g->layers[l].wk;
        size_t rb = 192 * 4;
        for (int hh = 0; hh < 2; hh++)
            for (int i = 0; i < 16; i++)
                for (int j = 0; j < 2; j++)
                    assert_memory_equal((const uint8_t *)gk->data + (size_t)(hh * 32 + 2 * i + j) * rb,
                                        (const uint8_t *)k->data + (size_t)(hh * 32 + j * 16 + i) * rb, rb);
    }
    st_close(s);
    if (g->vocab && h->vocab) tu_vocab_equal(g->vocab, h->vocab);
    else fprintf(stderr, "note: vocab missing (gguf %p, hf %p)\n", (void *)g->vocab, (void *)h->vocab);
    pare_model_free(g);
    pare_model_free(h);
}

/* ---- stories260K: GGUF and llama2.c ------------------------------------------------------- */
static void test_stories_gguf_equals_llama2c(void **state) {
    (void)state;
    NEED_DATA(STORIES_BIN);
    pare_model *g = tu_load(STORIES_GGUF, NULL), *c = tu_load(STORIES_BIN, STORIES_TOK);
    assert_int_equal(c->n_layer, 5);
    assert_int_equal(c->n_embd, 64);
    assert_int_equal(c->n_vocab, 512);
    assert_int_equal(c->n_ctx_train, 512);
    assert_int_equal(c->head_dim, 8);
    assert_true(c->tied);
    assert_ptr_equal(c->output, c->tok_embd);
    assert_int_equal(g->n_ctx_train, 2048); /* the converter's default, not the checkpoint's */
    g->n_ctx_train = c->n_ctx_train;
    g->tied = true; /* the converter copied the shared classifier into output.weight */
    tu_hparams_equal(g, c);
    assert_int_equal(g->n_tensors, c->n_tensors + 1);
    for (int i = 0; i < c->n_tensors; i++) tu_tensor_equal(&c->tensors[i], model_find_tensor(g, c->tensors[i].name));
    const pare_tensor *go = model_find_tensor(g, "output.weight");
    assert_non_null(go);
    assert_int_equal(go->nbytes, c->tok_embd->nbytes);
    assert_memory_equal(go->data, c->tok_embd->data, go->nbytes);
    /* the tokenizers: the same pieces */
    assert_non_null(g->vocab);
    assert_non_null(c->vocab);
    assert_int_equal(g->vocab->n_tokens, c->vocab->n_tokens);
    int same = 0;
    for (int i = 0; i < g->vocab->n_tokens; i++) same += !strcmp(g->vocab->text[i], c->vocab->text[i]);
    if (same != g->vocab->n_tokens) fprintf(stderr, "note: %d of %d token texts equal\n", same, g->vocab->n_tokens);
    assert_true(same >= g->vocab->n_tokens - 3); /* at most <unk>, <s>, </s> spelled differently */
    pare_model_free(c);
    /* the tokenizer found beside the checkpoint (tok512.bin) */
    c = tu_load(STORIES_BIN, NULL);
    assert_non_null(c->vocab);
    assert_int_equal(c->vocab->n_tokens, 512);
    pare_model_free(c);
    pare_model_free(g);
}

/* ---- saving --------------------------------------------------------------------------------- */
static void test_gguf_save_stable(void **state) {
    (void)state;
    NEED_DATA(BROWN_GGUF);
    char *d = tu_tmpdir(), *a = tu_join(d, "a.gguf"), *b = tu_join(d, "b.gguf");
    pare_model *m = tu_load(BROWN_GGUF, NULL);
    tu_ok(pare_model_save(m, a, "gguf"));
    pare_model *m2 = tu_load(a, NULL);
    tu_models_equal(m, m2);
    assert_string_equal(m2->name, "brown-4m");
    tu_ok(pare_model_save(m2, b, "gguf"));
    assert_true(tu_same_file(a, b));
    /* the same model saved twice */
    tu_ok(pare_model_save(m, b, "gguf"));
    assert_true(tu_same_file(a, b));
    /* uniform layers: scalars, as llama.cpp writes them */
    pare_gguf *g;
    tu_ok(gguf_open(a, &g));
    assert_int_equal(gguf_find(g, "llama.attention.head_count")->type, GGUF_U32);
    assert_int_equal(gguf_find(g, "llama.feed_forward_length")->type, GGUF_U32);
    assert_null(gguf_find(g, "llama.attention.key_length"));
    assert_null(gguf_find_tensor(g, "rope_freqs.weight"));
    gguf_close(g);
    pare_model_free(m);
    pare_model_free(m2);
    free(a); free(b);
    tu_rmtree(d);
}

static void test_gguf_hf_gguf(void **state) {
    (void)state;
    NEED_DATA(BROWN_GGUF);
    char *d = tu_tmpdir(), *a = tu_join(d, "a.gguf"), *c = tu_join(d, "c.gguf"), *hf = tu_join(d, "hf");
    pare_model *m = tu_load(BROWN_GGUF, NULL);
    tu_ok(pare_model_save(m, a, "gguf"));
    tu_ok(pare_model_save(m, hf, "hf"));
    pare_model *h = tu_load(hf, NULL);
    tu_models_equal(m, h);
    tu_ok(pare_model_save(h, c, "gguf"));
    assert_true(tu_same_file(a, c));
    pare_model_free(m);
    pare_model_free(h);
    free(a); free(c); free(hf);
    tu_rmtree(d);
}

static void test_hf_roundtrip(void **state) {
    (void)state;
    NEED_DATA(BROWN_DIR "/model.safetensors");
    char *d = tu_tmpdir(), *h1 = tu_join(d, "h1"), *h2 = tu_join(d, "h2");
    pare_model *m = tu_load(BROWN_DIR, NULL);
    tu_ok(pare_model_save(m, h1, "hf"));
    pare_model *m1 = tu_load(h1, NULL);
    tu_models_equal(m, m1);
    /* the written safetensors hold the original HF tensors byte for byte */
    pare_st *s0 = NULL, *s1 = NULL;
    tu_ok(st_open(BROWN_DIR "/model.safetensors", &s0));
    char *p1 = tu_join(h1, "model.safetensors");
    tu_ok(st_open(p1, &s1));
    assert_int_equal(s0->n_tensors, s1->n_tensors);
    for (int i = 0; i < s0->n_tensors; i++) {
        const st_tensor *x = &s0->tensors[i], *y = st_find(s1, x->name);
        assert_non_null(y);
        assert_int_equal(x->n_dims, y->n_dims);
        assert_memory_equal(x->shape, y->shape, sizeof x->shape);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    st_close(s0);
    st_close(s1);
    tu_ok(pare_model_save(m1, h2, "hf"));
    char *p2 = tu_join(h2, "model.safetensors"), *c1 = tu_join(h1, "config.json"), *c2 = tu_join(h2, "config.json");
    assert_true(tu_same_file(p1, p2));
    assert_true(tu_same_file(c1, c2));
    pare_model_free(m);
    pare_model_free(m1);
    free(p1); free(p2); free(c1); free(c2); free(h1); free(h2);
    tu_rmtree(d);
}

/* ---- F16 / BF16 safetensors ------------------------------------------------------------------ */
static void half_copy(int type) {
    NEED_DATA(BROWN_DIR "/model.safetensors");
    char *d = tu_tmpdir(), *sp = tu_join(d, "model.safetensors"), *cp = tu_join(d, "config.json");
    pare_st *s = NULL;
    tu_ok(st_open(BROWN_DIR "/model.safetensors", &s));
    st_writer *w = st_writer_new();
    uint16_t **bufs = calloc((size_t)s->n_tensors, sizeof *bufs);
    for (int i = 0; i < s->n_tensors; i++) {
        const st_tensor *t = &s->tensors[i];
        assert_int_equal(t->type, PARE_TYPE_F32);
        size_t n = t->nbytes / 4;
        bufs[i] = malloc(n * 2 + 2);
        for (size_t k = 0; k < n; k++) {
            float f;
            memcpy(&f, (const uint8_t *)t->data + 4 * k, 4);
            bufs[i][k] = type == PARE_TYPE_F16 ? pare_f32_to_f16(f) : pare_f32_to_bf16(f);
        }
        tu_ok(st_w_tensor(w, t->name, type, t->n_dims, t->shape, bufs[i], n * 2));
    }
    tu_ok(st_writer_save(w, sp));
    st_writer_free(w);
    tu_copy(BROWN_DIR "/config.json", cp);
    pare_model *ref = tu_load(BROWN_DIR, NULL), *m = tu_load(d, NULL);
    assert_null(m->vocab); /* no tokenizer in the folder */
    tu_hparams_equal(ref, m);
    assert_int_equal(ref->n_tensors, m->n_tensors);
    for (int i = 0; i < ref->n_tensors; i++) {
        const pare_tensor *r = &ref->tensors[i], *t = model_find_tensor(m, r->name);
        assert_non_null(t);
        /* matrices keep their type; norms become f32 (model_bind wants f32 norms) */
        if (r->n_dims == 1) {
            assert_int_equal(t->type, PARE_TYPE_F32);
            assert_int_equal(t->nbytes, r->nbytes);
            for (size_t k = 0; k < r->nbytes / 4; k++) {
                float f, g;
                memcpy(&f, (const uint8_t *)r->data + 4 * k, 4);
                memcpy(&g, (const uint8_t *)t->data + 4 * k, 4);
                float want = type == PARE_TYPE_F16 ? pare_f16_to_f32(pare_f32_to_f16(f)) : pare_bf16_to_f32(pare_f32_to_bf16(f));
                assert_memory_equal(&g, &want, 4);
            }
            continue;
        }
        assert_int_equal(t->type, type);
        assert_int_equal(t->nbytes * 2, r->nbytes);
        const uint16_t *h = t->data;
        for (size_t k = 0; k < r->nbytes / 4; k++) {
            float f;
            memcpy(&f, (const uint8_t *)r->data + 4 * k, 4);
            uint16_t want = type == PARE_TYPE_F16 ? pare_f32_to_f16(f) : pare_f32_to_bf16(f);
            if (h[k] != want) { fprintf(stderr, "%s[%zu]: %04x, want %04x\n", r->name, k, h[k], want); fail(); }
        }
        /* and the values read back */
        float got = type == PARE_TYPE_F16 ? pare_f16_to_f32(h[0]) : pare_bf16_to_f32(h[0]), f0;
        memcpy(&f0, r->data, 4);
        assert_true(fabsf(got - f0) <= (type == PARE_TYPE_F16 ? 1e-3f : 1e-2f) * fabsf(f0) + 1e-6f);
    }
    pare_model_free(ref);
    pare_model_free(m);
    for (int i = 0; i < s->n_tensors; i++) free(bufs[i]);
    free(bufs);
    st_close(s);
    free(sp); free(cp);
    tu_rmtree(d);
}

static void test_f16_safetensors(void **state) { (void)state; half_copy(PARE_TYPE_F16); }
static void test_bf16_safetensors(void **state) { (void)state; half_copy(PARE_TYPE_BF16); }

/* ---- per-layer widths ------------------------------------------------------------------------ */
/* copy rows [0, rows) of each of the first `cols` columns of a 2-D f32 tensor [ne0, ne1] */
static void add_slice(pare_model *m, const pare_tensor *t, int64_t cols, int64_t rows) {
    assert_int_equal(t->type, PARE_TYPE_F32);
    size_t n = (size_t)cols * (size_t)(t->n_dims == 2 ? rows : 1);
    float *d = malloc(n * sizeof(float) + 4);
    assert_non_null(d);
    for (int64_t r = 0; r < (t->n_dims == 2 ? rows : 1); r++)
        memcpy(d + r * cols, (const float *)t->data + r * t->ne[0], (size_t)cols * sizeof(float));
    int64_t ne[2] = {cols, rows};
    assert_non_null(model_add_tensor(m, t->name, PARE_TYPE_F32, t->n_dims, ne, d, n * sizeof(float), 1));
}

/* brown-4m with different head counts and FFN widths per layer (slices of its tensors) */
static pare_model *sliced_model(pare_model *src) {
    static const int spec[8][3] = {{4, 2, 384}, {6, 2, 512}, {3, 1, 256}, {2, 1, 500},
                                   {6, 2, 512}, {1, 1, 128}, {5, 1, 300}, {2, 2, 64}};
    int L = src->n_layer, E = src->n_embd, hd = src->head_dim;
    pare_model *m = model_new(L, src->n_tensors);
    assert_non_null(m);
    m->path = strdup("sliced");
    m->name = strdup("brown-4m-sliced");
    m->n_embd = E; m->n_vocab = src->n_vocab; m->n_ctx_train = src->n_ctx_train; m->head_dim = hd;
    m->norm_eps = src->norm_eps; m->rope_base = src->rope_base;
    m->vocab = src->vocab;
    src->vocab = NULL;
    add_slice(m, src->tok_embd, E, src->n_vocab);
    for (int l = 0; l < L; l++) {
        const pare_layer *s = &src->layers[l];
        pare_layer *d = &m->layers[l];
        d->n_head = spec[l][0]; d->n_head_kv = spec[l][1]; d->n_ff = spec[l][2];
        add_slice(m, s->attn_norm, E, 1);
        add_slice(m, s->wq, E, d->n_head * hd);
        add_slice(m, s->wk, E, d->n_head_kv * hd);
        add_slice(m, s->wv, E, d->n_head_kv * hd);
        add_slice(m, s->wo, d->n_head * hd, E);
        add_slice(m, s->ffn_norm, E, 1);
        add_slice(m, s->w_gate, E, d->n_ff);
        add_slice(m, s->w_up, E, d->n_ff);
        add_slice(m, s->w_down, d->n_ff, E);
    }
    add_slice(m, src->out_norm, E, 1);
    add_slice(m, src->output, E, src->n_vocab);
    tu_ok(model_bind(m));
    return m;
}

static void test_per_layer_widths(void **state) {
    (void)state;
    NEED_DATA(BROWN_GGUF);
    char *d = tu_tmpdir(), *a = tu_join(d, "a.gguf"), *c = tu_join(d, "c.gguf"), *hf = tu_join(d, "hf"),
         *h2 = tu_join(d, "h2");
    pare_model *src = tu_load(BROWN_GGUF, NULL);
    pare_model *m = sliced_model(src);
    pare_model_free(src);
    tu_ok(pare_model_save(m, a, "gguf"));
    /* per-layer arrays, as llama.cpp reads them; key_length since layer 0 has 4 heads */
    pare_gguf *g;
    tu_ok(gguf_open(a, &g));
    const char *keys[3] = {"llama.attention.head_count", "llama.attention.head_count_kv", "llama.feed_forward_length"};
    for (int k = 0; k < 3; k++) {
        const gguf_kv *kv = gguf_find(g, keys[k]);
        assert_non_null(kv);
        assert_int_equal(kv->type, GGUF_ARR);
        assert_int_equal(kv->arr_type, GGUF_I32);
        assert_int_equal(kv->n, 8);
    }
    double v;
    assert_true(gguf_arr_f64(gguf_find(g, "llama.feed_forward_length"), 3, &v));
    assert_true(v == 500);
    uint32_t kl;
    assert_true(gguf_get_u32(g, "llama.attention.key_length", &kl));
    assert_int_equal(kl, 32);
    gguf_close(g);
    pare_model *mg = tu_load(a, NULL);
    tu_models_equal(m, mg);
    /* Hugging Face: extension keys */
    tu_ok(pare_model_save(m, hf, "hf"));
    char *cj = tu_join(hf, "config.json");
    size_t n;
    char *text = (char *)tu_read(cj, &n);
    assert_non_null(strstr(text, "\"pare_num_attention_heads_per_layer\": [4, 6, 3, 2, 6, 1, 5, 2]"));
    assert_non_null(strstr(text, "\"pare_num_key_value_heads_per_layer\": [2, 2, 1, 1, 2, 1, 1, 2]"));
    assert_non_null(strstr(text, "\"pare_intermediate_size_per_layer\": [384, 512, 256, 500, 512, 128, 300, 64]"));
    assert_non_null(strstr(text, "\"head_dim\": 32"));
    free(text);
    free(cj);
    pare_model *mh = tu_load(hf, NULL);
    tu_models_equal(m, mh);
    tu_ok(pare_model_save(mh, c, "gguf"));
    assert_true(tu_same_file(a, c));
    tu_ok(pare_model_save(mg, h2, "hf"));
    char *s1 = tu_join(hf, "model.safetensors"), *s2 = tu_join(h2, "model.safetensors");
    assert_true(tu_same_file(s1, s2));
    pare_model_free(m);
    pare_model_free(mg);
    pare_model_free(mh);
    free(s1); free(s2);
    free(a); free(c); free(hf); free(h2);
    tu_rmtree(d);
}

/* ---- rope scaling --------------------------------------------------------------------------- */
static void rope_roundtrip(int kind) {
    char *d = tu_tmpdir(), *a = tu_join(d, "a.gguf"), *c = tu_join(d, "c.gguf"), *hf = tu_join(d, "hf");
    pare_model *m = tu_tiny_model();
    m->rope_scaling = kind;
    m->rope_factor = kind == PARE_ROPE_SCALING_LLAMA3 ? 8 : 2.5f;
    if (kind == PARE_ROPE_SCALING_LLAMA3) { m->rope_low_freq = 1; m->rope_high_freq = 4; m->rope_orig_ctx = 64; }
    m->tied = true; /* write no output.weight either */
    m->output = m->tok_embd;
    tu_ok(pare_model_save(m, a, "gguf"));
    pare_gguf *g;
    tu_ok(gguf_open(a, &g));
    assert_null(gguf_find_tensor(g, "output.weight"));
    if (kind == PARE_ROPE_SCALING_LLAMA3) {
        /* llama.cpp's rope_freqs.weight, no rope.scaling.type/factor (llama.cpp would misread them) */
        const gguf_tinfo *t = gguf_find_tensor(g, "rope_freqs.weight");
        assert_non_null(t);
        assert_int_equal(t->ne[0], 4);
        assert_null(gguf_find(g, "llama.rope.scaling.type"));
        assert_null(gguf_find(g, "llama.rope.scaling.factor"));
        float f0, f3;
        memcpy(&f0, t->data, 4);
        memcpy(&f3, (const float *)t->data + 3, 4);
        assert_true(f0 == 1.0f); /* highest frequency kept */
        assert_true(f3 > 1.0f);
    } else {
        assert_string_equal(gguf_get_str(g, "llama.rope.scaling.type"), "linear");
    }
    gguf_close(g);
    pare_model *mg = tu_load(a, NULL);
    assert_true(mg->tied);
    assert_int_equal(mg->n_tensors, m->n_tensors - 1);
    tu_hparams_equal(m, mg);
    tu_ok(pare_model_save(mg, hf, "hf"));
    pare_model *mh = tu_load(hf, NULL);
    tu_hparams_equal(m, mh);
    tu_ok(pare_model_save(mh, c, "gguf"));
    assert_true(tu_same_file(a, c));
    pare_model_free(m);
    pare_model_free(mg);
    pare_model_free(mh);
    free(a); free(c); free(hf);
    tu_rmtree(d);
}
static void test_rope_llama3_roundtrip(void **state) { (void)state; rope_roundtrip(PARE_ROPE_SCALING_LLAMA3); }
static void test_rope_linear_roundtrip(void **state) { (void)state; rope_roundtrip(PARE_ROPE_SCALING_LINEAR); }

/* a Llama 3 GGUF as llama.cpp's converter writes it: rope_freqs.weight, no pare keys */
static float g_rf[4];
static uint32_t g_orig;
static void llamacpp_factors(double factor, double lo, double hi, double old) {
    for (int i = 0; i < 4; i++) {
        float freq = (float)(1.0 / pow(10000.0, (double)(2 * i) / 8)); /* float32, as torch */
        double wl = 2 * M_PI / freq, f;
        if (wl < old / hi) f = 1;
        else if (wl > old / lo) f = factor;
        else {
            double smooth = (old / wl - lo) / (hi - lo);
            f = 1 / ((1 - smooth) / factor + smooth);
        }
        g_rf[i] = (float)f;
    }
}
static void tw_rope_freqs(gguf_writer *w) {
    int64_t ne[1] = {4};
    gguf_w_tensor(w, "rope_freqs.weight", PARE_TYPE_F32, 1, ne, g_rf, sizeof g_rf);
    if (g_orig) gguf_w_u32(w, "llama.rope.scaling.original_context_length", g_orig);
}

static void test_rope_freqs_from_llamacpp(void **state) {
    (void)state;
    char *d = tu_tmpdir(), *a = tu_join(d, "a.gguf"), *b = tu_join(d, "b.gguf");
    const uint32_t origs[2] = {64, 0}; /* 64: the last factor is the full one; 8192: it is smoothed */
    for (int k = 0; k < 2; k++) {
        g_orig = origs[k];
        llamacpp_factors(8, 1, 4, g_orig ? g_orig : 8192);
        tu_write_tiny_gguf(a, tw_rope_freqs);
        pare_model *m = tu_load(a, NULL);
        assert_int_equal(m->rope_scaling, PARE_ROPE_SCALING_LLAMA3);
        assert_true(fabsf(m->rope_factor - 8) < 1e-4f);
        assert_true(m->rope_low_freq == 1 && m->rope_high_freq == 4);
        assert_int_equal(m->rope_orig_ctx, g_orig ? (int)g_orig : 8192);
        assert_null(model_find_tensor(m, "rope_freqs.weight"));
        tu_ok(pare_model_save(m, b, "gguf"));
        pare_gguf *g;
        tu_ok(gguf_open(b, &g));
        const gguf_tinfo *t = gguf_find_tensor(g, "rope_freqs.weight");
        assert_non_null(t);
        for (int i = 0; i < 4; i++) {
            float v;
            memcpy(&v, (const float *)t->data + i, 4);
            assert_true(fabsf(v - g_rf[i]) <= 1e-5f * g_rf[i]);
        }
        assert_non_null(gguf_find(g, "llama.rope.scaling.llama3_factor"));
        gguf_close(g);
        pare_model_free(m);
    }
    free(a); free(b);
    tu_rmtree(d);
}

/* ---- sharded safetensors ------------------------------------------------------------------ */
static void test_sharded_safetensors(void **state) {
    (void)state;
    char *d = tu_tmpdir(), *hf = tu_join(d, "hf"), *sh = tu_join(d, "sh");
    pare_model *m = tu_tiny_model();
    tu_ok(pare_model_save(m, hf, "hf"));
    /* split the single file in two shards by tensor name and write the index */
    char *one = tu_join(hf, "model.safetensors");
    pare_st *s = NULL;
    tu_ok(st_open(one, &s));
    assert_int_equal(mkdir(sh, 0755), 0);
    st_writer *w1 = st_writer_new(), *w2 = st_writer_new();
    char idx[8192];
    size_t k = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < s->n_tensors; i++) {
        const st_tensor *t = &s->tensors[i];
        bool first = strstr(t->name, "layers.0.") || strstr(t->name, "embed");
        tu_ok(st_w_tensor(first ? w1 : w2, t->name, t->type, t->n_dims, t->shape, t->data, t->nbytes));
        k += (size_t)snprintf(idx + k, sizeof idx - k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                              t->name, first ? 1 : 2);
    }
    snprintf(idx + k, sizeof idx - k, "}}");
    char *f1 = tu_join(sh, "model-00001-of-00002.safetensors"), *f2 = tu_join(sh, "model-00002-of-00002.safetensors");
    char *ip = tu_join(sh, "model.safetensors.index.json"), *cp = tu_join(sh, "config.json"), *cp0 = tu_join(hf, "config.json");
    tu_ok(st_writer_save(w1, f1));
    tu_ok(st_writer_save(w2, f2));
    st_writer_free(w1);
    st_writer_free(w2);
    tu_write(ip, idx, strlen(idx));
    tu_copy(cp0, cp);
    pare_model *ms = tu_load(sh, NULL);
    tu_models_equal(m, ms);
    pare_model_free(ms);
    st_close(s);
    pare_model_free(m);
    free(one); free(f1); free(f2); free(ip); free(cp); free(cp0); free(hf); free(sh);
    tu_rmtree(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qk_permute),
        cmocka_unit_test(test_brown_gguf_equals_hf),
        cmocka_unit_test(test_stories_gguf_equals_llama2c),
        cmocka_unit_test(test_gguf_save_stable),
        cmocka_unit_test(test_gguf_hf_gguf),
        cmocka_unit_test(test_hf_roundtrip),
        cmocka_unit_test(test_f16_safetensors),
        cmocka_unit_test(test_bf16_safetensors),
        cmocka_unit_test(test_per_layer_widths),
        cmocka_unit_test(test_rope_llama3_roundtrip),
        cmocka_unit_test(test_rope_linear_roundtrip),
        cmocka_unit_test(test_rope_freqs_from_llamacpp),
        cmocka_unit_test(test_sharded_safetensors),
    };
    return cmocka_run_group_tests(tests, tu_setup, tu_teardown);
}

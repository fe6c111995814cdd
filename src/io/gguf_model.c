/* gguf_model.c - a LLaMA model from and to a GGUF file (architecture "llama", as llama.cpp
 * reads and writes it). See docs/FORMATS.md for the keys. */
#include "io/gguf.h"
#include "model/model.h"
#include "tok/vocab.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 4096
#define MAX_EMBD (1 << 20)
#define MAX_HEADS (1 << 16)
#define MAX_FF (1 << 24)

/* llama.cpp has no keys for Llama 3 rope scaling (its converter writes a rope_freqs.weight
 * tensor instead); pare writes that tensor and these keys, which llama.cpp ignores. */
#define KEY_L3_FACTOR "llama.rope.scaling.llama3_factor"
#define KEY_L3_LOW "llama.rope.scaling.llama3_low_freq_factor"
#define KEY_L3_HIGH "llama.rope.scaling.llama3_high_freq_factor"
#define KEY_ORIG_CTX "llama.rope.scaling.original_context_length"

static void gguf_close_v(void *p) { gguf_close(p); }

/* A string from the file, printable on one line. */
static void printable(char *dst, size_t cap, const char *s) {
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++) dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[i] = 0;
}

/* A per-layer integer: a scalar for every layer, or an array of n_layer numbers. */
static pare_status layer_ints(const pare_gguf *g, const char *key, int n_layer, bool required, const int *def, int lo,
                              int hi, int *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) {
        if (required) return pare_fail(PARE_ERR_FORMAT, "%s: missing key '%s'", g->path, key);
        for (int i = 0; i < n_layer; i++) out[i] = def[i];
        return PARE_OK;
    }
    if (kv->type == GGUF_ARR) {
        if (kv->arr_type == GGUF_STR || kv->arr_type == GGUF_ARR)
            return pare_fail(PARE_ERR_FORMAT, "%s: '%s' is not a numeric array", g->path, key);
        if (kv->n != (uint64_t)n_layer)
            return pare_fail(PARE_ERR_FORMAT, "%s: '%s' has %llu elements, block_count is %d", g->path, key,
                             (unsigned long long)kv->n, n_layer);
        for (int i = 0; i < n_layer; i++) {
            double d;
            if (!gguf_arr_f64(kv, (uint64_t)i, &d) || d != floor(d) || d < lo || d > hi)
                return pare_fail(PARE_ERR_FORMAT, "%s: '%s' element %d is not an integer in [%d, %d]", g->path, key, i,
                                 lo, hi);
            out[i] = (int)d;
        }
        return PARE_OK;
    }
    int32_t v;
    if (!gguf_get_i32(g, key, &v) || v < lo || v > hi)
        return pare_fail(PARE_ERR_FORMAT, "%s: '%s' is not an integer in [%d, %d]", g->path, key, lo, hi);
    for (int i = 0; i < n_layer; i++) out[i] = v;
    return PARE_OK;
}

static pare_status get_uint(const pare_gguf *g, const char *key, bool required, uint32_t def, uint32_t lo, uint32_t hi,
                            uint32_t *out) {
    if (!gguf_find(g, key)) {
        if (required) return pare_fail(PARE_ERR_FORMAT, "%s: missing key '%s'", g->path, key);
        *out = def;
        return PARE_OK;
    }
    if (!gguf_get_u32(g, key, out) || *out < lo || *out > hi)
        return pare_fail(PARE_ERR_FORMAT, "%s: '%s' is not an integer in [%u, %u]", g->path, key, lo, hi);
    return PARE_OK;
}

static pare_status get_float(const pare_gguf *g, const char *key, float def, float lo, float hi, float *out) {
    if (!gguf_find(g, key)) { *out = def; return PARE_OK; }
    if (!gguf_get_f32(g, key, out) || !(*out >= lo && *out <= hi))
        return pare_fail(PARE_ERR_FORMAT, "%s: '%s' is not a number in [%g, %g]", g->path, key, lo, hi);
    return PARE_OK;
}

/* The per-frequency factors of Llama 3 rope scaling, as llama.cpp's converter computes them
 * into rope_freqs.weight (hd/2 values). */
static void llama3_factors(const pare_model *m, float *out) {
    int hd = m->head_dim;
    double factor = m->rope_factor, lo = m->rope_low_freq, hi = m->rope_high_freq, old = m->rope_orig_ctx;
    double low_wl = old / lo, high_wl = old / hi;
    for (int i = 0; i < hd / 2; i++) {
        float freq = (float)(1.0 / pow(m->rope_base, (double)(2 * i) / hd));
        double wl = 2 * M_PI / freq;
        double f;
        if (wl < high_wl) f = 1;
        else if (wl > low_wl) f = factor;
        else {
            double smooth = (old / wl - lo) / (hi - lo);
            f = 1 / ((1 - smooth) / factor + smooth);
        }
        out[i] = (float)f;
    }
}

/* A rope_freqs.weight from llama.cpp's converter without pare's keys: recover the Llama 3
 * parameters (low 1 and high 4 as published, the original context from
 * rope.scaling.original_context_length or 8192) and check every factor. */
static pare_status llama3_from_tensor(pare_model *m, const pare_gguf *g, const gguf_tinfo *t) {
    int n = m->head_dim / 2;
    if (t->type != PARE_TYPE_F32 || t->n_dims != 1 || t->ne[0] != n)
        return pare_fail(PARE_ERR_FORMAT, "%s: rope_freqs.weight is not f32 [%d]", g->path, n);
    uint32_t orig = 8192;
    if (gguf_find(g, KEY_ORIG_CTX) && (!gguf_get_u32(g, KEY_ORIG_CTX, &orig) || orig == 0 || orig > INT32_MAX))
        return pare_fail(PARE_ERR_FORMAT, "%s: bad %s", g->path, KEY_ORIG_CTX);
    const double lo = 1, hi = 4;
    /* the factor, from the lowest frequency: scaled fully, or partly (smooth region) */
    float last;
    memcpy(&last, (const float *)t->data + (n - 1), sizeof last);
    double wl = 2 * M_PI / (float)(1.0 / pow(m->rope_base, (double)(2 * (n - 1)) / m->head_dim));
    double factor = last;
    if (wl >= orig / hi && wl <= orig / lo) {
        double smooth = (orig / wl - lo) / (hi - lo);
        factor = (1 - smooth) / (1 / (double)last - smooth);
    } else if (wl < orig / hi) {
        factor = 1; /* no frequency is scaled: the factors must all be 1 */
    }
    m->rope_scaling = PARE_ROPE_SCALING_LLAMA3;
    m->rope_factor = (float)factor;
    m->rope_low_freq = (float)lo;
    m->rope_high_freq = (float)hi;
    m->rope_orig_ctx = (int)orig;
    bool ok = factor >= 1 && factor < 1e6;
    float *want = ok ? pare_malloc((size_t)n * sizeof(float)) : NULL;
    if (ok && !want) return PARE_ERR_NOMEM;
    if (ok) llama3_factors(m, want);
    for (int i = 0; ok && i < n; i++) {
        float v;
        memcpy(&v, (const float *)t->data + i, sizeof v);
        ok = fabsf(v - want[i]) <= 1e-4f * fabsf(want[i]);
    }
    free(want);
    if (!ok)
        return pare_fail(PARE_ERR_UNSUPPORTED,
                         "%s: rope_freqs.weight is not Llama 3 rope scaling (low 1, high 4, original context %u)", g->path,
                         orig);
    if (factor == 1) m->rope_scaling = PARE_ROPE_SCALING_NONE;
    return PARE_OK;
}

static pare_status rope_scaling(pare_model *m, const pare_gguf *g) {
    pare_status st;
    const char *type = gguf_get_str(g, "llama.rope.scaling.type");
    bool l3 = gguf_find(g, KEY_L3_FACTOR) != NULL || (type && !strcmp(type, "llama3"));
    if (l3) {
        uint32_t orig;
        m->rope_scaling = PARE_ROPE_SCALING_LLAMA3;
        if ((st = get_float(g, gguf_find(g, KEY_L3_FACTOR) ? KEY_L3_FACTOR : "llama.rope.scaling.factor", 8, 1, 1e6f,
                            &m->rope_factor)) ||
            (st = get_float(g, KEY_L3_LOW, 1, 1e-6f, 1e6f, &m->rope_low_freq)) ||
            (st = get_float(g, KEY_L3_HIGH, 4, 1e-6f, 1e6f, &m->rope_high_freq)) ||
            (st = get_uint(g, KEY_ORIG_CTX, false, 8192, 1, INT32_MAX, &orig)))
            return st;
        if (!(m->rope_high_freq > m->rope_low_freq))
            return pare_fail(PARE_ERR_FORMAT, "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor", g->path);
        m->rope_orig_ctx = (int)orig;
        return PARE_OK;
    }
    if (type && strcmp(type, "none") && strcmp(type, "linear")) {
        char t[64];
        printable(t, sizeof t, type);
        return pare_fail(PARE_ERR_UNSUPPORTED, "%s: rope scaling type '%s' not supported (none, linear, llama3 are)",
                         g->path, t);
    }
    if (type && !strcmp(type, "none")) return PARE_OK;
    /* llama.cpp applies rope.scaling.factor (or the old rope.scale_linear) as linear scaling */
    float f = 0;
    if ((st = get_float(g, gguf_find(g, "llama.rope.scaling.factor") ? "llama.rope.scaling.factor" : "llama.rope.scale_linear",
                        0, 0, 1e6f, &f)))
        return st;
    if (f != 0 && f != 1) {
        m->rope_scaling = PARE_ROPE_SCALING_LINEAR;
        m->rope_factor = f;
    }
    return PARE_OK;
}

/* pare.blk.L.perm_{attn,o,ffn}: int32 arrays of the input width, each a permutation. */
static pare_status load_perms(const pare_gguf *g, pare_model *m) {
    for (int l = 0; l < m->n_layer; l++) {
        pare_layer *ly = &m->layers[l];
        int32_t **slot[3] = {&ly->perm_attn, &ly->perm_o, &ly->perm_ffn};
        const int64_t width[3] = {m->n_embd, (int64_t)ly->n_head * m->head_dim, m->n_embd};
        for (int k = 0; k < 3; k++) {
            char key[64];
            snprintf(key, sizeof key, "pare.blk.%d.perm_%s", l, k == 0 ? "attn" : k == 1 ? "o" : "ffn");
            const gguf_kv *kv = gguf_find(g, key);
            if (!kv) continue;
            if (kv->type != GGUF_ARR || kv->arr_type != GGUF_I32 || kv->n != (uint64_t)width[k])
                return pare_fail(PARE_ERR_FORMAT, "%s: '%s' is not an int32 array of %lld channels", g->path, key,
                                 (long long)width[k]);
            int32_t *p = pare_malloc((size_t)width[k] * sizeof(int32_t));
            uint8_t *seen = pare_calloc((size_t)width[k] + 1, 1);
            if (!p || !seen) { free(p); free(seen); return PARE_ERR_NOMEM; }
            memcpy(p, kv->data, (size_t)width[k] * sizeof(int32_t));
            for (int64_t i = 0; i < width[k]; i++) {
                if (p[i] < 0 || p[i] >= width[k] || seen[p[i]]) {
                    free(p); free(seen);
                    return pare_fail(PARE_ERR_FORMAT, "%s: '%s' is not a permutation of 0..%lld", g->path, key,
                                     (long long)width[k] - 1);
                }
                seen[p[i]] = 1;
            }
            free(seen);
            free(*slot[k]);
            *slot[k] = p;
        }
    }
    return PARE_OK;
}

/* early exits (model.h): pare.exit.first / pare.exit.last, pare.lora.scale */
static pare_status load_exits(const pare_gguf *g, pare_model *m) {
    const gguf_kv *kf = gguf_find(g, "pare.exit.first"), *kl = gguf_find(g, "pare.exit.last");
    if (!kf && !kl) return PARE_OK;
    if (!kf || !kl || kf->type != GGUF_ARR || kl->type != GGUF_ARR || kf->arr_type != GGUF_I32 ||
        kl->arr_type != GGUF_I32 || kf->n != kl->n || kf->n < 1 || kf->n > (uint64_t)m->n_layer)
        return pare_fail(PARE_ERR_FORMAT, "%s: pare.exit.first / pare.exit.last are not int32 arrays of one length", g->path);
    float scale;
    const gguf_kv *ks = gguf_find(g, "pare.lora.scale");
    if (!ks) return pare_fail(PARE_ERR_FORMAT, "%s: early exits without pare.lora.scale", g->path);
    pare_status st = get_float(g, "pare.lora.scale", 1, 1e-30f, 1e30f, &scale);
    if (st) return st;
    int n = (int)kf->n;
    int *fl = pare_malloc(2 * (size_t)n * sizeof(int));
    if (!fl) return PARE_ERR_NOMEM;
    memcpy(fl, kf->data, (size_t)n * sizeof(int32_t));
    memcpy(fl + n, kl->data, (size_t)n * sizeof(int32_t));
    st = model_setup_exits(m, n, fl, fl + n, scale);
    free(fl);
    return st;
}

pare_status model_load_gguf(const char *path, pare_model **out) {
    *out = NULL;
    pare_gguf *g = NULL;
    pare_status st = gguf_open(path, &g);
    if (st) return st;
    const char *arch = gguf_get_str(g, "general.architecture");
    if (!arch) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: no general.architecture key", path);
        gguf_close(g);
        return st;
    }
    if (strcmp(arch, "llama")) {
        char a[64];
        printable(a, sizeof a, arch);
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: unknown architecture '%s'", path, a);
        gguf_close(g);
        return st;
    }
    uint32_t n_layer, n_embd, ctx;
    if ((st = get_uint(g, "llama.block_count", true, 0, 1, MAX_LAYERS, &n_layer)) ||
        (st = get_uint(g, "llama.embedding_length", true, 0, 1, MAX_EMBD, &n_embd)) ||
        (st = get_uint(g, "llama.context_length", false, 2048, 0, INT32_MAX, &ctx))) {
        gguf_close(g);
        return st;
    }
    if (g->n_tensors > INT32_MAX / 2 || n_layer > g->n_tensors) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: llama.block_count %u but %llu tensors", path, n_layer,
                       (unsigned long long)g->n_tensors);
        gguf_close(g);
        return st;
    }
    pare_model *m = model_new((int)n_layer, (int)g->n_tensors);
    int *tmp = pare_calloc(3 * (size_t)n_layer, sizeof(int));
    if (!m || !tmp) {
        free(tmp);
        if (m) pare_model_free(m);
        gguf_close(g);
        return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
    }
    m->owner = g;
    m->owner_free = gguf_close_v;
    if (!(m->path = pare_strdup(path))) { st = PARE_ERR_NOMEM; goto fail; }
    m->n_embd = (int)n_embd;
    m->n_ctx_train = (int)ctx;
    int *nh = tmp, *nkv = tmp + n_layer, *nff = tmp + 2 * n_layer;
    if ((st = layer_ints(g, "llama.attention.head_count", (int)n_layer, true, NULL, 0, MAX_HEADS, nh)) ||
        (st = layer_ints(g, "llama.attention.head_count_kv", (int)n_layer, false, nh, 0, MAX_HEADS, nkv)) ||
        (st = layer_ints(g, "llama.feed_forward_length", (int)n_layer, true, NULL, 0, MAX_FF, nff)))
        goto fail;
    for (uint32_t i = 0; i < n_layer; i++) {
        m->layers[i].n_head = nh[i];
        m->layers[i].n_head_kv = nkv[i];
        m->layers[i].n_ff = nff[i];
    }
    /* head dimension: attention.key_length, else n_embd / head_count of layer 0 */
    uint32_t kl, vl, rot;
    if (gguf_find(g, "llama.attention.key_length")) {
        if ((st = get_uint(g, "llama.attention.key_length", true, 0, 2, MAX_HEADS, &kl))) goto fail;
        if ((st = get_uint(g, "llama.attention.value_length", false, kl, 1, MAX_HEADS, &vl))) goto fail;
        if (vl != kl) {
            st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: key_length %u != value_length %u not supported", path, kl, vl);
            goto fail;
        }
        m->head_dim = (int)kl;
    } else {
        if (nh[0] <= 0 || n_embd % (uint32_t)nh[0]) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: cannot derive the head dimension (embedding %u, %d heads, no key_length)",
                           path, n_embd, nh[0]);
            goto fail;
        }
        m->head_dim = (int)n_embd / nh[0];
    }
    if ((st = get_uint(g, "llama.rope.dimension_count", false, (uint32_t)m->head_dim, 0, MAX_HEADS, &rot))) goto fail;
    if (rot != (uint32_t)m->head_dim) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: partial rotary embedding (rope.dimension_count %u, head dimension %d)",
                       path, rot, m->head_dim);
        goto fail;
    }
    if ((st = get_float(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f, 0, 1, &m->norm_eps)) ||
        (st = get_float(g, "llama.rope.freq_base", 10000.0f, 1e-6f, 1e30f, &m->rope_base)) ||
        (st = rope_scaling(m, g)))
        goto fail;
    const char *name = gguf_get_str(g, "general.name");
    if (name && !(m->name = pare_strdup(name))) { st = PARE_ERR_NOMEM; goto fail; }

    const gguf_tinfo *rope_freqs = NULL;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tinfo *t = &g->tensors[i];
        if (!strcmp(t->name, "rope_freqs.weight")) { rope_freqs = t; continue; }
        if (!model_add_tensor(m, t->name, t->type, t->n_dims, t->ne, (void *)t->data, t->nbytes, 0)) {
            st = PARE_ERR_NOMEM;
            goto fail;
        }
    }
    if (rope_freqs && m->rope_scaling == PARE_ROPE_SCALING_LINEAR) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: rope_freqs.weight together with linear rope scaling", path);
        goto fail;
    }
    if (rope_freqs && m->rope_scaling == PARE_ROPE_SCALING_NONE && (st = llama3_from_tensor(m, g, rope_freqs))) goto fail;

    const pare_tensor *te = model_find_tensor(m, "token_embd.weight");
    if (!te) { st = pare_fail(PARE_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", path); goto fail; }
    if (te->n_dims != 2 || te->ne[1] < 1 || te->ne[1] > INT32_MAX) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: tensor 'token_embd.weight' is not a [n_embd, n_vocab] matrix", path);
        goto fail;
    }
    m->n_vocab = (int)te->ne[1];
    if ((st = model_bind(m))) goto fail;
    if ((st = load_perms(g, m))) goto fail;
    if ((st = load_exits(g, m))) goto fail;
    if (gguf_find(g, "tokenizer.ggml.model") || gguf_find(g, "tokenizer.ggml.tokens")) {
        if ((st = vocab_from_gguf(g, &m->vocab))) goto fail;
        if (m->vocab->n_tokens > m->n_vocab) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: the vocabulary has %d tokens, token_embd.weight only %d rows", path,
                           m->vocab->n_tokens, m->n_vocab);
            goto fail;
        }
    }
    free(tmp);
    *out = m;
    return PARE_OK;
fail:
    free(tmp);
    pare_model_free(m);
    return st;
}

/* ---- writer ----------------------------------------------------------------------------- */
static int ftype_of(int type) {
    switch (type) {
    case PARE_TYPE_F32: return 0;
    case PARE_TYPE_F16: return 1;
    case PARE_TYPE_Q4_0: return 2;
    case PARE_TYPE_Q4_1: return 3;
    case PARE_TYPE_Q8_0: return 7;
    case PARE_TYPE_Q5_0: return 8;
    case PARE_TYPE_Q5_1: return 9;
    case PARE_TYPE_BF16: return 32;
    default: return 0;
    }
}

static pare_status check_tensor(const pare_tensor *t, const char *path) {
    size_t rb = pare_row_bytes(t->type, t->ne[0]), nb = rb;
    if (!pare_type_known(t->type) || t->n_dims < 1 || t->n_dims > 4 || (t->ne[0] > 0 && rb == 0))
        return pare_fail(PARE_ERR_ARG, "%s: tensor '%s' has a bad type or shape", path, t->name);
    for (int d = 1; d < 4; d++)
        if (t->ne[d] < 0 || !pare_mul_ok(nb, (size_t)t->ne[d], &nb))
            return pare_fail(PARE_ERR_ARG, "%s: tensor '%s' has a bad shape", path, t->name);
    if (nb != t->nbytes || (nb && !t->data))
        return pare_fail(PARE_ERR_ARG, "%s: tensor '%s' holds %zu bytes, its shape needs %zu", path, t->name, t->nbytes, nb);
    return PARE_OK;
}

typedef struct tlist { const pare_tensor **t; int n, cap; } tlist;

static bool tlist_has(const tlist *l, const pare_tensor *t) {
    for (int i = 0; i < l->n; i++)
        if (l->t[i] == t || !strcmp(l->t[i]->name, t->name)) return true;
    return false;
}
static void tlist_add(tlist *l, const pare_tensor *t) {
    if (t && !tlist_has(l, t) && l->n < l->cap) l->t[l->n++] = t;
}

pare_status model_save_gguf(const pare_model *m, const char *path) {
    if (!m || !path) return pare_fail(PARE_ERR_ARG, "model_save_gguf: no model or path");
    if (m->n_layer < 0 || m->head_dim <= 0)
        return pare_fail(PARE_ERR_ARG, "%s: model has bad hyper-parameters", path);
    int L = m->n_layer;
    pare_status st = PARE_OK;
    gguf_writer *w = gguf_writer_new();
    int32_t *arr = pare_calloc((size_t)(L ? L : 1), sizeof(int32_t));
    int cap = m->n_tensors + 9 * L + 3;
    tlist tl = {pare_calloc((size_t)cap, sizeof(pare_tensor *)), 0, cap};
    float *rf = NULL;
    if (!w || !arr || !tl.t) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); goto done; }

    gguf_w_str(w, "general.architecture", "llama");
    if (m->name) gguf_w_str(w, "general.name", m->name);
    gguf_w_u32(w, "llama.context_length", (uint32_t)(m->n_ctx_train > 0 ? m->n_ctx_train : 0));
    gguf_w_u32(w, "llama.embedding_length", (uint32_t)m->n_embd);
    gguf_w_u32(w, "llama.block_count", (uint32_t)L);
    /* per-layer numbers: a scalar when every layer agrees, else an int32 array (llama.cpp's
     * get_key_or_arr reads both) */
#define PER_LAYER(key, field)                                                                      \
    do {                                                                                           \
        bool same = true;                                                                          \
        for (int i = 0; i < L; i++) {                                                              \
            arr[i] = m->layers[i].field;                                                           \
            same = same && arr[i] == arr[0];                                                       \
        }                                                                                          \
        if (same) gguf_w_u32(w, key, (uint32_t)(L ? arr[0] : 0));                                  \
        else gguf_w_arr_i32(w, key, arr, (uint64_t)L);                                             \
    } while (0)
    PER_LAYER("llama.feed_forward_length", n_ff);
    gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)m->head_dim);
    PER_LAYER("llama.attention.head_count", n_head);
    PER_LAYER("llama.attention.head_count_kv", n_head_kv);
#undef PER_LAYER
    int h0 = L ? m->layers[0].n_head : 0;
    if (h0 <= 0 || m->n_embd % h0 || m->n_embd / h0 != m->head_dim) {
        gguf_w_u32(w, "llama.attention.key_length", (uint32_t)m->head_dim);
        gguf_w_u32(w, "llama.attention.value_length", (uint32_t)m->head_dim);
    }
    gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", m->norm_eps);
    gguf_w_f32(w, "llama.rope.freq_base", m->rope_base);
    if (m->rope_scaling == PARE_ROPE_SCALING_LINEAR) {
        gguf_w_str(w, "llama.rope.scaling.type", "linear");
        gguf_w_f32(w, "llama.rope.scaling.factor", m->rope_factor);
    } else if (m->rope_scaling == PARE_ROPE_SCALING_LLAMA3) {
        if (!(m->rope_high_freq > m->rope_low_freq) || m->rope_low_freq <= 0 || m->rope_orig_ctx <= 0) {
            st = pare_fail(PARE_ERR_ARG, "%s: bad llama3 rope scaling parameters", path);
            goto done;
        }
        gguf_w_f32(w, KEY_L3_FACTOR, m->rope_factor);
        gguf_w_f32(w, KEY_L3_LOW, m->rope_low_freq);
        gguf_w_f32(w, KEY_L3_HIGH, m->rope_high_freq);
        gguf_w_u32(w, KEY_ORIG_CTX, (uint32_t)m->rope_orig_ctx);
    }
    /* general.file_type: llama.cpp's ftype of the most common type of the matrices */
    int count[PARE_TYPE_COUNT] = {0}, best = PARE_TYPE_F32;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].n_dims >= 2 && m->tensors[i].type >= 0 && m->tensors[i].type < PARE_TYPE_COUNT)
            count[m->tensors[i].type]++;
    for (int t = 0; t < PARE_TYPE_COUNT; t++)
        if (count[t] > count[best]) best = t;
    gguf_w_u32(w, "general.file_type", (uint32_t)ftype_of(best));
    if (m->vocab) vocab_to_gguf(m->vocab, w);
    /* E-Sparse channel orders (model.h); llama.cpp ignores keys it does not know */
    for (int l = 0; l < L; l++) {
        const pare_layer *ly = &m->layers[l];
        const int32_t *pp[3] = {ly->perm_attn, ly->perm_o, ly->perm_ffn};
        const uint64_t pn[3] = {(uint64_t)m->n_embd, (uint64_t)ly->n_head * (uint64_t)m->head_dim, (uint64_t)m->n_embd};
        for (int k = 0; k < 3; k++) {
            if (!pp[k]) continue;
            char key[64];
            snprintf(key, sizeof key, "pare.blk.%d.perm_%s", l, k == 0 ? "attn" : k == 1 ? "o" : "ffn");
            gguf_w_arr_i32(w, key, pp[k], pn[k]);
        }
    }

    if (m->n_exit) {
        int32_t *fl = pare_malloc(2 * (size_t)m->n_exit * sizeof(int32_t));
        if (!fl) { st = PARE_ERR_NOMEM; goto done; }
        for (int k = 0; k < m->n_exit; k++) { fl[k] = m->exits[k].first; fl[m->n_exit + k] = m->exits[k].last; }
        gguf_w_arr_i32(w, "pare.exit.first", fl, (uint64_t)m->n_exit);
        gguf_w_arr_i32(w, "pare.exit.last", fl + m->n_exit, (uint64_t)m->n_exit);
        gguf_w_f32(w, "pare.lora.scale", m->lora_scale);
        free(fl);
    }

    /* tensors in a fixed order: token_embd, each block, output_norm, output, then the rest */
    if (m->rope_scaling == PARE_ROPE_SCALING_LLAMA3) {
        int n = m->head_dim / 2;
        if (!(rf = pare_malloc((size_t)n * sizeof(float)))) { st = PARE_ERR_NOMEM; goto done; }
        llama3_factors(m, rf);
        int64_t ne[1] = {n};
        gguf_w_tensor(w, "rope_freqs.weight", PARE_TYPE_F32, 1, ne, rf, (size_t)n * sizeof(float));
    }
    tlist_add(&tl, m->tok_embd);
    for (int i = 0; i < L; i++) {
        const pare_layer *ly = &m->layers[i];
        const pare_tensor *lt[] = {ly->attn_norm, ly->wq, ly->wk, ly->wv, ly->wo, ly->ffn_norm, ly->w_gate, ly->w_up, ly->w_down};
        for (size_t k = 0; k < sizeof lt / sizeof *lt; k++) tlist_add(&tl, lt[k]);
    }
    tlist_add(&tl, m->out_norm);
    bool tied = m->tied || m->output == m->tok_embd;
    if (!tied) tlist_add(&tl, m->output);
    for (int i = 0; i < m->n_tensors; i++) {
        const pare_tensor *t = &m->tensors[i];
        if (tied && !strcmp(t->name, "output.weight")) continue;
        if (!strcmp(t->name, "rope_freqs.weight")) continue;
        tlist_add(&tl, t);
    }
    for (int i = 0; i < tl.n; i++) {
        const pare_tensor *t = tl.t[i];
        if ((st = check_tensor(t, path))) goto done;
        if (t->owned) gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
        else gguf_w_tensor_mapped(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    st = gguf_writer_save(w, path);
done:
    gguf_writer_free(w);
    free(arr);
    free(tl.t);
    free(rf);
    return st;
}

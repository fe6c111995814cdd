/* hf.c - a Hugging Face LlamaForCausalLM folder: config.json + model.safetensors (or shards
 * named in model.safetensors.index.json) + tokenizer.model or tokenizer.json.
 *
 * Tensor names map to GGUF names; q_proj/k_proj rows are permuted from Hugging Face's rotary
 * order (halves) to GGUF's (interleaved pairs) into owned buffers, and back when writing.
 * Every tensor shape is checked against config.json. Per-layer head counts and FFN widths,
 * which Hugging Face cannot express, are written as pare_* extension keys (docs/FORMATS.md). */
#include "io/safetensors.h"
#include "model/model.h"
#include "tok/vocab.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_HEADS_PL "pare_num_attention_heads_per_layer"
#define KEY_KV_PL "pare_num_key_value_heads_per_layer"
#define KEY_FF_PL "pare_intermediate_size_per_layer"

#define MAX_LAYERS 4096
#define MAX_EMBD (1 << 20)
#define MAX_HEADS (1 << 16)
#define MAX_FF (1 << 24)

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = pare_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void printable(char *dst, size_t cap, const char *s) {
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++) dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[i] = 0;
}

/* ---- config.json -------------------------------------------------------------------------- */
typedef struct hfconf {
    int n_layer, n_embd, n_vocab, head_dim, ctx;
    int *nh, *nkv, *nff;
    float eps, theta;
    int rope_scaling;
    float factor, low, high;
    int orig;
    bool tied;
    char *name;
} hfconf;

static const cJSON *jget(const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(j) ? NULL : j;
}

static pare_status cfg_int(const char *cp, const cJSON *o, const char *key, bool required, int def, int lo, int hi,
                           int *out) {
    const cJSON *j = jget(o, key);
    if (!j) {
        if (required) return pare_fail(PARE_ERR_FORMAT, "%s: missing \"%s\"", cp, key);
        *out = def;
        return PARE_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d))
        return pare_fail(PARE_ERR_FORMAT, "%s: \"%s\" is not an integer in [%d, %d]", cp, key, lo, hi);
    *out = (int)d;
    return PARE_OK;
}

static pare_status cfg_float(const char *cp, const cJSON *o, const char *key, float def, double lo, double hi, float *out) {
    const cJSON *j = jget(o, key);
    if (!j) { *out = def; return PARE_OK; }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= lo && d <= hi)) return pare_fail(PARE_ERR_FORMAT, "%s: \"%s\" is not a number in [%g, %g]", cp, key, lo, hi);
    *out = (float)d;
    return PARE_OK;
}

static pare_status cfg_bool(const char *cp, const cJSON *o, const char *key, bool def, bool *out) {
    const cJSON *j = jget(o, key);
    if (!j) { *out = def; return PARE_OK; }
    if (!cJSON_IsBool(j)) return pare_fail(PARE_ERR_FORMAT, "%s: \"%s\" is not true or false", cp, key);
    *out = cJSON_IsTrue(j);
    return PARE_OK;
}

/* per-layer ints: the extension array key if present, else the scalar key for every layer */
static pare_status cfg_layers(const char *cp, const cJSON *o, const char *arr_key, const char *key, bool required,
                              const int *def, int n, int lo, int hi, int *out) {
    const cJSON *a = jget(o, arr_key);
    if (a) {
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
            return pare_fail(PARE_ERR_FORMAT, "%s: \"%s\" is not an array of %d integers", cp, arr_key, n);
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
            double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
            if (!(d >= lo && d <= hi) || d != floor(d))
                return pare_fail(PARE_ERR_FORMAT, "%s: \"%s\" element %d is not an integer in [%d, %d]", cp, arr_key, i, lo, hi);
            out[i++] = (int)d;
        }
        return PARE_OK;
    }
    if (!jget(o, key) && def) {
        memcpy(out, def, (size_t)n * sizeof(int));
        return PARE_OK;
    }
    int v;
    pare_status st = cfg_int(cp, o, key, required, 0, lo, hi, &v);
    if (st) return st;
    for (int i = 0; i < n; i++) out[i] = v;
    return PARE_OK;
}

static void conf_free(hfconf *c) {
    free(c->nh);
    free(c->name);
    memset(c, 0, sizeof *c);
}

static pare_status parse_config(const char *cp, const cJSON *o, hfconf *c) {
    pare_status st;
    if (!cJSON_IsObject(o)) return pare_fail(PARE_ERR_FORMAT, "%s: not a JSON object", cp);
    const cJSON *mt = jget(o, "model_type"), *ar = jget(o, "architectures");
    char nm[64];
    if (mt) {
        if (!cJSON_IsString(mt)) return pare_fail(PARE_ERR_FORMAT, "%s: \"model_type\" is not a string", cp);
        if (strcmp(mt->valuestring, "llama")) {
            printable(nm, sizeof nm, mt->valuestring);
            return pare_fail(PARE_ERR_UNSUPPORTED, "%s: unknown architecture '%s'", cp, nm);
        }
    } else {
        bool ok = false;
        const cJSON *x;
        const char *first = "?";
        if (cJSON_IsArray(ar)) cJSON_ArrayForEach(x, ar) {
            if (!cJSON_IsString(x)) continue;
            if (!strcmp(first, "?")) first = x->valuestring;
            if (!strcmp(x->valuestring, "LlamaForCausalLM")) ok = true;
        }
        if (!ok) {
            printable(nm, sizeof nm, first);
            return pare_fail(PARE_ERR_UNSUPPORTED, "%s: unknown architecture '%s'", cp, nm);
        }
    }
    const cJSON *act = jget(o, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu"))) {
        printable(nm, sizeof nm, cJSON_IsString(act) ? act->valuestring : "?");
        return pare_fail(PARE_ERR_UNSUPPORTED, "%s: hidden_act '%s' not supported (silu is)", cp, nm);
    }
    bool ab, mb;
    if ((st = cfg_bool(cp, o, "attention_bias", false, &ab)) || (st = cfg_bool(cp, o, "mlp_bias", false, &mb))) return st;
    if (ab || mb) return pare_fail(PARE_ERR_UNSUPPORTED, "%s: attention or MLP biases not supported", cp);

    if ((st = cfg_int(cp, o, "num_hidden_layers", true, 0, 1, MAX_LAYERS, &c->n_layer)) ||
        (st = cfg_int(cp, o, "hidden_size", true, 0, 1, MAX_EMBD, &c->n_embd)) ||
        (st = cfg_int(cp, o, "max_position_embeddings", false, 2048, 0, INT32_MAX, &c->ctx)) ||
        (st = cfg_int(cp, o, "vocab_size", false, 0, 1, 1 << 28, &c->n_vocab)) ||
        (st = cfg_float(cp, o, "rms_norm_eps", 1e-6f, 0, 1, &c->eps)) ||
        (st = cfg_float(cp, o, "rope_theta", 10000.0f, 1e-6, 1e30, &c->theta)) ||
        (st = cfg_bool(cp, o, "tie_word_embeddings", false, &c->tied)))
        return st;
    int L = c->n_layer;
    c->nh = pare_calloc(3 * (size_t)L, sizeof(int));
    if (!c->nh) return PARE_ERR_NOMEM;
    c->nkv = c->nh + L;
    c->nff = c->nh + 2 * L;
    if ((st = cfg_layers(cp, o, KEY_HEADS_PL, "num_attention_heads", true, NULL, L, 0, MAX_HEADS, c->nh)) ||
        (st = cfg_layers(cp, o, KEY_KV_PL, "num_key_value_heads", false, c->nh, L, 0, MAX_HEADS, c->nkv)) ||
        (st = cfg_layers(cp, o, KEY_FF_PL, "intermediate_size", true, NULL, L, 0, MAX_FF, c->nff)))
        return st;
    if (jget(o, "head_dim")) {
        if ((st = cfg_int(cp, o, "head_dim", true, 0, 2, MAX_HEADS, &c->head_dim))) return st;
    } else {
        if (c->nh[0] <= 0 || c->n_embd % c->nh[0])
            return pare_fail(PARE_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", cp,
                             c->n_embd, c->nh[0]);
        c->head_dim = c->n_embd / c->nh[0];
    }
    if (c->head_dim % 2) return pare_fail(PARE_ERR_FORMAT, "%s: head_dim %d is odd", cp, c->head_dim);
    for (int i = 0; i < L; i++) {
        if ((c->nh[i] > 0) != (c->nkv[i] > 0) || (c->nkv[i] > 0 && c->nh[i] % c->nkv[i]))
            return pare_fail(PARE_ERR_FORMAT, "%s: layer %d: %d attention heads cannot share %d key/value heads", cp, i,
                             c->nh[i], c->nkv[i]);
        if ((int64_t)c->nh[i] * c->head_dim > MAX_EMBD * 4)
            return pare_fail(PARE_ERR_FORMAT, "%s: layer %d: %d heads of %d is absurd", cp, i, c->nh[i], c->head_dim);
    }
    /* rope scaling */
    const cJSON *rs = jget(o, "rope_scaling");
    if (rs) {
        if (!cJSON_IsObject(rs)) return pare_fail(PARE_ERR_FORMAT, "%s: \"rope_scaling\" is not an object", cp);
        const cJSON *t = jget(rs, "rope_type");
        if (!t) t = jget(rs, "type");
        if (!cJSON_IsString(t)) return pare_fail(PARE_ERR_FORMAT, "%s: rope_scaling has no rope_type", cp);
        if (!strcmp(t->valuestring, "llama3")) {
            c->rope_scaling = PARE_ROPE_SCALING_LLAMA3;
            if ((st = cfg_float(cp, rs, "factor", NAN, 1, 1e6, &c->factor)) ||
                (st = cfg_float(cp, rs, "low_freq_factor", 1, 1e-6, 1e6, &c->low)) ||
                (st = cfg_float(cp, rs, "high_freq_factor", 4, 1e-6, 1e6, &c->high)) ||
                (st = cfg_int(cp, rs, "original_max_position_embeddings", false, 8192, 1, INT32_MAX, &c->orig)))
                return st;
            if (isnan(c->factor)) return pare_fail(PARE_ERR_FORMAT, "%s: llama3 rope_scaling without \"factor\"", cp);
            if (!(c->high > c->low))
                return pare_fail(PARE_ERR_FORMAT, "%s: rope_scaling high_freq_factor must exceed low_freq_factor", cp);
        } else if (!strcmp(t->valuestring, "linear")) {
            c->rope_scaling = PARE_ROPE_SCALING_LINEAR;
            if ((st = cfg_float(cp, rs, "factor", NAN, 1e-6, 1e6, &c->factor))) return st;
            if (isnan(c->factor)) return pare_fail(PARE_ERR_FORMAT, "%s: linear rope_scaling without \"factor\"", cp);
        } else if (strcmp(t->valuestring, "default")) {
            printable(nm, sizeof nm, t->valuestring);
            return pare_fail(PARE_ERR_UNSUPPORTED, "%s: rope scaling type '%s' not supported (llama3, linear are)", cp, nm);
        }
    }
    const cJSON *n = jget(o, "_name_or_path");
    if (cJSON_IsString(n) && n->valuestring[0] && !(c->name = pare_strdup(n->valuestring))) return PARE_ERR_NOMEM;
    return PARE_OK;
}

/* ---- tensor names -------------------------------------------------------------------------- */
enum { K_NORM_ATT, K_Q, K_K, K_V, K_O, K_NORM_FFN, K_GATE, K_UP, K_DOWN, K_EMBD, K_NORM_OUT, K_OUT, K_SKIP };

static const struct { const char *hf, *gguf; } LAYER_NAMES[9] = {
    {"input_layernorm.weight", "attn_norm"}, {"self_attn.q_proj.weight", "attn_q"},
    {"self_attn.k_proj.weight", "attn_k"},   {"self_attn.v_proj.weight", "attn_v"},
    {"self_attn.o_proj.weight", "attn_output"}, {"post_attention_layernorm.weight", "ffn_norm"},
    {"mlp.gate_proj.weight", "ffn_gate"},    {"mlp.up_proj.weight", "ffn_up"},
    {"mlp.down_proj.weight", "ffn_down"},
};

/* kind of an HF tensor name; *layer for the per-layer kinds; -1 if unknown */
static int hf_kind(const char *name, int *layer) {
    *layer = -1;
    if (!strcmp(name, "model.embed_tokens.weight")) return K_EMBD;
    if (!strcmp(name, "model.norm.weight")) return K_NORM_OUT;
    if (!strcmp(name, "lm_head.weight")) return K_OUT;
    const char *pre = "model.layers.";
    size_t pl = strlen(pre);
    if (strncmp(name, pre, pl)) return -1;
    const char *p = name + pl;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > MAX_LAYERS) return -1;
        p++;
    }
    if (*p++ != '.') return -1;
    *layer = (int)v;
    for (int k = 0; k < 9; k++)
        if (!strcmp(p, LAYER_NAMES[k].hf)) return k;
    if (!strcmp(p, "self_attn.rotary_emb.inv_freq")) return K_SKIP;
    return -1;
}

/* the expected HF shape [rows, cols] (cols 0 for 1-D) */
static void expected_shape(const hfconf *c, int kind, int l, int64_t *rows, int64_t *cols) {
    int64_t E = c->n_embd, hd = c->head_dim;
    *cols = E;
    switch (kind) {
    case K_NORM_ATT: case K_NORM_FFN: case K_NORM_OUT: *rows = E; *cols = 0; break;
    case K_Q: *rows = c->nh[l] * hd; break;
    case K_K: case K_V: *rows = c->nkv[l] * hd; break;
    case K_O: *rows = E; *cols = c->nh[l] * hd; break;
    case K_GATE: case K_UP: *rows = c->nff[l]; break;
    case K_DOWN: *rows = E; *cols = c->nff[l]; break;
    default: *rows = c->n_vocab; break; /* K_EMBD, K_OUT */
    }
}

static bool kind_in_layer(const hfconf *c, int kind, int l) {
    if (kind <= K_O) return c->nh[l] > 0;
    return c->nff[l] > 0;
}

static void fmt_shape(char *buf, size_t cap, int n_dims, const int64_t *s) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int d = 0; d < n_dims && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)s[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static void st_close_v(void *p) { st_close(p); }

pare_status model_load_hf(const char *dir, pare_model **out) {
    *out = NULL;
    char *cp = join_path(dir, "config.json");
    if (!cp) return PARE_ERR_NOMEM;
    char *buf = NULL;
    size_t len = 0;
    pare_status st = pare_read_file(cp, &buf, &len);
    if (st) { free(cp); return st; }
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    hfconf c = {0};
    pare_model *m = NULL;
    pare_st *s = NULL;
    if (!root) { st = pare_fail(PARE_ERR_FORMAT, "%s: not valid JSON", cp); goto fail; }
    if ((st = parse_config(cp, root, &c))) goto fail;
    cJSON_Delete(root);
    root = NULL;
    if ((st = st_open_dir(dir, &s))) goto fail;
    const char *sname = s->n_files == 1 ? s->paths[0] : dir; /* for messages */
    if (c.n_vocab == 0) { /* no vocab_size: take it from the embedding */
        const st_tensor *e = st_find(s, "model.embed_tokens.weight");
        if (e && e->n_dims == 2 && e->shape[0] > 0 && e->shape[0] <= (1 << 28)) c.n_vocab = (int)e->shape[0];
        else { st = pare_fail(PARE_ERR_FORMAT, "%s: no vocab_size and no usable model.embed_tokens.weight", cp); goto fail; }
    }
    m = model_new(c.n_layer, 9 * c.n_layer + 3);
    if (!m) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", dir); goto fail; }
    m->owner = s;
    m->owner_free = st_close_v;
    s = NULL;
    const pare_st *S = m->owner;
    if (!(m->path = pare_strdup(dir))) { st = PARE_ERR_NOMEM; goto fail; }
    m->name = c.name;
    c.name = NULL;
    m->n_embd = c.n_embd;
    m->n_vocab = c.n_vocab;
    m->n_ctx_train = c.ctx;
    m->head_dim = c.head_dim;
    m->norm_eps = c.eps;
    m->rope_base = c.theta;
    m->rope_scaling = c.rope_scaling;
    m->rope_factor = c.factor;
    m->rope_low_freq = c.low;
    m->rope_high_freq = c.high;
    m->rope_orig_ctx = c.orig;
    for (int i = 0; i < c.n_layer; i++) {
        m->layers[i].n_head = c.nh[i];
        m->layers[i].n_head_kv = c.nkv[i];
        m->layers[i].n_ff = c.nff[i];
    }
    /* every tensor: known, wanted, of the shape config.json gives */
    for (int i = 0; i < S->n_tensors; i++) {
        const st_tensor *t = &S->tensors[i];
        int l, kind = hf_kind(t->name, &l);
        char tn[96];
        printable(tn, sizeof tn, t->name);
        if (kind == K_SKIP) continue;
        if (kind == K_OUT && c.tied) continue; /* tied: Hugging Face ignores lm_head */
        if (kind < 0) { st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: unexpected tensor '%s'", t->file, tn); goto fail; }
        if (l >= c.n_layer) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' is for layer %d, config.json has %d layers", t->file, tn, l, c.n_layer);
            goto fail;
        }
        if (l >= 0 && !kind_in_layer(&c, kind, l)) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' present, config.json gives layer %d no %s", t->file, tn, l,
                           kind <= K_O ? "attention heads" : "FFN");
            goto fail;
        }
        int64_t rows, cols;
        expected_shape(&c, kind, l, &rows, &cols);
        int want_nd = cols ? 2 : 1;
        int64_t want[2] = {rows, cols};
        if (t->n_dims != want_nd || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
            char a[96], b[96];
            fmt_shape(a, sizeof a, t->n_dims, t->shape);
            fmt_shape(b, sizeof b, want_nd, want);
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has shape %s, config.json says %s", t->file, tn, a, b);
            goto fail;
        }
        char gname[64];
        if (l >= 0) snprintf(gname, sizeof gname, "blk.%d.%s.weight", l, LAYER_NAMES[kind].gguf);
        else snprintf(gname, sizeof gname, "%s", kind == K_EMBD ? "token_embd.weight" : kind == K_NORM_OUT ? "output_norm.weight" : "output.weight");
        size_t es = t->type == PARE_TYPE_F32 ? 4 : 2;
        void *data = (void *)t->data;
        int owned = 0, type = t->type;
        size_t nbytes = t->nbytes;
        if (!cols && t->type != PARE_TYPE_F32) {
            /* norms are f32 in pare (and in GGUF): widen f16/bf16 ones */
            float *f = pare_malloc((size_t)rows * sizeof(float) + 1);
            if (!f) { st = PARE_ERR_NOMEM; goto fail; }
            for (int64_t k = 0; k < rows; k++) {
                uint16_t h;
                memcpy(&h, (const uint8_t *)t->data + 2 * k, 2);
                f[k] = t->type == PARE_TYPE_F16 ? pare_f16_to_f32(h) : pare_bf16_to_f32(h);
            }
            data = f;
            owned = 1;
            type = PARE_TYPE_F32;
            nbytes = (size_t)rows * sizeof(float);
        } else if (kind == K_Q || kind == K_K || ((uintptr_t)data % es)) {
            if (!(data = pare_malloc(t->nbytes ? t->nbytes : 1))) { st = PARE_ERR_NOMEM; goto fail; }
            owned = 1;
            if (kind == K_Q || kind == K_K)
                qk_permute_to_gguf(data, t->data, kind == K_Q ? c.nh[l] : c.nkv[l], c.head_dim, (size_t)cols * es);
            else
                memcpy(data, t->data, t->nbytes);
        }
        int64_t ne[2] = {cols ? cols : rows, rows};
        if (!model_add_tensor(m, gname, type, want_nd, ne, data, nbytes, owned)) {
            if (owned) free(data);
            st = PARE_ERR_NOMEM;
            goto fail;
        }
    }
    /* every wanted tensor present (named as in the folder) */
    {
        char hn[96], gn[64];
        for (int l = -1; l < c.n_layer; l++) {
            int kinds = l < 0 ? 3 : 9;
            for (int k = 0; k < kinds; k++) {
                int kind = l < 0 ? K_EMBD + k : k;
                if (l < 0 && kind == K_OUT && c.tied) continue;
                if (l >= 0 && !kind_in_layer(&c, kind, l)) continue;
                if (l < 0) {
                    snprintf(hn, sizeof hn, "%s", kind == K_EMBD ? "model.embed_tokens.weight" : kind == K_NORM_OUT ? "model.norm.weight" : "lm_head.weight");
                    snprintf(gn, sizeof gn, "%s", kind == K_EMBD ? "token_embd.weight" : kind == K_NORM_OUT ? "output_norm.weight" : "output.weight");
                } else {
                    snprintf(hn, sizeof hn, "model.layers.%d.%s", l, LAYER_NAMES[k].hf);
                    snprintf(gn, sizeof gn, "blk.%d.%s.weight", l, LAYER_NAMES[k].gguf);
                }
                if (!model_find_tensor(m, gn)) {
                    st = pare_fail(PARE_ERR_FORMAT, "%s: missing tensor '%s'", sname, hn);
                    goto fail;
                }
            }
        }
    }
    if ((st = model_bind(m))) goto fail;
    /* tokenizer beside */
    {
        char *tp = join_path(dir, "tokenizer.model");
        if (!tp) { st = PARE_ERR_NOMEM; goto fail; }
        if (file_exists(tp)) st = vocab_from_spm_model(tp, &m->vocab);
        else {
            free(tp);
            if (!(tp = join_path(dir, "tokenizer.json"))) { st = PARE_ERR_NOMEM; goto fail; }
            if (file_exists(tp)) st = vocab_from_hf_json(tp, &m->vocab);
        }
        if (!st && m->vocab && m->vocab->n_tokens > m->n_vocab)
            st = pare_fail(PARE_ERR_FORMAT, "%s: %d tokens, more than vocab_size %d", tp, m->vocab->n_tokens, m->n_vocab);
        free(tp);
        if (st) goto fail;
    }
    conf_free(&c);
    free(cp);
    *out = m;
    return PARE_OK;
fail:
    cJSON_Delete(root);
    conf_free(&c);
    st_close(s);
    pare_model_free(m);
    free(cp);
    return st;
}

/* ---- writer -------------------------------------------------------------------------------- */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static void sb_json_str(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') sb_printf(b, "\\%c", *c);
        else if (*c < 0x20) sb_printf(b, "\\u%04x", *c);
        else sb_printf(b, "%c", *c);
    }
    sb_printf(b, "\"");
}

/* the shortest decimal that reads back as the same float, always with '.' or an exponent */
static void sb_float(sbuf *b, float f) {
    char t[48];
    if (!isfinite(f)) { sb_printf(b, "null"); return; }
    for (int p = 1; p <= 9; p++) {
        snprintf(t, sizeof t, "%.*g", p, (double)f);
        if (strtof(t, NULL) == f && (float)strtod(t, NULL) == f) break;
    }
    if (!strpbrk(t, ".eE")) strcat(t, ".0");
    sb_printf(b, "%s", t);
}

static void sb_int_list(sbuf *b, const char *key, const pare_model *m, int which) {
    sb_printf(b, ",\n  \"%s\": [", key);
    for (int i = 0; i < m->n_layer; i++) {
        const pare_layer *l = &m->layers[i];
        sb_printf(b, i ? ", %d" : "%d", which == 0 ? l->n_head : which == 1 ? l->n_head_kv : l->n_ff);
    }
    sb_printf(b, "]");
}

static pare_status write_text(const char *path, const char *s, size_t n) {
    pare_out o;
    pare_status st = pare_out_open(&o, path);
    if (st) return st;
    pare_out_write(&o, s, n);
    return pare_out_commit(&o);
}

static pare_status write_config(const pare_model *m, const char *path) {
    int L = m->n_layer;
    sbuf b = {0};
    bool same[3] = {true, true, true};
    for (int i = 1; i < L; i++) {
        same[0] = same[0] && m->layers[i].n_head == m->layers[0].n_head;
        same[1] = same[1] && m->layers[i].n_head_kv == m->layers[0].n_head_kv;
        same[2] = same[2] && m->layers[i].n_ff == m->layers[0].n_ff;
    }
    int h0 = L ? m->layers[0].n_head : 0, kv0 = L ? m->layers[0].n_head_kv : 0, ff0 = L ? m->layers[0].n_ff : 0;
    /* torch_dtype: the most common type among the matrices */
    int cnt[3] = {0};
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].n_dims >= 2)
            cnt[m->tensors[i].type == PARE_TYPE_F16 ? 1 : m->tensors[i].type == PARE_TYPE_BF16 ? 2 : 0]++;
    const char *dt = cnt[1] > cnt[0] && cnt[1] >= cnt[2] ? "float16" : cnt[2] > cnt[0] && cnt[2] > cnt[1] ? "bfloat16" : "float32";
    sb_printf(&b, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\"");
    if (m->name) { sb_printf(&b, ",\n  \"_name_or_path\": "); sb_json_str(&b, m->name); }
    sb_printf(&b, ",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d", m->n_embd, ff0, L);
    sb_printf(&b, ",\n  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d", h0, kv0, m->head_dim);
    sb_printf(&b, ",\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": ", m->n_ctx_train);
    sb_float(&b, m->norm_eps);
    sb_printf(&b, ",\n  \"rope_theta\": ");
    sb_float(&b, m->rope_base);
    sb_printf(&b, ",\n  \"rope_scaling\": ");
    if (m->rope_scaling == PARE_ROPE_SCALING_LLAMA3) {
        sb_printf(&b, "{\n    \"rope_type\": \"llama3\",\n    \"factor\": ");
        sb_float(&b, m->rope_factor);
        sb_printf(&b, ",\n    \"low_freq_factor\": ");
        sb_float(&b, m->rope_low_freq);
        sb_printf(&b, ",\n    \"high_freq_factor\": ");
        sb_float(&b, m->rope_high_freq);
        sb_printf(&b, ",\n    \"original_max_position_embeddings\": %d\n  }", m->rope_orig_ctx);
    } else if (m->rope_scaling == PARE_ROPE_SCALING_LINEAR) {
        sb_printf(&b, "{\n    \"rope_type\": \"linear\",\n    \"factor\": ");
        sb_float(&b, m->rope_factor);
        sb_printf(&b, "\n  }");
    } else
        sb_printf(&b, "null");
    sb_printf(&b, ",\n  \"vocab_size\": %d", m->n_vocab);
    if (m->vocab && m->vocab->bos >= 0) sb_printf(&b, ",\n  \"bos_token_id\": %d", m->vocab->bos);
    if (m->vocab && m->vocab->eos >= 0) sb_printf(&b, ",\n  \"eos_token_id\": %d", m->vocab->eos);
    sb_printf(&b, ",\n  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false");
    sb_printf(&b, ",\n  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"%s\"", m->tied ? "true" : "false", dt);
    if (!same[0]) sb_int_list(&b, KEY_HEADS_PL, m, 0);
    if (!same[1]) sb_int_list(&b, KEY_KV_PL, m, 1);
    if (!same[2]) sb_int_list(&b, KEY_FF_PL, m, 2);
    sb_printf(&b, "\n}\n");
    if (b.oom) { free(b.p); return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); }
    pare_status st = write_text(path, b.p, b.n);
    free(b.p);
    return st;
}

pare_status model_save_hf(const pare_model *m, const char *dir) {
    if (!m || !dir) return pare_fail(PARE_ERR_ARG, "model_save_hf: no model or folder");
    for (int l = 0; l < m->n_layer; l++)
        if (m->layers[l].b_o || m->layers[l].b_down)
            return pare_fail(PARE_ERR_UNSUPPORTED, "%s: block %d has an o/down bias (FLAP's compensation), which Hugging "
                             "Face's LlamaForCausalLM holds only with q/k/v or gate/up biases too; write GGUF (llama.cpp "
                             "reads it)", dir, l);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return pare_fail(PARE_ERR_IO, "%s: cannot create folder (%s)", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return pare_fail(PARE_ERR_IO, "%s: not a folder", dir);
    if (pare_dir_has_input(dir))
        return pare_fail(PARE_ERR_ARG, "%s: holds an input of this run; refusing to write a model into it", dir);
    pare_status st = PARE_OK;
    int L = m->n_layer;
    st_writer *w = st_writer_new();
    void **bufs = pare_calloc((size_t)(2 * L + 1), sizeof(void *));
    const pare_tensor **done = pare_calloc((size_t)(9 * L + 3), sizeof(pare_tensor *));
    char *sp = join_path(dir, "model.safetensors"), *cp = join_path(dir, "config.json");
    int nbufs = 0, ndone = 0;
    if (!w || !bufs || !done || !sp || !cp) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", dir); goto out; }
    bool tied = m->tied || m->output == m->tok_embd;
    for (int l = -1; l < L; l++) {
        int kinds = l < 0 ? 3 : 9;
        for (int k = 0; k < kinds; k++) {
            const pare_tensor *t;
            char hn[96];
            int kind = l < 0 ? K_EMBD + k : k;
            if (l < 0) {
                t = kind == K_EMBD ? m->tok_embd : kind == K_NORM_OUT ? m->out_norm : (tied ? NULL : m->output);
                snprintf(hn, sizeof hn, "%s", kind == K_EMBD ? "model.embed_tokens.weight" : kind == K_NORM_OUT ? "model.norm.weight" : "lm_head.weight");
            } else {
                const pare_layer *ly = &m->layers[l];
                const pare_tensor *lt[9] = {ly->attn_norm, ly->wq, ly->wk, ly->wv, ly->wo, ly->ffn_norm, ly->w_gate, ly->w_up, ly->w_down};
                t = lt[k];
                snprintf(hn, sizeof hn, "model.layers.%d.%s", l, LAYER_NAMES[k].hf);
            }
            if (!t) continue;
            if (!st_dtype_name(t->type)) {
                st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; safetensors holds f32, f16 and bf16 (save as gguf)",
                               dir, t->name, pare_type_name(t->type));
                goto out;
            }
            if (t->n_dims > 2 || (t->n_dims == 2 && t->nbytes != (size_t)t->ne[0] * (size_t)t->ne[1] * (t->type == PARE_TYPE_F32 ? 4 : 2))) {
                st = pare_fail(PARE_ERR_ARG, "%s: tensor '%s' has a bad shape", dir, t->name);
                goto out;
            }
            int64_t shape[2] = {t->n_dims == 2 ? t->ne[1] : t->ne[0], t->ne[0]};
            const void *data = t->data;
            if (kind == K_Q || kind == K_K) {
                const pare_layer *ly = &m->layers[l];
                int nh = kind == K_Q ? ly->n_head : ly->n_head_kv;
                if (shape[0] != (int64_t)nh * m->head_dim) {
                    st = pare_fail(PARE_ERR_ARG, "%s: tensor '%s' has %lld rows, %d heads of %d", dir, t->name,
                                   (long long)shape[0], nh, m->head_dim);
                    goto out;
                }
                void *p = pare_malloc(t->nbytes ? t->nbytes : 1);
                if (!p) { st = PARE_ERR_NOMEM; goto out; }
                bufs[nbufs++] = p;
                qk_permute_from_gguf(p, t->data, nh, m->head_dim, t->nbytes / (size_t)(shape[0] ? shape[0] : 1));
                data = p;
            }
            if ((st = st_w_tensor(w, hn, t->type, t->n_dims == 2 ? 2 : 1, shape, data, t->nbytes))) goto out;
            done[ndone++] = t;
        }
    }
    /* a tensor the model holds but Hugging Face has no name for */
    for (int i = 0; i < m->n_tensors; i++) {
        const pare_tensor *t = &m->tensors[i];
        bool found = false;
        for (int j = 0; j < ndone && !found; j++) found = done[j] == t || !strcmp(done[j]->name, t->name);
        if (!found && !(tied && !strcmp(t->name, "output.weight"))) {
            st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: tensor '%s' has no Hugging Face name", dir, t->name);
            goto out;
        }
    }
    if ((st = st_writer_save(w, sp))) goto out;
    if ((st = write_config(m, cp))) goto out;
    if (m->vocab) st = vocab_save_hf(m->vocab, dir);
out:
    for (int i = 0; i < nbufs; i++) free(bufs[i]);
    free(bufs);
    free(done);
    st_writer_free(w);
    free(sp);
    free(cp);
    return st;
}

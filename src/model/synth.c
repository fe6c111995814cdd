/* synth.c - deterministic random-weight LLaMA models with real shapes, for speed and scale
 * tests and as a stand-in default model. Same shape, type and seed: the same bytes, for any
 * thread count (every row draws from its own stream seeded by (seed, tensor, row)). */
#include "synth.h"

#include "kernels/kernels.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const synth_shape g_shapes[] = {
    /* name          dim   layers heads kv  ff     vocab  ctx  */
    {"tiny",          128,  4,    4,    2,  384,   512,   512},
    {"stories15m",    288,  6,    6,    6,  768,   32000, 256},
    {"stories110m",   768,  12,   12,   12, 2048,  32000, 1024},
    {"tinyllama-1.1b", 2048, 22,  32,   4,  5632,  32000, 2048},
    {"llama2-7b",     4096, 32,   32,   32, 11008, 32000, 4096},
};

const synth_shape *synth_find_shape(const char *name) {
    for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++)
        if (!strcmp(g_shapes[i].name, name)) return &g_shapes[i];
    return NULL;
}

void synth_list_shapes(void (*fn)(const synth_shape *, void *), void *user) {
    for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++) fn(&g_shapes[i], user);
}

pare_status synth_shape_from_json(const char *path, synth_shape *out) {
    char *buf; size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) return pare_fail(PARE_ERR_FORMAT, "%s: not valid JSON", path);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "custom");
    struct { const char *k; int *v; } f[] = {{"dim", &out->dim}, {"n_layers", &out->n_layer}, {"n_heads", &out->n_head},
        {"n_kv_heads", &out->n_head_kv}, {"ffn", &out->n_ff}, {"vocab", &out->n_vocab}, {"ctx", &out->n_ctx}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        cJSON *x = cJSON_GetObjectItemCaseSensitive(j, f[i].k);
        if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 1e7) {
            cJSON_Delete(j);
            return pare_fail(PARE_ERR_FORMAT, "%s: key '%s' missing or not a positive integer", path, f[i].k);
        }
        *f[i].v = (int)x->valuedouble;
    }
    cJSON_Delete(j);
    if (out->dim % out->n_head || out->n_head % out->n_head_kv || (out->dim / out->n_head) % 2 || out->n_vocab < 259)
        return pare_fail(PARE_ERR_FORMAT, "%s: inconsistent shape (dim %% heads, heads %% kv_heads, even head_dim, vocab >= 259)", path);
    return PARE_OK;
}

/* ---- random numbers ------------------------------------------------------------------- */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
typedef struct { uint64_t s; } rng;
static double rng_unit(rng *r) { r->s += 0x9e3779b97f4a7c15ull; return ((double)(mix(r->s) >> 11) + 0.5) / 9007199254740992.0; }
static float rng_normal(rng *r) {
    double u = rng_unit(r), v = rng_unit(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v));
}

/* ---- a byte-level SentencePiece vocabulary -------------------------------------------- */
/* <unk> <s> </s>, the 256 byte tokens <0xXX>, then filler pieces: any text tokenizes to
 * bytes, so the vocabulary works for every input. */
static pare_status synth_vocab(int n_vocab, pare_vocab **out) {
    pare_vocab *v = pare_calloc(1, sizeof *v);
    if (!v) return PARE_ERR_NOMEM;
    v->type = PARE_VOCAB_SPM;
    v->n_tokens = n_vocab;
    v->text = pare_calloc((size_t)n_vocab, sizeof(char *));
    v->scores = pare_calloc((size_t)n_vocab, sizeof(float));
    v->ttype = pare_calloc((size_t)n_vocab, sizeof(int32_t));
    if (!v->text || !v->scores || !v->ttype) { vocab_free(v); return PARE_ERR_NOMEM; }
    char buf[32];
    for (int i = 0; i < n_vocab; i++) {
        if (i == 0) { snprintf(buf, sizeof buf, "<unk>"); v->ttype[i] = TOK_UNKNOWN; }
        else if (i == 1) { snprintf(buf, sizeof buf, "<s>"); v->ttype[i] = TOK_CONTROL; }
        else if (i == 2) { snprintf(buf, sizeof buf, "</s>"); v->ttype[i] = TOK_CONTROL; }
        else if (i < 259) { snprintf(buf, sizeof buf, "<0x%02X>", i - 3); v->ttype[i] = TOK_BYTE; }
        else { snprintf(buf, sizeof buf, "<unused%d>", i - 259); v->ttype[i] = TOK_UNUSED; }
        v->text[i] = pare_strdup(buf);
        if (!v->text[i]) { vocab_free(v); return PARE_ERR_NOMEM; }
        v->scores[i] = 0;
    }
    v->bos = 1; v->eos = 2; v->unk = 0; v->pad = -1;
    v->add_bos = true; v->add_eos = false; v->add_space_prefix = true;
    pare_status st = vocab_build(v);
    if (st) { vocab_free(v); return st; }
    *out = v;
    return PARE_OK;
}

/* ---- the model ------------------------------------------------------------------------ */
typedef struct { const char *name; int64_t in, out; float std; } tdesc;

/* keep the n largest magnitudes of every m consecutive values (the first on a tie) */
static void keep_nm(float *row, int64_t len, int n, int m) {
    for (int64_t g = 0; g + m <= len; g += m)
        for (int drop = 0; drop < m - n; drop++) {
            int jm = -1;
            for (int j = 0; j < m; j++)
                if (row[g + j] != 0.0f && (jm < 0 || fabsf(row[g + j]) < fabsf(row[g + jm]))) jm = j;
            if (jm >= 0) row[g + jm] = 0.0f;
        }
}

static pare_status add_matrix(pare_model *m, const char *name, int type, int64_t in, int64_t out, float std, uint64_t seed,
                              int tensor_idx, int nm_n, int nm_m) {
    size_t rb = pare_row_bytes(type, in);
    if (!rb) return pare_fail(PARE_ERR_ARG, "tensor %s: %lld columns do not fit %s blocks", name, (long long)in, pare_type_name(type));
    size_t nb;
    if (!pare_mul_ok(rb, (size_t)out, &nb)) return pare_fail(PARE_ERR_NOMEM, "tensor %s too large", name);
    uint8_t *data = pare_malloc(nb);
    if (!data) return PARE_ERR_NOMEM;
    int fail = 0;
    #pragma omp parallel
    {
        float *row = malloc((size_t)in * sizeof(float));
        if (!row) {
            #pragma omp atomic write
            fail = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < out; r++) {
            if (!row) continue;
            rng g = {mix(seed ^ mix(((uint64_t)tensor_idx << 40) ^ (uint64_t)r))};
            for (int64_t i = 0; i < in; i++) row[i] = std * rng_normal(&g);
            if (nm_m) keep_nm(row, in, nm_n, nm_m);
            k_quant_row(type, row, data + (size_t)r * rb, in);
        }
        free(row);
    }
    if (fail) { free(data); return pare_fail(PARE_ERR_NOMEM, "out of memory"); }
    int64_t ne[2] = {in, out};
    if (!model_add_tensor(m, name, type, 2, ne, data, nb, 1)) { free(data); return PARE_ERR_NOMEM; }
    return PARE_OK;
}

static pare_status add_norm(pare_model *m, const char *name, int64_t n) {
    float *d = pare_malloc((size_t)n * sizeof(float));
    if (!d) return PARE_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) d[i] = 1.0f;
    int64_t ne[1] = {n};
    if (!model_add_tensor(m, name, PARE_TYPE_F32, 1, ne, d, (size_t)n * 4, 1)) { free(d); return PARE_ERR_NOMEM; }
    return PARE_OK;
}

pare_status synth_model(const synth_shape *s, int type, uint64_t seed, pare_model **out) {
    return synth_model_nm(s, type, 0, 0, seed, out);
}

pare_status synth_model_nm(const synth_shape *s, int type, int nm_n, int nm_m, uint64_t seed, pare_model **out) {
    *out = NULL;
    if (!pare_type_known(type)) return pare_fail(PARE_ERR_ARG, "unknown tensor type %d", type);
    if (nm_m && !(nm_n >= 1 && nm_n < nm_m && nm_m <= 16))
        return pare_fail(PARE_ERR_ARG, "N:M sparsity %d:%d: need 1 <= N < M <= 16", nm_n, nm_m);
    if (nm_m && (s->dim % nm_m || s->n_ff % nm_m))
        return pare_fail(PARE_ERR_ARG, "N:M sparsity %d:%d: dim %d and ffn %d must be multiples of M", nm_n, nm_m, s->dim, s->n_ff);
    k_init();
    pare_model *m = model_new(s->n_layer, 3 + 9 * s->n_layer);
    if (!m) return PARE_ERR_NOMEM;
    m->path = pare_strdup("synth");
    char nm[160];
    if (nm_m) snprintf(nm, sizeof nm, "pare-synth-%s-%s-%d:%d-seed%llu", s->name, pare_type_name(type), nm_n, nm_m, (unsigned long long)seed);
    else snprintf(nm, sizeof nm, "pare-synth-%s-%s-seed%llu", s->name, pare_type_name(type), (unsigned long long)seed);
    m->name = pare_strdup(nm);
    m->n_embd = s->dim; m->n_vocab = s->n_vocab; m->n_ctx_train = s->n_ctx;
    m->head_dim = s->dim / s->n_head;
    m->norm_eps = 1e-5f; m->rope_base = 10000.0f;
    pare_status st = synth_vocab(s->n_vocab, &m->vocab);
    int64_t E = s->dim, hd = m->head_dim, ti = 0;
    float std = 0.02f, std_out = 0.02f / sqrtf(2.0f * (float)s->n_layer);
    /* embeddings stay F32 or F16/BF16 (a row lookup), quantized types as in llama.cpp */
    if (!st) st = add_matrix(m, "token_embd.weight", type, E, s->n_vocab, std, seed, (int)ti++, 0, 0);
    for (int l = 0; l < s->n_layer && !st; l++) {
        pare_layer *L = &m->layers[l];
        L->n_head = s->n_head; L->n_head_kv = s->n_head_kv; L->n_ff = s->n_ff;
        const tdesc mats[] = {
            {"attn_q", E, s->n_head * hd, std}, {"attn_k", E, s->n_head_kv * hd, std}, {"attn_v", E, s->n_head_kv * hd, std},
            {"attn_output", s->n_head * hd, E, std_out}, {"ffn_gate", E, s->n_ff, std}, {"ffn_up", E, s->n_ff, std},
            {"ffn_down", s->n_ff, E, std_out},
        };
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if ((st = add_norm(m, nm, E))) break;
        for (size_t k = 0; k < sizeof mats / sizeof mats[0] && !st; k++) {
            if (k == 4) {
                snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
                if ((st = add_norm(m, nm, E))) break;
            }
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mats[k].name);
            st = add_matrix(m, nm, type, mats[k].in, mats[k].out, mats[k].std, seed, (int)ti++, nm_n, nm_m);
        }
    }
    if (!st) st = add_norm(m, "output_norm.weight", E);
    if (!st) st = add_matrix(m, "output.weight", type, E, s->n_vocab, std, seed, (int)ti++, 0, 0);
    if (!st) st = model_bind(m);
    if (st) { pare_model_free(m); return st; }
    *out = m;
    return PARE_OK;
}

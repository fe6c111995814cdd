/* llama2c.c - a llama2.c legacy (version 0) checkpoint.
 *
 * Layout (little-endian): 7 x int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len); vocab_size < 0 means an unshared classifier. Then float32 arrays:
 * token_embedding [vocab][dim], rms_att [L][dim], wq [L][dim][dim], wk [L][kv_dim][dim],
 * wv [L][kv_dim][dim], wo [L][dim][dim], rms_ffn [L][dim], w1 [L][hidden][dim],
 * w2 [L][dim][hidden], w3 [L][hidden][dim], rms_final [dim], freq_cis_real and
 * freq_cis_imag [seq_len][head_size/2] (unused), wcls [vocab][dim] if unshared.
 * w1 = gate, w2 = down, w3 = up. llama2.c rotates interleaved pairs, which is GGUF's q/k
 * row order, so the rows are used as they are. The weights are referenced in the map. */
#include "model/model.h"
#include "tok/vocab.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DIM (1 << 20)

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* dir of path (with the trailing '/') + name */
static char *beside(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0, nl = strlen(name);
    char *p = pare_malloc(dl + nl + 1);
    if (!p) return NULL;
    memcpy(p, path, dl);
    memcpy(p + dl, name, nl + 1);
    return p;
}

/* base name without directory and extension */
static char *stem(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    char *s = pare_malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

/* sizes in floats, overflow checked */
typedef struct span { size_t off, n; } span;

static bool take(size_t *pos, size_t a, size_t b, size_t c, span *out) {
    size_t n;
    if (!pare_mul_ok(a, b, &n) || !pare_mul_ok(n, c, &n)) return false;
    out->off = *pos;
    out->n = n;
    if (*pos > SIZE_MAX - n) return false;
    *pos += n;
    return true;
}

pare_status model_load_llama2c(const char *path, const char *tok_path, pare_model **out) {
    *out = NULL;
    pare_map map = {0};
    pare_status st = pare_map_file(path, &map);
    if (st) return st;
    if (map.size < 28) {
        pare_unmap(&map);
        return pare_fail(PARE_ERR_FORMAT, "%s: %zu bytes, too short for a llama2.c checkpoint (28-byte header)", path,
                         map.size);
    }
    int32_t h[7];
    memcpy(h, map.addr, sizeof h);
    int dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4], seq_len = h[6];
    bool shared = h[5] > 0;
    int vocab = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
    if (dim < 1 || dim > MAX_DIM || hidden < 1 || hidden > (1 << 24) || n_layers < 1 || n_layers > 4096 || n_heads < 1 ||
        n_heads > dim || n_kv < 1 || n_kv > n_heads || vocab < 1 || vocab > (1 << 24) || seq_len < 1 ||
        seq_len > (1 << 24) || dim % n_heads || n_heads % n_kv || (dim / n_heads) % 2) {
        pare_unmap(&map);
        return pare_fail(PARE_ERR_FORMAT,
                         "%s: not a llama2.c checkpoint (header dim %d, hidden %d, layers %d, heads %d, kv heads %d, "
                         "vocab %d, seq_len %d)",
                         path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    }
    size_t D = (size_t)dim, F = (size_t)hidden, L = (size_t)n_layers, V = (size_t)vocab;
    size_t hs = D / (size_t)n_heads, kvd = hs * (size_t)n_kv;
    size_t pos = 0;
    span emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, fr, fi, wcls = {0, 0};
    bool ok = take(&pos, V, D, 1, &emb) && take(&pos, L, D, 1, &rms_att) && take(&pos, L, D, D, &wq) &&
              take(&pos, L, kvd, D, &wk) && take(&pos, L, kvd, D, &wv) && take(&pos, L, D, D, &wo) &&
              take(&pos, L, D, 1, &rms_ffn) && take(&pos, L, F, D, &w1) && take(&pos, L, D, F, &w2) &&
              take(&pos, L, F, D, &w3) && take(&pos, D, 1, 1, &rms_final) &&
              take(&pos, (size_t)seq_len, hs / 2, 1, &fr) && take(&pos, (size_t)seq_len, hs / 2, 1, &fi) &&
              (shared || take(&pos, V, D, 1, &wcls));
    size_t want;
    if (!ok || !pare_mul_ok(pos, 4, &want) || want > SIZE_MAX - 28) want = SIZE_MAX;
    else want += 28;
    if (map.size != want) {
        pare_unmap(&map);
        if (want == SIZE_MAX)
            return pare_fail(PARE_ERR_FORMAT, "%s: header sizes overflow (dim %d, hidden %d, layers %d, vocab %d)", path,
                             dim, hidden, n_layers, vocab);
        return pare_fail(PARE_ERR_FORMAT, "%s: file has %zu bytes, the header (dim %d, hidden %d, layers %d, vocab %d%s) needs %zu",
                         path, map.size, dim, hidden, n_layers, vocab, shared ? "" : ", own classifier", want);
    }
    (void)fr;
    (void)fi;
    pare_model *m = model_new(n_layers, 9 * n_layers + 3);
    if (!m) {
        pare_unmap(&map);
        return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
    }
    m->maps[0] = map;
    m->n_maps = 1;
    float *w = (float *)((uint8_t *)map.addr + 28);
    if (!(m->path = pare_strdup(path)) || !(m->name = stem(path))) { st = PARE_ERR_NOMEM; goto fail; }
    m->n_embd = dim;
    m->n_vocab = vocab;
    m->n_ctx_train = seq_len;
    m->head_dim = (int)hs;
    m->norm_eps = 1e-5f;
    m->rope_base = 10000.0f;
    m->rope_scaling = PARE_ROPE_SCALING_NONE;
    for (int i = 0; i < n_layers; i++) {
        m->layers[i].n_head = n_heads;
        m->layers[i].n_head_kv = n_kv;
        m->layers[i].n_ff = hidden;
    }
#define ADD(nm, sp, idx, per, a, b)                                                                          \
    do {                                                                                                     \
        int64_t ne_[2] = {(int64_t)(a), (int64_t)(b)};                                                       \
        if (!model_add_tensor(m, nm, PARE_TYPE_F32, (b) ? 2 : 1, ne_, w + (sp).off + (size_t)(idx) * (per), \
                              (per) * sizeof(float), 0)) {                                                   \
            st = PARE_ERR_NOMEM;                                                                             \
            goto fail;                                                                                       \
        }                                                                                                    \
    } while (0)
    ADD("token_embd.weight", emb, 0, V * D, D, V);
    char nm[64];
    for (int i = 0; i < n_layers; i++) {
#define LAYER(suffix, sp, per, a, b)                                     \
        snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", i);        \
        ADD(nm, sp, i, per, a, b);
        LAYER("attn_norm", rms_att, D, D, 0);
        LAYER("attn_q", wq, D * D, D, D);
        LAYER("attn_k", wk, kvd * D, D, kvd);
        LAYER("attn_v", wv, kvd * D, D, kvd);
        LAYER("attn_output", wo, D * D, D, D);
        LAYER("ffn_norm", rms_ffn, D, D, 0);
        LAYER("ffn_gate", w1, F * D, D, F);
        LAYER("ffn_down", w2, D * F, F, D);
        LAYER("ffn_up", w3, F * D, D, F);
#undef LAYER
    }
    ADD("output_norm.weight", rms_final, 0, D, D, 0);
    if (!shared) ADD("output.weight", wcls, 0, V * D, D, V);
#undef ADD
    if ((st = model_bind(m))) goto fail;

    /* tokenizer: tok_path, else tokenizer.bin or tok<vocab>.bin beside the checkpoint */
    char *tp = NULL;
    if (tok_path) {
        st = vocab_from_llama2c(tok_path, vocab, &m->vocab);
    } else {
        char name[32];
        snprintf(name, sizeof name, "tok%d.bin", vocab);
        const char *cands[2] = {"tokenizer.bin", name};
        for (int c = 0; c < 2 && !m->vocab && !st; c++) {
            if (!(tp = beside(path, cands[c]))) { st = PARE_ERR_NOMEM; break; }
            if (file_exists(tp)) st = vocab_from_llama2c(tp, vocab, &m->vocab);
            free(tp);
            tp = NULL;
        }
    }
    if (st) goto fail;
    *out = m;
    return PARE_OK;
fail:
    pare_model_free(m);
    return st;
}

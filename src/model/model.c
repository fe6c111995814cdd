/* model.c - the model description: tensors by name, layers bound to them, shapes checked. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pare_model *model_new(int n_layer, int n_tensors) {
    pare_model *m = pare_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n_layer = n_layer;
    m->layers = pare_calloc((size_t)(n_layer > 0 ? n_layer : 1), sizeof *m->layers);
    m->tensors = pare_calloc((size_t)(n_tensors > 0 ? n_tensors : 1), sizeof *m->tensors);
    if (!m->layers || !m->tensors) { free(m->layers); free(m->tensors); free(m); return NULL; }
    m->n_tensors = 0;
    m->norm_eps = 1e-5f; m->rope_base = 10000.0f;
    return m;
}

pare_tensor *model_add_tensor(pare_model *m, const char *name, int type, int n_dims, const int64_t *ne,
                              void *data, size_t nbytes, int owned) {
    pare_tensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = pare_strdup(name);
    if (!t->name) return NULL;
    t->type = type; t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data; t->nbytes = nbytes; t->owned = owned;
    m->n_tensors++;
    return t;
}

pare_tensor *model_find_tensor(const pare_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static const char *mpath(const pare_model *m) { return m->path ? m->path : "model"; }

/* Find a tensor and check it is 1-D [a] (b == 0) or 2-D [a, b] (ggml order). */
static pare_status need(const pare_model *m, const char *name, int64_t a, int64_t b, bool optional, pare_tensor **out) {
    pare_tensor *t = model_find_tensor(m, name);
    *out = t;
    if (!t) {
        if (optional) return PARE_OK;
        return pare_fail(PARE_ERR_FORMAT, "%s: missing tensor '%s'", mpath(m), name);
    }
    int nd = b ? 2 : 1;
    int64_t tn2 = t->n_dims >= 2 ? t->ne[1] : 1;
    bool ok = t->ne[0] == a && tn2 == (b ? b : 1) && (t->n_dims < 3 || t->ne[2] == 1) && (t->n_dims < 4 || t->ne[3] == 1);
    if (!ok) {
        if (nd == 1)
            return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld]", mpath(m), name,
                             (long long)t->ne[0], (long long)tn2, (long long)a);
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", mpath(m), name,
                         (long long)t->ne[0], (long long)tn2, (long long)a, (long long)b);
    }
    if (nd == 1 && t->type != PARE_TYPE_F32)
        return pare_fail(PARE_ERR_UNSUPPORTED, "%s: norm tensor '%s' is %s (pare expects f32)", mpath(m), name, pare_type_name(t->type));
    return PARE_OK;
}

pare_status model_bind(pare_model *m) {
    if (m->n_layer < 0 || m->n_embd <= 0 || m->n_vocab <= 0 || m->head_dim <= 0 || m->head_dim % 2)
        return pare_fail(PARE_ERR_FORMAT, "%s: bad hyper-parameters (layers %d, embd %d, vocab %d, head_dim %d)",
                         mpath(m), m->n_layer, m->n_embd, m->n_vocab, m->head_dim);
    pare_status st;
    int64_t E = m->n_embd, V = m->n_vocab, hd = m->head_dim;
    if ((st = need(m, "token_embd.weight", E, V, false, &m->tok_embd))) return st;
    if ((st = need(m, "output_norm.weight", E, 0, false, &m->out_norm))) return st;
    if ((st = need(m, "output.weight", E, V, true, &m->output))) return st;
    m->tied = m->output == NULL;
    if (m->tied) m->output = m->tok_embd;
    char nm[96];
    for (int i = 0; i < m->n_layer; i++) {
        pare_layer *L = &m->layers[i];
        if (L->n_head < 0 || L->n_head_kv < 0 || L->n_ff < 0 || (L->n_head > 0) != (L->n_head_kv > 0) ||
            (L->n_head_kv > 0 && L->n_head % L->n_head_kv))
            return pare_fail(PARE_ERR_FORMAT, "%s: layer %d: %d heads cannot share %d KV heads", mpath(m), i, L->n_head, L->n_head_kv);
#define NEED(field, suffix, a, b) \
        snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", i); \
        if ((st = need(m, nm, a, b, false, &L->field))) return st;
        if (L->n_head > 0) {
            NEED(attn_norm, "attn_norm", E, 0);
            NEED(wq, "attn_q", E, L->n_head * hd);
            NEED(wk, "attn_k", E, L->n_head_kv * hd);
            NEED(wv, "attn_v", E, L->n_head_kv * hd);
            NEED(wo, "attn_output", L->n_head * hd, E);
            snprintf(nm, sizeof nm, "blk.%d.attn_output.bias", i);
            if ((st = need(m, nm, E, 0, true, &L->b_o))) return st;
        } else {
            L->b_o = NULL;
        }
        if (L->n_ff > 0) {
            NEED(ffn_norm, "ffn_norm", E, 0);
            NEED(w_gate, "ffn_gate", E, L->n_ff);
            NEED(w_up, "ffn_up", E, L->n_ff);
            NEED(w_down, "ffn_down", L->n_ff, E);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.bias", i);
            if ((st = need(m, nm, E, 0, true, &L->b_down))) return st;
        } else {
            L->b_down = NULL;
        }
#undef NEED
    }
    return PARE_OK;
}

int64_t model_n_params(const pare_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) n += pare_tensor_nelem(&m->tensors[i]);
    return n;
}

void qk_permute_to_gguf(void *dst, const void *src, int n_head, int hd, size_t row_bytes) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(d + ((size_t)h * hd + 2 * i + j) * row_bytes, s + ((size_t)h * hd + j * (hd / 2) + i) * row_bytes, row_bytes);
}

void qk_permute_from_gguf(void *dst, const void *src, int n_head, int hd, size_t row_bytes) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(d + ((size_t)h * hd + j * (hd / 2) + i) * row_bytes, s + ((size_t)h * hd + 2 * i + j) * row_bytes, row_bytes);
}

/* ---- spill file ------------------------------------------------------------------------ */
struct pare_spill { int fd; off_t end; int n, cap; void **addr; size_t *len; };

void model_spill_free(struct pare_spill *sp) {
    if (!sp) return;
    for (int i = 0; i < sp->n; i++) munmap(sp->addr[i], sp->len[i]);
    if (sp->fd >= 0) close(sp->fd);
    free(sp->addr); free(sp->len); free(sp);
}

static void *owned_copy(const void *data, size_t nbytes) {
    void *d = pare_malloc(nbytes ? nbytes : 1);
    if (d) memcpy(d, data, nbytes);
    return d;
}

pare_status model_spill_tensor(pare_model *m, pare_tensor *t, const void *data, size_t nbytes) {
    void *nd = NULL;
    int owned = 1;
    if (!m->spill && (m->spill = calloc(1, sizeof *m->spill))) {
        FILE *f = tmpfile(); /* unlinked: gone with the process */
        m->spill->fd = f ? dup(fileno(f)) : -1;
        if (f) fclose(f);
    }
    struct pare_spill *sp = m->spill;
    if (sp && sp->fd >= 0 && nbytes) {
        const off_t pg = (off_t)sysconf(_SC_PAGESIZE), off = (sp->end + pg - 1) / pg * pg;
        size_t done = 0;
        while (done < nbytes) {
            const ssize_t w = pwrite(sp->fd, (const uint8_t *)data + done, nbytes - done, off + (off_t)done);
            if (w <= 0) break;
            done += (size_t)w;
        }
        if (done == nbytes && sp->n == sp->cap) { /* room for one more mapping */
            const int cap = sp->cap ? 2 * sp->cap : 64;
            void **na = realloc(sp->addr, (size_t)cap * sizeof *na);
            if (na) sp->addr = na;
            size_t *nl = na ? realloc(sp->len, (size_t)cap * sizeof *nl) : NULL;
            if (nl) { sp->len = nl; sp->cap = cap; }
        }
        if (done == nbytes && sp->n < sp->cap) {
            void *a = mmap(NULL, nbytes, PROT_READ, MAP_SHARED, sp->fd, off);
            if (a != MAP_FAILED) {
                sp->addr[sp->n] = a; sp->len[sp->n] = nbytes; sp->n++;
                sp->end = off + (off_t)nbytes;
                nd = a;
                owned = 0;
            }
        }
    }
    if (!nd && !(nd = owned_copy(data, nbytes))) return PARE_ERR_NOMEM;
    if (t->owned) free(t->data);
    else pare_release_pages(t->data, t->nbytes);
    t->data = nd; t->nbytes = nbytes; t->owned = owned;
    return PARE_OK;
}

pare_status model_reserve_tensors(pare_model *m, int extra) {
    if (extra <= 0) return PARE_OK;
    pare_tensor *t = realloc(m->tensors, (size_t)(m->n_tensors + extra) * sizeof *t);
    if (!t) return pare_fail(PARE_ERR_NOMEM, "out of memory");
    m->tensors = t;
    pare_status st = model_bind(m);
    if (st) return st;
    if (m->n_exit) {
        /* the exits point into the array: set them up again over the same windows */
        int n = m->n_exit, *fl = malloc(2 * (size_t)n * sizeof(int));
        if (!fl) return pare_fail(PARE_ERR_NOMEM, "out of memory");
        for (int k = 0; k < n; k++) { fl[k] = m->exits[k].first; fl[n + k] = m->exits[k].last; }
        st = model_setup_exits(m, n, fl, fl + n, m->lora_scale);
        free(fl);
    }
    return st;
}

void model_lin_name(int l, int i, char *buf, size_t cap) {
    static const char *nm[PARE_N_LIN] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    snprintf(buf, cap, "blk.%d.%s.weight", l, nm[i]);
}

static const pare_tensor *lin_of(const pare_layer *L, int i) {
    const pare_tensor *t[PARE_N_LIN] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return t[i];
}

pare_status model_setup_exits(pare_model *m, int n, const int *first, const int *last, float lora_scale) {
    const char *mp = mpath(m);
    if (n < 1 || n > m->n_layer) return pare_fail(PARE_ERR_FORMAT, "%s: %d early exits for %d blocks", mp, n, m->n_layer);
    if (!(lora_scale > 0) || !isfinite(lora_scale))
        return pare_fail(PARE_ERR_FORMAT, "%s: LoRA scale %g", mp, (double)lora_scale);
    int nx = 0;
    for (int k = 0; k < n; k++) {
        if (first[k] < 0 || first[k] > last[k] || last[k] >= m->n_layer || (k && last[k] <= last[k - 1]))
            return pare_fail(PARE_ERR_FORMAT, "%s: exit %d has window %d..%d (blocks 0..%d, exits in increasing order)", mp,
                             k, first[k], last[k], m->n_layer - 1);
        nx += last[k] - first[k] + 1;
    }
    pare_exit *ex = pare_calloc((size_t)n, sizeof *ex);
    pare_layer *ly = pare_calloc((size_t)(m->n_layer + nx), sizeof *ly);
    if (!ex || !ly) { free(ex); free(ly); return PARE_ERR_NOMEM; }
    memcpy(ly, m->layers, (size_t)m->n_layer * sizeof *ly);
    int64_t E = m->n_embd, V = m->n_vocab;
    char nm[128];
    pare_status st = PARE_OK;
    int at = m->n_layer, n_lora = 0;
    for (int k = 0; k < n && !st; k++) {
        ex[k].first = first[k]; ex[k].last = last[k]; ex[k].adapted = at;
        snprintf(nm, sizeof nm, "exit.%d.norm.weight", k);
        if ((st = need(m, nm, E, 0, false, &ex[k].norm))) break;
        snprintf(nm, sizeof nm, "exit.%d.output.weight", k);
        if ((st = need(m, nm, E, V, false, &ex[k].head))) break;
        for (int l = first[k]; l <= last[k] && !st; l++, at++) {
            pare_layer *A = &ly[at];
            *A = m->layers[l];
            A->perm_attn = A->perm_o = A->perm_ffn = NULL; /* owned by the block itself */
            A->lora_scale = lora_scale;
            for (int i = 0; i < PARE_N_LIN; i++) {
                const pare_tensor *W = lin_of(A, i);
                if (!W) continue;
                char an[140], bn[140];
                model_lin_name(l, i, nm, sizeof nm);
                snprintf(an, sizeof an, "%s.lora_a", nm);
                snprintf(bn, sizeof bn, "%s.lora_b", nm);
                pare_tensor *a = model_find_tensor(m, an), *b = model_find_tensor(m, bn);
                if (!a && !b) continue;
                if (!a || !b || a->type != PARE_TYPE_F32 || b->type != PARE_TYPE_F32 || a->n_dims != 2 || b->n_dims != 2 ||
                    a->ne[0] != W->ne[0] || b->ne[1] != W->ne[1] || a->ne[1] != b->ne[0] || a->ne[1] < 1) {
                    st = pare_fail(PARE_ERR_FORMAT, "%s: LoRA adapter of '%s' is not an F32 pair [%lld, r], [r, %lld]", mp,
                                   nm, (long long)W->ne[0], (long long)W->ne[1]);
                    break;
                }
                A->lora_a[i] = a; A->lora_b[i] = b;
                n_lora++;
            }
        }
    }
    if (st) { free(ex); free(ly); return st; }
    free(m->exits);
    free(m->layers);
    m->layers = ly; m->exits = ex; m->n_exit = n; m->n_xlayer = nx; m->lora_scale = lora_scale;
    (void)n_lora;
    return PARE_OK;
}

/* sparse.c - turn a model's N:M-sparse block matrices into compressed ones the engine
 * computes with (kernels/nm.h): what makes a pruned model smaller and faster to run. */
#include "sparse.h"

#include "kernels/nm.h"
#include "kernels/r8.h"


/* The dense bytes of a mapped tensor are file pages: give them back (a later read faults
 * them in again from the file). Owned (malloc'ed) data stays: it may be the only copy. */
static void release_pages(const pare_tensor *t) {
    if (!t->owned) pare_release_pages(t->data, t->nbytes);
}

static int value_type(int src, int want) {
    if (want == PARE_TYPE_Q8_0) return PARE_TYPE_Q8_0;
    return src == PARE_TYPE_F32 || src == PARE_TYPE_F16 || src == PARE_TYPE_BF16 || src == PARE_TYPE_Q8_0 ? src : -1;
}

pare_status model_pack_nm(pare_model *m, int want, pare_nm_summary *sum) {
    pare_nm_summary s = {0};
    for (int l = 0; l < m->n_layer; l++) {
        pare_layer *L = &m->layers[l];
        pare_tensor *const ts[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        const int32_t *const perms[7] = {L->perm_attn, L->perm_attn, L->perm_attn, L->perm_o, L->perm_ffn, L->perm_ffn, NULL};
        for (int i = 0; i < 7; i++) {
            pare_tensor *t = ts[i];
            if (!t) continue;
            s.matrices++;
            s.dense_bytes += t->nbytes;
            const int vt = value_type(t->type, want);
            int n = 0, mm = 0;
            if (!t->nm && vt >= 0 && !(vt == PARE_TYPE_Q8_0 && t->ne[0] % 32))
                k_nm_detect(t->type, t->data, t->ne[1], t->ne[0], perms[i], &n, &mm);
            if (!t->nm && n) {
                pare_status st = k_nm_pack(t->type, t->data, t->ne[1], t->ne[0], perms[i], n, mm, vt, &t->nm);
                if (st) return st;
                release_pages(t);
            }
            if (t->nm) {
                s.packed++;
                s.packed_bytes += t->nm->bytes;
                if (!s.n || (double)t->nm->n / t->nm->m > (double)s.n / s.m) { s.n = t->nm->n; s.m = t->nm->m; }
            } else {
                s.packed_bytes += t->nbytes;
            }
        }
    }
    if (sum) *sum = s;
    return PARE_OK;
}

static pare_status pack_r8(pare_tensor *t, int *n) {
    if (!t || t->nm || t->r8 || t->owned || t->n_dims != 2 || !k_r8_wanted(t->type, t->ne[0])) return PARE_OK;
    pare_status st = k_r8_pack(t->type, t->data, t->ne[1], t->ne[0], &t->r8);
    if (st) return st;
    release_pages(t);
    (*n)++;
    return PARE_OK;
}

pare_status model_pack_r8(pare_model *m, int *packed) {
    int n = 0;
    pare_status st = PARE_OK;
    for (int l = 0; l < m->n_layer && !st; l++) {
        pare_layer *L = &m->layers[l];
        pare_tensor *const ts[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int i = 0; i < 7 && !st; i++) st = pack_r8(ts[i], &n);
    }
    /* the output head, unless it is the embedding table (whose rows are looked up by token) */
    if (!st && m->output != m->tok_embd) st = pack_r8(m->output, &n);
    if (packed) *packed = n;
    return st;
}

size_t model_tensor_bytes(const pare_tensor *t) {
    return t ? (t->nm ? t->nm->bytes : t->r8 ? t->r8->bytes : t->nbytes) : 0;
}

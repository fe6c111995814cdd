/* sparse.c - turn a model's N:M-sparse block matrices into compressed ones the engine
 * computes with (kernels/nm.h): what makes a pruned model smaller and faster to run. */
#include "sparse.h"

#include "kernels/nm.h"
#include "kernels/k_impl.h"
#include "kernels/r8.h"

#include <stdlib.h>
#include <string.h>


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
                if (!st && k_nm_ilv_wanted(t->nm)) st = k_nm_interleave(t->nm); /* AVX2: 2:4, 4:8 F16 */
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

/* the mapped block matrices and output head the engine re-lays */
static int engine_tensors(pare_model *m, pare_tensor **ts) {
    int n = 0;
    for (int l = 0; l < m->n_layer; l++) {
        pare_layer *L = &m->layers[l];
        pare_tensor *const lt[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int i = 0; i < 7; i++)
            if (lt[i] && !lt[i]->nm && !lt[i]->r8 && !lt[i]->owned && lt[i]->n_dims == 2) ts[n++] = lt[i];
    }
    pare_tensor *o = m->output;
    if (o && !o->nm && !o->r8 && !o->owned && o->n_dims == 2) ts[n++] = o;
    return n;
}

pare_status model_pack_engine(pare_model *m, pare_engine_summary *sum) {
    pare_engine_summary s = {0};
    pare_tensor **ts = malloc(((size_t)m->n_layer * 7 + 1) * sizeof *ts);
    if (!ts) return pare_fail(PARE_ERR_NOMEM, "out of memory");
    const int n = engine_tensors(m, ts);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += ts[i]->nbytes;
    /* copies leave the file's pages to the page cache: only when they fit in memory */
    const size_t avail = pare_mem_available_bytes();
    if (avail && total > avail / 10 * 9) { free(ts); if (sum) *sum = s; return PARE_OK; }
    pare_status st = PARE_OK;
    for (int i = 0; i < n && !st; i++) {
        pare_tensor *t = ts[i];
        if (k_slot(t->type) < 0) continue; /* a type the kernels do not run */
        /* the embedding table shares a tied head's bytes: it stays in the GGUF layout */
        if (t != m->tok_embd && k_r8_wanted(t->type, t->ne[0])) {
            if ((st = k_r8_pack(t->type, t->data, t->ne[1], t->ne[0], &t->r8))) break;
            release_pages(t); /* t->data stays readable from the file */
            s.interleaved++;
            continue;
        }
        void *d = k_alloc_weights(t->nbytes, NULL);
        if (!d) { st = pare_fail(PARE_ERR_NOMEM, "out of memory copying %s (%zu bytes)", t->name, t->nbytes); break; }
        memcpy(d, t->data, t->nbytes);
        release_pages(t);
        t->data = d;
        t->owned = 1;
        s.copied++;
    }
    s.bytes = total;
    free(ts);
    if (sum) *sum = s;
    return st;
}

size_t model_tensor_bytes(const pare_tensor *t) {
    return t ? (t->nm ? t->nm->bytes : t->r8 ? t->r8->bytes : t->nbytes) : 0;
}

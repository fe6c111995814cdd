/* blocks.c - physical removal of whole blocks (SLEB, ShortGPT): the removed blocks' tensors
 * are freed, the remaining blk.N.* tensors renamed to consecutive N, the layer array
 * compacted, so that the GGUF / HF writers produce a standard model with fewer blocks.
 * (Declared in prune/prune.h with the block-removal methods.) */
#include "model.h"
#include "prune/prune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "blk.N.rest" -> N and a pointer to "rest"; -1 if the name is not of that form. */
static int blk_index(const char *name, const char **rest) {
    if (strncmp(name, "blk.", 4)) return -1;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    char *e;
    errno = 0;
    long v = strtol(p, &e, 10);
    if (errno || *e != '.' || v < 0 || v > 1000000) return -1;
    *rest = e + 1;
    return (int)v;
}

pare_status model_remove_blocks(pare_model *m, const int *remove, int k) {
    if (!m) return pare_fail(PARE_ERR_ARG, "model_remove_blocks: no model");
    const char *path = m->path ? m->path : "model";
    int L = m->n_layer;
    if (k < 0 || (k > 0 && !remove)) return pare_fail(PARE_ERR_ARG, "model_remove_blocks: bad block list");
    if (k == 0) return PARE_OK;
    if (m->n_exit)
        return pare_fail(PARE_ERR_UNSUPPORTED, "%s: removing blocks of a model with early exits (merge it first: pare tune --merge)", path);
    if (k >= L) return pare_fail(PARE_ERR_ARG, "%s: cannot remove %d of %d blocks (at least one must remain)", path, k, L);
    int *newidx = pare_calloc((size_t)L, sizeof(int));
    if (!newidx) return PARE_ERR_NOMEM;
    for (int i = 0; i < k; i++) {
        if (remove[i] < 0 || remove[i] >= L) {
            free(newidx);
            return pare_fail(PARE_ERR_ARG, "%s: block %d does not exist (the model has %d)", path, remove[i], L);
        }
        if (newidx[remove[i]]) {
            free(newidx);
            return pare_fail(PARE_ERR_ARG, "%s: block %d listed twice for removal", path, remove[i]);
        }
        newidx[remove[i]] = 1;
    }
    int nl = 0;
    for (int l = 0; l < L; l++) newidx[l] = newidx[l] ? -1 : nl++;

    /* new names first (all allocations), so that a failure leaves the model unchanged */
    char **names = pare_calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof(char *));
    if (!names) { free(newidx); return PARE_ERR_NOMEM; }
    for (int i = 0; i < m->n_tensors; i++) {
        const char *rest;
        int b = blk_index(m->tensors[i].name, &rest);
        if (b < 0 || b >= L || newidx[b] < 0 || newidx[b] == b) continue;
        size_t n = strlen(rest) + 32;
        if (!(names[i] = malloc(n))) {
            for (int j = 0; j < i; j++) free(names[j]);
            free(names); free(newidx);
            return pare_fail(PARE_ERR_NOMEM, "%s: out of memory renaming tensors", path);
        }
        snprintf(names[i], n, "blk.%d.%s", newidx[b], rest);
    }
    /* tensors: drop those of removed blocks, rename the others, compact */
    int w = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        const char *rest;
        int b = blk_index(t->name, &rest);
        if (b >= 0 && b < L && newidx[b] < 0) {
            free(t->name);
            if (t->owned) free(t->data);
            continue;
        }
        if (names[i]) { free(t->name); t->name = names[i]; }
        if (w != i) m->tensors[w] = *t;
        w++;
    }
    for (int i = w; i < m->n_tensors; i++) memset(&m->tensors[i], 0, sizeof m->tensors[i]);
    m->n_tensors = w;
    /* layers */
    for (int l = 0; l < L; l++) {
        if (newidx[l] < 0) {
            free(m->layers[l].perm_attn);
            free(m->layers[l].perm_o);
            free(m->layers[l].perm_ffn);
            continue;
        }
        if (newidx[l] != l) m->layers[newidx[l]] = m->layers[l];
        pare_layer *ly = &m->layers[newidx[l]]; /* bound again below */
        ly->attn_norm = ly->wq = ly->wk = ly->wv = ly->wo = ly->ffn_norm = ly->w_gate = ly->w_up = ly->w_down = NULL;
        ly->b_o = ly->b_down = NULL;
    }
    for (int l = nl; l < L; l++) memset(&m->layers[l], 0, sizeof m->layers[l]);
    m->n_layer = nl;
    free(names);
    free(newidx);
    return model_bind(m); /* re-points every layer (and tok_embd, output, ...) at the moved tensors */
}

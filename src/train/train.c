/* train.c - the optimizer around the float training network: which parameters train,
 * AdamW, clipping, the schedule, gradient accumulation, LoRA merging and checkpoints. */
#include "train.h"

#include <cblas.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void train_opts_default(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->lr = 1e-3f; o->min_lr_ratio = 0.1f; o->warmup = 0; o->total_steps = 1000;
    o->beta1 = 0.9f; o->beta2 = 0.95f; o->eps = 1e-8f; o->weight_decay = 0.1f; o->decay_1d = 0;
    o->grad_clip = 1.0f; o->accum = 1;
    o->layer_first = -1; o->layer_last = -1;
    o->lora_rank = 8; o->lora_alpha = 16;
}

typedef struct tr_param {
    tparam_f *slot;
    float *w, *g, *m, *v;
    size_t n;
    int decay;
} tr_param;

struct train_state {
    pare_model *m;
    train_opts o;
    char *freeze, *lora;      /* owned copies of the patterns */
    tnet_f *net;
    tr_param *tr;
    int n_tr;
    int64_t step;
    int B, T;
    int32_t *in, *tgt;
    double *partial;          /* per-chunk sums of squares */
    size_t n_partial;
    void **owned;             /* LoRA values and optimizer arrays */
    int n_owned, cap_owned;
};

#define NORM_CHUNK 65536

static float *st_alloc(train_state *ts, size_t n) {
    if (ts->n_owned == ts->cap_owned) {
        int cap = ts->cap_owned ? 2 * ts->cap_owned : 64;
        void **p = realloc(ts->owned, (size_t)cap * sizeof *p);
        if (!p) { pare_fail(PARE_ERR_NOMEM, "out of memory"); return NULL; }
        ts->owned = p; ts->cap_owned = cap;
    }
    float *p = pare_calloc(n ? n : 1, sizeof(float));
    if (p) ts->owned[ts->n_owned++] = p;
    return p;
}

/* comma-separated fnmatch patterns */
static int matches(const char *patterns, const char *name) {
    if (!patterns || !*patterns) return 0;
    char buf[256];
    const char *p = patterns;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && len < sizeof buf) {
            memcpy(buf, p, len);
            buf[len] = 0;
            if (!fnmatch(buf, name, 0)) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* block index of "blk.N.*", or -1 */
static int block_of(const char *name) {
    int l;
    if (sscanf(name, "blk.%d.", &l) == 1) return l;
    return -1;
}

static int in_window(const train_opts *o, const char *name) {
    if (o->layer_first < 0 && o->layer_last < 0) return 1;
    int l = block_of(name);
    if (l < 0) return 0; /* a window trains blocks only */
    if (o->layer_first >= 0 && l < o->layer_first) return 0;
    if (o->layer_last >= 0 && l > o->layer_last) return 0;
    return 1;
}

/* Make a model tensor an owned F32 array (dequantized or copied when it is not already). */
pare_status train_own_f32(pare_tensor *t) {
    if (t->type == PARE_TYPE_F32 && t->owned) return PARE_OK;
    int64_t cols = t->ne[0], rows = pare_tensor_nelem(t) / (cols ? cols : 1);
    size_t nb;
    if (!pare_mul_ok((size_t)(rows * cols), sizeof(float), &nb)) return pare_fail(PARE_ERR_NOMEM, "tensor %s too large", t->name);
    float *d = pare_malloc(nb);
    if (!d) return PARE_ERR_NOMEM;
    if (t->type == PARE_TYPE_F32) memcpy(d, t->data, nb);
    else
        for (int64_t r = 0; r < rows; r++) pare_tensor_row_f32(t, r, d + r * cols);
    if (t->owned) free(t->data);
    t->data = d; t->type = PARE_TYPE_F32; t->nbytes = nb; t->owned = 1;
    return PARE_OK;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void train_lora_init(float *a, int64_t in, size_t n, uint64_t seed, int slot) {
    double bound = 1.0 / sqrt((double)in);
    for (size_t j = 0; j < n; j++) {
        uint64_t z = mix64(seed ^ mix64(((uint64_t)slot << 40) ^ j));
        a[j] = (float)(bound * (2.0 * ((double)(z >> 11) / 9007199254740992.0) - 1.0));
    }
}

pare_status train_new(pare_model *m, const train_opts *o, int B, int T, train_state **out) {
    *out = NULL;
    if (B < 1 || T < 1 || (int64_t)B * T > (1 << 26)) return pare_fail(PARE_ERR_ARG, "training: bad batch %d x %d", B, T);
    if (!(o->lr > 0) || o->total_steps < 1 || o->accum < 1 || o->warmup < 0 || !(o->beta1 >= 0 && o->beta1 < 1) ||
        !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) || o->weight_decay < 0 || o->grad_clip < 0 ||
        o->min_lr_ratio < 0 || o->min_lr_ratio > 1)
        return pare_fail(PARE_ERR_ARG, "training: bad optimizer settings (lr %g, steps %d, accum %d, warmup %d)",
                         (double)o->lr, o->total_steps, o->accum, o->warmup);
    if (o->lora && *o->lora && (o->lora_rank < 1 || !(o->lora_alpha > 0)))
        return pare_fail(PARE_ERR_ARG, "training: LoRA rank %d, alpha %g", o->lora_rank, (double)o->lora_alpha);
    train_state *ts = pare_calloc(1, sizeof *ts);
    if (!ts) return PARE_ERR_NOMEM;
    ts->m = m; ts->o = *o; ts->B = B; ts->T = T;
    ts->freeze = o->freeze ? pare_strdup(o->freeze) : NULL;
    ts->lora = o->lora ? pare_strdup(o->lora) : NULL;
    ts->o.freeze = ts->freeze; ts->o.lora = ts->lora;
    pare_status st = tnet_new_f(m, &ts->net);
    if (st) { train_free(ts); return st; }
    tnet_f *n = ts->net;
    /* adapters first (they add slots) */
    int n_base = n->n_params;
    for (int i = 0; i < n_base && !st; i++) {
        tparam_f *p = &n->params[i];
        if (p->lin && matches(ts->lora, p->name) && in_window(&ts->o, p->name))
            st = tnet_add_lora_f(n, p->name, ts->o.lora_rank, ts->o.lora_alpha);
    }
    if (!st) {
        ts->tr = pare_calloc((size_t)n->n_params, sizeof *ts->tr);
        if (!ts->tr) st = PARE_ERR_NOMEM;
    }
    for (int i = 0; i < n->n_params && !st; i++) {
        tparam_f *p = &n->params[i];
        size_t cnt = (size_t)(p->rows * p->cols);
        int trained;
        if (p->lora) {
            trained = 1;
            float *w = st_alloc(ts, cnt);
            if (!w) { st = PARE_ERR_NOMEM; break; }
            if (p->lora == 1) train_lora_init(w, p->cols, cnt, ts->o.seed, i); /* B stays 0 */
            *p->w = w;
        } else {
            pare_tensor *t = model_find_tensor(m, p->name);
            if (!t || t->ne[0] != p->cols || pare_tensor_nelem(t) != (int64_t)cnt) {
                st = pare_fail(PARE_ERR_ARG, "training: model tensor '%s' missing or of another shape", p->name);
                break;
            }
            trained = !(p->lin && p->lin->r) && !matches(ts->freeze, p->name) && in_window(&ts->o, p->name);
            if (trained) {
                if ((st = train_own_f32(t))) break;
                *p->w = t->data;
            } else if (t->type == PARE_TYPE_F32) {
                *p->w = t->data; /* read only */
            } else {
                float *w = tnet_alloc_f(n, cnt);
                if (!w) { st = PARE_ERR_NOMEM; break; }
                for (int64_t r = 0; r < p->rows; r++) pare_tensor_row_f32(t, r, w + r * p->cols);
                *p->w = w;
            }
        }
        if (trained) {
            tr_param *q = &ts->tr[ts->n_tr++];
            q->slot = p; q->w = *p->w; q->n = cnt;
            q->decay = p->rows > 1 || ts->o.decay_1d;
            q->g = st_alloc(ts, cnt); q->m = st_alloc(ts, cnt); q->v = st_alloc(ts, cnt);
            if (!q->g || !q->m || !q->v) { st = PARE_ERR_NOMEM; break; }
            *p->gw = q->g;
            size_t nch = (cnt + NORM_CHUNK - 1) / NORM_CHUNK;
            if (nch > ts->n_partial) ts->n_partial = nch;
        }
    }
    if (!st && ts->n_tr == 0) st = pare_fail(PARE_ERR_ARG, "training: every parameter is frozen");
    if (!st) st = tnet_reserve_f(n, B, T);
    if (!st) {
        ts->in = pare_calloc((size_t)B * T, sizeof(int32_t));
        ts->tgt = pare_calloc((size_t)B * T, sizeof(int32_t));
        ts->partial = pare_calloc(ts->n_partial + 1, sizeof(double));
        if (!ts->in || !ts->tgt || !ts->partial) st = PARE_ERR_NOMEM;
    }
    if (st) { train_free(ts); return st; }
    *out = ts;
    return PARE_OK;
}

void train_free(train_state *ts) {
    if (!ts) return;
    tnet_free_f(ts->net);
    for (int i = 0; i < ts->n_owned; i++) free(ts->owned[i]);
    free(ts->owned);
    free(ts->tr); free(ts->in); free(ts->tgt); free(ts->partial);
    free(ts->freeze); free(ts->lora);
    free(ts);
}

int64_t train_step_count(const train_state *ts) { return ts->step; }
const train_opts *train_get_opts(const train_state *ts) { return &ts->o; }
tnet_f *train_net(train_state *ts) { return ts->net; }
int64_t train_n_trained(const train_state *ts) {
    int64_t s = 0;
    for (int i = 0; i < ts->n_tr; i++) s += (int64_t)ts->tr[i].n;
    return s;
}

double train_lr_at(const train_opts *o, int64_t step) {
    if (step < o->warmup) return (double)o->lr * (double)(step + 1) / (double)o->warmup;
    int64_t span = o->total_steps - o->warmup;
    double prog = span > 0 ? (double)(step - o->warmup) / (double)span : 1.0;
    if (prog > 1) prog = 1;
    double mr = o->min_lr_ratio;
    return (double)o->lr * (mr + (1 - mr) * 0.5 * (1 + cos(M_PI * prog)));
}

static void split_rows(train_state *ts, const int32_t *rows, int B) {
    int T = ts->T;
    for (int b = 0; b < B; b++) {
        memcpy(ts->in + (size_t)b * T, rows + (size_t)b * (T + 1), (size_t)T * sizeof(int32_t));
        memcpy(ts->tgt + (size_t)b * T, rows + (size_t)b * (T + 1) + 1, (size_t)T * sizeof(int32_t));
    }
}

void train_adamw(const train_opts *o, double lr, int64_t step, float coef, int decay, float *w, const float *g, float *m,
                 float *v, size_t n) {
    double t = (double)step;
    float bc1 = (float)(1 - pow(o->beta1, t)), bc2s = (float)sqrt(1 - pow(o->beta2, t));
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps, step_size = (float)(lr / bc1);
    /* PyTorch AdamW: w *= 1 - lr wd; m, v moving averages; w -= lr/bc1 m / (sqrt(v)/sqrt(bc2) + eps) */
    float dec = decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
    #pragma omp parallel for schedule(static)
    for (size_t j = 0; j < n; j++) {
        float gj = g[j] * coef;
        m[j] = b1 * m[j] + (1 - b1) * gj;
        v[j] = b2 * v[j] + (1 - b2) * gj * gj;
        w[j] = w[j] * dec - step_size * m[j] / (sqrtf(v[j]) / bc2s + eps);
    }
}

double train_sumsq(const float *g, size_t n, double *partial) {
    int64_t nch = (int64_t)((n + NORM_CHUNK - 1) / NORM_CHUNK);
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        size_t j0 = (size_t)c * NORM_CHUNK, j1 = j0 + NORM_CHUNK < n ? j0 + NORM_CHUNK : n;
        double s = 0;
        for (size_t j = j0; j < j1; j++) s += (double)g[j] * g[j];
        partial[c] = s;
    }
    double ss = 0;
    for (int64_t c = 0; c < nch; c++) ss += partial[c];
    return ss;
}

pare_status train_step(train_state *ts, const int32_t *tokens, train_info *info) {
    const train_opts *o = &ts->o;
    int B = ts->B, T = ts->T;
    for (int i = 0; i < ts->n_tr; i++) memset(ts->tr[i].g, 0, ts->tr[i].n * sizeof(float));
    double nll = 0;
    int64_t cnt = 0;
    float dscale = (float)(1.0 / ((double)o->accum * B * T));
    for (int a = 0; a < o->accum; a++) {
        split_rows(ts, tokens + (size_t)a * B * (T + 1), B);
        double s;
        int64_t c;
        pare_status st = tnet_grad_f(ts->net, ts->in, ts->tgt, B, T, dscale, &s, &c);
        if (st) return st;
        nll += s; cnt += c;
    }
    /* global gradient norm: chunk sums in a fixed order */
    double ss = 0;
    for (int i = 0; i < ts->n_tr; i++) ss += train_sumsq(ts->tr[i].g, ts->tr[i].n, ts->partial);
    double norm = sqrt(ss);
    float coef = (o->grad_clip > 0 && norm > o->grad_clip) ? (float)(o->grad_clip / (norm + 1e-6)) : 1.0f;
    double lr = train_lr_at(o, ts->step);
    for (int i = 0; i < ts->n_tr; i++) {
        const tr_param *q = &ts->tr[i];
        train_adamw(o, lr, ts->step + 1, coef, q->decay, q->w, q->g, q->m, q->v, q->n);
    }
    ts->step++;
    if (info) {
        info->loss = cnt ? nll / (double)cnt : 0;
        info->grad_norm = norm;
        info->lr = lr;
        info->tokens = cnt;
    }
    return PARE_OK;
}

pare_status train_eval(train_state *ts, const int32_t *tokens, int B, double *loss) {
    *loss = 0;
    double s = 0;
    int64_t c = 0;
    for (int b0 = 0; b0 < B; b0 += ts->B) {
        int nb = B - b0 < ts->B ? B - b0 : ts->B;
        split_rows(ts, tokens + (size_t)b0 * (ts->T + 1), nb);
        double s1;
        int64_t c1;
        pare_status st = tnet_forward_f(ts->net, ts->in, ts->tgt, nb, ts->T, NULL, &s1, &c1);
        if (st) return st;
        s += s1; c += c1;
    }
    *loss = c ? s / (double)c : 0;
    return PARE_OK;
}

pare_status train_merge_lora(train_state *ts) {
    tnet_f *n = ts->net;
    for (int i = 0; i < n->n_params; i++) {
        tparam_f *p = &n->params[i];
        if (p->lora || !p->lin || !p->lin->r) continue;
        tlin_f *L = p->lin;
        pare_tensor *t = model_find_tensor(ts->m, p->name);
        if (!t) return pare_fail(PARE_ERR_ARG, "LoRA merge: no tensor '%s' in the model", p->name);
        pare_status st = train_own_f32(t);
        if (st) return st;
        float *W = t->data;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->out, L->in, L->r, L->scale, L->b, L->r, L->a, L->in,
                    1.0f, W, L->in);
        memset(L->b, 0, (size_t)L->out * L->r * sizeof(float));
        *p->w = W;
    }
    return PARE_OK;
}

/* ---- checkpoints --------------------------------------------------------------------- */
#define CKPT_MAGIC "PARECKPT"
#define CKPT_VERSION 1u

typedef struct ckpt_hdr {
    int64_t step;
    float lr, min_lr_ratio, beta1, beta2, eps, weight_decay, grad_clip, lora_alpha;
    int32_t warmup, total_steps, decay_1d, accum, B, T;
    uint32_t n_params;
    uint64_t extra_len;
} ckpt_hdr;

pare_status train_save(const train_state *ts, const char *path, const void *extra, size_t extra_len) {
    pare_out out;
    pare_status st = pare_out_open(&out, path);
    if (st) return st;
    ckpt_hdr h;
    memset(&h, 0, sizeof h);
    const train_opts *o = &ts->o;
    h.step = ts->step; h.lr = o->lr; h.min_lr_ratio = o->min_lr_ratio; h.beta1 = o->beta1; h.beta2 = o->beta2;
    h.eps = o->eps; h.weight_decay = o->weight_decay; h.grad_clip = o->grad_clip; h.lora_alpha = o->lora_alpha;
    h.warmup = o->warmup; h.total_steps = o->total_steps; h.decay_1d = o->decay_1d; h.accum = o->accum;
    h.B = ts->B; h.T = ts->T; h.n_params = (uint32_t)ts->n_tr; h.extra_len = extra_len;
    uint32_t ver = CKPT_VERSION;
    st = pare_out_write(&out, CKPT_MAGIC, 8);
    if (!st) st = pare_out_write(&out, &ver, sizeof ver);
    if (!st) st = pare_out_write(&out, &h, sizeof h);
    for (int i = 0; i < ts->n_tr && !st; i++) {
        const tr_param *q = &ts->tr[i];
        uint32_t len = (uint32_t)strlen(q->slot->name);
        uint64_t cnt = q->n;
        st = pare_out_write(&out, &len, sizeof len);
        if (!st) st = pare_out_write(&out, q->slot->name, len);
        if (!st) st = pare_out_write(&out, &cnt, sizeof cnt);
        if (!st) st = pare_out_write(&out, q->w, q->n * sizeof(float));
        if (!st) st = pare_out_write(&out, q->m, q->n * sizeof(float));
        if (!st) st = pare_out_write(&out, q->v, q->n * sizeof(float));
    }
    if (!st && extra_len) st = pare_out_write(&out, extra, extra_len);
    if (!st) st = pare_out_write(&out, "END\n", 4);
    if (st) { pare_out_abort(&out); return st; }
    return pare_out_commit(&out);
}

typedef struct rd { const uint8_t *p; size_t left; } rd;
static int take(rd *r, void *dst, size_t n) {
    if (r->left < n) return 0;
    if (dst) memcpy(dst, r->p, n);
    r->p += n; r->left -= n;
    return 1;
}

pare_status train_load(train_state *ts, const char *path, void *extra, size_t extra_len) {
    pare_map map;
    pare_status st = pare_map_file(path, &map);
    if (st) return st;
    rd r = {map.addr, map.size};
    char magic[8];
    uint32_t ver;
    ckpt_hdr h;
    st = PARE_OK;
    if (!take(&r, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) || !take(&r, &ver, sizeof ver) || !take(&r, &h, sizeof h)) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: not a pare training checkpoint", path);
        goto done;
    }
    if (ver != CKPT_VERSION) { st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: checkpoint version %u", path, ver); goto done; }
    if (h.n_params != (uint32_t)ts->n_tr || h.extra_len != extra_len || h.step < 0) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: the checkpoint trains %u tensors (%d here) or has other data state", path,
                       h.n_params, ts->n_tr);
        goto done;
    }
    if (h.B != ts->B || h.T != ts->T || h.lora_alpha != ts->o.lora_alpha) {
        st = pare_fail(PARE_ERR_ARG, "%s: saved with batch %d x %d (LoRA alpha %g), resumed with %d x %d (%g)", path, h.B,
                       h.T, (double)h.lora_alpha, ts->B, ts->T, (double)ts->o.lora_alpha);
        goto done;
    }
    /* check everything before changing anything */
    rd r2 = r;
    for (int i = 0; i < ts->n_tr; i++) {
        uint32_t len;
        uint64_t cnt;
        char name[256];
        if (!take(&r2, &len, sizeof len) || len >= sizeof name || !take(&r2, name, len) || !take(&r2, &cnt, sizeof cnt)) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: truncated", path);
            goto done;
        }
        name[len] = 0;
        if (strcmp(name, ts->tr[i].slot->name) || cnt != ts->tr[i].n) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor %d is '%s' with %llu values, expected '%s' with %zu", path, i, name,
                           (unsigned long long)cnt, ts->tr[i].slot->name, ts->tr[i].n);
            goto done;
        }
        if (cnt > r2.left / 12 || !take(&r2, NULL, 3 * cnt * sizeof(float))) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: truncated", path);
            goto done;
        }
    }
    if (r2.left != extra_len + 4 || memcmp(r2.p + extra_len, "END\n", 4)) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: truncated or trailing bytes", path);
        goto done;
    }
    for (int i = 0; i < ts->n_tr; i++) {
        uint32_t len;
        uint64_t cnt;
        tr_param *q = &ts->tr[i];
        take(&r, &len, sizeof len); take(&r, NULL, len); take(&r, &cnt, sizeof cnt);
        take(&r, q->w, q->n * sizeof(float));
        take(&r, q->m, q->n * sizeof(float));
        take(&r, q->v, q->n * sizeof(float));
    }
    if (extra_len) take(&r, extra, extra_len);
    ts->step = h.step;
    train_opts *o = &ts->o;
    o->lr = h.lr; o->min_lr_ratio = h.min_lr_ratio; o->beta1 = h.beta1; o->beta2 = h.beta2; o->eps = h.eps;
    o->weight_decay = h.weight_decay; o->grad_clip = h.grad_clip; o->warmup = h.warmup; o->total_steps = h.total_steps;
    o->decay_1d = h.decay_1d; o->accum = h.accum;
    for (int i = 0; i < ts->n_tr; i++) ts->tr[i].decay = ts->tr[i].slot->rows > 1 || o->decay_1d;
done:
    pare_unmap(&map);
    return st;
}

/* ---- data ---------------------------------------------------------------------------- */
pare_status train_data_load(const pare_vocab *v, const char *path, train_data *d, uint64_t seed) {
    memset(d, 0, sizeof *d);
    char *buf;
    size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    int32_t *ids = NULL;
    size_t n = 0;
    st = pare_tokenize(v, buf, len, 1, &ids, &n);
    free(buf);
    if (st) return st;
    if (n < 2) { free(ids); return pare_fail(PARE_ERR_ARG, "%s: only %zu tokens", path, n); }
    d->ids = ids; d->n = n; d->rng = mix64(seed ^ 0x7061726574726e31ull);
    return PARE_OK;
}

void train_data_free(train_data *d) {
    free(d->ids);
    memset(d, 0, sizeof *d);
}

pare_status train_data_batch(train_data *d, int B, int T, int32_t *out) {
    if (d->n < (size_t)T + 1)
        return pare_fail(PARE_ERR_ARG, "training data: %zu tokens, fewer than a window of %d", d->n, T + 1);
    uint64_t span = (uint64_t)(d->n - (size_t)T); /* window starts 0 .. n-T-1 */
    for (int b = 0; b < B; b++) {
        d->rng += 0x9e3779b97f4a7c15ull;
        uint64_t off = mix64(d->rng) % span;
        memcpy(out + (size_t)b * (T + 1), d->ids + off, (size_t)(T + 1) * sizeof(int32_t));
    }
    return PARE_OK;
}

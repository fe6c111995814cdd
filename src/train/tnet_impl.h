/* tnet_impl.h - the training network's code for one element type. Included twice by tnet.c
 * with TNET_R (float or double), TNET_S (_f or _d) and TNET_DOUBLE (0 or 1) defined; no
 * include guard on purpose. Every loop that sums across threads sums in a fixed order, so
 * results do not depend on the thread count or on scheduling.
 *
 * The float forward computes what src/model/forward.c computes, operation by operation
 * (RMSNorm with a double sum of squares, the same RoPE angles, silu(g) * u, matmuls through
 * the same sgemm call); only attention is summed in a different order (two matmuls
 * instead of an online softmax). */
#define R TNET_R
#if TNET_DOUBLE
#define GEMM cblas_dgemm
#define EXP exp
#define LOG log
#define SQRT sqrt
#define COS cos
#define SIN sin
#else
#define GEMM cblas_sgemm
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#define COS cosf
#define SIN sinf
#endif

/* C = alpha op(A) op(B) + beta C, row-major; ta/tb: transpose A/B. One BLAS call in the
 * calling thread (the network keeps OpenBLAS's own threads at 1 while it runs). */
static void TN(gemm)(int ta, int tb, int M, int Nn, int K, R alpha, const R *A, int lda, const R *B, int ldb,
                     R beta, R *C, int ldc) {
    if (M <= 0 || Nn <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < Nn; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, Nn, K, alpha, A, lda, B,
         ldb, beta, C, ldc);
}

/* The same, the rows of C split over the OpenMP threads (each row block one BLAS call):
 * all parallelism is OpenMP's, so BLAS threads and OpenMP threads never wait on each other. */
static void TN(pgemm)(int ta, int tb, int M, int Nn, int K, R alpha, const R *A, int lda, const R *B, int ldb,
                      R beta, R *C, int ldc) {
    int nt = omp_get_max_threads();
    if (nt > M / 16) nt = M / 16;
    if (nt <= 1 || omp_in_parallel() || (double)M * Nn * K < 2e5) {
        TN(gemm)(ta, tb, M, Nn, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int m0 = (int)((int64_t)M * t / n) & ~7, m1 = t == n - 1 ? M : (int)((int64_t)M * (t + 1) / n) & ~7;
        const R *Ab = ta ? A + m0 : A + (size_t)m0 * lda;
        TN(gemm)(ta, tb, m1 - m0, Nn, K, alpha, Ab, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
    }
}

/* ---- operations ----------------------------------------------------------------------- */
void TN(top_embed_fwd)(R *x, const R *emb, const int32_t *tok, int N, int E) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(x + (size_t)n * E, emb + (size_t)tok[n] * E, (size_t)E * sizeof(R));
}

#define COLS 32 /* columns per task when a sum runs down the rows */

void TN(top_embed_bwd)(R *gemb, const R *dx, const int32_t *tok, int N, int E) {
    int nc = (E + COLS - 1) / COLS;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < nc; c++) {
        int e0 = c * COLS, e1 = e0 + COLS < E ? e0 + COLS : E;
        for (int n = 0; n < N; n++) {
            R *g = gemb + (size_t)tok[n] * E;
            const R *d = dx + (size_t)n * E;
            for (int e = e0; e < e1; e++) g[e] += d[e];
        }
    }
}

void TN(top_rmsnorm_fwd)(R *y, R *rstd, const R *x, const R *w, int N, int E, double eps) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const R *xr = x + (size_t)n * E;
        R *yr = y + (size_t)n * E;
        double ss = 0;
        for (int i = 0; i < E; i++) ss += (double)xr[i] * xr[i];
        R r = (R)1 / SQRT((R)(ss / E) + (R)eps);
        if (rstd) rstd[n] = r;
        for (int i = 0; i < E; i++) yr[i] = xr[i] * r * w[i];
    }
}

/* y_i = w_i x_i r, r = (mean x^2 + eps)^-1/2:
 * dx_j = r (dy_j w_j - xh_j mean_i(dy_i w_i xh_i)), xh = x r;  dw_i = sum_n dy_i xh_i */
void TN(top_rmsnorm_bwd)(R *dx, R *gw, const R *dy, const R *x, const R *w, const R *rstd, int N, int E) {
    if (dx) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const R *xr = x + (size_t)n * E, *dyr = dy + (size_t)n * E;
            R *dxr = dx + (size_t)n * E, r = rstd[n];
            double dot = 0;
            for (int i = 0; i < E; i++) dot += (double)(dyr[i] * w[i]) * (double)(xr[i] * r);
            R c = (R)(dot / E);
            for (int i = 0; i < E; i++) dxr[i] += r * (dyr[i] * w[i] - xr[i] * r * c);
        }
    }
    if (gw) {
        int nc = (E + COLS - 1) / COLS;
        #pragma omp parallel for schedule(static)
        for (int c = 0; c < nc; c++) {
            int e0 = c * COLS, e1 = e0 + COLS < E ? e0 + COLS : E;
            for (int n = 0; n < N; n++) {
                const R *xr = x + (size_t)n * E, *dyr = dy + (size_t)n * E;
                R r = rstd[n];
                for (int e = e0; e < e1; e++) gw[e] += dyr[e] * (xr[e] * r);
            }
        }
    }
}

void TN(top_rope_tables)(R *cs, R *sn, int T, int hd, const float *freq) {
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            R th = (R)t * (R)freq[i]; /* float: (float)pos * freq[i], as rope_apply */
            cs[(size_t)t * half + i] = COS(th);
            sn[(size_t)t * half + i] = SIN(th);
        }
}

void TN(top_rope)(R *x, int N, int T, int nh, int hd, const R *cs, const R *sn, int inverse) {
    int half = hd / 2;
    size_t width = (size_t)nh * hd;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const R *c = cs + (size_t)(n % T) * half, *s = sn + (size_t)(n % T) * half;
        R *row = x + (size_t)n * width;
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < half; i++) {
                R *p = row + (size_t)h * hd + 2 * i;
                R a = p[0], b = p[1];
                if (!inverse) {
                    p[0] = a * c[i] - b * s[i];
                    p[1] = a * s[i] + b * c[i];
                } else {
                    p[0] = a * c[i] + b * s[i];
                    p[1] = b * c[i] - a * s[i];
                }
            }
    }
}

void TN(top_linear_fwd)(const TN(tlin) *L, const R *X, int N, R *Y, R *xa) {
    TN(pgemm)(0, 1, N, L->out, L->in, 1, X, L->in, L->w, L->in, 0, Y, L->out);
    if (L->r) {
        TN(pgemm)(0, 1, N, L->r, L->in, 1, X, L->in, L->a, L->in, 0, xa, L->r);
        TN(pgemm)(0, 1, N, L->out, L->r, L->scale, xa, L->r, L->b, L->r, 1, Y, L->out);
    }
}

void TN(top_linear_bwd)(const TN(tlin) *L, const R *X, const R *xa, const R *dY, int N, R *dX, int accumulate,
                        R *tmp) {
    if (L->gw) TN(pgemm)(1, 0, L->out, L->in, N, 1, dY, L->out, X, L->in, 1, L->gw, L->in);
    if (L->r) {
        /* Y += s xa B^T:  dB += s dY^T xa;  d(xa) = s dY B;  dA += d(xa)^T X;  dX += d(xa) A */
        if (L->gb) TN(pgemm)(1, 0, L->out, L->r, N, L->scale, dY, L->out, xa, L->r, 1, L->gb, L->r);
        TN(pgemm)(0, 0, N, L->r, L->out, L->scale, dY, L->out, L->b, L->r, 0, tmp, L->r);
        if (L->ga) TN(pgemm)(1, 0, L->r, L->in, N, 1, tmp, L->r, X, L->in, 1, L->ga, L->in);
    }
    if (dX) {
        TN(pgemm)(0, 0, N, L->in, L->out, 1, dY, L->out, L->w, L->in, accumulate ? 1 : 0, dX, L->in);
        if (L->r) TN(pgemm)(0, 0, N, L->in, L->r, 1, tmp, L->r, L->a, L->in, 1, dX, L->in);
    }
}

/* Scores S (T x T, row t = query t) to probabilities in place, causal; lse[t] kept. */
static void TN(softmax_causal)(R *S, R *lse, int T) {
    for (int t = 0; t < T; t++) {
        R *s = S + (size_t)t * T;
        R mx = s[0];
        for (int p = 1; p <= t; p++) if (s[p] > mx) mx = s[p];
        double sum = 0;
        for (int p = 0; p <= t; p++) { s[p] = EXP(s[p] - mx); sum += s[p]; }
        lse[t] = mx + (R)log(sum);
        R inv = (R)(1.0 / sum);
        for (int p = 0; p <= t; p++) s[p] *= inv;
        for (int p = t + 1; p < T; p++) s[p] = 0;
    }
}

/* one task per (sequence, head); each thread has its own workspace */
void TN(top_attn_fwd)(R *O, R *lse, const R *Q, const R *K, const R *V, int B, int T, int H, int KV, int hd, R *ws,
                      int nws) {
    int qd = H * hd, kvd = KV * hd, grp = H / KV, ntask = B * H;
    R scale = (R)1 / SQRT((R)hd);
    size_t wsz = TNET_ATTN_WS(T);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nws > 0 ? nws : 1)
    for (int task = 0; task < ntask; task++) {
        int b = task / H, h = task % H;
        R *S = ws + (size_t)omp_get_thread_num() * wsz;
        size_t q0 = (size_t)b * T * qd + (size_t)h * hd, k0 = (size_t)b * T * kvd + (size_t)(h / grp) * hd;
        TN(gemm)(0, 1, T, T, hd, scale, Q + q0, qd, K + k0, kvd, 0, S, T);
        TN(softmax_causal)(S, lse + ((size_t)b * H + h) * T, T);
        TN(gemm)(0, 0, T, hd, T, 1, S, T, V + k0, kvd, 0, O + q0, qd);
    }
}

/* S = scale Q K^T, P = softmax(S) (causal), O = P V:
 * dP = dO V^T;  dS = P (dP - rowsum(dO O));  dQ = scale dS K;  dK = scale dS^T Q;  dV = P^T dO.
 * One task per (sequence, KV head): the heads that share it add to its dK, dV in order. */
void TN(top_attn_bwd)(R *dQ, R *dK, R *dV, const R *dO, const R *O, const R *lse, const R *Q, const R *K,
                      const R *V, int B, int T, int H, int KV, int hd, R *ws, int nws) {
    int qd = H * hd, kvd = KV * hd, grp = H / KV, ntask = B * KV;
    R scale = (R)1 / SQRT((R)hd);
    size_t wsz = TNET_ATTN_WS(T);
    memset(dK, 0, (size_t)B * T * kvd * sizeof(R));
    memset(dV, 0, (size_t)B * T * kvd * sizeof(R));
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nws > 0 ? nws : 1)
    for (int task = 0; task < ntask; task++) {
        int b = task / KV, kvh = task % KV;
        R *P = ws + (size_t)omp_get_thread_num() * wsz, *dP = P + (size_t)T * T, *D = dP + (size_t)T * T;
        size_t k0 = (size_t)b * T * kvd + (size_t)kvh * hd;
        for (int h = kvh * grp; h < (kvh + 1) * grp; h++) {
            size_t q0 = (size_t)b * T * qd + (size_t)h * hd;
            const R *ls = lse + ((size_t)b * H + h) * T;
            TN(gemm)(0, 1, T, T, hd, scale, Q + q0, qd, K + k0, kvd, 0, P, T);
            TN(gemm)(0, 1, T, T, hd, 1, dO + q0, qd, V + k0, kvd, 0, dP, T);
            for (int t = 0; t < T; t++) {
                R *p = P + (size_t)t * T, *dp = dP + (size_t)t * T;
                const R *o = O + q0 + (size_t)t * qd, *d = dO + q0 + (size_t)t * qd;
                double dd = 0;
                for (int i = 0; i < hd; i++) dd += (double)d[i] * o[i];
                D[t] = (R)dd;
                for (int s = 0; s <= t; s++) {
                    p[s] = EXP(p[s] - ls[t]);
                    dp[s] = p[s] * (dp[s] - D[t]);
                }
                for (int s = t + 1; s < T; s++) p[s] = dp[s] = 0;
            }
            TN(gemm)(0, 0, T, hd, T, scale, dP, T, K + k0, kvd, 0, dQ + q0, qd);
            TN(gemm)(1, 0, T, hd, T, scale, dP, T, Q + q0, qd, 1, dK + k0, kvd);
            TN(gemm)(1, 0, T, hd, T, 1, P, T, dO + q0, qd, 1, dV + k0, kvd);
        }
    }
}

void TN(top_swiglu_fwd)(R *h, const R *g, const R *u, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        R gi = g[i];
        h[i] = gi / (1 + EXP(-gi)) * u[i]; /* as forward.c */
    }
}

void TN(top_swiglu_bwd)(R *dg, R *du, const R *dh, const R *g, const R *u, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        R gi = g[i], sg = 1 / (1 + EXP(-gi)), silu = gi * sg;
        R dgi = dh[i] * u[i] * sg * (1 + gi * (1 - sg));
        du[i] = dh[i] * silu;
        dg[i] = dgi;
    }
}

void TN(top_ce)(R *d, const R *logits, const int32_t *tgt, int N, int V, R dscale, double *nll) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const R *l = logits + (size_t)n * V;
        R *dr = d ? d + (size_t)n * V : NULL;
        if (tgt[n] < 0) {
            nll[n] = 0;
            if (dr) for (int j = 0; j < V; j++) dr[j] = 0;
            continue;
        }
        R mx = l[0];
        for (int j = 1; j < V; j++) if (l[j] > mx) mx = l[j];
        double sum = 0;
        for (int j = 0; j < V; j++) sum += EXP(l[j] - mx);
        double lse = (double)mx + log(sum);
        nll[n] = lse - (double)l[tgt[n]];
        if (dr) {
            R lr = (R)lse;
            for (int j = 0; j < V; j++) dr[j] = dscale * EXP(l[j] - lr);
            dr[tgt[n]] -= dscale;
        }
    }
}

/* ---- the network ------------------------------------------------------------------------ */
static pare_status TN(add_slot)(TN(tnet) *n, const char *name, R **w, R **gw, int64_t rows, int64_t cols, int lora,
                                TN(tlin) *lin) {
    if (n->n_params == n->cap_params) {
        int cap = n->cap_params ? 2 * n->cap_params : 64;
        TN(tparam) *p = realloc(n->params, (size_t)cap * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "out of memory");
        n->params = p; n->cap_params = cap;
    }
    TN(tparam) *p = &n->params[n->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->w = w; p->gw = gw; p->rows = rows; p->cols = cols; p->lora = lora; p->lin = lin;
    return PARE_OK;
}

static pare_status TN(add_lin)(TN(tnet) *n, TN(tlin) *L, const char *name, int in, int out) {
    L->in = in; L->out = out;
    return TN(add_slot)(n, name, &L->w, &L->gw, out, in, 0, L);
}

pare_status TN(tnet_new)(const pare_model *m, TN(tnet) **out) {
    *out = NULL;
    for (int l = 0; l < m->n_layer; l++)
        if (m->layers[l].b_o || m->layers[l].b_down)
            return pare_fail(PARE_ERR_UNSUPPORTED, "block %d has an o/down bias (FLAP's compensation): the training network "
                             "has none; tune or train the model before FLAP, or use flap-nobias", l);
    TN(tnet) *n = pare_calloc(1, sizeof *n);
    if (!n) return PARE_ERR_NOMEM;
    n->n_layer = m->n_layer; n->n_embd = m->n_embd; n->n_vocab = m->n_vocab; n->head_dim = m->head_dim;
    n->eps = m->norm_eps; n->tied = m->tied;
    n->lowest = INT_MAX;
    n->layers = pare_calloc((size_t)(m->n_layer > 0 ? m->n_layer : 1), sizeof *n->layers);
    n->freq = pare_calloc((size_t)m->head_dim / 2 + 1, sizeof(float));
    if (!n->layers || !n->freq) { TN(tnet_free)(n); return PARE_ERR_NOMEM; }
    rope_freqs(m, n->freq);
    int E = m->n_embd, hd = m->head_dim;
    pare_status st = TN(add_slot)(n, "token_embd.weight", &n->emb, &n->g_emb, m->n_vocab, E, 0, NULL);
    char nm[96];
    for (int l = 0; l < m->n_layer && !st; l++) {
        const pare_layer *ML = &m->layers[l];
        TN(tlayer) *L = &n->layers[l];
        L->n_head = ML->n_head; L->n_head_kv = ML->n_head_kv; L->n_ff = ML->n_ff;
        int qd = L->n_head * hd, kvd = L->n_head_kv * hd;
        if (qd > n->max_q) n->max_q = qd;
        if (kvd > n->max_kv) n->max_kv = kvd;
        if (L->n_ff > n->max_ff) n->max_ff = L->n_ff;
        if (L->n_head > 0) {
#define SLOT(suffix, fn) snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l); if (!st) st = fn
            SLOT("attn_norm", TN(add_slot)(n, nm, &L->attn_norm, &L->g_attn_norm, 1, E, 0, NULL));
            SLOT("attn_q", TN(add_lin)(n, &L->wq, nm, E, qd));
            SLOT("attn_k", TN(add_lin)(n, &L->wk, nm, E, kvd));
            SLOT("attn_v", TN(add_lin)(n, &L->wv, nm, E, kvd));
            SLOT("attn_output", TN(add_lin)(n, &L->wo, nm, qd, E));
        }
        if (L->n_ff > 0) {
            SLOT("ffn_norm", TN(add_slot)(n, nm, &L->ffn_norm, &L->g_ffn_norm, 1, E, 0, NULL));
            SLOT("ffn_gate", TN(add_lin)(n, &L->gate, nm, E, L->n_ff));
            SLOT("ffn_up", TN(add_lin)(n, &L->up, nm, E, L->n_ff));
            SLOT("ffn_down", TN(add_lin)(n, &L->down, nm, L->n_ff, E));
#undef SLOT
        }
    }
    if (!st) st = TN(add_slot)(n, "output_norm.weight", &n->out_norm, &n->g_out_norm, 1, E, 0, NULL);
    n->head.in = E; n->head.out = m->n_vocab;
    if (!st && !n->tied) st = TN(add_slot)(n, "output.weight", &n->head.w, &n->head.gw, m->n_vocab, E, 0, &n->head);
    if (st) { TN(tnet_free)(n); return st; }
    *out = n;
    return PARE_OK;
}

static void TN(free_bufs)(TN(tnet) *n) {
    for (int i = 0; i < n->n_bufs; i++) free(n->bufs[i]);
    free(n->bufs);
    n->bufs = NULL; n->n_bufs = n->cap_bufs = 0;
}

void TN(tnet_free)(TN(tnet) *n) {
    if (!n) return;
    TN(free_bufs)(n);
    free(n->params);
    free(n->layers);
    free(n->freq);
    free(n);
}

TN(tparam) *TN(tnet_param)(TN(tnet) *n, const char *name) {
    for (int i = 0; i < n->n_params; i++)
        if (!strcmp(n->params[i].name, name)) return &n->params[i];
    return NULL;
}

R *TN(tnet_alloc)(TN(tnet) *n, size_t count) {
    if (n->n_bufs == n->cap_bufs) {
        int cap = n->cap_bufs ? 2 * n->cap_bufs : 64;
        void **b = realloc(n->bufs, (size_t)cap * sizeof *b);
        if (!b) { pare_fail(PARE_ERR_NOMEM, "out of memory"); return NULL; }
        n->bufs = b; n->cap_bufs = cap;
    }
    R *p = pare_calloc(count ? count : 1, sizeof(R));
    if (p) n->bufs[n->n_bufs++] = p;
    return p;
}

pare_status TN(tnet_add_lora)(TN(tnet) *n, const char *name, int r, double alpha) {
    TN(tparam) *p = TN(tnet_param)(n, name);
    if (!p || !p->lin || p->lora) return pare_fail(PARE_ERR_ARG, "LoRA: '%s' is not a linear layer of the model", name);
    TN(tlin) *L = p->lin;
    if (L->r) return pare_fail(PARE_ERR_ARG, "LoRA: '%s' already has an adapter", name);
    if (r < 1 || r > L->in || r > L->out)
        return pare_fail(PARE_ERR_ARG, "LoRA: rank %d does not fit '%s' (%d x %d)", r, name, L->out, L->in);
    char nm[128];
    L->r = r; L->scale = (R)(alpha / r);
    if (r > n->max_r) n->max_r = r;
    snprintf(nm, sizeof nm, "%s.lora_a", name);
    pare_status st = TN(add_slot)(n, nm, &L->a, &L->ga, r, L->in, 1, L);
    snprintf(nm, sizeof nm, "%s.lora_b", name);
    if (!st) st = TN(add_slot)(n, nm, &L->b, &L->gb, L->out, r, 2, L);
    return st;
}

static uint64_t TN(mix)(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

pare_status TN(tnet_own_params)(TN(tnet) *n, const pare_model *m, int trainable, uint64_t seed) {
    for (int i = 0; i < n->n_params; i++) {
        TN(tparam) *p = &n->params[i];
        size_t cnt = (size_t)(p->rows * p->cols);
        R *w = TN(tnet_alloc)(n, cnt);
        if (!w) return PARE_ERR_NOMEM;
        if (p->lora == 1) {
            double bound = 1.0 / sqrt((double)p->cols);
            for (size_t j = 0; j < cnt; j++) {
                uint64_t z = TN(mix)(seed ^ TN(mix)(((uint64_t)i << 40) ^ j));
                w[j] = (R)(bound * (2.0 * ((double)(z >> 11) / 9007199254740992.0) - 1.0));
            }
        } else if (p->lora == 0) {
            const pare_tensor *t = model_find_tensor(m, p->name);
            if (!t || t->ne[0] != p->cols || pare_tensor_nelem(t) != (int64_t)cnt)
                return pare_fail(PARE_ERR_ARG, "training: model tensor '%s' missing or of another shape", p->name);
            float *row = malloc((size_t)p->cols * sizeof(float));
            if (!row) return pare_fail(PARE_ERR_NOMEM, "out of memory");
            for (int64_t r = 0; r < p->rows; r++) {
                if (t->n_dims >= 2) pare_tensor_row_f32(t, r, row);
                else memcpy(row, t->data, (size_t)p->cols * sizeof(float));
                for (int64_t c = 0; c < p->cols; c++) w[r * p->cols + c] = (R)row[c];
            }
            free(row);
        }
        *p->w = w;
        if (trainable) {
            if (!(*p->gw = TN(tnet_alloc)(n, cnt))) return PARE_ERR_NOMEM;
        }
    }
    return PARE_OK;
}

static int TN(lin_trained)(const TN(tlin) *L) { return L->gw || L->ga || L->gb; }

/* the lowest sub-block that trains something (see tnet.lowest), among the blocks run */
static int TN(find_lowest)(const TN(tnet) *n, int run) {
    int lowest = INT_MAX;
    if (n->out_norm && n->g_out_norm) lowest = 2 * n->n_layer;
    if (TN(lin_trained)(&n->head)) lowest = 2 * n->n_layer;
    for (int l = run - 1; l >= 0; l--) {
        const TN(tlayer) *L = &n->layers[l];
        if (L->n_ff > 0 && (L->g_ffn_norm || TN(lin_trained)(&L->gate) || TN(lin_trained)(&L->up) ||
                            TN(lin_trained)(&L->down)))
            lowest = 2 * l + 1;
        if (L->n_head > 0 && (L->g_attn_norm || TN(lin_trained)(&L->wq) || TN(lin_trained)(&L->wk) ||
                              TN(lin_trained)(&L->wv) || TN(lin_trained)(&L->wo)))
            lowest = 2 * l;
    }
    if (n->g_emb) lowest = -1;
    return lowest;
}

/* Allocate (plan == NULL) or count into *plan the activations and scratch of a B x T batch.
 * One routine for both, so the memory plan is what is allocated. */
static pare_status TN(reserve_impl)(TN(tnet) *n, int B, int T, size_t *plan) {
    if (B < 1 || T < 1) return pare_fail(PARE_ERR_ARG, "training: batch %d x %d tokens", B, T);
    int run = n->n_run > 0 && n->n_run < n->n_layer ? n->n_run : n->n_layer;
    int lowest = TN(find_lowest)(n, run);
    if (!plan) {
        for (int i = 0; i < n->n_params; i++) {
            if (*n->params[i].w) continue;
            int l;
            if (sscanf(n->params[i].name, "blk.%d.", &l) == 1 && (l >= run || (n->frozen_fwd && 2 * l + 1 < lowest)))
                continue; /* not run, or run by frozen_fwd */
            return pare_fail(PARE_ERR_ARG, "training: parameter '%s' has no values", n->params[i].name);
        }
        if (n->tied) { n->head.w = n->emb; n->head.gw = n->g_emb; }
    }
    if (plan) *plan = 0;
    else {
        if (n->capB && n->lowest == lowest && n->res_run == run && B * (size_t)T <= (size_t)n->capB * n->capT &&
            T <= n->capT)
            return PARE_OK;
        n->lowest = lowest;
        n->res_run = run;
        /* buffers owned by the net but not parameters: drop and allocate anew. Parameters
         * allocated with tnet_alloc sit in the same list, so keep those. */
        void **keep = NULL;
        int n_keep = 0;
        if (n->n_bufs) {
            keep = malloc((size_t)n->n_bufs * sizeof *keep);
            if (!keep) return pare_fail(PARE_ERR_NOMEM, "out of memory");
            for (int i = 0; i < n->n_bufs; i++) {
                int is_param = 0;
                for (int j = 0; j < n->n_params && !is_param; j++)
                    is_param = n->bufs[i] == (void *)*n->params[j].w || n->bufs[i] == (void *)*n->params[j].gw;
                if (is_param) keep[n_keep++] = n->bufs[i];
                else free(n->bufs[i]);
            }
            for (int i = 0; i < n_keep; i++) n->bufs[i] = keep[i];
            n->n_bufs = n_keep;
            free(keep);
        }
    }
    size_t N = (size_t)B * T, E = (size_t)n->n_embd;
    size_t Q = (size_t)(n->max_q ? n->max_q : 1), KVd = (size_t)(n->max_kv ? n->max_kv : 1);
    size_t F = (size_t)(n->max_ff ? n->max_ff : 1), RR = (size_t)(n->max_r ? n->max_r : 1);
    size_t V = (size_t)n->n_vocab, half = (size_t)n->head_dim / 2;
    int maxH = 1;
    for (int l = 0; l < n->n_layer; l++) if (n->layers[l].n_head > maxH) maxH = n->layers[l].n_head;
    int chunk = (int)((size_t)(1 << 20) / V);
    if (chunk < 16) chunk = 16;
    if ((size_t)chunk > N) chunk = (int)N;
    size_t C = (size_t)chunk;
    int nws = omp_get_max_threads();
    if (!plan) n->chunk = chunk;
#define ALLOC(ptr, cnt)                                                               \
    do {                                                                              \
        size_t cnt_ = (cnt);                                                          \
        if (plan) { *plan += (cnt_ ? cnt_ : 1) * sizeof(R); (ptr) = NULL; }           \
        else if (!((ptr) = TN(tnet_alloc)(n, cnt_))) return PARE_ERR_NOMEM;           \
    } while (0)
    R *cs, *sn, *x, *xf, *rstdf, *xnf, *dx, *dxn, *tmp, *dq, *dk, *dv, *dout, *h, *dh, *dg, *du, *lt, *ws, *logit, *nll;
    ALLOC(cs, (size_t)T * half + 1); ALLOC(sn, (size_t)T * half + 1);
    ALLOC(x, N * E); ALLOC(xf, N * E); ALLOC(rstdf, N); ALLOC(xnf, N * E);
    ALLOC(dx, N * E); ALLOC(dxn, N * E); ALLOC(tmp, N * E);
    ALLOC(dq, N * Q); ALLOC(dk, N * KVd); ALLOC(dv, N * KVd); ALLOC(dout, N * Q);
    ALLOC(h, N * F); ALLOC(dh, N * F); ALLOC(dg, N * F); ALLOC(du, N * F);
    ALLOC(lt, (N > C ? N : C) * RR);
    ALLOC(ws, (size_t)nws * TNET_ATTN_WS(T));
    ALLOC(logit, C * V);
    ALLOC(nll, (N * sizeof(double) + sizeof(R) - 1) / sizeof(R));
    if (!plan) {
        n->cs = cs; n->sn = sn; n->x = x; n->xf = xf; n->rstdf = rstdf; n->xnf = xnf; n->dx = dx; n->dxn = dxn;
        n->tmp = tmp; n->dq = dq; n->dk = dk; n->dv = dv; n->dout = dout; n->h = h; n->dh = dh; n->dg = dg;
        n->du = du; n->lt = lt; n->ws = ws; n->nws = nws; n->logit = logit; n->nll = (double *)nll;
    }
    /* shared scratch for the blocks whose activations are not kept */
    TN(tlayer) sc;
    memset(&sc, 0, sizeof sc);
    ALLOC(sc.xn1, N * E); ALLOC(sc.rstd1, N); ALLOC(sc.q, N * Q); ALLOC(sc.k, N * KVd); ALLOC(sc.v, N * KVd);
    ALLOC(sc.o, N * Q); ALLOC(sc.lse, (size_t)B * maxH * T);
    ALLOC(sc.xn2, N * E); ALLOC(sc.rstd2, N); ALLOC(sc.g, N * F); ALLOC(sc.u, N * F);
    R *sc_xa;
    ALLOC(sc_xa, N * RR);
    for (int l = 0; l < n->n_layer; l++) {
        TN(tlayer) *L = &n->layers[l], tmpL, *D = plan ? &tmpL : L;
        if (plan) tmpL = *L;
        D->saved = lowest != INT_MAX && 2 * l + 1 >= lowest && l < run;
        size_t qd = (size_t)L->n_head * n->head_dim, kvd = (size_t)L->n_head_kv * n->head_dim, ff = (size_t)L->n_ff;
        if (!D->saved) {
            if (plan) continue;
            L->x_in = L->x_mid = NULL;
            L->xn1 = sc.xn1; L->rstd1 = sc.rstd1; L->q = sc.q; L->k = sc.k; L->v = sc.v; L->o = sc.o;
            L->lse = sc.lse; L->xn2 = sc.xn2; L->rstd2 = sc.rstd2; L->g = sc.g; L->u = sc.u;
            TN(tlin) *lins[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
            for (int i = 0; i < 7; i++) lins[i]->xa = sc_xa;
            continue;
        }
        if (L->n_head > 0) {
            ALLOC(D->x_in, N * E); ALLOC(D->rstd1, N); ALLOC(D->xn1, N * E); ALLOC(D->q, N * qd);
            ALLOC(D->k, N * kvd); ALLOC(D->v, N * kvd); ALLOC(D->o, N * qd); ALLOC(D->lse, (size_t)B * L->n_head * T);
            TN(tlin) *lins[4] = {&D->wq, &D->wk, &D->wv, &D->wo};
            for (int i = 0; i < 4; i++) if (lins[i]->r) ALLOC(lins[i]->xa, N * lins[i]->r);
        }
        if (L->n_ff > 0) {
            ALLOC(D->x_mid, N * E); ALLOC(D->rstd2, N); ALLOC(D->xn2, N * E); ALLOC(D->g, N * ff); ALLOC(D->u, N * ff);
            TN(tlin) *lins[3] = {&D->gate, &D->up, &D->down};
            for (int i = 0; i < 3; i++) if (lins[i]->r) ALLOC(lins[i]->xa, N * lins[i]->r);
        }
    }
    if (n->head.r) {
        R *hxa;
        ALLOC(hxa, C * n->head.r);
        if (!plan) n->head.xa = hxa;
    }
#undef ALLOC
    if (plan) return PARE_OK;
    n->capB = B; n->capT = T;
    TN(top_rope_tables)(n->cs, n->sn, T, n->head_dim, n->freq);
    return PARE_OK;
}

pare_status TN(tnet_reserve)(TN(tnet) *n, int B, int T) { return TN(reserve_impl)(n, B, T, NULL); }

size_t TN(tnet_plan_bytes)(TN(tnet) *n, int B, int T) {
    size_t b = 0;
    if (TN(reserve_impl)(n, B, T, &b)) return 0;
    return b;
}

static void TN(add_into)(R *x, const R *y, size_t cnt) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < cnt; i++) x[i] += y[i];
}

/* One block forward on n->x (N = B*T rows); save: keep x_in / x_mid for the backward pass. */
static void TN(block_fwd)(TN(tnet) *n, TN(tlayer) *L, int B, int T, int save) {
    int N = B * T, E = n->n_embd, hd = n->head_dim;
    size_t NE = (size_t)N * E;
    if (L->n_head > 0) {
        if (save) memcpy(L->x_in, n->x, NE * sizeof(R));
        TN(top_rmsnorm_fwd)(L->xn1, L->rstd1, n->x, L->attn_norm, N, E, n->eps);
        TN(top_linear_fwd)(&L->wq, L->xn1, N, L->q, L->wq.xa);
        TN(top_linear_fwd)(&L->wk, L->xn1, N, L->k, L->wk.xa);
        TN(top_linear_fwd)(&L->wv, L->xn1, N, L->v, L->wv.xa);
        TN(top_rope)(L->q, N, T, L->n_head, hd, n->cs, n->sn, 0);
        TN(top_rope)(L->k, N, T, L->n_head_kv, hd, n->cs, n->sn, 0);
        TN(top_attn_fwd)(L->o, L->lse, L->q, L->k, L->v, B, T, L->n_head, L->n_head_kv, hd, n->ws, n->nws);
        TN(top_linear_fwd)(&L->wo, L->o, N, n->tmp, L->wo.xa);
        TN(add_into)(n->x, n->tmp, NE);
    }
    if (L->n_ff > 0) {
        if (save) memcpy(L->x_mid, n->x, NE * sizeof(R));
        TN(top_rmsnorm_fwd)(L->xn2, L->rstd2, n->x, L->ffn_norm, N, E, n->eps);
        TN(top_linear_fwd)(&L->gate, L->xn2, N, L->g, L->gate.xa);
        TN(top_linear_fwd)(&L->up, L->xn2, N, L->u, L->up.xa);
        TN(top_swiglu_fwd)(n->h, L->g, L->u, (size_t)N * L->n_ff);
        TN(top_linear_fwd)(&L->down, n->h, N, n->tmp, L->down.xa);
        TN(add_into)(n->x, n->tmp, NE);
    }
}

/* Backward through sub-blocks of block l that are at or above n->lowest; n->dx holds the
 * gradient of the block's output and becomes that of its input (when something below
 * needs it). */
static void TN(block_bwd)(TN(tnet) *n, TN(tlayer) *L, int l, int B, int T) {
    int N = B * T, E = n->n_embd, hd = n->head_dim;
    if (L->n_ff > 0 && 2 * l + 1 >= n->lowest) {
        int below = 2 * l + 1 > n->lowest;
        size_t NF = (size_t)N * L->n_ff;
        TN(top_swiglu_fwd)(n->h, L->g, L->u, NF);
        TN(top_linear_bwd)(&L->down, n->h, L->down.xa, n->dx, N, n->dh, 0, n->lt);
        TN(top_swiglu_bwd)(n->dg, n->du, n->dh, L->g, L->u, NF);
        int need = below || L->g_ffn_norm;
        TN(top_linear_bwd)(&L->gate, L->xn2, L->gate.xa, n->dg, N, need ? n->dxn : NULL, 0, n->lt);
        TN(top_linear_bwd)(&L->up, L->xn2, L->up.xa, n->du, N, need ? n->dxn : NULL, 1, n->lt);
        if (need)
            TN(top_rmsnorm_bwd)(below ? n->dx : NULL, L->g_ffn_norm, n->dxn, L->x_mid, L->ffn_norm, L->rstd2, N, E);
    }
    if (L->n_head > 0 && 2 * l >= n->lowest) {
        int below = 2 * l > n->lowest;
        int qd = L->n_head * hd, kvd = L->n_head_kv * hd;
        TN(top_linear_bwd)(&L->wo, L->o, L->wo.xa, n->dx, N, n->dout, 0, n->lt);
        TN(top_attn_bwd)(n->dq, n->dk, n->dv, n->dout, L->o, L->lse, L->q, L->k, L->v, B, T, L->n_head,
                         L->n_head_kv, hd, n->ws, n->nws);
        TN(top_rope)(n->dq, N, T, L->n_head, hd, n->cs, n->sn, 1);
        TN(top_rope)(n->dk, N, T, L->n_head_kv, hd, n->cs, n->sn, 1);
        int need = below || L->g_attn_norm;
        R *dxn = need ? n->dxn : NULL;
        TN(top_linear_bwd)(&L->wq, L->xn1, L->wq.xa, n->dq, N, dxn, 0, n->lt);
        TN(top_linear_bwd)(&L->wk, L->xn1, L->wk.xa, n->dk, N, dxn, 1, n->lt);
        TN(top_linear_bwd)(&L->wv, L->xn1, L->wv.xa, n->dv, N, dxn, 1, n->lt);
        (void)qd; (void)kvd;
        if (need)
            TN(top_rmsnorm_bwd)(below ? n->dx : NULL, L->g_attn_norm, n->dxn, L->x_in, L->attn_norm, L->rstd1, N, E);
    }
}

static pare_status TN(run)(TN(tnet) *n, const int32_t *in, const int32_t *tgt, int B, int T, R *logits, int grad,
                           R dscale, double *nll, int64_t *count) {
    if (nll) *nll = 0;
    if (count) *count = 0;
    if (B < 1 || T < 1 || (size_t)B * T > (size_t)n->capB * n->capT || T > n->capT)
        return pare_fail(PARE_ERR_ARG, "training: a batch of %d x %d tokens does not fit the %d x %d reserved", B, T,
                         n->capB, n->capT);
    int N = B * T, E = n->n_embd, V = n->n_vocab;
    for (int i = 0; i < N; i++) {
        if (in[i] < 0 || in[i] >= V) return pare_fail(PARE_ERR_ARG, "token id %d out of range (vocabulary has %d)", in[i], V);
        if (tgt && tgt[i] >= V) return pare_fail(PARE_ERR_ARG, "target id %d out of range (vocabulary has %d)", tgt[i], V);
    }
    grad = grad && n->lowest != INT_MAX && tgt;
    int run = n->res_run;
    TN(top_embed_fwd)(n->x, n->emb, in, N, E);
    for (int l = 0; l < run; l++) {
        const TN(tlayer) *Lf = &n->layers[l];
        if (n->frozen_fwd && !Lf->saved && ((Lf->n_head > 0 && !Lf->wq.w) || (Lf->n_ff > 0 && !Lf->gate.w))) {
            pare_status st = n->frozen_fwd(n->frozen_user, l, n->x, B, T);
            if (st) return st;
            continue;
        }
        TN(block_fwd)(n, &n->layers[l], B, T, grad && n->layers[l].saved);
    }
    size_t NE = (size_t)N * E;
    if (grad) memcpy(n->xf, n->x, NE * sizeof(R));
    TN(top_rmsnorm_fwd)(n->xnf, n->rstdf, n->x, n->out_norm, N, E, n->eps);
    /* head and loss, n->chunk rows at a time; in training the head's backward right away */
    if (grad) memset(n->dxn, 0, NE * sizeof(R));
    for (int r0 = 0; r0 < N; r0 += n->chunk) {
        int nr = N - r0 < n->chunk ? N - r0 : n->chunk;
        R *lg = logits ? logits + (size_t)r0 * V : n->logit;
        const R *xr = n->xnf + (size_t)r0 * E;
        TN(top_linear_fwd)(&n->head, xr, nr, lg, n->head.xa);
        if (tgt) TN(top_ce)(grad ? n->logit : NULL, lg, tgt + r0, nr, V, dscale, n->nll + r0);
        if (grad) TN(top_linear_bwd)(&n->head, xr, n->head.xa, n->logit, nr, n->dxn + (size_t)r0 * E, 0, n->lt);
    }
    if (tgt) {
        double s = 0;
        int64_t c = 0;
        for (int i = 0; i < N; i++) if (tgt[i] >= 0) { s += n->nll[i]; c++; }
        if (nll) *nll = s;
        if (count) *count = c;
    }
    if (!grad) return PARE_OK;
    memset(n->dx, 0, NE * sizeof(R));
    TN(top_rmsnorm_bwd)(n->lowest < 2 * n->n_layer ? n->dx : NULL, n->g_out_norm, n->dxn, n->xf, n->out_norm, n->rstdf,
                        N, E);
    for (int l = run - 1; l >= 0 && 2 * l + 1 >= n->lowest; l--) TN(block_bwd)(n, &n->layers[l], l, B, T);
    if (n->g_emb) TN(top_embed_bwd)(n->g_emb, n->dx, in, N, E);
    return PARE_OK;
}

/* OpenBLAS's own threads stay at 1 while the network runs: the parallelism is OpenMP's. */
static pare_status TN(run_blas1)(TN(tnet) *n, const int32_t *in, const int32_t *tgt, int B, int T, R *logits,
                                 int grad, R dscale, double *nll, int64_t *count) {
    int ob = openblas_get_num_threads();
    if (ob != 1) openblas_set_num_threads(1);
    pare_status st = TN(run)(n, in, tgt, B, T, logits, grad, dscale, nll, count);
    if (ob != 1) openblas_set_num_threads(ob);
    return st;
}

pare_status TN(tnet_forward)(TN(tnet) *n, const int32_t *in, const int32_t *tgt, int B, int T, R *logits,
                             double *nll, int64_t *count) {
    return TN(run_blas1)(n, in, tgt, B, T, logits, 0, 0, nll, count);
}

pare_status TN(tnet_grad)(TN(tnet) *n, const int32_t *in, const int32_t *tgt, int B, int T, R dscale, double *nll,
                          int64_t *count) {
    if (!tgt) return pare_fail(PARE_ERR_ARG, "training: no targets");
    return TN(run_blas1)(n, in, tgt, B, T, NULL, 1, dscale, nll, count);
}

#undef R
#undef GEMM
#undef EXP
#undef LOG
#undef SQRT
#undef COS
#undef SIN
#undef COLS

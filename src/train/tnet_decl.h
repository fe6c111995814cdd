/* tnet_decl.h - the types and functions of the training network for one element type.
 * Included twice by tnet.h, with TNET_R (float or double) and TNET_S (_f or _d) defined;
 * no include guard on purpose. */
#ifndef TN
/* workspace of one thread for attention with T positions */
#define TNET_ATTN_WS(T) (2 * (size_t)(T) * (size_t)(T) + (size_t)(T))
#define TN_CAT2(a, b) a##b
#define TN_CAT(a, b) TN_CAT2(a, b)
#define TN(name) TN_CAT(name, TNET_S)
#endif

/* A linear layer y = W x (+ scale * B A x with a LoRA adapter). */
typedef struct TN(tlin) {
    int in, out;
    TNET_R *w;           /* [out x in] row-major, one row per output unit (GGUF ne = {in, out}) */
    TNET_R *gw;          /* gradient of w, or NULL: frozen */
    int r;               /* LoRA rank, 0 = no adapter */
    TNET_R scale;        /* alpha / r */
    TNET_R *a, *b;       /* LoRA A [r x in] and B [out x r] */
    TNET_R *ga, *gb;     /* their gradients (NULL = frozen) */
    TNET_R *xa;          /* kept activation X A^T [N x r] */
} TN(tlin);

typedef struct TN(tlayer) {
    int n_head, n_head_kv, n_ff;  /* 0 heads: no attention sub-block; 0 ff: no MLP */
    TNET_R *attn_norm, *g_attn_norm;
    TN(tlin) wq, wk, wv, wo;
    TNET_R *ffn_norm, *g_ffn_norm;
    TN(tlin) gate, up, down;
    int saved;           /* activations kept (else they point at shared scratch) */
    TNET_R *x_in, *rstd1, *xn1, *q, *k, *v, *o, *lse;   /* attention sub-block */
    TNET_R *x_mid, *rstd2, *xn2, *g, *u;                /* MLP sub-block */
} TN(tlayer);

/* A named parameter: where the net reads its values (*w) and writes its gradient (*gw). */
typedef struct TN(tparam) {
    char name[96];
    TNET_R **w, **gw;
    int64_t rows, cols;  /* cols = GGUF ne[0]; 1-D tensors have rows = 1 */
    int lora;            /* 1: a LoRA A matrix, 2: a LoRA B matrix, 0: a model tensor */
    TN(tlin) *lin;       /* the linear layer it belongs to, or NULL (norms, embedding) */
} TN(tparam);

typedef struct TN(tnet) {
    int n_layer, n_embd, n_vocab, head_dim;
    double eps;
    int tied;            /* the output head is the token embedding */
    float *freq;         /* head_dim/2 rotary frequencies (rope_freqs of the model) */
    TNET_R *emb, *g_emb; /* [n_vocab x n_embd] */
    TNET_R *out_norm, *g_out_norm;
    TN(tlin) head;       /* w = emb when tied */
    TN(tlayer) *layers;
    TN(tparam) *params;
    int n_params, cap_params;
    int max_q, max_kv, max_ff, max_r;
    int n_run;           /* blocks 0..n_run-1 run, the rest are skipped (an early exit; 0: all) */
    /* When set, the blocks below the lowest trained sub-block (which keep no activations) and
     * without weights of their own in the net run through this: x is
     * [B*T x n_embd], in place. (Edge-LLM tuning runs them on the inference engine's
     * compressed weights.) Blocks at or past n_run need no weights either. */
    pare_status (*frozen_fwd)(void *user, int layer, TNET_R *x, int B, int T);
    void *frozen_user;
    int res_run;         /* the n_run the buffers were reserved for */
    int lowest;          /* lowest sub-block with a trained parameter: 2l (attention of block
                            l), 2l+1 (its MLP), -1 the embedding, 2 n_layer the head only,
                            INT_MAX nothing (set by tnet_reserve) */
    /* activations and scratch for B x T tokens (tnet_reserve) */
    int capB, capT, chunk;
    void **bufs;
    int n_bufs, cap_bufs;
    TNET_R *cs, *sn;     /* RoPE cos/sin tables [T x head_dim/2] */
    TNET_R *x, *xf, *rstdf, *xnf;
    TNET_R *dx, *dxn, *tmp, *dq, *dk, *dv, *dout, *h, *dh, *dg, *du, *lt, *logit;
    TNET_R *ws;          /* attention workspaces, nws of TNET_ATTN_WS(capT) */
    int nws;
    double *nll;
} TN(tnet);

/* Shapes (and rotary frequencies) from m; one slot per tensor of m, no memory attached. */
pare_status TN(tnet_new)(const pare_model *m, TN(tnet) **out);
void TN(tnet_free)(TN(tnet) *n);
TN(tparam) *TN(tnet_param)(TN(tnet) *n, const char *name);
/* Attach a LoRA adapter of rank r to the linear layer whose weight is named name: adds the
 * slots NAME.lora_a [r x in] and NAME.lora_b [out x r] (memory still to attach). */
pare_status TN(tnet_add_lora)(TN(tnet) *n, const char *name, int r, double alpha);
/* Copy every model tensor's values into memory the net owns (converted to the element
 * type); with trainable != 0 also allocate zeroed gradients for all of them. LoRA slots get
 * A uniform in +-1/sqrt(in) from seed and B = 0. */
pare_status TN(tnet_own_params)(TN(tnet) *n, const pare_model *m, int trainable, uint64_t seed);
/* Allocate a buffer that lives as long as the net (zeroed). */
TNET_R *TN(tnet_alloc)(TN(tnet) *n, size_t count);
/* After the slots point at memory: tie the head, find the lowest trained sub-block and
 * allocate activations for batches up to B sequences of T tokens. */
pare_status TN(tnet_reserve)(TN(tnet) *n, int B, int T);
/* The bytes tnet_reserve(n, B, T) would hold for activations and scratch with the trained
 * slots and n_run as they are now (parameters and their gradients not counted). */
size_t TN(tnet_plan_bytes)(TN(tnet) *n, int B, int T);

/* Forward pass of B sequences of T tokens (positions 0..T-1 each), in[b*T + t]. tgt (may be
 * NULL) holds the next tokens (negative: not scored); *nll gets the sum of -log p(tgt) and
 * *count the scored tokens. logits, if not NULL, receives [B*T x n_vocab]. Keeps nothing. */
pare_status TN(tnet_forward)(TN(tnet) *n, const int32_t *in, const int32_t *tgt, int B, int T,
                             TNET_R *logits, double *nll, int64_t *count);
/* Forward and backward: every trained gradient += dscale * d(sum of -log p(tgt)) / d(param). */
pare_status TN(tnet_grad)(TN(tnet) *n, const int32_t *in, const int32_t *tgt, int B, int T,
                          TNET_R dscale, double *nll, int64_t *count);

/* ---- the operations, exposed for the gradient checks ------------------------------------ */
/* x[n] = emb[tok[n]];  gemb[tok[n]] += dx[n] */
void TN(top_embed_fwd)(TNET_R *x, const TNET_R *emb, const int32_t *tok, int N, int E);
void TN(top_embed_bwd)(TNET_R *gemb, const TNET_R *dx, const int32_t *tok, int N, int E);
/* y = x / rms(x) * w per row; rstd (may be NULL) keeps 1/rms. Backward: dx += (if dx),
 * gw += (if gw). */
void TN(top_rmsnorm_fwd)(TNET_R *y, TNET_R *rstd, const TNET_R *x, const TNET_R *w, int N, int E, double eps);
void TN(top_rmsnorm_bwd)(TNET_R *dx, TNET_R *gw, const TNET_R *dy, const TNET_R *x, const TNET_R *w,
                         const TNET_R *rstd, int N, int E);
/* Rotate adjacent pairs (2i, 2i+1) of each of nh heads of row n by position n % T
 * (cos/sin tables [T x hd/2]); inverse != 0 rotates back, which is the backward pass. */
void TN(top_rope)(TNET_R *x, int N, int T, int nh, int hd, const TNET_R *cs, const TNET_R *sn, int inverse);
void TN(top_rope_tables)(TNET_R *cs, TNET_R *sn, int T, int hd, const float *freq);
/* Y [N x out] = X W^T (+ scale (X A^T) B^T, keeping xa = X A^T [N x r]). Backward: gw, ga, gb
 * +=; dX = (accumulate ? dX : 0) + dY W (+ LoRA), when dX is not NULL; tmp [N x r]. */
void TN(top_linear_fwd)(const TN(tlin) *L, const TNET_R *X, int N, TNET_R *Y, TNET_R *xa);
void TN(top_linear_bwd)(const TN(tlin) *L, const TNET_R *X, const TNET_R *xa, const TNET_R *dY, int N,
                        TNET_R *dX, int accumulate, TNET_R *tmp);
/* Causal grouped-query attention of B sequences of T positions: Q [B*T x H*hd], K, V
 * [B*T x KV*hd], O [B*T x H*hd], lse [B x H x T] (log-sum-exp of each score row, kept for
 * the backward pass). ws: nws workspaces of TNET_ATTN_WS(T) elements; at most nws threads
 * run. Backward writes dQ and dK, dV (not +=). */
void TN(top_attn_fwd)(TNET_R *O, TNET_R *lse, const TNET_R *Q, const TNET_R *K, const TNET_R *V, int B, int T,
                      int H, int KV, int hd, TNET_R *ws, int nws);
void TN(top_attn_bwd)(TNET_R *dQ, TNET_R *dK, TNET_R *dV, const TNET_R *dO, const TNET_R *O, const TNET_R *lse,
                      const TNET_R *Q, const TNET_R *K, const TNET_R *V, int B, int T, int H, int KV, int hd,
                      TNET_R *ws, int nws);
/* h = silu(g) * u, elementwise */
void TN(top_swiglu_fwd)(TNET_R *h, const TNET_R *g, const TNET_R *u, size_t n);
void TN(top_swiglu_bwd)(TNET_R *dg, TNET_R *du, const TNET_R *dh, const TNET_R *g, const TNET_R *u, size_t n);
/* Cross-entropy of each row of logits [N x V] with tgt[n] (negative: skipped, nll 0):
 * nll[n] = logsumexp(row) - row[tgt]. When d is not NULL (it may be logits itself):
 * d = dscale * (softmax(row) - onehot(tgt)), zero rows for skipped targets. */
void TN(top_ce)(TNET_R *d, const TNET_R *logits, const int32_t *tgt, int N, int V, TNET_R dscale, double *nll);

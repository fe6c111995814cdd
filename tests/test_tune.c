/* test_tune.c - Edge-LLM adaptive layer tuning and early exits (src/train/tune.c, the exits
 * of src/model/forward.c): the window's structure (activations kept only there, adapters
 * active only there), activation memory that grows with the window and not with the depth,
 * the training net's exit forward against the inference engine's, adapters of other windows
 * exactly without effect on an exit, voting as the most confident exit, merged = unmerged,
 * GGUF round trips, learning, determinism and the memory fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/synth.h"
#include "train/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pare_model *model_of(int L, uint64_t seed) {
    synth_shape sh = {"t", 32, L, 4, 2, 64, 300, 64};
    pare_model *m;
    assert_int_equal(synth_model(&sh, PARE_TYPE_F32, seed, &m), PARE_OK);
    return m;
}

static uint64_t g_rng = 88172645463325252ull;
static double urand(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static void opts(tune_opts *o, int n, const int *exits, int window) {
    tune_opts_default(o);
    o->n_exit = n;
    for (int k = 0; k < n; k++) o->exits[k] = exits[k];
    o->window = window;
    o->lora_rank = 2;
    o->B = 1; o->T = 16;
}

static void engine_logits(pare_model *m, int mode, const int32_t *in, int T, float *out) {
    m->exit_mode = mode;
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, T, &c), PARE_OK);
    assert_int_equal(pare_forward(c, in, T, 0, out), PARE_OK);
    pare_ctx_free(c);
}

static double max_rel(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    return d / (s > 0 ? s : 1);
}

/* The window: blocks below it run without keeping activations, above it do not run, the
 * adapters and their gradients exist only in it. */
static void test_phase_structure(void **state) {
    (void)state;
    pare_model *m = model_of(6, 1);
    tune_opts o;
    int ex[2] = {2, 5};
    opts(&o, 2, ex, 2);
    tune_state *s;
    assert_int_equal(tune_state_new(m, &o, &s), PARE_OK);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tune_state_phase(s, k, 2, 16), PARE_OK);
        tnet_f *n = tune_state_net(s);
        int first = ex[k] - 1, last = ex[k];
        assert_int_equal(n->n_run, last + 1);
        assert_int_equal(n->lowest, 2 * first);
        for (int l = 0; l < 6; l++) {
            int in = l >= first && l <= last;
            tlayer_f *L = &n->layers[l];
            assert_int_equal(L->saved, in);
            tlin_f *lins[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
            for (int i = 0; i < 7; i++) {
                assert_int_equal(lins[i]->r, in ? 2 : 0);
                assert_int_equal(lins[i]->ga != NULL, in);
                assert_int_equal(lins[i]->gb != NULL, in);
                assert_null(lins[i]->gw); /* base weights frozen */
            }
            assert_null(L->g_attn_norm);
            assert_null(L->g_ffn_norm);
        }
        assert_null(n->g_emb);
        assert_non_null(n->head.gw);
    }
    tune_state_free(s);
    pare_model_free(m);
}

static size_t act_bytes(int L, int exit, int window, int B, int T) {
    pare_model *m = model_of(L, 2);
    tune_opts o;
    opts(&o, 1, &exit, window);
    o.B = B; o.T = T;
    tune_plan p;
    assert_int_equal(tune_plan_of(m, &o, &p), PARE_OK);
    pare_model_free(m);
    return p.act_max;
}

/* Activation memory grows with the window, by the same amount per block, and not with the
 * depth of the exit or of the model; vanilla tuning's grows with the depth. */
static void test_memory_grows_with_window(void **state) {
    (void)state;
    size_t w1 = act_bytes(6, 5, 1, 2, 32), w2 = act_bytes(6, 5, 2, 2, 32), w3 = act_bytes(6, 5, 3, 2, 32);
    assert_true(w2 > w1);
    assert_int_equal(w3 - w2, w2 - w1);
    assert_int_equal(act_bytes(12, 5, 2, 2, 32), w2);  /* deeper model */
    assert_int_equal(act_bytes(12, 11, 2, 2, 32), w2); /* deeper exit */
    assert_int_equal(act_bytes(12, 3, 2, 2, 32), w2);
    /* full tuning: one exit at the last block, window = all blocks */
    size_t f6 = act_bytes(6, 5, 6, 2, 32), f12 = act_bytes(12, 11, 12, 2, 32);
    assert_int_equal(f12 - f6, 6 * (w2 - w1));
    printf("  activations, B 2 x T 32: window 1 %zu, 2 %zu, 3 %zu bytes; full 6 blocks %zu, 12 blocks %zu\n", w1, w2, w3,
           f6, f12);
}

/* A tuned tiny model whose adapters and heads are random (not zero), committed. */
static tune_state *random_state(pare_model *m, tune_opts *o) {
    tune_state *s;
    assert_int_equal(tune_state_new(m, o, &s), PARE_OK);
    tnet_f *n = tune_state_net(s);
    for (int i = 0; i < n->n_params; i++) {
        tparam_f *p = &n->params[i];
        if (!p->lora) continue;
        size_t cnt = (size_t)(p->rows * p->cols);
        for (size_t j = 0; j < cnt; j++) (*p->w)[j] = (float)(0.2 * (urand() - 0.5));
    }
    for (int k = 0; k < o->n_exit; k++) { /* make each exit's head its own */
        assert_int_equal(tune_state_phase(s, k, 1, o->T), PARE_OK);
        size_t cnt = (size_t)n->head.in * n->head.out;
        for (size_t j = 0; j < cnt; j++) n->head.w[j] += (float)(0.02 * (urand() - 0.5));
    }
    return s;
}

/* A tiny model with exits ex (window w) whose adapters and heads are random, committed. */
static pare_model *tuned(int L, uint64_t seed, int n, const int *ex, int window) {
    pare_model *m = model_of(L, seed);
    tune_opts o;
    opts(&o, n, ex, window);
    tune_state *s = random_state(m, &o);
    assert_int_equal(tune_state_commit(s), PARE_OK);
    tune_state_free(s);
    return m;
}

static void rand_tokens(int32_t *in, int T, int V) {
    for (int t = 0; t < T; t++) in[t] = (int32_t)(urand() * V);
}

/* Each exit's forward in the training net (the view it is trained on) equals the inference
 * engine's two-stream forward of that exit. */
static void test_train_view_equals_engine(void **state) {
    (void)state;
    pare_model *m = model_of(6, 3);
    tune_opts o;
    int ex[3] = {1, 3, 5};
    opts(&o, 3, ex, 2);
    int T = 16, V = m->n_vocab;
    tune_state *s = random_state(m, &o);
    int32_t in[16];
    rand_tokens(in, T, V);
    float *lt = malloc(3 * (size_t)T * V * sizeof(float)), *le = malloc((size_t)T * V * sizeof(float));
    for (int k = 0; k < 3; k++) {
        assert_int_equal(tune_state_phase(s, k, 1, T), PARE_OK);
        double nll;
        int64_t cnt;
        assert_int_equal(tnet_forward_f(tune_state_net(s), in, NULL, 1, T, lt + (size_t)k * T * V, &nll, &cnt), PARE_OK);
    }
    assert_int_equal(tune_state_commit(s), PARE_OK);
    tune_state_free(s);
    assert_int_equal(m->n_exit, 3);
    for (int k = 0; k < 3; k++) {
        engine_logits(m, k, in, T, le);
        double d = max_rel(le, lt + (size_t)k * T * V, (size_t)T * V);
        printf("  exit %d (blocks %d-%d): engine vs training net, max relative difference %.2e\n", k, m->exits[k].first,
               m->exits[k].last, d);
        assert_true(d < 1e-5);
    }
    free(lt); free(le);
    pare_model_free(m);
}

/* An exit's output does not depend at all on the adapters of blocks outside its window (so
 * their gradients are exactly zero), and does on those inside; in the training net the
 * blocks above the exit get exactly zero gradient even when given gradient buffers. */
static void test_outside_window_exact_zero(void **state) {
    (void)state;
    pare_model *m = model_of(6, 4);
    tune_opts o;
    int ex[2] = {2, 5};
    opts(&o, 2, ex, 2);
    int T = 16, V = m->n_vocab;
    tune_state *s = random_state(m, &o);
    /* training net, phase 0: attach buffers to block 4's adapters (above the exit) */
    assert_int_equal(tune_state_phase(s, 0, 1, T), PARE_OK);
    tnet_f *n = tune_state_net(s);
    tlin_f *up4 = &n->layers[4].up;
    size_t nb = (size_t)up4->out * 2;
    float *ga = calloc((size_t)2 * up4->in, sizeof(float)), *gb = calloc(nb, sizeof(float));
    /* active and with gradients: only skipping the blocks past the exit keeps them at zero */
    assert_int_equal(up4->r, 0);
    up4->r = 2;
    up4->ga = ga; up4->gb = gb;
    int32_t in[16], tgt[16];
    for (int t = 0; t < T; t++) { in[t] = (int32_t)(urand() * V); tgt[t] = (int32_t)(urand() * V); }
    double nll;
    int64_t cnt;
    assert_int_equal(tnet_grad_f(n, in, tgt, 1, T, 1.0f, &nll, &cnt), PARE_OK);
    for (size_t j = 0; j < (size_t)2 * up4->in; j++) assert_true(ga[j] == 0.0f);
    for (size_t j = 0; j < nb; j++) assert_true(gb[j] == 0.0f);
    double gsum = 0; /* the window's adapters do get gradient */
    tlin_f *q1 = &n->layers[1].wq;
    for (size_t j = 0; j < (size_t)q1->out * 2; j++) gsum += fabs((double)q1->gb[j]);
    assert_true(gsum > 0);
    up4->ga = NULL; up4->gb = NULL; up4->r = 0;
    free(ga); free(gb);
    assert_int_equal(tune_state_commit(s), PARE_OK);
    tune_state_free(s);
    /* the engine: change one adapter value of each window */
    float *a0 = malloc((size_t)T * V * sizeof(float)), *a1 = malloc((size_t)T * V * sizeof(float));
    float *b0 = malloc((size_t)T * V * sizeof(float)), *b1 = malloc((size_t)T * V * sizeof(float));
    engine_logits(m, 0, in, T, a0);
    engine_logits(m, 1, in, T, a1);
    pare_tensor *t4 = model_find_tensor(m, "blk.4.ffn_up.weight.lora_b");
    assert_non_null(t4);
    ((float *)t4->data)[3] += 0.5f;
    engine_logits(m, 0, in, T, b0);
    engine_logits(m, 1, in, T, b1);
    assert_memory_equal(a0, b0, (size_t)T * V * sizeof(float));
    assert_true(memcmp(a1, b1, (size_t)T * V * sizeof(float)) != 0);
    pare_tensor *t1 = model_find_tensor(m, "blk.1.attn_q.weight.lora_b");
    assert_non_null(t1);
    ((float *)t1->data)[5] += 0.5f;
    engine_logits(m, 0, in, T, a0);
    engine_logits(m, 1, in, T, a1);
    assert_true(memcmp(a0, b0, (size_t)T * V * sizeof(float)) != 0);
    assert_memory_equal(a1, b1, (size_t)T * V * sizeof(float));
    free(a0); free(a1); free(b0); free(b1);
    pare_model_free(m);
}

static void softmax_d(const float *l, int V, double *p) {
    double mx = l[0], s = 0;
    for (int v = 1; v < V; v++) if (l[v] > mx) mx = l[v];
    for (int v = 0; v < V; v++) s += (p[v] = exp((double)l[v] - mx));
    for (int v = 0; v < V; v++) p[v] /= s;
}

/* Voting: p(v) = max_k p_k(v) renormalised, so its argmax is the top-1 token of the most
 * confident exit. */
static void test_vote_is_most_confident(void **state) {
    (void)state;
    int ex[3] = {1, 3, 5};
    pare_model *m = tuned(6, 5, 3, ex, 2);
    int T = 16, V = m->n_vocab;
    int32_t in[16];
    rand_tokens(in, T, V);
    float *lk = malloc(3 * (size_t)T * V * sizeof(float)), *lv = malloc((size_t)T * V * sizeof(float));
    for (int k = 0; k < 3; k++) engine_logits(m, k, in, T, lk + (size_t)k * T * V);
    engine_logits(m, PARE_EXIT_VOTE, in, T, lv);
    double *p = malloc((size_t)V * sizeof(double)), *mx = malloc((size_t)V * sizeof(double));
    int differs = 0;
    for (int t = 0; t < T; t++) {
        int best_k = 0, best_v = 0;
        double best = -1, z = 0;
        for (int k = 0; k < 3; k++) {
            softmax_d(lk + ((size_t)k * T + t) * V, V, p);
            for (int v = 0; v < V; v++) {
                if (!k || p[v] > mx[v]) mx[v] = p[v];
                if (p[v] > best) { best = p[v]; best_k = k; best_v = v; }
            }
        }
        for (int v = 0; v < V; v++) z += mx[v];
        const float *row = lv + (size_t)t * V;
        int am = 0;
        double psum = 0;
        for (int v = 0; v < V; v++) {
            if (row[v] > row[am]) am = v;
            psum += exp((double)row[v]);
            assert_true(fabs(exp((double)row[v]) - mx[v] / z) < 1e-5);
        }
        assert_true(fabs(psum - 1) < 1e-4);
        assert_int_equal(am, best_v);
        if (best_k != 2) differs++;
    }
    printf("  %d of %d positions voted for an exit other than the last\n", differs, T);
    free(lk); free(lv); free(p); free(mx);
    pare_model_free(m);
}

/* --merge: the last exit's adapters folded, its head the output; the same logits. With the
 * last exit before the last block the blocks past it go. */
static void merge_case(int L, int n_exit, const int *ex, int window) {
    pare_model *m = tuned(L, 6, n_exit, ex, window);
    int T = 16, V = m->n_vocab;
    int32_t in[16];
    rand_tokens(in, T, V);
    float *a = malloc((size_t)T * V * sizeof(float)), *b = malloc((size_t)T * V * sizeof(float));
    engine_logits(m, PARE_EXIT_LAST, in, T, a);
    assert_int_equal(tune_merge(m), PARE_OK);
    assert_int_equal(m->n_exit, 0);
    assert_int_equal(m->n_layer, ex[n_exit - 1] + 1);
    assert_null(model_find_tensor(m, "exit.0.output.weight"));
    engine_logits(m, PARE_EXIT_LAST, in, T, b);
    double d = max_rel(b, a, (size_t)T * V);
    printf("  merge, %d blocks, exits ending at %d: max relative difference %.2e\n", L, ex[n_exit - 1], d);
    assert_true(d < 1e-5);
    free(a); free(b);
    pare_model_free(m);
}

static void test_merge_equals_unmerged(void **state) {
    (void)state;
    int e1[3] = {1, 3, 5}, e2[2] = {1, 3}, e3[1] = {5};
    merge_case(6, 3, e1, 2);
    merge_case(6, 2, e2, 2);
    merge_case(6, 1, e3, 6); /* full */
}

/* A tuned model survives GGUF: same exits, the same vote bit for bit. */
static void test_gguf_roundtrip(void **state) {
    (void)state;
    int ex[2] = {2, 5};
    pare_model *m = tuned(6, 7, 2, ex, 3);
    int T = 16, V = m->n_vocab;
    char gpath[64];
    snprintf(gpath, sizeof gpath, "/tmp/pare-test-tune-%d.gguf", (int)getpid());
    assert_int_equal(pare_model_save(m, gpath, "gguf"), PARE_OK);
    pare_model *r;
    assert_int_equal(pare_model_load(gpath, NULL, &r), PARE_OK);
    unlink(gpath);
    assert_int_equal(r->n_exit, 2);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(r->exits[k].first, m->exits[k].first);
        assert_int_equal(r->exits[k].last, m->exits[k].last);
    }
    assert_true(r->lora_scale == m->lora_scale);
    int32_t in[16];
    rand_tokens(in, T, V);
    float *a = malloc((size_t)T * V * sizeof(float)), *b = malloc((size_t)T * V * sizeof(float));
    engine_logits(m, PARE_EXIT_VOTE, in, T, a);
    engine_logits(r, PARE_EXIT_VOTE, in, T, b);
    assert_memory_equal(a, b, (size_t)T * V * sizeof(float));
    free(a); free(b);
    pare_model_free(r);
    pare_model_free(m);
}

/* tune_run learns a periodic sequence at every exit, the same bytes twice. */
static void run_once(uint64_t seed, tune_result *res, float **lora_b) {
    pare_model *m = model_of(4, 8);
    train_data d = {0};
    d.n = 4096;
    d.ids = malloc(d.n * sizeof(int32_t));
    for (size_t i = 0; i < d.n; i++) d.ids[i] = (int32_t)(3 + (i * 7) % 11);
    d.rng = seed;
    tune_opts o;
    int ex[2] = {1, 3};
    opts(&o, 2, ex, 1);
    o.steps = 60; o.B = 4; o.T = 16; o.lr = 1e-2f; o.lora_rank = 4;
    assert_int_equal(tune_run(m, &o, &d, NULL, NULL, res), PARE_OK);
    pare_tensor *t = model_find_tensor(m, "blk.3.ffn_down.weight.lora_b");
    assert_non_null(t);
    *lora_b = malloc(t->nbytes);
    memcpy(*lora_b, t->data, t->nbytes);
    assert_null(model_find_tensor(m, "blk.0.attn_q.weight.lora_a")); /* block 0 is in no window */
    assert_non_null(model_find_tensor(m, "blk.1.attn_q.weight.lora_a"));
    free(d.ids);
    pare_model_free(m);
}

static void test_tune_learns_deterministic(void **state) {
    (void)state;
    tune_result r1, r2;
    float *b1, *b2;
    run_once(1, &r1, &b1);
    run_once(1, &r2, &b2);
    double chance = log(300.0);
    printf("  exit losses after 60 steps: %.3f %.3f (chance %.3f)\n", r1.exit_loss[0], r1.exit_loss[1], chance);
    assert_true(r1.exit_loss[0] < 0.5 * chance);
    assert_true(r1.exit_loss[1] < 0.5 * chance);
    assert_true(r1.final_loss == r2.final_loss);
    size_t nb = (size_t)32 * 4 * sizeof(float);
    assert_memory_equal(b1, b2, nb);
    free(b1); free(b2);
}

/* A quantized model: the blocks below the window run on the engine's Q8_0 weights, only
 * the window's blocks get float copies (so the plan's state grows with the window), and the
 * exits still learn. */
static void test_quantized_backbone(void **state) {
    (void)state;
    synth_shape sh = {"t", 64, 6, 4, 2, 128, 300, 64};
    pare_model *m;
    assert_int_equal(synth_model(&sh, PARE_TYPE_Q8_0, 10, &m), PARE_OK);
    int ex[2] = {2, 5};
    tune_opts o;
    tune_plan p1, p3;
    opts(&o, 2, ex, 1);
    assert_int_equal(tune_plan_of(m, &o, &p1), PARE_OK);
    opts(&o, 2, ex, 3);
    assert_int_equal(tune_plan_of(m, &o, &p3), PARE_OK);
    /* two more blocks of float copies: 2 x (4 x 64 x 64 attention-ish + 3 x 64 x 128) x 4 bytes,
     * plus the larger adapters */
    size_t blk = ((size_t)64 * 64 + 2 * (size_t)64 * 32 + (size_t)64 * 64 + 3 * (size_t)64 * 128) * sizeof(float);
    assert_true(p3.state_bytes - p1.state_bytes >= 2 * blk);
    train_data d = {0};
    d.n = 4096;
    d.ids = malloc(d.n * sizeof(int32_t));
    for (size_t i = 0; i < d.n; i++) d.ids[i] = (int32_t)(3 + (i * 5) % 13);
    d.rng = 3;
    opts(&o, 2, ex, 2);
    o.steps = 40; o.B = 4; o.T = 16; o.lr = 1e-2f; o.lora_rank = 4;
    tune_result res;
    assert_int_equal(tune_run(m, &o, &d, NULL, NULL, &res), PARE_OK);
    printf("  Q8_0 backbone: exit losses %.3f %.3f after 40 steps\n", res.exit_loss[0], res.exit_loss[1]);
    assert_true(res.exit_loss[0] < 0.5 * log(300.0) && res.exit_loss[1] < 0.5 * log(300.0));
    assert_int_equal(model_find_tensor(m, "blk.0.attn_q.weight")->type, PARE_TYPE_Q8_0); /* untouched */
    free(d.ids);
    pare_model_free(m);
}

/* --max-memory: a budget just under the plan halves the micro-batch (accumulating twice);
 * one that nothing fits is refused with the estimate. */
static void test_max_memory_fit(void **state) {
    (void)state;
    pare_model *m = model_of(6, 9);
    tune_opts o;
    int ex[2] = {2, 5};
    opts(&o, 2, ex, 2);
    o.B = 8; o.T = 32;
    tune_plan p;
    double need;
    assert_int_equal(tune_fit(m, &o, 0, &p, &need), PARE_OK);
    assert_int_equal(o.B, 8);
    assert_int_equal(o.accum, 1);
    tune_opts o2 = o;
    o2.max_memory = need - 1;
    double need2;
    assert_int_equal(tune_fit(m, &o2, 0, &p, &need2), PARE_OK);
    assert_int_equal(o2.B, 4);
    assert_int_equal(o2.accum, 2);
    assert_int_equal(o2.window, 2);
    assert_true(need2 <= o2.max_memory);
    tune_opts o3 = o;
    o3.max_memory = 1000;
    assert_int_equal(tune_fit(m, &o3, 0, &p, &need2), PARE_ERR_NOMEM);
    assert_non_null(strstr(pare_last_error(), "max-memory"));
    pare_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phase_structure),
        cmocka_unit_test(test_memory_grows_with_window),
        cmocka_unit_test(test_train_view_equals_engine),
        cmocka_unit_test(test_outside_window_exact_zero),
        cmocka_unit_test(test_vote_is_most_confident),
        cmocka_unit_test(test_merge_equals_unmerged),
        cmocka_unit_test(test_gguf_roundtrip),
        cmocka_unit_test(test_tune_learns_deterministic),
        cmocka_unit_test(test_quantized_backbone),
        cmocka_unit_test(test_max_memory_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

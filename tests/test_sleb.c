/* test_sleb.c - block removal (METHODS.md 7 e, 13 e): all blocks on == dense logits; a block
 * made an exact identity (zero attn_output and ffn_down) is chosen first by sleb and by
 * shortgpt (BI 0); the first and last blocks are never chosen under the barrier; for K = 1
 * (and K = 2) the choice and its loss equal a brute-force evaluation with runner_loss_from;
 * removed indices are distinct original indices; the result does not depend on the thread
 * count or the cache size; a model with the blocks removed, saved (GGUF, HF) and reloaded,
 * gives the logits of the original run with those blocks skipped; the reference code's
 * calibration mode. Synthetic models, and ../shared/data/bench/brown-4m (env PARE_DATA). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/synth.h"
#include "prune/prune.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_data[512];
static const char *data(const char *rel) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_data, rel);
    return buf[k];
}

/* ---- helpers --------------------------------------------------------------------------- */
static uint64_t g_rng = 0x5eb5eb5ull;
static double urand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

/* 6 blocks, GQA; weights of std 0.2 (x10) so that every block moves the logits visibly */
static const synth_shape g_shape = {"t-sleb", 64, 6, 4, 2, 96, 300, 64};

static pare_model *make_model(const synth_shape *s, uint64_t seed) {
    pare_model *m;
    assert_int_equal(synth_model(s, PARE_TYPE_F32, seed, &m), PARE_OK);
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        if (t->n_dims < 2) continue;
        float *w = t->data;
        for (int64_t k = 0; k < pare_tensor_nelem(t); k++) w[k] *= 10;
    }
    return m;
}

static void random_calib(calib_data *cd, int n, int T, int vocab) {
    cd->n = n; cd->T = T; cd->n_text_tokens = (int64_t)n * T;
    cd->ids = malloc(sizeof(int32_t) * n * T);
    for (int i = 0; i < n * T; i++) cd->ids[i] = 3 + (int32_t)(urand() * (vocab - 3));
}

/* Windows the model itself continues greedily from a random first token: the dense model
 * predicts them well, and a change to any block that matters raises the loss. */
static void greedy_calib(const pare_model *m, calib_data *cd, int n, int T) {
    cd->n = n; cd->T = T; cd->n_text_tokens = (int64_t)n * T;
    cd->ids = malloc(sizeof(int32_t) * n * T);
    float *lg = malloc(sizeof(float) * m->n_vocab);
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, T, &c), PARE_OK);
    for (int w = 0; w < n; w++) {
        int32_t *ids = cd->ids + (size_t)w * T;
        ids[0] = 3 + (int32_t)(urand() * (m->n_vocab - 3));
        for (int t = 0; t + 1 < T; t++) {
            assert_int_equal(pare_forward(c, ids + t, 1, t, lg), PARE_OK);
            int best = 0;
            for (int k = 1; k < m->n_vocab; k++) if (lg[k] > lg[best]) best = k;
            ids[t + 1] = best;
        }
    }
    pare_ctx_free(c);
    free(lg);
}

/* Give tensor t an owned zero buffer (works for mapped tensors too). */
static void zero_tensor(pare_tensor *t) {
    void *z = calloc(1, t->nbytes);
    assert_non_null(z);
    if (t->owned) free(t->data);
    t->data = z; t->owned = 1;
}
/* Block l becomes an exact identity: zero attn_output and ffn_down. */
static void make_identity(pare_model *m, int l) {
    zero_tensor(m->layers[l].wo);
    zero_tensor(m->layers[l].w_down);
}

/* Logits (n x V) of m on tokens with the blocks where skip[l] != 0 switched off. */
static float *logits_skip(const pare_model *m, const int32_t *tok, int n, const unsigned char *skip) {
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, n, &c), PARE_OK);
    float *x = malloc(sizeof(float) * n * m->n_embd), *lg = malloc(sizeof(float) * n * m->n_vocab);
    assert_int_equal(forward_embed(c, tok, n, x), PARE_OK);
    for (int l = 0; l < m->n_layer; l++)
        if (!skip || !skip[l]) assert_int_equal(block_forward(c, l, x, n, 0), PARE_OK);
    assert_int_equal(forward_head(c, x, n, lg), PARE_OK);
    pare_ctx_free(c);
    free(x);
    return lg;
}
static float *logits_dense(const pare_model *m, const int32_t *tok, int n) {
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, n, &c), PARE_OK);
    float *lg = malloc(sizeof(float) * n * m->n_vocab);
    assert_int_equal(pare_forward(c, tok, n, 0, lg), PARE_OK);
    pare_ctx_free(c);
    return lg;
}
static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

static void select_ok(const pare_model *m, const calib_data *cd, int method, int k, int barrier, blockrm_report *rep) {
    blockrm_opts o;
    blockrm_opts_default(&o, method);
    o.n_remove = k; o.barrier = barrier;
    if (blockrm_select(m, cd, &o, 0, rep) != PARE_OK) fail_msg("%s", pare_last_error());
    assert_int_equal(rep->k, k);
}

/* removed: k distinct original indices, in range, never the first/last under the barrier */
static void check_removed(const blockrm_report *r, int L, int barrier) {
    for (int i = 0; i < r->k; i++) {
        assert_true(r->removed[i] >= 0 && r->removed[i] < L);
        if (barrier) assert_true(r->removed[i] != 0 && r->removed[i] != L - 1);
        for (int j = 0; j < i; j++) assert_int_not_equal(r->removed[i], r->removed[j]);
    }
}

/* Brute force: runner through block 0, then the loss with skip = removed + {c} for every
 * candidate c; returns the argmin (first on ties) and its loss; all[c] gets every loss. */
static int brute_step(const pare_model *m, const calib_data *cd, const int *removed, int nrem, double *best_loss,
                      double *all) {
    calib_runner *r;
    assert_int_equal(runner_new(m, cd, &r), PARE_OK);
    assert_int_equal(runner_advance(r), PARE_OK);
    int L = m->n_layer;
    unsigned char *skip = calloc((size_t)L, 1);
    for (int i = 0; i < nrem; i++) skip[removed[i]] = 1;
    int last = L - 1, best = -1; /* the last alive block: the original last one under the barrier */
    for (int c = 1; c < last; c++) {
        if (skip[c]) continue;
        skip[c] = 1;
        double nll;
        assert_int_equal(runner_loss_from(r, 1, skip, &nll), PARE_OK);
        skip[c] = 0;
        if (all) all[c] = nll;
        if (best < 0 || nll < *best_loss) { best = c; *best_loss = nll; }
    }
    free(skip);
    runner_free(r);
    return best;
}

/* ---- tests ------------------------------------------------------------------------------- */
/* the on/off machinery with every block on is the dense model, logits and loss */
static void test_all_on_is_dense(void **state) {
    (void)state;
    pare_model *m = make_model(&g_shape, 11);
    int32_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = 3 + (int32_t)(urand() * 290);
    unsigned char skip[6] = {0};
    float *a = logits_dense(m, tok, 40), *b = logits_skip(m, tok, 40, skip);
    assert_true(max_diff(a, b, (size_t)40 * m->n_vocab) == 0);
    free(a); free(b);
    calib_data cd;
    random_calib(&cd, 5, 24, m->n_vocab);
    calib_runner *r;
    double nll;
    assert_int_equal(runner_new(m, &cd, &r), PARE_OK);
    assert_int_equal(runner_loss_from(r, 0, NULL, &nll), PARE_OK);
    runner_free(r);
    blockrm_report rep;
    select_ok(m, &cd, BR_SLEB, 1, -1, &rep);
    assert_true(rep.dense_loss == nll);
    assert_int_equal(rep.tokens, 5 * 23);
    blockrm_report_free(&rep);
    select_ok(m, &cd, BR_SHORTGPT, 1, -1, &rep); /* no barrier: the base is the embeddings */
    assert_true(rep.dense_loss == nll);
    blockrm_report_free(&rep);
    calib_free(&cd);
    pare_model_free(m);
}

/* K = 1: the choice, its loss and every candidate's loss equal the brute force; K = 2: the
 * second step equals the brute force given the first removal */
static void test_brute_force(void **state) {
    (void)state;
    for (int seed = 1; seed <= 3; seed++) {
        pare_model *m = make_model(&g_shape, (uint64_t)seed);
        calib_data cd;
        random_calib(&cd, 5, 20, m->n_vocab);
        blockrm_report rep;
        select_ok(m, &cd, BR_SLEB, 2, -1, &rep);
        check_removed(&rep, m->n_layer, 1);
        double bl, all[6];
        int b1 = brute_step(m, &cd, NULL, 0, &bl, all);
        assert_int_equal(rep.removed[0], b1);
        assert_true(rep.loss[0] == bl);
        for (int c = 1; c < 5; c++) assert_true(rep.score[c] == all[c]);
        assert_true(isnan(rep.score[0]) && isnan(rep.score[5]));
        int b2 = brute_step(m, &cd, rep.removed, 1, &bl, NULL);
        assert_int_equal(rep.removed[1], b2);
        assert_true(rep.loss[1] == bl);
        /* sleb-oneshot with K = 1 is the same choice; with K = 2 the two lowest first-pass losses */
        blockrm_report one;
        select_ok(m, &cd, BR_SLEB_ONESHOT, 2, -1, &one);
        assert_int_equal(one.removed[0], b1);
        assert_true(one.loss[0] == rep.loss[0]);
        int second = -1;
        for (int c = 1; c < 5; c++)
            if (c != b1 && (second < 0 || all[c] < all[second])) second = c;
        assert_int_equal(one.removed[1], second);
        /* its step-2 loss is the loss of the model without both */
        calib_runner *r;
        unsigned char skip[6] = {0};
        skip[b1] = skip[second] = 1;
        double nll;
        assert_int_equal(runner_new(m, &cd, &r), PARE_OK);
        assert_int_equal(runner_loss_from(r, 0, skip, &nll), PARE_OK);
        runner_free(r);
        assert_true(one.loss[1] == nll);
        blockrm_report_free(&one);
        blockrm_report_free(&rep);
        calib_free(&cd);
        pare_model_free(m);
    }
}

/* the barrier: blocks 0 and L-1 never go, even when removing all the others, or when they
 * are identities; without it they can */
static void test_barrier(void **state) {
    (void)state;
    pare_model *m = make_model(&g_shape, 5);
    make_identity(m, 0);
    make_identity(m, 5);
    calib_data cd;
    greedy_calib(m, &cd, 3, 16);
    for (int method = BR_SLEB; method <= BR_SHORTGPT; method++) {
        blockrm_report rep;
        select_ok(m, &cd, method, 4, 1, &rep);
        check_removed(&rep, 6, 1);
        blockrm_report_free(&rep);
    }
    blockrm_report rep;
    for (int fn = 0; fn < 2; fn++) { /* BI 0 for both identities (the last one's output taken
                                         before the final norm; after it, nearly 0) */
        blockrm_opts o;
        blockrm_opts_default(&o, BR_SHORTGPT);
        o.n_remove = 2; o.barrier = 0; o.bi_final_norm = fn;
        assert_int_equal(blockrm_select(m, &cd, &o, 0, &rep), PARE_OK);
        assert_true(rep.score[0] == 0);
        assert_true(fn ? rep.score[5] < 1e-3 : rep.score[5] == 0);
        assert_int_equal(rep.removed[0], 0);
        assert_int_equal(rep.removed[1], 5);
        blockrm_report_free(&rep);
    }
    select_ok(m, &cd, BR_SLEB, 1, 0, &rep); /* switching off an identity changes nothing */
    assert_true(rep.loss[0] == rep.dense_loss);
    assert_true(rep.removed[0] == 0 || rep.removed[0] == 5);
    blockrm_report_free(&rep);
    /* too many */
    blockrm_opts o;
    blockrm_opts_default(&o, BR_SLEB);
    o.n_remove = 5;
    assert_int_equal(blockrm_select(m, &cd, &o, 0, &rep), PARE_ERR_ARG);
    o.n_remove = 0;
    assert_int_equal(blockrm_select(m, &cd, &o, 0, &rep), PARE_ERR_ARG);
    calib_free(&cd);
    pare_model_free(m);
}

/* an identity block is chosen first: sleb (its removal leaves the loss exactly unchanged),
 * sleb-oneshot, and shortgpt (BI exactly 0) */
static void test_identity_first_synth(void **state) {
    (void)state;
    for (int l = 1; l <= 4; l++) {
        pare_model *m = make_model(&g_shape, 21);
        make_identity(m, l);
        calib_data cd;
        greedy_calib(m, &cd, 4, 24);
        for (int method = BR_SLEB; method <= BR_SHORTGPT; method++) {
            blockrm_report rep;
            select_ok(m, &cd, method, 2, -1, &rep);
            check_removed(&rep, 6, method != BR_SHORTGPT);
            assert_int_equal(rep.removed[0], l);
            if (method == BR_SHORTGPT) assert_true(rep.score[l] == 0);
            else assert_true(rep.loss[0] == rep.dense_loss);
            blockrm_report_free(&rep);
        }
        calib_free(&cd);
        pare_model_free(m);
    }
}

/* the losses (hence choices) do not depend on the number of threads or on the cache size */
static void test_threads_and_cache(void **state) {
    (void)state;
    pare_model *m = make_model(&g_shape, 9);
    calib_data cd;
    random_calib(&cd, 7, 20, m->n_vocab);
    int saved = omp_get_max_threads();
    blockrm_report r[4];
    for (int v = 0; v < 4; v++) {
        omp_set_num_threads(v == 0 ? 1 : v == 1 ? 2 : 3);
        blockrm_opts o;
        blockrm_opts_default(&o, BR_SLEB);
        o.n_remove = 3;
        if (v == 3) o.cache_bytes = 1; /* one window at a time */
        assert_int_equal(blockrm_select(m, &cd, &o, 0, &r[v]), PARE_OK);
    }
    omp_set_num_threads(saved);
    for (int v = 1; v < 4; v++) {
        assert_true(r[v].dense_loss == r[0].dense_loss);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(r[v].removed[i], r[0].removed[i]);
            assert_true(r[v].loss[i] == r[0].loss[i]);
        }
        for (int l = 0; l < 6; l++) assert_memory_equal(&r[v].score[l], &r[0].score[l], sizeof(double));
    }
    for (int v = 0; v < 4; v++) blockrm_report_free(&r[v]);
    calib_free(&cd);
    pare_model_free(m);
}

/* model_remove_blocks: renumbered names, compacted layers, errors leave the model intact */
static void test_remove_blocks_model(void **state) {
    (void)state;
    pare_model *m = make_model(&g_shape, 3);
    int64_t p0 = model_n_params(m);
    int bad1[] = {1, 1}, bad2[] = {6}, all[] = {0, 1, 2, 3, 4, 5};
    assert_int_equal(model_remove_blocks(m, bad1, 2), PARE_ERR_ARG);
    assert_int_equal(model_remove_blocks(m, bad2, 1), PARE_ERR_ARG);
    assert_int_equal(model_remove_blocks(m, all, 6), PARE_ERR_ARG);
    assert_int_equal(m->n_layer, 6);
    assert_int_equal(model_n_params(m), p0);
    float *wq4 = m->layers[4].wq->data, *wd5 = m->layers[5].w_down->data;
    int rem[] = {3, 1};
    assert_int_equal(model_remove_blocks(m, rem, 2), PARE_OK);
    assert_int_equal(m->n_layer, 4);
    int64_t per = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        assert_null(strstr(m->tensors[i].name, "blk.4."));
        assert_null(strstr(m->tensors[i].name, "blk.5."));
    }
    pare_model *d = make_model(&g_shape, 3);
    for (int i = 0; i < d->n_tensors; i++) if (!strncmp(d->tensors[i].name, "blk.1.", 6)) per += pare_tensor_nelem(&d->tensors[i]);
    assert_int_equal(model_n_params(m), p0 - 2 * per);
    assert_ptr_equal(m->layers[2].wq->data, wq4); /* old 4 is new 2, old 5 is new 3 */
    assert_ptr_equal(m->layers[3].w_down->data, wd5);
    assert_non_null(model_find_tensor(m, "blk.2.attn_q.weight"));
    assert_ptr_equal(model_find_tensor(m, "blk.2.attn_q.weight")->data, wq4);
    pare_model_free(d);
    pare_model_free(m);
}

/* removed, saved as GGUF and reloaded == the original with those blocks skipped */
static void test_removed_model_roundtrip_synth(void **state) {
    (void)state;
    pare_model *m = make_model(&g_shape, 4), *orig = make_model(&g_shape, 4);
    calib_data cd;
    random_calib(&cd, 3, 16, m->n_vocab);
    blockrm_report rep;
    select_ok(m, &cd, BR_SLEB, 2, -1, &rep);
    unsigned char skip[6] = {0};
    for (int i = 0; i < rep.k; i++) skip[rep.removed[i]] = 1;
    assert_int_equal(model_remove_blocks(m, rep.removed, rep.k), PARE_OK);
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_sleb_%d.gguf", (int)getpid());
    assert_int_equal(pare_model_save(m, path, "gguf"), PARE_OK);
    pare_model *back;
    if (pare_model_load(path, NULL, &back) != PARE_OK) fail_msg("%s", pare_last_error());
    assert_int_equal(back->n_layer, 4);
    int32_t tok[30];
    for (int i = 0; i < 30; i++) tok[i] = 3 + (int32_t)(urand() * 290);
    float *a = logits_skip(orig, tok, 30, skip), *b = logits_dense(back, tok, 30), *c = logits_dense(m, tok, 30);
    assert_true(max_diff(a, b, (size_t)30 * m->n_vocab) == 0);
    assert_true(max_diff(a, c, (size_t)30 * m->n_vocab) == 0);
    free(a); free(b); free(c);
    unlink(path);
    pare_model_free(back);
    blockrm_report_free(&rep);
    calib_free(&cd);
    pare_model_free(orig);
    pare_model_free(m);
}

/* ---- on the trained 8-block brown-4m model ----------------------------------------------- */
static pare_model *load_brown(void) {
    pare_model *m;
    if (pare_model_load(data("bench/brown-4m/model.gguf"), NULL, &m) != PARE_OK) fail_msg("%s", pare_last_error());
    return m;
}

static void test_identity_first_brown(void **state) {
    (void)state;
    pare_model *m = load_brown();
    make_identity(m, 3);
    calib_data cd;
    assert_int_equal(calib_from_text(m->vocab, data("bench/brown-valid.txt"), 8, 128, 0, CALIB_RANDOM, &cd), PARE_OK);
    for (int method = BR_SLEB; method <= BR_SHORTGPT; method++) {
        blockrm_report rep;
        select_ok(m, &cd, method, 2, -1, &rep);
        check_removed(&rep, 8, method != BR_SHORTGPT);
        assert_int_equal(rep.removed[0], 3);
        if (method == BR_SHORTGPT) assert_true(rep.score[3] == 0);
        else assert_true(rep.loss[0] == rep.dense_loss);
        blockrm_report_free(&rep);
    }
    calib_free(&cd);
    pare_model_free(m);
}

static void test_brown_roundtrip(void **state) {
    (void)state;
    pare_model *m = load_brown(), *orig = load_brown();
    calib_data cd;
    assert_int_equal(calib_sleb_code(m->vocab, data("bench/brown-valid.txt"), 64, 128, 0, &cd), PARE_OK);
    blockrm_report rep;
    select_ok(m, &cd, BR_SLEB, 3, -1, &rep);
    check_removed(&rep, 8, 1);
    double bl;
    assert_int_equal(brute_step(m, &cd, NULL, 0, &bl, NULL), rep.removed[0]);
    assert_true(bl == rep.loss[0]);
    print_message("brown-4m sleb (sleb-code calibration, %d x 128): removed %d %d %d, mean NLL %.4f -> %.4f %.4f %.4f\n", cd.n,
                  rep.removed[0], rep.removed[1], rep.removed[2], rep.dense_loss / rep.tokens, rep.loss[0] / rep.tokens,
                  rep.loss[1] / rep.tokens, rep.loss[2] / rep.tokens);
    unsigned char skip[8] = {0};
    for (int i = 0; i < rep.k; i++) skip[rep.removed[i]] = 1;
    assert_int_equal(model_remove_blocks(m, rep.removed, rep.k), PARE_OK);
    char gg[64], hf[64];
    snprintf(gg, sizeof gg, "/tmp/test_sleb_b%d.gguf", (int)getpid());
    snprintf(hf, sizeof hf, "/tmp/test_sleb_b%d_hf", (int)getpid());
    assert_int_equal(pare_model_save(m, gg, "gguf"), PARE_OK);
    assert_int_equal(pare_model_save(m, hf, "hf"), PARE_OK);
    int32_t *tok = cd.ids; /* a window of real text */
    float *a = logits_skip(orig, tok, 100, skip);
    const char *paths[] = {gg, hf};
    for (int p = 0; p < 2; p++) {
        pare_model *back;
        if (pare_model_load(paths[p], NULL, &back) != PARE_OK) fail_msg("%s", pare_last_error());
        assert_int_equal(back->n_layer, 5);
        assert_non_null(back->vocab);
        float *b = logits_dense(back, tok, 100);
        double d = max_diff(a, b, (size_t)100 * m->n_vocab);
        print_message("%s: max |logit diff| %.3g\n", p ? "hf" : "gguf", d);
        assert_true(d <= 1e-4);
        free(b);
        pare_model_free(back);
    }
    free(a);
    unlink(gg);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", hf);
    assert_int_equal(system(cmd), 0);
    blockrm_report_free(&rep);
    calib_free(&cd);
    pare_model_free(orig);
    pare_model_free(m);
}

/* the reference code's calibration: floor(tokens / seqlen) consecutive windows of the
 * shuffled rows; the seed changes the rows; more rows give more windows */
static void test_sleb_code_calib(void **state) {
    (void)state;
    pare_model *m = load_brown();
    calib_data a, b, c;
    assert_int_equal(calib_sleb_code(m->vocab, data("bench/brown-valid.txt"), 128, 256, 0, &a), PARE_OK);
    assert_int_equal(calib_sleb_code(m->vocab, data("bench/brown-valid.txt"), 128, 256, 1, &b), PARE_OK);
    assert_int_equal(calib_sleb_code(m->vocab, data("bench/brown-valid.txt"), 400, 256, 0, &c), PARE_OK);
    assert_int_equal(a.n, (int)(a.n_text_tokens / 256));
    assert_true(a.n >= 1);
    assert_int_equal(a.ids[0], pare_vocab_bos(m->vocab));
    assert_true(c.n > a.n);
    assert_true(memcmp(a.ids, b.ids, sizeof(int32_t) * 256) != 0);
    print_message("sleb-code calibration, 128 rows of brown-valid: %lld tokens, %d windows of 256\n",
                  (long long)a.n_text_tokens, a.n);
    calib_data t;
    assert_int_equal(calib_sleb_code(m->vocab, data("bench/brown-valid.txt"), 1, 100000, 0, &t), PARE_ERR_ARG);
    calib_free(&a); calib_free(&b); calib_free(&c);
    pare_model_free(m);
}

int main(void) {
    const char *d = getenv("PARE_DATA");
    snprintf(g_data, sizeof g_data, "%s", d ? d : "../shared/data");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_on_is_dense),
        cmocka_unit_test(test_brute_force),
        cmocka_unit_test(test_barrier),
        cmocka_unit_test(test_identity_first_synth),
        cmocka_unit_test(test_threads_and_cache),
        cmocka_unit_test(test_remove_blocks_model),
        cmocka_unit_test(test_removed_model_roundtrip_synth),
        cmocka_unit_test(test_identity_first_brown),
        cmocka_unit_test(test_brown_roundtrip),
        cmocka_unit_test(test_sleb_code_calib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_mc.c - zero-shot multiple choice (src/eval/mc.c): a choice's score from the cached
 * context equals the sum of per-token log-probabilities of `pare ppl`'s path (one forward of
 * context + choice, nll_of) to 1e-4, on a synthetic model (token ids) and on stories260K
 * (text through the tokenizer); acc_norm divides by the UTF-8 byte length of the choice
 * (hand-computed example); acc, acc_norm and their standard errors sqrt(p(1-p)/(n-1)) per
 * total and subject recomputed from the scores; items whose gold choice repeats the context's
 * last sentence are all answered right by a hand-made copying model; the JSONL parser's
 * formats and errors; make-cloze is deterministic and well formed (4 choices, exactly one
 * gold, the gold the paragraph's true next sentence, distractors from other paragraphs).
 * stories260K from ../shared/data (env PARE_DATA): that test skips when it is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "eval/eval.h"
#include "model/forward.h"
#include "model/synth.h"

#include <math.h>
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
#define STORIES "stories260K/stories260K.gguf"
static pare_model *load_or_skip(const char *rel) {
    if (access(data(rel), R_OK)) { fprintf(stderr, "skipped: %s not found (set PARE_DATA)\n", data(rel)); return NULL; }
    pare_model *m;
    if (pare_model_load(data(rel), NULL, &m) != PARE_OK) fail_msg("%s", pare_last_error());
    return m;
}

/* The reference: context + choice in one forward from position 0, the choice's tokens
 * scored with nll_of on the rows before them (as eval_ppl scores a window). */
static double ref_score(const pare_model *m, const int32_t *ctx_ids, int nc, const int32_t *cont, int nk) {
    int n = nc + nk, V = m->n_vocab;
    int32_t *all = malloc((size_t)n * sizeof *all);
    float *lg = malloc((size_t)n * V * sizeof *lg);
    assert_non_null(all); assert_non_null(lg);
    memcpy(all, ctx_ids, (size_t)nc * sizeof *all);
    memcpy(all + nc, cont, (size_t)nk * sizeof *all);
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, n, &c), PARE_OK);
    assert_int_equal(pare_forward(c, all, n, 0, lg), PARE_OK);
    double s = 0;
    for (int j = 0; j < nk; j++) s -= nll_of(lg + (size_t)(nc - 1 + j) * V, V, cont[j]);
    pare_ctx_free(c);
    free(all); free(lg);
    return s;
}

/* ---- (1) the cached-context score equals the one-go score ----------------------------- */
static void test_score_matches_ppl_path_synth(void **state) {
    (void)state;
    synth_shape sh = {"t-mc", 32, 3, 4, 2, 64, 300, 64};
    pare_model *m;
    assert_int_equal(synth_model(&sh, PARE_TYPE_F32, 11, &m), PARE_OK);
    int32_t ctx_ids[13];
    for (int i = 0; i < 13; i++) ctx_ids[i] = 3 + (i * 37) % 290;
    int32_t c0[] = {17}, c1[] = {40, 41}, c2[] = {250, 7, 99}, c3[] = {5, 6, 7, 8, 9, 10}, c4[] = {5, 6, 7, 8, 9, 10, 11, 12};
    const int32_t *cont[] = {c0, c1, c2, c3};
    int nk[] = {1, 2, 3, 6};
    double ll[4];
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, 13 + 6, &c), PARE_OK); /* exactly what the item needs */
    assert_int_equal(mc_score_ids(c, m->n_vocab, ctx_ids, 13, cont, nk, 4, ll), PARE_OK);
    for (int k = 0; k < 4; k++) {
        double r = ref_score(m, ctx_ids, 13, cont[k], nk[k]);
        print_message("choice %d: cached %.8f, one go %.8f\n", k, ll[k], r);
        assert_true(isfinite(ll[k]) && ll[k] < 0);
        assert_true(fabs(ll[k] - r) <= 1e-4);
    }
    /* a one-token context (BOS alone) works too */
    assert_int_equal(mc_score_ids(c, m->n_vocab, ctx_ids, 1, cont, nk, 4, ll), PARE_OK);
    for (int k = 0; k < 4; k++) assert_true(fabs(ll[k] - ref_score(m, ctx_ids, 1, cont[k], nk[k])) <= 1e-4);
    /* the cache must hold context + longest choice - 1 positions: 13 + 8 - 1 > 19 */
    const int32_t *cont7[] = {c0, c1, c2, c4};
    assert_int_not_equal(mc_score_ids(c, m->n_vocab, ctx_ids, 13, cont7, (int[]){1, 2, 3, 8}, 4, ll), PARE_OK);
    pare_ctx_free(c);
    pare_model_free(m);
}

/* Through eval_mc and the tokenizer: ll[k] = the one-go score of tokens(context + choice)
 * past tokens(context) (a prefix here: no fallbacks). */
static void test_score_matches_ppl_path_text(void **state) {
    (void)state;
    pare_model *m = load_or_skip(STORIES);
    if (!m) skip();
    const char *jl =
        "{\"context\":\"Once upon a time, there was a little girl named Lily.\",\"choices\":[\" She loved to play outside.\","
        "\" The dog barked.\",\" Blue.\",\" One day, she found a shiny red ball in the park and\"],\"gold\":0}\n"
        "{\"context\":\"Tom had a big red car. \",\"choices\":[\"He drove it.\",\"It was fast!\"],\"gold\":1,\"subject\":\"cars\"}\n";
    pare_mc_set s;
    assert_int_equal(mc_parse(jl, strlen(jl), "t.jsonl", MC_FORMAT_AUTO, 0, &s), PARE_OK);
    assert_int_equal(s.format, MC_FORMAT_LMEVAL);
    pare_mc_result r;
    assert_int_equal(eval_mc(m, &s, 512, 0, &r), PARE_OK);
    assert_int_equal(r.fallbacks, 0);
    for (int i = 0; i < s.n; i++) {
        const pare_mc_item *it = &s.items[i];
        size_t keep = strlen(it->context);
        while (keep && it->context[keep - 1] == ' ') keep--;
        int32_t *cids; size_t nc;
        assert_int_equal(pare_tokenize(pare_model_vocab(m), it->context, keep, 1, &cids, &nc), PARE_OK);
        for (int k = 0; k < it->n_choices; k++) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s%s", it->context, it->choices[k]);
            int32_t *w; size_t nw;
            assert_int_equal(pare_tokenize(pare_model_vocab(m), buf, strlen(buf), 1, &w, &nw), PARE_OK);
            assert_true(nw > nc && !memcmp(w, cids, nc * sizeof *w));
            double ref = ref_score(m, w, (int)nc, w + nc, (int)(nw - nc));
            double got = r.ll[r.choice_off[i] + k];
            print_message("item %d choice %d: %.6f vs %.6f (%zu tokens)\n", i, k, got, ref, nw - nc);
            assert_true(fabs(got - ref) <= 1e-4);
            free(w);
        }
        free(cids);
    }
    mc_result_free(&r);
    mc_set_free(&s);
    pare_model_free(m);
}

/* ---- (2) acc_norm's normalisation and the standard errors ------------------------------- */
static void test_acc_norm_by_hand(void **state) {
    (void)state;
    /* lengths: UTF-8 bytes of the choice string, leading space included */
    assert_true(mc_choice_len(" A") == 2);
    assert_true(mc_choice_len(" the cat sat") == 12);
    assert_true(mc_choice_len(" caf\xc3\xa9") == 6); /* " café": 5 characters, 6 bytes */
    /* ll -6, -4, -9 over 12, 3, 24 bytes: per byte -0.5, -1.333, -0.375. acc picks choice 1
     * (the largest sum), acc_norm choice 2 (the largest per byte). */
    const char *ch[] = {" the cat sat", " ab", " a very long answer here"};
    double ll[] = {-6.0, -4.0, -9.0}, len[3];
    for (int k = 0; k < 3; k++) len[k] = mc_choice_len(ch[k]);
    assert_true(len[0] == 12 && len[1] == 3 && len[2] == 24);
    assert_int_equal(mc_argmax(ll, NULL, 3), 1);
    assert_int_equal(mc_argmax(ll, len, 3), 2);
    double tie[] = {-1.0, -1.0};
    assert_int_equal(mc_argmax(tie, NULL, 2), 0); /* ties: the first, like numpy's argmax */
}

/* ---- (3) copying the context's last sentence, on a model built to copy ------------------ */
/* A hand-made one-block model on the synthetic byte vocabulary (every byte one token, a space
 * the three bytes of U+2581) that predicts "the next token repeats the token PERIOD - 1
 * positions back", so it continues a text by repeating its last PERIOD tokens:
 *   residual: dims [0, 259) the current token (one-hot), dim 259 a constant 1, dims
 *             [260, 519) the copied token;
 *   attention (one head, hd = 520): q and k are constants read from dim 259, set so that
 *             after RoPE q.k = A sum_{i<32} cos((D - (t-j)) theta_i), largest at t - j = D =
 *             PERIOD - 1 by about 55 in the logits (softmax ~ one-hot); v = the token, o
 *             writes it into the copied-token dims;
 *   FFN off (ffn_down = 0); output head: logit[u] = 30 x the copied-token dim u.
 * Items: three sentences of the same shape (words of 5, 4, 6 letters and a period: 22
 * tokens, so PERIOD = 3 + 22 = 25 with the space before), the gold choice is the third
 * sentence again, the distractors three other such sentences. By construction the gold
 * choice scores ~0 and every distractor about -30 per differing letter: acc = acc_norm = 1.
 * (stories260K and brown-4m do not copy: on such items with TinyStories sentences they score
 * 0.45 and 0.20, so they cannot serve here.) */
#define PERIOD 25
static pare_model *copy_model(void) {
    synth_shape sh = {"t-copy", 520, 1, 1, 1, 32, 259, 256};
    pare_model *m;
    assert_int_equal(synth_model(&sh, PARE_TYPE_F32, 5, &m), PARE_OK);
    const int E = 520, V = 259, BIAS = 259, B = 260, D = PERIOD - 1;
    pare_layer *L = &m->layers[0];
    pare_tensor *ts[] = {m->tok_embd, L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->w_down, m->out_norm, m->output};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        assert_int_equal(ts[i]->type, PARE_TYPE_F32);
        memset(ts[i]->data, 0, ts[i]->nbytes);
    }
    float *emb = m->tok_embd->data, *an = L->attn_norm->data, *wq = L->wq->data, *wk = L->wk->data, *wv = L->wv->data,
          *wo = L->wo->data, *on = m->out_norm->data, *out = m->output->data;
    for (int v = 0; v < V; v++) { emb[(size_t)v * E + v] = 1; emb[(size_t)v * E + BIAS] = 1; }
    for (int d = 0; d < E; d++) { an[d] = sqrtf(2.0f / E + m->norm_eps); on[d] = sqrtf(3.0f / E + m->norm_eps); }
    float freq[260];
    rope_freqs(m, freq);
    const float a = sqrtf(200.0f);
    for (int i = 0; i < 32; i++) {
        wq[(size_t)(2 * i) * E + BIAS] = a;
        wk[(size_t)(2 * i) * E + BIAS] = a * cosf((float)D * freq[i]);
        wk[(size_t)(2 * i + 1) * E + BIAS] = a * sinf((float)D * freq[i]);
    }
    for (int d = 0; d < V; d++) { wv[(size_t)d * E + d] = 1; wo[(size_t)(B + d) * E + d] = 1; }
    for (int u = 0; u < V; u++) out[(size_t)u * E + B + u] = 30;
    return m;
}

static void copy_sentence(int i, char *s) { /* "Abcde fghi jklmno." (18 bytes, 22 tokens) */
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    int k = 0;
    const int wl[3] = {5, 4, 6};
    for (int w = 0; w < 3; w++) {
        if (w) s[k++] = ' ';
        for (int c = 0; c < wl[w]; c++) {
            x ^= x >> 29; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 32;
            char base = k == 0 ? 'A' : 'a';
            s[k++] = (char)(base + (int)(x % 26));
        }
    }
    s[k++] = '.'; s[k] = 0;
}

static void test_copy_last_sentence(void **state) {
    (void)state;
    pare_model *m = copy_model();
    char sent[24][32];
    for (int i = 0; i < 24; i++) copy_sentence(i, sent[i]);
    int32_t *ids; size_t n;
    assert_int_equal(pare_tokenize(pare_model_vocab(m), sent[0], strlen(sent[0]), 0, &ids, &n), PARE_OK);
    assert_int_equal((int)n, 3 + 22); /* the dummy-prefix space and the sentence: one period */
    free(ids);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    size_t len = 0;
    for (int i = 0; i < 20; i++) {
        const char *c[4];
        int gold = i % 4, d = 0;
        const int off[3] = {5, 11, 17};
        for (int k = 0; k < 4; k++) c[k] = k == gold ? sent[(i + 2) % 24] : sent[(i + off[d++]) % 24];
        len += (size_t)snprintf(buf + len, (1 << 16) - len,
                                "{\"context\":\"%s %s %s\",\"choices\":[\" %s\",\" %s\",\" %s\",\" %s\"],\"gold\":%d,\"task\":\"copy\"}\n",
                                sent[i], sent[(i + 1) % 24], sent[(i + 2) % 24], c[0], c[1], c[2], c[3], gold);
    }
    pare_mc_set s;
    assert_int_equal(mc_parse(buf, len, "copy.jsonl", MC_FORMAT_AUTO, 0, &s), PARE_OK);
    assert_int_equal(s.n, 20);
    pare_mc_result r;
    assert_int_equal(eval_mc(m, &s, 256, 0, &r), PARE_OK);
    print_message("copy task: acc %.3f (+- %.3f), acc_norm %.3f (+- %.3f); item 0: gold %.4f, others %.1f %.1f %.1f\n",
                  r.total.acc, r.total.acc_stderr, r.total.acc_norm, r.total.acc_norm_stderr, r.ll[0],
                  r.ll[1], r.ll[2], r.ll[3]);
    assert_true(r.total.acc >= 0.9 && r.total.acc_norm >= 0.9);
    assert_int_equal(r.total.correct, 20); /* by construction, all of them */
    assert_int_equal(r.n_tasks, 1);
    assert_string_equal(r.tasks[0].name, "copy");
    assert_int_equal(r.fallbacks, 0);
    for (int i = 0; i < s.n; i++) assert_true(r.ll[r.choice_off[i] + s.items[i].gold] > -0.1);
    mc_result_free(&r);
    mc_set_free(&s);
    free(buf);
    pare_model_free(m);
}

/* acc and acc_norm counts, per-byte argmax and stderr recomputed from eval_mc's scores, on a
 * set where the synthetic model gets some right and some wrong (stderr = 0 for p = 1). */
static void test_stderr_and_counts(void **state) {
    (void)state;
    synth_shape sh = {"t-mc", 32, 2, 4, 2, 64, 300, 64};
    pare_model *m;
    assert_int_equal(synth_model(&sh, PARE_TYPE_F32, 3, &m), PARE_OK);
    char buf[8192];
    size_t len = 0;
    static const char *const ch[6] = {" a", " bb", " ccc dd", " e f", " ghij", " klm nopq r"};
    for (int i = 0; i < 30; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len,
                                "{\"context\":\"item %d:\",\"choices\":[\"%s\",\"%s\",\"%s\"],\"gold\":%d,\"subject\":\"%s\"}\n", i,
                                ch[i % 6], ch[(i + 1) % 6], ch[(i + 3) % 6], i % 3, i % 2 ? "odd" : "even");
    pare_mc_set s;
    assert_int_equal(mc_parse(buf, len, "t.jsonl", MC_FORMAT_AUTO, 0, &s), PARE_OK);
    pare_mc_result r;
    assert_int_equal(eval_mc(m, &s, 64, 0, &r), PARE_OK);
    assert_int_equal(r.n_subjects, 2);
    assert_string_equal(r.subjects[0].name, "even");
    int ok = 0, okn = 0, sub[2] = {0, 0};
    for (int i = 0; i < s.n; i++) {
        double L[3];
        for (int k = 0; k < 3; k++) L[k] = (double)strlen(s.items[i].choices[k]);
        const double *ll = r.ll + r.choice_off[i];
        assert_int_equal(r.pred[i], mc_argmax(ll, NULL, 3));
        assert_int_equal(r.pred_norm[i], mc_argmax(ll, L, 3));
        ok += r.pred[i] == s.items[i].gold;
        okn += r.pred_norm[i] == s.items[i].gold;
        sub[i % 2] += r.pred[i] == s.items[i].gold;
    }
    double p = ok / 30.0, pn = okn / 30.0;
    print_message("synthetic: acc %.4f +- %.4f, acc_norm %.4f +- %.4f\n", r.total.acc, r.total.acc_stderr, r.total.acc_norm,
                  r.total.acc_norm_stderr);
    assert_int_equal(r.total.n, 30);
    assert_true(fabs(r.total.acc - p) < 1e-12 && fabs(r.total.acc_norm - pn) < 1e-12);
    assert_true(fabs(r.total.acc_stderr - sqrt(p * (1 - p) / 29)) < 1e-12);
    assert_true(fabs(r.total.acc_norm_stderr - sqrt(pn * (1 - pn) / 29)) < 1e-12);
    assert_int_equal(r.subjects[0].correct, sub[0]);
    assert_int_equal(r.subjects[1].correct, sub[1]);
    assert_true(fabs(r.subjects[1].acc_stderr - sqrt(sub[1] / 15.0 * (1 - sub[1] / 15.0) / 14)) < 1e-12);
    mc_result_free(&r);
    mc_set_free(&s);
    pare_model_free(m);
}

/* ---- task files: formats and errors ----------------------------------------------------- */
static void test_parse_formats(void **state) {
    (void)state;
    const char *mm = "{\"subject\": \"algebra\", \"input\": \"Q?\\nA. 1\\nB. 2\\nC. 3\\nD. 4\\nAnswer:\", \"output\": \"C\"}\n\n"
                     "{\"subject\": \"law\", \"input\": \"Q2\\nAnswer:\", \"output\": \"A\"}\n";
    pare_mc_set s;
    assert_int_equal(mc_parse(mm, strlen(mm), "x/mmlu.jsonl", MC_FORMAT_AUTO, 0, &s), PARE_OK);
    assert_int_equal(s.format, MC_FORMAT_MMLU);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.items[0].n_choices, 4);
    assert_string_equal(s.items[0].choices[0], " A");
    assert_string_equal(s.items[0].choices[3], " D");
    assert_int_equal(s.items[0].gold, 2);
    assert_string_equal(s.items[0].subject, "algebra");
    assert_string_equal(s.items[0].task, "mmlu");
    assert_int_equal(s.items[1].line, 3);
    mc_set_free(&s);
    assert_int_equal(mc_parse(mm, strlen(mm), "mmlu.jsonl", MC_FORMAT_AUTO, 1, &s), PARE_OK); /* --limit 1 */
    assert_int_equal(s.n, 1);
    mc_set_free(&s);
    const char *le = "{\"context\":\"a\",\"choices\":[\" b\",\" c\",\" d\"],\"gold\":2}\n";
    assert_int_equal(mc_parse(le, strlen(le), "dir/my_task.jsonl", MC_FORMAT_AUTO, 0, &s), PARE_OK);
    assert_int_equal(s.items[0].n_choices, 3);
    assert_int_equal(s.items[0].gold, 2);
    assert_string_equal(s.items[0].task, "my_task");
    assert_null(s.items[0].subject);
    mc_set_free(&s);
    /* errors: one line naming file:line and the problem */
    static const struct { const char *text, *needle; int format; } bad[] = {
        {"{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"gold\":2}\n", "t.jsonl:1: gold 2 is out of range", MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"gold\":-1}\n", "out of range", MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"gold\":0}\n{\"context\":\"a\",\"choices\":[\" b\"", "t.jsonl:2: not a JSON object",
         MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"gold\":0} x\n", "t.jsonl:1: not a JSON object", MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",\" c\"]}\n", "'gold'", MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",3],\"gold\":0}\n", "choice 1 is not a string", MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",\"\"],\"gold\":0}\n", "choice 1 is empty", MC_FORMAT_AUTO},
        {"{\"question\":\"a\"}\n", "cannot tell the format", MC_FORMAT_AUTO},
        {"{\"input\":\"a\",\"output\":\"E\"}\n", "one of A, B, C, D", MC_FORMAT_AUTO},
        {"{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"gold\":0}\n", "'input'", MC_FORMAT_MMLU},
        {"\n\n", "no items", MC_FORMAT_AUTO},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mc_parse(bad[i].text, strlen(bad[i].text), "t.jsonl", bad[i].format, 0, &s), PARE_ERR_FORMAT);
        const char *e = pare_last_error();
        print_message("bad %zu: %s\n", i, e);
        assert_non_null(strstr(e, bad[i].needle));
        assert_null(strchr(e, '\n'));
        assert_null(s.items);
    }
}

/* ---- (4) make-cloze ------------------------------------------------------------------- */
/* 9 paragraphs of 5 known sentences (blank-line separated, a line break inside some), one
 * with quotes and ! ? endings, and 3 short paragraphs of 2 sentences. */
#define NP 9
static char g_ps[NP + 3][5][96];
static size_t make_text(char *buf, size_t cap, int lines_mode) {
    static const char *const animal[] = {"cat", "dog", "fox", "owl", "hen", "cow", "pig", "elk", "bee", "ant", "bat", "yak"};
    size_t n = 0;
    for (int p = 0; p < NP + 3; p++) {
        int ns = p < NP ? 5 : 2;
        for (int s = 0; s < ns; s++) {
            if (p == 4) { /* quotes and other endings */
                static const char *const q[5] = {"He said, \"Stop!\"", "She ran.", "Why?", "Because it was late...", "The end."};
                snprintf(g_ps[p][s], sizeof g_ps[p][s], "%s", q[s]);
            } else
                snprintf(g_ps[p][s], sizeof g_ps[p][s], "The %s number %d walked %d steps%s", animal[p], p, s + 1, s == 2 ? "!" : ".");
            const char *sep = s == 0 ? "" : (!lines_mode && s == 2 ? "\n" : " ");
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep, g_ps[p][s]);
        }
        n += (size_t)snprintf(buf + n, cap - n, lines_mode ? "\n" : "\n\n");
    }
    return n;
}

static void check_cloze(const char *js, size_t jl, int k, int want_items) {
    pare_mc_set s;
    assert_int_equal(mc_parse(js, jl, "cloze.jsonl", MC_FORMAT_AUTO, 0, &s), PARE_OK);
    assert_int_equal(s.format, MC_FORMAT_LMEVAL);
    assert_int_equal(s.n, want_items);
    int seen[NP] = {0};
    for (int i = 0; i < s.n; i++) {
        const pare_mc_item *it = &s.items[i];
        assert_int_equal(it->n_choices, 4);
        assert_true(it->gold >= 0 && it->gold < 4);
        /* the paragraph whose first k sentences are the context */
        int p = -1;
        for (int q = 0; q < NP && p < 0; q++) {
            char ctx[512] = "";
            for (int t = 0; t < k; t++) { if (t) strcat(ctx, " "); strcat(ctx, g_ps[q][t]); }
            if (!strcmp(ctx, it->context)) p = q;
        }
        if (p < 0) fail_msg("item %d: context \"%s\" is no paragraph's first %d sentences", i, it->context, k);
        seen[p]++;
        char truth[128];
        snprintf(truth, sizeof truth, " %s", g_ps[p][k]);
        assert_string_equal(it->choices[it->gold], truth);
        int n_truth = 0;
        for (int c = 0; c < 4; c++) {
            n_truth += !strcmp(it->choices[c], truth);
            assert_true(it->choices[c][0] == ' ');
            /* a distractor is a sentence of another paragraph */
            if (c == it->gold) continue;
            int from = -1;
            for (int q = 0; q < NP + 3; q++)
                for (int t = 0; t < (q < NP ? 5 : 2); t++)
                    if (!strcmp(it->choices[c] + 1, g_ps[q][t])) from = q;
            assert_true(from >= 0 && from != p);
            for (int c2 = 0; c2 < c; c2++) assert_string_not_equal(it->choices[c], it->choices[c2]);
        }
        assert_int_equal(n_truth, 1); /* exactly one gold */
    }
    for (int q = 0; q < NP && want_items == NP; q++) assert_int_equal(seen[q], 1);
    mc_set_free(&s);
}

static void test_make_cloze(void **state) {
    (void)state;
    static char text[16384], text2[16384];
    size_t tl = make_text(text, sizeof text, 0);
    char *a, *b; size_t al, bl; int made, k;
    /* n = 5: 9 paragraphs have 4 sentences, so k stays 3 */
    assert_int_equal(mc_make_cloze(text, tl, 5, 0, 7, &a, &al, &made, &k), PARE_OK);
    assert_int_equal(made, 5);
    assert_int_equal(k, 3);
    check_cloze(a, al, 3, 5);
    /* the same inputs, the same bytes; another seed, other bytes */
    assert_int_equal(mc_make_cloze(text, tl, 5, 0, 7, &b, &bl, &made, &k), PARE_OK);
    assert_true(al == bl && !memcmp(a, b, al));
    free(b);
    assert_int_equal(mc_make_cloze(text, tl, 5, 0, 8, &b, &bl, &made, &k), PARE_OK);
    assert_false(al == bl && !memcmp(a, b, al));
    check_cloze(b, bl, 3, 5);
    free(a); free(b);
    /* every eligible paragraph once, k = 2 and k = 4 given */
    for (int kk = 2; kk <= 4; kk += 2) {
        assert_int_equal(mc_make_cloze(text, tl, NP, kk, 1, &a, &al, &made, &k), PARE_OK);
        assert_int_equal(k, kk);
        assert_int_equal(made, NP);
        check_cloze(a, al, kk, NP);
        free(a);
    }
    /* the quoted paragraph: sentences end after the closing quote, at ? and at ... */
    assert_int_equal(mc_make_cloze(text, tl, NP, 3, 1, &a, &al, &made, &k), PARE_OK);
    assert_non_null(strstr(a, "\"context\":\"He said, \\\"Stop!\\\" She ran. Why?\""));
    free(a);
    /* one paragraph per line (no blank lines): the same items */
    size_t tl2 = make_text(text2, sizeof text2, 1);
    assert_int_equal(mc_make_cloze(text2, tl2, NP, 3, 1, &b, &bl, &made, &k), PARE_OK);
    assert_int_equal(made, NP);
    check_cloze(b, bl, 3, NP);
    free(b);
    /* default k lowered: 12 paragraphs have >= 2 sentences, 9 have >= 4: n = 12 needs k = 1 */
    assert_int_equal(mc_make_cloze(text, tl, 12, 0, 3, &a, &al, &made, &k), PARE_OK);
    assert_int_equal(k, 1);
    assert_int_equal(made, 12);
    free(a);
    /* too little text: no item, no error */
    assert_int_equal(mc_make_cloze("One. Two.", 9, 10, 0, 0, &a, &al, &made, &k), PARE_OK);
    assert_int_equal(made, 0);
    assert_int_equal(al, 0);
    free(a);
}

int main(void) {
    const char *d = getenv("PARE_DATA");
    snprintf(g_data, sizeof g_data, "%s", d ? d : "../shared/data");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_matches_ppl_path_synth),
        cmocka_unit_test(test_score_matches_ppl_path_text),
        cmocka_unit_test(test_acc_norm_by_hand),
        cmocka_unit_test(test_copy_last_sentence),
        cmocka_unit_test(test_stderr_and_counts),
        cmocka_unit_test(test_parse_formats),
        cmocka_unit_test(test_make_cloze),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

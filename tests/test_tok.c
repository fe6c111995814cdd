/* test_tok.c - tokenizers against reference token ids.
 *  1. llama.cpp's test vectors (data/tokenizer/ggml-vocab-*.gguf.inp/.out, no BOS) for every
 *     vocab whose .gguf is there;
 *  2. brown-4m/tokenizer-vectors.json (ids from the SentencePiece library) through
 *     brown-4m/tokenizer.model, 3. and through the vocab inside brown-4m/model.gguf;
 *  4. whole files with one BOS: token counts the reference perplexity runs used, and speed;
 *  5. round trips: GGUF keys, tokenizer.model, tokenizer.json (+ tokenizer_config.json);
 *  6. llama2.c's tok512.bin decodes like the stories260K GGUF vocab;
 *  7. malformed tokenizer files fail with a message naming the file, never crash.
 * Data: $PARE_DATA or /work/shared/data; a test whose files are missing is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "io/gguf.h"
#include "tok/tok_impl.h"
#include "tok/vocab.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_data[512];
static char g_tmp[64];

static const char *data(const char *rel) {
    static char buf[8][2048];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_data, rel);
    return buf[k];
}
static const char *tmp(const char *name) {
    static char buf[8][2048];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, name);
    return buf[k];
}
static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static void ok(pare_status st) {
    if (st) fail_msg("unexpected failure: %s", pare_last_error());
}
static char *slurp(const char *path, size_t *n) {
    char *b = NULL;
    size_t len = 0;
    ok(pare_read_file(path, &b, &len));
    if (n) *n = len;
    return b;
}
static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static pare_vocab *load_gguf_vocab(const char *path) {
    pare_gguf *g = NULL;
    ok(gguf_open(path, &g));
    pare_vocab *v = NULL;
    pare_status st = vocab_from_gguf(g, &v);
    gguf_close(g);
    ok(st);
    return v;
}

static int32_t *tok(const pare_vocab *v, const char *s, size_t n, int add_special, size_t *nt) {
    int32_t *ids = NULL;
    ok(pare_tokenize(v, s, n, add_special, &ids, nt));
    assert_non_null(ids);
    return ids;
}

/* ---- test cases: texts and expected ids ---------------------------------------------------- */
typedef struct tcase { char *text; size_t len; int32_t *ids; size_t n; } tcase;
typedef struct tset { tcase *c; size_t n; } tset;

static void tset_free(tset *s) {
    for (size_t i = 0; i < s->n; i++) { free(s->c[i].text); free(s->c[i].ids); }
    free(s->c);
    s->c = NULL;
    s->n = 0;
}

static void tset_add(tset *s, const char *text, size_t len, const int32_t *ids, size_t n) {
    s->c = realloc(s->c, (s->n + 1) * sizeof *s->c);
    assert_non_null(s->c);
    tcase *c = &s->c[s->n++];
    c->text = malloc(len + 1);
    c->ids = malloc((n ? n : 1) * sizeof(int32_t));
    assert_true(c->text && c->ids);
    memcpy(c->text, text, len);
    c->text[len] = 0;
    c->len = len;
    if (n) memcpy(c->ids, ids, n * sizeof(int32_t));
    c->n = n;
}

/* llama.cpp's .inp/.out: texts each followed by "\n__ggml_vocab_test__\n"; one line of ids per text */
static bool load_inp_out(const char *inp, const char *outp, tset *s) {
    if (!exists(inp) || !exists(outp)) return false;
    size_t ni, no;
    char *in = slurp(inp, &ni), *out = slurp(outp, &no);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    char *p = in, *line = out;
    for (;;) {
        char *e = memmem(p, ni - (size_t)(p - in), sep, seplen);
        if (!e) break;
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        int32_t ids[4096];
        size_t n = 0;
        for (char *q = line; *q;) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q) break;
            assert_true(n < 4096);
            ids[n++] = (int32_t)x;
            q = end;
        }
        tset_add(s, p, (size_t)(e - p), ids, n);
        p = e + seplen;
        line = nl + 1;
    }
    free(in);
    free(out);
    return true;
}

static bool load_vectors_json(const char *path, tset *s) {
    if (!exists(path)) return false;
    char *b = slurp(path, NULL);
    cJSON *j = cJSON_Parse(b);
    free(b);
    assert_non_null(j);
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        cJSON *t = cJSON_GetObjectItem(c, "text"), *ids = cJSON_GetObjectItem(c, "ids");
        assert_true(cJSON_IsString(t) && cJSON_IsArray(ids));
        int32_t buf[4096];
        size_t n = 0;
        cJSON *x;
        cJSON_ArrayForEach(x, ids) { assert_true(n < 4096); buf[n++] = (int32_t)x->valuedouble; }
        tset_add(s, t->valuestring, strlen(t->valuestring), buf, n);
    }
    cJSON_Delete(j);
    return true;
}

static void show_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    if (n > 40) fprintf(stderr, " ... (%zu)", n);
    fprintf(stderr, "\n");
}

/* the number of cases whose ids match; mismatches are printed */
static size_t run_cases(const pare_vocab *v, const tset *s, const char *name) {
    size_t good = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t n;
        int32_t *ids = tok(v, s->c[i].text, s->c[i].len, 0, &n);
        if (n == s->c[i].n && !memcmp(ids, s->c[i].ids, n * sizeof *ids)) good++;
        else {
            fprintf(stderr, "  %s: case %zu \"%.60s\" differs\n", name, i, s->c[i].text);
            show_ids("want", s->c[i].ids, s->c[i].n);
            show_ids("got ", ids, n);
        }
        free(ids);
    }
    return good;
}

/* the same ids from two vocabs on every text of s */
static void same_ids(const pare_vocab *a, const pare_vocab *b, const tset *s, const char *what) {
    for (size_t i = 0; i < s->n; i++) {
        for (int sp = 0; sp < 2; sp++) {
            size_t na, nb;
            int32_t *x = tok(a, s->c[i].text, s->c[i].len, sp, &na), *y = tok(b, s->c[i].text, s->c[i].len, sp, &nb);
            if (na != nb || memcmp(x, y, na * sizeof *x)) {
                fprintf(stderr, "%s: case %zu \"%.40s\" gives other ids\n", what, i, s->c[i].text);
                show_ids("before", x, na);
                show_ids("after ", y, nb);
                fail();
            }
            free(x);
            free(y);
        }
    }
}

static void vocab_same(const pare_vocab *a, const pare_vocab *b, bool scores) {
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->n_tokens, b->n_tokens);
    for (int i = 0; i < a->n_tokens; i++) {
        if (strcmp(a->text[i], b->text[i]) || a->ttype[i] != b->ttype[i])
            fail_msg("token %d: '%s' (type %d) vs '%s' (type %d)", i, a->text[i], a->ttype[i], b->text[i], b->ttype[i]);
        if (scores && a->scores && b->scores) assert_memory_equal(&a->scores[i], &b->scores[i], sizeof(float));
    }
    assert_int_equal(a->bos, b->bos);
    assert_int_equal(a->eos, b->eos);
    assert_int_equal(a->unk, b->unk);
    assert_int_equal(a->add_bos, b->add_bos);
    assert_int_equal(a->add_eos, b->add_eos);
    assert_int_equal(a->add_space_prefix, b->add_space_prefix);
}

/* decoding the ids gives the text back (byte-level BPE; SPM with its leading space) */
static void decodes_back(const pare_vocab *v, const tset *s, const char *name) {
    char piece[512];
    for (size_t i = 0; i < s->n; i++) {
        size_t n;
        int32_t *ids = tok(v, s->c[i].text, s->c[i].len, 1, &n);
        size_t cap = s->c[i].len * 4 + 64, o = 0;
        char *txt = malloc(cap);
        assert_non_null(txt);
        for (size_t k = 0; k < n; k++) {
            int l = pare_token_to_piece(v, ids[k], piece, sizeof piece);
            assert_true(l >= 0);
            assert_true(o + (size_t)l < cap);
            memcpy(txt + o, piece, (size_t)l);
            o += (size_t)l;
        }
        const char *want = s->c[i].text;
        size_t wl = s->c[i].len;
        size_t skip = v->type == PARE_VOCAB_SPM && v->add_space_prefix && wl > 0 && o > 0 && txt[0] == ' ' ? 1 : 0;
        if (o - skip != wl || memcmp(txt + skip, want, wl))
            fail_msg("%s: case %zu decodes to \"%.*s\", not \"%s\"", name, i, (int)o, txt, want);
        free(txt);
        free(ids);
    }
}

/* ---- 1. llama.cpp's vectors ------------------------------------------------------------------ */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_llamacpp_vectors(void **state) {
    (void)state;
    DIR *d = opendir(data("tokenizer"));
    if (!d) skip();
    char *names[64];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 64) {
        size_t l = strlen(e->d_name);
        if (l > 9 && !strcmp(e->d_name + l - 9, ".gguf.inp")) names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    int bad = 0, tested = 0;
    for (int i = 0; i < nn; i++) {
        char base[512];
        snprintf(base, sizeof base, "tokenizer/%.*s", (int)(strlen(names[i]) - 4), names[i]);
        char inp[600], outp[600];
        snprintf(inp, sizeof inp, "%s.inp", base);
        snprintf(outp, sizeof outp, "%s.out", base);
        if (!exists(data(base))) {
            print_message("%-28s skipped: no .gguf\n", names[i]);
            free(names[i]);
            continue;
        }
        tset s = {0};
        assert_true(load_inp_out(data(inp), data(outp), &s));
        pare_vocab *v = load_gguf_vocab(data(base));
        double t0 = now();
        size_t good = run_cases(v, &s, names[i]);
        print_message("%-28s %zu/%zu cases pass (%s, pre %s, %.1f ms)\n", names[i], good, s.n,
                      v->type == PARE_VOCAB_SPM ? "spm" : "bpe", v->pre ? v->pre : "-", 1e3 * (now() - t0));
        bad += good != s.n;
        tested++;
        decodes_back(v, &s, names[i]);
        vocab_free(v);
        tset_free(&s);
        free(names[i]);
    }
    assert_true(tested > 0);
    assert_int_equal(bad, 0);
}

/* ---- 2./3. SentencePiece's ids for brown-4m ----------------------------------------------------- */
static void brown_vectors(bool from_gguf) {
    const char *vec = data("bench/brown-4m/tokenizer-vectors.json");
    const char *src = from_gguf ? data("bench/brown-4m/model.gguf") : data("bench/brown-4m/tokenizer.model");
    if (!exists(vec) || !exists(src)) skip();
    tset s = {0};
    assert_true(load_vectors_json(vec, &s));
    pare_vocab *v = NULL;
    if (from_gguf) v = load_gguf_vocab(src);
    else ok(vocab_from_spm_model(src, &v));
    size_t good = run_cases(v, &s, from_gguf ? "brown-4m model.gguf" : "brown-4m tokenizer.model");
    print_message("brown-4m %-16s %zu/%zu cases pass\n", from_gguf ? "model.gguf" : "tokenizer.model", good, s.n);
    assert_int_equal(s.n, 49);
    assert_int_equal(good, s.n);
    decodes_back(v, &s, "brown-4m");
    vocab_free(v);
    tset_free(&s);
}
static void test_brown_spm_model(void **state) { (void)state; brown_vectors(false); }
static void test_brown_gguf(void **state) { (void)state; brown_vectors(true); }

static void test_brown_model_equals_gguf(void **state) {
    (void)state;
    if (!exists(data("bench/brown-4m/model.gguf")) || !exists(data("bench/brown-4m/tokenizer.model"))) skip();
    pare_vocab *a = load_gguf_vocab(data("bench/brown-4m/model.gguf")), *b = NULL;
    ok(vocab_from_spm_model(data("bench/brown-4m/tokenizer.model"), &b));
    vocab_same(a, b, true);
    vocab_free(a);
    vocab_free(b);
}

/* ---- 4. whole files ---------------------------------------------------------------------------- */
static void whole_file(const pare_vocab *v, const char *rel, size_t want, const char *vname) {
    if (!exists(data(rel))) { print_message("%s: missing, skipped\n", rel); return; }
    size_t len, n;
    char *b = slurp(data(rel), &len);
    double t0 = now();
    int32_t *ids = tok(v, b, len, 1, &n);
    double dt = now() - t0;
    print_message("%-40s %8zu tokens (want %zu) with %s, %.3f s, %.1f MB/s\n", rel, n, want, vname, dt,
                  (double)len / 1e6 / (dt > 0 ? dt : 1e-9));
    assert_int_equal(n, want);
    assert_int_equal(ids[0], v->bos);
    for (size_t i = 1; i < n; i++) assert_true(ids[i] != v->bos);
    free(ids);
    free(b);
}

static size_t expected_tokens(const char *json_rel, const char *key) {
    char *b = slurp(data(json_rel), NULL);
    cJSON *j = cJSON_Parse(b);
    free(b);
    assert_non_null(j);
    cJSON *x = key ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, key), "tokens") : cJSON_GetObjectItem(j, "tokens");
    assert_true(cJSON_IsNumber(x));
    size_t n = (size_t)x->valuedouble;
    cJSON_Delete(j);
    return n;
}

static void test_whole_files(void **state) {
    (void)state;
    if (exists(data("bench/brown-4m/model.gguf")) && exists(data("bench/brown-4m/expected.json"))) {
        pare_vocab *v = load_gguf_vocab(data("bench/brown-4m/model.gguf"));
        size_t nb = expected_tokens("bench/brown-4m/expected.json", "brown-test");
        size_t nw = expected_tokens("bench/brown-4m/expected.json", "wikitext-2-test");
        assert_int_equal(nb, 93792);
        assert_int_equal(nw, 503483);
        whole_file(v, "bench/brown-test.txt", nb, "brown-4m");
        whole_file(v, "text/wikitext-2-raw/wiki.test.raw", nw, "brown-4m");
        if (exists(data("text/brown.txt"))) { /* a 6 MB file: speed printed (bench/ holds the speed targets) */
            size_t len, n;
            char *b = slurp(data("text/brown.txt"), &len);
            double t0 = now();
            int32_t *ids = tok(v, b, len, 1, &n);
            double dt = now() - t0;
            print_message("%-40s %8zu tokens with brown-4m, %.3f s, %.1f MB/s\n", "text/brown.txt", n, dt, (double)len / 1e6 / dt);
            free(ids);
            free(b);
        }
        vocab_free(v);
    }
    if (exists(data("stories260K/stories260K.gguf")) && exists(data("expected/stories260K-ppl.json"))) {
        pare_vocab *v = load_gguf_vocab(data("stories260K/stories260K.gguf"));
        size_t nt = expected_tokens("expected/stories260K-ppl.json", NULL);
        assert_int_equal(nt, 393019);
        whole_file(v, "text/tinystories_valid_head.txt", nt, "stories260K");
        vocab_free(v);
    }
}

/* SPM: cutting the text where no token can span, plus the piece cache, gives what merging the
 * whole text at once gives (llama.cpp's way) */
static void test_spm_cuts_exact(void **state) {
    (void)state;
    const char *vs[] = {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-phi-3.gguf", "bench/brown-4m/model.gguf",
                        "stories260K/stories260K.gguf"};
    const char *texts[] = {"bench/brown-test.txt", "text/wikitext-2-raw/wiki.test.raw", "text/tinyshakespeare.txt",
                           "text/kjv.txt", "text/tinystories_valid_head.txt", "tokenizer/ggml-vocab-llama-spm.gguf.inp"};
    size_t chunk = getenv("PARE_SAN") ? 30000 : 150000;
    int done = 0;
    for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
        if (!exists(data(vs[i]))) continue;
        pare_vocab *v = load_gguf_vocab(data(vs[i]));
        size_t total = 0;
        for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
            if (!exists(data(texts[t]))) continue;
            size_t len;
            char *b = slurp(data(texts[t]), &len);
            for (size_t off = 0; off < len; off += len / 3 + 1) {
                size_t n = len - off < chunk ? len - off : chunk;
                tok_ivec x = {0}, y = {0};
                ok(spm_tokenize(v, b + off, n, true, &x));
                ok(spm_tokenize_ref(v, b + off, n, true, &y));
                if (x.n != y.n || memcmp(x.v, y.v, x.n * sizeof *x.v))
                    fail_msg("%s on %s at %zu: %zu tokens cut, %zu whole", vs[i], texts[t], off, x.n, y.n);
                total += x.n;
                free(x.v);
                free(y.v);
            }
            free(b);
        }
        print_message("%-40s cut + cached = whole-text merge on %zu tokens\n", vs[i], total);
        vocab_free(v);
        done++;
    }
    if (!done) skip();
}

/* byte-level BPE speed on a big file */
static void test_bpe_speed(void **state) {
    (void)state;
    if (!exists(data("tokenizer/ggml-vocab-gpt-2.gguf")) || !exists(data("text/brown.txt"))) skip();
    pare_vocab *v = load_gguf_vocab(data("tokenizer/ggml-vocab-gpt-2.gguf"));
    size_t len, n;
    char *b = slurp(data("text/brown.txt"), &len);
    double t0 = now();
    int32_t *ids = tok(v, b, len, 0, &n);
    double dt = now() - t0;
    print_message("%-40s %8zu tokens with gpt-2, %.3f s, %.1f MB/s\n", "text/brown.txt", n, dt, (double)len / 1e6 / dt);
    /* the ids decode to the text */
    char piece[256];
    size_t o = 0;
    bool same = true;
    for (size_t i = 0; i < n && same; i++) {
        int l = pare_token_to_piece(v, ids[i], piece, sizeof piece);
        assert_true(l >= 0);
        if (o + (size_t)l > len || memcmp(b + o, piece, (size_t)l)) same = false;
        o += (size_t)l;
    }
    assert_true(same && o == len);
    free(ids);
    free(b);
    vocab_free(v);
}

/* ---- 5. round trips ------------------------------------------------------------------------------- */
typedef struct vsrc { const char *path; const char *tests; } vsrc;
static const vsrc VOCABS[] = {
    {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-llama-spm.gguf.inp"},
    {"tokenizer/ggml-vocab-phi-3.gguf", "tokenizer/ggml-vocab-phi-3.gguf.inp"},
    {"tokenizer/ggml-vocab-gpt-2.gguf", "tokenizer/ggml-vocab-gpt-2.gguf.inp"},
    {"tokenizer/ggml-vocab-deepseek-llm.gguf", "tokenizer/ggml-vocab-deepseek-llm.gguf.inp"},
    {"tokenizer/ggml-vocab-deepseek-coder.gguf", "tokenizer/ggml-vocab-deepseek-coder.gguf.inp"},
    {"bench/brown-4m/model.gguf", "tokenizer/ggml-vocab-llama-spm.gguf.inp"},
    {"stories260K/stories260K.gguf", "tokenizer/ggml-vocab-llama-spm.gguf.inp"},
};

/* the texts of an .inp file, plus a few with special and user-defined token texts */
static void load_texts(const char *inp, const pare_vocab *v, tset *s) {
    char outp[1024];
    snprintf(outp, sizeof outp, "%.*s.out", (int)(strlen(inp) - 4), inp);
    assert_true(load_inp_out(inp, outp, s));
    char buf[512];
    for (int k = 0; k < v->n_tokens && k < 40000; k += 997) {
        snprintf(buf, sizeof buf, "a%s b %s  c\n%s", v->text[k], v->text[(k * 7) % v->n_tokens], v->text[v->n_tokens - 1 - k % 50]);
        tset_add(s, buf, strlen(buf), NULL, 0);
    }
    /* texts with special tokens, unless the vocab has llama.cpp's name-keyed LSTRIP/RSTRIP
     * (Phi-3: from general.name, which no tokenizer file carries) */
    bool strip = false;
    for (int k = 0; k < v->n_tokens; k++) strip |= tok_im(v)->flags[k] != 0;
    for (int k = 0; k < v->n_tokens && !strip; k++)
        if (v->ttype[k] == TOK_USER || v->ttype[k] == TOK_CONTROL) {
            snprintf(buf, sizeof buf, "x %s y%s%s z", v->text[k], v->text[k], v->bos >= 0 ? v->text[v->bos] : "");
            tset_add(s, buf, strlen(buf), NULL, 0);
            if (s->n > 120) break;
        }
}

static void test_roundtrip_gguf(void **state) {
    (void)state;
    int done = 0;
    for (size_t i = 0; i < sizeof VOCABS / sizeof *VOCABS; i++) {
        if (!exists(data(VOCABS[i].path)) || !exists(data(VOCABS[i].tests))) continue;
        pare_vocab *a = load_gguf_vocab(data(VOCABS[i].path));
        gguf_writer *w = gguf_writer_new();
        assert_non_null(w);
        vocab_to_gguf(a, w);
        ok(gguf_writer_save(w, tmp("rt.gguf")));
        gguf_writer_free(w);
        pare_vocab *b = load_gguf_vocab(tmp("rt.gguf"));
        vocab_same(a, b, true);
        assert_int_equal(a->n_merges, b->n_merges);
        tset s = {0};
        load_texts(data(VOCABS[i].tests), a, &s);
        same_ids(a, b, &s, VOCABS[i].path);
        print_message("GGUF keys round trip: %-40s same vocabulary, same ids on %zu texts\n", VOCABS[i].path, s.n);
        tset_free(&s);
        vocab_free(a);
        vocab_free(b);
        done++;
    }
    if (!done) skip();
}

static void test_roundtrip_hf(void **state) {
    (void)state;
    int done = 0;
    for (size_t i = 0; i < sizeof VOCABS / sizeof *VOCABS; i++) {
        if (!exists(data(VOCABS[i].path)) || !exists(data(VOCABS[i].tests))) continue;
        pare_vocab *a = load_gguf_vocab(data(VOCABS[i].path)), *b = NULL, *c = NULL;
        tset s = {0};
        load_texts(data(VOCABS[i].tests), a, &s);
        /* the bare file (no tokenizer_config.json beside it) */
        char dir[600], sub[64];
        snprintf(sub, sizeof sub, "rt%zu", i);
        snprintf(dir, sizeof dir, "%s", tmp(sub));
        assert_int_equal(mkdir(dir, 0755), 0);
        char file[700];
        snprintf(file, sizeof file, "%s/%s", dir, a->type == PARE_VOCAB_SPM ? "tokenizer.model" : "tokenizer.json");
        if (a->type == PARE_VOCAB_SPM) {
            ok(spm_model_write(a, file));
            ok(vocab_from_spm_model(file, &b));
        } else {
            ok(hf_json_write(a, file));
            ok(vocab_from_hf_json(file, &b));
        }
        same_ids(a, b, &s, file);
        /* vocab_save_hf: the file and tokenizer_config.json */
        ok(vocab_save_hf(a, dir));
        if (a->type == PARE_VOCAB_SPM) ok(vocab_from_spm_model(file, &c));
        else ok(vocab_from_hf_json(file, &c));
        same_ids(a, c, &s, file);
        assert_int_equal(a->bos, c->bos);
        assert_int_equal(a->eos, c->eos);
        assert_int_equal(a->add_bos, c->add_bos);
        assert_int_equal(a->add_eos, c->add_eos);
        if (a->type == PARE_VOCAB_SPM) vocab_same(a, c, true);
        else {
            int diff = 0;
            for (int k = 0; k < a->n_tokens; k++) diff += strcmp(a->text[k], c->text[k]) != 0 || a->ttype[k] != c->ttype[k];
            assert_int_equal(diff, 0);
            assert_int_equal(a->n_merges, c->n_merges);
        }
        print_message("%-16s round trip: %-40s same ids on %zu texts\n",
                      a->type == PARE_VOCAB_SPM ? "tokenizer.model" : "tokenizer.json", VOCABS[i].path, s.n);
        tset_free(&s);
        vocab_free(a);
        vocab_free(b);
        vocab_free(c);
        done++;
    }
    if (!done) skip();
}

/* ---- 6. llama2.c tokenizer ------------------------------------------------------------------------- */
static void test_llama2c_decode(void **state) {
    (void)state;
    const char *tp = data("stories260K/tok512.bin"), *gp = data("stories260K/stories260K.gguf");
    const char *jp = data("expected/stories260K-greedy.json");
    if (!exists(tp) || !exists(gp) || !exists(jp)) skip();
    pare_vocab *a = NULL, *b = load_gguf_vocab(gp);
    ok(vocab_from_llama2c(tp, 512, &a));
    assert_int_equal(a->n_tokens, 512);
    vocab_same(a, b, true);
    char *js = slurp(jp, NULL);
    cJSON *j = cJSON_Parse(js);
    free(js);
    assert_non_null(j);
    cJSON *ids = cJSON_GetObjectItem(j, "ids");
    assert_true(cJSON_GetArraySize(ids) >= 20);
    char ta[1024], tb[1024];
    size_t la = 0, lb = 0;
    for (int i = 0; i < 20; i++) {
        int32_t id = (int32_t)cJSON_GetArrayItem(ids, i)->valuedouble;
        int x = pare_token_to_piece(a, id, ta + la, sizeof ta - la);
        int y = pare_token_to_piece(b, id, tb + lb, sizeof tb - lb);
        assert_true(x >= 0 && y >= 0);
        la += (size_t)x;
        lb += (size_t)y;
    }
    cJSON_Delete(j);
    ta[la] = tb[lb] = 0;
    print_message("tok512.bin decodes the first 20 greedy ids to \"%s\"\n", ta);
    assert_string_equal(ta, tb);
    assert_true(!strncmp(ta, " Once upon a time", 17));
    /* and tokenizes like the GGUF vocab */
    if (exists(data("text/tinystories_valid_head.txt"))) {
        size_t len, na, nb;
        char *t = slurp(data("text/tinystories_valid_head.txt"), &len);
        int32_t *x = tok(a, t, len, 1, &na), *y = tok(b, t, len, 1, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(x, y, na * sizeof *x);
        free(x);
        free(y);
        free(t);
    }
    /* n_vocab <= 0: every token in the file */
    pare_vocab *c = NULL;
    ok(vocab_from_llama2c(tp, 0, &c));
    assert_int_equal(c->n_tokens, 512);
    vocab_free(c);
    vocab_free(a);
    vocab_free(b);
}

/* ---- decoding ---------------------------------------------------------------------------------------- */
static void test_decode(void **state) {
    (void)state;
    if (!exists(data("tokenizer/ggml-vocab-llama-spm.gguf")) || !exists(data("tokenizer/ggml-vocab-gpt-2.gguf"))) skip();
    pare_vocab *v = load_gguf_vocab(data("tokenizer/ggml-vocab-llama-spm.gguf"));
    char b[64];
    assert_int_equal(pare_token_to_piece(v, 1, b, sizeof b), 0);            /* <s>: control */
    assert_int_equal(pare_token_to_piece(v, 0, b, sizeof b), 0);            /* <unk> */
    assert_int_equal(pare_token_to_piece(v, 3 + 0x0A, b, sizeof b), 1);     /* <0x0A> */
    assert_int_equal(b[0], '\n');
    int32_t id = vocab_find(v, "\xe2\x96\x81Hello", 8);
    assert_true(id >= 0);
    assert_int_equal(pare_token_to_piece(v, id, b, sizeof b), 6);
    assert_memory_equal(b, " Hello", 6);
    assert_int_equal(pare_token_to_piece(v, id, b, 3), -6);                  /* too small */
    assert_int_equal(pare_token_to_piece(v, -1, b, sizeof b), 0);
    assert_int_equal(pare_token_to_piece(v, v->n_tokens, b, sizeof b), 0);
    assert_int_equal(pare_vocab_size(v), 32000);
    assert_int_equal(pare_vocab_bos(v), 1);
    assert_int_equal(pare_vocab_eos(v), 2);
    /* add_special: BOS in front, nothing else */
    size_t n;
    int32_t *ids = tok(v, "", 0, 1, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    ids = tok(v, "", 0, 0, &n);
    assert_int_equal(n, 0);
    free(ids);
    /* parse_special: "<s>" in the text becomes BOS only when asked */
    ok(vocab_tokenize(v, "a<s>b", 5, false, true, &ids, &n));
    bool has_bos = false;
    for (size_t i = 0; i < n; i++) has_bos |= ids[i] == 1;
    assert_true(has_bos);
    free(ids);
    ids = tok(v, "a<s>b", 5, 0, &n);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] != 1);
    free(ids);
    vocab_free(v);
    v = load_gguf_vocab(data("tokenizer/ggml-vocab-gpt-2.gguf"));
    id = vocab_find(v, "\xc4\xa0world", 7); /* "Ġworld" */
    assert_true(id >= 0);
    assert_int_equal(pare_token_to_piece(v, id, b, sizeof b), 6);
    assert_memory_equal(b, " world", 6);
    assert_int_equal(pare_token_to_piece(v, 50256, b, sizeof b), 0); /* <|endoftext|>: control */
    vocab_free(v);
}

/* special tokens in the text (parse_special): Phi-3's chat turn, whose special tokens llama.cpp
 * makes RSTRIP from general.name; llama.cpp gives 1 32010 317 21554 13 17628 32007 32001 */
static void test_phi3_chat(void **state) {
    (void)state;
    if (!exists(data("tokenizer/ggml-vocab-phi-3.gguf"))) skip();
    pare_vocab *v = load_gguf_vocab(data("tokenizer/ggml-vocab-phi-3.gguf"));
    const char *t = "<|user|>\nSYS\nHI<|end|>\n<|assistant|>\n";
    int32_t *ids, want[] = {1, 32010, 317, 21554, 13, 17628, 32007, 32001};
    size_t n;
    ok(vocab_tokenize(v, t, strlen(t), true, true, &ids, &n));
    if (n != 8 || memcmp(ids, want, sizeof want)) { show_ids("got", ids, n); fail(); }
    free(ids);
    vocab_free(v);
}

/* ---- 7. malformed inputs --------------------------------------------------------------------------- */
static void expect_error(pare_status st, pare_vocab *v, const char *path, const char *what) {
    if (st == PARE_OK) {
        vocab_free(v);
        fail_msg("%s: loaded, should have failed", what);
    }
    const char *msg = pare_last_error();
    if (!strstr(msg, path)) fail_msg("%s: message does not name the file: %s", what, msg);
    if (strchr(msg, '\n')) fail_msg("%s: message is not one line", what);
}

static void test_bad_spm_model(void **state) {
    (void)state;
    const char *src = data("bench/brown-4m/tokenizer.model");
    if (!exists(src)) skip();
    size_t n;
    char *p = slurp(src, &n);
    const char *path = tmp("tokenizer.model");
    /* offsets between top-level fields: a cut there is a well-formed (smaller) message */
    bool *edge = calloc(n + 1, 1);
    assert_non_null(edge);
    for (size_t off = 0; off < n;) {
        edge[off] = true;
        uint64_t key = 0, len = 0;
        for (int sh = 0;; sh += 7) { unsigned char c = (unsigned char)p[off++]; key |= (uint64_t)(c & 0x7f) << sh; if (!(c & 0x80)) break; }
        assert_int_equal(key & 7, 2);
        for (int sh = 0;; sh += 7) { unsigned char c = (unsigned char)p[off++]; len |= (uint64_t)(c & 0x7f) << sh; if (!(c & 0x80)) break; }
        off += len;
    }
    int loaded = 0, failed = 0;
    for (size_t k = 0; k < n; k += k < 300 ? 1 : k > n - 300 ? 1 : 61) {
        spit(path, p, k);
        pare_vocab *v = NULL;
        pare_status st = vocab_from_spm_model(path, &v);
        if (!st) {
            /* only the cut after the trainer_spec (no normalizer_spec) is a usable BPE model */
            if (!edge[k] || v->n_tokens != 2048) fail_msg("tokenizer.model cut at %zu of %zu loaded", k, n);
            loaded++;
            vocab_free(v);
            continue;
        }
        expect_error(st, NULL, path, "truncated tokenizer.model");
        failed++;
    }
    assert_true(loaded <= 1);
    free(edge);
    /* flipped bytes: load or fail, never crash */
    unsigned s = 1;
    for (int t = 0; t < 150; t++) {
        char *q = malloc(n);
        memcpy(q, p, n);
        for (int f = 0; f < 3; f++) { s = s * 1103515245u + 12345u; q[(s >> 8) % n] = (char)(s >> 20); }
        spit(path, q, n);
        free(q);
        pare_vocab *v = NULL;
        pare_status st = vocab_from_spm_model(path, &v);
        if (!st) {
            size_t m;
            int32_t *ids = tok(v, "Hello world, a test.", 20, 1, &m);
            free(ids);
            vocab_free(v);
        } else expect_error(st, NULL, path, "corrupt tokenizer.model");
    }
    const char *junk[] = {"", "hello, world", "\x0a\x05\x0a\x01", "\x0a\x02\x0a\x00", "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
                          "\x08\x96\x01", "\x0b\x00"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        spit(path, junk[i], strlen(junk[i]));
        pare_vocab *v = NULL;
        expect_error(vocab_from_spm_model(path, &v), v, path, "junk tokenizer.model");
    }
    pare_vocab *v = NULL;
    expect_error(vocab_from_spm_model(tmp("no-such-file.model"), &v), v, tmp("no-such-file.model"), "missing file");
    print_message("tokenizer.model cut at %d offsets: %d fail with a message, %d (between fields) load\n", failed + loaded,
                  failed, loaded);
    free(p);
}

static void test_bad_json(void **state) {
    (void)state;
    const char *path = tmp("tokenizer.json");
    const char *bad[] = {
        "",
        "{",
        "[1, 2, 3]",
        "{\"model\": 5}",
        "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": null}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": [1]}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [5]}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 1}], \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": 3, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
        "[{\"type\": \"Split\", \"pattern\": {\"Regex\": \"x+\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        spit(path, bad[i], strlen(bad[i]));
        pare_vocab *v = NULL;
        char what[64];
        snprintf(what, sizeof what, "bad tokenizer.json #%zu", i);
        expect_error(vocab_from_hf_json(path, &v), v, path, what);
    }
    /* a good minimal one loads and tokenizes */
    const char *good = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3}, \"merges\": [\"a b\"]},"
                       " \"added_tokens\": [{\"id\": 5, \"content\": \"<|end|>\", \"special\": true}],"
                       " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}}";
    spit(path, good, strlen(good));
    pare_vocab *v = NULL;
    ok(vocab_from_hf_json(path, &v));
    assert_int_equal(v->n_tokens, 6);
    assert_string_equal(v->text[4], "[PAD4]");
    assert_int_equal(v->ttype[4], TOK_UNUSED);
    assert_int_equal(v->ttype[5], TOK_CONTROL);
    assert_string_equal(v->pre, "gpt-2");
    size_t n;
    int32_t *ids = tok(v, "ab ab", 5, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 2);
    free(ids);
    vocab_free(v);
    /* merges as pairs; a bad tokenizer_config.json beside is an error */
    const char *pairs = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"]]},"
                        " \"decoder\": {\"type\": \"ByteLevel\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    spit(path, pairs, strlen(pairs));
    ok(vocab_from_hf_json(path, &v));
    assert_string_equal(v->merges[0], "a b");
    vocab_free(v);
    spit(tmp("tokenizer_config.json"), "{\"add_bos_token\": ", 18);
    v = NULL;
    expect_error(vocab_from_hf_json(path, &v), v, tmp("tokenizer_config.json"), "bad tokenizer_config.json");
    unlink(tmp("tokenizer_config.json"));
}

static void test_bad_llama2c(void **state) {
    (void)state;
    const char *src = data("stories260K/tok512.bin");
    if (!exists(src)) skip();
    size_t n;
    char *p = slurp(src, &n);
    const char *path = tmp("tok512.bin");
    for (size_t k = 0; k < n; k += k < 64 ? 1 : 23) {
        spit(path, p, k);
        pare_vocab *v = NULL;
        expect_error(vocab_from_llama2c(path, 512, &v), v, path, "truncated tok512.bin");
    }
    char *q = malloc(n);
    memcpy(q, p, n);
    int32_t neg = -5;
    memcpy(q + 4 + 4, &neg, 4); /* token 0: negative length */
    spit(path, q, n);
    pare_vocab *v = NULL;
    expect_error(vocab_from_llama2c(path, 512, &v), v, path, "negative length");
    free(q);
    free(p);
}

static void test_bad_gguf_keys(void **state) {
    (void)state;
    const char *path = tmp("bad.gguf");
    char *toks[3] = {"a", "b", "c"};
    float sc[2] = {0, 0};
    int32_t tt[3] = {1, 9, 1};
    for (int c = 0; c < 7; c++) {
        gguf_writer *w = gguf_writer_new();
        assert_non_null(w);
        if (c != 0) gguf_w_str(w, "tokenizer.ggml.model", c == 1 ? "bert" : c == 6 ? "gpt2" : "llama");
        if (c != 2) gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        else gguf_w_u32(w, "tokenizer.ggml.tokens", 3);
        if (c == 3) gguf_w_arr_f32(w, "tokenizer.ggml.scores", sc, 2);
        if (c == 4) gguf_w_arr_i32(w, "tokenizer.ggml.token_type", tt, 3);
        if (c == 5) gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 0);
        if (c == 6) gguf_w_str(w, "tokenizer.ggml.pre", "no-such-pre"); /* and no merges */
        ok(gguf_writer_save(w, path));
        gguf_writer_free(w);
        pare_gguf *g = NULL;
        ok(gguf_open(path, &g));
        pare_vocab *v = NULL;
        char what[32];
        snprintf(what, sizeof what, "bad GGUF vocab #%d", c);
        expect_error(vocab_from_gguf(g, &v), v, path, what);
        gguf_close(g);
    }
    /* unknown pre-tokenizer with merges: unsupported */
    gguf_writer *w = gguf_writer_new();
    char *merges[1] = {"a b"};
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    ok(gguf_writer_save(w, path));
    gguf_writer_free(w);
    pare_gguf *g = NULL;
    ok(gguf_open(path, &g));
    pare_vocab *v = NULL;
    pare_status st = vocab_from_gguf(g, &v);
    gguf_close(g);
    assert_int_equal(st, PARE_ERR_UNSUPPORTED);
    expect_error(st, v, path, "unknown pre");
}

/* odd inputs: invalid UTF-8, NUL bytes, long runs - no crash, deterministic */
static void test_odd_text(void **state) {
    (void)state;
    const char *vs[] = {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-gpt-2.gguf",
                        "tokenizer/ggml-vocab-deepseek-llm.gguf", "tokenizer/ggml-vocab-deepseek-coder.gguf",
                        "bench/brown-4m/model.gguf"};
    int done = 0;
    for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
        if (!exists(data(vs[i]))) continue;
        pare_vocab *v = load_gguf_vocab(data(vs[i]));
        const char odd[] = "\xff\xfe a\x80\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\x80 \xe2\x82 x\0y \xf0\x9f";
        size_t n;
        int32_t *ids = tok(v, odd, sizeof odd - 1, 1, &n);
        assert_true(n > 0);
        for (size_t k = 0; k < n; k++) assert_true(ids[k] >= 0 && ids[k] < v->n_tokens);
        free(ids);
        size_t big = 200000;
        char *s = malloc(big);
        for (size_t k = 0; k < big; k++) s[k] = k % 1000 < 900 ? ' ' : "ab\n\t7."[k % 6];
        ids = tok(v, s, big, 0, &n);
        assert_true(n > 0);
        free(ids);
        memset(s, 'a', big);
        ids = tok(v, s, big, 0, &n);
        assert_true(n > 0);
        free(ids);
        free(s);
        vocab_free(v);
        done++;
    }
    if (!done) skip();
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

static int setup(void **state) {
    (void)state;
    const char *d = getenv("PARE_DATA");
    snprintf(g_data, sizeof g_data, "%s", d && *d ? d : "/work/shared/data");
    snprintf(g_tmp, sizeof g_tmp, "/tmp/pare-test-tok-XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    if (!strncmp(g_tmp, "/tmp/pare-test-tok-", 19)) nftw(g_tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llamacpp_vectors),
        cmocka_unit_test(test_brown_spm_model),
        cmocka_unit_test(test_brown_gguf),
        cmocka_unit_test(test_brown_model_equals_gguf),
        cmocka_unit_test(test_whole_files),
        cmocka_unit_test(test_spm_cuts_exact),
        cmocka_unit_test(test_bpe_speed),
        cmocka_unit_test(test_roundtrip_gguf),
        cmocka_unit_test(test_roundtrip_hf),
        cmocka_unit_test(test_llama2c_decode),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_phi3_chat),
        cmocka_unit_test(test_bad_spm_model),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_llama2c),
        cmocka_unit_test(test_bad_gguf_keys),
        cmocka_unit_test(test_odd_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

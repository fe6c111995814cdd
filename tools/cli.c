/* cli.c - what every subcommand shares: one-line errors, flag parsing, model loading. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *g_cmd = "pare";

/* One-line error and a non-zero exit: the only way the CLI fails. */
int die(const char *fmt, const char *arg) {
    fprintf(stderr, "pare %s: ", g_cmd);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}
int die_st(void) {
    fprintf(stderr, "pare %s: %s\n", g_cmd, pare_last_error());
    return 1;
}

/* ---- flag parsing -------------------------------------------------------------------- */

static int is_flag(const char *a, const char *name) { return !strcmp(a, name); }

/* Parse argv into positionals; option values are looked up with opt_*. Options are
 * --name VALUE or --name=VALUE; boolean options are --name. */
const char *opt_str(flags *f, const char *name, const char *def) {
    size_t n = strlen(name);
    for (int i = 0; i < f->argc; i++) {
        const char *a = f->argv[i];
        if (!strncmp(a, name, n) && a[n] == '=') return a + n + 1;
        if (is_flag(a, name)) {
            if (i + 1 < f->argc) return f->argv[i + 1];
            f->bad = 1; die("option %s needs a value", name);
            return def;
        }
    }
    return def;
}
int opt_bool(flags *f, const char *name) {
    for (int i = 0; i < f->argc; i++) if (is_flag(f->argv[i], name)) return 1;
    return 0;
}
long opt_int(flags *f, const char *name, long def) {
    const char *s = opt_str(f, name, NULL);
    if (!s) return def;
    char *e; errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s) { f->bad = 1; die("option %s needs an integer", name); return def; }
    return v;
}
double opt_num(flags *f, const char *name, double def) {
    const char *s = opt_str(f, name, NULL);
    if (!s) return def;
    char *e; errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || e == s) { f->bad = 1; die("option %s needs a number", name); return def; }
    return v;
}
/* Collect positionals: anything not starting with '-' and not the value of a known
 * value-taking option. */
static const char *g_max_memory; /* --max-memory of the running command (load_calib checks it) */

double parse_size(const char *s) {
    char *e;
    double v = strtod(s, &e);
    if (e == s || !(v > 0)) return -1;
    double mul = 1;
    if (*e == 'k' || *e == 'K') mul = 1024.0, e++;
    else if (*e == 'm' || *e == 'M') mul = 1048576.0, e++;
    else if (*e == 'g' || *e == 'G') mul = 1073741824.0, e++;
    if (*e == 'b' || *e == 'B') e++;
    if (*e) return -1;
    return v * mul;
}

void parse(flags *f, int argc, char **argv, const char *const *valued) {
    memset(f, 0, sizeof *f);
    f->argc = argc; f->argv = argv;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) progress_set_quiet(1); /* every command */
            if (!strcmp(a, "--max-memory") && i + 1 < argc) g_max_memory = argv[i + 1];
            else if (!strncmp(a, "--max-memory=", 13)) g_max_memory = a + 13;
            int takes = 0;
            for (const char *const *v = valued; *v; v++) if (is_flag(a, *v)) takes = 1;
            if (takes) i++;
            continue;
        }
        if (f->n_pos < 4) f->pos[f->n_pos++] = a;
    }
}
int check_unknown(flags *f, const char *const *valued, const char *const *booleans) {
    for (int i = 0; i < f->argc; i++) {
        const char *a = f->argv[i];
        if (a[0] != '-' || !a[1]) continue;
        int ok = 0;
        for (const char *const *v = valued; *v && !ok; v++) {
            size_t n = strlen(*v);
            if (is_flag(a, *v)) { ok = 1; i++; }
            else if (!strncmp(a, *v, n) && a[n] == '=') ok = 1;
        }
        for (const char *const *v = booleans; *v && !ok; v++) if (is_flag(a, *v)) ok = 1;
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q") || !strcmp(a, "--force")) ok = 1; /* every command */
        if (!ok) return die("unknown option %s (see --help)", a);
    }
    return 0;
}

void set_threads(flags *f) {
    long t = opt_int(f, "--threads", 0);
    if (t > 0) omp_set_num_threads((int)t);
}

int load(flags *f, const char *path, pare_model **m) {
    const char *tok = opt_str(f, "--tokenizer", NULL);
    if (pare_model_load(path, tok, m)) return die_st();
    return 0;
}


int parse_nm(const char *s, int *n, int *m) {
    char *e;
    long a = strtol(s, &e, 10), b;
    if (e == s || *e != ':' || (b = strtol(e + 1, &e, 10), *e)) return die("N:M '%s': expected two integers like 2:4", s);
    if (a <= 0 || a >= b) return die("N:M '%s': N must satisfy 0 < N < M", s);
    if (b > 16) return die("N:M '%s': M must be at most 16", s);
    *n = (int)a; *m = (int)b;
    return 0;
}

int load_engine(flags *f, const char *path, pare_model **m, pare_nm_summary *sum) {
    const char *sp = opt_str(f, "--sparse", "auto");
    int want;
    if (!strcmp(sp, "auto")) want = 0;
    else if (!strcmp(sp, "q8")) want = PARE_TYPE_Q8_0;
    else if (!strcmp(sp, "off")) want = -1;
    else return die("unknown --sparse '%s' (auto, q8, off)", sp);
    const char *lay = opt_str(f, "--layout", "engine");
    if (strcmp(lay, "engine") && strcmp(lay, "file")) return die("unknown --layout '%s' (engine, file)", lay);
    int vote = opt_bool(f, "--vote");
    long ex = opt_int(f, "--exit", -1);
    if (load(f, path, m)) return 1;
    if ((vote || ex >= 0) && !(*m)->n_exit) {
        pare_model_free(*m); *m = NULL;
        return die("%s: the model has no early exits (pare tune makes them)", path);
    }
    if (vote && ex >= 0) { pare_model_free(*m); *m = NULL; return die("%s", "--vote and --exit exclude each other"); }
    if (ex >= (*m)->n_exit || ex < -1) {
        int ne = (*m)->n_exit;
        pare_model_free(*m); *m = NULL;
        char msg[96];
        snprintf(msg, sizeof msg, "--exit %ld: the model has exits 0..%d", ex, ne - 1);
        return die("%s", msg);
    }
    if ((*m)->n_exit) (*m)->exit_mode = vote ? PARE_EXIT_VOTE : ex >= 0 ? (int)ex : PARE_EXIT_LAST;
    pare_nm_summary s = {0};
    if (want >= 0) {
        double t0 = pare_now();
        if (model_pack_nm(*m, want, &s)) { pare_model_free(*m); *m = NULL; return die_st(); }
        if (s.packed)
            fprintf(stderr, "pare %s: %d of %d block matrices are %d:%d sparse: compressed, %.1f MB -> %.1f MB (%.1f s)\n", g_cmd,
                    s.packed, s.matrices, s.n, s.m, (double)s.dense_bytes / 1e6, (double)s.packed_bytes / 1e6, pare_now() - t0);
    }
    if (!strcmp(lay, "engine") && model_pack_engine(*m, NULL)) { pare_model_free(*m); *m = NULL; return die_st(); }
    if (sum) *sum = s;
    return 0;
}

int same_file(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return 0;
    return !strcmp(ra, rb);
}


int load_calib(const pare_model *m, const char *calib, long nsamples, long *seqlen, long seed, const char *order,
               calib_data *cd) {
    if (*seqlen > m->n_ctx_train && m->n_ctx_train > 0) *seqlen = m->n_ctx_train;
    if (!calib) return 0;
    if (!m->vocab) return die("%s", "the model has no tokenizer (give --tokenizer)");
    if (calib_from_text(m->vocab, calib, (int)nsamples, (int)*seqlen, (uint64_t)seed,
                        !strcmp(order, "first") ? CALIB_FIRST : CALIB_RANDOM, cd))
        return die_st();
    if (g_max_memory) { /* refuse before the run, with the estimate */
        double lim = parse_size(g_max_memory);
        if (lim <= 0) { calib_free(cd); return die("--max-memory '%s': expected a size like 512M or 2G", g_max_memory); }
        double blk = 0; /* the largest block's weights, paged in while it is worked on */
        for (int l = 0; l < m->n_layer; l++) {
            const pare_layer *L = &m->layers[l];
            const pare_tensor *t[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
            double b = 0;
            for (int i = 0; i < 7; i++) if (t[i]) b += (double)t[i]->nbytes;
            if (b > blk) blk = b;
        }
        blk += (double)m->tok_embd->nbytes + (m->output != m->tok_embd ? (double)m->output->nbytes : 0);
        double base = (double)pare_rss_bytes(), work = (double)calib_plan_bytes(m, cd->n, cd->T, 1);
        if (base + blk + work > lim) {
            char msg[256];
            snprintf(msg, sizeof msg, "needs about %.1f MB (process %.1f, one block with embeddings and head %.1f, calibration and work %.1f for %d x %d "
                     "tokens), over --max-memory %.1f MB", (base + blk + work) / 1048576, base / 1048576, blk / 1048576,
                     work / 1048576, cd->n, cd->T, lim / 1048576);
            calib_free(cd);
            return die("%s", msg);
        }
    }
    return 0;
}

/* cmd_report.c - pare report: one self-contained HTML page (inline SVG, no scripts, no
 * network) from the --json output of pare's commands. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *report_HELP =
    "usage: pare report RUN.json... -o report.html [--title TEXT]\n"
    "\n"
    "One self-contained HTML page (inline SVG, no scripts, no network) from the --json output of\n"
    "pare's commands: every file may hold any number of JSON objects (one per line, as the\n"
    "commands print them; progress objects are skipped). What it draws:\n"
    "  - perplexity against sparsity (the fraction of block weights zeroed or removed: units,\n"
    "    blocks), one curve per method (and N:M pattern): a pruning or\n"
    "    compression result (pare prune/compress/quantize --json) joined to the pare ppl --json\n"
    "    of its output file (matched by path); the ppl of their input is the dense point\n"
    "  - per-block sparsity of each pruning result, per-block sparsity and bits and the\n"
    "    sensitivity e_l of each compression or profile\n"
    "  - decode and prefill speed and peak memory (pare bench --json), each against the dense\n"
    "    model's (the bench of a pruning input, else the first bench)\n"
    "  - the exits' losses of pare tune runs\n"
    "  - tables of every result, the numbers as in the JSON\n"
    "\n"
    "  -o FILE        the page (required)\n"
    "  --title TEXT   its title (default: pare report)\n"
    "\n"
    "example: { pare prune m.gguf -o p.gguf --method wanda --nm 2:4 --calib c.txt --json;\n"
    "           pare ppl p.gguf --text t.txt --json; } > wanda.json\n"
    "         pare report wanda.json dense.json -o report.html\n";

/* ---- a growing string ----------------------------------------------------------------- */
typedef struct sb { char *p; size_t n, cap; int oom; } sb;
static void sb_add(sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb *s, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = s->cap - s->n;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { s->oom = 1; return; }
        if (s->p && (size_t)k < room) { s->n += (size_t)k; return; }
        size_t nc = s->cap ? s->cap * 2 : 65536;
        while (nc < s->n + (size_t)k + 1) nc *= 2;
        char *np = realloc(s->p, nc);
        if (!np) { s->oom = 1; return; }
        s->p = np; s->cap = nc;
    }
}
static void sb_esc(sb *s, const char *t) { /* HTML text */
    for (; t && *t; t++) {
        if (*t == '<') sb_add(s, "&lt;");
        else if (*t == '>') sb_add(s, "&gt;");
        else if (*t == '&') sb_add(s, "&amp;");
        else if (*t == '"') sb_add(s, "&quot;");
        else sb_add(s, "%c", *t);
    }
}

/* ---- the records ------------------------------------------------------------------------ */
enum { R_PPL, R_PRUNE, R_COMPRESS, R_QUANT, R_PROFILE, R_BENCH, R_TUNE, R_MC, R_OTHER, R_N };
static const char *KIND[R_N] = {"perplexity", "pruning", "compression", "quantization", "sensitivity profile",
                                "speed and memory", "tuning", "multiple choice", "other"};
typedef struct rec { cJSON *j; const char *file; int idx, kind; } rec;

static const cJSON *get(const cJSON *j, const char *k) { return cJSON_GetObjectItemCaseSensitive(j, k); }
static double num(const cJSON *j, const char *k) {
    const cJSON *x = get(j, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}
static const char *str(const cJSON *j, const char *k) {
    const cJSON *x = get(j, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int kind_of(const cJSON *j) {
    if (get(j, "ppl") && get(j, "windows")) return R_PPL;
    if (get(j, "tg_tps")) return R_BENCH;
    if (get(j, "exit_loss")) return R_TUNE;
    if (get(j, "tasks_file")) return R_MC;
    if (get(j, "prune_err") && !get(j, "output")) return R_PROFILE;
    if (get(j, "layer_bits") && get(j, "output")) return R_COMPRESS;
    if (get(j, "bits_per_weight") && get(j, "output")) return R_QUANT;
    if (get(j, "method") && get(j, "output")) return R_PRUNE;
    return R_OTHER;
}
/* progress lines of long commands (step/steps, stopped) are not results */
static int is_progress(const cJSON *j) { return (get(j, "step") && !get(j, "done")) || get(j, "valid_loss"); }

static const char *base(const char *p) {
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p ? p : "?";
}

/* the last ppl result of the model at path */
static const rec *ppl_of(const rec *r, int n, const char *path) {
    const rec *best = NULL;
    for (int i = 0; path && i < n; i++)
        if (r[i].kind == R_PPL && str(r[i].j, "model") && (!strcmp(str(r[i].j, "model"), path) ||
                                                           !strcmp(base(str(r[i].j, "model")), base(path))))
            best = &r[i];
    return best;
}

/* ---- SVG -------------------------------------------------------------------------------- */
static const char *COLOR[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                              "#7f7f7f", "#bcbd22", "#393b79", "#e7ba52", "#637939", "#ad494a"};
#define NCOLOR 14

typedef struct series { char name[96]; double x[64], y[64]; int n; } series;

static double nice_step(double span) {
    double e = pow(10, floor(log10(span > 0 ? span : 1))), f = span / e;
    return (f < 1.5 ? 0.2 : f < 3 ? 0.5 : f < 7 ? 1 : 2) * e;
}

static void svg_lines(sb *o, const char *title, const char *xl, const char *yl, series *S, int ns) {
    const int W = 640, H = 380, L = 64, R = 180, T = 34, B = 48;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < ns; s++)
        for (int i = 0; i < S[s].n; i++) {
            if (!isfinite(S[s].x[i]) || !isfinite(S[s].y[i])) continue;
            x0 = fmin(x0, S[s].x[i]); x1 = fmax(x1, S[s].x[i]); y0 = fmin(y0, S[s].y[i]); y1 = fmax(y1, S[s].y[i]);
        }
    if (!(x1 >= x0) || !(y1 >= y0)) return;
    int logy = y0 > 0 && y1 / y0 > 8;
    if (x1 == x0) { x0 -= 0.05; x1 += 0.05; }
    double ly0 = logy ? log10(y0) : y0, ly1 = logy ? log10(y1) : y1;
    if (ly1 == ly0) { ly0 -= 0.5; ly1 += 0.5; }
    double pad = 0.06 * (ly1 - ly0);
    ly0 -= pad; ly1 += pad;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * (W - L - R))
#define PY(v) (T + (ly1 - (logy ? log10(v) : (v))) / (ly1 - ly0) * (H - T - B))
    sb_add(o, "<figure><svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' role='img'>\n", W, H, W, H);
    sb_add(o, "<text x='%d' y='20' font-size='15' font-weight='bold'>", L);
    sb_esc(o, title);
    sb_add(o, "</text>\n<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#999'/>\n", L, T, W - L - R, H - T - B);
    double xs = nice_step(x1 - x0);
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs)
        sb_add(o, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#eee'/><text x='%.1f' y='%d' font-size='11' "
                  "text-anchor='middle'>%g</text>\n", PX(v), T, PX(v), H - B, PX(v), H - B + 15, v);
    if (logy) {
        for (int e = (int)floor(ly0); e <= (int)ceil(ly1); e++)
            for (int m = 1; m < 10; m++) {
                double v = m * pow(10, e), lv = log10(v);
                if (lv < ly0 || lv > ly1 || (m != 1 && m != 2 && m != 5)) continue;
                sb_add(o, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/><text x='%d' y='%.1f' font-size='11' "
                          "text-anchor='end'>%g</text>\n", L, PY(v), W - R, PY(v), L - 4, PY(v) + 4, v);
            }
    } else {
        double ys = nice_step(ly1 - ly0);
        for (double v = ceil(ly0 / ys) * ys; v <= ly1 + 1e-9; v += ys)
            sb_add(o, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/><text x='%d' y='%.1f' font-size='11' "
                      "text-anchor='end'>%g</text>\n", L, PY(v), W - R, PY(v), L - 4, PY(v) + 4, v);
    }
    sb_add(o, "<text x='%d' y='%d' font-size='12' text-anchor='middle'>", (L + W - R) / 2, H - 10);
    sb_esc(o, xl);
    sb_add(o, "</text><text x='14' y='%d' font-size='12' text-anchor='middle' transform='rotate(-90 14 %d)'>",
           (T + H - B) / 2, (T + H - B) / 2);
    sb_esc(o, yl);
    sb_add(o, "%s</text>\n", logy ? " (log scale)" : "");
    for (int s = 0; s < ns; s++) {
        const char *c = COLOR[s % NCOLOR];
        sb_add(o, "<polyline fill='none' stroke='%s' stroke-width='2' points='", c);
        for (int i = 0; i < S[s].n; i++) sb_add(o, "%.1f,%.1f ", PX(S[s].x[i]), PY(S[s].y[i]));
        sb_add(o, "'/>\n");
        for (int i = 0; i < S[s].n; i++)
            sb_add(o, "<circle cx='%.1f' cy='%.1f' r='3.5' fill='%s'><title>%s: %g, %g</title></circle>\n", PX(S[s].x[i]),
                   PY(S[s].y[i]), c, S[s].name, S[s].x[i], S[s].y[i]);
        sb_add(o, "<rect x='%d' y='%d' width='12' height='12' fill='%s'/><text x='%d' y='%d' font-size='12'>", W - R + 12,
               T + 6 + 18 * s, c, W - R + 30, T + 16 + 18 * s);
        sb_esc(o, S[s].name);
        sb_add(o, "</text>\n");
    }
    sb_add(o, "</svg></figure>\n");
#undef PX
#undef PY
}

/* horizontal bars; ref (if finite) drawn as a dashed line with its label */
static void svg_bars(sb *o, const char *title, char (*labels)[96], const double *v, int n, const char *unit, double ref,
                     const char *ref_label) {
    if (n < 1) return;
    const int W = 640, L = 220, R = 90, T = 34, BH = 18, GAP = 6;
    int H = T + n * (BH + GAP) + 30;
    double mx = isfinite(ref) ? ref : 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i]) && v[i] > mx) mx = v[i];
    if (!(mx > 0)) mx = 1;
    sb_add(o, "<figure><svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' role='img'>\n", W, H, W, H);
    sb_add(o, "<text x='8' y='20' font-size='15' font-weight='bold'>");
    sb_esc(o, title);
    sb_add(o, "</text>\n");
    for (int i = 0; i < n; i++) {
        double w = isfinite(v[i]) && v[i] > 0 ? v[i] / mx * (W - L - R) : 0;
        int y = T + i * (BH + GAP);
        sb_add(o, "<text x='%d' y='%d' font-size='12' text-anchor='end'>", L - 6, y + 13);
        sb_esc(o, labels[i]);
        sb_add(o, "</text><rect x='%d' y='%d' width='%.1f' height='%d' fill='%s'/><text x='%.1f' y='%d' font-size='12'>%.4g%s%s</text>\n",
               L, y, w, BH, COLOR[0], L + w + 4, y + 13, v[i], unit[0] ? " " : "", unit);
    }
    if (isfinite(ref)) {
        double x = L + ref / mx * (W - L - R);
        sb_add(o, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#d62728' stroke-dasharray='5,3'/>"
                  "<text x='%.1f' y='%d' font-size='11' fill='#d62728' text-anchor='middle'>", x, T - 4, x, H - 24, x, H - 10);
        sb_esc(o, ref_label);
        sb_add(o, " %.4g</text>\n", ref);
    }
    sb_add(o, "</svg></figure>\n");
}

/* ---- tables -------------------------------------------------------------------------------- */
/* columns of each kind: JSON keys (numbers or strings) */
static const char *const COLS[R_N][12] = {
    [R_PPL] = {"model", "ppl", "nll", "windows", "ctx", "protocol", "seconds", NULL},
    [R_PRUNE] = {"output", "method", "nm", "sparsity_target", "sparsity", "ratio", "block_removed_ratio", "blocks_after",
                 "nsamples", "seconds", NULL},
    [R_COMPRESS] = {"output", "method", "target_sparsity", "bits", "mean_sparsity", "sparse_mb", "nominal_mb", "seconds", NULL},
    [R_QUANT] = {"output", "method", "type", "bits_per_weight", "quantized_mb", "seconds", NULL},
    [R_PROFILE] = {"model", "n_layer", "profile_method", "seconds", NULL},
    [R_BENCH] = {"model", "type", "sparse", "threads", "pp_tps", "tg_tps", "peak_rss_mb", "roofline_ratio", "linear_mb", NULL},
    [R_TUNE] = {"output", "method", "window", "steps", "loss", "sec_per_step", "peak_rss_mb", "predicted_peak_mb", NULL},
    [R_MC] = {"tasks_file", "model", "n", NULL},
    [R_OTHER] = {NULL},
};

static void table(sb *o, const rec *r, int n, int kind) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= r[i].kind == kind;
    if (!any) return;
    sb_add(o, "<h3>%s</h3>\n<table data-kind='%d'><tr><th>file</th>", KIND[kind], kind);
    for (int c = 0; COLS[kind][c]; c++) { sb_add(o, "<th>"); sb_esc(o, COLS[kind][c]); sb_add(o, "</th>"); }
    sb_add(o, "</tr>\n");
    for (int i = 0; i < n; i++) {
        if (r[i].kind != kind) continue;
        sb_add(o, "<tr data-src='");
        sb_esc(o, base(r[i].file));
        sb_add(o, "#%d'><td>", r[i].idx);
        sb_esc(o, base(r[i].file));
        sb_add(o, "</td>");
        for (int c = 0; COLS[kind][c]; c++) {
            const cJSON *x = get(r[i].j, COLS[kind][c]);
            sb_add(o, "<td data-k='");
            sb_esc(o, COLS[kind][c]);
            sb_add(o, "'>");
            if (cJSON_IsNumber(x)) sb_add(o, "%.10g", x->valuedouble);
            else if (cJSON_IsString(x)) sb_esc(o, strchr(x->valuestring, '/') ? base(x->valuestring) : x->valuestring);
            else if (cJSON_IsBool(x)) sb_add(o, "%s", cJSON_IsTrue(x) ? "true" : "false");
            sb_add(o, "</td>");
        }
        sb_add(o, "</tr>\n");
    }
    sb_add(o, "</table>\n");
}

/* per-block mean sparsity of a pruning result's tensors */
static int block_sparsity(const cJSON *j, double *out, int cap) {
    int nb = 0;
    double z[256] = {0}, t[256] = {0};
    const cJSON *e;
    cJSON_ArrayForEach(e, get(j, "tensors")) {
        const char *nm = str(e, "name");
        int l;
        if (!nm || sscanf(nm, "blk.%d.", &l) != 1 || l < 0 || l >= 256 || l >= cap) continue;
        z[l] += num(e, "zeros"); t[l] += num(e, "numel");
        if (l + 1 > nb) nb = l + 1;
    }
    for (int l = 0; l < nb; l++) out[l] = t[l] > 0 ? z[l] / t[l] : NAN;
    return nb;
}

static int array_of(const cJSON *a, double *out, int cap) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (n < cap) out[n++] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    return n;
}

/* ---- the command ----------------------------------------------------------------------------- */
int cmd_report(int argc, char **argv) {
    static const char *const valued[] = {"-o", "--title", NULL};
    static const char *const booleans[] = {NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    const char *out = opt_str(&f, "-o", NULL), *title = opt_str(&f, "--title", "pare report");
    if (f.bad) return 1;
    if (!out) return die("%s", "-o report.html is required");
    /* positional arguments: every non-option (parse keeps at most 4, so walk argv) */
    const char *files[256];
    int nf = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--title")) { i++; continue; }
        if (argv[i][0] == '-' && argv[i][1]) continue;
        if (nf < 256) files[nf++] = argv[i];
    }
    if (!nf) return die("%s", "expects at least one RUN.json (see --help)");
    for (int i = 0; i < nf; i++)
        if (same_file(out, files[i])) return die("-o '%s' is an input: pare never overwrites its input", out);
    rec *r = NULL;
    int n = 0, cap = 0, rc = 1;
    char **bufs = pare_calloc((size_t)nf, sizeof *bufs);
    if (!bufs) return die("%s", "out of memory");
    for (int i = 0; i < nf; i++) {
        size_t len;
        if (pare_read_file(files[i], &bufs[i], &len)) { die_st(); goto done; }
        const char *p = bufs[i], *end;
        int idx = 0;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
            if (!*p) break;
            cJSON *j = cJSON_ParseWithOpts(p, &end, 0);
            if (!j || !cJSON_IsObject(j)) {
                cJSON_Delete(j);
                char msg[300];
                snprintf(msg, sizeof msg, "%s: not JSON objects (at byte %ld)", files[i], (long)(p - bufs[i]));
                die("%s", msg);
                goto done;
            }
            p = end;
            if (is_progress(j)) { cJSON_Delete(j); continue; }
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                rec *nr = realloc(r, (size_t)cap * sizeof *r);
                if (!nr) { cJSON_Delete(j); die("%s", "out of memory"); goto done; }
                r = nr;
            }
            r[n].j = j; r[n].file = files[i]; r[n].idx = idx++; r[n].kind = kind_of(j);
            n++;
        }
    }
    if (!n) { die("%s", "the files hold no results"); goto done; }
    sb o = {0};
    sb_add(&o, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>");
    sb_esc(&o, title);
    sb_add(&o, "</title>\n<style>body{font-family:sans-serif;margin:24px;max-width:1000px;color:#222}"
               "table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}td,th{border:1px solid #ccc;"
               "padding:3px 7px;text-align:right}th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}"
               "figure{margin:10px 0}h2{border-bottom:1px solid #ddd;padding-bottom:4px}</style></head><body>\n<h1>");
    sb_esc(&o, title);
    sb_add(&o, "</h1>\n<p>%d results from %d files, made by pare %s.</p>\n", n, nf, PARE_VERSION);

    /* 1. perplexity against sparsity */
    series S[16];
    int ns = 0;
    for (int i = 0; i < n; i++) {
        int k = r[i].kind;
        if (k != R_PRUNE && k != R_COMPRESS && k != R_QUANT) continue;
        const rec *pp = ppl_of(r, n, str(r[i].j, "output"));
        /* the fraction of block weights gone: zeros, removed units, removed blocks */
        double sp = k == R_COMPRESS ? num(r[i].j, "mean_sparsity") : num(r[i].j, "sparsity");
        if (!isfinite(sp)) sp = num(r[i].j, "block_removed_ratio");
        if (!isfinite(sp) && num(r[i].j, "blocks_before") > 0)
            sp = 1 - num(r[i].j, "blocks_after") / num(r[i].j, "blocks_before");
        if (!pp || !isfinite(sp)) continue;
        char name[96];
        const char *nm = str(r[i].j, "nm");
        snprintf(name, sizeof name, "%s%s%s", str(r[i].j, "method") ? str(r[i].j, "method") : KIND[k], nm ? " " : "",
                 nm ? nm : "");
        int s;
        for (s = 0; s < ns && strcmp(S[s].name, name); s++) {}
        if (s == ns) {
            if (ns == 16) continue;
            memset(&S[ns], 0, sizeof S[ns]);
            snprintf(S[ns].name, sizeof S[ns].name, "%s", name);
            const rec *dense = ppl_of(r, n, str(r[i].j, "model"));
            if (dense) { S[ns].x[0] = 0; S[ns].y[0] = num(dense->j, "ppl"); S[ns].n = 1; }
            ns++;
        }
        if (S[s].n < 64) { S[s].x[S[s].n] = sp; S[s].y[S[s].n] = num(pp->j, "ppl"); S[s].n++; }
    }
    for (int s = 0; s < ns; s++) /* by sparsity */
        for (int a = 1; a < S[s].n; a++)
            for (int b = a; b > 0 && S[s].x[b] < S[s].x[b - 1]; b--) {
                double tx = S[s].x[b], ty = S[s].y[b];
                S[s].x[b] = S[s].x[b - 1]; S[s].y[b] = S[s].y[b - 1]; S[s].x[b - 1] = tx; S[s].y[b - 1] = ty;
            }
    if (ns) {
        sb_add(&o, "<h2>Perplexity against sparsity</h2>\n");
        svg_lines(&o, "perplexity by method", "sparsity (fraction of block weights zeroed or removed)", "perplexity", S, ns);
    }
    /* 2. per block */
    int sec2 = 0;
    for (int i = 0; i < n; i++) {
        double v[256], v2[256];
        char lab[256][96];
        int nb = 0, k = r[i].kind;
        char t[200];
        if (k == R_PRUNE) nb = block_sparsity(r[i].j, v, 256);
        else if (k == R_COMPRESS) nb = array_of(get(r[i].j, "sparsity"), v, 256);
        else if (k == R_PROFILE) nb = array_of(get(r[i].j, "e"), v, 256);
        if (nb < 1) continue;
        double lo = INFINITY, hi = -INFINITY;
        for (int l = 0; l < nb; l++) if (isfinite(v[l])) { lo = fmin(lo, v[l]); hi = fmax(hi, v[l]); }
        if (k == R_PRUNE && hi - lo < 0.01) continue; /* the same in every block: the table says it */
        if (!sec2++) sb_add(&o, "<h2>Per block</h2>\n<p>Pruning results with the same sparsity in every block are "
                                "only in the tables.</p>\n");
        for (int l = 0; l < nb; l++) snprintf(lab[l], sizeof lab[l], "block %d", l);
        snprintf(t, sizeof t, "%s: %s %s", k == R_PROFILE ? "sensitivity e_l" : "sparsity",
                 str(r[i].j, "method") ? str(r[i].j, "method") : "", base(str(r[i].j, k == R_PROFILE ? "model" : "output")));
        svg_bars(&o, t, lab, v, nb, "", NAN, "");
        if (k == R_COMPRESS && array_of(get(r[i].j, "layer_bits"), v2, 256) == nb) {
            snprintf(t, sizeof t, "bits: %s", base(str(r[i].j, "output")));
            svg_bars(&o, t, lab, v2, nb, "bits", NAN, "");
        }
        if (k == R_COMPRESS && array_of(get(r[i].j, "e"), v2, 256) == nb) {
            snprintf(t, sizeof t, "sensitivity e_l: %s", base(str(r[i].j, "output")));
            svg_bars(&o, t, lab, v2, nb, "", NAN, "");
        }
    }
    /* 3. speed and memory against dense */
    int nbch = 0, dense = -1;
    for (int i = 0; i < n; i++)
        if (r[i].kind == R_BENCH) {
            nbch++;
            const char *mdl = str(r[i].j, "model");
            for (int q = 0; q < n && dense < 0; q++)
                if ((r[q].kind == R_PRUNE || r[q].kind == R_COMPRESS || r[q].kind == R_QUANT) && mdl && str(r[q].j, "model") &&
                    !strcmp(base(str(r[q].j, "model")), base(mdl)))
                    dense = i;
        }
    if (nbch) {
        if (dense < 0)
            for (int i = 0; i < n && dense < 0; i++) if (r[i].kind == R_BENCH) dense = i;
        sb_add(&o, "<h2>Speed and memory</h2>\n<p>Against ");
        sb_esc(&o, base(str(r[dense].j, "model")));
        sb_add(&o, " (dashed).</p>\n");
        static const char *const K[3] = {"tg_tps", "pp_tps", "peak_rss_mb"};
        static const char *const TT[3] = {"decode (tokens/s)", "prefill (tokens/s)", "peak RSS (MB)"};
        for (int q = 0; q < 3; q++) {
            double v[64];
            char lab[64][96];
            int m = 0;
            for (int i = 0; i < n && m < 64; i++) {
                if (r[i].kind != R_BENCH) continue;
                snprintf(lab[m], sizeof lab[m], "%s (%s)", base(str(r[i].j, "model")),
                         str(r[i].j, "sparse") ? str(r[i].j, "sparse") : "?");
                v[m++] = num(r[i].j, K[q]);
            }
            svg_bars(&o, TT[q], lab, v, m, "", num(r[dense].j, K[q]), "dense");
        }
    }
    /* 4. tuning */
    int sec4 = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].kind != R_TUNE) continue;
        double v[64], ex[64];
        char lab[64][96], t[200];
        int m = array_of(get(r[i].j, "exit_loss"), v, 64);
        array_of(get(r[i].j, "exits"), ex, 64);
        if (!sec4++) sb_add(&o, "<h2>Tuning</h2>\n");
        for (int k = 0; k < m; k++) snprintf(lab[k], sizeof lab[k], "exit %d (after block %g)", k, ex[k]);
        snprintf(t, sizeof t, "training loss per exit: %s, %s", str(r[i].j, "method") ? str(r[i].j, "method") : "",
                 base(str(r[i].j, "output")));
        svg_bars(&o, t, lab, v, m, "nats", NAN, "");
    }
    /* 5. tables */
    sb_add(&o, "<h2>Results</h2>\n");
    for (int k = 0; k < R_N; k++) table(&o, r, n, k);
    sb_add(&o, "</body></html>\n");
    if (o.oom) { free(o.p); die("%s", "out of memory"); goto done; }
    pare_out po;
    pare_status st = pare_out_open(&po, out);
    if (!st && (st = pare_out_write(&po, o.p, o.n))) pare_out_abort(&po);
    else if (!st) st = pare_out_commit(&po);
    if (st) { free(o.p); die_st(); goto done; }
    printf("wrote %s: %d results from %d files (%d perplexity curves, %d benches)\n", out, n, nf, ns, nbch);
    free(o.p);
    rc = 0;
done:
    for (int i = 0; i < n; i++) cJSON_Delete(r[i].j);
    free(r);
    for (int i = 0; i < nf; i++) free(bufs[i]);
    free(bufs);
    return rc;
}

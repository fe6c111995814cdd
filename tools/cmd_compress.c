/* cmd_compress.c - pare profile (per-block pruning / quantization sensitivity) and pare
 * compress (per-block sparsity and bits: Edge-LLM's LUC, uniform, or a size budget). */
#include "cli.h"
#include "quant/luc.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CALIB_HELP \
    "calibration:\n" \
    "  --calib FILE      text to calibrate on\n" \
    "  --nsamples N      windows (default 128)\n" \
    "  --seqlen L        tokens per window (default 2048, capped at the model's context)\n" \
    "  --seed S          window draw seed (default 0)\n" \
    "  --calib-order O   random (default) or first\n"

#define PROFILE_OPTS_HELP \
    "  --ratios LIST     pruning ratios, increasing (default 0.05,0.1,0.2,0.3,0.5,0.7,0.9)\n" \
    "  --bits LIST       bit-widths to round to (default 8,4,3; 2..8, 16 = F16)\n" \
    "  --method M        pruning method of the profile: sparsegpt (default) or wanda\n" \
    "  --group G         quantization group: intB-gG symmetric grids (default 128)\n"

const char *profile_HELP =
    "usage: pare profile MODEL --calib FILE [options]\n"
    "\n"
    "Per-block sensitivity (Edge-LLM LUC, METHODS.md 9 A): for each block l, on the\n"
    "calibration inputs entering it in the dense model, the relative output MSE\n"
    "sum (y - y_dense)^2 / sum y_dense^2 of its output hidden state (residual included)\n"
    "when only its seven matrices are pruned (unstructured) at each ratio, and when only\n"
    "they are rounded to nearest on the symmetric grid intB-gG at each bit-width. e_l is the\n"
    "mean pruning error over the ratios (METHODS.md 9 A.2). The model is not changed.\n"
    "\n"
    PROFILE_OPTS_HELP
    "  --loss            also the model-level loss change of each setting: the mean NLL per\n"
    "                    token of the whole model with only that block pruned / rounded,\n"
    "                    less the dense model's (costs about (blocks + 1) / 2 times more)\n"
    CALIB_HELP
    "output:\n"
    "  --threads T       threads\n"
    MAXMEM_HELP
    "  --json            one JSON object with per-block arrays (prune_err[l][ratio],\n"
    "                    quant_err[l][bits], e[l]; with --loss prune_loss, quant_loss and\n"
    "                    base_loss); pare compress --profile reads it\n"
    "\n"
    "example: pare profile model.gguf --calib valid.txt --nsamples 64 --seqlen 256 --json > prof.json\n";

const char *compress_HELP =
    "usage: pare compress MODEL -o OUT --method luc|uniform|budget [options]\n"
    "\n"
    "Prune every block with SparseGPT at its own sparsity (block by block, METHODS.md 0.2),\n"
    "then round every block to its own bit-width (intB-gG symmetric, RTN; or GPTQ): the same\n"
    "two passes as pare prune + pare quantize, for every policy. OUT is a GGUF whose block\n"
    "matrices hold the zeros and the fake-quantized values in F32 (F16 when the input is not\n"
    "F32; 16-bit blocks: F16); embeddings, head and norms stay as they are.\n"
    "\n"
    "policies:\n"
    "  uniform           --target-sparsity S and --bits B in every block\n"
    "  luc               Edge-LLM (METHODS.md 9 A.3, B): sparsity_l = s^_l / sum s^ * S L with\n"
    "                    s^_l = 1 - (e_l - min e)/(max e - min e), capped at --cap (0.95) with\n"
    "                    the excess spread over the other blocks (water filling: the mean stays\n"
    "                    S exactly); bits_l = --high-bits where the block's rounding error at B\n"
    "                    bits is above the mean over blocks, else B. With --budget-mb M [O]:\n"
    "                    S is found (bisection) so the policy's sparse size is the largest <= M\n"
    "  budget            [O] per block a sparsity in --budget-sparsities (0,0.1,..,0.8) and bits\n"
    "                    in --budget-bits (3,4,8) minimising the sum of the profiled costs\n"
    "                    (pruning cost interpolated over the ratios + rounding cost, taken as\n"
    "                    additive) with the sparse nominal size <= --budget-mb (exact dynamic\n"
    "                    programming over blocks on the budget cut into 4096 steps)\n"
    "  --objective O     budget: the cost: err (relative block output error) or loss (the\n"
    "                    model-level loss change of pare profile --loss); default: loss when\n"
    "                    the profile has it, else err. loss profiles here when there is no\n"
    "                    --profile\n"
    "  --verify          budget [O]: compress each candidate (the search under err, under loss\n"
    "                    when the profile has it, and every uniform sparsity / bits of the\n"
    "                    option sets that fits) and keep the one whose compressed model has\n"
    "                    the lowest loss on held-out windows of the calibration text (same\n"
    "                    count and length, drawn with --seed + 1); one compression each\n"
    "options:\n"
    "  --target-sparsity S  mean sparsity (uniform, luc; default 0.5)\n"
    "  --bits B          base bit-width (uniform, luc; default 4; 2..8 or 16 = F16)\n"
    "  --high-bits H     luc: the bit-width of the sensitive blocks (default 8)\n"
    "  --cap C           luc: the largest sparsity of a block (default 0.95)\n"
    "  --budget-mb M     budget, luc: the model's sparse nominal size in MB (1e6 bytes)\n"
    "  --budget-sparsities LIST, --budget-bits LIST   budget: the option sets\n"
    "  --profile FILE    luc, budget: the JSON of pare profile instead of profiling here\n"
    PROFILE_OPTS_HELP
    "                    (--bits of the profile: the base, high and budget bit-widths)\n"
    "  --quant Q         rtn (default) or gptq\n"
    "  --percdamp D      SparseGPT / GPTQ damping (default 0.01)\n"
    "  --blocksize B     SparseGPT / GPTQ lazy-update width (default 128)\n"
    CALIB_HELP
    "sizes (MB = 1e6 bytes; every other tensor at its stored size):\n"
    "  nominal_mb        dense: B bits per weight + a 16-bit scale per group, zeros or not\n"
    "  sparse_mb         bitmap: kept weights at B bits + 1 mask bit per weight + the scales\n"
    "                    (the dense size where smaller); this is what --budget-mb bounds\n"
    "output:\n"
    "  -o OUT            output path (required); never the input\n"
    "  --threads T       threads\n"
    MAXMEM_HELP
    "  --json            one JSON object: per block sparsity (measured), policy_sparsity, bits,\n"
    "                    e; nominal_mb, sparse_mb, fixed_mb, file_mb, seconds; with --verify\n"
    "                    verify (each candidate's sparse_mb and calib_loss) and chosen\n"
    "\n"
    "examples: pare compress model.gguf -o out.gguf --method luc --target-sparsity 0.5 --bits 4 --calib valid.txt\n"
    "          pare compress model.gguf -o out.gguf --method budget --budget-mb 5.2 --profile prof.json --calib valid.txt\n";

/* "a,b,c" -> up to max numbers; 1 (after the message) on a bad list */
static int parse_list(const char *s, double *v, int max, int *n, const char *what) {
    *n = 0;
    while (*s) {
        char *e;
        double x = strtod(s, &e);
        if (e == s || *n >= max) return die("bad list for %s (comma-separated numbers, at most 16)", what);
        v[(*n)++] = x;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return die("bad list for %s (comma-separated numbers)", what);
    }
    return *n ? 0 : die("empty list for %s", what);
}

static int parse_ilist(const char *s, int *v, int max, int *n, const char *what) {
    double d[LUC_MAX_RATIOS];
    if (parse_list(s, d, max, n, what)) return 1;
    for (int i = 0; i < *n; i++) {
        if (d[i] != floor(d[i])) return die("%s: whole numbers", what);
        v[i] = (int)d[i];
    }
    return 0;
}

/* calibration text from the flags; 1 on error */
static int get_calib(flags *f, const pare_model *m, calib_data *cd, long *nsamples, long *seqlen, long *seed) {
    const char *calib = opt_str(f, "--calib", NULL), *order = opt_str(f, "--calib-order", "random");
    *nsamples = opt_int(f, "--nsamples", 128); *seqlen = opt_int(f, "--seqlen", 2048); *seed = opt_int(f, "--seed", 0);
    if (f->bad) return 1;
    if (strcmp(order, "random") && strcmp(order, "first")) return die("--calib-order '%s': random or first", order);
    if (*nsamples <= 0 || *seqlen <= 1) return die("%s", "--nsamples must be > 0 and --seqlen > 1");
    if (*seqlen > m->n_ctx_train && m->n_ctx_train > 0) *seqlen = m->n_ctx_train;
    if (!m->vocab) return die("%s", "the model has no tokenizer (give --tokenizer)");
    if (calib_from_text(m->vocab, calib, (int)*nsamples, (int)*seqlen, (uint64_t)*seed,
                        !strcmp(order, "first") ? CALIB_FIRST : CALIB_RANDOM, cd))
        return die_st();
    return 0;
}

/* --ratios / --bits / --method / --group into o; 1 on error */
static int get_profile_opts(flags *f, luc_profile_opts *o, const char *method_flag) {
    luc_profile_opts_default(o);
    const char *r = opt_str(f, "--ratios", NULL), *b = opt_str(f, method_flag ? "--profile-bits" : "--bits", NULL);
    const char *meth = opt_str(f, method_flag ? method_flag : "--method", "sparsegpt");
    if (r && parse_list(r, o->ratio, LUC_MAX_RATIOS, &o->n_ratio, "--ratios")) return 1;
    if (b && parse_ilist(b, o->bits, LUC_MAX_BITS, &o->n_bits, method_flag ? "--profile-bits" : "--bits")) return 1;
    if (!strcmp(meth, "sparsegpt")) o->method = PRUNE_SPARSEGPT;
    else if (!strcmp(meth, "wanda")) o->method = PRUNE_WANDA;
    else return die("profile method '%s': sparsegpt or wanda", meth);
    o->group = (int)opt_int(f, "--group", 128);
    o->percdamp = (float)opt_num(f, "--percdamp", 0.01);
    o->blocksize = (int)opt_int(f, "--blocksize", 128);
    if (o->group < 0 || o->group > 4096) return die("%s", "--group must be in 0..4096 (0: one per row)");
    return f->bad;
}

static void json_darr(const double *v, int n, const char *fmt) {
    putchar('[');
    for (int i = 0; i < n; i++) { if (i) putchar(','); printf(fmt, v[i]); }
    putchar(']');
}
static void json_iarr(const int *v, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", v[i]);
    putchar(']');
}

static void print_profile_json_body(const luc_profile *p) {
    printf("\"profile_method\":\"%s\",\"group\":%d,\"ratios\":", p->method == PRUNE_WANDA ? "wanda" : "sparsegpt", p->group);
    json_darr(p->ratio, p->n_ratio, "%g");
    printf(",\"bits\":");
    json_iarr(p->bits, p->n_bits);
    printf(",\"n_layer\":%d,\"prune_err\":[", p->n_layer);
    for (int l = 0; l < p->n_layer; l++) { if (l) putchar(','); json_darr(p->prune_err + (size_t)l * p->n_ratio, p->n_ratio, "%.6e"); }
    printf("],\"quant_err\":[");
    for (int l = 0; l < p->n_layer; l++) { if (l) putchar(','); json_darr(p->quant_err + (size_t)l * p->n_bits, p->n_bits, "%.6e"); }
    printf("],\"e\":");
    json_darr(p->e, p->n_layer, "%.6e");
    if (!p->has_loss) return;
    printf(",\"base_loss\":%.9g,\"prune_loss\":[", p->base_loss);
    for (int l = 0; l < p->n_layer; l++) { if (l) putchar(','); json_darr(p->prune_loss + (size_t)l * p->n_ratio, p->n_ratio, "%.6e"); }
    printf("],\"quant_loss\":[");
    for (int l = 0; l < p->n_layer; l++) { if (l) putchar(','); json_darr(p->quant_loss + (size_t)l * p->n_bits, p->n_bits, "%.6e"); }
    putchar(']');
}

int cmd_profile(int argc, char **argv) {
    static const char *const valued[] = {"--calib", "--nsamples", "--seqlen", "--seed", "--calib-order", "--ratios",
        "--bits", "--method", "--group", "--percdamp", "--blocksize", "--threads", "--tokenizer", "--max-memory", NULL};
    static const char *const booleans[] = {"--json", "--loss", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (opt_int(&f, "--threads", 0) > 0) openblas_set_num_threads((int)opt_int(&f, "--threads", 0));
    luc_profile_opts po;
    if (get_profile_opts(&f, &po, NULL)) return 1;
    po.loss = opt_bool(&f, "--loss");
    if (!opt_str(&f, "--calib", NULL)) return die("%s", "--calib FILE is required");
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    calib_data cd = {0};
    long ns, sl, seed;
    if (get_calib(&f, m, &cd, &ns, &sl, &seed)) { pare_model_free(m); return 1; }
    luc_profile p;
    pare_status st = luc_profile_model(m, &cd, &po, 1, &p);
    pare_model_free(m);
    calib_free(&cd);
    if (st) return die_st();
    if (json) {
        printf("{\"model\":"); pare_json_str(stdout, f.pos[0]);
        printf(",\"calib\":"); pare_json_str(stdout, opt_str(&f, "--calib", ""));
        printf(",\"nsamples\":%ld,\"seqlen\":%ld,\"seed\":%ld,", ns, sl, seed);
        print_profile_json_body(&p);
        printf(",\"seconds\":%.3f}\n", p.seconds);
    } else {
        printf("relative output MSE per block (%s pruning; RTN int*-g%d sym), %ld x %ld calibration tokens, %.1f s\n",
               p.method == PRUNE_WANDA ? "wanda" : "sparsegpt", p.group, ns, sl, p.seconds);
        printf("block");
        for (int i = 0; i < p.n_ratio; i++) printf("   s=%-6g", p.ratio[i]);
        printf("   e_l      ");
        for (int i = 0; i < p.n_bits; i++) printf("   b=%-6d", p.bits[i]);
        printf("\n");
        for (int l = 0; l < p.n_layer; l++) {
            printf("%5d", l);
            for (int i = 0; i < p.n_ratio; i++) printf("  %.3e", p.prune_err[(size_t)l * p.n_ratio + i]);
            printf("  %.3e", p.e[l]);
            for (int i = 0; i < p.n_bits; i++) printf("  %.3e", p.quant_err[(size_t)l * p.n_bits + i]);
            printf("\n");
        }
        if (p.has_loss) {
            printf("model-level loss change (mean NLL per token; dense %.5f)\n", p.base_loss);
            for (int l = 0; l < p.n_layer; l++) {
                printf("%5d", l);
                for (int i = 0; i < p.n_ratio; i++) printf("  %+.2e", p.prune_loss[(size_t)l * p.n_ratio + i]);
                printf("           ");
                for (int i = 0; i < p.n_bits; i++) printf("  %+.2e", p.quant_loss[(size_t)l * p.n_bits + i]);
                printf("\n");
            }
        }
    }
    luc_profile_free(&p);
    return 0;
}

/* the profile written by pare profile --json; 1 on error */
static int read_profile(const char *path, int n_layer, luc_profile *p) {
    memset(p, 0, sizeof *p);
    FILE *fp = fopen(path, "rb");
    if (!fp) return die("cannot open --profile '%s'", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, k;
    char tmp[65536];
    while ((k = fread(tmp, 1, sizeof tmp, fp)) > 0) {
        if (len + k + 1 > cap) {
            cap = (len + k + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(fp); return die("%s", "out of memory"); }
            buf = nb;
        }
        memcpy(buf + len, tmp, k); len += k;
    }
    fclose(fp);
    cJSON *j = buf ? cJSON_ParseWithLength(buf, len) : NULL;
    free(buf);
    int bad = 1;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "ratios"), *b = cJSON_GetObjectItemCaseSensitive(j, "bits");
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(j, "prune_err"), *qe = cJSON_GetObjectItemCaseSensitive(j, "quant_err");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "e"), *g = cJSON_GetObjectItemCaseSensitive(j, "group");
    const cJSON *mth = cJSON_GetObjectItemCaseSensitive(j, "profile_method");
    if (cJSON_IsArray(r) && cJSON_IsArray(b) && cJSON_IsArray(pe) && cJSON_IsArray(qe) && cJSON_IsArray(e) &&
        cJSON_GetArraySize(r) >= 1 && cJSON_GetArraySize(r) <= LUC_MAX_RATIOS && cJSON_GetArraySize(b) <= LUC_MAX_BITS &&
        cJSON_GetArraySize(pe) == n_layer && cJSON_GetArraySize(qe) == n_layer && cJSON_GetArraySize(e) == n_layer) {
        p->n_ratio = cJSON_GetArraySize(r); p->n_bits = cJSON_GetArraySize(b);
        p->group = cJSON_IsNumber(g) ? g->valueint : 128;
        p->method = cJSON_IsString(mth) && !strcmp(mth->valuestring, "wanda") ? PRUNE_WANDA : PRUNE_SPARSEGPT;
        for (int i = 0; i < p->n_ratio; i++) p->ratio[i] = cJSON_GetArrayItem(r, i)->valuedouble;
        for (int i = 0; i < p->n_bits; i++) p->bits[i] = cJSON_GetArrayItem(b, i)->valueint;
        const cJSON *pl_ = cJSON_GetObjectItemCaseSensitive(j, "prune_loss"), *ql_ = cJSON_GetObjectItemCaseSensitive(j, "quant_loss");
        const cJSON *bl = cJSON_GetObjectItemCaseSensitive(j, "base_loss");
        p->has_loss = cJSON_IsArray(pl_) && cJSON_IsArray(ql_) && cJSON_GetArraySize(pl_) == n_layer &&
                      cJSON_GetArraySize(ql_) == n_layer;
        if (p->has_loss && cJSON_IsNumber(bl)) p->base_loss = bl->valuedouble;
        if (!luc_profile_alloc(p, n_layer)) {
            bad = 0;
            for (int l = 0; l < n_layer && !bad; l++) {
                const cJSON *pl = cJSON_GetArrayItem(pe, l), *ql = cJSON_GetArrayItem(qe, l), *el = cJSON_GetArrayItem(e, l);
                if (!cJSON_IsArray(pl) || cJSON_GetArraySize(pl) != p->n_ratio || !cJSON_IsArray(ql) ||
                    cJSON_GetArraySize(ql) != p->n_bits || !cJSON_IsNumber(el)) { bad = 1; break; }
                for (int i = 0; i < p->n_ratio; i++) p->prune_err[(size_t)l * p->n_ratio + i] = cJSON_GetArrayItem(pl, i)->valuedouble;
                for (int i = 0; i < p->n_bits; i++) p->quant_err[(size_t)l * p->n_bits + i] = cJSON_GetArrayItem(ql, i)->valuedouble;
                p->e[l] = el->valuedouble;
                if (!p->has_loss) continue;
                const cJSON *a = cJSON_GetArrayItem(pl_, l), *c = cJSON_GetArrayItem(ql_, l);
                if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != p->n_ratio || !cJSON_IsArray(c) ||
                    cJSON_GetArraySize(c) != p->n_bits) { bad = 1; break; }
                for (int i = 0; i < p->n_ratio; i++) p->prune_loss[(size_t)l * p->n_ratio + i] = cJSON_GetArrayItem(a, i)->valuedouble;
                for (int i = 0; i < p->n_bits; i++) p->quant_loss[(size_t)l * p->n_bits + i] = cJSON_GetArrayItem(c, i)->valuedouble;
            }
            if (bad) luc_profile_free(p);
        }
    }
    cJSON_Delete(j);
    if (bad) return die("--profile '%s': not a pare profile JSON for this model's blocks", path);
    return 0;
}

/* --verify: the budget search's candidates, each compressed (on cd) from a fresh load of the
 * model and scored by its loss on held-out calibration windows cdv; the best is kept (model
 * and report). 1 (after the message) on error. */
enum { VERIFY_MAX = 2 + LUC_MAX_BITS };
typedef struct verify_report {
    int n, chosen;
    char name[VERIFY_MAX][32];
    double mb[VERIFY_MAX], loss[VERIFY_MAX];
    pare_model *best;
    luc_report best_rep;
} verify_report;

static double policy_cost(const luc_profile *p, const luc_budget_opts *o, const float *s, const int *b) {
    double e = 0;
    for (int l = 0; l < p->n_layer; l++) e += luc_option_cost(p, o, l, s[l], b[l]);
    return e;
}

static int verify_candidates(flags *f, const luc_profile *p, const luc_sizes *z, double budget,
                             const luc_budget_opts *bo, const calib_data *cd, const calib_data *cdv,
                             const luc_compress_opts *co, float *sp, int *bits, double *est, verify_report *vr) {
    const int L = p->n_layer;
    if (L <= 0) return die("%s", "--verify: the model has no blocks");
    float cs[VERIFY_MAX][L];
    int cb[VERIFY_MAX][L];
    int nc = 0;
    memcpy(cs[nc], sp, sizeof(float) * L); memcpy(cb[nc], bits, sizeof(int) * L); /* the search as asked */
    snprintf(vr->name[nc++], sizeof vr->name[0], "search-%s", bo->objective == LUC_OBJ_LOSS ? "loss" : "err");
    if (p->has_loss) { /* the other objective */
        luc_budget_opts o2 = *bo;
        o2.objective = bo->objective == LUC_OBJ_LOSS ? LUC_OBJ_ERR : LUC_OBJ_LOSS;
        if (luc_budget_search(p, z, budget, &o2, cs[nc], cb[nc], NULL, NULL)) return die_st();
        snprintf(vr->name[nc++], sizeof vr->name[0], "search-%s", o2.objective == LUC_OBJ_LOSS ? "loss" : "err");
    }
    double us[LUC_MAX_BITS];
    int ub[LUC_MAX_BITS];
    const int nu = luc_uniform_fits(z, budget, bo, us, ub);
    for (int i = 0; i < nu && nc < VERIFY_MAX; i++) {
        for (int l = 0; l < L; l++) { cs[nc][l] = (float)us[i]; cb[nc][l] = ub[i]; }
        snprintf(vr->name[nc++], sizeof vr->name[0], "uniform-%g/%d", us[i], ub[i]);
    }
    pare_status st = PARE_OK;
    vr->chosen = -1;
    for (int i = 0; i < nc && !st; i++) {
        int dup = -1;
        for (int k = 0; k < i && dup < 0; k++)
            if (!memcmp(cs[k], cs[i], sizeof(float) * L) && !memcmp(cb[k], cb[i], sizeof(int) * L)) dup = k;
        vr->n = i + 1;
        if (dup >= 0) { vr->mb[i] = vr->mb[dup]; vr->loss[i] = vr->loss[dup]; continue; }
        pare_model *mc;
        if (load(f, f->pos[0], &mc)) return 1;
        luc_report rep;
        double loss = NAN;
        st = luc_compress(mc, cd, cs[i], cb[i], co, 1, &rep);
        if (!st && (st = luc_calib_loss(mc, cdv, &loss))) luc_report_free(&rep);
        if (st) { pare_model_free(mc); break; }
        vr->mb[i] = (rep.sparse_bytes + rep.fixed_bytes) / 1e6;
        vr->loss[i] = loss;
        if (vr->chosen < 0 || loss < vr->loss[vr->chosen]) {
            if (vr->best) { pare_model_free(vr->best); luc_report_free(&vr->best_rep); }
            vr->best = mc; vr->best_rep = rep; vr->chosen = i;
        } else {
            pare_model_free(mc);
            luc_report_free(&rep);
        }
    }
    if (st) return die_st();
    memcpy(sp, cs[vr->chosen], sizeof(float) * L);
    memcpy(bits, cb[vr->chosen], sizeof(int) * L);
    *est = policy_cost(p, bo, sp, bits);
    return 0;
}

int cmd_compress(int argc, char **argv) {
    static const char *const valued[] = {"-o", "--method", "--target-sparsity", "--bits", "--high-bits", "--cap",
        "--budget-mb", "--budget-sparsities", "--budget-bits", "--profile", "--ratios", "--profile-bits",
        "--profile-method", "--group", "--quant", "--percdamp", "--blocksize", "--calib", "--nsamples", "--seqlen",
        "--seed", "--calib-order", "--threads", "--tokenizer", "--max-memory", "--objective", NULL};
    static const char *const booleans[] = {"--json", "--verify", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    const int verify = opt_bool(&f, "--verify");
    const char *out = opt_str(&f, "-o", NULL), *method = opt_str(&f, "--method", NULL);
    const char *calib = opt_str(&f, "--calib", NULL), *prof_path = opt_str(&f, "--profile", NULL);
    const char *quant = opt_str(&f, "--quant", "rtn");
    const double target = opt_num(&f, "--target-sparsity", 0.5), cap = opt_num(&f, "--cap", 0.95);
    const double budget_mb = opt_num(&f, "--budget-mb", -1);
    const int base = (int)opt_int(&f, "--bits", 4), high = (int)opt_int(&f, "--high-bits", 8);
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (opt_int(&f, "--threads", 0) > 0) openblas_set_num_threads((int)opt_int(&f, "--threads", 0));
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT is required");
    if (!method) return die("%s", "--method is required (luc, uniform, budget)");
    const int m_uniform = !strcmp(method, "uniform"), m_luc = !strcmp(method, "luc"), m_budget = !strcmp(method, "budget");
    if (!m_uniform && !m_luc && !m_budget) return die("unknown --method '%s' (luc, uniform, budget)", method);
    if (same_file(out, f.pos[0])) return die("-o '%s' is the input model: pare never overwrites its input", out);
    if (!((base >= 2 && base <= 8) || base == 16) || !((high >= 2 && high <= 8) || high == 16))
        return die("%s", "--bits and --high-bits: 2..8 or 16");
    if (m_budget && !(budget_mb > 0)) return die("%s", "--method budget needs --budget-mb M");
    if (m_uniform && budget_mb != -1) return die("%s", "--budget-mb is for luc and budget (uniform: --target-sparsity, --bits)");
    if (m_luc && budget_mb != -1 && !(budget_mb > 0)) return die("%s", "--budget-mb must be > 0");
    const char *objective = opt_str(&f, "--objective", NULL);
    if (objective && strcmp(objective, "err") && strcmp(objective, "loss"))
        return die("--objective '%s': err or loss", objective);
    if (objective && !m_budget) return die("%s", "--objective is for --method budget");
    if (verify && !m_budget) return die("%s", "--verify is for --method budget");
    luc_compress_opts co;
    luc_compress_opts_default(&co);
    co.group = (int)opt_int(&f, "--group", 128);
    co.prune.percdamp = co.gptq.percdamp = (float)opt_num(&f, "--percdamp", 0.01);
    co.prune.blocksize = co.gptq.blocksize = (int)opt_int(&f, "--blocksize", 128);
    if (!strcmp(quant, "gptq")) co.quant_method = QUANT_GPTQ;
    else if (strcmp(quant, "rtn")) return die("--quant '%s': rtn or gptq", quant);
    luc_budget_opts bo;
    luc_budget_opts_default(&bo);
    const char *bs = opt_str(&f, "--budget-sparsities", NULL), *bb = opt_str(&f, "--budget-bits", NULL);
    if (bs && parse_list(bs, bo.s, LUC_MAX_RATIOS, &bo.n_s, "--budget-sparsities")) return 1;
    if (bb && parse_ilist(bb, bo.b, LUC_MAX_BITS, &bo.n_b, "--budget-bits")) return 1;
    luc_profile_opts po;
    if (get_profile_opts(&f, &po, "--profile-method")) return 1;
    po.loss = objective && !strcmp(objective, "loss");
    if (!opt_str(&f, "--profile-bits", NULL)) { /* the bit-widths the policy will look up */
        int want[2 + LUC_MAX_BITS], nw = 0;
        if (m_luc) { want[nw++] = base; want[nw++] = high; }
        if (m_budget) for (int i = 0; i < bo.n_b; i++) want[nw++] = bo.b[i];
        po.n_bits = 0;
        for (int i = 0; i < nw; i++) {
            int dup = 0;
            for (int k = 0; k < po.n_bits; k++) dup |= po.bits[k] == want[i];
            if (!dup && want[i] < 16 && po.n_bits < LUC_MAX_BITS) po.bits[po.n_bits++] = want[i];
        }
    }
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    const int L = m->n_layer;
    float *sp = calloc((size_t)L + 1, sizeof(float));
    int *bits = calloc((size_t)L + 1, sizeof(int));
    double *pol = calloc((size_t)L + 1, sizeof(double));
    luc_profile p = {0};
    int have_prof = 0, rc = 1;
    double est_err = NAN, profile_s = 0, luc_target = target;
    verify_report vr;
    memset(&vr, 0, sizeof vr);
    calib_data cd = {0};
    long ns = 0, sl = 0, seed = 0;
    if (!sp || !bits || !pol) { die("%s", "out of memory"); goto done; }
    if (m_uniform) {
        if (!(target >= 0 && target < 1)) { die("%s", "--target-sparsity must be in [0, 1)"); goto done; }
        for (int l = 0; l < L; l++) { sp[l] = (float)target; bits[l] = base; }
    }
    const int need_calib = !m_uniform || target > 0 || co.quant_method == QUANT_GPTQ;
    if (need_calib && !calib) { die("%s", "--calib FILE is required (pruning, profiling or GPTQ)"); goto done; }
    if (calib && get_calib(&f, m, &cd, &ns, &sl, &seed)) goto done;
    if (!m_uniform) {
        if (prof_path) {
            if (read_profile(prof_path, L, &p)) goto done;
        } else if (luc_profile_model(m, &cd, &po, 1, &p)) {
            die_st();
            goto done;
        }
        have_prof = 1;
        profile_s = p.seconds;
    }
    if (m_luc) {
        double *qs = calloc((size_t)L + 1, sizeof(double));
        if (!qs) { die("%s", "out of memory"); goto done; }
        for (int l = 0; l < L; l++) qs[l] = luc_quant_err(&p, l, base);
        if (base < 16 && isnan(qs[0])) { free(qs); die("%s", "the profile has no rounding error at --bits"); goto done; }
        if (luc_sparsity_policy(p.e, L, target, cap, pol)) { free(qs); die_st(); goto done; }
        luc_bits_policy(qs, L, base, high, bits);
        free(qs);
        if (budget_mb > 0) { /* the target that fills the size */
            luc_sizes z;
            if (luc_sizes_of(m, co.group, &z)) { die_st(); goto done; }
            pare_status st = luc_policy_at_size(&p, &z, bits, cap, budget_mb * 1e6, pol, &luc_target);
            luc_sizes_free(&z);
            if (st) { die_st(); goto done; }
        }
        for (int l = 0; l < L; l++) sp[l] = (float)pol[l];
    }
    if (m_budget) {
        luc_sizes z;
        bo.objective = objective ? (!strcmp(objective, "loss") ? LUC_OBJ_LOSS : LUC_OBJ_ERR)
                                 : (p.has_loss ? LUC_OBJ_LOSS : LUC_OBJ_ERR);
        if (luc_sizes_of(m, co.group, &z)) { die_st(); goto done; }
        int st = luc_budget_search(&p, &z, budget_mb * 1e6, &bo, sp, bits, &est_err, NULL);
        if (st) st = die_st();
        /* verification windows: held out, drawn from the same text with the next seed */
        calib_data cdv = {0};
        if (!st && verify &&
            calib_from_text(m->vocab, calib, (int)ns, (int)sl, (uint64_t)seed + 1, CALIB_RANDOM, &cdv)) st = die_st();
        const int bad = st || (verify && verify_candidates(&f, &p, &z, budget_mb * 1e6, &bo, &cd, &cdv, &co, sp, bits,
                                                           &est_err, &vr));
        calib_free(&cdv);
        luc_sizes_free(&z);
        if (bad) goto done;
    }
    for (int l = 0; l < L; l++) pol[l] = sp[l];
    luc_report rep;
    if (vr.best) { /* verified: the winner is compressed already */
        pare_model_free(m);
        m = vr.best; vr.best = NULL;
        rep = vr.best_rep;
    } else if (luc_compress(m, calib ? &cd : NULL, sp, bits, &co, 1, &rep)) { die_st(); goto done; }
    if (pare_model_save(m, out, "gguf")) { luc_report_free(&rep); die_st(); goto done; }
    struct stat sb;
    const double file_mb = stat(out, &sb) ? 0.0 : (double)sb.st_size / 1e6;
    double mean_s = 0;
    for (int l = 0; l < L; l++) mean_s += rep.sparsity[l] / (L ? L : 1);
    const double nom = (rep.dense_bytes + rep.fixed_bytes) / 1e6, spm = (rep.sparse_bytes + rep.fixed_bytes) / 1e6;
    if (json) {
        printf("{\"model\":"); pare_json_str(stdout, f.pos[0]);
        printf(",\"output\":"); pare_json_str(stdout, out);
        printf(",\"method\":\"%s\",\"target_sparsity\":", method);
        if (m_budget) printf("null"); else printf("%.9g", luc_target);
        printf(",\"bits\":%d,\"high_bits\":%d,\"budget_mb\":", base, high);
        if (budget_mb > 0) printf("%g", budget_mb); else printf("null");
        printf(",\"objective\":");
        if (m_budget) printf("\"%s\"", bo.objective == LUC_OBJ_LOSS ? "loss" : "err"); else printf("null");
        if (vr.n) {
            printf(",\"verify\":[");
            for (int i = 0; i < vr.n; i++)
                printf("%s{\"candidate\":\"%s\",\"sparse_mb\":%.4f,\"calib_loss\":%.6f}", i ? "," : "", vr.name[i],
                       vr.mb[i], vr.loss[i]);
            printf("],\"chosen\":\"%s\"", vr.name[vr.chosen]);
        }
        printf(",\"group\":%d,\"quant\":\"%s\",\"calib\":", co.group, quant);
        if (calib) pare_json_str(stdout, calib); else printf("null");
        printf(",\"nsamples\":%ld,\"seqlen\":%ld,\"seed\":%ld,\"sparsity\":", ns, sl, seed);
        json_darr(rep.sparsity, L, "%.6f");
        printf(",\"policy_sparsity\":");
        json_darr(pol, L, "%.6f");
        printf(",\"layer_bits\":");
        json_iarr(rep.bits, L);
        if (have_prof) { printf(",\"e\":"); json_darr(p.e, L, "%.6e"); }
        printf(",\"est_err\":");
        if (isnan(est_err)) printf("null"); else printf("%.6e", est_err);
        printf(",\"mean_sparsity\":%.6f,\"nominal_mb\":%.4f,\"sparse_mb\":%.4f,\"blocks_mb\":%.4f,\"blocks_sparse_mb\":%.4f,"
               "\"fixed_mb\":%.4f,\"file_mb\":%.4f,\"profile_seconds\":%.3f,\"seconds\":%.3f}\n", mean_s, nom, spm,
               rep.dense_bytes / 1e6, rep.sparse_bytes / 1e6, rep.fixed_bytes / 1e6, file_mb, profile_s, rep.seconds);
    } else {
        printf("block  sparsity  bits\n");
        for (int l = 0; l < L; l++) printf("%5d  %8.4f  %4d\n", l, rep.sparsity[l], rep.bits[l]);
        for (int i = 0; i < vr.n; i++)
            printf("verify: %-14s %.4f MB, calibration loss %.6f%s\n", vr.name[i], vr.mb[i], vr.loss[i],
                   i == vr.chosen ? "  <- chosen" : "");
        printf("%s: mean sparsity %.4f, nominal %.3f MB dense / %.3f MB sparse (bitmap), file %.2f MB, %.1f s; wrote %s\n",
               method, mean_s, nom, spm, file_mb, rep.seconds + profile_s, out);
    }
    luc_report_free(&rep);
    rc = 0;
done:
    if (vr.best) { pare_model_free(vr.best); luc_report_free(&vr.best_rep); }
    if (have_prof) luc_profile_free(&p);
    calib_free(&cd);
    free(sp); free(bits); free(pol);
    pare_model_free(m);
    return rc;
}

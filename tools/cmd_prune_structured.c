/* cmd_prune_structured.c - `pare prune --method numerical|flap|flap-nobias|mag-struct|wanda-struct|taylor-struct`:
 * structured removal of attention heads and FFN channels (METHODS.md 8, 10, 11). cmd_prune
 * hands these methods here; the options are listed in prune_HELP. */
#include "cli.h"
#include "prune/prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_structured[] = {"numerical", "flap", "flap-nobias", "mag-struct", "wanda-struct", "taylor-struct",
                                           NULL};

const char *structured_method_arg(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--method") && i + 1 < argc) v = argv[i + 1];
        else if (!strncmp(argv[i], "--method=", 9)) v = argv[i] + 9;
        if (!v) continue;
        for (const char *const *s = g_structured; *s; s++) if (!strcmp(v, *s)) return *s;
        return NULL;
    }
    return NULL;
}

static void print_json(const char *model, const char *out, const char *method, const sprune_opts *o, const char *calib,
                       long nsamples, long seqlen, long seed, const char *order, const sprune_report *r) {
    static const char *tn[] = {"params", "units", "types"};
    printf("{\"model\":"); pare_json_str(stdout, model);
    printf(",\"output\":"); pare_json_str(stdout, out);
    printf(",\"method\":\"%s\",\"target\":\"%s\",", method, tn[o->target]);
    if (o->target == SP_TARGET_TYPES) printf("\"heads_ratio\":%g,\"ffn_ratio\":%g,", o->head_ratio, o->ffn_ratio);
    else printf("\"ratio\":%g,", o->ratio);
    printf("\"structure\":\"%s\",\"min_heads\":%d,\"min_ffn\":%d,\"mask_only\":%s,", r->structure ? "uniform" : "global",
           o->min_heads, o->min_ffn, o->mask_only ? "true" : "false");
    if (o->method == SP_NUMERICAL)
        printf("\"compensation\":%s,\"np_lambda\":%g,\"np_iters\":%d,\"np_normalize\":%s,\"np_damp\":%g,\"np_gamma\":%g,"
               "\"np_sequential\":%s,",
               o->compensate ? "true" : "false", o->np_lambda, o->np_iters, o->np_normalize ? "true" : "false", o->np_damp,
               o->np_gamma, o->np_sequential ? "true" : "false");
    if (o->method == SP_TAYLOR) printf("\"taylor_loss\":%.6f,", r->calib_loss); /* L of the backward pass (mean CE) */
    printf("\"calib\":"); if (calib) pare_json_str(stdout, calib); else printf("null");
    printf(",\"nsamples\":%ld,\"seqlen\":%ld,\"seed\":%ld,\"calib_order\":\"%s\",", calib ? nsamples : 0, calib ? seqlen : 0, seed,
           order);
    printf("\"params_before\":%lld,\"params_after\":%lld,\"params_removed_ratio\":%.6f,", (long long)r->params_before,
           (long long)r->params_after, r->params_before ? 1.0 - (double)r->params_after / r->params_before : 0.0);
    printf("\"block_params_before\":%lld,\"block_params_after\":%lld,\"block_removed_ratio\":%.6f,", (long long)r->block_before,
           (long long)r->block_after, r->block_before ? 1.0 - (double)r->block_after / r->block_before : 0.0);
    printf("\"units_before\":%lld,\"units_after\":%lld,\"seconds\":%.3f,\"layers\":[", (long long)r->units_before,
           (long long)r->units_after, r->seconds);
    for (int l = 0; l < r->n_layer; l++)
        printf("%s{\"layer\":%d,\"heads\":%d,\"kv_heads\":%d,\"ffn\":%d,\"heads_before\":%d,\"kv_heads_before\":%d,"
               "\"ffn_before\":%d}",
               l ? "," : "", l, r->heads_after[l], r->kv_after[l], r->ff_after[l], r->heads_before[l], r->kv_before[l],
               r->ff_before[l]);
    printf("]}\n");
}

/* taylor-struct holds the whole model at once (weights, F32 gradients of every attention and
 * MLP matrix, activations of a micro-batch): with --max-memory, refuse before the run when
 * that estimate does not fit (load_calib checked the block-by-block estimate already). */
static int taylor_memory_check(flags *f, const pare_model *m, const calib_data *cd) {
    const char *mm = opt_str(f, "--max-memory", NULL);
    if (!mm) return 0;
    double lim = parse_size(mm);
    if (lim <= 0) return die("--max-memory '%s': expected a size like 512M or 2G", mm);
    int B;
    size_t work;
    if (taylor_plan(m, cd->n, cd->T, &B, &work)) return die_st();
    double wb = 0;
    for (int i = 0; i < m->n_tensors; i++) wb += (double)m->tensors[i].nbytes;
    double base = (double)pare_rss_bytes();
    if (base + wb + (double)work <= lim) return 0;
    char msg[320];
    snprintf(msg, sizeof msg, "taylor-struct needs about %.1f MB (process %.1f, all weights %.1f, gradients, copies and "
             "activations %.1f for micro-batches of %d x %d tokens), over --max-memory %.1f MB", (base + wb + (double)work) / 1048576,
             base / 1048576, wb / 1048576, (double)work / 1048576, B, cd->T, lim / 1048576);
    return die("%s", msg);
}

int cmd_prune_structured(int argc, char **argv, const char *method) {
    static const char *const valued[] = {"-o", "--method", "--ratio", "--units", "--heads", "--ffn", "--structure", "--calib",
        "--nsamples", "--seqlen", "--seed", "--calib-order", "--np-lambda", "--np-iters", "--np-damp", "--np-gamma",
        "--min-heads", "--min-ffn", "--format", "--threads", "--tokenizer", "--max-memory", NULL};
    static const char *const booleans[] = {"--json", "--no-compensation", "--np-no-normalize", "--np-dense", "--mask-only", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    sprune_opts o;
    sprune_opts_default(&o);
    o.method = !strcmp(method, "numerical") ? SP_NUMERICAL : !strcmp(method, "flap-nobias") ? SP_FLAP_NOBIAS
             : !strcmp(method, "flap") ? SP_FLAP
             : !strcmp(method, "mag-struct") ? SP_MAGNITUDE : !strcmp(method, "taylor-struct") ? SP_TAYLOR : SP_WANDA;
    const char *out = opt_str(&f, "-o", NULL), *calib = opt_str(&f, "--calib", NULL);
    const char *ratio = opt_str(&f, "--ratio", NULL), *units = opt_str(&f, "--units", NULL);
    const char *heads = opt_str(&f, "--heads", NULL), *ffn = opt_str(&f, "--ffn", NULL);
    const char *structure = opt_str(&f, "--structure", NULL), *order = opt_str(&f, "--calib-order", "random");
    const char *fmt = opt_str(&f, "--format", "gguf");
    long nsamples = opt_int(&f, "--nsamples", 128), seqlen = opt_int(&f, "--seqlen", 2048), seed = opt_int(&f, "--seed", 0);
    o.np_lambda = opt_num(&f, "--np-lambda", o.np_lambda);
    o.np_iters = (int)opt_int(&f, "--np-iters", o.np_iters);
    o.np_damp = opt_num(&f, "--np-damp", o.np_damp);
    o.np_gamma = opt_num(&f, "--np-gamma", o.np_gamma);
    o.min_heads = (int)opt_int(&f, "--min-heads", o.min_heads);
    o.min_ffn = (int)opt_int(&f, "--min-ffn", o.min_ffn);
    o.compensate = !opt_bool(&f, "--no-compensation");
    o.np_normalize = !opt_bool(&f, "--np-no-normalize");
    o.np_sequential = !opt_bool(&f, "--np-dense");
    o.mask_only = opt_bool(&f, "--mask-only");
    double rv = ratio ? opt_num(&f, "--ratio", 0) : 0, uv = units ? opt_num(&f, "--units", 0) : 0;
    double hv = heads ? opt_num(&f, "--heads", 0) : 0, fv = ffn ? opt_num(&f, "--ffn", 0) : 0;
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT is required");
    if ((ratio != NULL) + (units != NULL) + (heads || ffn) != 1)
        return die("%s", "give exactly one of --ratio R, --units R and --heads R1 --ffn R2");
    if (ratio) {
        o.target = SP_TARGET_PARAMS; o.ratio = rv;
        if (!(rv >= 0 && rv < 1)) return die("--ratio '%s': a fraction of the attention and MLP weights in [0, 1)", ratio);
    } else if (units) {
        o.target = SP_TARGET_UNITS; o.ratio = uv;
        if (!(uv >= 0 && uv < 1)) return die("--units '%s': a fraction of the heads and channels in [0, 1)", units);
    } else {
        o.target = SP_TARGET_TYPES; o.head_ratio = hv; o.ffn_ratio = fv;
        if (!(hv >= 0 && hv <= 1) || !(fv >= 0 && fv <= 1)) return die("%s", "--heads and --ffn take fractions in [0, 1]");
    }
    if (structure) {
        if (!strcmp(structure, "global")) o.structure = SP_STRUCT_GLOBAL;
        else if (!strcmp(structure, "uniform")) o.structure = SP_STRUCT_UNIFORM;
        else return die("--structure '%s': global or uniform", structure);
    }
    if (strcmp(order, "random") && strcmp(order, "first")) return die("--calib-order '%s': random or first", order);
    if (strcmp(fmt, "gguf") && strcmp(fmt, "hf")) return die("--format '%s': gguf or hf", fmt);
    if (o.min_heads < 0 || o.min_ffn < 0) return die("%s", "--min-heads and --min-ffn must be >= 0");
    if (o.np_iters < 1 || !(o.np_lambda >= 0) || !(o.np_damp >= 0) || !(o.np_gamma >= 0))
        return die("%s", "--np-iters must be >= 1 and --np-lambda, --np-damp, --np-gamma >= 0");
    if (!calib && o.method != SP_MAGNITUDE) return die("--method %s needs --calib FILE", method);
    if (same_file(out, f.pos[0])) return die("-o '%s' is the input model: pare never overwrites its input", out);
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    if (o.method == SP_MAGNITUDE) calib = NULL; /* no calibration */
    calib_data cd = {0};
    if (load_calib(m, calib, nsamples, &seqlen, seed, order, &cd)) { pare_model_free(m); return 1; }
    if (o.method == SP_TAYLOR && taylor_memory_check(&f, m, &cd)) { calib_free(&cd); pare_model_free(m); return 1; }
    sprune_report rep;
    pare_status st = prune_structured(m, &cd, &o, 1, &rep);
    if (!st) st = pare_model_save(m, out, fmt);
    calib_free(&cd);
    pare_model_free(m);
    if (st) { sprune_report_free(&rep); return die_st(); }
    if (json) {
        print_json(f.pos[0], out, method, &o, calib, nsamples, seqlen, seed, order, &rep);
    } else {
        printf("%s (%s): %lld -> %lld parameters (%.2f%% removed; attention + MLP %.2f%%), %lld -> %lld heads + channels, "
               "%.1f s; wrote %s\n",
               method, rep.structure ? "uniform" : "global", (long long)rep.params_before, (long long)rep.params_after,
               100.0 * (1.0 - (double)rep.params_after / (double)rep.params_before),
               rep.block_before ? 100.0 * (1.0 - (double)rep.block_after / (double)rep.block_before) : 0.0,
               (long long)rep.units_before, (long long)rep.units_after, rep.seconds, out);
        printf("  layer  heads     kv      ffn\n");
        for (int l = 0; l < rep.n_layer; l++)
            printf("  %5d  %2d/%-3d  %2d/%-3d  %5d/%-5d\n", l, rep.heads_after[l], rep.heads_before[l], rep.kv_after[l],
                   rep.kv_before[l], rep.ff_after[l], rep.ff_before[l]);
    }
    sprune_report_free(&rep);
    return 0;
}

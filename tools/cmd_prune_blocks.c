/* cmd_prune_blocks.c - `pare prune --method sleb|sleb-oneshot|shortgpt`: remove whole blocks
 * (METHODS.md 7, 13). cmd_prune hands these methods here; the options are in prune_HELP. */
#include "cli.h"
#include "prune/prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void json_num(double v) {
    if (isfinite(v)) printf("%.6f", v);
    else printf("null");
}

static void print_json(const char *model, const char *out, const char *calib, const char *mode, long nsamples, long seqlen,
                       long seed, const calib_data *cd, int64_t params_before, int64_t params_after,
                       const blockrm_report *r, const blockrm_opts *o) {
    printf("{\"model\":"); pare_json_str(stdout, model);
    printf(",\"output\":"); pare_json_str(stdout, out);
    printf(",\"method\":\"%s\",\"calib\":", blockrm_method_name(r->method));
    pare_json_str(stdout, calib);
    printf(",\"calib_mode\":\"%s\",\"nsamples\":%ld,\"seqlen\":%ld,\"seed\":%ld,\"windows\":%d,\"text_tokens\":%lld,"
           "\"scored_tokens\":%lld,",
           mode, nsamples, seqlen, seed, cd->n, (long long)cd->n_text_tokens, (long long)r->tokens);
    printf("\"barrier\":%s,", r->barrier ? "true" : "false");
    if (r->method == BR_SHORTGPT) printf("\"bi_final_norm\":%s,", o->bi_final_norm ? "true" : "false");
    printf("\"blocks_before\":%d,\"blocks_after\":%d,\"removed\":[", r->n_layer, r->n_layer - r->k);
    for (int i = 0; i < r->k; i++) printf("%s%d", i ? "," : "", r->removed[i]);
    printf("],\"dense_loss\":");
    json_num(r->dense_loss);
    printf(",\"dense_mean_nll\":");
    json_num(r->dense_loss / (double)r->tokens);
    printf(",\"steps\":[");
    for (int i = 0; i < r->k; i++) {
        printf("%s{\"step\":%d,\"removed\":%d,\"loss\":", i ? "," : "", i + 1, r->removed[i]);
        json_num(r->loss[i]);
        printf(",\"mean_nll\":");
        json_num(r->loss[i] / (double)r->tokens);
        printf("}");
    }
    printf("],\"score_kind\":\"%s\",\"scores\":[", r->method == BR_SHORTGPT ? "block_influence" : "loss_without_block");
    for (int l = 0; l < r->n_layer; l++) { if (l) printf(","); json_num(r->score[l]); }
    printf("],\"params_before\":%lld,\"params_after\":%lld,\"threads\":%d,\"seconds\":%.3f}\n", (long long)params_before,
           (long long)params_after, r->threads, r->seconds);
}

int cmd_prune_blocks(int argc, char **argv, const char *method) {
    static const char *const valued[] = {"-o", "--method", "--remove-blocks", "--remove-ratio", "--calib", "--nsamples",
        "--seqlen", "--seed", "--calib-mode", "--barrier", "--bi-final-norm", "--cache-mb", "--format", "--threads",
        "--tokenizer", "--max-memory", NULL};
    static const char *const booleans[] = {"--json", "--no-step-losses", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    int mt = !strcmp(method, "sleb") ? BR_SLEB : !strcmp(method, "sleb-oneshot") ? BR_SLEB_ONESHOT : BR_SHORTGPT;
    blockrm_opts o;
    blockrm_opts_default(&o, mt);
    const char *out = opt_str(&f, "-o", NULL), *calib = opt_str(&f, "--calib", NULL);
    const char *kstr = opt_str(&f, "--remove-blocks", NULL), *rstr = opt_str(&f, "--remove-ratio", NULL);
    const char *mode = opt_str(&f, "--calib-mode", "paper"), *fmt = opt_str(&f, "--format", "gguf");
    long nsamples = opt_int(&f, "--nsamples", 128), seqlen = opt_int(&f, "--seqlen", 2048), seed = opt_int(&f, "--seed", 0);
    long kv = kstr ? opt_int(&f, "--remove-blocks", 0) : 0;
    double rv = rstr ? opt_num(&f, "--remove-ratio", 0) : 0;
    long barrier = opt_int(&f, "--barrier", -1), finalnorm = opt_int(&f, "--bi-final-norm", 1);
    long cache_mb = opt_int(&f, "--cache-mb", 2048);
    o.step_losses = !opt_bool(&f, "--no-step-losses");
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT is required");
    if (!!kstr == !!rstr) return die("%s", "give exactly one of --remove-blocks K and --remove-ratio R");
    if (kstr && kv < 1) return die("--remove-blocks '%s': a positive number of blocks", kstr);
    if (rstr && !(rv > 0 && rv < 1)) return die("--remove-ratio '%s': a fraction of the blocks in (0, 1)", rstr);
    if (!calib) return die("--method %s needs --calib FILE", method);
    if (strcmp(mode, "paper") && strcmp(mode, "sleb-code")) return die("--calib-mode '%s': paper or sleb-code", mode);
    if (strcmp(fmt, "gguf") && strcmp(fmt, "hf")) return die("--format '%s': gguf or hf", fmt);
    if (barrier < -1 || barrier > 1) return die("%s", "--barrier takes 0 or 1");
    if (finalnorm < 0 || finalnorm > 1) return die("%s", "--bi-final-norm takes 0 or 1");
    if (cache_mb < 1) return die("%s", "--cache-mb must be positive");
    if (same_file(out, f.pos[0])) return die("-o '%s' is the input model: pare never overwrites its input", out);
    o.barrier = (int)barrier;
    o.bi_final_norm = (int)finalnorm;
    o.cache_bytes = (size_t)cache_mb << 20;
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    if (seqlen > m->n_ctx_train && m->n_ctx_train > 0) seqlen = m->n_ctx_train;
    o.n_remove = kstr ? (int)(kv > m->n_layer ? m->n_layer : kv) : blockrm_count_from_ratio(rv, m->n_layer);
    if (!m->vocab) { pare_model_free(m); return die("%s", "the model has no tokenizer (give --tokenizer)"); }
    int bar = o.barrier >= 0 ? o.barrier : mt != BR_SHORTGPT, kmax = m->n_layer - 1 - bar;
    if (o.n_remove > kmax) {
        fprintf(stderr, "pare %s: cannot remove %d of %d blocks (at most %d%s)\n", g_cmd, o.n_remove, m->n_layer,
                kmax > 0 ? kmax : 0, bar ? ": the first and last blocks are never removed" : "");
        pare_model_free(m);
        return 1;
    }
    calib_data cd = {0};
    pare_status st = !strcmp(mode, "paper")
        ? calib_from_text(m->vocab, calib, (int)nsamples, (int)seqlen, (uint64_t)seed, CALIB_RANDOM, &cd)
        : calib_sleb_code(m->vocab, calib, (int)nsamples, (int)seqlen, (uint64_t)seed, &cd);
    if (st) { pare_model_free(m); return die_st(); }
    if (!json)
        fprintf(stderr, "%s: removing %d of %d blocks; calibration %s: %d windows x %d tokens of %s\n", method, o.n_remove,
                m->n_layer, mode, cd.n, cd.T, calib);
    int64_t params_before = model_n_params(m);
    blockrm_report rep;
    st = blockrm_select(m, &cd, &o, 1, &rep);
    if (!st) st = model_remove_blocks(m, rep.removed, rep.k);
    if (!st) st = pare_model_save(m, out, fmt);
    int64_t params_after = model_n_params(m);
    pare_model_free(m);
    if (st) { calib_free(&cd); blockrm_report_free(&rep); return die_st(); }
    if (json) {
        print_json(f.pos[0], out, calib, mode, nsamples, seqlen, seed, &cd, params_before, params_after, &rep, &o);
    } else {
        printf("%s (calibration %s, %d x %d tokens, %d threads): removed %d of %d blocks in %.1f s; wrote %s\n",
               method, mode, cd.n, cd.T, rep.threads, rep.k, rep.n_layer, rep.seconds, out);
        printf("  dense            loss %.2f  mean NLL %.4f\n", rep.dense_loss, rep.dense_loss / (double)rep.tokens);
        for (int i = 0; i < rep.k; i++) {
            if (isfinite(rep.loss[i]))
                printf("  step %d: block %2d  loss %.2f  mean NLL %.4f\n", i + 1, rep.removed[i], rep.loss[i],
                       rep.loss[i] / (double)rep.tokens);
            else
                printf("  step %d: block %2d\n", i + 1, rep.removed[i]);
        }
        printf("  parameters %lld -> %lld\n", (long long)params_before, (long long)params_after);
    }
    calib_free(&cd);
    blockrm_report_free(&rep);
    return 0;
}

const char *blocks_method_arg(int argc, char **argv) {
    static const char *const names[] = {"sleb", "sleb-oneshot", "shortgpt", NULL};
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--method") && i + 1 < argc) v = argv[i + 1];
        else if (!strncmp(argv[i], "--method=", 9)) v = argv[i] + 9;
        if (!v) continue;
        for (const char *const *s = names; *s; s++) if (!strcmp(v, *s)) return *s;
        return NULL;
    }
    return NULL;
}

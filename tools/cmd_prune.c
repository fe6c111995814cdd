/*  */
#include "cli.h"
#include "prune/prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- prune --------------------------------------------------------------- */
const char *prune_HELP =
    "usage: pare prune MODEL -o OUT --method M (--nm N:M | --sparsity S) --calib FILE [options]\n"
    "\n"
    "One-shot pruning of every block's seven linear layers, block by block on calibration\n"
    "text (METHODS.md 0.2): the inputs of each block are those of the already-pruned blocks\n"
    "below it. OUT is a GGUF (or a Hugging Face folder with --format hf) that llama.cpp and\n"
    "pare run; pruned weights are zeros in the original layout.\n"
    "\n"
    "methods:\n"
    "  magnitude   |W|, per matrix (unstructured) or per N:M group; no calibration needed\n"
    "  wanda       |W| * ||X_j||, per output row or per N:M group\n"
    "  sparsegpt   OBS updates with the layer Hessian (block 128, damping 1%)\n"
    "  esparse     |W| * (||X_j|| + beta * entropy_j) with channel shuffles (N:M); the\n"
    "              orders of the q/k/v, o and gate/up inputs are recorded in the GGUF\n"
    "              (pare.blk.L.perm_*; other tools ignore them), that of down's input is\n"
    "              folded into gate/up/down\n"
    "\n"
    "pattern (one of):\n"
    "  --nm N:M          keep N of every M consecutive input weights (N < M <= 16), e.g. 2:4\n"
    "  --sparsity S      unstructured: zero the fraction S in (0, 1)\n"
    "calibration:\n"
    "  --calib FILE      text to calibrate on (required except for magnitude)\n"
    "  --nsamples N      windows (default 128)\n"
    "  --seqlen L        tokens per window (default 2048, capped at the model's context)\n"
    "  --seed S          window draw seed (default 0)\n"
    "  --calib-order O   random (default: starts drawn uniformly) or first (the first N\n"
    "                    consecutive windows of the file tokenized whole with one BOS)\n"
    "sparsegpt:\n"
    "  --percdamp D      Hessian damping as a fraction of its mean diagonal (default 0.01)\n"
    "  --blocksize B     lazy-update block width (default 128)\n"
    "esparse ([O] choices of METHODS.md 6, each switchable):\n"
    "  --es-entropy 0|1  use the entropy term (default 1; 0 with --no-gns --no-lbs = wanda)\n"
    "  --es-beta B       weight of the entropy (default: R * mean(norm)/mean(entropy) per input)\n"
    "  --es-beta-rel R   that R (default 1)\n"
    "  --es-combine C    add (default): |W|(norm + beta H); mul: |W| norm H\n"
    "  --es-bins K       histogram bins (default 128)\n"
    "  --no-gns          no global naive shuffle\n"
    "  --no-lbs          no local block shuffle\n"
    "  --es-lbs-block B  channels per local block (default 64)\n"
    "  --es-lbs-iters I  greedy swaps per block at most (default 100)\n"
    "  --es-skip-bos     leave position 0 out of the statistics\n"
    "output:\n"
    "  -o OUT            output path (required); never the input\n"
    "  --format F        gguf (default) or hf\n"
    "  --threads T       threads\n"
    MAXMEM_HELP
    "  --json            one JSON object: settings, achieved sparsity per tensor, time\n"
    "\n"
    "example: pare prune model.gguf -o model-2of4.gguf --method wanda --nm 2:4 --calib valid.txt\n"
    "\n"
    "structured methods (METHODS.md 8, 10, 11): remove whole attention heads and FFN channels;\n"
    "OUT is physically smaller, with per-layer head counts and FFN widths:\n"
    "  usage: pare prune MODEL -o OUT --method M (--ratio R | --units R | --heads R1 --ffn R2)\n"
    "         [--calib FILE] [calibration options above] [options]\n"
    "  numerical     Numerical Pruning: Newton-method score on the o/down inputs (dense pass),\n"
    "                global ranking (heads weighted alpha = 4 hd / 3), then a sequential pass\n"
    "                refitting the kept o/down columns to the calibration outputs\n"
    "  flap          FLAP: fluctuation metric (variance of the o/down input x squared column\n"
    "                norm), global structure, and its bias compensation: o/down gain the\n"
    "                bias P[:, removed] mean(x) (blk.L.attn_output.bias / ffn_down.bias, which\n"
    "                llama.cpp reads; pare tune/train and --format hf refuse such biases)\n"
    "  flap-nobias   the same units without the bias\n"
    "  mag-struct    mean squared weight of each unit (no calibration needed)\n"
    "  wanda-struct  Wanda-sp: mean |W| * ||x|| over the unit's o/down column\n"
    "  taylor-struct LLM-Pruner: sum of |w dL/dw| over the unit's weights, dL/dw from one\n"
    "                backward pass of the whole model (all block gradients held at once)\n"
    "  --ratio R         remove the fraction R of the attention + MLP weights\n"
    "  --units R         remove floor(R * (heads + channels)) units (the paper's rule)\n"
    "  --heads R1 --ffn R2  remove the fraction R1 of the heads and R2 of the FFN channels\n"
    "  --structure S     global (default: numerical, flap, flap-nobias) ranks all layers together;\n"
    "                    uniform (default: mag-struct, wanda-struct, taylor-struct) the same\n"
    "                    share per layer\n"
    "  --min-heads N     heads every layer keeps (default 1; 0 allows attention-free layers,\n"
    "                    which pare runs but llama.cpp's llama architecture does not)\n"
    "  --min-ffn N       FFN channels every layer keeps (default 1)\n"
    "  --no-compensation numerical: no refit of o/down\n"
    "  --np-lambda L     weight of the (1'z - r)^2 term (default 1)\n"
    "  --np-iters T      Newton steps (default 1; exact for the quadratic objective)\n"
    "  --np-no-normalize do not scale the o/down inputs to unit Frobenius norm\n"
    "  --np-damp E       Newton Hessian ridge, fraction of mean diag A (default 1e-6)\n"
    "  --np-gamma G      compensation ridge, fraction of mean diag G_SS (default 0.01)\n"
    "  --np-dense        compensate on dense-model inputs (default: already-pruned blocks)\n"
    "  --mask-only       zero the removed units' o/down columns, shapes unchanged\n"
    "  --json            parameters before/after, achieved ratio, per-layer heads and FFN widths\n"
    "  GQA: a KV head goes only with its whole query group; head counts are rounded so every\n"
    "  kept KV head keeps the same number of query heads (FFN channels make up the rest).\n"
    "example: pare prune model.gguf -o model-np20.gguf --method numerical --ratio 0.2 --calib valid.txt\n"
    "\n"
    "block removal (METHODS.md 7, 13): delete whole blocks; OUT is a standard model with fewer\n"
    "blocks (renumbered), so the speedup is real in any engine:\n"
    "  usage: pare prune MODEL -o OUT --method M (--remove-blocks K | --remove-ratio R) --calib FILE\n"
    "         [--nsamples N] [--seqlen L] [--seed S] [--calib-mode paper|sleb-code] [options]\n"
    "  sleb          SLEB: K times, the calibration loss of the current model with each candidate\n"
    "                block switched off; remove the lowest (first on ties)\n"
    "  sleb-oneshot  the K lowest of those losses on the dense model (one pass)\n"
    "  shortgpt      ShortGPT: block influence sum(1 - cos(input, output)), the K lowest\n"
    "  --remove-blocks K  blocks to remove\n"
    "  --remove-ratio R   remove ceil(R * blocks)\n"
    "  --calib-mode C     paper (default): --nsamples random windows of --seqlen tokens;\n"
    "                     sleb-code: SLEB's code: the file's lines shuffled with --seed, the first\n"
    "                     --nsamples joined with blank lines, floor(tokens / seqlen) windows\n"
    "  --barrier 0|1      the first and last blocks are never removed (default 1 for sleb and\n"
    "                     sleb-oneshot, as SLEB's code; 0 for shortgpt)\n"
    "  --bi-final-norm 0|1  shortgpt: the last block's output after the final norm, as ShortGPT's\n"
    "                     code (default 1)\n"
    "  --no-step-losses   sleb-oneshot, shortgpt: skip the loss evaluation after each removal\n"
    "  --cache-mb M       sleb: memory for the cached inputs of the candidates (default 2048)\n"
    "  --json             removed blocks (original indices, in order), the loss after each step,\n"
    "                     the per-block scores, the calibration mode\n"
    "example: pare prune model.gguf -o model-sleb.gguf --method sleb --remove-ratio 0.2 --calib valid.txt\n";

int cmd_prune(int argc, char **argv) {
    const char *blocks = blocks_method_arg(argc, argv); /* whole blocks: sleb, sleb-oneshot, */
    if (blocks) return cmd_prune_blocks(argc, argv, blocks); /* shortgpt (cmd_prune_blocks.c) */
    const char *structured = structured_method_arg(argc, argv); /* heads and channels: */
    if (structured) return cmd_prune_structured(argc, argv, structured); /* cmd_prune_structured.c */
    static const char *const valued[] = {"-o", "--method", "--nm", "--sparsity", "--calib", "--nsamples", "--seqlen", "--seed",
        "--calib-order", "--percdamp", "--blocksize", "--es-entropy", "--es-beta", "--es-beta-rel", "--es-combine", "--es-bins", "--es-lbs-block",
        "--es-lbs-iters", "--format", "--threads", "--tokenizer", "--max-memory", NULL};
    static const char *const booleans[] = {"--json", "--no-gns", "--no-lbs", "--es-skip-bos", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    prune_opts o;
    prune_opts_default(&o);
    const char *out = opt_str(&f, "-o", NULL), *method = opt_str(&f, "--method", NULL), *nm = opt_str(&f, "--nm", NULL);
    const char *sp = opt_str(&f, "--sparsity", NULL), *calib = opt_str(&f, "--calib", NULL);
    const char *order = opt_str(&f, "--calib-order", "random"), *fmt = opt_str(&f, "--format", "gguf");
    const char *comb = opt_str(&f, "--es-combine", "add");
    long nsamples = opt_int(&f, "--nsamples", 128), seqlen = opt_int(&f, "--seqlen", 2048), seed = opt_int(&f, "--seed", 0);
    o.percdamp = (float)opt_num(&f, "--percdamp", 0.01);
    o.blocksize = (int)opt_int(&f, "--blocksize", 128);
    o.es_entropy = (int)opt_int(&f, "--es-entropy", 1);
    o.es_beta = (float)opt_num(&f, "--es-beta", -1);
    o.es_beta_rel = (float)opt_num(&f, "--es-beta-rel", 1);
    o.es_bins = (int)opt_int(&f, "--es-bins", 128);
    o.es_lbs_block = (int)opt_int(&f, "--es-lbs-block", 64);
    o.es_lbs_iters = (int)opt_int(&f, "--es-lbs-iters", 100);
    o.es_gns = !opt_bool(&f, "--no-gns");
    o.es_lbs = !opt_bool(&f, "--no-lbs");
    o.es_skip_bos = opt_bool(&f, "--es-skip-bos");
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT is required");
    if (!method) return die("%s", "--method is required (magnitude, wanda, sparsegpt, esparse)");
    if (!strcmp(method, "magnitude")) o.method = PRUNE_MAGNITUDE;
    else if (!strcmp(method, "wanda")) o.method = PRUNE_WANDA;
    else if (!strcmp(method, "sparsegpt")) o.method = PRUNE_SPARSEGPT;
    else if (!strcmp(method, "esparse")) o.method = PRUNE_ESPARSE;
    else return die("unknown --method '%s' (magnitude, wanda, sparsegpt, esparse)", method);
    if (!!nm == !!sp) return die("%s", "give exactly one of --nm N:M and --sparsity S");
    if (nm) {
        if (parse_nm(nm, &o.nm_n, &o.nm_m)) return 1;
    } else {
        char *e;
        o.sparsity = strtof(sp, &e);
        if (*e || !(o.sparsity > 0 && o.sparsity < 1)) return die("--sparsity '%s': must be a number in (0, 1)", sp);
    }
    if (strcmp(order, "random") && strcmp(order, "first")) return die("--calib-order '%s': random or first", order);
    if (strcmp(fmt, "gguf") && strcmp(fmt, "hf")) return die("--format '%s': gguf or hf", fmt);
    if (strcmp(comb, "add") && strcmp(comb, "mul")) return die("--es-combine '%s': add or mul", comb);
    o.es_combine = !strcmp(comb, "mul");
    if (!(o.es_beta_rel >= 0)) return die("%s", "--es-beta-rel must be >= 0");
    if (o.es_bins < 2 || o.es_bins > 65536) return die("%s", "--es-bins must be between 2 and 65536");
    if (o.percdamp < 0 || o.blocksize <= 0) return die("%s", "--percdamp must be >= 0 and --blocksize > 0");
    if (!calib && o.method != PRUNE_MAGNITUDE) return die("--method %s needs --calib FILE", method);
    if (same_file(out, f.pos[0])) return die("-o '%s' is the input model: pare never overwrites its input", out);
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    calib_data cd = {0};
    if (load_calib(m, calib, nsamples, &seqlen, seed, order, &cd)) { pare_model_free(m); return 1; }
    prune_report rep;
    pare_status st = prune_model(m, &cd, &o, 1, &rep);
    if (!st) st = pare_model_save(m, out, fmt);
    calib_free(&cd);
    pare_model_free(m);
    if (st) { prune_report_free(&rep); return die_st(); }
    if (json) {
        printf("{\"model\":"); pare_json_str(stdout, f.pos[0]);
        printf(",\"output\":"); pare_json_str(stdout, out);
        printf(",\"method\":\"%s\",", method);
        if (o.nm_m) printf("\"nm\":\"%d:%d\",", o.nm_n, o.nm_m); else printf("\"sparsity_target\":%g,", (double)o.sparsity);
        printf("\"calib\":"); if (calib) pare_json_str(stdout, calib); else printf("null");
        printf(",\"nsamples\":%ld,\"seqlen\":%ld,\"seed\":%ld,\"calib_order\":\"%s\",\"sparsity\":%.6f,\"seconds\":%.3f,\"tensors\":[",
               calib ? nsamples : 0, calib ? seqlen : 0, seed, order, rep.numel ? (double)rep.zeros / rep.numel : 0.0, rep.seconds);
        for (int i = 0; i < rep.n; i++)
            printf("%s{\"name\":\"%s\",\"numel\":%lld,\"zeros\":%lld,\"sparsity\":%.6f}", i ? "," : "", rep.t[i].name,
                   (long long)rep.t[i].numel, (long long)rep.t[i].zeros, (double)rep.t[i].zeros / rep.t[i].numel);
        printf("]}\n");
    } else {
        printf("pruned %d tensors with %s: %.2f%% zeros overall, %.1f s; wrote %s\n", rep.n, method,
               rep.numel ? 100.0 * rep.zeros / rep.numel : 0.0, rep.seconds, out);
        for (int i = 0; i < rep.n; i++)
            printf("  %-28s %6.2f%% zeros\n", rep.t[i].name, 100.0 * rep.t[i].zeros / rep.t[i].numel);
    }
    prune_report_free(&rep);
    return 0;
}

/* cmd_quantize.c - pare quantize: RTN or GPTQ to GGUF block types or generic b-bit grids. */
#include "cli.h"
#include "quant/quant.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *quantize_HELP =
    "usage: pare quantize MODEL -o OUT --type T [--method rtn|gptq] [--calib FILE] [options]\n"
    "\n"
    "Weight quantization of every block's seven linear layers (q, k, v, o, gate, up, down);\n"
    "the token embeddings and the output head stay as they are (--quantize-head rounds the\n"
    "head too, by RTN). OUT is a GGUF that pare and llama.cpp run.\n"
    "\n"
    "types (T):\n"
    "  q8_0 q4_0 q4_1 q5_0 q5_1   GGUF block types (32 weights, f16 scale [and min]), written\n"
    "                    as such; RTN output is byte-identical to llama.cpp's reference\n"
    "                    quantizers. Bits per weight 8.5, 4.5, 5.0, 5.5, 6.0\n"
    "  intB[-gG][-asym]  generic grid: B bits (2..8), groups of G input columns (8..4096;\n"
    "                    default: one per row), symmetric (scale amax / (2^(B-1) - 1), 2^B - 1\n"
    "                    levels) or -asym (GPTQ's min/max quantizer with a zero point). Written\n"
    "                    as fake-quantized F32 (F16 when the input is not F32); the nominal size\n"
    "                    counts B bits per weight + a 16-bit scale (+ a 16-bit zero point) per\n"
    "                    group. Examples: int4-g128, int3-g64-asym, int2-g32-asym\n"
    "  (src/quant/quant.h: how the generic grids relate to the GGUF ones)\n"
    "\n"
    "methods:\n"
    "  rtn (default)     round to nearest, no calibration\n"
    "  gptq              GPTQ (METHODS.md 5): block by block on calibration text (the inputs\n"
    "                    of each block are those of the already-quantized blocks below), OBS\n"
    "                    error feedback with the layer Hessian, lazy blocks of 128; each\n"
    "                    group's grid is fitted on the updated weights when the sweep reaches it\n"
    "calibration (gptq):\n"
    "  --calib FILE      text to calibrate on (required for gptq)\n"
    "  --nsamples N      windows (default 128)\n"
    "  --seqlen L        tokens per window (default 2048, capped at the model's context)\n"
    "  --seed S          window draw seed (default 0)\n"
    "  --calib-order O   random (default) or first\n"
    "gptq:\n"
    "  --percdamp D      Hessian damping as a fraction of its mean diagonal (default 0.01)\n"
    "  --blocksize B     lazy-update block width (default 128)\n"
    "  --act-order       columns in descending order of the Hessian diagonal; group grids are\n"
    "                    then fitted once from the original weights (static groups)\n"
    "  --static-groups   group grids from the original weights, in the natural order too\n"
    "output:\n"
    "  -o OUT            output path (required); never the input\n"
    "  --quantize-head   also output.weight (RTN; not when it is tied to the embeddings)\n"
    "  --threads T       threads\n"
    MAXMEM_HELP
    "  --json            one JSON object: settings, bits_per_weight of the quantized tensors,\n"
    "                    quantized_mb (the model at that nominal size), file_mb, time\n"
    "\n"
    "examples: pare quantize model.gguf -o model-q4_1.gguf --type q4_1\n"
    "          pare quantize model.gguf -o model-g3.gguf --type int3-g128 --method gptq --calib valid.txt\n";

int cmd_quantize(int argc, char **argv) {
    static const char *const valued[] = {"-o", "--type", "--method", "--calib", "--nsamples", "--seqlen", "--seed",
        "--calib-order", "--percdamp", "--blocksize", "--threads", "--tokenizer", "--max-memory", NULL};
    static const char *const booleans[] = {"--json", "--act-order", "--static-groups", "--quantize-head", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    quant_opts o;
    memset(&o, 0, sizeof o);
    gptq_opts_default(&o.gptq);
    const char *out = opt_str(&f, "-o", NULL), *type = opt_str(&f, "--type", NULL);
    const char *method = opt_str(&f, "--method", "rtn"), *calib = opt_str(&f, "--calib", NULL);
    const char *order = opt_str(&f, "--calib-order", "random");
    long nsamples = opt_int(&f, "--nsamples", 128), seqlen = opt_int(&f, "--seqlen", 2048), seed = opt_int(&f, "--seed", 0);
    o.gptq.percdamp = (float)opt_num(&f, "--percdamp", 0.01);
    o.gptq.blocksize = (int)opt_int(&f, "--blocksize", 128);
    o.gptq.act_order = opt_bool(&f, "--act-order");
    o.gptq.static_groups = opt_bool(&f, "--static-groups");
    o.head = opt_bool(&f, "--quantize-head");
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (opt_int(&f, "--threads", 0) > 0) openblas_set_num_threads((int)opt_int(&f, "--threads", 0));
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT is required");
    if (!type) return die("%s", "--type is required (q8_0, q4_0, q4_1, q5_0, q5_1, or e.g. int4-g128)");
    if (quant_spec_parse(type, &o.spec)) return die_st();
    if (!strcmp(method, "rtn")) o.method = QUANT_RTN;
    else if (!strcmp(method, "gptq")) o.method = QUANT_GPTQ;
    else return die("unknown --method '%s' (rtn, gptq)", method);
    if (strcmp(order, "random") && strcmp(order, "first")) return die("--calib-order '%s': random or first", order);
    if (!(o.gptq.percdamp >= 0) || o.gptq.blocksize <= 0) return die("%s", "--percdamp must be >= 0 and --blocksize > 0");
    if (nsamples <= 0 || seqlen <= 1) return die("%s", "--nsamples must be > 0 and --seqlen > 1");
    if (o.method == QUANT_GPTQ && !calib) return die("%s", "--method gptq needs --calib FILE");
    if (o.method == QUANT_RTN && calib) return die("%s", "--calib is for --method gptq (rtn needs no calibration)");
    if (same_file(out, f.pos[0])) return die("-o '%s' is the input model: pare never overwrites its input", out);
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    calib_data cd = {0};
    if (load_calib(m, calib, nsamples, &seqlen, seed, order, &cd)) { pare_model_free(m); return 1; }
    quant_report rep;
    pare_status st = quant_model(m, calib ? &cd : NULL, &o, 1, &rep);
    if (!st) st = pare_model_save(m, out, "gguf");
    calib_free(&cd);
    pare_model_free(m);
    if (st) return die_st();
    char name[32];
    quant_spec_name(&o.spec, name, sizeof name);
    struct stat sb;
    const double file_mb = stat(out, &sb) ? 0.0 : (double)sb.st_size / 1e6;
    const double bpw = rep.numel ? rep.bits / (double)rep.numel : 0.0, qmb = (rep.bits / 8 + (double)rep.bytes_other) / 1e6;
    if (json) {
        printf("{\"model\":"); pare_json_str(stdout, f.pos[0]);
        printf(",\"output\":"); pare_json_str(stdout, out);
        printf(",\"type\":\"%s\",\"method\":\"%s\",\"stored_as\":\"%s\",\"calib\":", name, method, pare_type_name(rep.stored_type));
        if (calib) pare_json_str(stdout, calib); else printf("null");
        printf(",\"nsamples\":%ld,\"seqlen\":%ld,\"seed\":%ld,", calib ? nsamples : 0, calib ? seqlen : 0, seed);
        if (o.method == QUANT_GPTQ)
            printf("\"percdamp\":%g,\"blocksize\":%d,\"act_order\":%s,\"static_groups\":%s,", (double)o.gptq.percdamp,
                   o.gptq.blocksize, o.gptq.act_order ? "true" : "false", o.gptq.static_groups ? "true" : "false");
        printf("\"tensors\":%d,\"weights\":%lld,\"head\":%s,\"bits_per_weight\":%.4f,\"quantized_mb\":%.3f,\"file_mb\":%.3f,"
               "\"seconds\":%.3f}\n", rep.n, (long long)rep.numel, rep.head ? "true" : "false", bpw, qmb, file_mb, rep.seconds);
    } else {
        printf("quantized %d tensors (%lld weights) to %s with %s: %.3f bits per weight, %.2f MB nominal (file %.2f MB, "
               "stored as %s), %.1f s; wrote %s\n", rep.n, (long long)rep.numel, name, method, bpw, qmb, file_mb,
               pare_type_name(rep.stored_type), rep.seconds, out);
    }
    return 0;
}

/*  */
#include "cli.h"
#include "model/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- info ---------------------------------------------------------------- */
const char *info_HELP =
    "usage: pare info MODEL [--json]\n"
    "\n"
    "Print a model's architecture: blocks, width, heads and FFN width per layer, RoPE,\n"
    "vocabulary, every tensor with its type and shape, parameter count and bytes.\n"
    "MODEL is a .gguf file, a llama2.c .bin checkpoint, or a Hugging Face folder.\n"
    "\n"
    "  --json            one JSON object instead of text\n"
    "  --tokenizer PATH  tokenizer for a llama2.c checkpoint (default: beside it)\n";

int cmd_info(int argc, char **argv) {
    static const char *const valued[] = {"--tokenizer", NULL}, *const booleans[] = {"--json", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    int json = opt_bool(&f, "--json");
    size_t bytes = 0;
    for (int i = 0; i < m->n_tensors; i++) bytes += m->tensors[i].nbytes;
    const pare_vocab *v = m->vocab;
    const char *vt = !v ? "none" : v->type == PARE_VOCAB_SPM ? "spm" : "bpe";
    if (json) {
        printf("{\"path\":"); pare_json_str(stdout, f.pos[0]);
        printf(",\"arch\":\"llama\",\"n_layer\":%d,\"n_embd\":%d,\"n_vocab\":%d,\"head_dim\":%d,\"n_ctx_train\":%d,"
               "\"norm_eps\":%g,\"rope_base\":%g,\"rope_scaling\":\"%s\",\"tied_output\":%s,\"params\":%lld,\"bytes\":%zu,"
               "\"tokenizer\":\"%s\",\"layers\":[",
               m->n_layer, m->n_embd, m->n_vocab, m->head_dim, m->n_ctx_train, (double)m->norm_eps, (double)m->rope_base,
               m->rope_scaling == PARE_ROPE_SCALING_LLAMA3 ? "llama3" : m->rope_scaling == PARE_ROPE_SCALING_LINEAR ? "linear" : "none",
               m->tied ? "true" : "false", (long long)model_n_params(m), bytes, vt);
        for (int l = 0; l < m->n_layer; l++)
            printf("%s{\"n_head\":%d,\"n_head_kv\":%d,\"n_ff\":%d}", l ? "," : "", m->layers[l].n_head,
                   m->layers[l].n_head_kv, m->layers[l].n_ff);
        printf("],\"tensors\":[");
        for (int i = 0; i < m->n_tensors; i++) {
            const pare_tensor *t = &m->tensors[i];
            printf("%s{\"name\":", i ? "," : ""); pare_json_str(stdout, t->name);
            printf(",\"type\":\"%s\",\"shape\":[", pare_type_name(t->type));
            for (int d = 0; d < t->n_dims; d++) printf("%s%lld", d ? "," : "", (long long)t->ne[d]);
            printf("],\"bytes\":%zu}", t->nbytes);
        }
        printf("]}\n");
    } else {
        printf("model       %s\n", f.pos[0]);
        printf("arch        llama: %d blocks, width %d, head_dim %d, vocab %d (%s), context %d\n", m->n_layer, m->n_embd,
               m->head_dim, m->n_vocab, vt, m->n_ctx_train);
        printf("norm        RMSNorm eps %g; RoPE base %g%s; output %s\n", (double)m->norm_eps, (double)m->rope_base,
               m->rope_scaling == PARE_ROPE_SCALING_LLAMA3 ? " (llama3 scaling)" : "", m->tied ? "tied to embeddings" : "untied");
        printf("parameters  %lld (%.2f M), %zu bytes of weights (%.2f MiB)\n", (long long)model_n_params(m),
               model_n_params(m) / 1e6, bytes, bytes / 1048576.0);
        printf("layers      block: heads/kv_heads ffn\n");
        for (int l = 0; l < m->n_layer; l++)
            printf("            %5d: %d/%d %d\n", l, m->layers[l].n_head, m->layers[l].n_head_kv, m->layers[l].n_ff);
        printf("tensors     %d\n", m->n_tensors);
        for (int i = 0; i < m->n_tensors; i++) {
            const pare_tensor *t = &m->tensors[i];
            printf("  %-28s %-5s [", t->name, pare_type_name(t->type));
            for (int d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
            printf("]\n");
        }
    }
    pare_model_free(m);
    return 0;
}

/* ---- convert ------------------------------------------------------------- */
const char *convert_HELP =
    "usage: pare convert IN -o OUT [--format gguf|hf] [--json]\n"
    "\n"
    "Convert between model formats. IN is a .gguf, a llama2.c .bin or a Hugging Face folder.\n"
    "OUT is written as GGUF (a file; the default when OUT ends in .gguf) or as a Hugging Face\n"
    "folder (config.json + model.safetensors + tokenizer; the default otherwise). q/k rows are\n"
    "reordered between the two rotary layouts, so GGUF -> HF -> GGUF gives the same bytes.\n"
    "Outputs are written to a temporary name and renamed: a failure leaves nothing behind.\n"
    "\n"
    "  -o OUT          output path (required)\n"
    "  --format F      gguf or hf (default: from OUT)\n"
    "  --tokenizer P   tokenizer for a llama2.c checkpoint\n"
    "\n"
    "example: pare convert stories260K.bin -o stories260K.gguf\n";

int cmd_convert(int argc, char **argv) {
    static const char *const valued[] = {"-o", "--format", "--tokenizer", NULL};
    static const char *const booleans[] = {"--json", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one input model (see --help)");
    const char *out = opt_str(&f, "-o", NULL), *fmt = opt_str(&f, "--format", NULL);
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT is required");
    if (!fmt) {
        size_t n = strlen(out);
        fmt = n > 5 && !strcmp(out + n - 5, ".gguf") ? "gguf" : "hf";
    }
    if (strcmp(fmt, "gguf") && strcmp(fmt, "hf")) return die("unknown --format '%s' (gguf or hf)", fmt);
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    double t0 = pare_now();
    pare_status st = pare_model_save(m, out, fmt);
    pare_model_free(m);
    if (st) return die_st();
    if (opt_bool(&f, "--json")) {
        printf("{\"input\":"); pare_json_str(stdout, f.pos[0]);
        printf(",\"output\":"); pare_json_str(stdout, out);
        printf(",\"format\":\"%s\",\"seconds\":%.3f}\n", fmt, pare_now() - t0);
    } else {
        printf("wrote %s (%s)\n", out, fmt);
    }
    return 0;
}

/* ---- synth --------------------------------------------------------------- */
const char *synth_HELP =
    "usage: pare synth --shape NAME|SHAPE.json [--type T] [--nm N:M] [--seed S] -o OUT.gguf\n"
    "\n"
    "Write a deterministic random-weight model with a real LLaMA shape, for speed and scale\n"
    "tests (weights N(0, 0.02^2), norms 1, a byte-level SentencePiece vocabulary). The same\n"
    "shape, type and seed always give the same bytes. llama.cpp loads the output.\n"
    "\n"
    "  --shape NAME    tiny, stories15m, stories110m, tinyllama-1.1b, llama2-7b, or a JSON file\n"
    "                  {\"dim\",\"n_layers\",\"n_heads\",\"n_kv_heads\",\"ffn\",\"vocab\",\"ctx\"}\n"
    "  --type T        f32 (default), f16, bf16, q8_0, q4_0\n"
    "  --nm N:M        make the block matrices N:M sparse (keep the N largest of every M\n"
    "                  inputs; zeros in a standard GGUF, compressed by pare when it loads it)\n"
    "  --seed S        random seed (default 1)\n"
    "  -o OUT          output .gguf (required)\n"
    "\n"
    "example: pare synth --shape tinyllama-1.1b --type q4_0 -o tl.gguf\n";

int cmd_synth(int argc, char **argv) {
    static const char *const valued[] = {"--shape", "--type", "--seed", "-o", "--threads", "--nm", NULL};
    static const char *const booleans[] = {"--json", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos) return die("unexpected argument '%s' (see --help)", f.pos[0]);
    const char *shape = opt_str(&f, "--shape", "tiny"), *tname = opt_str(&f, "--type", "f32"), *out = opt_str(&f, "-o", NULL);
    long seed = opt_int(&f, "--seed", 1);
    set_threads(&f);
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT.gguf is required");
    int type = pare_type_from_name(tname);
    if (type < 0) return die("unknown --type '%s' (f32, f16, bf16, q8_0, q4_0)", tname);
    synth_shape sh;
    const synth_shape *known = synth_find_shape(shape);
    if (known) sh = *known;
    else if (strchr(shape, '.') || strchr(shape, '/')) { if (synth_shape_from_json(shape, &sh)) return die_st(); }
    else return die("unknown --shape '%s' (tiny, stories15m, stories110m, tinyllama-1.1b, llama2-7b, or a .json)", shape);
    double t0 = pare_now();
    pare_model *m;
    int nm_n = 0, nm_m = 0;
    const char *nm = opt_str(&f, "--nm", NULL);
    if (nm && parse_nm(nm, &nm_n, &nm_m)) return 1;
    if (synth_model_nm(&sh, type, nm_n, nm_m, (uint64_t)seed, &m)) return die_st();
    pare_status st = pare_model_save(m, out, "gguf");
    int64_t np = model_n_params(m);
    pare_model_free(m);
    if (st) return die_st();
    if (opt_bool(&f, "--json")) {
        printf("{\"output\":"); pare_json_str(stdout, out);
        printf(",\"shape\":\"%s\",\"type\":\"%s\",\"seed\":%ld,\"params\":%lld,\"seconds\":%.3f}\n", sh.name, tname, seed,
               (long long)np, pare_now() - t0);
    } else {
        printf("wrote %s: %s, %s, seed %ld, %.1f M parameters\n", out, sh.name, tname, seed, np / 1e6);
    }
    return 0;
}

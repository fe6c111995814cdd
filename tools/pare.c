/* pare - command-line tool. Parses flags and calls libpare; one function per subcommand. */
#include "eval/eval.h"
#include "kernels/kernels.h"
#include "model/model.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARE_VERSION "0.1.0"

static const char *g_cmd = "pare";

/* One-line error and a non-zero exit: the only way the CLI fails. */
static int die(const char *fmt, const char *arg) {
    fprintf(stderr, "pare %s: ", g_cmd);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}
static int die_st(void) {
    fprintf(stderr, "pare %s: %s\n", g_cmd, pare_last_error());
    return 1;
}

/* ---- flag parsing -------------------------------------------------------------------- */
typedef struct flags {
    int argc; char **argv;
    const char *pos[4]; int n_pos;
    int bad;
} flags;

static int is_flag(const char *a, const char *name) { return !strcmp(a, name); }

/* Parse argv into positionals; option values are looked up with opt_*. Options are
 * --name VALUE or --name=VALUE; boolean options are --name. */
static const char *opt_str(flags *f, const char *name, const char *def) {
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
static int opt_bool(flags *f, const char *name) {
    for (int i = 0; i < f->argc; i++) if (is_flag(f->argv[i], name)) return 1;
    return 0;
}
static long opt_int(flags *f, const char *name, long def) {
    const char *s = opt_str(f, name, NULL);
    if (!s) return def;
    char *e; errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s) { f->bad = 1; die("option %s needs an integer", name); return def; }
    return v;
}
static double opt_num(flags *f, const char *name, double def) {
    const char *s = opt_str(f, name, NULL);
    if (!s) return def;
    char *e; errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || e == s) { f->bad = 1; die("option %s needs a number", name); return def; }
    return v;
}
/* Collect positionals: anything not starting with '-' and not the value of a known
 * value-taking option. */
static void parse(flags *f, int argc, char **argv, const char *const *valued) {
    memset(f, 0, sizeof *f);
    f->argc = argc; f->argv = argv;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            int takes = 0;
            for (const char *const *v = valued; *v; v++) if (is_flag(a, *v)) takes = 1;
            if (takes) i++;
            continue;
        }
        if (f->n_pos < 4) f->pos[f->n_pos++] = a;
    }
}
static int check_unknown(flags *f, const char *const *valued, const char *const *booleans) {
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
        if (!ok) return die("unknown option %s (see --help)", a);
    }
    return 0;
}

static void set_threads(flags *f) {
    long t = opt_int(f, "--threads", 0);
    if (t > 0) omp_set_num_threads((int)t);
}

static int load(flags *f, const char *path, pare_model **m) {
    const char *tok = opt_str(f, "--tokenizer", NULL);
    if (pare_model_load(path, tok, m)) return die_st();
    return 0;
}

/* ---- info ----------------------------------------------------------------------------- */
static const char *INFO_HELP =
    "usage: pare info MODEL [--json]\n"
    "\n"
    "Print a model's architecture: blocks, width, heads and FFN width per layer, RoPE,\n"
    "vocabulary, every tensor with its type and shape, parameter count and bytes.\n"
    "MODEL is a .gguf file, a llama2.c .bin checkpoint, or a Hugging Face folder.\n"
    "\n"
    "  --json            one JSON object instead of text\n"
    "  --tokenizer PATH  tokenizer for a llama2.c checkpoint (default: beside it)\n";

static int cmd_info(int argc, char **argv) {
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

/* ---- ppl ------------------------------------------------------------------------------ */
static const char *PPL_HELP =
    "usage: pare ppl MODEL --text FILE [--ctx N] [--max-windows K] [--protocol papers|llamacpp] [--json]\n"
    "\n"
    "Perplexity of MODEL on a text file. The whole file is tokenized once with one BOS in\n"
    "front and cut into non-overlapping windows of N tokens (the tail is dropped).\n"
    "  papers    (default) every token of a window but its first is scored; ppl = exp(mean NLL)\n"
    "  llamacpp  as llama.cpp's llama-perplexity: each window starts with BOS, second half scored\n"
    "\n"
    "  --text FILE        text to score (required)\n"
    "  --ctx N            window length in tokens (default 256)\n"
    "  --max-windows K    score only the first K windows (default: all)\n"
    "  --threads T        threads (default: all cores)\n"
    "  --json             one JSON object: ppl, nll, tokens, windows, scored, ctx, protocol, seconds\n"
    "\n"
    "example: pare ppl model.gguf --text wiki.test.raw --ctx 2048 --json\n";

static int cmd_ppl(int argc, char **argv) {
    static const char *const valued[] = {"--text", "--ctx", "--max-windows", "--protocol", "--threads", "--tokenizer", NULL};
    static const char *const booleans[] = {"--json", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    const char *text = opt_str(&f, "--text", NULL);
    long ctx = opt_int(&f, "--ctx", 256), maxw = opt_int(&f, "--max-windows", 0);
    const char *proto = opt_str(&f, "--protocol", "papers");
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (f.bad) return 1;
    if (!text) return die("%s", "--text FILE is required");
    int protocol;
    if (!strcmp(proto, "papers")) protocol = PPL_PROTOCOL_PAPERS;
    else if (!strcmp(proto, "llamacpp")) protocol = PPL_PROTOCOL_LLAMACPP;
    else return die("unknown --protocol '%s' (papers or llamacpp)", proto);
    if (ctx < 2 || ctx > (1 << 20)) return die("%s", "--ctx must be between 2 and 1048576");
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    if (!m->vocab) { pare_model_free(m); return die("%s", "the model has no tokenizer (give --tokenizer)"); }
    char *buf; size_t len;
    if (pare_read_file(text, &buf, &len)) { pare_model_free(m); return die_st(); }
    int32_t *ids; size_t n;
    if (pare_tokenize(m->vocab, buf, len, 1, &ids, &n)) { free(buf); pare_model_free(m); return die_st(); }
    free(buf);
    pare_ppl r;
    pare_status st = eval_ppl(m, ids, n, (int)ctx, (int)maxw, protocol, !json, &r);
    free(ids); pare_model_free(m);
    if (st) return die_st();
    if (json)
        printf("{\"ppl\":%.10g,\"nll\":%.10g,\"tokens\":%lld,\"windows\":%lld,\"scored\":%lld,\"ctx\":%d,\"protocol\":\"%s\","
               "\"seconds\":%.3f,\"tokens_per_s\":%.1f}\n", r.ppl, r.nll, (long long)r.tokens, (long long)r.windows,
               (long long)r.scored, r.ctx, proto, r.seconds, (double)(r.windows * r.ctx) / r.seconds);
    else
        printf("ppl %.4f  (nll %.6f, %lld tokens, %lld windows of %d, %lld scored, %s protocol, %.1f s)\n", r.ppl, r.nll,
               (long long)r.tokens, (long long)r.windows, r.ctx, (long long)r.scored, proto, r.seconds);
    return 0;
}

/* ---- generate -------------------------------------------------------------------------- */
static const char *GEN_HELP =
    "usage: pare generate MODEL [--prompt TEXT] [-n N] [--temp T] [--top-p P] [--seed S] [--json]\n"
    "\n"
    "Continue a prompt. The prompt is tokenized with BOS in front; an empty prompt starts\n"
    "from BOS alone. Temperature 0 is greedy (the same output every time).\n"
    "\n"
    "  --prompt TEXT   text to continue (default: empty)\n"
    "  -n N            new tokens to generate (default 128)\n"
    "  --temp T        sampling temperature (default 0.8; 0 = greedy)\n"
    "  --top-p P       nucleus sampling threshold (default 0.9)\n"
    "  --seed S        random seed (default 42): same seed, same text\n"
    "  --ignore-eos    keep going past the end-of-text token\n"
    "  --threads T     threads\n"
    "  --json          one JSON object: ids, text, tokens per second\n"
    "\n"
    "example: pare generate model.gguf --prompt \"Once upon a time\" -n 64 --temp 0\n";

typedef struct { const pare_vocab *v; } gen_user;
static void print_token(int32_t id, void *u) {
    const gen_user *g = u;
    char piece[256];
    int n = pare_token_to_piece(g->v, id, piece, sizeof piece);
    if (n > 0) { fwrite(piece, 1, (size_t)n, stdout); fflush(stdout); }
}

static int cmd_generate(int argc, char **argv) {
    static const char *const valued[] = {"--prompt", "-n", "--temp", "--top-p", "--seed", "--threads", "--tokenizer", NULL};
    static const char *const booleans[] = {"--json", "--ignore-eos", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    const char *prompt = opt_str(&f, "--prompt", "");
    long n = opt_int(&f, "-n", 128), seed = opt_int(&f, "--seed", 42);
    double temp = opt_num(&f, "--temp", 0.8), top_p = opt_num(&f, "--top-p", 0.9);
    int json = opt_bool(&f, "--json"), ignore_eos = opt_bool(&f, "--ignore-eos");
    set_threads(&f);
    if (f.bad) return 1;
    if (n < 0 || n > 1000000) return die("%s", "-n must be between 0 and 1000000");
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    if (!m->vocab) { pare_model_free(m); return die("%s", "the model has no tokenizer (give --tokenizer)"); }
    int32_t *pids; size_t np;
    if (pare_tokenize(m->vocab, prompt, strlen(prompt), 1, &pids, &np)) { pare_model_free(m); return die_st(); }
    if (np == 0) { /* a vocabulary without BOS and an empty prompt */
        free(pids); pare_model_free(m);
        return die("%s", "the prompt is empty and the vocabulary has no BOS token");
    }
    gen_user gu = {m->vocab};
    if (!json) fwrite(prompt, 1, strlen(prompt), stdout);
    int32_t *ids; int nout; double tp = 0, tg = 0;
    pare_status st = eval_generate(m, pids, (int)np, (int)n, (float)temp, (float)top_p, (uint64_t)seed, ignore_eos,
                                   json ? NULL : print_token, &gu, &ids, &nout, &tp, &tg);
    if (st) { free(pids); pare_model_free(m); return die_st(); }
    int ngen = nout - (int)np;
    if (json) {
        printf("{\"prompt_tokens\":%zu,\"generated\":%d,\"ids\":[", np, ngen);
        for (int i = 0; i < nout; i++) printf("%s%d", i ? "," : "", ids[i]);
        printf("],\"text\":");
        size_t cap = 64 + (size_t)nout * 64, len = 0;
        char *txt = malloc(cap);
        if (txt) {
            for (int i = (int)np; i < nout; i++) {
                int k = pare_token_to_piece(m->vocab, ids[i], txt + len, cap - len - 1);
                if (k > 0) len += (size_t)k;
            }
            txt[len] = 0;
            pare_json_str(stdout, txt);
            free(txt);
        } else printf("\"\"");
        printf(",\"prompt_tokens_per_s\":%.2f,\"gen_tokens_per_s\":%.2f}\n", tp > 0 ? np / tp : 0.0,
               tg > 0 ? (ngen > 1 ? (ngen - 1) / tg : 0.0) : 0.0);
    } else {
        printf("\n");
        fprintf(stderr, "[%d tokens; prompt %.1f tok/s, generation %.1f tok/s]\n", ngen, tp > 0 ? np / tp : 0.0,
                tg > 0 && ngen > 1 ? (ngen - 1) / tg : 0.0);
    }
    free(ids); free(pids); pare_model_free(m);
    return 0;
}

/* ---- convert --------------------------------------------------------------------------- */
static const char *CONVERT_HELP =
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

static int cmd_convert(int argc, char **argv) {
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

/* ---- main ------------------------------------------------------------------------------ */
static const struct { const char *name, *what; int (*fn)(int, char **); const char **help; } g_cmds[] = {
    {"info", "show a model's architecture, tensors and size", cmd_info, &INFO_HELP},
    {"ppl", "perplexity on a text file", cmd_ppl, &PPL_HELP},
    {"generate", "continue a prompt (greedy or sampled)", cmd_generate, &GEN_HELP},
    {"convert", "convert between GGUF, Hugging Face and llama2.c formats", cmd_convert, &CONVERT_HELP},
};
#define N_CMDS (int)(sizeof g_cmds / sizeof g_cmds[0])

static void usage(FILE *out) {
    fprintf(out, "pare %s - make LLaMA-family models smaller and faster on CPUs\n\nusage: pare COMMAND [ARGS] [--help]\n\ncommands:\n",
            PARE_VERSION);
    for (int i = 0; i < N_CMDS; i++) fprintf(out, "  %-10s %s\n", g_cmds[i].name, g_cmds[i].what);
    fprintf(out, "\nMODEL is a .gguf file, a llama2.c .bin checkpoint or a Hugging Face folder.\n"
                 "Every command takes --help, and --json for machine-readable output.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("pare %s\n", PARE_VERSION); return 0; }
    for (int i = 0; i < N_CMDS; i++) {
        if (strcmp(argv[1], g_cmds[i].name)) continue;
        g_cmd = g_cmds[i].name;
        for (int a = 2; a < argc; a++)
            if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { fputs(*g_cmds[i].help, stdout); return 0; }
        return g_cmds[i].fn(argc - 2, argv + 2);
    }
    fprintf(stderr, "pare: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}

/*  */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ppl ----------------------------------------------------------------- */
const char *ppl_HELP =
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
    SPARSE_HELP
    EXIT_HELP
    "  --threads T        threads (default: all cores)\n"
    "  --json             one JSON object: model, ppl, nll, tokens, windows, scored, ctx, protocol, seconds\n"
    "\n"
    "example: pare ppl model.gguf --text wiki.test.raw --ctx 2048 --json\n";

int cmd_ppl(int argc, char **argv) {
    static const char *const valued[] = {"--text", "--ctx", "--max-windows", "--protocol", "--threads", "--tokenizer", "--sparse", "--layout",
                                         "--exit", NULL};
    static const char *const booleans[] = {"--json", "--vote", NULL};
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
    if (load_engine(&f, f.pos[0], &m, NULL)) return 1;
    if (!m->vocab) { pare_model_free(m); return die("%s", "the model has no tokenizer (give --tokenizer)"); }
    char *buf; size_t len;
    if (pare_read_file(text, &buf, &len)) { pare_model_free(m); return die_st(); }
    int32_t *ids; size_t n;
    if (pare_tokenize(m->vocab, buf, len, 1, &ids, &n)) { free(buf); pare_model_free(m); return die_st(); }
    free(buf);
    pare_ppl r;
    pare_status st = eval_ppl(m, ids, n, (int)ctx, (int)maxw, protocol, 1, &r);
    free(ids); pare_model_free(m);
    if (st) return die_st();
    if (json) {
        printf("{\"model\":");
        pare_json_str(stdout, f.pos[0]);
        printf(",\"ppl\":%.10g,\"nll\":%.10g,\"tokens\":%lld,\"windows\":%lld,\"scored\":%lld,\"ctx\":%d,\"protocol\":\"%s\","
               "\"seconds\":%.3f,\"tokens_per_s\":%.1f}\n", r.ppl, r.nll, (long long)r.tokens, (long long)r.windows,
               (long long)r.scored, r.ctx, proto, r.seconds, (double)(r.windows * r.ctx) / r.seconds);
    } else
        printf("ppl %.4f  (nll %.6f, %lld tokens, %lld windows of %d, %lld scored, %s protocol, %.1f s)\n", r.ppl, r.nll,
               (long long)r.tokens, (long long)r.windows, r.ctx, (long long)r.scored, proto, r.seconds);
    return 0;
}

/* ---- generate ------------------------------------------------------------ */
const char *generate_HELP =
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
    SPARSE_HELP
    EXIT_HELP
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

int cmd_generate(int argc, char **argv) {
    static const char *const valued[] = {"--prompt", "-n", "--temp", "--top-p", "--seed", "--threads", "--tokenizer", "--sparse", "--layout",
                                         "--exit", NULL};
    static const char *const booleans[] = {"--json", "--ignore-eos", "--vote", NULL};
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
    if (load_engine(&f, f.pos[0], &m, NULL)) return 1;
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

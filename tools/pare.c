/* pare - command-line tool: parses flags and calls libpare. The subcommands live in
 * tools/cmd_*.c; this table lists them. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* ---- main ------------------------------------------------------------------------------ */
static const struct { const char *name, *what; int (*fn)(int, char **); const char **help; } g_cmds[] = {
    {"info", "show a model's architecture, tensors and size", cmd_info, &info_HELP},
    {"ppl", "perplexity on a text file", cmd_ppl, &ppl_HELP},
    {"generate", "continue a prompt (greedy or sampled)", cmd_generate, &generate_HELP},
    {"eval-mc", "zero-shot multiple choice (MMLU, lm-eval JSONL): acc, acc_norm", cmd_evalmc, &evalmc_HELP},
    {"make-cloze", "make a story-cloze multiple-choice task from a text", cmd_makecloze, &makecloze_HELP},
    {"convert", "convert between GGUF, Hugging Face and llama2.c formats", cmd_convert, &convert_HELP},
    {"prune", "one-shot pruning: magnitude, wanda, sparsegpt, esparse (N:M or unstructured)", cmd_prune, &prune_HELP},
    {"quantize", "weight quantization: RTN or GPTQ to q8_0/q4_0/q4_1/q5_0/q5_1 or b-bit grids", cmd_quantize, &quantize_HELP},
    {"profile", "per-block pruning / quantization sensitivity (Edge-LLM LUC)", cmd_profile, &profile_HELP},
    {"compress", "per-block sparsity + bits: LUC, uniform or a size budget (prune, then quantize)", cmd_compress, &compress_HELP},
    {"synth", "write a deterministic random-weight model of a real shape", cmd_synth, &synth_HELP},
    {"train", "train a model on a text file (from a shape, or go on from a model; LoRA)", cmd_train, &train_HELP},
    {"report", "one self-contained HTML page with plots and tables from commands' --json output", cmd_report, &report_HELP},
    {"tune", "recover a compressed model: Edge-LLM adaptive layer tuning with early exits", cmd_tune, &tune_HELP},
    {"bench", "prompt and generation speed, bytes per token, peak memory, memory bandwidth", cmd_bench, &bench_HELP},
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

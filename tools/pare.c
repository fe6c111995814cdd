/* pare - command-line tool: parses flags and calls libpare. The subcommands live in
 * tools/cmd_*.c; this table lists them. */
#include "cli.h"

#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
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
                 "Every command takes --help, --json for machine-readable output, --quiet, and\n"
                 "--force to replace an existing OUT. pare help COMMAND, or a topic: pare help outputs |\n"
                 "json | formats | memory.\n");
}

/* An OUT (-o) that exists is refused unless --force (every command); one that is also an
 * input is left to the command, which names it as such. */
static int refuse_existing_out(int argc, char **argv) {
    const char *o = NULL;
    int force = 0;
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--force")) force = 1;
        else if (!strcmp(argv[a], "-o") && a + 1 < argc) o = argv[++a];
        else if (!strncmp(argv[a], "-o=", 3)) o = argv[a] + 3;
    }
    const char *env = getenv("PARE_FORCE"); /* scripts that rerun into the same folder */
    if (env && !strcmp(env, "1")) force = 1;
    if (!o || force || access(o, F_OK) != 0) return 0;
    for (int a = 2; a < argc; a++)
        if (argv[a] != o && argv[a][0] != '-' && same_file(argv[a], o)) return 0;
    return die("%s exists (pass --force to replace it)", o);
}

static const char *const TOPICS[][2] = {
    {"outputs",
     "Outputs. Every file pare writes goes to a temporary file beside it (NAME.tmp.*), is\n"
     "flushed to disk (fsync) and renamed over NAME, so a failure or an interruption (Ctrl-C,\n"
     "SIGTERM, SIGHUP) leaves either the old NAME or the new one, never a partial file, and no\n"
     "temporary file. An OUT that exists is refused unless --force (or PARE_FORCE=1 in the\n"
     "environment); an OUT that is one of the inputs is refused always. Inputs are opened read-only; one that changes during a run\n"
     "stops it with a one-line error.\n"},
    {"json",
     "--json. Every command prints its result as one JSON object on stdout (long commands also\n"
     "one per progress line: those have \"step\"); numbers are plain JSON numbers, paths\n"
     "strings. pare report RUN.json... turns any of them into an HTML page.\n"},
    {"formats",
     "Formats. MODEL: a .gguf file (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 tensors), a\n"
     "Hugging Face folder (config.json, model.safetensors or shards, F32/F16/BF16,\n"
     "tokenizer.model or tokenizer.json) or a llama2.c .bin checkpoint with its tokenizer .bin.\n"
     "pare writes GGUF that llama.cpp loads (N:M sparse models as zeros, E-Sparse channel orders\n"
     "in extra keys it ignores) and Hugging Face folders; a model with early exits (pare tune)\n"
     "keeps extra tensors only pare reads (pare tune --merge writes a plain one).\n"},
    {"memory",
     "Memory. Pruning, quantization and compression stream the model one block at a time\n"
     "(weights stay mapped from the file; prune --method taylor-struct, one backward pass of\n"
     "the whole model, holds every block's gradients at once); pare tune predicts the peak of\n"
     "a step before it runs and --max-memory SIZE fits the micro-batch and window to a budget\n"
     "or stops with the estimate; pare bench reports the peak RSS. Inference (bench, ppl,\n"
     "generate, eval-mc) moves the weight matrices into huge-page memory at load, file pages\n"
     "released as it goes (faster decode, the same resident size); when they would not fit in\n"
     "90% of the available memory, or with --layout file, they stay mapped from the file.\n"},
};
#define N_TOPICS (int)(sizeof TOPICS / sizeof TOPICS[0])

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "help")) { /* pare help COMMAND | TOPIC */
        for (int i = 0; i < N_CMDS; i++)
            if (!strcmp(argv[2], g_cmds[i].name)) { fputs(*g_cmds[i].help, stdout); return 0; }
        for (int i = 0; i < N_TOPICS; i++)
            if (!strcmp(argv[2], TOPICS[i][0])) { fputs(TOPICS[i][1], stdout); return 0; }
        fprintf(stderr, "pare help: no command or topic '%s' (topics: outputs, json, formats, memory)\n", argv[2]);
        return 1;
    }
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
        if (refuse_existing_out(argc, argv)) return 1;
        return g_cmds[i].fn(argc - 2, argv + 2);
    }
    fprintf(stderr, "pare: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}

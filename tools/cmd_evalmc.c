/* cmd_evalmc.c - pare eval-mc (zero-shot multiple choice) and pare make-cloze (a story-cloze
 * task from any text). */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- eval-mc ------------------------------------------------------------------------------- */
const char *evalmc_HELP =
    "usage: pare eval-mc MODEL --tasks FILE.jsonl [--format mmlu|lm-eval] [--limit N] [--ctx N] [--json] [--threads T]\n"
    "\n"
    "Zero-shot multiple choice, scored as lm-evaluation-harness does: each choice's score is\n"
    "the sum of the log-probabilities of its tokens after the context. acc takes the choice\n"
    "with the largest sum; acc_norm the largest sum divided by the choice's length, counted\n"
    "in UTF-8 bytes of the choice string as given, leading space included (lm-eval counts\n"
    "characters: the same for ASCII). Standard errors are sqrt(p(1-p)/(n-1)), per task, per\n"
    "subject and in total (all items pooled).\n"
    "\n"
    "The context is tokenized with BOS in front and run once per item; every choice then\n"
    "continues from the cached context, so an item costs one prefill plus its choices.\n"
    "Trailing whitespace of the context is moved to the front of each choice (as lm-eval does).\n"
    "A choice's tokens are those of context+choice past the context's tokens when those are a\n"
    "prefix (counted as 'fallbacks' when not: then the choice is tokenized on its own). A\n"
    "context too long for --ctx keeps its BOS and loses its oldest tokens ('truncated').\n"
    "\n"
    "Formats (one JSON object a line; found from the first line's keys without --format):\n"
    "  mmlu     {\"subject\":..,\"input\":\"...Answer:\",\"output\":\"A\"}: the choices are \" A\" \" B\"\n"
    "           \" C\" \" D\" (as Edge-LLM scores them), per-subject results\n"
    "  lm-eval  {\"context\":..,\"choices\":[..],\"gold\":k} with optional \"subject\" and \"task\"\n"
    "           (default task: the file's name); choices are appended to the context as they\n"
    "           are, so they usually start with a space\n"
    "\n"
    "  --tasks FILE     the items (required)\n"
    "  --format F       mmlu or lm-eval (default: from the first line)\n"
    "  --limit N        only the first N items\n"
    "  --ctx N          most tokens an item may use (default: the model's training context)\n"
    SPARSE_HELP
    EXIT_HELP
    "  --threads T      threads (default: all cores)\n"
    "  --json           one JSON object: per task and subject n, acc, acc_stderr, acc_norm,\n"
    "                   acc_norm_stderr; the totals; tokens, fallbacks, truncated, seconds\n"
    "\n"
    "example: pare eval-mc model.gguf --tasks mmlu_zero_shot_val.jsonl --json\n";

static void json_num(double x) {
    if (isfinite(x)) printf("%.10g", x);
    else printf("null");
}
static void json_group(const pare_mc_group *g) {
    printf("{\"n\":%d,\"acc\":", g->n); json_num(g->acc);
    printf(",\"acc_stderr\":"); json_num(g->acc_stderr);
    printf(",\"acc_norm\":"); json_num(g->acc_norm);
    printf(",\"acc_norm_stderr\":"); json_num(g->acc_norm_stderr);
    printf("}");
}
static void json_groups(const char *key, const pare_mc_group *g, int n) {
    printf(",\"%s\":{", key);
    for (int i = 0; i < n; i++) {
        if (i) printf(",");
        pare_json_str(stdout, g[i].name);
        printf(":");
        json_group(&g[i]);
    }
    printf("}");
}
static void row(const char *indent, const pare_mc_group *g) {
    char se[2][16];
    for (int q = 0; q < 2; q++) {
        double x = q ? g->acc_norm_stderr : g->acc_stderr;
        if (isfinite(x)) snprintf(se[q], sizeof se[q], "%.4f", x); else snprintf(se[q], sizeof se[q], "-");
    }
    printf("%s%-*.*s %6d  %.4f  %7s  %.4f  %7s\n", indent, 40 - (int)strlen(indent), 40 - (int)strlen(indent), g->name, g->n,
           g->acc, se[0], g->acc_norm, se[1]);
}

int cmd_evalmc(int argc, char **argv) {
    static const char *const valued[] = {"--tasks", "--format", "--limit", "--ctx", "--threads", "--tokenizer", "--sparse", "--layout",
                                         "--exit", NULL};
    static const char *const booleans[] = {"--json", "--vote", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    const char *tasks = opt_str(&f, "--tasks", NULL), *fmt = opt_str(&f, "--format", NULL);
    long limit = opt_int(&f, "--limit", 0), ctx = opt_int(&f, "--ctx", 0);
    int json = opt_bool(&f, "--json");
    set_threads(&f);
    if (f.bad) return 1;
    if (!tasks) return die("%s", "--tasks FILE is required");
    int format = MC_FORMAT_AUTO;
    if (fmt && !strcmp(fmt, "mmlu")) format = MC_FORMAT_MMLU;
    else if (fmt && !strcmp(fmt, "lm-eval")) format = MC_FORMAT_LMEVAL;
    else if (fmt) return die("unknown --format '%s' (mmlu or lm-eval)", fmt);
    if (limit < 0 || limit > 100000000) return die("%s", "--limit must be between 0 and 100000000");
    if (ctx < 0 || ctx == 1 || ctx > (1 << 20)) return die("%s", "--ctx must be between 2 and 1048576");
    pare_mc_set set;
    if (mc_load(tasks, format, (int)limit, &set)) return die_st(); /* before the model: bad tasks fail fast */
    pare_model *m;
    if (load_engine(&f, f.pos[0], &m, NULL)) { mc_set_free(&set); return 1; }
    if (!m->vocab) { mc_set_free(&set); pare_model_free(m); return die("%s", "the model has no tokenizer (give --tokenizer)"); }
    int max_len = ctx > 0 ? (int)ctx : m->n_ctx_train > 0 ? m->n_ctx_train : 2048;
    pare_mc_result r;
    pare_status st = eval_mc(m, &set, max_len, 1, &r);
    pare_model_free(m);
    if (st) { mc_set_free(&set); return die_st(); }
    int nchoices = r.choice_off[set.n];
    if (json) {
        printf("{\"tasks_file\":");
        pare_json_str(stdout, tasks);
        printf(",\"format\":\"%s\",\"items\":%d,\"choices\":%d,\"ctx\":%d", set.format == MC_FORMAT_MMLU ? "mmlu" : "lm-eval",
               set.n, nchoices, max_len);
        json_groups("tasks", r.tasks, r.n_tasks);
        json_groups("subjects", r.subjects, r.n_subjects);
        printf(",\"total\":");
        json_group(&r.total);
        printf(",\"tokens\":%lld,\"fallbacks\":%d,\"truncated\":%d,\"seconds\":%.3f}\n", (long long)r.tokens, r.fallbacks,
               r.truncated, r.seconds);
    } else {
        printf("%-40s %6s  %-6s  %7s  %-8s  %7s\n", "task / subject", "n", "acc", "stderr", "acc_norm", "stderr");
        for (int i = 0; i < r.n_tasks; i++) row("", &r.tasks[i]);
        for (int i = 0; i < r.n_subjects; i++) row("  ", &r.subjects[i]);
        if (r.n_tasks > 1) row("", &r.total);
        printf("%d items, %d choices, %lld tokens, %.1f s (context %d; %d truncated, %d fallback tokenizations)\n", set.n,
               nchoices, (long long)r.tokens, r.seconds, max_len, r.truncated, r.fallbacks);
    }
    mc_result_free(&r);
    mc_set_free(&set);
    return 0;
}

/* ---- make-cloze ---------------------------------------------------------------------------- */
const char *makecloze_HELP =
    "usage: pare make-cloze TEXT -o FILE.jsonl [--n N] [--seed S] [--context-sentences K]\n"
    "\n"
    "Make a story-cloze task (lm-eval format, for pare eval-mc) from any text. The text is cut\n"
    "into paragraphs at blank lines (each line is a paragraph when it has none); inside a\n"
    "paragraph whitespace runs become one space. A sentence ends at a run of . ! ? (with any\n"
    "closing quotes \" ') followed by a space or the paragraph's end, so \"Mr. Smith\" splits.\n"
    "Each item is a paragraph of at least K+1 sentences: the context is its first K sentences,\n"
    "the choices its sentence K+1 and three sentences of other paragraphs, each with a space in\n"
    "front, the right one at a random place. Lines: {\"context\":..,\"choices\":[4],\"gold\":k}.\n"
    "The same TEXT, N, K and seed give the same bytes.\n"
    "\n"
    "  -o FILE                 output (written to a temporary name, then renamed)\n"
    "  --n N                   items (default 500; fewer if the text has too few paragraphs)\n"
    "  --seed S                random seed (default 0)\n"
    "  --context-sentences K   context sentences (default 3, lowered to 2 or 1 when fewer than\n"
    "                          N paragraphs have K+1 sentences; a given K is kept)\n"
    "\n"
    "example: pare make-cloze stories.txt -o cloze.jsonl --n 500 --seed 0\n";

int cmd_makecloze(int argc, char **argv) {
    static const char *const valued[] = {"-o", "--n", "--seed", "--context-sentences", NULL};
    static const char *const booleans[] = {NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one TEXT file (see --help)");
    const char *outp = opt_str(&f, "-o", NULL);
    long n = opt_int(&f, "--n", 500), seed = opt_int(&f, "--seed", 0), k = opt_int(&f, "--context-sentences", 0);
    if (f.bad) return 1;
    if (!outp) return die("%s", "-o FILE is required");
    if (n < 1 || n > 10000000) return die("%s", "--n must be between 1 and 10000000");
    if (opt_str(&f, "--context-sentences", NULL) && (k < 1 || k > 1000))
        return die("%s", "--context-sentences must be between 1 and 1000");
    if (!strcmp(outp, f.pos[0]) || same_file(outp, f.pos[0])) return die("%s: is the input; refusing to overwrite it", outp);
    char *buf; size_t len;
    if (pare_read_file(f.pos[0], &buf, &len)) return die_st();
    char *js; size_t jl; int made, kk;
    pare_status st = mc_make_cloze(buf, len, (int)n, (int)k, (uint64_t)seed, &js, &jl, &made, &kk);
    free(buf);
    if (st) return die_st();
    if (made == 0) { free(js); return die("%s: no paragraph has enough sentences for an item", f.pos[0]); }
    pare_out o;
    if (pare_out_open(&o, outp)) { free(js); return die_st(); }
    if (pare_out_write(&o, js, jl)) { free(js); pare_out_abort(&o); return die_st(); }
    free(js);
    if (pare_out_commit(&o)) return die_st();
    fprintf(stderr, "pare make-cloze: %d items (context: %d sentence%s, seed %ld) -> %s%s\n", made, kk, kk == 1 ? "" : "s", seed, outp,
            made < n ? " (the text has too few paragraphs for more)" : "");
    return 0;
}

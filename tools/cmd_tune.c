/* cmd_tune.c - pare tune: Edge-LLM adaptive layer tuning with early exits (src/train/tune.c). */
#include "cli.h"

#include "train/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tune_HELP =
    "usage: pare tune MODEL -o OUT.gguf --data FILE [--window W] [--exits 7,15,23,31]\n"
    "                 [--method adaptive|full] [--schedule sequential|round-robin] [--steps N]\n"
    "                 [--lora-rank R] [--max-memory SIZE] [--merge] [--json]\n"
    "\n"
    "Recover a compressed (pruned, quantized) model with LoRA, as Edge-LLM's adaptive layer\n"
    "tuning does (METHODS.md 9 C): each exit k ends a window of W blocks; while exit k trains,\n"
    "only the adapters of its window and its own head (a copy of the output head) learn, the\n"
    "blocks below the window run forward only and keep no activations, the blocks above it do\n"
    "not run. Peak memory grows with W, not with the depth. --method full is the vanilla\n"
    "baseline on the same engine: adapters on every block, one exit after the last,\n"
    "backpropagation through the whole model.\n"
    "\n"
    "OUT keeps the adapters and exits as extra GGUF tensors (blk.L.<linear>.weight.lora_a/_b,\n"
    "exit.K.norm.weight, exit.K.output.weight; keys pare.exit.first/last, pare.lora.scale):\n"
    "pare ppl/generate run its last exit, --exit K one exit, --vote the most confident exit\n"
    "per token. Other tools do not know these tensors: --merge writes a plain model instead\n"
    "(the last exit's adapters folded into F32 weights, its head as the output head, the\n"
    "blocks past it removed), which llama.cpp loads.\n"
    "\n"
    "  --data FILE          tuning text (required); random windows of --seq tokens\n"
    "  -o OUT.gguf          the tuned model (required; never the input)\n"
    "  --method M           adaptive (default) or full\n"
    "  --window W           blocks per window (default: a quarter of the blocks)\n"
    "  --exits LIST         exit blocks, 0-based, increasing (default: after each quarter,\n"
    "                       7,15,23,31 for 32 blocks)\n"
    "  --schedule S         sequential (default: the steps split evenly, exit by exit, the\n"
    "                       remainder to the last) or round-robin (step s trains exit s mod n)\n"
    "  --steps N            optimizer steps (default 200)\n"
    "  --batch B --seq T    micro-batch of B windows of T tokens (default 8 x min(256, context))\n"
    "  --accum A            micro-batches per step (default 1)\n"
    "  --lr LR              learning rate, constant after warm-up (default 4e-4)\n"
    "  --warmup F           warm-up as a fraction of the steps (default 0.03)\n"
    "  --clip C             gradient-norm clipping (default 0.3)\n"
    "  --weight-decay D     (default 0)\n"
    "  --lora-rank R --lora-alpha A   (default 8, 16)\n"
    "  --seed S             data order and adapter initialisation (default 0)\n"
    "  --max-memory SIZE    memory budget (e.g. 512M, 2G): the peak of a step is predicted\n"
    "                       before it runs; over budget, the micro-batch is halved (with more\n"
    "                       accumulation), then the window shrinks; if nothing fits, pare\n"
    "                       stops before the first step with the estimate\n"
    "  --merge              write a plain model (see above)\n"
    "  --log-every N        progress every N steps (default 10)\n"
    "  --threads T          threads\n"
    "  --json               a JSON object per progress line and one at the end with at least\n"
    "                       loss, sec_per_step, peak_rss_mb, predicted_peak_mb\n"
    "\n"
    "example: pare tune pruned.gguf -o tuned.gguf --data train.txt --window 2 --steps 400\n"
    "         pare ppl tuned.gguf --text test.txt --vote\n";

static int parse_exits(const char *s, tune_opts *o) {
    o->n_exit = 0;
    const char *p = s;
    while (*p) {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p || v < 0 || v > 100000 || o->n_exit >= TUNE_MAX_EXITS) return 1;
        o->exits[o->n_exit++] = (int)v;
        if (*e == ',') e++;
        else if (*e) return 1;
        p = e;
    }
    return o->n_exit == 0;
}

typedef struct tune_log {
    int json, every, steps;
    double t0, loss_sum;
    int n;
    const tune_opts *o;
} tune_log;

static void on_step(const tune_step_info *in, void *user) {
    tune_log *lg = user;
    lg->loss_sum += in->loss;
    lg->n++;
    if (in->step % lg->every && in->step != lg->steps) return;
    double el = pare_now() - lg->t0, eta = el / (double)in->step * (double)(lg->steps - in->step);
    double loss = lg->loss_sum / lg->n;
    if (lg->json)
        printf("{\"step\":%lld,\"steps\":%d,\"exit\":%d,\"exit_block\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,"
               "\"sec_per_step\":%.4f,\"rss_mb\":%.1f,\"elapsed_s\":%.2f,\"eta_s\":%.1f}\n",
               (long long)in->step, lg->steps, in->exit, lg->o->exits[in->exit], loss, in->lr, in->grad_norm, in->seconds,
               (double)in->rss / 1048576, el, eta);
    else
        printf("step %5lld/%d  exit %d (block %d)  loss %.4f  lr %.2e  |g| %.3f  %.3f s/step  RSS %.1f MB  elapsed %.0f s"
               "  ETA %.0f s\n", (long long)in->step, lg->steps, in->exit, lg->o->exits[in->exit], loss, in->lr,
               in->grad_norm, in->seconds, (double)in->rss / 1048576, el, eta);
    fflush(stdout);
    lg->loss_sum = 0; lg->n = 0;
}

int cmd_tune(int argc, char **argv) {
    static const char *const valued[] = {"-o", "--data", "--window", "--exits", "--method", "--schedule", "--steps", "--batch",
        "--seq", "--accum", "--lr", "--warmup", "--clip", "--weight-decay", "--lora-rank", "--lora-alpha", "--seed",
        "--max-memory", "--log-every", "--threads", "--tokenizer", NULL};
    static const char *const booleans[] = {"--json", "--merge", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    const char *out = opt_str(&f, "-o", NULL), *data = opt_str(&f, "--data", NULL);
    const char *method = opt_str(&f, "--method", "adaptive"), *sched = opt_str(&f, "--schedule", "sequential");
    const char *exits = opt_str(&f, "--exits", NULL), *maxmem = opt_str(&f, "--max-memory", NULL);
    tune_opts o;
    tune_opts_default(&o);
    o.window = (int)opt_int(&f, "--window", 0);
    o.steps = (int)opt_int(&f, "--steps", o.steps);
    o.B = (int)opt_int(&f, "--batch", o.B);
    o.T = (int)opt_int(&f, "--seq", 0);
    o.accum = (int)opt_int(&f, "--accum", 1);
    o.lr = (float)opt_num(&f, "--lr", o.lr);
    o.warmup_frac = (float)opt_num(&f, "--warmup", o.warmup_frac);
    o.grad_clip = (float)opt_num(&f, "--clip", o.grad_clip);
    o.weight_decay = (float)opt_num(&f, "--weight-decay", o.weight_decay);
    o.lora_rank = (int)opt_int(&f, "--lora-rank", o.lora_rank);
    o.lora_alpha = (float)opt_num(&f, "--lora-alpha", o.lora_alpha);
    long seed = opt_int(&f, "--seed", 0), every = opt_int(&f, "--log-every", 10);
    o.seed = (uint64_t)seed;
    int json = opt_bool(&f, "--json"), merge = opt_bool(&f, "--merge");
    set_threads(&f);
    if (f.bad) return 1;
    if (!out) return die("%s", "-o OUT.gguf is required");
    if (!data) return die("%s", "--data FILE is required");
    if (same_file(out, f.pos[0])) return die("-o '%s' is the input model: pare never overwrites its input", out);
    if (!strcmp(method, "full")) o.full = 1;
    else if (strcmp(method, "adaptive")) return die("unknown --method '%s' (adaptive or full)", method);
    if (!strcmp(sched, "round-robin")) o.schedule = TUNE_ROUND_ROBIN;
    else if (strcmp(sched, "sequential")) return die("unknown --schedule '%s' (sequential or round-robin)", sched);
    if (exits && o.full) return die("%s", "--exits and --method full exclude each other");
    if (exits && parse_exits(exits, &o)) return die("--exits '%s': expected block numbers like 7,15,23,31", exits);
    if (maxmem && (o.max_memory = parse_size(maxmem)) <= 0) return die("--max-memory '%s': expected a size like 512M or 2G", maxmem);
    if (every < 1) return die("%s", "--log-every must be at least 1");
    if (o.steps < 1 || o.steps > 100000000) return die("%s", "--steps must be between 1 and 100000000");
    if (o.B < 1 || o.B > 65536 || o.accum < 1 || o.accum > 65536) return die("%s", "--batch and --accum must be between 1 and 65536");
    if (o.T < 0 || o.T > 65536) return die("%s", "--seq must be between 1 and 65536");
    if (o.lora_rank < 1 || o.lora_rank > 4096) return die("%s", "--lora-rank must be between 1 and 4096");
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    int rc = 1;
    train_data td = {0};
    if (!m->vocab) { die("%s", "the model has no tokenizer (give --tokenizer)"); goto done; }
    if (!o.T) o.T = m->n_ctx_train > 0 && m->n_ctx_train < 256 ? m->n_ctx_train : 256;
    if (train_data_load(m->vocab, data, &td, (uint64_t)seed)) { die_st(); goto done; }
    /* resolve the settings and plan the memory before anything runs */
    tune_warm_blas();
    size_t base = pare_rss_bytes();
    tune_plan plan;
    double pred;
    int req_B = o.B, req_w = o.window;
    if (tune_fit(m, &o, base, &plan, &pred)) { die_st(); goto done; }
    tune_log lg = {json, (int)every, o.steps, 0, 0, 0, &o};
    tune_result res;
    if (!json) {
        printf("pare tune: %s, %d blocks; %s, %d exits (", m->name ? m->name : f.pos[0], m->n_layer,
               o.full ? "full (vanilla LoRA)" : "adaptive", o.n_exit);
        for (int k = 0; k < o.n_exit; k++) printf("%s%d", k ? "," : "", o.exits[k]);
        printf("), window %d, %s schedule, %d steps of %d x %d x %d tokens, LoRA r %d alpha %g, lr %g\n", o.window,
               o.schedule == TUNE_ROUND_ROBIN ? "round-robin" : "sequential", o.steps, o.accum, o.B,
               o.T, o.lora_rank, (double)o.lora_alpha, (double)o.lr);
        printf("memory plan: process %.1f MB + mapped weights %.1f MB + tuning state %.1f MB + activations %.1f MB = %.1f MB "
               "peak\n", (double)base / 1048576, (double)plan.mapped_bytes / 1048576, (double)plan.state_bytes / 1048576,
               (double)plan.act_max / 1048576, pred / 1048576);
        if (o.max_memory > 0 && (o.B != req_B || (req_w && o.window != req_w)))
            printf("--max-memory %.1f MB: micro-batches of %d windows, %d accumulated per step, window %d\n", o.max_memory / 1048576, o.B,
                   o.accum, o.window);
        fflush(stdout);
    }
    double t0 = pare_now();
    lg.t0 = t0;
    if (tune_run(m, &o, &td, on_step, &lg, &res)) { die_st(); goto done; }
    double secs = pare_now() - t0;
    size_t peak = pare_rss_peak_bytes();
    if (merge && tune_merge(m)) { die_st(); goto done; }
    if (pare_model_save(m, out, "gguf")) { die_st(); goto done; }
    if (json) {
        printf("{\"done\":true,\"output\":"); pare_json_str(stdout, out);
        printf(",\"method\":\"%s\",\"window\":%d,\"exits\":[", o.full ? "full" : "adaptive", o.window);
        for (int k = 0; k < o.n_exit; k++) printf("%s%d", k ? "," : "", o.exits[k]);
        printf("],\"exit_loss\":[");
        for (int k = 0; k < o.n_exit; k++) printf("%s%.6f", k ? "," : "", res.exit_loss[k]);
        printf("],\"schedule\":\"%s\",\"steps\":%d,\"batch\":%d,\"seq\":%d,\"accum\":%d,\"tokens\":%lld,"
               "\"trained_params\":%lld,\"loss\":%.6f,\"sec_per_step\":%.5f,\"sec_per_step_steady\":%.5f,\"seconds\":%.2f,"
               "\"peak_rss_mb\":%.2f,"
               "\"predicted_peak_mb\":%.2f,\"merged\":%s}\n",
               o.schedule == TUNE_ROUND_ROBIN ? "round-robin" : "sequential", o.steps, o.B, o.T, o.accum,
               (long long)res.tokens, (long long)res.trained_params, res.final_loss, res.mean_sec_per_step,
               res.steady_sec_per_step, secs,
               (double)peak / 1048576, pred / 1048576, merge ? "true" : "false");
    } else {
        printf("wrote %s%s: %d steps in %.1f s (%.4f s/step, %.4f without phase starts), final loss %.4f; exit losses",
               out, merge ? " (merged)" : "", o.steps, secs, res.mean_sec_per_step, res.steady_sec_per_step, res.final_loss);
        for (int k = 0; k < o.n_exit; k++) printf(" %.4f", res.exit_loss[k]);
        printf("; peak RSS %.1f MB (predicted %.1f MB)\n", (double)peak / 1048576, pred / 1048576);
    }
    rc = 0;
done:
    train_data_free(&td);
    pare_model_free(m);
    return rc;
}

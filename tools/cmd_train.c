/* cmd_train.c - pare train: train a LLaMA-family model on a text file (src/train). */
#include "cli.h"

#include "io/gguf.h"
#include "kernels/kernels.h"
#include "tok/vocab.h"
#include "train/train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *train_HELP =
    "usage: pare train --config SHAPE.json --data FILE --tokenizer TOK -o OUT.gguf [--steps N]\n"
    "                  [--batch B] [--ctx T] [--lr LR] [--seed S] [--json] [options]\n"
    "       pare train --init MODEL --data FILE -o OUT.gguf [--train-layers A-B] [--lora PATTERNS] ...\n"
    "\n"
    "Train a LLaMA-family model on the CPU: from scratch with the shape in SHAPE.json, or go on\n"
    "from an existing MODEL (--init). The text is tokenized once (BOS in front); every step\n"
    "takes B windows of T+1 tokens at random offsets (per --accum micro-batch). AdamW with\n"
    "decoupled weight decay (matrices only), gradient clipping by global norm, cosine schedule\n"
    "with linear warm-up. The same seed gives the same model; a checkpoint resumes bit for bit.\n"
    "\n"
    "  --config SHAPE.json  {\"dim\",\"n_layers\",\"n_heads\",\"n_kv_heads\",\"ffn\",\"ctx\"}, optional\n"
    "                       \"tied\" (true: output head = embedding), \"rope_theta\", \"norm_eps\", \"name\"\n"
    "  --init MODEL         start from this model instead (GGUF, HF folder, llama2.c)\n"
    "  --data FILE          training text (required)\n"
    "  --tokenizer TOK      a SentencePiece tokenizer.model or a GGUF file with a vocabulary\n"
    "                       (required with --config)\n"
    "  -o OUT.gguf          the trained model (required)\n"
    "  --steps N            optimizer steps, the length of the schedule (default 1000)\n"
    "  --batch B            sequences per micro-batch (default 8)\n"
    "  --ctx T              tokens per sequence (default: the shape's ctx, at most 256)\n"
    "  --accum K            micro-batches per step (gradient accumulation; default 1)\n"
    "  --lr LR              peak learning rate (default 1e-3)\n"
    "  --min-lr-ratio R     the cosine ends at LR * R (default 0.1)\n"
    "  --warmup N           linear warm-up steps (default: steps / 20)\n"
    "  --weight-decay WD    AdamW decoupled weight decay (default 0.1)\n"
    "  --beta1 B1 --beta2 B2  AdamW betas (default 0.9, 0.95)\n"
    "  --clip C             clip the gradient's global norm to C; 0: off (default 1.0)\n"
    "  --seed S             initialization and data order (default 1)\n"
    "  --train-layers A-B   train only blocks A..B (the rest, embedding and head included, frozen)\n"
    "  --freeze PATTERNS    comma-separated tensor-name patterns to keep fixed (blk.0.*,token_embd.weight)\n"
    "  --lora PATTERNS      attach LoRA adapters to these linear weights (blk.*.attn_q.weight,...);\n"
    "                       the weights stay fixed, adapters are merged into OUT\n"
    "  --lora-rank R --lora-alpha A   (default 8, 16)\n"
    "  --valid FILE         held-out text: its loss at every --eval-every steps and at the end\n"
    "  --eval-every N       (default: steps / 10)\n"
    "  --eval-windows K     windows of the held-out text scored (default 64)\n"
    "  --log-every N        a progress line every N steps (default: steps / 50, at least 1)\n"
    "  --checkpoint FILE    save the training state here every --save-every steps and at the end\n"
    "  --save-every N       (default: steps / 10)\n"
    "  --resume FILE        go on from a checkpoint (same shape, data, seed and options)\n"
    "  --stop-after N       stop after N steps of this run, save the checkpoint (--checkpoint) and\n"
    "                       write OUT only if the schedule is complete; --resume goes on\n"
    "  --type T             matrices of OUT: f32 (default), f16, bf16, q8_0\n"
    "  --threads T          threads (default: all cores)\n"
    "  --json               one JSON object per progress line and one at the end\n"
    "\n"
    "Progress: step, mean training loss over the interval, learning rate, gradient norm,\n"
    "tokens per second, elapsed time and ETA.\n"
    "\n"
    "example: pare train --config shape.json --data train.txt --tokenizer tokenizer.model \\\n"
    "           -o model.gguf --steps 2000 --batch 16 --ctx 128 --lr 2e-3 --threads 2\n";

static pare_status load_vocab(const char *path, pare_vocab **out) {
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf")) {
        pare_gguf *g;
        pare_status st = gguf_open(path, &g);
        if (st) return st;
        st = vocab_from_gguf(g, out);
        gguf_close(g);
        return st;
    }
    if (n > 5 && !strcmp(path + n - 5, ".json")) return vocab_from_hf_json(path, out);
    return vocab_from_spm_model(path, out);
}

static void fmt_dur(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "--:--"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

/* The first K non-overlapping windows of the held-out text. */
static pare_status valid_loss(train_state *ts, const train_data *v, int B, int T, int K, double *loss) {
    size_t have = (v->n - 1) / (size_t)T;
    if ((size_t)K > have) K = (int)have;
    if (K < 1) return pare_fail(PARE_ERR_ARG, "held-out text: fewer than %d tokens", T + 1);
    int32_t *rows = malloc((size_t)B * (T + 1) * sizeof(int32_t));
    if (!rows) return pare_fail(PARE_ERR_NOMEM, "out of memory");
    double s = 0;
    int done = 0;
    pare_status st = PARE_OK;
    while (done < K && !st) {
        int nb = K - done < B ? K - done : B;
        for (int b = 0; b < nb; b++) memcpy(rows + (size_t)b * (T + 1), v->ids + (size_t)(done + b) * T, (size_t)(T + 1) * sizeof(int32_t));
        double l;
        st = train_eval(ts, rows, nb, &l);
        s += l * nb;
        done += nb;
    }
    free(rows);
    *loss = s / K;
    return st;
}

static pare_status retype(pare_model *m, int type) {
    if (type == PARE_TYPE_F32) return PARE_OK;
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        if (t->n_dims < 2 || t->type != PARE_TYPE_F32) continue;
        int64_t cols = t->ne[0], rows = pare_tensor_nelem(t) / cols;
        size_t rb = pare_row_bytes(type, cols);
        if (!rb) return pare_fail(PARE_ERR_ARG, "tensor %s: %lld columns do not fit %s blocks", t->name, (long long)cols, pare_type_name(type));
        uint8_t *d = pare_malloc(rb * (size_t)rows);
        if (!d) return PARE_ERR_NOMEM;
        for (int64_t r = 0; r < rows; r++) k_quant_row(type, (const float *)t->data + r * cols, d + (size_t)r * rb, cols);
        if (t->owned) free(t->data);
        t->data = d; t->type = type; t->nbytes = rb * (size_t)rows; t->owned = 1;
    }
    return PARE_OK;
}

int cmd_train(int argc, char **argv) {
    static const char *const valued[] = {"--config", "--init", "--data", "--tokenizer", "-o", "--steps", "--batch", "--ctx",
        "--accum", "--lr", "--min-lr-ratio", "--warmup", "--weight-decay", "--beta1", "--beta2", "--clip", "--seed",
        "--train-layers", "--freeze", "--lora", "--lora-rank", "--lora-alpha", "--valid", "--eval-every", "--eval-windows",
        "--log-every", "--checkpoint", "--save-every", "--resume", "--stop-after", "--type", "--threads", NULL};
    static const char *const booleans[] = {"--json", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos) return die("unexpected argument '%s' (see --help)", f.pos[0]);
    const char *config = opt_str(&f, "--config", NULL), *init = opt_str(&f, "--init", NULL);
    const char *data = opt_str(&f, "--data", NULL), *tok = opt_str(&f, "--tokenizer", NULL), *out = opt_str(&f, "-o", NULL);
    const char *valid = opt_str(&f, "--valid", NULL), *ckpt = opt_str(&f, "--checkpoint", NULL);
    const char *resume = opt_str(&f, "--resume", NULL), *tname = opt_str(&f, "--type", "f32");
    const char *layers = opt_str(&f, "--train-layers", NULL);
    long steps = opt_int(&f, "--steps", 1000), B = opt_int(&f, "--batch", 8), T = opt_int(&f, "--ctx", 0);
    long seed = opt_int(&f, "--seed", 1);
    int json = opt_bool(&f, "--json");
    train_opts o;
    train_opts_default(&o);
    o.accum = (int)opt_int(&f, "--accum", 1);
    o.lr = (float)opt_num(&f, "--lr", 1e-3);
    o.min_lr_ratio = (float)opt_num(&f, "--min-lr-ratio", 0.1);
    o.weight_decay = (float)opt_num(&f, "--weight-decay", 0.1);
    o.beta1 = (float)opt_num(&f, "--beta1", 0.9);
    o.beta2 = (float)opt_num(&f, "--beta2", 0.95);
    o.grad_clip = (float)opt_num(&f, "--clip", 1.0);
    o.freeze = opt_str(&f, "--freeze", NULL);
    o.lora = opt_str(&f, "--lora", NULL);
    o.lora_rank = (int)opt_int(&f, "--lora-rank", 8);
    o.lora_alpha = (float)opt_num(&f, "--lora-alpha", 16);
    long warmup = opt_int(&f, "--warmup", -1), eval_every = opt_int(&f, "--eval-every", 0);
    long eval_windows = opt_int(&f, "--eval-windows", 64), log_every = opt_int(&f, "--log-every", 0);
    long save_every = opt_int(&f, "--save-every", 0), threads = opt_int(&f, "--threads", 0);
    long stop_after = opt_int(&f, "--stop-after", 0);
    set_threads(&f);
    if (f.bad) return 1;
    if (threads > 0) openblas_set_num_threads((int)threads);
    if (!!config == !!init) return die("%s", "give either --config SHAPE.json (from scratch) or --init MODEL");
    if (!data) return die("%s", "--data FILE is required");
    if (!out) return die("%s", "-o OUT.gguf is required");
    if (config && !tok) return die("%s", "--tokenizer TOK is required with --config");
    if (steps < 1 || steps > 100000000) return die("%s", "--steps must be between 1 and 100000000");
    if (B < 1 || B > 4096) return die("%s", "--batch must be between 1 and 4096");
    if (T < 0 || T > 65536) return die("%s", "--ctx must be between 1 and 65536");
    if (o.accum < 1 || o.accum > 4096) return die("%s", "--accum must be between 1 and 4096");
    if (!(o.lr > 0) || !(o.lr < 10)) return die("%s", "--lr must be a positive number below 10");
    if (eval_windows < 1) return die("%s", "--eval-windows must be positive");
    if (stop_after < 0 || (stop_after && !ckpt)) return die("%s", "--stop-after N needs N > 0 and --checkpoint FILE");
    int type = pare_type_from_name(tname);
    if (type != PARE_TYPE_F32 && type != PARE_TYPE_F16 && type != PARE_TYPE_BF16 && type != PARE_TYPE_Q8_0)
        return die("unknown --type '%s' (f32, f16, bf16, q8_0)", tname);
    if (layers) {
        int a, b, k = 0;
        if (sscanf(layers, "%d-%d%n", &a, &b, &k) == 2 && !layers[k] && a >= 0 && b >= a) { o.layer_first = a; o.layer_last = b; }
        else if (sscanf(layers, "%d%n", &a, &k) == 1 && !layers[k] && a >= 0) { o.layer_first = o.layer_last = a; }
        else return die("--train-layers '%s': expected A-B (block numbers)", layers);
    }
    o.total_steps = (int)steps;
    o.warmup = warmup >= 0 ? (int)warmup : (int)(steps / 20);
    o.seed = (uint64_t)seed;
    if (o.warmup > steps) return die("%s", "--warmup is longer than --steps");
    if (!log_every) log_every = steps / 50 > 0 ? steps / 50 : 1;
    if (!eval_every) eval_every = steps / 10 > 0 ? steps / 10 : 1;
    if (!save_every) save_every = steps / 10 > 0 ? steps / 10 : 1;

    /* the model */
    pare_model *m = NULL;
    if (config) {
        pare_vocab *v;
        if (load_vocab(tok, &v)) return die_st();
        if (train_model_from_config(config, v, (uint64_t)seed, &m)) { vocab_free(v); return die_st(); }
    } else {
        if (load(&f, init, &m)) return 1;
        if (!m->vocab) { pare_model_free(m); return die("%s", "the model has no tokenizer (give --tokenizer)"); }
    }
    if (!T) T = m->n_ctx_train > 0 && m->n_ctx_train < 256 ? m->n_ctx_train : 256;
    train_data td, vd;
    memset(&vd, 0, sizeof vd);
    double t_tok = pare_now();
    if (train_data_load(m->vocab, data, &td, (uint64_t)seed)) { pare_model_free(m); return die_st(); }
    if (valid && train_data_load(m->vocab, valid, &vd, 0)) { train_data_free(&td); pare_model_free(m); return die_st(); }
    t_tok = pare_now() - t_tok;
    train_state *ts;
    if (train_new(m, &o, (int)B, (int)T, &ts)) { train_data_free(&td); train_data_free(&vd); pare_model_free(m); return die_st(); }
    int rc = 1;
    int32_t *rows = NULL;
    if (resume && train_load(ts, resume, &td.rng, sizeof td.rng)) { die_st(); goto done; }
    const train_opts *so = train_get_opts(ts);
    steps = so->total_steps;
    if (!json) {
        printf("pare train: %s, %lld parameters (%lld trained), %d blocks, width %d, vocabulary %d\n",
               m->name ? m->name : "model", (long long)model_n_params(m), (long long)train_n_trained(ts), m->n_layer,
               m->n_embd, m->n_vocab);
        printf("data: %s, %zu tokens (tokenized in %.1f s)%s%s\n", data, td.n, t_tok, valid ? "; held out: " : "",
               valid ? valid : "");
        printf("steps %ld x %d x %ld x %ld tokens, lr %g (warm-up %d, cosine to x%g), AdamW (%g, %g) wd %g, clip %g, seed %ld%s\n",
               steps, so->accum, B, T, (double)so->lr, so->warmup, (double)so->min_lr_ratio, (double)so->beta1,
               (double)so->beta2, (double)so->weight_decay, (double)so->grad_clip, seed, resume ? " (resumed)" : "");
        fflush(stdout);
    }
    rows = malloc((size_t)so->accum * B * (T + 1) * sizeof(int32_t));
    if (!rows) { die("%s", "out of memory"); goto done; }
    double t0 = pare_now(), t_last = t0, loss_sum = 0, last_loss = NAN, vloss = NAN;
    int64_t start = train_step_count(ts), n_int = 0, tok_int = 0;
    train_info info = {0};
    int64_t end = stop_after && start + stop_after < steps ? start + stop_after : steps;
    for (int64_t s = start; s < end; s++) {
        int fail = 0;
        for (int a = 0; a < so->accum && !fail; a++) fail = train_data_batch(&td, (int)B, (int)T, rows + (size_t)a * B * (T + 1)) != PARE_OK;
        if (fail || train_step(ts, rows, &info)) { die_st(); goto done; }
        loss_sum += info.loss; n_int++; tok_int += (int64_t)so->accum * B * T;
        int64_t done_steps = s + 1;
        if (done_steps % log_every == 0 || done_steps == end) {
            double now = pare_now(), el = now - t0, rate = tok_int / (now - t_last);
            double eta = el / (double)(done_steps - start) * (double)(end - done_steps);
            last_loss = loss_sum / n_int;
            if (json) {
                printf("{\"step\":%lld,\"steps\":%ld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens_per_s\":%.1f,"
                       "\"elapsed_s\":%.2f,\"eta_s\":%.1f}\n", (long long)done_steps, steps, last_loss, info.lr, info.grad_norm,
                       rate, el, eta);
            } else {
                char e1[32], e2[32];
                fmt_dur(e1, sizeof e1, el); fmt_dur(e2, sizeof e2, eta);
                printf("step %6lld/%ld  loss %.4f  lr %.2e  |g| %6.3f  %7.0f tok/s  elapsed %s  ETA %s\n",
                       (long long)done_steps, steps, last_loss, info.lr, info.grad_norm, rate, e1, e2);
            }
            fflush(stdout);
            loss_sum = 0; n_int = 0; tok_int = 0; t_last = pare_now();
        }
        if (valid && (done_steps % eval_every == 0 || done_steps == steps)) {
            double tv = pare_now();
            if (valid_loss(ts, &vd, (int)B, (int)T, (int)eval_windows, &vloss)) { die_st(); goto done; }
            tv = pare_now() - tv;
            size_t nw = (vd.n - 1) / (size_t)T < (size_t)eval_windows ? (vd.n - 1) / (size_t)T : (size_t)eval_windows;
            double frate = tv > 0 ? (double)nw * T / tv : 0;
            if (json)
                printf("{\"step\":%lld,\"valid_loss\":%.6f,\"valid_ppl\":%.4f,\"valid_windows\":%zu,\"forward_tokens_per_s\":%.1f}\n",
                       (long long)done_steps, vloss, exp(vloss), nw, frate);
            else printf("step %6lld  held-out loss %.4f  (perplexity %.2f over %zu windows of %ld; forward %.0f tok/s)\n",
                        (long long)done_steps, vloss, exp(vloss), nw, T, frate);
            fflush(stdout);
            t_last = pare_now();
        }
        if (ckpt && (done_steps % save_every == 0 || done_steps == end)) {
            if (train_save(ts, ckpt, &td.rng, sizeof td.rng)) { die_st(); goto done; }
            t_last = pare_now();
        }
    }
    double secs = pare_now() - t0;
    if (end < steps) {
        if (json) printf("{\"stopped\":true,\"step\":%lld,\"steps\":%ld,\"checkpoint\":", (long long)end, steps);
        else printf("stopped after step %lld of %ld; checkpoint %s (go on with --resume)\n", (long long)end, steps, ckpt);
        if (json) { pare_json_str(stdout, ckpt); printf("}\n"); }
        rc = 0;
        goto done;
    }
    if (train_merge_lora(ts) || retype(m, type)) { die_st(); goto done; }
    if (m->n_ctx_train < T) m->n_ctx_train = (int)T;
    if (pare_model_save(m, out, "gguf")) { die_st(); goto done; }
    if (json) {
        printf("{\"done\":true,\"output\":"); pare_json_str(stdout, out);
        printf(",\"steps\":%ld,\"final_loss\":%.6f", steps, last_loss);
        if (valid) printf(",\"valid_loss\":%.6f,\"valid_ppl\":%.4f", vloss, exp(vloss));
        printf(",\"seconds\":%.2f,\"tokens_per_s\":%.1f}\n", secs,
               secs > 0 ? (double)(steps - start) * so->accum * B * T / secs : 0.0);
    } else {
        printf("wrote %s: %ld steps in %.1f s, final training loss %.4f", out, steps, secs, last_loss);
        if (valid) printf(", held-out loss %.4f (perplexity %.2f)", vloss, exp(vloss));
        printf("\n");
    }
    rc = 0;
done:
    free(rows);
    train_free(ts);
    train_data_free(&td);
    train_data_free(&vd);
    pare_model_free(m);
    return rc;
}

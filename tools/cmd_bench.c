/* cmd_bench.c - `pare bench`: prompt (prefill) and generation (decode) speed of a model on
 * this machine, the bytes of weights a generated token reads, peak memory, and the
 * machine's measured memory read bandwidth, so that decode speed can be read against the
 * roofline (bandwidth / bytes per token). */
#include "cli.h"

#include "model/forward.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const char *bench_HELP =
    "usage: pare bench MODEL [--prompt P] [--gen G] [--reps R] [--threads T] [--json]\n"
    "\n"
    "Speed of MODEL on this machine. Each repetition runs a prompt of P tokens through the\n"
    "model in one batch (prefill; logits of the last token only) and then generates G tokens\n"
    "one at a time with the KV cache (decode, greedy). The best repetition is reported. The\n"
    "token ids are fixed (not text), so every run reads the same weights the same way.\n"
    "\n"
    "  --prompt P     prompt tokens (default 128)\n"
    "  --gen G        generated tokens (default 64)\n"
    "  --reps R       repetitions, the fastest counts (default 3)\n"
    "  --threads T    threads (default: all cores)\n"
    "  --no-bandwidth skip the memory bandwidth measurement (about a second)\n"
    "  --json         one JSON object: prompt_tokens_per_s, gen_tokens_per_s, weight_bytes,\n"
    "                 bytes_per_token, peak_rss_bytes, bandwidth_bytes_per_s, roofline_tokens_per_s\n"
    "\n"
    "bytes_per_token: the bytes of every matrix a decode step reads (all block matrices and\n"
    "the output head; one row of the embedding). roofline_tokens_per_s = bandwidth /\n"
    "bytes_per_token, the bound for a model that does not fit in the caches.\n"
    "\n"
    "example: pare bench model.gguf --threads 2 --json\n";

/* Read bandwidth: sum a 256 MiB buffer with every thread, best of 5 passes. */
static double measure_bandwidth(void) {
    const size_t n = (size_t)256 << 20 >> 3; /* doubles */
    double *a = malloc(n * sizeof(double));
    if (!a) return 0;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (double)(i & 1023);
    double best = 0, sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = pare_now(), s = 0;
        #pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        double dt = pare_now() - t0;
        sink += s;
        if (dt > 0 && (double)(n * sizeof(double)) / dt > best) best = (double)(n * sizeof(double)) / dt;
    }
    free(a);
    return sink == -1 ? 0 : best;
}

static size_t decode_bytes(const pare_model *m) {
    size_t b = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        const pare_tensor *t[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down, L->attn_norm, L->ffn_norm};
        for (size_t k = 0; k < sizeof t / sizeof *t; k++) if (t[k]) b += t[k]->nbytes;
    }
    if (m->output) b += m->output->nbytes;
    if (m->out_norm) b += m->out_norm->nbytes;
    if (m->tok_embd && m->tok_embd->ne[1] > 0) b += m->tok_embd->nbytes / (size_t)m->tok_embd->ne[1];
    return b;
}

int cmd_bench(int argc, char **argv) {
    static const char *const valued[] = {"--prompt", "--gen", "--reps", "--threads", "--tokenizer", NULL};
    static const char *const booleans[] = {"--json", "--no-bandwidth", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    long P = opt_int(&f, "--prompt", 128), G = opt_int(&f, "--gen", 64), R = opt_int(&f, "--reps", 3);
    int json = opt_bool(&f, "--json"), bw = !opt_bool(&f, "--no-bandwidth");
    set_threads(&f);
    if (f.bad) return 1;
    if (P < 1 || P > 65536) return die("%s", "--prompt must be between 1 and 65536");
    if (G < 0 || G > 65536) return die("%s", "--gen must be between 0 and 65536");
    if (R < 1 || R > 1000) return die("%s", "--reps must be between 1 and 1000");
    pare_model *m;
    if (load(&f, f.pos[0], &m)) return 1;
    int V = m->n_vocab, E = m->n_embd, n_ctx = (int)(P + G);
    pare_ctx *c;
    if (pare_ctx_new(m, n_ctx, &c)) { pare_model_free(m); return die_st(); }
    int32_t *tok = malloc((size_t)P * sizeof(int32_t));
    float *x = malloc((size_t)P * E * sizeof(float)), *logits = malloc((size_t)V * sizeof(float));
    if (!tok || !x || !logits) { free(tok); free(x); free(logits); pare_ctx_free(c); pare_model_free(m); return die("%s", "out of memory"); }
    for (long i = 0; i < P; i++) tok[i] = (int32_t)((i * 7919 + 1) % V);
    if (m->vocab && m->vocab->bos >= 0 && m->vocab->bos < V) tok[0] = m->vocab->bos;
    double best_p = 1e300, best_g = 1e300;
    pare_status st = PARE_OK;
    for (long rep = 0; rep < R && !st; rep++) {
        double t0 = pare_now();
        st = forward_embed(c, tok, (int)P, x);
        for (int l = 0; l < m->n_layer && !st; l++) st = block_forward(c, l, x, (int)P, 0);
        if (!st) st = forward_head(c, x + (size_t)(P - 1) * E, 1, logits);
        double tp = pare_now() - t0;
        if (tp < best_p) best_p = tp;
        double t1 = pare_now();
        for (long g = 0; g < G && !st; g++) {
            int32_t next = 0;
            for (int i = 1; i < V; i++) if (logits[i] > logits[next]) next = i;
            st = pare_forward(c, &next, 1, (int)(P + g), logits);
        }
        double tg = pare_now() - t1;
        if (G > 0 && tg < best_g) best_g = tg;
        if (!json) fprintf(stderr, "\rpare bench: repetition %ld/%ld", rep + 1, R);
    }
    if (!json) fprintf(stderr, "\n");
    free(tok); free(x); free(logits); pare_ctx_free(c);
    if (st) { pare_model_free(m); return die_st(); }
    size_t wbytes = 0;
    for (int i = 0; i < m->n_tensors; i++) wbytes += m->tensors[i].nbytes;
    size_t bpt = decode_bytes(m);
    int64_t params = model_n_params(m);
    pare_model_free(m);
    struct rusage ru; /* before the bandwidth buffer */
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss * 1024.0;
    double bandwidth = bw ? measure_bandwidth() : 0;
    double pps = (double)P / best_p, gps = G > 0 ? (double)G / best_g : 0, roof = bandwidth > 0 ? bandwidth / (double)bpt : 0;
    int threads = omp_get_max_threads();
    if (json) {
        printf("{\"model\":");
        pare_json_str(stdout, f.pos[0]);
        printf(",\"params\":%lld,\"threads\":%d,\"prompt\":%ld,\"gen\":%ld,\"reps\":%ld,\"prompt_tokens_per_s\":%.2f,"
               "\"gen_tokens_per_s\":%.2f,\"weight_bytes\":%zu,\"bytes_per_token\":%zu,\"peak_rss_bytes\":%.0f,"
               "\"bandwidth_bytes_per_s\":%.0f,\"roofline_tokens_per_s\":%.2f,\"gen_vs_roofline\":%.4f}\n",
               (long long)params, threads, P, G, R, pps, gps, wbytes, bpt, rss, bandwidth, roof, roof > 0 ? gps / roof : 0);
    } else {
        printf("model      %s (%lld parameters, %.2f MB of tensors), %d threads\n", f.pos[0], (long long)params,
               (double)wbytes / 1e6, threads);
        printf("prompt     %ld tokens: %.1f tokens/s\n", P, pps);
        if (G > 0) printf("generate   %ld tokens: %.1f tokens/s (%.2f MB of weights read per token)\n", G, gps, (double)bpt / 1e6);
        if (bandwidth > 0)
            printf("memory     %.1f GB/s measured read bandwidth: roofline %.1f tokens/s, generation at %.2fx of it\n",
                   bandwidth / 1e9, roof, roof > 0 ? gps / roof : 0);
        printf("peak RSS   %.1f MB\n", rss / 1e6);
    }
    return 0;
}

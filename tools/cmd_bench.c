/* cmd_bench.c - `pare bench`: prompt (prefill) and generation (decode) speed of a model on
 * this machine, the bytes of weights a generated token reads, peak memory, and the
 * machine's measured memory read bandwidth, so that decode speed can be read against the
 * roofline (bandwidth / bytes per token). */
#include "cli.h"

#include "kernels/kernels.h"
#include "model/forward.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const char *bench_HELP =
    "usage: pare bench MODEL [--prompt P] [--gen G] [--reps R] [--threads T] [--sparse S] [--layout L] [--json]\n"
    "\n"
    "Speed of MODEL on this machine. Each repetition runs a prompt of P tokens through the\n"
    "model in one batch (prefill; logits of the last token only) and then generates G tokens\n"
    "one at a time with the KV cache (decode, greedy). The best repetition is reported. The\n"
    "token ids are fixed (not text), so every run reads the same weights the same way.\n"
    "In the same run it measures the machine: memory bandwidth (STREAM triad, and a pure\n"
    "read) and the float FMA peak, and reports decode against the roofline (bandwidth /\n"
    "bytes of weights per token) and prefill against the FMA peak.\n"
    "\n"
    "  --prompt P     prompt tokens (default 128)\n"
    "  --gen G        generated tokens (default 64)\n"
    "  --reps R       repetitions, the fastest counts (default 3)\n"
    "  --threads T    threads (default: all cores)\n"
    SPARSE_HELP
    "  --no-probe     skip measuring bandwidth and FMA peak (about 2 s)\n"
    "  --json         one JSON object: pp_tps, tg_tps, peak_rss_mb, bytes_per_token,\n"
    "                 bandwidth_gbs (triad), read_gbs, roofline_tps, roofline_ratio,\n"
    "                 fma_peak_gflops, pp_gflops, pp_peak_ratio, linear_mb, linear_dense_mb, ...\n"
    "\n"
    "bytes_per_token: the bytes every decode step reads: all block matrices (compressed\n"
    "ones at their compressed size), the norms, the output head and one embedding row.\n"
    "roofline_tps = bandwidth / bytes_per_token, the bound for a model that does not fit in\n"
    "the caches. pp_gflops counts 2 flops per weight of the linear layers and output head per\n"
    "prompt token (attention not counted), so pp_peak_ratio is a lower bound.\n"
    "\n"
    "example: pare bench model.gguf --threads 2 --json\n";

/* Peak RSS since the last reset_peak_rss (Linux: VmHWM, reset through clear_refs, so that
 * the probes' buffers of up to 512 MiB do not count), else the process's ru_maxrss. */
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    const int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static double peak_rss_bytes(int was_reset) {
    if (was_reset) {
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        double kb = -1;
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6)) kb = strtod(line + 6, NULL);
        if (f) fclose(f);
        if (kb >= 0) return kb * 1024.0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

static size_t decode_bytes(const pare_model *m, size_t *linear) {
    size_t b = 0, lin = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        const pare_tensor *t[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down, L->attn_norm, L->ffn_norm};
        for (size_t k = 0; k < sizeof t / sizeof *t; k++) {
            b += model_tensor_bytes(t[k]);
            if (k < 7) lin += model_tensor_bytes(t[k]);
        }
    }
    b += model_tensor_bytes(m->output) + model_tensor_bytes(m->out_norm);
    if (m->tok_embd && m->tok_embd->ne[1] > 0) b += m->tok_embd->nbytes / (size_t)m->tok_embd->ne[1];
    *linear = lin;
    return b;
}

/* weights multiplied per prompt token: block matrices and the output head */
static double linear_params(const pare_model *m) {
    double p = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        const pare_tensor *t[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t k = 0; k < 7; k++) if (t[k]) p += (double)t[k]->ne[0] * (double)t[k]->ne[1];
    }
    return p;
}

int cmd_bench(int argc, char **argv) {
    static const char *const valued[] = {"--prompt", "--gen", "--reps", "--threads", "--tokenizer", "--sparse", "--layout", NULL};
    static const char *const booleans[] = {"--json", "--no-probe", "--no-bandwidth", NULL};
    flags f; parse(&f, argc, argv, valued);
    if (check_unknown(&f, valued, booleans)) return 1;
    if (f.n_pos != 1) return die("%s", "expects one MODEL (see --help)");
    long P = opt_int(&f, "--prompt", 128), G = opt_int(&f, "--gen", 64), R = opt_int(&f, "--reps", 3);
    int json = opt_bool(&f, "--json"), probe = !opt_bool(&f, "--no-probe") && !opt_bool(&f, "--no-bandwidth");
    set_threads(&f);
    if (f.bad) return 1;
    if (P < 1 || P > 65536) return die("%s", "--prompt must be between 1 and 65536");
    if (G < 0 || G > 65536) return die("%s", "--gen must be between 0 and 65536");
    if (R < 1 || R > 1000) return die("%s", "--reps must be between 1 and 1000");
    /* the machine is probed before and after the timed runs and the better figure kept: a
     * shared VM's bandwidth moves from one minute to the next */
    double triad = probe ? k_probe_triad_bw() : 0, rd = probe ? k_probe_read_bw() : 0;
    const int rss_reset = reset_peak_rss();
    pare_model *m;
    pare_nm_summary nm;
    if (load_engine(&f, f.pos[0], &m, &nm)) return 1;
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
    size_t lin, bpt = decode_bytes(m, &lin);
    const double lp = linear_params(m);
    int64_t params = model_n_params(m);
    char wtype[16];
    snprintf(wtype, sizeof wtype, "%s", m->layers[0].w_up ? pare_type_name(m->layers[0].w_up->type) : "?");
    pare_model_free(m);
    const double rss = peak_rss_bytes(rss_reset);
    if (probe) {
        const double t2 = k_probe_triad_bw(), r2 = k_probe_read_bw();
        triad = t2 > triad ? t2 : triad;
        rd = r2 > rd ? r2 : rd;
    }
    const double peak = probe ? k_probe_fma_peak() : 0;
    const double pps = (double)P / best_p, gps = G > 0 ? (double)G / best_g : 0, roof = triad > 0 ? triad / (double)bpt : 0;
    const double ppf = 2.0 * lp * pps;
    const int threads = omp_get_max_threads();
    char sparse[16] = "dense";
    if (nm.packed) snprintf(sparse, sizeof sparse, "%d:%d", nm.n, nm.m);
    if (json) {
        printf("{\"model\":");
        pare_json_str(stdout, f.pos[0]);
        printf(",\"type\":\"%s\",\"sparse\":\"%s\",\"layout\":\"%s\",\"isa\":\"%s\",\"params\":%lld,\"threads\":%d,\"prompt\":%ld,\"gen\":%ld,"
               "\"reps\":%ld,\"pp_tps\":%.3f,\"tg_tps\":%.3f,\"peak_rss_mb\":%.1f,\"bytes_per_token\":%zu,"
               "\"linear_mb\":%.3f,\"linear_dense_mb\":%.3f,\"linear_ratio\":%.4f,\"bandwidth_gbs\":%.2f,\"read_gbs\":%.2f,"
               "\"roofline_tps\":%.3f,\"roofline_ratio\":%.4f,\"read_roofline_ratio\":%.4f,\"fma_peak_gflops\":%.1f,"
               "\"pp_gflops\":%.1f,\"pp_peak_ratio\":%.4f}\n",
               wtype, sparse, opt_str(&f, "--layout", "engine"), k_isa_name(k_isa()), (long long)params, threads, P, G, R, pps, gps, rss / 1e6, bpt,
               (double)lin / 1e6, (double)(nm.matrices ? nm.dense_bytes : lin) / 1e6,
               nm.matrices && nm.dense_bytes ? (double)lin / (double)nm.dense_bytes : 1.0, triad / 1e9, rd / 1e9, roof,
               roof > 0 ? gps / roof : 0, rd > 0 ? gps * (double)bpt / rd : 0, peak / 1e9, ppf / 1e9, peak > 0 ? ppf / peak : 0);
    } else {
        printf("model      %s (%lld parameters, %s, %s), %d threads, %s kernels\n", f.pos[0], (long long)params, wtype,
               sparse, threads, k_isa_name(k_isa()));
        if (nm.packed)
            printf("sparse     %d of %d block matrices compressed: %.1f MB -> %.1f MB (%.1f%%)\n", nm.packed, nm.matrices,
                   (double)nm.dense_bytes / 1e6, (double)lin / 1e6, 100.0 * (double)lin / (double)nm.dense_bytes);
        printf("prompt     %ld tokens: %.1f tokens/s", P, pps);
        if (peak > 0) printf(" (%.1f GFLOP/s in the linear layers, %.2f of the %.1f GFLOP/s FMA peak)", ppf / 1e9, ppf / peak, peak / 1e9);
        printf("\n");
        if (G > 0) printf("generate   %ld tokens: %.2f tokens/s (%.2f MB of weights read per token)\n", G, gps, (double)bpt / 1e6);
        if (triad > 0)
            printf("memory     %.1f GB/s triad, %.1f GB/s read: roofline %.2f tokens/s, generation at %.2f of it (%.2f of read)\n",
                   triad / 1e9, rd / 1e9, roof, roof > 0 ? gps / roof : 0, rd > 0 ? gps * (double)bpt / rd : 0);
        printf("peak RSS   %.1f MB\n", rss / 1e6);
    }
    return 0;
}

/* ppl.c - perplexity of a model on a text file through libpare's public API alone: what a
 * program linking libpare sees. Build against an installed pare:
 *     cc ppl.c $(pkg-config --cflags --libs pare) -o ppl
 * usage: ppl MODEL TEXT [CTX [MAX_WINDOWS]]
 * The text is tokenized once with BOS, cut into windows of CTX tokens (tail dropped), every
 * token but a window's first scored: the papers' protocol of `pare ppl`. */
#include <pare.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            char *nb = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL TEXT [CTX [MAX_WINDOWS]]\n", argv[0]); return 2; }
    int ctx = argc > 3 ? atoi(argv[3]) : 256, maxw = argc > 4 ? atoi(argv[4]) : 0;
    pare_model *m;
    if (pare_model_load(argv[1], NULL, &m)) { fprintf(stderr, "%s\n", pare_last_error()); return 1; }
    size_t len;
    char *text = read_all(argv[2], &len);
    if (!text) { fprintf(stderr, "cannot read %s\n", argv[2]); pare_model_free(m); return 1; }
    int32_t *ids;
    size_t n;
    if (pare_tokenize(pare_model_vocab(m), text, len, 1, &ids, &n)) {
        fprintf(stderr, "%s\n", pare_last_error());
        free(text); pare_model_free(m);
        return 1;
    }
    free(text);
    int V = pare_model_n_vocab(m);
    pare_ctx *c;
    float *logits = malloc((size_t)ctx * V * sizeof(float));
    if (!logits || pare_ctx_new(m, ctx, &c)) { fprintf(stderr, "%s\n", pare_last_error()); return 1; }
    double nll = 0;
    long scored = 0, windows = 0;
    for (size_t w0 = 0; w0 + (size_t)ctx <= n && (maxw <= 0 || windows < maxw); w0 += (size_t)ctx, windows++) {
        if (pare_forward(c, ids + w0, ctx, 0, logits)) { fprintf(stderr, "%s\n", pare_last_error()); return 1; }
        for (int t = 0; t + 1 < ctx; t++) { /* row t predicts token t + 1 */
            const float *l = logits + (size_t)t * V;
            float mx = l[0];
            for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
            double s = 0;
            for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
            nll += mx + log(s) - l[ids[w0 + t + 1]];
            scored++;
        }
    }
    printf("ppl %.4f (%ld windows of %d, %ld scored)\n", scored ? exp(nll / scored) : NAN, windows, ctx, scored);
    free(logits); free(ids);
    pare_ctx_free(c);
    pare_model_free(m);
    return 0;
}

/* fuzz_config.c - a Hugging Face folder's config.json, beside a fixed valid model.safetensors
 * and tokenizer.model (PARE_FUZZ_HF: the folder they are copied from). */
#include "fuzz_util.h"

#include "model/model.h"

static int copy_file(const char *from, const char *name) {
    FILE *f = fopen(from, "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    int bad = !b || fread(b, 1, (size_t)n, f) != (size_t)n;
    fclose(f);
    if (!bad) bad = fuzz_write(name, b, (size_t)n) == NULL;
    free(b);
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *src = getenv("PARE_FUZZ_HF");
    if (!src) { fprintf(stderr, "fuzz_config: set PARE_FUZZ_HF to a small HF model folder\n"); exit(2); }
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    if (copy_file(p, "model.safetensors")) { fprintf(stderr, "fuzz_config: cannot copy %s\n", p); exit(2); }
    snprintf(p, sizeof p, "%s/tokenizer.model", src);
    copy_file(p, "tokenizer.model");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (!fuzz_write("config.json", data, n)) return 0;
    pare_model *m;
    if (model_load_hf(fuzz_dir(), &m)) return 0;
    pare_model_free(m);
    return 0;
}

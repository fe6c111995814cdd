/* fuzz_llama2c.c - llama2.c files: the first byte picks a checkpoint (.bin, with a fixed
 * tokenizer PARE_FUZZ_TOK) or a tokenizer .bin (tokenized with afterwards). */
#include "fuzz_util.h"

#include "model/model.h"
#include "tok/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n < 1) return 0;
    const char *tok = getenv("PARE_FUZZ_TOK");
    if (data[0] & 1) {
        const char *path = fuzz_write("model.bin", data + 1, n - 1);
        pare_model *m;
        if (path && tok && !model_load_llama2c(path, tok, &m)) pare_model_free(m);
        return 0;
    }
    const char *path = fuzz_write("tok.bin", data + 1, n - 1);
    pare_vocab *v;
    if (!path || vocab_from_llama2c(path, 0, &v)) return 0;
    int32_t *ids = NULL;
    size_t k = 0;
    if (!pare_tokenize(v, "Hello world, 123!", 17, 1, &ids, &k)) free(ids);
    vocab_free(v);
    return 0;
}

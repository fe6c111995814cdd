/* fuzz_gguf.c - GGUF: the container, the llama model description and its tokenizer. */
#include "fuzz_util.h"

#include "model/model.h"
#include "tok/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write("m.gguf", data, n);
    pare_model *m;
    if (!path || model_load_gguf(path, &m)) return 0;
    if (m->vocab) {
        int32_t *ids = NULL;
        size_t k = 0;
        if (!pare_tokenize(m->vocab, "Hello world, 123!", 17, 1, &ids, &k)) free(ids);
    }
    pare_model_free(m);
    return 0;
}

/* fuzz_spm.c - a SentencePiece tokenizer.model (protobuf), then a tokenization with it. */
#include "fuzz_util.h"

#include "tok/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write("tokenizer.model", data, n);
    pare_vocab *v;
    if (!path || vocab_from_spm_model(path, &v)) return 0;
    int32_t *ids = NULL;
    size_t k = 0;
    if (!pare_tokenize(v, "Hello world, 123! \xc3\xa9t\xc3\xa9", 23, 1, &ids, &k)) free(ids);
    vocab_free(v);
    return 0;
}

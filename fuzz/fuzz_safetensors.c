/* fuzz_safetensors.c - a safetensors file: header length, JSON header, dtypes, offsets. */
#include "fuzz_util.h"

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write("model.safetensors", data, n);
    pare_st *s;
    if (!path || st_open(path, &s)) return 0;
    volatile uint8_t sink = 0; /* touch the first and last byte of every tensor */
    for (int i = 0; i < s->n_tensors; i++)
        if (s->tensors[i].nbytes) {
            const uint8_t *p = s->tensors[i].data;
            sink ^= p[0] ^ p[s->tensors[i].nbytes - 1];
        }
    (void)sink;
    st_close(s);
    return 0;
}

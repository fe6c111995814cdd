/* gguf.h - GGUF v2/v3 reader (memory-mapped, every count, length and offset checked against
 * the file) and writer (deterministic bytes, temporary file + rename). */
#ifndef PARE_GGUF_H
#define PARE_GGUF_H

#include "../core.h"

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STR = 8, GGUF_ARR = 9, GGUF_U64 = 10, GGUF_I64 = 11,
    GGUF_F64 = 12
};

typedef struct gguf_kv {
    char *key;
    int type;           /* gguf_vtype; GGUF_ARR for arrays */
    int arr_type;       /* element type when type == GGUF_ARR */
    uint64_t n;         /* number of elements (1 for scalars) */
    /* scalars: value in v; strings: str; numeric arrays: data points into the map
     * (little-endian, possibly unaligned: read with memcpy); string arrays: strs (owned) */
    union { uint64_t u; int64_t i; double f; } v;
    char *str;
    const void *data;
    char **strs;
} gguf_kv;

typedef struct gguf_tinfo {
    char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    uint64_t offset;    /* relative to the data section */
    const void *data;   /* into the map */
    size_t nbytes;
} gguf_tinfo;

typedef struct pare_gguf {
    char *path;
    pare_map map;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tinfo *tensors;
    size_t alignment;
    size_t data_offset;
} pare_gguf;

/* Open and validate. Errors name the file and the problem. */
pare_status gguf_open(const char *path, pare_gguf **out);
void gguf_close(pare_gguf *g);

const gguf_kv *gguf_find(const pare_gguf *g, const char *key);
/* Typed getters: return false if absent or of an incompatible type. Integer getters accept
 * any integer type whose value fits. */
bool gguf_get_u32(const pare_gguf *g, const char *key, uint32_t *out);
bool gguf_get_i32(const pare_gguf *g, const char *key, int32_t *out);
bool gguf_get_f32(const pare_gguf *g, const char *key, float *out);
bool gguf_get_bool(const pare_gguf *g, const char *key, bool *out);
const char *gguf_get_str(const pare_gguf *g, const char *key); /* NULL if absent */
/* Numeric array element i converted: false if not a numeric array or out of range. */
bool gguf_arr_f64(const gguf_kv *kv, uint64_t i, double *out);
const gguf_tinfo *gguf_find_tensor(const pare_gguf *g, const char *name);

/* ---- writer ---------------------------------------------------------------------------- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Keys are written in the order they are added (a later add of the same key replaces it). */
void gguf_w_str(gguf_writer *w, const char *key, const char *val);
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t val);
void gguf_w_i32(gguf_writer *w, const char *key, int32_t val);
void gguf_w_f32(gguf_writer *w, const char *key, float val);
void gguf_w_bool(gguf_writer *w, const char *key, bool val);
void gguf_w_arr_str(gguf_writer *w, const char *key, char *const *vals, uint64_t n);
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *vals, uint64_t n);
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *vals, uint64_t n);
void gguf_w_arr_u32(gguf_writer *w, const char *key, const uint32_t *vals, uint64_t n);
/* The data is referenced, not copied: it must live until gguf_writer_save returns. */
void gguf_w_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                   const void *data, size_t nbytes);
/* The same for data in a read-only file mapping: its pages are released once written. */
void gguf_w_tensor_mapped(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                          const void *data, size_t nbytes);
/* GGUF v3, alignment 32, temp file + rename. */
pare_status gguf_writer_save(gguf_writer *w, const char *path);

#endif

/* core.h - what every part of libpare shares: errors, tensor types, tensors, small helpers. */
#ifndef PARE_CORE_H
#define PARE_CORE_H

#include "pare.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------------------- */
/* Set the thread-local message and return st. Use: return pare_fail(PARE_ERR_FORMAT,
 * "%s: tensor '%s' data past end of file", path, name); */
pare_status pare_fail(pare_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- tensor element types (numbers are ggml's, as stored in GGUF) --------------------- */
typedef enum pare_type {
    PARE_TYPE_F32 = 0,
    PARE_TYPE_F16 = 1,
    PARE_TYPE_Q4_0 = 2,
    PARE_TYPE_Q4_1 = 3,
    PARE_TYPE_Q5_0 = 6,
    PARE_TYPE_Q5_1 = 7,
    PARE_TYPE_Q8_0 = 8,
    PARE_TYPE_BF16 = 30,
    PARE_TYPE_COUNT = 40
} pare_type;

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
/* GGUF block layouts (ggml's). 4-bit nibbles: element j of a block in the low nibble of
 * qs[j], element j + 16 in the high nibble. Q5: the fifth bit of element j is bit j of qh
 * (a little-endian uint32, stored as bytes: the struct has no padding). */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;              /* |f16 d|32 x 4bit|: d (q - 8) */
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;           /* |f16 d|f16 m|32 x 4bit|: d q + m */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;    /* d (q - 16) */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1; /* d q + m */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;                   /* |f16 d|32 x int8|: d q */
_Static_assert(sizeof(block_q4_1) == 20 && sizeof(block_q5_0) == 22 && sizeof(block_q5_1) == 24, "GGUF block sizes");

bool pare_type_known(int type);                 /* one pare can read */
const char *pare_type_name(int type);           /* "f32", "q8_0", ... ; "?" if unknown */
int pare_type_from_name(const char *name);      /* -1 if unknown */
int pare_type_block(int type);                  /* elements per block (1 for floats) */
size_t pare_type_block_bytes(int type);         /* bytes per block */
/* bytes of a row of n elements; 0 if n is not a multiple of the block size */
size_t pare_row_bytes(int type, int64_t n);

/* ---- half floats ------------------------------------------------------------------------ */
float pare_f16_to_f32(uint16_t h);
uint16_t pare_f32_to_f16(float f);              /* round to nearest even */
static inline float pare_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } x; x.u = (uint32_t)h << 16; return x.f;
}
uint16_t pare_f32_to_bf16(float f);             /* round to nearest even, NaN kept */

/* ---- tensors ----------------------------------------------------------------------------- */
/* ne[0] is the fastest-varying dimension (ggml order). A weight matrix of a linear layer
 * y = W x has ne[0] = in_features, ne[1] = out_features, rows = output units. */
typedef struct pare_tensor {
    char *name;        /* GGUF naming: token_embd.weight, blk.3.attn_q.weight, ... (owned) */
    int type;          /* pare_type */
    int n_dims;
    int64_t ne[4];
    void *data;        /* into a mapping, or owned when owned != 0 */
    size_t nbytes;
    int owned;
    struct pare_nm *nm; /* N:M-compressed copy the engine computes with (owned), or NULL */
    struct pare_r8 *r8; /* or a Q8_0/Q4_0 copy with eight rows interleaved (kernels/r8.h) */
} pare_tensor;

int64_t pare_tensor_nelem(const pare_tensor *t);
/* Dequantize row r of a 2-D tensor (ne[0] elements) into out. */
void pare_tensor_row_f32(const pare_tensor *t, int64_t r, float *out);

/* ---- memory and files ------------------------------------------------------------------ */
void *pare_malloc(size_t n);            /* NULL + pare_fail(NOMEM) on failure */
void *pare_calloc(size_t n, size_t sz); /* checks n*sz overflow */
char *pare_strdup(const char *s);
bool pare_mul_ok(size_t a, size_t b, size_t *out); /* false on overflow */

/* A read-only memory map of a whole file. */
typedef struct pare_map { void *addr; size_t size; uint64_t dev, ino; } pare_map;
pare_status pare_map_file(const char *path, pare_map *out);
void pare_unmap(pare_map *m);
/* Drop the resident pages wholly inside [p, p + n) of a read-only file mapping (a later read
 * faults them in again from the file): what keeps RSS bounded while a large model streams
 * through. Never for malloc'ed memory (its pages would read back as zeros). */
void pare_release_pages(const void *p, size_t n);
/* Resident set size of this process now, and its peak (Linux VmHWM); 0 where unknown. */
size_t pare_rss_bytes(void);
size_t pare_rss_peak_bytes(void);
/* Memory the system can still give without swapping (Linux MemAvailable); 0 where unknown. */
size_t pare_mem_available_bytes(void);
/* Read a whole (small) file into a NUL-terminated malloc'ed buffer. */
pare_status pare_read_file(const char *path, char **buf, size_t *len);

/* Safe output: open path.tmp.<pid>, write, then pare_commit renames it to path.
 * pare_abort_write removes the temporary file. */
typedef struct pare_out { void *fp; char *tmp; char *path; int failed; } pare_out;
/* Inputs in use: pare_map_file registers a file (and its folder) until pare_unmap, and
 * pare_out_open refuses to replace a registered file; writers of folders (HF) refuse a folder
 * that holds one. */
bool pare_is_input(const char *path);
bool pare_dir_has_input(const char *dir);
/* PARE_OK when every input in use still is the file that was mapped (same device, inode,
 * size and mtime), else an error naming it; pare_out_commit checks it before the rename, so
 * an output computed while an input changed is discarded. */
pare_status pare_inputs_unchanged(void);
pare_status pare_out_open(pare_out *o, const char *path);
pare_status pare_out_write(pare_out *o, const void *p, size_t n);
pare_status pare_out_commit(pare_out *o);
void pare_out_abort(pare_out *o);

/* JSON-safe: append s escaped as a JSON string (with quotes) to f (a FILE*). */
void pare_json_str(void *f, const char *s);

#endif

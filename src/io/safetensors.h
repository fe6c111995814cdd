/* safetensors.h - safetensors reader (memory-mapped; header length, JSON header, dtypes and
 * every data offset checked against the file; sharded folders through
 * model.safetensors.index.json) and writer (deterministic bytes, temporary file + rename).
 *
 * File layout: u64 N (little-endian) | N bytes of JSON header | data.
 * Header: {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [r, c],
 *          "data_offsets": [begin, end]}, ...}, offsets relative to the data. */
#ifndef PARE_SAFETENSORS_H
#define PARE_SAFETENSORS_H

#include "../core.h"

typedef struct st_tensor {
    char *name;
    int type;             /* PARE_TYPE_F32, PARE_TYPE_F16 or PARE_TYPE_BF16 */
    int n_dims;           /* 0 to 4 */
    int64_t shape[4];     /* as stored: row-major, shape[0] varies slowest (PyTorch order) */
    const void *data;     /* into the map of its file */
    size_t nbytes;
    const char *file;     /* path of the file that holds it (owned by the pare_st) */
} st_tensor;

typedef struct pare_st {
    int n_files;
    char **paths;
    pare_map *maps;
    int n_tensors;
    st_tensor *tensors;
} pare_st;

/* One .safetensors file. */
pare_status st_open(const char *path, pare_st **out);
/* A Hugging Face folder: dir/model.safetensors, or else every shard named in
 * dir/model.safetensors.index.json. */
pare_status st_open_dir(const char *dir, pare_st **out);
void st_close(pare_st *s);
const st_tensor *st_find(const pare_st *s, const char *name);
/* "F32", "F16", "BF16" (NULL for other types) */
const char *st_dtype_name(int type);

/* ---- writer: tensors are sorted by (element size descending, name), as the safetensors
 * Python library does, the header is padded with spaces to a multiple of 8 bytes and
 * carries __metadata__ {"format":"pt"}. Data is referenced, not copied. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
void st_writer_free(st_writer *w);
/* shape in PyTorch order (shape[0] slowest); type F32, F16 or BF16 */
pare_status st_w_tensor(st_writer *w, const char *name, int type, int n_dims, const int64_t *shape,
                        const void *data, size_t nbytes);
pare_status st_writer_save(st_writer *w, const char *path);

#endif

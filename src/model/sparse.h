/* sparse.h - compress a model's N:M-sparse block matrices for the engine. */
#ifndef PARE_SPARSE_H
#define PARE_SPARSE_H

#include "model.h"

typedef struct pare_nm_summary {
    int matrices, packed;          /* block matrices, and how many are now compressed */
    size_t dense_bytes;            /* their bytes as stored */
    size_t packed_bytes;           /* their resident bytes now (compressed or not) */
    int n, m;                      /* the least sparse pattern among the compressed ones */
} pare_nm_summary;

/* Compress every block matrix (q, k, v, o, gate, up, down) that is exactly N:M sparse, in
 * the column order E-Sparse recorded (perm_*) where it did: the most compact pattern over
 * M = 4, 8, 16 keeping at most 3/4 of the weights (k_nm_detect). want = 0 keeps the values
 * in the tensor's own type (F32, F16, BF16, Q8_0; others stay dense); PARE_TYPE_Q8_0 stores
 * 8-bit values. The dense pages of mapped tensors are released; t->data stays readable (from
 * the file). Matrices already compressed are kept. sum may be NULL. */
pare_status model_pack_nm(pare_model *m, int want, pare_nm_summary *sum);
/* Move the block matrices and the output head that are mapped from the file and not N:M-
 * compressed into memory laid out for the engine's matvec (k_alloc_weights: 2 MiB huge
 * pages where Linux gives them; on 4 KiB file pages each page costs a TLB miss and stops the
 * hardware prefetcher: F16 decode measured 1.23x faster on Zen 3): Q8_0 and Q4_0 in the
 * eight-row interleaved layout of kernels/r8.h where the bound ISA computes faster from it
 * (k_r8_wanted: AVX2; never a head tied to the embedding table), the others copied as they
 * are (t->data then points at the copy, owned). The file pages are released (t->data of an
 * interleaved tensor stays readable from the file). Nothing moves when the tensors would not
 * fit in 90% of the memory available: the page cache can drop file pages, not copies. */
typedef struct pare_engine_summary {
    int interleaved, copied; /* tensors */
    size_t bytes;            /* their bytes in the file */
} pare_engine_summary;
pare_status model_pack_engine(pare_model *m, pare_engine_summary *sum);
/* the bytes a tensor occupies for the engine: its compressed form, else its data */
size_t model_tensor_bytes(const pare_tensor *t);

#endif

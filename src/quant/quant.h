/* quant.h - weight quantization (METHODS.md 4, 5): round-to-nearest grids and GPTQ.
 *
 * A grid (quant_spec) quantizes each row of a matrix in groups of consecutive columns; a
 * group has a scale (stored as f16) and, for the asymmetric grids, a zero point or minimum.
 * Two families:
 *
 *   GGUF blocks (groups of 32, written as that GGUF type; bytes equal llama.cpp's
 *   quantize_row_*_ref, see src/kernels/ref.c):
 *     q8_0  d = amax/127,            code = round(x/d) in [-127, 127] (half away), x^ = d code
 *     q4_0  d = max/-8 (max = the signed value of largest magnitude: it maps to code 0 exactly),
 *           code = trunc(x/d + 8.5) in [0, 15],  x^ = d (code - 8)
 *     q5_0  as q4_0 with -16, 16.5, [0, 31]
 *     q4_1  d = (max - min)/15, m = min, code = trunc((x - min)/d + 0.5) in [0, 15], x^ = d code + m
 *     q5_1  as q4_1 with 31
 *   bits per weight: 8.5, 4.5, 5.5, 5.0, 6.0.
 *
 *   generic b-bit grids (b = 2..8; groups of g columns, or a whole row; the fake-quantized
 *   values x^ are written as F32/F16, the nominal storage is reported):
 *     sym   d = amax / (2^(b-1) - 1), code = round(x/d) in [-(2^(b-1)-1), 2^(b-1)-1], x^ = d code
 *           (a restricted range: 2^b - 1 levels; int8-g32 is Q8_0's grid, Edge-LLM's SymQuantizer)
 *     asym  GPTQ's quantizer (METHODS.md 4): lo = min(0, min), hi = max(0, max) (both 0: -1, 1),
 *           s = (hi - lo)/(2^b - 1), z = round(-lo/s), code = clamp(round(x/s) + z, 0, 2^b - 1),
 *           x^ = s (code - z)  (0 is always exact)
 *     rounding half to even (METHODS.md 0.6); bits per weight b + 16/g (+ 16/g for the zero
 *     point, as a 16-bit number; per row: g = the row length).
 *   How they relate: int8-g32 = q8_0 (up to ties: half to even vs half away); int4-g32 has
 *   q4_0's 4.5 bits but 15 levels where q4_0 has 16 (q4_0 puts the largest-magnitude weight on
 *   the extra level -8, so its grid depends on that weight's sign); int4-g32-asym has q4_1's
 *   5.0 bits, but q4_1 stores the minimum itself (range [min, max], 0 not necessarily on the
 *   grid) where the generic grid stores an integer zero point (range includes 0); int5-g32
 *   has q5_0's 5.5 bits, likewise with one level fewer.
 *
 * Codes are chosen with the float scale and its float inverse (x * (1/d), as ggml does);
 * values use the scale as stored (f16), so x^ is exactly what a reader dequantizes. */
#ifndef PARE_QUANT_H
#define PARE_QUANT_H

#include "calib/calib.h"

typedef struct quant_spec {
    int type;    /* PARE_TYPE_Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, or -1: a generic grid */
    int bits;    /* 2..8 */
    int group;   /* columns per group; 0: one group per row */
    int asym;    /* generic: zero point */
} quant_spec;

/* "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", or "intB[-gG][-sym|-asym]" (B in 2..8, G in 8..4096,
 * default: per row, symmetric), e.g. int3-g128, int4-g64-asym. PARE_ERR_ARG with a message
 * naming s if it is none of them. */
pare_status quant_spec_parse(const char *s, quant_spec *out);
/* the canonical name of the spec ("q4_0", "int4-g64-asym", "int3") */
void quant_spec_name(const quant_spec *q, char *buf, size_t n);
/* storage bits per weight of a row of cols weights (generic per-row groups: 16/cols) */
double quant_bits_per_weight(const quant_spec *q, int64_t cols);
/* PARE_OK when the spec can quantize rows of cols weights (GGUF blocks: cols % 32 == 0) */
pare_status quant_check_cols(const quant_spec *q, int64_t cols, const char *name);

/* One group's grid: values are ds * code + ms (q4_1, q5_1) or ds * (code - zero), in float,
 * as the dequantizers compute them (so even the sign of a zero matches). */
typedef struct quant_group {
    float id;         /* 1 / the float scale (0 when the scale is 0) */
    float base;       /* q4_1/q5_1: the float minimum subtracted before scaling */
    float ds, ms;     /* the scale and minimum as stored (f16 values) */
    uint16_t d16, m16;
    int zero;         /* code offset: q4_0 8, q5_0 16, asym z, else 0 */
    int affine;       /* q4_1, q5_1: values ds * code + ms */
    int lo, hi;       /* code range */
} quant_group;

/* The grid of one group of n weights x (n <= the spec's group; a row for per-row specs). */
void quant_fit(const quant_spec *q, const float *x, int64_t n, quant_group *g);
/* Code of x on g (clamped to [lo, hi]) and the value of a code. */
int quant_code(const quant_spec *q, const quant_group *g, float x);
static inline float quant_value(const quant_group *g, int code) {
    return g->affine ? g->ds * (float)code + g->ms : g->ds * (float)(code - g->zero);
}
/* Pack one row of codes with their groups (cols / 32 of them) into GGUF blocks of q->type. */
void quant_pack_row(const quant_spec *q, const quant_group *g, const int16_t *codes, int64_t cols, void *dst);

/* Round to nearest, one row: x (cols weights) -> x^ in place (fake quantization) and, for a
 * GGUF type when packed != NULL, the row's blocks (pare_row_bytes(q->type, cols) bytes:
 * byte-identical to k_quant_row). */
void quant_rtn_row(const quant_spec *q, float *x, int64_t cols, void *packed);

/* ---- GPTQ (gptq.c, METHODS.md 5) ----------------------------------------------------------- */
typedef struct gptq_opts {
    float percdamp;      /* 0.01 */
    int blocksize;       /* lazy-update width B (128; rounded to a multiple of the group) */
    int act_order;       /* columns by descending diag(H); groups then static */
    int static_groups;   /* group grids from the original W (before any update) */
} gptq_opts;
void gptq_opts_default(gptq_opts *o);

/* GPTQ on W (rows x cols, F32, row-major) with the Gram matrix G = sum x x^T (cols x cols)
 * of ntok tokens: W becomes the quantized values x^; for a GGUF type, packed (rows *
 * pare_row_bytes bytes, or NULL) receives the blocks. Group grids are fitted when the sweep
 * reaches a group's first column, on the current (already updated) weights of the group
 * (or once from the original W: static groups, act-order, per-row grids). */
pare_status gptq_quantize(float *W, int64_t rows, int64_t cols, const double *G, int64_t ntok, const quant_spec *q,
                          const gptq_opts *o, void *packed);

/* ---- the model (qdriver.c) ------------------------------------------------------------------ */
enum { QUANT_RTN = 0, QUANT_GPTQ = 1 };

typedef struct quant_opts {
    quant_spec spec;
    int method;          /* QUANT_RTN or QUANT_GPTQ (needs calibration data) */
    gptq_opts gptq;
    int head;            /* also output.weight (RTN; the embeddings never) */
    /* per block grids (n_layer entries) instead of spec for the block matrices, or NULL; a
     * generic grid (type -1) with bits 16 stores the block as F16 unrounded (LUC, luc.c) */
    const quant_spec *layer_spec;
} quant_opts;

typedef struct quant_report {
    int n;               /* tensors quantized */
    int64_t numel;       /* their weights */
    double bits;         /* their nominal storage, bits */
    int64_t bytes_other; /* bytes of every other tensor as stored */
    double seconds;
    int stored_type;     /* the type the quantized tensors are written in */
    int head;            /* output.weight was quantized */
} quant_report;

/* Quantize the seven matrices of every block (and the head if o->head) in place, block by
 * block (METHODS.md 0.2: for GPTQ each block's statistics come from the inputs produced by
 * the already-quantized blocks below). GGUF specs change the tensors' type; generic specs
 * keep F32 tensors F32 and store the others as F16. cd may be NULL for RTN. */
pare_status quant_model(pare_model *m, const calib_data *cd, const quant_opts *o, int show_progress, quant_report *rep);

#endif

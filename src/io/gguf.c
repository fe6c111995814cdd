/* gguf.c - GGUF v2/v3 reader and writer.
 *
 * File layout (little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x (string key | u32 type | value)          string = u64 len + bytes
 *   n_tensors x (string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset)
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 * Every count, length and offset read from the file is checked against the bytes that
 * remain before it is used; nothing is trusted. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" */
#define GGUF_DEFAULT_ALIGN 32

/* ---- reader ------------------------------------------------------------------------- */
typedef struct rd { const uint8_t *p; size_t n, off; const char *path; const char *what; } rd;

static pare_status rd_short(rd *r, size_t need) {
    return pare_fail(PARE_ERR_FORMAT, "%s: truncated while reading %s (need %zu bytes at offset %zu, file has %zu)",
                     r->path, r->what, need, r->off, r->n);
}
static pare_status rd_bytes(rd *r, void *dst, size_t k) {
    if (r->n - r->off < k) return rd_short(r, k);
    memcpy(dst, r->p + r->off, k);
    r->off += k;
    return PARE_OK;
}
#define RD(r, x) rd_bytes((r), &(x), sizeof(x))

static pare_status rd_str(rd *r, char **out) {
    uint64_t len;
    pare_status st = RD(r, len);
    if (st) return st;
    if (len > r->n - r->off) return rd_short(r, len > SIZE_MAX ? SIZE_MAX : (size_t)len);
    char *s = pare_malloc((size_t)len + 1);
    if (!s) return PARE_ERR_NOMEM;
    memcpy(s, r->p + r->off, (size_t)len);
    s[len] = 0;
    r->off += (size_t)len;
    *out = s;
    return PARE_OK;
}

static size_t vtype_size(int t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static double num_at(int t, const void *p) {
    switch (t) {
    case GGUF_U8: case GGUF_BOOL: { uint8_t v; memcpy(&v, p, 1); return v; }
    case GGUF_I8: { int8_t v; memcpy(&v, p, 1); return v; }
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_F32: { float v; memcpy(&v, p, 4); return v; }
    case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case GGUF_F64: { double v; memcpy(&v, p, 8); return v; }
    default: return 0;
    }
}

static pare_status rd_value(rd *r, gguf_kv *kv) {
    pare_status st;
    if (kv->type == GGUF_STR) return rd_str(r, &kv->str);
    if (kv->type == GGUF_ARR) {
        uint32_t at; uint64_t n;
        if ((st = RD(r, at)) || (st = RD(r, n))) return st;
        kv->arr_type = (int)at; kv->n = n;
        if (at == GGUF_STR) {
            /* each string needs at least 8 bytes: bound n before allocating */
            if (n > (r->n - r->off) / 8)
                return pare_fail(PARE_ERR_FORMAT, "%s: truncated in key '%s': an array of %llu strings cannot fit in the %zu bytes left",
                                 r->path, kv->key, (unsigned long long)n, r->n - r->off);
            kv->strs = pare_calloc((size_t)n, sizeof(char *));
            if (!kv->strs) return PARE_ERR_NOMEM;
            for (uint64_t i = 0; i < n; i++)
                if ((st = rd_str(r, &kv->strs[i]))) return st;
            return PARE_OK;
        }
        size_t es = vtype_size((int)at);
        if (!es) return pare_fail(PARE_ERR_FORMAT, "%s: key '%s': unknown array element type %u", r->path, kv->key, at);
        if (n > (r->n - r->off) / es)
            return pare_fail(PARE_ERR_FORMAT, "%s: truncated in key '%s': an array of %llu x %zu bytes runs past the end (%zu bytes left)",
                             r->path, kv->key, (unsigned long long)n, es, r->n - r->off);
        kv->data = r->p + r->off;
        r->off += (size_t)n * es;
        return PARE_OK;
    }
    size_t es = vtype_size(kv->type);
    if (!es) return pare_fail(PARE_ERR_FORMAT, "%s: key '%s': unknown value type %d", r->path, kv->key, kv->type);
    if (r->n - r->off < es) return rd_short(r, es);
    const void *p = r->p + r->off;
    r->off += es;
    kv->n = 1;
    switch (kv->type) {
    case GGUF_F32: case GGUF_F64: kv->v.f = num_at(kv->type, p); break;
    case GGUF_I8: case GGUF_I16: case GGUF_I32: kv->v.i = (int64_t)num_at(kv->type, p); break;
    case GGUF_I64: memcpy(&kv->v.i, p, 8); break;
    case GGUF_U64: memcpy(&kv->v.u, p, 8); break;
    default: kv->v.u = (uint64_t)num_at(kv->type, p); break;
    }
    return PARE_OK;
}

void gguf_close(pare_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        free(kv->key); free(kv->str);
        if (kv->strs) for (uint64_t j = 0; j < kv->n; j++) free(kv->strs[j]);
        free(kv->strs);
    }
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv); free(g->tensors); free(g->path);
    pare_unmap(&g->map);
    free(g);
}

pare_status gguf_open(const char *path, pare_gguf **out) {
    *out = NULL;
    pare_gguf *g = pare_calloc(1, sizeof *g);
    if (!g) return PARE_ERR_NOMEM;
    pare_status st = pare_map_file(path, &g->map);
    if (st) { free(g); return st; }
    g->path = pare_strdup(path);
    rd r = {.p = g->map.addr, .n = g->map.size, .path = path, .what = "header"};
    uint32_t magic = 0;
    if ((st = RD(&r, magic))) goto fail;
    if (magic != GGUF_MAGIC) { st = pare_fail(PARE_ERR_FORMAT, "%s: not a GGUF file (bad magic 0x%08x)", path, magic); goto fail; }
    if ((st = RD(&r, g->version))) goto fail;
    if (g->version != 2 && g->version != 3) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: GGUF version %u not supported (2 and 3 are)", path, g->version);
        goto fail;
    }
    uint64_t nt, nkv;
    if ((st = RD(&r, nt)) || (st = RD(&r, nkv))) goto fail;
    /* a KV needs >= 8+0+4+1 bytes, a tensor info >= 8+4+8+4+8: bound the counts by the file */
    if (nkv > r.n / 13 || nt > r.n / 32) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: header claims %llu keys and %llu tensors, more than the file can hold",
                       path, (unsigned long long)nkv, (unsigned long long)nt);
        goto fail;
    }
    g->kv = pare_calloc((size_t)nkv ? (size_t)nkv : 1, sizeof *g->kv);
    g->tensors = pare_calloc((size_t)nt ? (size_t)nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) { st = PARE_ERR_NOMEM; goto fail; }
    g->alignment = GGUF_DEFAULT_ALIGN;
    for (uint64_t i = 0; i < nkv; i++) {
        gguf_kv *kv = &g->kv[i];
        g->n_kv = i + 1;
        r.what = "key/value pairs";
        uint32_t t;
        if ((st = rd_str(&r, &kv->key)) || (st = RD(&r, t))) goto fail;
        kv->type = (int)t;
        if ((st = rd_value(&r, kv))) goto fail;
        if (!strcmp(kv->key, "general.alignment")) {
            if (kv->type != GGUF_U32 || kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) || kv->v.u > (1u << 20)) {
                st = pare_fail(PARE_ERR_FORMAT, "%s: general.alignment must be a power of two u32", path);
                goto fail;
            }
            g->alignment = (size_t)kv->v.u;
        }
    }
    for (uint64_t i = 0; i < nt; i++) {
        gguf_tinfo *ti = &g->tensors[i];
        g->n_tensors = i + 1;
        r.what = "tensor infos";
        uint32_t nd, type;
        if ((st = rd_str(&r, &ti->name)) || (st = RD(&r, nd))) goto fail;
        if (nd < 1 || nd > 4) { st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1 to 4 allowed)", path, ti->name, nd); goto fail; }
        ti->n_dims = (int)nd;
        ti->ne[0] = ti->ne[1] = ti->ne[2] = ti->ne[3] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if ((st = RD(&r, v))) goto fail;
            if (v > (uint64_t)INT64_MAX / 2) { st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' dimension %u is absurd (%llu)", path, ti->name, d, (unsigned long long)v); goto fail; }
            ti->ne[d] = (int64_t)v;
        }
        if ((st = RD(&r, type)) || (st = RD(&r, ti->offset))) goto fail;
        ti->type = (int)type;
    }
    /* data section */
    size_t a = g->alignment;
    size_t doff = (r.off + a - 1) / a * a;
    if (nt && doff > r.n) { st = pare_fail(PARE_ERR_FORMAT, "%s: truncated before the tensor data section", path); goto fail; }
    g->data_offset = doff;
    size_t data_size = r.n > doff ? r.n - doff : 0;
    for (uint64_t i = 0; i < nt; i++) {
        gguf_tinfo *ti = &g->tensors[i];
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->tensors[j].name, ti->name)) { st = pare_fail(PARE_ERR_FORMAT, "%s: duplicate tensor name '%s'", path, ti->name); goto fail; }
        if (!pare_type_known(ti->type)) {
            st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: tensor '%s' has type %d, which pare does not read", path, ti->name, ti->type);
            goto fail;
        }
        if (ti->ne[0] % pare_type_block(ti->type)) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s': row of %lld elements is not a multiple of the %s block size",
                           path, ti->name, (long long)ti->ne[0], pare_type_name(ti->type));
            goto fail;
        }
        size_t nb = pare_row_bytes(ti->type, ti->ne[0]), t;
        for (int d = 1; d < 4; d++)
            if (!pare_mul_ok(nb, (size_t)ti->ne[d], &t)) { nb = SIZE_MAX; break; } else nb = t;
        if (ti->offset % a) { st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' offset %llu is not aligned to %zu", path, ti->name, (unsigned long long)ti->offset, a); goto fail; }
        if (ti->offset > data_size || nb > data_size - ti->offset) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' data (offset %llu, %zu bytes) runs past the end of the file",
                           path, ti->name, (unsigned long long)ti->offset, nb);
            goto fail;
        }
        ti->nbytes = nb;
        ti->data = (const uint8_t *)g->map.addr + doff + ti->offset;
    }
    *out = g;
    return PARE_OK;
fail:
    gguf_close(g);
    return st;
}

const gguf_kv *gguf_find(const pare_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

static bool is_int(int t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 || t == GGUF_I32 ||
           t == GGUF_U64 || t == GGUF_I64;
}
static bool kv_signed(const gguf_kv *kv) { return kv->type == GGUF_I8 || kv->type == GGUF_I16 || kv->type == GGUF_I32 || kv->type == GGUF_I64; }

bool gguf_get_u32(const pare_gguf *g, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || !is_int(kv->type)) return false;
    if (kv_signed(kv) ? (kv->v.i < 0 || kv->v.i > (int64_t)UINT32_MAX) : kv->v.u > UINT32_MAX) return false;
    *out = kv_signed(kv) ? (uint32_t)kv->v.i : (uint32_t)kv->v.u;
    return true;
}
bool gguf_get_i32(const pare_gguf *g, const char *key, int32_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || !is_int(kv->type)) return false;
    if (kv_signed(kv) ? (kv->v.i < INT32_MIN || kv->v.i > INT32_MAX) : kv->v.u > INT32_MAX) return false;
    *out = kv_signed(kv) ? (int32_t)kv->v.i : (int32_t)kv->v.u;
    return true;
}
bool gguf_get_f32(const pare_gguf *g, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return false;
    if (kv->type == GGUF_F32 || kv->type == GGUF_F64) { *out = (float)kv->v.f; return true; }
    if (is_int(kv->type)) { *out = kv_signed(kv) ? (float)kv->v.i : (float)kv->v.u; return true; }
    return false;
}
bool gguf_get_bool(const pare_gguf *g, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || (kv->type != GGUF_BOOL && !is_int(kv->type))) return false;
    *out = kv->v.u != 0;
    return true;
}
const char *gguf_get_str(const pare_gguf *g, const char *key) {
    const gguf_kv *kv = gguf_find(g, key);
    return kv && kv->type == GGUF_STR ? kv->str : NULL;
}
bool gguf_arr_f64(const gguf_kv *kv, uint64_t i, double *out) {
    if (!kv || kv->type != GGUF_ARR || i >= kv->n) return false;
    size_t es = vtype_size(kv->arr_type);
    if (!es || !kv->data) return false;
    *out = num_at(kv->arr_type, (const uint8_t *)kv->data + i * es);
    return true;
}
const gguf_tinfo *gguf_find_tensor(const pare_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------------------- */
typedef struct wkv {
    char *key;
    int type, arr_type;
    uint64_t n;
    uint64_t u;          /* scalar bits */
    char *str;
    char **strs;
    void *arr;           /* numeric array copy */
} wkv;
typedef struct wt { char *name; int type, n_dims; int64_t ne[4]; const void *data; size_t nbytes; int mapped; } wt;
struct gguf_writer { wkv *kv; size_t n_kv, cap_kv; wt *t; size_t n_t, cap_t; int oom; };

gguf_writer *gguf_writer_new(void) { return pare_calloc(1, sizeof(gguf_writer)); }

static void wkv_clear(wkv *k) {
    free(k->key); free(k->str); free(k->arr);
    if (k->strs) for (uint64_t i = 0; i < k->n; i++) free(k->strs[i]);
    free(k->strs);
    memset(k, 0, sizeof *k);
}
void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) wkv_clear(&w->kv[i]);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv); free(w->t); free(w);
}

static wkv *w_slot(gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) { char *k = w->kv[i].key; w->kv[i].key = NULL; wkv_clear(&w->kv[i]); w->kv[i].key = k; return &w->kv[i]; }
    if (w->n_kv == w->cap_kv) {
        size_t nc = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *nk = realloc(w->kv, nc * sizeof *nk);
        if (!nk) { w->oom = 1; return NULL; }
        w->kv = nk; w->cap_kv = nc;
    }
    wkv *k = &w->kv[w->n_kv++];
    memset(k, 0, sizeof *k);
    k->key = strdup(key);
    if (!k->key) { w->oom = 1; w->n_kv--; return NULL; }
    return k;
}
static void w_scalar(gguf_writer *w, const char *key, int type, const void *v, size_t sz) {
    wkv *k = w_slot(w, key);
    if (!k) return;
    k->type = type; k->n = 1; memcpy(&k->u, v, sz);
}
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) { w_scalar(w, key, GGUF_U32, &v, 4); }
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v) { w_scalar(w, key, GGUF_I32, &v, 4); }
void gguf_w_f32(gguf_writer *w, const char *key, float v) { w_scalar(w, key, GGUF_F32, &v, 4); }
void gguf_w_bool(gguf_writer *w, const char *key, bool v) { uint8_t b = v; w_scalar(w, key, GGUF_BOOL, &b, 1); }
void gguf_w_str(gguf_writer *w, const char *key, const char *v) {
    wkv *k = w_slot(w, key);
    if (!k) return;
    k->type = GGUF_STR; k->n = 1; k->str = strdup(v);
    if (!k->str) w->oom = 1;
}
void gguf_w_arr_str(gguf_writer *w, const char *key, char *const *vals, uint64_t n) {
    wkv *k = w_slot(w, key);
    if (!k) return;
    k->type = GGUF_ARR; k->arr_type = GGUF_STR;
    k->strs = calloc(n ? n : 1, sizeof(char *));
    if (!k->strs) { w->oom = 1; return; }
    k->n = n;
    for (uint64_t i = 0; i < n; i++)
        if (!(k->strs[i] = strdup(vals[i] ? vals[i] : ""))) w->oom = 1;
}
static void w_arr(gguf_writer *w, const char *key, int at, const void *vals, uint64_t n, size_t es) {
    wkv *k = w_slot(w, key);
    if (!k) return;
    k->type = GGUF_ARR; k->arr_type = at; k->n = n;
    k->arr = malloc(n > 0 ? n * es : 1);
    if (!k->arr) { w->oom = 1; k->n = 0; return; }
    if (n) memcpy(k->arr, vals, n * es);
}
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) { w_arr(w, key, GGUF_F32, v, n, 4); }
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) { w_arr(w, key, GGUF_I32, v, n, 4); }
void gguf_w_arr_u32(gguf_writer *w, const char *key, const uint32_t *v, uint64_t n) { w_arr(w, key, GGUF_U32, v, n, 4); }

void gguf_w_tensor_mapped(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data,
                          size_t nbytes) {
    gguf_w_tensor(w, name, type, n_dims, ne, data, nbytes);
    if (w->n_t && w->t[w->n_t - 1].data == data) w->t[w->n_t - 1].mapped = 1;
}

void gguf_w_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data, size_t nbytes) {
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? w->cap_t * 2 : 64;
        wt *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) { w->oom = 1; return; }
        w->t = nt; w->cap_t = nc;
    }
    wt *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) { w->oom = 1; w->n_t--; return; }
    t->type = type; t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data; t->nbytes = nbytes;
}

static void o_u32(pare_out *o, uint32_t v) { pare_out_write(o, &v, 4); }
static void o_u64(pare_out *o, uint64_t v) { pare_out_write(o, &v, 8); }
static void o_str(pare_out *o, const char *s) { uint64_t n = strlen(s); o_u64(o, n); pare_out_write(o, s, n); }

pare_status gguf_writer_save(gguf_writer *w, const char *path) {
    if (w->oom) return pare_fail(PARE_ERR_NOMEM, "%s: out of memory preparing GGUF", path);
    pare_out o;
    pare_status st = pare_out_open(&o, path);
    if (st) return st;
    const size_t align = GGUF_DEFAULT_ALIGN;
    o_u32(&o, GGUF_MAGIC); o_u32(&o, 3); o_u64(&o, w->n_t); o_u64(&o, w->n_kv);
    size_t pos = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        wkv *k = &w->kv[i];
        o_str(&o, k->key); o_u32(&o, (uint32_t)k->type);
        pos += 8 + strlen(k->key) + 4;
        if (k->type == GGUF_STR) { o_str(&o, k->str); pos += 8 + strlen(k->str); }
        else if (k->type == GGUF_ARR) {
            o_u32(&o, (uint32_t)k->arr_type); o_u64(&o, k->n); pos += 12;
            if (k->arr_type == GGUF_STR)
                for (uint64_t j = 0; j < k->n; j++) { o_str(&o, k->strs[j]); pos += 8 + strlen(k->strs[j]); }
            else { size_t b = k->n * vtype_size(k->arr_type); pare_out_write(&o, k->arr, b); pos += b; }
        } else { size_t b = vtype_size(k->type); pare_out_write(&o, &k->u, b); pos += b; }
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wt *t = &w->t[i];
        o_str(&o, t->name); o_u32(&o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) o_u64(&o, (uint64_t)t->ne[d]);
        o_u32(&o, (uint32_t)t->type); o_u64(&o, off);
        pos += 8 + strlen(t->name) + 4 + 8 * (size_t)t->n_dims + 12;
        off += (t->nbytes + align - 1) / align * align;
    }
    static const uint8_t zeros[64];
    size_t pad = (align - pos % align) % align;
    pare_out_write(&o, zeros, pad);
    for (size_t i = 0; i < w->n_t; i++) {
        pare_out_write(&o, w->t[i].data, w->t[i].nbytes);
        pare_out_write(&o, zeros, (align - w->t[i].nbytes % align) % align);
        if (w->t[i].mapped) pare_release_pages(w->t[i].data, w->t[i].nbytes); /* RSS stays one tensor */
    }
    return pare_out_commit(&o);
}

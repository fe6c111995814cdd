/* safetensors.c - safetensors reader and writer (see safetensors.h). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* the limit the safetensors library enforces */
#define ST_MAX_FILES 4096

/* ---- dtypes ---------------------------------------------------------------------------- */
static int dtype_from_name(const char *s, size_t *elsize) {
    if (!strcmp(s, "F32")) { *elsize = 4; return PARE_TYPE_F32; }
    if (!strcmp(s, "F16")) { *elsize = 2; return PARE_TYPE_F16; }
    if (!strcmp(s, "BF16")) { *elsize = 2; return PARE_TYPE_BF16; }
    return -1;
}
static bool dtype_is_other_known(const char *s) {
    static const char *const other[] = {"F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64",
                                        "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        if (!strcmp(s, other[i])) return true;
    return false;
}
const char *st_dtype_name(int type) {
    switch (type) {
    case PARE_TYPE_F32: return "F32";
    case PARE_TYPE_F16: return "F16";
    case PARE_TYPE_BF16: return "BF16";
    default: return NULL;
    }
}
static size_t dtype_size(int type) { return type == PARE_TYPE_F32 ? 4 : 2; }

/* ---- reader ---------------------------------------------------------------------------- */
void st_close(pare_st *s) {
    if (!s) return;
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    free(s->tensors);
    for (int i = 0; i < s->n_files; i++) { pare_unmap(&s->maps[i]); free(s->paths[i]); }
    free(s->maps);
    free(s->paths);
    free(s);
}

const st_tensor *st_find(const pare_st *s, const char *name) {
    for (int i = 0; i < s->n_tensors; i++)
        if (!strcmp(s->tensors[i].name, name)) return &s->tensors[i];
    return NULL;
}

/* A JSON number that is a non-negative integer <= 2^53 (exact in a double). */
static bool json_u53(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static pare_status check_duplicates(const pare_st *s, const char *what) {
    if (s->n_tensors < 2) return PARE_OK;
    st_tensor *tmp = pare_malloc((size_t)s->n_tensors * sizeof *tmp);
    if (!tmp) return PARE_ERR_NOMEM;
    memcpy(tmp, s->tensors, (size_t)s->n_tensors * sizeof *tmp);
    qsort(tmp, (size_t)s->n_tensors, sizeof *tmp, cmp_tensor_name);
    pare_status st = PARE_OK;
    for (int i = 1; i < s->n_tensors; i++)
        if (!strcmp(tmp[i - 1].name, tmp[i].name)) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' appears twice", what, tmp[i].name);
            break;
        }
    free(tmp);
    return st;
}

/* Parse one tensor entry of the header of file `path`. */
static pare_status parse_entry(const char *path, const cJSON *e, const uint8_t *data, size_t data_size, st_tensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return pare_fail(PARE_ERR_FORMAT, "%s: header entry '%s' is not an object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets", path, name);
    size_t es = 0;
    int type = dtype_from_name(jd->valuestring, &es);
    if (type < 0) {
        if (dtype_is_other_known(jd->valuestring))
            return pare_fail(PARE_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (pare reads F32, F16 and BF16)", path,
                             name, jd->valuestring);
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%.32s'", path, name, jd->valuestring);
    }
    int nd = cJSON_GetArraySize(js);
    if (nd > 4)
        return pare_fail(PARE_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (pare reads up to 4)", path, name, nd);
    t->n_dims = nd;
    for (int d = 0; d < 4; d++) t->shape[d] = 1;
    size_t nelem = 1;
    int d = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, js) {
        uint64_t v;
        if (!json_u53(x, &v))
            return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has a bad shape (dimension %d is not a size)", path, name, d);
        if (!pare_mul_ok(nelem, (size_t)v, &nelem) || v > (uint64_t)INT64_MAX / 4)
            return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' shape overflows", path, name);
        t->shape[d++] = (int64_t)v;
    }
    size_t nbytes;
    if (!pare_mul_ok(nelem, es, &nbytes))
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' shape overflows", path, name);
    uint64_t b, en;
    if (cJSON_GetArraySize(jo) != 2 || !json_u53(cJSON_GetArrayItem(jo, 0), &b) || !json_u53(cJSON_GetArrayItem(jo, 1), &en) ||
        en < b)
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has bad data_offsets", path, name);
    if (en > data_size)
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' data [%llu, %llu) runs past the end of the file (%zu data bytes)",
                         path, name, (unsigned long long)b, (unsigned long long)en, data_size);
    if (en - b != nbytes)
        return pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' has %llu data bytes, its shape needs %zu", path, name,
                         (unsigned long long)(en - b), nbytes);
    t->type = type;
    t->data = data + b;
    t->nbytes = nbytes;
    return PARE_OK;
}

/* Map one file and append its tensors to s. */
static pare_status st_add_file(pare_st *s, const char *path) {
    if (s->n_files >= ST_MAX_FILES) return pare_fail(PARE_ERR_FORMAT, "%s: too many shards", path);
    pare_map *nm = realloc(s->maps, (size_t)(s->n_files + 1) * sizeof *nm);
    if (!nm) return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
    s->maps = nm;
    char **np = realloc(s->paths, (size_t)(s->n_files + 1) * sizeof *np);
    if (!np) return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
    s->paths = np;
    char *pcopy = pare_strdup(path);
    if (!pcopy) return PARE_ERR_NOMEM;
    pare_map map = {0};
    pare_status st = pare_map_file(path, &map);
    if (st) { free(pcopy); return st; }
    s->maps[s->n_files] = map;
    s->paths[s->n_files] = pcopy;
    s->n_files++;
    path = pcopy;

    const uint8_t *p = map.addr;
    if (map.size < 8)
        return pare_fail(PARE_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file", path, map.size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > map.size - 8)
        return pare_fail(PARE_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                         (unsigned long long)hlen, map.size);
    if (hlen > ST_MAX_HEADER)
        return pare_fail(PARE_ERR_FORMAT, "%s: header length %llu is absurd (limit %u)", path, (unsigned long long)hlen,
                         ST_MAX_HEADER);
    if (hlen < 2 || p[8] != '{')
        return pare_fail(PARE_ERR_FORMAT, "%s: not a safetensors file (header does not start with '{')", path);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pare_fail(PARE_ERR_FORMAT, "%s: header is not a valid JSON object", path);
    }
    const uint8_t *data = p + 8 + hlen;
    size_t data_size = map.size - 8 - (size_t)hlen;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) n++;
    if (n > INT32_MAX / 2 - s->n_tensors) { cJSON_Delete(root); return pare_fail(PARE_ERR_FORMAT, "%s: too many tensors", path); }
    st_tensor *nt = realloc(s->tensors, (size_t)(s->n_tensors + n + 1) * sizeof *nt);
    if (!nt) { cJSON_Delete(root); return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); }
    s->tensors = nt;
    st = PARE_OK;
    cJSON_ArrayForEach(e, root) {
        if (!e->string) { st = pare_fail(PARE_ERR_FORMAT, "%s: header entry without a name", path); break; }
        if (!strcmp(e->string, "__metadata__")) continue;
        st_tensor *t = &s->tensors[s->n_tensors];
        memset(t, 0, sizeof *t);
        if ((st = parse_entry(path, e, data, data_size, t))) break;
        if (!(t->name = pare_strdup(e->string))) { st = PARE_ERR_NOMEM; break; }
        t->file = path;
        s->n_tensors++;
    }
    cJSON_Delete(root);
    return st;
}

pare_status st_open(const char *path, pare_st **out) {
    *out = NULL;
    pare_st *s = pare_calloc(1, sizeof *s);
    if (!s) return PARE_ERR_NOMEM;
    pare_status st = st_add_file(s, path);
    if (!st) st = check_duplicates(s, path);
    if (st) { st_close(s); return st; }
    *out = s;
    return PARE_OK;
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = pare_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static pare_status open_index(const char *ipath, const char *dir, pare_st *s) {
    char *buf = NULL;
    size_t len = 0;
    pare_status st = pare_read_file(ipath, &buf, &len);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return pare_fail(PARE_ERR_FORMAT, "%s: not a safetensors index (no \"weight_map\" object)", ipath);
    }
    const cJSON *e;
    /* open every distinct shard, in order of first mention */
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->string) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: weight_map entry is not a file name", ipath);
            break;
        }
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || strchr(f, '\\') || f[0] == '.') {
            st = pare_fail(PARE_ERR_FORMAT, "%s: shard name '%.64s' is not a plain file name", ipath, f);
            break;
        }
        char *fp = join_path(dir, f);
        if (!fp) { st = PARE_ERR_NOMEM; break; }
        bool seen = false;
        for (int i = 0; i < s->n_files && !seen; i++) seen = !strcmp(s->paths[i], fp);
        if (!seen) st = st_add_file(s, fp);
        free(fp);
        if (st) break;
    }
    /* every tensor the index names must be in the shard it names */
    if (!st) cJSON_ArrayForEach(e, wm) {
        const st_tensor *t = st_find(s, e->string);
        char *fp = join_path(dir, e->valuestring);
        if (!fp) { st = PARE_ERR_NOMEM; break; }
        bool ok = t && !strcmp(t->file, fp);
        free(fp);
        if (!ok) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: tensor '%s' is not in %s", ipath, e->string, e->valuestring);
            break;
        }
    }
    cJSON_Delete(root);
    if (!st) st = check_duplicates(s, ipath);
    return st;
}

pare_status st_open_dir(const char *dir, pare_st **out) {
    *out = NULL;
    char *single = join_path(dir, "model.safetensors");
    char *index = join_path(dir, "model.safetensors.index.json");
    pare_st *s = pare_calloc(1, sizeof *s);
    pare_status st = PARE_OK;
    if (!single || !index || !s) st = PARE_ERR_NOMEM;
    else if (file_exists(single)) {
        st = st_add_file(s, single);
        if (!st) st = check_duplicates(s, single);
    } else if (file_exists(index))
        st = open_index(index, dir, s);
    else
        st = pare_fail(PARE_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(single);
    free(index);
    if (st) { st_close(s); return st; }
    *out = s;
    return PARE_OK;
}

/* ---- writer ---------------------------------------------------------------------------- */
typedef struct wtensor { char *name; int type, n_dims; int64_t shape[4]; const void *data; size_t nbytes; } wtensor;
struct st_writer { wtensor *t; size_t n, cap; };

st_writer *st_writer_new(void) { return pare_calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    free(w);
}

pare_status st_w_tensor(st_writer *w, const char *name, int type, int n_dims, const int64_t *shape, const void *data,
                        size_t nbytes) {
    if (!st_dtype_name(type))
        return pare_fail(PARE_ERR_UNSUPPORTED, "tensor '%s': type %s cannot be written to safetensors (F32, F16, BF16 can)",
                         name, pare_type_name(type));
    if (n_dims < 0 || n_dims > 4) return pare_fail(PARE_ERR_ARG, "tensor '%s': %d dimensions", name, n_dims);
    size_t ne = 1;
    for (int d = 0; d < n_dims; d++)
        if (shape[d] < 0 || !pare_mul_ok(ne, (size_t)shape[d], &ne))
            return pare_fail(PARE_ERR_ARG, "tensor '%s': bad shape", name);
    if (ne * dtype_size(type) != nbytes)
        return pare_fail(PARE_ERR_ARG, "tensor '%s': %zu bytes do not match its shape", name, nbytes);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return pare_fail(PARE_ERR_ARG, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        wtensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) return pare_fail(PARE_ERR_NOMEM, "out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = pare_strdup(name))) return PARE_ERR_NOMEM;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->shape[d] = d < n_dims ? shape[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    w->n++;
    return PARE_OK;
}

typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t k) {
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + k + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof tmp) { b->oom = 1; return; }
    sb_add(b, tmp, (size_t)k);
}
static void sb_json_str(sbuf *b, const char *s) {
    sb_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') { char e[2] = {'\\', (char)*c}; sb_add(b, e, 2); }
        else if (*c < 0x20) sb_printf(b, "\\u%04x", *c);
        else sb_add(b, (const char *)c, 1);
    }
    sb_add(b, "\"", 1);
}

static int cmp_wtensor(const void *a, const void *b) {
    const wtensor *x = a, *y = b;
    size_t ex = dtype_size(x->type), ey = dtype_size(y->type);
    if (ex != ey) return ex > ey ? -1 : 1;
    return strcmp(x->name, y->name);
}

pare_status st_writer_save(st_writer *w, const char *path) {
    if (w->n) qsort(w->t, w->n, sizeof *w->t, cmp_wtensor);
    sbuf h = {0};
    sb_add(&h, "{\"__metadata__\":{\"format\":\"pt\"}", 31);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        sb_add(&h, ",", 1);
        sb_json_str(&h, t->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t->type));
        for (int d = 0; d < t->n_dims; d++) sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + t->nbytes));
        off += t->nbytes;
    }
    sb_add(&h, "}", 1);
    while (!h.oom && h.n % 8) sb_add(&h, " ", 1);
    if (h.oom) { free(h.p); return pare_fail(PARE_ERR_NOMEM, "%s: out of memory building the header", path); }
    pare_out o;
    pare_status st = pare_out_open(&o, path);
    if (st) { free(h.p); return st; }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    pare_out_write(&o, len8, 8);
    pare_out_write(&o, h.p, h.n);
    free(h.p);
    for (size_t i = 0; i < w->n; i++)
        if (w->t[i].nbytes) pare_out_write(&o, w->t[i].data, w->t[i].nbytes);
    return pare_out_commit(&o);
}

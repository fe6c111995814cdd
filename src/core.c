/* core.c - errors, tensor types, half floats, memory, files. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors -------------------------------------------------------------------------- */
static _Thread_local char g_err[1024];

const char *pare_last_error(void) { return g_err[0] ? g_err : "no error"; }

pare_status pare_fail(pare_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    for (char *p = g_err; *p; p++) /* one line, always */
        if (*p == '\n' || *p == '\r') *p = ' ';
    return st;
}

/* ---- types --------------------------------------------------------------------------- */
static const struct { int type; const char *name; int block; size_t bytes; } g_types[] = {
    {PARE_TYPE_F32, "f32", 1, 4},
    {PARE_TYPE_F16, "f16", 1, 2},
    {PARE_TYPE_BF16, "bf16", 1, 2},
    {PARE_TYPE_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0)},
    {PARE_TYPE_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0)},
    {PARE_TYPE_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1)},
    {PARE_TYPE_Q5_0, "q5_0", QK5_0, sizeof(block_q5_0)},
    {PARE_TYPE_Q5_1, "q5_1", QK5_1, sizeof(block_q5_1)},
};
#define N_TYPES (int)(sizeof g_types / sizeof g_types[0])

static int type_index(int type) {
    for (int i = 0; i < N_TYPES; i++)
        if (g_types[i].type == type) return i;
    return -1;
}
bool pare_type_known(int type) { return type_index(type) >= 0; }
const char *pare_type_name(int type) {
    int i = type_index(type);
    return i < 0 ? "?" : g_types[i].name;
}
int pare_type_from_name(const char *name) {
    for (int i = 0; i < N_TYPES; i++)
        if (!strcasecmp(name, g_types[i].name)) return g_types[i].type;
    return -1;
}
int pare_type_block(int type) {
    int i = type_index(type);
    return i < 0 ? 0 : g_types[i].block;
}
size_t pare_type_block_bytes(int type) {
    int i = type_index(type);
    return i < 0 ? 0 : g_types[i].bytes;
}
size_t pare_row_bytes(int type, int64_t n) {
    int i = type_index(type);
    if (i < 0 || n < 0 || n % g_types[i].block) return 0;
    return (size_t)(n / g_types[i].block) * g_types[i].bytes;
}

/* ---- half floats --------------------------------------------------------------------- */
float pare_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000 | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union { uint32_t u; float f; } x = {.u = u};
    return x.f;
}

uint16_t pare_f32_to_f16(float f) {
    union { float f; uint32_t u; } x = {.f = f};
    uint32_t u = x.u, sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff);
    uint32_t man = u & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal or zero in f16 */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into exponent: fine */
    return (uint16_t)(sign | h);
}

uint16_t pare_f32_to_bf16(float f) {
    union { float f; uint32_t u; } x = {.f = f};
    if ((x.u & 0x7fffffff) > 0x7f800000) return (uint16_t)((x.u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x.u + (0x7fff + ((x.u >> 16) & 1))) >> 16);
}

/* ---- tensors ------------------------------------------------------------------------- */
int64_t pare_tensor_nelem(const pare_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return n;
}

void pare_tensor_row_f32(const pare_tensor *t, int64_t r, float *out) {
    int64_t n = t->ne[0];
    const uint8_t *p = (const uint8_t *)t->data + (size_t)r * pare_row_bytes(t->type, n);
    switch (t->type) {
    case PARE_TYPE_F32: memcpy(out, p, (size_t)n * 4); break;
    case PARE_TYPE_F16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = pare_f16_to_f32(h); }
        break;
    case PARE_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = pare_bf16_to_f32(h); }
        break;
    case PARE_TYPE_Q8_0:
        for (int64_t b = 0; b < n / QK8_0; b++) {
            block_q8_0 blk; memcpy(&blk, p + b * sizeof blk, sizeof blk);
            float d = pare_f16_to_f32(blk.d);
            for (int j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * blk.qs[j];
        }
        break;
    case PARE_TYPE_Q4_0:
        for (int64_t b = 0; b < n / QK4_0; b++) {
            block_q4_0 blk; memcpy(&blk, p + b * sizeof blk, sizeof blk);
            float d = pare_f16_to_f32(blk.d);
            for (int j = 0; j < QK4_0 / 2; j++) {
                out[b * QK4_0 + j] = d * ((blk.qs[j] & 0x0f) - 8);
                out[b * QK4_0 + j + QK4_0 / 2] = d * ((blk.qs[j] >> 4) - 8);
            }
        }
        break;
    case PARE_TYPE_Q4_1:
        for (int64_t b = 0; b < n / QK4_1; b++) {
            block_q4_1 blk; memcpy(&blk, p + b * sizeof blk, sizeof blk);
            float d = pare_f16_to_f32(blk.d), mn = pare_f16_to_f32(blk.m);
            for (int j = 0; j < QK4_1 / 2; j++) {
                out[b * QK4_1 + j] = d * (blk.qs[j] & 0x0f) + mn;
                out[b * QK4_1 + j + QK4_1 / 2] = d * (blk.qs[j] >> 4) + mn;
            }
        }
        break;
    case PARE_TYPE_Q5_0:
    case PARE_TYPE_Q5_1: { /* the fifth bit of element j is bit j of qh */
        const int q51 = t->type == PARE_TYPE_Q5_1;
        const size_t bb = q51 ? sizeof(block_q5_1) : sizeof(block_q5_0);
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *q = p + b * bb, *qh = q + (q51 ? 4 : 2), *qs = qh + 4;
            uint16_t hd, hm = 0;
            memcpy(&hd, q, 2);
            if (q51) memcpy(&hm, q + 2, 2);
            const uint32_t h = qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
            const float d = pare_f16_to_f32(hd), mn = pare_f16_to_f32(hm);
            for (int j = 0; j < 32; j++) {
                const int c = (j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4) | (int)((h >> j) & 1) << 4;
                out[b * 32 + j] = q51 ? d * c + mn : d * (c - 16);
            }
        }
        break;
    }
    default: memset(out, 0, (size_t)n * sizeof *out); break;
    }
}

/* ---- memory -------------------------------------------------------------------------- */
void *pare_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) pare_fail(PARE_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}
void *pare_calloc(size_t n, size_t sz) {
    size_t t;
    if (!pare_mul_ok(n, sz, &t)) { pare_fail(PARE_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, sz); return NULL; }
    void *p = calloc(t ? n : 1, t ? sz : 1);
    if (!p) pare_fail(PARE_ERR_NOMEM, "out of memory allocating %zu bytes", t);
    return p;
}
char *pare_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = pare_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}
bool pare_mul_ok(size_t a, size_t b, size_t *out) {
    if (b && a > SIZE_MAX / b) return false;
    *out = a * b;
    return true;
}

/* ---- files --------------------------------------------------------------------------- */
/* Every file pare has mapped and not yet unmapped (the model files it is working from) is
 * registered with its folder, so that no output can replace an input while it is in use:
 * `pare convert m.gguf -o m.gguf`, or an HF folder written into the folder it was loaded
 * from, fails before a byte is written. */
#define MAX_INPUTS 256
/* With each input its path and what stat said when it was mapped: pare_inputs_unchanged
 * compares, so that an output computed while an input was being rewritten is not committed;
 * and its first mapping, so that a bus error (the file was truncated under the map) names it. */
static struct {
    dev_t dev, ddev; ino_t ino, dino; int refs;
    off_t size; struct timespec mtime; char path[1024];
    uintptr_t addr, end;
} g_inputs[MAX_INPUTS];
static volatile sig_atomic_t g_n_inputs;
static pthread_mutex_t g_inputs_mu = PTHREAD_MUTEX_INITIALIZER;
static void bus_install(void);

static void input_ref(const char *path, const struct stat *st, int delta, const void *addr, size_t len) {
    struct stat ds = {0};
    if (delta > 0) {
        char *dir = pare_strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            if (!slash) { free(dir); dir = pare_strdup("."); }
            else if (slash == dir) slash[1] = 0;
            else *slash = 0;
        }
        if (!dir || stat(dir, &ds) != 0) memset(&ds, 0, sizeof ds);
        free(dir);
        bus_install();
    }
    pthread_mutex_lock(&g_inputs_mu);
    int i = 0;
    while (i < g_n_inputs && !(g_inputs[i].dev == st->st_dev && g_inputs[i].ino == st->st_ino)) i++;
    if (i < g_n_inputs) {
        g_inputs[i].refs += delta;
        if (g_inputs[i].refs <= 0) { g_inputs[i] = g_inputs[g_n_inputs - 1]; g_n_inputs--; }
    } else if (delta > 0 && g_n_inputs < MAX_INPUTS) {
        g_inputs[i].dev = st->st_dev; g_inputs[i].ino = st->st_ino;
        g_inputs[i].ddev = ds.st_dev; g_inputs[i].dino = ds.st_ino; g_inputs[i].refs = delta;
        g_inputs[i].size = st->st_size; g_inputs[i].mtime = st->st_mtim;
        snprintf(g_inputs[i].path, sizeof g_inputs[i].path, "%s", path);
        g_inputs[i].addr = (uintptr_t)addr; g_inputs[i].end = (uintptr_t)addr + len;
        g_n_inputs++;
    }
    pthread_mutex_unlock(&g_inputs_mu);
}

pare_status pare_inputs_unchanged(void) {
    pare_status res = PARE_OK;
    pthread_mutex_lock(&g_inputs_mu);
    for (int i = 0; i < g_n_inputs && !res; i++) {
        struct stat st;
        if (stat(g_inputs[i].path, &st) != 0)
            res = pare_fail(PARE_ERR_IO, "%s: the input was removed during the run", g_inputs[i].path);
        else if (st.st_dev != g_inputs[i].dev || st.st_ino != g_inputs[i].ino)
            res = pare_fail(PARE_ERR_IO, "%s: the input was replaced by another file during the run", g_inputs[i].path);
        else if (st.st_size != g_inputs[i].size || st.st_mtim.tv_sec != g_inputs[i].mtime.tv_sec ||
                 st.st_mtim.tv_nsec != g_inputs[i].mtime.tv_nsec)
            res = pare_fail(PARE_ERR_IO, "%s: the input file changed during the run (size or mtime)", g_inputs[i].path);
    }
    pthread_mutex_unlock(&g_inputs_mu);
    return res;
}

static bool registered(const struct stat *st, int as_dir) {
    pthread_mutex_lock(&g_inputs_mu);
    bool hit = false;
    for (int i = 0; i < g_n_inputs && !hit; i++)
        hit = as_dir ? g_inputs[i].ddev == st->st_dev && g_inputs[i].dino == st->st_ino
                     : g_inputs[i].dev == st->st_dev && g_inputs[i].ino == st->st_ino;
    pthread_mutex_unlock(&g_inputs_mu);
    return hit;
}

bool pare_is_input(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && registered(&st, 0);
}

bool pare_dir_has_input(const char *dir) {
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && registered(&st, 1);
}

pare_status pare_map_file(const char *path, pare_map *out) {
    out->addr = NULL; out->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return pare_fail(PARE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pare_fail(PARE_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) { close(fd); return PARE_OK; }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return pare_fail(PARE_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    out->addr = p; out->size = (size_t)st.st_size;
    out->dev = (uint64_t)st.st_dev; out->ino = (uint64_t)st.st_ino;
    input_ref(path, &st, +1, p, (size_t)st.st_size);
    return PARE_OK;
}
size_t pare_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* the "KEY: N kB" line of a /proc file, in bytes; 0 where absent */
static size_t proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    char line[256];
    const size_t n = strlen(key);
    size_t kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) { kb = (size_t)strtoull(line + n, NULL, 10); break; }
    fclose(f);
    return kb * 1024;
}

size_t pare_rss_peak_bytes(void) { return proc_kb("/proc/self/status", "VmHWM:"); }

size_t pare_mem_available_bytes(void) { return proc_kb("/proc/meminfo", "MemAvailable:"); }

void pare_release_pages(const void *p, size_t n) {
    if (!p || !n) return;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + n) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

void pare_unmap(pare_map *m) {
    if (m->addr) {
        munmap(m->addr, m->size);
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_dev = (dev_t)m->dev; st.st_ino = (ino_t)m->ino;
        input_ref(NULL, &st, -1, NULL, 0);
    }
    m->addr = NULL; m->size = 0;
}

pare_status pare_read_file(const char *path, char **buf, size_t *len) {
    *buf = NULL; if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return pare_fail(PARE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (n + 1 < cap) break;
        char *nb = realloc(b, cap * 2);
        if (!nb) { free(b); b = NULL; break; }
        b = nb; cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!b) return pare_fail(PARE_ERR_NOMEM, "%s: out of memory reading file", path);
    if (err) { free(b); return pare_fail(PARE_ERR_IO, "%s: read error", path); }
    b[n] = 0; *buf = b; if (len) *len = n;
    return PARE_OK;
}

/* Temporary outputs being written, removed by a handler of SIGINT, SIGTERM and SIGHUP, so
 * that an interrupted run leaves nothing behind (the handler then dies of the signal as it
 * would have). Fixed slots: the handler may only read them and call unlink. */
enum { OUT_SLOTS = 16, OUT_PATH = 4096 };
static char g_out_tmp[OUT_SLOTS][OUT_PATH];
static volatile sig_atomic_t g_out_used[OUT_SLOTS];
static pthread_mutex_t g_out_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_out_once = PTHREAD_ONCE_INIT;

static void out_on_signal(int sig) {
    for (int i = 0; i < OUT_SLOTS; i++)
        if (g_out_used[i]) unlink(g_out_tmp[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void out_install(void) {
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction sa, old;
        if (sigaction(sigs[i], NULL, &old) || old.sa_handler != SIG_DFL) continue; /* the caller's own */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = out_on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* A bus error inside a mapped input: the file was truncated under the map. Say which, remove
 * the temporary outputs and exit 1 (only async-signal-safe calls). Elsewhere: the default. */
static void bus_on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < g_n_inputs; i++)
        if (a >= g_inputs[i].addr && a < g_inputs[i].end) {
            static const char m1[] = "pare: ", m2[] = ": the input file shrank during the run (bus error reading it); nothing written\n";
            if (write(2, m1, sizeof m1 - 1) < 0 || write(2, g_inputs[i].path, strlen(g_inputs[i].path)) < 0 ||
                write(2, m2, sizeof m2 - 1) < 0) { /* nothing more to do */ }
            for (int k = 0; k < OUT_SLOTS; k++)
                if (g_out_used[k]) unlink(g_out_tmp[k]);
            _exit(1);
        }
    signal(sig, SIG_DFL);
    raise(sig);
}
static void bus_install_once(void) {
    struct sigaction sa, old;
    if (sigaction(SIGBUS, NULL, &old) || old.sa_handler != SIG_DFL) return; /* the caller's own */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = bus_on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
static pthread_once_t g_bus_once = PTHREAD_ONCE_INIT;
static void bus_install(void) { pthread_once(&g_bus_once, bus_install_once); }

static int out_track(const char *tmp) {
    pthread_once(&g_out_once, out_install);
    if (strlen(tmp) >= OUT_PATH) return -1;
    pthread_mutex_lock(&g_out_mu);
    int slot = -1;
    for (int i = 0; i < OUT_SLOTS && slot < 0; i++)
        if (!g_out_used[i]) { slot = i; memcpy(g_out_tmp[i], tmp, strlen(tmp) + 1); g_out_used[i] = 1; }
    pthread_mutex_unlock(&g_out_mu);
    return slot;
}

static void out_untrack(const char *tmp) {
    pthread_mutex_lock(&g_out_mu);
    for (int i = 0; i < OUT_SLOTS; i++)
        if (g_out_used[i] && !strcmp(g_out_tmp[i], tmp)) g_out_used[i] = 0;
    pthread_mutex_unlock(&g_out_mu);
}

pare_status pare_out_open(pare_out *o, const char *path) {
    memset(o, 0, sizeof *o);
    if (pare_is_input(path)) return pare_fail(PARE_ERR_ARG, "%s: is an input of this run; refusing to overwrite it", path);
    size_t n = strlen(path) + 32;
    o->tmp = pare_malloc(n); o->path = pare_strdup(path);
    if (!o->tmp || !o->path) { free(o->tmp); free(o->path); return PARE_ERR_NOMEM; }
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    o->fp = fopen(o->tmp, "wb");
    if (!o->fp) {
        pare_status st = pare_fail(PARE_ERR_IO, "%s: cannot create: %s", o->tmp, strerror(errno));
        free(o->tmp); free(o->path); o->tmp = o->path = NULL;
        return st;
    }
    out_track(o->tmp);
    return PARE_OK;
}
pare_status pare_out_write(pare_out *o, const void *p, size_t n) {
    if (o->failed) return PARE_ERR_IO;
    if (n && fwrite(p, 1, n, o->fp) != n) {
        o->failed = 1;
        return pare_fail(PARE_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    }
    return PARE_OK;
}
pare_status pare_out_commit(pare_out *o) {
    if (!o->fp) return PARE_ERR_IO;
    int bad = o->failed;
    if (fflush(o->fp) != 0 || fsync(fileno(o->fp)) != 0) bad = 1;
    if (fclose(o->fp) != 0) bad = 1;
    o->fp = NULL;
    pare_status st = PARE_OK;
    if (bad) {
        st = pare_fail(PARE_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
        unlink(o->tmp);
    } else if ((st = pare_inputs_unchanged()) != PARE_OK) {
        unlink(o->tmp);
    } else if (rename(o->tmp, o->path) != 0) {
        st = pare_fail(PARE_ERR_IO, "%s: cannot rename into place: %s", o->path, strerror(errno));
        unlink(o->tmp);
    }
    out_untrack(o->tmp);
    free(o->tmp); free(o->path); o->tmp = o->path = NULL;
    return st;
}
void pare_out_abort(pare_out *o) {
    if (o->fp) fclose(o->fp);
    if (o->tmp) { unlink(o->tmp); out_untrack(o->tmp); }
    free(o->tmp); free(o->path);
    memset(o, 0, sizeof *o);
}

void pare_json_str(void *fv, const char *s) {
    FILE *f = fv;
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p); else fputc(*p, f);
        }
    }
    fputc('"', f);
}

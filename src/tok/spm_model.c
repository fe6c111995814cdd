/* spm_model.c - SentencePiece's tokenizer.model (a ModelProto protobuf), read and written.
 *
 * What is read (sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec
 *   SentencePiece   1 piece (string)  2 score (float)  3 type (enum, NORMAL = 1 .. BYTE = 6)
 *   TrainerSpec     3 model_type (UNIGRAM = 1, BPE = 2)  35 byte_fallback
 *                   40 unk_id  41 bos_id  42 eos_id  43 pad_id   (int32; -1 = none)
 *   NormalizerSpec  1 name  3 add_dummy_prefix (default true)
 * Every other field is skipped by its wire type. Every varint and length is checked against
 * the bytes left; groups (wire types 3, 4) and unknown wire types are errors. Only BPE models
 * are taken (unigram models tokenize differently). */
#include "tok_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------------------------- */
typedef struct pb { const uint8_t *p; size_t n, off; const char *path, *what; } pb;

static pare_status pb_err(const pb *r, const char *problem) {
    return pare_fail(PARE_ERR_FORMAT, "%s: not a valid tokenizer.model: %s in %s at byte %zu", r->path, problem, r->what,
                     r->off);
}

static pare_status pb_varint(pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->off >= r->n) return pb_err(r, "truncated varint");
        uint8_t b = r->p[r->off++];
        if (i == 9 && b > 1) return pb_err(r, "varint too long");
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) { *v = x; return PARE_OK; }
    }
    return pb_err(r, "varint too long");
}

/* a length-delimited field: its bytes as a sub-reader */
static pare_status pb_bytes(pb *r, pb *sub, const char *what) {
    uint64_t len;
    pare_status st = pb_varint(r, &len);
    if (st) return st;
    if (len > r->n - r->off) return pb_err(r, "length past the end");
    *sub = (pb){r->p + r->off, (size_t)len, 0, r->path, what};
    r->off += (size_t)len;
    return PARE_OK;
}

static pare_status pb_skip(pb *r, unsigned wt) {
    uint64_t v;
    pb sub;
    switch (wt) {
    case 0: return pb_varint(r, &v);
    case 1: if (r->n - r->off < 8) return pb_err(r, "truncated fixed64"); r->off += 8; return PARE_OK;
    case 2: return pb_bytes(r, &sub, r->what);
    case 5: if (r->n - r->off < 4) return pb_err(r, "truncated fixed32"); r->off += 4; return PARE_OK;
    default: return pb_err(r, "unsupported wire type");
    }
}

static pare_status pb_key(pb *r, uint64_t *field, unsigned *wt) {
    uint64_t k;
    pare_status st = pb_varint(r, &k);
    if (st) return st;
    *field = k >> 3;
    *wt = (unsigned)(k & 7);
    if (*field == 0) return pb_err(r, "field number 0");
    return PARE_OK;
}

static pare_status want_wt(pb *r, unsigned wt, unsigned want) { return wt == want ? PARE_OK : pb_err(r, "wrong wire type"); }

typedef struct piece { const uint8_t *s; size_t n; float score; int type; } piece;

static pare_status read_piece(pb *r, piece *out) {
    pare_status st;
    *out = (piece){NULL, 0, 0.0f, TOK_NORMAL};
    bool has_text = false;
    while (r->off < r->n) {
        uint64_t f, v;
        unsigned wt;
        if ((st = pb_key(r, &f, &wt))) return st;
        if (f == 1) {
            pb s;
            if ((st = want_wt(r, wt, 2)) || (st = pb_bytes(r, &s, "piece"))) return st;
            out->s = s.p;
            out->n = s.n;
            has_text = true;
        } else if (f == 2) {
            if ((st = want_wt(r, wt, 5))) return st;
            if (r->n - r->off < 4) return pb_err(r, "truncated score");
            memcpy(&out->score, r->p + r->off, 4);
            r->off += 4;
        } else if (f == 3) {
            if ((st = want_wt(r, wt, 0)) || (st = pb_varint(r, &v))) return st;
            if (v < 1 || v > 6) return pb_err(r, "piece type outside 1..6");
            out->type = (int)v;
        } else if ((st = pb_skip(r, wt))) {
            return st;
        }
    }
    if (!has_text || out->n == 0) return pb_err(r, "a piece without text");
    if (memchr(out->s, 0, out->n)) return pb_err(r, "a piece with a NUL byte");
    return PARE_OK;
}

typedef struct spec {
    int model_type;
    int64_t unk, bos, eos, pad;
    bool add_dummy_prefix;
} spec;

static pare_status read_trainer(pb *r, spec *sp) {
    pare_status st;
    while (r->off < r->n) {
        uint64_t f, v;
        unsigned wt;
        if ((st = pb_key(r, &f, &wt))) return st;
        if (f == 3 || (f >= 40 && f <= 43)) {
            if ((st = want_wt(r, wt, 0)) || (st = pb_varint(r, &v))) return st;
            int64_t x = (int64_t)(int32_t)(uint32_t)v; /* int32 fields: sign-extended on the wire */
            if (f == 3) sp->model_type = (int)x;
            else if (f == 40) sp->unk = x;
            else if (f == 41) sp->bos = x;
            else if (f == 42) sp->eos = x;
            else sp->pad = x;
        } else if ((st = pb_skip(r, wt))) {
            return st;
        }
    }
    return PARE_OK;
}

static pare_status read_normalizer(pb *r, spec *sp) {
    pare_status st;
    while (r->off < r->n) {
        uint64_t f, v;
        unsigned wt;
        if ((st = pb_key(r, &f, &wt))) return st;
        if (f == 3) {
            if ((st = want_wt(r, wt, 0)) || (st = pb_varint(r, &v))) return st;
            sp->add_dummy_prefix = v != 0;
        } else if ((st = pb_skip(r, wt))) {
            return st;
        }
    }
    return PARE_OK;
}

pare_status vocab_from_spm_model(const char *path, pare_vocab **out) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    pb r = {(const uint8_t *)buf, len, 0, path, "ModelProto"};
    piece *pc = NULL;
    size_t np = 0, cap = 0;
    spec sp = {1, 0, 1, 2, -1, true};
    bool has_trainer = false;
    pare_vocab *v = NULL;
    while (r.off < r.n) {
        uint64_t f;
        unsigned wt;
        pb sub;
        if ((st = pb_key(&r, &f, &wt))) goto fail;
        if (f >= 1 && f <= 3) {
            if ((st = want_wt(&r, wt, 2))) goto fail;
            if ((st = pb_bytes(&r, &sub, f == 1 ? "SentencePiece" : f == 2 ? "TrainerSpec" : "NormalizerSpec"))) goto fail;
            if (f == 1) {
                if (np == cap) {
                    size_t nc = cap ? cap * 2 : 1024;
                    piece *q = realloc(pc, nc * sizeof *q);
                    if (!q) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); goto fail; }
                    pc = q;
                    cap = nc;
                }
                if (np >= INT32_MAX / 2) { st = pb_err(&r, "too many pieces"); goto fail; }
                if ((st = read_piece(&sub, &pc[np]))) goto fail;
                np++;
            } else if (f == 2) {
                has_trainer = true;
                if ((st = read_trainer(&sub, &sp))) goto fail;
            } else if ((st = read_normalizer(&sub, &sp))) {
                goto fail;
            }
        } else if ((st = pb_skip(&r, wt))) {
            goto fail;
        }
    }
    if (np == 0) { st = pare_fail(PARE_ERR_FORMAT, "%s: not a valid tokenizer.model: no pieces", path); goto fail; }
    if (sp.model_type != 2) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: SentencePiece model type %s%s; only BPE models are supported", path,
                       sp.model_type == 1 ? "unigram" : sp.model_type == 3 ? "word" : sp.model_type == 4 ? "char" : "unknown",
                       has_trainer ? "" : " (no trainer_spec)");
        goto fail;
    }
    const struct { const char *name; int64_t id; } ids[] = {{"unk_id", sp.unk}, {"bos_id", sp.bos}, {"eos_id", sp.eos}, {"pad_id", sp.pad}};
    for (int i = 0; i < 4; i++)
        if (ids[i].id < -1 || ids[i].id >= (int64_t)np) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: trainer_spec %s %lld outside the %zu pieces", path, ids[i].name,
                           (long long)ids[i].id, np);
            goto fail;
        }
    if (!(v = vocab_alloc(PARE_VOCAB_SPM, (int)np))) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); goto fail; }
    for (size_t i = 0; i < np; i++) {
        if (!(v->text[i] = pare_malloc(pc[i].n + 1))) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); goto fail; }
        memcpy(v->text[i], pc[i].s, pc[i].n);
        v->text[i][pc[i].n] = 0;
        v->scores[i] = pc[i].score;
        v->ttype[i] = pc[i].type;
    }
    v->unk = (int32_t)sp.unk; v->bos = (int32_t)sp.bos; v->eos = (int32_t)sp.eos; v->pad = (int32_t)sp.pad;
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = sp.add_dummy_prefix;
    free(pc);
    free(buf);
    pc = NULL;
    buf = NULL;
    if ((st = hf_config_apply(v, path))) { vocab_free(v); return st; }
    return vocab_finish(v, path, out);
fail:
    vocab_free(v);
    free(pc);
    free(buf);
    return st;
}

/* ---- writer ------------------------------------------------------------------------------- */
typedef struct obuf { uint8_t *p; size_t n, cap; bool oom; } obuf;

static void ob_put(obuf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n) nc *= 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void ob_varint(obuf *b, uint64_t v) {
    uint8_t t[10];
    int k = 0;
    do { t[k] = (uint8_t)(v & 0x7f); v >>= 7; if (v) t[k] |= 0x80; k++; } while (v);
    ob_put(b, t, (size_t)k);
}
static void ob_key(obuf *b, unsigned field, unsigned wt) { ob_varint(b, ((uint64_t)field << 3) | wt); }
static void ob_int32(obuf *b, unsigned field, int32_t v) { ob_key(b, field, 0); ob_varint(b, (uint64_t)(int64_t)v); }
static void ob_bytes(obuf *b, unsigned field, const void *p, size_t n) {
    ob_key(b, field, 2);
    ob_varint(b, n);
    ob_put(b, p, n);
}

pare_status spm_model_write(const pare_vocab *v, const char *path) {
    if (!v || v->type != PARE_VOCAB_SPM)
        return pare_fail(PARE_ERR_ARG, "%s: only a SentencePiece vocabulary can be written as tokenizer.model", path);
    obuf b = {0}, sub = {0};
    bool byte_fallback = false;
    for (int i = 0; i < v->n_tokens; i++) {
        sub.n = 0;
        ob_bytes(&sub, 1, v->text[i], strlen(v->text[i]));
        float sc = v->scores ? v->scores[i] : 0.0f;
        ob_key(&sub, 2, 5);
        ob_put(&sub, &sc, 4);
        int t = v->ttype[i] >= 1 && v->ttype[i] <= 6 ? v->ttype[i] : TOK_NORMAL;
        if (t != TOK_NORMAL) ob_int32(&sub, 3, t);
        byte_fallback |= t == TOK_BYTE;
        ob_bytes(&b, 1, sub.p, sub.n);
    }
    sub.n = 0; /* trainer_spec */
    ob_int32(&sub, 3, 2); /* BPE */
    ob_int32(&sub, 4, v->n_tokens);
    if (byte_fallback) ob_int32(&sub, 35, 1);
    ob_int32(&sub, 40, v->unk);
    ob_int32(&sub, 41, v->bos);
    ob_int32(&sub, 42, v->eos);
    ob_int32(&sub, 43, v->pad);
    const struct { unsigned f; int32_t id; } names[] = {{45, v->unk}, {46, v->bos}, {47, v->eos}, {48, v->pad}};
    for (int i = 0; i < 4; i++)
        if (names[i].id >= 0) ob_bytes(&sub, names[i].f, v->text[names[i].id], strlen(v->text[names[i].id]));
    ob_bytes(&b, 2, sub.p, sub.n);
    sub.n = 0; /* normalizer_spec: no normalization, spaces escaped, the dummy prefix as the vocab says */
    ob_bytes(&sub, 1, "identity", 8);
    ob_int32(&sub, 3, v->add_space_prefix);
    ob_int32(&sub, 4, 0);
    ob_int32(&sub, 5, 1);
    ob_bytes(&b, 3, sub.p, sub.n);
    pare_status st = PARE_OK;
    if (b.oom || sub.oom) st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
    free(sub.p);
    if (!st) {
        pare_out o;
        if (!(st = pare_out_open(&o, path))) {
            st = pare_out_write(&o, b.p, b.n);
            if (!st) st = pare_out_commit(&o);
            else pare_out_abort(&o);
        }
    }
    free(b.p);
    return st;
}

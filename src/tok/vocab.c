/* vocab.c - vocabularies: lookup tables, the public tokenize / decode calls, GGUF keys.
 *
 * Tokenization follows llama.cpp (llama-vocab.cpp) step by step:
 *  1. special-token partition: the text is cut at every USER_DEFINED token (and CONTROL /
 *     UNKNOWN ones when parse_special), longest token first, each token splitting the raw
 *     fragments left by the ones before it (llama.cpp's tokenizer_st_partition);
 *  2. every raw fragment goes through the SentencePiece BPE (spm.c) or byte-level BPE (bpe.c)
 *     tokenizer; SPM puts a space in front of a fragment that starts the text or follows a
 *     special token when add_space_prefix is set;
 *  3. with add_special, BOS in front / EOS at the end as the vocab says (add_bos, add_eos). */
#include "tok_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ----------------------------------------------------------------------- */
pare_status tok_ivec_push(tok_ivec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        int32_t *p = realloc(a->v, nc * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        a->v = p;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return PARE_OK;
}

uint64_t tok_hash(uint64_t h, const void *p, size_t n) { /* FNV-1a, streamable */
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001b3ull; }
    return h;
}

int32_t vocab_find(const pare_vocab *v, const char *s, size_t n) {
    const tok_impl *im = tok_im(v);
    if (!im || !im->tab) return -1;
    for (uint32_t i = tok_slot(tok_hash_str(s, n)) & im->mask;; i = (i + 1) & im->mask) {
        uint32_t e = im->tab[i];
        if (!e) return -1;
        int32_t id = (int32_t)e - 1;
        if (im->len[id] == n && !memcmp(v->text[id], s, n)) return id;
    }
}

int32_t vocab_merge_rank(const pare_vocab *v, const char *a, size_t na, const char *b, size_t nb) {
    const tok_impl *im = tok_im(v);
    if (!im || !im->mtab) return -1;
    uint64_t h = tok_hash(TOK_HASH_SEED, a, na);
    h = tok_hash(h, " ", 1);
    h = tok_hash(h, b, nb);
    for (uint32_t i = tok_slot(h) & im->mmask;; i = (i + 1) & im->mmask) {
        uint32_t e = im->mtab[i];
        if (!e) return -1;
        uint32_t r = e - 1;
        const char *m = v->merges[r];
        if (im->msplit[r] == na && im->mlen[r] == na + 1 + nb && !memcmp(m, a, na) && !memcmp(m + na + 1, b, nb))
            return (int32_t)r;
    }
}

/* ---- a per-call cache of short pieces (the same piece always gives the same tokens) ---- */
#define CACHE_BITS 16
int tok_cache_get(const tok_cache *c, const char *p, size_t n, uint64_t h, tok_ivec *out) {
    if (!c->tab) return 0;
    for (uint32_t i = (uint32_t)h & ((1u << CACHE_BITS) - 1);; i = (i + 1) & ((1u << CACHE_BITS) - 1)) {
        uint32_t k = c->tab[i];
        if (!k) return 0;
        const tok_centry *e = &c->e[k - 1];
        if (e->h == h && e->len == n && !memcmp(c->bytes + e->text, p, n)) {
            for (uint32_t j = 0; j < e->n; j++)
                if (tok_ivec_push(out, c->ids[e->ids + j])) return -1;
            return 1;
        }
    }
}

void tok_cache_free(tok_cache *c) {
    free(c->tab); free(c->e); free(c->bytes); free(c->ids);
    memset(c, 0, sizeof *c);
}

void tok_cache_put(tok_cache *c, const char *p, size_t n, uint64_t h, const int32_t *ids, size_t ni) {
    if (c->off) return;
    if (!c->tab) {
        c->tab = calloc((size_t)1 << CACHE_BITS, sizeof *c->tab);
        c->e = malloc(((size_t)1 << (CACHE_BITS - 1)) * sizeof *c->e);
        if (!c->tab || !c->e) { c->off = true; return; }
    }
    if (c->ne >= ((size_t)1 << (CACHE_BITS - 1))) { c->off = true; return; } /* half full: enough */
    if (c->nb + n > c->cap_b) {
        size_t nc = c->cap_b ? c->cap_b * 2 : 65536;
        char *q = realloc(c->bytes, nc);
        if (!q) { c->off = true; return; }
        c->bytes = q;
        c->cap_b = nc;
    }
    if (c->ni + ni > c->cap_i) {
        size_t nc = c->cap_i ? c->cap_i * 2 : 16384;
        while (nc < c->ni + ni) nc *= 2;
        int32_t *q = realloc(c->ids, nc * sizeof *q);
        if (!q) { c->off = true; return; }
        c->ids = q;
        c->cap_i = nc;
    }
    uint32_t i = (uint32_t)h & ((1u << CACHE_BITS) - 1);
    while (c->tab[i]) i = (i + 1) & ((1u << CACHE_BITS) - 1);
    memcpy(c->bytes + c->nb, p, n);
    if (ni) memcpy(c->ids + c->ni, ids, ni * sizeof *ids); /* a word may have no tokens */
    c->e[c->ne] = (tok_centry){h, (uint32_t)c->nb, (uint32_t)n, (uint32_t)c->ni, (uint32_t)ni};
    c->tab[i] = (uint32_t)++c->ne;
    c->nb += n;
    c->ni += ni;
}

pare_vocab *vocab_alloc(int type, int n_tokens) {
    pare_vocab *v = pare_calloc(1, sizeof *v);
    if (!v) return NULL;
    v->type = type;
    v->n_tokens = n_tokens;
    v->bos = v->eos = v->unk = v->pad = -1;
    v->text = pare_calloc((size_t)n_tokens, sizeof(char *));
    v->ttype = pare_calloc((size_t)n_tokens, sizeof(int32_t));
    if (type == PARE_VOCAB_SPM) v->scores = pare_calloc((size_t)n_tokens, sizeof(float));
    if (!v->text || !v->ttype || (type == PARE_VOCAB_SPM && !v->scores)) {
        vocab_free(v);
        return NULL;
    }
    for (int i = 0; i < n_tokens; i++) v->ttype[i] = TOK_NORMAL;
    return v;
}

pare_status vocab_finish(pare_vocab *v, const char *path, pare_vocab **out) {
    pare_status st = vocab_build(v);
    if (st) {
        char msg[768];
        snprintf(msg, sizeof msg, "%s", pare_last_error());
        vocab_free(v);
        return pare_fail(st, "%s: %s", path, msg);
    }
    *out = v;
    return PARE_OK;
}

/* ---- build / free -------------------------------------------------------------------------- */
static void impl_free(tok_impl *im) {
    if (!im) return;
    bpe_release(im);
    free(im->len); free(im->tab);
    free(im->mtab); free(im->msplit); free(im->mlen);
    free(im->special); free(im->sp_idx); free(im->flags);
    free(im->pairs);
    free(im);
}

void vocab_free(pare_vocab *v) {
    if (!v) return;
    impl_free(v->impl);
    if (v->text)
        for (int i = 0; i < v->n_tokens; i++) free(v->text[i]);
    free(v->text);
    free(v->scores);
    free(v->ttype);
    if (v->merges)
        for (int i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->merges);
    free(v->pre);
    free(v);
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const uint32_t *len = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = len[x], ly = len[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool is_special_type(int t) { return t == TOK_CONTROL || t == TOK_USER || t == TOK_UNKNOWN; }

static pare_status build_tables(pare_vocab *v, tok_impl *im) {
    int n = v->n_tokens;
    im->len = pare_calloc((size_t)n, sizeof(uint32_t));
    im->flags = pare_calloc((size_t)n, 1);
    im->mask = tok_pow2((uint64_t)n * 2) - 1;
    im->tab = pare_calloc((size_t)im->mask + 1, sizeof(uint32_t));
    if (!im->len || !im->flags || !im->tab) return PARE_ERR_NOMEM;
    for (int id = 0; id < n; id++) {
        size_t l = strlen(v->text[id]);
        if (l > UINT32_MAX / 2) return pare_fail(PARE_ERR_FORMAT, "token %d is too long", id);
        im->len[id] = (uint32_t)l;
        uint32_t i = tok_slot(tok_hash_str(v->text[id], l)) & im->mask;
        for (;; i = (i + 1) & im->mask) {
            uint32_t e = im->tab[i];
            if (!e) { im->tab[i] = (uint32_t)id + 1; break; }
            if (im->len[e - 1] == l && !memcmp(v->text[e - 1], v->text[id], l)) { im->tab[i] = (uint32_t)id + 1; break; }
        }
    }
    int ns = 0;
    for (int id = 0; id < n; id++) ns += is_special_type(v->ttype[id]) && im->len[id] > 0;
    if (ns) {
        im->special = pare_calloc((size_t)ns, sizeof(int32_t));
        if (!im->special) return PARE_ERR_NOMEM;
        for (int id = 0; id < n; id++)
            if (is_special_type(v->ttype[id]) && im->len[id] > 0) im->special[im->n_special++] = id;
        qsort_r(im->special, (size_t)im->n_special, sizeof(int32_t), cmp_special, im->len);
        if (!(im->sp_idx = pare_calloc((size_t)ns, sizeof(int32_t)))) return PARE_ERR_NOMEM;
        uint32_t count[256] = {0};
        for (int k = 0; k < ns; k++) count[(unsigned char)v->text[im->special[k]][0]]++;
        for (int b = 0; b < 256; b++) im->sp_start[b + 1] = im->sp_start[b] + count[b];
        uint32_t fill[256];
        memcpy(fill, im->sp_start, sizeof fill);
        for (int k = 0; k < ns; k++) im->sp_idx[fill[(unsigned char)v->text[im->special[k]][0]]++] = k;
    }
    return PARE_OK;
}

pare_status vocab_build(pare_vocab *v) {
    if (!v) return pare_fail(PARE_ERR_ARG, "vocab_build: no vocabulary");
    if (v->impl) { impl_free(v->impl); v->impl = NULL; }
    if (v->type != PARE_VOCAB_SPM && v->type != PARE_VOCAB_BPE)
        return pare_fail(PARE_ERR_ARG, "vocabulary: unknown type %d", v->type);
    if (v->n_tokens < 1 || !v->text) return pare_fail(PARE_ERR_FORMAT, "vocabulary: no tokens");
    for (int i = 0; i < v->n_tokens; i++)
        if (!v->text[i]) return pare_fail(PARE_ERR_FORMAT, "vocabulary: token %d has no text", i);
    if (!v->ttype) {
        if (!(v->ttype = pare_calloc((size_t)v->n_tokens, sizeof(int32_t)))) return PARE_ERR_NOMEM;
        for (int i = 0; i < v->n_tokens; i++) v->ttype[i] = TOK_NORMAL;
    }
    if (v->type == PARE_VOCAB_SPM && !v->scores && !(v->scores = pare_calloc((size_t)v->n_tokens, sizeof(float))))
        return PARE_ERR_NOMEM;
    const struct { const char *name; int32_t id; } ids[] = {{"bos", v->bos}, {"eos", v->eos}, {"unk", v->unk}, {"pad", v->pad}};
    for (int i = 0; i < 4; i++)
        if (ids[i].id < -1 || ids[i].id >= v->n_tokens)
            return pare_fail(PARE_ERR_FORMAT, "vocabulary: %s token id %d outside 0..%d", ids[i].name, ids[i].id,
                             v->n_tokens - 1);
    if (v->n_merges < 0 || (v->n_merges > 0 && !v->merges)) return pare_fail(PARE_ERR_FORMAT, "vocabulary: bad merges");
    tok_impl *im = pare_calloc(1, sizeof *im);
    if (!im) return PARE_ERR_NOMEM;
    pare_status st = build_tables(v, im);
    if (!st) {
        v->impl = im;
        st = v->type == PARE_VOCAB_SPM ? spm_build(v) : bpe_build(v);
    }
    if (st) {
        impl_free(im);
        v->impl = NULL;
        if (st == PARE_ERR_NOMEM && !strstr(pare_last_error(), "memory")) pare_fail(st, "vocabulary: out of memory");
        return st;
    }
    return PARE_OK;
}

/* ---- special-token partition ---------------------------------------------------------------- */
typedef struct frag { int32_t tok; size_t off, len; } frag;
typedef struct fragv { frag *f; size_t n, cap; } fragv;

static pare_status frag_push(fragv *a, int32_t tok, size_t off, size_t len) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        frag *p = realloc(a->f, nc * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        a->f = p;
        a->cap = nc;
    }
    a->f[a->n++] = (frag){tok, off, len};
    return PARE_OK;
}

static bool special_active(const pare_vocab *v, int32_t id, bool parse_special) {
    int t = v->ttype[id];
    return t == TOK_USER || (parse_special && (t == TOK_CONTROL || t == TOK_UNKNOWN));
}

/* Split every raw fragment of *cur at the occurrences of token id (leftmost first). */
static pare_status split_on(const pare_vocab *v, const char *text, int32_t id, fragv *cur, fragv *next) {
    const tok_impl *im = tok_im(v);
    const char *t = v->text[id];
    size_t L = im->len[id];
    pare_status st;
    next->n = 0;
    for (size_t k = 0; k < cur->n; k++) {
        frag f = cur->f[k];
        if (f.tok >= 0) { if ((st = frag_push(next, f.tok, 0, 0))) return st; continue; }
        size_t off = f.off, rem = f.len;
        for (;;) {
            const char *p = rem >= L ? memmem(text + off, rem, t, L) : NULL;
            if (!p) {
                if (rem > 0 && (st = frag_push(next, -1, off, rem))) return st;
                break;
            }
            size_t m = (size_t)(p - text), left = m - off;
            if (im->flags[id] & TF_LSTRIP)
                while (left > 0 && isspace((unsigned char)text[off + left - 1])) left--;
            if (left > 0 && (st = frag_push(next, -1, off, left))) return st;
            if ((st = frag_push(next, id, 0, 0))) return st;
            if (m + L >= off + rem) break;
            size_t roff = m + L, rlen = off + rem - roff;
            if (im->flags[id] & TF_RSTRIP)
                while (rlen > 0 && isspace((unsigned char)text[roff])) { roff++; rlen--; }
            off = roff;
            rem = rlen;
        }
    }
    fragv tmp = *cur; *cur = *next; *next = tmp;
    return PARE_OK;
}

static pare_status partition(const pare_vocab *v, const char *text, size_t len, bool parse_special, fragv *out) {
    const tok_impl *im = tok_im(v);
    pare_status st;
    out->n = 0;
    if (len == 0) return PARE_OK;
    if ((st = frag_push(out, -1, 0, len))) return st;
    if (!im->n_special) return PARE_OK;
    /* which special tokens occur at all: one pass, checking the tokens that start with each byte */
    bool any = false;
    for (int k = 0; k < im->n_special && !any; k++) any = special_active(v, im->special[k], parse_special);
    if (!any) return PARE_OK;
    bool *present = calloc((size_t)im->n_special, 1);
    if (!present) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        for (uint32_t j = im->sp_start[c]; j < im->sp_start[c + 1]; j++) {
            int k = im->sp_idx[j];
            int32_t id = im->special[k];
            if (present[k] || im->len[id] > len - i || memcmp(text + i, v->text[id], im->len[id])) continue;
            present[k] = special_active(v, id, parse_special);
        }
    }
    fragv tmp = {0};
    st = PARE_OK;
    for (int k = 0; k < im->n_special && !st; k++)
        if (present[k]) st = split_on(v, text, im->special[k], out, &tmp);
    free(tmp.f);
    free(present);
    return st;
}

/* ---- tokenize -------------------------------------------------------------------------------- */
pare_status vocab_tokenize(const pare_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                           int32_t **ids, size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!v || !ids || !n_ids || (!text && len)) return pare_fail(PARE_ERR_ARG, "pare_tokenize: missing argument");
    if (!v->impl) return pare_fail(PARE_ERR_ARG, "pare_tokenize: vocabulary not built (vocab_build)");
    fragv fr = {0};
    tok_ivec out = {0};
    pare_status st = partition(v, text, len, parse_special, &fr);
    if (!st && add_special && v->add_bos && v->bos >= 0) st = tok_ivec_push(&out, v->bos);
    bool prev_special = true; /* SPM: a space in front of the first fragment */
    for (size_t k = 0; k < fr.n && !st; k++) {
        const frag *f = &fr.f[k];
        if (f->tok >= 0) {
            st = tok_ivec_push(&out, f->tok);
            prev_special = true;
        } else if (v->type == PARE_VOCAB_SPM) {
            st = spm_tokenize(v, text + f->off, f->len, v->add_space_prefix && prev_special, &out);
            prev_special = false;
        } else {
            st = bpe_tokenize(v, text + f->off, f->len, &out);
        }
    }
    if (!st && add_special && v->add_eos && v->eos >= 0) st = tok_ivec_push(&out, v->eos);
    if (!st && !out.v) { /* a buffer even for no tokens */
        st = tok_ivec_push(&out, 0);
        out.n = 0;
    }
    free(fr.f);
    if (st) { free(out.v); return st; }
    *ids = out.v;
    *n_ids = out.n;
    return PARE_OK;
}

pare_status pare_tokenize(const pare_vocab *v, const char *text, size_t len, int add_special, int32_t **ids,
                          size_t *n_ids) {
    return vocab_tokenize(v, text, len, add_special != 0, false, ids, n_ids);
}

/* ---- decode ---------------------------------------------------------------------------------- */
static int put(char *buf, size_t cap, const char *s, size_t n) {
    if (n > cap) return -(int)n;
    if (n) memcpy(buf, s, n);
    return (int)n;
}

int pare_token_to_piece(const pare_vocab *v, int32_t id, char *buf, size_t cap) {
    if (!v || !v->impl || id < 0 || id >= v->n_tokens) return 0;
    const char *s = v->text[id];
    size_t n = tok_im(v)->len[id];
    switch (v->ttype[id]) {
    case TOK_USER: return put(buf, cap, s, n);
    case TOK_NORMAL:
        if (v->type == PARE_VOCAB_SPM) { /* U+2581 -> ' ' */
            size_t need = 0;
            for (size_t i = 0; i < n;) {
                if (n - i >= 3 && !memcmp(s + i, "\xe2\x96\x81", 3)) i += 3; else i++;
                need++;
            }
            if (need > cap) return -(int)need;
            size_t o = 0;
            for (size_t i = 0; i < n;) {
                if (n - i >= 3 && !memcmp(s + i, "\xe2\x96\x81", 3)) { buf[o++] = ' '; i += 3; }
                else buf[o++] = s[i++];
            }
            return (int)o;
        } else {
            size_t need = bpe_decode(s, n, buf, cap);
            return need > cap ? -(int)need : (int)need;
        }
    case TOK_BYTE:
        if (v->type == PARE_VOCAB_SPM) { /* "<0xXX>": llama.cpp reads the hex digits after "<0x" */
            char hex[3] = {0};
            if (n > 3) { hex[0] = s[3]; if (n > 4) hex[1] = s[4]; }
            char b = (char)strtol(hex, NULL, 16);
            return put(buf, cap, &b, 1);
        }
        return 0;
    default: return 0; /* CONTROL, UNKNOWN, UNUSED: nothing */
    }
}

int pare_vocab_size(const pare_vocab *v) { return v ? v->n_tokens : 0; }
int32_t pare_vocab_bos(const pare_vocab *v) { return v ? v->bos : -1; }
int32_t pare_vocab_eos(const pare_vocab *v) { return v ? v->eos : -1; }

/* ---- GGUF ------------------------------------------------------------------------------------ */
static bool contains_ci(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; *s; s++)
        if (!strncasecmp(s, needle, n)) return true;
    return false;
}

/* llama.cpp sets RSTRIP on the special tokens of Phi-3 models (by general.name) */
static void phi3_attrs(pare_vocab *v) {
    tok_impl *im = tok_im(v);
    for (int k = 0; k < im->n_special; k++) im->flags[im->special[k]] |= TF_RSTRIP;
    for (int id = 0; id < v->n_tokens; id++) {
        const char *t = v->text[id];
        if (!strcmp(t, "</s>")) im->flags[id] |= TF_RSTRIP;
        if (!strcmp(t, "<unk>") || !strcmp(t, "<s>") || !strcmp(t, "<|endoftext|>")) im->flags[id] &= (uint8_t)~TF_RSTRIP;
    }
}

pare_status vocab_from_gguf(const pare_gguf *g, pare_vocab **out) {
    *out = NULL;
    const char *path = g->path ? g->path : "gguf";
    const char *model = gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) return pare_fail(PARE_ERR_FORMAT, "%s: no tokenizer.ggml.model", path);
    int type;
    if (!strcmp(model, "llama")) type = PARE_VOCAB_SPM;
    else if (!strcmp(model, "gpt2")) type = PARE_VOCAB_BPE;
    else return pare_fail(PARE_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (llama, gpt2)", path, model);
    const gguf_kv *tk = gguf_find(g, "tokenizer.ggml.tokens");
    if (!tk || tk->type != GGUF_ARR || tk->arr_type != GGUF_STR || !tk->strs)
        return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not an array of strings", path);
    if (tk->n < 1 || tk->n > INT32_MAX / 2)
        return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)tk->n);
    int n = (int)tk->n;
    const gguf_kv *sc = gguf_find(g, "tokenizer.ggml.scores");
    const gguf_kv *tt = gguf_find(g, "tokenizer.ggml.token_type");
    const gguf_kv *mg = gguf_find(g, "tokenizer.ggml.merges");
    if (sc && (sc->type != GGUF_ARR || !sc->data || sc->n != tk->n))
        return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.scores is not %d numbers", path, n);
    if (tt && (tt->type != GGUF_ARR || !tt->data || tt->n != tk->n))
        return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not %d numbers", path, n);
    if (type == PARE_VOCAB_BPE && !mg) return pare_fail(PARE_ERR_FORMAT, "%s: BPE vocabulary without tokenizer.ggml.merges", path);
    if (mg && (mg->type != GGUF_ARR || mg->arr_type != GGUF_STR || !mg->strs || mg->n > INT32_MAX / 2))
        return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.merges is not an array of strings", path);

    pare_vocab *v = vocab_alloc(type, n);
    if (!v) return PARE_ERR_NOMEM;
    if (sc && type == PARE_VOCAB_BPE && !(v->scores = pare_calloc((size_t)n, sizeof(float)))) goto nomem;
    for (int i = 0; i < n; i++) {
        if (!(v->text[i] = pare_strdup(tk->strs[i]))) goto nomem;
        double d;
        if (sc) {
            if (!gguf_arr_f64(sc, (uint64_t)i, &d)) { vocab_free(v); return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.scores: bad element type", path); }
            v->scores[i] = (float)d;
        }
        if (tt) {
            if (!gguf_arr_f64(tt, (uint64_t)i, &d)) { vocab_free(v); return pare_fail(PARE_ERR_FORMAT, "%s: tokenizer.ggml.token_type: bad element type", path); }
            if (d < 0 || d > 6) { vocab_free(v); return pare_fail(PARE_ERR_FORMAT, "%s: token %d has type %g (0..6)", path, i, d); }
            v->ttype[i] = (int32_t)d;
        }
    }
    if (mg) {
        v->n_merges = (int)mg->n;
        if (v->n_merges && !(v->merges = pare_calloc(mg->n, sizeof(char *)))) goto nomem;
        for (int i = 0; i < v->n_merges; i++)
            if (!(v->merges[i] = pare_strdup(mg->strs[i]))) goto nomem;
    }
    const char *pre = gguf_get_str(g, "tokenizer.ggml.pre");
    if (pre && !(v->pre = pare_strdup(pre))) goto nomem;
    /* llama.cpp's defaults, then the keys (an id outside the vocabulary keeps the default) */
    if (type == PARE_VOCAB_SPM) {
        v->bos = 1; v->eos = 2; v->unk = 0;
        v->add_bos = true; v->add_space_prefix = true;
    } else {
        v->bos = v->eos = 11;
        v->add_bos = pre && (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe"));
    }
    const struct { const char *key; int32_t *id; } idk[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos}, {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.unknown_token_id", &v->unk}, {"tokenizer.ggml.padding_token_id", &v->pad}};
    for (int k = 0; k < 4; k++) {
        uint32_t u;
        if (gguf_get_u32(g, idk[k].key, &u) && u < (uint32_t)n) *idk[k].id = (int32_t)u;
        if (*idk[k].id >= n) *idk[k].id = -1;
    }
    bool b;
    if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) v->add_bos = b;
    if (gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b)) v->add_eos = b;
    if (gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) v->add_space_prefix = b;
    pare_status st = vocab_finish(v, path, out);
    if (st) return st;
    const char *name = gguf_get_str(g, "general.name");
    if (name && (contains_ci(name, "phi-3") || contains_ci(name, "phi3"))) phi3_attrs(*out);
    return PARE_OK;
nomem:
    vocab_free(v);
    return pare_fail(PARE_ERR_NOMEM, "%s: out of memory reading the vocabulary", path);
}

void vocab_to_gguf(const pare_vocab *v, gguf_writer *w) {
    if (!v || !w) return;
    gguf_w_str(w, "tokenizer.ggml.model", v->type == PARE_VOCAB_SPM ? "llama" : "gpt2");
    if (v->pre) gguf_w_str(w, "tokenizer.ggml.pre", v->pre);
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", v->text, (uint64_t)v->n_tokens);
    if (v->scores) gguf_w_arr_f32(w, "tokenizer.ggml.scores", v->scores, (uint64_t)v->n_tokens);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->ttype, (uint64_t)v->n_tokens);
    if (v->type == PARE_VOCAB_BPE) gguf_w_arr_str(w, "tokenizer.ggml.merges", v->merges, (uint64_t)v->n_merges);
    if (v->bos >= 0) gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0) gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (v->pad >= 0) gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    gguf_w_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    gguf_w_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    if (v->type == PARE_VOCAB_SPM || v->add_space_prefix)
        gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
}

/* spm.c - SentencePiece BPE tokenization, as llama.cpp's llm_tokenizer_spm.
 *
 * The text (spaces escaped to U+2581, one in front when asked) is split into UTF-8
 * characters (a stray byte is a character of its own). Every adjacent pair whose
 * concatenation is a token goes into a priority queue by that token's score (highest first;
 * equal scores: leftmost first). The best pair is merged and the new neighbours queued;
 * pairs made stale by an earlier merge are skipped. What is left is looked up; a symbol
 * that is not a token - always a single character here, since every merge makes a token,
 * which is why llama.cpp's resegment never recurses - becomes its bytes as <0xXX> tokens
 * (or the single-byte token), else <unk>.
 *
 * Speed: a merge can only cross a character boundary if some token contains the two
 * characters either side of it, adjacent. The text is cut at every boundary where no token
 * does, and the pieces (mostly words) are merged one after another: the same result, small
 * queues, flat memory on big files. A piece seen before (up to 64 bytes) takes its tokens
 * from a cache kept for the call. */
#include "tok_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct sym { uint32_t off, n; int32_t prev, next; } sym;
/* queue order as one integer: highest score first, then leftmost (llama.cpp's comparator) */
typedef struct bigram { uint64_t key; int32_t right; uint32_t size; } bigram;
static inline uint64_t big_key(float score, int32_t left) {
    uint32_t u;
    if (score == 0) score = 0; /* -0 ties with +0 */
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* order-preserving: bigger score, bigger u */
    if (score != score) u = 0;                      /* NaN: last */
    return ((uint64_t)~u << 32) | (uint32_t)left;
}
static inline int32_t big_left(const bigram *b) { return (int32_t)(uint32_t)b->key; }

typedef struct work {
    sym *s; size_t ns, cap_s;
    bigram *h; size_t nh, cap_h;
} work;

static inline bool big_first(const bigram *a, const bigram *b) { return a->key < b->key; }

static pare_status heap_push(work *w, bigram b) {
    if (w->nh == w->cap_h) {
        size_t nc = w->cap_h ? w->cap_h * 2 : 512;
        bigram *p = realloc(w->h, nc * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        w->h = p;
        w->cap_h = nc;
    }
    size_t i = w->nh++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!big_first(&b, &w->h[par])) break;
        w->h[i] = w->h[par];
        i = par;
    }
    w->h[i] = b;
    return PARE_OK;
}

static bigram heap_pop(work *w) {
    bigram top = w->h[0], last = w->h[--w->nh];
    size_t i = 0, n = w->nh;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && big_first(&w->h[c + 1], &w->h[c])) c++;
        if (!big_first(&w->h[c], &last)) break;
        w->h[i] = w->h[c];
        i = c;
    }
    if (n) w->h[i] = last;
    return top;
}

static pare_status try_add(const pare_vocab *v, const char *s, work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return PARE_OK;
    uint32_t size = w->s[l].n + w->s[r].n;
    int32_t id = vocab_find(v, s + w->s[l].off, size);
    if (id < 0) return PARE_OK;
    return heap_push(w, (bigram){big_key(v->scores[id], l), r, size});
}

static pare_status emit_symbol(const pare_vocab *v, const char *p, size_t n, tok_ivec *out) {
    int32_t id = vocab_find(v, p, n);
    if (id >= 0) return tok_ivec_push(out, id);
    const tok_impl *im = tok_im(v);
    for (size_t j = 0; j < n; j++) {
        id = im->byte_tok[(unsigned char)p[j]];
        if (id < 0) id = v->unk;
        if (id < 0) return pare_fail(PARE_ERR_FORMAT, "tokenize: byte 0x%02X has no token and the vocabulary no <unk>", (unsigned char)p[j]);
        pare_status st = tok_ivec_push(out, id);
        if (st) return st;
    }
    return PARE_OK;
}

static pare_status merge_chunk(const pare_vocab *v, const char *s, size_t n, work *w, tok_ivec *out) {
    pare_status st;
    w->ns = 0;
    w->nh = 0;
    if (n == 0) return PARE_OK;
    if (n > w->cap_s) {
        sym *p = realloc(w->s, n * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        w->s = p;
        w->cap_s = n;
    }
    for (size_t off = 0; off < n;) {
        size_t l = tok_utf8_len((unsigned char)s[off]);
        if (l > n - off) l = n - off;
        int32_t i = (int32_t)w->ns;
        w->s[w->ns++] = (sym){(uint32_t)off, (uint32_t)l, i - 1, off + l == n ? -1 : i + 1};
        off += l;
    }
    for (int32_t i = 1; i < (int32_t)w->ns; i++)
        if ((st = try_add(v, s, w, i - 1, i))) return st;
    while (w->nh) {
        bigram b = heap_pop(w);
        int32_t left = big_left(&b);
        sym *L = &w->s[left], *R = &w->s[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) w->s[R->next].prev = left;
        if ((st = try_add(v, s, w, L->prev, left)) || (st = try_add(v, s, w, left, L->next))) return st;
    }
    for (int32_t i = 0; i != -1; i = w->s[i].next)
        if ((st = emit_symbol(v, s + w->s[i].off, w->s[i].n, out))) return st;
    return PARE_OK;
}

/* ---- pairs of adjacent characters inside tokens --------------------------------------------- */
static uint64_t pack_char(const char *p, size_t n) {
    uint64_t x = 0;
    memcpy(&x, p, n > 4 ? 4 : n);
    return x | ((uint64_t)n << 32);
}
static uint64_t pair_key(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}
static bool pair_has(const tok_impl *im, uint64_t k) {
    for (uint32_t i = (uint32_t)k & im->pmask;; i = (i + 1) & im->pmask) {
        if (im->pairs[i] == k) return true;
        if (!im->pairs[i]) return false;
    }
}

pare_status spm_build(pare_vocab *v) {
    tok_impl *im = tok_im(v);
    char b[8];
    for (int c = 0; c < 256; c++) {
        snprintf(b, sizeof b, "<0x%02X>", c);
        int32_t id = vocab_find(v, b, 6);
        if (id < 0) { b[0] = (char)c; id = vocab_find(v, b, 1); }
        im->byte_tok[c] = id;
    }
    size_t total = 0;
    for (int id = 0; id < v->n_tokens; id++) total += im->len[id];
    im->pmask = (uint32_t)(tok_pow2(total * 2 + 16) - 1);
    if (!(im->pairs = pare_calloc((size_t)im->pmask + 1, sizeof(uint64_t)))) return PARE_ERR_NOMEM;
    for (int id = 0; id < v->n_tokens; id++) {
        const char *t = v->text[id];
        size_t n = im->len[id], off = 0, pl = 0;
        const char *prev = NULL;
        while (off < n) {
            size_t l = tok_utf8_len((unsigned char)t[off]);
            if (l > n - off) l = n - off;
            if (prev) {
                uint64_t k = pair_key(pack_char(prev, pl), pack_char(t + off, l));
                uint32_t i = (uint32_t)k & im->pmask;
                while (im->pairs[i] && im->pairs[i] != k) i = (i + 1) & im->pmask;
                im->pairs[i] = k;
            }
            prev = t + off;
            pl = l;
            off += l;
        }
    }
    return PARE_OK;
}

static pare_status piece(const pare_vocab *v, const char *p, size_t n, work *w, tok_cache *c, tok_ivec *out) {
    pare_status st;
    uint64_t h = 0;
    if (n <= TOK_CACHE_MAX_LEN) {
        h = tok_hash_str(p, n);
        int r = tok_cache_get(c, p, n, h, out);
        if (r) return r > 0 ? PARE_OK : pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
    }
    size_t before = out->n;
    if ((st = merge_chunk(v, p, n, w, out))) return st;
    if (n <= TOK_CACHE_MAX_LEN) tok_cache_put(c, p, n, h, out->v ? out->v + before : NULL, out->n - before);
    return PARE_OK;
}

/* ' ' -> U+2581 (llama_escape_whitespace), with a leading one for the prefix; *out malloc'ed */
static pare_status escape(const char *text, size_t len, bool prefix, char **out, size_t *n_out) {
    size_t spaces = prefix;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t n = len + (prefix ? 1 : 0) + spaces * 2;
    *out = NULL;
    *n_out = n;
    if (n == 0) return PARE_OK;
    if (n > UINT32_MAX / 2) return pare_fail(PARE_ERR_ARG, "tokenize: text of %zu bytes is too long", len);
    char *s = malloc(n);
    if (!s) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
    size_t o = 0;
    if (prefix) { memcpy(s, "\xe2\x96\x81", 3); o = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(s + o, "\xe2\x96\x81", 3); o += 3; }
        else s[o++] = text[i];
    }
    *out = s;
    return PARE_OK;
}

pare_status spm_tokenize_ref(const pare_vocab *v, const char *text, size_t len, bool prefix, tok_ivec *out) {
    char *s;
    size_t n;
    pare_status st = escape(text, len, prefix, &s, &n);
    if (st || n == 0) return st;
    work w = {0};
    st = merge_chunk(v, s, n, &w, out);
    free(w.s);
    free(w.h);
    free(s);
    return st;
}

pare_status spm_tokenize(const pare_vocab *v, const char *text, size_t len, bool prefix, tok_ivec *out) {
    char *s;
    size_t n;
    pare_status st = escape(text, len, prefix, &s, &n);
    if (st || n == 0) return st;
    const tok_impl *im = tok_im(v);
    work w = {0};
    tok_cache c = {0};
    size_t start = 0, prev = 0, pl = 0;
    for (size_t off = 0; off < n && !st;) {
        size_t l = tok_utf8_len((unsigned char)s[off]);
        if (l > n - off) l = n - off;
        if (off > start && !pair_has(im, pair_key(pack_char(s + prev, pl), pack_char(s + off, l)))) {
            st = piece(v, s + start, off - start, &w, &c, out);
            start = off;
        }
        prev = off;
        pl = l;
        off += l;
    }
    if (!st) st = piece(v, s + start, n - start, &w, &c, out);
    free(w.s);
    free(w.h);
    tok_cache_free(&c);
    free(s);
    return st;
}

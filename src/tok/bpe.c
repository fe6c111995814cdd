/* bpe.c - byte-level BPE tokenization, as llama.cpp's llm_tokenizer_bpe.
 *
 *  1. The text is read as code points the way llama.cpp's unicode_cpts_from_utf8 does (a
 *     byte that does not start a well-formed sequence becomes U+FFFD) and written back.
 *  2. Pre-tokenizer: the regexes of tokenizer.ggml.pre, applied one after another; each
 *     regex runs on every piece the previous ones left (its own subject, so "$" and
 *     lookaheads stop at the piece's end) and cuts it into the matches and the gaps
 *     between them. PCRE2 in UTF + UCP mode gives \s, \p{L}, \p{N}, \p{P} their Unicode
 *     meaning - what llama.cpp gets from its own tables.
 *  3. Each piece is byte-encoded (GPT-2's bytes_to_unicode), split into characters and merged
 *     by merge rank (lowest first; equal ranks: leftmost first), then looked up; a symbol
 *     that is not a token falls back to its single-byte tokens (those that exist).
 *  With ignore_merges (llama-3), a piece that is a token as a whole is taken as it is.
 *  A piece seen before in the same call (up to 64 bytes) takes its tokens from a cache. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_impl.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* ---- the pre-tokenizers (regexes from llama.cpp's llama-vocab.cpp) -------------------------- */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                                        \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| " \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3_HF                                                                                     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                         \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "      \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2_HF                                                                                      \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"     \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* DeepSeek LLM's letters: the cased letters, spelled out as in its tokenizer.json */
#define RE_DS_LETTERS                                                                                     \
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF"       \
    "\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5"       \
    "\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA"           \
    "\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45"           \
    "\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE"              \
    "\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC"           \
    "\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139"         \
    "\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3"       \
    "\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06"           \
    "\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-\U000104D3"                     \
    "\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF"                  \
    "\U0001E900-\U0001E943]+"
#define RE_DS_PUNCT "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+"
#define RE_CJK "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+"
#define RE_PORO " ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+"

typedef struct pre_def {
    const char *name;            /* the name written to GGUF */
    const char *names;           /* every tokenizer.ggml.pre name that means it, '|'-separated */
    int n;
    const char *re[6];           /* llama.cpp's spelling */
    const char *hf[6];           /* the same regex as a tokenizer.json spells it, if different */
    bool ignore_merges;
} pre_def;

static const pre_def PRES[] = {
    {"gpt-2", "gpt-2|gpt2|phi-2|jina-es|jina-de|jina-v2-es|jina-v2-de|jina-v2-code|mpt|olmo|jais", 1, {RE_GPT2}, {0}, false},
    {"llama-bpe", "llama-bpe|llama3|llama-v3", 1, {RE_LLAMA3}, {RE_LLAMA3_HF}, true},
    {"deepseek-llm", "deepseek-llm", 6, {"[\r\n]", RE_DS_LETTERS, RE_DS_PUNCT, "\\s+$", RE_CJK, "\\p{N}+"}, {0}, false},
    {"deepseek-coder", "deepseek-coder", 5, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}, {0}, false},
    {"falcon", "falcon", 3, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, {0}, false},
    {"starcoder", "starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", 2, {"\\p{N}", RE_GPT2}, {0}, false},
    {"qwen2", "qwen2|stablelm2|deepseek-r1-qwen", 1, {RE_QWEN2}, {RE_QWEN2_HF}, false},
    {"dbrx", "dbrx|smaug-bpe|chatglm-bpe", 1, {RE_LLAMA3}, {RE_LLAMA3_HF}, false},
    {"poro-chat", "poro-chat|bloom|gpt3-finnish", 1, {RE_PORO}, {0}, false},
    {"viking", "viking", 2, {RE_PORO, "\\p{N}"}, {0}, false},
    {"default", "default", 4, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, {0}, false},
};
#define N_PRES (int)(sizeof PRES / sizeof PRES[0])

static bool name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, name, n)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static const pre_def *find_pre(const char *pre) {
    if (!pre || !*pre) pre = "default";
    for (int i = 0; i < N_PRES; i++)
        if (name_in(PRES[i].names, pre)) return &PRES[i];
    return NULL;
}

bool bpe_pre_known(const char *pre) { return find_pre(pre) != NULL; }

const char *const *bpe_pre_regexes(const char *pre, int *n_out) {
    const pre_def *d = find_pre(pre);
    *n_out = d ? d->n : 0;
    return d ? d->re : NULL;
}

const char *bpe_pre_regex_hf(const char *pre, int k) {
    const pre_def *d = find_pre(pre);
    if (!d || k < 0 || k >= d->n) return NULL;
    return d->hf[k] ? d->hf[k] : d->re[k];
}

bool bpe_pre_ignore_merges(const char *pre) {
    const pre_def *d = find_pre(pre);
    return d && d->ignore_merges;
}

const char *bpe_pre_from_regexes(const char *const *re, int n) {
    for (int i = 0; i < N_PRES; i++) {
        const pre_def *d = &PRES[i];
        if (d->n != n) continue;
        int k = 0;
        while (k < n && (!strcmp(re[k], d->re[k]) || (d->hf[k] && !strcmp(re[k], d->hf[k])))) k++;
        if (k == n) return d->name;
    }
    return NULL;
}

/* ---- GPT-2 bytes_to_unicode ----------------------------------------------------------------- */
/* printable bytes map to themselves; the other 68 (0-32, 127-160, 173) to U+0100.. in order */
static uint32_t byte_to_cp(unsigned b) {
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
    if (b == 173) return 256 + 67;
    return b;
}
static int cp_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 255 && cp != 173)) return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(127 + k - 33);
    return 173;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* llama.cpp's unicode_cpt_from_utf8: lead byte decides the length, continuation bytes are
 * checked, nothing else (overlong forms and surrogates pass). -1: not a character. */
static int64_t cpt_from_utf8(const unsigned char *s, size_t n, size_t *off) {
    size_t i = *off;
    unsigned c = s[i];
    if (!(c & 0x80)) { *off = i + 1; return c; }
    if (!(c & 0x40)) return -1;
    if (!(c & 0x20)) {
        if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return -1;
        *off = i + 2;
        return ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
    }
    if (!(c & 0x10)) {
        if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return -1;
        *off = i + 3;
        return ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    }
    if (!(c & 0x08)) {
        if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return -1;
        *off = i + 4;
        return ((int64_t)(c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    }
    return -1;
}

size_t bpe_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int64_t cp = cpt_from_utf8(u, n, &j);
        int b = cp < 0 ? -1 : cp_to_byte((uint32_t)cp);
        if (cp < 0) j = i + 1;
        if (b >= 0) {
            if (o < cap) out[o] = (char)b;
            o++;
        } else { /* not a byte-level character: keep it as it is */
            for (size_t k = i; k < j; k++, o++)
                if (o < cap) out[o] = s[k];
        }
        i = j;
    }
    return o;
}

/* ---- build ------------------------------------------------------------------------------------ */
pare_status bpe_build(pare_vocab *v) {
    tok_impl *im = tok_im(v);
    const pre_def *d = find_pre(v->pre);
    if (!d) return pare_fail(PARE_ERR_UNSUPPORTED, "unknown BPE pre-tokenizer '%s'", v->pre);
    im->ignore_merges = d->ignore_merges;
    for (int i = 0; i < d->n; i++) {
        int err;
        PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &eoff, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            return pare_fail(PARE_ERR_UNSUPPORTED, "pre-tokenizer '%s': regex %d: %s at %zu", v->pre ? v->pre : "default",
                             i, (const char *)msg, (size_t)eoff);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter if JIT is not there */
        im->re[im->n_re++] = re;
    }
    for (unsigned b = 0; b < 256; b++) im->byte_enc_len[b] = (uint8_t)put_utf8(byte_to_cp(b), im->byte_enc[b]);
    /* merges: "left right", split at the first space after the first byte */
    int nm = v->n_merges;
    im->mmask = tok_pow2((uint64_t)nm * 2) - 1;
    im->mtab = pare_calloc((size_t)im->mmask + 1, sizeof(uint32_t));
    im->msplit = pare_calloc(nm ? (size_t)nm : 1, sizeof(uint32_t));
    im->mlen = pare_calloc(nm ? (size_t)nm : 1, sizeof(uint32_t));
    if (!im->mtab || !im->msplit || !im->mlen) return PARE_ERR_NOMEM;
    for (int r = 0; r < nm; r++) {
        const char *m = v->merges[r];
        if (!m) return pare_fail(PARE_ERR_FORMAT, "merge %d is missing", r);
        size_t l = strlen(m);
        const char *sp = l > 1 ? strchr(m + 1, ' ') : NULL;
        if (!sp || l > UINT32_MAX / 2) continue; /* llama.cpp keeps it as ("", ""): never used */
        uint32_t split = (uint32_t)(sp - m);
        uint32_t i = tok_slot(tok_hash(TOK_HASH_SEED, m, l)) & im->mmask;
        bool dup = false;
        for (;; i = (i + 1) & im->mmask) {
            uint32_t e = im->mtab[i];
            if (!e) break;
            if (im->mlen[e - 1] == l && im->msplit[e - 1] == split && !memcmp(v->merges[e - 1], m, l)) { dup = true; break; }
        }
        im->msplit[r] = split;
        im->mlen[r] = (uint32_t)l;
        if (!dup) im->mtab[i] = (uint32_t)r + 1; /* the first of equal merges keeps its rank */
    }
    return PARE_OK;
}

void bpe_release(tok_impl *im) {
    for (int i = 0; i < im->n_re; i++) pcre2_code_free(im->re[i]);
    im->n_re = 0;
}

/* ---- tokenize --------------------------------------------------------------------------------- */
typedef struct span { size_t off, len; } span;
typedef struct spanv { span *s; size_t n, cap; } spanv;

static pare_status span_push(spanv *a, size_t off, size_t len) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        span *p = realloc(a->s, nc * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        a->s = p;
        a->cap = nc;
    }
    a->s[a->n++] = (span){off, len};
    return PARE_OK;
}

typedef struct bsym { uint32_t off, n; int32_t prev, next; } bsym;
typedef struct bbig { int32_t rank, left, right; uint32_t size; } bbig;
typedef struct bwork {
    char *w; size_t cap_w;
    bsym *s; size_t cap_s;
    bbig *h; size_t nh, cap_h;
} bwork;

static inline bool bbig_first(const bbig *a, const bbig *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static pare_status bheap_push(bwork *w, bbig b) {
    if (w->nh == w->cap_h) {
        size_t nc = w->cap_h ? w->cap_h * 2 : 64;
        bbig *p = realloc(w->h, nc * sizeof *p);
        if (!p) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        w->h = p;
        w->cap_h = nc;
    }
    size_t i = w->nh++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!bbig_first(&b, &w->h[par])) break;
        w->h[i] = w->h[par];
        i = par;
    }
    w->h[i] = b;
    return PARE_OK;
}

static bbig bheap_pop(bwork *w) {
    bbig top = w->h[0], last = w->h[--w->nh];
    size_t i = 0, n = w->nh;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bbig_first(&w->h[c + 1], &w->h[c])) c++;
        if (!bbig_first(&w->h[c], &last)) break;
        w->h[i] = w->h[c];
        i = c;
    }
    if (n) w->h[i] = last;
    return top;
}

static pare_status add_bigram(const pare_vocab *v, bwork *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return PARE_OK;
    const bsym *L = &w->s[l], *R = &w->s[r];
    int32_t rank = vocab_merge_rank(v, w->w + L->off, L->n, w->w + R->off, R->n);
    if (rank < 0) return PARE_OK;
    return bheap_push(w, (bbig){rank, l, r, L->n + R->n});
}

/* one pre-tokenized piece (raw bytes) */
static pare_status bpe_word(const pare_vocab *v, const char *p, size_t n, bwork *w, tok_ivec *out) {
    const tok_impl *im = tok_im(v);
    pare_status st;
    if (n * 2 > w->cap_w) {
        size_t nc = n * 2 + 64;
        char *q = realloc(w->w, nc);
        bsym *s = q ? realloc(w->s, nc * sizeof *s) : NULL;
        if (q) w->w = q;
        if (s) w->s = s;
        if (!q || !s) return pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
        w->cap_w = w->cap_s = nc;
    }
    /* byte-encode: one symbol per byte */
    size_t o = 0;
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)p[i];
        memcpy(w->w + o, im->byte_enc[b], im->byte_enc_len[b]);
        w->s[ns] = (bsym){(uint32_t)o, im->byte_enc_len[b], ns - 1, i + 1 == n ? -1 : ns + 1};
        o += im->byte_enc_len[b];
        ns++;
    }
    if (im->ignore_merges) {
        int32_t id = vocab_find(v, w->w, o);
        if (id >= 0) return tok_ivec_push(out, id);
    }
    w->nh = 0;
    for (int32_t i = 1; i < ns; i++)
        if ((st = add_bigram(v, w, i - 1, i))) return st;
    while (w->nh) {
        bbig b = bheap_pop(w);
        bsym *L = &w->s[b.left], *R = &w->s[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue; /* outdated */
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) w->s[R->next].prev = b.left;
        if ((st = add_bigram(v, w, L->prev, b.left)) || (st = add_bigram(v, w, b.left, L->next))) return st;
    }
    for (int32_t i = 0; i < ns; i++) {
        const bsym *s = &w->s[i];
        if (!s->n) continue;
        int32_t id = vocab_find(v, w->w + s->off, s->n);
        if (id >= 0) { if ((st = tok_ivec_push(out, id))) return st; continue; }
        for (uint32_t j = 0; j < s->n; j++) { /* llama.cpp: each byte that is a token by itself */
            id = vocab_find(v, w->w + s->off + j, 1);
            if (id >= 0 && (st = tok_ivec_push(out, id))) return st;
        }
    }
    return PARE_OK;
}

pare_status bpe_tokenize(const pare_vocab *v, const char *text, size_t len, tok_ivec *out) {
    const tok_impl *im = tok_im(v);
    if (len == 0) return PARE_OK;
    if (len > SIZE_MAX / 4) return pare_fail(PARE_ERR_ARG, "tokenize: text too long");
    /* canonical text (what llama.cpp re-encodes) and a copy valid for PCRE2 (same offsets) */
    char *cb = malloc(len * 3 + 4), *mb = malloc(len * 3 + 4);
    spanv a = {0}, b = {0};
    bwork w = {0};
    tok_cache cache = {0};
    pcre2_match_data *md = NULL;
    pare_status st = PARE_OK;
    if (!cb || !mb) { st = pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory"); goto done; }
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        int64_t cp = cpt_from_utf8(u, len, &i);
        if (cp < 0) { i++; cp = 0xFFFD; }
        if (cp > 0x10FFFF) cp = 0xFFFD;
        size_t k = put_utf8((uint32_t)cp, cb + n);
        if (cp >= 0xD800 && cp <= 0xDFFF) put_utf8(0xFFFD, mb + n); /* same length: 3 bytes */
        else memcpy(mb + n, cb + n, k);
        n += k;
    }
    if ((st = span_push(&a, 0, n))) goto done;
    md = pcre2_match_data_create(4, NULL);
    if (!md) { st = pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory"); goto done; }
    for (int r = 0; r < im->n_re; r++) {
        const pcre2_code *re = im->re[r];
        b.n = 0;
        for (size_t k = 0; k < a.n; k++) {
            size_t off = a.s[k].off, fl = a.s[k].len, pos = 0, last = 0;
            const PCRE2_SPTR subj = (PCRE2_SPTR)(mb + off);
            while (pos < fl) {
                int rc = pcre2_match(re, subj, fl, pos, PCRE2_NO_UTF_CHECK, md, NULL);
                if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                    rc = pcre2_match(re, subj, fl, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[160];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    st = pare_fail(PARE_ERR_UNSUPPORTED, "tokenize: pre-tokenizer regex %d: %s", r, (const char *)msg);
                    goto done;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (ms > last && (st = span_push(&b, off + last, ms - last))) goto done;
                if (me > ms && (st = span_push(&b, off + ms, me - ms))) goto done;
                last = me > last ? me : last;
                if (me > ms) pos = me;
                else { /* an empty match: step over one character */
                    pos = ms + 1;
                    while (pos < fl && (mb[off + pos] & 0xC0) == 0x80) pos++;
                }
            }
            if (last < fl && (st = span_push(&b, off + last, fl - last))) goto done;
        }
        spanv t = a; a = b; b = t;
    }
    for (size_t k = 0; k < a.n && !st; k++) {
        const char *p = cb + a.s[k].off;
        size_t wl = a.s[k].len;
        uint64_t h = 0;
        if (wl <= TOK_CACHE_MAX_LEN) { /* a word seen before: its tokens again */
            h = tok_hash_str(p, wl);
            int r = tok_cache_get(&cache, p, wl, h, out);
            if (r < 0) st = pare_fail(PARE_ERR_NOMEM, "tokenize: out of memory");
            if (r) continue;
        }
        size_t before = out->n;
        st = bpe_word(v, p, wl, &w, out);
        if (!st && wl <= TOK_CACHE_MAX_LEN) tok_cache_put(&cache, p, wl, h, out->v ? out->v + before : NULL, out->n - before);
    }
done:
    pcre2_match_data_free(md);
    free(a.s); free(b.s);
    free(w.w); free(w.s); free(w.h);
    tok_cache_free(&cache);
    free(cb); free(mb);
    return st;
}

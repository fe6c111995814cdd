/* mc.c - zero-shot multiple-choice evaluation (lm-evaluation-harness style log-likelihood
 * scoring: acc and acc_norm) and story-cloze tasks made from any text.
 *
 * Scoring an item: the context is run through the model once; each choice then continues
 * from the cached context (its tokens at the positions after the context), so an item costs
 * one prefill plus the choices' tokens. A choice's score is the sum of the log-probabilities
 * of its tokens; acc takes the choice with the largest sum, acc_norm the largest sum divided
 * by the choice's length in UTF-8 bytes (see mc_choice_len). */
#include "eval.h"

#include "model/forward.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- task files -------------------------------------------------------------------------- */

void mc_set_free(pare_mc_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        pare_mc_item *it = &s->items[i];
        free(it->context); free(it->task); free(it->subject);
        for (int k = 0; k < it->n_choices; k++) free(it->choices[k]);
        free(it->choices);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Fill it from the object j of line `line`; errors name name:line. */
static pare_status parse_item(const cJSON *j, int format, const char *name, const char *task, int line, pare_mc_item *it) {
    memset(it, 0, sizeof *it);
    it->line = line;
    const char *subj = NULL, *tk = task;
    if (format == MC_FORMAT_MMLU) {
        const char *in = jstr(j, "input"), *o = jstr(j, "output");
        if (!in) return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'input' (a string) is missing", name, line);
        if (!o) return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'output' (a string) is missing", name, line);
        while (isspace((unsigned char)*o)) o++;
        size_t ol = strlen(o);
        while (ol && isspace((unsigned char)o[ol - 1])) ol--;
        if (ol != 1 || o[0] < 'A' || o[0] > 'D')
            return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'output' must be one of A, B, C, D (got \"%s\")", name, line, o);
        subj = jstr(j, "subject");
        it->context = pare_strdup(in);
        it->n_choices = 4;
        it->gold = o[0] - 'A';
        it->choices = pare_calloc(4, sizeof(char *));
        if (!it->context || !it->choices) return PARE_ERR_NOMEM;
        for (int k = 0; k < 4; k++) {
            char c[3] = {' ', (char)('A' + k), 0};
            if (!(it->choices[k] = pare_strdup(c))) return PARE_ERR_NOMEM;
        }
        tk = "mmlu";
    } else {
        const char *ctx = jstr(j, "context");
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices"), *g = cJSON_GetObjectItemCaseSensitive(j, "gold");
        if (!ctx) return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'context' (a string) is missing", name, line);
        if (!cJSON_IsArray(ch)) return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'choices' (an array of strings) is missing", name, line);
        int n = cJSON_GetArraySize(ch);
        if (n < 2) return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'choices' has %d entries, at least 2 are needed", name, line, n);
        if (!cJSON_IsNumber(g)) return pare_fail(PARE_ERR_FORMAT, "%s:%d: 'gold' (an integer index) is missing", name, line);
        if (g->valuedouble != floor(g->valuedouble) || g->valuedouble < 0 || g->valuedouble >= n)
            return pare_fail(PARE_ERR_FORMAT, "%s:%d: gold %g is out of range (%d choices, indices 0..%d)", name, line,
                             g->valuedouble, n, n - 1);
        it->context = pare_strdup(ctx);
        it->choices = pare_calloc((size_t)n, sizeof(char *));
        if (!it->context || !it->choices) return PARE_ERR_NOMEM;
        it->n_choices = n;
        it->gold = (int)g->valuedouble;
        int k = 0;
        for (const cJSON *c = ch->child; c; c = c->next, k++) {
            if (!cJSON_IsString(c)) return pare_fail(PARE_ERR_FORMAT, "%s:%d: choice %d is not a string", name, line, k);
            if (!c->valuestring[0]) return pare_fail(PARE_ERR_FORMAT, "%s:%d: choice %d is empty", name, line, k);
            if (!(it->choices[k] = pare_strdup(c->valuestring))) return PARE_ERR_NOMEM;
        }
        subj = jstr(j, "subject");
        if (jstr(j, "task")) tk = jstr(j, "task");
    }
    if (subj && !(it->subject = pare_strdup(subj))) return PARE_ERR_NOMEM;
    if (!(it->task = pare_strdup(tk))) return PARE_ERR_NOMEM;
    return PARE_OK;
}

pare_status mc_parse(const char *buf, size_t len, const char *name, int format, int limit, pare_mc_set *out) {
    memset(out, 0, sizeof *out);
    /* default task name: the file's base name without .jsonl / .json */
    const char *b = strrchr(name, '/');
    b = b ? b + 1 : name;
    char task[256];
    snprintf(task, sizeof task, "%s", b);
    size_t tl = strlen(task);
    if (tl > 6 && !strcmp(task + tl - 6, ".jsonl")) task[tl - 6] = 0;
    else if (tl > 5 && !strcmp(task + tl - 5, ".json")) task[tl - 5] = 0;
    int cap = 0, line = 0;
    pare_status st = PARE_OK;
    for (size_t p = 0; p < len && !st;) {
        const char *s = buf + p;
        const char *e = memchr(s, '\n', len - p);
        size_t n = e ? (size_t)(e - s) : len - p;
        p += n + 1;
        line++;
        size_t q = 0;
        while (q < n && isspace((unsigned char)s[q])) q++;
        if (q == n) continue; /* blank line */
        if (limit > 0 && out->n >= limit) break;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
        if (j && end) /* nothing but whitespace may follow the object */
            for (; end < s + n; end++) if (!isspace((unsigned char)*end)) { cJSON_Delete(j); j = NULL; break; }
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            st = pare_fail(PARE_ERR_FORMAT, "%s:%d: not a JSON object (malformed JSON line)", name, line);
            break;
        }
        if (out->format == MC_FORMAT_AUTO) {
            out->format = format;
            if (format == MC_FORMAT_AUTO) {
                if (cJSON_GetObjectItemCaseSensitive(j, "input") && cJSON_GetObjectItemCaseSensitive(j, "output"))
                    out->format = MC_FORMAT_MMLU;
                else if (cJSON_GetObjectItemCaseSensitive(j, "context") && cJSON_GetObjectItemCaseSensitive(j, "choices"))
                    out->format = MC_FORMAT_LMEVAL;
                else {
                    cJSON_Delete(j);
                    st = pare_fail(PARE_ERR_FORMAT, "%s:%d: cannot tell the format: expected keys input/output (mmlu) or "
                                   "context/choices/gold (lm-eval); see --format", name, line);
                    break;
                }
            }
        }
        if (out->n == cap) {
            int nc = cap ? 2 * cap : 256;
            pare_mc_item *ni = realloc(out->items, (size_t)nc * sizeof *ni);
            if (!ni) { cJSON_Delete(j); st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", name); break; }
            out->items = ni; cap = nc;
        }
        st = parse_item(j, out->format, name, task, line, &out->items[out->n]);
        out->n++; /* a partly filled item is freed with the rest */
        cJSON_Delete(j);
    }
    if (!st && out->n == 0) st = pare_fail(PARE_ERR_FORMAT, "%s: no items (the file is empty)", name);
    if (st) mc_set_free(out);
    return st;
}

pare_status mc_load(const char *path, int format, int limit, pare_mc_set *out) {
    char *buf; size_t len;
    memset(out, 0, sizeof *out);
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    st = mc_parse(buf, len, path, format, limit, out);
    free(buf);
    return st;
}

/* ---- scoring ------------------------------------------------------------------------------ */

/* lm-eval's acc_norm divides by len(choice) in characters; pare divides by UTF-8 bytes of
 * the choice string as the task gives it (leading space included). Same for ASCII. */
double mc_choice_len(const char *choice) {
    size_t n = strlen(choice);
    return n ? (double)n : 1.0;
}

int mc_argmax(const double *ll, const double *len, int n) {
    int best = 0;
    double bv = len ? ll[0] / len[0] : ll[0];
    for (int k = 1; k < n; k++) {
        double v = len ? ll[k] / len[k] : ll[k];
        if (v > bv) { bv = v; best = k; }
    }
    return best;
}

pare_status mc_score_ids(pare_ctx *c, int V, const int32_t *ctx_ids, int n_ctx, const int32_t *const *cont,
                         const int *n_cont, int n_choices, double *ll) {
    if (n_ctx < 1) return pare_fail(PARE_ERR_ARG, "multiple choice: the context has no tokens");
    int maxc = 0;
    for (int k = 0; k < n_choices; k++) {
        if (n_cont[k] < 1) return pare_fail(PARE_ERR_ARG, "multiple choice: choice %d has no tokens", k);
        if (n_cont[k] > maxc) maxc = n_cont[k];
    }
    float *lg = pare_calloc((size_t)maxc, (size_t)V * sizeof(float)); /* row 0: after the context */
    if (!lg) return PARE_ERR_NOMEM;
    pare_status st = PARE_OK;
    /* the prefill: all but the context's last token without logits, then the last one */
    if (n_ctx > 1) st = pare_forward(c, ctx_ids, n_ctx - 1, 0, NULL);
    if (!st) st = pare_forward(c, ctx_ids + n_ctx - 1, 1, n_ctx - 1, lg);
    float *rows = lg + V;
    for (int k = 0; k < n_choices && !st; k++) {
        double s = -nll_of(lg, V, cont[k][0]);
        /* the choice's tokens but its last continue the cached context; their logits
         * predict the choice's next tokens */
        if (n_cont[k] > 1) st = pare_forward(c, cont[k], n_cont[k] - 1, n_ctx, rows);
        for (int j = 1; j < n_cont[k] && !st; j++) s -= nll_of(rows + (size_t)(j - 1) * V, V, cont[k][j]);
        ll[k] = s;
    }
    free(lg);
    return st;
}

/* Tokens of an item and its scores. */
static pare_status score_item(pare_ctx *c, const pare_model *m, const pare_mc_item *it, int max_len, double *ll,
                              int64_t *tokens, int *fallbacks, int *truncated) {
    const pare_vocab *v = m->vocab;
    size_t clen = strlen(it->context), keep = clen;
    /* lm-eval: the context's trailing whitespace goes to the front of every choice */
    while (keep > 0 && isspace((unsigned char)it->context[keep - 1])) keep--;
    int nch = it->n_choices;
    int32_t *cids = NULL, **cont = pare_calloc((size_t)nch, sizeof(int32_t *));
    int *ncont = pare_calloc((size_t)nch, sizeof(int));
    char *whole = NULL;
    size_t nc = 0;
    pare_status st = (!cont || !ncont) ? PARE_ERR_NOMEM : PARE_OK;
    if (!st) st = pare_tokenize(v, it->context, keep, 1, &cids, &nc);
    if (!st && nc == 0) { /* an empty context and no BOS: lm-eval uses end-of-text */
        if (v->eos < 0) st = pare_fail(PARE_ERR_ARG, "line %d: empty context and the vocabulary has neither BOS nor EOS", it->line);
        else { free(cids); cids = pare_malloc(sizeof(int32_t)); if (!cids) st = PARE_ERR_NOMEM; else { cids[0] = v->eos; nc = 1; } }
    }
    int maxc = 0;
    for (int k = 0; k < nch && !st; k++) {
        const char *ch = it->choices[k];
        size_t chl = strlen(ch);
        free(whole);
        whole = pare_malloc(clen + chl + 1);
        if (!whole) { st = PARE_ERR_NOMEM; break; }
        memcpy(whole, it->context, clen);
        memcpy(whole + clen, ch, chl + 1);
        int32_t *w; size_t nw;
        if ((st = pare_tokenize(v, whole, clen + chl, 1, &w, &nw))) break;
        if (nw > nc && !memcmp(w, cids, nc * sizeof(int32_t))) {
            memmove(w, w + nc, (nw - nc) * sizeof(int32_t));
            cont[k] = w; ncont[k] = (int)(nw - nc);
        } else { /* the context's tokens are not a prefix: the choice tokenized on its own */
            free(w);
            size_t n1;
            if ((st = pare_tokenize(v, whole + keep, clen - keep + chl, 0, &cont[k], &n1))) break;
            ncont[k] = (int)n1;
            (*fallbacks)++;
            if (n1 == 0) { st = pare_fail(PARE_ERR_ARG, "line %d: choice %d has no tokens", it->line, k); break; }
        }
        if (ncont[k] > maxc) maxc = ncont[k];
    }
    if (!st && maxc + 1 > max_len)
        st = pare_fail(PARE_ERR_ARG, "line %d: a choice of %d tokens does not fit a context of %d tokens (see --ctx)", it->line,
                       maxc, max_len);
    if (!st) {
        int room = max_len - (maxc - 1); /* positions for the context */
        int n = (int)nc;
        if (n > room) { /* keep BOS (if any), drop the oldest tokens after it */
            int first = (v->bos >= 0 && cids[0] == v->bos) ? 1 : 0;
            memmove(cids + first, cids + n - (room - first), (size_t)(room - first) * sizeof(int32_t));
            n = room;
            (*truncated)++;
        }
        st = mc_score_ids(c, m->n_vocab, cids, n, (const int32_t *const *)cont, ncont, nch, ll);
        *tokens += n;
        for (int k = 0; k < nch; k++) *tokens += ncont[k] - 1;
    }
    if (cont) for (int k = 0; k < nch; k++) free(cont[k]);
    free(cont); free(ncont); free(cids); free(whole);
    return st;
}

static void group_finish(pare_mc_group *g) {
    double n = g->n;
    g->acc = n > 0 ? g->correct / n : 0;
    g->acc_norm = n > 0 ? g->correct_norm / n : 0;
    /* lm-eval's stderr of the mean with the sample standard deviation: sqrt(p(1-p)/(n-1)) */
    g->acc_stderr = n > 1 ? sqrt(g->acc * (1 - g->acc) / (n - 1)) : NAN;
    g->acc_norm_stderr = n > 1 ? sqrt(g->acc_norm * (1 - g->acc_norm) / (n - 1)) : NAN;
}

/* The group named name in *gs (added, in order of first appearance, when new). */
static pare_mc_group *group_get(pare_mc_group **gs, int *n, const char *name) {
    for (int i = 0; i < *n; i++) if (!strcmp((*gs)[i].name, name)) return &(*gs)[i];
    pare_mc_group *ng = realloc(*gs, (size_t)(*n + 1) * sizeof *ng);
    if (!ng) return NULL;
    *gs = ng;
    pare_mc_group *g = &ng[(*n)++];
    memset(g, 0, sizeof *g);
    if (!(g->name = pare_strdup(name))) { (*n)--; return NULL; }
    return g;
}

void mc_result_free(pare_mc_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tasks; i++) free(r->tasks[i].name);
    for (int i = 0; i < r->n_subjects; i++) free(r->subjects[i].name);
    free(r->tasks); free(r->subjects); free(r->total.name);
    free(r->pred); free(r->pred_norm); free(r->ll); free(r->choice_off);
    memset(r, 0, sizeof *r);
}

pare_status eval_mc(const pare_model *m, const pare_mc_set *s, int max_len, int show_progress, pare_mc_result *out) {
    memset(out, 0, sizeof *out);
    if (!m->vocab) return pare_fail(PARE_ERR_ARG, "the model has no tokenizer");
    if (max_len < 2) return pare_fail(PARE_ERR_ARG, "the context must hold at least 2 tokens (got %d)", max_len);
    out->pred = pare_calloc((size_t)s->n + 1, sizeof(int));
    out->pred_norm = pare_calloc((size_t)s->n + 1, sizeof(int));
    out->choice_off = pare_calloc((size_t)s->n + 1, sizeof(int));
    if (!out->pred || !out->pred_norm || !out->choice_off) { mc_result_free(out); return PARE_ERR_NOMEM; }
    int maxch = 1;
    for (int i = 0; i < s->n; i++) {
        out->choice_off[i + 1] = out->choice_off[i] + s->items[i].n_choices;
        if (s->items[i].n_choices > maxch) maxch = s->items[i].n_choices;
    }
    out->ll = pare_calloc((size_t)out->choice_off[s->n] + 1, sizeof(double));
    double *len = pare_calloc((size_t)maxch, sizeof(double));
    if (!out->ll || !len || !(out->total.name = pare_strdup("total"))) { free(len); mc_result_free(out); return PARE_ERR_NOMEM; }
    pare_ctx *c;
    pare_status st = pare_ctx_new(m, max_len, &c);
    if (st) { free(len); mc_result_free(out); return st; }
    pare_progress pb;
    progress_start(&pb, "eval-mc", s->n);
    if (!show_progress) pb.enabled = 0;
    double t0 = pare_now();
    for (int i = 0; i < s->n && !st; i++) {
        const pare_mc_item *it = &s->items[i];
        double *ll = out->ll + out->choice_off[i];
        if ((st = score_item(c, m, it, max_len, ll, &out->tokens, &out->fallbacks, &out->truncated))) break;
        for (int k = 0; k < it->n_choices; k++) len[k] = mc_choice_len(it->choices[k]);
        out->pred[i] = mc_argmax(ll, NULL, it->n_choices);
        out->pred_norm[i] = mc_argmax(ll, len, it->n_choices);
        int ok = out->pred[i] == it->gold, okn = out->pred_norm[i] == it->gold;
        pare_mc_group *g[3] = {&out->total, group_get(&out->tasks, &out->n_tasks, it->task),
                               it->subject ? group_get(&out->subjects, &out->n_subjects, it->subject) : &out->total};
        if (!g[1] || !g[2]) { st = pare_fail(PARE_ERR_NOMEM, "out of memory"); break; }
        for (int q = 0; q < 3; q++) {
            if (q == 2 && !it->subject) break;
            g[q]->n++; g[q]->correct += ok; g[q]->correct_norm += okn;
        }
        progress_update(&pb, i + 1);
    }
    progress_end(&pb);
    out->seconds = pare_now() - t0;
    pare_ctx_free(c);
    free(len);
    if (st) { mc_result_free(out); return st; }
    group_finish(&out->total);
    for (int i = 0; i < out->n_tasks; i++) group_finish(&out->tasks[i]);
    for (int i = 0; i < out->n_subjects; i++) group_finish(&out->subjects[i]);
    return PARE_OK;
}

/* ---- story cloze ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rnd_below(uint64_t *s, int n) { return (int)(splitmix64(s) % (uint64_t)n); }

typedef struct { int para, off, len; } cz_sent;   /* a sentence: bytes off..off+len of paragraph para */
typedef struct {
    char **para; int n_para;
    int *first, *count;                           /* per paragraph: its sentences */
    cz_sent *sent; int n_sent;
} cz_text;

static void cz_free(cz_text *t) {
    for (int i = 0; i < t->n_para; i++) free(t->para[i]);
    free(t->para); free(t->first); free(t->count); free(t->sent);
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Append the paragraph made of text[a..b) (whitespace runs -> one space, trimmed). */
static pare_status cz_add_para(cz_text *t, int *cap, const char *s, size_t n) {
    char *p = pare_malloc(n + 1);
    if (!p) return PARE_ERR_NOMEM;
    size_t k = 0;
    int sp = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f') { sp = 1; continue; }
        if (sp && k) p[k++] = ' ';
        sp = 0;
        p[k++] = (char)ch;
    }
    p[k] = 0;
    if (!k) { free(p); return PARE_OK; }
    if (t->n_para == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        char **np = realloc(t->para, (size_t)*cap * sizeof *np);
        if (!np) { free(p); return pare_fail(PARE_ERR_NOMEM, "out of memory"); }
        t->para = np;
    }
    t->para[t->n_para++] = p;
    return PARE_OK;
}

static pare_status cz_split(const char *text, size_t len, cz_text *t) {
    memset(t, 0, sizeof *t);
    /* does the text have a blank line between two non-blank ones? */
    int blank_mode = 0, seen_text = 0, pending_blank = 0;
    for (size_t p = 0; p < len && !blank_mode;) {
        const char *e = memchr(text + p, '\n', len - p);
        size_t n = e ? (size_t)(e - text - p) : len - p;
        if (is_blank(text + p, n)) { if (seen_text) pending_blank = 1; }
        else { if (pending_blank) blank_mode = 1; seen_text = 1; }
        p += n + 1;
    }
    int cap = 0;
    pare_status st = PARE_OK;
    size_t start = 0; /* blank mode: where the current paragraph began */
    for (size_t p = 0; p < len && !st;) {
        const char *e = memchr(text + p, '\n', len - p);
        size_t n = e ? (size_t)(e - text - p) : len - p;
        if (!blank_mode) st = cz_add_para(t, &cap, text + p, n);
        else if (is_blank(text + p, n)) { st = cz_add_para(t, &cap, text + start, p - start); start = p + n + 1; }
        p += n + 1;
    }
    if (!st && blank_mode && start < len) st = cz_add_para(t, &cap, text + start, len - start);
    int scap = 0;
    if (!st && (!(t->first = pare_calloc((size_t)t->n_para + 1, sizeof(int))) ||
                !(t->count = pare_calloc((size_t)t->n_para + 1, sizeof(int)))))
        st = PARE_ERR_NOMEM;
    for (int i = 0; i < t->n_para && !st; i++) {
        const char *s = t->para[i];
        int L = (int)strlen(s), a = 0;
        t->first[i] = t->n_sent;
        for (int j = 0; j <= L && !st; j++) {
            int end = -1;
            if (j == L) { if (a < L) end = L; }
            else if (s[j] == '.' || s[j] == '!' || s[j] == '?') {
                int q = j + 1;
                while (q < L && (s[q] == '.' || s[q] == '!' || s[q] == '?')) q++;
                while (q < L && (s[q] == '"' || s[q] == '\'')) q++;
                if (q == L || s[q] == ' ') end = q;
                j = q - 1;
            }
            if (end < 0) continue;
            if (t->n_sent == scap) {
                scap = scap ? 2 * scap : 4096;
                cz_sent *ns = realloc(t->sent, (size_t)scap * sizeof *ns);
                if (!ns) { st = pare_fail(PARE_ERR_NOMEM, "out of memory"); break; }
                t->sent = ns;
            }
            t->sent[t->n_sent++] = (cz_sent){i, a, end - a};
            t->count[i]++;
            a = end + 1;
            j = end;
        }
    }
    if (st) cz_free(t);
    return st;
}

static int sent_eq(const cz_text *t, int a, int b) {
    const cz_sent *x = &t->sent[a], *y = &t->sent[b];
    return x->len == y->len && !memcmp(t->para[x->para] + x->off, t->para[y->para] + y->off, (size_t)x->len);
}

typedef struct { int para, gold, choice[4]; } cz_item; /* choice: sentence indices */

static int cz_item_cmp(const void *a, const void *b) {
    int x = ((const cz_item *)a)->para, y = ((const cz_item *)b)->para;
    return (x > y) - (x < y);
}

static char *cz_str(const cz_text *t, int para, int off, int len, int space) {
    char *s = malloc((size_t)len + 2);
    if (!s) return NULL;
    if (space) s[0] = ' ';
    memcpy(s + (space ? 1 : 0), t->para[para] + off, (size_t)len);
    s[len + (space ? 1 : 0)] = 0;
    return s;
}

pare_status mc_make_cloze(const char *text, size_t len, int n, int k, uint64_t seed, char **out, size_t *out_len, int *made,
                          int *k_used) {
    *out = NULL; *out_len = 0; *made = 0;
    if (n < 1) return pare_fail(PARE_ERR_ARG, "the number of items must be positive (got %d)", n);
    cz_text t;
    pare_status st = cz_split(text, len, &t);
    if (st) return st;
    int K = k > 0 ? k : 3;
    if (k <= 0) /* lower the default while fewer than n paragraphs have K+1 sentences */
        for (; K > 1; K--) {
            int ne = 0;
            for (int i = 0; i < t.n_para; i++) ne += t.count[i] >= K + 1;
            if (ne >= n) break;
        }
    *k_used = K;
    int *elig = pare_calloc((size_t)t.n_para + 1, sizeof(int));
    cz_item *items = pare_calloc((size_t)n, sizeof(cz_item));
    if (!elig || !items) { free(elig); free(items); cz_free(&t); return PARE_ERR_NOMEM; }
    int ne = 0;
    for (int i = 0; i < t.n_para; i++) if (t.count[i] >= K + 1) elig[ne++] = i;
    uint64_t rng = seed;
    for (int i = ne - 1; i > 0; i--) { int j = rnd_below(&rng, i + 1), x = elig[i]; elig[i] = elig[j]; elig[j] = x; }
    int nm = 0;
    for (int e = 0; e < ne && nm < n; e++) {
        int p = elig[e], truth = t.first[p] + K;
        int d[3], nd = 0;
        for (int tries = 0; tries < 1000 && nd < 3; tries++) {
            int r = rnd_below(&rng, t.n_sent);
            if (t.sent[r].para == p || sent_eq(&t, r, truth)) continue;
            int dup = 0;
            for (int q = 0; q < nd; q++) dup |= sent_eq(&t, r, d[q]);
            if (!dup) d[nd++] = r;
        }
        if (nd < 3) continue; /* too few other sentences: the paragraph is skipped */
        cz_item *it = &items[nm++];
        it->para = p;
        it->gold = rnd_below(&rng, 4);
        for (int c = 0, q = 0; c < 4; c++) it->choice[c] = c == it->gold ? truth : d[q++];
    }
    qsort(items, (size_t)nm, sizeof *items, cz_item_cmp);
    size_t cap = 0, used = 0;
    char *buf = NULL;
    for (int i = 0; i < nm && !st; i++) {
        cz_item *it = &items[i];
        const cz_sent *last = &t.sent[t.first[it->para] + K - 1];
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
        char *ctx = cz_str(&t, it->para, 0, last->off + last->len, 0);
        int ok = o && arr && ctx && cJSON_AddStringToObject(o, "context", ctx);
        free(ctx);
        if (ok) { cJSON_AddItemToObject(o, "choices", arr); arr = NULL; }
        for (int c = 0; c < 4 && ok; c++) {
            const cz_sent *s = &t.sent[it->choice[c]];
            char *ch = cz_str(&t, s->para, s->off, s->len, 1);
            cJSON *js = ch ? cJSON_CreateString(ch) : NULL;
            free(ch);
            ok = js && cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "choices"), js);
        }
        ok = ok && cJSON_AddNumberToObject(o, "gold", it->gold);
        char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o); cJSON_Delete(arr);
        if (!line) { st = pare_fail(PARE_ERR_NOMEM, "out of memory writing the cloze task"); break; }
        size_t ll = strlen(line);
        if (used + ll + 2 > cap) {
            size_t nc = cap ? 2 * cap : 1 << 16;
            while (nc < used + ll + 2) nc *= 2;
            char *nb = realloc(buf, nc);
            if (!nb) { cJSON_free(line); st = pare_fail(PARE_ERR_NOMEM, "out of memory writing the cloze task"); break; }
            buf = nb; cap = nc;
        }
        memcpy(buf + used, line, ll);
        used += ll;
        buf[used++] = '\n';
        buf[used] = 0;
        cJSON_free(line);
    }
    free(elig); free(items); cz_free(&t);
    if (st) { free(buf); return st; }
    if (!buf && !(buf = calloc(1, 1))) return PARE_ERR_NOMEM;
    *out = buf; *out_len = used; *made = nm;
    return PARE_OK;
}

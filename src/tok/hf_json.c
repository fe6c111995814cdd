/* hf_json.c - Hugging Face tokenizer.json (byte-level BPE) and tokenizer_config.json, read
 * and written with cJSON; vocab_save_hf.
 *
 * tokenizer.json: model.vocab {text: id}, model.merges ("a b" strings or [a, b] pairs),
 * added_tokens [{id, content, special}] (special -> CONTROL, else USER_DEFINED; an id no
 * entry names becomes "[PAD<id>]", UNUSED, as convert_hf_to_gguf.py does). The pre-tokenizer
 * is recognized by its regexes (Split patterns, Digits, ByteLevel's own regex) among the
 * ones llama.cpp knows, and named as tokenizer.ggml.pre names it. BOS/EOS come from a
 * TemplateProcessing post-processor, then from tokenizer_config.json beside the file. */
#include "tok_impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pare_status tok_write_file(const char *path, const void *p, size_t n) {
    pare_out o;
    pare_status st = pare_out_open(&o, path);
    if (st) return st;
    if ((st = pare_out_write(&o, p, n))) { pare_out_abort(&o); return st; }
    return pare_out_commit(&o);
}

/* dir of path + name (malloc'ed) */
static char *beside(const char *path, const char *name) {
    const char *sl = strrchr(path, '/');
    size_t dl = sl ? (size_t)(sl - path) + 1 : 0;
    char *p = pare_malloc(dl + strlen(name) + 1);
    if (!p) return NULL;
    memcpy(p, path, dl);
    strcpy(p + dl, name);
    return p;
}

static pare_status parse_json(const char *path, const char *buf, size_t len, cJSON **out) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!*out) {
        long at = end && end >= buf && end <= buf + len ? (long)(end - buf) : -1;
        return pare_fail(PARE_ERR_FORMAT, "%s: not valid JSON (error near byte %ld)", path, at);
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return pare_fail(PARE_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return PARE_OK;
}

/* a special token named in a config: "text" or {"content": "text", ...} */
static const char *token_name(const cJSON *x) {
    if (cJSON_IsString(x)) return x->valuestring;
    if (cJSON_IsObject(x)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

pare_status hf_config_apply(pare_vocab *v, const char *tok_path) {
    char *cp = beside(tok_path, "tokenizer_config.json");
    if (!cp) return PARE_ERR_NOMEM;
    FILE *f = fopen(cp, "rb");
    if (!f) { free(cp); return PARE_OK; }
    fclose(f);
    char *buf;
    size_t len;
    pare_status st = pare_read_file(cp, &buf, &len);
    cJSON *root = NULL;
    if (!st) st = parse_json(cp, buf, len, &root);
    if (!st) {
        const cJSON *x;
        if (cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(root, "add_bos_token"))) v->add_bos = cJSON_IsTrue(x);
        if (cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(root, "add_eos_token"))) v->add_eos = cJSON_IsTrue(x);
        const struct { const char *key; int32_t *id; } names[] = {
            {"bos_token", &v->bos}, {"eos_token", &v->eos}, {"unk_token", &v->unk}, {"pad_token", &v->pad}};
        for (int k = 0; k < 4; k++) {
            const char *nm = token_name(cJSON_GetObjectItemCaseSensitive(root, names[k].key));
            if (!nm) continue;
            for (int id = v->n_tokens - 1; id >= 0; id--) /* the last of equal texts, as llama.cpp */
                if (v->text[id] && !strcmp(v->text[id], nm)) { *names[k].id = id; break; }
        }
    }
    cJSON_Delete(root);
    free(buf);
    free(cp);
    return st;
}

/* ---- tokenizer.json reader ------------------------------------------------------------------ */
static bool has_type(const cJSON *node, const char *type) {
    if (!cJSON_IsObject(node)) return false;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(node, "type");
    if (cJSON_IsString(t) && !strcmp(t->valuestring, type)) return true;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(node, "pretokenizers");
    if (!seq) seq = cJSON_GetObjectItemCaseSensitive(node, "decoders");
    if (!seq) seq = cJSON_GetObjectItemCaseSensitive(node, "processors");
    const cJSON *e;
    cJSON_ArrayForEach(e, seq) if (has_type(e, type)) return true;
    return false;
}

#define MAX_PRE 8
typedef struct prelist { const char *re[MAX_PRE]; int n; char why[160]; } prelist;

static bool pre_add(prelist *p, const char *re) {
    if (p->n == MAX_PRE) { snprintf(p->why, sizeof p->why, "more than %d pre-tokenizer steps", MAX_PRE); return false; }
    p->re[p->n++] = re;
    return true;
}

static bool json_bool(const cJSON *node, const char *key, bool dflt) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(node, key);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : dflt;
}

static bool collect_pre(const cJSON *node, prelist *p) {
    if (!node || cJSON_IsNull(node)) return true;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(node, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "?";
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(node, "pretokenizers")) if (!collect_pre(e, p)) return false;
        return true;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(node, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(node, "behavior");
        if (!cJSON_IsString(re) || !cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") || json_bool(node, "invert", false)) {
            snprintf(p->why, sizeof p->why, "a Split pre-tokenizer other than an isolating regex");
            return false;
        }
        return pre_add(p, re->valuestring);
    }
    if (!strcmp(type, "Digits")) return pre_add(p, json_bool(node, "individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    if (!strcmp(type, "ByteLevel")) {
        if (json_bool(node, "add_prefix_space", false)) {
            snprintf(p->why, sizeof p->why, "ByteLevel with add_prefix_space");
            return false;
        }
        if (json_bool(node, "use_regex", true)) {
            int n;
            const char *const *gpt2 = bpe_pre_regexes("gpt-2", &n);
            return pre_add(p, gpt2[0]);
        }
        return true;
    }
    snprintf(p->why, sizeof p->why, "pre-tokenizer type '%s'", type);
    return false;
}

static void apply_template(pare_vocab *v, const cJSON *pp) {
    if (!cJSON_IsObject(pp)) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(pp, "type");
    if (!cJSON_IsString(t)) return;
    if (!strcmp(t->valuestring, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) apply_template(v, e);
        return;
    }
    if (strcmp(t->valuestring, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    int n = cJSON_GetArraySize(single);
    if (n < 1) return;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    for (int end = 0; end < 2; end++) {
        const cJSON *item = cJSON_GetArrayItem(single, end ? n - 1 : 0);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(st, "id");
        if (!cJSON_IsString(nm) || (end && n == 1)) continue;
        int32_t id = -1;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, nm->valuestring), "ids");
        const cJSON *id0 = cJSON_GetArrayItem(ids, 0);
        if (cJSON_IsNumber(id0) && id0->valuedouble >= 0 && id0->valuedouble < v->n_tokens) id = (int32_t)id0->valuedouble;
        else id = vocab_find(v, nm->valuestring, strlen(nm->valuestring));
        if (id < 0) continue;
        if (end) { v->add_eos = true; v->eos = id; }
        else { v->add_bos = true; v->bos = id; }
    }
}

#define MAX_TOKENS (1 << 26)

static pare_status json_id(const char *path, const cJSON *x, const char *what, int *id) {
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= MAX_TOKENS || x->valuedouble != floor(x->valuedouble))
        return pare_fail(PARE_ERR_FORMAT, "%s: %s: id is not an integer in 0..%d", path, what, MAX_TOKENS - 1);
    *id = (int)x->valuedouble;
    return PARE_OK;
}

pare_status vocab_from_hf_json(const char *path, pare_vocab **out) {
    *out = NULL;
    char *buf;
    size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    cJSON *root = NULL;
    pare_vocab *v = NULL;
    if ((st = parse_json(path, buf, len, &root))) { free(buf); return st; }
    free(buf);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *e;
    if (!cJSON_IsObject(model)) { st = pare_fail(PARE_ERR_FORMAT, "%s: no \"model\" object", path); goto fail; }
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "BPE"))) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: tokenizer model type %s; only byte-level BPE is supported", path,
                       cJSON_IsString(mt) ? mt->valuestring : "(not a string)");
        goto fail;
    }
    if (!cJSON_IsObject(vocab)) { st = pare_fail(PARE_ERR_FORMAT, "%s: model.vocab is missing or not an object", path); goto fail; }
    if (merges && !cJSON_IsArray(merges)) { st = pare_fail(PARE_ERR_FORMAT, "%s: model.merges is not an array", path); goto fail; }
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) { st = pare_fail(PARE_ERR_FORMAT, "%s: added_tokens is not an array", path); goto fail; }
    if (!has_type(pre, "ByteLevel") && !has_type(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "ByteLevel")) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer or decoder); "
                       "for a SentencePiece model use tokenizer.model", path);
        goto fail;
    }
    prelist pl = {.n = 0};
    if (!collect_pre(pre, &pl)) { st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: unsupported pre-tokenizer: %s", path, pl.why); goto fail; }
    const char *pre_name = bpe_pre_from_regexes(pl.re, pl.n);
    if (!pre_name) {
        st = pare_fail(PARE_ERR_UNSUPPORTED, "%s: pre-tokenizer with %d regex(es) (first: %.60s) is not one llama.cpp knows",
                       path, pl.n, pl.n ? pl.re[0] : "none");
        goto fail;
    }
    int max_id = -1, id;
    cJSON_ArrayForEach(e, vocab) {
        if ((st = json_id(path, e, "model.vocab", &id))) goto fail;
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(e, added) {
        if ((st = json_id(path, cJSON_GetObjectItemCaseSensitive(e, "id"), "added_tokens", &id))) goto fail;
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "content"))) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: added token %d without content", path, id);
            goto fail;
        }
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) { st = pare_fail(PARE_ERR_FORMAT, "%s: empty vocabulary", path); goto fail; }
    /* ids are dense in real vocabularies: a far one would make millions of padding tokens */
    int n_entries = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    if ((int64_t)max_id + 1 > 2 * (int64_t)n_entries + 65536) {
        st = pare_fail(PARE_ERR_FORMAT, "%s: token id %d for %d tokens (ids must be about dense)", path, max_id, n_entries);
        goto fail;
    }
    if (!(v = vocab_alloc(PARE_VOCAB_BPE, max_id + 1))) goto nomem;
    cJSON_ArrayForEach(e, vocab) {
        id = (int)e->valuedouble;
        if (!e->string) { st = pare_fail(PARE_ERR_FORMAT, "%s: model.vocab entry without a key", path); goto fail; }
        free(v->text[id]);
        if (!(v->text[id] = pare_strdup(e->string))) goto nomem;
    }
    cJSON_ArrayForEach(e, added) {
        id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        free(v->text[id]);
        if (!(v->text[id] = pare_strdup(cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring))) goto nomem;
        v->ttype[id] = json_bool(e, "special", false) ? TOK_CONTROL : TOK_USER;
    }
    for (int i = 0; i < v->n_tokens; i++)
        if (!v->text[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            if (!(v->text[i] = pare_strdup(pad))) goto nomem;
            v->ttype[i] = TOK_UNUSED;
        }
    int nm = cJSON_GetArraySize(merges);
    if (nm > 0) {
        if (!(v->merges = pare_calloc((size_t)nm, sizeof(char *)))) goto nomem;
        cJSON_ArrayForEach(e, merges) {
            const char *a = NULL, *b = NULL;
            if (cJSON_IsString(e)) a = e->valuestring;
            else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                     cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
                a = cJSON_GetArrayItem(e, 0)->valuestring;
                b = cJSON_GetArrayItem(e, 1)->valuestring;
            } else {
                st = pare_fail(PARE_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]", path, v->n_merges);
                goto fail;
            }
            size_t la = strlen(a), lb = b ? strlen(b) : 0;
            char *m = pare_malloc(la + lb + 2);
            if (!m) goto nomem;
            memcpy(m, a, la);
            if (b) { m[la] = ' '; memcpy(m + la + 1, b, lb + 1); }
            else m[la] = 0;
            v->merges[v->n_merges++] = m;
        }
    }
    if (!(v->pre = pare_strdup(pre_name))) goto nomem;
    apply_template(v, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    cJSON_Delete(root);
    root = NULL;
    if ((st = hf_config_apply(v, path))) { vocab_free(v); return st; }
    return vocab_finish(v, path, out);
nomem:
    st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
fail:
    cJSON_Delete(root);
    vocab_free(v);
    return st;
}

/* ---- writers ------------------------------------------------------------------------------- */
static bool is_pad_name(const char *t, int id) {
    char pad[32];
    snprintf(pad, sizeof pad, "[PAD%d]", id);
    return !strcmp(t, pad);
}

static cJSON *obj_type(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *byte_level(bool use_regex) {
    cJSON *o = obj_type("ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", false);
    cJSON_AddBoolToObject(o, "trim_offsets", true);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static cJSON *template_item(const char *kind, const char *id) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "id", id);
    cJSON_AddNumberToObject(in, "type_id", 0);
    cJSON_AddItemToObject(o, kind, in);
    return o;
}

static cJSON *post_processor(const pare_vocab *v) {
    bool bos = v->add_bos && v->bos >= 0, eos = v->add_eos && v->eos >= 0;
    if (!bos && !eos) {
        cJSON *o = obj_type("ByteLevel");
        cJSON_AddBoolToObject(o, "add_prefix_space", true);
        cJSON_AddBoolToObject(o, "trim_offsets", false);
        cJSON_AddBoolToObject(o, "use_regex", true);
        return o;
    }
    cJSON *o = obj_type("TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(o, "single"), *pair = cJSON_AddArrayToObject(o, "pair");
    for (int k = 0; k < 2; k++) {
        cJSON *arr = k ? pair : single;
        const char *seqs[2] = {"A", "B"};
        for (int s = 0; s <= k; s++) {
            if (bos) cJSON_AddItemToArray(arr, template_item("SpecialToken", v->text[v->bos]));
            cJSON_AddItemToArray(arr, template_item("Sequence", seqs[s]));
            if (eos) cJSON_AddItemToArray(arr, template_item("SpecialToken", v->text[v->eos]));
        }
    }
    cJSON *sp = cJSON_AddObjectToObject(o, "special_tokens");
    for (int k = 0; k < 2; k++) {
        int32_t id = k ? (eos ? v->eos : -1) : (bos ? v->bos : -1);
        if (id < 0 || cJSON_GetObjectItemCaseSensitive(sp, v->text[id])) continue;
        cJSON *e = cJSON_AddObjectToObject(sp, v->text[id]);
        cJSON_AddStringToObject(e, "id", v->text[id]);
        cJSON_AddItemToObject(e, "ids", cJSON_CreateIntArray(&id, 1));
        cJSON *toks = cJSON_AddArrayToObject(e, "tokens");
        cJSON_AddItemToArray(toks, cJSON_CreateString(v->text[id]));
    }
    return o;
}

static pare_status write_json(cJSON *root, const char *path) {
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) return pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path);
    pare_status st = tok_write_file(path, s, strlen(s));
    free(s);
    return st;
}

pare_status hf_json_write(const pare_vocab *v, const char *path) {
    if (!v || v->type != PARE_VOCAB_BPE) return pare_fail(PARE_ERR_ARG, "%s: only a byte-level BPE vocabulary can be written as tokenizer.json", path);
    int nre;
    const char *const *re = bpe_pre_regexes(v->pre, &nre);
    if (!re) return pare_fail(PARE_ERR_UNSUPPORTED, "%s: unknown pre-tokenizer '%s'", path, v->pre);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < v->n_tokens; i++) {
        int t = v->ttype[i];
        if (t != TOK_CONTROL && t != TOK_USER && t != TOK_UNKNOWN) continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", v->text[i]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", false);
        cJSON_AddBoolToObject(a, "rstrip", false);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddBoolToObject(a, "special", t != TOK_USER);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddNullToObject(root, "normalizer");
    int ngpt;
    const char *const *gpt2 = bpe_pre_regexes("gpt-2", &ngpt);
    if (nre == 1 && !strcmp(re[0], gpt2[0])) {
        cJSON_AddItemToObject(root, "pre_tokenizer", byte_level(true));
    } else {
        cJSON *seq = obj_type("Sequence");
        cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
        for (int k = 0; k < nre; k++) {
            cJSON *p;
            if (!strcmp(re[k], "\\p{N}") || !strcmp(re[k], "\\p{N}+")) {
                p = obj_type("Digits");
                cJSON_AddBoolToObject(p, "individual_digits", re[k][5] == 0);
            } else {
                p = obj_type("Split");
                cJSON *pat = cJSON_AddObjectToObject(p, "pattern");
                cJSON_AddStringToObject(pat, "Regex", bpe_pre_regex_hf(v->pre, k));
                cJSON_AddStringToObject(p, "behavior", "Isolated");
                cJSON_AddBoolToObject(p, "invert", false);
            }
            cJSON_AddItemToArray(list, p);
        }
        cJSON_AddItemToArray(list, byte_level(false));
        cJSON_AddItemToObject(root, "pre_tokenizer", seq);
    }
    cJSON_AddItemToObject(root, "post_processor", post_processor(v));
    cJSON *dec = obj_type("ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", true);
    cJSON_AddBoolToObject(dec, "trim_offsets", true);
    cJSON_AddBoolToObject(dec, "use_regex", true);
    cJSON_AddItemToObject(root, "decoder", dec);
    cJSON *model = obj_type("BPE");
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", bpe_pre_ignore_merges(v->pre));
    cJSON *vo = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < v->n_tokens; i++) {
        int t = v->ttype[i];
        if (t == TOK_CONTROL || t == TOK_USER || t == TOK_UNKNOWN) continue;
        if (t == TOK_UNUSED && is_pad_name(v->text[i], i)) continue; /* read back as the same */
        cJSON_AddItemToObject(vo, v->text[i], cJSON_CreateNumber(i));
    }
    cJSON *mg = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; i < v->n_merges; i++) cJSON_AddItemToArray(mg, cJSON_CreateString(v->merges[i]));
    return write_json(root, path);
}

static void add_name(cJSON *o, const char *key, const pare_vocab *v, int32_t id) {
    if (id >= 0) cJSON_AddStringToObject(o, key, v->text[id]);
    else cJSON_AddNullToObject(o, key);
}

pare_status hf_config_write(const pare_vocab *v, const char *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "add_bos_token", v->add_bos);
    cJSON_AddBoolToObject(o, "add_eos_token", v->add_eos);
    add_name(o, "bos_token", v, v->bos);
    add_name(o, "eos_token", v, v->eos);
    add_name(o, "unk_token", v, v->unk);
    add_name(o, "pad_token", v, v->pad);
    cJSON_AddBoolToObject(o, "clean_up_tokenization_spaces", false);
    if (v->type == PARE_VOCAB_SPM) {
        cJSON_AddBoolToObject(o, "legacy", true);
        cJSON_AddStringToObject(o, "tokenizer_class", "LlamaTokenizer");
    } else {
        cJSON_AddStringToObject(o, "tokenizer_class", "PreTrainedTokenizerFast");
    }
    return write_json(o, path);
}

pare_status vocab_save_hf(const pare_vocab *v, const char *dir) {
    if (!v || !dir) return pare_fail(PARE_ERR_ARG, "vocab_save_hf: missing vocabulary or folder");
    const char *name = v->type == PARE_VOCAB_SPM ? "tokenizer.model" : "tokenizer.json";
    size_t n = strlen(dir) + 40;
    char *p = pare_malloc(n);
    if (!p) return PARE_ERR_NOMEM;
    snprintf(p, n, "%s/%s", dir, name);
    pare_status st = v->type == PARE_VOCAB_SPM ? spm_model_write(v, p) : hf_json_write(v, p);
    if (!st) {
        snprintf(p, n, "%s/tokenizer_config.json", dir);
        st = hf_config_write(v, p);
    }
    free(p);
    return st;
}

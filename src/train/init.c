/* init.c - a fresh model to train, from a shape file and a tokenizer's vocabulary. */
#include "train.h"

#include "model/synth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_int(cJSON *j, const char *key, int def, int *out) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!x) { *out = def; return def >= 0; }
    if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 1e7 || x->valuedouble != (double)(int)x->valuedouble)
        return 0;
    *out = (int)x->valuedouble;
    return 1;
}

pare_status train_model_from_config(const char *path, pare_vocab *vocab, uint64_t seed, pare_model **out) {
    *out = NULL;
    if (!vocab || vocab->n_tokens < 1) return pare_fail(PARE_ERR_ARG, "training: no vocabulary");
    char *buf;
    size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j || !cJSON_IsObject(j)) { cJSON_Delete(j); return pare_fail(PARE_ERR_FORMAT, "%s: not a JSON object", path); }
    synth_shape sh;
    memset(&sh, 0, sizeof sh);
    snprintf(sh.name, sizeof sh.name, "train");
    int vocab_n = 0;
    const struct { const char *k; int *v; int def; } f[] = {
        {"dim", &sh.dim, -1}, {"n_layers", &sh.n_layer, -1}, {"n_heads", &sh.n_head, -1},
        {"n_kv_heads", &sh.n_head_kv, 0}, {"ffn", &sh.n_ff, -1}, {"ctx", &sh.n_ctx, 256}, {"vocab", &vocab_n, 0}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!get_int(j, f[i].k, f[i].def, f[i].v)) {
            cJSON_Delete(j);
            return pare_fail(PARE_ERR_FORMAT, "%s: key '%s' missing or not a positive integer", path, f[i].k);
        }
    if (!sh.n_head_kv) sh.n_head_kv = sh.n_head;
    double theta = 10000, eps = 1e-5;
    cJSON *x;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "rope_theta")) && (!cJSON_IsNumber(x) || !(x->valuedouble > 1))) {
        cJSON_Delete(j);
        return pare_fail(PARE_ERR_FORMAT, "%s: 'rope_theta' must be a number > 1", path);
    }
    if (x) theta = x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "norm_eps")) && (!cJSON_IsNumber(x) || !(x->valuedouble > 0) || x->valuedouble > 1)) {
        cJSON_Delete(j);
        return pare_fail(PARE_ERR_FORMAT, "%s: 'norm_eps' must be a number in (0, 1]", path);
    }
    if (x) eps = x->valuedouble;
    int tied = 0;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "tied"))) {
        if (!cJSON_IsBool(x)) { cJSON_Delete(j); return pare_fail(PARE_ERR_FORMAT, "%s: 'tied' must be true or false", path); }
        tied = cJSON_IsTrue(x);
    }
    char name[128];
    snprintf(name, sizeof name, "pare-train");
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "name")) && cJSON_IsString(x)) snprintf(name, sizeof name, "%s", x->valuestring);
    cJSON_Delete(j);
    if (sh.dim % sh.n_head || sh.n_head % sh.n_head_kv || (sh.dim / sh.n_head) % 2)
        return pare_fail(PARE_ERR_FORMAT, "%s: inconsistent shape (dim %% heads, heads %% kv_heads, even head_dim)", path);
    if (vocab_n && vocab_n != vocab->n_tokens)
        return pare_fail(PARE_ERR_ARG, "%s: vocab %d, but the tokenizer has %d tokens", path, vocab_n, vocab->n_tokens);
    sh.n_vocab = vocab->n_tokens;
    pare_model *m;
    if ((st = synth_model(&sh, PARE_TYPE_F32, seed, &m))) return st;
    m->rope_base = (float)theta;
    m->norm_eps = (float)eps;
    free(m->name);
    m->name = pare_strdup(name);
    free(m->path);
    m->path = pare_strdup(path);
    if (tied) { /* drop output.weight (added last by synth_model) */
        pare_tensor *t = &m->tensors[m->n_tensors - 1];
        if (strcmp(t->name, "output.weight")) { pare_model_free(m); return pare_fail(PARE_ERR_ARG, "training: unexpected tensor order"); }
        free(t->name);
        if (t->owned) free(t->data);
        memset(t, 0, sizeof *t);
        m->n_tensors--;
        m->output = NULL;
        if ((st = model_bind(m))) { pare_model_free(m); return st; }
    }
    if (!m->name || !m->path) { pare_model_free(m); return PARE_ERR_NOMEM; }
    if (m->vocab) vocab_free(m->vocab);
    m->vocab = vocab;
    *out = m;
    return PARE_OK;
}

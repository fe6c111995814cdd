/* load.c - the public load/save entry points: pick the format from the path. */
#include "model/model.h"
#include "kernels/nm.h"
#include "kernels/r8.h"
#include "tok/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void pare_model_free(pare_model *m) {
    if (!m) return;
    if (m->tensors)
        for (int i = 0; i < m->n_tensors; i++) {
            free(m->tensors[i].name);
            if (m->tensors[i].owned) free(m->tensors[i].data);
            k_nm_free(m->tensors[i].nm);
            k_r8_free(m->tensors[i].r8);
        }
    free(m->tensors);
    if (m->layers)
        for (int i = 0; i < m->n_layer; i++) {
            free(m->layers[i].perm_attn);
            free(m->layers[i].perm_o);
            free(m->layers[i].perm_ffn);
        }
    free(m->layers);
    free(m->exits);
    if (m->vocab) vocab_free(m->vocab);
    model_spill_free(m->spill);
    for (int i = 0; i < m->n_maps && i < (int)(sizeof m->maps / sizeof *m->maps); i++) pare_unmap(&m->maps[i]);
    if (m->owner && m->owner_free) m->owner_free(m->owner);
    free(m->path);
    free(m->name);
    free(m);
}

const pare_vocab *pare_model_vocab(const pare_model *m) { return m ? m->vocab : NULL; }
int pare_model_n_vocab(const pare_model *m) { return m ? m->n_vocab : 0; }
int pare_model_n_ctx(const pare_model *m) { return m && m->n_ctx_train > 0 ? m->n_ctx_train : 0; }

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A tokenizer given explicitly: by its name. */
static pare_status load_tokenizer(const char *tok, int n_vocab, pare_vocab **out) {
    if (ends_with(tok, ".model")) return vocab_from_spm_model(tok, out);
    if (ends_with(tok, ".json")) return vocab_from_hf_json(tok, out);
    if (ends_with(tok, ".gguf")) {
        pare_gguf *g;
        pare_status st = gguf_open(tok, &g);
        if (st) return st;
        st = vocab_from_gguf(g, out);
        gguf_close(g);
        return st;
    }
    return vocab_from_llama2c(tok, n_vocab, out);
}

pare_status pare_model_load(const char *path, const char *tokenizer_path, pare_model **out) {
    if (!out) return pare_fail(PARE_ERR_ARG, "pare_model_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return pare_fail(PARE_ERR_ARG, "pare_model_load: no path");
    struct stat sb;
    if (stat(path, &sb) != 0) return pare_fail(PARE_ERR_IO, "%s: cannot open (no such file or directory)", path);
    pare_status st;
    pare_model *m = NULL;
    if (S_ISDIR(sb.st_mode)) {
        st = model_load_hf(path, &m);
    } else {
        unsigned char magic[4] = {0};
        FILE *f = fopen(path, "rb");
        if (!f) return pare_fail(PARE_ERR_IO, "%s: cannot open", path);
        size_t k = fread(magic, 1, 4, f);
        fclose(f);
        /* by magic; a file named *.gguf is read as GGUF whatever it holds, so that a damaged
         * one is reported as a damaged GGUF, not as a strange llama2.c checkpoint */
        if ((k == 4 && !memcmp(magic, "GGUF", 4)) || ends_with(path, ".gguf")) st = model_load_gguf(path, &m);
        else return model_load_llama2c(path, tokenizer_path, out);
    }
    if (st) return st;
    if (tokenizer_path) {
        pare_vocab *v = NULL;
        if ((st = load_tokenizer(tokenizer_path, m->n_vocab, &v))) { pare_model_free(m); return st; }
        if (v->n_tokens > m->n_vocab) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: %d tokens, more than the model's %d", tokenizer_path, v->n_tokens,
                           m->n_vocab);
            vocab_free(v);
            pare_model_free(m);
            return st;
        }
        if (m->vocab) vocab_free(m->vocab);
    model_spill_free(m->spill);
        m->vocab = v;
    }
    *out = m;
    return PARE_OK;
}

pare_status pare_model_save(const pare_model *m, const char *path, const char *fmt) {
    if (!m || !path || !fmt) return pare_fail(PARE_ERR_ARG, "pare_model_save: missing model, path or format");
    if (!strcmp(fmt, "gguf")) return model_save_gguf(m, path);
    if (!strcmp(fmt, "hf")) return model_save_hf(m, path);
    return pare_fail(PARE_ERR_ARG, "%s: unknown output format '%s' (gguf, hf)", path, fmt);
}

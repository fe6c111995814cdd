/* llama2c_tok.c - llama2.c's tokenizer .bin (tokenizer.bin, tok512.bin, ...):
 *   uint32 max_token_length, then per token: float32 score, int32 len, len bytes (LE).
 * Read as a SentencePiece vocabulary the way llama.cpp's convert-llama2c-to-ggml does:
 * ids 0/1/2 become <unk> (UNKNOWN) / <s> / </s> (CONTROL), an empty token is CONTROL,
 * "<0x.." a BYTE token, every space becomes U+2581; BOS 1, EOS 2, UNK 0. */
#include "tok_impl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

pare_status vocab_from_llama2c(const char *path, int n_vocab, pare_vocab **out) {
    *out = NULL;
    char *buf;
    size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    const uint8_t *p = (const uint8_t *)buf;
    pare_vocab *v = NULL;
    if (len < 4) { st = pare_fail(PARE_ERR_FORMAT, "%s: truncated llama2.c tokenizer (%zu bytes, no header)", path, len); goto fail; }
    /* count the tokens when the caller does not know how many there are */
    int n = n_vocab;
    if (n <= 0) {
        n = 0;
        for (size_t off = 4; len - off >= 8; n++) {
            int32_t l;
            memcpy(&l, p + off + 4, 4);
            if (l < 0 || (size_t)l > len - off - 8 || n >= INT32_MAX / 2) break;
            off += 8 + (size_t)l;
        }
        if (n == 0) { st = pare_fail(PARE_ERR_FORMAT, "%s: llama2.c tokenizer without tokens", path); goto fail; }
    }
    if (!(v = vocab_alloc(PARE_VOCAB_SPM, n))) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); goto fail; }
    size_t off = 4;
    for (int i = 0; i < n; i++) {
        if (len - off < 8) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: truncated llama2.c tokenizer: token %d of %d starts past the end (byte %zu of %zu)",
                           path, i, n, off, len);
            goto fail;
        }
        float score;
        int32_t l;
        memcpy(&score, p + off, 4);
        memcpy(&l, p + off + 4, 4);
        off += 8;
        if (l < 0 || (size_t)l > len - off) {
            st = pare_fail(PARE_ERR_FORMAT, "%s: truncated llama2.c tokenizer: token %d has length %d, %zu bytes left",
                           path, i, l, len - off);
            goto fail;
        }
        const char *t = buf + off;
        if (memchr(t, 0, (size_t)l)) { st = pare_fail(PARE_ERR_FORMAT, "%s: token %d contains a NUL byte", path, i); goto fail; }
        off += (size_t)l;
        int type = TOK_NORMAL;
        if (i == 0) { t = "<unk>"; l = 5; type = TOK_UNKNOWN; }
        else if (i == 1) { t = "<s>"; l = 3; type = TOK_CONTROL; }
        else if (i == 2) { t = "</s>"; l = 4; type = TOK_CONTROL; }
        else if (l == 0) type = TOK_CONTROL;
        else if (l >= 4 && !memcmp(t, "<0x", 3) && isxdigit((unsigned char)t[3])) type = TOK_BYTE; /* sscanf "<0x%02hhX>" */
        size_t spaces = 0;
        for (int32_t k = 0; k < l; k++) spaces += t[k] == ' ';
        char *s = pare_malloc((size_t)l + spaces * 2 + 1);
        if (!s) { st = pare_fail(PARE_ERR_NOMEM, "%s: out of memory", path); goto fail; }
        size_t o = 0;
        for (int32_t k = 0; k < l; k++) {
            if (t[k] == ' ') { memcpy(s + o, "\xe2\x96\x81", 3); o += 3; }
            else s[o++] = t[k];
        }
        s[o] = 0;
        v->text[i] = s;
        v->scores[i] = score;
        v->ttype[i] = type;
    }
    free(buf);
    v->unk = 0;
    v->bos = n > 1 ? 1 : -1;
    v->eos = n > 2 ? 2 : -1;
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = true;
    return vocab_finish(v, path, out);
fail:
    vocab_free(v);
    free(buf);
    return st;
}

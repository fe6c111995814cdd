"""fuzz/mk_tokjson.py OUT.json - a small byte-level BPE tokenizer.json (GPT-2's byte map,
256 byte tokens, a few merges, special tokens, a ByteLevel pre-tokenizer and decoder): a
seed for fuzz_tokjson."""
import json, sys

bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_char = {b: chr(c) for b, c in zip(bs, cs)}
vocab = {byte_char[b]: i for i, b in enumerate(range(256))}
merges = []
for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld")]:
    merges.append(a + " " + b)
    vocab[a + b] = len(vocab)
tok = {
    "version": "1.0",
    "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "special": True},
                     {"id": len(vocab) + 1, "content": "<|pad|>", "special": True}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "decoder": {"type": "ByteLevel"},
    "post_processor": None,
    "model": {"type": "BPE", "vocab": vocab, "merges": merges},
}
json.dump(tok, open(sys.argv[1], "w"), ensure_ascii=False)

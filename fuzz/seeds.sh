#!/bin/sh
# fuzz/seeds.sh PARE OUT - the seed corpora, one folder per target under OUT: small files of
# ../shared/data (brown-4m's config.json and tokenizer.model, stories260K's tok512.bin and
# checkpoint) and tiny models pare makes (GGUF in F32, Q8_0, 2:4 with channel orders, with
# early exits; their Hugging Face folders: safetensors, config.json, tokenizer.json).
set -e
P=$1
OUT=$2
D=${PARE_DATA:-../shared/data}
mkdir -p "$OUT/gguf" "$OUT/safetensors" "$OUT/config" "$OUT/tokjson" "$OUT/spm" "$OUT/llama2c" "$OUT/tmp"
T=$OUT/tmp
printf '{"dim":32,"n_layers":2,"n_heads":2,"n_kv_heads":1,"ffn":64,"vocab":320,"ctx":64}' > "$T/shape.json"
"$P" synth --shape "$T/shape.json" --type f32 --seed 1 -o "$OUT/gguf/f32.gguf" -q > /dev/null
"$P" synth --shape "$T/shape.json" --type q8_0 --seed 2 -o "$OUT/gguf/q8_0.gguf" -q > /dev/null
"$P" synth --shape "$T/shape.json" --type f16 --nm 2:4 --seed 3 -o "$OUT/gguf/f16-2of4.gguf" -q > /dev/null
"$P" tune "$OUT/gguf/f32.gguf" -o "$OUT/gguf/exits.gguf" --data "$D/bench/brown-valid.txt" --exits 0,1 --window 1 \
    --steps 2 --batch 1 --seq 16 --lora-rank 2 -q > /dev/null
"$P" convert "$OUT/gguf/f32.gguf" -o "$T/hf" --format hf -q > /dev/null
cp "$T/hf/model.safetensors" "$OUT/safetensors/tiny.safetensors"
cp "$T/hf/config.json" "$OUT/config/tiny.json"
cp "$D/bench/brown-4m/config.json" "$OUT/config/brown-4m.json"
python3 "$(dirname "$0")/mk_tokjson.py" "$OUT/tokjson/bpe.json"
cp "$D/bench/brown-4m/tokenizer.model" "$OUT/spm/brown-4m.model"
[ -f "$T/hf/tokenizer.model" ] && cp "$T/hf/tokenizer.model" "$OUT/spm/tiny.model"
{ printf '\000'; cat "$D/stories260K/tok512.bin"; } > "$OUT/llama2c/tok512"
{ printf '\001'; head -c 60000 "$D/stories260K/stories260K.bin"; } > "$OUT/llama2c/stories260K-head"
mkdir -p "$OUT/hf"
cp "$T/hf/model.safetensors" "$OUT/hf/"
[ -f "$T/hf/tokenizer.model" ] && cp "$T/hf/tokenizer.model" "$OUT/hf/"
rm -rf "$T"

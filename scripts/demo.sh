#!/bin/sh
# pare's main job on its default model: inspect it, generate, measure perplexity, convert
# GGUF -> Hugging Face -> GGUF and check the bytes round-trip.
# The default model is, for now, a deterministic random-weight model that `pare synth`
# writes (shape "tiny", seed 1): it runs every code path but its text is noise. A trained
# default model replaces it once `pare train` lands.
set -e
B=${BUILD:-build}
P=$B/pare
M=$B/default.gguf
[ -f "$M" ] || $P synth --shape tiny --type f32 --seed 1 -o "$M"
echo "== pare info $M"
$P info "$M" | head -12
echo "== pare generate (greedy, 24 tokens)"
$P generate "$M" --prompt "Once upon a time" -n 24 --temp 0
TEXT=/usr/share/common-licenses/GPL-3
echo "== pare ppl on $TEXT (ctx 128, 8 windows)"
$P ppl "$M" --text "$TEXT" --ctx 128 --max-windows 8
echo "== pare convert: GGUF -> HF folder -> GGUF"
rm -rf "$B/default-hf" "$B/default-rt.gguf" "$B/default-direct.gguf"
$P convert "$M" -o "$B/default-hf"
$P convert "$B/default-hf" -o "$B/default-rt.gguf"
$P convert "$M" -o "$B/default-direct.gguf"
if cmp -s "$B/default-rt.gguf" "$B/default-direct.gguf"; then echo "round trip: identical bytes"; else echo "round trip: DIFFERENT bytes"; exit 1; fi

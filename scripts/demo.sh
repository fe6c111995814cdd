#!/bin/sh
# pare's main job on its default model, models/default.gguf: a 1.97 M-parameter LLaMA-shaped
# model that `pare train` trained on the King James Bible (scripts/train_default.sh retrains
# it). Show how it was trained, inspect it, generate, measure its perplexity on held-out
# chapters, prune it 2:4 with Wanda and measure again, and convert GGUF -> Hugging Face ->
# GGUF, checking the bytes round-trip.
set -e
export PARE_FORCE=1 # reruns replace their outputs
cd "$(dirname "$0")/.."
B=${BUILD:-build}
P=$B/pare
M=models/default.gguf
D=$B/default
echo "== how $M was trained (sh scripts/train_default.sh; log: models/default.train.log)"
grep -E '^pare train:|^steps|^done|^final' models/default.train.log || true
tail -n 1 models/default.train.log
echo "== pare info $M"
$P info "$M" | head -12
echo "== pare generate (greedy, 40 tokens)"
$P generate "$M" --prompt "In the beginning" -n 40 --temp 0
sh scripts/default_data.sh "$D" >/dev/null
echo "== pare ppl on the held-out chapters (every 20th chapter of the KJV text of Debian's bible-kjv)"
$P ppl "$M" --text "$D/kjv-heldout.txt" --ctx 256
echo "== pare prune --method wanda --nm 2:4, calibrated on 32 x 256 tokens of the training chapters"
$P prune "$M" -o "$B/default-2of4.gguf" --method wanda --nm 2:4 --calib "$D/kjv-train.txt" --nsamples 32 --seqlen 256
$P ppl "$B/default-2of4.gguf" --text "$D/kjv-heldout.txt" --ctx 256
echo "== pare convert: GGUF -> HF folder -> GGUF"
rm -rf "$B/default-hf" "$B/default-rt.gguf" "$B/default-direct.gguf"
$P convert "$M" -o "$B/default-hf"
$P convert "$B/default-hf" -o "$B/default-rt.gguf"
$P convert "$M" -o "$B/default-direct.gguf"
if cmp -s "$B/default-rt.gguf" "$B/default-direct.gguf"; then echo "round trip: identical bytes"; else echo "round trip: DIFFERENT bytes"; exit 1; fi

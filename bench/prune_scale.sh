#!/bin/sh
# prune_scale.sh - pruning at real model sizes: wanda and esparse 2:4 on random-weight
# models with the TinyLlama-1.1B and LLaMA-2-7B shapes (pare synth, F16), 2 threads,
# calibration NSAMPLES x SEQLEN tokens of brown-valid (byte tokens: the synthetic models
# have a byte-level vocabulary). Prints wall time and peak RSS (GNU time) per run; the
# pruned model is then run compressed by pare bench (decode against the dense model).
#   sh bench/prune_scale.sh [BUILD [WORKDIR]]
#   env: SHAPES (default "tinyllama-1.1b llama2-7b"), METHODS (default "wanda esparse"),
#        NSAMPLES (16), SEQLEN (256)
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
W=${2:-/tmp/pare-scale}
D=${PARE_DATA:-../shared/data}
SHAPES=${SHAPES:-"tinyllama-1.1b llama2-7b"}
METHODS=${METHODS:-"wanda esparse"}
NS=${NSAMPLES:-16}
SL=${SEQLEN:-256}
mkdir -p "$W"
echo "| shape | method | calibration | wall time | peak RSS | input model (F16) |"
echo "|---|---|---|---|---|---|"
for s in $SHAPES; do
    [ -f "$W/$s.gguf" ] || "$B/pare" synth --shape "$s" --type f16 --seed 1 -o "$W/$s.gguf" >&2
    size=$(du -mL "$W/$s.gguf" | cut -f1)
    for m in $METHODS; do
        /usr/bin/time -f "%e %M" -o "$W/time.txt" "$B/pare" prune "$W/$s.gguf" -o "$W/$s-$m.gguf" --method "$m" --nm 2:4 \
            --calib "$D/bench/brown-valid.txt" --nsamples "$NS" --seqlen "$SL" --threads 2 --json > "$W/$s-$m.json"
        read -r secs kb < "$W/time.txt"
        echo "| $s | $m 2:4 | $NS x $SL | $(printf '%.0f' "$secs") s | $((kb / 1024)) MB | $size MB |"
    done
done

#!/bin/sh
# prune_scale.sh - pruning at real model sizes: wanda and esparse 2:4 (or any other method)
# on random-weight models with the TinyLlama-1.1B and LLaMA-2-7B shapes (pare synth, F16),
# 2 threads, calibration NSAMPLES x SEQLEN tokens of brown-valid (byte tokens: the synthetic
# models have a byte-level vocabulary). Prints wall time, CPU time (user + sys) and peak RSS
# (GNU time) per run; the pruned model is then run compressed by pare bench (decode against
# the dense model). The structured methods (numerical, flap, ...) remove RATIO of the
# attention + MLP weights instead of 2:4.
#   sh bench/prune_scale.sh [BUILD [WORKDIR]]
#   env: SHAPES (default "tinyllama-1.1b llama2-7b"), METHODS (default "wanda esparse"),
#        NSAMPLES (16), SEQLEN (256), RATIO (0.2)
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
echo "| shape | method | calibration | wall time | CPU time | peak RSS | input model (F16) |"
echo "|---|---|---|---|---|---|---|"
for s in $SHAPES; do
    [ -f "$W/$s.gguf" ] || "$B/pare" synth --shape "$s" --type f16 --seed 1 -o "$W/$s.gguf" >&2
    size=$(du -mL "$W/$s.gguf" | cut -f1)
    for m in $METHODS; do
        case $m in
        numerical|flap|flap-nobias|mag-struct|wanda-struct|taylor-struct) pat="--ratio ${RATIO:-0.2}"; what="$m ${RATIO:-0.2}" ;;
        *) pat="--nm 2:4"; what="$m 2:4" ;;
        esac
        # shellcheck disable=SC2086
        /usr/bin/time -f "%e %U %S %M" -o "$W/time.txt" "$B/pare" prune "$W/$s.gguf" -o "$W/$s-$m.gguf" --method "$m" $pat \
            --calib "$D/bench/brown-valid.txt" --nsamples "$NS" --seqlen "$SL" --threads 2 --json > "$W/$s-$m.json"
        read -r secs usr sys kb < "$W/time.txt"
        cpu=$(echo "$usr $sys" | awk '{printf "%.0f", $1 + $2}')
        echo "| $s | $what | $NS x $SL | $(printf '%.0f' "$secs") s | $cpu s | $((kb / 1024)) MB | $size MB |"
    done
done

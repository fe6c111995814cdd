#!/bin/sh
# sleb_scale.sh - SLEB's selection time at a real model size: 20% of the 22 blocks of a
# TinyLlama-1.1B-shaped random-weight model (pare synth, F16), calibration NSAMPLES x SEQLEN
# tokens of brown-valid (byte tokens), 2 threads. Prints wall time, CPU time (user + sys)
# and peak RSS (GNU time) and the removed blocks with the loss after each step (--json).
#   sh bench/sleb_scale.sh [BUILD [WORKDIR]]
#   env: SHAPE (tinyllama-1.1b), RATIO (0.2), NSAMPLES (32), SEQLEN (256), METHOD (sleb)
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
W=${2:-/tmp/pare-scale}
D=${PARE_DATA:-../shared/data}
S=${SHAPE:-tinyllama-1.1b}
R=${RATIO:-0.2}
NS=${NSAMPLES:-32}
SL=${SEQLEN:-256}
M=${METHOD:-sleb}
mkdir -p "$W"
[ -f "$W/$S.gguf" ] || "$B/pare" synth --shape "$S" --type f16 --seed 1 -o "$W/$S.gguf" >&2
/usr/bin/time -f "%e %U %S %M" -o "$W/sleb-time.txt" "$B/pare" prune "$W/$S.gguf" -o "$W/$S-$M.gguf" --method "$M" \
    --remove-ratio "$R" --calib "$D/bench/brown-valid.txt" --nsamples "$NS" --seqlen "$SL" --threads 2 --json > "$W/$S-$M.json"
read -r secs usr sys kb < "$W/sleb-time.txt"
echo "| shape | method | calibration | wall time | CPU time | peak RSS |"
echo "|---|---|---|---|---|---|"
echo "| $S | $M, ratio $R | $NS x $SL | $(printf '%.0f' "$secs") s | $(echo "$usr $sys" | awk '{printf "%.0f", $1 + $2}') s | $((kb / 1024)) MB |"
cat "$W/$S-$M.json"

#!/bin/sh
# Training throughput vs forward-only throughput on the brown-4m shape (dim 192, 8 blocks,
# 6 heads / 2 KV heads, FFN 512, vocabulary 2048), contexts of 256 tokens, 2 threads:
#   1. pare ppl: the inference forward pass (src/model/forward.c), 64 windows of 256;
#   2. pare train --init: forward + backward + AdamW on all 3.9 M parameters, 16 x 256 tokens
#      a step (tokens/s of steps 11-30), and the training engine's forward alone (its
#      held-out evaluation: 64 windows of 256).
# Results go to docs/PERFORMANCE.md, section "Training".
set -e
cd "$(dirname "$0")/.."
B=${BUILD:-build}
DATA=${PARE_DATA:-../shared/data}
M=$DATA/bench/brown-4m/model.gguf
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "== inference forward (pare ppl)"
"$B/pare" ppl "$M" --text "$DATA/bench/brown-valid.txt" --ctx 256 --max-windows 64 --threads 2 --json
echo "== training (pare train --init)"
"$B/pare" train --init "$M" --data "$DATA/bench/brown-train.txt" --valid "$DATA/bench/brown-valid.txt" \
    --eval-windows 64 --eval-every 30 --steps 30 --log-every 10 --batch 16 --ctx 256 --threads 2 --json \
    -o "$OUT/brown-trained.gguf"

#!/bin/sh
# cloze_table.sh - zero-shot story-cloze accuracy (pare eval-mc) of the dense and the 2:4
# pruned models: stories260K on 500 items made from tinystories_valid_head, brown-4m on 500
# items made from brown-test (pare make-cloze, seed 0). Pruning calibration as in
# prune_table.sh (seed 0). One markdown row per model.
#   sh bench/cloze_table.sh [BUILD [OUTDIR]]
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-cloze}
D=${PARE_DATA:-../shared/data}
mkdir -p "$OUT"
"$B/pare" make-cloze "$D/text/tinystories_valid_head.txt" -o "$OUT/stories-cloze.jsonl" --n 500 --seed 0 2>/dev/null
"$B/pare" make-cloze "$D/bench/brown-test.txt" -o "$OUT/brown-cloze.jsonl" --n 500 --seed 0 2>/dev/null
acc() { # MODEL TASKS -> "acc ± se | acc_norm ± se"
    "$B/pare" eval-mc "$1" --tasks "$2" --threads 1 --json 2>/dev/null | python3 -c 'import json,sys
t = json.load(sys.stdin)["total"]
print("%.3f ± %.3f | %.3f ± %.3f" % (t["acc"], t["acc_stderr"], t["acc_norm"], t["acc_norm_stderr"]))'
}
echo "| model | pattern | stories260K acc | stories260K acc_norm | brown-4m acc | brown-4m acc_norm |"
echo "|---|---|---|---|---|---|"
S=$D/stories260K/stories260K.gguf; W=$D/bench/brown-4m/model.gguf
echo "| dense | - | $(acc "$S" "$OUT/stories-cloze.jsonl") | $(acc "$W" "$OUT/brown-cloze.jsonl") |"
for meth in magnitude wanda sparsegpt esparse; do
    "$B/pare" prune "$S" -o "$OUT/s.gguf" --method $meth --nm 2:4 --calib "$D/text/tinystories_train_head.txt" \
        --nsamples 64 --seqlen 256 --seed 0 --threads 1 --json > /dev/null 2>&1
    "$B/pare" prune "$W" -o "$OUT/w.gguf" --method $meth --nm 2:4 --calib "$D/bench/brown-valid.txt" \
        --nsamples 128 --seqlen 256 --seed 0 --threads 1 --json > /dev/null 2>&1
    echo "| $meth | 2:4 | $(acc "$OUT/s.gguf" "$OUT/stories-cloze.jsonl") | $(acc "$OUT/w.gguf" "$OUT/brown-cloze.jsonl") |"
    rm -f "$OUT/s.gguf" "$OUT/w.gguf"
done

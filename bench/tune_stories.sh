#!/bin/sh
# tune_stories.sh - tune_table.sh on stories260K (5 blocks, width 64), where methods separate
# more clearly: 50% SparseGPT (128 x 256 tokens of tinystories_train_head), then STEPS steps of
# 8 x 256 tokens of the same text, adaptive (exits 0, 1, 2, 4: Edge-LLM's quarters of 5 blocks)
# with window 1 and 2, and full; perplexity on the first 400 windows of 256 of
# tinystories_valid_head by the last exit and by voting, 2 threads.
#   sh bench/tune_stories.sh [BUILD [OUTDIR]]     env: SEEDS="0 1 2" STEPS=400
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-tune-stories}
SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-400}
D=${PARE_DATA:-../shared/data}
M=$D/stories260K/stories260K.gguf; TR=$D/text/tinystories_train_head.txt; TE=$D/text/tinystories_valid_head.txt
mkdir -p "$OUT"
P=$OUT/sparsegpt50.gguf
[ -f "$P" ] || "$B/pare" prune "$M" -o "$P" --method sparsegpt --sparsity 0.5 --calib "$TR" --nsamples 128 --seqlen 256 -q > /dev/null
ppl() { "$B/pare" ppl "$@" --text "$TE" --ctx 256 --max-windows 400 --threads 2 --json 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["ppl"])'; }
echo "dense stories260K: $(ppl "$M"); 50% SparseGPT: $(ppl "$P")"
for s in $SEEDS; do
    for cfg in "adaptive 1" "adaptive 2" "full 5"; do
        set -- $cfg
        name=$1-w$2-s$s
        if [ "$1" = full ]; then a="--method full"; else a="--window $2"; fi
        "$B/pare" tune "$P" -o "$OUT/$name.gguf" --data "$TR" $a --steps "$STEPS" --batch 8 --seq 256 --seed "$s" \
            --threads 2 --json -q > "$OUT/$name.json"
        last=$(ppl "$OUT/$name.gguf")
        if [ "$1" = full ]; then vote=$last; else vote=$(ppl "$OUT/$name.gguf" --vote); fi
        python3 - "$OUT/$name.json" "$name" "$last" "$vote" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
print("%s: last-exit ppl %s, vote ppl %s, loss %.4f, %.4f s/step, peak RSS %.1f MB (predicted %.1f)"
      % (sys.argv[2], sys.argv[3], sys.argv[4], r["loss"], r["sec_per_step"], r["peak_rss_mb"], r["predicted_peak_mb"]))
PY
    done
done

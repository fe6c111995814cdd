#!/bin/sh
# tune_table.sh - Edge-LLM adaptive layer tuning against vanilla (full) LoRA tuning on a
# 50%-pruned brown-4m (SparseGPT, unstructured, 128 x 256 calibration tokens of brown-train).
# Every run tunes for the same tokens: STEPS steps of 8 x 256 tokens of brown-train, LoRA
# r 8 on all seven linear layers, lr 4e-4; adaptive: exits 1,3,5,7 (sequential schedule),
# window 2 and 4; full: adapters on every block, one exit after the last. Perplexity on
# brown-test (366 windows of 256) by the last exit and by voting; time per step and peak
# RSS from pare tune --json, 2 threads, one run at a time.
# MODEL=stories260K: the same on stories260K (5 blocks; exits 0, 1, 2, 4; windows 1 and 2),
# pruned and tuned on tinystories_train_head, perplexity on the first 400 windows of 256 of
# tinystories_valid_head.
#   sh bench/tune_table.sh [BUILD [OUTDIR]]     env: SEEDS="0 1 2" STEPS=400 MODEL=brown-4m
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
MODEL=${MODEL:-brown-4m}
OUT=${2:-/tmp/pare-tune-$MODEL}
SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-400}
D=${PARE_DATA:-../shared/data}
case $MODEL in
    brown-4m) M=$D/bench/brown-4m/model.gguf; TR=$D/bench/brown-train.txt; TE=$D/bench/brown-test.txt
              EVAL=""; CONFIGS="adaptive:2 adaptive:4 full:8" ;;
    stories260K) M=$D/stories260K/stories260K.gguf; TR=$D/text/tinystories_train_head.txt
              TE=$D/text/tinystories_valid_head.txt; EVAL="--max-windows 400"; CONFIGS="adaptive:1 adaptive:2 full:5" ;;
    *) echo "MODEL: brown-4m or stories260K" >&2; exit 1 ;;
esac
mkdir -p "$OUT"
P=$OUT/sparsegpt50.gguf
[ -f "$P" ] || "$B/pare" prune "$M" -o "$P" --method sparsegpt --sparsity 0.5 --calib "$TR" --nsamples 128 --seqlen 256 -q
ppl() { "$B/pare" ppl "$@" --text "$TE" --ctx 256 $EVAL --threads 2 --json 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["ppl"])'; }
echo "dense $MODEL: $(ppl "$M"); 50% SparseGPT: $(ppl "$P")"
for s in $SEEDS; do
    for cfg in $CONFIGS; do
        set -- $(echo "$cfg" | tr : ' ')
        name=$1-w$2-s$s
        if [ "$1" = full ]; then a="--method full"; else a="--window $2"; fi
        "$B/pare" tune "$P" -o "$OUT/$name.gguf" --data "$TR" $a --steps "$STEPS" --batch 8 --seq 256 --seed "$s" \
            --threads 2 --json -q > "$OUT/$name.json"
        last=$(ppl "$OUT/$name.gguf")
        if [ "$1" = full ]; then vote=$last; else vote=$(ppl "$OUT/$name.gguf" --vote); fi
        python3 - "$OUT/$name.json" "$name" "$last" "$vote" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
print("%s: last-exit ppl %s, vote ppl %s, loss %.4f, %.4f s/step, peak RSS %.1f MB (predicted %.1f), %d tokens"
      % (sys.argv[2], sys.argv[3], sys.argv[4], r["loss"], r["sec_per_step"], r["peak_rss_mb"], r["predicted_peak_mb"], r["tokens"]))
PY
    done
done

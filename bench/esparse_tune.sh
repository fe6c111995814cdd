#!/bin/sh
# esparse_tune.sh - the ablation that sets E-Sparse's [O] defaults (METHODS.md 6): brown-4m
# pruned 2:4 with calibration 128 x 256 of brown-valid (seed 0), perplexity on brown-valid
# (ctx 256); never on a test text. One markdown row per configuration.
#   sh bench/esparse_tune.sh [BUILD [OUTDIR]]      env: PATTERN=2:4
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-estune}
PAT=${PATTERN:-2:4}
D=${PARE_DATA:-../shared/data}
M=$D/bench/brown-4m/model.gguf; V=$D/bench/brown-valid.txt
mkdir -p "$OUT"
echo "| configuration | flags | brown-valid ppl |"
echo "|---|---|---|"
run() { # NAME FLAGS...
    name=$1; shift
    "$B/pare" prune "$M" -o "$OUT/m.gguf" --method esparse --nm "$PAT" --calib "$V" --nsamples 128 --seqlen 256 \
        --seed 0 --threads 2 "$@" --json > "$OUT/$name.json" 2>/dev/null
    p=$("$B/pare" ppl "$OUT/m.gguf" --text "$V" --ctx 256 --json 2>/dev/null | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])')
    echo "| $name | ${*:--} | $p |"
    rm -f "$OUT/m.gguf"
}
run wanda-metric+shuffles --es-entropy 0
for r in 0.1 0.25 0.5 1 2 4; do run "beta-rel $r" --es-beta-rel $r; done
run mul --es-combine mul
run "beta-rel 1, 32 bins" --es-bins 32
run "beta-rel 1, 512 bins" --es-bins 512
run "beta-rel 1, skip BOS" --es-skip-bos
run "no entropy, skip BOS" --es-entropy 0 --es-skip-bos
run "no entropy, LBS block 128" --es-entropy 0 --es-lbs-block 128
run "no entropy, LBS 400 iters" --es-entropy 0 --es-lbs-iters 400

#!/bin/sh
# numerical_table.sh - the Numerical Pruning table of docs/RESULTS.md: brown-4m pruned at
# 10/20/30/50% of the attention + MLP weights by numerical (with and without compensation)
# and the structured baselines, perplexity on brown-test and WikiText-2 test (ctx 256).
# Calibration: 128 windows of 256 tokens; taylor-struct (LLM-Pruner's Taylor score, one
# backward pass of the whole model) on 32 windows of 256, and on LLM-Pruner's 10 of 64.
#   sh bench/numerical_table.sh [BUILD [OUTDIR [RATIOS]]]    env: WIKI_WINDOWS=0, METHODS (all)
# Prints one markdown row per model; the JSON of every run stays in OUTDIR.
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-numerical}
RATIOS=${3:-"0.1 0.2 0.3 0.5"}
WIKI_WINDOWS=${WIKI_WINDOWS:-0} # WikiText-2: its first WIKI_WINDOWS windows of 256 (0: all)
D=../shared/data
[ -d "$D" ] || D=/work/shared/data
MODEL=$D/bench/brown-4m/model.gguf
CALIB=$D/bench/brown-valid.txt
TEST=$D/bench/brown-test.txt
WIKI=$D/text/wikitext-2-raw/wiki.test.raw
mkdir -p "$OUT"

ppl() { # MODEL TEXT [MAXW] -> ppl
    "$B/pare" ppl "$1" --text "$2" --ctx 256 --max-windows "${3:-0}" --json 2>/dev/null | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["ppl"])'
}
row() { # NAME MODEL JSON
    info=$(python3 -c 'import json,sys
j = json.load(open(sys.argv[1])) if sys.argv[1] != "-" else None
if j is None: print("-|-|-|-")
else: print("%d|%.1f%%|%.1f%%|%s" % (j["params_after"], 100*j["block_removed_ratio"], 100*j["params_removed_ratio"],
      " ".join("%d/%d" % (l["heads"], l["ffn"]) for l in j["layers"])))' "$3")
    params=$(echo "$info" | cut -d'|' -f1); blk=$(echo "$info" | cut -d'|' -f2); tot=$(echo "$info" | cut -d'|' -f3)
    shape=$(echo "$info" | cut -d'|' -f4)
    if [ "$params" = "-" ]; then
        params=$("$B/pare" info "$2" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j.get("params", j.get("n_params", "-")))')
    fi
    echo "| $1 | $params | $blk | $tot | $(ppl "$2" "$TEST") | $(ppl "$2" "$WIKI" "$WIKI_WINDOWS") | $shape |"
}

echo "| model | parameters | attn+MLP removed | total removed | brown-test ppl | WikiText-2 ppl | heads/FFN per layer |"
echo "|---|---|---|---|---|---|---|"
row "dense" "$MODEL" -
for r in $RATIOS; do
    for m in ${METHODS:-numerical numerical-nocomp flap flap-nobias wanda-struct mag-struct taylor-struct taylor-struct-10x64}; do
        meth=$m; extra=""; cal="--nsamples 128 --seqlen 256"
        [ "$m" = numerical-nocomp ] && { meth=numerical; extra=--no-compensation; }
        [ "$m" = taylor-struct ] && cal="--nsamples 32 --seqlen 256"
        [ "$m" = taylor-struct-10x64 ] && { meth=taylor-struct; cal="--nsamples 10 --seqlen 64"; }
        o="$OUT/$m-$r.gguf"
        # shellcheck disable=SC2086
        "$B/pare" prune "$MODEL" -o "$o" --method "$meth" --ratio "$r" --calib "$CALIB" $cal \
            --seed 0 $extra --json > "$OUT/$m-$r.json"
        row "$m $r" "$o" "$OUT/$m-$r.json"
    done
done

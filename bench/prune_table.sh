#!/bin/sh
# prune_table.sh - the one-shot pruning table of docs/RESULTS.md: magnitude, wanda,
# sparsegpt and esparse at 2:4, 4:8 and 50% unstructured, plus the E-Sparse ablations, on
#   brown-4m:    calibration 128 x 256 tokens of brown-valid, perplexity on brown-test
#                (and WikiText-2 test, its first WIKI_WINDOWS windows of 256; 0 = all)
#   stories260K: calibration 64 x 256 tokens of tinystories_train_head, perplexity on
#                tinystories_valid_head (ctx 256)
# for calibration seeds SEEDS (mean and spread over seeds).
#   sh bench/prune_table.sh [BUILD [OUTDIR]]    env: SEEDS="0 1 2" WIKI_WINDOWS=0 MODELS="brown stories"
#                                               SEEDS_OTHER (seeds of the 4:8 and 50% rows; default SEEDS)
#                                               PATTERNS (brown, "2:4 4:8 0.5"), STORIES_PATTERNS ("2:4 0.5")
# Each run's perplexities are cached in OUTDIR (*.ppl-*): a rerun only computes what is missing.
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-prune}
SEEDS=${SEEDS:-"0 1 2"}
WIKI_WINDOWS=${WIKI_WINDOWS:-0}
MODELS=${MODELS:-"brown stories"}
D=${PARE_DATA:-../shared/data}
mkdir -p "$OUT"

ppl() { # MODEL TEXT [MAXW] -> ppl
    "$B/pare" ppl "$1" --text "$2" --ctx 256 --max-windows "${3:-0}" --json 2>/dev/null |
        python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'
}
stats() { # values... -> "mean ± half-range" (or the value alone)
    python3 -c 'import sys
v = [float(x) for x in sys.argv[1:]]
m = sum(v) / len(v)
print("%.2f" % m if len(v) == 1 or max(v) == min(v) else "%.2f ± %.2f" % (m, (max(v) - min(v)) / 2))' "$@"
}

for model in $MODELS; do
    if [ "$model" = brown ]; then
        M=$D/bench/brown-4m/model.gguf; CAL=$D/bench/brown-valid.txt; NS=128
        T1=$D/bench/brown-test.txt; T2=$D/text/wikitext-2-raw/wiki.test.raw; W1=0
        echo "### brown-4m (calibration $NS x 256 of brown-valid; seeds $SEEDS)"
        echo
        echo "| method | pattern | brown-test ppl | WikiText-2 ppl$( [ "$WIKI_WINDOWS" = 0 ] || echo " (first $WIKI_WINDOWS windows)") |"
        echo "|---|---|---|---|"
        echo "| dense | - | $(ppl "$M" "$T1") | $(ppl "$M" "$T2" "$WIKI_WINDOWS") |"
    else
        M=$D/stories260K/stories260K.gguf; CAL=$D/text/tinystories_train_head.txt; NS=64
        T1=$D/text/tinystories_valid_head.txt; T2=; W1=${STORIES_WINDOWS:-0}
        echo "### stories260K (calibration $NS x 256 of tinystories_train_head; seeds $SEEDS)"
        echo
        echo "| method | pattern | TinyStories valid ppl$( [ "$W1" = 0 ] || echo " (first $W1 windows)") |"
        echo "|---|---|---|"
        echo "| dense | - | $(ppl "$M" "$T1" "$W1") |"
    fi
    pats=${PATTERNS:-"2:4 4:8 0.5"}
    [ "$model" = stories ] && pats=${STORIES_PATTERNS:-"2:4 0.5"} # FFN width 172: no 4:8
    for pat in $pats; do
        for meth in magnitude wanda sparsegpt esparse esparse-noent esparse-nogns esparse-nolbs; do
            case "$meth" in esparse-*) [ "$pat" = 0.5 ] && continue;; esac
            base=$meth; extra=""
            case "$meth" in
                esparse-noent) base=esparse; extra="--es-entropy 0";;
                esparse-nogns) base=esparse; extra="--no-gns";;
                esparse-nolbs) base=esparse; extra="--no-lbs";;
            esac
            if [ "$pat" = 0.5 ]; then pflag="--sparsity 0.5"; else pflag="--nm $pat"; fi
            a=""; b=""
            seeds=$SEEDS; [ "$pat" = 2:4 ] || seeds=${SEEDS_OTHER:-$SEEDS}
            [ "$meth" = magnitude ] && seeds=0 # no calibration
            for s in $seeds; do
                o="$OUT/$model-$meth-$pat-$s.gguf"
                c="$OUT/$model-$meth-$pat-$s.ppl-$W1-$WIKI_WINDOWS" # cached: "ppl1 ppl2" of an earlier run
                if [ ! -s "$c" ]; then
                    "$B/pare" prune "$M" -o "$o" --method "$base" $pflag $extra --calib "$CAL" --nsamples $NS --seqlen 256 \
                        --seed "$s" --threads 2 --json > "$OUT/$model-$meth-$pat-$s.json"
                    p1=$(ppl "$o" "$T1" "$W1"); p2=-
                    [ -n "$T2" ] && p2=$(ppl "$o" "$T2" "$WIKI_WINDOWS")
                    echo "$p1 $p2" > "$c"
                    rm -f "$o"
                fi
                read -r p1 p2 < "$c"
                a="$a $p1"
                [ -n "$T2" ] && b="$b $p2"
            done
            if [ -n "$T2" ]; then echo "| $meth | $pat | $(stats $a) | $(stats $b) |"; else echo "| $meth | $pat | $(stats $a) |"; fi
        done
    done
    echo
done

#!/bin/sh
# sleb_table.sh - the block-removal table of docs/RESULTS.md: brown-4m (8 blocks) with 1, 2
# and 3 blocks removed by sleb, sleb-oneshot and shortgpt (calibration: 128 x 256 tokens of
# brown-valid, the paper's random windows, seed 0), perplexity on brown-test and WikiText-2
# test (ctx 256), and prompt/generation speed from `pare bench` against the dense model.
#   sh bench/sleb_table.sh [BUILD [OUTDIR [KS]]]
# Prints one markdown row per model; the JSON of every run stays in OUTDIR.
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-sleb}
KS=${3:-"1 2 3"}
D=${PARE_DATA:-../shared/data}
MODEL=$D/bench/brown-4m/model.gguf
CALIB=$D/bench/brown-valid.txt
TEST=$D/bench/brown-test.txt
WIKI=$D/text/wikitext-2-raw/wiki.test.raw
mkdir -p "$OUT"
J() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

ppl() { # MODEL TEXT -> ppl
    "$B/pare" ppl "$1" --text "$2" --ctx 256 --json > "$OUT/ppl.json"
    J "$OUT/ppl.json" '"%.2f" % j["ppl"]'
}
bench() { # MODEL NAME -> writes OUT/NAME.bench.json
    "$B/pare" bench "$1" --prompt 128 --gen 64 --reps 5 --threads 2 --no-bandwidth --json > "$OUT/$2.bench.json"
}
bench "$MODEL" dense
P0=$(J "$OUT/dense.bench.json" 'j["pp_tps"]'); G0=$(J "$OUT/dense.bench.json" 'j["tg_tps"]')
echo "| method | blocks removed | removed (original index) | selection time | brown-test ppl | WikiText-2 ppl | prefill tok/s (x dense) | decode tok/s (x dense) | L/(L-k) |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| dense | 0 | - | - | $(ppl "$MODEL" "$TEST") | $(ppl "$MODEL" "$WIKI") | $(printf %.0f "$P0") | $(printf %.0f "$G0") | 1.00 |"
for k in $KS; do
    for m in sleb sleb-oneshot shortgpt; do
        o="$OUT/$m-$k.gguf"
        "$B/pare" prune "$MODEL" -o "$o" --method "$m" --remove-blocks "$k" --calib "$CALIB" --nsamples 128 --seqlen 256 \
            --seed 0 --threads 2 --json > "$OUT/$m-$k.json"
        bench "$o" "$m-$k"
        rem=$(J "$OUT/$m-$k.json" '" ".join(str(x) for x in j["removed"])')
        sec=$(J "$OUT/$m-$k.json" '"%.1f s" % j["seconds"]')
        pr=$(J "$OUT/$m-$k.bench.json" '"%.0f (%.2fx)" % (j["pp_tps"], j["pp_tps"] / '"$P0"')')
        ge=$(J "$OUT/$m-$k.bench.json" '"%.0f (%.2fx)" % (j["tg_tps"], j["tg_tps"] / '"$G0"')')
        echo "| $m | $k | $rem | $sec | $(ppl "$o" "$TEST") | $(ppl "$o" "$WIKI") | $pr | $ge | $(python3 -c "print('%.2f' % (8 / (8 - $k)))") |"
    done
done

#!/bin/sh
# quant_table.sh - weight quantization of brown-4m: RTN to the GGUF block types and generic
# grids, GPTQ at 4 and 3 bits (calibration 128 x 256 of brown-valid, seed 0); perplexity on
# brown-test (ctx 256), bits per weight, nominal and file size. One markdown row per type.
#   sh bench/quant_table.sh [BUILD [OUTDIR]]
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-quant}
D=${PARE_DATA:-../shared/data}
M=$D/bench/brown-4m/model.gguf; CAL=$D/bench/brown-valid.txt; T=$D/bench/brown-test.txt
mkdir -p "$OUT"
ppl() { "$B/pare" ppl "$1" --text "$T" --ctx 256 --threads 1 --json 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["ppl"])'; }
one() { # TYPE METHOD -> "bits | file MB | nominal MB | ppl"
    extra=""; [ "$2" = gptq ] && extra="--calib $CAL --nsamples 128 --seqlen 256 --seed 0"
    # shellcheck disable=SC2086
    "$B/pare" quantize "$M" -o "$OUT/q.gguf" --type "$1" --method "$2" $extra --threads 1 --json > "$OUT/$1-$2.json" 2>/dev/null
    info=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.2f | %.2f | %.2f" % (j["bits_per_weight"], j["file_mb"], j["quantized_mb"]))' "$OUT/$1-$2.json")
    echo "$info | $(ppl "$OUT/q.gguf")"
    rm -f "$OUT/q.gguf"
}
echo "| type | method | bits/weight | file MB | nominal MB | brown-test ppl |"
echo "|---|---|---|---|---|---|"
echo "| f32 (dense) | - | 32 | $(du -m "$M" | cut -f1) | - | $(ppl "$M") |"
for t in q8_0 q5_1 q5_0 q4_1 q4_0 int4-g128 int4-g128-asym int3-g128 int3-g128-asym int3-g64 int3-g64-asym int2-g32 int2-g32-asym; do
    echo "| $t | rtn | $(one $t rtn) |"
done
for t in q4_1 q4_0 int4-g128 int3-g128 int3-g128-asym int3-g64 int2-g32-asym; do
    echo "| $t | gptq | $(one $t gptq) |"
done

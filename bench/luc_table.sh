#!/bin/sh
# luc_table.sh - the Pareto table of issue #8 part B (Edge-LLM LUC, METHODS.md 9 A, B):
# uniform, LUC and budgeted per-block sparsity + bits on brown-4m; perplexity vs nominal size.
#   sh bench/luc_table.sh [OUTDIR]      (PARE=path/to/pare, NSAMPLES=64 by default)
# Uniform: sparsity {0, 0.3, 0.5, 0.6} x bits {8, 4, 3}; LUC at the same targets (base bits B,
# high bits 8); budget at the sparse (bitmap) nominal size of each uniform point. All:
# SparseGPT then RTN int{B}-g128 symmetric, calibration brown-valid 64 x 256 seed 0 (one
# profile shared by LUC and budget), ppl on brown-test at ctx 256, one thread.
# Writes OUTDIR/luc_table.csv and prints a markdown table.
export PARE_FORCE=1 # reruns replace their outputs
set -eu
PARE=${PARE:-build/pare}
D=${DATA:-../shared/data/bench}
M=$D/brown-4m/model.gguf
OUT=${1:-/tmp/luc-results}
NS=${NSAMPLES:-64}
mkdir -p "$OUT"
C="--calib $D/brown-valid.txt --nsamples $NS --seqlen 256 --seed 0 --threads 1"
ppl() { "$PARE" ppl "$1" --text "$D/brown-test.txt" --ctx 256 --threads 1 --json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'; }
field() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); v=j[sys.argv[2]]; print(",".join(str(x) for x in v) if isinstance(v,list) else v)' "$1" "$2"; }
CSV=$OUT/luc_table.csv
echo "policy,target,bits,budget_mb,mean_sparsity,nominal_mb,sparse_mb,file_mb,ppl,layer_sparsity,layer_bits" > "$CSV"
[ -f "$OUT/profile.json" ] || "$PARE" profile "$M" $C --json > "$OUT/profile.json"
row() { # policy target bits budget json gguf
    p=$(ppl "$6")
    echo "$1,$2,$3,$4,$(field "$5" mean_sparsity),$(field "$5" nominal_mb),$(field "$5" sparse_mb),$(field "$5" file_mb),$p,\"$(field "$5" sparsity)\",\"$(field "$5" layer_bits)\"" >> "$CSV"
    rm -f "$6"
}
echo "dense,0,32,,0,$(stat -c %s "$M" | awk '{printf "%.4f", $1/1e6}'),,,$(ppl "$M"),," >> "$CSV"
for b in 8 4 3; do
    for s in 0 0.3 0.5 0.6; do
        "$PARE" compress "$M" -o "$OUT/u.gguf" --method uniform --target-sparsity $s --bits $b $C --json > "$OUT/u-$s-$b.json"
        row uniform $s $b "" "$OUT/u-$s-$b.json" "$OUT/u.gguf"
        "$PARE" compress "$M" -o "$OUT/l.gguf" --method luc --target-sparsity $s --bits $b --high-bits 8 \
            --profile "$OUT/profile.json" $C --json > "$OUT/l-$s-$b.json"
        row luc $s $b "" "$OUT/l-$s-$b.json" "$OUT/l.gguf"
        mb=$(field "$OUT/u-$s-$b.json" sparse_mb)
        "$PARE" compress "$M" -o "$OUT/b.gguf" --method budget --budget-mb "$mb" --profile "$OUT/profile.json" $C --json \
            > "$OUT/b-$s-$b.json"
        row budget $s $b "$mb" "$OUT/b-$s-$b.json" "$OUT/b.gguf"
    done
done
python3 - "$CSV" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| policy | target sparsity | bits | mean sparsity | nominal MB (dense) | nominal MB (sparse, bitmap) | ppl | per-block sparsity / bits |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    per = ""
    if r["layer_sparsity"]:
        per = " ".join("%.2f/%s" % (float(s), b) for s, b in zip(r["layer_sparsity"].split(","), r["layer_bits"].split(",")))
    tgt = ("budget %s MB" % r["budget_mb"]) if r["policy"] == "budget" else r["target"]
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (r["policy"], tgt, r["bits"] if r["policy"] != "budget" else "-",
          r["mean_sparsity"], r["nominal_mb"], r["sparse_mb"], r["ppl"], per))
PY
# the plot of docs/RESULTS.md
python3 "$(dirname "$0")/pareto_plot.py" "$CSV" "${SVG:-$OUT/luc_pareto.svg}"

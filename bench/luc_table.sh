#!/bin/sh
# luc_table.sh - the Pareto table of issue #8 part B (Edge-LLM LUC, METHODS.md 9 A, B):
# uniform, LUC and budgeted per-block sparsity + bits on brown-4m; perplexity vs nominal size.
#   sh bench/luc_table.sh [OUTDIR]      (PARE=path/to/pare, NSAMPLES=64 by default)
# Policies (POLICIES, default all five), at each uniform point: sparsity {0, 0.3, 0.5, 0.6} x
# bits {8, 4, 3} (BITS, SPARSITIES):
#   uniform      the same sparsity and bits everywhere
#   luc          the paper's rule at the same target and base bits (high bits 8)
#   luc-size     the paper's rule at uniform's size (--budget-mb: the target is solved for)
#   budget       our search at uniform's size, cost = the relative block output errors
#   budget-loss  our search at uniform's size, cost = the model-level loss changes
#   budget-verify  both searches and the fitting uniform allocations, compressed and scored
#                on held-out calibration windows (--verify); not in the default set
# All: SparseGPT then RTN int{B}-g128 symmetric, calibration brown-valid 64 x 256 seed 0 (one
# loss profile, pare profile --loss, shared by all), ppl on brown-test at ctx 256, one thread.
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
POL=${POLICIES:-uniform luc luc-size budget budget-loss}
has() { case " $POL " in *" $1 "*) return 0;; esac; return 1; }
[ -f "$OUT/profile.json" ] || "$PARE" profile "$M" $C --loss --json > "$OUT/profile.json"
row() { # policy target bits budget json gguf
    p=$(ppl "$6")
    echo "$1,$2,$3,$4,$(field "$5" mean_sparsity),$(field "$5" nominal_mb),$(field "$5" sparse_mb),$(field "$5" file_mb),$p,\"$(field "$5" sparsity)\",\"$(field "$5" layer_bits)\"" >> "$CSV"
    rm -f "$6"
}
echo "dense,0,32,,0,$(stat -c %s "$M" | awk '{printf "%.4f", $1/1e6}'),,,$(ppl "$M"),," >> "$CSV"
for b in ${BITS:-8 4 3}; do
    for s in ${SPARSITIES:-0 0.3 0.5 0.6}; do
        "$PARE" compress "$M" -o "$OUT/u.gguf" --method uniform --target-sparsity $s --bits $b $C --json > "$OUT/u-$s-$b.json"
        mb=$(field "$OUT/u-$s-$b.json" sparse_mb)
        if has uniform; then row uniform $s $b "" "$OUT/u-$s-$b.json" "$OUT/u.gguf"; else rm -f "$OUT/u.gguf"; fi
        if has luc; then
            "$PARE" compress "$M" -o "$OUT/l.gguf" --method luc --target-sparsity $s --bits $b --high-bits 8 \
                --profile "$OUT/profile.json" $C --json > "$OUT/l-$s-$b.json"
            row luc $s $b "" "$OUT/l-$s-$b.json" "$OUT/l.gguf"
        fi
        if has luc-size; then
            "$PARE" compress "$M" -o "$OUT/ls.gguf" --method luc --budget-mb "$mb" --bits $b --high-bits 8 \
                --profile "$OUT/profile.json" $C --json > "$OUT/ls-$s-$b.json"
            row luc-size $s $b "$mb" "$OUT/ls-$s-$b.json" "$OUT/ls.gguf"
        fi
        if has budget; then
            "$PARE" compress "$M" -o "$OUT/b.gguf" --method budget --objective err --budget-mb "$mb" \
                --profile "$OUT/profile.json" $C --json > "$OUT/b-$s-$b.json"
            row budget $s $b "$mb" "$OUT/b-$s-$b.json" "$OUT/b.gguf"
        fi
        if has budget-verify; then
            "$PARE" compress "$M" -o "$OUT/bv.gguf" --method budget --verify --budget-mb "$mb" \
                --profile "$OUT/profile.json" $C --json > "$OUT/bv-$s-$b.json"
            row budget-verify $s $b "$mb" "$OUT/bv-$s-$b.json" "$OUT/bv.gguf"
        fi
        if has budget-loss; then
            "$PARE" compress "$M" -o "$OUT/bl.gguf" --method budget --objective loss --budget-mb "$mb" \
                --profile "$OUT/profile.json" $C --json > "$OUT/bl-$s-$b.json"
            row budget-loss $s $b "$mb" "$OUT/bl-$s-$b.json" "$OUT/bl.gguf"
        fi
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
    tgt = ("%s MB (uniform %s / %s)" % (r["budget_mb"], r["target"], r["bits"])) if r["budget_mb"] else r["target"]
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (r["policy"], tgt, r["bits"] if not r["policy"].startswith("budget") else "-",
          r["mean_sparsity"], r["nominal_mb"], r["sparse_mb"], r["ppl"], per))
PY
# the plot of docs/RESULTS.md
python3 "$(dirname "$0")/pareto_plot.py" "$CSV" "${SVG:-$OUT/luc_pareto.svg}"

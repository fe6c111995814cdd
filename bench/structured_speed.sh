#!/bin/sh
# structured_speed.sh - pare bench of the structurally pruned brown-4m models that
# numerical_table.sh leaves in OUTDIR, against the dense model (benched first and last; the
# ratios use the mean of the two). Prompt 128, 64 generated tokens; env REPS (5), THREADS (2).
#   sh bench/structured_speed.sh [BUILD [OUTDIR [MODELS]]]
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-numerical}
MODELS=${3:-"numerical-0.1 numerical-0.2 numerical-0.3 numerical-0.5 wanda-struct-0.5"}
D=${PARE_DATA:-../shared/data}
DENSE=$D/bench/brown-4m/model.gguf
b() { "$B/pare" bench "$1" --prompt 128 --gen 64 --reps ${REPS:-5} --threads ${THREADS:-2} --no-probe --json 2>/dev/null |
      python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["params"], j["pp_tps"], j["tg_tps"], j["peak_rss_mb"])'; }
d1=$(b "$DENSE")
rows=""
for m in $MODELS; do rows="$rows$m $(b "$OUT/$m.gguf")
"; done
d2=$(b "$DENSE")
printf '%s\n%s\n%s' "$d1" "$d2" "$rows" | python3 -c 'import sys
l = [x.split() for x in sys.stdin.read().strip().split("\n")]
d = [[float(v) for v in l[0]], [float(v) for v in l[1]]]
pp = (d[0][1] + d[1][1]) / 2; tg = (d[0][2] + d[1][2]) / 2
print("| model | parameters | prefill tok/s (x dense) | decode tok/s (x dense) | peak RSS MB |")
print("|---|---|---|---|---|")
print("| dense | %d | %.0f | %.0f | %.1f |" % (d[0][0], pp, tg, d[0][3]))
for r in l[2:]:
    p, a, g, rss = float(r[1]), float(r[2]), float(r[3]), float(r[4])
    print("| %s | %d | %.0f (%.2fx) | %.0f (%.2fx) | %.1f |" % (r[0], p, a, a / pp, g, g / tg, rss))'

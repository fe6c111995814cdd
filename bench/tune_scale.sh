#!/bin/sh
# tune_scale.sh - adaptive layer tuning against vanilla (full) LoRA tuning at the
# TinyLlama-1.1B shape (22 blocks, width 2048, vocabulary 32000), Q8_0 random weights from
# pare synth: time per step and peak RSS, 2 threads, one run at a time. Adaptive: Edge-LLM's
# defaults for 22 blocks (exits 4,10,15,21, window 5, sequential); full: adapters on all 22
# blocks, one exit. STEPS steps of 1 x SEQ tokens of brown-train (the weights are random, so
# the losses mean nothing; the costs do).
#   sh bench/tune_scale.sh [BUILD [OUTDIR]]     env: STEPS=12 SEQ=128
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-tune-scale}
STEPS=${STEPS:-12}
SEQ=${SEQ:-128}
D=${PARE_DATA:-../shared/data}
mkdir -p "$OUT"
M=$OUT/tinyllama-q8_0.gguf
[ -f "$M" ] || "$B/pare" synth --shape tinyllama-1.1b --type q8_0 --seed 1 -o "$M" > /dev/null
for meth in adaptive full; do
    /usr/bin/time -v "$B/pare" tune "$M" -o "$OUT/$meth.gguf" --method $meth --data "$D/bench/brown-train.txt" \
        --steps "$STEPS" --batch 1 --seq "$SEQ" --threads 2 --log-every 1 --json -q > "$OUT/$meth.json" 2> "$OUT/$meth.time"
    rm -f "$OUT/$meth.gguf"
    python3 - "$OUT/$meth.json" "$OUT/$meth.time" "$meth" <<'PY'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = L[-1]
wall = [l for l in open(sys.argv[2]) if "Elapsed (wall" in l][0].split()[-1]
print("%s: window %d, exits %s, %.2f s/step, %.2f without phase starts (per exit, all steps: %s), peak RSS %.0f MB (predicted %.0f), whole run %s"
      % (sys.argv[3], r["window"], r["exits"], r["sec_per_step"], r["sec_per_step_steady"],
         " ".join("%.2f" % (sum(l["sec_per_step"] for l in L[:-1] if l["exit"] == k) /
                            max(1, sum(1 for l in L[:-1] if l["exit"] == k))) for k in range(len(r["exits"]))),
         r["peak_rss_mb"], r["predicted_peak_mb"], wall))
PY
done

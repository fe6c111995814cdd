#!/bin/sh
# engine_table.sh - the engine's speed table of docs/PERFORMANCE.md: decode and prefill of
# random-weight models with the TinyLlama-1.1B shape (pare synth; 22 blocks, dim 2048, GQA
# 32/4 heads, FFN 5632, vocab 32000) in every weight type, dense and N:M sparse, against this
# machine's memory bandwidth and FMA peak measured by pare bench in the same run.
#   sh bench/engine_table.sh [BUILD [WORKDIR]]
#   env: SHAPE (default tinyllama-1.1b), RUNS (default 3: each row is run RUNS times and the
#        run with the best roofline ratio is kept, the median beside it), GEN (default 32),
#        TYPES (default "f32 f16 bf16 q8_0 q4_0"), WRITE=1 replaces the table in
#        docs/PERFORMANCE.md between its MARK markers (MARK default engine-table, the AVX-512
#        machine's table; engine-table-avx2 for the AVX2 one).
# The models (about 16 GB for the default shape) are written to WORKDIR once and reused, and
# so are the measurements (WORKDIR/*.json): delete a row's files to measure it again.
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
W=${2:-/tmp/pare-engine}
SHAPE=${SHAPE:-tinyllama-1.1b}
RUNS=${RUNS:-3}
GEN=${GEN:-32}
TYPES=${TYPES:-"f32 f16 bf16 q8_0 q4_0"}
mkdir -p "$W"
synth() { # NAME TYPE [NM]
    [ -f "$W/$1.gguf" ] && return 0
    if [ -n "$3" ]; then "$B/pare" synth --shape "$SHAPE" --type "$2" --nm "$3" --seed 1 -o "$W/$1.gguf" >&2
    else "$B/pare" synth --shape "$SHAPE" --type "$2" --seed 1 -o "$W/$1.gguf" >&2; fi
}
ROWS=""
run() { # LABEL MODEL THREADS [bench options...]
    label=$1; model=$2; threads=$3; shift 3
    ROWS="$ROWS $label"
    [ -f "$W/$label.$((RUNS - 1)).json" ] && return 0 # measured before: delete to measure again
    i=0
    while [ $i -lt "$RUNS" ]; do
        "$B/pare" bench "$W/$model.gguf" --prompt 128 --gen "$GEN" --reps 2 --threads "$threads" --json "$@" > "$W/$label.$i.json"
        i=$((i + 1))
    done
    echo "done: $label" >&2
}
for t in $TYPES; do synth "$t" "$t"; run "$t" "$t" 2; done
synth f16-2of4 f16 2:4; run "f16-2:4" f16-2of4 2
run "f16-2:4-q8" f16-2of4 2 --sparse q8
synth f16-4of8 f16 4:8; run "f16-4:8" f16-4of8 2
synth q8_0-2of4 q8_0 2:4; run "q8_0-2:4" q8_0-2of4 2
run "f16-1thread" f16 1
run "f16-2:4-1thread" f16-2of4 1
python3 - "$W" "$RUNS" $ROWS > "$W/table.md" <<'PY'
import json, sys, statistics
w, runs, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
res = {}
for r in rows:
    js = [json.load(open(f"{w}/{r}.{i}.json")) for i in range(runs)]
    best = max(js, key=lambda j: j["roofline_ratio"])
    res[r] = (best, statistics.median(j["tg_tps"] for j in js), statistics.median(j["pp_tps"] for j in js))
d = res.get("f16", (None,))[0]
print("| weights | threads | decode tok/s (median) | x dense f16 | bytes/token | triad GB/s | roofline tok/s | decode / roofline | decode / read bw | prefill tok/s | prefill / FMA peak | linear layers MB (x dense) | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    b, tg, pp = res[r]
    x = "%.2f" % (b["tg_tps"] / d["tg_tps"]) if d else "-"
    print("| %s | %d | %.2f (%.2f) | %s | %.0f MB | %.1f | %.2f | %.2f | %.2f | %.1f (%.1f) | %.2f | %.0f (%.3f) | %.0f |" % (
        r, b["threads"], b["tg_tps"], tg, x, b["bytes_per_token"] / 1e6, b["bandwidth_gbs"], b["roofline_tps"], b["roofline_ratio"],
        b["read_roofline_ratio"], b["pp_tps"], pp, b["pp_peak_ratio"], b["linear_mb"], b["linear_ratio"], b["peak_rss_mb"]))
j = res[rows[0]][0]
print()
print("Machine (measured in the same runs): triad %.1f GB/s, read %.1f GB/s, FMA peak %.0f GFLOP/s, %s kernels, %d threads." % (
    j["bandwidth_gbs"], j["read_gbs"], j["fma_peak_gflops"], j["isa"], j["threads"]))
PY
# Ratios in one run: the two sides of each comparison alternate (A B A B ...), and the
# ratio of each adjacent pair is taken, so that the VM's drift over minutes cancels.
PAIRS=${PAIRS:-4}
pair() { # NAME A-MODEL A-THREADS A-OPTS B-MODEL B-THREADS B-OPTS
    name=$1; i=0
    PNAMES="$PNAMES $name"
    [ -f "$W/pair-$name.b$((PAIRS - 1)).json" ] && return 0
    while [ $i -lt "$PAIRS" ]; do
        "$B/pare" bench "$W/$2.gguf" --prompt 128 --gen "$GEN" --reps 1 --threads "$3" --no-probe --json $4 > "$W/pair-$name.a$i.json"
        "$B/pare" bench "$W/$5.gguf" --prompt 128 --gen "$GEN" --reps 1 --threads "$6" --no-probe --json $7 > "$W/pair-$name.b$i.json"
        i=$((i + 1))
    done
    echo "done: pair $name" >&2
}
PNAMES=""
pair f16-24 f16 2 "" f16-2of4 2 ""
pair 24-q8 f16-2of4 2 "" f16-2of4 2 "--sparse q8"
pair f16-48 f16 2 "" f16-4of8 2 ""
pair q8-24 q8_0 2 "" q8_0-2of4 2 ""
pair threads f16 1 "" f16 2 ""
pair f16-layout f16 2 "--layout file" f16 2 ""
pair q8-layout q8_0 2 "--layout file" q8_0 2 ""
pair q4-layout q4_0 2 "--layout file" q4_0 2 ""
python3 - "$W" "$PAIRS" $PNAMES >> "$W/table.md" <<'PY'
import json, sys, statistics
w, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
what = {"f16-24": "2:4 F16 / dense F16", "24-q8": "2:4 8-bit values / 2:4 F16", "f16-48": "4:8 F16 / dense F16",
        "q8-24": "2:4 Q8_0 / dense Q8_0", "threads": "F16, 2 threads / 1 thread",
        "f16-layout": "F16, engine layout / file layout", "q8-layout": "Q8_0, engine layout / file layout",
        "q4-layout": "Q4_0, engine layout / file layout"}
print()
print("Ratios measured in one run (%d alternating pairs, 128-token prompt, %s generated tokens; median, range):" % (n, "32"))
print()
print("| comparison | decode ratio | prefill ratio | linear-layer bytes ratio |")
print("|---|---|---|---|")
for m in names:
    a = [json.load(open(f"{w}/pair-{m}.a{i}.json")) for i in range(n)]
    b = [json.load(open(f"{w}/pair-{m}.b{i}.json")) for i in range(n)]
    tg = [y["tg_tps"] / x["tg_tps"] for x, y in zip(a, b)]
    pp = [y["pp_tps"] / x["pp_tps"] for x, y in zip(a, b)]
    lb = b[0]["linear_mb"] / a[0]["linear_mb"]
    print("| %s | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.3f |" % (what.get(m, m), statistics.median(tg), min(tg), max(tg),
          statistics.median(pp), min(pp), max(pp), lb))
PY
cat "$W/table.md"
if [ "${WRITE:-0}" = 1 ]; then
    python3 - "$W/table.md" docs/PERFORMANCE.md "${MARK:-engine-table}" <<'PY'
import sys
t, p, mark = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
s = open(p).read()
a, b = "<!-- %s:begin -->" % mark, "<!-- %s:end -->" % mark
i, k = s.index(a) + len(a), s.index(b)
open(p + ".tmp", "w").write(s[:i] + "\n" + t + s[k:])
import os; os.replace(p + ".tmp", p)
PY
fi

#!/bin/sh
# report_demo.sh - a full run on brown-4m for `pare report`: magnitude, wanda, sparsegpt and
# esparse at 30%, 50%, 70% and 2:4, numerical and wanda-struct at 20% and 40%, SLEB removing
# 1 and 2 blocks, q4_0 (RTN) and int3-g128 (GPTQ), the sensitivity profile and a LUC
# compression at 50% / 4 bits, a bench of the dense model and of the 2:4 results, an adaptive tune of the 50%
# SparseGPT model; perplexities on brown-test (first 100 windows of 256); then the page and
# (with Chromium) its screenshot docs/report.png.
#   sh bench/report_demo.sh [BUILD [OUTDIR]]
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-report-demo}
D=${PARE_DATA:-../shared/data}
M=$D/bench/brown-4m/model.gguf; CAL=$D/bench/brown-train.txt; TE=$D/bench/brown-test.txt
mkdir -p "$OUT"
PPL="--text $TE --ctx 256 --max-windows 100 --json -q"
C="--calib $CAL --nsamples 32 --seqlen 256"
"$B/pare" ppl "$M" $PPL > "$OUT/dense.json"
"$B/pare" bench "$M" --prompt 64 --gen 32 --json > "$OUT/bench-dense.json" 2> /dev/null
for meth in magnitude wanda sparsegpt esparse; do
    for s in 0.3 0.5 0.7 2:4; do
        case $s in *:*) pat="--nm $s"; [ $meth = esparse ] || true;; *) pat="--sparsity $s";; esac
        [ $meth = esparse ] && [ "$pat" != "--nm 2:4" ] && continue # E-Sparse is N:M only
        o=$OUT/$meth-$s.gguf
        { "$B/pare" prune "$M" -o "$o" --method $meth $pat $C --json -q; "$B/pare" ppl "$o" $PPL 2> /dev/null; } > "$OUT/$meth-$s.json"
        [ "$s" = 2:4 ] && "$B/pare" bench "$o" --prompt 64 --gen 32 --json > "$OUT/bench-$meth-24.json" 2> /dev/null
    done
done
for r in 0.2 0.4; do # structured: heads and FFN channels removed
    for meth in numerical wanda-struct; do
        o=$OUT/$meth-$r.gguf
        { "$B/pare" prune "$M" -o "$o" --method $meth --ratio $r $C --json -q; "$B/pare" ppl "$o" $PPL; } > "$OUT/$meth-$r.json"
    done
done
for k in 1 2; do # whole blocks
    o=$OUT/sleb-$k.gguf
    { "$B/pare" prune "$M" -o "$o" --method sleb --remove-blocks $k $C --json -q; "$B/pare" ppl "$o" $PPL; } > "$OUT/sleb-$k.json"
done
{ "$B/pare" quantize "$M" -o "$OUT/q4_0.gguf" --type q4_0 --json -q; "$B/pare" ppl "$OUT/q4_0.gguf" $PPL; } > "$OUT/q4_0.json"
{ "$B/pare" quantize "$M" -o "$OUT/gptq3.gguf" --type int3-g128 --method gptq $C --json -q; "$B/pare" ppl "$OUT/gptq3.gguf" $PPL; } > "$OUT/gptq3.json"
"$B/pare" profile "$M" $C --json -q > "$OUT/profile.json"
{ "$B/pare" compress "$M" -o "$OUT/luc.gguf" --method luc --target-sparsity 0.5 --bits 4 --profile "$OUT/profile.json" $C --json -q;
  "$B/pare" ppl "$OUT/luc.gguf" $PPL; } > "$OUT/luc.json"
"$B/pare" tune "$OUT/sparsegpt-0.5.gguf" -o "$OUT/tuned.gguf" --data "$CAL" --window 2 --steps 40 --json -q > "$OUT/tune.json"
"$B/pare" report "$OUT"/*.json -o "$OUT/report.html" --title "pare on brown-4m: pruning, compression, speed, tuning"
CH=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CH" ]; then
    "$CH" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot=docs/report.png --window-size=1100,5200 \
        "file://$(cd "$OUT" && pwd)/report.html" 2> /dev/null
    echo "screenshot: docs/report.png"
fi

#!/bin/sh
# fuzz/run.sh [SECONDS [OUT]] - build the targets, make the seed corpora, run every target
# for SECONDS (default 600) with ASan + UBSan, inputs up to 100 kB, and report executions,
# corpus and findings per target (crashes are kept in OUT/crash-TARGET/). Exit 1 on a finding.
# env FUZZ_TARGETS: a subset (default: gguf safetensors config tokjson spm llama2c).
cd "$(dirname "$0")/.."
SECS=${1:-600}
OUT=${2:-build-fuzz}
D=${PARE_DATA:-../shared/data}
sh fuzz/build.sh "$OUT" > "$OUT.build.log" 2>&1 || { cat "$OUT.build.log"; exit 1; }
[ -x build/pare ] || make -s build/pare > /dev/null
rm -rf "$OUT/seeds" && sh fuzz/seeds.sh build/pare "$OUT/seeds" || exit 1
export PARE_FUZZ_HF="$OUT/seeds/hf" PARE_FUZZ_TOK="$D/stories260K/tok512.bin"
found=0
for t in ${FUZZ_TARGETS:-gguf safetensors config tokjson spm llama2c}; do
    mkdir -p "$OUT/corpus-$t" "$OUT/crash-$t"
    # inputs that once crashed a target (fuzz/regress/TARGET-*) must stay fixed
    for r in fuzz/regress/$t-*; do
        [ -f "$r" ] || continue
        if ! "$OUT/fuzz_$t" -timeout=5 "$r" > "$OUT/regress-$t.log" 2>&1; then
            echo "fuzz_$t: regression input $r fails again"; tail -5 "$OUT/regress-$t.log"; found=1
        fi
    done
    t0=$(date +%s)
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$OUT/fuzz_$t" "$OUT/corpus-$t" "$OUT/seeds/$t" \
        -max_total_time="$SECS" -max_len=100000 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$OUT/crash-$t/" > "$OUT/fuzz-$t.log" 2>&1
    rc=$?
    el=$(( $(date +%s) - t0 ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/fuzz-$t.log" | grep -o '[0-9]*$')
    corp=$(ls "$OUT/corpus-$t" | wc -l)
    crashes=$(ls "$OUT/crash-$t" | wc -l)
    echo "fuzz_$t: ${execs:-?} executions in ${el} s, corpus $corp inputs, findings $crashes (exit $rc)"
    if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then found=1; tail -30 "$OUT/fuzz-$t.log"; fi
done
exit $found

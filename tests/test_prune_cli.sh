#!/bin/sh
# test_prune_cli.sh - `pare prune` with the one-shot methods from the command line (build folder
# in $1): N >= M, M > 16, N = 0, a malformed pattern, --sparsity 0 / 1 / 1.5 / text, both or
# neither pattern, no --calib, a calibration text shorter than one window, an M that does not
# divide the model's widths (fails inside prune_model, after loading) and -o equal to the input
# each exit non-zero (not by a signal) with a one-line "pare prune: ..." message on stderr and
# leave neither OUT nor a temporary file behind; the input model's bytes never change (sha256
# before/after); small wanda / magnitude / sparsegpt / esparse 2:4 runs succeed, write OUT and
# report 50% zeros. Data: $PARE_DATA or ../shared/data (bench/brown-4m, bench/brown-valid.txt).
B=${1:-build}
PARE="$B/pare"
D=${PARE_DATA:-../shared/data}
SRC="$D/bench/brown-4m/model.gguf"
CALIB="$D/bench/brown-valid.txt"
if [ ! -x "$PARE" ]; then echo "FAIL: $PARE not built"; exit 1; fi
if [ ! -f "$SRC" ] || [ ! -f "$CALIB" ]; then echo "skip: $SRC or $CALIB not found"; exit 0; fi

T=$(mktemp -d "${TMPDIR:-/tmp}/pare-prune-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
mkdir "$T/out"
cp "$SRC" "$T/in.gguf" || exit 1
chmod u+w "$T/in.gguf"
printf 'A short text.\n' > "$T/short.txt"
SUM0=$(sha256sum < "$T/in.gguf")
fails=0
CAL="--nsamples 4 --seqlen 64 --threads 1"

fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# nothing but OUT (when expected) in the output folder, the input unchanged
check_clean() { # label, expected file or ""
    left=$(ls -A "$T/out")
    if [ "$left" != "$2" ]; then fail "$1: output folder holds '$left' (expected '$2')"; fi
    if [ "$(sha256sum < "$T/in.gguf")" != "$SUM0" ]; then fail "$1: the input model changed"; fi
    top=$(ls -A "$T" | tr '\n' ' ')
    if [ "$top" != "in.gguf out short.txt stderr stdout " ]; then fail "$1: left beside the input: '$top'"; fi
}

expect_fail() { # label, then the arguments after MODEL
    label=$1; shift
    rm -rf "$T/out"/* "$T/out"/.[!.]* 2>/dev/null
    "$PARE" prune "$T/in.gguf" "$@" > "$T/stdout" 2> "$T/stderr"
    rc=$?
    if [ "$rc" = 0 ]; then fail "$label: exit 0"
    elif [ "$rc" -gt 125 ]; then fail "$label: exit $rc (killed by a signal?)"; fi
    n=$(wc -l < "$T/stderr")
    if [ "$n" != 1 ]; then fail "$label: $n lines on stderr"; sed 's/^/    /' "$T/stderr"
    elif ! grep -q '^pare prune: ' "$T/stderr"; then fail "$label: message '$(cat "$T/stderr")'"
    else echo "ok   $label: $(cat "$T/stderr")"; fi
    check_clean "$label" ""
}

OUT="$T/out/o.gguf"
expect_fail "N = M"          -o "$OUT" --method wanda --nm 4:4 --calib "$CALIB" $CAL
expect_fail "N > M"          -o "$OUT" --method wanda --nm 5:4 --calib "$CALIB" $CAL
expect_fail "N = 0"          -o "$OUT" --method magnitude --nm 0:4 --threads 1
expect_fail "M > 16"         -o "$OUT" --method sparsegpt --nm 2:32 --calib "$CALIB" $CAL
expect_fail "bad N:M"        -o "$OUT" --method wanda --nm 2-4 --calib "$CALIB" $CAL
expect_fail "sparsity 0"     -o "$OUT" --method wanda --sparsity 0 --calib "$CALIB" $CAL
expect_fail "sparsity 1"     -o "$OUT" --method magnitude --sparsity 1
expect_fail "sparsity 1.5"   -o "$OUT" --method sparsegpt --sparsity 1.5 --calib "$CALIB" $CAL
expect_fail "sparsity text"  -o "$OUT" --method wanda --sparsity half --calib "$CALIB" $CAL
expect_fail "both patterns"  -o "$OUT" --method wanda --nm 2:4 --sparsity 0.5 --calib "$CALIB" $CAL
expect_fail "no pattern"     -o "$OUT" --method wanda --calib "$CALIB" $CAL
expect_fail "no --calib"     -o "$OUT" --method wanda --nm 2:4
expect_fail "no -o"          --method magnitude --nm 2:4
expect_fail "short calib"    -o "$OUT" --method wanda --nm 2:4 --calib "$T/short.txt" $CAL
expect_fail "short calib es" -o "$OUT" --method esparse --nm 2:4 --calib "$T/short.txt" $CAL
expect_fail "M !| width"     -o "$OUT" --method wanda --nm 3:7 --calib "$CALIB" $CAL
expect_fail "unknown method" -o "$OUT" --method nope --nm 2:4 --calib "$CALIB" $CAL
# -o the input itself: refused, the input untouched
expect_fail "-o = input"     -o "$T/in.gguf" --method magnitude --nm 2:4

# successful runs: exit 0, OUT written, nothing else left, 50% zeros for 2:4
for args in "magnitude" "wanda --calib $CALIB" "sparsegpt --calib $CALIB" \
            "esparse --calib $CALIB --es-lbs-block 16 --es-lbs-iters 1"; do
    rm -rf "$T/out"/*
    m=${args%% *}
    # shellcheck disable=SC2086
    "$PARE" prune "$T/in.gguf" -o "$OUT" --method $args --nm 2:4 $CAL --json > "$T/stdout" 2> "$T/stderr"
    rc=$?
    if [ "$rc" != 0 ]; then fail "$m 2:4: exit $rc: $(cat "$T/stderr")"; continue; fi
    if [ ! -s "$OUT" ]; then fail "$m 2:4: no OUT"; fi
    if ! grep -q '"nm":"2:4"' "$T/stdout" || ! grep -q '"sparsity":0.500000,"seconds"' "$T/stdout"; then
        fail "$m 2:4: unexpected JSON: $(head -c 300 "$T/stdout")"
    else
        echo "ok   $m 2:4: wrote $(wc -c < "$OUT") bytes, 50% zeros"
    fi
    check_clean "$m 2:4" "o.gguf"
done

# the model changes during the run (rewritten in place; truncated under the map): a one-line
# error naming it, non-zero exit (not a signal), no OUT and no temporary file
for how in rewrite truncate; do
    rm -rf "$T/out"/*
    cp "$SRC" "$T/out/chg.gguf" && chmod u+w "$T/out/chg.gguf"
    # (a sanitizer build leaves SIGBUS to pare's handler, whose behaviour is under test)
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0" \
    "$PARE" prune "$T/out/chg.gguf" -o "$OUT" --method wanda --nm 2:4 --calib "$CALIB" --nsamples 64 --seqlen 256 \
        --threads 1 > "$T/stdout" 2> "$T/stderr" &
    pid=$!
    sleep 1
    if [ "$how" = rewrite ]; then printf 'XXXX' | dd of="$T/out/chg.gguf" bs=1 seek=5000000 conv=notrunc 2>/dev/null
    else truncate -s 3000000 "$T/out/chg.gguf"; fi
    wait $pid
    rc=$?
    left=$(ls -A "$T/out")
    if [ "$rc" = 0 ] || [ "$rc" -gt 125 ]; then fail "input $how during the run: exit $rc"
    elif [ "$(wc -l < "$T/stderr")" != 1 ] || ! grep -q 'chg.gguf: the input' "$T/stderr"; then
        fail "input $how during the run: message '$(cat "$T/stderr")'"
    elif [ "$left" != chg.gguf ]; then fail "input $how during the run: left '$left'"
    else echo "ok   input $how during the run: $(cat "$T/stderr")"; fi
    rm -f "$T/out/chg.gguf"
done

# structured pruning: the physically smaller GGUF has per-layer shapes (pare info) and the
# perplexity of the masked model of the same selection (--mask-only), to 1e-5
rm -rf "$T/out"/*
for mo in phys mask; do
    flag=""; [ "$mo" = mask ] && flag=--mask-only
    # shellcheck disable=SC2086
    "$PARE" prune "$T/in.gguf" -o "$T/out/$mo.gguf" --method numerical --ratio 0.2 --calib "$CALIB" $CAL $flag \
        > /dev/null 2>&1 || fail "numerical $mo: exit $?"
done
pp=$("$PARE" ppl "$T/out/phys.gguf" --text "$CALIB" --ctx 64 --max-windows 10 --threads 1 --json 2>/dev/null | sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/')
pm=$("$PARE" ppl "$T/out/mask.gguf" --text "$CALIB" --ctx 64 --max-windows 10 --threads 1 --json 2>/dev/null | sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/')
narrow=$("$PARE" info "$T/out/phys.gguf" | awk '$1 ~ /^[0-9]+:$/ && $3 < 512' | wc -l)
if [ -z "$pp" ] || ! awk -v a="$pp" -v b="$pm" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= 1e-5 * b) }'; then
    fail "numerical 20%: physical ppl $pp vs masked ppl $pm"
elif [ "$narrow" -lt 1 ]; then fail "numerical 20%: pare info shows no narrower FFN"
else echo "ok   numerical 20%: physical ppl $pp = masked ppl $pm, $narrow layers with a narrower FFN"; fi
rm -rf "$T/out"/*

# --max-memory: refused before the run with the estimate, nothing written; a budget that fits runs
rm -rf "$T/out"/*
"$PARE" prune "$T/in.gguf" -o "$T/out/mm.gguf" --method sparsegpt --sparsity 0.5 --calib "$CALIB" --nsamples 16 \
    --seqlen 128 --threads 1 --max-memory 5M > /dev/null 2> "$T/stderr" && fail "--max-memory 5M accepted"
if [ "$(wc -l < "$T/stderr")" != 1 ] || ! grep -q "needs about .* over --max-memory 5.0 MB" "$T/stderr"; then
    fail "--max-memory: message '$(cat "$T/stderr")'"
elif [ -n "$(ls -A "$T/out")" ]; then fail "--max-memory: left $(ls -A "$T/out")"
else echo "ok   --max-memory 5M: $(cat "$T/stderr")"; fi
"$PARE" prune "$T/in.gguf" -o "$T/out/mm.gguf" --method sparsegpt --sparsity 0.5 --calib "$CALIB" --nsamples 16 \
    --seqlen 128 --threads 1 --max-memory 2G -q > /dev/null 2>&1 || fail "--max-memory 2G refused"
rm -rf "$T/out"/*

# flap: its bias compensation writes o/down biases that pare info lists and pare runs; the
# Hugging Face writer refuses them in one line and writes nothing
# shellcheck disable=SC2086
"$PARE" prune "$T/in.gguf" -o "$T/out/fl.gguf" --method flap --ratio 0.2 --calib "$CALIB" $CAL -q > /dev/null 2>&1 \
    || fail "flap: exit $?"
nb=$("$PARE" info "$T/out/fl.gguf" 2> /dev/null | grep -c 'blk\.[0-9]*\.\(attn_output\|ffn_down\)\.bias')
pf=$("$PARE" ppl "$T/out/fl.gguf" --text "$CALIB" --ctx 64 --max-windows 4 -q 2> /dev/null | sed -n 's/^ppl \([0-9.]*\).*/\1/p')
if [ "$nb" -lt 1 ] || [ -z "$pf" ]; then fail "flap 20%: $nb bias tensors, ppl '$pf'"
else echo "ok   flap 20%: $nb o/down bias tensors, ppl $pf"; fi
"$PARE" convert "$T/out/fl.gguf" -o "$T/out/fl-hf" --format hf > /dev/null 2> "$T/stderr" && fail "flap: HF output accepted"
if [ "$(wc -l < "$T/stderr")" != 1 ] || ! grep -q "o/down bias" "$T/stderr" || [ -e "$T/out/fl-hf" ]; then
    fail "flap --format hf: '$(cat "$T/stderr")', left: $(ls -A "$T/out")"
else echo "ok   flap --format hf refused: $(cat "$T/stderr")"; fi
rm -rf "$T/out"/*

# taylor-struct (LLM-Pruner's Taylor score, one backward pass of the whole model): a run
# narrows the FFNs and reports its loss; --max-memory that passes the block-by-block estimate
# (that estimate + 10 MB) is still refused by the whole-model one, nothing written
# shellcheck disable=SC2086
"$PARE" prune "$T/in.gguf" -o "$T/out/ty.gguf" --method taylor-struct --ratio 0.2 --calib "$CALIB" $CAL --json \
    > "$T/stdout" 2> /dev/null || fail "taylor-struct: exit $?"
narrow=$("$PARE" info "$T/out/ty.gguf" 2> /dev/null | awk '$1 ~ /^[0-9]+:$/ && $3 < 512' | wc -l)
if ! grep -q '"method":"taylor-struct".*"taylor_loss":[0-9]' "$T/stdout" || [ "$narrow" -lt 1 ]; then
    fail "taylor-struct 20%: $narrow narrower layers, JSON '$(head -c 300 "$T/stdout")'"
else echo "ok   taylor-struct 20%: $narrow layers with a narrower FFN"; fi
rm -rf "$T/out"/*
# shellcheck disable=SC2086
"$PARE" prune "$T/in.gguf" -o "$T/out/ty.gguf" --method taylor-struct --ratio 0.2 --calib "$CALIB" $CAL --max-memory 1M \
    > /dev/null 2> "$T/stderr"
blk=$(sed -n 's/.*needs about \([0-9.]*\) MB.*/\1/p' "$T/stderr")
mm=$(awk -v b="${blk:-0}" 'BEGIN { printf "%.0fM", b + 10 }')
# shellcheck disable=SC2086
"$PARE" prune "$T/in.gguf" -o "$T/out/ty.gguf" --method taylor-struct --ratio 0.2 --calib "$CALIB" $CAL --max-memory "$mm" \
    > /dev/null 2> "$T/stderr" && fail "taylor-struct --max-memory $mm accepted"
if [ -z "$blk" ] || [ "$(wc -l < "$T/stderr")" != 1 ] || ! grep -q "taylor-struct needs about .* over --max-memory" "$T/stderr"; then
    fail "taylor-struct --max-memory $mm: message '$(cat "$T/stderr")'"
elif [ -n "$(ls -A "$T/out")" ]; then fail "taylor-struct --max-memory: left $(ls -A "$T/out")"
else echo "ok   taylor-struct --max-memory $mm (block-by-block estimate $blk MB): $(cat "$T/stderr")"; fi
rm -rf "$T/out"/*

# killed mid-run (SIGINT, as Ctrl-C; SIGTERM; SIGKILL cannot be caught and leaves at most
# the temporary file, never OUT): at several moments from the start to the write, no OUT and
# (but for SIGKILL) no temporary file left
for sig in INT TERM; do
    for d in 0.1 0.4 0.7 0.9 1.1 1.2 1.3 1.5 2 3; do
        rm -rf "$T/out"/*
        # a background job of sh starts with SIGINT ignored: env gives pare the default back
        env --default-signal=INT "$PARE" prune "$T/in.gguf" -o "$T/out/k.gguf" --method sparsegpt --sparsity 0.5 \
            --calib "$CALIB" --nsamples 16 --seqlen 128 --threads 1 -q > /dev/null 2>&1 &
        pid=$!
        sleep "$d"
        kill -"$sig" "$pid" 2> /dev/null; done_=$?
        wait "$pid" 2> /dev/null
        rc=$?
        left=$(ls -A "$T/out")
        if [ -z "$left" ]; then
            [ "$done_" = 0 ] && [ "$rc" -gt 128 ] || fail "SIG$sig at ${d}s: exit $rc with nothing written"
        elif [ "$left" = k.gguf ] && "$PARE" info "$T/out/k.gguf" > /dev/null 2>&1; then
            : # the output was complete (renamed) before the signal came: that is allowed
        else
            fail "SIG$sig at ${d}s: left '$left'"
        fi
        [ "$done_" != 0 ] && break # the run had ended before the signal
    done
done
# and the moment the temporary output appears (the write itself)
rm -rf "$T/out"/*
env --default-signal=INT "$PARE" prune "$T/in.gguf" -o "$T/out/k.gguf" --method sparsegpt --sparsity 0.5 \
    --calib "$CALIB" --nsamples 16 --seqlen 128 --threads 1 -q > /dev/null 2>&1 &
pid=$!; seen=0; i=0
while [ $i -lt 3000 ] && kill -0 $pid 2> /dev/null; do
    if ls "$T"/out/k.gguf.tmp.* > /dev/null 2>&1; then seen=1; kill -INT $pid; break; fi
    i=$((i+1))
done
wait $pid 2> /dev/null
if [ $seen = 1 ] && [ -n "$(ls -A "$T/out")" ] && [ "$(ls -A "$T/out")" != k.gguf ]; then
    fail "SIGINT while writing: left '$(ls -A "$T/out")'"
fi
echo "ok   prune killed mid-run (SIGINT, SIGTERM; during the write: $([ $seen = 1 ] && echo caught || echo missed)): no OUT, no temporary file"
rm -rf "$T/out"/*

if [ "$fails" != 0 ]; then echo "test_prune_cli: $fails failure(s)"; exit 1; fi
echo "test_prune_cli: all passed"

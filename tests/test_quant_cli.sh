#!/bin/sh
# test_quant_cli.sh - `pare quantize` from the command line (build folder in $1): an unknown
# --type, an unknown --method, gptq without --calib, no --type, no -o, -o equal to the input,
# an unknown option and a calibration text shorter than one window each exit non-zero (not by a
# signal) with a one-line "pare quantize: ..." message on stderr and leave neither OUT nor a
# temporary file behind; the input's bytes never change (sha256 before/after); RTN q4_1 and a
# small GPTQ int3-g64 run succeed and report bits_per_weight 5.0 / 3.25 in the JSON; the q4_1
# GGUF lists q4_1 block matrices and f32 embeddings in `pare info`, and `pare ppl` runs on both.
# Data: $PARE_DATA or ../shared/data (bench/brown-4m, bench/brown-valid.txt, brown-test.txt).
B=${1:-build}
PARE="$B/pare"
D=${PARE_DATA:-../shared/data}
SRC="$D/bench/brown-4m/model.gguf"
CALIB="$D/bench/brown-valid.txt"
TEST="$D/bench/brown-test.txt"
if [ ! -x "$PARE" ]; then echo "FAIL: $PARE not built"; exit 1; fi
if [ ! -f "$SRC" ] || [ ! -f "$CALIB" ] || [ ! -f "$TEST" ]; then echo "skip: brown-4m data not found under $D"; exit 0; fi

T=$(mktemp -d "${TMPDIR:-/tmp}/pare-quant-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
mkdir "$T/out"
cp "$SRC" "$T/in.gguf" || exit 1
chmod u+w "$T/in.gguf"
printf 'A short text.\n' > "$T/short.txt"
head -c 20000 "$TEST" > "$T/eval.txt"
SUM0=$(sha256sum < "$T/in.gguf")
fails=0

fail() { echo "FAIL $1"; fails=$((fails + 1)); }

check_clean() { # label, expected content of the output folder
    left=$(ls -A "$T/out")
    if [ "$left" != "$2" ]; then fail "$1: output folder holds '$left' (expected '$2')"; fi
    if [ "$(sha256sum < "$T/in.gguf")" != "$SUM0" ]; then fail "$1: the input model changed"; fi
    top=$(ls -A "$T" | tr '\n' ' ')
    if [ "$top" != "eval.txt in.gguf out short.txt stderr stdout " ]; then fail "$1: left beside the input: '$top'"; fi
}

expect_fail() { # label, then the arguments after MODEL
    label=$1; shift
    rm -rf "$T/out"/* "$T/out"/.[!.]* 2>/dev/null
    "$PARE" quantize "$T/in.gguf" "$@" > "$T/stdout" 2> "$T/stderr"
    rc=$?
    if [ "$rc" = 0 ]; then fail "$label: exit 0"
    elif [ "$rc" -gt 125 ]; then fail "$label: exit $rc (killed by a signal?)"; fi
    n=$(wc -l < "$T/stderr")
    if [ "$n" != 1 ]; then fail "$label: $n lines on stderr"; sed 's/^/    /' "$T/stderr"
    elif ! grep -q '^pare quantize: ' "$T/stderr"; then fail "$label: message '$(cat "$T/stderr")'"
    else echo "ok   $label: $(cat "$T/stderr")"; fi
    check_clean "$label" ""
}

OUT="$T/out/o.gguf"
CAL="--nsamples 4 --seqlen 64 --threads 1"
expect_fail "unknown --type"    -o "$OUT" --type q4_2
expect_fail "bad generic type"  -o "$OUT" --type int9-g32
expect_fail "bad group"         -o "$OUT" --type int4-g2
expect_fail "g not whole"       -o "$OUT" --type int4-g64x
expect_fail "no --type"         -o "$OUT"
expect_fail "unknown method"    -o "$OUT" --type q4_0 --method awq
expect_fail "gptq no --calib"   -o "$OUT" --type q4_0 --method gptq
expect_fail "rtn with --calib"  -o "$OUT" --type q4_0 --calib "$CALIB"
expect_fail "no -o"             --type q4_0
expect_fail "unknown option"    -o "$OUT" --type q4_0 --bits 4
expect_fail "short calib"       -o "$OUT" --type q4_0 --method gptq --calib "$T/short.txt" $CAL
expect_fail "-o = input"        -o "$T/in.gguf" --type q4_1

# RTN q4_1: written as q4_1, pare info lists it, pare ppl runs on it
rm -rf "$T/out"/*
if ! "$PARE" quantize "$T/in.gguf" -o "$OUT" --type q4_1 --threads 1 --json > "$T/stdout" 2> "$T/stderr"; then
    fail "q4_1: exit non-zero: $(cat "$T/stderr")"
elif ! grep -q '"type":"q4_1","method":"rtn","stored_as":"q4_1"' "$T/stdout" || ! grep -q '"bits_per_weight":5.0000' "$T/stdout"; then
    fail "q4_1: unexpected JSON: $(head -c 400 "$T/stdout")"
elif ! "$PARE" info "$OUT" 2> "$T/stderr" | grep -q 'blk.0.attn_q.weight *q4_1'; then
    fail "q4_1: pare info does not list q4_1 tensors: $(cat "$T/stderr")"
elif ! "$PARE" info "$OUT" | grep -q 'token_embd.weight *f32'; then
    fail "q4_1: the embeddings were changed"
elif ! "$PARE" ppl "$OUT" --text "$T/eval.txt" --ctx 128 --threads 1 > "$T/stdout" 2> "$T/stderr" || ! grep -q '^ppl ' "$T/stdout"; then
    fail "q4_1: pare ppl failed: $(cat "$T/stderr")"
else
    echo "ok   q4_1: $(wc -c < "$OUT") bytes, $(cat "$T/stdout")"
fi
check_clean "q4_1" "o.gguf"

# GPTQ to a generic grid on a little calibration: F32 fake-quantized, nominal bits reported
rm -rf "$T/out"/*
if ! "$PARE" quantize "$T/in.gguf" -o "$OUT" --type int3-g64 --method gptq --calib "$CALIB" $CAL --json > "$T/stdout" 2> "$T/stderr"; then
    fail "gptq int3-g64: exit non-zero: $(cat "$T/stderr")"
elif ! grep -q '"type":"int3-g64","method":"gptq","stored_as":"f32"' "$T/stdout" || ! grep -q '"bits_per_weight":3.2500' "$T/stdout"; then
    fail "gptq int3-g64: unexpected JSON: $(head -c 400 "$T/stdout")"
elif ! "$PARE" ppl "$OUT" --text "$T/eval.txt" --ctx 128 --threads 1 > "$T/stdout" 2> "$T/stderr"; then
    fail "gptq int3-g64: pare ppl failed: $(cat "$T/stderr")"
else
    echo "ok   gptq int3-g64: $(cat "$T/stdout")"
fi
check_clean "gptq int3-g64" "o.gguf"

if [ "$fails" != 0 ]; then echo "test_quant_cli: $fails failure(s)"; exit 1; fi
echo "test_quant_cli: all passed"

#!/bin/sh
# test_cli.sh BUILD - the CLI on bad input: every case must exit non-zero with exactly one
# line on stderr that names the file (or the option) at fault, print nothing to stdout,
# leave no output behind and never touch its input. Run by scripts/run_tests.sh.
B=${1:-build}
P="$B/pare"
DATA=${PARE_DATA:-../shared/data}
M="$DATA/bench/brown-4m/model.gguf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0; n=0

# expect NAME NEEDLE CMD...: non-zero exit, one stderr line containing NEEDLE, empty stdout
expect() {
    name=$1; needle=$2; shift 2
    n=$((n+1))
    "$@" >"$T/out" 2>"$T/err"; rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc = 0 ] || [ "$lines" != 1 ] || ! grep -qF -- "$needle" "$T/err" || [ -s "$T/out" ]; then
        echo "FAIL $name: rc=$rc, $lines stderr lines, stdout $(wc -c <"$T/out") bytes:"; cat "$T/err"
        fail=$((fail+1))
    else
        echo "ok   $name: $(cat "$T/err")"
    fi
}

[ -f "$M" ] || { echo "test_cli.sh: $M not found (set PARE_DATA)"; exit 1; }
sum0=$(sha256sum "$M" | cut -d' ' -f1)
size=$(wc -c <"$M")

for cut in 3 24 100 1000 40000 $((size / 2)) $((size - 1)); do
    head -c "$cut" "$M" >"$T/cut.gguf"
    expect "truncated at $cut" "cut.gguf" "$P" info "$T/cut.gguf"
done
{ printf 'GGUX'; tail -c +5 "$M"; } >"$T/magic.gguf"
expect "wrong magic" "magic.gguf" "$P" info "$T/magic.gguf"
expect "missing file" "nope.gguf" "$P" info "$T/nope.gguf"
printf 'hello world\n' >"$T/short.txt"
expect "text shorter than a window" "256" "$P" ppl "$M" --text "$T/short.txt" --ctx 256
expect "bad --ctx" "ctx" "$P" ppl "$M" --text "$T/short.txt" --ctx 1
expect "unknown option" "--frobnicate" "$P" info "$M" --frobnicate
expect "output into a missing folder" "$T/no/dir/x.gguf" "$P" convert "$M" -o "$T/no/dir/x.gguf"
cp "$M" "$T/in.gguf"; sum1=$(sha256sum "$T/in.gguf" | cut -d' ' -f1)
expect "output over the input" "input" "$P" convert "$T/in.gguf" -o "$T/in.gguf"
n=$((n+1))
if [ "$(sha256sum "$T/in.gguf" | cut -d' ' -f1)" != "$sum1" ]; then echo "FAIL convert replaced its input"; fail=$((fail+1)); fi
"$P" convert "$T/in.gguf" -o "$T/hfout" >/dev/null 2>&1
sum2=$(cat "$T/hfout/model.safetensors" "$T/hfout/config.json" | sha256sum | cut -d' ' -f1)
expect "HF folder written into itself" "hfout" "$P" convert "$T/hfout" -o "$T/hfout"
n=$((n+1))
if [ "$(cat "$T/hfout/model.safetensors" "$T/hfout/config.json" | sha256sum | cut -d' ' -f1)" != "$sum2" ]; then
    echo "FAIL convert rewrote the folder it read"; fail=$((fail+1)); fi
# an HF folder whose config.json contradicts the weights
mkdir -p "$T/hf"
sed 's/"hidden_size": *192/"hidden_size": 256/' "$DATA/bench/brown-4m/config.json" >"$T/hf/config.json"
ln -s "$(cd "$DATA/bench/brown-4m" && pwd)/model.safetensors" "$T/hf/model.safetensors"
ln -s "$(cd "$DATA/bench/brown-4m" && pwd)/tokenizer.model" "$T/hf/tokenizer.model"
expect "config.json contradicts the shapes" "hf" "$P" info "$T/hf"
sed 's/LlamaForCausalLM/MambaForCausalLM/; s/"model_type": *"llama"/"model_type": "mamba"/' \
    "$DATA/bench/brown-4m/config.json" >"$T/hf/config.json"
expect "unknown architecture" "hf" "$P" info "$T/hf"

n=$((n+1))
left=$(find "$T" -name '*.tmp*' | wc -l)
if [ "$left" != 0 ]; then echo "FAIL temporary files left behind: $left"; fail=$((fail+1)); fi
n=$((n+1))
if [ "$(sha256sum "$M" | cut -d' ' -f1)" != "$sum0" ]; then echo "FAIL the input model changed"; fail=$((fail+1)); fi
expect "synth N >= M" "4:4" "$P" synth --shape tiny --nm 4:4 -o "$T/s.gguf"
expect "synth M > 16" "M must be at most 16" "$P" synth --shape tiny --nm 2:32 -o "$T/s.gguf"
expect "synth M not dividing dim" "multiples of M" "$P" synth --shape tiny --nm 2:7 -o "$T/s.gguf"
expect "bad --sparse" "--sparse" "$P" bench "$M" --sparse maybe
expect "bad --layout" "--layout" "$P" bench "$M" --layout packed
[ -e "$T/s.gguf" ] && { echo "FAIL synth left an output behind"; fail=$((fail+1)); }

# an N:M-sparse model runs compressed, with the dense model's perplexity (2:4 and 4:8 F16,
# interleaved on AVX2; 2:4 Q8_0 with 8-bit values, where on AVX2 both sides round x to int8)
head -c 20000 "$DATA/bench/brown-test.txt" >"$T/text.txt"
for tn in "f16 2:4" "f16 4:8" "q8_0 2:4"; do
    set -- $tn; ty=$1; pat=$2
    "$P" synth --shape tiny --type "$ty" --nm "$pat" --seed 3 -o "$T/nm-$ty-$pat.gguf" >/dev/null || fail=$((fail+1))
    p1=$("$P" ppl "$T/nm-$ty-$pat.gguf" --text "$T/text.txt" --ctx 128 --json 2>"$T/err" | sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/')
    grep -q "28 of 28 block matrices are $pat sparse" "$T/err" || { echo "FAIL: $ty $pat model not compressed: $(cat "$T/err")"; fail=$((fail+1)); }
    p0=$("$P" ppl "$T/nm-$ty-$pat.gguf" --text "$T/text.txt" --ctx 128 --sparse off --json 2>/dev/null | sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/')
    n=$((n+1))
    if [ -z "$p1" ] || ! awk -v a="$p1" -v b="$p0" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= 1e-5 * b) }'; then
        echo "FAIL $ty $pat compressed ppl $p1 vs dense ppl $p0"; fail=$((fail+1))
    else echo "ok   $ty $pat compressed ppl $p1 = dense ppl $p0 (to 1e-5)"; fi
done

# the engine's layout (Q8_0 interleaved on AVX2, weights copied to huge pages) gives the file
# layout's perplexity
"$P" synth --shape tiny --type q8_0 --seed 3 -o "$T/q8.gguf" >/dev/null || fail=$((fail+1))
p1=$("$P" ppl "$T/q8.gguf" --text "$T/text.txt" --ctx 128 --json 2>/dev/null | sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/')
p0=$("$P" ppl "$T/q8.gguf" --text "$T/text.txt" --ctx 128 --layout file --json 2>/dev/null | sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/')
n=$((n+1))
if [ -z "$p1" ] || ! awk -v a="$p1" -v b="$p0" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= 1e-5 * b) }'; then
    echo "FAIL engine-layout ppl $p1 vs file-layout ppl $p0"; fail=$((fail+1))
else echo "ok   Q8_0 engine-layout ppl $p1 = file-layout ppl $p0 (to 1e-5)"; fi

# interrupted while writing: the temporary output is removed (SIGTERM as the signal)
"$P" synth --shape stories110m --type f32 -o "$T/big.gguf" >/dev/null 2>&1 &
pid=$!; seen=0; i=0
while [ $i -lt 1500 ] && kill -0 $pid 2>/dev/null; do
    if ls "$T"/big.gguf.tmp.* >/dev/null 2>&1; then seen=1; kill -TERM $pid; break; fi
    sleep 0.02; i=$((i+1))
done
wait $pid 2>/dev/null
if [ $seen = 1 ]; then
    n=$((n+1))
    if ls "$T"/big.gguf* >/dev/null 2>&1; then echo "FAIL interrupted write left $(ls "$T"/big.gguf*)"; fail=$((fail+1))
    else echo "ok   interrupted write: no temporary file, no output"; fi
else echo "skip interrupted write: the write finished before it could be interrupted"; fi
rm -f "$T"/big.gguf*

# progress: a forced bar draws on stderr with rate and ETA; --quiet (any command) silences it
n=$((n+1))
PARE_PROGRESS=1 "$P" ppl "$M" --text "$DATA/bench/brown-test.txt" --ctx 256 --max-windows 120 --threads 1 >/dev/null 2>"$T/err"
if ! grep -q "/s .* elapsed, ETA" "$T/err"; then echo "FAIL progress bar: '$(tr '\r' '|' <"$T/err")'"; fail=$((fail+1))
else echo "ok   progress bar with rate and ETA"; fi
n=$((n+1))
PARE_PROGRESS=1 "$P" ppl "$M" --text "$DATA/bench/brown-test.txt" --ctx 256 --max-windows 120 --threads 1 --quiet >"$T/out" 2>"$T/err"
if [ -s "$T/err" ] || ! grep -q "^ppl " "$T/out"; then echo "FAIL --quiet: stderr '$(cat "$T/err")'"; fail=$((fail+1))
else echo "ok   --quiet: no progress, the result on stdout"; fi

# an existing OUT is refused (one line, untouched) unless --force
n=$((n+1))
printf 'keep' > "$T/exists.gguf"
if "$P" synth --shape tiny --type f32 -o "$T/exists.gguf" >/dev/null 2>"$T/err" || [ "$(cat "$T/exists.gguf")" != keep ] ||
   [ "$(wc -l < "$T/err")" != 1 ] || ! grep -q "exists (pass --force" "$T/err"; then
    echo "FAIL existing OUT: '$(cat "$T/err")'"; fail=$((fail+1))
elif ! "$P" synth --shape tiny --type f32 -o "$T/exists.gguf" --force >/dev/null 2>&1 || [ "$(head -c 4 "$T/exists.gguf")" != GGUF ]; then
    echo "FAIL --force did not replace OUT"; fail=$((fail+1))
else echo "ok   existing OUT refused without --force, replaced with it"; fi
rm -f "$T/exists.gguf"

echo "test_cli.sh: $n checks, $fail failed"
[ $fail = 0 ]

#!/bin/sh
# test_tune_cli.sh - `pare tune` from the command line (build folder in $1) on brown-4m with
# a few steps of 2 x 64 tokens: adaptive (window 2, exits 1,3,5,7) and full write a model with
# exits whose last JSON object has loss, sec_per_step, peak_rss_mb, predicted_peak_mb; ppl
# runs its last exit, --exit K, --vote; --merge gives a plain model (no exits) with the last
# exit's perplexity; the same seed gives the same bytes; bad arguments and a --max-memory
# nothing fits exit non-zero with one "pare tune: ..." line and write no OUT; the input never
# changes.
B=${1:-build}
PARE="$B/pare"
D=${PARE_DATA:-../shared/data}
SRC="$D/bench/brown-4m/model.gguf"
DATA="$D/bench/brown-train.txt"
VALID="$D/bench/brown-valid.txt"
if [ ! -x "$PARE" ]; then echo "FAIL: $PARE not built"; exit 1; fi
if [ ! -f "$SRC" ] || [ ! -f "$DATA" ]; then echo "skip: brown-4m data not found under $D"; exit 0; fi
command -v python3 > /dev/null || { echo "skip: python3 not found"; exit 0; }
T=$(mktemp -d "${TMPDIR:-/tmp}/pare-tune-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
SUM0=$(sha256sum < "$SRC")
C="--data $DATA --steps 8 --batch 2 --seq 64 --threads 1 --log-every 4"
fails=0
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
py() { python3 -c "$1" "$2" || fail "$3"; }
ppl() { "$PARE" ppl "$@" --text "$VALID" --ctx 64 --max-windows 4 --threads 1 --json 2> "$T/perr" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])'; }

"$PARE" tune "$SRC" -o "$T/a.gguf" --window 2 $C --json > "$T/a.json" 2> "$T/err" || fail "tune adaptive: exit $? ($(cat "$T/err"))"
py 'import json,sys; L=[json.loads(l) for l in open(sys.argv[1])]; j=L[-1]
assert j["done"] and j["exits"]==[1,3,5,7] and j["window"]==2 and j["steps"]==8 and len(j["exit_loss"])==4
assert j["loss"] > 0 and j["sec_per_step"] > 0 and j["peak_rss_mb"] > 0 and j["predicted_peak_mb"] > 0
assert [l["exit"] for l in L[:-1]] == [1, 3]' "$T/a.json" "tune adaptive JSON"
"$PARE" tune "$SRC" -o "$T/f.gguf" --method full $C --json > "$T/f.json" 2> "$T/err" || fail "tune full: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=[json.loads(l) for l in open(sys.argv[1])][-1]; assert j["exits"]==[7] and j["window"]==8' "$T/f.json" "tune full JSON"

L=$(ppl "$T/a.gguf") || fail "ppl, last exit ($(cat "$T/perr"))"
E3=$(ppl "$T/a.gguf" --exit 3) || fail "ppl --exit 3"
E0=$(ppl "$T/a.gguf" --exit 0) || fail "ppl --exit 0"
V=$(ppl "$T/a.gguf" --vote) || fail "ppl --vote ($(cat "$T/perr"))"
py "import sys; L,E3,E0,V=$L,$E3,$E0,$V; assert L==E3 and E0!=L and V>0" x "last exit = --exit 3, exit 0 differs ($L $E3 $E0 $V)"
"$PARE" generate "$T/a.gguf" --prompt "The" -n 8 --temp 0 --vote --threads 1 > /dev/null 2>&1 || fail "generate --vote"

"$PARE" tune "$SRC" -o "$T/m.gguf" --window 2 $C --merge -q > /dev/null 2> "$T/err" || fail "tune --merge: exit $? ($(cat "$T/err"))"
M=$(ppl "$T/m.gguf") || fail "ppl of the merged model"
py "import sys; assert abs($M-$L) <= 1e-4*$L" x "merged ppl $M = last-exit ppl $L"
"$PARE" ppl "$T/m.gguf" --text "$VALID" --ctx 64 --max-windows 1 --vote > /dev/null 2> "$T/err" && fail "--vote on a plain model"
[ "$(wc -l < "$T/err")" = 1 ] || fail "--vote on a plain model: one line ($(cat "$T/err"))"
"$PARE" tune "$SRC" -o "$T/a2.gguf" --window 2 $C -q > /dev/null 2>&1 || fail "tune again"
cmp -s "$T/a.gguf" "$T/a2.gguf" || fail "same seed, different bytes"
"$PARE" ppl "$T/a.gguf" --text "$VALID" --ctx 64 --max-windows 1 --exit 4 > /dev/null 2> "$T/err" && fail "--exit 4 of 4 exits"
grep -q "exits 0..3" "$T/err" || fail "--exit 4: message '$(cat "$T/err")'"

expect_fail() { # label, arguments after MODEL
    label=$1; shift
    rm -f "$T/x.gguf"
    "$PARE" tune "$SRC" -o "$T/x.gguf" "$@" > /dev/null 2> "$T/err"
    rc=$?
    if [ $rc = 0 ] || [ $rc -gt 128 ]; then fail "$label: exit $rc"; fi
    grep -q "^pare tune: " "$T/err" || fail "$label: message '$(cat "$T/err")'"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$label: more than one line ($(cat "$T/err"))"
    [ -e "$T/x.gguf" ] && fail "$label: OUT written"
    ls "$T" | grep -q "x.gguf.tmp" && fail "$label: temporary file left"
}
expect_fail "no --data" --steps 2
expect_fail "exits not increasing" --exits 3,1 $C
expect_fail "exit past the last block" --exits 1,9 $C
expect_fail "window too wide" --window 9 $C
expect_fail "unknown --method" --method foo $C
expect_fail "unknown --schedule" --schedule foo $C
expect_fail "bad --max-memory" --max-memory lots $C
expect_fail "--max-memory nothing fits" --max-memory 1M $C
expect_fail "fewer steps than exits" --data "$DATA" --steps 2 --batch 2 --seq 64
"$PARE" tune "$SRC" -o "$SRC" $C > /dev/null 2> "$T/err" && fail "-o = input accepted"
[ "$(sha256sum < "$SRC")" = "$SUM0" ] || fail "the input model changed"
if [ $fails = 0 ]; then echo "ok: pare tune CLI"; exit 0; fi
exit 1

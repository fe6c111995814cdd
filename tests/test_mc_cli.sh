#!/bin/sh
# test_mc_cli.sh BUILD - pare eval-mc and make-cloze on bad input (non-zero exit, one stderr
# line naming the file or option at fault, nothing on stdout), make-cloze's determinism and
# refusal to overwrite its input, and one small eval-mc run. Run by scripts/run_tests.sh.
B=${1:-build}
P="$B/pare"
DATA=${PARE_DATA:-../shared/data}
M="$DATA/stories260K/stories260K.gguf"
TXT="$DATA/text/tinystories_valid_head.txt"
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
check() { # check NAME CONDITION-COMMAND...
    name=$1; shift
    n=$((n+1))
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fail=$((fail+1)); fi
}

[ -f "$M" ] || { echo "test_mc_cli.sh: $M not found (set PARE_DATA)"; exit 1; }
[ -f "$TXT" ] || { echo "test_mc_cli.sh: $TXT not found (set PARE_DATA)"; exit 1; }

good='{"context":"Lily had a red ball.","choices":[" She played with it."," The moon."],"gold":0}'
expect "missing --tasks file" "nope.jsonl" "$P" eval-mc "$M" --tasks "$T/nope.jsonl"
printf '%s\n{"context":"a","choices":[" b"," c"],"gold":0\n' "$good" >"$T/malformed.jsonl"
expect "malformed JSON line" "malformed.jsonl:2" "$P" eval-mc "$M" --tasks "$T/malformed.jsonl"
printf '%s\n%s\n{"context":"a","choices":[" b"," c"],"gold":2}\n' "$good" "$good" >"$T/gold.jsonl"
expect "gold out of range" "gold.jsonl:3: gold 2 is out of range" "$P" eval-mc "$M" --tasks "$T/gold.jsonl"
printf '{"context":"a","choices":[" b"," c"]}\n' >"$T/nogold.jsonl"
expect "gold missing" "nogold.jsonl:1" "$P" eval-mc "$M" --tasks "$T/nogold.jsonl"
: >"$T/empty.jsonl"
expect "empty tasks file" "empty.jsonl" "$P" eval-mc "$M" --tasks "$T/empty.jsonl"
printf '%s\n' "$good" >"$T/ok.jsonl"
expect "mmlu format on lm-eval lines" "'input'" "$P" eval-mc "$M" --tasks "$T/ok.jsonl" --format mmlu
expect "unknown --format" "--format" "$P" eval-mc "$M" --tasks "$T/ok.jsonl" --format hellaswag
expect "no --tasks" "--tasks" "$P" eval-mc "$M"
expect "missing model" "nope.gguf" "$P" eval-mc "$T/nope.gguf" --tasks "$T/ok.jsonl"

head -c 200000 "$TXT" >"$T/text.txt"
sum0=$(sha256sum "$T/text.txt" | cut -d' ' -f1)
expect "make-cloze -o over its input" "input" "$P" make-cloze "$T/text.txt" -o "$T/text.txt" --n 10
check "make-cloze left its input alone" [ "$(sha256sum "$T/text.txt" | cut -d' ' -f1)" = "$sum0" ]
expect "make-cloze without -o" "-o" "$P" make-cloze "$T/text.txt"
expect "make-cloze missing text" "nope.txt" "$P" make-cloze "$T/nope.txt" -o "$T/c.jsonl"
expect "make-cloze into a missing folder" "$T/no/dir/c.jsonl" "$P" make-cloze "$T/text.txt" -o "$T/no/dir/c.jsonl"
expect "make-cloze bad --n" "--n" "$P" make-cloze "$T/text.txt" -o "$T/c.jsonl" --n 0

"$P" make-cloze "$T/text.txt" -o "$T/c1.jsonl" --n 40 --seed 3 2>/dev/null
"$P" make-cloze "$T/text.txt" -o "$T/c2.jsonl" --n 40 --seed 3 2>/dev/null
"$P" make-cloze "$T/text.txt" -o "$T/c3.jsonl" --n 40 --seed 4 2>/dev/null
check "make-cloze: 40 lines" [ "$(wc -l <"$T/c1.jsonl")" = 40 ]
check "make-cloze: same seed, same bytes" cmp -s "$T/c1.jsonl" "$T/c2.jsonl"
differ() { ! cmp -s "$1" "$2"; }
check "make-cloze: another seed, other bytes" differ "$T/c1.jsonl" "$T/c3.jsonl"
check "make-cloze: no temporary file left" [ -z "$(ls "$T" | grep tmp)" ]
"$P" eval-mc "$M" --tasks "$T/c1.jsonl" --limit 10 --json >"$T/r.json" 2>"$T/r.err"
check "eval-mc --json runs" grep -q '"total":{"n":10,"acc":' "$T/r.json"

echo "== test_mc_cli.sh: $n checks, $fail failed"
[ "$fail" = 0 ]

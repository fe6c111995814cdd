#!/bin/sh
# test_luc_cli.sh - `pare profile` and `pare compress` from the command line (build folder in
# $1) on brown-4m with a tiny calibration (4 x 64 tokens): the profile JSON has 8 blocks of 7
# ratios / 3 bit-widths, errors rising with the ratio; compress uniform, luc (from the profile
# file) and budget (at uniform's sparse size) succeed, report per-block sparsity and bits, the
# luc mean sparsity is the target, the budget result is within its budget; a loss profile
# (--loss) has the loss arrays and makes budget use the loss objective; luc --budget-mb fits the
# size with a target it reports; budget --verify scores each candidate and keeps the lowest
# loss; bad arguments exit
# non-zero with a "pare compress: ..." message and write no OUT; the input never changes.
B=${1:-build}
PARE="$B/pare"
D=${PARE_DATA:-../shared/data}
SRC="$D/bench/brown-4m/model.gguf"
CALIB="$D/bench/brown-valid.txt"
if [ ! -x "$PARE" ]; then echo "FAIL: $PARE not built"; exit 1; fi
if [ ! -f "$SRC" ] || [ ! -f "$CALIB" ]; then echo "skip: brown-4m data not found under $D"; exit 0; fi
command -v python3 > /dev/null || { echo "skip: python3 not found"; exit 0; }
T=$(mktemp -d "${TMPDIR:-/tmp}/pare-luc-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
SUM0=$(sha256sum < "$SRC")
C="--calib $CALIB --nsamples 4 --seqlen 64 --seed 0 --threads 1"
fails=0
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
py() { python3 -c "$1" "$2" || fail "$3"; }

"$PARE" profile "$SRC" $C --json > "$T/prof.json" 2> "$T/err" || fail "profile: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); p=j["prune_err"]; assert j["n_layer"]==8 and len(p)==8 and len(j["quant_err"])==8 and len(j["e"])==8
assert all(len(r)==7 and all(b>a for a,b in zip(r,r[1:])) for r in p)
assert all(len(q)==3 and q[0]<q[1]<q[2] for q in j["quant_err"])' "$T/prof.json" "profile JSON"
"$PARE" profile "$SRC" $C > "$T/prof.txt" 2> /dev/null && grep -q "e_l" "$T/prof.txt" || fail "profile: text table"

"$PARE" compress "$SRC" -o "$T/u.gguf" --method uniform --target-sparsity 0.5 --bits 4 $C --json > "$T/u.json" 2> "$T/err" \
    || fail "compress uniform: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); assert j["layer_bits"]==[4]*8 and all(abs(s-0.5)<0.01 for s in j["sparsity"])
assert j["sparse_mb"] < j["nominal_mb"] and j["file_mb"] > 0' "$T/u.json" "compress uniform JSON"
"$PARE" compress "$SRC" -o "$T/l.gguf" --method luc --target-sparsity 0.6 --bits 3 --profile "$T/prof.json" $C --json \
    > "$T/l.json" 2> "$T/err" || fail "compress luc: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); s=j["policy_sparsity"]; e=j["e"]
assert abs(sum(s)/len(s)-0.6) < 1e-5 and abs(j["mean_sparsity"]-0.6) < 0.01
assert s[e.index(max(e))] == min(s) and set(j["layer_bits"]) <= {3, 8}' "$T/l.json" "compress luc JSON"
MB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sparse_mb"])' "$T/u.json")
"$PARE" compress "$SRC" -o "$T/b.gguf" --method budget --budget-mb "$MB" --profile "$T/prof.json" $C --json \
    > "$T/b.json" 2> "$T/err" || fail "compress budget: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); assert j["sparse_mb"] <= j["budget_mb"] + 1e-3 and j["est_err"] is not None' \
    "$T/b.json" "compress budget JSON"
"$PARE" ppl "$T/b.gguf" --text "$CALIB" --ctx 64 --max-windows 2 --threads 1 > /dev/null 2>&1 || fail "ppl on the budget output"

# the loss profile, the loss objective, LUC at a size
"$PARE" profile "$SRC" $C --loss --json > "$T/profl.json" 2> "$T/err" || fail "profile --loss: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); assert len(j["prune_loss"])==8 and all(len(r)==7 for r in j["prune_loss"])
assert len(j["quant_loss"])==8 and all(len(q)==3 for q in j["quant_loss"]) and 1 < j["base_loss"] < 20
assert all(r[-1] > 0 for r in j["prune_loss"])' "$T/profl.json" "profile --loss JSON"
"$PARE" compress "$SRC" -o "$T/b2.gguf" --method budget --budget-mb "$MB" --profile "$T/profl.json" $C --json \
    > "$T/b2.json" 2> "$T/err" || fail "compress budget (loss): exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); assert j["objective"] == "loss" and j["sparse_mb"] <= j["budget_mb"] + 1e-3' \
    "$T/b2.json" "compress budget (loss) JSON"
"$PARE" compress "$SRC" -o "$T/l2.gguf" --method luc --bits 4 --budget-mb "$MB" --profile "$T/prof.json" $C --json \
    > "$T/l2.json" 2> "$T/err" || fail "compress luc --budget-mb: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); s=j["policy_sparsity"]
assert j["sparse_mb"] <= j["budget_mb"] + 1e-3 and 0 < j["target_sparsity"] < 0.95 and abs(sum(s)/len(s)-j["target_sparsity"]) < 1e-5' \
    "$T/l2.json" "compress luc --budget-mb JSON"
# --verify: every candidate scored, the lowest loss chosen, within the budget
"$PARE" compress "$SRC" -o "$T/v.gguf" --method budget --budget-mb "$MB" --profile "$T/profl.json" --verify $C --json \
    > "$T/v.json" 2> "$T/err" || fail "compress budget --verify: exit $? ($(cat "$T/err"))"
py 'import json,sys; j=json.load(open(sys.argv[1])); v=j["verify"]; names=[c["candidate"] for c in v]
assert len(v) >= 3 and "search-err" in names and "search-loss" in names and any(n.startswith("uniform-") for n in names)
best=min(v, key=lambda c: c["calib_loss"]); assert j["chosen"] == best["candidate"]
assert j["sparse_mb"] <= j["budget_mb"] + 1e-3 and abs(j["sparse_mb"] - best["sparse_mb"]) < 1e-3' "$T/v.json" "compress budget --verify JSON"
"$PARE" ppl "$T/v.gguf" --text "$CALIB" --ctx 64 --max-windows 2 --threads 1 > /dev/null 2>&1 || fail "ppl on the verified output"

expect_fail() { # label, arguments after MODEL
    label=$1; shift
    rm -f "$T/x.gguf"
    "$PARE" compress "$SRC" -o "$T/x.gguf" "$@" > /dev/null 2> "$T/err"
    rc=$?
    if [ $rc = 0 ] || [ $rc -gt 128 ]; then fail "$label: exit $rc"; fi
    grep -q "^pare compress: " "$T/err" || fail "$label: message '$(cat "$T/err")'"
    [ -e "$T/x.gguf" ] && fail "$label: OUT written"
}
expect_fail "no --method" $C
expect_fail "unknown --method" --method foo $C
expect_fail "luc target above the cap" --method luc --target-sparsity 0.97 --profile "$T/prof.json" $C
expect_fail "budget too small" --method budget --budget-mb 1 --profile "$T/prof.json" $C
expect_fail "budget without --budget-mb" --method budget --profile "$T/prof.json" $C
expect_fail "bad --profile" --method luc --profile "$T/u.json" $C
expect_fail "9 bits" --method uniform --bits 9 $C
expect_fail "loss objective without a loss profile" --method budget --budget-mb "$MB" --objective loss --profile "$T/prof.json" $C
expect_fail "--budget-mb with uniform" --method uniform --budget-mb 5 $C
expect_fail "--verify with luc" --method luc --verify --profile "$T/prof.json" $C
expect_fail "luc --budget-mb too small" --method luc --budget-mb 3.2 --profile "$T/prof.json" $C
expect_fail "pruning without --calib" --method uniform --target-sparsity 0.5
[ "$(sha256sum < "$SRC")" = "$SUM0" ] || fail "the input changed"
[ $fails = 0 ] && echo "test_luc_cli: all passed"
[ $fails = 0 ]

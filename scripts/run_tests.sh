#!/bin/sh
# Run every test binary in $1/tests; print a summary; non-zero exit if any fails.
B=${1:-build}
fail=0; n=0
for t in "$B"/tests/test_*; do
    case "$t" in *.o|*.d) continue;; esac
    [ -x "$t" ] || continue
    n=$((n+1))
    echo "== $t"
    if ! "$t"; then echo "FAILED: $t"; fail=$((fail+1)); fi
done
echo "== $n test programs, $fail failed"
[ "$fail" = 0 ]

#!/bin/sh
# Run every test program in $1/tests (C, cmocka) and every tests/test_*.sh (CLI tests,
# given the build folder); print a summary; exit non-zero if any fails.
B=${1:-build}
fail=0; n=0; failed=""
for t in "$B"/tests/test_* tests/test_*.sh; do
    case "$t" in *.o|*.d) continue;; esac
    [ -f "$t" ] || continue
    n=$((n+1))
    echo "== $t"
    case "$t" in
        *.sh) sh "$t" "$B" ;;
        *) "$t" ;;
    esac
    if [ $? != 0 ]; then echo "FAILED: $t"; fail=$((fail+1)); failed="$failed $t"; fi
done
echo "== $n test programs, $fail failed$failed"
[ "$fail" = 0 ]

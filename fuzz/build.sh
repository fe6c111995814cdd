#!/bin/sh
# fuzz/build.sh [OUT] - the libFuzzer targets (clang, ASan + UBSan): the library compiled
# with -fsanitize=fuzzer-no-link into OUT/obj, one binary per fuzz_*.c in OUT.
set -e
cd "$(dirname "$0")/.."
OUT=${1:-build-fuzz}
CC=${FUZZ_CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unknown-pragmas -Wno-pass-failed -Iinclude -Isrc -Ifuzz -fopenmp -g -O1 $SAN"
mkdir -p "$OUT/obj"
objs=""
for f in src/*.c src/*/*.c; do
    o="$OUT/obj/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')"
    extra=""
    case "$f" in
        *_avx2.c) extra="-mavx2 -mfma -mf16c" ;;
        *_avx512.c) extra="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c" ;;
    esac
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ -n "$(find src -name '*.h' -newer "$o" | head -1)" ]; then
        # shellcheck disable=SC2086
        $CC $CFLAGS $extra -fsanitize=fuzzer-no-link -c "$f" -o "$o"
    fi
    objs="$objs $o"
done
for t in fuzz/fuzz_*.c; do
    name=$(basename "$t" .c)
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer "$t" $objs -o "$OUT/$name" -lopenblas -lcjson -lpcre2-8 -lm
done
echo "fuzz targets in $OUT: $(cd "$OUT" && ls fuzz_* | tr '\n' ' ')"

#!/bin/sh
# test_install.sh - `make install` into a temporary prefix puts bin/pare, lib/libpare.a,
# lib/libpare.so(.0), include/pare.h and lib/pkgconfig/pare.pc in place; examples/ppl.c,
# compiled with `pkg-config --cflags --libs pare` against the installed files only, prints
# brown-4m's perplexity equal to `pare ppl`'s on the same windows.
B=${1:-build}
D=${PARE_DATA:-../shared/data}
M="$D/bench/brown-4m/model.gguf"
TXT="$D/bench/brown-test.txt"
if [ -n "$PARE_SAN" ]; then echo "skip: install test runs with the plain build"; exit 0; fi
command -v pkg-config > /dev/null || { echo "skip: pkg-config not found"; exit 0; }
[ -f "$M" ] || { echo "skip: $M not found"; exit 0; }
T=$(mktemp -d "${TMPDIR:-/tmp}/pare-install.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
fails=0
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
make -s install BUILD="$B" PREFIX="$T/usr" > "$T/log" 2>&1 || { cat "$T/log"; echo "FAIL make install"; exit 1; }
for f in bin/pare lib/libpare.a lib/libpare.so lib/libpare.so.0 include/pare.h lib/pkgconfig/pare.pc; do
    [ -e "$T/usr/$f" ] || fail "missing $f"
done
export PKG_CONFIG_PATH="$T/usr/lib/pkgconfig"
[ "$(pkg-config --modversion pare)" = 0.1.0 ] || fail "pkg-config --modversion"
cc -std=c11 -Wall -Wextra -Werror examples/ppl.c $(pkg-config --cflags --libs pare) -lm -o "$T/ppl" 2> "$T/err" ||
    fail "compile examples/ppl.c: $(cat "$T/err")"
got=$(LD_LIBRARY_PATH="$T/usr/lib" "$T/ppl" "$M" "$TXT" 256 20 | awk '{print $2}')
want=$("$T/usr/bin/pare" ppl "$M" --text "$TXT" --ctx 256 --max-windows 20 --json -q |
    python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])')
[ -n "$got" ] && [ "$got" = "$want" ] || fail "example ppl '$got', pare ppl '$want'"
LD_LIBRARY_PATH="$T/usr/lib" ldd "$T/ppl" | grep -q "$T/usr/lib/libpare.so.0" || fail "the example is not linked to the installed libpare.so.0"
if [ $fails = 0 ]; then echo "ok: make install, pkg-config, example ppl $got = pare ppl $want"; exit 0; fi
exit 1

#!/bin/sh
# Install pare's build and test dependencies from Debian (as root), only what is missing.
# bible-kjv: the text of the default model (scripts/default_data.sh); sentencepiece: its
# tokenizer (scripts/train_default.sh); clang with libFuzzer and its OpenMP: the fuzz targets;
# chromium: the pare report test renders the page headless.
set -e
PKGS="build-essential pkg-config clang libomp-14-dev libclang-rt-14-dev chromium libopenblas-dev liblapacke-dev libcjson-dev libpcre2-dev libcmocka-dev bible-kjv sentencepiece"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "pare setup: installing$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

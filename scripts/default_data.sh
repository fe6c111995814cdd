#!/bin/sh
# The text of pare's default model: the King James Bible (public domain) as Debian's
# bible-kjv package prints it, one verse per line without verse numbers, a "Book N"
# heading line before each chapter and a blank line after it. Every 20th chapter (the 20th,
# 40th, ... of the 1,189) is held out for measuring perplexity; the rest is for training.
#   sh scripts/default_data.sh [DIR]   ->  DIR/kjv-train.txt, DIR/kjv-heldout.txt  (DIR: build/default)
set -e
DIR=${1:-build/default}
command -v bible >/dev/null 2>&1 || { echo "default_data.sh: 'bible' not found: run scripts/setup.sh (Debian package bible-kjv)" >&2; exit 1; }
mkdir -p "$DIR"
bible -l0 gen1:1-rev22:21 | LC_ALL=C awk -v train="$DIR/kjv-train.txt.tmp" -v held="$DIR/kjv-heldout.txt.tmp" '
    /^[ \t]*$/ { next }
    /^([123] )?[A-Z][A-Za-z ]* [0-9]+$/ {   # a chapter heading ("1 Samuel 3")
        if (ch > 0) print "" > out
        ch++; out = ch % 20 == 0 ? held : train
        print > out; next }
    /^ *[0-9]+ / { sub(/^ *[0-9]+ /, ""); n++; print > out; next }
    { print "unexpected line: " $0 > "/dev/stderr"; exit 1 }
    END { print "" > out
          if (ch != 1189 || n != 31102) { print "expected 1189 chapters and 31102 verses, got " ch ", " n > "/dev/stderr"; exit 1 } }'
mv "$DIR/kjv-train.txt.tmp" "$DIR/kjv-train.txt"
mv "$DIR/kjv-heldout.txt.tmp" "$DIR/kjv-heldout.txt"

#!/bin/sh
# sleb_stories.sh - block removal on stories260K (5 blocks), where methods separate more
# clearly than on brown-4m: 1 and 2 blocks removed by sleb, sleb-oneshot and shortgpt,
# calibration 64 x 256 tokens of tinystories_train_head (random windows) for seeds SEEDS,
# perplexity on the first 400 windows of 256 of tinystories_valid_head.
#   sh bench/sleb_stories.sh [BUILD [OUTDIR]]     env: SEEDS="0 1 2" KS="1 2"
set -e
export PARE_FORCE=1 # reruns replace their outputs
B=${1:-build}
OUT=${2:-/tmp/pare-sleb-stories}
SEEDS=${SEEDS:-"0 1 2"}
KS=${KS:-"1 2"}
D=${PARE_DATA:-../shared/data}
M=$D/stories260K/stories260K.gguf; CAL=$D/text/tinystories_train_head.txt; T=$D/text/tinystories_valid_head.txt
mkdir -p "$OUT"
ppl() { "$B/pare" ppl "$1" --text "$T" --ctx 256 --max-windows 400 --json 2>/dev/null |
    python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'; }
echo "| method | blocks removed | removed (original index), per seed | TinyStories valid ppl, per seed |"
echo "|---|---|---|---|"
echo "| dense | 0 | - | $(ppl "$M") |"
for k in $KS; do
    for meth in sleb sleb-oneshot shortgpt; do
        rm_=""; p=""
        for s in $SEEDS; do
            o=$OUT/$meth-$k-$s.gguf
            "$B/pare" prune "$M" -o "$o" --method $meth --remove-blocks $k --calib "$CAL" --nsamples 64 --seqlen 256 \
                --seed $s --threads 1 --json > "$OUT/$meth-$k-$s.json" 2>/dev/null
            rm_="$rm_ [$(python3 -c 'import json,sys; print(" ".join(str(i) for i in json.load(open(sys.argv[1]))["removed"]))' "$OUT/$meth-$k-$s.json")]"
            p="$p $(ppl "$o")"
            rm -f "$o"
        done
        echo "| $meth | $k |$rm_ |$p |"
    done
done

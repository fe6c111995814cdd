#!/bin/sh
# Retrain pare's default model, models/default.gguf, from scratch (about 18 minutes on 2 idle cores):
#   1. the text: the King James Bible from Debian's bible-kjv package, split into training
#      text and held-out chapters (scripts/default_data.sh);
#   2. the tokenizer: a 2048-piece SentencePiece BPE model (byte fallback) trained on the
#      training text by Debian's spm_train (deterministic; its vocabulary is stored in the GGUF);
#   3. the model: `pare train` with the shape in scripts/default_shape.json (4 blocks, width
#      192, 6 heads sharing 2 KV heads, SwiGLU 512, tied embeddings; 1.97 M parameters, trained
#      in F32, stored F16). Its log goes to models/default.train.log.
# Needs `make` (build/pare) and scripts/setup.sh (bible-kjv, sentencepiece). The same
# machine type and thread count give the same bytes; other CPUs may differ in the last bits
# (OpenBLAS picks its kernels at run time).
set -e
export PARE_FORCE=1 # reruns replace their outputs
cd "$(dirname "$0")/.."
B=${BUILD:-build}
D=$B/default
OUT=${1:-models/default.gguf}
sh scripts/default_data.sh "$D"
(cd "$D" && spm_train --input=kjv-train.txt --model_prefix=kjv --model_type=bpe --vocab_size=2048 \
    --byte_fallback=true --character_coverage=1.0 --normalization_rule_name=identity --split_digits=true \
    --num_threads=1 --minloglevel=2 >/dev/null 2>&1)
mkdir -p "$(dirname "$OUT")"
"$B/pare" train --config scripts/default_shape.json --data "$D/kjv-train.txt" --tokenizer "$D/kjv.model" \
    --valid "$D/kjv-heldout.txt" -o "$OUT" \
    --steps 1600 --batch 16 --ctx 256 --lr 2e-3 --warmup 80 --seed 1 --threads 2 --type f16 \
    | tee "${OUT%.gguf}.train.log"
"$B/pare" ppl "$OUT" --text "$D/kjv-heldout.txt" --ctx 256 | tee -a "${OUT%.gguf}.train.log"

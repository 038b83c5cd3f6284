#!/usr/bin/env bash
# The main job on built-in data: set up .venv (idempotent), draw a small ImageNet-layout
# data set, train PoolFormer-S12 on it on the CPU and evaluate the final checkpoint.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
PY=.venv/bin/python
CONFIG=configs/classification/poolformer_s12_builtin.py
WORK_DIR=work_dirs/poolformer_s12_builtin
[ -d data/builtin/imagenet ] || $PY tools/data/make_builtin_data.py imagenet
$PY tools/train.py $CONFIG --work-dir $WORK_DIR
$PY tools/test.py $CONFIG "$WORK_DIR/$(cat $WORK_DIR/last_checkpoint | xargs basename)" --work-dir $WORK_DIR

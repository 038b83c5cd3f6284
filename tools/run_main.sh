#!/usr/bin/env bash
# The main job on built-in data, on the CPU:
#  1. set up .venv (idempotent),
#  2. draw small ImageNet- and COCO-layout data sets,
#  3. pretrain PoolFormer-S12 on the shapes (as COCO models start from ImageNet),
#  4. train Mask R-CNN PoolFormer-S12 on the COCO-layout set,
#  5. evaluate it (box and mask mAP) and save the val images with predictions drawn,
#  6. print a summary: the metrics (read from the runs' result files), the time of each
#     stage, where the checkpoints and pictures are, and what to try next.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY=.venv/bin/python
CLS_CONFIG=configs/classification/poolformer_s12_builtin.py
DET_CONFIG=configs/detection/maskrcnn_poolformer_s12_builtin.py
CLS_DIR=work_dirs/poolformer_s12_builtin
DET_DIR=work_dirs/maskrcnn_poolformer_s12_builtin
VIS_DIR=$DET_DIR/vis
# One line per stage, NAME<TAB>SECONDS, or NAME<TAB>reused when its output was there.
STAGES=work_dirs/main_job_stages.tsv
mkdir -p work_dirs
: > "$STAGES"

# stage NAME OUTPUT COMMAND...: run COMMAND unless OUTPUT ('' for none) exists, and record
# its time.
stage() {
    local name=$1 output=$2 start=$SECONDS
    shift 2
    if [[ -n "$output" && -e "$output" ]]; then
        printf '%s\treused\n' "$name" >> "$STAGES"
        return
    fi
    "$@"
    printf '%s\t%d\n' "$name" $((SECONDS - start)) >> "$STAGES"
}
make_data() {
    [ -d data/builtin/imagenet ] || $PY tools/data/make_builtin_data.py imagenet
    [ -d data/builtin/coco ] || $PY tools/data/make_builtin_data.py coco
}

stage set-up '' bash tools/setup_env.sh
source tools/malloc.sh
use_tcmalloc  # the training and test runs below
stage data '' make_data
stage classifier $CLS_DIR/epoch_15.pth $PY tools/train.py $CLS_CONFIG --work-dir $CLS_DIR
stage 'Mask R-CNN' '' $PY tools/train.py $DET_CONFIG --work-dir $DET_DIR \
    --cfg-options model.backbone.init_cfg.checkpoint=$CLS_DIR/epoch_15.pth
stage test '' $PY tools/test.py $DET_CONFIG "$(cat $DET_DIR/last_checkpoint)" \
    --work-dir $DET_DIR --show-dir $VIS_DIR
echo
$PY tools/analysis/main_job_summary.py --classifier $CLS_DIR --detector $DET_DIR \
    --det-config $DET_CONFIG --vis-dir $VIS_DIR --stages $STAGES

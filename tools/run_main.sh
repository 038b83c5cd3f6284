#!/usr/bin/env bash
# The main job on built-in data, on the CPU:
#  1. set up .venv (idempotent),
#  2. draw small ImageNet- and COCO-layout data sets,
#  3. pretrain PoolFormer-S12 on the shapes (as COCO models start from ImageNet),
#  4. train Mask R-CNN PoolFormer-S12 on the COCO-layout set,
#  5. evaluate it (box and mask mAP) and save the val images with predictions drawn.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
PY=.venv/bin/python
CLS_CONFIG=configs/classification/poolformer_s12_builtin.py
DET_CONFIG=configs/detection/maskrcnn_poolformer_s12_builtin.py
CLS_DIR=work_dirs/poolformer_s12_builtin
DET_DIR=work_dirs/maskrcnn_poolformer_s12_builtin

[ -d data/builtin/imagenet ] || $PY tools/data/make_builtin_data.py imagenet
[ -d data/builtin/coco ] || $PY tools/data/make_builtin_data.py coco
[ -f $CLS_DIR/epoch_15.pth ] || $PY tools/train.py $CLS_CONFIG --work-dir $CLS_DIR
$PY tools/train.py $DET_CONFIG --work-dir $DET_DIR \
    --cfg-options model.backbone.init_cfg.checkpoint=$CLS_DIR/epoch_15.pth
$PY tools/test.py $DET_CONFIG $DET_DIR/epoch_6.pth --work-dir $DET_DIR --show-dir $DET_DIR/vis
echo "box and mask mAP: see the coco/bbox_mAP and coco/segm_mAP line above;"
echo "predictions drawn (left: ground truth, right: prediction) in $DET_DIR/vis"

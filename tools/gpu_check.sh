#!/usr/bin/env bash
# Usage: tools/gpu_check.sh [--dry-run] [WORK_DIR]      (default WORK_DIR: work_dirs/gpu_check)
# The first thing to run on a GPU machine: about 10 minutes on one H200. Every visible GPU
# takes part (NCCL, one process per GPU); it stops at the first failure with a line naming
# the step and the command, and keeps everything it printed in WORK_DIR/gpu_check.log.
#  1. the tests marked gpu (tests/test_gpu.py);
#  2. training on the built-in data (data/builtin, or drawn into WORK_DIR/data), about
#     40 iterations each, in fp32 and with --amp (AmpOptimWrapper, checked in each log):
#     the classifier, whose checkpoint is the pretrained backbone of the next three,
#     Mask R-CNN, RetinaNet and Semantic FPN;
#  3. --resume on CUDA: the classifier, one more epoch from its checkpoint;
#  4. tools/dist_test.sh on each fp32 checkpoint, and with --tta for RetinaNet and the
#     FPN (Mask R-CNN has no tta_model: mmdet cannot merge instance masks);
#  5. WORK_DIR/gpu_check_table.md (and .json): per training run s/iteration, img/s and peak
#     GPU memory (max_memory_allocated), fp32 and AMP, read from the runs' logs by
#     tools/analysis/gpu_check_table.py;
#  6. tools/analysis/benchmark.py on CUDA: inference in fp32, fp16 and bf16, ours against
#     timm and mmpretrain, and the training step (img/s and peak memory; NCHW against
#     channels_last, ours and timm; ours under --amp) (WORK_DIR/benchmark_cuda.json).
# --dry-run prints the commands (lines "+ ...") and the log checks ("= ...") without
# running anything (tests/test_gpu_check.py). GPU_CHECK_GPUS overrides the number of
# GPUs; GPU_CHECK_TIMEOUT (default 300) is the limit of each command, in seconds;
# the distributed runs take the ports after GPU_CHECK_PORT (default 29500), one each.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
export PYTHON  # tools/dist_run.sh runs the same interpreter
DRY_RUN=0
if [[ "${1:-}" == --dry-run ]]; then DRY_RUN=1; shift; fi
WORK=${1:-work_dirs/gpu_check}
TIMEOUT=${GPU_CHECK_TIMEOUT:-300}
STEP=setup
RUNS=0

fail() {
    echo "gpu_check: FAILED at $STEP: $*" >&2
    exit 1
}

run() {  # print the command; run it (unless a dry run) within the time limit
    echo "+ $*"
    (( DRY_RUN )) && return 0
    # Each distributed run gets its own port: a port just released may still be taken.
    RUNS=$((RUNS + 1))
    local rc=0
    PORT=$((${GPU_CHECK_PORT:-29500} + RUNS)) timeout --kill-after=20 "$TIMEOUT" "$@" || rc=$?
    if (( rc == 124 || rc == 137 )); then
        fail "timed out after $TIMEOUT s: $*"
    elif (( rc )); then
        fail "exit status $rc: $*"
    fi
}

log_shows() {  # log_shows RUN_DIR PATTERN WHAT: the run's log must contain PATTERN
    echo "= check: $1 log shows $3 ($2)"
    (( DRY_RUN )) && return 0
    grep -qE -- "$2" "$1"/*/*.log 2>/dev/null || fail "$1: the log does not show $3 ($2)"
}

GPUS=${GPU_CHECK_GPUS:-1}
if (( ! DRY_RUN )); then
    mkdir -p "$WORK"
    exec > >(tee -a "$WORK/gpu_check.log") 2>&1
    [[ -n ${GPU_CHECK_GPUS:-} ]] || GPUS=$("$PYTHON" -c \
        'import torch; print(torch.cuda.device_count())') || fail "$PYTHON cannot import torch"
    (( GPUS > 0 )) || fail "torch sees no CUDA device"
    if command -v nvidia-smi > /dev/null; then  # for the record only
        nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv || true
    fi
    # mmcv with CUDA ops (RoIAlign, NMS), or a one-line message saying what to rebuild.
    "$PYTHON" tools/build_env.py check-cuda || fail "mmcv has no CUDA ops"
fi
echo "gpu_check: $GPUS GPU(s), one NCCL process each; work dir $WORK"

STEP="1/6 tests marked gpu"
echo "== $STEP"
run "$PYTHON" -m pytest -p no:cacheprovider -q -m gpu tests

STEP="2/6 training on the built-in data"
echo "== $STEP"
# The last file tools/data/make_builtin_data.py writes for each set.
declare -A WRITTEN_LAST=([imagenet]=val/cross/00049.png
                         [coco]=annotations/instances_val2017.json
                         [ade20k]=annotations/validation/000039.png)
DATA=data/builtin
for KIND in imagenet coco ade20k; do
    [[ -f $DATA/$KIND/${WRITTEN_LAST[$KIND]} ]] || DATA=$WORK/data
done
for KIND in imagenet coco ade20k; do
    [[ -f $DATA/$KIND/${WRITTEN_LAST[$KIND]} ]] ||
        run "$PYTHON" tools/data/make_builtin_data.py "$KIND" --root "$DATA"
done
COCO_ANN=$DATA/coco/annotations/instances_val2017.json
# Every iteration logged with its own time (window 1), no validation while training
# (tools/dist_test.sh evaluates), and about 40 iterations whatever the number of GPUs:
# the epoch-based runs take GPUS epochs of 40 / GPUS iterations each.
LOGGING=(default_hooks.logger.interval=1 log_processor.window_size=1 train_cfg.val_begin=1000000)
loaders() {  # loaders DATA_ROOT: cfg-options pointing every data loader at DATA_ROOT
    local loader
    for loader in train_dataloader val_dataloader test_dataloader; do
        echo "$loader.dataset.data_root=$1"
    done
}
CLS=configs/classification/poolformer_s12_builtin.py
MASKRCNN=configs/detection/maskrcnn_poolformer_s12_builtin.py
RETINANET=configs/detection/retinanet_poolformer_s12_builtin.py
FPN=configs/segmentation/fpn_poolformer_s12_builtin.py
mapfile -t CLS_DATA < <(loaders "$DATA/imagenet")
mapfile -t COCO_DATA < <(loaders "$DATA/coco")
mapfile -t ADE_DATA < <(loaders "$DATA/ade20k")
COCO_EVAL=(val_evaluator.ann_file="$COCO_ANN" test_evaluator.ann_file="$COCO_ANN")
PRETRAINED=model.backbone.init_cfg.checkpoint=$WORK/classifier/epoch_$GPUS.pth

train() {  # train NAME CONFIG [cfg-options]: fp32, then --amp into NAME_amp
    local name=$1 config=$2 amp
    shift 2
    for amp in "" --amp; do
        run bash tools/dist_train.sh "$config" "$GPUS" --work-dir "$WORK/$name${amp:+_amp}" \
            $amp --cfg-options "${LOGGING[@]}" "$@"
    done
    log_shows "$WORK/${name}_amp" "type='AmpOptimWrapper'" "AmpOptimWrapper"
}
train classifier "$CLS" train_cfg.max_epochs="$GPUS" "${CLS_DATA[@]}"
train maskrcnn "$MASKRCNN" train_cfg.max_epochs="$GPUS" "$PRETRAINED" "${COCO_DATA[@]}" \
    "${COCO_EVAL[@]}"
train retinanet "$RETINANET" train_cfg.max_epochs="$GPUS" "$PRETRAINED" "${COCO_DATA[@]}" \
    "${COCO_EVAL[@]}"
train fpn "$FPN" train_cfg.max_iters=40 "$PRETRAINED" "${ADE_DATA[@]}"

STEP="3/6 --resume on CUDA"
echo "== $STEP"
run bash tools/dist_train.sh "$CLS" "$GPUS" --work-dir "$WORK/classifier_resume" \
    --resume "$WORK/classifier/epoch_$GPUS.pth" \
    --cfg-options "${LOGGING[@]}" train_cfg.max_epochs=$((GPUS + 1)) "${CLS_DATA[@]}"
log_shows "$WORK/classifier_resume" "resumed epoch: $GPUS," "the resume from epoch $GPUS"

STEP="4/6 tools/dist_test.sh and --tta"
echo "== $STEP"
run bash tools/dist_test.sh "$CLS" "$WORK/classifier/epoch_$GPUS.pth" "$GPUS" \
    --work-dir "$WORK/test_classifier" --cfg-options "${CLS_DATA[@]}"
for NAME in maskrcnn retinanet; do
    CONFIG=$([[ $NAME == maskrcnn ]] && echo "$MASKRCNN" || echo "$RETINANET")
    run bash tools/dist_test.sh "$CONFIG" "$WORK/$NAME/epoch_$GPUS.pth" "$GPUS" \
        --work-dir "$WORK/test_$NAME" --cfg-options "${COCO_DATA[@]}" "${COCO_EVAL[@]}"
done
run bash tools/dist_test.sh "$RETINANET" "$WORK/retinanet/epoch_$GPUS.pth" "$GPUS" --tta \
    --work-dir "$WORK/test_retinanet_tta" --cfg-options "${COCO_DATA[@]}" "${COCO_EVAL[@]}"
run bash tools/dist_test.sh "$FPN" "$WORK/fpn/iter_40.pth" "$GPUS" \
    --work-dir "$WORK/test_fpn" --cfg-options "${ADE_DATA[@]}"
run bash tools/dist_test.sh "$FPN" "$WORK/fpn/iter_40.pth" "$GPUS" --tta \
    --work-dir "$WORK/test_fpn_tta" --cfg-options "${ADE_DATA[@]}"

STEP="5/6 table of the training runs"
echo "== $STEP"
RUN_DIRS=()
for NAME in classifier maskrcnn retinanet fpn; do
    RUN_DIRS+=("$WORK/$NAME" "$WORK/${NAME}_amp")
done
run "$PYTHON" tools/analysis/gpu_check_table.py --out "$WORK/gpu_check_table.md" \
    --json "$WORK/gpu_check_table.json" "${RUN_DIRS[@]}"

STEP="6/6 benchmark on CUDA"
echo "== $STEP"
run "$PYTHON" tools/analysis/benchmark.py --device cuda --fp16 --bf16 --train --batch 64 \
    --json "$WORK/benchmark_cuda.json"
if (( DRY_RUN )); then echo "gpu_check: dry run, nothing was run"; else echo "gpu_check: all passed"; fi

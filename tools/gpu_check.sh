#!/usr/bin/env bash
# Usage: tools/gpu_check.sh [--dry-run] [WORK_DIR]      (default WORK_DIR: work_dirs/gpu_check)
# What a CUDA machine must pass, in a few minutes on one GPU:
#  1. the tests marked gpu (tests/test_gpu.py: CUDA layouts, the deployed model, AMP fp16 /
#     bf16 forward and backward against fp32);
#  2. the built-in Mask R-CNN for a few iterations (32 images, one epoch, then validation)
#     under tools/dist_train.sh with NCCL, without and with --amp: 2 processes when 2 GPUs
#     are visible; NCCL takes one process per GPU, so 1 process on a single GPU;
#  3. tools/analysis/benchmark.py on CUDA in fp32, fp16 and bf16, ours against timm and
#     mmpretrain (tables on stdout, figures in WORK_DIR/benchmark_cuda.json).
# --dry-run prints the commands without running anything (tests/test_gpu_check.py).
# GPU_CHECK_GPUS overrides the number of GPUs it plans for.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
export PYTHON  # tools/dist_run.sh runs the same interpreter
DRY_RUN=0
if [[ "${1:-}" == --dry-run ]]; then DRY_RUN=1; shift; fi
WORK=${1:-work_dirs/gpu_check}
CONFIG=configs/detection/maskrcnn_poolformer_s12_builtin.py

run() {
    echo "+ $*"
    if (( ! DRY_RUN )); then "$@"; fi
}

GPUS=${GPU_CHECK_GPUS:-$( (( DRY_RUN )) && echo 1 ||
    "$PYTHON" -c 'import torch; print(torch.cuda.device_count())')}
if (( ! DRY_RUN )); then
    (( GPUS > 0 )) || { echo "error: torch sees no CUDA device" >&2; exit 1; }
    # mmcv with CUDA ops (RoIAlign, NMS), or a one-line message saying what to rebuild.
    "$PYTHON" tools/build_env.py check-cuda
    mkdir -p "$WORK"
fi
PROCS=$(( GPUS >= 2 ? 2 : 1 ))

echo "== 1/3 tests marked gpu"
run "$PYTHON" -m pytest -p no:cacheprovider -q -m gpu tests

echo "== 2/3 Mask R-CNN, $PROCS NCCL process(es), without and with --amp"
DATA=data/builtin/coco
if [[ ! -f $DATA/annotations/instances_train2017.json ]]; then
    DATA=$WORK/data/coco
    [[ -f $DATA/annotations/instances_train2017.json ]] ||
        run "$PYTHON" tools/data/make_builtin_data.py coco --root "$WORK/data"
fi
OPTIONS=(model.backbone.init_cfg=None train_cfg.max_epochs=1 train_cfg.val_interval=1
         train_dataloader.dataset.indices=32 default_hooks.logger.interval=1
         val_evaluator.ann_file="$DATA/annotations/instances_val2017.json")
for loader in train_dataloader val_dataloader test_dataloader; do
    OPTIONS+=("$loader.dataset.data_root=$DATA")
done
for AMP in "" --amp; do
    run bash tools/dist_train.sh "$CONFIG" "$PROCS" --work-dir "$WORK/maskrcnn${AMP:+_amp}" \
        $AMP --cfg-options "${OPTIONS[@]}"
done

echo "== 3/3 benchmark on CUDA"
run "$PYTHON" tools/analysis/benchmark.py --device cuda --fp16 --bf16 --batch 64 \
    --json "$WORK/benchmark_cuda.json"
if (( DRY_RUN )); then echo "gpu_check: dry run, nothing was run"; else echo "gpu_check: all passed"; fi

#!/usr/bin/env bash
# Usage: tools/dist_run.sh TOOL NUM_PROCS [TOOL arguments]   (TOOL: train.py or test.py)
# What tools/dist_train.sh and tools/dist_test.sh run. Multi-node: NNODES, NODE_RANK,
# MASTER_ADDR and PORT. Without CUDA the processes use the gloo backend.
# A machine that shows GPUs torch cannot use stops here in one line, before any process
# starts (mmpoolformer/utils/gpu.py); CUDA_VISIBLE_DEVICES= runs on the CPU on purpose.
# The processes run with tcmalloc (tools/malloc.sh; MMPOOLFORMER_MALLOC=glibc: glibc's).
set -euo pipefail
TOOL=$1
PROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python)}

"$PYTHON" "$ROOT/mmpoolformer/utils/gpu.py" check || exit 1
source "$ROOT/tools/malloc.sh"
use_tcmalloc
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$PROCS" --master_port="$PORT" \
    "$ROOT/tools/$TOOL" "${@:3}" --launcher pytorch

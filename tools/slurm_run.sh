#!/usr/bin/env bash
# Usage: [GPUS=8] tools/slurm_run.sh PARTITION JOB_NAME TOOL [TOOL arguments]
# What tools/slurm_train.sh and tools/slurm_test.sh run (TOOL: train.py or test.py).
# The tasks run the checkout's .venv python (PYTHON overrides it), as tools/dist_run.sh
# does. Each job gets its own MASTER_PORT (20000 + SLURM_JOB_ID % 40000, set in every
# task unless MASTER_PORT is given), so that two jobs sharing a node don't collide.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
TOOL=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
if [[ ! -x "$PYTHON" ]]; then
    echo "error: $PYTHON not found: run tools/setup_env.sh first, or set PYTHON" >&2
    exit 1
fi
source "$ROOT/tools/malloc.sh"
use_tcmalloc  # srun passes the environment on to the tasks
set -x
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
srun -p "${PARTITION}" --job-name="${JOB_NAME}" --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" --kill-on-bad-exit=1 ${SRUN_ARGS} \
    bash -c 'export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 40000))}; exec "$@"' \
    task "$PYTHON" -u "$ROOT/tools/$TOOL" "${@:4}" --launcher=slurm

#!/usr/bin/env bash
# Usage: [GPUS=8] [STOP_WARNING_S=180] tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR]
#        [train.py options]
# slurm sends SIGUSR1 STOP_WARNING_S seconds before the time limit (--signal): train.py
# finishes the iteration, saves it and exits 75; run it again with --resume
# (docs/reliability.md). tools/slurm_sbatch.sh also requeues the job by itself.
SRUN_ARGS="--signal=USR1@${STOP_WARNING_S:-180} ${SRUN_ARGS:-}" \
exec bash "$(dirname "$0")/slurm_run.sh" "$1" "$2" train.py "$3" \
    --work-dir="${4:-work_dirs/$2}" "${@:5}"

#!/usr/bin/env bash
# A training job that survives preemption and time limits: submit it with
#   sbatch -p PARTITION -J JOB_NAME [--nodes=N] [--time=HH:MM:SS] tools/slurm_sbatch.sh CONFIG \
#          [WORK_DIR] [train.py options]
# from the repository root. Preempted (SIGTERM), or warned 180 s before the time limit
# (SIGUSR1), train.py saves the iteration in flight and exits 75; slurm requeues a
# preempted job by itself (--requeue) and this script requeues a timed-out one; the
# requeued job runs this script again, and --resume goes on from the saved iteration.
# The #SBATCH lines are defaults; sbatch's own options override them.
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=5
#SBATCH --requeue
#SBATCH --signal=USR1@180
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -u
EXIT_STOPPED=75  # mmpoolformer.engine.EXIT_STOPPED
CONFIG=$1
WORK_DIR=${2:-work_dirs/${SLURM_JOB_NAME:-$(basename "$CONFIG" .py)}}
cd "${SLURM_SUBMIT_DIR:-.}"  # slurm runs a copy of this script, elsewhere
# The checkout's .venv python (PYTHON overrides it), and a port of this job's own.
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
export MASTER_PORT=${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 40000))}
echo "job ${SLURM_JOB_ID:-?}, run $(( ${SLURM_RESTART_COUNT:-0} + 1 )): $CONFIG -> $WORK_DIR"

PREEMPTED=0
trap 'PREEMPTED=1' TERM  # slurm signals this shell too when it preempts the job
trap ':' USR1            # and with --signal=B:USR1 the warning comes here: not fatal
# --resume: the latest checkpoint in WORK_DIR, or a fresh start on the first run.
PYTHONPATH="$PWD:${PYTHONPATH:-}" \
srun --kill-on-bad-exit=1 "$PYTHON" -u tools/train.py "$CONFIG" --work-dir="$WORK_DIR" \
    --resume --launcher=slurm "${@:3}" &
SRUN=$!
while :; do  # a trap ends `wait` early: wait again until srun has exited
    wait "$SRUN"
    STATUS=$?
    kill -0 "$SRUN" 2>/dev/null || break
done
if [ "$STATUS" -eq "$EXIT_STOPPED" ] && [ "$PREEMPTED" = 0 ]; then
    echo "stopped before the time limit, iteration saved: requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$STATUS"

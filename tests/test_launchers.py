"""The launch scripts, driven with a fake srun on PATH and a fake GPU machine: the python
they run, the per-job port, and the stop before any process when GPUs are unusable."""
import os
import subprocess

import pytest

from helpers import ROOT

FAKE_SRUN = '''#!/bin/bash
# Record the command line, then run the task command (what follows srun's options)
# once, as a task of job $FAKE_JOB_ID would.
printf '%s\\n' "$@" > "$SRUN_LOG"
while [[ $# -gt 0 && $1 != bash ]]; do shift; done
[[ -n "${FAKE_JOB_ID:-}" ]] && SLURM_JOB_ID=$FAKE_JOB_ID exec "$@"
exit 0
'''
RECORDER = '''#!/bin/bash
echo "MASTER_PORT=$MASTER_PORT ARGS=$*" > "$TASK_LOG"
'''


@pytest.fixture
def slurm(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', FAKE_SRUN), ('recorder', RECORDER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}',
               SRUN_LOG=str(tmp_path / 'srun.log'), TASK_LOG=str(tmp_path / 'task.log'))
    env.pop('MASTER_PORT', None)
    env.pop('PYTHON', None)

    def run(*args, **extra):
        proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'job', *args],
                              cwd=ROOT, env=dict(env, **extra), capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        srun = (tmp_path / 'srun.log').read_text().splitlines()
        task = (tmp_path / 'task.log').read_text() if (tmp_path / 'task.log').exists() else ''
        return srun, task
    run.recorder = str(bin_dir / 'recorder')
    return run


def test_slurm_tasks_run_the_checkouts_venv_python(slurm):
    srun, _ = slurm('configs/detection/maskrcnn_poolformer_s12.py')
    python = srun[srun.index('task') + 1]
    assert python == os.path.join(ROOT, '.venv', 'bin', 'python')
    assert srun[-1] == '--launcher=slurm'
    assert 'python' not in srun[:srun.index('task')]  # never a bare `python` before it


def test_each_slurm_job_gets_its_own_master_port(slurm):
    ports = {}
    for job in ('4242', '4243'):
        _, task = slurm('configs/detection/maskrcnn_poolformer_s12.py', FAKE_JOB_ID=job,
                        PYTHON=slurm.recorder)
        ports[job] = task.split()[0]
    assert ports == {'4242': 'MASTER_PORT=24242', '4243': 'MASTER_PORT=24243'}
    _, task = slurm('configs/detection/maskrcnn_poolformer_s12.py', FAKE_JOB_ID='4242',
                    PYTHON=slurm.recorder, MASTER_PORT='31000')
    assert task.startswith('MASTER_PORT=31000 ')  # the user's choice wins


def test_dist_train_stops_before_any_process_when_gpus_are_unusable(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('torch can use the GPUs here')
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='0,1')
    proc = subprocess.run(['bash', 'tools/dist_train.sh',
                           'configs/classification/poolformer_s12_builtin.py', '2',
                           '--work-dir', str(tmp_path / 'work')],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: this machine shows GPUs'), proc.stderr
    assert 'CUDA_VISIBLE_DEVICES=0,1' in lines[0]
    assert not (tmp_path / 'work').exists()  # nothing started

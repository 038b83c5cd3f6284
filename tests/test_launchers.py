"""The launch scripts, driven with a fake srun on PATH and a fake GPU machine: the python
they run, the per-job port, and the stop before any process when GPUs are unusable."""
import os
import subprocess
import sys

import pytest

from helpers import ROOT, Watched

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


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_tools_stop_before_building_when_gpus_are_unusable(tmp_path, tool):
    import torch
    if torch.cuda.is_available():
        pytest.skip('torch can use the GPUs here')
    args = ['configs/classification/poolformer_s12_builtin.py', '--work-dir', str(tmp_path)]
    if tool == 'tools/test.py':
        args.insert(1, str(tmp_path / 'missing.pth'))
    proc = subprocess.run([sys.executable, tool, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES='0,1'))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'this machine shows GPUs (CUDA_VISIBLE_DEVICES=0,1)' in errors[0]
    assert 'Traceback' not in proc.stderr
    assert os.listdir(tmp_path) == []  # no log, no work dir content: nothing was built


def test_batch_warning_names_the_recipe_and_the_scaled_lr():
    from mmpoolformer.apis import load_config
    from mmpoolformer.apis.run import batch_warning
    cfg = load_config('configs/segmentation/fpn_poolformer_s12_ade20k.py')
    # the recipe: 8 GPUs x 4 images, AdamW lr 2e-4 (the original poolformer segmentation)
    assert batch_warning(cfg, 8) is None
    warning = batch_warning(cfg, 16)
    assert warning == (
        "warning: total batch 64 (16 process(es) x 4) is not the recipe's 32 "
        "(auto_scale_lr.base_batch_size), whose lr is 0.0002; add --auto-scale-lr to scale "
        "the lr linearly to 0.0004, or set optim_wrapper.optimizer.lr yourself")
    cfg.auto_scale_lr.enable = True  # --auto-scale-lr
    assert batch_warning(cfg, 16) is None


def test_every_task_family_has_auto_scale_lr():
    import glob

    from mmpoolformer.apis import load_config
    for folder in ('classification', 'detection', 'segmentation'):
        for path in glob.glob(os.path.join(ROOT, 'configs', folder, '*.py')):
            cfg = load_config(path)
            base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
            assert base, f'{path}: no auto_scale_lr.base_batch_size'
            assert base % cfg.train_dataloader.batch_size == 0, path


@pytest.mark.slow
def test_two_nodes_on_localhost_train_and_only_rank_0_saves(tiny_cls_data, tmp_path):
    """torchrun --nnodes=2 through dist_train.sh: one process per "node", gloo, each node
    with its own work dir, as two machines would have."""
    from helpers import builtin_cls_options
    env = dict(os.environ, NNODES='2', PORT='29531', MASTER_ADDR='127.0.0.1')
    env.pop('CUDA_VISIBLE_DEVICES', None)
    nodes = []
    for rank in (0, 1):
        work = tmp_path / f'node{rank}'
        cmd = ['bash', 'tools/dist_train.sh', 'configs/classification/poolformer_s12_builtin.py',
               '1', '--work-dir', str(work), *builtin_cls_options(tiny_cls_data),
               'train_dataloader.batch_size=16']
        nodes.append(Watched(cmd, env=dict(env, NODE_RANK=str(rank))))
    for node in nodes:
        done = node.finish(900)
        assert done.returncode == 0, done.stdout[-3000:]
    log = open(next((tmp_path / 'node0').glob('*/*.log'))).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    # 32 training images, batch 16 per rank: one iteration per epoch on each of the 2 ranks
    assert 'Epoch(train) [1][1/1]' in log
    assert (tmp_path / 'node0' / 'epoch_1.pth').is_file()
    assert not list((tmp_path / 'node1').rglob('*.pth'))  # rank 1 saves nothing

"""The CPU side of tools/gpu_check.sh: the commands it plans (--dry-run) are the right
ones and their arguments parse as tools/train.py's and tools/test.py's; the gpu-marked
tests are selected (they skip here and pass on a CUDA machine); the parser of its table
(tools/analysis/gpu_check_table.py) on a hand-written log. The script itself needs a GPU
to run (tests/test_benchmark.py checks the benchmark's CUDA options)."""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import ROOT, import_tool, run_tool, succeeded

CONFIGS = dict(classifier='configs/classification/poolformer_s12_builtin.py',
               maskrcnn='configs/detection/maskrcnn_poolformer_s12_builtin.py',
               retinanet='configs/detection/retinanet_poolformer_s12_builtin.py',
               fpn='configs/segmentation/fpn_poolformer_s12_builtin.py')


def dry_run(tmp_path, gpus):
    """(planned commands as argument lists, log-check lines) of a dry run."""
    proc = run_tool('tools/gpu_check.sh', '--dry-run', str(tmp_path / 'work'),
                    env=dict(GPU_CHECK_GPUS=str(gpus)), timeout=60)
    out = succeeded(proc)
    assert 'dry run, nothing was run' in out
    assert not (tmp_path / 'work').exists()
    lines = proc.stdout.splitlines()
    return ([shlex.split(line[2:]) for line in lines if line.startswith('+ ')],
            [line[2:] for line in lines if line.startswith('= ')])


def parse_tool_args(tool, argv):
    """``argv`` parsed by tools/train.py's or tools/test.py's own parser."""
    module = import_tool(f'tools/{tool}')
    old_argv = sys.argv
    try:
        sys.argv = [tool, *argv]
        return module.parse_args()
    finally:
        sys.argv = old_argv


def test_script_parses():
    assert subprocess.run(['bash', '-n', os.path.join(ROOT, 'tools/gpu_check.sh')]
                          ).returncode == 0


@pytest.fixture(scope='module', params=[1, 2, 8])
def plan(request, tmp_path_factory):
    """gpus, the planned commands (train.py / test.py ones parsed) and the log checks."""
    gpus = request.param
    tmp = tmp_path_factory.mktemp(f'plan{gpus}')
    commands, checks = dry_run(tmp, gpus)
    trains = [(c, parse_tool_args('train.py', [c[2], *c[4:]])) for c in commands
              if c[:2] == ['bash', 'tools/dist_train.sh']]
    tests = [(c, parse_tool_args('test.py', [c[2], c[3], *c[5:]])) for c in commands
             if c[:2] == ['bash', 'tools/dist_test.sh']]
    return dict(gpus=gpus, work=str(tmp / 'work'), commands=commands, checks=checks,
                trains=trains, tests=tests)


def test_every_run_uses_all_gpus(plan):
    gpus = str(plan['gpus'])
    assert [c[3] for c, _ in plan['trains']] == [gpus] * len(plan['trains'])
    assert [c[4] for c, _ in plan['tests']] == [gpus] * len(plan['tests'])


def test_plan_runs_the_gpu_tests_first(plan):
    first = plan['commands'][0]
    assert first[1:3] == ['-m', 'pytest'] and first[first.index('-m', 2) + 1] == 'gpu'


def test_plan_trains_each_model_in_fp32_and_amp_and_checks_amp_in_the_log(plan):
    work = plan['work']
    runs = {os.path.basename(args.work_dir): args for _, args in plan['trains']}
    for name, config in CONFIGS.items():
        plain, amp = runs[name], runs[f'{name}_amp']
        assert plain.config == amp.config == config
        assert not plain.amp and amp.amp
        assert plain.cfg_options == amp.cfg_options
        assert f'= check: {work}/{name}_amp log shows AmpOptimWrapper ' \
               f"(type='AmpOptimWrapper')" in [f'= {c}' for c in plan['checks']]
        # Every iteration logged with its own time, for the table; no validation.
        options = plain.cfg_options
        assert options['default_hooks.logger.interval'] == 1
        assert options['log_processor.window_size'] == 1
        assert options['train_cfg.val_begin'] > 1000


def test_plan_keeps_runs_short_whatever_the_number_of_gpus(plan):
    """About 40 iterations per run: the built-in sets have 1200 (classification) and 160
    (COCO) training images, batch 32 and 4 per GPU; the FPN counts iterations."""
    gpus = plan['gpus']
    runs = {os.path.basename(args.work_dir): args.cfg_options for _, args in plan['trains']}
    for name, images, batch in [('classifier', 1200, 32), ('maskrcnn', 160, 4),
                                ('retinanet', 160, 4)]:
        epochs = runs[name]['train_cfg.max_epochs']
        assert 30 <= epochs * (images // gpus) // batch <= 45, (name, epochs)
    assert runs['fpn']['train_cfg.max_iters'] == 40


def test_dense_models_start_from_the_classifier_the_plan_trains(plan):
    runs = {os.path.basename(args.work_dir): args.cfg_options for _, args in plan['trains']}
    classifier_checkpoint = (f'{plan["work"]}/classifier/'
                             f'epoch_{runs["classifier"]["train_cfg.max_epochs"]}.pth')
    for name in ('maskrcnn', 'retinanet', 'fpn'):
        assert runs[name]['model.backbone.init_cfg.checkpoint'] == classifier_checkpoint


def test_plan_resumes_the_classifier_for_one_more_epoch(plan):
    runs = {os.path.basename(args.work_dir): args for _, args in plan['trains']}
    classifier, resumed = runs['classifier'], runs['classifier_resume']
    epochs = classifier.cfg_options['train_cfg.max_epochs']
    assert resumed.config == CONFIGS['classifier'] and not resumed.amp
    assert resumed.resume == f'{plan["work"]}/classifier/epoch_{epochs}.pth'
    assert resumed.cfg_options['train_cfg.max_epochs'] == epochs + 1
    assert (f'check: {plan["work"]}/classifier_resume log shows the resume from epoch '
            f'{epochs} (resumed epoch: {epochs},)') in plan['checks']


def test_plan_tests_each_trained_checkpoint_and_tta_where_the_model_has_it(plan):
    runs = {os.path.basename(args.work_dir): args for _, args in plan['trains']}

    def last_checkpoint(name):
        options = runs[name].cfg_options
        if 'train_cfg.max_iters' in options:
            return f'{plan["work"]}/{name}/iter_{options["train_cfg.max_iters"]}.pth'
        return f'{plan["work"]}/{name}/epoch_{options["train_cfg.max_epochs"]}.pth'

    tested = {(args.config, args.checkpoint, args.tta) for _, args in plan['tests']}
    expected = {(config, last_checkpoint(name), False) for name, config in CONFIGS.items()}
    expected |= {(CONFIGS[name], last_checkpoint(name), True) for name in ('retinanet', 'fpn')}
    assert tested == expected
    for _, args in plan['tests']:  # the data the models trained on
        train_root = runs[next(n for n, c in CONFIGS.items() if c == args.config)].cfg_options[
            'train_dataloader.dataset.data_root']
        assert args.cfg_options['test_dataloader.dataset.data_root'] == train_root


def test_plan_writes_the_table_of_every_training_run_and_the_cuda_benchmark(plan):
    table = next(c for c in plan['commands'] if c[1] == 'tools/analysis/gpu_check_table.py')
    trained = [args.work_dir for _, args in plan['trains']
               if not args.work_dir.endswith('_resume')]
    assert table[table.index('--out') + 1] == f'{plan["work"]}/gpu_check_table.md'
    assert sorted(table[-len(trained):]) == sorted(trained)
    bench = next(c for c in plan['commands'] if c[1] == 'tools/analysis/benchmark.py')
    assert {'--fp16', '--bf16'} <= set(bench) and bench[bench.index('--device') + 1] == 'cuda'


def test_plan_draws_the_builtin_data_it_lacks(plan):
    """Without data/builtin, the three sets are drawn into WORK_DIR/data first."""
    if all(os.path.isdir(os.path.join(ROOT, 'data/builtin', k))
           for k in ('imagenet', 'coco', 'ade20k')):
        pytest.skip('data/builtin is there: the plan uses it')
    drawn = [c[2] for c in plan['commands'] if c[1] == 'tools/data/make_builtin_data.py']
    assert drawn == ['imagenet', 'coco', 'ade20k']
    first_train = plan['commands'].index(plan['trains'][0][0])
    assert max(plan['commands'].index(c) for c in plan['commands']
               if c[1] == 'tools/data/make_builtin_data.py') < first_train


# A pytest plugin for the run below: the tests that carry the gpu marker (seen before
# -m deselects anything), each one's skipif conditions, and every phase's outcome.
GPU_OUTCOMES_PLUGIN = """
import json, os
import pytest

if os.environ.get('FAKE_CUDA'):  # before the test modules import torch.cuda's answer
    import torch
    torch.cuda.is_available = lambda: True
marked, outcomes = {}, {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker('gpu'):
            marked[item.nodeid] = [bool(m.args[0]) for m in item.iter_markers('skipif')]


def pytest_runtest_logreport(report):
    reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ''
    outcomes.setdefault(report.nodeid, []).append((report.when, report.outcome, reason))


def pytest_sessionfinish(session):
    with open(os.environ['GPU_OUTCOMES'], 'w') as f:
        json.dump(dict(marked=marked, outcomes=outcomes), f)
"""


def _gpu_run(tmp_path, *args, fake_cuda=False):
    """``pytest -m gpu tests`` as tools/gpu_check.sh runs it, with the plugin above;
    returns (the process, what the plugin recorded)."""
    (tmp_path / 'gpu_outcomes.py').write_text(GPU_OUTCOMES_PLUGIN)
    record = tmp_path / ('fake.json' if fake_cuda else 'run.json')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path)]),
               GPU_OUTCOMES=str(record), FAKE_CUDA='1' if fake_cuda else '')
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider',
                           '-p', 'gpu_outcomes', '-q', '-m', 'gpu', *args, 'tests'],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    return proc, json.loads(record.read_text())


def test_gpu_marked_tests_skip_without_cuda_and_run_with_it(tmp_path):
    """-m gpu runs every test that carries the gpu marker (however many there are):
    without CUDA each skips, saying why; with CUDA each passes. With torch.cuda faked
    to answer yes, no skip condition holds, so on a CUDA machine they run."""
    import torch
    proc, record = _gpu_run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    marked, outcomes = record['marked'], record['outcomes']
    assert marked, 'no test carries the gpu marker'
    assert sorted(outcomes) == sorted(marked), proc.stdout[-3000:]
    for nodeid, phases in outcomes.items():
        if torch.cuda.is_available():
            assert ['call', 'passed', ''] in phases, (nodeid, phases)
            assert all(outcome != 'failed' for _, outcome, _ in phases), (nodeid, phases)
        else:
            assert phases[0] == ['setup', 'skipped', 'Skipped: needs a CUDA device'], \
                (nodeid, phases)
            assert all(when != 'call' for when, _, _ in phases), (nodeid, phases)
    _, faked = _gpu_run(tmp_path, '--collect-only', fake_cuda=True)
    assert sorted(faked['marked']) == sorted(marked)
    assert not any(any(conditions) for conditions in faked['marked'].values()), faked


# --------------------------------------------------------------------------- #
# tools/analysis/gpu_check_table.py on a hand-written run
# --------------------------------------------------------------------------- #
LOG = """\
2026/01/05 10:00:00 - mmengine - INFO -
------------------------------------------------------------
System environment:
    sys.platform: linux
    CUDA available: True
    GPU 0,1: NVIDIA H200

Runtime environment:
    cudnn_benchmark: False
    dist_cfg: {'backend': 'nccl'}
    seed: 0
    Distributed launcher: pytorch
    Distributed training: True
    GPU number: 2
------------------------------------------------------------

2026/01/05 10:00:00 - mmengine - INFO - Config:
auto_scale_lr = dict(base_batch_size=16)
optim_wrapper = dict(
    loss_scale='dynamic',
    optimizer=dict(lr=0.0002, type='AdamW', weight_decay=0.05),
    type='AmpOptimWrapper')
train_dataloader = dict(
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        ann_file='annotations/instances_train2017.json',
        batch_size=99,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(scale=(192, 160), type='Resize'),
        ],
        type='mmpoolformer.ValidatedCocoDataset'),
    batch_size=4,
    num_workers=2,
    sampler=dict(shuffle=True, type='DefaultSampler'))
val_dataloader = dict(batch_size=1)

2026/01/05 10:00:09 - mmengine - INFO - Epoch(train) [1][ 1/40]  lr: 2.0e-04  time: 3.2
"""


def scalars(times, memory):
    lines = [dict(lr=2e-4, data_time=0.01, loss=1.5, loss_bbox=0.5, time=t, epoch=1,
                  iter=i + 1, memory=m, step=i + 1) for i, (t, m) in enumerate(zip(times,
                                                                                    memory))]
    lines.append({'coco/bbox_mAP': 0.1, 'data_time': 0.01, 'time': 0.05, 'step': 1})
    return '\n'.join(json.dumps(line) for line in lines) + '\n'


def write_run(work_dir, log=LOG, times=(3.2, 0.9, 0.5, 0.21, 0.2, 0.2, 0.19, 0.22, 0.25),
              memory=(800, 2100, 2140, 2150, 2300, 2150, 2150, 2150, 2150),
              timestamp='20260105_100000'):
    run = work_dir / timestamp
    (run / 'vis_data').mkdir(parents=True)
    (run / f'{timestamp}.log').write_text(log)
    (run / 'vis_data' / 'scalars.json').write_text(scalars(times, memory))
    return work_dir


def test_table_reads_time_memory_gpus_batch_and_amp_from_the_logs(tmp_path):
    table_tool = import_tool('tools/analysis/gpu_check_table.py')
    amp_run = write_run(tmp_path / 'maskrcnn_amp')
    # An older run in the same folder is ignored: the latest timestamp counts.
    write_run(tmp_path / 'maskrcnn_amp', times=[9.0] * 9, memory=[1] * 9,
              timestamp='20260101_000000')
    fp32_log = LOG.replace("type='AmpOptimWrapper'", "type='OptimWrapper'").replace(
        'GPU number: 2', 'GPU number: 1')
    fp32_run = write_run(tmp_path / 'maskrcnn', log=fp32_log, times=[0.4] * 9,
                         memory=[3000] * 8 + [3100])
    out = tmp_path / 'table.md'
    table_tool.main(['--out', str(out), '--json', str(tmp_path / 't.json'),
                     str(fp32_run), str(amp_run)])
    rows = json.loads((tmp_path / 't.json').read_text())
    fp32, amp = rows
    # Iterations 6..9 are timed (the first 5 are warm-up): median of 0.2, 0.19, 0.22, 0.25.
    assert amp['s_per_iter'] == pytest.approx(0.21)
    assert amp['timed'] == 4 and amp['iterations'] == 9
    assert amp['images_per_iter'] == 8  # 2 GPUs x 4 (not the nested batch_size=99)
    assert amp['img_per_s'] == pytest.approx(8 / 0.21)
    assert amp['peak_memory_mb'] == 2300
    assert amp['amp'] and amp['optim_wrapper'] == 'AmpOptimWrapper'
    assert not fp32['amp'] and fp32['images_per_iter'] == 4
    assert fp32['s_per_iter'] == 0.4 and fp32['peak_memory_mb'] == 3100
    lines = out.read_text().splitlines()
    assert lines[2] == '| maskrcnn | fp32 | 1 | 4 | 9 (4) | 0.4000 | 10.0 | 3100 |'
    assert lines[3] == ('| maskrcnn_amp | AMP (AmpOptimWrapper) | 2 | 8 | 9 (4) | 0.2100 | '
                        '38.1 | 2300 |')


def test_table_of_a_cpu_run_has_no_memory(tmp_path):
    table_tool = import_tool('tools/analysis/gpu_check_table.py')
    run = write_run(tmp_path / 'cpu')
    scalars_file = next(run.glob('*/vis_data/scalars.json'))
    lines = [json.loads(line) for line in scalars_file.read_text().splitlines()]
    scalars_file.write_text(''.join(json.dumps({k: v for k, v in line.items() if k != 'memory'})
                                    + '\n' for line in lines))
    row = table_tool.read_run(str(run))
    assert row['peak_memory_mb'] is None
    assert table_tool.format_table([row]).splitlines()[2].endswith('| n/a |')


@pytest.mark.parametrize('damage, message', [
    ('no run', r'no <timestamp>/vis_data/scalars\.json'),
    ('no gpu number', r'no "GPU number" or train_dataloader batch_size'),
    ('warm-up only', r'no training iteration logged after the first 5'),
])
def test_table_names_the_run_it_cannot_read(tmp_path, damage, message):
    table_tool = import_tool('tools/analysis/gpu_check_table.py')
    work = tmp_path / 'run'
    if damage == 'no run':
        work.mkdir()
    elif damage == 'no gpu number':
        write_run(work, log=LOG.replace('GPU number: 2', ''))
    else:
        write_run(work, times=[0.2] * 5, memory=[1] * 5)
    with pytest.raises(SystemExit) as exit_info:
        table_tool.main([str(work)])
    assert re.fullmatch(rf'error: .*{message}.*', str(exit_info.value))
    assert str(work) in str(exit_info.value)


@pytest.mark.slow
def test_planned_maskrcnn_run_trains_on_the_cpu(tmp_path, builtin_coco):
    """The planned Mask R-CNN command, run with 2 processes on the CPU (gloo) from
    scratch on 16 images for one epoch (on a GPU it starts from the planned classifier
    and trains about 40 iterations); its logs give a row of the table. Only --amp
    needs CUDA."""
    commands, _ = dry_run(tmp_path, 2)
    plain = next(c for c in commands if c[:2] == ['bash', 'tools/dist_train.sh']
                 and c[2] == CONFIGS['maskrcnn'])
    data = next(a for a in plain if a.startswith('train_dataloader.dataset.data_root='))
    plain = [a.replace(data.split('=', 1)[1], builtin_coco) for a in plain]
    work = tmp_path / 'cpu_run'
    plain[plain.index('--work-dir') + 1] = str(work)
    plain = [a for a in plain if not a.startswith('model.backbone.init_cfg.checkpoint=')]
    plain += ['model.backbone.init_cfg=None', 'train_cfg.max_epochs=1',
              'train_dataloader.dataset.indices=16']
    proc = run_tool(*plain[1:], timeout=900, env=dict(PORT='29561', PYTHON=sys.executable))
    succeeded(proc)
    assert (work / 'epoch_1.pth').is_file()
    row = import_tool('tools/analysis/gpu_check_table.py').read_run(str(work), warmup=0)
    assert row['gpus'] == 2 and row['images_per_iter'] == 8 and row['iterations'] == 2
    assert not row['amp'] and row['peak_memory_mb'] is None

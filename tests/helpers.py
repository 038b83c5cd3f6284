"""What the tests share: builders, reference models, tool runners and data options.

Tests import these (``from helpers import ...``; pyproject's pytest ``pythonpath``
puts tests/ on the path); tests/conftest.py keeps the fixtures only.
"""
import itertools
import os
import queue
import re
import subprocess
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_tool(path):
    """A file of tools/ imported as a module: a script (e.g. 'tools/demo/app.py') or a
    module that the scripts of its folder share (e.g. 'tools/analysis/speed.py'). Its
    folder is first on sys.path while it loads, as when a script there runs, so that
    its imports of sibling modules resolve."""
    import importlib.util
    file = os.path.join(ROOT, path)
    folder = os.path.dirname(file)
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(path))[0], file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


# Tool code the tests use as well (the benchmark's inputs, the complexity count).
_inputs = import_tool('tools/analysis/model_inputs.py')
dense_batch, randomize_ = _inputs.dense_batch, _inputs.randomize_
_complexity = import_tool('tools/analysis/complexity.py')
count_macs, count_parameters = _complexity.count_macs, _complexity.count_parameters
# Finding and killing every process a test started (Watched, no_process_left).
processes = import_tool('tools/dev/processes.py')


def build_from_config(path, **overrides):
    from mmpoolformer.apis import build_model
    return build_model(os.path.join(ROOT, path), overrides or None).eval()


def run_tool(*args, timeout=900, env=None):
    """Run a command of tools/ from the repository root; returns CompletedProcess.
    Past ``timeout`` seconds the test fails, the command killed with every process it
    started (``Watched``)."""
    python = args[0].endswith('.py') or args[0] == '-m'  # a script, or a module (-m mim)
    cmd = [sys.executable, *args] if python else ['bash', *args]
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return Watched(cmd, env=full_env, merge_output=False).finish(timeout)


class Watched:
    """A command started from the repository root in a session of its own, its output
    read by threads, so that every wait on it has a deadline, whether the command
    prints or not. Past a deadline the test fails, naming what it waited for, and the
    command is killed with every process it started, each by its pid, whatever its
    process group (torchrun's workers run in sessions of their own) and even once
    re-parented (tools/dev/processes.py). The test's own timeout and the
    ``no_process_left`` fixture end whatever is still running when the test ends."""

    _started = itertools.count()

    def __init__(self, cmd, env=None, merge_output=True):
        self.cmd, self.lines = cmd, []  # the lines of stdout read so far
        self.token = f'watched-{os.getpid()}-{next(Watched._started)}'
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, errors='replace',
            start_new_session=True,
            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
            env=processes.marked_env(self.token, env))
        self._stdout, self._stderr, self._ended = queue.Queue(), [], False
        self._readers = [threading.Thread(target=self._read, daemon=True,
                                          args=(self.proc.stdout, self._stdout.put))]
        if not merge_output:
            self._readers.append(threading.Thread(target=self._read, daemon=True,
                                                  args=(self.proc.stderr, self._stderr.append)))
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe, put):
        for line in pipe:
            put(line)
        put(None)  # the end of the output: every process holding the pipe is gone

    def _next_line(self, deadline):
        """The next line of stdout, or None at its end or at the deadline."""
        if self._ended:
            return None
        try:
            line = self._stdout.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        self._ended = line is None
        if line is not None:
            self.lines.append(line)
        return line

    def wait_for(self, pattern, timeout=600):
        """The first line of stdout matching ``pattern``, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (line := self._next_line(deadline)) is not None:
            if re.search(pattern, line):
                return line
        self.fail(f'a line matching {pattern!r} within {timeout} s'
                  + (' (the output ended first)' if self._ended else ''))

    def finish(self, timeout=300):
        """The CompletedProcess once the command has exited and its output ended
        (every process holding its pipes gone), within ``timeout`` seconds. With
        the output merged, its stderr is its stdout."""
        deadline = time.monotonic() + timeout
        while self._next_line(deadline) is not None:
            pass
        try:
            status = self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = None
        for reader in self._readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if not self._ended or status is None or any(r.is_alive() for r in self._readers):
            self.fail(f'its end within {timeout} s')
        stdout = ''.join(self.lines)
        stderr = ''.join(filter(None, self._stderr)) if len(self._readers) > 1 else stdout
        return subprocess.CompletedProcess(self.cmd, status, stdout, stderr)

    def kill(self):
        """Kill the command and every process it started; {pid: command line} of those."""
        killed = processes.kill_tree(self.token, root=self.proc.pid)
        self.proc.wait(timeout=30)  # reaped; with every writer gone, the readers end
        for reader in self._readers:
            reader.join(timeout=10)
        while self._next_line(time.monotonic()) is not None:  # what was left unread
            pass
        return killed

    def fail(self, waited_for):
        """Kill everything the command started, and fail the test naming what was
        awaited, what was killed and the last output."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        killed = self.kill()
        output = ''.join(self.lines[-40:]) + ''.join(filter(None, self._stderr[-40:]))
        raise AssertionError(
            f'waited in vain for {waited_for}: {" ".join(map(str, self.cmd))}\n'
            f'killed {len(killed)} process(es): '
            + '; '.join(f'{pid} {cmd[:120]}' for pid, cmd in killed.items())
            + f'\nthe last output:\n{output}')


def loader_options(data_root, num_workers=None):
    """cfg-options that point every data loader of a config at data_root, with
    ``num_workers`` worker processes each (None: as the config has them)."""
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={data_root}')
        if num_workers is not None:
            opts += [f'{loader}.num_workers={num_workers}',
                     f'{loader}.persistent_workers={num_workers > 0}']
    return opts


def builtin_cls_options(data_root, max_epochs=1, num_workers=0):
    """--cfg-options that point the built-in classification config at data_root."""
    return ['--cfg-options', f'train_cfg.max_epochs={max_epochs}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', *loader_options(data_root, num_workers)]


def mmpretrain_classifier(arch='s12', num_classes=1000):
    """mmpretrain's own PoolFormer classifier, the reference for parity."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    width = 512 if arch.startswith('s') else 768
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(
            backbone=dict(type='PoolFormer', arch=arch),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=width)).eval()


def official_from_mmpretrain(state_dict):
    """Write the sail-sg layout: the mmpretrain names without 'backbone.',
    the final norm as 'norm' and the classifier as 'head'."""
    import re
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r'^backbone\.', '', key)
        key = re.sub(r'^norm6\.', 'norm.', key)
        key = re.sub(r'^head\.fc\.', 'head.', key)
        out[key] = value
    return out


def last_metrics(work_dir):
    """The last logged validation metrics of an mmengine run in work_dir."""
    import glob
    import json

    # The last run that logged scalars: a later tools/test.py run in the same
    # work_dir (the main job's) writes none.
    logs = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert logs, f'no run in {work_dir} logged scalars'
    scalars = [json.loads(line) for line in open(logs[-1])]
    return [s for s in scalars
            if 'step' in s and not any(k.startswith(('loss', 'lr')) for k in s)][-1]


def trained_steps_of_last_run(work_dir):
    """(epoch, iteration) of every training entry the last mmengine run in work_dir
    logged, iterations counted from the start of training, as mmengine counts them."""
    import glob
    import json
    logs = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert logs, f'no run in {work_dir} logged scalars'
    entries = [json.loads(line) for line in open(logs[-1])]
    return [(entry.get('epoch'), entry['iter']) for entry in entries if 'iter' in entry]


# CI runs the main job (tools/run_main.sh) before the suite and sets this, so that
# the suite checks the main job's own classifier, COCO set and Mask R-CNN instead of
# training the same models again (about 8 of the suite's minutes on 2 cores).
REUSE_MAIN_JOB = os.environ.get('MMPOOLFORMER_REUSE_MAIN_JOB') == '1'
MAIN_JOB = dict(  # what tools/run_main.sh writes, and the file that shows it finished
    classifier=('work_dirs/poolformer_s12_builtin', 'epoch_15.pth'),
    coco=('data/builtin/coco', 'annotations/instances_val2017.json'),
    maskrcnn=('work_dirs/maskrcnn_poolformer_s12_builtin', 'epoch_8.pth'))


def main_job_output(name):
    """(folder, file) of one of the main job's outputs; fails if it is missing,
    since reusing it was asked for."""
    folder, file = MAIN_JOB[name]
    folder = os.path.join(ROOT, folder)
    path = os.path.join(folder, file)
    assert os.path.isfile(path), (f'MMPOOLFORMER_REUSE_MAIN_JOB=1 but the main job left no '
                                  f'{path}: run tools/run_main.sh first')
    return folder, path


def builtin_coco_options(data_root, pretrained, num_workers=None):
    """--cfg-options that point a built-in detection config at data_root."""
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}',
            f'val_evaluator.ann_file={data_root}/annotations/instances_val2017.json',
            f'test_evaluator.ann_file={data_root}/annotations/instances_val2017.json',
            *loader_options(data_root, num_workers)]


def builtin_seg_options(data_root, pretrained, num_workers=None):
    """--cfg-options that point the built-in segmentation config at data_root."""
    return ['--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}',
            *loader_options(data_root, num_workers)]


def tracked_folders(tracked) -> set:
    """Every folder that holds a tracked file, at any depth."""
    folders = set()
    for path in tracked:
        path = os.path.dirname(path)
        while path:
            folders.add(path)
            path = os.path.dirname(path)
    return folders


def toy_runner(work_dir, model=None, max_epochs=2, **cfg):
    """mmengine's Runner on the toy model: 4 samples in batches of 2, SGD, epoch-based;
    ``cfg`` adds or replaces Runner arguments (hooks, load_from, ...)."""
    from mmengine.runner import Runner
    return Runner(**{**dict(
        model=model or toy_model(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs)), **cfg})


def toy_model():
    """The smallest mmengine model that trains: one linear layer, loss = output**2."""
    from mmengine.model import BaseModel

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, mode='loss'):
            return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())
    return Toy()


def one_line_error(proc, pattern):
    """The tool failed with one ``error:`` line matching ``pattern`` and no traceback;
    returns that line."""
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and re.search(pattern, last), last
    return last


def succeeded(proc):
    """Assert a run_tool() call exited 0 (showing its output if not); returns the output."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def random_model(config):
    """A model of the config with distinct random weights (norm affines included,
    so that a GroupNorm exported without its per-channel affine would show)."""
    return randomize_(build_from_config(config, **{'model.backbone.init_cfg': None}), 0, 0.02)


def max_rel_diff(outs, refs):
    """The largest of max |out - ref| / max |ref| over paired outputs."""
    return max(((o - r).abs().max() / r.abs().max()).item()
               for o, r in zip(outs, refs, strict=True))


def trained_like(model, seed=0):
    """Random weights at trained-model scales, in eval mode: norm weights around 1 with
    biases, layer scales well away from their 1e-5 init, so every folded term matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith('scale'):
                p.copy_(0.5 + 0.2 * noise)
            elif 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.05 * noise)
    return model.eval()


def run_tta_test(cfg, monkeypatch):
    """Run cfg's test set as ``tools/test.py --tta`` does (``enable_tta``; checkpoints
    read through ``load_file``). Returns the TTA model, the metrics, every
    (batch, predictions) pair of the wrapped model's ``test_step`` (one call a view
    of a batch; copies, as the merge reuses the first view's samples) and the merged
    predictions, image by image."""
    import copy

    from mmengine.runner import Runner

    from mmpoolformer.apis.run import enable_tta
    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    enable_tta(cfg)
    runner = Runner.from_cfg(cfg)
    tta_model, views, merged = runner.model, [], []
    view_step, merge_step = tta_model.module.test_step, tta_model.test_step

    def record_view(data):
        outputs = view_step(data)
        views.append((data, copy.deepcopy(outputs)))
        return outputs

    def record_merge(data):
        outputs = merge_step(data)
        merged.extend(copy.deepcopy(outputs))
        return outputs

    monkeypatch.setattr(tta_model.module, 'test_step', record_view)
    monkeypatch.setattr(tta_model, 'test_step', record_merge)
    with mmengine_loads_through_load_file():
        metrics = runner.test()
    return tta_model, metrics, views, merged

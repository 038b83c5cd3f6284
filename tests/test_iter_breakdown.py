"""IterTimeBreakdownHook: the parts of the Runner's own training iterations."""
import json
import os
import resource

import pytest

from helpers import ROOT

BUILTIN = os.path.join(ROOT, 'configs/classification/poolformer_s12_builtin.py')
STEP = ['data', 'before_train_iter hooks', 'data_preprocessor', 'forward', 'backward',
        'optimizer']


def tiny_runner(data_root, work_dir, iterations=4, **hook):
    """PoolFormer-S12 on the tiny built-in set (64x64), batch 2, one epoch of
    ``iterations`` iterations, no validation or checkpoint, the hook installed."""
    from mmengine.runner import Runner

    from mmpoolformer.apis import load_config
    cfg = load_config(BUILTIN)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data_root, indices=2 * iterations)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=100)
    cfg.default_hooks.checkpoint.update(interval=-1, save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='mmpoolformer.IterTimeBreakdownHook', **hook)]
    return Runner.from_cfg(cfg)


def test_breakdown_writes_every_part_within_the_iteration(tiny_cls_data, tmp_path):
    """Every part is timed, each positive, and in each iteration together they fit
    in it (they are disjoint pieces of it); mmengine's own iteration time agrees.

    Its CPU time and page faults per iteration are those of the process, within
    what ``train()`` took.

    Broken by hand: with the optim wrapper's ``backward`` not wrapped (its line
    removed from ``before_train``), this failed ('backward' missing from the parts);
    with the usage taken from ``RUSAGE_CHILDREN`` (no child here: all zero), it
    failed on ``user_s > 0``."""
    runner = tiny_runner(tiny_cls_data, tmp_path, iterations=4, warmup=1)
    before = resource.getrusage(resource.RUSAGE_SELF)
    runner.train()
    after = resource.getrusage(resource.RUSAGE_SELF)
    report = json.loads((tmp_path / 'iter_breakdown.json').read_text())
    assert (report['iterations'], report['warmup'], report['timed_iterations']) == (4, 1, 3)
    parts = report['parts_s']
    assert list(parts)[:len(STEP)] == STEP, list(parts)
    hooks = [p for p in parts if p.startswith('after_train_iter: ')]
    # the hooks of the config that do something after each iteration, in the Runner's order
    for name in ('IterTimerHook', 'LoggerHook', 'NonFiniteLossHook', 'ParamSchedulerHook'):
        assert f'after_train_iter: {name}' in hooks, hooks
    assert 'after_train_iter: IterTimeBreakdownHook' not in hooks  # its own is a no-op
    assert all(seconds > 0 for seconds in parts.values()), parts
    # Iteration by iteration the parts are disjoint pieces of it. (The medians of the
    # parts need not sum below the median iteration: on a busy machine they did not.)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'IterTimeBreakdownHook')
    assert len(hook.records) == 4
    for record in hook.records:
        pieces = sum(v for k, v in record.items() if k != 'iteration')
        assert 0 < pieces <= record['iteration'] + 1e-6, record
    assert report['other_s'] >= 0, report
    # CPU time and page faults per iteration: the process's, within what train() took
    usage = report['usage_per_iteration']
    assert set(usage) == {'user_s', 'sys_s', 'minor_faults', 'major_faults'}
    assert usage['user_s'] > 0 and usage['sys_s'] >= 0 and usage['minor_faults'] >= 0
    assert len(hook.usage) == 4
    assert 0 < sum(u['user_s'] for u in hook.usage) <= after.ru_utime - before.ru_utime
    assert sum(u['minor_faults'] for u in hook.usage) <= after.ru_minflt - before.ru_minflt
    # IterTimerHook's span is the same cycle, shifted by the hooks after it (a few ms)
    mine = [r['iteration'] for r in hook.records[1:]]
    assert report['mmengine_times_s'] == pytest.approx(mine, rel=0.1, abs=0.05)
    assert report['mmengine_iteration_s'] == pytest.approx(report['iteration_s'],
                                                          rel=0.1, abs=0.05)


def test_breakdown_leaves_the_runner_as_it_was(tiny_cls_data, tmp_path):
    """After training, the optim wrapper's and every hook's methods are what they
    were before the hook wrapped them (the same objects: the class's own, or what
    the instance held, e.g. mmengine's param schedulers put a counting ``step``
    on the optim wrapper), the module hooks are gone, and the JSON went where
    ``out_file`` said.

    Broken by hand: with ``after_train`` not restoring what it patched (its loop
    removed), this failed (the optim wrapper's ``backward``, ``step`` and
    ``zero_grad`` and the hooks' methods still the timing wrappers)."""
    from mmengine.hooks import Hook
    methods = {'optim wrapper': ('backward', 'step', 'zero_grad', 'update_params'),
               'hook': ('before_train_iter', 'after_train_iter')}

    def snapshot(runner):
        """(kind, object, method name) -> what the instance or its class holds."""
        objects = [('optim wrapper', runner.optim_wrapper)] + [('hook', h) for h in runner.hooks]
        return {(kind, id(obj), name): vars(obj).get(name, getattr(type(obj), name))
                for kind, obj in objects for name in methods[kind]}

    class Snapshot(Hook):
        priority = 'HIGHEST'  # before IterTimeBreakdownHook (VERY_LOW) wraps anything

        def before_train(self, runner):
            self.before = snapshot(runner)

    out = tmp_path / 'elsewhere.json'
    runner = tiny_runner(tiny_cls_data, tmp_path / 'work', iterations=2, warmup=0,
                         out_file=str(out))
    runner.register_hook(Snapshot())
    runner.train()
    before = runner.hooks[0].before
    after = snapshot(runner)
    assert before.keys() == after.keys()
    changed = [key for key in before if after[key] is not before[key]]
    assert not changed, changed
    model = runner.model
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert not model.data_preprocessor._forward_pre_hooks
    assert not model.data_preprocessor._forward_hooks
    assert json.loads(out.read_text())['timed_iterations'] == 2
    assert not (tmp_path / 'work' / 'iter_breakdown.json').exists()

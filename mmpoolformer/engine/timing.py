"""Where a training iteration's time goes, measured inside the Runner's own loop."""
import functools
import json
import os.path as osp
import resource
import statistics
import time
from collections import Counter
from typing import Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmpoolformer.registry import HOOKS
from mmpoolformer.utils.allocator import memory_allocator

from .hooks import inner_model

# The parts of train_step, in the order they run.
STEP_PARTS = ('data_preprocessor', 'forward', 'backward', 'optimizer')


@HOOKS.register_module()
class IterTimeBreakdownHook(Hook):
    """Time each part of the Runner's training iterations and write their medians.

    Opt-in: add ``dict(type='mmpoolformer.IterTimeBreakdownHook')`` to a config's
    ``custom_hooks``. From ``before_train`` to ``after_train`` it times, per
    iteration:

    - ``data``: from the end of the previous iteration (its last hook's
      ``after_train_iter``) to the first hook's ``before_train_iter``, i.e. the
      data loader. The first iteration of an epoch also holds the epoch's hooks
      (and a validation run) here; the medians make that harmless.
    - ``before_train_iter hooks``: every hook's ``before_train_iter``, together.
    - ``data_preprocessor`` and ``forward`` (the model's forward with its
      losses): torch forward pre / post hooks on the model's ``data_preprocessor``
      and on the model, counted only in train mode (validation is not training).
    - ``backward`` and ``optimizer`` (``step`` with any gradient clipping, and
      ``zero_grad``): the optim wrapper's methods of these names, wrapped on the
      instance.
    - ``after_train_iter: <hook>``: each hook's ``after_train_iter`` that does
      something (the no-op of ``Hook`` is left out), wrapped on the hook
      instance. mmengine's IterTimerHook (priority NORMAL) logs its ``time`` in
      its own, so hooks after it count in the next iteration's ``time``.
    - ``iteration``: from the end of the previous iteration to the end of this
      one, so the parts above are disjoint pieces of it; ``other`` is what is
      left (the loss sum of ``parse_losses``, the loop itself).

    Everything wrapped is restored in ``after_train``; nothing changes on
    import. On CUDA each boundary synchronises the device (``cuda_sync``),
    since kernels run asynchronously and a timer would otherwise measure their
    launch. The JSON written (by the main process) holds the median seconds of
    each part over the iterations after ``warmup``, the median of mmengine's own
    ``train/time`` (IterTimerHook's iteration time, read from the message hub)
    over the same iterations, and the counts.

    Args:
        warmup (int): First iterations left out of the medians. Defaults to 1.
        out_file (str, optional): Where to write the JSON. Defaults to
            ``<work_dir>/iter_breakdown.json``.
        cuda_sync (bool): Synchronise CUDA at each boundary. Defaults to True.
    """
    priority = 'VERY_LOW'

    def __init__(self, warmup: int = 1, out_file: Optional[str] = None,
                 cuda_sync: bool = True):
        self.warmup = warmup
        self.out_file = out_file
        self.cuda_sync = cuda_sync and torch.cuda.is_available()
        self.records: list[dict] = []
        self.usage: list[dict] = []  # the process's CPU time and page faults, per iteration

    # -- timing ------------------------------------------------------------ #
    def _now(self) -> float:
        if self.cuda_sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _add(self, part: str, seconds: float) -> None:
        if self._current is not None:
            self._current[part] = self._current.get(part, 0.0) + seconds

    def _timed(self, part: str, method):
        # wraps: keeps the method's attributes, e.g. the mark that mmengine's param
        # schedulers look for on the optim wrapper's step
        @functools.wraps(method)
        def timed(*args, **kwargs):
            start = self._now()
            try:
                return method(*args, **kwargs)
            finally:
                self._add(part, self._now() - start)
        return timed

    def _wrap_before_iter(self, method):
        """A hook's before_train_iter; the first one of an iteration opens it."""
        @functools.wraps(method)
        def timed(*args, **kwargs):
            start = self._now()
            if not self._iteration_open:
                self._finish_iteration()
                self._current = {'data': start - self._last_end}
                self._iteration_open = True
            try:
                return method(*args, **kwargs)
            finally:
                self._add('before_train_iter hooks', self._now() - start)
        return timed

    def _wrap_after_iter(self, part: Optional[str], method):
        """A hook's after_train_iter; the last one to return ends the iteration."""
        @functools.wraps(method)
        def timed(*args, **kwargs):
            start = self._now()
            try:
                return method(*args, **kwargs)
            finally:
                self._last_end = self._now()
                self._iteration_open = False
                if part is not None:
                    self._add(part, self._last_end - start)
        return timed

    def _finish_iteration(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
        if self._current is not None:
            self._current['iteration'] = self._last_end - self._iteration_start
            self.records.append(self._current)
            self.usage.append({name: getattr(usage, field) - getattr(self._usage, field)
                               for name, field in _USAGE.items()})
        self._usage = usage
        self._current, self._iteration_start = None, self._last_end

    def _module_timer(self, module, part: str) -> list:
        starts = []

        def pre(mod, args):
            if mod.training:
                starts.append(self._now())

        def post(mod, args, output):
            if mod.training and starts:
                self._add(part, self._now() - starts.pop())
        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    # -- runner hooks ------------------------------------------------------ #
    def before_train(self, runner) -> None:
        self.records, self.usage, self._current = [], [], None
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._iteration_open = False
        self._last_end = self._iteration_start = self._now()
        model = inner_model(runner)
        self._handles = (self._module_timer(model.data_preprocessor, 'data_preprocessor')
                         + self._module_timer(model, 'forward'))
        # (object, attribute, what it held on the instance, or a marker for none)
        self._patched = []
        wrappers = getattr(runner.optim_wrapper, 'optim_wrappers', None)
        for wrapper in (wrappers.values() if wrappers else [runner.optim_wrapper]):
            for name, part in (('backward', 'backward'), ('step', 'optimizer'),
                               ('zero_grad', 'optimizer')):
                self._patch(wrapper, name, self._timed(part, getattr(wrapper, name)))
        names = Counter(type(hook).__name__ for hook in runner.hooks)
        seen = Counter()
        for hook in runner.hooks:
            name = type(hook).__name__
            seen[name] += 1
            if names[name] > 1:  # two hooks of one class get their position
                name += f' #{seen[name]}'
            # Hook.after_train_iter calls _after_iter, which IterTimerHook overrides
            does_something = (type(hook).after_train_iter is not Hook.after_train_iter
                              or type(hook)._after_iter is not Hook._after_iter)
            self._patch(hook, 'before_train_iter', self._wrap_before_iter(hook.before_train_iter))
            self._patch(hook, 'after_train_iter', self._wrap_after_iter(
                f'after_train_iter: {name}' if does_something else None,
                hook.after_train_iter))

    def _patch(self, obj, name: str, replacement) -> None:
        self._patched.append((obj, name, vars(obj).get(name, _NOTHING)))
        setattr(obj, name, replacement)

    def after_train(self, runner) -> None:
        for obj, name, before in reversed(self._patched):
            if before is _NOTHING:
                delattr(obj, name)
            else:
                setattr(obj, name, before)
        for handle in self._handles:
            handle.remove()
        self._patched, self._handles = [], []
        self._finish_iteration()
        if dist.is_main_process():
            path = self.out_file or osp.join(runner.work_dir, 'iter_breakdown.json')
            with open(path, 'w') as f:
                json.dump(self.summary(runner), f, indent=1)
            print_log(f'iteration time breakdown: {path}', logger='current')

    def summary(self, runner=None) -> dict:
        """Medians in seconds over the iterations after the warm-up."""
        timed = self.records[self.warmup:]
        parts = []  # in the order they first appear, then the parts of the step
        for record in timed:
            parts += [p for p in record if p not in parts and p != 'iteration']
        parts.sort(key=lambda p: (p != 'data', p.startswith('after'),
                                  STEP_PARTS.index(p) if p in STEP_PARTS else -1))
        out = dict(iterations=len(self.records), warmup=self.warmup,
                   timed_iterations=len(timed), memory_allocator=memory_allocator())
        if not timed:
            return out
        out['parts_s'] = {p: statistics.median(r.get(p, 0.0) for r in timed) for p in parts}
        out['iteration_s'] = statistics.median(r['iteration'] for r in timed)
        # user and sys CPU seconds (all threads) and page faults of an iteration: where
        # the allocator's mmap / munmap traffic shows
        out['usage_per_iteration'] = {name: statistics.median(u[name] for u in
                                                               self.usage[self.warmup:])
                                      for name in _USAGE}
        out['other_s'] = statistics.median(
            r['iteration'] - sum(v for k, v in r.items() if k != 'iteration') for r in timed)
        if runner is not None and runner.message_hub.get_scalar('train/time') is not None:
            # IterTimerHook's times of this run's iterations (a resumed run's message
            # hub also holds those of the run before).
            history = runner.message_hub.get_scalar('train/time').data[0]
            mine = [float(t) for t in history[len(history) - len(self.records):]]
            out['mmengine_times_s'] = mine[self.warmup:]
            # the warm-up's own times: what a compiled run's first iteration costs
            out['mmengine_warmup_times_s'] = mine[:self.warmup]
            out['mmengine_iteration_s'] = statistics.median(mine[self.warmup:])
        return out


_NOTHING = object()
_USAGE = dict(user_s='ru_utime', sys_s='ru_stime', minor_faults='ru_minflt',
              major_faults='ru_majflt')

"""``--compile`` of tools/train.py and tools/test.py (CompileBackboneHook): the backbone
is compiled in place, so checkpoints keep the eager keys and resume either way."""
import os
import re

import pytest
import torch
from torch import nn

from helpers import ROOT, builtin_cls_options, run_tool, succeeded, trained_steps_of_last_run
from mmpoolformer.utils.errors import UsageError

CLS = 'configs/classification/poolformer_s12_builtin.py'
# A tiny PoolFormer on the built-in config: the C++ compile of its train graph takes
# about 1.5 min on 2 cores (S12's takes minutes more).
TINY = (f'_base_ = {os.path.join(ROOT, CLS)!r}\n'
        'model = dict(backbone=dict(arch=dict(_delete_=True, layers=[1, 1, 1, 1], '
        'embed_dims=[8, 16, 24, 32], mlp_ratios=2)), head=dict(in_channels=32))\n')
# mmengine validates after the last epoch whatever val_interval says: no val loop, so
# that the training runs compile the train graph alone.
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
COMPILED = 'compiled the backbone (PoolFormer) in place with torch.compile()'
MISMATCH = 'do not match exactly'  # mmengine's warning for missing / unexpected keys


class _Runner:
    def __init__(self, model):
        self.model = model


class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.head = nn.Linear(4, 2)


def test_compile_hook_compiles_the_backbone_in_place():
    """nn.Module.compile: the backbone's forward goes through torch.compile, the
    module and its state dict keys stay. Broken by hand: with the hook not compiling,
    this failed (no compiled call)."""
    from mmpoolformer.engine import CompileBackboneHook
    model = _Classifier()
    keys, backbone = list(model.state_dict()), model.backbone
    CompileBackboneHook().before_run(_Runner(model))
    assert model.backbone is backbone
    # what nn.Module.compile sets, and __call__ runs instead of the eager forward
    assert model.backbone._compiled_call_impl is not None
    assert model.head._compiled_call_impl is None
    assert list(model.state_dict()) == keys


def test_compile_hook_names_a_model_without_a_backbone():
    from mmpoolformer.engine import CompileBackboneHook
    with pytest.raises(UsageError, match=r'Linear has no backbone module'):
        CompileBackboneHook().before_run(_Runner(nn.Linear(2, 2)))


def test_enable_compile_adds_the_hook_once():
    """--compile on a config that lists the hook already compiles once."""
    from mmengine.config import Config

    from mmpoolformer.apis import run as R
    cfg = Config(dict(custom_hooks=[dict(type='mmpoolformer.IterTimeBreakdownHook')]))
    R.enable_compile(cfg)
    R.enable_compile(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == ['mmpoolformer.IterTimeBreakdownHook',
                                                     'mmpoolformer.CompileBackboneHook']


def _keys(checkpoint):
    return list(torch.load(checkpoint, weights_only=False)['state_dict'])


def _graphs_after_first(mode, out):
    match = re.search(rf'dynamo has compiled (\d+) graph\(s\) after the first {mode} '
                      'iteration', out)
    assert match, out[-3000:]
    return int(match[1])


@pytest.mark.slow  # two compiles of a tiny model: about 3 min on 2 cores
def test_compiled_run_checkpoints_and_resumes_like_eager(tiny_cls_data, tmp_path):
    """A run with --compile logs the compiled backbone and dynamo's graph, and saves
    the eager run's keys (no ``_orig_mod.``); its checkpoint resumes in an eager run,
    an eager one in a compiled run, without a key mismatch; tools/test.py --compile
    scores as tools/test.py. Broken by hand: with the hook doing nothing, this failed
    on the log line; with ``model.backbone = torch.compile(model.backbone)`` (a wrapper
    whose keys carry ``_orig_mod.``) in the hook, the compiled run itself failed."""
    config = tmp_path / 'tiny.py'
    config.write_text(TINY)
    work = {mode: str(tmp_path / mode) for mode in ('eager', 'compiled')}
    options = builtin_cls_options(tiny_cls_data) + NO_VAL
    succeeded(run_tool('tools/train.py', str(config), '--work-dir', work['eager'], *options))
    out = succeeded(run_tool('tools/train.py', str(config), '--compile', '--work-dir',
                             work['compiled'], *options))
    assert COMPILED in out
    assert _graphs_after_first('train', out) >= 1  # the backbone ran through dynamo
    eager_keys = _keys(os.path.join(work['eager'], 'epoch_1.pth'))
    compiled_keys = _keys(os.path.join(work['compiled'], 'epoch_1.pth'))
    assert compiled_keys == eager_keys
    assert not [key for key in compiled_keys if '_orig_mod.' in key]
    # each run resumes the other's checkpoint (a second epoch)
    resumed = builtin_cls_options(tiny_cls_data, max_epochs=2) + NO_VAL
    for source, flag in (('compiled', []), ('eager', ['--compile'])):
        out = succeeded(run_tool('tools/train.py', str(config), *flag, '--resume',
                                 '--work-dir', work[source], *resumed))
        assert 'resumed epoch: 1, iter: 1\n' in out, out[-3000:]
        assert MISMATCH not in out, out[-3000:]
        assert (COMPILED in out) == bool(flag)
        assert trained_steps_of_last_run(work[source]) == [(2, 2)]
    checkpoint = os.path.join(work['compiled'], 'epoch_2.pth')
    scores = []
    for flag in ([], ['--compile']):
        out = succeeded(run_tool('tools/test.py', str(config), checkpoint, *flag,
                                 '--work-dir', str(tmp_path / 'test'),
                                 *builtin_cls_options(tiny_cls_data)))
        assert MISMATCH not in out
        scores.append(re.search(r'accuracy/top1: (\d+\.\d+)', out)[1])
    assert _graphs_after_first('test', out) >= 1
    assert scores[1] == scores[0]

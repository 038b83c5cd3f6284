"""The contract every family member and size keeps: forward and backward, out_indices,
frozen_stages, the inference paths (channels_last with the fused MLP kernel, folded)
equal to the plain NCHW one, and the state dict through every checkpoint layout.

Every size is built on the 'meta' device (shapes, no data, no init time) for what
depends on its size: output shapes, frozen parameters, what deploy folds, the
state-dict names in every layout. The numbers (gradients, inference paths, tensors
through the layouts) are checked on the smallest size of each family, whose code
the larger sizes share; tests/test_deploy.py folds every PoolFormer size as well.
"""
import re

import pytest
import torch

from helpers import trained_like
from mmpoolformer.checkpoint import (
    V1_LAYOUTS,
    V2_LAYOUTS,
    convert_from_mmpoolformer,
    convert_to_mmpoolformer,
)
from mmpoolformer.models import (
    CAFormer,
    ConvFormer,
    IdentityFormer,
    PoolFormer,
    PoolFormerV2,
    RandFormer,
)
from mmpoolformer.models.backbones.deploy import DeployedPoolFormerBlock, switch_to_deploy

# Every size of the papers (Yu et al., arXiv 2111.11418 Table 1; arXiv 2210.13452
# Table 1) and its number of blocks, all of which deploy folds in the pooling families.
POOLFORMER_BLOCKS = dict(s12=12, s24=24, s36=36, m36=36, m48=48)
CONVFORMER_SIZES = ['s18', 's36', 'm36', 'b36']
MEMBERS = ([(cls, arch) for cls in (PoolFormer, PoolFormerV2, IdentityFormer, RandFormer)
            for arch in POOLFORMER_BLOCKS]
           + [(cls, arch) for cls in (ConvFormer, CAFormer) for arch in CONVFORMER_SIZES])
SMALLEST = ('s12', 's18')
POOLING = (PoolFormer, PoolFormerV2)
SIDE = 64  # strides 4 to 32: 16, 8, 4 and 2 tokens a side (RandFormer resamples its grids)


def _rel_diff(outs, refs):
    return max(((o - r).abs().max() / r.abs().max()).item()
               for o, r in zip(outs, refs, strict=True))


def _check_round_trip_through_every_layout(cls, model):
    """Written in each layout of its generation and read back, every tensor comes
    back under its own name (with its values, unless on 'meta'); only output norms,
    which classifier layouts have no place for, may be left out."""
    ours = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    on_meta = next(model.parameters()).is_meta
    for layout in V1_LAYOUTS if cls is PoolFormer else V2_LAYOUTS:
        again, read_as = convert_to_mmpoolformer(convert_from_mmpoolformer(ours, layout))
        assert read_as == layout
        assert set(again) <= set(ours), layout
        assert all(again[k].shape == ours[k].shape for k in again), layout
        assert on_meta or all(torch.equal(again[k], ours[k]) for k in again), layout
        lost = set(ours) - set(again)
        assert all(re.match(r'backbone\.norm\d\.', k) for k in lost), (layout, sorted(lost))


def _check_size(cls, arch):
    """What depends on the size, on the 'meta' device."""
    with torch.device('meta'):
        model = cls(arch, out_indices=(0, 1, 2, 3), frozen_stages=1)
        x = torch.empty(1, 3, SIDE, SIDE)
    _check_round_trip_through_every_layout(cls, model)
    # frozen_stages=1: the stem, stage 0 and its output norm, in train mode too
    model.train()
    frozen = [model.stem, model.stages[0], model.norm0]
    assert all(not m.training for m in frozen) and model.stages[1].training
    frozen_params = {id(p) for m in frozen for p in m.parameters()}
    assert all(p.requires_grad == (id(p) not in frozen_params) for p in model.parameters())
    # one output per index, with that stage's channels and stride
    model.eval()
    with torch.no_grad():
        outs = model(x)
    assert [o.shape for o in outs] == [(1, dim, SIDE // 4 // 2**i, SIDE // 4 // 2**i)
                                       for i, dim in enumerate(model.embed_dims)]
    assert switch_to_deploy(model) == (POOLFORMER_BLOCKS[arch] if cls in POOLING else 0)
    assert all(isinstance(b, DeployedPoolFormerBlock) == (cls in POOLING)
               for s in model.stages for b in s.blocks)


def _check_numbers(cls, arch):
    """Gradients, the inference paths and the tensors through the layouts."""
    model = trained_like(cls(arch, out_indices=(0, 1, 2, 3), frozen_stages=1))
    x = torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    _check_round_trip_through_every_layout(cls, model)

    # backward: every trainable parameter gets a finite gradient, the frozen ones none
    model.train()
    sum(o.square().mean() for o in model(x)).backward()
    frozen = [model.stem, model.stages[0], model.norm0]
    frozen_params = {id(p) for m in frozen for p in m.parameters()}
    for name, param in model.named_parameters():
        if id(param) in frozen_params:
            assert param.grad is None, name
        else:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name

    # out_indices: a negative index counts from the end; only those stages get norms
    # and later stages are not built into the output
    one = cls(arch, out_indices=(-3, )).eval()
    with torch.no_grad():
        (out, ) = one(x)
    assert out.shape == (1, one.embed_dims[1], SIDE // 8, SIDE // 8)
    assert [hasattr(one, f'norm{i}') for i in range(4)] == [False, True, False, False]

    # eval: the default path (channels_last, fused MLP kernel), the folded model and
    # the folded model in NCHW give the plain NCHW outputs
    model.eval()
    with torch.no_grad():
        model.channels_last_eval = False
        reference = model(x)
        model.channels_last_eval = True
        default = model(x)
        switch_to_deploy(model)
        deployed = model(x)
        model.channels_last_eval = False
        deployed_nchw = model(x)
    assert all(o.is_contiguous() for o in default + deployed)  # NCHW for the heads
    assert _rel_diff(default, reference) <= 1e-4
    assert _rel_diff(deployed, reference) <= 1e-4
    assert _rel_diff(deployed_nchw, reference) <= 1e-4


@pytest.mark.parametrize('cls,arch', MEMBERS, ids=[f'{c.__name__}-{a}' for c, a in MEMBERS])
def test_member_contract(cls, arch):
    _check_size(cls, arch)
    if arch in SMALLEST:
        _check_numbers(cls, arch)


def test_every_size_of_every_family_is_in_the_contract():
    """A size added to a family's arch_settings gets the contract test too."""
    families = {cls for cls, _ in MEMBERS}
    assert {(cls, arch) for cls in families for arch in cls.arch_settings} == set(MEMBERS)

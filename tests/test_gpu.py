"""The backbone's GPU code paths: channels_last, the deployed (folded) model, that the
fused oneDNN ops stay off CUDA, and mixed precision (fp16 / bf16) forward and backward
against fp32. Tests marked ``gpu`` skip without CUDA (tools/gpu_check.sh runs them);
the first tests check on the CPU what makes those paths device- and dtype-safe.

Tolerances of the ``gpu`` tests have not been measured: no GPU was lent while they
were written. They follow from the formats (fp16: 11-bit mantissa, ~5e-4 relative per
rounding; bf16: 8 bits, ~4e-3) and leave room for the accumulation over S12's depth;
TF32 is switched off so that fp32 is the reference.
"""
import contextlib
import copy

import pytest
import torch

from helpers import trained_like
from mmpoolformer.models import PoolFormer, PoolFormerV2
from mmpoolformer.models.backbones.deploy import switch_to_deploy
from mmpoolformer.models.layers import mlp as mlp_layer

CUDA = torch.cuda.is_available()
CL = torch.channels_last


def gpu(test):
    return pytest.mark.gpu(pytest.mark.skipif(not CUDA, reason='needs a CUDA device')(test))




def rel_diff(outs, refs):
    return max(((o.float() - r.float()).abs().max() / r.float().abs().max()).item()
               for o, r in zip(outs, refs, strict=True))


def image(batch=2, size=64, seed=1, device='cpu'):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)
                       ).to(device)


# --------------------------------------------------------------------------- #
# On the CPU: what a CUDA or mixed-precision model relies on
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('family', [PoolFormer, PoolFormerV2])
def test_folding_stays_on_the_models_device_and_dtype(family):
    """switch_to_deploy builds its terms from the model's own tensors: on 'meta' (no
    data, any device) and in float64 nothing is created on the CPU in float32.
    (PoolFormerV2, without layer scale and biases, failed both before.)"""
    model = family('s12').eval().to('meta')
    switch_to_deploy(model)
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {'meta'}
    model = family('s12').eval().to(torch.float64)
    switch_to_deploy(model)
    assert {t.dtype for t in [*model.parameters(), *model.buffers()]} == {torch.float64}


@pytest.mark.parametrize('family', [PoolFormer, PoolFormerV2])
def test_deployed_model_runs_under_autocast(family):
    """Under autocast the activations are bf16 and the folded scales fp32: the
    deployed block casts them (lerp refuses mixed dtypes)."""
    model = trained_like(family('s12')).eval()
    x = image()
    with torch.no_grad():
        reference = model(x)
        switch_to_deploy(model)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert out[0].dtype == torch.bfloat16
    # bf16 through 12 blocks; measured 1.3e-2 (PoolFormer) and 4.9e-2 (PoolFormerV2)
    assert rel_diff(out, reference) <= 1e-1


# --------------------------------------------------------------------------- #
# On CUDA
# --------------------------------------------------------------------------- #
@pytest.fixture
def fp32_reference(monkeypatch):
    """fp32 without TF32, so that fp32 is exact enough to be the reference."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)


@pytest.fixture
def no_onednn_on_cuda(monkeypatch):
    """oneDNN's fused convolutions are CPU ops: any call with a CUDA tensor fails."""
    class Refuse:
        def __call__(self, x, *args):
            raise AssertionError(f'oneDNN fused op called with a {x.device} tensor')
        binary = __call__
    monkeypatch.setattr(mlp_layer, '_ONEDNN', Refuse())


@gpu
@pytest.mark.parametrize('family', [PoolFormer, PoolFormerV2])
def test_cuda_matches_cpu_in_both_layouts(family, fp32_reference, no_onednn_on_cuda):
    cpu = trained_like(family('s12', out_indices=(0, 1, 2, 3))).eval()
    cpu.channels_last_eval = False  # the plain CPU path as reference
    x = image()
    with torch.no_grad():
        reference = cpu(x)
        model = copy.deepcopy(cpu).cuda()
        nchw = model(x.cuda())
        model = model.to(memory_format=CL)
        channels_last = model(x.cuda().contiguous(memory_format=CL))
    assert all(o.is_cuda and o.is_contiguous() for o in nchw + channels_last)
    assert rel_diff([o.cpu() for o in nchw], reference) <= 1e-4
    assert rel_diff([o.cpu() for o in channels_last], reference) <= 1e-4


@gpu
@pytest.mark.parametrize('family', [PoolFormer, PoolFormerV2])
def test_deploy_on_cuda(family, fp32_reference, no_onednn_on_cuda):
    model = trained_like(family('s12', out_indices=(0, 3))).eval().cuda()
    x = image(device='cuda')
    with torch.no_grad():
        reference = model(x)
        assert switch_to_deploy(model) == 12
        deployed = model(x)
        block_dtypes = []
        model.stages[1].blocks[0].register_forward_hook(
            lambda m, i, o: block_dtypes.append(o.dtype))
        with torch.autocast('cuda', dtype=torch.float16):
            deployed_fp16 = model(x)  # the output norm runs in fp32 under autocast
    assert all(t.is_cuda for t in [*model.parameters(), *model.buffers()])
    assert rel_diff(deployed, reference) <= 1e-4
    assert block_dtypes == [torch.float16]
    assert rel_diff(deployed_fp16, reference) <= 1e-2


def _loss_and_grads(model, x, dtype=None, scale=1.0):
    model.zero_grad()
    with torch.autocast('cuda', dtype=dtype) if dtype else contextlib.nullcontext():
        out = model(x)
    loss = sum(o.float().square().mean() for o in out)
    (loss * scale).backward()  # scaled as GradScaler would, so fp16 grads do not underflow
    grads = torch.cat([p.grad.flatten() / scale for p in model.parameters()])
    return [o.detach() for o in out], grads


@gpu
@pytest.mark.parametrize('dtype, out_tol, grad_tol', [
    (torch.float16, 1e-2, 2e-2),
    (torch.bfloat16, 5e-2, 1e-1),
])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, CL])
def test_amp_forward_and_backward_match_fp32(dtype, out_tol, grad_tol, memory_format,
                                             fp32_reference, no_onednn_on_cuda):
    model = trained_like(PoolFormer('s12', out_indices=(0, 1, 2, 3))).cuda()
    model = model.train().to(memory_format=memory_format)
    x = image(device='cuda').contiguous(memory_format=memory_format)
    out32, grads32 = _loss_and_grads(model, x)
    out, grads = _loss_and_grads(model, x, dtype, scale=1024.0)
    assert {o.dtype for o in out} <= {dtype, torch.float32}  # group norm runs in fp32
    assert rel_diff(out, out32) <= out_tol
    assert torch.isfinite(grads).all()
    assert ((grads - grads32).norm() / grads32.norm()).item() <= grad_tol


@gpu
def test_amp_with_gradient_checkpointing(fp32_reference, checkpoint_calls):
    """with_cp recomputes each block in the backward pass under the same autocast."""
    model = trained_like(PoolFormer('s12', out_indices=(3, ))).cuda().train()
    x = image(device='cuda')
    _, plain = _loss_and_grads(model, x, torch.float16, scale=1024.0)
    for stage in model.stages:
        stage.with_cp = True
    _, checkpointed = _loss_and_grads(model, x, torch.float16, scale=1024.0)
    assert checkpoint_calls
    assert ((checkpointed - plain).norm() / plain.norm()).item() <= 1e-3

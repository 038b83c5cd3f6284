"""torch.compile of the backbone: it compiles whole, and compiled equals eager."""
import pytest
import torch


def _backbone(family='PoolFormer', **kwargs):
    import mmpoolformer.models.backbones.metaformer as metaformer
    torch.manual_seed(0)
    return getattr(metaformer, family)(out_indices=(0, 1, 2, 3), **kwargs)


@pytest.mark.parametrize('family', ['PoolFormer', 'PoolFormerV2'])
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_backbone_compiles_without_a_graph_break(family, mode):
    """One graph in training (channels_last on the CPU, drop path, layer scale) and
    in inference (the fused oneDNN MLPs): dynamo traces the whole forward."""
    backbone = _backbone(family, drop_path_rate=0.1).train(mode == 'train')
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(backbone)(torch.randn(2, 3, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_compiled_backbone_equals_eager_in_outputs_and_gradients():
    """Inductor's kernels give the eager outputs, and in training the eager gradients
    (no drop path, so both draw nothing). A small arch keeps the C++ compile short."""
    arch = dict(layers=[1, 1, 1, 1], embed_dims=[16, 32, 48, 64], mlp_ratios=2)
    eager = _backbone(arch=arch)
    compiled = _backbone(arch=arch)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()  # in place: state dict keys stay those of the module
    assert list(compiled.state_dict()) == list(eager.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for mode in ('train', 'eval'):
        for model in (eager, compiled):
            model.train(mode == 'train').zero_grad()
        outs = [eager(x), compiled(x)]
        for want, got in zip(*outs):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        if mode == 'train':
            for out in outs:
                sum((o * o).mean() for o in out).backward()
            for (name, want), got in zip(eager.named_parameters(), compiled.parameters()):
                torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-6,
                                           msg=name)

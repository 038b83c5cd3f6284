"""tools/model_converters/convert.py: every layout round-trips with numerical parity."""
import pytest
import timm
import torch

from helpers import (
    build_from_config,
    mmpretrain_classifier,
    official_from_mmpretrain,
    randomize_,
    run_tool,
)
from mmpoolformer.checkpoint import (
    V1_LAYOUTS,
    convert_from_mmpoolformer,
    convert_to_mmpoolformer,
    detect_layout,
    get_state_dict,
    load_file,
    load_model_weights,
)


def _sources():
    mm = randomize_(mmpretrain_classifier('s12'), seed=5).state_dict()
    return {
        'mmpretrain': mm,
        'official': official_from_mmpretrain(mm),
        'timm': randomize_(timm.create_model('poolformer_s12'), seed=6).state_dict(),
    }


def _logits(path):
    model = build_from_config('configs/classification/poolformer_s12_in1k.py')
    load_model_weights(model, path)
    with torch.no_grad():
        return model(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
                     mode='tensor')


@pytest.mark.parametrize('source', ['official', 'mmpretrain', 'timm'])
def test_round_trip_through_every_layout(source):
    original = _sources()[source]
    ours, layout = convert_to_mmpoolformer(original)
    assert layout == source
    for target in V1_LAYOUTS:
        written = convert_from_mmpoolformer(ours, target)
        assert detect_layout(written) == target
        again, _ = convert_to_mmpoolformer(written)
        assert again.keys() == ours.keys()
        assert all(torch.equal(again[k], ours[k]) for k in ours)
    back = convert_from_mmpoolformer(ours, source)
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)


@pytest.mark.parametrize('target', V1_LAYOUTS)
def test_cli_converts_with_parity(tmp_path, target):
    src = tmp_path / 'official.pth.tar'
    torch.save(_sources()['official'], src)
    dst = tmp_path / f'{target}.safetensors'
    proc = run_tool('tools/model_converters/convert.py', str(src), str(dst),
                    '--to', target, '--safetensors')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'(official) -> {dst} ({target}' in proc.stdout
    assert detect_layout(get_state_dict(load_file(str(dst)))) == target
    assert (_logits(str(dst)) - _logits(str(src))).abs().max() <= 1e-5


def test_detector_backbone_round_trip(tmp_path):
    """A whole Mask R-CNN checkpoint: backbone renamed, neck and heads kept."""
    model = build_from_config('configs/detection/maskrcnn_poolformer_s12.py')
    ours = model.state_dict()
    original_layout = convert_from_mmpoolformer(ours, 'mmpretrain')
    assert 'backbone.network.0.0.layer_scale_1' in original_layout
    assert 'neck.lateral_convs.0.conv.weight' in original_layout
    back, layout = convert_to_mmpoolformer(original_layout)
    assert layout == 'mmpretrain' and back.keys() == ours.keys()
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def test_unknown_source_layout_is_named(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, path)
    proc = run_tool('tools/model_converters/convert.py', str(path), str(tmp_path / 'x.pth'))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'unrecognised checkpoint layout' in proc.stderr.strip().splitlines()[-1]

"""get_flops.py, analyze_logs.py and the TensorBoard switch."""
import glob

import matplotlib.image as mpimg
import pytest

from helpers import builtin_cls_options, run_tool

CLS_CONFIG = 'configs/classification/poolformer_s12_builtin.py'


@pytest.mark.parametrize('arch, params, gmacs', [('s12', 11.92, 1.82), ('m48', 73.47, 11.59)])
def test_get_flops_reproduces_the_paper(arch, params, gmacs):
    """1.8G (s12) and 11.6G (m48) MACs at 224x224, fvcore: the PoolFormer paper
    (arXiv 2111.11418), Table 1."""
    proc = run_tool('tools/analysis/get_flops.py',
                    f'configs/classification/poolformer_{arch}_in1k.py')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'input: 3x224x224' in proc.stdout
    assert f'params: {params:.2f} M' in proc.stdout
    assert f'MACs: {gmacs:.2f} G' in proc.stdout


def test_get_flops_counts_a_whole_detector():
    proc = run_tool('tools/analysis/get_flops.py', 'configs/detection/retinanet_poolformer_s12.py',
                    '--shape', '256', '320')
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The same RetinaNet with mmpretrain 1.2.0's PoolFormer backbone (out_indices 2, 4, 6),
    # fvcore's FlopCountAnalysis called directly on its tensor forward at 1x3x256x320:
    # 21,653,044 parameters, 15,094,855,680 MACs (the paper: 21.7M parameters).
    assert 'params: 21.65 M' in proc.stdout
    assert 'MACs: 15.09 G (fvcore)' in proc.stdout


@pytest.fixture(scope='module')
def short_run(tiny_cls_data, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('short_run'))
    proc = run_tool('tools/train.py', CLS_CONFIG, '--work-dir', work, '--tensorboard',
                    *builtin_cls_options(tiny_cls_data, max_epochs=2),
                    'default_hooks.logger.interval=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def test_analyze_logs_plots_loss_lr_and_metrics(short_run, tmp_path):
    out = str(tmp_path / 'curves.png')
    proc = run_tool('tools/analysis/analyze_logs.py', short_run, '--out', out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '(loss, lr, accuracy/top1)' in proc.stdout
    image = mpimg.imread(out)
    assert image.shape[0] > 300 and image[..., :3].std() > 0.05


def test_analyze_logs_names_an_unknown_key(short_run, tmp_path):
    proc = run_tool('tools/analysis/analyze_logs.py', short_run, '--keys', 'los',
                    '--out', str(tmp_path / 'x.png'))
    assert proc.returncode != 0 and "no scalar ['los']" in proc.stderr


def test_tensorboard_switch_writes_events(short_run):
    assert glob.glob(f'{short_run}/*/vis_data/events.out.tfevents.*')

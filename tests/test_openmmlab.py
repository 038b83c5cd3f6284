"""The package as an OpenMMLab citizen: the model index and metafiles, the wheel
(configs, model index and tools as package data), `mmpoolformer::` base configs,
openmim's search / train / test, and the supported toolbox versions."""
import glob
import json
import os
import subprocess
import sys
import zipfile

import pytest
import yaml

from helpers import ROOT, builtin_cls_options

TASK_DIRS = ('classification', 'detection', 'segmentation')


def _configs():
    return {os.path.relpath(path, ROOT) for task in TASK_DIRS
            for path in glob.glob(os.path.join(ROOT, 'configs', task, '*.py'))}


def _index_entries():
    index = yaml.safe_load(open(os.path.join(ROOT, 'model-index.yml')))
    entries = []
    for metafile in index['Import']:
        meta = yaml.safe_load(open(os.path.join(ROOT, metafile)))
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            entries.append(model)
    return entries


def test_every_config_has_an_entry_and_every_entry_a_config():
    entries = _index_entries()
    names = [e['Name'] for e in entries]
    assert len(names) == len(set(names)), 'duplicate model names'
    assert {e['Config'] for e in entries} == _configs()
    for entry in entries:
        assert entry['Name'] == os.path.splitext(os.path.basename(entry['Config']))[0]


def test_entries_have_task_dataset_size_and_metric():
    for entry in _index_entries():
        meta = entry['Metadata']
        assert isinstance(meta['Parameters'], int) and meta['Parameters'] > 1e6, entry['Name']
        assert isinstance(meta['FLOPs'], int) and meta['FLOPs'] > 1e9, entry['Name']
        for result in entry.get('Results', []):
            assert result['Task'] and result['Dataset'] == meta['Training Data']
            assert all(isinstance(v, float) for v in result['Metrics'].values()), entry['Name']
        if 'Weights' in entry:
            assert entry['Weights'].startswith('https://'), entry['Name']
    by_name = {e['Name']: e for e in _index_entries()}
    # The paper's figures and the public weights where they exist.
    assert by_name['poolformer_s12_in1k']['Results'][0]['Metrics'] == {'Top 1 Accuracy': 77.2}
    assert [(r['Task'], r['Metrics']) for r in by_name['maskrcnn_poolformer_s12']['Results']] == [
        ('Object Detection', {'box AP': 37.3}), ('Instance Segmentation', {'mask AP': 34.6})]
    assert by_name['fpn_poolformer_m48_ade20k']['Weights'].startswith(
        'https://download.openmmlab.com/mmsegmentation/v0.5/poolformer/fpn_poolformer_m48')
    assert by_name['caformer_s18_in1k']['Weights'] == \
        'https://huggingface.co/sail/dl/resolve/main/caformer/caformer_s18.pth'


# fvcore 0.1.5's FlopCountAnalysis run directly on mmpretrain 1.2.0's PoolFormer
# classifier (ImageClassifier in tensor mode, 1x3x224x224), and that model's parameters;
# the PoolFormer paper (arXiv 2111.11418, Table 1) prints 1.8, 3.4, 5.0, 8.8, 11.6G MACs
# and 12, 21, 31, 56, 73M parameters.
INDEPENDENT_SIZES = {
    'poolformer_s12_in1k': (11_915_176, 1_822_703_616),
    'poolformer_s24_in1k': (21_388_968, 3_412_931_584),
    'poolformer_s36_in1k': (30_862_760, 5_003_159_552),
    'poolformer_m36_in1k': (56_172_520, 8_801_914_368),
    'poolformer_m48_in1k': (73_473_448, 11_590_746_624),
    # mmsegmentation 1.2.2's Semantic FPN with mmpretrain 1.2.0's PoolFormer backbone
    # (out_indices 0, 2, 4, 6), fvcore's FlopCountAnalysis on its tensor forward,
    # 1x3x512x512 (the paper gives 15.7M and 23.2M parameters, see test_configs.py).
    'fpn_poolformer_s12_ade20k': (15_669_846, 31_043_354_624),
    'fpn_poolformer_s24_ade20k': (25_143_638, 39_351_484_416),
}


def test_entry_sizes_are_the_independently_counted_ones():
    """The metafile's figures (written by tools/analysis/make_metafiles.py) are the
    ones another implementation of the model gives under the paper's counter."""
    by_name = {e['Name']: e for e in _index_entries()}
    for name, (params, macs) in INDEPENDENT_SIZES.items():
        meta = by_name[name]['Metadata']
        assert (meta['Parameters'], meta['FLOPs']) == (params, macs), name


# --- the package as built into a wheel -------------------------------------------------

@pytest.fixture(scope='module')
def installed_wheel(tmp_path_factory):
    """The package built as a wheel and installed (without dependencies) into a
    folder of its own; returns (wheel, that folder). Commands that put the folder
    first on PYTHONPATH see that install, as a user of the wheel would."""
    tmp = tmp_path_factory.mktemp('wheel')
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    build = subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', ROOT,
                            '-w', str(tmp / 'dist')], capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = glob.glob(str(tmp / 'dist' / 'mmpoolformer-*.whl'))[0]
    site = str(tmp / 'site')
    install = subprocess.run([*pip, 'install', '--no-deps', '--target', site, wheel],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    return wheel, site


def _run(site, *args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=site)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_wheel_ships_configs_model_index_tools_and_license(installed_wheel):
    names = set(zipfile.ZipFile(installed_wheel[0]).namelist())
    for config in _configs():
        assert f'mmpoolformer/.mim/{config}' in names, config
    for path in ('mmpoolformer/.mim/model-index.yml', 'mmpoolformer/.mim/tools/train.py',
                 'mmpoolformer/.mim/tools/test.py',
                 'mmpoolformer/.mim/configs/detection/_base_/builtin_coco.py',
                 'mmpoolformer/.mim/configs/_base_/default_runtime.py',
                 'mmpoolformer/.mim/configs/_base_/pretrained.py',
                 'mmpoolformer/.mim/configs/detection/metafile.yml'):
        assert path in names, path
    assert any(n.endswith('licenses/LICENSE') for n in names)
    assert not any('__pycache__' in n for n in names)


def test_wheel_version_is_the_package_version(installed_wheel):
    """pyproject.toml reads the version from mmpoolformer.__version__, its one place."""
    import mmpoolformer
    with zipfile.ZipFile(installed_wheel[0]) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith('.dist-info/METADATA'))
        lines = wheel.read(metadata).decode().splitlines()
    assert f'Version: {mmpoolformer.__version__}' in lines


def test_base_config_through_package_prefix(installed_wheel, tmp_path):
    """Another project's config inherits ours as `mmpoolformer::...`, read by
    mmengine's own Config.fromfile and built."""
    (tmp_path / 'my_maskrcnn.py').write_text(
        "_base_ = 'mmpoolformer::detection/maskrcnn_poolformer_s12.py'\n"
        "model = dict(backbone=dict(arch='s24', init_cfg=None))\n")
    script = (
        'from mmengine.config import Config\n'
        'from mmpoolformer.utils.openmmlab import register_config_package\n'
        'register_config_package()\n'
        "cfg = Config.fromfile('my_maskrcnn.py')\n"
        'import mmpoolformer\n'
        'from mmpoolformer.apis import build_model\n'
        'model = build_model(cfg)\n'
        "print('RESULT', mmpoolformer.__file__, cfg.default_scope, cfg.model.type,"
        ' type(model.backbone).__name__, sum(p.numel() for p in model.backbone.parameters()))\n')
    proc = _run(installed_wheel[1], '-c', script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = proc.stdout.split('RESULT ')[1].split()
    assert result[0].startswith(installed_wheel[1])  # the installed copy, not the checkout
    # mmdet's Mask R-CNN with our backbone, its S24 override applied (the S24 backbone
    # has 21.4M parameters with its output norms, S12 11.9M).
    assert result[1:4] == ['mmdet', 'MaskRCNN', 'PoolFormer']
    assert 20e6 < int(result[4]) < 22e6


def test_mim_search_lists_every_model(installed_wheel, tmp_path):
    out = tmp_path / 'search.json'
    proc = _run(installed_wheel[1], '-m', 'mim', 'search', 'mmpoolformer', '--json', str(out),
                cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    listed = json.loads(out.read_text())  # {field: {model: value}}
    assert set(listed['config']) == {os.path.splitext(os.path.basename(c))[0] for c in _configs()}
    assert listed['ade20k/miou']['fpn_poolformer_s12_ade20k'] == 37.2
    assert listed['parameters']['poolformer_s12_in1k'] == 11915176


@pytest.mark.slow
def test_mim_train_and_test(installed_wheel, tiny_cls_data, tmp_path):
    """`mim train mmpoolformer CONFIG` and `mim test` find the config and the tools in
    the installed package (.mim/configs, .mim/tools) and run them: one epoch on 8
    images, then the test of its checkpoint."""
    work = str(tmp_path / 'work')
    options = builtin_cls_options(tiny_cls_data)
    train = _run(installed_wheel[1], '-m', 'mim', 'train', 'mmpoolformer',
                 'poolformer_s12_builtin.py', '--work-dir', work, *options, cwd=tmp_path)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert '.mim/tools/train.py' in train.stdout
    test = _run(installed_wheel[1], '-m', 'mim', 'test', 'mmpoolformer',
                'poolformer_s12_builtin.py', '--checkpoint', os.path.join(work, 'epoch_1.pth'),
                '--work-dir', work, *options, cwd=tmp_path)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'accuracy/top1' in test.stdout + test.stderr


# --- supported versions ------------------------------------------------------------------

@pytest.mark.parametrize('package, version', [('mmcv', '2.2.0'), ('mmdet', '2.28.2'),
                                              ('mmsegmentation', '1.2.2.dev0')])
def test_unsupported_toolbox_version_is_one_line(monkeypatch, package, version):
    from mmpoolformer.utils import openmmlab
    real = openmmlab.metadata.version
    monkeypatch.setattr(openmmlab.metadata, 'version',
                        lambda name: version if name == package else real(name))
    if package == 'mmsegmentation':  # a pre-release inside the range is accepted
        openmmlab.check_toolbox_versions()
        return
    with pytest.raises(openmmlab.UnsupportedVersionError) as err:
        openmmlab.check_toolbox_versions()
    message = str(err.value)
    assert '\n' not in message
    assert f'{package} {version}' in message and openmmlab.SUPPORTED[package] in message


def test_installed_versions_are_supported():
    from mmpoolformer.utils.openmmlab import check_toolbox_versions
    check_toolbox_versions()


def test_import_check_uses_pyproject_ranges():
    """The ranges checked on import are the ones pyproject.toml declares."""
    import tomllib

    from packaging.requirements import Requirement

    from mmpoolformer.utils.openmmlab import SUPPORTED
    project = tomllib.load(open(os.path.join(ROOT, 'pyproject.toml'), 'rb'))['project']
    declared = {r.name: r.specifier for r in map(Requirement, project['dependencies'])}
    for package, supported in SUPPORTED.items():
        assert declared[package] == type(declared[package])(supported), package
    assert {'timm', 'grad-cam', 'gradio', 'fvcore', 'onnx', 'onnxruntime'} <= {
        Requirement(r).name for r in project['optional-dependencies']['tools']}

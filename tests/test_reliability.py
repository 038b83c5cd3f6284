"""Faults a user can meet, each with what they see (docs/reliability.md):
crafted checkpoints, bad images and annotation files, empty data sets, odd image
sizes, config typos, and bad uploads to the demo and the inference API."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from helpers import (ROOT, build_from_config, builtin_cls_options, builtin_coco_options,
                     dense_batch, import_tool, run_tool, succeeded)
from mmpoolformer.checkpoint import load_file, trust_checkpoint
from mmpoolformer.utils.errors import CheckpointError, UsageError

CLS = 'configs/classification/poolformer_s12_builtin.py'
MASKRCNN = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
SEG = 'configs/segmentation/fpn_poolformer_s12_builtin.py'


def _one_line_error(proc, pattern):
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and re.search(pattern, last), last
    return last


# --------------------------------------------------------------------------- #
# Checkpoints that would run code
# --------------------------------------------------------------------------- #
class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _getattr_chain_pickle(marker) -> bytes:
    """A raw pickle that reaches ``exec`` through nothing but ``builtins.getattr``
    (allow-listed for mmengine's logging buffers):
    getattr(getattr(getattr, '__self__'), 'exec')("open(marker, 'w')")."""
    def text(s):
        data = s.encode()
        return b'X' + len(data).to_bytes(4, 'little') + data
    getattr_ = b'cbuiltins\ngetattr\n'
    return (b'\x80\x02' + getattr_ + getattr_ + getattr_ + text('__self__') + b'\x86R'
            + text('exec') + b'\x86R' + text(f'open({str(marker)!r}, "w")') + b'\x85R.')


@pytest.mark.parametrize('kind', ['os.system', 'getattr-chain'])
def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    if kind == 'os.system':
        torch.save({'state_dict': _RunsCommand(marker)}, path)
    else:
        path.write_bytes(_getattr_chain_pickle(marker))
    with pytest.raises(CheckpointError, match=r'refused to load .*--trust-checkpoint'):
        load_file(str(path))
    # mmengine's own loading (load_from, --resume, init_cfg) takes the same road
    # where tools/train.py and tools/test.py run the Runner.
    from mmengine.runner import CheckpointLoader

    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    with mmengine_loads_through_load_file(), pytest.raises(CheckpointError, match='refused'):
        CheckpointLoader.load_checkpoint(str(path))
    assert not marker.exists()


# What the import-hygiene test compares: torch's allow-list, mmengine's checkpoint
# loaders (CheckpointLoader._schemes is private: mmengine has no public reader;
# a test may look) and its file backends, as names of what they point to.
_GLOBAL_STATE = """
def global_state():
    import torch
    from mmengine.fileio.backends import backends, prefix_to_backends
    from mmengine.runner import CheckpointLoader
    name = lambda obj: f'{obj.__module__}.{obj.__qualname__}'
    return dict(safe_globals=sorted(map(str, torch.serialization.get_safe_globals())),
                loaders={p: name(f) for p, f in CheckpointLoader._schemes.items()},
                backends={k: name(v) for k, v in backends.items()},
                prefixes={k: name(v) for k, v in prefix_to_backends.items()})
"""


def test_importing_the_package_changes_nothing_global(tmp_path):
    """torch's weights_only allow-list, mmengine's checkpoint loaders and file
    backends are the same before and after `import mmpoolformer`, after building
    a model of each toolbox from our configs, after loading a checkpoint with
    mmengine's resume types, and after the tools' scoped loading ends."""
    path = tmp_path / 'resume.pth'
    code = _GLOBAL_STATE + f"""
import mmpretrain.models, mmdet.models, mmseg.models  # the toolboxes' own changes
before = global_state()
import mmpoolformer
assert global_state() == before, 'import mmpoolformer'
from mmpoolformer.apis import build_model
for config in {[CLS, MASKRCNN, SEG]!r}:
    build_model(config)
    assert global_state() == before, config
import torch
from mmengine.logging import HistoryBuffer
torch.save(dict(w=torch.ones(2), buffer=HistoryBuffer([1.0], [1])), {str(path)!r})
from mmpoolformer.checkpoint import load_file, mmengine_loads_through_load_file
load_file({str(path)!r})  # needs the allow-list, inside load_file only
assert global_state() == before, 'load_file'
with mmengine_loads_through_load_file():
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.load_checkpoint({str(path)!r})
    assert global_state() != before
assert global_state() == before, 'mmengine_loads_through_load_file'
try:
    torch.load({str(path)!r}, weights_only=True)  # others' loads: torch's own list
except Exception as err:
    assert 'HistoryBuffer' in str(err)
else:
    raise AssertionError('HistoryBuffer allowed outside load_file')
print('unchanged')
"""
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and 'unchanged' in proc.stdout, proc.stderr[-3000:]


def test_tools_refuse_a_crafted_checkpoint_in_one_line(tmp_path, tiny_cls_data):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    proc = run_tool('tools/model_converters/convert.py', str(path), str(tmp_path / 'out.pth'))
    _one_line_error(proc, r'refused to load .*evil\.pth.*posix\.system.*--trust-checkpoint')
    proc = run_tool('tools/test.py', CLS, str(path), '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(tiny_cls_data))
    _one_line_error(proc, r'refused to load')
    assert not marker.exists()


def test_tools_load_a_checkpoint_the_user_trusts(tmp_path):
    """--trust-checkpoint PATH lets a tool unpickle a file with other types
    (here a datetime in its meta) that it refuses without the flag."""
    import datetime
    path = tmp_path / 'with_meta.pth'
    torch.save({'state_dict': build_from_config(CLS).state_dict(),
                'meta': {'saved': datetime.date(2022, 1, 1)}}, path)
    out = str(tmp_path / 'out.pth')
    proc = run_tool('tools/model_converters/convert.py', str(path), out)
    _one_line_error(proc, r'refused to load .*with_meta\.pth.*datetime\.date')
    succeeded(run_tool('tools/model_converters/convert.py', str(path), out,
                       '--trust-checkpoint', str(path)))
    assert os.path.isfile(out)


def test_trusting_a_file_is_explicit_and_per_file(tmp_path):
    marker = tmp_path / 'ran'
    path, other = tmp_path / 'trusted.pth', tmp_path / 'other.pth'
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    shutil.copy(path, other)
    trust_checkpoint(str(path))
    load_file(str(path))  # the user vouched for it: it runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError):
        load_file(str(other))
    assert not marker.exists()


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save({'w': torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r'cannot load checkpoint .*cut\.pth'):
        load_file(str(path))


def test_last_checkpoint_is_never_written_in_place(tmp_path, monkeypatch):
    """mmengine's CheckpointHook writes last_checkpoint with a plain open();
    under AtomicCheckpointHook that open() goes to a staging folder and the file
    is renamed into place, so a crash cannot leave it half written."""
    import builtins

    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, mode='loss'):
            return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())

    work = tmp_path / 'work'
    pointer = os.path.abspath(work / 'last_checkpoint')
    writes, real_open = [], builtins.open

    def recording_open(file, mode='r', *args, **kwargs):
        if os.path.abspath(str(file)) == pointer and mode != 'r':
            writes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', recording_open)
    runner = Runner(
        model=Toy(), work_dir=str(work),
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='mmpoolformer.AtomicCheckpointHook',
                                           backend_args=dict(backend='atomic_local'))))
    runner.train()
    assert writes == [], 'last_checkpoint was opened for writing in place'
    assert open(pointer).read() == str(work / 'epoch_2.pth')
    assert os.listdir(work / '.last_checkpoint.staging') == []


def test_iteration_resume_skips_trained_batches_without_loading_them():
    """ExactResumeHook on a resume at iteration 3: mmengine's skip loop gets 3
    placeholders, no sample is loaded for them, and the next batch is the 4th
    batch of the sampler's stream, as in an uninterrupted run."""
    from types import SimpleNamespace

    from mmengine.dataset import InfiniteSampler
    from torch.utils.data import DataLoader

    from mmpoolformer.engine import ExactResumeHook

    class Counting(torch.utils.data.Dataset):
        loaded = []

        def __len__(self):
            return 10

        def __getitem__(self, index):
            self.loaded.append(index)
            return index

    dataset = Counting()
    stream = iter(InfiniteSampler(dataset, shuffle=True, seed=5))
    uninterrupted = [[next(stream) for _ in range(2)] for _ in range(5)]
    loader = DataLoader(dataset, batch_size=2, collate_fn=list,
                        sampler=InfiniteSampler(dataset, shuffle=True, seed=5))
    loop = SimpleNamespace(dataloader=loader, dataloader_iterator=None)
    ExactResumeHook._skip_trained_batches(SimpleNamespace(train_loop=loop, iter=3))
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
    assert dataset.loaded == []
    assert [next(loop.dataloader_iterator) for _ in range(2)] == uninterrupted[3:]


# --------------------------------------------------------------------------- #
# A loss that turns NaN
# --------------------------------------------------------------------------- #
_NAN_FROM_EPOCH_3 = """
import runpy, sys
from mmengine.logging import MessageHub
from mmpretrain.models.losses import LabelSmoothLoss
forward = LabelSmoothLoss.forward
def nan_from_epoch_3(self, *args, **kwargs):
    loss = forward(self, *args, **kwargs)
    epoch = MessageHub.get_current_instance().get_info('epoch')
    return loss * float('nan') if epoch >= 2 else loss
LabelSmoothLoss.forward = nan_from_epoch_3
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
"""


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_cls_data, tmp_path):
    """The classifier's loss turns NaN in epoch 3 (the loss patched in the
    tools/train.py process): the run stops with one line naming the iteration and
    the loss terms and saying how to resume; epoch 2's checkpoint is kept and is
    finite, and nothing after it was saved."""
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, '-c', _NAN_FROM_EPOCH_3, CLS, '--work-dir', str(work),
         *builtin_cls_options(tiny_cls_data, max_epochs=3), 'train_cfg.val_interval=3'],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT))
    last = _one_line_error(proc, r'non-finite loss at iteration 3 \(epoch 3\): loss=nan;')
    assert re.search(rf'last good checkpoint is .*epoch_2\.pth.*tools/train\.py {CLS} '
                     rf'--work-dir {re.escape(str(work))} --resume', last), last
    saved = sorted(os.path.basename(p) for p in glob.glob(str(work / '*.pth')))
    assert saved == ['epoch_1.pth', 'epoch_2.pth'], saved
    state = torch.load(work / 'epoch_2.pth', weights_only=False)['state_dict']
    assert all(torch.isfinite(value).all() for value in state.values())
    assert open(work / 'last_checkpoint').read().endswith('epoch_2.pth')


# --------------------------------------------------------------------------- #
# Bad images in a data set
# --------------------------------------------------------------------------- #
def _copy_cls_data(tiny_cls_data, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(tiny_cls_data, root)
    return root, sorted(glob.glob(str(root / 'train' / '*' / '*.png')))


@pytest.mark.parametrize('fault', ['truncated', 'corrupt'])
def test_bad_training_image_is_named(tiny_cls_data, tmp_path, fault):
    root, images = _copy_cls_data(tiny_cls_data, tmp_path)
    data = open(images[0], 'rb').read()
    open(images[0], 'wb').write(data[:len(data) // 2] if fault == 'truncated'
                                else b'not an image at all' * 10)
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(str(root)))
    name = re.escape(os.path.basename(images[0]))
    _one_line_error(proc, rf'bad image .*{name}: .*(truncated|cannot be decoded).*on_error')


def test_bad_training_image_can_be_skipped_with_a_warning(tiny_cls_data, tmp_path):
    root, images = _copy_cls_data(tiny_cls_data, tmp_path)
    open(images[0], 'wb').write(open(images[0], 'rb').read()[:100])
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(str(root)),
                    'train_dataloader.dataset.pipeline.0.on_error=skip')
    out = succeeded(proc)
    assert re.search(rf'skipped bad image .*{re.escape(os.path.basename(images[0]))}', out)
    assert os.path.isfile(tmp_path / 'work' / 'epoch_1.pth')


def _untrained_checkpoint(tmp_path):
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': build_from_config(CLS).state_dict()}, path)
    return path


@pytest.mark.parametrize('fault', ['truncated', 'not-an-image'])
def test_bad_test_image_is_named_by_tools_test(tiny_cls_data, tmp_path, fault):
    root = tmp_path / 'data'
    shutil.copytree(tiny_cls_data, root)
    bad = sorted(glob.glob(str(root / 'val' / '*' / '*.png')))[0]
    data = open(bad, 'rb').read()
    open(bad, 'wb').write(data[:len(data) // 2] if fault == 'truncated' else b'text' * 50)
    proc = run_tool('tools/test.py', CLS, _untrained_checkpoint(tmp_path),
                    '--work-dir', str(tmp_path / 'work'), *builtin_cls_options(str(root)))
    name = re.escape(os.path.basename(bad))
    _one_line_error(proc, rf'bad image .*{name}: .*(truncated|cannot be decoded).*on_error')


def test_bad_test_image_can_be_skipped_and_counted(tiny_cls_data, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(tiny_cls_data, root)
    images = sorted(glob.glob(str(root / 'val' / '*' / '*.png')))
    open(images[0], 'wb').write(b'not an image' * 20)
    proc = run_tool('tools/test.py', CLS, _untrained_checkpoint(tmp_path),
                    '--work-dir', str(tmp_path / 'work'), *builtin_cls_options(str(root)),
                    'test_dataloader.dataset.pipeline.0.on_error=skip')
    out = succeeded(proc)
    assert re.search(rf'skipped bad image .*{re.escape(os.path.basename(images[0]))}', out)
    assert f'skipped 1 of {len(images)} images of the test set' in out
    assert re.search(r'accuracy/top1: [\d.]+', out)


@pytest.mark.parametrize('mode', ['gray', 'rgba', '16bit'])
def test_grayscale_rgba_and_16bit_images_load_as_8bit_bgr(tmp_path, mode):
    from mmpoolformer.datasets.transforms import LoadImageChecked
    rgb = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    image = {'gray': rgb[..., 0], 'rgba': np.dstack([rgb, np.full((37, 53), 128, np.uint8)]),
             '16bit': rgb.astype(np.uint16) * 257}[mode]
    path = str(tmp_path / f'{mode}.png')
    cv2.imwrite(path, image)
    img = LoadImageChecked().transform(dict(img_path=path))['img']
    assert img.shape == (37, 53, 3) and img.dtype == np.uint8
    expected = {'gray': np.repeat(rgb[..., :1], 3, 2), 'rgba': rgb, '16bit': rgb}[mode]
    assert np.array_equal(img, expected)
    model = build_from_config(CLS)
    with torch.no_grad():
        logits = model(torch.from_numpy(img).permute(2, 0, 1)[None].float(), mode='tensor')
    assert logits.shape == (1, 4) and torch.isfinite(logits).all()


# --------------------------------------------------------------------------- #
# Annotation files and empty data sets
# --------------------------------------------------------------------------- #
def test_truncated_coco_json_is_named(builtin_coco, tmp_path):
    root = tmp_path / 'coco'
    shutil.copytree(builtin_coco, root)
    ann = root / 'annotations' / 'instances_train2017.json'
    ann.write_text(ann.read_text()[:500])
    proc = run_tool('tools/train.py', MASKRCNN, '--work-dir', str(tmp_path / 'work'),
                    *builtin_coco_options(str(root), 'unused', num_workers=0),
                    'model.backbone.init_cfg=None')
    _one_line_error(proc, r'instances_train2017\.json: not valid JSON')


def test_empty_coco_set_is_named(builtin_coco, tmp_path):
    root = tmp_path / 'coco'
    shutil.copytree(builtin_coco, root)
    ann = root / 'annotations' / 'instances_train2017.json'
    content = json.loads(ann.read_text())
    content.update(images=[], annotations=[])
    ann.write_text(json.dumps(content))
    proc = run_tool('tools/train.py', MASKRCNN, '--work-dir', str(tmp_path / 'work'),
                    *builtin_coco_options(str(root), 'unused', num_workers=0),
                    'model.backbone.init_cfg=None')
    _one_line_error(proc, r'instances_train2017\.json: the data set is empty')


def test_empty_image_folder_is_named(tmp_path):
    for split in ('train', 'val'):
        os.makedirs(tmp_path / 'data' / split)
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
                    *builtin_cls_options(str(tmp_path / 'data')))
    _one_line_error(proc, r'empty data set: .*data/train')


def test_empty_segmentation_set_is_named(builtin_ade20k, tmp_path):
    root = tmp_path / 'ade'
    shutil.copytree(builtin_ade20k, root)
    for path in glob.glob(str(root / '**' / 'training' / '*'), recursive=True):
        os.remove(path)
    from helpers import builtin_seg_options
    proc = run_tool('tools/train.py', 'configs/segmentation/fpn_poolformer_s12_builtin.py',
                    '--work-dir', str(tmp_path / 'work'),
                    *builtin_seg_options(str(root), 'unused', num_workers=0),
                    'model.backbone.init_cfg=None')
    _one_line_error(proc, r'segmentation data set is empty')


# --------------------------------------------------------------------------- #
# Sizes that are not multiples of 32
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('config', [MASKRCNN, 'configs/segmentation/fpn_poolformer_s12_builtin.py'])
def test_dense_models_predict_on_odd_sizes(config):
    model = build_from_config(config, **{'model.backbone.init_cfg': None})
    h, w = 157, 203
    data = dense_batch(model, [(h, w)])
    with torch.no_grad():
        result = model(**data, mode='predict')[0]
    if 'detection' in config:
        assert result.pred_instances.masks.shape[-2:] == (h, w)
    else:
        assert result.pred_sem_seg.data.shape[-2:] == (h, w)


# --------------------------------------------------------------------------- #
# Config mistakes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize('option, message', [
    ('model.backbone.type=mmpoolformer.PoolFormr',
     r"model\.backbone\.type: unknown model type 'mmpoolformer\.PoolFormr' "
     r"\(did you mean 'mmpoolformer\.PoolFormer'\?\)"),
    ('model.backbone.drop_path_rat=0.1',
     r"model\.backbone: PoolFormer has no argument 'drop_path_rat' "
     r"\(did you mean 'drop_path_rate'\?\)"),
    ('model.backbone.arch=s122', r"Unknown PoolFormer arch 's122' \(did you mean 's12'\?\)"),
])
def test_config_mistakes_are_named_with_a_suggestion(tmp_path, option, message):
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path), '--cfg-options', option)
    _one_line_error(proc, message)


def test_wrong_arch_checkpoint_names_key_and_shapes(tmp_path):
    from mmpoolformer.checkpoint import load_model_weights
    path = str(tmp_path / 'm36.pth')
    torch.save(build_from_config('configs/classification/poolformer_m36_in1k.py').state_dict(),
               path)
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'backbone\.stem\.conv\.weight': "
                                              r'checkpoint has \(96, 3, 7, 7\), '
                                              r'model has \(64, 3, 7, 7\)'):
        load_model_weights(build_from_config('configs/classification/poolformer_s12_in1k.py'), path)


# --------------------------------------------------------------------------- #
# The web demo and the inference API
# --------------------------------------------------------------------------- #
def test_inference_api_refuses_non_images_and_huge_images(tmp_path):
    from mmpoolformer.apis import check_image, inference
    text = tmp_path / 'notes.png'
    text.write_text('this is not an image')
    with pytest.raises(UsageError, match=r'notes\.png is not an image'):
        inference(CLS, None, str(text))
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(UsageError,
                       match=r'big\.png is 400x300 = 120000 pixels, above the limit of 100000'):
        inference(CLS, None, str(big), max_pixels=100_000)
    with pytest.raises(UsageError, match=r'not an image \(got array of shape \(5,\)\)'):
        check_image(np.zeros(5))
    proc = run_tool('tools/inference.py', CLS, 'none.pth', str(text))
    _one_line_error(proc, r'notes\.png is not an image')
    # A folder: every file the inferencer would read is checked, whatever its name.
    folder = tmp_path / 'folder'
    folder.mkdir()
    cv2.imwrite(str(folder / 'small.png'), np.zeros((20, 20, 3), np.uint8))
    shutil.copy(big, folder / 'big.jpg.bak')
    with pytest.raises(UsageError, match=r'big\.jpg\.bak is 400x300 = 120000 pixels'):
        inference(CLS, None, str(folder), max_pixels=100_000)
    (folder / 'big.jpg.bak').unlink()
    (folder / 'README').write_text('these are test images')
    with pytest.raises(UsageError, match=r'README is not an image'):
        inference(CLS, None, str(folder))


def test_web_demo_refuses_bad_uploads_and_keeps_serving(builtin_classifier):
    import gradio as gr

    app = import_tool('tools/demo/app.py')
    predict, _ = app.make_predictor(CLS, builtin_classifier[1])
    app_fn = app.guarded(predict, max_pixels=128 * 128)
    for bad, message in [(None, 'no image was uploaded'),
                         (np.zeros((4, )), 'not an image'),
                         (np.zeros((200, 200, 3), np.uint8),
                          r'200x200 = 40000 pixels, above the limit')]:
        with pytest.raises(gr.Error, match=message):
            app_fn(bad)
    top5 = app_fn(np.full((64, 64, 3), 200, np.uint8))  # the next request is served
    assert len(top5) == 4 and abs(sum(top5.values()) - 1) < 1e-3

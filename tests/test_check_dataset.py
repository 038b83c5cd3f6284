"""tools/data/check_dataset.py on tiny generated data in the real layouts, with the
real names (n01440764/, instances_val2017.json, ADE_train_00000001.jpg), and the real
ImageNet, Mask R-CNN / RetinaNet and ADE20K configs pointed at it by --cfg-options.

Each problem case runs the tool (in-process, for speed; one test runs it as a command)
and checks that it stops with `error: ...` naming the culprit."""
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, run_tool
from mmpoolformer.datasets import builtin, image_check

CLS = 'configs/classification/poolformer_s12_in1k.py'
DET = 'configs/detection/maskrcnn_poolformer_s12.py'
RETINA = 'configs/detection/retinanet_poolformer_s12.py'
SEG = 'configs/segmentation/fpn_poolformer_s12_ade20k.py'

_spec = importlib.util.spec_from_file_location(
    'check_dataset', os.path.join(ROOT, 'tools/data/check_dataset.py'))
TOOL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TOOL)


# ---- data in the real layouts ------------------------------------------------------

def drawn(rng, height=40, width=48):
    img = builtin.background(rng, height, width)
    center, radius, angle = builtin.random_shape(rng, height, width, 6, 15)
    builtin.draw_shape(img, builtin.shape_polygon('circle', center, radius, angle), rng)
    return img


WNIDS = [f'n{1440764 + i:08d}' for i in range(1000)]  # n01440764 (tench) first, as in ImageNet
VAL_LABELS = [65, 0, 998]                               # sorted-WNID indices, as in meta/val.txt


def write_imagenet(root):
    """train/<WNID>/<WNID>_<n>.JPEG (1000 class folders, one image each); val/ flat as
    extracted from ILSVRC2012_img_val.tar plus meta/val.txt (docs/dataset_prepare.md)."""
    rng = np.random.default_rng(0)
    for n, wnid in enumerate(WNIDS, 1):
        os.makedirs(f'{root}/train/{wnid}')
        cv2.imwrite(f'{root}/train/{wnid}/{wnid}_{n}.JPEG', drawn(rng))
    os.makedirs(f'{root}/val')
    os.makedirs(f'{root}/meta')
    lines = []
    for n, label in enumerate(VAL_LABELS, 1):
        name = f'ILSVRC2012_val_{n:08d}.JPEG'
        cv2.imwrite(f'{root}/val/{name}', drawn(rng))
        lines.append(f'{name} {label}\n')
    with open(f'{root}/meta/val.txt', 'w') as f:
        f.writelines(lines)


# COCO's 80 category ids (1..90 with gaps), in the order of mmdet's class names.
COCO_IDS = [*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70,
            *range(72, 83), *range(84, 91)]


def write_coco(root):
    """The built-in shapes relaid as COCO 2017: all 80 categories (the shapes become
    person, bicycle, car, motorcycle: ids 1-4), images renamed 000000000001.jpg ..."""
    from mmdet.datasets import CocoDataset
    builtin.make_coco_set(root, splits=(('train2017', 4), ('val2017', 2)), size=(48, 64),
                          max_objects=2)
    categories = [dict(id=i, name=name, supercategory='')
                  for i, name in zip(COCO_IDS, CocoDataset.METAINFO['classes'])]
    for split in ('train2017', 'val2017'):
        content = read_json(f'{root}/annotations/instances_{split}.json')
        for img in content['images']:
            old, new = f'{root}/{split}/{img["file_name"]}', f'{img["id"]:012d}.jpg'
            cv2.imwrite(f'{root}/{split}/{new}', cv2.imread(old))
            os.remove(old)
            img['file_name'] = new
        content['categories'] = categories
        write_json(f'{root}/annotations/instances_{split}.json', content)


def write_ade20k(root):
    """The built-in shapes relaid as ADEChallengeData2016: ADE_train_00000001.jpg/png ..."""
    builtin.make_ade20k_set(root, splits=(('training', 4), ('validation', 2)), size=(48, 64))
    for split, prefix in (('training', 'ADE_train'), ('validation', 'ADE_val')):
        for sub, ext in (('images', 'jpg'), ('annotations', 'png')):
            folder = f'{root}/{sub}/{split}'
            for n, name in enumerate(sorted(os.listdir(folder)), 1):
                os.rename(f'{folder}/{name}', f'{folder}/{prefix}_{n:08d}.{ext}')


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, content):
    with open(path, 'w') as f:
        json.dump(content, f)


@pytest.fixture(scope='module')
def templates(tmp_path_factory):
    base = tmp_path_factory.mktemp('real_layouts')
    roots = dict(imagenet=str(base / 'imagenet'), coco=str(base / 'coco'),
                 ade=str(base / 'ade' / 'ADEChallengeData2016'))
    write_imagenet(roots['imagenet'])
    write_coco(roots['coco'])
    write_ade20k(roots['ade'])
    return roots


@pytest.fixture
def data(templates, tmp_path):
    """A fresh copy of the three data sets, for a test to break."""
    return {kind: shutil.copytree(root, str(tmp_path / kind)) for kind, root in templates.items()}


def options(config, root):
    """--cfg-options that point a real config at data in ``root``."""
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if config == SEG:  # the ADE20K train set is wrapped in a RepeatDataset
        opts[0] = f'train_dataloader.dataset.dataset.data_root={root}'
    if config in (DET, RETINA):
        opts += [f'{key}.ann_file={root}/annotations/instances_val2017.json'
                 for key in ('val_evaluator', 'test_evaluator')]
    return opts


def check(config, root, *extra, samples=8, flags=()):
    """Run the tool in-process; returns (exit code or 'error: ...' message, stdout).
    ``extra``: more --cfg-options; ``flags``: more options of the tool."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            TOOL.main([os.path.join(ROOT, config), '--samples', str(samples), *flags,
                       '--cfg-options', *options(config, root), *extra])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue()


def error(config, root, *extra, samples=8) -> str:
    code, out = check(config, root, *extra, samples=samples)
    assert isinstance(code, str) and code.startswith('error: '), (code, out)
    assert '\n' not in code
    return code


def tables(out: str) -> dict:
    """The printed summary tables: {split: {row: value}}."""
    result, rows = {}, None
    for line in out.splitlines():
        if line.startswith('== '):
            rows = result.setdefault(line[3:], {})
        elif rows is not None and line.startswith('  '):
            key, _, value = line.strip().partition('  ')
            rows[key] = value.strip()
    return result


# ---- passing data: the summary numbers -------------------------------------------------

def test_imagenet_summary(templates):
    code, out = check(CLS, templates['imagenet'], samples=3)
    assert code == 0, code
    table = tables(out)
    assert table['train']['images'] == '1000'
    assert table['train']['classes'] == '1000'
    assert table['train']['model classes'] == ('model.head.num_classes=1000, '
                                               'data_preprocessor.num_classes=1000')
    assert table['train']['labels'] == '0..999'
    assert table['val']['images'] == '3'
    assert table['val']['labels'] == f'{min(VAL_LABELS)}..{max(VAL_LABELS)}'
    assert table['val']['decoded'].count('(48x40)') == 3
    assert 'ILSVRC2012_val_00000001.JPEG (48x40)' in table['val']['decoded']
    assert 'n01440764/n01440764_1.JPEG (48x40)' in table['train']['decoded']
    assert 'same data set as val' in out and out.rstrip().endswith('all checks passed')


def test_coco_summary(templates):
    root = templates['coco']
    code, out = check(DET, root)
    assert code == 0, code
    table = tables(out)
    for split in ('train', 'val'):
        content = read_json(f'{root}/annotations/instances_{split}2017.json')
        labels = [COCO_IDS.index(a['category_id']) for a in content['annotations']]
        assert table[split]['images'] == str(len(content['images']))
        assert table[split]['annotations'] == str(len(labels))
        assert table[split]['labels'] == f'{min(labels)}..{max(labels)}'
        assert table[split]['classes'] == '80'
        assert table[split]['decoded'].count('(64x48)') == len(content['images'])
    assert '000000000001.jpg (64x48)' in table['val']['decoded']


def test_ade20k_summary(templates):
    root = templates['ade']
    code, out = check(SEG, root)
    assert code == 0, code
    table = tables(out)
    for split, folder in (('train', 'training'), ('val', 'validation')):
        maps = sorted(os.listdir(f'{root}/annotations/{folder}'))
        values = np.unique(np.concatenate(
            [cv2.imread(f'{root}/annotations/{folder}/{m}', cv2.IMREAD_UNCHANGED).ravel()
             for m in maps]))
        assert table[split]['images'] == str(len(maps))
        assert table[split]['label maps'] == str(len(maps))
        assert table[split]['labels'] == (f'{values.min()}..{values.max()} as stored '
                                          '(reduce_zero_label=True)')
        assert table[split]['classes'] == '150'
        assert table[split]['dataset'] == 'ValidatedADE20KDataset' + (
            ' in RepeatDataset' if split == 'train' else '')
    assert 'images/validation/ADE_val_00000001.jpg (64x48)' in table['val']['decoded']


# ---- one test per problem ---------------------------------------------------------------

def test_missing_file(data):
    root = data['imagenet']
    os.remove(f'{root}/val/ILSVRC2012_val_00000002.JPEG')
    assert error(CLS, root) == (f'error: val set: file not found: '
                                f'{root}/val/ILSVRC2012_val_00000002.JPEG')


def test_missing_evaluator_file(templates):
    missing = '/nowhere/instances_val2017.json'
    message = error(DET, templates['coco'], f'val_evaluator.ann_file={missing}')
    assert message == f'error: val_evaluator.ann_file: file not found: {missing}'


@pytest.mark.parametrize('kind', ['ade', 'coco'])
def test_empty_split(data, kind):
    root = data[kind]
    if kind == 'ade':  # ValidatedADE20KDataset refuses to load
        shutil.rmtree(f'{root}/images/validation')
        os.makedirs(f'{root}/images/validation')
        config, extra, expected = SEG, [], 'images/validation'
    else:  # mmdet's own CocoDataset loads an empty set without a word
        path = f'{root}/annotations/instances_val2017.json'
        write_json(path, dict(read_json(path), images=[], annotations=[]))
        config, expected = DET, 'ann_file=annotations/instances_val2017.json'
        extra = [f'{loader}.dataset.type=CocoDataset' for loader in ('val_dataloader',
                                                                      'test_dataloader')]
    message = error(config, root, *extra)
    assert message.startswith('error: val set')
    assert expected in message and ' is empty' in message, message


@pytest.mark.parametrize('config,key,value,classes', [
    (CLS, 'model.head.num_classes', 100, 1000),
    (DET, 'model.roi_head.bbox_head.num_classes', 81, 80),
    (DET, 'model.roi_head.mask_head.num_classes', 81, 80),
    (RETINA, 'model.bbox_head.num_classes', 81, 80),
    (SEG, 'model.decode_head.num_classes', 151, 150),
    (SEG, 'model.auxiliary_head.num_classes', 19, 150),
])
def test_class_count(templates, config, key, value, classes):
    kind = {CLS: 'imagenet', SEG: 'ade'}.get(config, 'coco')
    message = error(config, templates[kind], f'{key}={value}')
    assert message == f'error: train set has {classes} classes but the model has {key}={value}'


def test_label_out_of_range_segmentation(data):
    root = data['ade']
    path = f'{root}/annotations/training/ADE_train_00000002.png'
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[0, 0] = 151
    cv2.imwrite(path, label)
    message = error(SEG, root)
    assert message.startswith(f'error: {path}: label value(s) [151] outside the 150 classes')


def test_label_out_of_range_classification(data):
    root = data['imagenet']
    with open(f'{root}/meta/val.txt', 'a') as f:
        f.write('ILSVRC2012_val_00000001.JPEG 1000\n')
    message = error(CLS, root)
    assert message == (f'error: val set: {root}/val/ILSVRC2012_val_00000001.JPEG has label 1000 '
                       f'(from {root}/meta/val.txt), outside 0..999 (1000 classes)')


def test_category_outside_classes_detection(data):
    root = data['coco']
    path = f'{root}/annotations/instances_train2017.json'
    content = read_json(path)
    content['categories'].append(dict(id=91, name='unicorn', supercategory=''))
    content['annotations'][1]['category_id'] = 91  # mmdet would drop it silently
    write_json(path, content)
    message = error(DET, root)
    assert message == (f'error: {path}: annotation {content["annotations"][1]["id"]} has '
                       "category_id 91 ('unicorn'), which is not one of the 80 classes "
                       'of the config')


@pytest.mark.parametrize('change', ['renamed', 'swapped'])
def test_categories_not_the_classes_detection(data, change):
    """mmdet numbers the classes in the file's category order: a class the file lacks,
    or two listed in another order, would give annotations the wrong labels."""
    root = data['coco']
    path = f'{root}/annotations/instances_val2017.json'
    content = read_json(path)
    cats = content['categories']
    if change == 'renamed':
        cats[1]['name'] = 'bike'
        expected = ("classes ['bicycle'] of the config (metainfo.classes) "
                    'are not among its categories')
    else:
        cats[0]['name'], cats[1]['name'] = cats[1]['name'], cats[0]['name']
        expected = ('its categories list the classes of the config (metainfo.classes) in '
                    'another order, so mmdet would give them the wrong labels')
    # mmdet's own CocoDataset, which loads both files without a word (ValidatedCocoDataset
    # may refuse them earlier, with its own message)
    extra = [f'{loader}.dataset.type=CocoDataset' for loader in ('val_dataloader',
                                                                  'test_dataloader')]
    write_json(path, content)
    assert error(DET, root, *extra) == f'error: {path}: {expected}'


def test_unreadable_image(data):
    root = data['coco']
    path = f'{root}/val2017/000000000002.jpg'
    with open(path, 'rb') as f:
        head = f.read()[:200]
    with open(path, 'wb') as f:  # an interrupted download
        f.write(head)
    message = error(DET, root, samples=100)
    assert message == (f'error: val set: bad image {path}: '
                       'the file is truncated (its end marker is missing)')


def test_command_exit_status(data):
    """As a command: exit status 1 and one line on stderr, no traceback."""
    root = data['ade']
    path = f'{root}/annotations/validation/ADE_val_00000001.png'
    cv2.imwrite(path, np.full((48, 64), 200, np.uint8))
    proc = run_tool('tools/data/check_dataset.py', SEG, '--cfg-options', *options(SEG, root),
                    timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f'error: {path}: label value(s) [200] outside the 150 classes')
    assert 'Traceback' not in proc.stderr
    assert '== train' in proc.stdout  # the train table came before the val set failed


# ---- what the checker used to pass silently: run as a command ---------------------------

def command_error(config, root, *flags, culprit, extra=()):
    """Run the tool as a command; it must fail, with exactly one line naming ``culprit``
    (the `error: ...` line). ``extra``: more --cfg-options. Returns that line and the
    CompletedProcess."""
    proc = run_tool('tools/data/check_dataset.py', config, *flags,
                    '--cfg-options', *options(config, root), *extra, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert 'Traceback' not in proc.stderr, proc.stderr
    naming = [line for line in output.splitlines() if culprit in line]
    assert len(naming) == 1, output
    assert naming[0].startswith('error: '), output
    return naming[0], proc


@pytest.mark.parametrize('dataset_type', ['ImageNet', 'mmpoolformer.ValidatedImageFolder'])
def test_class_folder_without_images(data, dataset_type):
    """mmpretrain only warns (naming the folder without its path) and trains without
    the class. ValidatedImageFolder: the image-folder set of docs/finetune.md."""
    root = data['imagenet']
    folder = f'{root}/train/{WNIDS[1]}'
    for name in os.listdir(folder):
        os.remove(f'{folder}/{name}')
    line, _ = command_error(CLS, root, '--samples', '1', culprit=folder,
                            extra=[f'train_dataloader.dataset.type={dataset_type}'])
    assert line.startswith(f'error: train set: class folder without images: {folder} ')


def test_decode_all_finds_an_image_outside_the_samples(data):
    root = data['imagenet']
    path = f'{root}/train/{WNIDS[1]}/{WNIDS[1]}_2.JPEG'  # train image 2 of 1000
    with open(path, 'wb') as f:  # a download that saved an error page
        f.write(b'<html><body>404 Not Found</body></html>')
    assert check(CLS, root)[0] == 0  # not among the 8 sampled images
    line, proc = command_error(CLS, root, '--decode-all', '--workers', '2', culprit=path)
    assert line.startswith(f'error: train set: bad image {path}: it cannot be decoded')
    # the expected time comes first, measured on the first images
    assert 'train set: decoding 1000 images with 2 workers: about ' in proc.stdout


def test_label_map_not_single_channel(data):
    root = data['ade']
    path = f'{root}/annotations/validation/ADE_val_00000001.png'
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, np.dstack([label] * 3))  # the same values, saved as RGB
    line, _ = command_error(SEG, root, culprit=path)
    assert line == (f'error: {path}: label map has 3 channels (PIL mode RGB); it must have '
                    'one, a class index per pixel (mode L or P)')


def coco_box(root, split, index, bbox):
    """Set the bbox of annotation ``index``; returns its id and its image's file."""
    path = f'{root}/annotations/instances_{split}.json'
    content = read_json(path)
    ann = content['annotations'][index]
    ann['bbox'] = bbox
    write_json(path, content)
    image = next(img for img in content['images'] if img['id'] == ann['image_id'])
    assert (image['width'], image['height']) == (64, 48)
    return ann['id'], f'{root}/{split}/{image["file_name"]}'


def test_box_outside_its_image(data):
    root = data['coco']
    ann_id, image = coco_box(root, 'val2017', 0, [40, 10, 30, 20])  # to x = 70 > 64
    line, _ = command_error(DET, root, culprit=image)
    assert line == (f'error: {root}/annotations/instances_val2017.json: annotation {ann_id}: '
                    f'bbox [x, y, w, h] = [40, 10, 30, 20] reaches outside its image '
                    f'{image} (64x48)')


@pytest.mark.parametrize('change,flags', [
    ('resized', []),
    ('turned by EXIF', ['--decode-all', '--workers', '1']),
])
def test_image_not_the_size_of_its_annotations(data, change, flags):
    """The annotation file gives the image as 64x48; its boxes are drawn on that.
    Resized after annotating, it loads as 32x24. Saved with EXIF orientation 6
    ('turn 90 degrees clockwise'), the same 64x48 bitmap loads as 48x64: OpenCV, which
    training decodes with, applies the tag. mmdet trains on either without a word."""
    root = data['coco']
    ann_file = f'{root}/annotations/instances_val2017.json'
    image = next(img for img in read_json(ann_file)['images'] if img['id'] == 2)
    assert (image['width'], image['height']) == (64, 48)
    path = f'{root}/val2017/{image["file_name"]}'
    if change == 'resized':
        cv2.imwrite(path, cv2.resize(cv2.imread(path), (32, 24)))
        loads_as = '32x24'
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # the EXIF orientation tag
        Image.open(path).save(path, exif=exif.tobytes())
        loads_as = '48x64'
    code, _ = check(DET, root, flags=flags)
    assert code == (f'error: val set: bad image {path}: it loads as {loads_as}, but {ann_file} '
                    'gives 64x48, the size its annotations are drawn on (resized after '
                    'annotating, or turned by its EXIF orientation when loaded?)')


@pytest.mark.parametrize('change,flags', [
    ('resized', []),
    ('turned by EXIF', ['--decode-all', '--workers', '1']),
])
def test_image_not_the_size_of_its_label_map(data, change, flags):
    """A 64x48 image and label map. Resized to 32x24, the image is caught by
    mmseg's own ADE20KDataset nowhere (ValidatedADE20KDataset compares the file
    headers when it loads). Saved with EXIF orientation 6, it loads as 48x64 while
    its header still says 64x48: the header check passes it. mmseg would misalign
    image and labels in training, and fail the IoU metric after the first epoch."""
    root = data['ade']
    image = f'{root}/images/validation/ADE_val_00000002.jpg'
    label_map = f'{root}/annotations/validation/ADE_val_00000002.png'
    extra = []
    if change == 'resized':
        cv2.imwrite(image, cv2.resize(cv2.imread(image), (32, 24)))
        loads_as = '32x24'
        extra = [f'{loader}.dataset.type=ADE20KDataset' for loader in ('val_dataloader',
                                                                        'test_dataloader')]
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # the EXIF orientation tag
        Image.open(image).save(image, exif=exif.tobytes())
        loads_as = '48x64'
    code, _ = check(SEG, root, *extra, flags=flags)
    assert code == (f'error: val set: bad image {image}: it loads as {loads_as}, but its label '
                    f'map {label_map} is 64x48, the size its annotations are drawn on '
                    '(resized after annotating, or turned by its EXIF orientation when loaded?)')


# ---- the same checks' edges, in-process ------------------------------------------------

@pytest.mark.parametrize('bbox,inside', [
    ([0, 5, 10, 43.5], True),      # down to y = 48.5 of 48: within the 1-pixel tolerance
    ([-0.9, 0, 64.9, 48], True),   # from x = -0.9 to 64
    ([10, -2, 10, 10], False),     # above the image
    ([54, 38, 10, 11.5], False),   # down to y = 49.5
])
def test_box_tolerance(data, bbox, inside):
    root = data['coco']
    ann_id, image = coco_box(root, 'train2017', 1, bbox)
    if inside:
        assert check(DET, root)[0] == 0
    else:
        assert error(DET, root).startswith(
            f'error: {root}/annotations/instances_train2017.json: annotation {ann_id}: '
            f'bbox [x, y, w, h] = {bbox} reaches outside its image {image} ')


def test_decode_all_names_every_bad_image(data):
    root = data['coco']
    paths = [f'{root}/val2017/{name}' for name in sorted(os.listdir(f'{root}/val2017'))]
    assert len(paths) == 2
    code, named = _decode_all_of_emptied(DET, root, paths)
    assert code == 'error: val set: 2 of 2 images cannot be used (named above)'
    assert named == [f'bad image {path}: the file is empty' for path in paths]


def _decode_all_of_emptied(config, root, paths):
    """Empty the files at ``paths``, then check with --decode-all: (the error line,
    the lines written to stderr)."""
    for path in paths:
        with open(path, 'wb') as f:
            f.write(b'')
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code, _ = check(config, root, flags=['--decode-all', '--workers', '1'])
    return code, stderr.getvalue().splitlines()


# Train images that no sample is: the 8 samples are spread over the 1000 as
# np.linspace(0, 999, 8) rounds, indices 0, 143, 285, 428, 571, 714, 856, 999.
UNSAMPLED = (1, 500, 998)


def imagenet_train_image(root, index):
    wnid = WNIDS[index]  # one image per class folder; the folders are in sorted order
    return f'{root}/train/{wnid}/{wnid}_{index + 1}.JPEG'


def test_decode_all_decodes_every_image(data):
    """Three bad images among 1000, none of them sampled: --decode-all names each,
    in order. (Decoding only the first images, or every other one, fails this.)"""
    root = data['imagenet']
    paths = [imagenet_train_image(root, index) for index in UNSAMPLED]
    code, named = _decode_all_of_emptied(CLS, root, paths)
    assert code == 'error: train set: 3 of 1000 images cannot be used (named above)'
    assert named == [f'bad image {path}: the file is empty' for path in paths]
    assert check(CLS, root)[0] == 0  # the samples miss them


def pid_after_a_while(_item):
    """The id of the process that ran it, after 20 ms: long enough for every worker
    to take some of the items. (Sent to the workers by name.)"""
    time.sleep(0.02)
    return os.getpid()


def test_decode_all_runs_in_worker_processes():
    """--workers N decodes in N processes other than the tool's own."""
    printed = []
    pids = image_check.map_in_processes(pid_after_a_while, range(64), 2, 'pids',
                                        out=printed.append)
    assert len(pids) == 64
    assert os.getpid() not in pids
    assert len(set(pids)) == 2
    assert printed[0].startswith('pids with 2 workers: about ')


def test_decode_all_expected_time_comes_first(monkeypatch):
    """The expected time is printed while the files are still being done,
    extrapolated from the first ones: with a fake clock that advances 0.5 s per
    file, 1000 files are 500 s, 8 min 20 s."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(image_check, 'time', SimpleNamespace(perf_counter=lambda: clock.now))
    done, printed = [], []

    def half_a_second(item):
        clock.now += 0.5
        done.append(item)

    image_check.map_in_processes(half_a_second, range(1000), 1, 'files',
                                 out=lambda line: printed.append((line, len(done))))
    assert len(done) == 1000
    [(line, done_when_printed)] = printed
    measured = re.fullmatch(r'files with 1 worker: about 8 min 20 s in all '
                            r'\(measured on the first (\d+)\)', line)
    assert measured, line
    assert done_when_printed == int(measured.group(1)) < 1000


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize('terminal', [True, False])
def test_decode_all_progress_bar(terminal):
    """A progress bar on a terminal (stderr), none in a log file."""
    stderr = Terminal() if terminal else io.StringIO()
    with contextlib.redirect_stderr(stderr):
        image_check.map_in_processes(abs, range(1000), 1, 'decoding', out=lambda line: None)
    if terminal:  # tqdm's bar: 'decoding:  25%|██▍       | 248/1000 [...]'
        assert re.search(r'decoding: +\d+%\|.*\| *\d+/1000', stderr.getvalue()), \
            stderr.getvalue()
    else:
        assert stderr.getvalue() == ''


@pytest.mark.skipif(not hasattr(os, 'sched_getaffinity'), reason='Linux CPU affinity')
def test_decode_all_workers_default_to_usable_cpus(monkeypatch, capsys):
    """--workers defaults to the CPUs this process may run on (its affinity, as
    taskset or a batch scheduler sets it), not every CPU of the machine; the tool
    passes it on only with --decode-all."""
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 2, 5})
    monkeypatch.setattr(os, 'cpu_count', lambda: 64)
    calls = []
    monkeypatch.setattr(TOOL, 'check_config',
                        lambda config, cfg_options, **kwargs: calls.append(kwargs))
    TOOL.main([CLS, '--decode-all'])
    TOOL.main([CLS, '--decode-all', '--workers', '7'])
    TOOL.main([CLS, '--samples', '3'])
    assert [call['decode_workers'] for call in calls] == [3, 7, None]
    assert calls[2]['samples'] == 3
    with pytest.raises(SystemExit):
        TOOL.main(['--help'])
    assert '(default: the CPUs this process may use, here 3)' in ' '.join(
        capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        TOOL.main([CLS, '--decode-all', '--workers', '0'])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        'error: --workers must be 1 or more')


def test_label_map_that_does_not_decode(data):
    root = data['ade']
    path = f'{root}/annotations/training/ADE_train_00000003.png'
    with open(path, 'rb') as f:
        head = f.read()[:100]
    with open(path, 'wb') as f:  # the header (and size) still reads
        f.write(head)
    assert error(SEG, root).startswith(f'error: train set: bad label map {path}: '
                                       'it cannot be decoded (')

"""Images per second per data-loader worker: the configs' train pipelines against
timm's ImageNet train transforms on the same JPEG files.

A data-loader worker is one process running one thread, so every pipeline runs
here with torch and OpenCV held to one thread. The images are generated into a
temporary folder (smooth gradients, shapes and noise, JPEG quality 90), at the
sizes of the data sets: ImageNet-like 500x375, COCO-like 640x480 with a few
polygon objects, ADE20K-like 640x480 with a PNG label map. The pipelines run in
turn, once per repetition, so that a load drifting across the machine hits them
alike; each rate is the median over the repetitions.
"""
import contextlib
import os
import random
import statistics
import tempfile

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from speed import Row, time_round_robin

import mmpoolformer  # noqa: F401  (registers the configs' mmpoolformer.* transforms)
from mmpoolformer.apis import load_config

CONFIGS = {
    'imagenet': 'configs/classification/poolformer_s12_in1k.py',
    'coco': 'configs/detection/maskrcnn_poolformer_s12.py',
    'ade20k': 'configs/segmentation/fpn_poolformer_s12_ade20k.py',
}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMM = "timm: create_transform(224, is_training=True, auto_augment='rand-m9-mstd0.5-inc1', " \
       "re_prob=0.25, bicubic)"
ADE20K_CLASSES = 150


# --------------------------------------------------------------------------- #
# Images
# --------------------------------------------------------------------------- #
def natural_image(rng: np.random.Generator, width: int, height: int) -> tuple:
    """(RGB uint8 image, polygons drawn on it): a smooth colour field, a few filled
    polygons and ellipses, and sensor-like noise, so that a JPEG of it costs about
    what a photograph of that size costs to decode."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.5, 3.0, 2) * 2 * np.pi / np.array([width, height])
        phase = rng.uniform(0, 2 * np.pi)
        field[..., c] = 128 + 60 * np.sin(fx * x + phase) * np.cos(fy * y) + \
            rng.uniform(-40, 40) * x / width
    canvas = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    polygons = []
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        radius = rng.uniform(0.05, 0.2) * min(width, height)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.polygon([tuple(p) for p in points], fill=colour)
        polygons.append(points)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        draw.ellipse([x0, y0, x0 + rng.uniform(10, width / 4), y0 + rng.uniform(10, height / 4)],
                     outline=tuple(int(v) for v in rng.integers(0, 256, 3)), width=3)
    pixels = np.asarray(canvas, np.float32) + rng.normal(0, 6, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), polygons


def write_images(folder: str, n_images: int, seed: int = 0) -> dict:
    """The files of each data set's inputs: {'imagenet': [jpeg], 'coco': [(jpeg,
    polygons)], 'ade20k': [(jpeg, png)]}."""
    rng = np.random.default_rng(seed)
    files = {'imagenet': [], 'coco': [], 'ade20k': []}
    for i in range(n_images):
        path = os.path.join(folder, f'imagenet_{i}.JPEG')
        Image.fromarray(natural_image(rng, 500, 375)[0]).save(path, quality=90)
        files['imagenet'].append(path)

        pixels, polygons = natural_image(rng, 640, 480)
        path = os.path.join(folder, f'coco_{i}.jpg')
        Image.fromarray(pixels).save(path, quality=90)
        files['coco'].append((path, polygons))

        pixels, polygons = natural_image(rng, 640, 480)
        path = os.path.join(folder, f'ade_{i}.jpg')
        label_path = os.path.join(folder, f'ade_{i}.png')
        Image.fromarray(pixels).save(path, quality=90)
        labels = Image.new('L', (640, 480), int(rng.integers(1, ADE20K_CLASSES + 1)))
        draw = ImageDraw.Draw(labels)
        for points in polygons:  # stored values 1..150, 0 = ignore (reduce_zero_label)
            draw.polygon([tuple(p) for p in points], fill=int(rng.integers(0, ADE20K_CLASSES + 1)))
        labels.save(label_path)
        files['ade20k'].append((path, label_path))
    return files


def coco_input(index: int, path: str, polygons: list) -> dict:
    """What mmdet's COCO data set hands its pipeline for one image."""
    instances = []
    for points in polygons:
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        instances.append(dict(bbox=[float(x0), float(y0), float(x1), float(y1)],
                              bbox_label=index % 80, ignore_flag=0,
                              mask=[points.reshape(-1).tolist()]))
    return dict(img_path=path, img_id=index, height=480, width=640, instances=instances)


def ade20k_input(path: str, label_path: str) -> dict:
    """What our ADE20K data set (ValidatedADE20KDataset) hands its pipeline."""
    return dict(img_path=path, seg_map_path=label_path, reduce_zero_label=True,
                num_classes=ADE20K_CLASSES, ignore_index=255, label_map=None, seg_fields=[])


# --------------------------------------------------------------------------- #
# Pipelines
# --------------------------------------------------------------------------- #
def _pipeline_of(dataset: dict) -> list:
    while 'pipeline' not in dataset:  # RepeatDataset and the like wrap the data set
        dataset = dataset['dataset']
    return dataset['pipeline']


def config_pipeline(config: str):
    """(the config's train pipeline built in its toolbox's scope, its default scope)."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope, init_default_scope

    cfg = load_config(os.path.join(ROOT, config))
    init_default_scope(cfg.default_scope)  # imports the toolbox's transforms
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return Compose(_pipeline_of(cfg.train_dataloader.dataset))


def timm_pipeline():
    from timm.data import create_transform
    transform = create_transform(224, is_training=True, auto_augment='rand-m9-mstd0.5-inc1',
                                 re_prob=0.25, interpolation='bicubic')

    def run(path):
        with Image.open(path) as img:
            return transform(img.convert('RGB'))
    return run


def _shape(output) -> tuple:
    """(C, H, W) of a pipeline's output: a tensor (timm) or packed inputs."""
    inputs = output if torch.is_tensor(output) else output['inputs']
    return tuple(inputs.shape)


def _shapes_note(shapes: set) -> str:
    if len(shapes) == 1:
        return 'output ' + 'x'.join(map(str, shapes.pop()))
    largest = max(shapes, key=lambda s: s[1] * s[2])
    return f'{len(shapes)} output sizes, up to ' + 'x'.join(map(str, largest))


@contextlib.contextmanager
def one_thread():
    """One thread for torch and OpenCV, as in a data-loader worker; restored after."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def pipeline_rows(n_images: int = 64, repeats: int = 3, log=print) -> list:
    """Rows of images/s per worker: timm's transforms (the anchor) and the train
    pipelines of CONFIGS; each row's ratio is its rate / timm's."""
    with tempfile.TemporaryDirectory() as folder, one_thread():
        log(f'writing {n_images} images per data set to {folder} ...')
        files = write_images(folder, n_images)
        inputs = {
            TIMM: (timm_pipeline(), files['imagenet']),
            f'ImageNet: {CONFIGS["imagenet"]}': (
                config_pipeline(CONFIGS['imagenet']),
                [dict(img_path=p, gt_label=i % 1000) for i, p in enumerate(files['imagenet'])]),
            f'COCO: {CONFIGS["coco"]}': (
                config_pipeline(CONFIGS['coco']),
                [coco_input(i, *f) for i, f in enumerate(files['coco'])]),
            f'ADE20K: {CONFIGS["ade20k"]}': (
                config_pipeline(CONFIGS['ade20k']), [ade20k_input(*f) for f in files['ade20k']]),
        }
        shapes = {name: set() for name in inputs}

        def run_all(name):
            pipeline, items = inputs[name]
            for item in items:
                # a pipeline changes its dict: each pass starts from a copy
                out = pipeline(dict(item) if isinstance(item, dict) else item)
                shapes[name].add(_shape(out))

        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        times = time_round_robin({name: lambda name=name: run_all(name) for name in inputs},
                                 warmup=1, repeats=repeats, log=log)
    rates = {name: n_images / statistics.median(t) for name, t in times.items()}
    return [Row(name, rates[name], ratio=rates[name] / rates[TIMM],
                note=f'{n_images} images; {_shapes_note(shapes[name])}', times_s=times[name])
            for name in inputs]

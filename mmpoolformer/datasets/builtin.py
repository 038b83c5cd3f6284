"""Small procedurally drawn data sets, written in the layouts of the real ones.

Every image shows shapes of a few classes (circle, square, triangle, cross) in
random colours, sizes and places on a noisy textured background. The same
drawing code serves the ImageNet folder layout (one shape per image, class =
shape), and later the COCO and ADE20K layouts, so the tools, configs and
metrics of the real data sets are exercised end to end on a laptop CPU.
"""
import os
import os.path as osp

import cv2
import numpy as np
from tqdm import tqdm

SHAPES = ('circle', 'square', 'triangle', 'cross')


def shape_polygon(kind: str, center: tuple[float, float], radius: float,
                  angle: float) -> np.ndarray:
    """Outline of a shape as an (N, 2) float array of x, y points."""
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif kind == 'square':
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.8
    elif kind == 'triangle':
        t = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif kind == 'cross':
        a, b = 1.0, 0.3
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b],
                        [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]])
    else:
        raise ValueError(f'unknown shape {kind!r}; valid: {SHAPES}')
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (pts @ rot.T) * radius + np.asarray(center)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with pixel noise (BGR uint8)."""
    # Darker than the shapes (see draw_shape) so that outlines stay visible.
    low = rng.integers(0, 128, size=(3, 3, 3)).astype(np.float32)
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def shape_color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(128, 256, size=3))


def draw_shape(img: np.ndarray, polygon: np.ndarray, rng: np.random.Generator):
    cv2.fillPoly(img, [np.round(polygon).astype(np.int32)], shape_color(rng))


def polygon_pixels(segmentation: list, height: int, width: int):
    """What COCO's tools (pycocotools, so mmdet and the evaluator) read from
    ``segmentation``, a COCO polygon list: its (height, width) bool mask, and the box
    ``[x, y, w, h]`` and area of those pixels."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    return (mask_utils.decode(rle).astype(bool), mask_utils.toBbox(rle).tolist(),
            float(mask_utils.area(rle)))


def random_shape(rng, height, width, min_radius, max_radius):
    radius = rng.uniform(min_radius, max_radius)
    center = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
    return center, radius, rng.uniform(0, 2 * np.pi)


def make_classification_set(root: str, splits=(('train', 300), ('val', 50)),
                            size: int = 64, seed: int = 0) -> list[str]:
    """ImageNet folder layout: ``root/{train,val}/<class>/<n>.png``.

    ``splits`` gives images per class for each split. Returns the classes.
    """
    rng = np.random.default_rng(seed)
    jobs = [(split, cls, i) for split, per_class in splits
            for cls in SHAPES for i in range(per_class)]
    for split, cls, i in tqdm(jobs, desc=f'writing {root}', unit='img'):
        folder = osp.join(root, split, cls)
        os.makedirs(folder, exist_ok=True)
        img = background(rng, size, size)
        center, radius, angle = random_shape(rng, size, size, size * 0.18, size * 0.4)
        draw_shape(img, shape_polygon(cls, center, radius, angle), rng)
        cv2.imwrite(osp.join(folder, f'{i:05d}.png'), img)
    return list(SHAPES)


def _place_shapes(rng, height, width, count, min_radius, max_radius, tries=50):
    """Up to ``count`` non-overlapping shapes as (kind, polygon) pairs."""
    placed, boxes = [], []
    for _ in range(count):
        for _ in range(tries):
            center, radius, angle = random_shape(rng, height, width, min_radius, max_radius)
            box = (center[0] - radius, center[1] - radius, center[0] + radius, center[1] + radius)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in boxes):
                kind = SHAPES[rng.integers(len(SHAPES))]
                polygon = np.clip(shape_polygon(kind, center, radius, angle),
                                  0, [width - 1, height - 1])
                placed.append((kind, polygon))
                boxes.append(box)
                break
    return placed


def make_coco_set(root: str, splits=(('train2017', 160), ('val2017', 40)),
                  size: tuple[int, int] = (150, 190), max_objects: int = 3,
                  seed: int = 0) -> list[str]:
    """COCO instance-segmentation layout as mmdet expects it::

        root/annotations/instances_{split}.json, root/{split}/<n>.png

    Each image holds 1..max_objects shapes with polygon masks; category ids
    start at 1 as in COCO. ``size`` is (height, width), deliberately not a
    multiple of 32. Returns the class names.
    """
    import json
    rng = np.random.default_rng(seed)
    height, width = size
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(SHAPES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, count in splits:
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for image_id in tqdm(range(1, count + 1), desc=f'writing {root}/{split}', unit='img'):
            img = background(rng, height, width)
            file_name = f'{image_id:06d}.png'
            for kind, polygon in _place_shapes(rng, height, width,
                                               rng.integers(1, max_objects + 1),
                                               min(size) * 0.08, min(size) * 0.22):
                segmentation = [polygon.round(1).flatten().tolist()]
                # Drawn as COCO's tools read the polygon, so that the image, the mask and
                # the box agree to the pixel (cv2.fillPoly's pixels made boxes 1 px short).
                # The box is that of the pixels, edges between them: mmdet's flip
                # (x -> width - x) then maps it onto the flipped pixels exactly.
                mask, bbox, area = polygon_pixels(segmentation, height, width)
                img[mask] = shape_color(rng)
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id,
                    category_id=SHAPES.index(kind) + 1, segmentation=segmentation,
                    bbox=bbox, area=area, iscrowd=0))
            cv2.imwrite(osp.join(root, split, file_name), img)
            images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return list(SHAPES)


SEG_CLASSES = ('background', ) + SHAPES


def make_ade20k_set(root: str, splits=(('training', 160), ('validation', 40)),
                    size: tuple[int, int] = (150, 190), max_objects: int = 4,
                    seed: int = 0) -> list[str]:
    """ADE20K layout as mmseg expects it::

        root/images/{training,validation}/<n>.jpg
        root/annotations/{training,validation}/<n>.png

    Label maps follow ADE20K: 0 is "other" (ignored, here a one-pixel outline
    around each shape), 1 is background and 2.. are the shapes, so that
    ``reduce_zero_label=True`` yields the classes of :data:`SEG_CLASSES`.
    """
    rng = np.random.default_rng(seed)
    height, width = size
    for split, count in splits:
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        for n in tqdm(range(count), desc=f'writing {root}/{split}', unit='img'):
            img = background(rng, height, width)
            label = np.ones((height, width), np.uint8)
            for kind, polygon in _place_shapes(rng, height, width,
                                               rng.integers(1, max_objects + 1),
                                               min(size) * 0.08, min(size) * 0.25):
                draw_shape(img, polygon, rng)
                pts = [np.round(polygon).astype(np.int32)]
                cv2.fillPoly(label, pts, SEG_CLASSES.index(kind) + 1)
                cv2.polylines(label, pts, True, 0, 1)
            cv2.imwrite(osp.join(root, 'images', split, f'{n:06d}.jpg'), img)
            cv2.imwrite(osp.join(root, 'annotations', split, f'{n:06d}.png'), label)
    return list(SEG_CLASSES)


# The kinds that tools/data/make_builtin_data.py draws, each under data/builtin/<kind>.
BUILDERS = dict(imagenet=make_classification_set, coco=make_coco_set, ade20k=make_ade20k_set)

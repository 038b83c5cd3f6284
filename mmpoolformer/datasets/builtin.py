"""Small procedurally drawn data sets, written in the layouts of the real ones.

Every image shows shapes of a few classes (circle, square, triangle, cross) in
random colours, sizes and places on a noisy textured background. The same
drawing code serves the ImageNet folder layout (one shape per image, class =
shape), and later the COCO and ADE20K layouts, so the tools, configs and
metrics of the real data sets are exercised end to end on a laptop CPU.
"""
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np
from tqdm import tqdm

SHAPES = ('circle', 'square', 'triangle', 'cross')


def shape_polygon(kind: str, center: Tuple[float, float], radius: float,
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


def draw_shape(img: np.ndarray, polygon: np.ndarray, rng: np.random.Generator):
    color = tuple(int(c) for c in rng.integers(128, 256, size=3))
    cv2.fillPoly(img, [np.round(polygon).astype(np.int32)], color)


def random_shape(rng, height, width, min_radius, max_radius):
    radius = rng.uniform(min_radius, max_radius)
    center = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
    return center, radius, rng.uniform(0, 2 * np.pi)


def make_classification_set(root: str, splits=(('train', 300), ('val', 50)),
                            size: int = 64, seed: int = 0) -> List[str]:
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

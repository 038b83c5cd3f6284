"""Decoding a data set's images as training would, for the data set checker
(:mod:`mmpoolformer.datasets.check`): a spread sample, or every image in worker
processes with the expected time and a progress bar. Each decoded image has the
size of its annotations: the one a COCO file gives it, or its label map's."""
import contextlib
import functools
import multiprocessing
import os.path as osp
import sys
import time
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
from PIL import Image
from tqdm import tqdm

from mmpoolformer.datasets.transforms import LoadImageChecked
from mmpoolformer.utils.errors import DatasetError


@functools.cache
def image_loader() -> LoadImageChecked:
    """The loader of our pipelines, for its checks and its messages (one per process)."""
    return LoadImageChecked()


def read_image(path: str):
    """(image, None), or (None, why it cannot be used) as training would find it."""
    try:
        return image_loader().read(path)
    except OSError as err:  # not there any more, not readable, a folder...
        return None, f'it cannot be read ({err})'


def image_problem_of(path: str) -> tuple[Optional[str], Optional[tuple[int, int]]]:
    """(why the image at ``path`` cannot be used, None) or (None, its height and
    width): no pixels, cheap to send back from a worker process."""
    img, problem = read_image(path)
    return (problem, None) if img is None else (None, img.shape[:2])


def annotated_size(dataset, info: dict):
    """(the size the image's annotations are drawn on, as (height, width); what
    gives it), or None where nothing does. mmdet takes it from the annotation file
    (``height``, ``width`` in ``data_list``); a label map has its own, which mmseg
    reads as stored (``flag='unchanged'``: no EXIF turn)."""
    if info.get('height') is not None and info.get('width') is not None:
        return (info['height'], info['width']), f'{dataset.ann_file} gives'
    label_map = info.get('seg_map_path')
    if isinstance(label_map, str):
        try:
            with Image.open(label_map) as im:  # the header only
                return (im.height, im.width), f'its label map {label_map} is'
        except OSError:  # the label check names a label map that does not open
            return None
    return None


def size_problem(dataset, info: dict, shape: tuple[int, int]) -> Optional[str]:
    """Why an image that loads as ``shape`` (height, width) does not fit its
    annotations, or None. Training takes the boxes at the annotation file's size
    and the loaded pixels as they are, so boxes drawn on another size land in the
    wrong place without a word; a label map of another size is misaligned, or
    fails the metric after the first epoch."""
    annotated = annotated_size(dataset, info)
    if annotated is None or tuple(shape) == annotated[0]:
        return None
    (height, width), source = annotated
    return (f'it loads as {shape[1]}x{shape[0]}, but {source} {width}x{height}, the size '
            'its annotations are drawn on (resized after annotating, or turned by its EXIF '
            'orientation when loaded?)')


def decode_samples(split: str, dataset, samples: int) -> str:
    """Decode ``samples`` images spread over the data set; returns them with their sizes."""
    count = min(samples, len(dataset))
    decoded = []
    for i in sorted(set(np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist())):
        info = dataset.data_list[i]
        path = info['img_path']
        img, problem = read_image(path)
        problem = problem or size_problem(dataset, info, img.shape[:2])
        if problem:
            raise DatasetError(f'{split} set: bad image {path}: {problem}')
        name = osp.relpath(path, dataset.data_root) if dataset.data_root else path
        decoded.append(f'{name} ({img.shape[1]}x{img.shape[0]})')
    return ', '.join(decoded)


def duration(seconds: float) -> str:
    """'1 h 05 min', '3 min 20 s', '12 s'."""
    seconds = round(seconds)
    hours, minutes = seconds // 3600, seconds // 60 % 60
    if hours:
        return f'{hours} h {minutes:02d} min'
    return f'{minutes} min {seconds % 60:02d} s' if minutes else f'{seconds} s'


def map_in_processes(function: Callable, items: Sequence, workers: int, what: str,
                     out: Callable[[str], None] = print) -> list:
    """``[function(item) for item in items]`` in ``workers`` processes, with a
    progress bar (on a terminal); first prints the expected time, measured on the
    first items done. ``function`` must be importable (it is sent by name)."""
    total, results = len(items), []
    chunk = max(1, min(64, total // (16 * workers)))
    probe = min(total, max(32, 4 * workers * chunk))  # a few chunks of every worker
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.Pool(workers))
            done = pool.imap(function, items, chunksize=chunk)
        else:  # this process: no start-up, and errors surface here
            done = map(function, items)
        for result in done:
            results.append(result)
            if len(results) == probe:
                break
        if total:
            expected = (time.perf_counter() - start) / probe * total
            out(f'{what} with {workers} worker{"s" if workers > 1 else ""}: about '
                f'{duration(expected)} in all (measured on the first {probe})')
        results.extend(tqdm(done, total=total, initial=len(results), unit='file',
                            desc=what, leave=False, disable=None))
    return results


def decode_all(split: str, dataset, workers: int, out: Callable[[str], None] = print) -> str:
    """Decode every image of the data set in ``workers`` processes; each bad one
    is named on stderr, then a DatasetError says how many (or names the one)."""
    paths = [info['img_path'] for info in dataset.data_list]
    start = time.perf_counter()
    results = map_in_processes(image_problem_of, paths, workers,
                               f'{split} set: decoding {len(paths)} images', out)
    bad = []
    for info, (problem, shape) in zip(dataset.data_list, results):
        problem = problem or size_problem(dataset, info, shape)
        if problem:
            bad.append((info['img_path'], problem))
    if len(bad) == 1:
        raise DatasetError(f'{split} set: bad image {bad[0][0]}: {bad[0][1]}')
    if bad:
        for path, problem in bad:
            print(f'bad image {path}: {problem}', file=sys.stderr)
        raise DatasetError(f'{split} set: {len(bad)} of {len(paths)} images cannot be used '
                           '(named above)')
    return f'all {len(paths)} images, in {duration(time.perf_counter() - start)}'

"""Decoding a data set's images as training would, for the data set checker
(:mod:`mmpoolformer.datasets.check`): a spread sample, or every image in worker
processes with the expected time and a progress bar."""
import contextlib
import functools
import multiprocessing
import os.path as osp
import sys
import time
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
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


def image_problem_of(path: str) -> Optional[str]:
    """Why the image at ``path`` cannot be used, or None (no pixels: cheap to send
    back from a worker process)."""
    return read_image(path)[1]


def decode_samples(split: str, dataset, samples: int) -> str:
    """Decode ``samples`` images spread over the data set; returns them with their sizes."""
    count = min(samples, len(dataset))
    decoded = []
    for i in sorted(set(np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist())):
        path = dataset.data_list[i]['img_path']
        img, problem = read_image(path)
        if img is None:
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
    problems = map_in_processes(image_problem_of, paths, workers,
                                f'{split} set: decoding {len(paths)} images', out)
    bad = [(path, problem) for path, problem in zip(paths, problems) if problem]
    if len(bad) == 1:
        raise DatasetError(f'{split} set: bad image {bad[0][0]}: {bad[0][1]}')
    if bad:
        for path, problem in bad:
            print(f'bad image {path}: {problem}', file=sys.stderr)
        raise DatasetError(f'{split} set: {len(bad)} of {len(paths)} images cannot be used '
                           '(named above)')
    return f'all {len(paths)} images, in {duration(time.perf_counter() - start)}'

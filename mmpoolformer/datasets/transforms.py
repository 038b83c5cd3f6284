"""Image loading that names the file it cannot read, and the data sets' part in it.

mmcv's ``LoadImageFromFile`` decodes with OpenCV, which reads a truncated JPEG
as a partly grey picture without a word and reports an undecodable file with
a bare assertion deep in a data worker. This loader checks that the bytes are a
complete image first, then decodes as mmcv does (grayscale, RGBA and 16-bit
files all come out as 8-bit, 3-channel BGR).
"""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.fileio import get
from mmengine.logging import print_log

from mmpoolformer.registry import TRANSFORMS
from mmpoolformer.utils.errors import ConfigError, DatasetError
from mmpoolformer.utils.rank_zero import run_on_rank_zero

# Bytes a complete file of each format ends with (trailing padding allowed).
_ENDINGS = {b'\xff\xd8': b'\xff\xd9',                         # JPEG: EOI marker
            b'\x89PNG': b'IEND\xaeB`\x82'}                   # PNG: IEND chunk


def image_problem(data: bytes) -> Optional[str]:
    """Why these bytes are not a complete image, or None if they look whole."""
    if not data:
        return 'the file is empty'
    for magic, ending in _ENDINGS.items():
        if data.startswith(magic) and ending not in data[-64:]:
            return 'the file is truncated (its end marker is missing)'
    return None


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """``LoadImageFromFile`` that reports a corrupt or truncated image by name.

    Args:
        on_error (str): ``'raise'`` (default) stops with a DatasetError naming
            the file; ``'skip'`` logs a warning naming it and drops the sample
            (while training, mmengine's datasets then draw another one; a
            test-mode set of ours drops it when it is built, see
            :func:`drop_unreadable_images`). Our data sets build the
            ``LoadImageFromFile`` at the head of their pipelines as this loader
            (:class:`ChecksImages`); it can also be named in a pipeline.
        **kwargs: As for mmcv's LoadImageFromFile.
    """

    # How the error message tells the user to skip bad images instead.
    skip_hint = "set on_error='skip' in LoadImageChecked to skip it"

    def __init__(self, on_error: str = 'raise', **kwargs):
        if on_error not in ('raise', 'skip'):
            raise ConfigError(f"LoadImageChecked on_error must be 'raise' or 'skip', "
                              f'got {on_error!r}')
        super().__init__(**kwargs)
        self.on_error = on_error

    def read(self, filename: str):
        """(image, None) for a readable file, (None, what is wrong) otherwise."""
        try:
            data = get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            return None, 'the file does not exist'
        problem = image_problem(data)
        if problem is not None:
            return None, problem
        try:  # decode the bytes read above, as mmcv's loader does
            img = mmcv.imfrombytes(data, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as err:  # undecodable: cv2 / PIL errors
            return None, f'it cannot be decoded ({str(err).splitlines()[0] or type(err).__name__})'
        if img is None:
            return None, f'it cannot be decoded (failed to load image: {filename})'
        return img, None

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        img, problem = self.read(filename)
        if img is None:
            return None if self.ignore_empty else self._fail(filename, problem)
        if self.to_float32:
            img = img.astype(np.float32)
        results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return results

    def _fail(self, filename: str, problem: str):
        message = f'bad image {filename}: {problem}'
        if self.on_error == 'raise':
            raise DatasetError(f'{message} ({self.skip_hint})')
        print_log(f'skipped {message}', logger='current', level=30)
        return None


def drop_unreadable_images(dataset, data_list: list) -> list:
    """The samples of a test-mode data set whose images can be read, when its
    pipeline loads them with ``LoadImageChecked(on_error='skip')``.

    A test set cannot drop a sample while it is iterated (every index must give
    one, and mmengine would refetch another at random in a set that is not in
    test mode), so the images are checked when the set is built: each bad one is
    named, and the count is logged. Otherwise the list is returned unchanged.
    In a distributed run rank 0 alone reads the images; the others get the
    indices it kept.
    """
    loaders = [t for t in getattr(dataset.pipeline, 'transforms', [])
               if isinstance(t, LoadImageChecked)]
    if not dataset.test_mode or not loaders or loaders[0].on_error != 'skip':
        return data_list
    kept = run_on_rank_zero(_readable_indices, loaders[0], [i['img_path'] for i in data_list])
    if len(kept) < len(data_list):
        print_log(f'skipped {len(data_list) - len(kept)} of {len(data_list)} images of the '
                  f'test set that cannot be read (named above); the metrics are over the '
                  f'other {len(kept)}', logger='current', level=30)
    return [data_list[i] for i in kept]


def _readable_indices(loader: LoadImageChecked, paths: list) -> list:
    """The indices of the paths that ``loader`` reads; each other one is logged."""
    kept = []
    for index, path in enumerate(paths):
        img, problem = loader.read(path)
        if img is None:
            loader._fail(path, problem)
        else:
            kept.append(index)
    return kept


class _DataSetLoader(LoadImageChecked):
    """The loader :class:`ChecksImages` puts at the head of a pipeline."""
    skip_hint = "set bad_images='skip' on the data set to skip it"


class ChecksImages:
    """A data set mixin: the ``LoadImageFromFile`` at the head of the pipeline
    loads as :class:`LoadImageChecked`, and a test set drops unreadable images
    when it is built (:func:`drop_unreadable_images`).

    The configs name the toolbox's own ``LoadImageFromFile``, because mmdet's,
    mmseg's and mmpretrain's inferencers look for it by that name to put their
    loader of paths and arrays in its place; the data set, which reads only
    files, swaps in the checking subclass, which reads each file once and
    decodes it as mmcv does.

    Args:
        bad_images (str): ``'raise'`` (default): a corrupt or truncated image
            is an error naming the file; ``'skip'``: it is named in a warning
            and left out (training draws another sample; a test set drops it
            when it is built and counts it).
    """

    def __init__(self, *args, pipeline=(), bad_images: str = 'raise', **kwargs):
        super().__init__(*args, pipeline=_checked_head(pipeline, bad_images), **kwargs)

    def filter_data(self):
        return drop_unreadable_images(self, super().filter_data())


def _checked_head(pipeline, bad_images: str) -> list:
    if bad_images not in ('raise', 'skip'):
        raise ConfigError(f"data set bad_images must be 'raise' or 'skip', got {bad_images!r}")
    pipeline = list(pipeline)
    head = pipeline[0] if pipeline else None
    if isinstance(head, dict) and head.get('type') in ('LoadImageFromFile',
                                                        'mmcv.LoadImageFromFile'):
        args = {key: value for key, value in head.items() if key != 'type'}
        pipeline[0] = _DataSetLoader(on_error=bad_images, **args)
    return pipeline

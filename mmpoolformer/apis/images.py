"""Checks of what the inference API and the web demo are given to run on."""
import os

from mmpoolformer.utils.errors import UsageError

# Larger inputs are refused (a 16-megapixel photo passes): decoding and running
# a detector on a decompression bomb would take the server's memory with it.
DEFAULT_MAX_PIXELS = 4096 * 4096


def check_image(image, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = 'input'):
    """Refuse what is not an image, or an image above ``max_pixels``, with a
    UsageError that says which and why. Accepts an array (H, W[, C]) or a file
    path, whose size is read from its header without decoding it."""
    import numpy as np
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError
        name = str(image)
        if not os.path.isfile(image):
            raise FileNotFoundError(f'image not found: {image}')
        try:
            with Image.open(image) as img:
                width, height = img.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise UsageError(f'{name} is not an image this demo can read '
                             f'({str(err).splitlines()[0]})') from None
    elif isinstance(image, np.ndarray) and image.size and (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        height, width = image.shape[:2]
    else:
        got = (f'array of shape {image.shape}' if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise UsageError(f'{name} is not an image (got {got})')
    if width * height > max_pixels:
        raise UsageError(f'{name} is {width}x{height} = {width * height} pixels, above the '
                         f'limit of {max_pixels} (max_pixels); downscale it or raise the limit')


def checked_inputs(inputs, max_pixels) -> list:
    """The inputs as the list the inferencer will run on, each checked: a folder
    becomes its files (what the toolboxes' inferencers would list themselves), so
    that nothing in it escapes the check."""
    if isinstance(inputs, (str, os.PathLike)) and os.path.isdir(inputs):
        inputs = [os.path.join(inputs, name) for name in sorted(os.listdir(inputs))
                  if os.path.isfile(os.path.join(inputs, name))]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for item in inputs:
        check_image(item, max_pixels)
    return inputs

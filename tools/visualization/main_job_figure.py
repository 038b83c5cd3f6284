"""The README's figure of the main job, docs/images/maskrcnn_builtin.png, from the main
job's own output: a few of the validation images that tools/test.py --show-dir drew
(ground truth left, prediction right), one above the other.

    python tools/visualization/main_job_figure.py [--ids 12 30] [--count 3]

Without --ids it takes the images with the most objects (then the most classes, then
the lowest id), so that the figure shows the detector on the busiest scenes. The ids and
file names it used are written into the PNG (text chunk ``mmpoolformer-figure``, JSON),
where tests/test_main_job.py checks them against the built-in val set.
"""
import argparse
import json
import os.path as osp
from collections import defaultdict

from PIL import Image, PngImagePlugin

from mmpoolformer.utils.cli import cli
from mmpoolformer.utils.errors import UsageError

RECORD_KEY = 'mmpoolformer-figure'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--vis-dir', default='work_dirs/maskrcnn_poolformer_s12_builtin/vis',
                        help='what tools/test.py --show-dir drew')
    parser.add_argument('--ann', default='data/builtin/coco/annotations/instances_val2017.json',
                        help='the annotations of the images drawn')
    parser.add_argument('--ids', type=int, nargs='+', help='image ids to show, in this order')
    parser.add_argument('--count', type=int, default=3, help='images to pick without --ids')
    parser.add_argument('--out', default='docs/images/maskrcnn_builtin.png')
    return parser.parse_args(argv)


def busiest(coco: dict, count: int) -> list[int]:
    """The ids of the ``count`` images with the most objects, then classes, then lowest id."""
    objects, classes = defaultdict(int), defaultdict(set)
    for ann in coco['annotations']:
        objects[ann['image_id']] += 1
        classes[ann['image_id']].add(ann['category_id'])
    ids = sorted((image['id'] for image in coco['images']),
                 key=lambda i: (-objects[i], -len(classes[i]), i))
    return ids[:count]


def compose(paths: list[str]) -> Image.Image:
    """The images one above the other, left-aligned."""
    images = [Image.open(path).convert('RGB') for path in paths]
    figure = Image.new('RGB', (max(im.width for im in images), sum(im.height for im in images)))
    top = 0
    for image in images:
        figure.paste(image, (0, top))
        top += image.height
    return figure


def save_with_record(figure: Image.Image, path: str, record: dict):
    info = PngImagePlugin.PngInfo()
    info.add_text(RECORD_KEY, json.dumps(record))
    figure.save(path, pnginfo=info)


def read_record(path: str) -> dict:
    """What save_with_record wrote into the PNG; {} for a PNG without it."""
    with Image.open(path) as image:
        return json.loads(image.text.get(RECORD_KEY, '{}'))


def make_figure(vis_dir: str, ann_file: str, out: str, ids=None, count: int = 3) -> dict:
    with open(ann_file) as f:
        coco = json.load(f)
    names = {image['id']: image['file_name'] for image in coco['images']}
    ids = ids or busiest(coco, count)
    unknown = [i for i in ids if i not in names]
    if unknown:
        raise UsageError(f'no image of id {unknown} in {ann_file}')
    # The hook names each drawing as the image file it drew.
    paths = [osp.join(vis_dir, osp.basename(names[i])) for i in ids]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise UsageError(f'{missing[0]} not found: run tools/run_main.sh (or tools/test.py '
                         f'CONFIG CHECKPOINT --show-dir {vis_dir}) first')
    record = dict(image_ids=ids, file_names=[names[i] for i in ids], vis_dir=vis_dir,
                  annotations=ann_file)
    save_with_record(compose(paths), out, record)
    return record


@cli
def main(argv=None):
    args = parse_args(argv)
    record = make_figure(args.vis_dir, args.ann, args.out, args.ids, args.count)
    print(f'wrote {args.out}: images {", ".join(record["file_names"])} of {args.vis_dir}')


if __name__ == '__main__':
    main()

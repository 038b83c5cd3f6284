"""Check the train, val and test sets of a config before a long run.

    python tools/data/check_dataset.py CONFIG [--cfg-options k=v ...] [--samples N]
                                       [--decode-all [--workers N]]

Builds each split as training would, prints a summary table per split (images,
annotations or classes, label range, decoded sample images) and stops with
`error: ...` naming the first problem: a file that is missing, an empty split or
class folder, a class count that disagrees with the model, a label outside the
classes, a label map that is not single-channel, a box outside its image, an
image that does not decode or does not load at the size of its annotations
(a COCO file's, a label map's). --decode-all decodes every image instead of a
sample (in parallel, with the expected time first and a progress bar), and names
each one that fails.
The checks are listed in mmpoolformer/datasets/check.py.
"""
import argparse
import os

from mmengine.config import DictAction

from mmpoolformer.datasets.check import check_config
from mmpoolformer.utils.cli import cli


def usable_cpus() -> int:
    if hasattr(os, 'sched_getaffinity'):  # Linux: the CPUs this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.dataset.data_root=...')
    parser.add_argument('--samples', type=int, default=8, metavar='N',
                        help='images to decode per split, spread over it (default 8); '
                             'every file is checked to exist either way')
    parser.add_argument('--decode-all', action='store_true',
                        help='decode every image instead of --samples, in parallel, and name '
                             'each one that fails: the check before a multi-day run')
    parser.add_argument('--workers', type=int, default=usable_cpus(), metavar='N',
                        help='processes that decode with --decode-all (default: the CPUs '
                             'this process may use, here %(default)s)')
    args = parser.parse_args(argv)
    if args.samples < 0:
        parser.error('--samples must be 0 or more')
    if args.workers < 1:
        parser.error('--workers must be 1 or more')
    check_config(args.config, args.cfg_options, samples=args.samples,
                 decode_workers=args.workers if args.decode_all else None)
    print('all checks passed')


if __name__ == '__main__':
    main()

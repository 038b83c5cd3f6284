"""Check the train, val and test sets of a config before a long run.

    python tools/data/check_dataset.py CONFIG [--cfg-options k=v ...] [--samples N]

Builds each split as training would, prints a summary table per split (images,
annotations or classes, label range, decoded sample images) and stops with
`error: ...` naming the first problem: a file that is missing, an empty split, a
class count that disagrees with the model, a label outside the classes, an image
that does not decode. The checks are listed in mmpoolformer/datasets/check.py.
"""
import argparse

from mmengine.config import DictAction

from mmpoolformer.datasets.check import check_config
from mmpoolformer.utils.cli import cli


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
    args = parser.parse_args(argv)
    if args.samples < 0:
        parser.error('--samples must be 0 or more')
    check_config(args.config, args.cfg_options, samples=args.samples)
    print('all checks passed')


if __name__ == '__main__':
    main()

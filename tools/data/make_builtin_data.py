"""Draw the built-in data sets (shapes in the real data sets' layouts) under data/builtin/.

    python tools/data/make_builtin_data.py {imagenet,coco,ade20k} [--root data/builtin] [--seed 0]
"""
import argparse
import os.path as osp

from mmpoolformer.datasets.builtin import BUILDERS
from mmpoolformer.utils.cli import cli


@cli
def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=sorted(BUILDERS))
    parser.add_argument('--root', default='data/builtin', help='parent folder of the set')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    out = osp.join(args.root, args.kind)
    BUILDERS[args.kind](out, seed=args.seed)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()

"""Parameters and MACs of any config's model, counted with fvcore as in the paper.

Default input: 224x224 for classifiers, 1280x800 for detectors, 512x512 for segmentors.
"""
import argparse

from complexity import DEFAULT_SHAPES, count_macs, count_parameters

from mmpoolformer.apis import build_model
from mmpoolformer.utils.cli import cli


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: by task)')
    return parser.parse_args()


@cli
def main():
    args = parse_args()
    model = build_model(args.config, {'model.backbone.init_cfg': None}).eval()
    shape = tuple(args.shape) if args.shape else DEFAULT_SHAPES[model.cfg.default_scope]
    params, macs = count_parameters(model), count_macs(model, shape)
    print(f'config: {args.config}\ninput: 3x{shape[0]}x{shape[1]}\n'
          f'params: {params / 1e6:.2f} M\nMACs: {macs / 1e9:.2f} G (fvcore)')


if __name__ == '__main__':
    main()

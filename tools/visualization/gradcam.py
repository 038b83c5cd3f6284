"""Grad-CAM class activation maps of PoolFormer and the paper's comparison models.

  gradcam.py IMAGE CONFIG [--checkpoint CKPT] [--target-layers LAYER] --out cam.png
  gradcam.py IMAGE --compare poolformer deit resmlp resnet swin --out cams.png

CONFIG is any classification config (ours or ``mmpretrain::...``); --compare draws
several models side by side (see cam_comparison.py, next to this file, for where each
comes from).
"""
import argparse

import cv2
from cam_comparison import COMPARISON_MODELS, build_model, side_by_side

from mmpoolformer.apis.run import parse_args_trusting
from mmpoolformer.utils.cli import cli
from mmpoolformer.utils.errors import UsageError
from mmpoolformer.visualization import cam


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('image')
    parser.add_argument('config', nargs='?', help='classification config (or use --compare)')
    parser.add_argument('--checkpoint', help='weights of CONFIG (any PoolFormer layout)')
    parser.add_argument('--target-layers', default='backbone.stages.-1',
                        help='module path of the layer to explain (negative index from the end)')
    parser.add_argument('--compare', nargs='+', choices=sorted(COMPARISON_MODELS),
                        help='draw these models side by side instead of CONFIG')
    parser.add_argument('--checkpoints', nargs='+', default=[],
                        help='with --compare: NAME=CKPT weights for some of the models')
    parser.add_argument('--target-class', type=int, help='class to explain (default: predicted)')
    parser.add_argument('--size', type=int, default=224,
                        help='input side in pixels, the one the models were trained at '
                        '(64 for the built-in shapes)')
    parser.add_argument('--out', default='cam.png')
    return parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    if args.compare:
        weights = dict(item.split('=', 1) for item in args.checkpoints)
        runs = [(name, *COMPARISON_MODELS[name], weights.get(name)) for name in args.compare]
    elif args.config:
        runs = [('', args.config, args.target_layers, 0, args.checkpoint)]
    else:
        raise UsageError('give a CONFIG or --compare MODEL ...')
    panels, titles = [], []
    for name, source, layer, drop_tokens, checkpoint in runs:
        model = build_model(source, checkpoint)
        overlay, _, predicted = cam.grad_cam(model, args.image, layer, drop_tokens,
                                             args.target_class, args.size)
        panels.append(overlay)
        titles.append(f'{name} (class {predicted})'.strip())
    picture = side_by_side(panels, titles) if args.compare else panels[0]
    cv2.imwrite(args.out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()

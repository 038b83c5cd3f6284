"""Run a classifier, detector or segmentor on an image or a folder of images and
save the drawn results (boxes and masks, segmentation overlays, top classes)."""
import argparse

from mmpoolformer.apis import DEFAULT_MAX_PIXELS, inference
from mmpoolformer.apis.run import parse_args_trusting
from mmpoolformer.utils.cli import cli


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL (any PoolFormer layout)')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('--out-dir', default='outputs', help='results go to OUT_DIR/vis')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw boxes scoring at least this')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='refuse larger images (width x height)')
    return parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    inference(args.config, args.checkpoint, args.inputs, out_dir=args.out_dir,
              device=args.device, score_thr=args.score_thr, max_pixels=args.max_pixels)
    print(f'results written to {args.out_dir}/vis')


if __name__ == '__main__':
    main()

"""Export a classifier, a segmentor or a detector's backbone + neck to ONNX, and check
the file against PyTorch with ONNX Runtime (docs/deployment.md).

    python tools/deployment/pytorch2onnx.py configs/classification/poolformer_s12_in1k.py \\
        poolformer_s12.pth.tar --out poolformer_s12.onnx [--deploy] [--shape 224 224]

Exits non-zero with one line when ONNX Runtime and PyTorch differ by more than
--rtol (max abs difference over the largest |output|).
"""
import argparse

from mmengine.config import DictAction

from mmpoolformer.apis import run as R
from mmpoolformer.models.backbones.deploy import switch_to_deploy
from mmpoolformer.utils.cli import cli


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL (any PoolFormer layout)')
    parser.add_argument('--out', help='ONNX file to write (default: <config name>.onnx)')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='export input size (default 224x224 classifiers, 512x512 '
                             'segmentors, 800x1344 detectors)')
    parser.add_argument('--batch', type=int, default=2, help='export batch size')
    parser.add_argument('--check-shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='size of the second checked input (default: each dynamic side + 32)')
    parser.add_argument('--deploy', action='store_true',
                        help='export the folded backbone (deploy.switch_to_deploy)')
    parser.add_argument('--rtol', type=float, default=None,
                        help='relative tolerance of the ONNX Runtime check (default 1e-4)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return R.parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    from mmpoolformer.apis import init_model
    from mmpoolformer.deployment import onnx
    model = init_model(args.config, R.checked_path(args.checkpoint),
                       cfg_options=args.cfg_options)
    if args.deploy:
        print(f'deploy: folded {switch_to_deploy(model.backbone)} blocks of the backbone')
    onnx.export_onnx(model, args.out or onnx.default_output(args.config, args.deploy),
                     args.shape, args.batch, args.check_shape,
                     onnx.RTOL if args.rtol is None else args.rtol)


if __name__ == '__main__':
    main()

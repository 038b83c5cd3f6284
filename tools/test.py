"""Evaluate a checkpoint (any PoolFormer layout) with a config's test set and metric."""
import argparse
import sys

from mmengine.runner import Runner

try:
    from mmpoolformer.apis import run as R
    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    from mmpoolformer.utils.cli import cli
except ImportError as err:  # e.g. mmcv without its compiled ops: the message says what to do
    sys.exit(f'error: {err}')


def parse_args():
    parser = R.add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--out', help='dump raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='save images with predictions drawn')
    parser.add_argument('--deploy', action='store_true',
                        help='fold norms, layer scales and pooling terms into the '
                             'convolutions first (models.backbones.deploy.switch_to_deploy)')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation with the config\'s tta_model and '
                             'tta_pipeline (segmentation: multi-scale + flip; detection: flip)')
    R.add_compile_arg(parser)
    return R.parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    cfg = R.prepare_config(args, checkpoint=args.checkpoint)
    if args.show_dir:
        R.enable_show_dir(cfg, args.show_dir)
    if args.deploy:
        R.add_custom_hook(cfg, 'mmpoolformer.DeployHook')
    if args.tta:
        R.enable_tta(cfg)
    if args.compile:
        R.enable_compile(cfg)
    with R.process_group_released():
        test(cfg, args.out)


def test(cfg, out=None):
    """A function of its own: the runner is gone once it returns or raises."""
    runner = Runner.from_cfg(cfg)
    if out:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    # The checkpoint is read through mmpoolformer.checkpoint.load_file.
    with mmengine_loads_through_load_file():
        runner.test()


if __name__ == '__main__':
    main()

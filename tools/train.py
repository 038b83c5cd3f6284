"""Train any mmpoolformer config (classification, detection, segmentation)."""
import argparse
import os
import sys

from mmengine.runner import Runner

try:
    from mmpoolformer.apis import run as R
    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    from mmpoolformer.engine import (
        enable_stop_and_resume,
        handling_training_faults,
        newest_checkpoint,
    )
    from mmpoolformer.utils.allocator import memory_allocator
    from mmpoolformer.utils.cli import cli
except ImportError as err:  # e.g. mmcv without its compiled ops: the message says what to do
    sys.exit(f'error: {err}')


def parse_args():
    parser = R.add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or from the latest one in '
                        'the work dir when no path is given (none yet: start afresh)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 on CUDA, bf16 autocast on a CPU '
                        'with AVX-512 BF16 or AMX')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log to TensorBoard (same as tensorboard = True in the config)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    R.add_compile_arg(parser)
    return R.parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    cfg = R.prepare_config(args)
    # Same random draws with or without an interruption (exact --resume), and SIGTERM /
    # SIGUSR1 save the iteration and exit 75 (docs/reliability.md).
    enable_stop_and_resume(cfg)
    if args.amp:
        R.enable_amp(cfg)
    if args.compile:
        R.enable_compile(cfg)
    if args.auto_scale_lr:
        R.enable_auto_scale_lr(cfg)
    elif (warning := R.batch_warning(cfg, R.launched_processes())) is not None:
        if os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) == '0':
            print(warning, file=sys.stderr)
    if args.resume == 'auto':
        # A requeued job resumes; its first run (nothing saved yet) keeps the config's load_from.
        if latest := newest_checkpoint(cfg.work_dir):
            cfg.resume, cfg.load_from = True, latest
    elif args.resume:
        cfg.resume, cfg.load_from = True, R.checked_path(args.resume)
    with R.process_group_released():
        train(cfg)


def train(cfg):
    """A function of its own: the runner is gone once it returns or raises."""
    # load_from and --resume read checkpoints through mmpoolformer.checkpoint.load_file.
    with mmengine_loads_through_load_file():
        runner = Runner.from_cfg(cfg)
        runner.logger.info(f'memory allocator: {memory_allocator()}')
        with handling_training_faults(runner):
            runner.train()


if __name__ == '__main__':
    main()

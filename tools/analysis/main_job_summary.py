"""The few lines that end the main job (tools/run_main.sh): the classifier's top-1, the
detector's box and mask mAP, the time of each stage, where the checkpoints and pictures
are, and the commands to try next.

The figures are read from the runs' own result files (run_logs.py: the classifier's last
validation in its ``vis_data/scalars.json``, the detector's test metrics in
``<run>/<run>.json``), the stage times from the file that run_main.sh writes, one
``NAME<TAB>SECONDS`` (or ``NAME<TAB>reused``) line per stage.

    python tools/analysis/main_job_summary.py --classifier WORK_DIR --detector WORK_DIR \\
        --det-config CONFIG --vis-dir DIR --stages STAGES.tsv
"""
import argparse
import glob
import os.path as osp

from run_logs import last_checkpoint, last_test, last_validation

from mmpoolformer.utils.cli import cli
from mmpoolformer.utils.errors import UsageError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--classifier', required=True, help="the classifier's work dir")
    parser.add_argument('--detector', required=True,
                        help="the detector's work dir (its training and its test run)")
    parser.add_argument('--det-config', required=True, help="the detector's config")
    parser.add_argument('--vis-dir', required=True,
                        help='where tools/test.py --show-dir drew the predictions')
    parser.add_argument('--stages', required=True, help='the stage times run_main.sh wrote')
    return parser.parse_args(argv)


def read_stages(path: str) -> list[tuple[str, float | None]]:
    """[(stage, seconds or None when its output was reused)] in the order they ran."""
    stages = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            name, _, seconds = line.rstrip('\n').partition('\t')
            if seconds != 'reused' and not seconds.isdigit():
                raise UsageError(f'{path}:{n}: not NAME<TAB>SECONDS or NAME<TAB>reused: '
                                 f'{line.strip()!r}')
            stages.append((name, None if seconds == 'reused' else float(seconds)))
    return stages


def duration(seconds: float) -> str:
    return f'{seconds:.0f} s' if seconds < 60 else f'{seconds / 60:.1f} min'


def metric(metrics: dict, key: str, where: str) -> float:
    if key not in metrics:
        raise UsageError(f'{where} has no {key} (it has: {", ".join(sorted(metrics))})')
    return metrics[key]


def summary(classifier: str, detector: str, det_config: str, vis_dir: str,
            stages: list) -> list[str]:
    run, validation = last_validation(classifier)
    top1 = metric(validation, 'accuracy/top1', f'the last validation of {run}')
    run, test = last_test(detector)
    box = metric(test, 'coco/bbox_mAP', f'the test of {run}')
    mask = metric(test, 'coco/segm_mAP', f'the test of {run}')
    cls_ckpt = osp.relpath(last_checkpoint(classifier))
    det_ckpt = osp.relpath(last_checkpoint(detector))
    pictures = len(glob.glob(osp.join(vis_dir, '*.png')) + glob.glob(osp.join(vis_dir, '*.jpg')))
    total = sum(seconds for _, seconds in stages if seconds is not None)
    times = ', '.join(f'{name} {"reused" if seconds is None else duration(seconds)}'
                      for name, seconds in stages)
    model = f'{det_config} {det_ckpt}'
    return [
        f'Main job done in {duration(total)} ({times}).',
        f'  classifier  top-1 {top1:.1f} on the built-in val set; checkpoint {cls_ckpt}',
        f'  Mask R-CNN  box mAP {box:.3f}, mask mAP {mask:.3f}; checkpoint {det_ckpt}',
        f'  pictures    {pictures} val images (ground truth left, prediction right) in '
        f'{vis_dir}',
        'Next, with the venv active (. .venv/bin/activate):',
        f'  python tools/test.py {model} --show-dir vis    # evaluate again',
        f'  python tools/demo/app.py {model}    # a web demo in your browser',
        '  your own data: docs/finetune.md (a detector on a COCO-format json, a classifier '
        'on an image folder)',
    ]


@cli
def main(argv=None):
    args = parse_args(argv)
    print('\n'.join(summary(args.classifier, args.detector, args.det_config, args.vis_dir,
                            read_stages(args.stages))))


if __name__ == '__main__':
    main()

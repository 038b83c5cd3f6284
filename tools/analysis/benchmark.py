"""Benchmark this project's PoolFormer against timm's and mmpretrain's, side by side.

Same weights and inputs everywhere; img/s is the median of --repeats timed runs
after --warmup runs. Prints Markdown tables (and writes JSON with --json).

    python tools/analysis/benchmark.py                            # S12, batch 16, 224, fp32
    python tools/analysis/benchmark.py --arch m36 --compile --bf16 --train
    python tools/analysis/benchmark.py --onnxruntime             # + ONNX Runtime rows
    python tools/analysis/benchmark.py --dense maskrcnn fpn       # with_cp memory / time
    python tools/analysis/benchmark.py --dense-inference maskrcnn fpn  # vs mmpretrain's backbone
    python tools/analysis/benchmark.py --no-inference --train --dense-train maskrcnn fpn \
        --dense-profile maskrcnn fpn     # training: tools/train.py's step, dense models
    python tools/analysis/benchmark.py --no-inference --pipelines  # data pipelines per worker
    python tools/analysis/benchmark.py --device cuda --fp16 --bf16 --batch 64   # on a GPU
"""
import argparse
import json
import os
import platform

import speed
import torch

from mmpoolformer.utils.allocator import memory_allocator
from mmpoolformer.utils.cli import cli
from mmpoolformer.utils.errors import UsageError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', default='s12', choices=['s12', 's24', 's36', 'm36', 'm48'])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--res', type=int, default=224)
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='torch CPU threads (default: all cores)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--compile', action='store_true',
                        help='add torch.compile rows (ours deployed, timm channels_last); '
                             "with --train, tools/train.py's real loop with --compile against "
                             "eager and timm's same-recipe step compiled")
    parser.add_argument('--bf16', action='store_true',
                        help='add bf16 inference rows (and with --train the --amp step)')
    parser.add_argument('--onnxruntime', action='store_true',
                        help='add ONNX Runtime rows (our export, fp32, with and without '
                             'its graph optimisations)')
    parser.add_argument('--fp16', action='store_true', help='add fp16 inference rows')
    parser.add_argument('--device', default='cpu',
                        help='run the inference table here, e.g. cuda (default: cpu)')
    parser.add_argument('--bf16-agreement', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                        help='top-1 of fp32 vs bf16 on CONFIG\'s test set')
    parser.add_argument('--train', action='store_true',
                        help='add training steps (forward + backward + AdamW), '
                        "tools/train.py's real loop with the ImageNet config (a subprocess, "
                        '--warmup + --repeats iterations, with the time of each part) '
                        'and its step rebuilt in this process')
    parser.add_argument('--dense', nargs='+', choices=list(speed.DENSE), default=[],
                        help='dense models: training step with and without with_cp')
    parser.add_argument('--dense-inference', nargs='+', choices=list(speed.DENSE),
                        default=[], help='dense models: whole-model inference, ours against '
                        'the same model with mmpretrain\'s PoolFormer backbone')
    parser.add_argument('--dense-train', nargs='+', choices=list(speed.DENSE), default=[],
                        help='dense models: whole-model training step at the configs\' '
                        'batch, ours against the same model with mmpretrain\'s backbone')
    parser.add_argument('--dense-profile', nargs='+', choices=list(speed.DENSE), default=[],
                        help='dense models: shares of the training step (preprocessor, '
                        'backbone, neck, heads, AdamW, mmcv RoIAlign / NMS)')
    parser.add_argument('--dense-batch', type=int, default=1)
    parser.add_argument('--pipelines', action='store_true',
                        help='add the configs\' train data pipelines, images/s per data-loader '
                             'worker, against timm\'s ImageNet train transforms')
    parser.add_argument('--allocators', action='store_true',
                        help="tools/train.py's real loop under glibc's malloc, glibc "
                             'without mmap / trim, jemalloc and tcmalloc (those installed)')
    parser.add_argument('--no-inference', action='store_true',
                        help='skip the classification inference table')
    parser.add_argument('--rounds', type=int, default=1,
                        help='--train --compile: times the real loops run in turn (eager, '
                             'compiled, eager, ...)')
    parser.add_argument('--compiled-training-only', action='store_true',
                        help='with --train --compile: only the compiled-training table')
    parser.add_argument('--json', help='also write the figures here')
    return parser.parse_args()


@cli
def main():
    args = parse_args()
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise UsageError(f'--device {args.device}: torch sees no CUDA device here')
    torch.set_num_threads(args.threads)
    # The allocator of this process (the rows timed here; the real loops' rows inherit it)
    machine = (f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
               f'{args.threads} threads, torch {torch.__version__}, '
               f'memory allocator: {memory_allocator()}, '
               f'CPU flags: {speed.cpu_vector_flags()}')
    if args.device.startswith('cuda'):
        machine += f', {torch.cuda.get_device_name(args.device)}'
    print(f'machine: {machine}')
    report = dict(machine=machine, args=vars(args))
    tables = []
    setting = f'PoolFormer-{args.arch.upper()}, batch {args.batch}, {args.res}x{args.res}'
    if not args.no_inference:
        rows = speed.inference_rows(args.arch, args.batch, args.res, args.warmup,
                                        args.repeats, args.compile, args.bf16,
                                        onnxruntime=args.onnxruntime,
                                        device=args.device, fp16=args.fp16)
        tables.append(speed.format_table(rows, f'Inference, {setting}, fp32'))
        report['inference'] = speed.rows_as_dicts(rows)
    if args.train and not args.compiled_training_only:
        rows = speed.training_rows(args.arch, args.batch, args.res,
                                       repeats=args.repeats, bf16=args.bf16,
                                       device=args.device)
        tables.append(speed.format_table(rows, f'Training step, {setting}, fp32'))
        report['training'] = speed.rows_as_dicts(rows)
        # tools/train.py's real loop runs warmup + repeats iterations in a subprocess
        rows = speed.runner_training_rows(args.arch, args.batch, args.res,
                                          warmup=args.warmup, repeats=args.repeats,
                                          threads=args.threads)
        tables.append(speed.format_table(
            rows, f"tools/train.py's real loop and training step against timm's, "
            f'{setting}, fp32', ratio='real loop / this'))
        report['training_runner'] = speed.rows_as_dicts(rows)
    if args.train and args.compile:
        rows = speed.compiled_training_rows(args.arch, args.batch, args.res, warmup=args.warmup,
                                            repeats=args.repeats, threads=args.threads,
                                            rounds=args.rounds)
        tables.append(speed.format_table(
            rows, f"Compiled training: tools/train.py --compile's real loop against eager "
            f"and timm's same-recipe step compiled, {setting}, fp32",
            ratio='compiled real loop / this'))
        report['training_compiled'] = speed.rows_as_dicts(rows)
    if args.allocators:
        rows = speed.allocator_rows(args.arch, args.batch, args.res, warmup=args.warmup,
                                    repeats=args.repeats, threads=args.threads)
        tables.append(speed.format_table(
            rows, f"tools/train.py's real loop under each memory allocator, {setting}, fp32",
            ratio='this / glibc default'))
        report['allocators'] = speed.rows_as_dicts(rows)
    if args.dense:
        rows = speed.dense_rows(args.dense, args.dense_batch)
        tables.append(speed.format_table(
            rows, 'Dense models (S12): Mask R-CNN 1333x800 / Semantic FPN 512x512, training step'))
        report['dense'] = speed.rows_as_dicts(rows)
    if args.dense_train:
        rows = speed.dense_training_rows(args.dense_train, repeats=args.repeats)
        tables.append(speed.format_table(
            rows, 'Dense models (S12): Mask R-CNN 1333x800 / Semantic FPN 512x512, training '
            "step, ours against mmpretrain's backbone"))
        report['dense_training'] = speed.rows_as_dicts(rows)
    if args.dense_profile:
        rows = speed.dense_profile_rows(args.dense_profile, repeats=args.repeats)
        tables.append(speed.format_table(
            rows, 'Dense models (S12): where the training step\'s time goes'))
        report['dense_profile'] = speed.rows_as_dicts(rows)
    if args.dense_inference:
        rows = speed.dense_inference_rows(args.dense_inference, args.dense_batch,
                                              repeats=args.repeats)
        tables.append(speed.format_table(
            rows, f'Dense models (S12): Mask R-CNN 1333x800 / Semantic FPN 512x512, '
            f'inference, batch {args.dense_batch}, fp32'))
        report['dense_inference'] = speed.rows_as_dicts(rows)
    if args.pipelines:
        from pipelines import pipeline_rows
        rows = pipeline_rows(repeats=args.repeats)
        tables.append(speed.format_table(
            rows, 'Data pipelines: images/s per worker (one thread)', ratio='this / timm'))
        report['pipelines'] = speed.rows_as_dicts(rows)
    if args.bf16_agreement:
        result = speed.bf16_agreement(*args.bf16_agreement)
        tables.append('### bf16 vs fp32 on ' + args.bf16_agreement[0] + '\n\n' + ', '.join(
            f'{k}: {v:.1f}' if isinstance(v, float) else f'{k}: {v}' for k, v in result.items()))
        report['bf16_agreement'] = result
    print('\n\n'.join(tables))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()

"""The table of tools/gpu_check.sh: per training run, seconds per iteration, images per
second and peak GPU memory, read from the runs' own logs.

    python tools/analysis/gpu_check_table.py --out TABLE.md WORK_DIR [WORK_DIR ...]

Each WORK_DIR holds one tools/train.py run; its latest ``<timestamp>/`` folder is read:

- ``vis_data/scalars.json``: per logged training iteration, ``time`` (seconds, as
  mmengine's IterTimerHook measures it; gpu_check.sh logs every iteration with a
  window of 1) and, on CUDA, ``memory`` (MB: ``torch.cuda.max_memory_allocated`` on
  rank 0 since the previous log line, which mmengine then resets);
- ``<timestamp>.log``: the number of processes ("GPU number: N"), and from the config
  it prints, the per-GPU batch size (``train_dataloader.batch_size``) and the optimizer
  wrapper (``AmpOptimWrapper`` for ``--amp``).

s/iteration is the median over the iterations after the first ``--warmup`` (CUDA
kernels picked, allocator grown); img/s is processes x batch / that; peak memory is
the largest ``memory`` of the run. Standard library only.
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys


class LogError(Exception):
    pass


def config_value(log_text: str, variable: str, key: str):
    """``key`` of the dict ``variable = dict(...)`` in the config a log prints, at the
    top level of that dict (not inside a nested one), as written; None if absent."""
    start = re.search(rf'^{variable} = dict\(', log_text, re.MULTILINE)
    if start is None:
        return None
    top, depth, quote = [], 1, None
    for char in log_text[start.end():]:
        if quote:  # inside a string: brackets do not count
            quote = None if char == quote else quote
        elif char in '\'"':
            quote = char
        elif char in '([{':
            depth += 1
        elif char in ')]}':
            depth -= 1
            if depth == 0:
                break
        if depth == 1 or (depth == 2 and char in '([{'):
            top.append(char)
    found = re.search(rf'(?:^|[\s,(]){key}=(\'[^\']*\'|"[^"]*"|[^,\s)]+)', ''.join(top))
    return found[1].strip('\'"') if found else None


def read_run(work_dir: str, warmup: int = 5) -> dict:
    """The figures of the latest run in ``work_dir`` (see the module's docstring)."""
    runs = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise LogError(f'{work_dir}: no <timestamp>/vis_data/scalars.json (no training run '
                       'logged there)')
    run_dir = os.path.dirname(os.path.dirname(runs[-1]))
    log_file = os.path.join(run_dir, os.path.basename(run_dir) + '.log')
    if not os.path.isfile(log_file):
        raise LogError(f'{run_dir}: no log file {os.path.basename(log_file)}')
    with open(log_file) as f:
        log_text = f.read()
    gpus = re.search(r'^\s*GPU number: (\d+)', log_text, re.MULTILINE)
    batch = config_value(log_text, 'train_dataloader', 'batch_size')
    if gpus is None or batch is None:
        raise LogError(f'{log_file}: no "GPU number" or train_dataloader batch_size in '
                       'the log (not an mmengine training log?)')
    with open(runs[-1]) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    train = [s for s in lines if 'time' in s and any(k.startswith('loss') for k in s)]
    timed = [s['time'] for s in train if s['step'] > warmup]
    if not timed:
        raise LogError(f'{runs[-1]}: no training iteration logged after the first {warmup}')
    memory = [s['memory'] for s in train if 'memory' in s]
    wrapper = config_value(log_text, 'optim_wrapper', 'type') or 'OptimWrapper'
    s_per_iter = statistics.median(timed)
    images = int(gpus[1]) * int(batch)
    return dict(run=os.path.basename(os.path.normpath(work_dir)), optim_wrapper=wrapper,
                amp=wrapper.endswith('AmpOptimWrapper'), gpus=int(gpus[1]),
                images_per_iter=images, iterations=len(train), timed=len(timed),
                s_per_iter=s_per_iter, img_per_s=images / s_per_iter,
                peak_memory_mb=max(memory) if memory else None)


def format_table(rows: list) -> str:
    lines = ['| run | precision | GPUs | img/iter | iterations (timed) | s/iter | img/s | '
             'peak GPU memory (MB) |', '|---|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        precision = f'AMP ({r["optim_wrapper"]})' if r['amp'] else 'fp32'
        memory = 'n/a' if r['peak_memory_mb'] is None else str(r['peak_memory_mb'])
        lines.append(f'| {r["run"]} | {precision} | {r["gpus"]} | {r["images_per_iter"]} | '
                     f'{r["iterations"]} ({r["timed"]}) | {r["s_per_iter"]:.4f} | '
                     f'{r["img_per_s"]:.1f} | {memory} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    parser.add_argument('--out', help='also write the table (Markdown) here')
    parser.add_argument('--json', help='also write the figures here')
    parser.add_argument('--warmup', type=int, default=5,
                        help='iterations left out of s/iteration (default: 5)')
    args = parser.parse_args(argv)
    try:
        rows = [read_run(work_dir, args.warmup) for work_dir in args.work_dirs]
    except (LogError, OSError, ValueError) as err:
        sys.exit(f'error: {err}')
    table = format_table(rows)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()

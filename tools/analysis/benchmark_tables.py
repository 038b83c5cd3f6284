"""Write the benchmark and model tables of the README, docs/*.md and configs/*/README.md
from docs/benchmarks/*.json and configs/*/metafile.yml.

Every benchmark figure and model size in the docs sits between two marker comments,
and this tool writes what is between them from the JSON that
tools/analysis/benchmark.py saved (--json) or from the metafiles that
tools/analysis/make_metafiles.py wrote, so no figure is typed by hand:

    <!-- benchmark-table: s12_cpu inference -->
    ... (written by this tool)
    <!-- /benchmark-table -->

The marker names a file of docs/benchmarks/ (without .json) and, optionally, one
of its sections (inference, training, training_runner, training_compiled, allocators, dense,
dense_training, dense_profile, dense_inference, bf16_agreement, pipelines;
all of them when left out), or ``goals``: the performance goals, each with what
the JSON files measured, or ``models PATTERNS [COLUMNS]``: the metafiles' entries
whose names match PATTERNS (comma-separated globs, in that order; ``!GLOB`` leaves
names out) with COLUMNS among params, macs, metrics, weights (default: the first
three).

    python tools/analysis/benchmark_tables.py           # rewrite the docs in place
    python tools/analysis/benchmark_tables.py --check   # exit 1 if a doc differs
"""
import argparse
import fnmatch
import glob
import json
import math
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = os.path.join('docs', 'benchmarks')
SECTIONS = ('inference', 'training', 'training_runner', 'training_compiled', 'allocators', 'dense',
            'dense_training', 'dense_profile', 'dense_inference', 'bf16_agreement', 'pipelines')
ROW_SECTIONS = tuple(s for s in SECTIONS if s not in ('bf16_agreement', 'pipelines'))
# The GPU rate the data pipelines must feed: timm's published training throughput of
# PoolFormer-S12 on one RTX 3090 (AMP, channels_last), as issue 23 quotes it.
GPU_IMG_PER_S = 1343
BLOCK = re.compile(r'(<!-- benchmark-table: ([^>]*?) -->\n)(.*?)(<!-- /benchmark-table -->)',
                   re.S)


class TableError(Exception):
    """A marker or a JSON file the tables cannot be written from."""


def significant(x: float) -> str:
    """Three significant digits, trailing zeros kept: 25.0, 0.245, 9.82, 208."""
    return f'{x:#.3g}'.rstrip('.')


def load(name: str) -> dict:
    path = os.path.join(ROOT, BENCHMARKS, name + '.json')
    if not os.path.isfile(path):
        raise TableError(f'{os.path.join(BENCHMARKS, name)}.json does not exist')
    with open(path) as f:
        return json.load(f)


def link(name: str, doc_dir: str, text: str = None) -> str:
    """A Markdown link from a doc in ``doc_dir`` to docs/benchmarks/NAME.json."""
    source = f'{BENCHMARKS}/{name}.json'
    target = os.path.relpath(os.path.join(ROOT, source), doc_dir).replace(os.sep, '/')
    return f'[`{text or source}`]({target})'


def machine_line(record: dict, name: str, doc_dir: str) -> str:
    """The machine and CPU flags the figures were measured on, with a link to their file."""
    machine, _, flags = record['machine'].partition(', CPU flags: ')
    return (f'Machine: {machine}; CPU flags: {flags or "not recorded in this file"} '
            f'({link(name, doc_dir)}).')


def setting_line(record: dict, section: str) -> str:
    args = record['args']
    if section in ('dense', 'dense_inference'):
        setting = f'Batch {args["dense_batch"]}'
    else:
        setting = f'PoolFormer-{args["arch"].upper()}, batch {args["batch"]}, ' \
                  f'{args["res"]}x{args["res"]}'
    runs = {len(row.get('times_s', [])) for row in record[section]}
    timing = (f'median of {runs.pop()} timed runs' if len(runs) == 1 and 0 not in runs
              else 'median of the timed runs')
    return f'{setting}, {args["threads"]} threads; img/s is the {timing}.'


def rows_table(rows: list, ratio: str = 'ours default / this') -> list:
    lines = [f'| path | img/s | {ratio} | max abs diff | of FP32 peak | note |',
             '|---|---|---|---|---|---|']
    for row in rows:
        diff = '' if row['max_abs_diff'] is None else f'{row["max_abs_diff"]:.1e}'
        peak = '' if row['peak_fraction'] is None else f'{100 * row["peak_fraction"]:.0f}%'
        lines.append(f'| {row["name"]} | {significant(row["img_per_s"])} | '
                     f'{row["ratio"]:.2f} | {diff} | {peak} | {row["note"]} |')
    return lines


def agreement_table(result: dict, args: dict) -> list:
    config = args['bf16_agreement'][0] if args.get('bf16_agreement') else 'the test set'
    return [f'`{config}`, {result["images"]} test images:', '',
            '| top-1 fp32 | top-1 bf16 | same prediction |', '|---|---|---|',
            f'| {result["top1_fp32"]:.1f}% | {result["top1_bf16"]:.1f}% | '
            f'{result["agreement"]:.1f}% of images |']


def workers_needed(row: dict) -> int:
    """Workers of this row's rate that feed one GPU training at GPU_IMG_PER_S."""
    return math.ceil(GPU_IMG_PER_S / row['img_per_s'])


def pipelines_table(rows: list) -> list:
    """Images/s per data-loader worker, and the workers one GPU needs at GPU_IMG_PER_S."""
    runs = {len(row.get('times_s', [])) for row in rows}
    timing = f'median of {runs.pop()} passes' if len(runs) == 1 else 'median of the passes'
    lines = [f'One process, one thread (a data-loader worker); img/s is the {timing} over '
             'the generated images.', '',
             f'| pipeline | img/s per worker | this / timm | ImageNet workers for '
             f'{GPU_IMG_PER_S:,} img/s | note |', '|---|---|---|---|---|']
    for row in rows:
        # the GPU rate is S12's on ImageNet: the dense models train far slower
        workers = workers_needed(row) if row['name'].startswith(('timm', 'ImageNet')) else ''
        lines.append(f'| {row["name"]} | {significant(row["img_per_s"])} | {row["ratio"]:.2f} '
                     f'| {workers} | {row["note"]} |')
    return lines


# the ratio column of the sections whose ratio is not ours default / this
RATIOS = {'allocators': 'this / glibc default', 'training_compiled': 'compiled real loop / this'}


def file_block(name: str, section: str, doc_dir: str) -> str:
    record = load(name)
    sections = [section] if section else [s for s in SECTIONS if s in record]
    if not sections or sections[0] not in record:
        raise TableError(f'{BENCHMARKS}/{name}.json has no section {section!r} '
                         f'(it has: {", ".join(s for s in SECTIONS if s in record)})')
    lines = []
    for sec in sections:
        if sec == 'bf16_agreement':
            lines += agreement_table(record[sec], record['args'])
        elif sec == 'pipelines':
            lines += pipelines_table(record[sec])
        else:
            ratio = RATIOS.get(sec, 'ours default / this')
            lines += [setting_line(record, sec), ''] + rows_table(record[sec], ratio)
        lines.append('')
    lines.append(machine_line(record, name, doc_dir))
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- #
# Goals: (goal, benchmark file, section, what is measured, threshold)
# --------------------------------------------------------------------------- #
DEFAULT = 'ours: default eval (channels_last)'
FASTEST = None  # the fastest fp32 row of ours in the table
TIMM_RECIPE_NCHW = 'timm: train step NCHW, same recipe'
TIMM_RECIPE_CL = 'timm: train step channels_last, same recipe'
REAL_LOOP = "tools/train.py real loop, ImageNet config (mmengine's iteration time)"
COMPILED_LOOP = REAL_LOOP.replace('real loop', '--compile real loop')
TIMM_RECIPE_COMPILED = 'timm: train step channels_last + torch.compile, same recipe'
GOALS = [
    ('default eval path >= 1.5x timm NCHW eager', ('s12_cpu', 'm36_cpu'), 'inference',
     ('speedup', DEFAULT, 'timm: NCHW eager'), 1.5),
    ('default eval path >= 1.5x mmpretrain NCHW eager', ('s12_cpu', 'm36_cpu'), 'inference',
     ('speedup', DEFAULT, 'mmpretrain PoolFormer: NCHW eager'), 1.5),
    ('fastest fp32 path >= 1.25x timm channels_last eager', ('s12_cpu', 'm36_cpu'), 'inference',
     ('speedup', FASTEST, 'timm: channels_last eager'), 1.25),
    ('fastest fp32 path >= 1.3x timm channels_last + torch.compile', ('s12_cpu', 'm36_cpu'),
     'inference', ('speedup', FASTEST, 'timm: channels_last + torch.compile'), 1.3),
    ("fastest fp32 path at >= 80% of the same run's FP32 GEMM peak", ('s12_cpu', 'm36_cpu'),
     'inference', ('peak', FASTEST), 0.8),
    ('training step (NCHW) no slower than timm', ('s12_cpu',), 'training',
     ('speedup', 'ours: train step NCHW', 'timm: train step NCHW'), 1.0),
    ('training step (channels_last) no slower than timm', ('s12_cpu',), 'training',
     ('speedup', 'ours: train step channels_last', 'timm: train step channels_last'), 1.0),
    ("tools/train.py's real loop (ImageNet config) >= 1.25x timm's NCHW step, same recipe",
     ('s12_real_loop_cpu',), 'training_runner', ('speedup', REAL_LOOP, TIMM_RECIPE_NCHW), 1.25),
    ("tools/train.py's real loop (ImageNet config) >= 1.0x timm's channels_last step, "
     'same recipe', ('s12_real_loop_cpu',), 'training_runner',
     ('speedup', REAL_LOOP, TIMM_RECIPE_CL), 1.0),
    ("tools/train.py --compile's real loop >= 1.15x the eager real loop",
     ('s12_real_loop_cpu',), 'training_compiled', ('speedup', COMPILED_LOOP, REAL_LOOP),
     1.15),
    ("tools/train.py --compile's real loop >= 1.0x timm's channels_last step compiled, "
     'same recipe', ('s12_real_loop_cpu',), 'training_compiled',
     ('speedup', COMPILED_LOOP, TIMM_RECIPE_COMPILED), 1.0),
    ("the launchers' allocator (tcmalloc) >= 1.05x glibc's malloc in tools/train.py's real "
     'loop', ('s12_allocators_cpu',), 'allocators',
     ('speedup', 'tcmalloc (LD_PRELOAD)', 'glibc malloc (default)'), 1.05),
    ("Semantic FPN 512x512, batch 4, training step >= 1.3x the same model with mmpretrain's "
     'backbone', ('s12_training_cpu',), 'dense_training',
     ('speedup', 'fpn train step: ours (default)',
      'fpn train step: mmpretrain PoolFormer backbone'), 1.3),
    ("Mask R-CNN 1333x800, batch 2, training step >= 1.15x the same model with mmpretrain's "
     'backbone', ('s12_training_cpu',), 'dense_training',
     ('speedup', 'maskrcnn train step: ours (default)',
      'maskrcnn train step: mmpretrain PoolFormer backbone'), 1.15),
    ("Semantic FPN 512x512, whole model >= 1.3x the same model with mmpretrain's backbone",
     ('s12_dense_inference_cpu',), 'dense_inference',
     ('speedup', 'fpn whole model: ours (default eval)',
      'fpn whole model: mmpretrain PoolFormer backbone'), 1.3),
    ("Mask R-CNN 1333x800, whole model >= 1.15x the same model with mmpretrain's backbone",
     ('s12_dense_inference_cpu',), 'dense_inference',
     ('speedup', 'maskrcnn whole model: ours (default eval)',
      'maskrcnn whole model: mmpretrain PoolFormer backbone'), 1.15),
    ('`with_cp=True`: Mask R-CNN 1333x800 training step >= 40% less peak memory '
     'at <= 30% more time', ('s12_dense_cpu',), 'dense',
     ('checkpointing', 'maskrcnn train step, with_cp=False', 'maskrcnn train step, with_cp=True'),
     (0.4, 0.3)),
]
MEMORY = re.compile(r'peak memory of the step (\d+(?:\.\d+)?) MiB')


def _row(record: dict, name: str, section: str, label: str) -> dict:
    rows = record[section]
    if name is FASTEST:
        ours = [r for r in rows if r['name'].startswith('ours:')
                and not re.search(r'bf16|fp16', r['name'])]
        return max(ours, key=lambda r: r['img_per_s'])
    for row in rows:
        if row['name'] == name:
            return row
    raise TableError(f'{BENCHMARKS}/{label}.json, {section}: no row {name!r}')


def _memory(row: dict, label: str) -> float:
    match = MEMORY.search(row['note'])
    if not match:
        raise TableError(f'{BENCHMARKS}/{label}.json: row {row["name"]!r} records no peak '
                         'memory in its note')
    return float(match.group(1))


def measure(record: dict, label: str, section: str, what: tuple, threshold):
    """(what was measured, in words; whether the goal is met)."""
    kind, *names = what
    # Each goal is judged on the figures as shown, so that a row never reads "80%, no".
    kind, *names = what
    first = _row(record, names[0], section, label)
    which = f'{first["name"]}, ' if names[0] is FASTEST else ''
    if kind == 'peak':
        percent = round(100 * first['peak_fraction'])
        return f'{which}{percent}%', percent >= 100 * threshold
    second = _row(record, names[1], section, label)
    if kind == 'speedup':
        speedup = round(first['img_per_s'] / second['img_per_s'], 2)
        return (f'{which}{speedup:.2f}x ({significant(first["img_per_s"])} vs '
                f'{significant(second["img_per_s"])} img/s)'), speedup >= threshold
    less_memory = round(100 * (1 - _memory(second, label) / _memory(first, label)))
    more_time = round(100 * (first['img_per_s'] / second['img_per_s'] - 1))
    return (f'peak memory {_memory(first, label):.0f} -> {_memory(second, label):.0f} MiB '
            f'({less_memory}% less), step time {more_time:+d}%'), \
        less_memory >= 100 * threshold[0] and more_time <= 100 * threshold[1]


def goals_block(doc_dir: str) -> str:
    lines = ['| goal | model | measured | met |', '|---|---|---|---|']
    sources = []
    for goal, labels, section, what, threshold in GOALS:
        for label in labels:
            record = load(label)
            if section not in record:
                raise TableError(f'{BENCHMARKS}/{label}.json has no section {section!r}')
            text, met = measure(record, label, section, what, threshold)
            model = record['args']['arch'].upper() if section in ('inference', 'training') \
                else 'S12'
            lines.append(f'| {goal} | {model} | {text} | {"yes" if met else "no"} |')
            sources += [label] if label not in sources else []
    links = ', '.join(link(label, doc_dir, label + '.json') for label in sources)
    lines += ['', f'From {links}; each table gives its machine.']
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- #
# Models: sizes and metrics from configs/*/metafile.yml
# --------------------------------------------------------------------------- #
METAFILES = ('classification', 'detection', 'segmentation')
MODEL_COLUMNS = ('params', 'macs', 'metrics', 'weights')
METRIC_NAMES = {'Top 1 Accuracy': 'top-1', 'box AP': 'box AP', 'mask AP': 'mask AP',
                'mIoU': 'mIoU'}
BUILTIN_DATASET = 'Built-in shapes'
# The metafile header names the input size fvcore counted at ("... at 224x224.").
COUNTED_AT = re.compile(r'^#.* at (\d+x\d+)\.$', re.M)


def load_metafile(task: str) -> tuple:
    """(its models, the input size they were counted at, its path)."""
    path = os.path.join('configs', task, 'metafile.yml')
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    size = COUNTED_AT.search(text)
    if not size:
        raise TableError(f'{path}: the header does not say the input size MACs were '
                         'counted at ("... at WxH.")')
    return yaml.safe_load(text)['Models'], size.group(1), path


def select_models(patterns: list) -> list:
    """[(model entry, input size, metafile path)] whose names match the globs, in the
    globs' order and then the metafiles' order; names matching a ``!GLOB`` are left out."""
    keep = [p for p in patterns if not p.startswith('!')]
    drop = [p[1:] for p in patterns if p.startswith('!')]
    entries = [(model, size, path) for task in METAFILES
               for models, size, path in [load_metafile(task)] for model in models]
    chosen = []
    for pattern in keep:
        chosen += [e for e in entries if fnmatch.fnmatchcase(e[0]['Name'], pattern)
                   and not any(fnmatch.fnmatchcase(e[0]['Name'], d) for d in drop)
                   and e not in chosen]
    return chosen


def models_block(patterns: list, columns: list, doc_dir: str) -> str:
    chosen = select_models(patterns)
    if not chosen:
        raise TableError(f'no metafile entry matches {",".join(patterns)!r}')
    metrics = []
    for model, _, _ in chosen:
        for result in model.get('Results', []):
            metrics += [key for key in result['Metrics'] if key not in metrics]
    builtin = all(m['Metadata']['Training Data'] == BUILTIN_DATASET for m, _, _ in chosen)
    sizes = {size for _, size, _ in chosen}
    header = ['config']
    header += ['params'] if 'params' in columns else []
    header += [f'MACs (fvcore, {sizes.pop()})' if len(sizes) == 1 else 'MACs (fvcore)'] \
        if 'macs' in columns else []
    header += [f'{METRIC_NAMES.get(k, k)} (built-in data)' if builtin
               else f'paper {METRIC_NAMES.get(k, k)}' for k in metrics] \
        if 'metrics' in columns else []
    header += ['weights'] if 'weights' in columns else []
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for model, _, _ in chosen:
        meta = model['Metadata']
        found = {k: v for r in model.get('Results', []) for k, v in r['Metrics'].items()}
        row = [f'`{os.path.basename(model["Config"])}`']
        row += [f'{meta["Parameters"] / 1e6:.2f}M'] if 'params' in columns else []
        row += [f'{meta["FLOPs"] / 1e9:.2f}G'] if 'macs' in columns else []
        row += [f'{found[k]:.1f}' if k in found else '-' for k in metrics] \
            if 'metrics' in columns else []
        row += [f'[model]({model["Weights"]})' if 'Weights' in model else '-'] \
            if 'weights' in columns else []
        lines.append('| ' + ' | '.join(row) + ' |')
    sources = list(dict.fromkeys(path for _, _, path in chosen))
    links = ', '.join(f'[`{path}`]({os.path.relpath(os.path.join(ROOT, path), doc_dir)})'
                      .replace(os.sep, '/') for path in sources)
    lines += ['', f'From {links} (`tools/analysis/make_metafiles.py`).']
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- #
# Docs
# --------------------------------------------------------------------------- #
def block_for(spec: str, doc_dir: str) -> str:
    words = spec.split()
    if words == ['goals']:
        return goals_block(doc_dir)
    if words[:1] == ['models']:
        columns = words[2:] or list(MODEL_COLUMNS[:3])
        if len(words) < 2 or any(c not in MODEL_COLUMNS for c in columns):
            raise TableError(f'marker {spec!r}: expected "models PATTERNS [COLUMN ...]" with '
                             f'COLUMN one of {", ".join(MODEL_COLUMNS)}')
        return models_block(words[1].split(','), columns, doc_dir)
    if len(words) not in (1, 2) or (len(words) == 2 and words[1] not in SECTIONS):
        raise TableError(f'marker {spec!r}: expected "NAME [SECTION]" with SECTION one of '
                         f'{", ".join(SECTIONS)}, or "goals", or "models PATTERNS"')
    return file_block(words[0], words[1] if len(words) == 2 else None, doc_dir)


def render(text: str, doc_dir: str, doc: str = 'the doc'):
    """(``text`` with every benchmark block rewritten from the JSON files, the markers
    of the blocks that changed)."""
    changed = []

    def replace(match):
        spec = match.group(2).strip()
        try:
            body = '\n' + block_for(spec, doc_dir) + '\n'
        except TableError as e:
            raise TableError(f'{doc}: {e}') from None
        except (KeyError, TypeError, ValueError) as e:
            raise TableError(f'{doc}, marker {spec!r}: the JSON or metafile lacks or mangles '
                             f'{e}') from None
        if body != match.group(3):
            changed.append(spec)
        return match.group(1) + body + match.group(4)

    if text.count('<!-- benchmark-table:') != len(BLOCK.findall(text)):
        raise TableError(f'{doc}: a <!-- benchmark-table: ... --> marker has no '
                         '<!-- /benchmark-table --> after it')
    return BLOCK.sub(replace, text), changed


def docs() -> list:
    """The README, docs/*.md and the configs folders' READMEs."""
    return ['README.md'] + [
        os.path.relpath(p, ROOT) for pattern in (('docs', '*.md'), ('configs', '*', 'README.md'))
        for p in sorted(glob.glob(os.path.join(ROOT, *pattern)))]


def used_benchmarks() -> set:
    """The docs/benchmarks files some doc shows."""
    names = set()
    for doc in docs():
        with open(os.path.join(ROOT, doc)) as f:
            for spec in BLOCK.findall(f.read()):
                words = spec[1].split()
                if words == ['goals']:
                    names |= {label for _, labels, *_ in GOALS for label in labels}
                elif words[0] != 'models':
                    names.add(words[0])
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true',
                        help='change nothing; exit 1 naming each doc whose tables differ')
    args = parser.parse_args(argv)
    stale = []
    try:
        for doc in docs():
            path = os.path.join(ROOT, doc)
            with open(path) as f:
                text = f.read()
            new, changed = render(text, os.path.dirname(path), doc)
            if not changed:
                continue
            stale += [f'{doc} ({", ".join(changed)})']
            if not args.check:
                with open(path, 'w') as f:
                    f.write(new)
    except TableError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.check and stale:
        print(f'error: tables differ from {BENCHMARKS}/*.json and configs/*/metafile.yml in '
              f'{"; ".join(stale)}: run python tools/analysis/benchmark_tables.py',
              file=sys.stderr)
        return 1
    for doc in stale:
        print(f'wrote {doc}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

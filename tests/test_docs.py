"""The README, docs/*.md and the configs folders' READMEs: benchmark figures come from
docs/benchmarks/*.json and model sizes from the metafiles (through
tools/analysis/benchmark_tables.py), no other figure is typed by hand unless quoted with
its source or read from the code, the README stays short, nothing is dated by a
"session", and every relative link reaches a tracked file and heading."""
import glob
import json
import os
import re
import subprocess

import pytest

from helpers import ROOT, import_tool, run_tool, tracked_folders

tables = import_tool('tools/analysis/benchmark_tables.py')

DOCS = tables.docs()  # the README, docs/*.md and the configs folders' READMEs
README_MAX_LINES = 450


def _read(doc):
    with open(os.path.join(ROOT, doc)) as f:
        return f.read()


# --------------------------------------------------------------------------- #
# Benchmark tables
# --------------------------------------------------------------------------- #
def test_benchmark_tables_are_what_the_json_files_give():
    proc = run_tool('tools/analysis/benchmark_tables.py', '--check')
    assert proc.returncode == 0, proc.stderr


def test_a_figure_edited_by_hand_is_caught():
    """performance.md's S12 table says 37.9 img/s for the default path (37.88 in
    s12_cpu.json); typing 39.0 there must fail the check, naming doc and marker."""
    doc = 'docs/performance.md'
    text = _read(doc)
    row = '| ours: default eval (channels_last) | 37.9 |'
    assert row in text
    edited = text.replace(row, '| ours: default eval (channels_last) | 39.0 |', 1)
    _, changed = tables.render(edited, os.path.join(ROOT, 'docs'), doc)
    assert changed == ['s12_cpu inference']
    _, unchanged = tables.render(text, os.path.join(ROOT, 'docs'), doc)
    assert unchanged == []


def _fake_repo(tmp_path, monkeypatch, doc_text, records):
    (tmp_path / 'docs' / 'benchmarks').mkdir(parents=True)
    for name, record in records.items():
        (tmp_path / 'docs' / 'benchmarks' / f'{name}.json').write_text(json.dumps(record))
    (tmp_path / 'README.md').write_text('# readme\n')
    (tmp_path / 'docs' / 'perf.md').write_text(doc_text)
    monkeypatch.setattr(tables, 'ROOT', str(tmp_path))
    return tmp_path / 'docs' / 'perf.md'


ARGS = dict(arch='s12', batch=16, res=224, threads=2, dense_batch=1, bf16_agreement=None)
RECORD = {
    'machine': 'x86_64, 2 cores, 2 threads, torch 2.14.1, CPU flags: avx avx2 avx512_f',
    'args': ARGS,
    'inference': [
        dict(name='ours: default eval (channels_last)', img_per_s=37.884, ratio=1.0,
             max_abs_diff=4.768e-07, peak_fraction=0.6645, note='logits', times_s=[1, 2, 3]),
        dict(name='timm: NCHW eager', img_per_s=25.01, ratio=1.5147, max_abs_diff=0.0,
             peak_fraction=0.4388, note='stage-4 features', times_s=[1, 2, 3]),
    ],
}


def test_the_tables_written_from_a_json_file(tmp_path, monkeypatch):
    doc = _fake_repo(tmp_path, monkeypatch,
                     'Before.\n\n<!-- benchmark-table: run inference -->\nold\n'
                     '<!-- /benchmark-table -->\n\nAfter.\n', {'run': RECORD})
    assert tables.main([]) == 0
    machine = ('Machine: x86_64, 2 cores, 2 threads, torch 2.14.1; CPU flags: avx avx2 avx512_f '
               '([`docs/benchmarks/run.json`](benchmarks/run.json)).')
    assert doc.read_text().splitlines() == [
        'Before.', '',
        '<!-- benchmark-table: run inference -->', '',
        'PoolFormer-S12, batch 16, 224x224, 2 threads; img/s is the median of 3 timed runs.', '',
        '| path | img/s | ours default / this | max abs diff | of FP32 peak | note |',
        '|---|---|---|---|---|---|',
        '| ours: default eval (channels_last) | 37.9 | 1.00 | 4.8e-07 | 66% | logits |',
        '| timm: NCHW eager | 25.0 | 1.51 | 0.0e+00 | 44% | stage-4 features |', '',
        machine, '',
        '<!-- /benchmark-table -->', '',
        'After.']
    assert tables.main(['--check']) == 0


PIPELINE_ROWS = [
    dict(name='timm: create_transform', img_per_s=156.0, ratio=1.0, max_abs_diff=None,
         peak_fraction=None, note='64 images; output 3x224x224', times_s=[1, 2, 3]),
    dict(name='ImageNet: configs/x.py', img_per_s=138.0, ratio=0.8846, max_abs_diff=None,
         peak_fraction=None, note='64 images; output 3x224x224', times_s=[1, 2, 3]),
    dict(name='COCO: configs/y.py', img_per_s=116.0, ratio=0.7436, max_abs_diff=None,
         peak_fraction=None, note='64 images; output 3x800x1067', times_s=[1, 2, 3]),
]


def test_the_pipelines_table_gives_workers_per_gpu(tmp_path, monkeypatch):
    """The issue's hand measurement, 138 img/s per worker against timm's 156: a GPU
    training at 1,343 img/s needs 1343 / 138 = 9.7 -> 10 workers (9 for timm's 156:
    8.6 -> 9); none for COCO, whose model trains far slower. A file without the
    section renders without it (the other tests). Broken by hand: workers rounded down
    instead of up, this failed (8 instead of 9 for timm)."""
    doc = _fake_repo(tmp_path, monkeypatch,
                     '<!-- benchmark-table: run pipelines -->\n<!-- /benchmark-table -->\n',
                     {'run': dict(RECORD, pipelines=PIPELINE_ROWS)})
    assert tables.main([]) == 0
    lines = doc.read_text().splitlines()
    assert lines[2:10] == [
        'One process, one thread (a data-loader worker); img/s is the median of 3 passes '
        'over the generated images.', '',
        '| pipeline | img/s per worker | this / timm | ImageNet workers for 1,343 img/s '
        '| note |',
        '|---|---|---|---|---|',
        '| timm: create_transform | 156 | 1.00 | 9 | 64 images; output 3x224x224 |',
        '| ImageNet: configs/x.py | 138 | 0.88 | 10 | 64 images; output 3x224x224 |',
        '| COCO: configs/y.py | 116 | 0.74 |  | 64 images; output 3x800x1067 |', '']


IMAGENET_CONFIG = 'configs/classification/poolformer_s12_in1k.py'


def _configured_workers():
    """train_dataloader.num_workers as the ImageNet config sets it (read as text: the
    config's mmpretrain base is not needed for this one figure)."""
    return int(re.search(r'^train_dataloader = dict\(num_workers=(\d+)',
                         _read(IMAGENET_CONFIG), re.M).group(1))


def _underfed(records: dict, workers: int) -> list:
    """What each benchmark record ({file: record}) says the configured workers miss."""
    return [f'{IMAGENET_CONFIG}: num_workers={workers} feeds {tables.GPU_IMG_PER_S} img/s '
            f'only above {tables.GPU_IMG_PER_S / workers:.0f} img/s per worker; {name} '
            f'measured {row["img_per_s"]:.0f}'
            for name, record in records.items() for row in record.get('pipelines', [])
            if row['name'].startswith('ImageNet:') and workers < tables.workers_needed(row)]


def test_imagenet_workers_feed_the_gpu_rate_of_the_docs():
    """The ImageNet configs run at least the workers per GPU that the docs' table asks
    for, in every benchmark file with the table. The check itself: a worker at the
    issue's hand measurement (138 img/s) needs 1343 / 138 = 9.7 -> 10 workers, more
    than the configured 8. Broken by hand: with num_workers=10 in the config, this failed."""
    workers = _configured_workers()
    records = {}
    for path in glob.glob(os.path.join(ROOT, 'docs', 'benchmarks', '*.json')):
        with open(path) as f:
            records[os.path.basename(path)] = json.load(f)
    assert _underfed(records, workers) == []
    slow = {'slow.json': {'pipelines': [dict(name='ImageNet: x', img_per_s=138.0)]}}
    assert len(_underfed(slow, workers)) == 1


def test_check_names_the_doc_and_block_that_differ(tmp_path, monkeypatch, capsys):
    doc = _fake_repo(tmp_path, monkeypatch,
                     '<!-- benchmark-table: run -->\n<!-- /benchmark-table -->\n',
                     {'run': RECORD})
    assert tables.main([]) == 0
    written = doc.read_text()
    doc.write_text(written.replace('| 25.0 |', '| 26.0 |'))
    assert tables.main(['--check']) == 1
    assert 'docs/perf.md (run)' in capsys.readouterr().err
    assert doc.read_text() == written.replace('| 25.0 |', '| 26.0 |')  # --check writes nothing


def test_machine_without_cpu_flags_says_so(tmp_path, monkeypatch):
    record = dict(RECORD, machine='x86_64, 2 cores, 2 threads, torch 2.14.1')
    doc = _fake_repo(tmp_path, monkeypatch,
                     '<!-- benchmark-table: run inference -->\n<!-- /benchmark-table -->\n',
                     {'run': record})
    tables.main([])
    assert 'CPU flags: not recorded in this file' in doc.read_text()


@pytest.mark.parametrize('marker, message', [
    ('missing inference', 'docs/perf.md: docs/benchmarks/missing.json does not exist'),
    ('run training', "docs/perf.md: docs/benchmarks/run.json has no section 'training'"),
    ('run inference extra', "docs/perf.md: marker 'run inference extra': expected"),
])
def test_bad_markers_are_one_line_errors(tmp_path, monkeypatch, capsys, marker, message):
    _fake_repo(tmp_path, monkeypatch,
               f'<!-- benchmark-table: {marker} -->\n<!-- /benchmark-table -->\n',
               {'run': RECORD})
    assert tables.main(['--check']) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {message}') and err.count('\n') == 1


def test_an_unclosed_marker_is_an_error(tmp_path, monkeypatch, capsys):
    _fake_repo(tmp_path, monkeypatch, '<!-- benchmark-table: run -->\ntext\n', {'run': RECORD})
    assert tables.main(['--check']) == 1
    assert 'has no <!-- /benchmark-table -->' in capsys.readouterr().err


def test_goals_are_judged_on_the_figures_shown():
    rows = [dict(name='ours: default eval (channels_last)', img_per_s=30.0, peak_fraction=0.70),
            dict(name='ours: deploy (folded)', img_per_s=33.0, peak_fraction=0.795),
            dict(name='ours: deploy, bf16', img_per_s=90.0, peak_fraction=1.9),
            dict(name='timm: NCHW eager', img_per_s=20.05, peak_fraction=0.4),
            dict(name='timm: channels_last eager', img_per_s=30.0, peak_fraction=0.6)]
    record = {'inference': rows}
    # 30 / 20.05 = 1.496: shown as 1.50x, so the 1.5x goal is met.
    assert tables.measure(record, 'x', 'inference',
                          ('speedup', tables.DEFAULT, 'timm: NCHW eager'), 1.5) == \
        ('1.50x (30.0 vs 20.1 img/s)', True)
    # The fastest fp32 row of ours is the deployed one, not the bf16 one.
    assert tables.measure(record, 'x', 'inference',
                          ('speedup', tables.FASTEST, 'timm: channels_last eager'), 1.25) == \
        ('ours: deploy (folded), 1.10x (33.0 vs 30.0 img/s)', False)
    assert tables.measure(record, 'x', 'inference', ('peak', tables.FASTEST), 0.8) == \
        ('ours: deploy (folded), 80%', True)
    dense = {'dense': [dict(name='a', img_per_s=0.25, note='peak memory of the step 2000 MiB'),
                       dict(name='b', img_per_s=0.2, note='peak memory of the step 1000 MiB')]}
    assert tables.measure(dense, 'x', 'dense', ('checkpointing', 'a', 'b'), (0.4, 0.3)) == \
        ('peak memory 2000 -> 1000 MiB (50% less), step time +25%', True)


def test_every_benchmark_file_is_shown_in_a_doc():
    files = {os.path.basename(p)[:-len('.json')]
             for p in glob.glob(os.path.join(ROOT, 'docs', 'benchmarks', '*.json'))}
    assert files == tables.used_benchmarks()


def test_model_tables_are_the_metafiles_figures():
    """The README's S24 row is written from configs/classification/metafile.yml:
    21,388,968 parameters and 3,412,931,584 MACs (fvcore 0.1.5 on mmpretrain 1.2.0's
    PoolFormer-S24, tests/test_openmmlab.py) show as 21.39M and 3.41G; the paper's
    rounded 3.4G typed there instead must fail the check."""
    doc = 'README.md'
    text = _read(doc)
    row = '| `poolformer_s24_in1k.py` | 21.39M | 3.41G | 80.3 |'
    assert row in text
    edited = text.replace(row, '| `poolformer_s24_in1k.py` | 21.39M | 3.4G | 80.3 |', 1)
    _, changed = tables.render(edited, ROOT, doc)
    assert changed == ['models poolformer_s*_in1k,poolformer_m*_in1k']


def test_model_table_columns_and_order(tmp_path, monkeypatch):
    """Globs keep their order, ``!GLOB`` leaves names out, metrics get a column each."""
    for task, size in (('classification', '224x224'), ('detection', '1280x800'),
                       ('segmentation', '512x512')):
        (tmp_path / 'configs' / task).mkdir(parents=True)
        (tmp_path / 'configs' / task / 'metafile.yml').write_text(
            f'# Written by a test. FLOPs counted\n# by fvcore at {size}.\nModels: []\n')
    models = [
        dict(Name='det_b', Config='configs/detection/det_b.py',
             Metadata={'Training Data': 'COCO', 'Parameters': 31_570_000, 'FLOPs': 207_320_000_000},
             Results=[{'Metrics': {'box AP': 37.3}}, {'Metrics': {'mask AP': 34.6}}],
             Weights='https://example.org/b.pth'),
        dict(Name='det_a', Config='configs/detection/det_a.py',
             Metadata={'Training Data': 'COCO', 'Parameters': 21_650_000, 'FLOPs': 188_730_000_000},
             Results=[{'Metrics': {'box AP': 36.2}}]),
        dict(Name='det_a_builtin', Config='configs/detection/det_a_builtin.py',
             Metadata={'Training Data': 'Built-in shapes', 'Parameters': 1, 'FLOPs': 1}),
    ]
    (tmp_path / 'configs' / 'detection' / 'metafile.yml').write_text(
        '# FLOPs counted by fvcore at 1280x800.\n' + json.dumps({'Models': models}))
    monkeypatch.setattr(tables, 'ROOT', str(tmp_path))
    block = tables.block_for('models det_a*,det_b,!*_builtin params macs metrics weights',
                             str(tmp_path))
    assert block.splitlines() == [
        '| config | params | MACs (fvcore, 1280x800) | paper box AP | paper mask AP | weights |',
        '|---|---|---|---|---|---|',
        '| `det_a.py` | 21.65M | 188.73G | 36.2 | - | - |',
        '| `det_b.py` | 31.57M | 207.32G | 37.3 | 34.6 | [model](https://example.org/b.pth) |',
        '',
        'From [`configs/detection/metafile.yml`](configs/detection/metafile.yml) '
        '(`tools/analysis/make_metafiles.py`).']
    with pytest.raises(tables.TableError, match=r"no metafile entry matches 'nothing_\*'"):
        tables.block_for('models nothing_*', str(tmp_path))
    with pytest.raises(tables.TableError, match='COLUMN one of params, macs, metrics, weights'):
        tables.block_for('models det_a flops', str(tmp_path))


# --------------------------------------------------------------------------- #
# README and docs text
# --------------------------------------------------------------------------- #
def test_readme_is_short():
    lines = _read('README.md').count('\n')
    assert lines <= README_MAX_LINES, (
        f'README.md has {lines} lines, more than {README_MAX_LINES}: move details to docs/')


def test_quick_start_commands_are_what_ci_runs():
    """The README's two commands are the ones .ci/run runs, as they are written."""
    quick_start = _read('README.md').split('## Quick start\n', 1)[1].split('\n## ', 1)[0]
    block = re.search(r'^```bash\n(.*?)^```', quick_start, re.M | re.S).group(1)
    commands = [line.split('#', 1)[0].strip() for line in block.splitlines()]
    assert commands == ['bash tools/run_main.sh', 'bash tools/run_tests.sh']
    ci = _read('.ci/run')
    for command in commands:
        assert re.search(rf'^(\w+=\S+ )*{re.escape(command)}( |$)', ci, re.M), \
            f'.ci/run does not run {command!r}'


def test_nothing_is_dated_by_a_session():
    dated = re.compile(r'\b(this|last|previous|earlier|next|that) session\b', re.I)
    found = [f'{doc}:{n}: {line.strip()}' for doc in DOCS
             for n, line in enumerate(_read(doc).splitlines(), 1) if dated.search(line)]
    assert not found, 'dated figures belong in CHANGELOG.md:\n' + '\n'.join(found)


LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```.*?^```', re.M | re.S)


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(doc):
    anchors, seen = set(), {}
    for heading in re.findall(r'^#{1,6} (.+)$', FENCE.sub('', _read(doc)), re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f'{slug}-{seen[slug]}')
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_relative_links_reach_tracked_files_and_headings():
    tracked = set(subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True,
                                 text=True).stdout.splitlines())
    if not tracked:
        pytest.skip('not a git checkout')
    tracked_dirs = tracked_folders(tracked)
    problems = []
    for doc in DOCS:
        for target in LINK.findall(FENCE.sub('', _read(doc))):
            if re.match(r'[a-z]+:', target):
                continue  # https:, mailto:
            path, _, anchor = target.partition('#')
            path = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if path not in tracked and path not in tracked_dirs:
                problems.append(f'{doc}: link ({target}): {path} is not a tracked file')
            elif anchor and path.endswith('.md') and anchor not in _anchors(path):
                problems.append(f'{doc}: link ({target}): {path} has no heading #{anchor}')
    assert not problems, '\n'.join(sorted(set(problems)))



def test_link_check_sees_a_broken_link():
    """The scan finds links, images and anchors, and skips code blocks."""
    text = ('[a](docs/x.md#part) ![b](docs/images/y.png)\n```\n[c](nowhere.md)\n```\n'
            '[d](https://example.org)')
    assert LINK.findall(FENCE.sub('', text)) == ['docs/x.md#part', 'docs/images/y.png',
                                                  'https://example.org']
    assert _slug('Training, evaluation and inference') == 'training-evaluation-and-inference'
    assert _slug('ImageNet-1K classification (`configs/classification/`)') == \
        'imagenet-1k-classification-configsclassification'


# --------------------------------------------------------------------------- #
# Figures in prose
# --------------------------------------------------------------------------- #
FIGURE_DOCS = tables.docs() + ['CONTRIBUTING.md']
# A figure: a number with a unit of speed, time, ratio, share, size or count of MACs,
# parameters or bytes, or a metric with its value.
FIGURE = re.compile(r'''
    (?<![\w.@=/-])\d+(?:[.,]\d+)*(?:\s?(?:-|to)\s?\d+(?:\.\d+)?)?   # 37.9, 1,234, 2 to 10
    (?: \s?(?:img/s|images/s|samples/s|[GT]FLOP/s|ms|s|min|minutes?|hours?|h
             |G(?:MACs?|FLOPs?)|[GM]|million|billion|[KMGT]i?B|[kK]B)\b
      | (?<=\d)x(?!\s?\d|\w)          # 1.45x, not 224x224 or 1x1
      | \s?% )
    | \b(?:mAP|mIoU|AP|top-1)\s\d+(?:\.\d+)?   # box mAP 0.811, mIoU 68.1
    ''', re.X)
CODE_SPAN = re.compile(r'(`+)(?:(?!\1).)+?\1')
# Figures in prose that no generated table holds: each allowed where the pattern (over
# the doc's text) matches, with where the figure comes from. Dated measurements belong in
# CHANGELOG.md, measured figures in docs/benchmarks/*.json or the metafiles.
QUOTED_FIGURES = [
    ('README.md', r'The paper lists 23\.2M', 'the PoolFormer paper, named in that sentence'),
    ('docs/dataset_prepare.md', r'\(\d+(?:\.\d+)? [GM]B\)', 'the official downloads, as '
     'their sites list them'),
    ('docs/dataset_prepare.md', r'1\.33M files', "ImageNet-1K's 1,281,167 training and "
     '50,000 validation images'),
    ('docs/models.md', r'\b1x schedule', "mmdet's name of the 12-epoch schedule"),
    ('configs/detection/README.md', r'\b1x schedule', "mmdet's name of the 12-epoch schedule"),
    ('docs/reliability.md', r'sends\s+SIGKILL 30 s after', "torchrun's grace period "
     '(torch.distributed.elastic)'),
    ('docs/reliability.md', r"mmengine's default 30 min", 'mmengine, as the sentence says'),
    ('docs/performance.md', r'1,343 img/s', "timm's published PoolFormer-S12 training rate on "
     'one RTX 3090 (AMP, channels_last): GPU_IMG_PER_S of tools/analysis/benchmark_tables.py'),
]
# Figures set in the code: (doc, pattern whose group 1 is the figure in the doc, file,
# pattern whose group 1 is the value there); the two must be equal.
FIGURES_FROM_CODE = [
    ('docs/gpu.md', r'holds at (\d+(?:\.\d+)?) GiB per nvcc job',
     'tools/build_env.py', r'NVCC_JOB_BYTES = (\d+(?:\.\d+)?) \* 1024\*\*3'),
    ('docs/reliability.md', r'waits (\d+) s \(`CENSUS_WAIT_S`\)',
     'mmpoolformer/engine/faults.py', r'^CENSUS_WAIT_S = (\d+)'),
    ('docs/reliability.md', r'asks for SIGUSR1 (\d+) s before the time limit',
     'tools/slurm_train.sh', r'STOP_WARNING_S:-(\d+)'),
    ('docs/tests.md', r'still running after (\d+) s fails', 'pyproject.toml',
     r'^timeout = (\d+)'),
]


def _blank(match):
    return re.sub(r'[^\n]', ' ', match.group(0))


def unbacked_figures(text: str, allowed: list) -> list:
    """[(line, figure)] of ``text`` outside generated blocks and code spans, and not
    inside a match of one of the ``allowed`` patterns."""
    scanned = CODE_SPAN.sub(_blank, tables.BLOCK.sub(_blank, text))
    spans = [m.span() for pattern in allowed for m in re.finditer(pattern, text, re.M)]
    return [(text.count('\n', 0, m.start()) + 1, m.group(0).strip())
            for m in FIGURE.finditer(scanned)
            if not any(start <= m.start() and m.end() <= end for start, end in spans)]


def _allowed(doc):
    return [pattern for d, pattern, *_ in QUOTED_FIGURES + FIGURES_FROM_CODE if d == doc]


def test_every_figure_is_generated_quoted_or_read_from_the_code():
    problems = [f'{doc}:{line}: {figure!r}' for doc in FIGURE_DOCS
                for line, figure in unbacked_figures(_read(doc), _allowed(doc))]
    assert not problems, (
        'figures typed by hand: write them from docs/benchmarks/*.json or the metafiles '
        '(tools/analysis/benchmark_tables.py), move dated ones to CHANGELOG.md, or quote '
        'them with their source in QUOTED_FIGURES:\n' + '\n'.join(problems))


def test_allowed_figures_are_still_there_and_equal_the_code():
    for doc, pattern, *_ in QUOTED_FIGURES:
        assert re.search(pattern, _read(doc), re.M), f'{doc}: no longer has /{pattern}/'
    for doc, pattern, source, setting in FIGURES_FROM_CODE:
        in_doc = re.search(pattern, _read(doc), re.M)
        in_code = re.search(setting, _read(source), re.M)
        assert in_doc and in_code, f'{doc} /{pattern}/ or {source} /{setting}/ not found'
        assert float(in_doc.group(1)) == float(in_code.group(1)), (
            f'{doc} says {in_doc.group(0)!r}, {source} sets {in_code.group(0)!r}')


def test_the_figure_scan_sees_a_stray_figure():
    """What counts as a figure, and what is left alone: generated blocks, code spans,
    sizes like 224x224 and kernels like 1x1, and what the allow-list names."""
    text = ('Intro.\n'
            'Now 2.3x faster than timm, in about 17 minutes, at 37.9 img/s (66% of peak);\n'
            'counted 1.8G MACs with 11.9M parameters; Mask R-CNN box mAP 0.811 on 2 cores.\n'
            'A 224x224 input, 1x1 convolutions, `--timeout 30 s` and 8 GPUs x 128 images.\n'
            '<!-- benchmark-table: s12_cpu -->\n| ours | 37.9 img/s | 1.45x |\n'
            '<!-- /benchmark-table -->\n'
            'The paper lists 23.2M.\n')
    assert unbacked_figures(text, [r'paper lists 23\.2M']) == [
        (2, '2.3x'), (2, '17 minutes'), (2, '37.9 img/s'), (2, '66%'),
        (3, '1.8G'), (3, '11.9M'), (3, 'mAP 0.811')]

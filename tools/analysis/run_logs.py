"""Reading mmengine work dirs: the scalars each run logged (analyze_logs.py plots them), the
last validation of a training run and the metrics of a test run (main_job_summary.py)."""
import glob
import json
import os
import os.path as osp
import re

# mmengine names each run's folder in the work dir by its start, '%Y%m%d_%H%M%S'.
RUN_FOLDER = re.compile(r'\d{8}_\d{6}')


def find_scalars(path: str) -> str:
    """``scalars.json`` of a run: the file itself, a run folder or a work dir
    (then its newest run)."""
    if osp.isfile(path):
        return path
    found = sorted(glob.glob(osp.join(path, '**', 'vis_data', 'scalars.json'), recursive=True),
                   key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(f'no vis_data/scalars.json under {path}')
    return found[-1]


def read_scalars(path: str) -> dict[str, list[tuple]]:
    """{key: [(step, value), ...]} for every scalar the run logged.

    Training entries are counted in iterations; validation entries carry the
    step mmengine gave them (the epoch for epoch-based loops), so they are put
    on the iteration axis by matching the last training iteration logged before.
    """
    series: dict[str, list[tuple]] = {}
    last_iter = 0
    with open(find_scalars(path)) as f:
        for line in f:
            entry = json.loads(line)
            is_train = 'iter' in entry
            step = entry.get('iter', last_iter) if is_train else last_iter
            last_iter = step
            for key, value in entry.items():
                if key in ('iter', 'epoch', 'step', 'time', 'data_time', 'eta', 'memory'):
                    continue
                if isinstance(value, (int, float)):
                    series.setdefault(key, []).append((step, value))
    return series


def run_folders(work_dir: str) -> list[str]:
    """The run folders of a work dir, oldest first (their names sort by time)."""
    return sorted(p for p in glob.glob(osp.join(work_dir, '*'))
                  if osp.isdir(p) and RUN_FOLDER.fullmatch(osp.basename(p)))


def last_validation(work_dir: str) -> tuple[str, dict]:
    """(run folder, metrics) of the last validation that the newest run of ``work_dir``
    that logged scalars (a training run; a test run logs none) logged: its last entry of
    ``vis_data/scalars.json`` without 'iter', which only training entries have."""
    runs = [r for r in run_folders(work_dir) if osp.isfile(osp.join(r, 'vis_data', 'scalars.json'))]
    if not runs:
        raise FileNotFoundError(f'no training run in {work_dir} (no */vis_data/scalars.json)')
    with open(osp.join(runs[-1], 'vis_data', 'scalars.json')) as f:
        validations = [entry for entry in map(json.loads, f) if 'iter' not in entry]
    if not validations:
        raise FileNotFoundError(f'{runs[-1]} logged no validation')
    return runs[-1], validations[-1]


def last_test(work_dir: str) -> tuple[str, dict]:
    """(run folder, metrics) of the newest test run of ``work_dir`` (tools/test.py) that
    finished: mmengine writes its metrics to ``<run>/<run>.json``, a file that training
    runs do not have."""
    for run in reversed(run_folders(work_dir)):
        path = osp.join(run, f'{osp.basename(run)}.json')
        if osp.isfile(path):
            with open(path) as f:
                return run, json.load(f)
    raise FileNotFoundError(f'no test run in {work_dir} (no <run>/<run>.json)')


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint that mmengine named last in ``work_dir``/last_checkpoint."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no checkpoint in {work_dir} (no last_checkpoint)')
    with open(path) as f:
        return f.read().strip()

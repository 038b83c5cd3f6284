"""Reading mmengine work dirs: the scalars each run logged (analyze_logs.py plots them)."""
import glob
import json
import os
import os.path as osp


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

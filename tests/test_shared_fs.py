"""Shared file systems at many ranks: what every rank of a distributed run does to the
files, counted per rank in a two-process gloo group on localhost.

Annotation checks, the test-set image check and pretrained URLs run on rank 0 only;
the other ranks get its verdict (or its error) through a broadcast. The checkpoint
hook touches the file system only when it saves, and only on rank 0. Both ranks run
every scenario once (one group for the whole module); the tests read the counts.
"""
import builtins
import json
import os
import shutil
import socket
import threading
import time
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from helpers import processes, toy_model
from mmpoolformer.datasets.builtin import SHAPES

WORLD = 2
# Saves of the hook scenario: every 2nd of 4 iterations (1-based).
HOOK_ITERS, HOOK_INTERVAL, HOOK_SAVES = 4, 2, [2, 4]


# --------------------------------------------------------------------------- #
# In each process: counters and scenarios
# --------------------------------------------------------------------------- #
class FileCalls:
    """Records calls of file-system functions whose path lies under ``root``."""

    def __init__(self, monkeypatch, root):
        import PIL.Image
        self.root, self.calls = os.path.abspath(root), []
        for module, name, label in [(os.path, 'isfile', 'isfile'), (os, 'stat', 'stat'),
                                    (os, 'makedirs', 'makedirs'), (builtins, 'open', 'open'),
                                    (PIL.Image, 'open', 'Image.open')]:
            monkeypatch.setattr(module, name, self._recording(getattr(module, name), label))

    def _recording(self, real, label):
        def recorded(path, *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and os.path.abspath(
                    os.fspath(path)).startswith(self.root):
                self.calls.append((label, os.fspath(path)))
            return real(path, *args, **kwargs)
        return recorded

    def take(self):
        """The calls since the last take, as {function: count}, and forget them."""
        counts = {}
        for label, _ in self.calls:
            counts[label] = counts.get(label, 0) + 1
        self.calls = []
        return counts

    def take_paths(self, label):
        paths = [path for name, path in self.calls if name == label]
        self.calls = [call for call in self.calls if call[0] != label]
        return paths


def _error(err):
    return f'{type(err).__name__}: {err}'


def _build_datasets(data):
    """Each validated data set, built with counters on its files: rank -> counts."""
    from mmpoolformer.datasets import (
        ValidatedADE20KDataset,
        ValidatedCocoDataset,
        ValidatedImageFolder,
    )
    coco = dict(metainfo=dict(classes=SHAPES), pipeline=[])
    skip_bad_images = dict(test_mode=True, pipeline=[dict(type='LoadImageFromFile')],
                           bad_images='skip')
    ade = dict(data_prefix=dict(img_path='images/training',
                                seg_map_path='annotations/training'), pipeline=[])
    builds = dict(
        coco_train=partial(ValidatedCocoDataset, data_root=data['coco'], **coco,
                           ann_file='annotations/instances_train2017.json',
                           data_prefix=dict(img='train2017/')),
        coco_val_test_mode=partial(ValidatedCocoDataset, data_root=data['coco'],
                                   **dict(coco, **skip_bad_images),
                                   ann_file='annotations/instances_val2017.json',
                                   data_prefix=dict(img='val2017/')),
        ade20k_train=partial(ValidatedADE20KDataset, data_root=data['ade20k'], **ade),
        folder_val_test_mode=partial(ValidatedImageFolder, data_root=data['folder'],
                                     split='val', **skip_bad_images),
        coco_image_missing=partial(ValidatedCocoDataset, data_root=data['coco_broken'],
                                   **coco, ann_file='annotations/instances_val2017.json',
                                   data_prefix=dict(img='val2017/')),
        ade20k_label_missing=partial(ValidatedADE20KDataset, data_root=data['ade20k_broken'],
                                     data_prefix=dict(img_path='images/validation',
                                                      seg_map_path='annotations/validation'),
                                     pipeline=[]))
    results = {}
    for name, build in builds.items():
        with pytest.MonkeyPatch.context() as mp:
            counter = FileCalls(mp, data['root'])
            try:
                results[name] = dict(size=len(build()))
            except Exception as err:
                results[name] = dict(error=_error(err))
        results[name]['calls'] = counter.take()
    return results



def _train_with_checkpoint_hook(work_dir):
    """A short distributed run under AtomicCheckpointHook; per call of the hook's
    after-* methods, the file-system calls it made (any path) and which iteration."""
    from mmengine.runner import Runner
    runner = Runner(
        model=toy_model(), work_dir=work_dir, launcher='pytorch',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        cfg=dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=None,
                                        broadcast_buffers=False)),
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 8, batch_size=1,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=HOOK_ITERS),
        default_hooks=dict(checkpoint=dict(type='mmpoolformer.AtomicCheckpointHook',
                                           by_epoch=False, interval=HOOK_INTERVAL,
                                           backend_args=dict(backend='atomic_local'))))
    hook = next(h for h in runner.hooks if type(h).__name__ == 'AtomicCheckpointHook')
    records = []
    with pytest.MonkeyPatch.context() as mp:
        counter = FileCalls(mp, '/')  # every path

        def recorded(method, real):
            def call(runner, *args, **kwargs):
                counter.take()
                real(runner, *args, **kwargs)
                staging = [p for p in counter.take_paths('makedirs')
                           if '.last_checkpoint.staging' in p]
                records.append(dict(method=method, iter=runner.iter + 1,
                                    staging_makedirs=len(staging), calls=counter.take()))
            return call
        for method in ('after_train_iter', 'after_train_epoch', 'after_val_epoch'):
            mp.setattr(hook, method, recorded(method, getattr(hook, method)))
        runner.train()
    pointer = os.path.join(work_dir, 'last_checkpoint')
    return dict(records=records,
                last_checkpoint=open(pointer).read() if runner.rank == 0 else None)


def _fetch_urls(server):
    """load_file of a served checkpoint, then of a missing one: downloads per rank."""
    import torch.hub

    from mmpoolformer.checkpoint import load_file
    downloads = []
    real = torch.hub.download_url_to_file
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, 'download_url_to_file',
                   lambda url, *a, **k: (downloads.append(url), real(url, *a, **k))[1])
        state = load_file(f'{server}/weights.pth')
        served = dict(downloads=len(downloads), keys=sorted(state))
        downloads.clear()
        try:
            load_file(f'{server}/missing.pth')
            missing = dict(error=None)
        except Exception as err:
            missing = dict(error=_error(err))
        missing['downloads'] = len(downloads)
    return dict(served=served, missing=missing)


def _worker(rank, port, data, server, out_dir):
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                         rank=rank, world_size=WORLD,
                                         timeout=timedelta(seconds=60))
    # mmengine's launcher='pytorch' reads these (the group itself is already up).
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    results = {}
    for name, scenario in [('datasets', partial(_build_datasets, data)),
                           ('hook', partial(_train_with_checkpoint_hook, data['work_dir'])),
                           ('urls', partial(_fetch_urls, server))]:
        try:
            results[name] = scenario()
        except Exception as err:
            results[name] = dict(error=_error(err))
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(results, f)
    torch.distributed.destroy_process_group()


# --------------------------------------------------------------------------- #
# In the test process: data, a local web server, and the two ranks
# --------------------------------------------------------------------------- #
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _serve(directory):
    """A web server on 127.0.0.1 for ``directory``, in a thread; returns (server, GETs)."""
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def _broken_copies(tmp, coco, ade20k):
    """The built-in val sets with one file gone: an image (COCO), a label map (ADE20K)."""
    coco_broken = tmp / 'coco_broken'
    shutil.copytree(os.path.join(coco, 'val2017'), coco_broken / 'val2017')
    shutil.copytree(os.path.join(coco, 'annotations'), coco_broken / 'annotations')
    os.remove(coco_broken / 'val2017' / '000007.png')
    ade_broken = tmp / 'ade20k_broken'
    for sub in ('images', 'annotations'):
        shutil.copytree(os.path.join(ade20k, sub, 'validation'), ade_broken / sub / 'validation')
    os.remove(ade_broken / 'annotations' / 'validation' / '000005.png')
    return str(coco_broken), str(ade_broken)


@pytest.fixture(scope='module')
def ranks(tmp_path_factory, builtin_coco, builtin_ade20k, tiny_cls_data):
    """Run every scenario on 2 ranks; returns (per-rank results, GET paths of the server)."""
    import torch.multiprocessing as mp
    tmp = tmp_path_factory.mktemp('shared_fs')
    # The data sets, copied under one root, are what the counters watch.
    root = tmp / 'data'
    shutil.copytree(builtin_coco, root / 'coco')
    shutil.copytree(builtin_ade20k, root / 'ade20k')
    shutil.copytree(tiny_cls_data, root / 'folder')
    coco_broken, ade_broken = _broken_copies(root, builtin_coco, builtin_ade20k)
    data = dict(root=str(root), coco=str(root / 'coco'), ade20k=str(root / 'ade20k'),
                folder=str(root / 'folder'), coco_broken=coco_broken,
                ade20k_broken=ade_broken, work_dir=str(tmp / 'work'))
    served = tmp / 'served'
    served.mkdir()
    torch.save({'state_dict': {'backbone.weight': torch.ones(3)}}, served / 'weights.pth')
    server, requests = _serve(str(served))
    out = tmp / 'out'
    out.mkdir()
    token = f'shared-fs-ranks-{os.getpid()}'  # on the ranks and whatever they start
    with pytest.MonkeyPatch.context() as env:
        env.setenv('TORCH_HOME', str(tmp / 'torch_home'))  # the hub cache both ranks share
        env.setenv('CUDA_VISIBLE_DEVICES', '')  # gloo on the CPU, also on a GPU machine
        env.setenv(processes.MARK, processes.marked_env(token)[processes.MARK])
        context = mp.start_processes(
            _worker, args=(_free_port(), data, f'http://127.0.0.1:{server.server_port}',
                           str(out)), nprocs=WORLD, join=False, start_method='spawn')
        deadline = time.monotonic() + 600
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                processes.kill_tree(token)
                pytest.fail('the two ranks did not finish in 600 s (a rank hangs)')
    server.shutdown()
    return [json.load(open(out / f'rank{r}.json')) for r in range(WORLD)], requests


def _per_rank(ranks, *keys):
    results = []
    for result in ranks[0]:
        for key in keys:
            result = result[key]
        results.append(result)
    return results


# --------------------------------------------------------------------------- #
# Annotation checks: rank 0 checks, the others read its verdict
# --------------------------------------------------------------------------- #
def test_coco_image_files_are_checked_on_rank_zero_only(ranks):
    """160 training images: rank 0 checks each file once; rank 1 checks none."""
    rank0, rank1 = _per_rank(ranks, 'datasets', 'coco_train')
    assert rank0['size'] == rank1['size'] == 160
    assert rank0['calls'].get('isfile') == 160
    assert not rank1['calls'].get('isfile')
    assert rank1['calls'] == {'open': 1}  # the annotation file, which every rank reads


def test_ade20k_label_maps_are_checked_on_rank_zero_only(ranks):
    """160 image / label-map pairs: rank 0 opens each of the 320 files once (headers
    only) and checks each label map exists; rank 1 touches none of them."""
    rank0, rank1 = _per_rank(ranks, 'datasets', 'ade20k_train')
    assert rank0['size'] == rank1['size'] == 160
    assert (rank0['calls'].get('isfile'), rank0['calls'].get('Image.open')) == (160, 320)
    assert rank1['calls'] == {}


@pytest.mark.parametrize('name, images', [('coco_val_test_mode', 40),
                                          ('folder_val_test_mode', 16)])
def test_unreadable_image_check_of_test_sets_runs_on_rank_zero_only(ranks, name, images):
    """A test set whose loader skips unreadable images reads every image when it is
    built: on rank 0 only, each once."""
    rank0, rank1 = _per_rank(ranks, 'datasets', name)
    assert rank0['size'] == rank1['size'] == images
    assert rank0['calls'].get('open', 0) - rank1['calls'].get('open', 0) == images
    assert not rank1['calls'].get('isfile') and not rank1['calls'].get('Image.open')
    assert rank1['calls'].get('open', 0) <= 1  # the annotation file (COCO)


@pytest.mark.parametrize('name, message', [
    ('coco_image_missing', r"DatasetError: .*instances_val2017\.json: image 7 file not "
                           r"found: .*val2017/000007\.png"),
    ('ade20k_label_missing', r'DatasetError: .*validation/000005\.jpg: no label map '
                             r'\(expected .*validation/000005\.png\)')])
def test_failing_check_stops_every_rank_with_the_same_one_line_error(ranks, name, message):
    import re
    rank0, rank1 = _per_rank(ranks, 'datasets', name)
    assert rank0.get('error') and rank0['error'] == rank1.get('error'), (rank0, rank1)
    assert re.fullmatch(message, rank0['error']), rank0['error']
    assert not rank1['calls'].get('isfile') and not rank1['calls'].get('Image.open')


# --------------------------------------------------------------------------- #
# AtomicCheckpointHook: stages on rank 0, when it saves
# --------------------------------------------------------------------------- #
def test_checkpoint_hook_touches_files_only_on_rank_zero_when_it_saves(ranks):
    rank0, rank1 = _per_rank(ranks, 'hook')
    assert 'error' not in rank0 and 'error' not in rank1, (rank0, rank1)
    for records in (rank0['records'], rank1['records']):
        iterations = [r for r in records if r['method'] == 'after_train_iter']
        assert [r['iter'] for r in iterations] == list(range(1, HOOK_ITERS + 1))
    for rank, result in enumerate((rank0, rank1)):
        for record in result['records']:
            saves = record['method'] == 'after_train_iter' and record['iter'] in HOOK_SAVES
            if rank == 0 and saves:  # the staging folder, once; then the files it saves
                assert record['staging_makedirs'] == 1, record
            else:  # no file-system call at all, any path
                assert record['staging_makedirs'] == 0 and record['calls'] == {}, (rank, record)
    assert rank0['last_checkpoint'].endswith(f'iter_{HOOK_SAVES[-1]}.pth')


# --------------------------------------------------------------------------- #
# Pretrained URLs: rank 0 downloads into the hub cache, the others read it
# --------------------------------------------------------------------------- #
def test_url_is_downloaded_once_by_rank_zero(ranks):
    _, requests = ranks
    rank0, rank1 = _per_rank(ranks, 'urls', 'served')
    assert requests.count('/weights.pth') == 1
    assert rank0['downloads'] == 1 and rank1['downloads'] == 0
    assert rank0['keys'] == rank1['keys'] == ['state_dict']


def test_failed_download_stops_every_rank_with_the_same_error(ranks):
    _, requests = ranks
    rank0, rank1 = _per_rank(ranks, 'urls', 'missing')
    assert requests.count('/missing.pth') == 1
    assert rank0['downloads'] == 1 and rank1['downloads'] == 0
    assert rank0['error'] == rank1['error']
    assert rank0['error'].startswith('CheckpointError: cannot download ')
    assert 'missing.pth' in rank0['error'] and '404' in rank0['error']
    assert '\n' not in rank0['error']

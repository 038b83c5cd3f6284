"""The end of the main job (tools/run_main.sh): its summary, read from the runs' own result
files (tools/analysis/main_job_summary.py), and the README's figure made from its pictures
(tools/visualization/main_job_figure.py)."""
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import ROOT, import_tool, toy_runner

summary_tool = import_tool('tools/analysis/main_job_summary.py')
figure_tool = import_tool('tools/visualization/main_job_figure.py')
README_FIGURE = os.path.join(ROOT, 'docs/images/maskrcnn_builtin.png')


def write_lines(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(e) + '\n' for e in entries))


@pytest.fixture
def main_job(tmp_path):
    """Work dirs as the main job leaves them, with figures no code computes: an older
    classifier run (a better top-1, not the newest), the newest one (its last validation
    after a training entry of the same epoch), the detector's training run (its own
    validation, which is not the test's) and its test run."""
    cls, det = tmp_path / 'work_dirs/cls', tmp_path / 'work_dirs/det'
    write_lines(cls / '20261206_090000/vis_data/scalars.json',
                [{'accuracy/top1': 99.0, 'step': 15}])
    write_lines(cls / '20261207_100000/vis_data/scalars.json', [
        {'lr': 0.001, 'loss': 1.2, 'epoch': 5, 'iter': 50, 'step': 50},
        {'accuracy/top1': 61.5, 'data_time': 0.01, 'time': 0.1, 'step': 5},
        {'lr': 0.0001, 'loss': 0.3, 'epoch': 15, 'iter': 150, 'step': 150},
        {'accuracy/top1': 87.5, 'data_time': 0.01, 'time': 0.1, 'step': 15}])
    write_lines(det / '20261207_100500/vis_data/scalars.json', [
        {'loss': 1.0, 'epoch': 3, 'iter': 120, 'step': 120},
        {'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.6, 'step': 3}])
    (det / '20261207_100900').mkdir()
    (det / '20261207_100900/20261207_100900.json').write_text(json.dumps(
        {'coco/bbox_mAP': 0.6391, 'coco/bbox_mAP_50': 0.9, 'coco/segm_mAP': 0.7588,
         'data_time': 0.02, 'time': 0.4}))
    for work, name in ((cls, 'epoch_15.pth'), (det, 'epoch_3.pth')):
        (work / name).write_bytes(b'')
        (work / 'last_checkpoint').write_text(str(work / name))
    vis = det / 'vis'
    vis.mkdir()
    for n in range(1, 4):
        Image.new('RGB', (4, 2)).save(vis / f'{n:06d}.png')
    stages = tmp_path / 'work_dirs/main_job_stages.tsv'
    stages.write_text('set-up\t1\ndata\t8\nclassifier\treused\nMask R-CNN\t230\ntest\t18\n')
    return dict(classifier=cls, detector=det, vis_dir=vis, stages=stages)


def summarize(main_job, capsys, **changed):
    args = {**main_job, 'det_config': 'configs/detection/det.py', **changed}
    summary_tool.main([f'--{key.replace("_", "-")}={value}' for key, value in args.items()])
    return capsys.readouterr().out.splitlines()


def test_summary_reads_the_runs_result_files(main_job, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths are shown relative to where the job runs
    lines = summarize(main_job, capsys)
    assert lines[0] == ('Main job done in 4.3 min (set-up 1 s, data 8 s, classifier reused, '
                        'Mask R-CNN 3.8 min, test 18 s).')
    assert re.fullmatch(r'  classifier +top-1 87\.5 on the built-in val set; '
                        r'checkpoint work_dirs/cls/epoch_15\.pth', lines[1]), lines[1]
    assert re.fullmatch(r'  Mask R-CNN +box mAP 0\.639, mask mAP 0\.759; '
                        r'checkpoint work_dirs/det/epoch_3\.pth', lines[2]), lines[2]
    assert re.search(r'\b3 val images .* in \S+/work_dirs/det/vis$', lines[3]), lines[3]
    commands = '\n'.join(lines[4:])
    for command in ('python tools/test.py configs/detection/det.py work_dirs/det/epoch_3.pth',
                    'python tools/demo/app.py configs/detection/det.py work_dirs/det/epoch_3.pth',
                    'docs/finetune.md'):
        assert command in commands
    assert len(lines) <= 10  # a few lines a newcomer reads


def test_summary_names_what_is_missing(main_job, capsys, tmp_path):
    os.remove(main_job['detector'] / '20261207_100900/20261207_100900.json')  # the test failed
    with pytest.raises(SystemExit, match=r'^error: no test run in \S+/det '):
        summarize(main_job, capsys)
    bad = tmp_path / 'bad.tsv'
    bad.write_text('data 8\n')
    with pytest.raises(SystemExit, match=r'^error: \S+bad\.tsv:1: not NAME<TAB>SECONDS'):
        summarize(main_job, capsys, stages=bad)


def test_summary_reads_what_mmengine_writes(tmp_path, capsys):
    """The same files written by mmengine's Runner (a toy model whose metrics are set):
    a training run that validates, then a test run in another work dir."""
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, mode='loss'):
            out = self.linear(torch.stack(inputs))
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else list(out)

    class Fixed(BaseMetric):
        def __init__(self, metrics):
            super().__init__()
            self.metrics = metrics

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return self.metrics

    data = dict(dataset=[dict(inputs=torch.ones(2))] * 2, batch_size=2,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'))
    cls, det = tmp_path / 'cls', tmp_path / 'det'
    # Names of their own: mmengine shares a logger and a visualizer between runners of one
    # name, by default the second they started.
    toy_runner(cls, Toy(), experiment_name=f'summary_cls_{os.getpid()}', val_dataloader=data,
               val_cfg=dict(), val_evaluator=[Fixed({'accuracy/top1': 75.0})],
               train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1)).train()
    toy_runner(det, experiment_name=f'summary_det_{os.getpid()}', model=Toy(),
               train_dataloader=None, optim_wrapper=None, train_cfg=None,
               test_dataloader=data, test_cfg=dict(),
               test_evaluator=[Fixed({'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.25})]).test()
    (det / 'last_checkpoint').write_text('det/epoch_3.pth')
    stages = tmp_path / 'stages.tsv'
    stages.write_text('test\t1\n')
    capsys.readouterr()  # the runners' logs
    lines = summarize(dict(classifier=cls, detector=det, vis_dir=tmp_path, stages=stages),
                      capsys)
    assert 'top-1 75.0 ' in lines[1] and lines[1].endswith('/cls/epoch_2.pth')
    assert 'box mAP 0.500, mask mAP 0.250;' in lines[2]


# --------------------------------------------------------------------------- #
# The README's figure
# --------------------------------------------------------------------------- #
def val_images(coco_root):
    """{image id: (file name, RGB array)} of the built-in COCO val set."""
    with open(os.path.join(coco_root, 'annotations/instances_val2017.json')) as f:
        images = json.load(f)['images']
    return {image['id']: (image['file_name'], np.asarray(Image.open(
        os.path.join(coco_root, 'val2017', image['file_name'])).convert('RGB'), np.float32))
        for image in images}


def shown_images(figure_path, images):
    """The file names of the val images whose ground-truth halves the figure shows, row
    by row: each row's left half is nearest to that image (the drawn boxes and masks
    cover a small part of it)."""
    figure = np.asarray(Image.open(figure_path).convert('RGB'), np.float32)
    height, width = next(iter(images.values()))[1].shape[:2]
    shown = []
    for top in range(0, figure.shape[0], height):
        row = figure[top:top + height, :width]
        shown.append(min(images.values(), key=lambda im: np.abs(row - im[1]).mean())[0])
    return shown


def test_readme_figure_shows_the_val_images_it_names(builtin_coco):
    record = figure_tool.read_record(README_FIGURE)
    assert record, f'{README_FIGURE} has no record: make it with main_job_figure.py'
    images = val_images(builtin_coco)
    assert all(i in images for i in record['image_ids']), (record, sorted(images))
    assert record['file_names'] == [images[i][0] for i in record['image_ids']]
    assert shown_images(README_FIGURE, images) == record['file_names']


def test_figure_from_the_pictures(builtin_coco, tmp_path, capsys):
    """The tool on pictures drawn as the test's hook draws them (ground truth left,
    prediction right: here the val image twice)."""
    images = val_images(builtin_coco)
    vis = tmp_path / 'vis'
    vis.mkdir()
    for name, image in images.values():
        Image.fromarray(np.concatenate([image, image], 1).astype(np.uint8)).save(vis / name)
    ann = os.path.join(builtin_coco, 'annotations/instances_val2017.json')
    out = tmp_path / 'figure.png'
    figure_tool.main(['--vis-dir', str(vis), '--ann', ann, '--out', str(out)])
    record = figure_tool.read_record(out)
    with open(ann) as f:
        objects = [a['image_id'] for a in json.load(f)['annotations']]
    # by default the three images with the most objects
    assert len(record['image_ids']) == 3
    assert min(objects.count(i) for i in record['image_ids']) == max(map(objects.count, images))
    assert shown_images(out, images) == record['file_names']
    assert Image.open(out).size == (2 * 190, 3 * 150)
    figure_tool.main(['--vis-dir', str(vis), '--ann', ann, '--out', str(out), '--ids', '7', '2'])
    assert figure_tool.read_record(out)['image_ids'] == [7, 2]
    assert shown_images(out, images) == ['000007.png', '000002.png']
    assert 'wrote ' in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r'^error: no image of id \[41\] in '):
        figure_tool.main(['--vis-dir', str(vis), '--ann', ann, '--out', str(out), '--ids', '41'])
    os.remove(vis / '000002.png')
    with pytest.raises(SystemExit, match=r'^error: \S+/000002\.png not found: run '):
        figure_tool.main(['--vis-dir', str(vis), '--ann', ann, '--out', str(out), '--ids', '2'])

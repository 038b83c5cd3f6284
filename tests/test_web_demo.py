"""The Gradio demo in a real browser: headless Debian Chromium driven by Playwright."""
import glob
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import ROOT, import_tool

CHROMIUM = '/usr/bin/chromium'
ARTIFACTS = os.path.join(ROOT, 'work_dirs', 'test_artifacts')
# Chromium on a closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_server(builtin_classifier):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, 'tools/demo/app.py', 'configs/classification/poolformer_s12_builtin.py',
         builtin_classifier[1], '--port', str(port)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, GRADIO_ANALYTICS_ENABLED='False'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}/'
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read()[-3000:])
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason='needs Debian chromium (tools/run_tests.sh installs it)')
def test_upload_an_image_and_see_the_top_classes(demo_server, tiny_cls_data):
    from playwright.sync_api import expect, sync_playwright
    image = sorted(glob.glob(f'{tiny_cls_data}/val/triangle/*.png'))[0]
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={'width': 1100, 'height': 700})
        page.goto(demo_server)
        page.locator('input[type=file]').first.set_input_files(image)
        page.get_by_role('button', name='Submit').click()
        # The top-5 list names the built-in classes with their confidences.
        expect(page.get_by_text(re.compile(r'^\d+%$')).first).to_be_visible(timeout=120_000)
        for name in ('circle', 'square', 'triangle', 'cross'):
            expect(page.get_by_text(name).first).to_be_visible()
        page.screenshot(path=os.path.join(ARTIFACTS, 'web_demo.png'), full_page=True)
        browser.close()
    assert os.path.getsize(os.path.join(ARTIFACTS, 'web_demo.png')) > 10_000


def _predictor_and_inferencer(config, monkeypatch, **options):
    """The demo's drawing function for config (untrained weights, seeded) and the
    inferencer it draws with, to ask it for the predictions themselves."""
    import torch
    app = import_tool('tools/demo/app.py')
    made, real = [], app.build_inferencer
    monkeypatch.setattr(app, 'build_inferencer', lambda *a, **k: made.append(real(*a, **k))
                        or made[-1])
    torch.manual_seed(0)
    predict, kind = app.make_predictor(os.path.join(ROOT, config), **options)
    assert kind == 'image'
    return predict, made[-1]


def test_segmentation_demo_draws_each_pixel_in_its_class_colour(monkeypatch):
    """Untrained weights are enough to check the drawing: every pixel of the RGB
    upload is blended with the palette colour of its predicted class, 0.8 of the
    colour (mmseg's default opacity), except where class names are written."""
    import numpy as np
    predict, inferencer = _predictor_and_inferencer(
        'configs/segmentation/fpn_poolformer_s12_builtin.py', monkeypatch)
    image = np.random.default_rng(0).integers(0, 255, (150, 190, 3), dtype=np.uint8)
    drawn = predict(image)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    # The inferencer takes BGR arrays, as cv2 reads them.
    classes = inferencer(image[..., ::-1].copy(), return_datasamples=True)
    classes = classes.pred_sem_seg.data[0].numpy()
    assert len(np.unique(classes)) > 1  # so that a wrong colour anywhere shows
    palette = np.array(inferencer.model.dataset_meta['palette'])  # RGB
    expected = 0.2 * image + 0.8 * palette[classes]
    close = (np.abs(drawn - expected) <= 1.5).all(-1)
    assert close.mean() > 0.9, close.mean()


def test_detection_demo_draws_on_the_predicted_instances_only(monkeypatch):
    """Untrained weights, seeded, give 20 instances scored about 0.35-0.5. The demo
    asked for the top 3 (a threshold between the 3rd and 4th scores) changes the
    pixels in their masks and leaves those away from their boxes (and the class
    name written at a box's top left) as they were in the RGB upload."""
    import numpy as np
    config = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
    image = np.random.default_rng(0).integers(0, 255, (150, 190, 3), dtype=np.uint8)
    _, inferencer = _predictor_and_inferencer(config, monkeypatch)
    found = inferencer(image[..., ::-1].copy(), return_datasamples=True)['predictions'][0]
    scores = found.pred_instances.scores.sort(descending=True).values
    assert len(scores) > 3 and scores[2] > scores[3]
    score_thr = float(scores[2] + scores[3]) / 2

    predict, _ = _predictor_and_inferencer(config, monkeypatch, score_thr=score_thr)
    drawn = predict(image)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    instances = found.pred_instances[found.pred_instances.scores >= score_thr]
    assert len(instances) == 3
    changed = (drawn != image).any(-1)
    masks = instances.masks.numpy().any(0)
    assert changed[masks].mean() > 0.95
    near = np.zeros_like(masks)
    for x1, y1, x2, y2 in instances.bboxes.numpy().astype(int):
        near[max(y1 - 15, 0):y2 + 16, max(x1 - 15, 0):x2 + 60] = True
    assert (~near).sum() > 1000  # enough of the image is left to compare
    assert not changed[~near].any()


def test_detection_demo_draws_from_the_configs_visualization_threshold(monkeypatch):
    """The built-in Mask R-CNN's config draws from score 0.5 (its --show-dir
    threshold); none of the untrained model's instances reaches it, so the
    upload comes back as it was. mmdet's own 0.3 would draw all 20."""
    import numpy as np
    config = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
    image = np.random.default_rng(0).integers(0, 255, (150, 190, 3), dtype=np.uint8)
    predict, inferencer = _predictor_and_inferencer(config, monkeypatch)
    found = inferencer(image[..., ::-1].copy(), return_datasamples=True)['predictions'][0]
    scores = found.pred_instances.scores
    assert (scores >= 0.3).sum() > 0 and (scores >= 0.5).sum() == 0
    assert np.array_equal(predict(image), image)

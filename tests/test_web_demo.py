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


@pytest.mark.parametrize('config', ['configs/detection/maskrcnn_poolformer_s12_builtin.py',
                                    'configs/segmentation/fpn_poolformer_s12_builtin.py'])
def test_dense_predictors_draw_on_the_image(config):
    """Untrained weights are enough to check the drawing: an RGB image of the input's size."""
    import numpy as np
    predict, kind = import_tool('tools/demo/app.py').make_predictor(os.path.join(ROOT, config))
    image = np.random.default_rng(0).integers(0, 255, (150, 190, 3), dtype=np.uint8)
    drawn = predict(image)
    assert kind == 'image' and drawn.shape == image.shape and drawn.dtype == np.uint8

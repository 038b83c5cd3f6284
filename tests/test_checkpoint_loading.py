"""Loading checkpoints (mmpoolformer/checkpoint/loading.py; docs/reliability.md): a
crafted pickle is refused and runs nothing, in the API and in the tools;
`--trust-checkpoint` lets one file through; truncated and other-arch files are named;
an official checkpoint is still converted on load under a child config with its own
custom_hooks; last_checkpoint is never written in place."""
import os
import shutil

import pytest
import torch

from helpers import (
    ROOT,
    build_from_config,
    builtin_cls_options,
    mmpretrain_classifier,
    official_from_mmpretrain,
    one_line_error,
    randomize_,
    run_tool,
    succeeded,
    toy_runner,
)
from mmpoolformer.checkpoint import load_file, trust_checkpoint
from mmpoolformer.utils.errors import CheckpointError

CLS = 'configs/classification/poolformer_s12_builtin.py'



# --------------------------------------------------------------------------- #
# Checkpoints that would run code
# --------------------------------------------------------------------------- #
class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _getattr_chain_pickle(marker) -> bytes:
    """A raw pickle that reaches ``exec`` through nothing but ``builtins.getattr``
    (allow-listed for mmengine's logging buffers):
    getattr(getattr(getattr, '__self__'), 'exec')("open(marker, 'w')")."""
    def text(s):
        data = s.encode()
        return b'X' + len(data).to_bytes(4, 'little') + data
    getattr_ = b'cbuiltins\ngetattr\n'
    return (b'\x80\x02' + getattr_ + getattr_ + getattr_ + text('__self__') + b'\x86R'
            + text('exec') + b'\x86R' + text(f'open({str(marker)!r}, "w")') + b'\x85R.')


@pytest.mark.parametrize('kind', ['os.system', 'getattr-chain'])
def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    if kind == 'os.system':
        torch.save({'state_dict': _RunsCommand(marker)}, path)
    else:
        path.write_bytes(_getattr_chain_pickle(marker))
    with pytest.raises(CheckpointError, match=r'refused to load .*--trust-checkpoint'):
        load_file(str(path))
    # mmengine's own loading (load_from, --resume, init_cfg) takes the same road
    # where tools/train.py and tools/test.py run the Runner.
    from mmengine.runner import CheckpointLoader

    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    with mmengine_loads_through_load_file(), pytest.raises(CheckpointError, match='refused'):
        CheckpointLoader.load_checkpoint(str(path))
    assert not marker.exists()


def _tool_commands(tmp_path, checkpoint, data_root):
    """Each tool that loads a checkpoint, given CHECKPOINT in its own way."""
    import cv2
    import numpy as np
    image = str(tmp_path / 'shape.png')
    cv2.imwrite(image, np.full((64, 64, 3), 128, np.uint8))
    work = ['--work-dir', str(tmp_path / 'work')]
    return {
        'convert': ['tools/model_converters/convert.py', checkpoint, str(tmp_path / 'out.pth')],
        'train --resume': ['tools/train.py', CLS, '--resume', checkpoint, *work,
                           *builtin_cls_options(data_root)],
        'test': ['tools/test.py', CLS, checkpoint, *work, *builtin_cls_options(data_root)],
        'inference': ['tools/inference.py', CLS, checkpoint, image,
                      '--out-dir', str(tmp_path / 'out')],
        'demo': ['tools/demo/app.py', CLS, checkpoint],
        'gradcam': ['tools/visualization/gradcam.py', image, CLS, '--checkpoint', checkpoint,
                    '--size', '64', '--out', str(tmp_path / 'cam.png')],
        'onnx': ['tools/deployment/pytorch2onnx.py', CLS, checkpoint, '--shape', '64', '64',
                 '--out', str(tmp_path / 'model.onnx')],
    }


TOOLS = ['convert', 'train --resume', 'test', 'inference', 'demo', 'gradcam', 'onnx']


@pytest.mark.parametrize('tool', TOOLS)
def test_tools_refuse_a_crafted_checkpoint_in_one_line(tmp_path, tiny_cls_data, tool):
    """The demo refuses before its server starts; train.py with --resume (its
    load_from goes the same way, test_load_from_and_resume_refuse_a_crafted_checkpoint)."""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    command = _tool_commands(tmp_path, str(path), tiny_cls_data)[tool]
    one_line_error(run_tool(*command),
                   r'refused to load .*evil\.pth.*posix\.system.*--trust-checkpoint')
    assert not marker.exists()


@pytest.mark.parametrize('tool', TOOLS)
def test_tools_trust_the_checkpoint_named_by_the_flag(tmp_path, monkeypatch, tool):
    """Each tool's --trust-checkpoint PATH reaches load_file, which then unpickles that
    file in full (the payload runs); the refusal above shows that each tool reads its
    checkpoint through load_file. Parsing is enough: nothing is built."""
    from helpers import import_tool
    marker = tmp_path / 'pwned'
    path = tmp_path / 'trusted.pth'
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    command = _tool_commands(tmp_path, str(path), str(tmp_path / 'data'))[tool]
    module = import_tool(command[0])
    monkeypatch.setattr('sys.argv', [*command, '--trust-checkpoint', str(path)])
    module.parse_args()
    load_file(str(path))
    assert marker.exists()


@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_load_from_and_resume_refuse_a_crafted_checkpoint(tmp_path, resume):
    """The Runner's load_from and resume, where tools/train.py and tools/test.py run it."""

    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    runner = toy_runner(tmp_path / 'work', max_epochs=1, load_from=str(path), resume=resume)
    with mmengine_loads_through_load_file(), \
            pytest.raises(CheckpointError, match=rf'refused to load {path}: '):
        runner.train()
    assert not marker.exists()


def test_tools_load_a_checkpoint_the_user_trusts(tmp_path):
    """--trust-checkpoint PATH lets a tool unpickle a file with other types
    (here a datetime in its meta) that it refuses without the flag."""
    import datetime
    path = tmp_path / 'with_meta.pth'
    torch.save({'state_dict': build_from_config(CLS).state_dict(),
                'meta': {'saved': datetime.date(2022, 1, 1)}}, path)
    out = str(tmp_path / 'out.pth')
    proc = run_tool('tools/model_converters/convert.py', str(path), out)
    one_line_error(proc, r'refused to load .*with_meta\.pth.*datetime\.date')
    succeeded(run_tool('tools/model_converters/convert.py', str(path), out,
                       '--trust-checkpoint', str(path)))
    assert os.path.isfile(out)


def test_trusting_a_file_is_explicit_and_per_file(tmp_path):
    marker = tmp_path / 'ran'
    path, other = tmp_path / 'trusted.pth', tmp_path / 'other.pth'
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    shutil.copy(path, other)
    trust_checkpoint(str(path))
    load_file(str(path))  # the user vouched for it: it runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError):
        load_file(str(other))
    assert not marker.exists()


# --------------------------------------------------------------------------- #
# Checkpoints that do not fit: truncated, another arch, official layouts
# --------------------------------------------------------------------------- #
def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save({'w': torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r'cannot load checkpoint .*cut\.pth'):
        load_file(str(path))


def test_wrong_arch_checkpoint_names_key_and_shapes(tmp_path):
    from mmpoolformer.checkpoint import load_model_weights
    path = str(tmp_path / 'm36.pth')
    torch.save(build_from_config('configs/classification/poolformer_m36_in1k.py').state_dict(),
               path)
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'backbone\.stem\.conv\.weight': "
                                              r'checkpoint has \(96, 3, 7, 7\), '
                                              r'model has \(64, 3, 7, 7\)'):
        load_model_weights(build_from_config('configs/classification/poolformer_s12_in1k.py'), path)


def test_a_child_config_with_its_own_custom_hooks_still_converts(tmp_path):
    """ConvertCheckpointHook once sat in custom_hooks, which a child config replaces."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{ROOT}/configs/classification/poolformer_s12_in1k.py']\n"
                     "custom_hooks = [dict(type='EmptyCacheHook')]\n")
    cfg = Config.fromfile(str(child))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.backbone.init_cfg = None
    runner = Runner.from_cfg(cfg)
    reference = randomize_(mmpretrain_classifier('s12'))
    path = str(tmp_path / 'official.pth')
    torch.save(official_from_mmpretrain(reference.state_dict()), path)
    runner.load_checkpoint(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = runner.model.eval()(x, mode='tensor'), reference(x, mode='tensor')
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- #
# last_checkpoint
# --------------------------------------------------------------------------- #
def test_last_checkpoint_is_never_written_in_place(tmp_path, monkeypatch):
    """mmengine's CheckpointHook writes last_checkpoint with a plain open();
    under AtomicCheckpointHook that open() goes to a staging folder and the file
    is renamed into place, so a crash cannot leave it half written."""
    import builtins


    work = tmp_path / 'work'
    pointer = os.path.abspath(work / 'last_checkpoint')
    writes, real_open = [], builtins.open

    def recording_open(file, mode='r', *args, **kwargs):
        if os.path.abspath(str(file)) == pointer and mode != 'r':
            writes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', recording_open)
    runner = toy_runner(
        work, default_hooks=dict(checkpoint=dict(type='mmpoolformer.AtomicCheckpointHook',
                                           backend_args=dict(backend='atomic_local'))))
    runner.train()
    assert writes == [], 'last_checkpoint was opened for writing in place'
    assert open(pointer).read() == str(work / 'epoch_2.pth')
    assert os.listdir(work / '.last_checkpoint.staging') == []


# --------------------------------------------------------------------------- #
# Every road a checkpoint takes: init_cfg, URLs
# --------------------------------------------------------------------------- #
def _crafted(tmp_path, name='evil.pth'):
    """(path of a checkpoint whose unpickling touches a marker file, that marker)."""
    marker = tmp_path / 'pwned'
    path = tmp_path / name
    torch.save({'state_dict': _RunsCommand(marker)}, path)
    return path, marker


@pytest.mark.parametrize('init_type', ['mmpoolformer.PretrainedAnyLayout', 'Pretrained'])
def test_crafted_checkpoint_is_refused_through_init_cfg(tmp_path, init_type):
    """init_cfg's own loader, and mmengine's ``Pretrained`` where tools/train.py and
    tools/test.py run (inside mmengine_loads_through_load_file)."""
    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    from mmpoolformer.models import PoolFormer
    path, marker = _crafted(tmp_path)
    backbone = PoolFormer('s12', init_cfg=dict(type=init_type, checkpoint=str(path)))
    with mmengine_loads_through_load_file(), \
            pytest.raises(CheckpointError, match=rf'refused to load {path}: .*posix\.system'):
        backbone.init_weights()
    assert not marker.exists()


@pytest.fixture
def served(tmp_path, monkeypatch, request):
    """(base URL, folder it serves): a server on 127.0.0.1 in a thread, http or https
    (a self-signed certificate made with openssl, trusted through SSL_CERT_FILE);
    torch's hub cache, where URLs are downloaded to, under tmp_path."""
    import functools
    import http.server
    import ssl
    import subprocess
    import threading
    folder = tmp_path / 'served'
    folder.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    if request.param == 'https':
        if shutil.which('openssl') is None:
            pytest.skip('openssl is needed to make a certificate for the https server')
        cert, key = tmp_path / 'cert.pem', tmp_path / 'key.pem'
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                        '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        monkeypatch.setenv('SSL_CERT_FILE', str(cert))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'{request.param}://127.0.0.1:{server.server_address[1]}', folder
    server.shutdown()
    thread.join()


@pytest.mark.parametrize('served', ['http', 'https'], indirect=True)
def test_crafted_checkpoint_is_refused_over_http(served, tmp_path):
    from mmengine.runner import CheckpointLoader

    from mmpoolformer.checkpoint import mmengine_loads_through_load_file
    base, folder = served
    _, marker = _crafted(folder)
    url = f'{base}/evil.pth'
    refusal = rf'^refused to load {url}: .*posix\.system.*--trust-checkpoint {url}$'
    with pytest.raises(CheckpointError, match=refusal):
        load_file(url)
    with mmengine_loads_through_load_file(), pytest.raises(CheckpointError, match=refusal):
        CheckpointLoader.load_checkpoint(url)
    assert not marker.exists()
    trust_checkpoint(url)  # vouched for: the (cached) download is unpickled in full
    load_file(url)
    assert marker.exists()

"""The mmcv build that tools/setup_env.sh picks (CUDA ops or not, wheel cache key), driven
with a faked torch, nvcc and mmcv so that nothing is built; and the one-line message of
the tools when the installed mmcv does not fit the run."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT

BUILD_ENV = os.path.join(ROOT, 'tools', 'build_env.py')

FAKE_TORCH = '''
__version__ = {version!r}


class version:
    cuda = {cuda!r}


class cuda:
    @staticmethod
    def is_available():
        return bool({caps!r})

    @staticmethod
    def device_count():
        return len({caps!r})

    @staticmethod
    def get_device_capability(i):
        return {caps!r}[i]
'''

FAKE_MMCV = '__version__ = {version!r}\n'
FAKE_MMCV_OPS = 'def get_compiling_cuda_version():\n    return {cuda!r}\n'


@pytest.fixture
def fake_machine(tmp_path):
    """make(cuda=..., caps=..., nvcc=..., mmcv=..., mmcv_cuda=...) -> env: a fake torch
    (and mmcv) on PYTHONPATH, a fake nvcc toolkit, and no real CUDA settings."""
    count = iter(range(100))

    def make(cuda='13.0', caps=(), nvcc=True, mmcv='0.0', mmcv_cuda='not available', **extra):
        machine = tmp_path / f'machine{next(count)}'
        fake = machine / 'fake'
        for name in ('torch', 'mmcv/ops'):
            (fake / name).mkdir(parents=True, exist_ok=True)
        (fake / 'torch/__init__.py').write_text(FAKE_TORCH.format(
            version=f'2.14.1+{"cu" + cuda.replace(".", "") if cuda else "cpu"}',
            cuda=cuda, caps=list(caps)))
        (fake / 'mmcv/__init__.py').write_text(FAKE_MMCV.format(version=mmcv))
        (fake / 'mmcv/ops/__init__.py').write_text(FAKE_MMCV_OPS.format(cuda=mmcv_cuda))
        bin_dir = machine / 'bin'
        bin_dir.mkdir()
        home = machine / 'cuda'
        if nvcc:  # a toolkit as torch's builder wants it: bin/nvcc and include/
            (home / 'bin').mkdir(parents=True, exist_ok=True)
            (home / 'include').mkdir()
            (home / 'include/cuda_runtime.h').write_text('')
            (home / 'bin/nvcc').write_text('#!/bin/sh\necho fake nvcc\n')
            (home / 'bin/nvcc').chmod(0o755)
            os.symlink(home / 'bin/nvcc', bin_dir / 'nvcc')
        env = {k: v for k, v in os.environ.items() if k not in (
            'CUDA_HOME', 'CUDA_PATH', 'TORCH_CUDA_ARCH_LIST', 'MMPOOLFORMER_FORCE_CUDA',
            'CUDA_VISIBLE_DEVICES')}
        # No /usr/local/bin: the real nvcc of these machines lives there.
        env.update(PYTHONPATH=str(fake), PATH=f'{bin_dir}:/usr/bin:/bin', **extra)
        return env
    return make


def choose(env):
    proc = subprocess.run([sys.executable, BUILD_ENV, 'choose', '2.1.0'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split('=', 1) for line in proc.stdout.splitlines())


def test_cuda_torch_nvcc_and_gpu_build_cuda_ops(fake_machine):
    choices = choose(fake_machine(caps=[(9, 0)]))
    assert choices['FORCE_CUDA'] == '1'
    assert choices['TORCH_CUDA_ARCH_LIST'] == '9.0'
    assert choices['WHEEL_KEY'] == 'mmcv-2.1.0-torch2.14.1-cu130-sm90-py311'
    assert choices['LEGACY_KEY'] == ''  # CPU wheels under the old key are never used
    # The toolkit holding PATH's nvcc, not the folder above a wrapper or link to it.
    assert choices['CUDA_HOME'].endswith('/cuda')


def test_arch_list_from_every_gpu_and_env_override(fake_machine):
    assert choose(fake_machine(caps=[(9, 0), (8, 0), (9, 0)]))['TORCH_CUDA_ARCH_LIST'] \
        == '8.0;9.0'
    choices = choose(fake_machine(caps=[(9, 0)], TORCH_CUDA_ARCH_LIST='8.6 9.0+PTX'))
    assert choices['TORCH_CUDA_ARCH_LIST'] == '8.6;9.0+PTX'
    assert '-cu130-sm86_90ptx-' in choices['WHEEL_KEY']


@pytest.mark.parametrize('machine', [
    dict(cuda=None, caps=[]),              # CPU torch
    dict(cuda='13.0', caps=[]),            # these machines: CUDA torch and nvcc, no GPU
    dict(cuda='13.0', caps=[(9, 0)], nvcc=False),
])
def test_cpu_build_otherwise(fake_machine, machine):
    choices = choose(fake_machine(**machine))
    assert choices['FORCE_CUDA'] == '0'
    assert choices['WHEEL_KEY'] == 'mmcv-2.1.0-torch2.14.1-cpu-py311'
    assert choices['LEGACY_KEY'] == 'mmcv-2.1.0-torch2.14.1-py311'


def test_forced_cuda_build_without_gpu(fake_machine):
    choices = choose(fake_machine(MMPOOLFORMER_FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0'))
    assert (choices['FORCE_CUDA'], choices['TORCH_CUDA_ARCH_LIST']) == ('1', '9.0')
    for env, culprit in [(fake_machine(MMPOOLFORMER_FORCE_CUDA='1'), 'TORCH_CUDA_ARCH_LIST'),
                         (fake_machine(nvcc=False, MMPOOLFORMER_FORCE_CUDA='1'), 'nvcc')]:
        proc = subprocess.run([sys.executable, BUILD_ENV, 'choose', '2.1.0'], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stdout == ''
        assert proc.stderr.startswith('error: MMPOOLFORMER_FORCE_CUDA=1')
        assert culprit in proc.stderr and len(proc.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- #
# tools/setup_env.sh itself, with a fake venv python that logs what pip would do
# --------------------------------------------------------------------------- #
FAKE_PYTHON = '''#!/bin/bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
    *build_env.py) exec {python} "$@" ;;
esac
exit 0  # pip, and the final import check
'''


@pytest.fixture
def fake_repo(tmp_path):
    """A copy of what setup_env.sh reads, with a fake .venv/bin/python."""
    repo = tmp_path / 'repo'
    for path in ('tools/setup_env.sh', 'pyproject.toml', 'tools/build_env.py'):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, path), repo / path)
    shutil.copytree(os.path.join(ROOT, 'requirements'), repo / 'requirements')
    python = repo / '.venv/bin/python'
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    return repo


def run_setup(repo, env):
    log = repo.parent / 'python.log'
    log.write_text('')
    proc = subprocess.run(['bash', str(repo / 'tools/setup_env.sh')], env=dict(
        env, FAKE_LOG=str(log), MMPOOLFORMER_CACHE=str(repo.parent / 'cache')),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr, log.read_text().splitlines()


def cached_wheel(repo, key):
    wheel = repo.parent / 'cache/wheels' / key / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    wheel.parent.mkdir(parents=True, exist_ok=True)
    wheel.write_text('')
    return str(wheel)


def test_setup_env_reuses_cached_cpu_wheel_then_builds_nothing_on_cuda(
        fake_repo, fake_machine):
    # A CPU machine with the wheel cached under the key of before: used, nothing built.
    legacy = cached_wheel(fake_repo, 'mmcv-2.1.0-torch2.14.1-py311')
    env = fake_machine(caps=[])
    stderr, calls = run_setup(fake_repo, env)
    assert 'CPU ops only: no GPU visible' in stderr
    assert not any('download' in c for c in calls), calls
    assert any('--force-reinstall' in c and legacy in c for c in calls), calls
    # The dependencies are pyproject's, pinned by the constraints, with the cached mmcv
    # wheel in the same command (so that pip never builds mmcv for mmdet's requirement).
    assert any(c.endswith(f'-c {fake_repo}/requirements/constraints.txt '
                          f'-e {fake_repo}[tests] {legacy}') for c in calls), calls
    # Nothing changed: the stamp returns at once, without python.
    assert run_setup(fake_repo, env)[1] == []

    # A GPU node of the same venv and cache, whose mmcv (version matches) has CPU ops only:
    # the stamp no longer matches and the CUDA wheel of its own key is installed.
    cuda_wheel = cached_wheel(fake_repo, 'mmcv-2.1.0-torch2.14.1-cu130-sm90-py311')
    env = fake_machine(caps=[(9, 0)], mmcv='2.1.0', mmcv_cuda='not available')
    stderr, calls = run_setup(fake_repo, env)
    assert 'CUDA 13.0 ops for 9.0' in stderr
    assert any('--force-reinstall' in c and cuda_wheel in c for c in calls), calls
    assert not any(legacy in c for c in calls)

    # Its mmcv built with CUDA fits: not reinstalled (run again without the stamp).
    (fake_repo / '.venv/.mmpoolformer-stamp').unlink()
    env = fake_machine(caps=[(9, 0)], mmcv='2.1.0', mmcv_cuda='13.0')
    calls = run_setup(fake_repo, env)[1]
    assert calls and not any('--force-reinstall' in c for c in calls), calls


def test_setup_env_script_parses():
    assert subprocess.run(['bash', '-n', os.path.join(ROOT, 'tools/setup_env.sh')]
                          ).returncode == 0


# --------------------------------------------------------------------------- #
# Bad input: an mmcv that does not fit the run, said in one line before it starts
# --------------------------------------------------------------------------- #
def test_mmcv_without_compiled_ops(monkeypatch):
    from mmpoolformer.utils.openmmlab import mmcv_ops_problem
    monkeypatch.setitem(sys.modules, 'mmcv.ops', None)  # as with mmcv-lite
    problem = mmcv_ops_problem(cuda_run=False)
    assert 'has no usable compiled ops' in problem and 'reinstall mmcv' in problem
    assert '\n' not in problem


def test_tool_says_what_to_reinstall_without_mmcv_ops():
    code = textwrap.dedent('''
        import runpy, sys
        sys.modules['mmcv._ext'] = None  # the compiled ops of mmcv cannot be imported
        sys.argv = ['tools/train.py', 'configs/detection/maskrcnn_poolformer_s12_builtin.py']
        runpy.run_path('tools/train.py', run_name='__main__')''')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: mmcv 2.1.0'), proc.stderr[-2000:]
    assert 'reinstall mmcv with its ops' in lines[0]


@pytest.mark.parametrize('compiled, status', [('not available', 1), ('13.0', 0)])
def test_gpu_check_asks_the_package_about_cuda_ops(monkeypatch, capsys, compiled, status):
    """`tools/build_env.py check-cuda` (tools/gpu_check.sh) gives the package's message."""
    import runpy

    import mmcv.ops
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: compiled)
    main = runpy.run_path(BUILD_ENV)['main']
    assert main(['check-cuda']) == status
    lines = capsys.readouterr().err.splitlines()
    if status:
        assert len(lines) == 1 and lines[0].startswith('error: mmcv ')
        assert 'was built without CUDA ops' in lines[0]
    else:
        assert lines == []


@pytest.mark.parametrize('scope, compiled, fails', [
    ('mmdet', 'not available', True),     # CPU ops only, CUDA run of a detector
    ('mmdet', '13.0', False),
    ('mmpretrain', 'not available', False),  # classifiers use no mmcv ops
])
def test_cuda_run_with_cpu_only_mmcv(monkeypatch, scope, compiled, fails):
    import mmcv.ops
    import torch
    from mmengine.config import Config

    from mmpoolformer.apis import run
    from mmpoolformer.utils.errors import UsageError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: compiled)
    cfg = Config(dict(default_scope=scope))
    if not fails:
        run.check_mmcv_ops(cfg)
        return
    with pytest.raises(UsageError, match='built without CUDA ops but this run uses CUDA'):
        run.check_mmcv_ops(cfg)


def test_prepare_config_checks_mmcv_before_the_run(monkeypatch, tmp_path):
    import argparse

    import mmcv.ops
    import torch

    from mmpoolformer.apis import run
    from mmpoolformer.utils.errors import UsageError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: 'not available')
    args = argparse.Namespace(
        config=os.path.join(ROOT, 'configs/detection/maskrcnn_poolformer_s12_builtin.py'),
        cfg_options=None, launcher='none', local_rank=0, work_dir=str(tmp_path))
    with pytest.raises(UsageError, match='rebuild it where torch has CUDA and nvcc'):
        run.prepare_config(args)

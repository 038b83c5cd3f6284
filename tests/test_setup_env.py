"""What tools/setup_env.sh decides, driven with a faked torch, nvidia-smi, nvcc, mmcv and
pip so that nothing is downloaded or built: the torch variant for the driver, the mmcv
build (CUDA ops or not, architectures, MAX_JOBS, wheel cache key and record), what counts
as installed (so that a rerun offline needs no network), the package linked where
mmengine and mim look; and the one-line message of the tools when the installed mmcv does
not fit the run."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import ROOT, import_tool

BUILD_ENV = os.path.join(ROOT, 'tools', 'build_env.py')
CONSTRAINTS = os.path.join(ROOT, 'requirements', 'constraints.txt')
PY = f'py{sys.version_info[0]}{sys.version_info[1]}'
CU126_LINE = ('error: the NVIDIA driver supports CUDA 12.4 but torch 2.14.1 is a CUDA 13.0 '
              'build; run: TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 '
              'bash tools/setup_env.sh')


def pinned(name):
    with open(CONSTRAINTS) as f:
        return re.search(rf'^{name}==(\S+)', f.read(), re.M).group(1)


# torch as installed: version and CUDA in torch.json beside it (no file: not installed),
# which the fake pip rewrites when it installs from an index.
FAKE_TORCH = '''
import json, os
_state = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'torch.json')
if not os.path.exists(_state):
    raise ImportError('no torch (fake)')
with open(_state) as f:
    _state = json.load(f)
__version__ = _state['version']
_caps = {caps!r}


class version:
    cuda = _state['cuda']


class cuda:
    @staticmethod
    def is_available():
        return bool(_caps)

    @staticmethod
    def device_count():
        return len(_caps)

    @staticmethod
    def get_device_capability(i):
        return _caps[i]
'''

FAKE_MMCV = '__version__ = {version!r}\n'
FAKE_MMCV_OPS = 'def get_compiling_cuda_version():\n    return {cuda!r}\n'

# nvidia-smi of a driver (its CUDA version) and GPUs (their compute capabilities).
FAKE_SMI = '''#!/bin/sh
case "$*" in
    *compute_cap*) printf '%s\\n' {caps} ;;
    -L) echo "GPU 0: NVIDIA Fake (UUID: GPU-1)" ;;
    *) echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: {driver}  |" ;;
esac
'''

FAKE_NVCC = '''#!/bin/sh
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Cuda compilation tools, release {release}, V{release}.88"
'''


@pytest.fixture
def fake_machine(tmp_path):
    """make(cuda=..., caps=..., nvcc=..., driver=..., mmcv=..., ...) -> env: a fake torch
    (and mmcv) on PYTHONPATH, a fake nvcc toolkit and nvidia-smi, and no real CUDA
    settings. The PYTHONPATH folder is also where fake distributions are 'installed'."""
    count = iter(range(100))

    def make(cuda='13.0', caps=(), nvcc='13.0', driver=None, smi_caps=(), torch='2.14.1',
             mmcv='0.0', mmcv_cuda='not available', **extra):
        machine = tmp_path / f'machine{next(count)}'
        fake = machine / 'fake'
        for name in ('torch', 'mmcv/ops'):
            (fake / name).mkdir(parents=True, exist_ok=True)
        (fake / 'torch/__init__.py').write_text(FAKE_TORCH.format(caps=list(caps)))
        if torch:
            tag = 'cu' + cuda.replace('.', '') if cuda else 'cpu'
            (fake / 'torch.json').write_text(json.dumps(dict(version=f'{torch}+{tag}',
                                                             cuda=cuda)))
        (fake / 'mmcv/__init__.py').write_text(FAKE_MMCV.format(version=mmcv))
        (fake / 'mmcv/ops/__init__.py').write_text(FAKE_MMCV_OPS.format(cuda=mmcv_cuda))
        bin_dir = machine / 'bin'
        bin_dir.mkdir()
        home = machine / 'cuda'
        if nvcc:  # a toolkit as torch's builder wants it: bin/nvcc and include/
            (home / 'bin').mkdir(parents=True, exist_ok=True)
            (home / 'include').mkdir()
            (home / 'include/cuda_runtime.h').write_text('')
            (home / 'bin/nvcc').write_text(FAKE_NVCC.format(release=nvcc))
            (home / 'bin/nvcc').chmod(0o755)
            os.symlink(home / 'bin/nvcc', bin_dir / 'nvcc')
        if driver:
            (bin_dir / 'nvidia-smi').write_text(FAKE_SMI.format(
                driver=driver, caps=' '.join(smi_caps) or "''"))
            (bin_dir / 'nvidia-smi').chmod(0o755)
        env = {k: v for k, v in os.environ.items() if k not in (
            'CUDA_HOME', 'CUDA_PATH', 'TORCH_CUDA_ARCH_LIST', 'MMPOOLFORMER_FORCE_CUDA',
            'CUDA_VISIBLE_DEVICES', 'TORCH_INDEX_URL', 'MAX_JOBS')}
        # No /usr/local/bin: the real nvcc of these machines lives there.
        env.update(PYTHONPATH=str(fake), PATH=f'{bin_dir}:/usr/bin:/bin',
                   FAKE_TORCH_JSON=str(fake / 'torch.json'), **extra)
        return env
    return make


def build_env(env, *args):
    return subprocess.run([sys.executable, BUILD_ENV, *args], env=env, capture_output=True,
                          text=True, timeout=60)


def choose(env, wheels=''):
    proc = build_env(env, 'choose', '2.1.0', wheels)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split('=', 1) for line in proc.stdout.splitlines())


def one_error_line(proc):
    assert proc.returncode == 2 and proc.stdout == '', (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    return lines[0]


# --------------------------------------------------------------------------- #
# torch: a variant the driver runs
# --------------------------------------------------------------------------- #
def test_default_torch_wheel_on_an_older_driver_stops_with_the_command(fake_machine):
    # Nothing installed yet: PyPI's torch 2.14.1 wheel is a CUDA 13.0 build.
    proc = build_env(fake_machine(torch=None, driver='12.4'), 'torch-source', '2.14.1')
    assert one_error_line(proc) == CU126_LINE
    line = one_error_line(build_env(fake_machine(torch=None, driver='12.8'),
                                    'torch-source', '2.14.1'))
    assert line.endswith('run: TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 '
                         'bash tools/setup_env.sh')
    line = one_error_line(build_env(fake_machine(torch=None, driver='11.8'),
                                    'torch-source', '2.14.1'))
    assert 'CUDA 11.8' in line and 'upgrade the NVIDIA driver' in line
    # An installed CUDA 13 torch on that driver: the same, naming the installed build.
    line = one_error_line(build_env(fake_machine(driver='12.4'), 'torch-source', '2.14.1'))
    assert 'torch 2.14.1+cu130 is a CUDA 13.0 build' in line and '/whl/cu126 ' in line


def test_old_gpu_needs_a_cuda12_torch_even_on_a_new_driver(fake_machine):
    env = fake_machine(torch=None, driver='13.0', smi_caps=['7.0', '9.0'])
    line = one_error_line(build_env(env, 'torch-source', '2.14.1'))
    assert 'compute capability 7.0' in line and 'needs 7.5 or more' in line
    assert line.endswith('TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 '
                         'bash tools/setup_env.sh')


@pytest.mark.parametrize('machine, index, source', [
    (dict(torch=None, driver='13.0', smi_caps=['9.0']), '', ''),  # PyPI's wheel runs
    (dict(torch=None), '', ''),                      # no nvidia-smi (login node): PyPI's
    (dict(cuda='12.6', driver='12.4'), '', ''),      # a cu126 torch stays (rerun without)
    (dict(cuda=None, driver='12.4'), '', ''),        # a CPU torch, on purpose
    (dict(torch=None, driver='12.4'), 'cu126', 'index'),
    (dict(driver='12.4'), 'cu126', 'index'),         # the cu130 one is replaced
    (dict(cuda='12.6', driver='12.4'), 'cu126', ''),  # already that variant: no network
    (dict(cuda='12.6', driver='12.4'), 'cu128', 'index'),  # another variant asked for
    (dict(cuda='12.6'), 'cpu', 'index'),             # a CPU torch asked for
    (dict(torch='2.13.0', cuda='12.6', driver='12.4'), 'cu126', 'index'),  # not the pin
])
def test_torch_source(fake_machine, machine, index, source):
    url = f'https://download.pytorch.org/whl/{index}' if index else ''
    proc = build_env(fake_machine(**machine, TORCH_INDEX_URL=url), 'torch-source', '2.14.1')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == source


def test_torch_from_an_index_that_does_not_fit_stops(fake_machine):
    env = fake_machine(driver='12.4', TORCH_INDEX_URL='https://download.pytorch.org/whl/cu130')
    line = one_error_line(build_env(env, 'torch-source', '--installed', '2.14.1'))
    assert 'CUDA 12.4' in line and 'CUDA 13.0 build' in line
    assert 'from TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130' in line
    assert line.endswith('TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 '
                         'bash tools/setup_env.sh')
    # the same variant asked for again: said at once, not downloaded again
    assert one_error_line(build_env(env, 'torch-source', '2.14.1')) == line


def test_pypi_torch_cuda_is_that_of_the_pinned_torch():
    assert import_tool('tools/build_env.py').PYPI_TORCH[0] == pinned('torch')


def test_constraints_keep_a_torch_of_another_cuda_variant(tmp_path):
    """pip's own reading: ==2.14.1 admits 2.14.1+cu126, so the constrained installs after
    the one from TORCH_INDEX_URL keep it (checked offline, with a stand-in name)."""
    dist = tmp_path / 'site/zz_torch-2.14.1+cu126.dist-info'
    dist.mkdir(parents=True)
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: zz-torch\nVersion: 2.14.1+cu126\n')

    def dry_run(pin):
        (tmp_path / 'c.txt').write_text(f'zz-torch=={pin}\n')
        return subprocess.run(
            [sys.executable, '-m', 'pip', '--isolated', 'install', '--dry-run', '--no-index',
             '-c', str(tmp_path / 'c.txt'), 'zz-torch'], capture_output=True, text=True,
            timeout=120, env=dict(os.environ, PYTHONPATH=str(tmp_path / 'site')))
    proc = dry_run('2.14.1')
    assert proc.returncode == 0 and 'Requirement already satisfied: zz-torch' in proc.stdout, \
        proc.stdout + proc.stderr
    assert dry_run('2.14.2').returncode != 0  # a pin it does not admit: pip would fetch


# --------------------------------------------------------------------------- #
# mmcv: the build for this machine
# --------------------------------------------------------------------------- #
def test_cuda_torch_nvcc_and_gpu_build_cuda_ops(fake_machine):
    choices = choose(fake_machine(caps=[(9, 0)]), '/cache/wheels')
    assert choices['FORCE_CUDA'] == '1'
    assert choices['TORCH_CUDA_ARCH_LIST'] == '9.0+PTX'  # PTX of the newest for later GPUs
    assert choices['CUDA_VERSION'] == '13.0'
    assert choices['WHEEL_DIR'] == f'/cache/wheels/mmcv-2.1.0-torch2.14.1-cu130-sm90ptx-{PY}'
    assert choices['CACHED_WHEEL'] == ''
    assert choices['RECORD'] == 'share/mmpoolformer/mmcv_build.json'
    # The toolkit holding PATH's nvcc, not the folder above a wrapper or link to it.
    assert choices['CUDA_HOME'].endswith('/cuda')


def test_arch_list_from_every_gpu_and_env_override(fake_machine):
    assert choose(fake_machine(caps=[(9, 0), (8, 0), (9, 0)]))['TORCH_CUDA_ARCH_LIST'] \
        == '8.0;9.0+PTX'
    choices = choose(fake_machine(caps=[(9, 0)], TORCH_CUDA_ARCH_LIST='8.6 9.0'))
    assert choices['TORCH_CUDA_ARCH_LIST'] == '8.6;9.0'
    assert '-cu130-sm86_90-' in choices['WHEEL_DIR']


def test_nvcc_of_another_cuda_major_version_stops(fake_machine):
    line = one_error_line(build_env(fake_machine(caps=[(9, 0)], nvcc='12.4'), 'choose', '2.1.0'))
    assert 'nvcc is CUDA 12.4' in line and 'torch 2.14.1+cu130 is a CUDA 13.0 build' in line
    assert 'CUDA_HOME=<a CUDA 13.x toolkit> bash tools/setup_env.sh' in line
    # the same major version, another minor one: torch's builder accepts it
    assert choose(fake_machine(caps=[(9, 0)], nvcc='13.1'))['CUDA_VERSION'] == '13.1'


@pytest.mark.parametrize('machine', [
    dict(cuda=None, caps=[]),              # CPU torch
    dict(cuda='13.0', caps=[]),            # these machines: CUDA torch and nvcc, no GPU
    dict(cuda='13.0', caps=[(9, 0)], nvcc=None),
])
def test_cpu_build_otherwise(fake_machine, machine):
    choices = choose(fake_machine(**machine), '/cache/wheels')
    assert choices['FORCE_CUDA'] == '0'
    assert choices['WHEEL_DIR'] == f'/cache/wheels/mmcv-2.1.0-torch2.14.1-cpu-{PY}'
    assert choices['CUDA_VERSION'] == ''


def test_forced_cuda_build_without_gpu(fake_machine):
    choices = choose(fake_machine(MMPOOLFORMER_FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0'))
    assert (choices['FORCE_CUDA'], choices['TORCH_CUDA_ARCH_LIST']) == ('1', '9.0')
    for env, culprit in [(fake_machine(MMPOOLFORMER_FORCE_CUDA='1'), 'TORCH_CUDA_ARCH_LIST'),
                         (fake_machine(nvcc=None, MMPOOLFORMER_FORCE_CUDA='1'), 'nvcc')]:
        line = one_error_line(build_env(env, 'choose', '2.1.0'))
        assert line.startswith('error: MMPOOLFORMER_FORCE_CUDA=1') and culprit in line


def test_max_jobs_capped_by_memory_for_cuda_builds(tmp_path):
    build_env_module = import_tool('tools/build_env.py')
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       65536000 kB\nMemAvailable:    8388608 kB\n')  # 8 GiB

    def jobs(cuda, cpus, **env):
        return build_env_module.max_build_jobs(cuda, env, cpus=cpus, meminfo=str(meminfo))[0]
    assert jobs(True, 16) == '3'      # 8 GiB / 2.5 GiB per nvcc job
    assert jobs(True, 2) == '2'       # fewer cores than that
    assert jobs(False, 16) == '16'    # C++ only: the cores
    assert jobs(True, 16, MAX_JOBS='7') == '7'  # the user's MAX_JOBS wins
    meminfo.write_text('MemAvailable:    1048576 kB\n')
    assert jobs(True, 16) == '1'      # never 0


@pytest.mark.parametrize('record, fits', [
    (None, True),                                   # not recorded: mmcv's word
    ({'cuda': '13.0', 'arch_list': '8.0;9.0'}, True),
    ({'cuda': '13.0', 'arch_list': '9.0+PTX'}, False),  # no code for the 8.0 GPU
])
def test_installed_cuda_mmcv_fits_when_its_record_covers_the_gpus(
        fake_machine, tmp_path, record, fits):
    venv = tmp_path / 'venv'
    if record:
        (venv / 'share/mmpoolformer').mkdir(parents=True)
        (venv / 'share/mmpoolformer/mmcv_build.json').write_text(json.dumps(record))
    env = fake_machine(caps=[(8, 0), (9, 0)], mmcv='2.1.0', mmcv_cuda='13.0')
    proc = build_env(env, 'installed', '2.1.0', '1', '8.0;9.0+PTX', str(venv))
    assert proc.returncode == (0 if fits else 1), proc.stderr


# --------------------------------------------------------------------------- #
# What counts as installed: pip runs only for what is missing
# --------------------------------------------------------------------------- #
def fake_dist(site, name, version, requires=(), editable_root=None):
    dist = site / f'{name.replace("-", "_")}-{version}.dist-info'
    dist.mkdir(parents=True, exist_ok=True)
    (dist / 'METADATA').write_text(
        f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'
        + ''.join(f'Requires-Dist: {r}\n' for r in requires))
    if editable_root is not None:
        (dist / 'direct_url.json').write_text(json.dumps(
            dict(url=f'file://{editable_root}', dir_info=dict(editable=True))))


def test_unmet_requirements(tmp_path):
    build_env_module = import_tool('tools/build_env.py')
    from packaging.specifiers import SpecifierSet
    site = tmp_path / 'site'
    fake_dist(site, 'torch', '2.14.1+cu126', ['filelock', 'nvidia-cublas-cu12; extra == "cuda"'])
    fake_dist(site, 'filelock', '3.0')
    fake_dist(site, 'numpy', '2.3.0')

    def unmet(*reqs, **constraints):
        return build_env_module.unmet_requirements(
            reqs, {k: SpecifierSet(v) for k, v in constraints.items()}, path=[str(site)])
    assert unmet('torch', torch='==2.14.1') == []  # a local variant satisfies the pin
    assert unmet('torch>=2.15') == ['torch 2.14.1+cu126: not >=2.15 (torch>=2.15)']
    assert unmet('numpy', numpy='==2.4.6') == ['numpy 2.3.0: not ==2.4.6 (constraints)']
    assert unmet('mmdet') == ['mmdet: not installed']
    assert unmet('mmdet; python_version < "3"') == []  # not for this python
    assert unmet('torch[cuda]') == ['nvidia-cublas-cu12: not installed']  # dependencies too
    (site / 'filelock-3.0.dist-info').rename(site / 'gone')
    assert unmet('torch') == ['filelock: not installed']


def test_project_ready_needs_the_editable_install_of_this_checkout(tmp_path):
    build_env_module = import_tool('tools/build_env.py')
    requirements = build_env_module.project_requirements(ROOT)
    # pyproject's own, its [tests] extra and the [tools] extra that one names
    for expected in ('mmcv>=2.0.0rc4,<2.2.0', 'pytest', 'openmim', 'timm', 'onnxruntime'):
        assert expected in requirements
    assert not any(r.startswith('mmpoolformer') for r in requirements)

    site = tmp_path / 'site'

    def unready():
        return build_env_module.project_unready(ROOT, CONSTRAINTS, path=[str(site)])
    assert unready() == ['mmpoolformer: not installed']
    fake_dist(site, 'mmpoolformer', '0.1.0', editable_root='/elsewhere')
    assert unready() == [f'mmpoolformer: not an editable install of {ROOT} (file:///elsewhere)']
    shutil.rmtree(site)
    fake_dist(site, 'mmpoolformer', '0.0.1', editable_root=ROOT)
    assert unready()[0].startswith('mmpoolformer 0.0.1: the checkout is ')
    shutil.rmtree(site)
    fake_dist(site, 'mmpoolformer', build_env_module.checkout_version(ROOT), editable_root=ROOT)
    assert 'mmdet: not installed' in unready()  # and then the requirements


# --------------------------------------------------------------------------- #
# The package where mmengine and mim look for it
# --------------------------------------------------------------------------- #
def test_package_linked_into_site_packages(tmp_path):
    build_env_module = import_tool('tools/build_env.py')
    venv = tmp_path / 'venv'
    site = build_env_module.venv_site_packages(str(venv))
    assert site == f'{venv}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages'
    os.makedirs(site)
    os.symlink('/elsewhere/mmpoolformer', os.path.join(site, 'mmpoolformer'))  # stale
    link = build_env_module.link_package(ROOT, site)
    assert link == os.path.join(site, 'mmpoolformer')
    assert os.readlink(link) == os.path.join(ROOT, 'mmpoolformer')
    assert build_env_module.link_package(ROOT, site) == link  # again: nothing changes
    # What mmengine's get_installed_path and mim read, through the link: the relative
    # links of .mim resolve to the checkout's folders.
    mim = os.path.join(link, '.mim')
    assert os.path.isfile(os.path.join(mim, 'model-index.yml'))
    base = os.path.join(mim, 'configs', 'detection', 'maskrcnn_poolformer_s12.py')
    assert os.path.realpath(base) == os.path.join(ROOT, 'configs', 'detection',
                                                  'maskrcnn_poolformer_s12.py')
    assert os.path.isfile(os.path.join(mim, 'tools', 'train.py'))
    # A regular install's folder there is left alone, said in one line.
    os.remove(link)
    os.mkdir(link)
    with pytest.raises(ValueError, match='is a regular install of mmpoolformer') as err:
        build_env_module.link_package(ROOT, site)
    assert '\n' not in str(err.value)


# --------------------------------------------------------------------------- #
# tools/setup_env.sh itself, with a fake venv python whose pip logs what it would do
# --------------------------------------------------------------------------- #
FAKE_PYTHON = '''#!/bin/bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
    *build_env.py) exec {python} "$@" ;;
esac
[[ "$1 $2" == "-m pip" ]] || exit 0  # the final import check
shift 2
while [[ "$1" == -* ]]; do shift; done  # pip's own options
command="$1"
shift
if [[ "$command" != check ]]; then  # as pip says with local indexes that lack a package
    echo "WARNING: Location 'file:///opt/pypi/simple/torch/' is ignored: it is neither a" \
         "file nor a directory." >&2
fi
wheel=0 no_deps=0 index='' out=''
while (($#)); do
    case "$1" in
        *.whl) wheel=1 ;;
        --no-deps) no_deps=1 ;;
        --index-url) index="$2"; shift ;;
        -d | -w) out="$2"; shift ;;
    esac
    shift
done
if [[ "$FAKE_OFFLINE" == 1 && ( "$command" == download
                                || ( "$command" == install && "$wheel$no_deps" != 11 ) ) ]]; then
    echo "ERROR: network is unreachable (fake offline node)" >&2
    exit 1
fi
case "$command" in
    install)  # from an index: that variant of torch is installed now
        if [[ -n "$index" ]]; then
            tag="${{index##*/}}"
            printf '{{"version": "2.14.1+%s", "cuda": "%s.%s"}}' "$tag" "${{tag:2:2}}" \\
                "${{tag:4}}" > "$FAKE_TORCH_JSON"
        fi ;;
    download)
        mkdir -p "$out/src/mmcv-2.1.0" && touch "$out/src/mmcv-2.1.0/setup.py"
        tar -czf "$out/mmcv-2.1.0.tar.gz" -C "$out/src" mmcv-2.1.0 && rm -r "$out/src" ;;
    wheel)
        echo "ENV MAX_JOBS=$MAX_JOBS FORCE_CUDA=$FORCE_CUDA" \\
             "TORCH_CUDA_ARCH_LIST=${{TORCH_CUDA_ARCH_LIST-unset}}" >> "$FAKE_LOG"
        echo "  SetuptoolsDeprecationWarning: a notice of the build"
        if [[ "$FAKE_BUILD_FAILS" == 1 ]]; then
            echo "error: command '/usr/bin/g++' failed with exit code 1" >&2
            exit 1
        fi
        mkdir -p "$out" && touch "$out/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl" ;;
    check) exit "${{FAKE_PIP_CHECK:-0}}" ;;
esac
exit 0
'''


@pytest.fixture
def fake_repo(tmp_path):
    """A copy of what setup_env.sh reads, with a fake .venv/bin/python."""
    repo = tmp_path / 'repo'
    for path in ('tools/setup_env.sh', 'tools/malloc.sh', 'pyproject.toml', 'tools/build_env.py',
                 'mmpoolformer/__init__.py', 'mmpoolformer/utils/gpu.py'):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, path), repo / path)
    shutil.copytree(os.path.join(ROOT, 'requirements'), repo / 'requirements')
    python = repo / '.venv/bin/python'
    python.parent.mkdir(parents=True)
    (repo / f'.venv/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages').mkdir(
        parents=True)
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    return repo


def run_setup(repo, env, check=True):
    log = repo.parent / 'python.log'
    log.write_text('')
    proc = subprocess.run(['bash', str(repo / 'tools/setup_env.sh')], env=dict(
        env, FAKE_LOG=str(log), MMPOOLFORMER_CACHE=str(repo.parent / 'cache')),
        capture_output=True, text=True, timeout=180)
    if check:
        assert proc.returncode == 0, proc.stderr
        return proc.stderr, log.read_text().splitlines()
    return proc, log.read_text().splitlines()


def cached_wheel(repo, key, record=None):
    wheel = repo.parent / 'cache/wheels' / key / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    wheel.parent.mkdir(parents=True, exist_ok=True)
    wheel.write_text('')
    if record is not None:
        (wheel.parent / 'mmcv_build.json').write_text(json.dumps(record))
    return str(wheel)


def venv_record(repo):
    from mmpoolformer.utils.gpu import mmcv_build_record
    return mmcv_build_record(str(repo / '.venv'))


def test_setup_env_reuses_cached_cpu_wheel_then_builds_nothing_on_cuda(
        fake_repo, fake_machine):
    # A CPU machine with the wheel cached under the key of before: used, nothing built.
    legacy = cached_wheel(fake_repo, f'mmcv-2.1.0-torch2.14.1-{PY}')
    env = fake_machine(caps=[])
    stderr, calls = run_setup(fake_repo, env)
    assert 'CPU ops only: no GPU visible' in stderr
    assert not any('download' in c for c in calls), calls
    assert any('--force-reinstall' in c and legacy in c for c in calls), calls
    assert venv_record(fake_repo) == {'cuda': None, 'arch_list': ''}
    # The dependencies are pyproject's, pinned by the constraints, with the cached mmcv
    # wheel in the same command (so that pip never builds mmcv for mmdet's requirement).
    assert any(c.endswith(f'-c {fake_repo}/requirements/constraints.txt '
                          f'-e {fake_repo}[tests] {legacy}') for c in calls), calls
    # The package where mmengine and mim look.
    site = f'{fake_repo}/.venv/lib/python{sys.version_info[0]}.{sys.version_info[1]}'
    assert os.readlink(f'{site}/site-packages/mmpoolformer') == f'{fake_repo}/mmpoolformer'
    # Nothing changed: the stamp returns at once, without python.
    assert run_setup(fake_repo, env)[1] == []

    # A GPU node of the same venv and cache, whose mmcv (version matches) has CPU ops only:
    # the stamp no longer matches and the CUDA wheel of its own key is installed.
    cuda_wheel = cached_wheel(fake_repo, f'mmcv-2.1.0-torch2.14.1-cu130-sm90ptx-{PY}')
    env = fake_machine(caps=[(9, 0)], mmcv='2.1.0', mmcv_cuda='not available')
    stderr, calls = run_setup(fake_repo, env)
    assert 'CUDA 13.0 ops for 9.0+PTX' in stderr
    assert any('--force-reinstall' in c and cuda_wheel in c for c in calls), calls
    assert not any(legacy in c for c in calls)
    # a wheel cached before records were kept is recorded as its key says
    assert venv_record(fake_repo) == {'cuda': '13.0', 'arch_list': '9.0+PTX'}

    # Its mmcv built with CUDA fits: not reinstalled (run again without the stamp).
    (fake_repo / '.venv/.mmpoolformer-stamp').unlink()
    env = fake_machine(caps=[(9, 0)], mmcv='2.1.0', mmcv_cuda='13.0')
    calls = run_setup(fake_repo, env)[1]
    assert calls and not any('--force-reinstall' in c for c in calls), calls


def test_setup_env_builds_for_the_gpus_and_records_the_architectures(
        fake_repo, fake_machine, tmp_path):
    env = fake_machine(caps=[(8, 0), (9, 0)], MAX_JOBS='3')
    stderr, calls = run_setup(fake_repo, env)
    assert 'ENV MAX_JOBS=3 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=8.0;9.0+PTX' in calls, calls
    key_dir = tmp_path / f'cache/wheels/mmcv-2.1.0-torch2.14.1-cu130-sm80_90ptx-{PY}'
    built = json.loads((key_dir / 'mmcv_build.json').read_text())
    assert built == {'cuda': '13.0', 'arch_list': '8.0;9.0+PTX'}
    assert venv_record(fake_repo) == built  # what mmpoolformer.utils.gpu.arch_problem reads
    assert (tmp_path / 'cache/sdist/mmcv-2.1.0.tar.gz').is_file()  # for offline rebuilds

    # A CPU build (GPUs hidden): recorded as such.
    env = fake_machine(cuda=None, caps=[])
    stderr, calls = run_setup(fake_repo, env)
    assert 'ENV MAX_JOBS=' in ' '.join(calls) and not any('download' in c for c in calls)
    assert venv_record(fake_repo) == {'cuda': None, 'arch_list': ''}


def test_setup_env_on_an_older_driver(fake_repo, fake_machine):
    proc, calls = run_setup(fake_repo, fake_machine(torch=None, driver='12.4'), check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == CU126_LINE
    assert not any(' install ' in c for c in calls), calls  # nothing downloaded

    url = 'https://download.pytorch.org/whl/cu126'
    env = fake_machine(torch=None, driver='12.4', caps=[(9, 0)], nvcc='12.6',
                       TORCH_INDEX_URL=url)
    stderr, calls = run_setup(fake_repo, env)
    pip = '-m pip --disable-pip-version-check install -q'
    assert calls.index(f'{pip} --no-deps --force-reinstall --index-url {url} '
                       f'torch==2.14.1 torchvision==0.29.1') \
        < calls.index(f'{pip} -c {fake_repo}/requirements/constraints.txt '
                      'torch torchvision setuptools wheel ninja'), calls
    # the build follows the torch installed: cu126
    assert 'CUDA 12.6 ops for 9.0+PTX' in stderr and '-cu126-sm90ptx-' in stderr


def test_setup_env_rerun_on_an_offline_gpu_node(fake_repo, fake_machine, tmp_path):
    """A venv set up on a login node, run again on a GPU node without network: the stamp
    differs (the machine does), but nothing is missing, so pip never reaches for an index;
    the CUDA wheel built on the login node (MMPOOLFORMER_FORCE_CUDA=1
    TORCH_CUDA_ARCH_LIST=9.0) covers the node's GPU and is installed from the cache."""
    env = fake_machine(caps=[(9, 0)], driver='13.0', smi_caps=['9.0'], mmcv='2.1.0',
                       FAKE_OFFLINE='1')
    site = Path(env['PYTHONPATH'])  # where the fake distributions are installed
    # A project of a few requirements, all installed, with their pins.
    (fake_repo / 'pyproject.toml').write_text(textwrap.dedent('''
        [project]
        name = "mmpoolformer"
        dependencies = ["torch", "mmdet>=3.0.0"]
        [project.optional-dependencies]
        tools = ["timm"]
        tests = ["mmpoolformer[tools]", "pytest"]
        '''))
    for name in ('torch', 'torchvision', 'mmdet', 'timm', 'pytest'):
        fake_dist(site, name, pinned(name))
    for name in ('setuptools', 'wheel', 'ninja'):
        fake_dist(site, name, '80.0' if name == 'setuptools' else '1.0')
    fake_dist(site, 'mmpoolformer', '0.1.0', editable_root=fake_repo)
    (fake_repo / '.venv/.mmpoolformer-stamp').write_text('the login node\n')
    login_wheel = cached_wheel(fake_repo, f'mmcv-2.1.0-torch2.14.1-cu130-sm90-{PY}',
                               {'cuda': '13.0', 'arch_list': '9.0'})

    stderr, calls = run_setup(fake_repo, env)
    assert not any(re.search(r' (download|--upgrade) ', c) for c in calls), calls
    pip_installs = [c for c in calls if ' pip ' in c and ' install ' in c]
    assert pip_installs == [f'-m pip --disable-pip-version-check install -q --no-deps '
                            f'--force-reinstall {login_wheel}'], calls
    assert venv_record(fake_repo) == {'cuda': '13.0', 'arch_list': '9.0'}
    assert 'the package and its [tests] extra are installed' in stderr
    assert '[setup_env] missing: \n' not in stderr  # nothing is missing, so nothing is said
    # Something outside the pins: said, and pip's install tried (failing offline).
    shutil.rmtree(site / f'timm-{pinned("timm")}.dist-info')
    fake_dist(site, 'timm', '0.9.0')
    (fake_repo / '.venv/.mmpoolformer-stamp').unlink()
    proc, calls = run_setup(fake_repo, env, check=False)
    assert proc.returncode != 0, proc.stderr
    assert f'missing: timm 0.9.0: not =={pinned("timm")} (constraints)' in proc.stderr
    assert 'network is unreachable' in proc.stderr


# The python that creates the venv (PYTHON): `-m venv DIR` puts the fake venv python there.
FAKE_BASE_PYTHON = '''#!/bin/bash
case "$1" in
    --version) echo "Python 3.11.9" ;;
    -m) [[ "$2" == venv ]] || exit 1
        mkdir -p "$3/bin" "$3/lib/python{major}.{minor}/site-packages"
        cp "{venv_python}" "$3/bin/python" ;;
    *) exit 1 ;;
esac
'''


@pytest.fixture
def fresh_machine(fake_repo, fake_machine, tmp_path):
    """A CPU machine without the venv or the mmcv wheel: env for run_setup. The venv's
    python sees what a venv just created has: the standard library and pip (-S, and pip
    on PYTHONPATH besides the fake torch)."""
    import pip
    venv_python = tmp_path / 'venv_python'
    venv_python.write_text(FAKE_PYTHON.format(python=f'{sys.executable} -S'))
    venv_python.chmod(0o755)
    shutil.rmtree(fake_repo / '.venv')
    fresh_site = tmp_path / 'fresh_site'
    fresh_site.mkdir()
    os.symlink(os.path.dirname(pip.__file__), fresh_site / 'pip')
    base = tmp_path / 'python3.11'
    base.write_text(FAKE_BASE_PYTHON.format(major=sys.version_info[0],
                                            minor=sys.version_info[1], venv_python=venv_python))
    base.chmod(0o755)
    env = fake_machine(cuda=None, caps=[], PYTHON=str(base))
    return dict(env, PYTHONPATH=f'{env["PYTHONPATH"]}:{fresh_site}')


def test_setup_env_on_a_fresh_machine_says_what_it_does(fake_repo, fresh_machine):
    """One line per step and the time of the slow one: nothing is 'missing' in a venv just
    created (everything is), pip's warnings about the local indexes of a pip configuration
    are dropped, the mmcv build's own output goes to its log."""
    stderr, calls = run_setup(fake_repo, fresh_machine)
    expected = [r'creating \S+/\.venv with Python 3\.11\.9$',
                r'installing torch torchvision setuptools wheel ninja\b',
                r'building mmcv 2\.1\.0 \(CPU ops only: .*\) into \S+: the slow step, .*; '
                r'its log: (\S+)$',
                r'mmcv 2\.1\.0 built in \d+\.\d min; ',
                r'installing the package with its \[tests\] extra',
                r'ready: \S+/\.venv \(set-up \d+\.\d min\)$']
    lines = stderr.splitlines()
    assert len(lines) == len(expected), stderr
    for line, pattern in zip(lines, expected):
        assert re.match(rf'\[setup_env\] {pattern}', line), (line, pattern)
    build_log = re.match(rf'\[setup_env\] {expected[2]}', lines[2]).group(1)
    assert 'SetuptoolsDeprecationWarning' in Path(build_log).read_text()
    assert any(c.endswith('install -q --upgrade pip') for c in calls), calls


def test_setup_env_shows_a_failed_mmcv_build(fake_repo, fresh_machine):
    proc, _ = run_setup(fake_repo, dict(fresh_machine, FAKE_BUILD_FAILS='1'), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "error: command '/usr/bin/g++' failed with exit code 1" in lines, proc.stderr
    assert re.match(r'\[setup_env\] the mmcv build failed; its whole log: \S+/build\.log$',
                    lines[-1]), proc.stderr


@pytest.fixture
def venv_without_packaging(tmp_path):
    """A venv as `python -m venv` leaves it, before anything is installed: pip, and no
    packaging. (Made --without-pip, with this environment's pip linked in: ensurepip would
    take longer to give the same.) Returns (its python, its site-packages)."""
    import pip
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True,
                   timeout=120)
    site = venv / f'lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages'
    os.symlink(os.path.dirname(pip.__file__), site / 'pip')
    python = str(venv / 'bin/python')
    assert subprocess.run([python, '-c', 'import packaging'], capture_output=True,
                          env=without_pythonpath()).returncode == 1
    return python, site


def without_pythonpath():
    return {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}


def test_a_fresh_venv_tells_what_is_missing(venv_without_packaging):
    """Before packaging is installed (the first checks of the set-up), with the copy that
    pip vendors; it once said 'cannot tell: No module named 'packaging''."""
    python, site = venv_without_packaging
    fake_dist(site, 'setuptools', '65.5.0')  # what ensurepip of Python 3.11 installs

    def run(*args):
        return subprocess.run([python, BUILD_ENV, *args], capture_output=True, text=True,
                              timeout=60, env=without_pythonpath())
    proc = run('unmet', CONSTRAINTS, 'torch', 'setuptools')
    assert proc.returncode == 1, proc.stderr
    lines = sorted(proc.stdout.splitlines())
    assert len(lines) == 2 and lines[1] == 'torch: not installed', proc.stdout
    assert re.fullmatch(r'setuptools 65\.5\.0: not \S*<81\S* \(constraints\)', lines[0])
    proc = run('project-ready', ROOT, CONSTRAINTS)
    assert (proc.returncode, proc.stdout) == (1, 'mmpoolformer: not installed\n'), proc.stderr
    # Without pip either, it says so (and the set-up, taking it as missing, runs pip).
    os.remove(site / 'pip')
    proc = run('unmet', CONSTRAINTS, 'torch')
    assert proc.returncode == 1
    assert proc.stdout == f'cannot tell: {python} can import neither packaging nor pip\n'


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

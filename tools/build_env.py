"""The decisions of ``tools/setup_env.sh``: which torch, how mmcv is built for this
machine, and whether what is installed already fits (so that a rerun needs no network).

``tools/setup_env.sh`` runs this file by path with the venv's python, before mmcv and the
toolboxes are installed (so it imports the standard library, torch and ``packaging`` only
where they are needed, and the package's ``mmpoolformer/utils/gpu.py`` by path; a venv
just created has no ``packaging`` yet, and the copy its pip vendors stands in)::

    python tools/build_env.py torch-source 2.14.1      # 'index' (from TORCH_INDEX_URL) or ''
    python tools/build_env.py torch-source --installed 2.14.1  # the installed torch fits?
    python tools/build_env.py unmet CONSTRAINTS REQ...  # exit 1: something is missing
    python tools/build_env.py project-ready ROOT CONSTRAINTS  # exit 0: -e .[tests] is done
    python tools/build_env.py choose 2.1.0 CACHE/wheels # NAME=VALUE lines
    python tools/build_env.py installed 2.1.0 1 '8.0;9.0+PTX' VENV  # exit 0: it fits
    python tools/build_env.py record FILE CUDA ARCH_LIST # the build record (JSON)
    python tools/build_env.py link-package ROOT VENV    # VENV's site-packages/mmpoolformer
    python tools/build_env.py check-cuda                # CUDA ops? else one line, exit 1

torch: the default PyPI wheel is a CUDA 13.0 build, which needs an NVIDIA driver of 580 or
newer and GPUs of compute capability 7.5 or more. Where ``nvidia-smi`` shows an older
driver (or GPU), torch comes from ``TORCH_INDEX_URL`` (the PyTorch index of the variant,
``.../whl/cu126``), or the set-up stops with the one command to run.

mmcv's CUDA ops are built when torch has CUDA, ``nvcc`` is found (of torch's CUDA major
version), and a GPU is visible (or ``MMPOOLFORMER_FORCE_CUDA=1``, e.g. on a login node
without GPUs); the architectures are those of the visible GPUs plus PTX of the newest,
unless ``TORCH_CUDA_ARCH_LIST`` is set. The wheel cache key names the CUDA version and
architectures, or ``cpu``, so that a CPU-only wheel is never reused where CUDA ops are
wanted; the architectures are recorded beside the wheel and, once installed, in the venv
(``mmpoolformer.utils.gpu.MMCV_BUILD_RECORD``), where the run-time check reads them.
``check-cuda`` (tools/gpu_check.sh) runs after the set-up and asks the package's
:func:`mmpoolformer.utils.openmmlab.mmcv_ops_problem`, which the tools call before a run.
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# The CUDA version of PyPI's default (Linux x86_64) wheel of the torch that
# requirements/constraints.txt pins; the variants of other CUDA versions are on the
# PyTorch index. A test keeps it in step with the pin.
PYPI_TORCH = ('2.14.1', '13.0')

# GPUs below this compute capability have no kernels in torch's CUDA 13 builds.
CUDA13_MIN_CAPABILITY = (7, 5)

# Memory one nvcc job of the mmcv build takes at its peak, about (bytes).
NVCC_JOB_BYTES = 2.5 * 1024**3

BUILD_RECORD_NAME = 'mmcv_build.json'


def load_gpu_module():
    """mmpoolformer/utils/gpu.py of this checkout, by path: the package itself cannot be
    imported before the toolboxes are installed, and gpu.py needs the standard library
    only."""
    path = osp.join(ROOT, 'mmpoolformer', 'utils', 'gpu.py')
    spec = importlib.util.spec_from_file_location('mmpoolformer_setup_gpu', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def capability(arch: str) -> tuple:
    """'8.6' or '9.0+PTX' -> (8, 6)."""
    major, minor = arch.replace('+PTX', '').strip().split('.')
    return int(major), int(minor)


# --------------------------------------------------------------------------- #
# torch: a build that runs on this machine's driver
# --------------------------------------------------------------------------- #
def installed_torch() -> Optional[tuple]:
    """(version, CUDA version or None) of the torch this python imports, or None."""
    try:
        import torch
    except (ImportError, OSError):
        return None
    return torch.__version__, torch.version.cuda


def variant_of_index(index_url: str) -> Optional[str]:
    """The variant a PyTorch index serves ('cu126', 'cpu'), from its last path part."""
    last = index_url.rstrip('/').rsplit('/', 1)[-1]
    return last if re.fullmatch(r'cu\d+|cpu', last) else None


def torch_problem(version: str, cuda: Optional[str], gpu) -> Optional[tuple]:
    """(what is wrong, the variant tag to install or None) when a torch ``version`` built
    for CUDA ``cuda`` cannot use this machine's GPUs as ``nvidia-smi`` shows them; None
    when it can, or when nothing is known (no nvidia-smi: a login node)."""
    driver = gpu.driver_cuda_version()
    if driver is None or not cuda:
        return None
    if not gpu.torch_fits_driver(cuda, driver):
        return (f'the NVIDIA driver supports CUDA {driver} but torch {version} is a CUDA '
                f'{cuda} build', gpu.torch_variant_for_driver(driver))
    old = [cap for cap in gpu.gpu_capabilities() if cap < CUDA13_MIN_CAPABILITY]
    if old and int(cuda.split('.')[0]) >= 13:
        # The newest CUDA 12 variant the driver runs.
        driver_version = tuple(int(p) for p in driver.split('.')[:2])
        tag = next((tag for cuda12, tag in gpu.TORCH_CUDA_VARIANTS
                    if cuda12[0] == 12 and cuda12 <= driver_version), 'cu126')
        return (f'a GPU of compute capability {old[0][0]}.{old[0][1]} is visible but torch '
                f'{version} is a CUDA {cuda} build, which needs '
                f'{CUDA13_MIN_CAPABILITY[0]}.{CUDA13_MIN_CAPABILITY[1]} or more', tag)
    return None


def problem_line(problem: tuple, gpu) -> str:
    what, tag = problem
    if tag is None:  # a driver older than any torch build
        return (f'{what}, and no torch build runs on this driver; upgrade the NVIDIA driver '
                f'to 525 or newer (or for the CPU: TORCH_INDEX_URL={gpu.TORCH_INDEX}cpu '
                'bash tools/setup_env.sh)')
    return f'{what}; run: TORCH_INDEX_URL={gpu.TORCH_INDEX}{tag} bash tools/setup_env.sh'


def torch_source(pinned: str, env=os.environ, installed=None, after_install=False) -> str:
    """Where setup_env.sh takes torch from: 'index' (``TORCH_INDEX_URL``, for a torch
    missing or not fitting) or '' (as it is, or PyPI through the constraints).
    Raises ValueError (one line) when the torch that would be used cannot run on the
    driver and no index is named, or, ``after_install``, when the installed one cannot.

    ``installed`` is (version, CUDA) of the installed torch, or None: then PyPI's wheel of
    the pin is what the constraints would install (``PYPI_TORCH``)."""
    gpu = load_gpu_module()
    index_url = env.get('TORCH_INDEX_URL', '')
    if installed is not None and installed[0].split('+')[0] != pinned:
        installed = None  # the constraints replace it
    def check_installed():
        version, cuda = installed or (pinned, None)
        problem = torch_problem(version, cuda, gpu)
        if problem is not None:
            where = f' (from TORCH_INDEX_URL={index_url})' if index_url else ''
            raise ValueError(problem_line((problem[0] + where, problem[1]), gpu))
        return ''

    if after_install or (installed is not None and not index_url):
        return check_installed()
    if index_url:
        if installed is None:
            return 'index'
        cuda = installed[1]
        have = f'cu{cuda.replace(".", "")}' if cuda else 'cpu'
        if variant_of_index(index_url) in (None, have):
            return check_installed()  # that variant already: no download to fix it
        return 'index'
    if pinned != PYPI_TORCH[0]:  # unknown here; checked once installed (after_install)
        return ''
    problem = torch_problem(pinned, PYPI_TORCH[1], gpu)
    if problem is not None:
        raise ValueError(problem_line(problem, gpu))
    return ''


# --------------------------------------------------------------------------- #
# What is installed already: pip runs only when something is missing
# --------------------------------------------------------------------------- #
def packaging_api():
    """(Requirement, canonicalize_name) of ``packaging``, or else of the copy that pip
    vendors: a venv just created has pip but not ``packaging`` (it comes later, with the
    first installs), and the first check of what is missing runs there."""
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import Requirement
            from pip._vendor.packaging.utils import canonicalize_name
        except ImportError:
            raise ImportError(f'{sys.executable} can import neither packaging nor pip') from None
    return Requirement, canonicalize_name


def read_constraints(path: str) -> dict:
    """{canonical name: SpecifierSet} of a pip constraints file."""
    Requirement, canonicalize_name = packaging_api()
    constraints = {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                req = Requirement(line)
                constraints[canonicalize_name(req.name)] = req.specifier
    return constraints


def installed_distribution(name: str, path=None):
    """The distribution ``name`` that python would import first from ``path`` (default
    sys.path), or None."""
    from importlib import metadata
    found = metadata.distributions(name=name, **({} if path is None else dict(path=path)))
    return next(iter(found), None)


def unmet_requirements(requirements, constraints: dict, path=None) -> list:
    """The requirements (strings, with their dependencies, transitively) that the
    installed distributions on ``path`` (sys.path) do not satisfy, or that are outside
    ``constraints``: one line each, e.g. 'mmdet: not installed'."""
    Requirement, canonicalize_name = packaging_api()
    unmet, seen = [], set()
    todo = [(Requirement(r) if isinstance(r, str) else r, '') for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({'extra': extra}):
            continue
        name = canonicalize_name(req.name)
        key = (name, tuple(sorted(req.extras)), str(req.specifier))
        if key in seen:
            continue
        seen.add(key)
        dist = installed_distribution(req.name, path)
        if dist is None:
            unmet.append(f'{req.name}: not installed')
            continue
        version = dist.version
        for spec, source in ((req.specifier, str(req)), (constraints.get(name), 'constraints')):
            if spec is not None and not spec.contains(version, prereleases=True):
                unmet.append(f'{req.name} {version}: not {spec} ({source})')
        for dependency in dist.requires or ():
            dependency = Requirement(dependency)
            for wanted in ('', *req.extras):
                todo.append((dependency, wanted))
    return unmet


def project_requirements(root: str, extra: str = 'tests') -> list:
    """pyproject.toml's dependencies and those of its ``extra``, with the extras it names
    of itself (``mmpoolformer[tools]``) expanded from pyproject.toml too."""
    import tomllib
    Requirement, _ = packaging_api()
    with open(osp.join(root, 'pyproject.toml'), 'rb') as f:
        project = tomllib.load(f)['project']
    optional = project.get('optional-dependencies', {})
    found, extras, done = [], [extra], set()
    for line in project.get('dependencies', []):
        found.append(line)
    while extras:
        name = extras.pop()
        if name in done:
            continue
        done.add(name)
        for line in optional.get(name, []):
            req = Requirement(line)
            if req.name == project['name']:
                extras.extend(req.extras)
            else:
                found.append(line)
    return found


def checkout_version(root: str) -> str:
    with open(osp.join(root, 'mmpoolformer', '__init__.py')) as f:
        return re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", f.read(), re.M).group(1)


def project_unready(root: str, constraints_file: str, path=None) -> list:
    """What keeps the editable install of ``root`` with its [tests] extra from being
    complete (one line each); [] when nothing is missing."""
    dist = installed_distribution('mmpoolformer', path)
    if dist is None:
        return ['mmpoolformer: not installed']
    direct = json.loads(dist.read_text('direct_url.json') or '{}')
    url = direct.get('url', '')
    if not (direct.get('dir_info', {}).get('editable')
            and url.startswith('file://')
            and osp.realpath(url[len('file://'):]) == osp.realpath(root)):
        return [f'mmpoolformer: not an editable install of {root} ({url or "no URL"})']
    if dist.version != checkout_version(root):
        return [f'mmpoolformer {dist.version}: the checkout is {checkout_version(root)}']
    return unmet_requirements(project_requirements(root) + ['setuptools'],
                              read_constraints(constraints_file), path)


# --------------------------------------------------------------------------- #
# mmcv: the build for this machine
# --------------------------------------------------------------------------- #
def find_cuda_home(env=os.environ) -> Optional[str]:
    """The CUDA toolkit to build with: $CUDA_HOME (or $CUDA_PATH), else the one
    holding the nvcc found on PATH, else /usr/local/cuda; None without nvcc.

    torch's extension builder takes the folder above PATH's nvcc, which is wrong
    when that nvcc is a wrapper script (here /usr/local/bin/nvcc), so the choice is
    passed to the build as CUDA_HOME.
    """
    def has_toolkit(home):
        return os.access(osp.join(home, 'bin', 'nvcc'), os.X_OK) and osp.isfile(
            osp.join(home, 'include', 'cuda_runtime.h'))

    home = env.get('CUDA_HOME') or env.get('CUDA_PATH')
    if home:
        return home if has_toolkit(home) else None
    nvcc = shutil.which('nvcc', path=env.get('PATH', os.defpath))
    if nvcc is None:
        return None
    for home in (osp.dirname(osp.dirname(osp.realpath(nvcc))), '/usr/local/cuda'):
        if has_toolkit(home):
            return home
    return None


def nvcc_version(cuda_home: str) -> str:
    """'13.0' from ``nvcc --version`` ("Cuda compilation tools, release 13.0, ...");
    ValueError (one line) when it does not say."""
    nvcc = osp.join(cuda_home, 'bin', 'nvcc')
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ValueError(f'{nvcc} --version failed: {err}') from None
    found = re.search(r'release (\d+\.\d+)', out)
    if found is None:
        raise ValueError(f'{nvcc} --version does not say its CUDA release: {out.strip()!r}')
    return found.group(1)


def visible_arch_list(torch) -> list:
    """Compute capabilities of the visible GPUs, e.g. ['8.0', '9.0']."""
    if not torch.cuda.is_available():
        return []
    caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return [f'{major}.{minor}' for major, minor in sorted(caps)]


def pip_cuda_includes(torch) -> str:
    """Header folders of the nvidia-* wheels that torch installs (cuBLAS, cuSPARSE...),
    for toolkits without those headers (nvcc alone): put on CPATH, after any -I."""
    site = osp.dirname(osp.dirname(torch.__file__))
    return ':'.join(sorted(glob.glob(osp.join(site, 'nvidia', '*', 'include'))))


def max_build_jobs(cuda: bool, env=os.environ, cpus: Optional[int] = None,
                   meminfo: str = '/proc/meminfo') -> tuple:
    """(MAX_JOBS, why): the user's $MAX_JOBS, else the cores, and for a CUDA build no
    more nvcc jobs than MemAvailable holds (NVCC_JOB_BYTES each)."""
    if env.get('MAX_JOBS'):
        return env['MAX_JOBS'], 'MAX_JOBS given'
    cpus = cpus or len(os.sched_getaffinity(0))
    if not cuda:
        return str(cpus), f'{cpus} cores'
    try:
        with open(meminfo) as f:
            available_kb = int(re.search(r'^MemAvailable:\s+(\d+) kB', f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return str(cpus), f'{cpus} cores (memory unknown)'
    by_memory = max(1, int(available_kb * 1024 // NVCC_JOB_BYTES))
    jobs = min(cpus, by_memory)
    return str(jobs), (f'{cpus} cores, {available_kb / 1024**2:.1f} GiB available at about '
                       f'{NVCC_JOB_BYTES / 1024**3:g} GiB per nvcc job')


def read_build_record(folder: str) -> Optional[dict]:
    try:
        with open(osp.join(folder, BUILD_RECORD_NAME)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def archs_cover(built: str, wanted: list) -> bool:
    """Whether a build for ``built`` ('8.0;9.0+PTX') runs on every GPU of ``wanted``."""
    covers = load_gpu_module().covers
    built_list = [a for a in built.split(';') if a]
    return bool(built_list) and all(covers(built_list, capability(a)) for a in wanted)


def cached_wheel(wheels: str, key: str, fallback_keys=(), cover_pattern: str = '',
                 archs=()) -> str:
    """The cached mmcv wheel to install: the one of ``key``, else of a ``fallback_keys``,
    else (CUDA builds) one under ``cover_pattern`` whose recorded architectures cover
    ``archs``; '' when there is none."""
    def wheel_in(folder):
        found = sorted(glob.glob(osp.join(folder, 'mmcv-*.whl')))
        return found[0] if found else ''

    for k in (key, *fallback_keys):
        if wheel_in(osp.join(wheels, k)):
            return wheel_in(osp.join(wheels, k))
    if cover_pattern:
        for folder in sorted(glob.glob(osp.join(wheels, cover_pattern))):
            record = read_build_record(folder)
            if wheel_in(folder) and record and archs_cover(record.get('arch_list', ''), archs):
                return wheel_in(folder)
    return ''


def mmcv_build_choices(mmcv_version: str, wheels: str = '', env=os.environ,
                       meminfo: str = '/proc/meminfo') -> dict:
    """The environment of the mmcv build and the wheel cache for this machine.

    Returns FORCE_CUDA ('1' or '0'), TORCH_CUDA_ARCH_LIST, CUDA_HOME, CUDA_INCLUDES and
    CUDA_VERSION (nvcc's; '' for CPU builds), MAX_JOBS, WHEEL_DIR (where a new build
    goes: ``wheels``/key), CACHED_WHEEL (a cached wheel that fits, or ''), RECORD (the
    venv's build record, relative to it) and REASON.
    Raises ValueError (one line) for a CUDA build that cannot be done: forced without
    the means, or an nvcc of another CUDA major version than torch's.
    """
    import torch
    torch_version = torch.__version__.split('+')[0]
    python = f'py{sys.version_info[0]}{sys.version_info[1]}'
    prefix = f'mmcv-{mmcv_version}-torch{torch_version}'
    cuda = torch.version.cuda
    cuda_home = find_cuda_home(env)
    forced = env.get('MMPOOLFORMER_FORCE_CUDA') == '1'
    gpus = visible_arch_list(torch) if cuda else []
    record = load_gpu_module().MMCV_BUILD_RECORD
    if not cuda:
        reason = f'torch {torch.__version__} has no CUDA'
    elif not cuda_home:
        reason = 'no CUDA toolkit (nvcc on PATH or in $CUDA_HOME/bin)'
    elif not gpus and not forced:
        reason = 'no GPU visible (MMPOOLFORMER_FORCE_CUDA=1 builds the CUDA ops anyway)'
    else:
        reason = None
    if reason is None:
        nvcc = nvcc_version(cuda_home)
        if nvcc.split('.')[0] != cuda.split('.')[0]:
            raise ValueError(
                f'nvcc is CUDA {nvcc} ({cuda_home}/bin/nvcc) but torch {torch.__version__} is '
                f'a CUDA {cuda} build, and CUDA ops need the same major version; fix: '
                f'CUDA_HOME=<a CUDA {cuda.split(".")[0]}.x toolkit> bash tools/setup_env.sh')
        # The GPUs' own code, and PTX of the newest for the GPUs after it.
        archs = env.get('TORCH_CUDA_ARCH_LIST', '').replace(';', ' ').split()
        if not archs and gpus:
            archs = [*gpus[:-1], f'{gpus[-1]}+PTX']
        if not archs:
            raise ValueError('MMPOOLFORMER_FORCE_CUDA=1 without a visible GPU needs '
                             'TORCH_CUDA_ARCH_LIST, e.g. TORCH_CUDA_ARCH_LIST=9.0')
        tag = 'sm' + '_'.join(a.replace('.', '').replace('+PTX', 'ptx') for a in archs)
        cu = f'cu{cuda.replace(".", "")}'
        key = f'{prefix}-{cu}-{tag}-{python}'
        jobs, jobs_why = max_build_jobs(True, env, meminfo=meminfo)
        return dict(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=';'.join(archs),
                    CUDA_HOME=cuda_home, CUDA_INCLUDES=pip_cuda_includes(torch),
                    CUDA_VERSION=nvcc, MAX_JOBS=jobs, WHEEL_DIR=osp.join(wheels, key),
                    CACHED_WHEEL=cached_wheel(wheels, key, (), f'{prefix}-{cu}-sm*-{python}',
                                              archs),
                    RECORD=record,
                    REASON=f'CUDA {nvcc} ops for {" ".join(archs)} ({cuda_home}); '
                           f'MAX_JOBS={jobs} ({jobs_why})')
    if forced:
        raise ValueError(f'MMPOOLFORMER_FORCE_CUDA=1 but {reason}')
    key = f'{prefix}-cpu-{python}'
    jobs, jobs_why = max_build_jobs(False, env)
    # CPU wheels cached before the key named cpu/CUDA are CPU wheels (or CUDA ones).
    return dict(FORCE_CUDA='0', TORCH_CUDA_ARCH_LIST='', CUDA_HOME='', CUDA_INCLUDES='',
                CUDA_VERSION='', MAX_JOBS=jobs, WHEEL_DIR=osp.join(wheels, key),
                CACHED_WHEEL=cached_wheel(wheels, key, (f'{prefix}-{python}', )),
                RECORD=record, REASON=f'CPU ops only: {reason}; MAX_JOBS={jobs} ({jobs_why})')


def write_build_record(path: str, cuda: str, arch_list: str):
    """{"cuda": "13.0", "arch_list": "8.0;9.0+PTX"}; {"cuda": null, "arch_list": ""} for a
    CPU build."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(cuda=cuda or None, arch_list=arch_list), f)
        f.write('\n')


def installed_mmcv_fits(mmcv_version: str, need_cuda: bool, arch_list: str = '',
                        venv: str = sys.prefix) -> bool:
    """Whether mmcv ``mmcv_version`` is installed with its compiled ops, and when
    ``need_cuda`` with CUDA ops whose recorded architectures (if recorded) cover those
    of ``arch_list``. The set-up asks before the toolboxes are installed, when the
    package cannot be imported; its mmcv_ops_problem says the same to users, in words."""
    try:
        import mmcv
        import mmcv.ops
    except (ImportError, OSError):
        return False
    if mmcv.__version__ != mmcv_version:
        return False
    if not need_cuda:
        return True
    if mmcv.ops.get_compiling_cuda_version() == 'not available':
        return False
    built = (load_gpu_module().mmcv_build_record(venv) or {}).get('arch_list', '')
    return not built or archs_cover(built, [a for a in arch_list.split(';') if a])


def cuda_ops_problem() -> Optional[str]:
    """After the set-up: the installed package's one-line message for an mmcv without
    CUDA ops, or None. Importing the package refuses an mmcv without any compiled ops."""
    try:
        from mmpoolformer.utils.openmmlab import mmcv_ops_problem
    except ImportError as err:
        return str(err)
    return mmcv_ops_problem(cuda_run=True)


# --------------------------------------------------------------------------- #
# The editable install, seen where mmengine and mim look
# --------------------------------------------------------------------------- #
def venv_site_packages(venv: str) -> str:
    scheme = 'venv' if 'venv' in sysconfig.get_scheme_names() else 'posix_prefix'
    return sysconfig.get_path('purelib', scheme, vars={'base': venv, 'platbase': venv})


def link_package(root: str, site: str) -> str:
    """Make ``site``/mmpoolformer a link to the checkout's package, as ``flit install
    --symlink`` does, and return it.

    mmengine and mim find an installed package at its distribution's location plus its
    name (``mmengine.utils.get_installed_path``), which for a PEP 660 editable install is
    site-packages, where the package is not: with the link, ``mmpoolformer::`` base
    configs and ``mim`` read the checkout's ``.mim`` folder. A real folder there (a
    regular install) is left alone: ValueError.
    """
    target = osp.join(root, 'mmpoolformer')
    link = osp.join(site, 'mmpoolformer')
    if osp.islink(link) and os.readlink(link) == target:
        return link
    if osp.lexists(link) and not osp.islink(link):
        raise ValueError(f'{link} is a regular install of mmpoolformer, not a link to '
                         f'{target}: pip uninstall mmpoolformer, then rerun')
    temporary = f'{link}.link-{os.getpid()}'
    os.symlink(target, temporary)
    os.replace(temporary, link)  # atomic: the package never disappears meanwhile
    return link


def main(argv) -> int:
    command, args = argv[0], argv[1:]
    try:
        if command == 'torch-source':
            after = args[:1] == ['--installed']
            print(torch_source(args[-1], installed=installed_torch(), after_install=after))
            return 0
        if command == 'unmet':
            try:
                unmet = unmet_requirements(args[1:], read_constraints(args[0]))
            except ImportError as err:  # neither packaging nor pip (a venv without pip)
                unmet = [f'cannot tell: {err}']
            if unmet:
                print(*unmet, sep='\n')
            return 1 if unmet else 0
        if command == 'project-ready':
            try:
                unready = project_unready(args[0], args[1])
            except ImportError as err:
                unready = [f'cannot tell: {err}']
            if unready:
                print(*unready, sep='\n')
            return 1 if unready else 0
        if command == 'choose':
            choices = mmcv_build_choices(args[0], args[1] if len(args) > 1 else '')
            print('\n'.join(f'{k}={v}' for k, v in choices.items()))
            return 0
        if command == 'installed':
            fits = installed_mmcv_fits(args[0], args[1] == '1', *args[2:4])
            return 0 if fits else 1
        if command == 'record':
            write_build_record(*args[:3])
            return 0
        if command == 'link-package':
            print(link_package(args[0], venv_site_packages(args[1])))
            return 0
        if command == 'check-cuda':
            problem = cuda_ops_problem()
            if problem is not None:
                print(f'error: {problem}', file=sys.stderr)
            return 0 if problem is None else 1
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'error: unknown command {command!r} (torch-source, unmet, project-ready, choose, '
          'installed, record, link-package, check-cuda)', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

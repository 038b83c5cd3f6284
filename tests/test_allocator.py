"""The launchers' memory allocator: tools/malloc.sh preloads tcmalloc into the processes
they start (docs/performance.md has the measured gain), and
mmpoolformer.utils.allocator tells which allocator a process runs with."""
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from mmpoolformer.utils.allocator import memory_allocator

# What a launcher does before it starts python, then the allocator python sees.
LAUNCHED = ('source tools/malloc.sh && {before}use_tcmalloc && exec "{python}" -c '
            '"from mmpoolformer.utils.allocator import memory_allocator as m; print(m())"')


def launched(env: dict, before: str = '') -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD',
                                                            'MMPOOLFORMER_MALLOC')} | env
    return subprocess.run(['bash', '-c', LAUNCHED.format(before=before, python=sys.executable)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_launchers_preload_tcmalloc():
    """tools/setup_env.sh installs libtcmalloc-minimal4 where it can (as root with
    apt-get, as in CI), and a launched process then runs with it, saying nothing.
    Broken by hand: with ``use_tcmalloc``'s export removed, this failed ('glibc malloc')."""
    found = subprocess.run(['bash', '-c', 'source tools/malloc.sh && tcmalloc_path'], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if not found and os.getuid() != 0:
        pytest.skip('no tcmalloc here, and tools/setup_env.sh installs it only as root')
    assert found, 'tools/setup_env.sh should have installed libtcmalloc-minimal4'
    proc = launched({})
    assert (proc.stdout.strip(), proc.stderr) == ('tcmalloc', '')


def test_launchers_keep_glibc_malloc_when_told():
    proc = launched({'MMPOOLFORMER_MALLOC': 'glibc'})
    assert (proc.stdout.strip(), proc.stderr) == ('glibc malloc', '')


def test_launchers_say_when_tcmalloc_is_missing():
    """No silent fallback: without the library the run goes on with glibc's malloc and
    says so, with what to install."""
    proc = launched({}, before='tcmalloc_path() { :; } && ')
    assert proc.stdout.strip() == 'glibc malloc'
    assert 'tcmalloc not found' in proc.stderr and 'libtcmalloc-minimal4' in proc.stderr


def test_memory_allocator_reads_the_loaded_libraries(tmp_path):
    maps = tmp_path / 'maps'
    line = '7f0000000000-7f0000001000 r-xp 00000000 08:01 42 {}\n'
    maps.write_text(line.format('/usr/lib/x86_64-linux-gnu/libc.so.6') + '[heap]\n')
    assert memory_allocator(str(maps)) == 'glibc malloc'
    maps.write_text(line.format('/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'))
    assert memory_allocator(str(maps)) == 'jemalloc'
    maps.write_text(line.format('/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10'))
    assert memory_allocator(str(maps)) == 'tcmalloc'
    assert memory_allocator(str(tmp_path / 'missing')) == 'unknown'

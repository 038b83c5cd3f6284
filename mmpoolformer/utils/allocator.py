"""Which memory allocator this process runs with.

The launchers (tools/malloc.sh) preload tcmalloc: on the CPU the real tools/train.py
loop runs faster with it than with glibc's malloc, which maps and unmaps large tensors
and page-faults on them every iteration (docs/performance.md has the figures).
"""
import os

# shared-object name fragments of the allocators that can replace glibc's malloc
_ALLOCATORS = {'libtcmalloc': 'tcmalloc', 'libjemalloc': 'jemalloc'}


def memory_allocator(maps: str = '/proc/self/maps') -> str:
    """'tcmalloc' or 'jemalloc' when one is loaded into this process (preloaded or
    linked), 'glibc malloc' otherwise, or 'unknown' where ``maps`` cannot be read."""
    try:
        with open(maps) as f:
            loaded = {os.path.basename(line.split()[-1]) for line in f if '/' in line}
    except OSError:
        return 'unknown'
    for fragment, name in _ALLOCATORS.items():
        if any(lib.startswith(fragment) for lib in loaded):
            return name
    return 'glibc malloc'

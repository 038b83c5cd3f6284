"""The package's shape: its modules import one another without a cycle, utils/ is the
bottom layer, importing it to build models brings in nothing of what only the tools
need (ONNX, Gradio, Grad-CAM, fvcore, TensorBoard), and importing it changes nothing
global (torch's allow-list, mmengine's checkpoint loaders and file backends)."""
import ast
import json
import os
import subprocess
import sys
import textwrap

from helpers import ROOT

PACKAGE = 'mmpoolformer'
CLS = 'configs/classification/poolformer_s12_builtin.py'
MASKRCNN = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
SEG = 'configs/segmentation/fpn_poolformer_s12_builtin.py'


def package_modules() -> dict:
    """{module name: source file} of every module of the package."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-len('.py')].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                modules['.'.join(parts)] = path
    return modules


def imported_modules(module: str, path: str, modules: dict) -> set:
    """The package's modules that ``module`` imports anywhere in its file (at the top,
    inside functions, under conditions), relative imports resolved. ``from a import b``
    imports the module a.b when there is one, else the module a."""
    is_package = os.path.basename(path) == '__init__.py'
    here = module.split('.') if is_package else module.split('.')[:-1]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(here[:len(here) - node.level + 1] + ([base] if base else []))
            names = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import a.b.c` runs a.b.c; a name in it
                name = name.rpartition('.')[0]
            if name.split('.')[0] == PACKAGE and name != module:
                found.add(name)
    return found


def import_graph() -> dict:
    modules = package_modules()
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def find_cycle(graph: dict):
    """One import cycle as [a, b, ..., a], or None."""
    state, stack = {}, []  # state: 'open' while on the stack, 'done' after

    def visit(module):
        state[module] = 'open'
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == 'open':
                return stack[stack.index(other):] + [other]
            if other not in state:
                cycle = visit(other)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 'done'
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_import_graph_reads_the_sources():
    """The graph this file checks is the package's (guards the checks below against
    an empty or misread graph)."""
    graph = import_graph()
    assert {'mmpoolformer.apis', 'mmpoolformer.utils.errors'} <= set(graph)
    assert 'mmpoolformer.utils.errors' in graph['mmpoolformer.apis.config']
    assert 'mmpoolformer.apis.config' in graph['mmpoolformer.apis']  # `from .config import`
    assert 'mmpoolformer.apis.config' in graph['mmpoolformer.apis.inference']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_modules_import_one_another_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_utils_imports_nothing_above_it():
    upward = {f'{module} imports {other}' for module, imported in import_graph().items()
              if module.startswith('mmpoolformer.utils') for other in imported
              if not other.startswith('mmpoolformer.utils')}
    assert not upward, sorted(upward)


# What the tools need on top of the package (pyproject's `tools` extra, less timm and
# matplotlib, which mmpretrain and mmengine import themselves).
TOOL_ONLY = {'onnxruntime', 'onnx', 'onnxscript', 'gradio', 'pytorch_grad_cam', 'fvcore',
             'tensorboard'}

NEW_MODULES = textwrap.dedent('''
    import json, sys

    # The toolboxes as their own tools import them, and a config read with a toolbox's
    # base (mmengine finds `mmdet::` configs through pkg_resources and what it vendors).
    import mmengine.runner
    import mmdet.apis, mmdet.models, mmdet.datasets
    import mmseg.apis, mmseg.models, mmseg.datasets
    import mmpretrain.apis, mmpretrain.models, mmpretrain.datasets
    from mmengine.config import Config
    Config.fromstring("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'", '.py')
    before = {name.split('.')[0] for name in sys.modules}

    from mmpoolformer.apis import build_model
    for config in ('detection/maskrcnn_poolformer_s12_builtin.py',
                   'segmentation/fpn_poolformer_s12_builtin.py',
                   'classification/poolformer_s12_builtin.py'):
        build_model('mmpoolformer::' + config, {'model.backbone.init_cfg': None})
    after = {name.split('.')[0] for name in sys.modules}
    print('NEW', json.dumps(sorted(after - before)))
''')


def test_importing_the_package_adds_no_tool_dependency():
    """In a process that has imported the three toolboxes, importing mmpoolformer and
    building a detector, a segmentor and a classifier imports no other top-level
    package than mmpoolformer."""
    proc = subprocess.run([sys.executable, '-c', NEW_MODULES], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = set(json.loads(proc.stdout.split('NEW', 1)[1]))
    assert not new & TOOL_ONLY, f'tool-only packages imported: {sorted(new & TOOL_ONLY)}'
    assert new == {PACKAGE}, f'imported besides the toolboxes: {sorted(new)}'


# What the import-hygiene test compares: torch's allow-list, mmengine's checkpoint
# loaders (CheckpointLoader._schemes is private: mmengine has no public reader;
# a test may look) and its file backends, as names of what they point to.
_GLOBAL_STATE = """
def global_state():
    import torch
    from mmengine.fileio.backends import backends, prefix_to_backends
    from mmengine.runner import CheckpointLoader
    name = lambda obj: f'{obj.__module__}.{obj.__qualname__}'
    return dict(safe_globals=sorted(map(str, torch.serialization.get_safe_globals())),
                loaders={p: name(f) for p, f in CheckpointLoader._schemes.items()},
                backends={k: name(v) for k, v in backends.items()},
                prefixes={k: name(v) for k, v in prefix_to_backends.items()})
"""


def test_importing_the_package_changes_nothing_global(tmp_path):
    """torch's weights_only allow-list, mmengine's checkpoint loaders and file
    backends are the same before and after `import mmpoolformer`, after building
    a model of each toolbox from our configs, after loading a checkpoint with
    mmengine's resume types, and after the tools' scoped loading ends."""
    path = tmp_path / 'resume.pth'
    code = _GLOBAL_STATE + f"""
import mmpretrain.models, mmdet.models, mmseg.models  # the toolboxes' own changes
before = global_state()
import mmpoolformer
assert global_state() == before, 'import mmpoolformer'
from mmpoolformer.apis import build_model
for config in {[CLS, MASKRCNN, SEG]!r}:
    build_model(config)
    assert global_state() == before, config
import torch
from mmengine.logging import HistoryBuffer
torch.save(dict(w=torch.ones(2), buffer=HistoryBuffer([1.0], [1])), {str(path)!r})
from mmpoolformer.checkpoint import load_file, mmengine_loads_through_load_file
load_file({str(path)!r})  # needs the allow-list, inside load_file only
assert global_state() == before, 'load_file'
with mmengine_loads_through_load_file():
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.load_checkpoint({str(path)!r})
    assert global_state() != before
assert global_state() == before, 'mmengine_loads_through_load_file'
try:
    torch.load({str(path)!r}, weights_only=True)  # others' loads: torch's own list
except Exception as err:
    assert 'HistoryBuffer' in str(err)
else:
    raise AssertionError('HistoryBuffer allowed outside load_file')
print('unchanged')
"""
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and 'unchanged' in proc.stdout, proc.stderr[-3000:]

"""Every path the README, the shell tools, CI and the configs name inside the
repository is tracked by git and not ignored, so a fresh clone has it; the .md files
the tests cite are in the repository.

(A bare ``data/`` ignore pattern once hid ``tools/data/`` while the suite,
which builds its data through the package, stayed green.)
"""
import ast
import glob
import io
import os
import re
import subprocess
import tokenize

import pytest

from helpers import ROOT, import_tool, processes, tracked_folders

TOP_FOLDERS = ('tools', 'configs', 'mmpoolformer', 'docs', 'demo', 'requirements', 'tests', '.ci')
# A path inside the repository: a top folder, then path characters; paths with
# placeholders ({a,b}, *, <x>, CONFIG) stop before them and are skipped below.
PATH = re.compile(r'(?<![\w./-])((?:{})/[\w./-]*[\w])'.format(
    '|'.join(re.escape(t) for t in TOP_FOLDERS)))
BASE = re.compile(r"""['"](\.{1,2}/[\w./-]+\.py)['"]""")


def _git(*args):
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True)


def _named_paths():
    """(path relative to ROOT, where it is named) for every path in the sources."""
    sources = ['README.md', '.ci/run', *glob.glob('tools/**/*.sh', root_dir=ROOT, recursive=True),
               *glob.glob('docs/*.md', root_dir=ROOT)]
    named = []
    for src in sources:
        text = open(os.path.join(ROOT, src)).read()
        for match in PATH.finditer(text):
            end = match.end()
            if text[end:end + 1] in '{*<' or text[end:end + 1].isupper():
                continue  # a placeholder, not a file
            named.append((match.group(1).rstrip('.'), src))
    for config in glob.glob('configs/**/*.py', root_dir=ROOT, recursive=True):
        for match in BASE.finditer(open(os.path.join(ROOT, config)).read()):
            path = os.path.normpath(os.path.join(os.path.dirname(config), match.group(1)))
            named.append((path, config))
    return named


def test_the_sources_name_paths():
    """The scan itself works: it finds the scripts the README and CI run."""
    paths = {p for p, _ in _named_paths()}
    assert {'tools/run_main.sh', 'tools/run_tests.sh', 'tools/setup_env.sh',
            'tools/data/make_builtin_data.py', 'configs/detection/_base_/builtin_coco.py'} <= paths


def test_named_paths_are_tracked_and_not_ignored():
    if _git('rev-parse', '--is-inside-work-tree').stdout.strip() != 'true':
        pytest.skip('not a git checkout')
    tracked = set(_git('ls-files').stdout.splitlines())
    tracked_dirs = tracked_folders(tracked)
    problems = []
    for path, source in _named_paths():
        if path in tracked or path in tracked_dirs:
            if _git('check-ignore', '--no-index', '-q', path).returncode == 0:
                problems.append(f'{path} (named in {source}) is matched by an ignore rule')
        else:
            why = 'not tracked by git' if os.path.exists(os.path.join(ROOT, path)) else 'missing'
            problems.append(f'{path} (named in {source}) is {why}')
    assert not problems, '\n'.join(sorted(set(problems)))



def test_readme_layout_names_every_folder_of_the_package():
    """The README's Layout section has one row per folder of the package and of the
    repository's top level, and names no folder that is not there."""
    text = open(os.path.join(ROOT, 'README.md')).read()
    section = text.split('## Layout\n', 1)[1].split('\n## ', 1)[0]
    named = set(re.findall(r'^\| `([\w/]+)/` \|', section, re.M))
    package = {os.path.relpath(d, ROOT) for d, _, files in
               os.walk(os.path.join(ROOT, 'mmpoolformer')) if '__init__.py' in files}
    top = set(TOP_FOLDERS) - {'.ci'}
    assert package | top == named


def _prose(path):
    """The comments and docstrings of a Python file: where a test cites a document (its
    string literals may name made-up files, as the link checks of test_docs.py do)."""
    source = open(path).read()
    comments = [token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT]
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = [ast.get_docstring(node) or '' for node in ast.walk(ast.parse(source))
                  if isinstance(node, owners)]
    return '\n'.join(comments + docstrings)


def test_tests_cite_only_files_in_the_repository():
    """Tests once cited a list of target figures that the repository did not have."""
    for name in sorted(os.listdir(os.path.join(ROOT, 'tests'))):
        if name.endswith('.py'):
            text = _prose(os.path.join(ROOT, 'tests', name))
            for cited in re.findall(r'(?<![\w/.])([\w/-]+\.md)\b', text):
                found = [p for p in (cited, os.path.join('docs', cited))
                         if os.path.isfile(os.path.join(ROOT, p))]
                assert found, f'tests/{name} cites {cited}, which is not in the repository'


def _mutants_tool():
    """tools/dev/mutants.py, loaded from its path (a development tool, not a package)."""
    return import_tool('tools/dev/mutants.py')


def test_every_mutation_still_applies_and_contributing_lists_them(capsys):
    """Each mutation's snippet is found exactly once in its file (a refactor that
    moves the code fails here, naming the mutant), --list prints every name, and
    CONTRIBUTING.md's "Mutation check" lists the same names in the same order."""
    mutants = _mutants_tool()
    for mutation in mutants.MUTATIONS:
        mutants.apply(mutation, ROOT, write=False)  # raises MutationError naming it
    assert mutants.main(['--list']) == 0
    listed = [line.split(':')[0].removesuffix(' (slow)')
              for line in capsys.readouterr().out.splitlines()]
    names = [m.name for m in mutants.MUTATIONS]
    assert listed == names
    with open(os.path.join(ROOT, 'CONTRIBUTING.md'), encoding='utf-8') as f:
        section = f.read().split('## Mutation check', 1)[1].split('\n## ', 1)[0]
    assert re.findall(r'^- `([\w-]+)`', section, flags=re.M) == names


def test_a_mutation_whose_snippet_moved_is_named(tmp_path):
    mutants = _mutants_tool()
    (tmp_path / 'moved.py').write_text('x = 1\n')
    moved = mutants.Mutation('moved-code', 'nothing', 'moved.py', 'x = 2', 'x = 3', ('t',))
    with pytest.raises(mutants.MutationError,
                       match=r"^mutant moved-code: its old snippet occurs 0 times in moved\.py"):
        mutants.apply(moved, str(tmp_path))
    assert (tmp_path / 'moved.py').read_text() == 'x = 1\n'


def test_a_mutant_whose_tests_outlive_its_time_limit_is_hung_and_killed(tmp_path, monkeypatch):
    """A mutant with a time limit whose test waits for ever is reported HUNG, not
    caught, once the limit has passed, and every process its tests started is killed:
    here an orphan in a session of its own, as torchrun's workers are once it is gone."""
    import sys
    import time
    mutants = _mutants_tool()
    nap = f'{1000 + time.time() % 1000:.3f}'  # seconds no other process sleeps

    def tiny_repository(destination):
        with open(os.path.join(destination, 'code.py'), 'w') as f:
            f.write('x = 1\n')
        with open(os.path.join(destination, 'test_waits.py'), 'w') as f:
            f.write('import subprocess\nimport time\n\n\ndef test_waits_for_ever():\n'
                    f'    subprocess.run(["bash", "-c", "setsid sleep {nap} &"])  # an orphan\n'
                    '    time.sleep(600)\n')

    monkeypatch.setattr(mutants, 'scratch_copy', tiny_repository)
    waits = mutants.Mutation('waits', 'nothing', 'code.py', 'x = 1', 'x = 2',
                             ('test_waits.py',), time_limit_s=5)
    outcome, seconds = mutants.run_mutant(waits, sys.executable)
    assert outcome == 'HUNG (over 5 s)' and seconds < 30, (outcome, seconds)
    sleeping = [pid for pid in os.listdir('/proc') if pid.isdigit()
                and processes.command_line(int(pid)) == f'sleep {nap}']
    assert sleeping == []

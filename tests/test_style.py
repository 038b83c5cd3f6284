"""The linters, configured in pyproject.toml, are clean over the repository: ruff
(pycodestyle, pyflakes, import order, bugbear, pyupgrade; 100 columns), isort (black's
wrapping, which ruff's import rule checks) and codespell; and pre-commit runs them
without downloading anything."""
import os
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT


@pytest.mark.parametrize('command', [['ruff', 'check', '--no-cache', '.'],
                                     ['isort', '--check-only', '--diff', '.'],
                                     ['codespell_lib']])
def test_linter_is_clean(command):
    proc = subprocess.run([sys.executable, '-m', *command], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_pre_commit_hooks_are_local():
    """Every hook runs a tool installed in the environment (no hook repository to fetch),
    and the ones CONTRIBUTING.md names are there."""
    config = yaml.safe_load(open(os.path.join(ROOT, '.pre-commit-config.yaml')))
    hooks = {hook['id']: hook for repo in config['repos'] for hook in repo['hooks']}
    assert all(repo['repo'] == 'local' for repo in config['repos'])
    assert all(hook['language'] == 'system' for hook in hooks.values())
    assert {'ruff', 'isort', 'codespell', 'metafiles'} <= set(hooks)
    script = hooks['metafiles']['entry'].split()[-1]
    assert os.path.isfile(os.path.join(ROOT, script)), script

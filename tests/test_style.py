"""The linters, configured in pyproject.toml, are clean over the repository: ruff
(pyflakes, pycodestyle; 100 columns) and isort (OpenMMLab's grid style)."""
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.parametrize('command', [['ruff', 'check', '--no-cache', '.'],
                                     ['isort', '--check-only', '--diff', '.']])
def test_linter_is_clean(command):
    proc = subprocess.run([sys.executable, '-m', *command], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]

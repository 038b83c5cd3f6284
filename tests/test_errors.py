"""The error types of mmpoolformer/utils/errors.py: a user's mistake raises the type that
the tools print as one line (UsageError, ConfigError), not a FileNotFoundError, a bare
ValueError or a DatasetError."""
import sys

import pytest

from helpers import import_tool
from mmpoolformer.utils.errors import ConfigError, UsageError


def _tool_main(path, argv, monkeypatch):
    """A tool's main() without its one-line handler, run with these arguments."""
    monkeypatch.setattr(sys, 'argv', [path, *argv])
    return import_tool(path).main.__wrapped__


def test_usage_mistakes_are_usage_errors(tmp_path, monkeypatch):
    """Usage mistakes were once FileNotFoundError; a plain ValueError escaped the
    tools' handler; a bad constructor argument was a DatasetError."""
    with pytest.raises(UsageError, match='give a CONFIG'):
        _tool_main('tools/visualization/gradcam.py', ['image.png'], monkeypatch)()
    (tmp_path / 'vis_data').mkdir()
    (tmp_path / 'vis_data' / 'scalars.json').write_text('{"loss": 1.0, "step": 1}\n')
    with pytest.raises(UsageError, match='no scalar'):
        _tool_main('tools/analysis/analyze_logs.py', [str(tmp_path), '--keys', 'nope'],
                   monkeypatch)()
    from mmengine.config import Config

    from mmpoolformer.apis import build_inferencer
    with pytest.raises(ConfigError, match='no inferencer'):
        build_inferencer(Config(dict(default_scope='mmengine', model=dict(type='Nope'))))
    from mmpoolformer.datasets.transforms import LoadImageChecked
    with pytest.raises(ConfigError, match='on_error'):
        LoadImageChecked(on_error='ignore')

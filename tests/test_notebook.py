"""demo/inference.ipynb runs end to end on the built-in data and trained weights."""
import glob
import os

import nbformat
from nbclient import NotebookClient

from helpers import ROOT


def test_notebook_executes(builtin_classifier, tiny_cls_data, monkeypatch):
    monkeypatch.setenv('MMPOOLFORMER_CONFIG',
                       os.path.join(ROOT, 'configs/classification/poolformer_s12_builtin.py'))
    monkeypatch.setenv('MMPOOLFORMER_CHECKPOINT', builtin_classifier[1])
    monkeypatch.setenv('MMPOOLFORMER_IMAGE',
                       sorted(glob.glob(f'{tiny_cls_data}/val/cross/*.png'))[0])
    notebook = nbformat.read(os.path.join(ROOT, 'demo', 'inference.ipynb'), as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name='python3',
                   resources={'metadata': {'path': os.path.join(ROOT, 'demo')}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
    text = ''.join(o.get('text', '') for o in outputs)
    assert 'PoolFormer [2, 2, 6, 2] 11404228' in text  # 4-class S12 classifier
    assert 'class' in text and any('image/png' in o.get('data', {}) for o in outputs)

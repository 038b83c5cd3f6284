"""Write model-index.yml and configs/{classification,detection,segmentation}/metafile.yml
in the toolboxes' format (what `mim search mmpoolformer` reads).

Parameters and MACs are counted from each config's model with the fvcore counter of
complexity.py (224x224 for classifiers, 1280x800 for detectors, 512x512 for segmentors);
the papers' metrics and mmsegmentation's weights are the tables below, the ImageNet
weights the configs' own table (configs/_base_/pretrained.py).
"""
import argparse
import glob
import os.path as osp

import yaml
from complexity import DEFAULT_SHAPES, count_macs, count_parameters
from mmengine.config import Config

from mmpoolformer.apis import build_model
from mmpoolformer.utils.cli import cli

# The checkout whose configs/ and model-index.yml this tool rewrites.
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TASKS = {
    'classification': ('Image Classification', 'ImageNet-1k'),
    'detection': ('Object Detection', 'COCO'),
    'segmentation': ('Semantic Segmentation', 'ADE20K'),
}
POOLFORMER_PAPER = dict(Title='MetaFormer is Actually What You Need for Vision',
                        URL='https://arxiv.org/abs/2111.11418')
BASELINES_PAPER = dict(Title='MetaFormer Baselines for Vision',
                       URL='https://arxiv.org/abs/2210.13452')
COLLECTIONS = {
    'PoolFormer': (POOLFORMER_PAPER, 'https://github.com/sail-sg/poolformer',
                   ['Pooling', '1x1 Convolution', 'LayerScale', 'GroupNorm']),
    'MetaFormer Baselines': (BASELINES_PAPER, 'https://github.com/sail-sg/metaformer',
                             ['Pooling', 'Identity', 'Random Mixing', 'Separable Convolution',
                              'Attention', 'StarReLU']),
}

# The papers' ImageNet-1K top-1 (224x224).
TOP1 = {
    'poolformer': dict(s12=77.2, s24=80.3, s36=81.4, m36=82.1, m48=82.5),
    'poolformerv2': dict(s12=78.0, s24=80.7, s36=81.6, m36=82.2, m48=82.6),
    'identityformer': dict(s12=74.6, s24=78.2, s36=79.3, m36=80.0, m48=80.4),
    'randformer': dict(s12=76.6, s24=78.2, s36=79.5, m36=81.2, m48=81.4),
    'convformer': dict(s18=83.0, s36=84.1, m36=84.5, b36=84.8),
    'caformer': dict(s18=83.6, s36=84.5, m36=85.2, b36=85.5),
}
# The PoolFormer paper's COCO val2017 (box AP, mask AP) and ADE20K mIoU.
COCO = {
    'retinanet_poolformer_s12': {'box AP': 36.2}, 'retinanet_poolformer_s24': {'box AP': 38.9},
    'retinanet_poolformer_s36': {'box AP': 39.5},
    'maskrcnn_poolformer_s12': {'box AP': 37.3, 'mask AP': 34.6},
    'maskrcnn_poolformer_s24': {'box AP': 40.1, 'mask AP': 37.0},
    'maskrcnn_poolformer_s36': {'box AP': 41.0, 'mask AP': 37.7},
}
ADE20K = dict(s12=37.2, s24=40.3, s36=42.0, m36=42.4, m48=42.7)
# mmsegmentation's published Semantic FPN PoolFormer checkpoints (its metafile);
# their backbone keys are in the mmpretrain layout, which ConvertCheckpointHook reads.
MMSEG_FPN = 'https://download.openmmlab.com/mmsegmentation/v0.5/poolformer/' \
    'fpn_poolformer_{0}_8x4_512x512_40k_ade20k/fpn_poolformer_{0}_8x4_512x512_40k_ade20k_{1}.pth'
MMSEG_FPN_STAMPS = dict(s12='20220501_115154-b5aa2f49', s24='20220503_222049-394a7cf7',
                        s36='20220501_151122-b47e607d', m36='20220501_164230-3dc83921',
                        m48='20220504_003923-64168d3b')
# The built-in shapes data: what the README's Built-in data table measured.
BUILTIN = {
    'poolformer_s12_builtin': ('Image Classification', {'Top 1 Accuracy': 87.0}),
    'maskrcnn_poolformer_s12_builtin': ('Object Detection',
                                        {'box AP': 85.8, 'mask AP': 89.3}),
    'retinanet_poolformer_s12_builtin': ('Object Detection', {'box AP': 60.6}),
    'fpn_poolformer_s12_builtin': ('Semantic Segmentation', {'mIoU': 62.9}),
}


def family_and_arch(name: str):
    """('poolformer', 's12') from e.g. 'maskrcnn_poolformer_s12' or 'caformer_b36_in1k'."""
    parts = name.split('_')
    for i, part in enumerate(parts):
        if part in TOP1:
            return part, parts[i + 1]
    raise ValueError(f'{name}: no MetaFormer family in the name')


def imagenet_weights(family: str, arch: str) -> str:
    """The official ImageNet-1K weights of a backbone size, as the configs name them."""
    table = Config.fromfile(osp.join(REPO_ROOT, 'configs/_base_/pretrained.py'))
    return table.pretrained_weights[f'{family}_{arch}']


def entry(task_dir: str, config: str, params: int, macs: int) -> dict:
    name = osp.splitext(osp.basename(config))[0]
    family, arch = family_and_arch(name)
    task, dataset = TASKS[task_dir]
    results, weights = None, None
    if name in BUILTIN:
        task, metrics = BUILTIN[name]
        dataset = 'Built-in shapes'
        results = metrics
    elif task_dir == 'classification':
        results = {'Top 1 Accuracy': TOP1[family][arch]}
        weights = imagenet_weights(family, arch)
    elif task_dir == 'detection':
        results = COCO.get(name)
    elif family == 'poolformer':
        results = {'mIoU': ADE20K[arch]}
        weights = MMSEG_FPN.format(arch, MMSEG_FPN_STAMPS[arch])
    model = {
        'Name': name,
        'In Collection': 'PoolFormer' if family == 'poolformer' else 'MetaFormer Baselines',
        'Config': f'configs/{task_dir}/{osp.basename(config)}',
        'Metadata': {'Training Data': dataset, 'Parameters': params, 'FLOPs': macs},
    }
    if results:
        # As mmdet lists Mask R-CNN: box AP under detection, mask AP under instance
        # segmentation.
        model['Results'] = [{'Task': task if key != 'mask AP' else 'Instance Segmentation',
                             'Dataset': dataset, 'Metrics': {key: value}}
                            for key, value in results.items()]
    if weights:
        model['Weights'] = weights
    return model


def metafile(task_dir: str, models: list) -> dict:
    collections = []
    for name, (paper, code, architecture) in COLLECTIONS.items():
        collections.append({
            'Name': name,
            'Metadata': {'Training Data': TASKS[task_dir][1], 'Architecture': architecture},
            'Paper': paper,
            'README': f'configs/{task_dir}/README.md',
            'Code': {'URL': code},
        })
    return {'Collections': collections, 'Models': models}


HEADER = ('# Written by tools/analysis/make_metafiles.py. FLOPs are multiply-accumulates counted\n'
          '# by fvcore (the papers\' MACs, the toolboxes\' convention) at {shape}.\n')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    return parser.parse_args()


@cli
def main():
    args = parse_args()
    for task_dir in args.tasks:
        models = []
        for config in sorted(glob.glob(osp.join(REPO_ROOT, 'configs', task_dir, '*.py'))):
            model = build_model(config, {'model.backbone.init_cfg': None}).eval()
            shape = DEFAULT_SHAPES[model.cfg.default_scope]
            models.append(entry(task_dir, config, count_parameters(model),
                                count_macs(model, shape)))
            print(models[-1]['Name'], models[-1]['Metadata'], flush=True)
        path = osp.join(REPO_ROOT, 'configs', task_dir, 'metafile.yml')
        with open(path, 'w') as f:
            f.write(HEADER.format(shape='x'.join(map(str, shape[::-1]))))
            yaml.safe_dump(metafile(task_dir, models), f, sort_keys=False, width=120)
    with open(osp.join(REPO_ROOT, 'model-index.yml'), 'w') as f:
        yaml.safe_dump({'Import': [f'configs/{t}/metafile.yml' for t in TASKS]}, f,
                       sort_keys=False)


if __name__ == '__main__':
    main()

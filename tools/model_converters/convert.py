"""Convert PoolFormer and MetaFormer-family weights between the official sail-sg
(poolformer, metaformer), mmpretrain, timm and mmpoolformer layouts (the source
layout is detected)."""
import argparse
import os

import torch

from mmpoolformer.apis.run import parse_args_trusting
from mmpoolformer.checkpoint import (
    LAYOUTS,
    convert_from_mmpoolformer,
    convert_to_mmpoolformer,
    get_state_dict,
    load_file,
)
from mmpoolformer.utils.cli import cli


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src', help='checkpoint to convert (file or URL)')
    parser.add_argument('dst', help='where to write the converted weights')
    parser.add_argument('--to', choices=LAYOUTS, default='mmpoolformer',
                        help='target layout (default: this project\'s)')
    parser.add_argument('--safetensors', action='store_true',
                        help='write a .safetensors file instead of a torch pickle')
    return parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    ours, source_layout = convert_to_mmpoolformer(get_state_dict(load_file(args.src)))
    out = convert_from_mmpoolformer(ours, args.to)
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    if args.safetensors:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in out.items()}, args.dst)
    else:
        torch.save({'state_dict': out} if args.to in ('mmpoolformer', 'mmpretrain') else out,
                   args.dst)
    print(f'{args.src} ({source_layout}) -> {args.dst} ({args.to}, {len(out)} tensors)')


if __name__ == '__main__':
    main()

"""Plot training curves (loss, lr, validation metrics) of an mmengine work dir to a PNG."""
import argparse

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from run_logs import read_scalars  # noqa: E402

from mmpoolformer.utils.cli import cli  # noqa: E402
from mmpoolformer.utils.errors import UsageError  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('run', help='work dir, run folder or vis_data/scalars.json')
    parser.add_argument('--keys', nargs='+',
                        help='scalars to plot (default: loss, lr and every metric logged)')
    parser.add_argument('--out', default='curves.png', help='output PNG')
    return parser.parse_args()


def default_keys(series):
    metrics = [k for k in series if '/' in k or k in ('mIoU', 'mAcc', 'aAcc')]
    return [k for k in ('loss', 'lr') if k in series] + metrics


@cli
def main():
    args = parse_args()
    series = read_scalars(args.run)
    keys = args.keys or default_keys(series)
    unknown = [k for k in keys if k not in series]
    if unknown:
        raise UsageError(f'{args.run}: no scalar {unknown}; logged: {sorted(series)}')
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), squeeze=False,
                             sharex=True)
    for ax, key in zip(axes[:, 0], keys):
        steps, values = zip(*series[key])
        ax.plot(steps, values, marker='o' if len(steps) < 20 else None)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel('iteration')
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f'wrote {args.out} ({", ".join(keys)})')


if __name__ == '__main__':
    main()

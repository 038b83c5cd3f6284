"""Web demo (Gradio): classification top-5, detection boxes and masks, or a
segmentation overlay, for any config and checkpoint."""
import argparse

from mmpoolformer.apis import DEFAULT_MAX_PIXELS
from mmpoolformer.runner import cli, parse_args_trusting


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='weights (any PoolFormer layout)')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='refuse larger uploads (width x height)')
    return parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    from mmpoolformer.demo import build_app
    build_app(args.config, args.checkpoint, args.device, args.max_pixels).launch(
        server_name=args.host, server_port=args.port, share=False)


if __name__ == '__main__':
    main()

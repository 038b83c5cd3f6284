"""Web demo (Gradio): classification top-5, detection boxes and masks, or a
segmentation overlay, for any config and checkpoint.

The page and its predictors are here too (tests import them with
helpers.import_tool); gradio is imported only when the page is built."""
import argparse
import os
from typing import Callable

import numpy as np

from mmpoolformer.apis import DEFAULT_MAX_PIXELS, build_inferencer, check_image, load_config
from mmpoolformer.apis.run import parse_args_trusting
from mmpoolformer.utils.cli import cli
from mmpoolformer.utils.errors import UsageError


def make_predictor(config: str, checkpoint: str = None, device: str = 'cpu',
                   score_thr: float = None) -> tuple[Callable, str]:
    """(function from an RGB image to the result, kind of result: 'label' or 'image').

    A detector draws the instances scored ``score_thr`` and up: by default the
    config's own ``default_hooks.visualization.score_thr`` (what ``--show-dir``
    draws), else mmdet's 0.3."""
    cfg = load_config(config)
    if score_thr is None:
        score_thr = cfg.get('default_hooks', {}).get('visualization', {}).get('score_thr', 0.3)
    scope = cfg.get('default_scope')
    inferencer = build_inferencer(cfg, checkpoint, device)
    classes = inferencer.model.dataset_meta.get('classes')

    if scope == 'mmpretrain':
        def classify(image: np.ndarray) -> dict:
            scores = inferencer(image[..., ::-1].copy())[0]['pred_scores']
            top = np.argsort(scores)[::-1][:5]
            return {(classes[i] if classes else str(i)): float(scores[i]) for i in top}
        return classify, 'label'

    extra = dict(pred_score_thr=score_thr) if scope == 'mmdet' else {}

    def draw(image: np.ndarray) -> np.ndarray:
        # The inferencers give an array to the model as BGR (cv2's order) but draw on it
        # as it is: the model gets a BGR copy, the drawing the RGB upload.
        result = inferencer(image[..., ::-1].copy(), return_datasamples=True)
        preds = result['predictions'] if isinstance(result, dict) else [result]  # mmseg: bare
        return inferencer.visualize([image], preds, return_vis=True, **extra)[0]
    return draw, 'image'


def guarded(predict: Callable, max_pixels: int = DEFAULT_MAX_PIXELS) -> Callable:
    """Refuse non-images and images above ``max_pixels`` with a message shown
    to the user (gr.Error); the server goes on serving the next request."""
    import gradio as gr

    def run(image):
        try:
            if image is None:
                raise UsageError('no image was uploaded')
            check_image(image, max_pixels, name='the upload')
        except UsageError as err:
            raise gr.Error(str(err)) from None
        return predict(image)
    return run


def build_app(config: str, checkpoint: str = None, device: str = 'cpu',
              max_pixels: int = DEFAULT_MAX_PIXELS, score_thr: float = None):
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    import gradio as gr
    predict, kind = make_predictor(config, checkpoint, device, score_thr)
    predict = guarded(predict, max_pixels)
    output = (gr.Label(num_top_classes=5, label='top-5') if kind == 'label'
              else gr.Image(label='result'))
    return gr.Interface(
        fn=predict, inputs=gr.Image(type='numpy', label='image'), outputs=output,
        title='mmpoolformer', flagging_mode='never',
        description=f'{os.path.basename(config)}: upload an image and press Submit.')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='weights (any PoolFormer layout)')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float,
                        help="detectors: draw instances scored this and up (default: the "
                             "config's visualization score_thr, else 0.3)")
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='refuse larger uploads (width x height)')
    return parse_args_trusting(parser)


@cli
def main():
    args = parse_args()
    build_app(args.config, args.checkpoint, args.device, args.max_pixels,
              args.score_thr).launch(
        server_name=args.host, server_port=args.port, share=False)


if __name__ == '__main__':
    main()

"""The web demo: one Gradio page for a classifier, detector or segmentor."""
import os
from typing import Callable, Tuple

import numpy as np

from mmpoolformer.apis import build_inferencer, load_config


def make_predictor(config: str, checkpoint: str = None, device: str = 'cpu',
                   score_thr: float = 0.3) -> Tuple[Callable, str]:
    """(function from an RGB image to the result, kind of result: 'label' or 'image')."""
    cfg = load_config(config)
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
        # The inferencers take BGR arrays and return RGB drawings.
        vis = inferencer(image[..., ::-1].copy(), return_vis=True, **extra)['visualization']
        return vis[0] if isinstance(vis, list) else vis  # mmseg returns one image unlisted
    return draw, 'image'


def build_app(config: str, checkpoint: str = None, device: str = 'cpu'):
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    import gradio as gr
    predict, kind = make_predictor(config, checkpoint, device)
    output = gr.Label(num_top_classes=5, label='top-5') if kind == 'label' else gr.Image(label='result')
    return gr.Interface(
        fn=predict, inputs=gr.Image(type='numpy', label='image'), outputs=output,
        title='mmpoolformer', flagging_mode='never',
        description=f'{os.path.basename(config)}: upload an image and press Submit.')

"""The built-in COCO-layout shapes: the image, the mask and the box agree to the pixel."""
import numpy as np
import pytest
from pycocotools.coco import COCO

from mmpoolformer.datasets import builtin


@pytest.fixture(scope='module')
def small_coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    builtin.make_coco_set(root, splits=(('val2017', 12), ), seed=5)
    return root


def pixel_box(mask: np.ndarray) -> list:
    """[x, y, w, h] of the pixels set in ``mask``, each pixel one unit wide."""
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]


def test_boxes_masks_and_areas_are_those_of_the_drawn_pixels(small_coco):
    import cv2
    coco = COCO(f'{small_coco}/annotations/instances_val2017.json')
    assert len(coco.anns) >= 12
    for ann in coco.anns.values():
        mask = coco.annToMask(ann).astype(bool)  # the evaluator's reading of the polygon
        img = cv2.imread(f"{small_coco}/val2017/{coco.imgs[ann['image_id']]['file_name']}")
        colour = img[mask][0]
        x, y, w, h = pixel_box(mask)
        around = (slice(max(y - 2, 0), y + h + 2), slice(max(x - 2, 0), x + w + 2))
        # The shape's colour fills its mask and nothing else near it.
        np.testing.assert_array_equal((img == colour).all(-1)[around], mask[around])
        assert ann['bbox'] == [x, y, w, h], ann['id']
        assert ann['area'] == mask.sum()


def test_flipped_boxes_stay_on_their_flipped_shapes(small_coco):
    """mmdet's flip maps a box x to width - x: only a box of the pixels, edges between
    pixels, lands on the flipped shape; a box 1 px short moves by a pixel under flip."""
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets.transforms import LoadAnnotations, RandomFlip
    coco = COCO(f'{small_coco}/annotations/instances_val2017.json')
    for img_id, info in coco.imgs.items():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        results = dict(img_path=f"{small_coco}/val2017/{info['file_name']}",
                       instances=[dict(bbox=[a['bbox'][0], a['bbox'][1],
                                             a['bbox'][0] + a['bbox'][2],
                                             a['bbox'][1] + a['bbox'][3]],
                                       bbox_label=a['category_id'] - 1, ignore_flag=0,
                                       mask=a['segmentation']) for a in anns])
        results = LoadImageFromFile()(results)
        results = LoadAnnotations(with_bbox=True, with_mask=True)(results)
        results = RandomFlip(prob=1.0)(results)
        for box, mask in zip(results['gt_bboxes'].tensor.tolist(),
                             results['gt_masks'].to_ndarray()):
            x, y, w, h = pixel_box(mask)
            assert box == [x, y, x + w, y + h]

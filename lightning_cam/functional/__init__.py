"""Pure tensor functions: CAMs, normalisation, upsampling, overlays and the WSOL scores."""

from lightning_cam.functional.cams import class_activation_maps, normalize_cams, resolve_target, upsample_cams
from lightning_cam.functional.overlay import apply_colormap, draw_boxes, overlay_cams, to_uint8_images
from lightning_cam.functional.panel import make_panel
from lightning_cam.functional.resize import resize_bicubic_like_opencv, resize_nearest_like_opencv
from lightning_cam.functional.wsol import (
    box_accuracy_curves,
    box_iou,
    box_scores,
    boxes_from_cams,
    cam_thresholds,
    max_box_accuracy,
    pixel_average_precision,
    prepare_inputs,
    rescale_boxes,
    scoremaps,
)

__all__ = [
    "apply_colormap",
    "box_accuracy_curves",
    "box_iou",
    "box_scores",
    "boxes_from_cams",
    "cam_thresholds",
    "class_activation_maps",
    "draw_boxes",
    "make_panel",
    "max_box_accuracy",
    "normalize_cams",
    "overlay_cams",
    "pixel_average_precision",
    "prepare_inputs",
    "rescale_boxes",
    "resize_bicubic_like_opencv",
    "resize_nearest_like_opencv",
    "resolve_target",
    "scoremaps",
    "to_uint8_images",
    "upsample_cams",
]

"""Pure tensor functions: CAMs, normalisation, upsampling, overlays and the WSOL scores."""

from lightning_cam.functional.cams import class_activation_maps, normalize_cams, resolve_target, upsample_cams
from lightning_cam.functional.overlay import apply_colormap, draw_boxes, overlay_cams, to_uint8_images

__all__ = [
    "apply_colormap",
    "class_activation_maps",
    "draw_boxes",
    "normalize_cams",
    "overlay_cams",
    "resolve_target",
    "to_uint8_images",
    "upsample_cams",
]

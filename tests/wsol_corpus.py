"""Generated CAMs, boxes and masks for the WSOL metric tests: the cases the reference evaluator is tricky on."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("smooth", "blobs", "ring", "noise", "constant", "hot_pixel", "plateaus")


def _smooth(rng: np.random.Generator) -> np.ndarray:
    size = int(rng.choice([7, 14]))
    return rng.standard_normal((size, size))


def _blobs(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:28, :28]
    cam = np.zeros((28, 28))
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0, 28, 2)
        radius = rng.uniform(1, 5)
        cam += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    return cam


def _ring(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:56, :56]
    distance = np.hypot(yy - rng.uniform(18, 38), xx - rng.uniform(18, 38))
    return np.exp(-((distance - rng.uniform(6, 14)) ** 2) / 8) + 0.05 * rng.standard_normal((56, 56))


def _hot_pixel(rng: np.random.Generator, size: int) -> np.ndarray:
    # At evaluation size, a single hot pixel stays one pixel; smaller, it spreads into a bicubic bump.
    side = int(rng.choice([14, size]))
    cam = np.zeros((side, side))
    cam[rng.integers(side), rng.integers(side)] = 1.0
    return cam


def _plateaus(rng: np.random.Generator) -> np.ndarray:
    # Flat levels at evaluation size: equal-area components, i.e. ties of the largest contour.
    cells = (rng.random((8, 8)) > 0.6) * rng.integers(1, 4, (8, 8))
    return np.kron(cells, np.ones((4, 4)))


def raw_cam(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One float32 raw CAM of the given kind; ``size`` is the evaluation side."""
    if kind == "smooth":
        cam = _smooth(rng)
    elif kind == "blobs":
        cam = _blobs(rng)
    elif kind == "ring":
        cam = _ring(rng)
    elif kind == "noise":
        cam = rng.random((size, size))
    elif kind == "constant":
        cam = np.full((7, 7), rng.uniform(-2, 2))
    elif kind == "hot_pixel":
        cam = _hot_pixel(rng, size)
    elif kind == "plateaus":
        cam = _plateaus(rng)
        cam = F.interpolate(torch.from_numpy(cam)[None, None], size=(size, size), mode="nearest")[0, 0].numpy()
    else:
        raise ValueError(kind)
    return cam.astype(np.float32)


def gt_boxes(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    """1 to 3 boxes ``x0, y0, x1, y1`` inside an ``(H, W)`` image, in float pixels."""
    height, width = image_size
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        x0, x1 = np.sort(rng.uniform(0, width, 2))
        y0, y1 = np.sort(rng.uniform(0, height, 2))
        boxes.append([x0, y0, x1, y1])
    return np.asarray(boxes)


def corpus(
    count_per_kind: int, eval_side: int, image_size: tuple[int, int], seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """CAMs of every kind, their GT boxes in image pixels and uint8 masks (1 object, 0 background, 255 ignore)."""
    rng = np.random.default_rng(seed)
    cams, boxes, masks = [], [], []
    for kind in KINDS:
        for _ in range(count_per_kind):
            cams.append(raw_cam(kind, rng, eval_side))
            boxes.append(gt_boxes(rng, image_size))
            mask = np.zeros(image_size, np.uint8)
            for x0, y0, x1, y1 in boxes[-1].astype(int):
                mask[y0 : y1 + 1, x0 : x1 + 1] = 1
            mask[rng.random(image_size) < 0.02] = 255
            masks.append(mask)
    return cams, boxes, np.stack(masks)

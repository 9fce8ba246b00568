"""WSOL scores of Choe et al. (CVPR 2020): box accuracy over CAM thresholds, localization accuracy and PxAP.

Everything here reproduces the reference evaluator (clovaai/wsolevaluation) number for number:

- score maps are the raw CAMs resized to the evaluation size with OpenCV's bicubic interpolation (reproduced
  bit for bit in float64) and min-max normalised; a map with a non-finite value, or a constant map, becomes all zeros;
- ground-truth boxes are rescaled to the evaluation size and truncated to integers;
- at CAM threshold ``t`` the map quantised to uint8 is thresholded at level ``int(t * max)`` (foreground:
  strictly greater) and the boxes are the bounding rectangles of OpenCV's contours (all of them, or the one of
  largest ``cv2.contourArea``), computed for all thresholds in one pass by a C kernel that gives OpenCV's boxes
  without tracing contours;
- IoU counts pixels inclusively (``+ 1``); PxAP bins the float scores.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from lightning_cam.functional._wsol_kernel import contour_boxes, normalized_maps, pixel_counts, quantize_maps
from lightning_cam.functional.resize import _cubic_taps, resize_bicubic_like_opencv, resize_nearest_like_opencv

__all__ = [
    "BoxScores",
    "box_accuracy_curves",
    "box_iou",
    "average_precision_from_histograms",
    "box_scores",
    "boxes_from_cams",
    "cam_thresholds",
    "max_box_accuracy",
    "pixel_average_precision",
    "pixel_histograms",
    "precision_recall_from_histograms",
    "prepare_inputs",
    "rescale_boxes",
    "scoremaps",
]

Size = tuple[int, int]
EVAL_SIZE: Size = (224, 224)


def _check_size(size: Sequence[int], name: str) -> Size:
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"Expected `{name}` as (H, W) positive ints, got {size!r}.")
    return int(size[0]), int(size[1])


def cam_thresholds(cam_curve_interval: float = 0.01) -> Tensor:
    """The reference's CAM thresholds ``numpy.arange(0, 1, cam_curve_interval)`` as a float64 tensor.

    Args:
        cam_curve_interval: spacing in ``(0, 1)``.

    Returns:
        Float64 tensor ``(T,)``.

    Example:
        >>> cam_thresholds(0.25).tolist()
        [0.0, 0.25, 0.5, 0.75]
    """
    if not isinstance(cam_curve_interval, int | float) or not 0 < cam_curve_interval < 1:
        raise ValueError(f"Expected `cam_curve_interval` in (0, 1), got {cam_curve_interval!r}.")
    # numpy.arange, not torch.arange: the two can differ in the last bit, which moves int(t * 255).
    return torch.from_numpy(np.arange(0, 1, cam_curve_interval, dtype=np.float64))


def scoremaps(cams: Tensor, eval_size: Sequence[int] = EVAL_SIZE, *, warn_non_finite: bool = True) -> Tensor:
    """Resize raw CAMs to the evaluation size (OpenCV's bicubic, float64) and min-max normalise them to ``[0, 1]``.

    A map with a NaN or infinite value becomes all zeros, as in the reference evaluator (with a warning), and
    so does a constant map (no information).

    Args:
        cams: ``(B, h, w)`` raw class activation maps of any size and float dtype.
        eval_size: ``(H, W)`` to resize to; 224x224 in the WSOL protocol.
        warn_non_finite: warn when a map with non-finite values is zeroed.

    Returns:
        Float64 tensor ``(B, H, W)`` on the device of ``cams``.

    Example:
        >>> maps = scoremaps(torch.tensor([[[0.0, 2.0], [4.0, 8.0]]]), eval_size=(4, 4))
        >>> maps.shape, maps.min().item(), maps.max().item()
        (torch.Size([1, 4, 4]), 0.0, 1.0)
    """
    return _score_maps(cams, eval_size, warn_non_finite=warn_non_finite).maps


class _ScoreMaps(NamedTuple):
    """A batch's score maps at evaluation size, in the forms asked for (None where not asked for).

    Attributes:
        maps: float64 ``(B, H, W)``, for PxAP.
        quantized: uint8 ``(B, H, W)``, C-contiguous, the maps the boxes come from.
        peaks: float64 ``(B,)``, the maximum of each quantised map.
    """

    maps: Tensor | None
    quantized: np.ndarray | None
    peaks: np.ndarray | None


def _score_maps(
    cams: Tensor,
    eval_size: Sequence[int],
    normalized: bool = False,
    *,
    warn_non_finite: bool = True,
    float_maps: bool = True,
    quantized: bool = False,
) -> _ScoreMaps:
    """Score maps from raw CAMs (see :func:`scoremaps`), or validated when already normalised, as asked for.

    The C kernel quantises each map while it is in cache; without ``float_maps`` it never writes the float maps out.
    """
    height, width = _check_size(eval_size, "eval_size")
    if normalized:
        maps = _checked_normalized(cams, (height, width))
        return _ScoreMaps(maps, *(_quantize(maps) if quantized else (None, None)))
    if not isinstance(cams, Tensor) or cams.ndim != 3:
        raise ValueError(f"Expected `cams` as a (B, h, w) tensor, got {getattr(cams, 'shape', type(cams))}.")
    if not cams.is_floating_point():
        raise TypeError(f"Expected floating-point `cams`, got dtype {cams.dtype}.")
    if cams.shape[0] == 0:
        raise ValueError("Expected at least one CAM, got an empty batch.")
    maps = cams.detach().to(torch.float64)
    finite = torch.isfinite(maps).flatten(1).all(1)
    if not finite.all():
        if warn_non_finite:
            warnings.warn(
                f"{int((~finite).sum())} of {len(finite)} CAMs have NaN/inf values; they are scored as all-zero "
                "maps, as the reference evaluator does.",
                RuntimeWarning,
                stacklevel=3,
            )
        maps = torch.where(finite[:, None, None], maps, torch.zeros_like(maps))
    if maps.device.type == "cpu":
        # The C kernel computes the same float64 operations in the same order as the torch code below.
        shape = (len(maps), height, width)
        out = torch.empty(shape, dtype=torch.float64) if float_maps else None
        q, peaks = (np.empty(shape, np.uint8), np.empty(len(maps))) if quantized else (None, None)
        taps = _taps(maps.shape[1:], (height, width))
        if normalized_maps(maps.contiguous().numpy(), *maps.shape[1:], *taps, _numpy(out), q, peaks):
            return _ScoreMaps(out, q, peaks)
    # Small chunks keep the float64 maps in cache: several times faster than one pass over a large batch.
    maps = torch.cat([_normalized(chunk, (height, width)) for chunk in maps.split(_CHUNK)])
    return _ScoreMaps(maps, *(_quantize(maps) if quantized else (None, None)))


def _numpy(tensor: Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.numpy()


_CHUNK = 16


@lru_cache(maxsize=16)
def _taps(source: Size, size: Size) -> tuple[np.ndarray | None, ...]:
    """Row and column taps of the bicubic resize for the C kernel (float32 weights held exactly as float64)."""
    if tuple(source) == tuple(size):
        return None, None, None, None  # resize_bicubic_like_opencv keeps the maps as they are
    taps = []
    for src, dst in zip(source, size, strict=True):
        index, weights = _cubic_taps(src, dst)
        taps += [np.ascontiguousarray(index, np.int64), np.ascontiguousarray(weights, np.float64)]
    return tuple(taps)


def _normalized(maps: Tensor, size: Size) -> Tensor:
    maps = resize_bicubic_like_opencv(maps, size)
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    constant = high == low
    # (m - min) / (max - min), rounded as the reference's in-place `-= min` then `/= max`.
    maps = (maps - low).div_(torch.where(constant, torch.ones_like(high), high - low))
    return maps.masked_fill_(constant, 0.0)


def rescale_boxes(boxes: Tensor, image_size: Sequence[int], eval_size: Sequence[int] = EVAL_SIZE) -> Tensor:
    """Rescale ``x0, y0, x1, y1`` boxes from an image of ``image_size`` to ``eval_size``, truncated to integers.

    Args:
        boxes: ``(n, 4)`` boxes in image pixels.
        image_size: ``(H, W)`` of the image the boxes refer to.
        eval_size: ``(H, W)`` of the evaluation maps.

    Returns:
        Int64 tensor ``(n, 4)``.

    Example:
        >>> rescale_boxes(torch.tensor([[10.0, 20.0, 99.0, 150.0]]), (300, 200), (224, 224)).tolist()
        [[11, 14, 110, 112]]
    """
    image_h, image_w = _check_size(image_size, "image_size")
    eval_h, eval_w = _check_size(eval_size, "eval_size")
    boxes = torch.as_tensor(boxes).detach().cpu().to(torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"Expected boxes of shape (n, 4), got {tuple(boxes.shape)}.")
    scale = torch.tensor([eval_w, eval_h, eval_w, eval_h], dtype=torch.float64)
    size = torch.tensor([image_w, image_h, image_w, image_h], dtype=torch.float64)
    # x * new / old in this order, as the reference: (x * new) / old and x * (new / old) can truncate differently.
    return (boxes * scale / size).trunc().to(torch.int64)


def _checked_boxes(boxes: Sequence[Tensor], batch_size: int, image_size: Size) -> tuple[Tensor, list[int]]:
    """All boxes of the batch as one float64 ``(N, 4)`` tensor, and the number of boxes of each image."""
    if isinstance(boxes, Tensor) and boxes.ndim == 3:
        boxes = list(boxes)
    if not isinstance(boxes, Sequence) or isinstance(boxes, str):
        raise TypeError(f"Expected `boxes` as a list of (n_i, 4) tensors, got {type(boxes).__name__}.")
    if len(boxes) != batch_size:
        raise ValueError(f"Expected boxes for {batch_size} images, got {len(boxes)}.")
    height, width = image_size
    checked, counts = [], []
    for i, b in enumerate(boxes):
        b = b if isinstance(b, Tensor) else torch.as_tensor(b)
        shape = b.shape  # read once: this loop runs per image
        if len(shape) == 1 and shape[0] == 4:
            b, shape = b[None], (1, 4)
        if len(shape) != 2 or shape[1] != 4:
            raise ValueError(f"Expected boxes[{i}] of shape (n, 4), got {tuple(shape)}.")
        if shape[0] == 0:
            raise ValueError(f"Expected at least one ground-truth box for image {i}, got an empty box list.")
        checked.append(b if b.is_cpu else b.cpu())
        counts.append(shape[0])
    # One conversion and one set of value checks for all boxes of the batch; a failure names the first image at fault.
    flat = torch.cat(checked).detach().to(torch.float64)
    bad = {
        "finite boxes": ~torch.isfinite(flat).all(1),
        "boxes with x0 <= x1 and y0 <= y1": (flat[:, 2] < flat[:, 0]) | (flat[:, 3] < flat[:, 1]),
        f"boxes inside the {height}x{width} image (0 <= x <= {width}, 0 <= y <= {height})": (
            (flat[:, :2] < 0).any(1) | (flat[:, 2] > width) | (flat[:, 3] > height)
        ),
    }
    for expected, rows in bad.items():
        if rows.any():
            row = int(rows.nonzero()[0])
            image = int(np.searchsorted(np.cumsum(counts), row, side="right"))
            raise ValueError(f"Expected {expected}, got {flat.split(counts)[image].tolist()} for image {image}.")
    return flat, counts


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU ``(n, m)`` of integer-pixel boxes with inclusive ends (a box ``[x, y, x, y]`` is one pixel).

    Degenerate unions give 0, as in the reference.

    Args:
        boxes_a: ``(n, 4)`` boxes ``x0, y0, x1, y1``.
        boxes_b: ``(m, 4)`` boxes.

    Returns:
        Float64 tensor ``(n, m)``.

    Example:
        >>> box_iou(torch.tensor([[0, 0, 9, 9]]), torch.tensor([[0, 0, 4, 9], [20, 20, 30, 30]])).tolist()
        [[0.5, 0.0]]
    """
    a = torch.as_tensor(boxes_a).to(torch.int64)
    b = torch.as_tensor(boxes_b, device=a.device).to(torch.int64)
    if a.ndim != 2 or a.shape[1] != 4 or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"Expected boxes of shape (n, 4) and (m, 4), got {tuple(a.shape)} and {tuple(b.shape)}.")
    a, b = a[:, None], b[None]
    inter_w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + 1).clamp(min=0)
    inter_h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + 1).clamp(min=0)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    iou = inter.to(torch.float64) / union.clamp(min=1).to(torch.float64)
    return torch.where(union > 0, iou, torch.zeros_like(iou))


def _quantize(maps: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """uint8 maps ``(s * 255)`` truncated, as a contiguous array, and each map's peak (255, or 0 when all zero)."""
    if maps.device.type == "cpu" and maps.dtype == torch.float64 and maps.numel():
        values = maps.detach().contiguous().numpy()
        quantized, peaks = np.empty(values.shape, np.uint8), np.empty(len(values))
        # False for values outside [0, 1], which the torch conversion below handles as it always did.
        if quantize_maps(values, quantized, peaks):
            return quantized, peaks
    quantized = (maps * 255).to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(quantized), quantized.reshape(len(quantized), -1).max(1).astype(np.float64)


def _levels(peaks: np.ndarray, thresholds: Tensor) -> np.ndarray:
    # int(t * peak) of Python floats is the float64 product truncated.
    return np.ascontiguousarray(np.trunc(peaks[:, None] * thresholds.numpy()[None]).astype(np.int32))


class BoxScores(NamedTuple):
    """Per-image, per-threshold results of :func:`box_scores`.

    Attributes:
        all_contours: ``(B, T)`` best IoU over all contours' boxes and the GT boxes (MaxBoxAccV2's rule), or None.
        largest_contour: ``(B, S)`` best IoU of the largest contour's box (MaxBoxAcc's rule), or None.
        largest_boxes: ``(B, S, 4)`` the largest contour's box at each threshold, in evaluation pixels, or None.
    """

    all_contours: Tensor | None
    largest_contour: Tensor | None
    largest_boxes: Tensor | None


def box_scores(
    maps: Tensor,
    gt_boxes: Sequence[Tensor] | None,
    thresholds: Tensor,
    *,
    all_contours: bool = True,
    largest_contour: bool = True,
    largest_thresholds: Tensor | None = None,
) -> BoxScores:
    """Best IoUs of the estimated boxes at every CAM threshold, for normalised score maps, in one C call.

    Args:
        maps: ``(B, H, W)`` score maps in ``[0, 1]`` at evaluation size (see :func:`scoremaps`).
        gt_boxes: per image an ``(n_i, 4)`` integer box tensor at evaluation size (see :func:`rescale_boxes`);
            None to get only the largest contour's boxes.
        thresholds: ``(T,)`` CAM thresholds in ``[0, 1)``.
        all_contours: compute the best IoU over all contours (multi-contour rule).
        largest_contour: compute the largest contour's box and its best IoU (single-contour rule).
        largest_thresholds: ``(S,)`` thresholds for the largest contour, when they differ from ``thresholds``.

    Returns:
        A :class:`BoxScores` with float64 IoUs and int32 boxes on the CPU.

    Example:
        >>> maps = torch.zeros(1, 8, 8, dtype=torch.float64)
        >>> maps[0, 2:5, 3:7] = 1.0
        >>> scores = box_scores(maps, [torch.tensor([[3, 2, 7, 5]])], torch.tensor([0.5], dtype=torch.float64))
        >>> scores.largest_boxes[0, 0].tolist(), scores.all_contours.tolist()
        ([3, 2, 7, 5], [[1.0]])
    """
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"Expected `maps` as a non-empty (B, H, W) tensor, got shape {tuple(maps.shape)}.")
    quantized, peaks = _quantize(maps)
    return _quantized_box_scores(
        quantized,
        peaks,
        gt_boxes,
        thresholds,
        all_contours=all_contours,
        largest_contour=largest_contour,
        largest_thresholds=largest_thresholds,
    )


def _quantized_box_scores(
    quantized: np.ndarray,
    peaks: np.ndarray,
    gt_boxes: Sequence[Tensor] | None,
    thresholds: Tensor,
    *,
    all_contours: bool = True,
    largest_contour: bool = True,
    largest_thresholds: Tensor | None = None,
) -> BoxScores:
    """:func:`box_scores` of maps already quantised (uint8 ``(B, H, W)``, C-contiguous) with their peaks."""
    batch, height, width = quantized.shape
    levels = _levels(peaks, thresholds.detach().cpu().to(torch.float64))
    largest_levels = levels if largest_thresholds is None else _levels(peaks, largest_thresholds.cpu().double())
    num_thresholds, num_largest = levels.shape[1], largest_levels.shape[1]
    gt = offsets = None
    if gt_boxes is not None:
        if len(gt_boxes) != batch:
            raise ValueError(f"Expected boxes for {batch} maps, got {len(gt_boxes)}.")
        boxes = [b if isinstance(b, Tensor) and b.ndim == 2 else torch.as_tensor(b).reshape(-1, 4) for b in gt_boxes]
        gt = np.ascontiguousarray(torch.cat(boxes).detach().cpu().numpy(), np.int32)
        offsets = np.cumsum([0] + [len(b) for b in boxes]).astype(np.int64)
    elif all_contours:
        raise ValueError("Expected `gt_boxes` to score all contours, got None.")
    all_iou = np.zeros((batch, num_thresholds)) if all_contours else None
    largest_iou = np.zeros((batch, num_largest)) if largest_contour and gt is not None else None
    largest_boxes = np.zeros((batch, num_largest, 4), np.int32) if largest_contour else None
    contour_boxes(
        quantized,
        height,
        width,
        levels if all_contours else None,
        largest_levels if largest_contour else None,
        gt,
        offsets,
        all_iou,
        largest_iou,
        largest_boxes,
    )
    return BoxScores(*(None if a is None else torch.from_numpy(a) for a in (all_iou, largest_iou, largest_boxes)))


def _checked_normalized(cams: Tensor, eval_size: Size) -> Tensor:
    """Already normalised score maps, validated, as float64."""
    if not isinstance(cams, Tensor) or cams.ndim != 3 or tuple(cams.shape[-2:]) != eval_size or not len(cams):
        shape = tuple(getattr(cams, "shape", ()))
        raise ValueError(f"Expected normalised maps of shape (B, {eval_size[0]}, {eval_size[1]}), got {shape}.")
    if not torch.isfinite(cams).all() or cams.min() < 0 or cams.max() > 1:
        raise ValueError(
            "Expected normalised maps with finite values in [0, 1]; pass raw CAMs with `normalized=False`."
        )
    return cams.detach().to(torch.float64)


def prepare_inputs(
    cams: Tensor,
    boxes: Sequence[Tensor] | None = None,
    masks: Tensor | None = None,
    *,
    image_size: Sequence[int] | None = None,
    eval_size: Sequence[int] = EVAL_SIZE,
    normalized: bool = False,
    warn_non_finite: bool = True,
) -> tuple[Tensor, list[Tensor] | None, Tensor | None]:
    """Validate a batch and bring it to evaluation size: score maps, integer GT boxes and masks.

    Args:
        cams: ``(B, h, w)`` raw CAMs (or normalised maps at ``eval_size`` with ``normalized=True``).
        boxes: per image an ``(n_i, 4)`` tensor of GT boxes in ``image_size`` pixels, or None.
        masks: ``(B, H, W)`` integer masks at ``image_size`` (1 object, 0 background, other ignored), or None.
        image_size: ``(H, W)`` the boxes and masks refer to; None means ``eval_size``.
        eval_size: ``(H, W)`` of the evaluation.
        normalized: the maps are already normalised score maps at ``eval_size``.
        warn_non_finite: warn when a map with NaN/inf values is scored as zeros.

    Returns:
        Float64 maps ``(B, H, W)``, int64 boxes (or None) and masks (or None), all at evaluation size.
    """
    score, gt, masks = _prepare(
        cams,
        boxes,
        masks,
        image_size=image_size,
        eval_size=eval_size,
        normalized=normalized,
        warn_non_finite=warn_non_finite,
    )
    return score.maps, gt, masks


def _prepare(
    cams: Tensor,
    boxes: Sequence[Tensor] | None,
    masks: Tensor | None,
    *,
    image_size: Sequence[int] | None,
    eval_size: Sequence[int],
    normalized: bool,
    warn_non_finite: bool = True,
    float_maps: bool = True,
    quantized: bool = False,
) -> tuple[_ScoreMaps, list[Tensor] | None, Tensor | None]:
    """:func:`prepare_inputs` with the score maps in the forms asked for (see :func:`_score_maps`)."""
    eval_size = _check_size(eval_size, "eval_size")
    image_size = eval_size if image_size is None else _check_size(tuple(image_size), "image_size")
    score = _score_maps(
        cams, eval_size, normalized, warn_non_finite=warn_non_finite, float_maps=float_maps, quantized=quantized
    )
    gt = None
    if boxes is not None:
        flat, counts = _checked_boxes(boxes, len(cams), image_size)
        gt = list(rescale_boxes(flat, image_size, eval_size).split(counts))
    if masks is not None:
        masks = _checked_masks(masks, len(cams), image_size, eval_size)
    return score, gt, masks


def box_accuracy_curves(
    cams: Tensor,
    boxes: Sequence[Tensor],
    *,
    image_size: Sequence[int] | None = None,
    iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    multi_contour: bool = True,
    cam_curve_interval: float = 0.01,
    eval_size: Sequence[int] = EVAL_SIZE,
    normalized: bool = False,
) -> Tensor:
    """Fraction of images localised correctly at every (IoU threshold, CAM threshold) pair.

    Args:
        cams: ``(B, h, w)`` raw CAMs of the ground-truth class (or normalised maps with ``normalized=True``).
        boxes: per image an ``(n_i, 4)`` tensor of GT boxes ``x0, y0, x1, y1`` in ``image_size`` pixels.
        image_size: ``(H, W)`` of the images the boxes refer to; None means ``eval_size``.
        iou_thresholds: an image is correct when its best IoU is at least this.
        multi_contour: score all contours' boxes (MaxBoxAccV2) or only the largest contour's (MaxBoxAcc).
        cam_curve_interval: spacing of the CAM thresholds.
        eval_size: ``(H, W)`` the maps are resized to.
        normalized: the maps are already normalised score maps at ``eval_size``.

    Returns:
        Float64 tensor ``(len(iou_thresholds), T)``.

    Example:
        >>> cams = torch.zeros(1, 7, 7)
        >>> cams[0, 2:5, 2:5] = 1.0
        >>> curves = box_accuracy_curves(cams, [torch.tensor([[64, 64, 160, 160]])], cam_curve_interval=0.25)
        >>> curves.shape, curves.max().item()
        (torch.Size([3, 4]), 1.0)
    """
    if boxes is None:
        raise ValueError("Expected ground-truth `boxes`, got None.")
    score, gt, _ = _prepare(
        cams,
        boxes,
        None,
        image_size=image_size,
        eval_size=eval_size,
        normalized=normalized,
        float_maps=False,
        quantized=True,
    )
    scores = _quantized_box_scores(
        score.quantized,
        score.peaks,
        gt,
        cam_thresholds(cam_curve_interval),
        all_contours=multi_contour,
        largest_contour=not multi_contour,
    )
    best = scores.all_contours if multi_contour else scores.largest_contour
    iou = torch.as_tensor(iou_thresholds, dtype=torch.float64)
    return (best[None] >= iou[:, None, None]).to(torch.float64).mean(1)


def max_box_accuracy(
    cams: Tensor,
    boxes: Sequence[Tensor],
    *,
    image_size: Sequence[int] | None = None,
    iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    multi_contour: bool = True,
    cam_curve_interval: float = 0.01,
    eval_size: Sequence[int] = EVAL_SIZE,
    normalized: bool = False,
) -> Tensor:
    """MaxBoxAccV2 by default: the mean over IoU thresholds of the best box accuracy over CAM thresholds.

    ``iou_thresholds=(0.5,), multi_contour=False`` gives MaxBoxAcc (v1). Arguments as in
    :func:`box_accuracy_curves`.

    Returns:
        Float64 scalar tensor, a fraction in ``[0, 1]``.

    Example:
        >>> cams = torch.zeros(2, 7, 7)
        >>> cams[:, 2:5, 2:5] = 1.0
        >>> boxes = [torch.tensor([[64, 64, 160, 160]]), torch.tensor([[0, 0, 40, 40]])]
        >>> max_box_accuracy(cams, boxes, cam_curve_interval=0.1).item()
        0.5
    """
    curves = box_accuracy_curves(
        cams,
        boxes,
        image_size=image_size,
        iou_thresholds=iou_thresholds,
        multi_contour=multi_contour,
        cam_curve_interval=cam_curve_interval,
        eval_size=eval_size,
        normalized=normalized,
    )
    return curves.amax(1).mean()


def boxes_from_cams(
    cams: Tensor, threshold: float = 0.2, image_size: Sequence[int] | None = None, *, normalized: bool = False
) -> Tensor:
    """The box of each CAM's largest contour at ``threshold`` of its maximum, as the CAM paper localises.

    Args:
        cams: ``(B, h, w)`` raw CAMs (or normalised maps at ``image_size`` with ``normalized=True``).
        threshold: fraction of the map's maximum in ``[0, 1)``; foreground is strictly above it.
        image_size: ``(H, W)`` the maps are resized to, and the boxes' pixel frame; None keeps the CAM size.
        normalized: the maps are already normalised at ``image_size``.

    Returns:
        Int64 tensor ``(B, 4)`` of ``x0, y0, x1, y1`` boxes; ``[0, 0, 0, 0]`` for a map without foreground.

    Example:
        >>> cams = torch.zeros(1, 4, 4)
        >>> cams[0, 1:3, 1:4] = 1.0
        >>> boxes_from_cams(cams, threshold=0.5).tolist()
        [[1, 1, 3, 3]]
    """
    if not isinstance(threshold, int | float) or not 0 <= threshold < 1:
        raise ValueError(f"Expected `threshold` in [0, 1), got {threshold!r}.")
    if image_size is None:
        if not isinstance(cams, Tensor) or cams.ndim != 3:
            raise ValueError(f"Expected `cams` as a (B, h, w) tensor, got {getattr(cams, 'shape', type(cams))}.")
        image_size = tuple(cams.shape[-2:])
    image_size = _check_size(tuple(image_size), "image_size")
    score = _score_maps(cams, image_size, normalized, float_maps=False, quantized=True)
    thresholds = torch.tensor([float(threshold)], dtype=torch.float64)
    scores = _quantized_box_scores(score.quantized, score.peaks, None, thresholds, all_contours=False)
    return scores.largest_boxes[:, 0].to(torch.int64)


def _checked_masks(masks: Tensor, batch_size: int, image_size: Size, eval_size: Size) -> Tensor:
    masks = torch.as_tensor(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or masks.shape[0] != batch_size or tuple(masks.shape[-2:]) != image_size:
        raise ValueError(
            f"Expected masks of shape ({batch_size}, {image_size[0]}, {image_size[1]}), got {tuple(masks.shape)}."
        )
    if masks.is_floating_point():
        raise TypeError(f"Expected integer or bool masks (1 object, 0 background, other ignored), got {masks.dtype}.")
    masks = masks.to(torch.uint8) if masks.dtype == torch.bool else masks
    if image_size != eval_size:
        masks = resize_nearest_like_opencv(masks, eval_size)
    return masks


def pixel_histograms(maps: Tensor, masks: Tensor, thresholds: Tensor) -> tuple[Tensor, Tensor]:
    """Histograms of score-map values at object and at background pixels, over bins ``[thresholds..., 1, 2, 3]``.

    Args:
        maps: ``(B, H, W)`` normalised score maps.
        masks: ``(B, H, W)`` integer masks: 1 object, 0 background, any other value ignored.
        thresholds: ``(T,)`` CAM thresholds.

    Returns:
        Two float64 tensors ``(T + 2,)``: object and background pixel counts per bin.

    Example:
        >>> maps = torch.tensor([[[0.1, 0.9]]], dtype=torch.float64)
        >>> fg, bg = pixel_histograms(maps, torch.tensor([[[0, 1]]]), torch.tensor([0.0, 0.5], dtype=torch.float64))
        >>> fg.tolist(), bg.tolist()
        ([0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0])
    """
    edges = torch.cat([thresholds.to(torch.float64).cpu(), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)])
    if maps.shape != masks.shape:
        raise ValueError(f"Expected maps and masks of one shape, got {tuple(maps.shape)} and {tuple(masks.shape)}.")
    values = maps.detach().to(torch.float64).cpu().flatten()
    masks = masks.detach().cpu().flatten()
    # Binned as numpy.histogram bins (the reference's call), in C: a guess on a uniform grid, settled on the edges.
    labels = (masks == 1).to(torch.uint8) + 2 * (masks == 0).to(torch.uint8)
    foreground, background = np.zeros(len(edges) - 1, np.int64), np.zeros(len(edges) - 1, np.int64)
    pixel_counts(values.contiguous().numpy(), labels.numpy(), edges.numpy(), foreground, background)
    return torch.from_numpy(foreground).double(), torch.from_numpy(background).double()


def precision_recall_from_histograms(foreground: Tensor, background: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and which entries have positive predictions, from :func:`pixel_histograms` counts.

    Entries run from the highest score bin to the lowest, as in the reference (reversed cumulative sums).

    Returns:
        ``precision``, ``recall`` (float64 ``(T + 2,)``; precision is NaN where nothing is predicted positive)
        and the bool mask of entries with at least one positive prediction.
    """
    tp = foreground.flip(0).cumsum(0)
    fn = foreground.sum() - tp
    fp = background.flip(0).cumsum(0)
    if foreground.sum() <= 0:
        raise ValueError("Expected at least one object pixel (mask == 1) for PxAP, got none.")
    predicted = (tp + fp) > 0
    precision = tp / torch.where(predicted, tp + fp, torch.ones_like(tp))
    precision = torch.where(predicted, precision, torch.full_like(precision, float("nan")))
    return precision, tp / (tp + fn), predicted


def average_precision_from_histograms(foreground: Tensor, background: Tensor) -> Tensor:
    """PxAP ``sum(precision[1:] * diff(recall))`` over entries with positive predictions, a fraction."""
    precision, recall, predicted = precision_recall_from_histograms(foreground, background)
    terms = precision[1:] * recall.diff()
    return torch.where(predicted[1:], terms, torch.zeros_like(terms)).sum()


def pixel_average_precision(
    cams: Tensor,
    masks: Tensor,
    *,
    image_size: Sequence[int] | None = None,
    cam_curve_interval: float = 0.01,
    eval_size: Sequence[int] = EVAL_SIZE,
    normalized: bool = False,
) -> Tensor:
    """PxAP: the area under the pixel precision-recall curve of the score maps against object masks.

    Args:
        cams: ``(B, h, w)`` raw CAMs (or normalised maps at ``eval_size`` with ``normalized=True``).
        masks: ``(B, H, W)`` integer masks at ``image_size``: 1 object, 0 background, other values ignored.
        image_size: ``(H, W)`` of the masks; None means ``eval_size``.
        cam_curve_interval: spacing of the score thresholds.
        eval_size: ``(H, W)`` the maps (and masks, nearest neighbour) are resized to.
        normalized: the maps are already normalised score maps at ``eval_size``.

    Returns:
        Float64 scalar tensor, a fraction in ``[0, 1]``.

    Example:
        >>> cams = torch.zeros(1, 8, 8)
        >>> cams[0, 2:6, 2:6] = 1.0
        >>> masks = (cams > 0).to(torch.uint8)
        >>> pixel_average_precision(cams, masks, eval_size=(8, 8)).item()
        1.0
    """
    if masks is None:
        raise ValueError("Expected object `masks`, got None.")
    maps, _, masks = prepare_inputs(
        cams, masks=masks, image_size=image_size, eval_size=eval_size, normalized=normalized
    )
    return average_precision_from_histograms(*pixel_histograms(maps, masks, cam_thresholds(cam_curve_interval)))

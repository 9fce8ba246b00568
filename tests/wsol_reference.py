"""An independent OpenCV reference for the WSOL metrics, written from the conventions of Choe et al. (CVPR 2020).

It follows the evaluator of clovaai/wsolevaluation step by step, in NumPy and OpenCV, one image and one CAM
threshold at a time: slow and obviously faithful, which is what a test oracle should be. It shares no code with
``lightning_cam``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def thresholds(interval: float) -> np.ndarray:
    """CAM thresholds ``[0, interval, 2 * interval, ...)`` below 1, as ``numpy.arange`` gives them."""
    return np.arange(0, 1, interval)


def scoremap(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a raw CAM to ``size = (H, W)`` with OpenCV's bicubic filter in float64, then min-max normalise.

    A map with a NaN, or a constant map, becomes all zeros.
    """
    height, width = size
    cam = cv2.resize(np.asarray(cam, dtype=np.float64), (width, height), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam = cam - cam.min()
    return cam / cam.max()


def resize_box(box: Sequence[float], image_size: tuple[int, int], eval_size: tuple[int, int]) -> list[int]:
    """Rescale a box ``x0, y0, x1, y1`` from an ``(H, W)`` image to the ``(H, W)`` evaluation size, truncating."""
    x0, y0, x1, y1 = map(float, box)
    image_h, image_w = map(float, image_size)
    new_h, new_w = map(float, eval_size)
    return [int(x0 * new_w / image_w), int(y0 * new_h / image_h), int(x1 * new_w / image_w), int(y1 * new_h / image_h)]


def estimated_boxes(score: np.ndarray, threshold: float, multi_contour: bool) -> np.ndarray:
    """Boxes ``(n, 4)`` of the contours of a ``[0, 1]`` score map thresholded at ``threshold`` of its maximum."""
    height, width = score.shape
    image = np.expand_dims((score * 255).astype(np.uint8), 2)
    _, binary = cv2.threshold(image, int(threshold * np.max(image)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.asarray([[0, 0, 0, 0]])
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.asarray(boxes)


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU ``(n, m)`` of integer boxes with inclusive pixel ends (``+ 1``); degenerate unions give 0."""
    a = np.asarray(boxes_a, dtype=np.int64)[:, None, :]
    b = np.asarray(boxes_b, dtype=np.int64)[None, :, :]
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    degenerate = union <= 0
    out = inter / np.where(degenerate, 1, union)
    out[degenerate] = 0
    return out


def best_ious(score: np.ndarray, gt_boxes: np.ndarray, cam_thresholds: np.ndarray, multi_contour: bool) -> np.ndarray:
    """Best IoU ``(T,)`` between the estimated boxes at each CAM threshold and the ground-truth boxes."""
    return np.asarray([iou(estimated_boxes(score, t, multi_contour), gt_boxes).max() for t in cam_thresholds])


def max_box_accuracy(
    scores: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    cam_thresholds: np.ndarray,
    iou_thresholds: Sequence[float],
    multi_contour: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-IoU-threshold MaxBoxAcc ``(n_iou,)`` and the box accuracy curves ``(n_iou, T)``, as fractions."""
    correct = np.zeros((len(iou_thresholds), len(cam_thresholds)))
    for score, boxes in zip(scores, gt_boxes, strict=True):
        best = best_ious(score, boxes, cam_thresholds, multi_contour)
        for k, iou_threshold in enumerate(iou_thresholds):
            correct[k, best >= iou_threshold] += 1
    curves = correct / len(scores)
    return curves.max(1), curves


def localization_correct(score: np.ndarray, gt_boxes: np.ndarray, threshold: float, iou_threshold: float) -> bool:
    """GT-known localisation of one image: the largest contour's box at ``threshold`` has IoU >= ``iou_threshold``."""
    return bool(iou(estimated_boxes(score, threshold, multi_contour=False), gt_boxes).max() >= iou_threshold)


def pixel_precision_recall(
    scores: Sequence[np.ndarray], masks: Sequence[np.ndarray], cam_thresholds: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """PxAP (a fraction) and the precision / recall arrays of the score histograms, reference order (high first)."""
    edges = np.append(cam_thresholds, [1.0, 2.0, 3.0])
    true_hist = np.zeros(len(edges) - 1)
    false_hist = np.zeros(len(edges) - 1)
    for score, mask in zip(scores, masks, strict=True):
        true_hist += np.histogram(score[mask == 1], bins=edges)[0]
        false_hist += np.histogram(score[mask == 0], bins=edges)[0]
    tp = true_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    fp = false_hist[::-1].cumsum()
    if ((tp + fn) <= 0).all() or ((tp + fp) <= 0).all():
        raise RuntimeError("no positive ground truth or no positive prediction")
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    ap = (precision[1:] * np.diff(recall))[nonzero[1:]].sum()
    return float(ap), precision, recall

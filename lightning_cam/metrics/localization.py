"""Top-1 and GT-known localization accuracy (the CAM paper's protocol) as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_cam.functional.wsol import _quantized_box_scores
from lightning_cam.metrics._base import WSOLMetricBase
from lightning_cam.metrics.box_accuracy import best_accuracies


def check_labels(preds: Tensor | None, labels: Tensor | None, batch_size: int) -> tuple[Tensor, Tensor] | None:
    """Validate predicted and true classes ``(B,)``; None when neither is given."""
    if preds is None and labels is None:
        return None
    if preds is None or labels is None:
        raise ValueError("Expected both `preds` and `labels` for top-1 localization, got only one of them.")
    preds, labels = torch.as_tensor(preds), torch.as_tensor(labels)
    if preds.ndim == 2:
        preds = preds.argmax(1)
    if preds.shape != (batch_size,) or labels.shape != (batch_size,):
        raise ValueError(
            f"Expected `preds` ((B,) classes or (B, C) scores) and `labels` (B,) for B={batch_size} images, got "
            f"{tuple(preds.shape)} and {tuple(labels.shape)}."
        )
    return preds.detach().cpu(), labels.detach().cpu()


def thresholds_with_loc(thresholds: Tensor, loc_threshold: float) -> Tensor:
    """The curve's CAM thresholds followed by the fixed ``loc_threshold``: the columns of the localization counts."""
    return torch.cat([thresholds, torch.tensor([loc_threshold], dtype=torch.float64)])


def add_localization_hits(
    metric: Metric, largest_iou: Tensor, classes: tuple[Tensor, Tensor] | None, iou_threshold: float
) -> None:
    """Add a batch's GT-known hits (largest contour's IoU reaches the threshold) and top-1 hits (also classified).

    ``largest_iou`` is ``(B, T + 1)`` at :func:`thresholds_with_loc`; the metric's ``gt_known``, ``top1``,
    ``num_images`` and ``num_classified`` states are summed into.
    """
    gt_known = largest_iou >= iou_threshold
    metric.gt_known += gt_known.sum(0).to(metric.gt_known.device)
    metric.num_images += len(largest_iou)
    if classes is not None:
        preds, labels = classes
        top1 = gt_known & (preds == labels)[:, None]
        metric.top1 += top1.sum(0).to(metric.top1.device)
        metric.num_classified += len(largest_iou)


class LocalizationAccuracy(WSOLMetricBase):
    """GT-known and top-1 localization accuracy, at a fixed CAM threshold and at the MaxBoxAcc-optimal one.

    The box is the largest contour's box of the ground-truth class's CAM thresholded at ``loc_threshold`` of
    its maximum (0.2 in the CAM paper). GT-known: its IoU with a GT box reaches ``iou_threshold``. Top-1: that,
    and the top-1 prediction is the true class (so the predicted class's CAM is the one scored).

    Args:
        loc_threshold: fraction of the CAM's maximum in ``[0, 1)``.
        iou_threshold: IoU needed for a correct box.
        cam_curve_interval: spacing of the CAM thresholds searched for the best threshold.
        eval_size: ``(H, W)`` CAMs are resized to.
        normalized: ``update`` receives normalised score maps at ``eval_size``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> metric = LocalizationAccuracy()
        >>> cams = torch.zeros(2, 7, 7)
        >>> cams[:, 2:5, 2:5] = 1.0
        >>> boxes = [torch.tensor([[64, 64, 160, 160]])] * 2
        >>> metric.update(cams, boxes, preds=torch.tensor([1, 0]), labels=torch.tensor([1, 1]))
        >>> results = metric.compute()
        >>> results["gt_known_loc"].item(), results["top1_loc"].item(), results["top1_loc_at_best"].item()
        (1.0, 0.5, 0.5)
    """

    def __init__(
        self,
        loc_threshold: float = 0.2,
        iou_threshold: float = 0.5,
        cam_curve_interval: float = 0.01,
        eval_size: Sequence[int] = (224, 224),
        normalized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(cam_curve_interval, eval_size, normalized, **kwargs)
        if not isinstance(loc_threshold, int | float) or not 0 <= loc_threshold < 1:
            raise ValueError(f"Expected `loc_threshold` in [0, 1), got {loc_threshold!r}.")
        if not isinstance(iou_threshold, int | float) or not 0 < iou_threshold <= 1:
            raise ValueError(f"Expected `iou_threshold` in (0, 1], got {iou_threshold!r}.")
        self.loc_threshold = float(loc_threshold)
        self.iou_threshold = float(iou_threshold)
        # One extra column after the curve's thresholds: the fixed loc_threshold.
        size = len(self.thresholds) + 1
        self.add_state("gt_known", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("top1", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_classified", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def largest_thresholds(self) -> Tensor:
        """The curve's CAM thresholds followed by ``loc_threshold``."""
        return thresholds_with_loc(self.thresholds, self.loc_threshold)

    def update(
        self,
        cams: Tensor,
        boxes: Sequence[Tensor],
        preds: Tensor | None = None,
        labels: Tensor | None = None,
        image_size: Sequence[int] | None = None,
    ) -> None:
        """Add a batch.

        Args:
            cams: ``(B, h, w)`` CAMs of the ground-truth class.
            boxes: per image an ``(n_i, 4)`` tensor of GT boxes in ``image_size`` pixels.
            preds: ``(B,)`` predicted classes or ``(B, C)`` scores; with ``labels``, enables top-1 loc.
            labels: ``(B,)`` true classes.
            image_size: ``(H, W)`` the boxes refer to; None means ``eval_size``.
        """
        if boxes is None:
            raise ValueError(f"{type(self).__name__}.update needs ground-truth `boxes`, got None.")
        score, gt, _ = self._inputs(cams, boxes, None, image_size, quantized=True)
        classes = check_labels(preds, labels, len(gt))
        scores = _quantized_box_scores(score.quantized, score.peaks, gt, self.largest_thresholds(), all_contours=False)
        add_localization_hits(self, scores.largest_contour, classes, self.iou_threshold)

    def compute(self) -> dict[str, Tensor]:
        """``gt_known_loc``, ``top1_loc`` (with preds) at ``loc_threshold``; ``*_at_best`` and ``best_threshold``."""
        self._require_updates(self.num_images, "boxes")
        return localization_results(self.gt_known, self.top1, self.num_images, self.num_classified, self.thresholds)


def localization_results(
    gt_known: Tensor, top1: Tensor, num_images: Tensor, num_classified: Tensor, thresholds: Tensor
) -> dict[str, Tensor]:
    """Named results from hit counts ``(T + 1,)`` at the CAM thresholds and, last, at the fixed loc threshold.

    The best threshold is the first one of highest GT-known accuracy, i.e. MaxBoxAcc's optimal threshold.
    """
    _, index = best_accuracies(gt_known[None, :-1], num_images)
    best = int(index[0])
    results = {"gt_known_loc": gt_known[-1].double() / num_images}
    if int(num_classified):
        results["top1_loc"] = top1[-1].double() / num_classified
    results["best_threshold"] = thresholds[best].to(gt_known.device)
    results["gt_known_loc_at_best"] = gt_known[best].double() / num_images
    if int(num_classified):
        results["top1_loc_at_best"] = top1[best].double() / num_classified
    return results

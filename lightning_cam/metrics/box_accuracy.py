"""MaxBoxAcc and MaxBoxAccV2 (Choe et al., CVPR 2020) as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_cam.functional.wsol import _quantized_box_scores
from lightning_cam.metrics._base import WSOLMetricBase, iou_tag


def check_iou_thresholds(iou_thresholds: Sequence[float]) -> tuple[float, ...]:
    """Validate IoU thresholds: a non-empty sequence of numbers in ``(0, 1]``."""
    values = tuple(iou_thresholds)
    if not values or not all(isinstance(v, int | float) and 0 < v <= 1 for v in values):
        raise ValueError(f"Expected `iou_thresholds` as numbers in (0, 1], got {iou_thresholds!r}.")
    return tuple(float(v) for v in values)


class MaxBoxAccuracy(WSOLMetricBase):
    """Best box accuracy over CAM thresholds, averaged over IoU thresholds: MaxBoxAccV2, or MaxBoxAcc with v1().

    At each CAM threshold an image is correct when the best IoU between its estimated boxes and its GT boxes
    reaches the IoU threshold; the metric is the maximum over CAM thresholds of the fraction of correct images,
    averaged over the IoU thresholds. States are per-threshold counts reduced with ``sum``, so a distributed
    run gives exactly the single-process numbers.

    Args:
        iou_thresholds: IoU thresholds; ``(0.3, 0.5, 0.7)`` for MaxBoxAccV2.
        multi_contour: estimate boxes from all contours (V2) or only the largest (MaxBoxAcc).
        cam_curve_interval: spacing of the CAM thresholds.
        eval_size: ``(H, W)`` CAMs are resized to.
        normalized: ``update`` receives normalised score maps at ``eval_size``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> metric = MaxBoxAccuracy(cam_curve_interval=0.1)
        >>> cams = torch.zeros(2, 7, 7)
        >>> cams[:, 2:5, 2:5] = 1.0
        >>> metric.update(cams, [torch.tensor([[64, 64, 160, 160]]), torch.tensor([[0, 0, 40, 40]])])
        >>> metric.compute()["maxboxacc_v2"].item()
        0.5
    """

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
        multi_contour: bool = True,
        cam_curve_interval: float = 0.01,
        eval_size: Sequence[int] = (224, 224),
        normalized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(cam_curve_interval, eval_size, normalized, **kwargs)
        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        self.multi_contour = multi_contour
        shape = (len(self.iou_thresholds), len(self.thresholds))
        self.add_state("correct", default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @classmethod
    def v1(cls, **kwargs: Any) -> MaxBoxAccuracy:
        """MaxBoxAcc of the paper: IoU 0.5 only, largest contour only."""
        return cls(iou_thresholds=(0.5,), multi_contour=False, **kwargs)

    def update(self, cams: Tensor, boxes: Sequence[Tensor], image_size: Sequence[int] | None = None) -> None:
        """Add a batch.

        Args:
            cams: ``(B, h, w)`` CAMs of the ground-truth class.
            boxes: per image an ``(n_i, 4)`` tensor of GT boxes ``x0, y0, x1, y1`` in ``image_size`` pixels.
            image_size: ``(H, W)`` the boxes refer to; None means ``eval_size``.
        """
        if boxes is None:
            raise ValueError(f"{type(self).__name__}.update needs ground-truth `boxes`, got None.")
        score, gt, _ = self._inputs(cams, boxes, None, image_size, quantized=True)
        scores = _quantized_box_scores(
            score.quantized,
            score.peaks,
            gt,
            self.thresholds,
            all_contours=self.multi_contour,
            largest_contour=not self.multi_contour,
        )
        best = scores.all_contours if self.multi_contour else scores.largest_contour
        self.correct += correct_counts(best, self.iou_thresholds).to(self.correct.device)
        self.num_images += len(gt)

    def compute(self) -> dict[str, Tensor]:
        """The mean over IoU thresholds and its parts.

        Returns:
            ``maxboxacc_v2`` (all contours) or ``maxboxacc`` (largest contour), ``<name>_iouNN`` and
            ``best_threshold_iouNN`` per IoU threshold.
        """
        self._require_updates(self.num_images, "boxes")
        name = "maxboxacc_v2" if self.multi_contour else "maxboxacc"
        return box_accuracy_results(self.correct, self.num_images, self.thresholds, self.iou_thresholds, name)

    def curves(self) -> dict[str, Tensor]:
        """``thresholds (T,)`` and ``box_accuracy (n_iou, T)``: the accuracy at every CAM threshold."""
        with self.sync_context(should_sync=self._to_sync):
            self._require_updates(self.num_images, "boxes")
            return {"thresholds": self.thresholds.clone(), "box_accuracy": self.correct.double() / self.num_images}


def correct_counts(best_iou: Tensor, iou_thresholds: Sequence[float]) -> Tensor:
    """Correct images ``(n_iou, T)`` from best IoUs ``(B, T)``."""
    iou = torch.tensor(iou_thresholds, dtype=best_iou.dtype)
    return (best_iou[None] >= iou[:, None, None]).sum(1)


def box_accuracy_results(
    correct: Tensor, num_images: Tensor, thresholds: Tensor, iou_thresholds: Sequence[float], name: str = "maxboxacc"
) -> dict[str, Tensor]:
    """Named results: ``name`` (mean of per-IoU best accuracies), ``{name}_iouNN``, ``best_threshold_iouNN``."""
    best, index = best_accuracies(correct, num_images)
    best_thresholds = thresholds.to(best.device)[index]
    results = {name: best.mean()}
    for k, iou in enumerate(iou_thresholds):
        results[f"{name}_{iou_tag(iou)}"] = best[k]
    for k, iou in enumerate(iou_thresholds):
        results[f"best_threshold_{iou_tag(iou)}"] = best_thresholds[k]
    return results


def best_accuracies(correct: Tensor, num_images: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of correct counts ``(n, T)``: the best accuracy and the index of the first threshold reaching it."""
    accuracy = correct.double() / num_images
    # argmax keeps the first maximum, as numpy.argmax in the reference.
    index = accuracy.argmax(1)
    return accuracy.gather(1, index[:, None])[:, 0], index

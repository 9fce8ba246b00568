"""All WSOL metrics from one pass over each batch: what CAMCallback logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_cam.functional.wsol import (
    _quantized_box_scores,
    average_precision_from_histograms,
    pixel_histograms,
    precision_recall_from_histograms,
)
from lightning_cam.metrics._base import WSOLMetricBase, iou_tag
from lightning_cam.metrics.box_accuracy import best_accuracies, check_iou_thresholds, correct_counts
from lightning_cam.metrics.localization import (
    add_localization_hits,
    check_labels,
    localization_results,
    thresholds_with_loc,
)

V1_IOU = 0.5


class WSOLMetrics(WSOLMetricBase):
    """MaxBoxAccV2, MaxBoxAcc, top-1 / GT-known localization and PxAP, sharing one resize and one contour pass.

    Each batch is resized, normalised and swept over all CAM thresholds once; the box accuracy of every rule
    comes from that single pass. Numbers equal those of :class:`MaxBoxAccuracy` (V2 and ``v1()``),
    :class:`LocalizationAccuracy` and :class:`PixelAveragePrecision` run separately.

    Args:
        iou_thresholds: IoU thresholds of MaxBoxAccV2.
        cam_curve_interval: spacing of the CAM thresholds.
        loc_threshold: CAM threshold (fraction of the maximum) of top-1 / GT-known loc.
        eval_size: ``(H, W)`` CAMs, boxes and masks are brought to.
        normalized: ``update`` receives normalised score maps at ``eval_size``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    ``compute()`` returns fractions: ``maxboxacc_v2`` and ``maxboxacc_v2_iouNN``; ``maxboxacc`` (IoU 0.5, largest
    contour) and its ``best_threshold``; ``gt_known_loc``, ``top1_loc`` (needs preds and labels) and both
    ``*_at_best``; ``pxap`` (needs masks). Results whose inputs never came are left out.

    Example:
        >>> metrics = WSOLMetrics(cam_curve_interval=0.1)
        >>> cams = torch.zeros(2, 7, 7)
        >>> cams[:, 2:5, 2:5] = 1.0
        >>> boxes = [torch.tensor([[64, 64, 160, 160]]), torch.tensor([[0, 0, 40, 40]])]
        >>> metrics.update(cams, boxes=boxes, preds=torch.tensor([0, 1]), labels=torch.tensor([0, 0]))
        >>> results = metrics.compute()
        >>> results["maxboxacc_v2"].item(), results["top1_loc"].item()
        (0.5, 0.5)
    """

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
        cam_curve_interval: float = 0.01,
        loc_threshold: float = 0.2,
        eval_size: Sequence[int] = (224, 224),
        normalized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(cam_curve_interval, eval_size, normalized, **kwargs)
        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        if not isinstance(loc_threshold, int | float) or not 0 <= loc_threshold < 1:
            raise ValueError(f"Expected `loc_threshold` in [0, 1), got {loc_threshold!r}.")
        self.loc_threshold = float(loc_threshold)
        num_thresholds = len(self.thresholds)
        counts = {
            "v2_correct": (len(self.iou_thresholds), num_thresholds),
            "gt_known": (num_thresholds + 1,),
            "top1": (num_thresholds + 1,),
            "foreground": (num_thresholds + 2,),
            "background": (num_thresholds + 2,),
            "num_images": (),
            "num_classified": (),
        }
        for name, shape in counts.items():
            self.add_state(name, default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        cams: Tensor,
        boxes: Sequence[Tensor] | None = None,
        masks: Tensor | None = None,
        preds: Tensor | None = None,
        labels: Tensor | None = None,
        image_size: Sequence[int] | None = None,
    ) -> None:
        """Add a batch.

        Args:
            cams: ``(B, h, w)`` CAMs of the ground-truth class.
            boxes: per image an ``(n_i, 4)`` tensor of GT boxes ``x0, y0, x1, y1`` in ``image_size`` pixels.
            masks: ``(B, H, W)`` integer masks at ``image_size``: 1 object, 0 background, other values ignored.
            preds: ``(B,)`` predicted classes or ``(B, C)`` scores; with ``labels``, enables top-1 loc.
            labels: ``(B,)`` true classes.
            image_size: ``(H, W)`` the boxes and masks refer to; None means ``eval_size``.
        """
        if boxes is None and masks is None:
            raise ValueError("Expected ground-truth `boxes` or `masks` (or both), got neither.")
        score, gt, masks = self._inputs(cams, boxes, masks, image_size, quantized=boxes is not None)
        if gt is not None:
            classes = check_labels(preds, labels, len(gt))
            largest = thresholds_with_loc(self.thresholds, self.loc_threshold)
            scores = _quantized_box_scores(
                score.quantized, score.peaks, gt, self.thresholds, largest_thresholds=largest
            )
            self.v2_correct += correct_counts(scores.all_contours, self.iou_thresholds).to(self.v2_correct.device)
            add_localization_hits(self, scores.largest_contour, classes, V1_IOU)
        if masks is not None:
            foreground, background = pixel_histograms(score.maps, masks, self.thresholds)
            self.foreground += foreground.long().to(self.foreground.device)
            self.background += background.long().to(self.background.device)

    def compute(self) -> dict[str, Tensor]:
        """The results named in the class docstring, as float64 scalar tensors."""
        if int(self.num_images) == 0 and int(self.foreground.sum()) == 0:
            raise RuntimeError("WSOLMetrics.compute() needs at least one update with boxes or object masks, got none.")
        results: dict[str, Tensor] = {}
        if int(self.num_images):
            best, _ = best_accuracies(self.v2_correct, self.num_images)
            results["maxboxacc_v2"] = best.mean()
            results.update({f"maxboxacc_v2_{iou_tag(t)}": best[k] for k, t in enumerate(self.iou_thresholds)})
            loc = localization_results(self.gt_known, self.top1, self.num_images, self.num_classified, self.thresholds)
            # MaxBoxAcc is the best GT-known accuracy at IoU 0.5 over thresholds, with the largest contour.
            results["maxboxacc"] = loc["gt_known_loc_at_best"]
            results.update(loc)
        if int(self.foreground.sum()):
            results["pxap"] = average_precision_from_histograms(self.foreground.double(), self.background.double())
        return results

    def curves(self) -> dict[str, Tensor]:
        """Curves: ``thresholds (T,)``, ``box_accuracy (n_iou, T)`` of MaxBoxAccV2, pixel ``precision``/``recall``.

        Precision and recall (masks only) run from the highest score bin down. Under DDP this is collective: call
        it on every process.
        """
        with self.sync_context(should_sync=self._to_sync):
            curves = {"thresholds": self.thresholds.clone()}
            if int(self.num_images):
                curves["box_accuracy"] = self.v2_correct.double().cpu() / int(self.num_images)
            if int(self.foreground.sum()):
                precision, recall, _ = precision_recall_from_histograms(
                    self.foreground.double().cpu(), self.background.double().cpu()
                )
                curves.update(precision=precision, recall=recall)
        return curves

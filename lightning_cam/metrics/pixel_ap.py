"""Pixel average precision (PxAP, Choe et al., CVPR 2020) as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_cam.functional.wsol import (
    average_precision_from_histograms,
    pixel_histograms,
    precision_recall_from_histograms,
)
from lightning_cam.metrics._base import WSOLMetricBase


class PixelAveragePrecision(WSOLMetricBase):
    """PxAP: area under the precision-recall curve of CAM pixels against object masks, over the whole dataset.

    Pixel counts per score bin are the states (summed across processes), so the curve is exact for the whole
    dataset, not an average of per-batch curves.

    Args:
        cam_curve_interval: spacing of the score thresholds.
        eval_size: ``(H, W)`` CAMs and masks are resized to.
        normalized: ``update`` receives normalised score maps at ``eval_size``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> metric = PixelAveragePrecision(eval_size=(8, 8))
        >>> cams = torch.zeros(1, 8, 8)
        >>> cams[0, 2:6, 2:6] = 1.0
        >>> metric.update(cams, (cams > 0).to(torch.uint8))
        >>> metric.compute()["pxap"].item()
        1.0
    """

    def __init__(
        self,
        cam_curve_interval: float = 0.01,
        eval_size: Sequence[int] = (224, 224),
        normalized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(cam_curve_interval, eval_size, normalized, **kwargs)
        bins = len(self.thresholds) + 2
        self.add_state("foreground", default=torch.zeros(bins, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("background", default=torch.zeros(bins, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: Tensor, masks: Tensor, image_size: Sequence[int] | None = None) -> None:
        """Add a batch.

        Args:
            cams: ``(B, h, w)`` CAMs of the ground-truth class.
            masks: ``(B, H, W)`` integer masks at ``image_size``: 1 object, 0 background, other values ignored.
            image_size: ``(H, W)`` of the masks; None means ``eval_size``.
        """
        if masks is None:
            raise ValueError(f"{type(self).__name__}.update needs object `masks`, got None.")
        score, _, masks = self._inputs(cams, None, masks, image_size, quantized=False)
        self.add_histograms(score.maps, masks)

    def add_histograms(self, maps: Tensor, masks: Tensor) -> None:
        """Accumulate the pixel histograms of prepared maps and masks at evaluation size."""
        foreground, background = pixel_histograms(maps, masks, self.thresholds)
        self.foreground += foreground.long().to(self.foreground.device)
        self.background += background.long().to(self.background.device)

    def compute(self) -> dict[str, Tensor]:
        """``pxap``, a fraction."""
        self._require_updates(self.foreground.sum(), "object pixels in the masks")
        return {"pxap": average_precision_from_histograms(self.foreground.double(), self.background.double())}

    def curves(self) -> dict[str, Tensor]:
        """``precision`` and ``recall`` from the highest score bin down (precision NaN where nothing is positive)."""
        with self.sync_context(should_sync=self._to_sync):
            self._require_updates(self.foreground.sum(), "object pixels in the masks")
            precision, recall, _ = precision_recall_from_histograms(self.foreground.double(), self.background.double())
        return {"precision": precision, "recall": recall}

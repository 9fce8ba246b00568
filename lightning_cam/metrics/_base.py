"""What every WSOL metric shares: its CAM thresholds, input preparation and a single non-finite warning."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_cam.functional.wsol import EVAL_SIZE, _check_size, _prepare, _ScoreMaps, cam_thresholds


class WSOLMetricBase(Metric):
    """Base of the WSOL metrics: thresholds, evaluation size and validated inputs at that size.

    Args:
        cam_curve_interval: spacing of the CAM thresholds ``numpy.arange(0, 1, interval)``.
        eval_size: ``(H, W)`` CAMs are resized to (224x224 in the WSOL protocol).
        normalized: ``update`` receives score maps already resized to ``eval_size`` and normalised to ``[0, 1]``.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        cam_curve_interval: float = 0.01,
        eval_size: Sequence[int] = EVAL_SIZE,
        normalized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cam_curve_interval = cam_curve_interval
        self.thresholds = cam_thresholds(cam_curve_interval)
        self.eval_size = _check_size(tuple(eval_size), "eval_size")
        self.normalized = normalized
        self._warned_non_finite = False

    def _inputs(
        self,
        cams: Tensor,
        boxes: Sequence[Tensor] | None,
        masks: Tensor | None,
        image_size: Sequence[int] | None,
        *,
        quantized: bool,
    ) -> tuple[_ScoreMaps, list[Tensor] | None, Tensor | None]:
        # Float maps only for the masks (PxAP); boxes need only the quantised maps.
        if not isinstance(cams, Tensor):
            raise TypeError(f"Expected `cams` as a (B, h, w) tensor, got {type(cams).__name__}.")
        if cams.ndim == 4 and cams.shape[1] == 1:
            cams = cams[:, 0]
        if cams.ndim != 3:
            raise ValueError(f"Expected `cams` of shape (B, h, w), got {tuple(cams.shape)}.")
        if cams.shape[0] == 0:
            raise ValueError("Expected at least one image in `update`, got an empty batch.")
        if not self._warned_non_finite and not bool(torch.isfinite(cams).all()):
            self._warned_non_finite = True
            warnings.warn(
                f"{type(self).__name__}: some CAMs have NaN/inf values; they are scored as all-zero maps, as the "
                "reference evaluator does (warned once).",
                RuntimeWarning,
                stacklevel=3,
            )
        return _prepare(
            cams,
            boxes,
            masks,
            image_size=image_size,
            eval_size=self.eval_size,
            normalized=self.normalized,
            warn_non_finite=False,
            float_maps=masks is not None,
            quantized=quantized,
        )

    def _require_updates(self, count: Tensor, what: str) -> None:
        if int(count) == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() needs at least one update with {what}, got none.")


def iou_tag(iou_threshold: float) -> str:
    """``0.5 -> "iou50"``: the suffix of per-IoU result names."""
    return f"iou{round(iou_threshold * 100):02d}"

"""WSOL metrics as torchmetrics Metrics: MaxBoxAcc(V2), top-1 / GT-known localization, PxAP."""

from lightning_cam.metrics.box_accuracy import MaxBoxAccuracy
from lightning_cam.metrics.localization import LocalizationAccuracy
from lightning_cam.metrics.pixel_ap import PixelAveragePrecision
from lightning_cam.metrics.wsol_metrics import WSOLMetrics

__all__ = ["LocalizationAccuracy", "MaxBoxAccuracy", "PixelAveragePrecision", "WSOLMetrics"]

"""lightning_cam: class activation maps and weakly supervised localization metrics while you train."""

from lightning_cam.attribution import CAMAttribution
from lightning_cam.callbacks import CAMCallback
from lightning_cam.heads import CAMOutput, FeatureCapture, GAPHead, find_gap_head
from lightning_cam.models import GAPClassifier, convert_to_gap, inception_v3_gap, resnet50_gap, vgg16_gap

__version__ = "0.1.0"

__all__ = [
    "CAMAttribution",
    "CAMCallback",
    "CAMOutput",
    "FeatureCapture",
    "GAPClassifier",
    "GAPHead",
    "__version__",
    "convert_to_gap",
    "find_gap_head",
    "inception_v3_gap",
    "resnet50_gap",
    "vgg16_gap",
]

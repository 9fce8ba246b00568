"""Small models and data shared by the tests."""

from torch import nn

from lightning_cam import GAPClassifier, GAPHead


def tiny_cnn(num_classes: int = 4, pool: str = "avg", width: int = 8) -> GAPClassifier:
    backbone = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width * 2, 3, padding=1, stride=2),
        nn.ReLU(),
    )
    return GAPClassifier(backbone, GAPHead(width * 2, num_classes, pool=pool))

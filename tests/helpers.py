"""Small models and data shared by the tests."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lightning_cam import GAPClassifier, GAPHead
from lightning_cam.data import SyntheticWSOLDataset, wsol_collate


def tiny_cnn(num_classes: int = 4, pool: str = "avg", width: int = 8) -> GAPClassifier:
    backbone = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width * 2, 3, padding=1, stride=2),
        nn.ReLU(),
    )
    return GAPClassifier(backbone, GAPHead(width * 2, num_classes, pool=pool))


class CAMModule(L.LightningModule):
    """A tiny GAP classifier trained on dict batches, as a user's LightningModule would be."""

    def __init__(self, num_classes: int = 3, pool: str = "avg", lr: float = 0.05) -> None:
        super().__init__()
        self.model = tiny_cnn(num_classes=num_classes, pool=pool)
        self.lr = lr

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self(batch["image"]), batch["label"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val_loss", F.cross_entropy(self(batch["image"]), batch["label"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def synthetic_loader(num_samples: int = 16, batch_size: int = 4, seed: int = 0, shuffle: bool = False) -> DataLoader:
    dataset = SyntheticWSOLDataset(num_samples, image_size=32, num_classes=3, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=wsol_collate)

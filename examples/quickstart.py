"""Quick start: train a tiny GAP network with Lightning and save its class activation maps as images.

Two classes (discs and squares) drawn at random places on noise; after a few seconds of training the CAM of
the predicted class lights up the shape. Run: ``python examples/quickstart.py [--out runs/quickstart]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import save_image

from lightning_cam import GAPClassifier, GAPHead
from lightning_cam.functional import overlay_cams


def make_shapes(n: int, size: int = 32, seed: int = 0) -> TensorDataset:
    """Discs (label 0) and squares (label 1) of random size and place on uniform noise."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g) * 0.4
    labels = torch.randint(0, 2, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i in range(n):
        r = int(torch.randint(4, size // 4, (1,), generator=g))
        cy, cx = (int(v) for v in torch.randint(r, size - r, (2,), generator=g))
        if labels[i] == 0:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            inside = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
        images[i, :, inside] = torch.rand(3, 1, generator=g) * 0.4 + 0.6
    return TensorDataset(images, labels)


class ShapesClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        )  # fmt: skip
        self.model = GAPClassifier(backbone, GAPHead(64, 2))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self.model(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    L.seed_everything(0)
    module = ShapesClassifier()
    trainer = L.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False, accelerator="cpu")
    trainer.fit(module, DataLoader(make_shapes(2000), batch_size=64, shuffle=True))

    images, labels = make_shapes(8, seed=1).tensors
    module.model.eval()
    with torch.no_grad():
        logits, cams = module.model(images, return_cams=True, target=None)
    predicted = logits.argmax(1)
    overlays = overlay_cams(images, cams[torch.arange(8), predicted], alpha=0.5)
    args.out.mkdir(parents=True, exist_ok=True)
    save_image(torch.cat([images, overlays.float() / 255]), args.out / "cams.png", nrow=8)
    accuracy = (predicted == labels).float().mean().item()
    print(f"accuracy on 8 new images: {accuracy:.0%}; CAM overlays (top: inputs) saved to {args.out / 'cams.png'}")


if __name__ == "__main__":
    main()

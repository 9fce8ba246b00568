"""What CAMCallback adds to Lightning's validation loop: the same validation run with and without it.

A CAM-ready ResNet-50 (``convert_to_gap``, random weights) validates on generated 224x224 WSOL images with
boxes and masks. Runs with and without the callback alternate, round by round, in one process; the table
reports the median validation time and the ratio. The callback computes CAMs from the features the model's
forward already produced, MaxBoxAccV2 / MaxBoxAcc / top-1 and GT-known loc / PxAP over every validation image,
and renders and logs the panel and the curve figure to TensorBoard.

Run: ``python benchmarks/bench_callback.py [--images 64] [--batch 16] [--rounds 3] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from torchvision.models import resnet50

from lightning_cam import CAMCallback, convert_to_gap
from lightning_cam.data import SyntheticWSOLDataset, wsol_collate


class Classifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = convert_to_gap(resnet50(num_classes=6))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        self.log("val_acc", (logits.argmax(1) == batch["label"]).float().mean(), batch_size=len(logits))


def validate(module: Classifier, loader: DataLoader, device: str, with_callback: bool, log_dir: str) -> float:
    callbacks = [CAMCallback(num_images=8)] if with_callback else []
    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        logger=TensorBoardLogger(log_dir, name="bench"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.validate(module, loader, verbose=False)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = SyntheticWSOLDataset(args.images, image_size=224, num_classes=6, seed=0, cache=True)
    loader = DataLoader(dataset, batch_size=args.batch, collate_fn=wsol_collate)
    module = Classifier()
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as log_dir:
        validate(module, loader, args.device, True, log_dir)  # warm-up: allocator, first TensorBoard writer
        for _ in range(args.rounds):
            for with_callback in (False, True):
                times[with_callback].append(validate(module, loader, args.device, with_callback, log_dir))
    plain, with_cam = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"Validation of {args.images} images (224x224, batch {args.batch}), ResNet-50 GAP, {args.device}, "
        f"torch threads {torch.get_num_threads()}, median of {args.rounds} rounds"
    )
    print(f"{'run':<28} {'seconds':>9} {'ratio':>7}")
    print(f"{'validation loop':<28} {plain:>9.2f} {1.0:>6.2f}x")
    print(f"{'+ CAMCallback (all metrics)':<28} {with_cam:>9.2f} {with_cam / plain:>6.2f}x")


if __name__ == "__main__":
    main()

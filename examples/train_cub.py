"""Train a CAM network for weakly supervised object localization on CUB-200-2011, or on the embedded default.

With no arguments and no CUB tree under ``--root``, it trains a small GAP CNN on the offline synthetic dataset
(``lightning_cam.data.SyntheticWSOLDataModule``) in a few minutes on a CPU. With CUB (``--root`` holding
``CUB_200_2011/``, or ``--download``), it trains a WSOL architecture with the hyperparameters of the
wsolevaluation CAM baselines. Either way ``CAMCallback`` logs CAM overlays and localization metrics to TensorBoard
every epoch, ``ModelCheckpoint`` keeps the best MaxBoxAccV2, and the end prints the final metrics next to two
box baselines computed on the same validation images.

Examples::

    python examples/train_cub.py                       # offline default, GAP
    python examples/train_cub.py --pool max            # the global-max-pooling ablation
    python examples/train_cub.py --root data --download --arch resnet50 --weights IMAGENET1K_V2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torchvision import models as tvm

from lightning_cam import CAMCallback, GAPClassifier, GAPHead, convert_to_gap, inception_v3_gap, resnet50_gap, vgg16_gap
from lightning_cam.data import CUBDataModule, SyntheticWSOLDataModule, WSOLDataModule
from lightning_cam.functional import box_iou, rescale_boxes

WSOL_ARCHS = {"vgg16": vgg16_gap, "resnet50": resnet50_gap, "inception_v3": inception_v3_gap}
# wsolevaluation's CUB CAM settings (Choe et al., CVPR 2020): SGD with momentum 0.9, batch 32, 50 epochs, learning
# rate x0.1 every 15 epochs, new layers at 10x the learning rate.
CUB_HPARAMS = {
    "vgg16": {"lr": 1.268e-5, "weight_decay": 5e-4},
    "resnet50": {"lr": 2.322e-4, "weight_decay": 1e-4},
    "inception_v3": {"lr": 2.248e-3, "weight_decay": 5e-4},
}
IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def small_cam_net(num_classes: int, pool: str = "avg", width: int = 32) -> GAPClassifier:
    """A 6-layer CNN with 1/4-resolution maps (16x16 for 64x64 inputs), for the offline default."""

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    backbone = nn.Sequential(
        *block(3, width // 2),
        *block(width // 2, width, stride=2),
        *block(width, width),
        *block(width, 2 * width, stride=2),
        *block(2 * width, 2 * width),
        *block(2 * width, 4 * width),
    )
    return GAPClassifier(backbone, GAPHead(4 * width, num_classes, pool=pool))


def build_model(arch: str, num_classes: int, weights: str | None, pool: str) -> tuple[GAPClassifier, list[nn.Module]]:
    """The network and its newly initialised modules (trained at a higher learning rate when fine-tuning)."""
    if arch == "small":
        model = small_cam_net(num_classes, pool)
        return model, [model]
    if arch in WSOL_ARCHS:
        model = WSOL_ARCHS[arch](num_classes=num_classes, weights=weights, pool=pool)
        new = [model.head] + ([model.backbone[-2]] if arch != "resnet50" else [])
        return model, new
    try:
        net = tvm.get_model(arch, weights=weights)
    except ValueError as err:
        raise SystemExit(f"--arch {arch!r}: {err}") from None
    model = convert_to_gap(net, pool=pool)
    model.head = GAPHead(model.head.in_channels, num_classes, pool=pool, dropout=model.head.dropout.p)
    return model, [model.head]


class WSOLClassifier(L.LightningModule):
    """Image classification with cross-entropy; localization comes from the CAMs of its GAP head."""

    def __init__(
        self,
        model: GAPClassifier,
        new_modules: list[nn.Module],
        lr: float,
        weight_decay: float,
        optimizer: str,
        epochs: int,
        new_lr_ratio: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.new_ids = {id(p) for m in new_modules for p in m.parameters()}
        self.save_hyperparameters(ignore=["model", "new_modules"])

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        logits = self(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == batch["label"]).float().mean(), prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        self.log("val/loss", F.cross_entropy(logits, batch["label"]), sync_dist=True)
        self.log("val/acc", (logits.argmax(1) == batch["label"]).float().mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        new = [p for p in self.parameters() if id(p) in self.new_ids]
        old = [p for p in self.parameters() if id(p) not in self.new_ids]
        groups = [{"params": new, "lr": hp.lr * hp.new_lr_ratio}] + ([{"params": old, "lr": hp.lr}] if old else [])
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=15, gamma=0.1)
        else:
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(hp.epochs, 1))
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def box_baselines(datamodule: WSOLDataModule, eval_size: tuple[int, int]) -> dict[str, dict[str, float]]:
    """MaxBoxAccV2 and MaxBoxAcc of two boxes that ignore the image: the whole image, and a centred box of the
    mean ground-truth size, on the validation images, under the same box rescaling and IoU as the metric."""
    gt_boxes = []
    for batch in datamodule.val_dataloader():
        size = tuple(batch["image"].shape[-2:])
        gt_boxes += [rescale_boxes(b, size, eval_size) for b in batch["boxes"]]
    height, width = eval_size
    sizes = torch.cat([b[:, 2:] - b[:, :2] for b in gt_boxes]).double().mean(0)
    cx, cy, (bw, bh) = width / 2, height / 2, sizes.tolist()
    candidates = {
        "whole image box": torch.tensor([0.0, 0.0, width - 1, height - 1]),
        "centred mean-size box": torch.tensor([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]).floor(),
    }
    results = {}
    for name, box in candidates.items():
        best = torch.stack([box_iou(box[None], gt).max() for gt in gt_boxes])
        per_iou = [(best >= t).float().mean().item() for t in IOU_THRESHOLDS]
        results[name] = {"maxboxacc_v2": sum(per_iou) / len(per_iou), "maxboxacc": per_iou[1]}
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--root", type=Path, default=Path("data"), help="folder holding CUB_200_2011/ (or to download to)"
    )
    data.add_argument("--download", action="store_true", help="download CUB-200-2011 (and its masks) into --root")
    data.add_argument("--metadata-root", type=Path, default=None, help="wsolevaluation metadata/CUB folder")
    data.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: CPU cores, max 8)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--arch",
        default="auto",
        help="small | vgg16 | resnet50 | inception_v3 | any torchvision classifier that convert_to_gap supports "
        "(auto: resnet50 on CUB, small on the offline default)",
    )
    model.add_argument("--weights", default=None, help="torchvision weights, e.g. IMAGENET1K_V1 (needs internet)")
    model.add_argument("--pool", choices=["avg", "max"], default="avg", help="GAP, or GMP for the ablation")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=None, help="default: 50 on CUB, 12 on the offline default")
    train.add_argument("--batch-size", type=int, default=None, help="default: 32 on CUB, 64 offline")
    train.add_argument("--lr", type=float, default=None, help="default: per architecture (see CUB_HPARAMS)")
    train.add_argument("--weight-decay", type=float, default=None)
    train.add_argument("--new-lr-ratio", type=float, default=10.0, help="learning-rate factor of new layers")
    train.add_argument("--num-train", type=int, default=3000, help="offline default: training images")
    train.add_argument("--num-val", type=int, default=500, help="offline default: validation images")
    train.add_argument("--limit-batches", type=int, default=None, help="batches per epoch (smoke tests)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    train.add_argument("--precision", default=None, help="e.g. bf16-mixed or 16-mixed on GPUs")
    logs = parser.add_argument_group("logging")
    logs.add_argument("--logdir", type=Path, default=Path("runs"), help="TensorBoard log folder")
    logs.add_argument("--num-images", type=int, default=8, help="images in the CAM panel")
    return parser.parse_args(argv)


def build_datamodule(args: argparse.Namespace) -> tuple[WSOLDataModule, bool]:
    """CUB when it is there (or asked to download), else the embedded default; returns (datamodule, is_cub)."""
    common = {"batch_size": args.batch_size or 32}
    if args.num_workers is not None:
        common["num_workers"] = args.num_workers
    try:
        return CUBDataModule(args.root, download=args.download, metadata_root=args.metadata_root, **common), True
    except FileNotFoundError:
        if args.download or args.metadata_root is not None:
            raise
    print(f"CUB-200-2011 not found under {args.root}/ (use --root or --download): training on the embedded default.")
    dm = SyntheticWSOLDataModule(
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_val,
        batch_size=args.batch_size or 64,
        num_workers=args.num_workers or 0,
        seed=args.seed,
    )
    return dm, False


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    torch.set_float32_matmul_precision("high")
    datamodule, is_cub = build_datamodule(args)
    arch = args.arch if args.arch != "auto" else ("resnet50" if is_cub else "small")
    epochs = args.epochs or (50 if is_cub else 12)
    if arch in CUB_HPARAMS:
        hparams, optimizer = dict(CUB_HPARAMS[arch]), "sgd"
    else:
        hparams, optimizer = {"lr": 3e-3, "weight_decay": 1e-4}, "adamw"
    hparams["lr"] = args.lr or hparams["lr"]
    hparams["weight_decay"] = args.weight_decay if args.weight_decay is not None else hparams["weight_decay"]
    model, new_modules = build_model(arch, datamodule.num_classes, args.weights, args.pool)
    module = WSOLClassifier(
        model, new_modules, epochs=epochs, optimizer=optimizer, new_lr_ratio=args.new_lr_ratio, **hparams
    )

    name = f"{'cub' if is_cub else 'synthetic'}-{arch}-{'gap' if args.pool == 'avg' else 'gmp'}"
    logger = TensorBoardLogger(args.logdir, name=name)
    checkpoint = ModelCheckpoint(monitor="cam/maxboxacc_v2", mode="max", filename="best-{epoch}")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=args.accelerator,
        precision=args.precision,
        logger=logger,
        callbacks=[CAMCallback(num_images=args.num_images), checkpoint],
        limit_train_batches=args.limit_batches,
        limit_val_batches=args.limit_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    minutes = (time.perf_counter() - start) / 60

    final = {k.removeprefix("cam/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("cam/")}
    baselines = box_baselines(datamodule, (224, 224))
    print(f"\nFinal validation metrics after {epochs} epochs ({minutes:.1f} min), {name}:")
    header = f"| {'metric':<14} | {'CAM':>7} |" + "".join(f" {b:>21} |" for b in baselines)
    print(header + "\n|" + "|".join("-" * (len(c) + 0) for c in header.split("|")[1:-1]) + "|")
    for key in ("maxboxacc_v2", "maxboxacc", "gt_known_loc", "top1_loc", "pxap"):
        if key in final:
            row = "".join(f" {100 * b[key]:>20.1f}% |" if key in b else f" {'-':>21} |" for b in baselines.values())
            print(f"| {key:<14} | {100 * final[key]:>6.1f}% |" + row)
    print(f"\nBest checkpoint: {checkpoint.best_model_path}")
    print(f"Browse the run: tensorboard --logdir {args.logdir}")
    return {**final, **{f"{b}/{k}": v for b, m in baselines.items() for k, v in m.items()}}


if __name__ == "__main__":
    main(sys.argv[1:])

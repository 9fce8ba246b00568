"""Make the documentation's images from a short training run: ``python docs/scripts/make_figures.py``.

A small GAP network trains for a few epochs on the offline synthetic dataset (``SyntheticWSOLDataset``), on the
CPU, in well under two minutes on two cores; nothing is downloaded. Then the script writes:

- ``cam_overlays.png``: validation images with their ground-truth box, and the CAM of the predicted class over each;
- ``cam_vs_gradcam.png``: ``CAMAttribution`` and Captum's ``LayerGradCam`` of the same image and class, after
  checking that ``LayerGradCam * (h * w)`` equals the CAM;
- ``cam_panel.png``: the panel ``CAMCallback`` logs to TensorBoard, drawn by ``CAMCallback.render_panel``;
- ``box_accuracy_curve.png``: ``WSOLMetrics`` over a validation set (the numbers ``CAMCallback`` logs) and its
  ``curves()``: box accuracy against the CAM threshold per IoU threshold, and the pixel precision-recall curve.

Everything is seeded, so the images change only when the code or the options do. Options: ``--help``.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from matplotlib.figure import Figure
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from lightning_cam import CAMAttribution, CAMCallback, GAPClassifier, GAPHead
from lightning_cam.data import IMAGENET_MEAN, IMAGENET_STD, SyntheticWSOLDataset, wsol_collate
from lightning_cam.functional import draw_boxes, overlay_cams, to_uint8_images
from lightning_cam.metrics import WSOLMetrics

matplotlib.use("Agg")

IMAGES = Path(__file__).resolve().parents[1] / "images"
MAX_PNG_BYTES = 300_000


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    """3x3 convolution, batch norm, ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def small_gap_net(num_classes: int, width: int = 16) -> GAPClassifier:
    """Five 3x3 convolutions, two with stride 2 (CAMs at a quarter of the input side), and a ``GAPHead``."""
    backbone = nn.Sequential(
        *conv_block(3, width),
        *conv_block(width, 2 * width, stride=2),
        *conv_block(2 * width, 2 * width),
        *conv_block(2 * width, 4 * width, stride=2),
        *conv_block(4 * width, 4 * width),
    )
    return GAPClassifier(backbone, GAPHead(4 * width, num_classes))


def train(model: GAPClassifier, dataset: SyntheticWSOLDataset, epochs: int, lr: float = 3e-3) -> None:
    """Cross-entropy on the image labels (the only supervision), AdamW with a one-cycle schedule."""
    loader = DataLoader(dataset, batch_size=64, shuffle=True, collate_fn=wsol_collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
    model.train()
    for epoch in range(epochs):
        total, correct, loss_sum = 0, 0, 0.0
        for batch in loader:
            logits = model(batch["image"])
            loss = F.cross_entropy(logits, batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += len(logits)
            correct += int((logits.argmax(1) == batch["label"]).sum())
            loss_sum += loss.item() * len(logits)
        print(f"epoch {epoch}: loss {loss_sum / total:.3f}, train accuracy {correct / total:.3f}")
    model.eval()


def save_figure(figure: Figure, path: Path) -> None:
    """Save a matplotlib figure as an optimised PNG and report its size."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    Image.open(buffer).convert("RGB").save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def as_numpy(image: torch.Tensor) -> object:
    """``(3, H, W)`` uint8 tensor to an ``(H, W, 3)`` array for ``imshow``."""
    return image.permute(1, 2, 0).numpy()


def overlays_figure(model: GAPClassifier, dataset: SyntheticWSOLDataset, count: int, path: Path) -> None:
    """Top row: validation images with their ground-truth box; bottom row: the CAM of the predicted class."""
    batch = wsol_collate([dataset[i] for i in range(count)])
    images = batch["image"]
    with torch.no_grad():
        logits, cams = model(images, return_cams=True, target=None)
    predicted = logits.argmax(1)
    cams = cams[torch.arange(count), predicted][:, None]  # (B, 1, h, w): the map of each predicted class
    inputs = draw_boxes(to_uint8_images(images, IMAGENET_MEAN, IMAGENET_STD), batch["boxes"], color="lime", width=1)
    overlays = overlay_cams(images, cams, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    overlays = draw_boxes(overlays, batch["boxes"], color="lime", width=1)
    figure = Figure(figsize=(1.45 * count, 3.3), layout="constrained")
    axes = figure.subplots(2, count, squeeze=False)
    for i in range(count):
        true, guess = dataset.class_names[int(batch["label"][i])], dataset.class_names[int(predicted[i])]
        axes[0, i].imshow(as_numpy(inputs[i]), interpolation="nearest")
        axes[0, i].set_title(f"true: {true.split()[-1]}", fontsize=8)
        axes[1, i].imshow(as_numpy(overlays[i]), interpolation="nearest")
        axes[1, i].set_title(f"CAM of {guess.split()[-1]}", fontsize=8, color="black" if true == guess else "red")
        for axis in axes[:, i]:
            axis.set_axis_off()
    h, w = cams.shape[-2:]
    figure.suptitle(f"{images.shape[-1]}x{images.shape[-1]} inputs, {h}x{w} CAMs upsampled; green: true box", size=9)
    save_figure(figure, path)


def gradcam_figure(model: GAPClassifier, dataset: SyntheticWSOLDataset, index: int, path: Path) -> None:
    """CAM and LayerGradCam of the predicted class on one image; their ratio is ``h * w``."""
    sample = dataset[index]
    image = sample["image"][None]
    with torch.no_grad():
        target = int(model(image).argmax(1))
    started = time.perf_counter()
    cam = CAMAttribution(model).attribute(image, target=target)
    cam_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    gradcam = LayerGradCam(model, model.backbone).attribute(image, target=target)
    gradcam_ms = (time.perf_counter() - started) * 1e3
    h, w = cam.shape[-2:]
    torch.testing.assert_close(gradcam * (h * w), cam, rtol=1e-4, atol=1e-5)
    print(f"CAMAttribution {cam_ms:.1f} ms, LayerGradCam {gradcam_ms:.1f} ms; LayerGradCam * {h * w} == CAM")

    boxes = [sample["boxes"]]
    columns = {
        "input": to_uint8_images(image, IMAGENET_MEAN, IMAGENET_STD),
        "CAMAttribution": overlay_cams(image, cam, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        f"LayerGradCam x {h * w}": overlay_cams(image, gradcam * (h * w), mean=IMAGENET_MEAN, std=IMAGENET_STD),
    }
    difference = (gradcam * (h * w) - cam).abs().max().item()
    figure = Figure(figsize=(7.2, 2.6), layout="constrained")
    axes = figure.subplots(1, len(columns))
    for axis, (title, picture) in zip(axes, columns.items(), strict=True):
        picture = draw_boxes(picture, boxes, color="lime", width=1)
        axis.imshow(as_numpy(picture[0]), interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.set_axis_off()
    name = dataset.class_names[target]
    title = f"predicted class {name!r}, {h}x{w} maps; max |LayerGradCam x {h * w} - CAM| = {difference:.0e}"
    figure.suptitle(title, size=9)
    save_figure(figure, path)


def short_names(dataset: SyntheticWSOLDataset) -> list[str]:
    """The part's shape names the class ("striped disc" -> "disc"): short enough for the panel's captions."""
    return [name.split()[-1] for name in dataset.class_names]


def panel_figure(model: GAPClassifier, dataset: SyntheticWSOLDataset, count: int, path: Path) -> None:
    """The panel CAMCallback logs for the first ``count`` validation images, rendered by the callback itself."""
    batch = wsol_collate([dataset[i] for i in range(count)])
    with torch.no_grad():
        logits = model(batch["image"])
        _, cams = model(batch["image"], return_cams=True, target=logits.argmax(1))
    panel = {
        "images": batch["image"],
        "cams": cams[:, 0],  # (B, h, w): the map of each predicted class, as the callback collects it
        "boxes": batch["boxes"],
        "labels": batch["label"],
        "scores": logits.softmax(1),
    }
    image = CAMCallback(class_names=short_names(dataset)).render_panel(panel)
    Image.fromarray(as_numpy(image)).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def curves_figure(model: GAPClassifier, dataset: SyntheticWSOLDataset, path: Path) -> None:
    """WSOLMetrics over the whole set, batch by batch as CAMCallback feeds it, and its threshold curves."""
    metrics = WSOLMetrics()
    loader = DataLoader(dataset, batch_size=100, collate_fn=wsol_collate)
    with torch.no_grad():
        for batch in loader:
            logits, cams = model(batch["image"], return_cams=True, target=batch["label"])
            metrics.update(
                cams[:, 0],
                boxes=batch["boxes"],
                masks=batch["mask"],
                preds=logits.argmax(1),
                labels=batch["label"],
                image_size=tuple(batch["image"].shape[-2:]),
            )
    results = metrics.compute()
    print("  ".join(f"{key} {value.item():.3f}" for key, value in results.items()))
    curves = metrics.curves()
    figure = Figure(figsize=(8.4, 3.0), layout="constrained")
    accuracy_axis, pr_axis = figure.subplots(1, 2)
    thresholds = curves["thresholds"].numpy()
    for iou, accuracy in zip(metrics.iou_thresholds, curves["box_accuracy"].numpy(), strict=True):
        accuracy_axis.plot(thresholds, accuracy * 100, label=f"IoU {iou:g}: max {accuracy.max() * 100:.1f}")
    accuracy_axis.set(xlabel="CAM threshold", ylabel="box accuracy (%)")
    accuracy_axis.set_title(f"MaxBoxAccV2 {results['maxboxacc_v2'].item() * 100:.1f}", fontsize=10)
    accuracy_axis.legend(fontsize=8)
    pr_axis.plot(curves["recall"].numpy(), curves["precision"].numpy())
    pr_axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    pr_axis.set_title(f"pixel precision-recall, PxAP {results['pxap'].item() * 100:.1f}", fontsize=10)
    figure.suptitle(f"{len(dataset)} validation images, WSOLMetrics.curves()", size=9)
    save_figure(figure, path)


def main() -> None:
    """Train, then write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder for the PNGs (default: docs/images)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=2400)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=4)
    parser.add_argument("--num-images", type=int, default=6, help="columns of the overlay figure")
    parser.add_argument("--panel-images", type=int, default=4, help="rows of the CAMCallback panel")
    parser.add_argument("--val-size", type=int, default=500, help="validation images scored by WSOLMetrics")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    common = {"image_size": args.image_size, "num_classes": args.num_classes}
    train_set = SyntheticWSOLDataset(args.train_size, seed=args.seed, cache=True, **common)
    # Another seed: images unseen in training. The figures use its first images, the metrics all of them.
    val_set = SyntheticWSOLDataset(max(args.num_images, args.panel_images, args.val_size), seed=args.seed + 1, **common)
    model = small_gap_net(args.num_classes)
    train(model, train_set, args.epochs)
    print(f"trained in {time.perf_counter() - started:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    overlays_figure(model, val_set, args.num_images, args.out / "cam_overlays.png")
    gradcam_figure(model, val_set, 0, args.out / "cam_vs_gradcam.png")
    panel_figure(model, val_set, args.panel_images, args.out / "cam_panel.png")
    curves_figure(model, val_set, args.out / "box_accuracy_curve.png")
    too_big = [path.name for path in args.out.glob("*.png") if path.stat().st_size > MAX_PNG_BYTES]
    if too_big:
        raise SystemExit(f"Expected PNGs under {MAX_PNG_BYTES // 1000} KB for the docs, got larger: {too_big}")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

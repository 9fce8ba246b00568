"""Cost of getting CAMs: GAPHead vs torchcam, pytorch-grad-cam and captum, as ratios to a plain forward pass.

Every method runs on the same ResNet-50 (random weights, 224x224, batch 16) in one process, interleaved round by
round so that machine noise hits all of them alike; the table reports the median time per batch and its ratio to
the plain forward. Run: ``python benchmarks/bench_cam.py [--batch 16] [--rounds 5] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from captum.attr import LayerGradCam
from pytorch_grad_cam import GradCAM
from torchcam.methods import CAM as TorchcamCAM
from torchvision.models import resnet50

from lightning_cam import convert_to_gap


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(device: torch.device, batch: int, rounds: int) -> list[tuple[str, float]]:
    torch.manual_seed(0)
    net = resnet50().eval().to(device)
    cam_net = convert_to_gap(net).eval()
    x = torch.rand(batch, 3, 224, 224, device=device)

    def plain() -> None:
        with torch.inference_mode():
            net(x)

    def gaphead_top1() -> None:
        with torch.inference_mode():
            features = cam_net.forward_features(x)
            logits = cam_net.head(features)
            cam_net.head.cams(features, logits.argmax(1))

    def gaphead_all() -> None:
        with torch.inference_mode():
            cam_net(x, return_cams=True)

    def torchcam() -> None:
        with TorchcamCAM(net, target_layer="layer4", fc_layer="fc") as extractor, torch.inference_mode():
            scores = net(x)
            extractor(scores.argmax(1).tolist(), scores, normalized=False)

    grad_cam = GradCAM(model=net, target_layers=[net.layer4[-1]])

    def pytorch_grad_cam() -> None:
        grad_cam(input_tensor=x, targets=None)

    layer_grad_cam = LayerGradCam(net, net.layer4)

    def captum() -> None:
        with torch.no_grad():  # inference tensors cannot enter captum's autograd graph
            target = net(x).argmax(1)
        layer_grad_cam.attribute(x, target=target)

    methods: list[tuple[str, Callable[[], None]]] = [
        ("plain forward (torchvision ResNet-50)", plain),
        ("GAPHead forward + CAM of the top-1 class", gaphead_top1),
        ("GAPHead forward + CAMs of all 1000 classes", gaphead_all),
        ("torchcam CAM", torchcam),
        ("pytorch-grad-cam GradCAM", pytorch_grad_cam),
        ("captum LayerGradCam", captum),
    ]
    for _, fn in methods:  # warm-up: allocator, cuDNN autotuning, hooks
        fn()
    times: dict[str, list[float]] = {name: [] for name, _ in methods}
    for _ in range(rounds):
        for name, fn in methods:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return [(name, statistics.median(values)) for name, values in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: both when CUDA is present)")
    args = parser.parse_args()
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for name in devices:
        device = torch.device(name)
        threads = f"CPU, {torch.get_num_threads()} threads"
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
        print(f"\nResNet-50, 224x224, batch {args.batch}, {label}, median of {args.rounds} rounds")
        print(f"| {'method':<44} | {'ms / batch':>10} | {'ratio':>6} |")
        print(f"|{'-' * 46}|{'-' * 12}:|{'-' * 7}:|")
        results = run(device, args.batch, args.rounds)
        base = results[0][1]
        for method, seconds in results:
            print(f"| {method:<44} | {seconds * 1e3:>10.1f} | {seconds / base:>5.2f}x |")


if __name__ == "__main__":
    main()

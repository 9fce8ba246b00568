"""MaxBoxAccV2 of lightning_cam vs the reference algorithm (one OpenCV findContours per image per threshold).

Both start from the same raw 14x14 CAMs (random smooth maps) and GT boxes, on one CPU core, and must give the
same per-IoU MaxBoxAcc. The reference loop is the one of clovaai/wsolevaluation: resize with cv2.INTER_CUBIC,
min-max normalise, then for each threshold quantise, threshold, findContours(RETR_TREE), boundingRect, IoU.
It is slow, so at the 0.001 interval it runs on the first ``--reference-images-fine`` images only (both
implementations are compared on exactly those images, and times are per image).

The two take turns, one batch of images each, so that both see the same load on a shared machine; the speed-up is
the ratio of the total times, and the spread of the per-batch ratios is printed beside it.

Run: ``python benchmarks/bench_metrics.py [--images 1000] [--reference-images-fine 128] [--batch 64]``.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from lightning_cam.metrics import MaxBoxAccuracy

IOU_THRESHOLDS = (0.3, 0.5, 0.7)
EVAL = 224


def smooth_cams(count: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:14, :14]
    cams = np.zeros((count, 14, 14), np.float32)
    boxes = []
    for i in range(count):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(2, 12, 2)
            sigma = rng.uniform(1, 4)
            cams[i] += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        cams[i] += 0.05 * rng.standard_normal((14, 14))
        x0, y0 = rng.integers(0, 150, 2)
        boxes.append(np.array([[x0, y0, x0 + rng.integers(20, 224 - x0), y0 + rng.integers(20, 224 - y0)]]))
    return cams, boxes


def reference_correct(cams: np.ndarray, boxes: list[np.ndarray], interval: float) -> np.ndarray:
    """Images localised correctly, per (IoU threshold, CAM threshold)."""
    thresholds = np.arange(0, 1, interval)
    correct = np.zeros((len(IOU_THRESHOLDS), len(thresholds)))
    for cam, gt in zip(cams, boxes, strict=True):
        score = cv2.resize(cam.astype(np.float64), (EVAL, EVAL), interpolation=cv2.INTER_CUBIC)
        score = np.zeros_like(score) if score.max() == score.min() else (score - score.min()) / np.ptp(score)
        quantized = (score * 255).astype(np.uint8)
        for t, threshold in enumerate(thresholds):
            _, binary = cv2.threshold(quantized, int(threshold * quantized.max()), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            rects = [cv2.boundingRect(c) for c in contours] or [(0, 0, 0, 0)]
            est = np.array([[x, y, min(x + w, EVAL - 1), min(y + h, EVAL - 1)] for x, y, w, h in rects])
            if not contours:
                est = np.zeros((1, 4), np.int64)
            best = max(_iou(e, g) for e in est for g in gt)
            for k, iou_threshold in enumerate(IOU_THRESHOLDS):
                correct[k, t] += best >= iou_threshold
    return correct


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1) * max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0


def ours_update(metric: MaxBoxAccuracy, cams: np.ndarray, boxes: list[np.ndarray], batch: int) -> None:
    cams_t = torch.from_numpy(cams)
    for start in range(0, len(cams), batch):
        metric.update(cams_t[start : start + batch], [torch.from_numpy(b) for b in boxes[start : start + batch]])


def ours_result(metric: MaxBoxAccuracy) -> np.ndarray:
    results = metric.compute()
    return np.array([results[f"maxboxacc_v2_iou{round(t * 100)}"].item() for t in IOU_THRESHOLDS])


def timed(fn, *args) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def compare(
    cams: np.ndarray, boxes: list[np.ndarray], interval: float, batch: int
) -> tuple[bool, float, float, list[float]]:
    """Both on the same images, taking turns batch by batch: equal results, total seconds of each, per-batch ratios."""
    metric = MaxBoxAccuracy(iou_thresholds=IOU_THRESHOLDS, cam_curve_interval=interval)
    correct, ref_time, our_time, ratios = 0.0, 0.0, 0.0, []
    for start in range(0, len(cams), batch):
        chunk = slice(start, start + batch)
        counts, ref = timed(reference_correct, cams[chunk], boxes[chunk], interval)
        _, ours = timed(ours_update, metric, cams[chunk], boxes[chunk], batch)
        correct, ref_time, our_time = correct + counts, ref_time + ref, our_time + ours
        ratios.append(ref / ours)
    expected, result = (correct / len(cams)).max(1), ours_result(metric)
    equal = np.array_equal(expected, result)
    assert equal, f"results differ at interval {interval}: reference {expected}, ours {result}"
    return equal, ref_time, our_time, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="CAMs scored by both (interval 0.01)")
    parser.add_argument("--reference-images-fine", type=int, default=128, help="CAMs for the 0.001 comparison")
    parser.add_argument("--batch", type=int, default=64, help="CAMs per update, and per turn of each")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    cams, boxes = smooth_cams(args.images)
    # Warm-up: the first update pays for imports and caches.
    ours_update(MaxBoxAccuracy(iou_thresholds=IOU_THRESHOLDS), cams[:2], boxes[:2], args.batch)
    print(f"MaxBoxAccV2 on {args.images} smooth 14x14 CAMs -> 224x224, one CPU core, OpenCV {cv2.__version__}")
    print(
        f"{'interval':>9} {'images':>7} {'reference ms/img':>17} {'ours ms/img':>12} {'speed-up':>9} "
        f"{'per-batch speed-ups (median, min-max)':>38}  equal"
    )
    for interval, count in ((0.01, args.images), (0.001, min(args.reference_images_fine, args.images))):
        equal, ref_time, our_time, ratios = compare(cams[:count], boxes[:count], interval, args.batch)
        spread = f"{np.median(ratios):.1f}x, {min(ratios):.1f}x-{max(ratios):.1f}x"
        print(
            f"{interval:>9} {count:>7} {1000 * ref_time / count:>17.2f} {1000 * our_time / count:>12.3f} "
            f"{ref_time / our_time:>8.1f}x {spread:>38}  {equal}"
        )
    # Ours alone on all images at the fine interval: the per-image cost stays flat with the image count.
    metric = MaxBoxAccuracy(iou_thresholds=IOU_THRESHOLDS, cam_curve_interval=0.001)
    _, our_time = timed(ours_update, metric, cams, boxes, args.batch)
    print(f"ours on all {args.images} images at interval 0.001: {1000 * our_time / args.images:.3f} ms/img")


if __name__ == "__main__":
    main()

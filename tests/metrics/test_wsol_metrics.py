"""The WSOL Metrics against the OpenCV reference, batch accumulation, and bad input."""

import warnings

import cv2
import numpy as np
import pytest
import torch

from lightning_cam.functional.wsol import scoremaps
from lightning_cam.metrics import LocalizationAccuracy, MaxBoxAccuracy, PixelAveragePrecision, WSOLMetrics
from tests import wsol_reference as ref
from tests.wsol_corpus import corpus

IMAGE_SIZE = (200, 260)
EVAL = (224, 224)


@pytest.fixture(scope="module")
def data():
    cams, boxes, masks = corpus(2, 224, IMAGE_SIZE, seed=11)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, len(cams))
    preds = np.where(rng.random(len(cams)) < 0.6, labels, (labels + 1) % 3)
    scores = [ref.scoremap(c, EVAL) for c in cams]
    gt = [np.asarray([ref.resize_box(b, IMAGE_SIZE, EVAL) for b in image_boxes]) for image_boxes in boxes]
    ref_masks = [cv2.resize(m, EVAL[::-1], interpolation=cv2.INTER_NEAREST) for m in masks]
    return {
        "cams": cams,
        "boxes": boxes,
        "masks": masks,
        "labels": labels,
        "preds": preds,
        "scores": scores,
        "gt": gt,
        "ref_masks": ref_masks,
    }


def _feed(metric, data, **extra):
    # One image per update: the raw CAMs differ in size, and it exercises accumulation across batches.
    for i, cam in enumerate(data["cams"]):
        kwargs = {"boxes": [torch.from_numpy(data["boxes"][i])]}
        if "masks" in extra:
            kwargs["masks"] = torch.from_numpy(data["masks"][i])[None]
        if "labels" in extra:
            kwargs.update(preds=torch.tensor([data["preds"][i]]), labels=torch.tensor([data["labels"][i]]))
        if isinstance(metric, PixelAveragePrecision):
            kwargs.pop("boxes")
        metric.update(torch.from_numpy(cam)[None], image_size=IMAGE_SIZE, **kwargs)
    return metric.compute()


def test_maxboxacc_v2_equals_reference(data) -> None:
    results = _feed(MaxBoxAccuracy(), data)
    expected, _ = ref.max_box_accuracy(data["scores"], data["gt"], ref.thresholds(0.01), (0.3, 0.5, 0.7), True)
    assert results["maxboxacc_v2"].item() == pytest.approx(expected.mean(), abs=1e-12)
    for name, value in zip(("iou30", "iou50", "iou70"), expected, strict=True):
        assert results[f"maxboxacc_v2_{name}"].item() == pytest.approx(value, abs=1e-12)


def test_maxboxacc_v1_equals_reference(data) -> None:
    metric = MaxBoxAccuracy.v1()
    results = _feed(metric, data)
    expected, curves = ref.max_box_accuracy(data["scores"], data["gt"], ref.thresholds(0.01), (0.5,), False)
    assert results["maxboxacc"].item() == pytest.approx(expected[0], abs=1e-12)
    assert results["best_threshold_iou50"].item() == ref.thresholds(0.01)[np.argmax(curves[0])]
    assert np.allclose(metric.curves()["box_accuracy"].numpy(), curves, atol=1e-12)


def test_localization_accuracy_equals_reference(data) -> None:
    results = _feed(LocalizationAccuracy(), data, labels=True)
    thresholds = ref.thresholds(0.01)
    pairs = list(zip(data["scores"], data["gt"], strict=True))
    gt_known = np.array([ref.localization_correct(s, g, 0.2, 0.5) for s, g in pairs])
    top1 = gt_known & (data["preds"] == data["labels"])
    assert results["gt_known_loc"].item() == pytest.approx(gt_known.mean(), abs=1e-12)
    assert results["top1_loc"].item() == pytest.approx(top1.mean(), abs=1e-12)
    _, curves = ref.max_box_accuracy(data["scores"], data["gt"], thresholds, (0.5,), False)
    best = thresholds[np.argmax(curves[0])]
    best_hits = np.array([ref.localization_correct(s, g, best, 0.5) for s, g in pairs])
    assert results["best_threshold"].item() == best
    assert results["gt_known_loc_at_best"].item() == pytest.approx(best_hits.mean(), abs=1e-12)
    top1_best = best_hits & (data["preds"] == data["labels"])
    assert results["top1_loc_at_best"].item() == pytest.approx(top1_best.mean(), abs=1e-12)


def test_pxap_equals_reference(data) -> None:
    metric = PixelAveragePrecision()
    results = _feed(metric, data, masks=True)
    expected, precision, recall = ref.pixel_precision_recall(data["scores"], data["ref_masks"], ref.thresholds(0.01))
    assert results["pxap"].item() == pytest.approx(expected, abs=1e-9)
    curves = metric.curves()
    assert np.allclose(curves["recall"].numpy(), recall, atol=1e-12)
    assert np.allclose(curves["precision"].numpy(), precision, atol=1e-12, equal_nan=True)


def test_wsol_metrics_equal_the_separate_metrics(data) -> None:
    combined = _feed(WSOLMetrics(), data, masks=True, labels=True)
    v2 = _feed(MaxBoxAccuracy(), data)
    v1 = _feed(MaxBoxAccuracy.v1(), data)
    loc = _feed(LocalizationAccuracy(), data, labels=True)
    pxap = _feed(PixelAveragePrecision(), data, masks=True)
    for name in ("maxboxacc_v2", "maxboxacc_v2_iou30", "maxboxacc_v2_iou50", "maxboxacc_v2_iou70"):
        assert combined[name] == v2[name]
    assert combined["maxboxacc"] == v1["maxboxacc"]
    assert combined["best_threshold"] == v1["best_threshold_iou50"]
    for name, value in loc.items():
        assert combined[name] == value, name
    assert combined["pxap"] == pxap["pxap"]
    assert all(0 <= v <= 1 for v in combined.values())


def test_batched_updates_equal_one_update() -> None:
    cams = torch.rand(6, 7, 7)
    boxes = [torch.tensor([[10.0, 20, 120, 150]]), torch.tensor([[0.0, 0, 50, 60], [100, 100, 200, 223]])] * 3
    whole = WSOLMetrics()
    whole.update(cams, boxes=boxes)
    parts = WSOLMetrics()
    parts.update(cams[:4], boxes=boxes[:4])
    parts.update(cams[4:], boxes=boxes[4:])
    assert whole.compute() == parts.compute()


def test_normalized_maps_skip_the_resize() -> None:
    cams = torch.rand(3, 7, 7)
    boxes = [torch.tensor([[10, 20, 120, 150]])] * 3
    raw = MaxBoxAccuracy()
    raw.update(cams, boxes)
    normalized = MaxBoxAccuracy(normalized=True)
    normalized.update(scoremaps(cams), boxes)
    assert raw.compute() == normalized.compute()


def test_results_without_predictions_or_masks_are_left_out() -> None:
    metric = WSOLMetrics()
    metric.update(torch.rand(2, 7, 7), boxes=[torch.tensor([[0, 0, 100, 100]])] * 2)
    results = metric.compute()
    assert "gt_known_loc" in results
    assert "top1_loc" not in results
    assert "pxap" not in results
    masks_only = WSOLMetrics()
    masks_only.update(torch.rand(2, 7, 7), masks=torch.ones(2, 224, 224, dtype=torch.uint8))
    assert set(masks_only.compute()) == {"pxap"}


def test_non_finite_cams_warn_once_and_score_as_zeros() -> None:
    metric = MaxBoxAccuracy.v1()
    cams = torch.full((2, 7, 7), float("nan"))
    with pytest.warns(RuntimeWarning, match="NaN/inf"):
        metric.update(cams, [torch.tensor([[0, 0, 0, 0]])] * 2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        metric.update(cams, [torch.tensor([[0, 0, 0, 0]])] * 2)
    assert record == []
    # A zero map has no contour: the box [0, 0, 0, 0] matches a GT box [0, 0, 0, 0] exactly.
    assert metric.compute()["maxboxacc"].item() == 1.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.update(torch.rand(0, 7, 7), boxes=[]), ValueError, "empty batch"),
        (lambda m: m.update(torch.rand(2, 7, 7), boxes=[torch.tensor([[0, 0, 5, 5]])]), ValueError, "for 2 images"),
        (lambda m: m.update(torch.rand(1, 7, 7)), ValueError, "boxes` or `masks"),
        (lambda m: m.update(torch.rand(1, 7, 7), boxes=[torch.tensor([[9, 0, 5, 5]])]), ValueError, "x0 <= x1"),
        (lambda m: m.update(torch.rand(1, 7, 7), boxes=[torch.zeros(0, 4)]), ValueError, "empty box list"),
        (
            lambda m: m.update(torch.rand(1, 7, 7), masks=torch.ones(1, 10, 10, dtype=torch.uint8)),
            ValueError,
            "masks of shape",
        ),
        (
            lambda m: m.update(torch.rand(1, 7, 7), boxes=[torch.tensor([[0, 0, 5, 5]])], preds=torch.tensor([1])),
            ValueError,
            "both `preds` and `labels`",
        ),
        (lambda m: m.update(torch.rand(7, 7), boxes=[torch.tensor([[0, 0, 5, 5]])]), ValueError, r"\(B, h, w\)"),
        (lambda m: m.compute(), RuntimeError, "at least one update"),
    ],
)
def test_bad_input_raises_clear_errors(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(WSOLMetrics())


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: MaxBoxAccuracy(iou_thresholds=()), "iou_thresholds"),
        (lambda: MaxBoxAccuracy(iou_thresholds=(1.5,)), "iou_thresholds"),
        (lambda: LocalizationAccuracy(loc_threshold=1.0), "loc_threshold"),
        (lambda: WSOLMetrics(cam_curve_interval=2), "cam_curve_interval"),
    ],
)
def test_bad_configuration_raises(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()

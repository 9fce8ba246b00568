"""The WSOL functional core against the independent OpenCV reference in tests/wsol_reference.py."""

import cv2
import numpy as np
import pytest
import torch

from lightning_cam.functional import _wsol_kernel, wsol
from tests import wsol_reference as ref
from tests.wsol_corpus import corpus

IMAGE_SIZE = (300, 250)


def _reference_inputs(cams, boxes, eval_size):
    scores = [ref.scoremap(c, eval_size) for c in cams]
    gt = [np.asarray([ref.resize_box(b, IMAGE_SIZE, eval_size) for b in image_boxes]) for image_boxes in boxes]
    return scores, gt


def _ours(cams, boxes, eval_size, interval):
    # The raw CAMs differ in size, so they are prepared one by one and scored as one batch.
    prepared = [
        wsol.prepare_inputs(
            torch.from_numpy(cam)[None], [torch.from_numpy(b)], image_size=IMAGE_SIZE, eval_size=eval_size
        )
        for cam, b in zip(cams, boxes, strict=True)
    ]
    maps = torch.cat([p[0] for p in prepared])
    gt = [p[1][0] for p in prepared]
    return maps, gt, wsol.box_scores(maps, gt, wsol.cam_thresholds(interval))


@pytest.fixture(params=[True, False], ids=["avx2", "sse2"])
def simd(request: pytest.FixtureRequest):
    """The kernel with its AVX2 loops (skipped on CPUs without) and without; a second call tells if it took."""
    previous = _wsol_kernel._set_avx2(request.param)
    if request.param and not _wsol_kernel._set_avx2(request.param):
        _wsol_kernel._set_avx2(previous)
        pytest.skip("this CPU has no AVX2")
    yield request.param
    _wsol_kernel._set_avx2(previous)


def _same_size(cams, side=14):
    """The corpus' raw CAMs brought to one size (nearest), so that they form one batch."""
    resized = [torch.nn.functional.interpolate(torch.from_numpy(c)[None, None], size=(side, side)) for c in cams]
    return [r[0, 0].numpy() for r in resized]


@pytest.mark.parametrize(
    ("interval", "side", "per_kind"),
    [(0.01, 224, 3), (0.001, 48, 2), (0.05, 256, 1), (0.05, 260, 1)],
    # Up to 256 x 256 the kernel packs each sorted pixel in 32 bits, beyond in 64: the largest of one, the other.
    ids=["interval0.01-224px", "interval0.001-48px", "interval0.05-256px", "interval0.05-260px"],
)
def test_per_image_per_threshold_ious_equal_opencv(interval: float, side: int, per_kind: int) -> None:
    cams, boxes, _ = corpus(per_kind, side, IMAGE_SIZE, seed=side)
    maps, gt, scores = _ours(cams, boxes, (side, side), interval)
    ref_scores, ref_gt = _reference_inputs(cams, boxes, (side, side))
    thresholds = ref.thresholds(interval)
    for i, (score, image_gt) in enumerate(zip(ref_scores, ref_gt, strict=True)):
        assert np.array_equal(gt[i].numpy(), image_gt)
        # Identical quantised maps: the float64 bicubic resize agrees with OpenCV's to rounding.
        assert np.array_equal((maps[i].numpy() * 255).astype(np.uint8), (score * 255).astype(np.uint8))
        for multi, ours in ((True, scores.all_contours[i]), (False, scores.largest_contour[i])):
            expected = ref.best_ious(score, image_gt, thresholds, multi_contour=multi)
            mismatched = np.flatnonzero(expected != ours.numpy())
            assert mismatched.size == 0, f"image {i}, multi_contour={multi}, thresholds {thresholds[mismatched]}"


def test_largest_contour_boxes_equal_opencv(simd: bool) -> None:
    cams, boxes, _ = corpus(2, 96, IMAGE_SIZE, seed=1)
    maps, _, scores = _ours(cams, boxes, (96, 96), 0.05)
    for i, score in enumerate(maps.numpy()):
        for t, threshold in enumerate(ref.thresholds(0.05)):
            expected = ref.estimated_boxes(score, threshold, multi_contour=False)[0]
            assert scores.largest_boxes[i, t].tolist() == expected.tolist(), (i, threshold)


def test_boxes_from_cams_is_the_largest_contour_box() -> None:
    cams, _, _ = corpus(1, 64, IMAGE_SIZE, seed=2)
    cams = _same_size(cams)
    boxes = wsol.boxes_from_cams(torch.from_numpy(np.stack(cams)), threshold=0.2, image_size=(64, 80))
    for cam, box in zip(cams, boxes, strict=True):
        assert box.tolist() == ref.estimated_boxes(ref.scoremap(cam, (64, 80)), 0.2, False)[0].tolist()


@pytest.mark.parametrize("multi_contour", [True, False])
def test_max_box_accuracy_equals_reference(multi_contour: bool, simd: bool) -> None:
    cams, boxes, _ = corpus(2, 64, IMAGE_SIZE, seed=3)
    cams = _same_size(cams)
    iou_thresholds = (0.3, 0.5, 0.7) if multi_contour else (0.5,)
    ours = wsol.max_box_accuracy(
        torch.from_numpy(np.stack(cams)),
        [torch.from_numpy(b) for b in boxes],
        image_size=IMAGE_SIZE,
        iou_thresholds=iou_thresholds,
        multi_contour=multi_contour,
        cam_curve_interval=0.02,
        eval_size=(64, 64),
    )
    scores, gt = _reference_inputs(cams, boxes, (64, 64))
    expected, _ = ref.max_box_accuracy(scores, gt, ref.thresholds(0.02), iou_thresholds, multi_contour)
    assert ours.item() == pytest.approx(expected.mean(), abs=1e-12)


def test_pixel_average_precision_equals_reference() -> None:
    cams, _, masks = corpus(3, 64, IMAGE_SIZE, seed=4)
    cams = _same_size(cams)
    ours = wsol.pixel_average_precision(
        torch.from_numpy(np.stack(cams)), torch.from_numpy(masks), image_size=IMAGE_SIZE, eval_size=(64, 64)
    )
    scores = [ref.scoremap(c, (64, 64)) for c in cams]
    ref_masks = [cv2.resize(m, (64, 64), interpolation=cv2.INTER_NEAREST) for m in masks]
    expected, _, _ = ref.pixel_precision_recall(scores, ref_masks, ref.thresholds(0.01))
    assert ours.item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.3])
@pytest.mark.parametrize("mask_dtype", [torch.uint8, torch.int64, torch.bool])
def test_pixel_histograms_equal_numpy_histogram(interval: float, mask_dtype: torch.dtype) -> None:
    # The reference bins with numpy.histogram; values on the edges, outside them and NaN must land as there.
    rng = np.random.default_rng(5)
    thresholds = ref.thresholds(interval)
    edges = np.concatenate([thresholds, [1.0, 2.0, 3.0]])
    values = rng.uniform(-0.5, 3.5, (3, 40, 50))
    on_edge = rng.random(values.shape) < 0.3
    values[on_edge] = rng.choice(edges, on_edge.sum())
    values[rng.random(values.shape) < 0.01] = np.nan
    masks = rng.integers(0, 3, values.shape) if mask_dtype != torch.bool else rng.integers(0, 2, values.shape)
    masks = torch.from_numpy(masks).to(mask_dtype)
    foreground, background = wsol.pixel_histograms(torch.from_numpy(values), masks, torch.from_numpy(thresholds))
    labels = masks.to(torch.int64).numpy()
    for counts, label in ((foreground, 1), (background, 0)):
        selected = values[(labels == label) & ~np.isnan(values)]
        assert counts.tolist() == np.histogram(selected, bins=edges)[0].tolist()


def test_pixel_histograms_check_their_inputs() -> None:
    thresholds = torch.tensor([0.0, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"maps and masks of one shape, got \(1, 4, 4\) and \(1, 4, 5\)"):
        wsol.pixel_histograms(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5, dtype=torch.uint8), thresholds)
    with pytest.raises(ValueError, match="finite, non-decreasing `edges`"):
        wsol.pixel_histograms(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), torch.tensor([0.5, 0.2]))
    values, labels = np.zeros(4), np.zeros(4, np.uint8)
    with pytest.raises(ValueError, match="expected `edges`, got None"):
        wsol.pixel_counts(values, labels, None, np.zeros(1, np.int64), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="as many `labels` as `values`"):
        wsol.pixel_counts(values, labels[:3], np.array([0.0, 1.0]), np.zeros(1, np.int64), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="one bin fewer"):
        wsol.pixel_counts(values, labels, np.array([0.0, 1.0]), np.zeros(2, np.int64), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="last of `edges` above the first"):
        wsol.pixel_counts(values, labels, np.array([1.0, 1.0]), np.zeros(1, np.int64), np.zeros(1, np.int64))
    with pytest.raises(TypeError, match="`labels` as a contiguous buffer of uint8"):
        wsol.pixel_counts(values, values, np.array([0.0, 1.0]), np.zeros(1, np.int64), np.zeros(1, np.int64))


def test_box_iou_and_rescale_equal_reference() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 50, (20, 4))
    b = rng.integers(0, 50, (7, 4))
    a[:, 2:] = np.maximum(a[:, 2:], a[:, :2] - 1)  # includes zero-width and degenerate boxes
    assert np.allclose(wsol.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy(), ref.iou(a, b), atol=0)
    boxes = rng.uniform(0, 250, (50, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(0, 40, (50, 2))
    boxes = np.minimum(boxes, 250)
    expected = [ref.resize_box(box, (300, 250), (224, 224)) for box in boxes]
    assert wsol.rescale_boxes(torch.from_numpy(boxes), (300, 250), (224, 224)).tolist() == expected


def _square_ring(size: int = 16) -> torch.Tensor:
    maps = torch.zeros(1, size, size, dtype=torch.float64)
    maps[0, 3:12, 3:12] = 1.0
    maps[0, 5:10, 5:10] = 0.0  # a 5x5 hole
    return maps


def test_hole_contour_box_counts_in_multi_contour_mode() -> None:
    maps = _square_ring()
    # The hole's bbox grown by one pixel, then OpenCV's x + w: one more on the right and bottom.
    hole_box = torch.tensor([[4, 4, 11, 11]])
    assert ref.estimated_boxes(maps[0].numpy(), 0.5, multi_contour=True).tolist() == [[3, 3, 12, 12], [4, 4, 11, 11]]
    scores = wsol.box_scores(maps, [hole_box], torch.tensor([0.5], dtype=torch.float64))
    assert scores.all_contours.item() == 1.0
    assert scores.largest_boxes[0, 0].tolist() == [3, 3, 12, 12]
    assert scores.largest_contour.item() < 1.0


def test_tied_largest_contours_pick_the_last_in_raster_order() -> None:
    maps = torch.zeros(1, 12, 12, dtype=torch.float64)
    maps[0, 1:4, 6:9] = 1.0  # first in raster order
    maps[0, 6:9, 1:4] = 1.0  # same area, starts later: OpenCV's max() keeps this one
    boxes = wsol.box_scores(maps, None, torch.tensor([0.5], dtype=torch.float64), all_contours=False).largest_boxes
    assert boxes[0, 0].tolist() == [1, 6, 4, 9]
    expected = ref.estimated_boxes(maps[0].numpy(), 0.5, multi_contour=False)[0]
    assert boxes[0, 0].tolist() == expected.tolist()


def test_empty_foreground_gives_the_zero_box() -> None:
    boxes = wsol.boxes_from_cams(torch.full((2, 5, 5), 3.0), threshold=0.2)
    assert boxes.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]


def test_constant_and_non_finite_maps_become_zeros() -> None:
    cams = torch.ones(3, 7, 7)
    cams[1, 0, 0] = float("nan")
    cams[2] = torch.rand(7, 7)
    with pytest.warns(RuntimeWarning, match="1 of 3 CAMs have NaN/inf"):
        maps = wsol.scoremaps(cams, (14, 14))
    assert maps[:2].abs().sum() == 0
    assert maps[2].min() == 0
    assert maps[2].max() == 1


def test_float32_constant_map_stays_zero_after_resize() -> None:
    cam = torch.full((1, 7, 7), 0.1234567, dtype=torch.float32)
    assert wsol.scoremaps(cam).abs().max() == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"boxes": [torch.tensor([[0, 0, 5, 5]])] * 2}, ValueError, "boxes for 3 images, got 2"),
        ({"boxes": [torch.tensor([[5, 0, 4, 5]])] * 3}, ValueError, "x0 <= x1"),
        ({"boxes": [torch.tensor([[0, 0, 300, 5]])] * 3}, ValueError, "inside the 224x224 image"),
        # Checked on the whole batch at once, the error still names the first image at fault and its boxes.
        (
            {"boxes": [torch.tensor([[0, 0, 5, 5]]), torch.tensor([[0, 0, 5, 5], [1, 1, 9, 300]]), torch.zeros(1, 4)]},
            ValueError,
            r"inside the 224x224 image .*\[1\.0, 1\.0, 9\.0, 300\.0\]\] for image 1\.",
        ),
        (
            {"boxes": [torch.tensor([[0, 0, 5, 5]])] * 2 + [torch.tensor([[0.0, float("nan"), 5, 5]])]},
            ValueError,
            "finite boxes.*for image 2",
        ),
        ({"boxes": [torch.zeros(0, 4)] * 3}, ValueError, "empty box list"),
        ({"boxes": [torch.zeros(3)] * 3}, ValueError, r"shape \(n, 4\)"),
        ({"masks": torch.zeros(3, 10, 10, dtype=torch.uint8)}, ValueError, r"masks of shape \(3, 224, 224\)"),
        ({"masks": torch.zeros(3, 224, 224)}, TypeError, "integer or bool masks"),
        ({"eval_size": (0, 5)}, ValueError, "eval_size"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        wsol.prepare_inputs(torch.rand(3, 7, 7), **kwargs)


def test_bad_maps_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        wsol.scoremaps(torch.rand(7, 7))
    with pytest.raises(ValueError, match="empty batch"):
        wsol.scoremaps(torch.rand(0, 7, 7))
    with pytest.raises(TypeError, match="floating-point"):
        wsol.scoremaps(torch.ones(1, 7, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="values in"):
        wsol.prepare_inputs(torch.full((1, 224, 224), 2.0), normalized=True)
    with pytest.raises(ValueError, match="cam_curve_interval"):
        wsol.cam_thresholds(0.0)
    with pytest.raises(ValueError, match="threshold"):
        wsol.boxes_from_cams(torch.rand(1, 7, 7), threshold=1.5)


@pytest.mark.parametrize(("source", "size"), [((14, 14), (224, 224)), ((7, 9), (48, 40)), ((30, 20), (30, 20))])
def test_c_score_maps_equal_the_torch_path(source: tuple, size: tuple, simd: bool) -> None:
    # The torch path serves GPUs and the odd case the C kernel declines; both must give the same bits.
    generator = torch.Generator().manual_seed(3)
    cams = torch.randn((6, *source), generator=generator, dtype=torch.float64)
    cams[1] = 0.5  # constant
    cams[2, 1:, 1:] = 0.0  # one hot corner after the min
    expected = wsol._normalized(cams, size)
    assert torch.equal(wsol.scoremaps(cams, size), expected)
    quantized, peaks = wsol._quantize(expected)
    assert np.array_equal(quantized, (expected * 255).to(torch.uint8).numpy())
    assert peaks.tolist() == [0.0 if k == 1 else 255.0 for k in range(6)]
    # Quantised map by map inside the kernel, with or without writing the float maps out.
    for float_maps in (True, False):
        score = wsol._score_maps(cams, size, float_maps=float_maps, quantized=True)
        assert torch.equal(score.maps, expected) if float_maps else score.maps is None
        assert np.array_equal(score.quantized, quantized)
        assert np.array_equal(score.peaks, peaks)


def test_c_quantization_equals_the_division_at_bin_edges(simd: bool) -> None:
    # Without float maps the kernel quantises by a multiplication and redoes with the division only the blocks with a
    # value near a bin edge; values on, just below and just above the edges k / 255 must come out as the division's.
    edges = torch.arange(256, dtype=torch.float64)
    near = torch.cat([edges, torch.nextafter(edges, edges + 1), torch.nextafter(edges, edges - 1)])
    generator = torch.Generator().manual_seed(5)
    cams = torch.stack(
        [
            near[torch.randperm(len(near), generator=generator)][: 24 * 32].reshape(24, 32),
            near[:768].reshape(24, 32) * 1e-300,  # 255 / range overflows: all by division
            near[:768].reshape(24, 32) * 1e300,
            torch.rand((24, 32), generator=generator, dtype=torch.float64) * 3 - 1,
        ]
    )
    cams[:, 0, 0], cams[:, -1, -1] = cams.amin((1, 2)), cams.amax((1, 2))
    score = wsol._score_maps(cams, (24, 32), float_maps=False, quantized=True)
    expected = (wsol._normalized(cams, (24, 32)) * 255).to(torch.uint8).numpy()
    assert np.array_equal(score.quantized, expected)
    assert score.peaks.tolist() == [255.0] * 4


def test_c_score_maps_catch_overflow_of_finite_cams() -> None:
    # Finite CAMs skip the per-pixel check only when the resize cannot overflow; here it does, and is reported.
    cams = np.full((2, 4, 4), 1.7e308)
    cams[:, ::2] = -1.7e308
    out, quantized, peaks = np.empty((2, 9, 9)), np.empty((2, 9, 9), np.uint8), np.empty(2)
    taps = wsol._taps(torch.Size((4, 4)), (9, 9))
    assert not wsol.normalized_maps(cams, 4, 4, *taps, out, quantized, peaks)
    # Just below the bound, the maps are finite and equal the torch path.
    cams /= 1.7e9
    assert wsol.normalized_maps(cams, 4, 4, *taps, out, quantized, peaks)
    assert torch.equal(torch.from_numpy(out), wsol._normalized(torch.from_numpy(cams), (9, 9)))


def test_c_score_maps_check_their_outputs() -> None:
    cams = np.zeros((2, 4, 4))
    with pytest.raises(ValueError, match="at least one of `out` and `quantized`"):
        wsol.normalized_maps(cams, 4, 4, None, None, None, None, None, None, None)
    with pytest.raises(ValueError, match="`quantized` and `peaks` both or neither"):
        wsol.normalized_maps(cams, 4, 4, None, None, None, None, None, np.empty((2, 4, 4), np.uint8), None)
    with pytest.raises(ValueError, match="`peaks` of 2 values"):
        wsol.normalized_maps(cams, 4, 4, None, None, None, None, None, np.empty((2, 4, 4), np.uint8), np.empty(3))
    with pytest.raises(TypeError, match="`quantized` as a contiguous buffer of uint8"):
        wsol.normalized_maps(cams, 4, 4, None, None, None, None, None, np.empty((2, 4, 4)), np.empty(2))

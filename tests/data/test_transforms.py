import pytest
import torch

from lightning_cam.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WSOLEvalTransform,
    WSOLTrainTransform,
    crop_boxes,
    hflip_boxes,
    mask_to_box,
    normalize_image,
    resize_boxes,
)


def box_sample(height: int, width: int, box: tuple[int, int, int, int]) -> dict:
    """An image whose mask is exactly the box, so box and mask can be compared after a transform."""
    x0, y0, x1, y1 = box
    mask = torch.zeros(height, width, dtype=torch.uint8)
    mask[y0:y1, x0:x1] = 1
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    return {"image": image, "boxes": torch.tensor([box], dtype=torch.float32), "mask": mask, "image_id": "x"}


def test_normalize_image_matches_imagenet_constants():
    image = torch.rand(3, 5, 7)
    expected = (image - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(normalize_image(image), expected)
    torch.testing.assert_close(normalize_image((image * 255).round().to(torch.uint8)), expected, atol=3e-2, rtol=0)
    assert normalize_image(torch.rand(2, 3, 4, 4)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="RGB image"):
        normalize_image(torch.rand(1, 4, 4))


def test_resize_boxes_exact_arithmetic():
    boxes = torch.tensor([[10.0, 5.0, 40.0, 25.0]])
    # 60x40 image (W x H) to 224x224: x * 224/60, y * 224/40.
    out = resize_boxes(boxes, (40, 60), (224, 224))
    expected = torch.tensor([[10 * 224 / 60, 5 * 224 / 40, 40 * 224 / 60, 25 * 224 / 40]])
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        resize_boxes(torch.zeros(4), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="in_size"):
        resize_boxes(boxes, (0, 5), (1, 1))
    with pytest.raises(TypeError, match="tensor"):
        resize_boxes([[0, 0, 1, 1]], (1, 1), (1, 1))


def test_crop_boxes_clips_and_drops_only_boxes_fully_outside():
    boxes = torch.tensor([[5.0, 5.0, 50.0, 50.0], [0.0, 0.0, 10.0, 10.0], [12.0, 30.0, 20.0, 40.0]])
    out = crop_boxes(boxes, top=10, left=10, height=20, width=20)
    # The first box is clipped to the crop, the second only touches its corner (no area), the third pokes in.
    assert out.tolist() == [[0.0, 0.0, 20.0, 20.0]]
    out = crop_boxes(boxes, top=25, left=10, height=20, width=20)
    assert out.tolist() == [[0.0, 0.0, 20.0, 20.0], [2.0, 5.0, 10.0, 15.0]]
    assert crop_boxes(torch.zeros(0, 4), 0, 0, 5, 5).shape == (0, 4)
    with pytest.raises(ValueError, match="positive size"):
        crop_boxes(boxes, 0, 0, 0, 5)


def test_hflip_boxes_is_an_involution():
    boxes = torch.tensor([[1.0, 2.0, 4.0, 6.0], [0.0, 0.0, 10.0, 3.0]])
    assert hflip_boxes(boxes, 10).tolist() == [[6.0, 2.0, 9.0, 6.0], [0.0, 0.0, 10.0, 3.0]]
    torch.testing.assert_close(hflip_boxes(hflip_boxes(boxes, 10), 10), boxes)


def test_mask_to_box_convention_and_ignore_value():
    mask = torch.zeros(6, 8, dtype=torch.uint8)
    mask[2, 3] = 1
    assert mask_to_box(mask).tolist() == [[3.0, 2.0, 4.0, 3.0]]
    mask[:, 0] = 255  # ignore pixels are not foreground
    assert mask_to_box(mask).tolist() == [[3.0, 2.0, 4.0, 3.0]]
    assert mask_to_box(torch.zeros(3, 3, dtype=torch.bool)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        mask_to_box(torch.zeros(1, 3, 3))


def test_eval_transform_scales_boxes_and_masks_exactly():
    sample = box_sample(40, 60, (12, 8, 36, 28))
    out = WSOLEvalTransform(size=30)(sample)
    assert out["image"].shape == (3, 30, 30)
    assert out["image"].dtype == torch.float32
    assert out["mask"].shape == (30, 30)
    assert out["mask"].dtype == torch.uint8
    # x scales by 30/60 = 0.5, y by 30/40 = 0.75.
    assert out["boxes"].tolist() == [[6.0, 6.0, 18.0, 21.0]]
    # With exact scale factors the nearest-resized mask is exactly the scaled box.
    assert mask_to_box(out["mask"]).tolist() == out["boxes"].tolist()
    assert out["image_id"] == "x"
    assert sample["image"].dtype == torch.uint8  # the input sample is not modified


def test_eval_transform_keeps_ignore_value_and_validates():
    sample = box_sample(20, 20, (2, 2, 10, 10))
    sample["mask"][15:, 15:] = 255
    out = WSOLEvalTransform(size=10)(sample)
    assert set(out["mask"].unique().tolist()) == {0, 1, 255}
    with pytest.raises(ValueError, match="positive int"):
        WSOLEvalTransform(size=0)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        WSOLEvalTransform(size=8)({"image": torch.zeros(1, 4, 4), "boxes": torch.zeros(0, 4)})
    bad = box_sample(20, 20, (2, 2, 10, 10))
    bad["mask"] = torch.zeros(5, 5, dtype=torch.uint8)
    with pytest.raises(ValueError, match="mask"):
        WSOLEvalTransform(size=8)(bad)


@pytest.mark.parametrize("seed", range(20))
def test_train_transform_boxes_still_enclose_the_mask(seed: int):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 100)
    height, width = (int(v) for v in torch.randint(30, 90, (2,), generator=generator))
    x0, y0 = (int(v) for v in torch.randint(0, 20, (2,), generator=generator))
    box = (x0, y0, min(width, x0 + 5 + seed), min(height, y0 + 8 + seed))
    out = WSOLTrainTransform(resize_size=40, crop_size=32)(box_sample(height, width, box))
    assert out["image"].shape == (3, 32, 32)
    assert out["mask"].shape == (32, 32)
    boxes = out["boxes"]
    assert ((boxes >= 0) & (boxes <= 32)).all()
    mask_box = mask_to_box(out["mask"])
    if mask_box.numel() == 0:
        # The object left the crop: its box may only survive as a sliver thinner than a pixel.
        assert boxes.numel() == 0 or ((boxes[:, 2:] - boxes[:, :2]).min() < 1.5)
        return
    assert boxes.shape == (1, 4)
    # Nearest-neighbour resizing moves mask edges by less than one (resized) pixel.
    assert (mask_box[0, :2] >= boxes[0, :2] - 1).all()
    assert (mask_box[0, 2:] <= boxes[0, 2:] + 1).all()
    torch.testing.assert_close(mask_box, boxes, atol=1.0, rtol=0)


def test_train_transform_flip_mirrors_image_boxes_and_mask_together():
    sample = box_sample(32, 32, (2, 4, 10, 20))
    flipped = WSOLTrainTransform(resize_size=32, crop_size=32, flip_prob=1.0)(sample)
    kept = WSOLTrainTransform(resize_size=32, crop_size=32, flip_prob=0.0)(sample)
    assert kept["boxes"].tolist() == [[2.0, 4.0, 10.0, 20.0]]
    assert flipped["boxes"].tolist() == [[22.0, 4.0, 30.0, 20.0]]
    torch.testing.assert_close(flipped["image"], kept["image"].flip(-1))
    assert mask_to_box(flipped["mask"]).tolist() == flipped["boxes"].tolist()


def test_train_transform_crop_offsets_cover_the_margin():
    sample = box_sample(16, 16, (4, 4, 8, 8))
    torch.manual_seed(0)
    corners = set()
    for _ in range(100):
        out = WSOLTrainTransform(resize_size=16, crop_size=14, flip_prob=0.0)(sample)
        corners.add(tuple(out["boxes"][0, :2].tolist()))
        assert mask_to_box(out["mask"]).tolist() == out["boxes"].tolist()
    # Crop offsets (top, left) range over {0, 1, 2}, moving the box corner from 4 to 4 - offset.
    assert corners == {(x, y) for x in (2.0, 3.0, 4.0) for y in (2.0, 3.0, 4.0)}


def test_train_transform_validates_arguments():
    with pytest.raises(ValueError, match="crop_size"):
        WSOLTrainTransform(resize_size=200, crop_size=224)
    with pytest.raises(ValueError, match="flip_prob"):
        WSOLTrainTransform(flip_prob=1.5)
    with pytest.raises(ValueError, match="resize_size"):
        WSOLTrainTransform(resize_size=0)
    assert "crop_size=224" in repr(WSOLTrainTransform())

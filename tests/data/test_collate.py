import pytest
import torch

from lightning_cam.data import wsol_collate


def sample(n_boxes: int, image_id: str, with_mask: bool = True) -> dict:
    out = {
        "image": torch.rand(3, 8, 6),
        "label": torch.tensor(n_boxes, dtype=torch.long),
        "boxes": torch.rand(n_boxes, 4),
        "image_id": image_id,
    }
    if with_mask:
        out["mask"] = torch.zeros(8, 6, dtype=torch.uint8)
    return out


def test_collate_stacks_fixed_shapes_and_lists_variable_ones():
    samples = [sample(1, "a"), sample(3, "b"), sample(0, "c")]
    batch = wsol_collate(samples)
    assert batch["image"].shape == (3, 3, 8, 6)
    assert batch["label"].dtype == torch.long
    assert batch["label"].tolist() == [1, 3, 0]
    assert [b.shape for b in batch["boxes"]] == [(1, 4), (3, 4), (0, 4)]
    assert batch["mask"].shape == (3, 8, 6)
    assert batch["mask"].dtype == torch.uint8
    assert batch["image_id"] == ["a", "b", "c"]
    torch.testing.assert_close(batch["image"][1], samples[1]["image"])


def test_collate_drops_masks_unless_every_sample_has_one():
    batch = wsol_collate([sample(1, "a"), sample(1, "b", with_mask=False)])
    assert "mask" not in batch


def test_collate_errors():
    with pytest.raises(ValueError, match="at least one sample"):
        wsol_collate([])
    broken = sample(1, "a")
    del broken["label"]
    with pytest.raises(ValueError, match="missing"):
        wsol_collate([broken])
    other = sample(1, "b")
    other["image"] = torch.rand(3, 4, 4)
    with pytest.raises(ValueError, match="one shape"):
        wsol_collate([sample(1, "a"), other])

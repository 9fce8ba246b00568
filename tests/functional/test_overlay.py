import matplotlib
import numpy as np
import pytest
import torch

from lightning_cam.functional import apply_colormap, draw_boxes, overlay_cams, to_uint8_images


def test_to_uint8_undoes_normalisation():
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    raw = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    normalised = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out = to_uint8_images(normalised, mean, std)
    assert out.dtype == torch.uint8
    assert (out.int() - (raw * 255).round().int()).abs().max() <= 1


def test_to_uint8_grey_and_errors():
    assert to_uint8_images(torch.ones(1, 1, 2, 2)).shape == (1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\)"):
        to_uint8_images(torch.ones(1, 2, 2, 2))
    with pytest.raises(ValueError, match="both `mean` and `std`"):
        to_uint8_images(torch.ones(1, 3, 2, 2), mean=[0, 0, 0])
    with pytest.raises(ValueError, match="3 values"):
        to_uint8_images(torch.ones(1, 3, 2, 2), mean=[0, 0], std=[1, 1])
    with pytest.raises(ValueError, match="float images"):
        to_uint8_images(torch.ones(1, 3, 2, 2, dtype=torch.uint8), mean=[0] * 3, std=[1] * 3)


def test_apply_colormap_matches_matplotlib():
    maps = torch.linspace(0, 1, 256).view(1, 16, 16)
    ours = apply_colormap(maps, "viridis")[0].permute(1, 2, 0).numpy()
    ref = matplotlib.colormaps["viridis"](np.linspace(0, 1, 256).reshape(16, 16))[..., :3]
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    with pytest.raises(ValueError, match="colormap name"):
        apply_colormap(maps, "not-a-map")


def test_overlay_blends_heat_on_image():
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    cams = torch.zeros(1, 1, 2, 2)
    cams[0, 0, 0, 0] = 1.0
    out = overlay_cams(images, cams, colormap="gray", alpha=1.0)
    # Gray colormap with alpha 1: the overlay is the upsampled, normalised map itself.
    assert out[0, 0, 0, 0] == 255
    assert out[0, 0, 7, 7] == 0
    assert torch.equal(overlay_cams(images, cams, alpha=0.0), images.expand(1, 3, 8, 8))


def test_overlay_errors():
    with pytest.raises(ValueError, match="alpha"):
        overlay_cams(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2), alpha=1.5)
    with pytest.raises(ValueError, match="one CAM per image"):
        overlay_cams(torch.zeros(2, 3, 4, 4), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, h, w\) or \(B, 1, h, w\)"):
        overlay_cams(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2, 2))


def test_draw_boxes_outline_only_and_empty():
    images = torch.zeros(2, 3, 10, 10, dtype=torch.uint8)
    out = draw_boxes(images, [torch.tensor([[2.0, 2.0, 7.0, 7.0]]), torch.zeros(0, 4)], color=(255, 0, 0), width=1)
    assert out[0, 0, 2, 2] == 255
    assert out[0, 0, 7, 7] == 255
    assert out[0, 0, 4, 4] == 0
    assert out[0, 1].max() == 0
    assert torch.equal(out[1], images[1])
    with pytest.raises(ValueError, match="one box tensor per image"):
        draw_boxes(images, [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(images.float(), [torch.zeros(0, 4)] * 2)

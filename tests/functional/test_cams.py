import cv2
import numpy as np
import pytest
import torch

from lightning_cam.functional import class_activation_maps, normalize_cams, resolve_target, upsample_cams


def test_class_activation_maps_all_and_selected():
    g = torch.Generator().manual_seed(0)
    features, weight = torch.randn(2, 4, 3, 3, generator=g), torch.randn(5, 4, generator=g)
    full = class_activation_maps(features, weight)
    assert full.shape == (2, 5, 3, 3)
    torch.testing.assert_close(full[1, 2], (weight[2, :, None, None] * features[1]).sum(0))
    torch.testing.assert_close(class_activation_maps(features, weight, [4, 0])[:, 0], full[[0, 1], [4, 0]])


def test_class_activation_maps_follows_feature_dtype():
    features = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    assert class_activation_maps(features, torch.randn(3, 4)).dtype == torch.float64


def test_resolve_target_rejects_bools():
    with pytest.raises(TypeError):
        resolve_target(True, 1, 3)
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, n\)"):
        resolve_target(torch.zeros(1, 1, 1, dtype=torch.long), 1, 3)


def test_normalize_cams_min_max_constant_and_nan():
    cams = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[3.0, 3.0], [3.0, 3.0]]])
    out = normalize_cams(cams)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))
    four_d = normalize_cams(cams.unsqueeze(1))
    torch.testing.assert_close(four_d[:, 0], out)
    with pytest.raises(ValueError, match="finite"):
        normalize_cams(torch.tensor([[[float("nan"), 1.0]]]))
    with pytest.raises(ValueError, match="floating-point"):
        normalize_cams(torch.ones(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(\.\.\., h, w\)"):
        normalize_cams(torch.ones(3))


def test_upsample_bicubic_matches_opencv_inter_cubic():
    # The WSOL evaluator resizes with cv2.INTER_CUBIC; align_corners=False bicubic is the same kernel.
    cam = torch.rand(1, 7, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = upsample_cams(cam, (224, 224), mode="bicubic")[0].numpy()
    ref = cv2.resize(cam[0].numpy(), (224, 224), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_upsample_shapes_and_errors():
    assert upsample_cams(torch.zeros(2, 3, 4, 4), (8, 6)).shape == (2, 3, 8, 6)
    assert upsample_cams(torch.zeros(2, 4, 4), 5, mode="nearest").shape == (2, 5, 5)
    with pytest.raises(ValueError, match="positive"):
        upsample_cams(torch.zeros(1, 4, 4), (0, 3))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        upsample_cams(torch.zeros(4, 4), 8)

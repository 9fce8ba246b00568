import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn
from torchcam.methods import CAM as TorchcamCAM
from torchvision.models import resnet18

from lightning_cam import CAMOutput, FeatureCapture, GAPHead, convert_to_gap, find_gap_head

from .helpers import tiny_cnn


def _features(b: int = 3, k: int = 6, h: int = 5, w: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, k, h, w, generator=torch.Generator().manual_seed(seed))


def test_avg_identity_score_is_mean_of_cam_plus_bias():
    head = GAPHead(6, 5).eval()
    features = _features()
    logits, cams = head(features, return_cams=True)
    assert cams.shape == (3, 5, 5, 4)
    torch.testing.assert_close(logits, cams.mean((2, 3)) + head.fc.bias, atol=1e-6, rtol=0)


def test_cam_matches_explicit_sum_over_channels():
    head = GAPHead(6, 5)
    features = _features()
    expected = (head.fc.weight[:, :, None, None].unsqueeze(0) * features.unsqueeze(1)).sum(2)
    torch.testing.assert_close(head.cams(features), expected, atol=1e-6, rtol=0)


def test_max_pool_uses_global_max():
    head = GAPHead(6, 5, pool="max").eval()
    features = _features()
    torch.testing.assert_close(head(features), head.fc(features.amax((2, 3))))
    # The CAM is the same weighted sum whatever the pooling; only the score differs.
    torch.testing.assert_close(head.cams(features), GAPHead.from_linear(head.fc).cams(features))


@pytest.mark.parametrize(
    ("target", "expected"),
    [(None, [0, 1, 2, 3, 4]), (2, [2]), ([1, 4, 0], None), (torch.tensor([3, 3, 1]), None)],
)
def test_target_forms(target, expected):
    head = GAPHead(6, 5)
    features = _features()
    cams = head.cams(features, target)
    full = head.cams(features)
    if expected is not None:
        torch.testing.assert_close(cams, full[:, expected])
    else:
        index = torch.as_tensor(target)
        torch.testing.assert_close(cams[:, 0], full[torch.arange(3), index])


def test_two_dimensional_target_tensor_gives_several_maps_per_sample():
    head = GAPHead(6, 5)
    cams = head.cams(_features(), torch.tensor([[0, 1], [2, 3], [4, 0]]))
    assert cams.shape == (3, 2, 5, 4)


def test_return_cams_is_one_pass_and_matches_separate_calls():
    head = GAPHead(6, 5).eval()
    features = _features()
    out = head(features, return_cams=True, target=[0, 1, 2])
    assert isinstance(out, CAMOutput)
    torch.testing.assert_close(out.logits, head(features))
    torch.testing.assert_close(out.cams, head.cams(features, [0, 1, 2]))


def test_from_linear_shares_the_layer_and_dropout_only_in_training():
    fc = nn.Linear(6, 5)
    head = GAPHead.from_linear(fc, dropout=0.5)
    assert head.fc is fc
    features = _features()
    torch.testing.assert_close(head.eval()(features), fc(features.mean((2, 3))))
    with pytest.raises(TypeError, match="nn.Linear"):
        GAPHead.from_linear(nn.Conv2d(6, 5, 1))


def test_layer_norm_head_keeps_identity():
    norm = nn.LayerNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1, 1)
    head = GAPHead(6, 5, norm=norm).eval()
    features = _features()
    logits, cams = head(features, return_cams=True)
    torch.testing.assert_close(logits, cams.mean((2, 3)) + head.cam_bias, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 0, "num_classes": 3}, "positive"),
        ({"in_channels": 4, "num_classes": 3, "pool": "sum"}, "'avg' or 'max'"),
        ({"in_channels": 4, "num_classes": 3, "dropout": 1.0}, r"\[0, 1\)"),
        ({"in_channels": 4, "num_classes": 3, "norm": nn.LayerNorm(5)}, "LayerNorm"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GAPHead(**kwargs)


def test_bad_inputs_name_expected_and_given():
    head = GAPHead(6, 5)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\), got shape \(6, 5, 4\)"):
        head.cams(torch.zeros(6, 5, 4))
    with pytest.raises(ValueError, match="6 channels, got 7"):
        head(torch.zeros(1, 7, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 5\), got values in \[5, 5\]"):
        head.cams(_features(), target=5)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        head.cams(_features(), target=-1)
    with pytest.raises(ValueError, match="one `target` per sample"):
        head.cams(_features(), target=[0, 1])
    with pytest.raises(TypeError, match="integer `target`"):
        head.cams(_features(), target=torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="target"):
        head.cams(_features(), target="cat")
    bad = _features()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite values in `features`"):
        head.cams(bad)
    with torch.no_grad():
        head.fc.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="finite values in `weight`"):
        head.cams(_features())


def test_cams_equal_torchcam_and_captum_on_random_resnet18():
    torch.manual_seed(0)
    net = resnet18(num_classes=10).eval()
    cam_net = convert_to_gap(net).eval()
    x = torch.rand(2, 3, 64, 64)
    target = [3, 7]
    ours = cam_net.cams(x, target)[:, 0]
    with TorchcamCAM(net, target_layer="layer4", fc_layer="fc", input_shape=(3, 64, 64)) as extractor:
        scores = net(x)
        (theirs,) = extractor(target, scores, normalized=False)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    gradcam = LayerGradCam(net, net.layer4).attribute(x, target=target)[:, 0]
    h, w = ours.shape[-2:]
    # For a GAP network dS_c/dA_k(x, y) = w_k^c / (h w), so Grad-CAM is CAM scaled by 1 / (h w).
    torch.testing.assert_close(gradcam * (h * w), ours, atol=1e-5, rtol=1e-5)


def test_cams_equal_captum_and_torchcam_on_tiny_cnn():
    torch.manual_seed(1)
    model = tiny_cnn(num_classes=4).eval()
    x = torch.rand(3, 3, 16, 16)
    ours = model.cams(x, [0, 1, 3])[:, 0]
    gradcam = LayerGradCam(model, model.backbone[-1]).attribute(x, target=[0, 1, 3])[:, 0]
    torch.testing.assert_close(gradcam * ours[0].numel(), ours, atol=1e-5, rtol=1e-5)
    with TorchcamCAM(model, target_layer="backbone", fc_layer="head.fc", input_shape=(3, 16, 16)) as extractor:
        (theirs,) = extractor([0, 1, 3], model(x), normalized=False)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_find_gap_head_cases():
    model = tiny_cnn()
    assert find_gap_head(model) is model.head
    assert find_gap_head(model, "head") is model.head
    with pytest.raises(ValueError, match="convert_to_gap"):
        find_gap_head(nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match="head="):
        find_gap_head(nn.ModuleList([GAPHead(2, 2), GAPHead(2, 2)]))
    with pytest.raises(ValueError, match="to be a GAPHead, got Sequential"):
        find_gap_head(model, "backbone")
    with pytest.raises(ValueError, match="name a submodule"):
        find_gap_head(model, "nope")


def test_feature_capture_takes_head_input_and_removes_hook():
    model = tiny_cnn().eval()
    x = torch.rand(2, 3, 8, 8)
    with FeatureCapture(model.head) as capture:
        out = model(x)
        features = capture.pop()
    assert capture.features is None
    torch.testing.assert_close(model.head(features), out)
    assert not model.head._forward_pre_hooks


def test_pool_is_validated_when_set_later():
    head = GAPHead(4, 2)
    head.pool = "max"
    assert head.pool == "max"
    with pytest.raises(ValueError, match="'avg' or 'max', got 'sum'"):
        head.pool = "sum"
    with pytest.raises(ValueError, match="'avg' or 'max'"):
        convert_to_gap(resnet18(num_classes=2), pool="sum")

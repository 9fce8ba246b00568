import socket

import pytest
import torch
from torchvision import models as tvm

from lightning_cam import GAPClassifier, GAPHead, convert_to_gap, inception_v3_gap, resnet50_gap, vgg16_gap

CONVERTIBLE = [
    (tvm.resnet18, 64),
    (tvm.resnext50_32x4d, 64),
    (tvm.wide_resnet50_2, 64),
    (tvm.densenet121, 64),
    (tvm.mobilenet_v2, 64),
    (tvm.efficientnet_b0, 64),
    (tvm.efficientnet_v2_s, 64),
    (tvm.regnet_y_400mf, 64),
    (tvm.convnext_tiny, 64),
    (tvm.shufflenet_v2_x0_5, 64),
    (tvm.mnasnet0_5, 64),
    (tvm.inception_v3, 96),
    (tvm.googlenet, 64),
]


@pytest.mark.parametrize(("builder", "size"), CONVERTIBLE, ids=[b.__name__ for b, _ in CONVERTIBLE])
def test_convert_keeps_logits(builder, size):
    torch.manual_seed(0)
    kwargs = {"init_weights": True} if builder in (tvm.inception_v3, tvm.googlenet) else {}
    if builder is tvm.googlenet:
        kwargs["aux_logits"] = False
    net = builder(num_classes=7, **kwargs).eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected = net(x)
        cam_net = convert_to_gap(net).eval()
        out = cam_net(x, return_cams=True, target=[1, 6])
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-4)
    # The score is the spatial mean of the CAM plus a bias: the identity the whole library relies on.
    torch.testing.assert_close(
        out.cams.mean((2, 3))[:, 0], (expected - cam_net.head.cam_bias)[[0, 1], [1, 6]], atol=1e-4, rtol=1e-4
    )


def test_convert_shares_trained_parameters():
    net = tvm.resnet18(num_classes=3)
    cam_net = convert_to_gap(net)
    assert cam_net.head.fc is net.fc
    assert cam_net.backbone[-1] is net.layer4
    assert cam_net.training == net.training


def test_convert_transform_input_is_kept():
    torch.manual_seed(0)
    net = tvm.inception_v3(num_classes=4, aux_logits=False, init_weights=True, transform_input=True).eval()
    x = torch.rand(1, 3, 96, 96)
    torch.testing.assert_close(convert_to_gap(net).eval()(x), net(x), atol=1e-5, rtol=1e-4)


def test_convert_max_pool_ablation():
    cam_net = convert_to_gap(tvm.resnet18(num_classes=3), pool="max").eval()
    features = cam_net.forward_features(torch.rand(1, 3, 64, 64))
    torch.testing.assert_close(cam_net.forward_head(features), cam_net.head.fc(features.amax((2, 3))))


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (tvm.mobilenet_v3_small(num_classes=3), "MLP"),
        (tvm.vgg11(num_classes=3), "vgg16_gap"),
        (tvm.squeezenet1_0(num_classes=3), "ReLU before pooling"),
        (torch.nn.Linear(3, 3), None),
    ],
)
def test_unsupported_models_name_what_was_found(model, reason):
    with pytest.raises(TypeError, match=type(model).__name__) as info:
        convert_to_gap(model)
    assert "ResNet" in str(info.value)
    if reason:
        assert reason in str(info.value)


def test_wsol_architectures_shapes_and_documented_changes():
    torch.manual_seed(0)
    vgg = vgg16_gap(num_classes=5).eval()
    assert isinstance(vgg, GAPClassifier)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in list(vgg.backbone)[-5:])
    assert vgg.backbone[-2].out_channels == 1024
    resnet = resnet50_gap(num_classes=5, pool="max").eval()
    assert resnet.head.pool == "max"
    assert resnet.backbone[-1][0].conv2.stride == (1, 1)
    with torch.no_grad():
        assert resnet.cams(torch.rand(1, 3, 64, 64), 0).shape == (1, 1, 4, 4)
        inception = inception_v3_gap(num_classes=5).eval()
        assert inception(torch.rand(1, 3, 96, 96)).shape == (1, 5)
    assert isinstance(inception.head, GAPHead)


@pytest.mark.parametrize("builder", [vgg16_gap, resnet50_gap, inception_v3_gap])
def test_weights_offline_fail_fast_with_clear_message(builder, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    timeouts = []

    def unreachable(address, timeout=None, *args, **kwargs):
        timeouts.append(timeout)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(RuntimeError, match="weights=None") as info:
        builder(num_classes=3, weights="IMAGENET1K_V1")
    assert str(tmp_path) in str(info.value)
    # A bounded connection probe is what keeps an offline machine from hanging on the download.
    assert timeouts
    assert all(t is not None and t <= 10 for t in timeouts)


def test_unknown_weights_name():
    with pytest.raises(ValueError, match="weights for torchvision's 'vgg16'"):
        vgg16_gap(weights="NOT_A_WEIGHT")

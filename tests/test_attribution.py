import matplotlib
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from captum.attr import visualization as viz
from captum.metrics import infidelity, sensitivity_max
from torchvision.models import resnet18

from lightning_cam import GAPHead, convert_to_gap, vgg16_gap
from lightning_cam.attribution import CAMAttribution

from .helpers import tiny_cnn

matplotlib.use("Agg")


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_gap"])
def test_equals_layer_grad_cam_up_to_h_times_w(arch):
    torch.manual_seed(0)
    if arch == "resnet18":
        model = convert_to_gap(resnet18(num_classes=6)).eval()
        size = 64
    else:
        model = vgg16_gap(num_classes=6).eval()
        size = 32
    x = torch.rand(2, 3, size, size)
    target = [2, 5]
    ours = CAMAttribution(model).attribute(x, target=target)
    gradcam = LayerGradCam(model, model.backbone).attribute(x, target=target)
    assert ours.shape == gradcam.shape == (2, 1, *ours.shape[-2:])
    h, w = ours.shape[-2:]
    torch.testing.assert_close(gradcam * (h * w), ours, atol=1e-5, rtol=1e-4)
    relu = CAMAttribution(model).attribute(x, target=target, relu_attributions=True)
    torch.testing.assert_close(relu, ours.clamp(min=0))


def test_target_forms_match_captum_conventions():
    model = tiny_cnn(num_classes=5).eval()
    x = torch.rand(3, 3, 8, 8)
    cam = CAMAttribution(model)
    full = model.cams(x)
    torch.testing.assert_close(cam.attribute(x, target=4)[:, 0], full[:, 4])
    torch.testing.assert_close(cam.attribute(x, target=(1, 2, 3))[:, 0], full[[0, 1, 2], [1, 2, 3]])
    torch.testing.assert_close(cam.attribute(x, target=torch.tensor(2))[:, 0], full[:, 2])
    top1 = model(x).argmax(1)
    torch.testing.assert_close(cam.attribute(x)[:, 0], full[torch.arange(3), top1])


def test_no_grad_inference_mode_restores_mode_and_hooks():
    model = tiny_cnn().train()
    x = torch.rand(2, 3, 8, 8)
    cam = CAMAttribution(model)
    with torch.inference_mode():
        a = cam.attribute(x, target=1)
    with torch.no_grad():
        b = cam.attribute(x, target=1)
    torch.testing.assert_close(a, b)
    assert model.training
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_interpolation_and_additional_forward_args():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny_cnn()

        def forward(self, x, scale):
            return self.net(x * scale)

    model = Scaled().eval()
    x = torch.rand(2, 3, 8, 8)
    cam = CAMAttribution(model)
    small = cam.attribute(x, target=0, additional_forward_args=(2.0,))
    torch.testing.assert_close(small[:, 0], model.net.cams(x * 2.0, 0)[:, 0])
    up = cam.attribute(x, target=0, additional_forward_args=2.0, interpolate_to="input")
    assert up.shape == (2, 1, 8, 8)
    torch.testing.assert_close(up, LayerAttribution.interpolate(small, (8, 8), "bilinear"))


def test_works_with_captum_visualisation_and_metrics():
    torch.manual_seed(0)
    model = tiny_cnn(num_classes=3).eval()
    x = torch.rand(2, 3, 16, 16)
    cam = CAMAttribution(model)
    attr = cam.attribute(x, target=[0, 2], interpolate_to="input").expand_as(x).contiguous()
    fig, _ = viz.visualize_image_attr(
        attr[0].permute(1, 2, 0).numpy(), x[0].permute(1, 2, 0).numpy(), method="blended_heat_map", use_pyplot=False
    )
    assert fig.axes

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.01
        return noise, inputs - noise

    infid = infidelity(model, perturb, x, attr, target=[0, 2], n_perturb_samples=4)
    assert infid.shape == (2,)
    assert torch.isfinite(infid).all()

    def explain(inputs, target):
        # Captum's explanation functions return a tuple for tuple inputs, as sensitivity_max passes them.
        images = inputs[0] if isinstance(inputs, tuple) else inputs
        attr = cam.attribute(inputs, target=target, interpolate_to="input").expand_as(images).contiguous()
        return (attr,) if isinstance(inputs, tuple) else attr

    sens = sensitivity_max(explain, x, target=[0, 2], n_perturb_samples=3)
    assert sens.shape == (2,)
    assert torch.isfinite(sens).all()


def test_errors():
    model = tiny_cnn(num_classes=3)
    cam = CAMAttribution(model)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cam.attribute(x, target=3)
    with pytest.raises(TypeError, match="tuple targets"):
        cam.attribute(x, target=[(0,), (1,)])
    with pytest.raises(ValueError, match="one `target` per sample"):
        cam.attribute(x, target=[0, 1, 2])
    with pytest.raises(ValueError, match="one target class per sample"):
        cam.attribute(x, target=torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(TypeError, match="tensor"):
        cam.attribute("image")
    with pytest.raises(ValueError, match="convert_to_gap"):
        CAMAttribution(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="nn.Module"):
        CAMAttribution(lambda x: x)
    with pytest.raises(ValueError, match="channels"):
        CAMAttribution(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), GAPHead(5, 2))).attribute(x, target=0)

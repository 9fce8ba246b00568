"""CAM-ready classifiers: ``GAPClassifier``, ``convert_to_gap`` for torchvision models, and the WSOL architectures."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision import models as tvm

from lightning_cam.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lightning_cam.functional.cams import Target
from lightning_cam.heads import CAMOutput, GAPHead, PoolType

__all__ = ["GAPClassifier", "convert_to_gap", "inception_v3_gap", "resnet50_gap", "vgg16_gap"]


class GAPClassifier(nn.Module):
    """A backbone producing conv features followed by a :class:`GAPHead`.

    Follows timm's ``forward_features`` / ``forward_head`` split, so logits and CAMs come from one pass.

    Args:
        backbone: module mapping images ``(B, 3, H, W)`` to features ``(B, K, h, w)``.
        head: the classifier head.

    Example:
        >>> model = GAPClassifier(nn.Conv2d(3, 8, 3, padding=1), GAPHead(8, 5)).eval()
        >>> out = model(torch.rand(2, 3, 16, 16), return_cams=True, target=[1, 4])
        >>> out.logits.shape, out.cams.shape
        (torch.Size([2, 5]), torch.Size([2, 1, 16, 16]))
    """

    def __init__(self, backbone: nn.Module, head: GAPHead) -> None:
        super().__init__()
        if not isinstance(head, GAPHead):
            raise TypeError(f"Expected `head` to be a GAPHead, got {type(head).__name__}.")
        self.backbone = backbone
        self.head = head

    @property
    def num_classes(self) -> int:
        """Number of classes of the head."""
        return self.head.num_classes

    def forward_features(self, images: Tensor) -> Tensor:
        """Conv features ``(B, K, h, w)`` of the last layer."""
        return self.backbone(images)

    def forward_head(self, features: Tensor, return_cams: bool = False, target: Target = None) -> Tensor | CAMOutput:
        """Apply the head; see :meth:`GAPHead.forward`."""
        return self.head(features, return_cams=return_cams, target=target)

    def forward(self, images: Tensor, return_cams: bool = False, target: Target = None) -> Tensor | CAMOutput:
        """Logits ``(B, C)``, or ``CAMOutput(logits, cams)`` with ``return_cams=True``."""
        return self.forward_head(self.forward_features(images), return_cams=return_cams, target=target)

    def cams(self, images: Tensor, target: Target = None) -> Tensor:
        """CAMs ``(B, n, h, w)`` at feature resolution for ``target`` (all classes by default)."""
        return self.head.cams(self.forward_features(images), target)


class _ChannelAffine(nn.Module):
    """Per-channel ``x * scale + shift``: torchvision's ``transform_input`` of Inception/GoogLeNet as a module."""

    def __init__(self, scale: list[float], shift: list[float]) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def _imagenet_input_transform() -> _ChannelAffine:
    # Maps ImageNet-normalised inputs to the (x - 0.5) / 0.5 normalisation Google's weights were trained with.
    return _ChannelAffine([s / 0.5 for s in IMAGENET_STD], [(m - 0.5) / 0.5 for m in IMAGENET_MEAN])


def _linear_and_dropout(classifier: nn.Module, model_name: str) -> tuple[nn.Linear, float]:
    """Split ``Linear`` or ``Sequential(Dropout, Linear)`` into the layer and the dropout probability."""
    if isinstance(classifier, nn.Linear):
        return classifier, 0.0
    layers = list(classifier) if isinstance(classifier, nn.Sequential) else []
    if len(layers) == 2 and isinstance(layers[0], nn.Dropout) and isinstance(layers[1], nn.Linear):
        return layers[1], float(layers[0].p)
    raise ValueError(
        f"Expected {model_name}'s classifier to be Linear or Sequential(Dropout, Linear) after pooling, "
        f"got {classifier!r}. CAMs need a single linear layer after global average pooling."
    )


def _sequential(model: nn.Module, names: list[str]) -> nn.Sequential:
    return nn.Sequential(*(getattr(model, name) for name in names))


def _convert_resnet(model: tvm.ResNet) -> tuple[nn.Module, GAPHead]:
    backbone = _sequential(model, ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"])
    return backbone, GAPHead.from_linear(model.fc)


def _convert_densenet(model: tvm.DenseNet) -> tuple[nn.Module, GAPHead]:
    # DenseNet applies a functional ReLU before pooling; it belongs to the features the CAM is built on.
    return nn.Sequential(model.features, nn.ReLU()), GAPHead.from_linear(model.classifier)


def _convert_features_classifier(model: nn.Module) -> tuple[nn.Module, GAPHead]:
    linear, dropout = _linear_and_dropout(model.classifier, type(model).__name__)
    return model.features, GAPHead.from_linear(linear, dropout=dropout)


def _convert_regnet(model: tvm.RegNet) -> tuple[nn.Module, GAPHead]:
    return _sequential(model, ["stem", "trunk_output"]), GAPHead.from_linear(model.fc)


def _convert_convnext(model: tvm.ConvNeXt) -> tuple[nn.Module, GAPHead]:
    norm2d, _, linear = model.classifier
    # LayerNorm2d on a (B, K, 1, 1) tensor is a LayerNorm over K: rebuild it as a 1-D LayerNorm sharing parameters.
    norm = nn.LayerNorm(norm2d.normalized_shape, eps=norm2d.eps, elementwise_affine=norm2d.elementwise_affine)
    norm.weight, norm.bias = norm2d.weight, norm2d.bias
    return model.features, GAPHead.from_linear(linear, norm=norm)


def _convert_shufflenet(model: tvm.ShuffleNetV2) -> tuple[nn.Module, GAPHead]:
    backbone = _sequential(model, ["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"])
    return backbone, GAPHead.from_linear(model.fc)


def _convert_mnasnet(model: tvm.MNASNet) -> tuple[nn.Module, GAPHead]:
    linear, dropout = _linear_and_dropout(model.classifier, "MNASNet")
    return model.layers, GAPHead.from_linear(linear, dropout=dropout)


_INCEPTION_TRUNK = [
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
]  # fmt: skip


def _convert_inception(model: tvm.Inception3) -> tuple[nn.Module, GAPHead]:
    layers = [getattr(model, name) for name in [*_INCEPTION_TRUNK, "Mixed_7a", "Mixed_7b", "Mixed_7c"]]
    if model.transform_input:
        layers.insert(0, _imagenet_input_transform())
    return nn.Sequential(*layers), GAPHead.from_linear(model.fc, dropout=float(model.dropout.p))


def _convert_googlenet(model: tvm.GoogLeNet) -> tuple[nn.Module, GAPHead]:
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3"]
    names += ["inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4"]
    layers = [getattr(model, name) for name in [*names, "inception5a", "inception5b"]]
    if model.transform_input:
        layers.insert(0, _imagenet_input_transform())
    return nn.Sequential(*layers), GAPHead.from_linear(model.fc, dropout=float(model.dropout.p))


_CONVERTERS: dict[type[nn.Module], Callable[..., tuple[nn.Module, GAPHead]]] = {
    tvm.ResNet: _convert_resnet,
    tvm.DenseNet: _convert_densenet,
    tvm.MobileNetV2: _convert_features_classifier,
    tvm.EfficientNet: _convert_features_classifier,
    tvm.RegNet: _convert_regnet,
    tvm.ConvNeXt: _convert_convnext,
    tvm.ShuffleNetV2: _convert_shufflenet,
    tvm.MNASNet: _convert_mnasnet,
    tvm.Inception3: _convert_inception,
    tvm.GoogLeNet: _convert_googlenet,
}

_WHY_NOT: dict[type[nn.Module], str] = {
    tvm.MobileNetV3: "its classifier is an MLP (Linear-Hardswish-Dropout-Linear) after pooling, so the class score "
    "is not a linear function of the pooled features",
    tvm.VGG: "it flattens a 7x7 map into fully connected layers; use `vgg16_gap` (the CAM paper's VGGnet-GAP)",
    tvm.AlexNet: "it flattens a 6x6 map into fully connected layers",
    tvm.SqueezeNet: "its classifier is a convolution followed by ReLU before pooling",
}


def convert_to_gap(model: nn.Module, pool: PoolType = "avg") -> GAPClassifier:
    """Turn a torchvision classifier that ends in global average pooling + linear into a :class:`GAPClassifier`.

    The trained modules are reused (not copied): the result shares parameters with ``model`` and, with
    ``pool="avg"``, returns the same logits. Supported: ResNet / ResNeXt / Wide-ResNet, DenseNet, MobileNetV2,
    EfficientNet (v1 and v2), RegNet, ConvNeXt, ShuffleNetV2, MNASNet, Inception-v3 and GoogLeNet (their
    auxiliary classifiers are dropped; ``transform_input`` is kept as a first layer).

    Args:
        model: a torchvision classification model.
        pool: ``"avg"`` keeps the model's function; ``"max"`` swaps in global max pooling for ablations.

    Returns:
        ``GAPClassifier(backbone, head)``.

    Raises:
        TypeError: for a model that is not a supported architecture, naming what was found and what is supported.

    Example:
        >>> net = tvm.resnet18(num_classes=10).eval()
        >>> cam_net = convert_to_gap(net).eval()
        >>> x = torch.rand(1, 3, 64, 64)
        >>> torch.allclose(net(x), cam_net(x), atol=1e-5)
        True
    """
    converter = next((fn for cls, fn in _CONVERTERS.items() if isinstance(model, cls)), None)
    if converter is None:
        supported = ", ".join(sorted(cls.__name__ for cls in _CONVERTERS))
        reason = next((why for cls, why in _WHY_NOT.items() if isinstance(model, cls)), None)
        detail = f" ({reason})" if reason else ""
        raise TypeError(
            f"Expected a torchvision classifier ending in global average pooling + linear ({supported}), "
            f"got {type(model).__name__}{detail}. Build your own GAPClassifier(backbone, GAPHead(...)) instead."
        )
    backbone, head = converter(model)
    head.pool = pool
    return GAPClassifier(backbone, head).train(model.training)


def _checked_weights(name: str, weights: object) -> tvm.WeightsEnum | None:
    """Resolve ``weights`` for torchvision's ``name`` builder, failing fast (no hang) when they cannot be fetched."""
    if weights is None:
        return None
    try:
        resolved = tvm.get_model_weights(name).verify(weights)
    except (ValueError, KeyError) as err:
        raise ValueError(f"Expected weights for torchvision's {name!r}, got {weights!r}: {err}") from None
    url = resolved.url
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    if os.path.isfile(cached):
        return resolved
    host = urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as err:
        raise RuntimeError(
            f"Cannot download {resolved} from {url} ({err}). Without internet access, copy the file to {cached} "
            "or pass weights=None for random initialisation."
        ) from None
    return resolved


def vgg16_gap(
    num_classes: int = 1000, weights: str | tvm.WeightsEnum | None = None, pool: PoolType = "avg"
) -> GAPClassifier:
    """The CAM paper's VGGnet-GAP (Zhou et al., 2016) built from torchvision's VGG16.

    Changes from ``torchvision.models.vgg16``: every layer after conv5_3 + ReLU is removed (pool5 and the
    three fully connected layers), then a 3x3 convolution with 1024 units (stride 1, padding 1) + ReLU, global
    average pooling and a linear layer are added. Maps are 14x14 for 224x224 inputs. With ``weights`` the
    13 VGG convolutions get the ImageNet weights; the new convolution and the classifier start random.

    Args:
        num_classes: classes of the new linear layer.
        weights: torchvision VGG16 weights (e.g. ``"IMAGENET1K_V1"``); needs internet the first time.
        pool: ``"avg"`` or ``"max"`` (ablation).

    Returns:
        A :class:`GAPClassifier`.

    Raises:
        RuntimeError: when weights are requested but cannot be downloaded (fails within seconds).

    Example:
        >>> vgg16_gap(num_classes=200).eval().cams(torch.rand(1, 3, 224, 224), target=3).shape
        torch.Size([1, 1, 14, 14])
    """
    vgg = tvm.vgg16(weights=_checked_weights("vgg16", weights))
    conv5_3 = list(vgg.features)[:30]  # up to conv5_3 + ReLU; index 30 is pool5
    backbone = nn.Sequential(*conv5_3, nn.Conv2d(512, 1024, kernel_size=3, padding=1), nn.ReLU(inplace=True))
    return GAPClassifier(backbone, GAPHead(1024, num_classes, pool=pool))


def resnet50_gap(
    num_classes: int = 1000, weights: str | tvm.WeightsEnum | None = None, pool: PoolType = "avg"
) -> GAPClassifier:
    """ResNet-50 for WSOL, as in Choe et al. (CVPR 2020): layer4 with stride 1 for 14x14 maps at 224x224.

    Changes from ``torchvision.models.resnet50``: the first block of ``layer4`` uses stride 1 (in its 3x3
    convolution and its downsample shortcut), doubling the map resolution without new parameters; the
    classifier is replaced by a :class:`GAPHead` (the ImageNet fc is kept when ``num_classes=1000``).

    Args:
        num_classes: classes of the classifier.
        weights: torchvision ResNet-50 weights (e.g. ``"IMAGENET1K_V2"``); needs internet the first time.
        pool: ``"avg"`` or ``"max"`` (ablation).

    Returns:
        A :class:`GAPClassifier`.

    Raises:
        RuntimeError: when weights are requested but cannot be downloaded (fails within seconds).

    Example:
        >>> resnet50_gap(num_classes=200).eval().cams(torch.rand(1, 3, 224, 224), target=0).shape
        torch.Size([1, 1, 14, 14])
    """
    net = tvm.resnet50(weights=_checked_weights("resnet50", weights))
    block = net.layer4[0]
    block.conv2.stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    backbone, head = _convert_resnet(net)
    if num_classes != net.fc.out_features:
        head = GAPHead(net.fc.in_features, num_classes)
    head.pool = pool
    return GAPClassifier(backbone, head)


def inception_v3_gap(
    num_classes: int = 1000, weights: str | tvm.WeightsEnum | None = None, pool: PoolType = "avg"
) -> GAPClassifier:
    """Inception-v3 for WSOL, following the CAM paper's recipe for deep networks.

    Changes from ``torchvision.models.inception_v3``: everything after ``Mixed_6e`` is removed (``Mixed_7a-c``,
    the auxiliary classifier, the pooling and fc), leaving 17x17 maps at 299x299 (12x12 at 224x224); a 3x3
    convolution with 1024 units + ReLU, global average pooling and a linear layer are added. With
    ``weights`` the trunk gets the ImageNet weights and keeps torchvision's ``transform_input`` as a first layer.

    Args:
        num_classes: classes of the new linear layer.
        weights: torchvision Inception-v3 weights (e.g. ``"IMAGENET1K_V1"``); needs internet the first time.
        pool: ``"avg"`` or ``"max"`` (ablation).

    Returns:
        A :class:`GAPClassifier`.

    Raises:
        RuntimeError: when weights are requested but cannot be downloaded (fails within seconds).

    Example:
        >>> inception_v3_gap(num_classes=200).eval().cams(torch.rand(1, 3, 299, 299), target=0).shape
        torch.Size([1, 1, 17, 17])
    """
    resolved = _checked_weights("inception_v3", weights)
    net = tvm.inception_v3(weights=resolved, aux_logits=True, init_weights=resolved is None)
    layers = [getattr(net, name) for name in _INCEPTION_TRUNK]
    if net.transform_input:
        layers.insert(0, _imagenet_input_transform())
    backbone = nn.Sequential(*layers, nn.Conv2d(768, 1024, kernel_size=3, padding=1), nn.ReLU(inplace=True))
    return GAPClassifier(backbone, GAPHead(1024, num_classes, pool=pool))

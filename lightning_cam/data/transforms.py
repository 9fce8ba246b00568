"""WSOL-standard transforms that move boxes and masks together with the image.

The protocol of Choe et al. (2020, wsolevaluation) for CUB and ImageNet: training images are resized to a square
``resize_size`` (256), randomly cropped to ``crop_size`` (224) and randomly flipped; evaluation images are resized to
``crop_size x crop_size`` with their boxes scaled the same way. Both end with the ImageNet normalisation.

Boxes are ``(n, 4)`` float tensors ``x0, y0, x1, y1`` in the pixel frame of the image: a box spanning pixel columns
``x .. x + w - 1`` has ``x1 = x + w`` (CUB's ``x y w h`` gives ``x0 = x, x1 = x + w``). Masks are uint8 ``(H, W)``
maps resized with nearest-neighbour interpolation so that their values (0, 1, 255 = ignore) survive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of the ImageNet normalisation (RGB, images in ``[0, 1]``)."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of the ImageNet normalisation."""


def _check_boxes(boxes: Tensor) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"Expected `boxes` as a tensor, got {type(boxes).__name__}.")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"Expected `boxes` of shape (n, 4), got {tuple(boxes.shape)}.")


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"Expected `{name}` as two positive ints (height, width), got {size!r}.")
    return int(size[0]), int(size[1])


def normalize_image(image: Tensor) -> Tensor:
    """Scale a uint8 or ``[0, 1]`` float image to float32 and apply the ImageNet normalisation.

    Args:
        image: ``(3, H, W)`` or ``(B, 3, H, W)`` RGB image(s), uint8 in ``[0, 255]`` or float in ``[0, 1]``.

    Returns:
        Float32 tensor of the same shape, ``(x - IMAGENET_MEAN) / IMAGENET_STD``.

    Raises:
        ValueError: for a tensor without 3 channels in dimension ``-3``.

    Example:
        >>> normalize_image(torch.full((3, 1, 1), 255, dtype=torch.uint8)).flatten().tolist()
        [2.248908281326294, 2.4285714626312256, 2.640000104904175]
    """
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"Expected an RGB image of shape (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}.")
    x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def resize_boxes(boxes: Tensor, in_size: Sequence[int], out_size: Sequence[int]) -> Tensor:
    """Scale boxes from an ``in_size`` image to an ``out_size`` image (each ``(height, width)``).

    Args:
        boxes: ``(n, 4)`` boxes ``x0, y0, x1, y1``.
        in_size: ``(H, W)`` of the image the boxes refer to.
        out_size: ``(H', W')`` of the resized image.

    Returns:
        Float32 ``(n, 4)`` boxes multiplied by ``W'/W`` along x and ``H'/H`` along y.

    Example:
        >>> resize_boxes(torch.tensor([[10.0, 20.0, 110.0, 60.0]]), (100, 200), (50, 50)).tolist()
        [[2.5, 10.0, 27.5, 30.0]]
    """
    _check_boxes(boxes)
    in_h, in_w = _check_size(in_size, "in_size")
    out_h, out_w = _check_size(out_size, "out_size")
    scale = torch.tensor([out_w / in_w, out_h / in_h, out_w / in_w, out_h / in_h], dtype=torch.float32)
    return boxes.float() * scale


def crop_boxes(boxes: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """Move boxes into a crop, clip them to it and drop those that fall entirely outside.

    A box keeps whatever part of it lies inside the crop, so a bird half out of the crop keeps the box of its
    visible half. Only boxes with no area left inside the crop are dropped, which may leave an empty ``(0, 4)``
    tensor.

    Args:
        boxes: ``(n, 4)`` boxes ``x0, y0, x1, y1`` in the uncropped image.
        top: first row of the crop.
        left: first column of the crop.
        height: crop height.
        width: crop width.

    Returns:
        Float32 ``(m, 4)`` boxes in the crop's frame, ``m <= n``.

    Example:
        >>> crop_boxes(torch.tensor([[0.0, 0.0, 30.0, 30.0], [0.0, 0.0, 5.0, 5.0]]), 10, 10, 16, 16).tolist()
        [[0.0, 0.0, 16.0, 16.0]]
    """
    _check_boxes(boxes)
    if height <= 0 or width <= 0:
        raise ValueError(f"Expected a crop of positive size, got height={height}, width={width}.")
    shifted = boxes.float() - torch.tensor([left, top, left, top], dtype=torch.float32)
    limits = torch.tensor([width, height, width, height], dtype=torch.float32)
    clipped = shifted.clamp(min=torch.zeros(4), max=limits)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep]


def hflip_boxes(boxes: Tensor, width: int) -> Tensor:
    """Mirror boxes left-right in an image of the given width.

    Args:
        boxes: ``(n, 4)`` boxes ``x0, y0, x1, y1``.
        width: image width ``W``; ``x`` maps to ``W - x``.

    Returns:
        Float32 ``(n, 4)`` boxes ``W - x1, y0, W - x0, y1``.

    Example:
        >>> hflip_boxes(torch.tensor([[1.0, 2.0, 4.0, 5.0]]), width=10).tolist()
        [[6.0, 2.0, 9.0, 5.0]]
    """
    _check_boxes(boxes)
    b = boxes.float()
    return torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1)


def _check_sample(sample: dict[str, Any]) -> tuple[int, int]:
    image = sample.get("image")
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"Expected sample['image'] as a (3, H, W) tensor, got {got}.")
    _check_boxes(sample["boxes"])
    height, width = image.shape[-2:]
    mask = sample.get("mask")
    if mask is not None and tuple(mask.shape) != (height, width):
        raise ValueError(f"Expected sample['mask'] of shape {(height, width)}, got {tuple(mask.shape)}.")
    return height, width


def _resize_sample(sample: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    in_size = tuple(sample["image"].shape[-2:])
    out = dict(sample)
    out["image"] = TF.resize(sample["image"], list(size), antialias=True)
    out["boxes"] = resize_boxes(sample["boxes"], in_size, size)
    if "mask" in sample:
        # Nearest neighbour keeps the label values (0, 1, 255) intact; it is also OpenCV's INTER_NEAREST, which
        # the reference evaluator uses for masks.
        out["mask"] = TF.resize(sample["mask"][None], list(size), interpolation=TF.InterpolationMode.NEAREST)[0]
    return out


def _normalize_sample(sample: dict[str, Any]) -> dict[str, Any]:
    out = dict(sample)
    out["image"] = normalize_image(sample["image"])
    return out


class WSOLEvalTransform:
    """Evaluation transform: resize to ``size x size`` (aspect ratio not kept), scale the boxes, normalise.

    Args:
        size: output side (224 in the WSOL literature).

    Raises:
        ValueError: for a non-positive ``size``, or a sample without a ``(3, H, W)`` image and ``(n, 4)`` boxes.

    Example:
        >>> sample = {"image": torch.zeros(3, 100, 200, dtype=torch.uint8), "boxes": torch.tensor([[0.0, 0, 200, 50]])}
        >>> out = WSOLEvalTransform(size=224)(sample)
        >>> tuple(out["image"].shape), out["boxes"].tolist()
        ((3, 224, 224), [[0.0, 0.0, 224.0, 112.0]])
    """

    def __init__(self, size: int = 224) -> None:
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"Expected `size` to be a positive int, got {size!r}.")
        self.size = size

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Transform one sample dict (``image`` uint8 or float ``(3, H, W)``, ``boxes``, optional ``mask``)."""
        _check_sample(sample)
        return _normalize_sample(_resize_sample(sample, (self.size, self.size)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class WSOLTrainTransform:
    """Training transform: square resize, random crop, random horizontal flip, normalise.

    Boxes and the mask follow the image through every step: boxes are scaled, shifted into the crop, clipped to
    it (a box that ends up entirely outside the crop is dropped) and mirrored with the flip.

    Randomness comes from torch's global generator, which Lightning's ``seed_everything(..., workers=True)`` and
    the DataLoader seed per worker.

    Args:
        resize_size: side of the square resize (256 in the WSOL literature).
        crop_size: side of the random crop (224); at most ``resize_size``.
        flip_prob: probability of the horizontal flip.

    Raises:
        ValueError: for non-positive sizes, ``crop_size > resize_size`` or ``flip_prob`` outside ``[0, 1]``.

    Example:
        >>> sample = {"image": torch.zeros(3, 300, 400, dtype=torch.uint8), "boxes": torch.tensor([[0.0, 0, 400, 300]])}
        >>> out = WSOLTrainTransform(resize_size=64, crop_size=56)(sample)
        >>> tuple(out["image"].shape), out["boxes"].tolist()
        ((3, 56, 56), [[0.0, 0.0, 56.0, 56.0]])
    """

    def __init__(self, resize_size: int = 256, crop_size: int = 224, flip_prob: float = 0.5) -> None:
        for name, value in (("resize_size", resize_size), ("crop_size", crop_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Expected `{name}` to be a positive int, got {value!r}.")
        if crop_size > resize_size:
            raise ValueError(f"Expected `crop_size` <= `resize_size` ({resize_size}), got {crop_size}.")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"Expected `flip_prob` in [0, 1], got {flip_prob}.")
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.flip_prob = flip_prob

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Transform one sample dict (``image`` uint8 or float ``(3, H, W)``, ``boxes``, optional ``mask``)."""
        _check_sample(sample)
        out = _resize_sample(sample, (self.resize_size, self.resize_size))
        margin = self.resize_size - self.crop_size
        top, left = (int(v) for v in torch.randint(0, margin + 1, (2,)))
        size = self.crop_size
        out["image"] = out["image"][:, top : top + size, left : left + size]
        out["boxes"] = crop_boxes(out["boxes"], top, left, size, size)
        if "mask" in out:
            out["mask"] = out["mask"][top : top + size, left : left + size]
        if torch.rand(()).item() < self.flip_prob:
            out["image"] = out["image"].flip(-1)
            out["boxes"] = hflip_boxes(out["boxes"], size)
            if "mask" in out:
                out["mask"] = out["mask"].flip(-1)
        return _normalize_sample(out)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resize_size={self.resize_size}, crop_size={self.crop_size}, "
            f"flip_prob={self.flip_prob})"
        )


def mask_to_box(mask: Tensor) -> Tensor:
    """Box of the foreground of a mask, in the same convention as every box here (``x1`` one past the last column).

    Args:
        mask: ``(H, W)`` bool or integer mask; foreground is ``== 1`` for integer masks (255 = ignore does not
            count) and ``True`` for bool masks.

    Returns:
        Float32 ``(1, 4)`` box ``x0, y0, x1, y1``, or ``(0, 4)`` for an empty mask.

    Example:
        >>> mask = torch.zeros(5, 6, dtype=torch.uint8)
        >>> mask[1:3, 2:5] = 1
        >>> mask_to_box(mask).tolist()
        [[2.0, 1.0, 5.0, 3.0]]
    """
    if mask.ndim != 2:
        raise ValueError(f"Expected a (H, W) mask, got shape {tuple(mask.shape)}.")
    foreground = mask if mask.dtype == torch.bool else mask == 1
    rows = torch.nonzero(foreground.any(dim=1)).flatten()
    cols = torch.nonzero(foreground.any(dim=0)).flatten()
    if rows.numel() == 0:
        return torch.zeros(0, 4)
    return torch.tensor([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]], dtype=torch.float32)

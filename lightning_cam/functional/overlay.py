"""Rendering: CAM overlays on images and box drawing, as uint8 image tensors ``(B, 3, H, W)``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import matplotlib
import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes

from lightning_cam.functional.cams import normalize_cams, upsample_cams

Color = str | tuple[int, int, int]


def to_uint8_images(
    images: Tensor,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Tensor:
    """Convert a batch of images to uint8 ``(B, 3, H, W)``, undoing a normalisation if given.

    Args:
        images: ``(B, C, H, W)`` with ``C`` in ``{1, 3}``; uint8, or float in ``[0, 1]`` after undoing
            ``(x - mean) / std``.
        mean: per-channel mean of the normalisation to undo (float images only).
        std: per-channel std of the normalisation to undo.

    Returns:
        uint8 tensor ``(B, 3, H, W)`` on the CPU.

    Raises:
        ValueError: on a wrong rank or channel count, or mean/std of the wrong length.

    Example:
        >>> to_uint8_images(torch.zeros(1, 3, 2, 2), mean=[0.5] * 3, std=[0.5] * 3)[0, :, 0, 0].tolist()
        [128, 128, 128]
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"Expected images of shape (B, 1 or 3, H, W), got shape {tuple(images.shape)}.")
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        if mean is not None or std is not None:
            raise ValueError("Expected float images when `mean`/`std` are given, got uint8 images.")
        out = images
    else:
        x = images.float()
        if (mean is None) != (std is None):
            raise ValueError("Expected both `mean` and `std` or neither, got only one of them.")
        if mean is not None and std is not None:
            if len(mean) != x.shape[1] or len(std) != x.shape[1]:
                raise ValueError(f"Expected `mean` and `std` with {x.shape[1]} values, got {len(mean)} and {len(std)}.")
            x = x * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
        out = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return out.expand(-1, 3, -1, -1).contiguous() if out.shape[1] == 1 else out


@lru_cache(maxsize=16)
def _colormap_table(name: str) -> Tensor:
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"Expected a matplotlib colormap name such as 'jet' or 'viridis', got {name!r}.") from None
    rgba = cmap(torch.linspace(0, 1, 256).numpy())
    return torch.from_numpy(rgba[:, :3]).float()


def apply_colormap(maps: Tensor, colormap: str = "jet") -> Tensor:
    """Colour maps in ``[0, 1]`` with a matplotlib colormap.

    Args:
        maps: ``(B, H, W)`` floats in ``[0, 1]``.
        colormap: matplotlib colormap name.

    Returns:
        Float RGB ``(B, 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> apply_colormap(torch.ones(1, 1, 1), "gray")[0, :, 0, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    table = _colormap_table(colormap).to(maps.device)
    index = (maps.clamp(0, 1) * 255).round().long()
    return table[index].permute(0, 3, 1, 2)


def overlay_cams(
    images: Tensor,
    cams: Tensor,
    colormap: str = "jet",
    alpha: float = 0.5,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Tensor:
    """Blend CAMs over their images: ``(1 - alpha) * image + alpha * colormap(cam)``.

    Each CAM is min-max normalised and bilinearly upsampled to its image's size first.

    Args:
        images: ``(B, C, H, W)`` images, see :func:`to_uint8_images`.
        cams: ``(B, h, w)`` or ``(B, 1, h, w)`` maps at any resolution.
        colormap: matplotlib colormap name.
        alpha: weight of the heat map, in ``[0, 1]``.
        mean: per-channel mean of a normalisation to undo on ``images``.
        std: per-channel std of a normalisation to undo on ``images``.

    Returns:
        uint8 ``(B, 3, H, W)`` overlays on the CPU.

    Raises:
        ValueError: on mismatched batch sizes, a wrong rank or ``alpha`` outside ``[0, 1]``.

    Example:
        >>> images = torch.zeros(2, 3, 32, 32)
        >>> cams = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(0))
        >>> out = overlay_cams(images, cams, alpha=0.5)
        >>> out.shape, out.dtype
        (torch.Size([2, 3, 32, 32]), torch.uint8)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"Expected `alpha` in [0, 1], got {alpha}.")
    if cams.ndim == 4 and cams.shape[1] == 1:
        cams = cams[:, 0]
    if cams.ndim != 3:
        raise ValueError(f"Expected CAMs of shape (B, h, w) or (B, 1, h, w), got shape {tuple(cams.shape)}.")
    if cams.shape[0] != images.shape[0]:
        raise ValueError(f"Expected one CAM per image ({images.shape[0]}), got {cams.shape[0]}.")
    base = to_uint8_images(images, mean, std).float() / 255
    maps = upsample_cams(normalize_cams(cams.detach().float().cpu()), tuple(base.shape[-2:]))
    heat = apply_colormap(maps.clamp(0, 1), colormap)
    return ((1 - alpha) * base + alpha * heat).mul(255).round().clamp(0, 255).to(torch.uint8)


def draw_boxes(
    images: Tensor,
    boxes: Sequence[Tensor],
    color: Color = "lime",
    width: int = 2,
) -> Tensor:
    """Draw ``x0, y0, x1, y1`` pixel boxes on uint8 images.

    Args:
        images: uint8 ``(B, 3, H, W)``.
        boxes: one ``(n_i, 4)`` tensor per image (``n_i`` may be 0).
        color: a colour name or an RGB tuple, for every box.
        width: line width in pixels.

    Returns:
        A new uint8 ``(B, 3, H, W)`` tensor with the boxes drawn.

    Raises:
        ValueError: on a wrong dtype or shape, or a box count per image that does not match the batch.

    Example:
        >>> out = draw_boxes(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), [torch.tensor([[1, 1, 6, 6]])], "white", 1)
        >>> out[0, 0, 1, 1].item(), out[0, 0, 3, 3].item()
        (255, 0)
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"Expected uint8 images (B, 3, H, W), got {images.dtype} of shape {tuple(images.shape)}.")
    if len(boxes) != images.shape[0]:
        raise ValueError(f"Expected one box tensor per image ({images.shape[0]}), got {len(boxes)}.")
    out = []
    for image, image_boxes in zip(images.cpu(), boxes, strict=True):
        image_boxes = torch.as_tensor(image_boxes).detach().cpu().float().reshape(-1, 4)
        if image_boxes.numel() == 0:
            out.append(image)
            continue
        out.append(draw_bounding_boxes(image, image_boxes, colors=color, width=width))
    return torch.stack(out)

"""Resizing that reproduces OpenCV's ``cv2.resize`` bit for bit: INTER_CUBIC for score maps, INTER_NEAREST for masks.

The WSOL evaluator resizes CAMs with OpenCV, then quantises them to 256 levels, so a difference in the last bits
can move a pixel across a level and change a box. Torch's bicubic computes its weights in the map's dtype,
OpenCV in float32 (from a float32 source position), which differ whenever the scale is not a power of two
(e.g. 16 -> 224). Here the weights are computed as OpenCV computes them and applied in float64 in OpenCV's
order: horizontal pass, then vertical, four taps summed left to right, borders replicated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["resize_bicubic_like_opencv", "resize_nearest_like_opencv"]

_A = np.float32(-0.75)


def _cubic_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices ``(dst, 4)`` (clamped) and float32 weights ``(dst, 4)`` of OpenCV's cubic kernel."""
    scale = 1.0 / (dst / src)  # OpenCV stores the inverse scale, then inverts it
    position = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    start = np.floor(position)
    x = (position - start).astype(np.float32)
    one = np.float32(1)
    with np.errstate(over="ignore"):
        x1 = x + one
        w0 = ((_A * x1 - np.float32(5) * _A) * x1 + np.float32(8) * _A) * x1 - np.float32(4) * _A
        w1 = ((_A + np.float32(2)) * x - (_A + np.float32(3))) * x * x + one
        y = one - x
        w2 = ((_A + np.float32(2)) * y - (_A + np.float32(3))) * y * y + one
        w3 = one - w0 - w1 - w2
    weights = np.stack([w0, w1, w2, w3], axis=1).astype(np.float32)
    index = start.astype(np.int64)[:, None] + np.arange(-1, 3)[None]
    return np.clip(index, 0, src - 1), weights


def _taps_on(src: int, dst: int, like: Tensor) -> tuple[Tensor, Tensor]:
    index, weights = _cubic_taps(src, dst)
    return torch.from_numpy(index).to(like.device), torch.from_numpy(weights).to(device=like.device, dtype=like.dtype)


def _resize_dim(maps: Tensor, dim: int, size: int) -> Tensor:
    """Resize along ``dim`` (1: rows, 2: columns), summing the four taps left to right as OpenCV does."""
    index, weights = _taps_on(maps.shape[dim], size, maps)
    shape = [1, 1, 1]
    shape[dim] = size
    out = maps.index_select(dim, index[:, 0]).mul_(weights[:, 0].view(shape))
    for k in range(1, 4):
        # Separate multiply and add (no fused multiply-add), as OpenCV's scalar code rounds.
        out += maps.index_select(dim, index[:, k]).mul_(weights[:, k].view(shape))
    return out


def resize_bicubic_like_opencv(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``(B, h, w)`` maps to ``size = (H, W)`` exactly as OpenCV's INTER_CUBIC does for float64 images.

    Args:
        maps: ``(B, h, w)`` float64 maps.
        size: ``(H, W)`` output size.

    Returns:
        Float64 tensor ``(B, H, W)``; the input itself when the size is unchanged (OpenCV copies).

    Example:
        >>> maps = torch.arange(4, dtype=torch.float64).reshape(1, 2, 2)
        >>> resize_bicubic_like_opencv(maps, (4, 4))[0, 0].tolist()
        [-0.31640625, 0.015625, 0.5625, 0.89453125]
    """
    if maps.ndim != 3 or maps.dtype != torch.float64:
        raise ValueError(f"Expected float64 maps (B, h, w), got {maps.dtype} {tuple(maps.shape)}.")
    height, width = size
    if tuple(maps.shape[-2:]) == (height, width):
        return maps
    # OpenCV's order: the horizontal pass first, then the vertical pass over its rows.
    return _resize_dim(_resize_dim(maps, 2, width), 1, height)


def _nearest_index(src: int, dst: int) -> np.ndarray:
    scale = 1.0 / (dst / src)
    return np.minimum(np.floor(np.arange(dst, dtype=np.float64) * scale).astype(np.int64), src - 1)


def resize_nearest_like_opencv(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``(B, h, w)`` masks of any dtype to ``size = (H, W)`` as OpenCV's INTER_NEAREST does.

    Torch's ``nearest`` computes the scale in float32 and can pick a neighbouring row or column.

    Example:
        >>> resize_nearest_like_opencv(torch.tensor([[[1, 2, 3]]]), (1, 5)).tolist()
        [[[1, 1, 2, 2, 3]]]
    """
    if masks.ndim != 3:
        raise ValueError(f"Expected masks (B, h, w), got shape {tuple(masks.shape)}.")
    height, width = size
    rows = torch.from_numpy(_nearest_index(masks.shape[1], height)).to(masks.device)
    cols = torch.from_numpy(_nearest_index(masks.shape[2], width)).to(masks.device)
    return masks[:, rows][:, :, cols]

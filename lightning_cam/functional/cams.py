"""Class activation maps: computation, normalisation and upsampling (tensors in, tensors out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Target = int | Sequence[int] | Tensor | None


def _check_finite(tensor: Tensor, name: str) -> None:
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise ValueError(f"Expected finite values in `{name}`, got {bad} NaN/inf entries out of {tensor.numel()}.")


def resolve_target(target: Target, batch_size: int, num_classes: int, device: torch.device | None = None) -> Tensor:
    """Turn a Captum-style target into class indices, one column per requested map.

    Args:
        target: ``None`` for every class; an ``int`` for the same class in every sample; a list/tuple or a
            ``(B,)`` tensor with one class per sample; a ``(B, n)`` tensor for ``n`` classes per sample.
        batch_size: ``B``.
        num_classes: ``C``; every index must be in ``[0, C)``.
        device: device of the returned tensor.

    Returns:
        Long tensor ``(B, n)`` of class indices.

    Raises:
        TypeError: for a target of another type.
        ValueError: for a length that is not the batch size or an index out of range.

    Example:
        >>> resolve_target(None, batch_size=2, num_classes=3).tolist()
        [[0, 1, 2], [0, 1, 2]]
        >>> resolve_target([2, 0], batch_size=2, num_classes=3).tolist()
        [[2], [0]]
    """
    if target is None:
        index = torch.arange(num_classes, device=device).expand(batch_size, num_classes)
    elif isinstance(target, bool):
        raise TypeError(f"Expected `target` to be None, an int, a sequence of ints or a tensor, got {target!r}.")
    elif isinstance(target, int):
        index = torch.full((batch_size, 1), target, dtype=torch.long, device=device)
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"Expected an integer `target` tensor, got dtype {target.dtype}.")
        index = target.to(device=device, dtype=torch.long)
        if index.ndim == 0:
            index = index.expand(batch_size).unsqueeze(1)
        elif index.ndim == 1:
            index = index.unsqueeze(1)
        elif index.ndim != 2:
            raise ValueError(f"Expected a `target` tensor of shape (B,) or (B, n), got shape {tuple(target.shape)}.")
        if index.shape[0] != batch_size:
            raise ValueError(f"Expected `target` for {batch_size} samples, got {index.shape[0]}.")
    elif isinstance(target, Sequence) and not isinstance(target, str):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            raise TypeError(f"Expected `target` as a sequence of ints, got {list(target)!r}.")
        if len(target) != batch_size:
            raise ValueError(f"Expected one `target` per sample ({batch_size}), got {len(target)}.")
        index = torch.tensor(list(target), dtype=torch.long, device=device).unsqueeze(1)
    else:
        raise TypeError(f"Expected `target` to be None, an int, a sequence of ints or a tensor, got {type(target)}.")
    if index.numel() and (index.min() < 0 or index.max() >= num_classes):
        raise ValueError(
            f"Expected class indices in [0, {num_classes}), got values in [{index.min().item()}, {index.max().item()}]."
        )
    return index


def class_activation_maps(features: Tensor, weight: Tensor, target: Target = None) -> Tensor:
    """Compute class activation maps ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` (Zhou et al., 2016).

    One einsum over the features: the same cost as a 1x1 convolution restricted to the requested classes.

    Args:
        features: last conv features ``(B, K, h, w)``.
        weight: linear classifier weights ``(C, K)``.
        target: classes to return, see :func:`resolve_target`.

    Returns:
        CAMs ``(B, n, h, w)`` in the features' dtype (``n = C`` for ``target=None``).

    Raises:
        ValueError: on a wrong rank, a channel mismatch, non-finite inputs or a target out of range.

    Example:
        >>> features = torch.ones(1, 2, 3, 3)
        >>> weight = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
        >>> class_activation_maps(features, weight, target=0)[0, 0, 0, 0].item()
        3.0
    """
    if features.ndim != 4:
        raise ValueError(f"Expected `features` of shape (B, K, h, w), got shape {tuple(features.shape)}.")
    if weight.ndim != 2:
        raise ValueError(f"Expected `weight` of shape (C, K), got shape {tuple(weight.shape)}.")
    if features.shape[1] != weight.shape[1]:
        raise ValueError(
            f"Expected features with {weight.shape[1]} channels (the classifier's in_features), "
            f"got {features.shape[1]} channels."
        )
    _check_finite(features, "features")
    _check_finite(weight, "weight")
    index = resolve_target(target, features.shape[0], weight.shape[0], device=features.device)
    weight = weight.to(features.dtype)
    if target is None:
        return torch.einsum("bkhw,ck->bchw", features, weight)
    return torch.einsum("bkhw,bnk->bnhw", features, weight[index])


def normalize_cams(cams: Tensor) -> Tensor:
    """Min-max normalise every map to ``[0, 1]`` over its last two dimensions.

    A constant map (nothing to localise) becomes zeros rather than NaN.

    Args:
        cams: maps ``(..., h, w)`` of a floating dtype.

    Returns:
        Normalised maps of the same shape and dtype.

    Raises:
        ValueError: on fewer than two dimensions, an integer dtype or non-finite values.

    Example:
        >>> normalize_cams(torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]])).tolist()
        [[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]
    """
    if cams.ndim < 2:
        raise ValueError(f"Expected maps of shape (..., h, w), got shape {tuple(cams.shape)}.")
    if not cams.is_floating_point():
        raise ValueError(f"Expected floating-point maps, got dtype {cams.dtype}.")
    _check_finite(cams, "cams")
    flat = cams.flatten(-2)
    low = flat.amin(-1, keepdim=True)
    span = flat.amax(-1, keepdim=True) - low
    # Dividing by 1 where the span is 0 keeps constant maps at exactly zero instead of NaN.
    out = (flat - low) / torch.where(span > 0, span, torch.ones_like(span))
    return out.view_as(cams)


def upsample_cams(
    cams: Tensor,
    size: int | tuple[int, int],
    mode: Literal["bilinear", "bicubic", "nearest"] = "bilinear",
) -> Tensor:
    """Resize maps ``(B, h, w)`` or ``(B, n, h, w)`` to an image size ``(H, W)``.

    Uses ``align_corners=False``, the convention of OpenCV's ``cv2.resize`` that the WSOL evaluator uses.

    Args:
        cams: maps of a floating dtype.
        size: target ``(H, W)`` or one int for a square.
        mode: interpolation mode.

    Returns:
        Resized maps with the same leading dimensions.

    Raises:
        ValueError: on a wrong rank or a non-positive size.

    Example:
        >>> upsample_cams(torch.zeros(2, 7, 7), 224).shape
        torch.Size([2, 224, 224])
    """
    if cams.ndim not in (3, 4):
        raise ValueError(f"Expected maps of shape (B, h, w) or (B, n, h, w), got shape {tuple(cams.shape)}.")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"Expected a positive (H, W) size, got {size}.")
    squeeze = cams.ndim == 3
    x = cams.unsqueeze(1) if squeeze else cams
    align = None if mode == "nearest" else False
    out = F.interpolate(x, size=size, mode=mode, align_corners=align)
    return out.squeeze(1) if squeeze else out

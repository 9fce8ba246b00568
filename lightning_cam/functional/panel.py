"""A captioned image panel: rows of image tiles with a text line above each row, as one uint8 image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor


def make_panel(
    columns: Sequence[Tensor],
    captions: Sequence[str],
    padding: int = 4,
    caption_height: int = 14,
) -> Tensor:
    """Lay out ``B`` rows of tiles (one column per tensor) under a caption line per row.

    Args:
        columns: uint8 tensors ``(B, 3, H, W)`` of equal shape, e.g. inputs and CAM overlays.
        captions: one text line per row.
        padding: white pixels between tiles.
        caption_height: pixels reserved for each caption line.

    Returns:
        uint8 ``(3, H_panel, W_panel)`` image.

    Raises:
        ValueError: on mismatched shapes, dtypes or caption count.

    Example:
        >>> tiles = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
        >>> make_panel([tiles, tiles], ["a", "b"], padding=2, caption_height=10).shape
        torch.Size([3, 58, 38])
        >>> make_panel([tiles, tiles], ["a much longer caption", "b"], padding=2, caption_height=10).shape[-1] > 38
        True
    """
    if not columns:
        raise ValueError("Expected at least one column of tiles, got none.")
    shape = columns[0].shape
    for column in columns:
        if column.dtype != torch.uint8 or column.ndim != 4 or column.shape != shape or shape[1] != 3:
            raise ValueError(
                f"Expected uint8 columns of one shape (B, 3, H, W), got {column.dtype} {tuple(column.shape)} "
                f"next to {tuple(shape)}."
            )
    rows, _, height, width = shape
    if len(captions) != rows:
        raise ValueError(f"Expected one caption per row ({rows}), got {len(captions)}.")
    row_height = caption_height + height + padding
    font = ImageFont.load_default()
    # Wide enough for the longest caption: small inputs (e.g. 64x64) would otherwise cut it off.
    text_width = max(
        (int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(c, font=font)) for c in captions), default=0
    )
    canvas_width = max(padding + len(columns) * (width + padding), 2 * padding + text_width)
    canvas = Image.new("RGB", (canvas_width, padding + rows * row_height), "white")
    draw = ImageDraw.Draw(canvas)
    for row, caption in enumerate(captions):
        top = padding + row * row_height
        draw.text((padding, top), caption, fill=(0, 0, 0), font=font)
        for col, tiles in enumerate(columns):
            tile = Image.fromarray(tiles[row].permute(1, 2, 0).cpu().numpy())
            canvas.paste(tile, (padding + col * (width + padding), top + caption_height))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).contiguous()

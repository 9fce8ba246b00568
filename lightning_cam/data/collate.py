"""The sample and batch format shared by every dataset of the package, and the collate function that makes it.

A sample is a dict:

- ``image``: float32 ``(3, H, W)``, ImageNet-normalised;
- ``label``: int64 0-dim tensor;
- ``boxes``: float32 ``(n, 4)``, ``x0, y0, x1, y1`` in the pixel frame of ``image`` (``n`` may vary, even be 0);
- ``mask`` (when the dataset has masks): uint8 ``(H, W)``, 1 = foreground, 0 = background, 255 = ignore;
- ``image_id``: str, unique within the dataset.

A batch stacks what has a fixed shape and keeps lists of the rest (see :func:`wsol_collate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from typing_extensions import NotRequired, TypedDict


class WSOLSample(TypedDict):
    """One sample: ``image``, ``label``, ``boxes``, ``image_id`` and, when available, ``mask``."""

    image: Tensor
    label: Tensor
    boxes: Tensor
    image_id: str
    mask: NotRequired[Tensor]


class WSOLBatch(TypedDict):
    """A batch of ``B`` samples: stacked ``image``/``label``/``mask``, lists of ``boxes`` and ``image_id``."""

    image: Tensor
    label: Tensor
    boxes: list[Tensor]
    image_id: list[str]
    mask: NotRequired[Tensor]


def wsol_collate(samples: Sequence[WSOLSample]) -> WSOLBatch:
    """Collate samples into a batch: ``image`` ``(B, 3, H, W)``, ``label`` ``(B,)``, ``boxes`` list of ``(n_i, 4)``.

    ``mask`` ``(B, H, W)`` is present only when every sample has one; ``image_id`` is a list of str. Boxes stay a
    list because the number of boxes varies between images.

    Args:
        samples: non-empty sequence of sample dicts with images of one size.

    Returns:
        The batch dict.

    Raises:
        ValueError: for no samples, a sample missing a key, or images (masks) of different sizes.

    Example:
        >>> s = {"image": torch.zeros(3, 4, 4), "label": torch.tensor(1), "boxes": torch.zeros(1, 4), "image_id": "a"}
        >>> batch = wsol_collate([s, {**s, "boxes": torch.zeros(2, 4), "image_id": "b"}])
        >>> tuple(batch["image"].shape), batch["label"].tolist(), [len(b) for b in batch["boxes"]], "mask" in batch
        ((2, 3, 4, 4), [1, 1], [1, 2], False)
    """
    if len(samples) == 0:
        raise ValueError("Expected at least one sample to collate, got an empty sequence.")
    for i, sample in enumerate(samples):
        missing = [key for key in ("image", "label", "boxes", "image_id") if key not in sample]
        if missing:
            raise ValueError(f"Expected sample {i} to have keys image, label, boxes, image_id; missing {missing}.")
    shapes = {tuple(s["image"].shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"Expected images of one shape to stack, got {sorted(shapes)}.")
    batch: WSOLBatch = {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.stack([torch.as_tensor(s["label"], dtype=torch.long) for s in samples]),
        "boxes": [s["boxes"] for s in samples],
        "image_id": [s["image_id"] for s in samples],
    }
    if all("mask" in s for s in samples):
        mask_shapes = {tuple(s["mask"].shape) for s in samples}
        if len(mask_shapes) != 1:
            raise ValueError(f"Expected masks of one shape to stack, got {sorted(mask_shapes)}.")
        batch["mask"] = torch.stack([s["mask"] for s in samples])
    return batch

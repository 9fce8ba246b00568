"""A map-style dataset over image files with WSOL annotations, whatever layout they were parsed from.

Parsers (:mod:`~lightning_cam.data.cub` for the official CUB-200-2011 tree,
:mod:`~lightning_cam.data.wsol_metadata` for the wsolevaluation metadata) turn a layout into
:class:`WSOLRecord` entries; :class:`WSOLImageDataset` loads them into sample dicts (see
:mod:`~lightning_cam.data.collate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from lightning_cam.data.collate import WSOLSample
from lightning_cam.data.transforms import mask_to_box, normalize_image

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class WSOLRecord:
    """The annotations of one image, before loading.

    Attributes:
        image_id: identifier returned with the sample (CUB's relative path, e.g. ``"001.X/X_0001.jpg"``).
        path: image file.
        label: class index in ``[0, num_classes)``.
        boxes: boxes ``x0, y0, x1, y1`` in the pixel frame of the original image.
        mask_paths: foreground masks (one per instance, merged); grayscale, foreground above the threshold.
        ignore_path: optional mask of a region to ignore (wsolevaluation's ignore boxes); 255 in the sample's mask.
        size: ``(width, height)`` the metadata announces; checked against the file when given.
    """

    image_id: str
    path: Path
    label: int
    boxes: tuple[Box, ...] = ()
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None
    size: tuple[int, int] | None = None


def check_files_exist(records: Sequence[WSOLRecord], hint: str) -> None:
    """Raise one clear error when image or mask files of ``records`` are missing.

    Args:
        records: the records to check.
        hint: how to get the missing files, appended to the message.

    Raises:
        FileNotFoundError: naming the first missing file and how many are missing.

    Example:
        >>> check_files_exist([], hint="")
    """
    missing = [
        path
        for r in records
        for path in (r.path, *r.mask_paths, *((r.ignore_path,) if r.ignore_path else ()))
        if not path.is_file()
    ]
    if missing:
        raise FileNotFoundError(f"Expected {len(missing)} more file(s), missing e.g. {missing[0]}. {hint}")


def _read_binary_mask(path: Path, size: tuple[int, int], threshold: int) -> np.ndarray:
    with Image.open(path) as raw:
        gray = raw.convert("L")
    if gray.size != size:
        # A few annotation sets store masks at another resolution; nearest keeps them binary.
        gray = gray.resize(size, Image.Resampling.NEAREST)
    return np.asarray(gray) > threshold


class WSOLImageDataset(Dataset):
    """Load :class:`WSOLRecord` entries as sample dicts: ``image``, ``label``, ``boxes``, ``image_id``, ``mask``.

    Images are read with PIL and converted to RGB (CUB holds a few grayscale images). A record with mask files
    gets a uint8 mask: 1 where any instance mask is above ``mask_threshold``, 255 where only the ignore mask is,
    0 elsewhere. A record with masks but no boxes gets one box per instance mask.

    Args:
        records: the images and their annotations.
        transform: called on the sample dict (uint8 ``(3, H, W)`` image); must return it with a normalised float
            image, like :class:`~lightning_cam.data.transforms.WSOLTrainTransform`. ``None`` only normalises.
        mask_threshold: gray level above which a mask pixel is foreground (127: majority vote of CUB's
            soft segmentations; any 0/255 mask reads the same).
        return_masks: include the ``mask`` key when a record has masks.

    Raises:
        ValueError: for a ``mask_threshold`` outside ``[0, 254]``, or (when loading) an image whose size differs from
            the one its metadata gives.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "a.png"
        ...     Image.new("RGB", (8, 6)).save(path)
        ...     sample = WSOLImageDataset([WSOLRecord("a", path, 2, boxes=((1.0, 1.0, 5.0, 4.0),))])[0]
        >>> tuple(sample["image"].shape), sample["label"].item(), sample["boxes"].tolist()
        ((3, 6, 8), 2, [[1.0, 1.0, 5.0, 4.0]])
    """

    def __init__(
        self,
        records: Sequence[WSOLRecord],
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        mask_threshold: int = 127,
        return_masks: bool = True,
    ) -> None:
        if not 0 <= mask_threshold <= 254:
            raise ValueError(f"Expected `mask_threshold` in [0, 254], got {mask_threshold}.")
        self.records = list(records)
        self.transform = transform
        self.mask_threshold = mask_threshold
        self.return_masks = return_masks

    def __len__(self) -> int:
        return len(self.records)

    def _load_mask(self, record: WSOLRecord, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        instances = [_read_binary_mask(p, size, self.mask_threshold) for p in record.mask_paths]
        foreground = np.logical_or.reduce(instances)
        mask = foreground.astype(np.uint8)
        if record.ignore_path is not None:
            ignore = _read_binary_mask(record.ignore_path, size, self.mask_threshold) & ~foreground
            mask[ignore] = 255
        boxes = [mask_to_box(torch.from_numpy(m)) for m in instances]
        return torch.from_numpy(mask), torch.cat(boxes)

    def __getitem__(self, index: int) -> WSOLSample:
        record = self.records[index]
        with Image.open(record.path) as raw:
            rgb = raw.convert("RGB")
        if record.size is not None and rgb.size != record.size:
            raise ValueError(
                f"Expected {record.path} of size (width, height) {record.size} as its metadata says, got {rgb.size}."
            )
        image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()
        boxes = torch.tensor(record.boxes, dtype=torch.float32).reshape(-1, 4)
        sample: dict[str, Any] = {
            "image": image,
            "label": torch.tensor(record.label, dtype=torch.long),
            "boxes": boxes,
            "image_id": record.image_id,
        }
        if record.mask_paths:
            mask, instance_boxes = self._load_mask(record, rgb.size)
            if not record.boxes:
                sample["boxes"] = instance_boxes
            if self.return_masks:
                sample["mask"] = mask
        if self.transform is None:
            sample["image"] = normalize_image(image)
            return sample  # type: ignore[return-value]
        return self.transform(sample)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_samples={len(self)}, transform={self.transform!r})"

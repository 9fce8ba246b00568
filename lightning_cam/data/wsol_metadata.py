"""Read the metadata layout of wsolevaluation (Choe et al., CVPR 2020) so its splits can be used as they are.

One folder per split (``<metadata_root>/{train,val,test}/``) with comma-separated text files, every image named
by its path relative to an image root:

- ``image_ids.txt``: one image path per line;
- ``class_labels.txt``: ``path,label`` (label an int in ``[0, C)``);
- ``image_sizes.txt`` (optional): ``path,width,height``;
- ``localization.txt`` (optional for ``train``): either boxes, ``path,x0,y0,x1,y1`` in pixels (one line per box,
  several lines for several boxes), or masks, ``path,mask_path,ignore_path`` (one line per instance mask, the
  ignore mask on the first line only, empty when there is none), mask paths relative to the image root.
"""

from __future__ import annotations

import os
from pathlib import Path

from lightning_cam.data.dataset import Box, WSOLRecord

WSOL_SPLITS: tuple[str, str, str] = ("train", "val", "test")
"""The split folders of a wsolevaluation metadata root."""


def _read_csv(path: Path, widths: tuple[int, ...]) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"Expected the wsolevaluation metadata file {path}, which does not exist.")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) not in widths:
            expected = " or ".join(str(w) for w in widths)
            raise ValueError(f"Expected {expected} comma-separated fields in {path} line {number}, got {line!r}.")
        rows.append(fields)
    return rows


def _parse_int(value: str, path: Path, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Expected an integer {what} in {path}, got {value!r}.") from None


def _parse_float(value: str, path: Path, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"Expected a number as {what} in {path}, got {value!r}.") from None


def read_wsol_metadata(
    split_dir: str | os.PathLike[str], image_root: str | os.PathLike[str], require_localization: bool = True
) -> list[WSOLRecord]:
    """Parse one split folder of the wsolevaluation metadata into records.

    Args:
        split_dir: the split folder, e.g. ``metadata/CUB/test``.
        image_root: folder the image (and mask) paths are relative to.
        require_localization: raise when ``localization.txt`` is missing (it is optional for training).

    Returns:
        One :class:`~lightning_cam.data.dataset.WSOLRecord` per line of ``image_ids.txt``, in that order.

    Raises:
        FileNotFoundError: for a missing metadata file, naming it.
        ValueError: for malformed lines or an image listed in ``image_ids.txt`` without a label (or, with
            ``localization.txt``, without a box or mask).

    Example:
        >>> import tempfile
        >>> files = {"image_ids.txt": "001.A/a.jpg", "class_labels.txt": "001.A/a.jpg,0",
        ...          "localization.txt": "001.A/a.jpg,1,2,30,40"}
        >>> with tempfile.TemporaryDirectory() as split:
        ...     for name, text in files.items():
        ...         _ = (Path(split) / name).write_text(text)
        ...     record = read_wsol_metadata(split, image_root="images")[0]
        >>> record.image_id, record.label, record.boxes
        ('001.A/a.jpg', 0, ((1.0, 2.0, 30.0, 40.0),))
    """
    split_dir, image_root = Path(split_dir), Path(image_root)
    image_ids = [row[0] for row in _read_csv(split_dir / "image_ids.txt", (1,))]
    labels_path = split_dir / "class_labels.txt"
    labels = {row[0]: _parse_int(row[1], labels_path, "class label") for row in _read_csv(labels_path, (2,))}
    sizes: dict[str, tuple[int, int]] = {}
    sizes_path = split_dir / "image_sizes.txt"
    if sizes_path.is_file():
        for row in _read_csv(sizes_path, (3,)):
            sizes[row[0]] = (_parse_int(row[1], sizes_path, "width"), _parse_int(row[2], sizes_path, "height"))

    boxes: dict[str, list[Box]] = {}
    masks: dict[str, list[Path]] = {}
    ignores: dict[str, Path] = {}
    localization_path = split_dir / "localization.txt"
    has_localization = localization_path.is_file()
    if has_localization:
        for row in _read_csv(localization_path, (3, 5)):
            if len(row) == 5:
                x0, y0, x1, y1 = (_parse_float(v, localization_path, "box coordinate") for v in row[1:])
                boxes.setdefault(row[0], []).append((x0, y0, x1, y1))
            else:
                masks.setdefault(row[0], []).append(image_root / row[1])
                if row[2]:
                    ignores[row[0]] = image_root / row[2]
    elif require_localization:
        raise FileNotFoundError(f"Expected the wsolevaluation metadata file {localization_path}, which does not exist.")

    records = []
    for image_id in image_ids:
        if image_id not in labels:
            raise ValueError(f"Expected a label for {image_id} in {labels_path}, found none.")
        if has_localization and image_id not in boxes and image_id not in masks:
            raise ValueError(f"Expected a box or mask for {image_id} in {localization_path}, found none.")
        records.append(
            WSOLRecord(
                image_id=image_id,
                path=image_root / image_id,
                label=labels[image_id],
                boxes=tuple(boxes.get(image_id, ())),
                mask_paths=tuple(masks.get(image_id, ())),
                ignore_path=ignores.get(image_id),
                size=sizes.get(image_id),
            )
        )
    return records

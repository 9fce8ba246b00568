"""CUB-200-2011 (Wah et al., 2011): the official folder layout and the Lightning DataModule for WSOL.

The official tree, as ``CUB_200_2011.tgz`` unpacks it (whitespace-separated text files, 1-based ids)::

    CUB_200_2011/
        images.txt               <image_id> <class folder>/<file>.jpg
        image_class_labels.txt   <image_id> <class_id>
        train_test_split.txt     <image_id> <1 = train, 0 = test>
        bounding_boxes.txt       <image_id> <x> <y> <width> <height>   (float pixels)
        classes.txt              <class_id> <class folder>, e.g. "1 001.Black_footed_Albatross"
        images/<class folder>/<file>.jpg
    segmentations/<class folder>/<file>.png   (optional, from segmentations.tgz; next to or inside CUB_200_2011/)

Boxes become ``x0 = x, y0 = y, x1 = x + width, y1 = y + height`` (the wsolevaluation convention). Segmentations
are soft (the average of several annotators); a pixel is foreground above ``mask_threshold`` (127, the majority).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch

from lightning_cam.data.datamodule import Split, WSOLDataModule
from lightning_cam.data.dataset import WSOLImageDataset, WSOLRecord, check_files_exist
from lightning_cam.data.download import CUB_IMAGES, CUB_SEGMENTATIONS, download_cub
from lightning_cam.data.transforms import WSOLEvalTransform, WSOLTrainTransform
from lightning_cam.data.wsol_metadata import read_wsol_metadata

CUB_FILES: tuple[str, ...] = (
    "images.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "classes.txt",
)
"""The metadata files every official CUB-200-2011 tree holds."""

_GET_IMAGES = f"Pass `download=True` or download {CUB_IMAGES.url} and unpack it"
_GET_MASKS = f"Pass `download=True` with `with_masks=True` or download {CUB_SEGMENTATIONS.url} and unpack it"


def locate_cub(root: str | os.PathLike[str]) -> Path:
    """Find a complete official CUB-200-2011 tree at ``root`` or ``root/CUB_200_2011``.

    Args:
        root: the ``CUB_200_2011`` folder or the folder holding it.

    Returns:
        The ``CUB_200_2011`` folder.

    Raises:
        FileNotFoundError: when no tree is there, or a metadata file or ``images/`` is missing, naming it and how to
            get it.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     try:
        ...         locate_cub(empty)
        ...     except FileNotFoundError as err:
        ...         print("no CUB tree" if "download=True" in str(err) else err)
        no CUB tree
    """
    root = Path(root).expanduser()
    candidates = [root, root / CUB_IMAGES.extracts_to]
    cub = next((c for c in candidates if (c / "images.txt").is_file() or (c / "images").is_dir()), None)
    if cub is None:
        raise FileNotFoundError(
            f"Expected a CUB-200-2011 tree at {root / CUB_IMAGES.extracts_to}, found no images.txt there. "
            f"{_GET_IMAGES} in {root}."
        )
    for name in (*CUB_FILES, "images"):
        if not (cub / name).exists():
            raise FileNotFoundError(
                f"Expected {cub / name} in the CUB-200-2011 tree, which does not exist (partial tree?). "
                f"{_GET_IMAGES} in {cub.parent}."
            )
    return cub


def locate_segmentations(cub_dir: str | os.PathLike[str]) -> Path | None:
    """Find the ``segmentations/`` folder next to or inside a ``CUB_200_2011`` folder.

    Args:
        cub_dir: the ``CUB_200_2011`` folder.

    Returns:
        The folder, or ``None`` when there is none.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     print(locate_segmentations(empty))
        None
    """
    cub_dir = Path(cub_dir)
    for candidate in (cub_dir.parent / CUB_SEGMENTATIONS.extracts_to, cub_dir / CUB_SEGMENTATIONS.extracts_to):
        if candidate.is_dir():
            return candidate
    return None


def clean_class_name(name: str) -> str:
    """Turn a CUB class folder name into a caption: drop the ``NNN.`` prefix, underscores become spaces.

    Args:
        name: e.g. ``"001.Black_footed_Albatross"``.

    Returns:
        e.g. ``"Black footed Albatross"``.

    Example:
        >>> clean_class_name("001.Black_footed_Albatross")
        'Black footed Albatross'
    """
    prefix, dot, rest = name.partition(".")
    if dot and prefix.isdigit():
        name = rest
    return name.replace("_", " ").strip()


def _read_table(path: Path, num_fields: int) -> dict[int, list[str]]:
    rows: dict[int, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != num_fields or not fields[0].isdigit():
            raise ValueError(
                f"Expected {num_fields} whitespace-separated fields starting with an integer id in {path} "
                f"line {number}, got {line!r}."
            )
        rows[int(fields[0])] = fields[1:]
    return rows


def read_cub_class_names(cub_dir: str | os.PathLike[str]) -> list[str]:
    """Class names from ``classes.txt``, cleaned by :func:`clean_class_name`, in label order.

    Args:
        cub_dir: the ``CUB_200_2011`` folder.

    Returns:
        ``num_classes`` names; label ``k`` is ``class_id k + 1``.

    Raises:
        FileNotFoundError: when ``classes.txt`` is missing.
        ValueError: for malformed lines or class ids that are not ``1..C``.
    """
    path = Path(cub_dir) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"Expected {path}, which does not exist. {_GET_IMAGES}.")
    table = _read_table(path, 2)
    if sorted(table) != list(range(1, len(table) + 1)):
        raise ValueError(f"Expected class ids 1..{len(table)} in {path}, got {sorted(table)[:5]}...")
    return [clean_class_name(table[k][0]) for k in range(1, len(table) + 1)]


def read_cub_records(
    cub_dir: str | os.PathLike[str],
    split: Literal["train", "test", "all"],
    segmentations_dir: str | os.PathLike[str] | None = None,
) -> list[WSOLRecord]:
    """Parse the official tree into records of one split, in ``images.txt`` order.

    Args:
        cub_dir: the ``CUB_200_2011`` folder.
        split: ``"train"`` (``is_training_image == 1``), ``"test"`` (0) or ``"all"``.
        segmentations_dir: when given, each record gets the mask ``<segmentations_dir>/<image path>.png``.

    Returns:
        Records with ``image_id`` = the image's relative path (also wsolevaluation's image id), ``label`` =
        ``class_id - 1`` and one box.

    Raises:
        FileNotFoundError: for a missing metadata file.
        ValueError: for a bad ``split``, malformed lines, or an image without a label, split entry or box.

    Example:
        >>> import tempfile
        >>> files = [("images.txt", "1 001.A/a.jpg"), ("image_class_labels.txt", "1 1"),
        ...          ("train_test_split.txt", "1 0"), ("bounding_boxes.txt", "1 10.0 20.0 30.0 40.0")]
        >>> with tempfile.TemporaryDirectory() as cub:
        ...     for name, text in files:
        ...         _ = (Path(cub) / name).write_text(text)
        ...     records = read_cub_records(cub, "test")
        >>> [(r.image_id, r.label, r.boxes) for r in records]
        [('001.A/a.jpg', 0, ((10.0, 20.0, 40.0, 60.0),))]
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"Expected `split` to be 'train', 'test' or 'all', got {split!r}.")
    cub_dir = Path(cub_dir)
    tables = {}
    for name, width in (
        ("images.txt", 2),
        ("image_class_labels.txt", 2),
        ("train_test_split.txt", 2),
        ("bounding_boxes.txt", 5),
    ):
        path = cub_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"Expected {path}, which does not exist (partial tree?). {_GET_IMAGES}.")
        tables[name] = _read_table(path, width)
    records = []
    for image_id, (relative,) in tables["images.txt"].items():
        for name in ("image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"):
            if image_id not in tables[name]:
                raise ValueError(f"Expected an entry for image id {image_id} ({relative}) in {cub_dir / name}.")
        is_train = tables["train_test_split.txt"][image_id][0] == "1"
        if split != "all" and is_train != (split == "train"):
            continue
        x, y, w, h = (float(v) for v in tables["bounding_boxes.txt"][image_id])
        mask_paths = ()
        if segmentations_dir is not None:
            mask_paths = (Path(segmentations_dir) / Path(relative).with_suffix(".png"),)
        records.append(
            WSOLRecord(
                image_id=relative,
                path=cub_dir / "images" / relative,
                label=int(tables["image_class_labels.txt"][image_id][0]) - 1,
                boxes=((x, y, x + w, y + h),),
                mask_paths=mask_paths,
            )
        )
    return records


def _stratified_holdout(
    records: Sequence[WSOLRecord], fraction: float, seed: int
) -> tuple[list[WSOLRecord], list[WSOLRecord]]:
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        by_class.setdefault(record.label, []).append(index)
    held: set[int] = set()
    for label in sorted(by_class):
        indices = by_class[label]
        count = round(fraction * len(indices))
        order = torch.randperm(len(indices), generator=generator)[:count].tolist()
        held.update(indices[i] for i in order)
    kept = [r for i, r in enumerate(records) if i not in held]
    return kept, [r for i, r in enumerate(records) if i in held]


class CUBDataModule(WSOLDataModule):
    """CUB-200-2011 for weakly supervised object localization, with the WSOL-standard transforms.

    Two layouts are read:

    - the official tree (``metadata_root=None``): train = ``train_test_split.txt`` 1, test = 0; validation is
      the test set (the CAM literature's practice) unless ``val_fraction`` holds out part of the training set,
      stratified by class;
    - the wsolevaluation metadata (``metadata_root`` holding ``train/``, ``val/``, ``test/``; see
      :mod:`~lightning_cam.data.wsol_metadata`): the splits as given, image paths relative to
      ``root/CUB_200_2011/images``, ``root/images`` or ``root`` (the first that holds the split's first image;
      wsolevaluation's ``dataset/CUB`` is the last kind).

    Training samples are resized to ``resize_size`` squared, randomly cropped to ``image_size`` and flipped;
    evaluation samples are resized to ``image_size`` squared; boxes and masks follow. Batches come from
    :func:`~lightning_cam.data.collate.wsol_collate`.

    Args:
        root: the ``CUB_200_2011`` folder or the folder holding it (the download destination).
        batch_size: samples per batch.
        num_workers: DataLoader workers; ``None`` uses up to 8 CPU cores.
        image_size: crop / evaluation side (224).
        resize_size: training resize side before the random crop (256).
        download: fetch the official archives into ``root`` in ``prepare_data``, MD5-checked (the segmentations
            only with ``with_masks=True``); offline it fails within ``download_timeout`` seconds.
        with_masks: ``True`` requires segmentation masks (and downloads them); ``False`` never returns masks;
            ``None`` returns them for a split when every image of it has one.
        metadata_root: wsolevaluation metadata folder for CUB (e.g. ``metadata/CUB``); ``None`` for the
            official split.
        val_fraction: with the official layout, fraction of each class's training images held out for validation;
            0 validates on the test set.
        seed: seed of the held-out validation split.
        mask_threshold: gray level above which a segmentation pixel is foreground.
        pin_memory: passed to the DataLoaders.
        download_timeout: socket timeout in seconds of the download.

    Raises:
        ValueError: for invalid sizes, batch size, worker count or ``val_fraction``.
        FileNotFoundError: with ``download=False``, when the tree or metadata is missing or partial, naming the
            missing file and how to get it (at construction for the metadata files, in ``setup`` for images and
            masks).

    Example::

        dm = CUBDataModule("data/", batch_size=32, with_masks=True, download=True)
        trainer.fit(model, datamodule=dm)
        dm.class_names[:2]  # ['Black footed Albatross', 'Laysan Albatross']
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        batch_size: int = 32,
        num_workers: int | None = None,
        image_size: int = 224,
        resize_size: int = 256,
        download: bool = False,
        with_masks: bool | None = None,
        metadata_root: str | os.PathLike[str] | None = None,
        val_fraction: float = 0.0,
        seed: int = 0,
        mask_threshold: int = 127,
        pin_memory: bool = False,
        download_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=min(8, os.cpu_count() or 1) if num_workers is None else num_workers,
            pin_memory=pin_memory,
        )
        self.save_hyperparameters()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"Expected `val_fraction` in [0, 1), got {val_fraction}.")
        if metadata_root is not None and val_fraction > 0:
            raise ValueError(
                f"Expected `val_fraction` = 0 with `metadata_root` (it has a val split), got {val_fraction}."
            )
        # Built now so that invalid sizes fail here rather than in a worker.
        self.train_transform = WSOLTrainTransform(resize_size=resize_size, crop_size=image_size)
        self.eval_transform = WSOLEvalTransform(size=image_size)
        if not 0 <= mask_threshold <= 254:
            raise ValueError(f"Expected `mask_threshold` in [0, 254], got {mask_threshold}.")
        self.root = Path(root).expanduser()
        self.download = download
        self.with_masks = with_masks
        self.metadata_root = None if metadata_root is None else Path(metadata_root).expanduser()
        self.val_fraction = val_fraction
        self.seed = seed
        self.mask_threshold = mask_threshold
        self.download_timeout = download_timeout
        self._class_names: list[str] | None = None
        if self.metadata_root is not None:
            for split in ("train", "val", "test"):
                for name in ("image_ids.txt", "class_labels.txt"):
                    if not (self.metadata_root / split / name).is_file():
                        raise FileNotFoundError(
                            f"Expected the wsolevaluation metadata file {self.metadata_root / split / name}, which "
                            "does not exist; get the metadata from https://github.com/clovaai/wsolevaluation."
                        )
        elif not download:
            locate_cub(self.root)

    def prepare_data(self) -> None:
        """Download and unpack the archives when ``download=True`` (rank 0 only, as Lightning calls it)."""
        if self.download:
            download_cub(self.root, with_segmentations=self.with_masks is True, timeout=self.download_timeout)

    @property
    def class_names(self) -> list[str]:
        """Class names in label order, e.g. ``"Black footed Albatross"``; read on first access.

        From ``classes.txt`` when the official tree is there; with metadata alone, from the class folder of the
        first image of each label in the training split.
        """
        if self._class_names is None:
            try:
                self._class_names = read_cub_class_names(locate_cub(self.root))
            except FileNotFoundError:
                if self.metadata_root is None:
                    raise
                self._class_names = self._class_names_from_metadata()
        return self._class_names

    def _class_names_from_metadata(self) -> list[str]:
        assert self.metadata_root is not None
        folders: dict[int, str] = {}
        for record in read_wsol_metadata(self.metadata_root / "train", self.root, require_localization=False):
            folders.setdefault(record.label, Path(record.image_id).parent.name or record.image_id)
        if sorted(folders) != list(range(len(folders))):
            raise ValueError(f"Expected training labels 0..{len(folders) - 1}, got {sorted(folders)[:5]}...")
        return [clean_class_name(folders[k]) for k in range(len(folders))]

    def _image_root(self, records: Sequence[WSOLRecord], split: str) -> Path:
        candidates = [self.root / CUB_IMAGES.extracts_to / "images", self.root / "images", self.root]
        first = records[0].image_id if records else ""
        for candidate in candidates:
            if (candidate / first).is_file():
                return candidate
        raise FileNotFoundError(
            f"Expected the {split} image {first} under one of {[str(c) for c in candidates]}, found it in none. "
            f"{_GET_IMAGES} in {self.root}."
        )

    def _metadata_records(self, split: str) -> list[WSOLRecord]:
        assert self.metadata_root is not None
        split_dir = self.metadata_root / split
        probe = read_wsol_metadata(split_dir, Path(), require_localization=split != "train")
        return read_wsol_metadata(split_dir, self._image_root(probe, split), require_localization=split != "train")

    def _segmentations_dir(self) -> Path | None:
        try:
            return locate_segmentations(locate_cub(self.root))
        except FileNotFoundError:  # metadata layout without the official tree
            candidate = self.root / CUB_SEGMENTATIONS.extracts_to
            return candidate if candidate.is_dir() else None

    def _attach_masks(self, records: list[WSOLRecord], split: str) -> list[WSOLRecord]:
        if self.with_masks is False or all(r.mask_paths for r in records):
            return records
        segmentations = self._segmentations_dir()
        if segmentations is None:
            if self.with_masks:
                raise FileNotFoundError(
                    f"Expected CUB segmentations at {self.root / CUB_SEGMENTATIONS.extracts_to} for "
                    f"`with_masks=True`, which does not exist. {_GET_MASKS} in {self.root}."
                )
            return records
        attached = [
            r if r.mask_paths else replace(r, mask_paths=(segmentations / Path(r.image_id).with_suffix(".png"),))
            for r in records
        ]
        missing = [r.mask_paths[0] for r in attached if not r.mask_paths[0].is_file()]
        if not missing:
            return attached
        message = f"Expected a segmentation mask for every {split} image, {len(missing)} missing, e.g. {missing[0]}."
        if self.with_masks:
            raise FileNotFoundError(f"{message} {_GET_MASKS} in {self.root}.")
        warnings.warn(f"{message} The {split} split is served without masks.", stacklevel=2)
        return records

    def _records(self, split: Split) -> list[WSOLRecord]:
        if self.metadata_root is not None:
            records = self._metadata_records(split)
        else:
            cub = locate_cub(self.root)
            if split == "test" or (split == "val" and self.val_fraction == 0):
                records = read_cub_records(cub, "test")
            else:
                train, val = _stratified_holdout(read_cub_records(cub, "train"), self.val_fraction, self.seed)
                records = train if split == "train" else val
        records = self._attach_masks(records, split)
        check_files_exist(records, hint=f"{_GET_IMAGES} in {self.root}.")
        return records

    def build_dataset(self, split: Split) -> WSOLImageDataset:
        """Parse one split, check that its files exist and wrap it with the split's transform."""
        return WSOLImageDataset(
            self._records(split),
            transform=self.train_transform if split == "train" else self.eval_transform,
            mask_threshold=self.mask_threshold,
            return_masks=self.with_masks is not False,
        )

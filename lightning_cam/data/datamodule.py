"""What every WSOL DataModule of the package shares: three splits, ``wsol_collate`` batches, class names."""

from __future__ import annotations

from typing import Literal

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from lightning_cam.data.collate import wsol_collate

Split = Literal["train", "val", "test"]

_STAGE_SPLITS: dict[str | None, tuple[Split, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
    None: ("train", "val", "test"),
}


class WSOLDataModule(LightningDataModule):
    """Base DataModule: builds each split once, serves it in :func:`~lightning_cam.data.collate.wsol_collate` batches.

    Subclasses implement :meth:`build_dataset` and :attr:`class_names`. ``setup`` builds the splits a stage
    needs (``fit``: train and val; ``validate``: val; ``test`` and ``predict``: test), so missing data is reported
    before the first step.

    Args:
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        pin_memory: passed to the DataLoaders.

    Raises:
        ValueError: for a non-positive ``batch_size`` or a negative ``num_workers``.
    """

    def __init__(self, batch_size: int, num_workers: int, pin_memory: bool = False) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"Expected `batch_size` as a positive int, got {batch_size!r}.")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"Expected `num_workers` as an int >= 0, got {num_workers!r}.")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.datasets: dict[Split, Dataset] = {}

    @property
    def class_names(self) -> list[str]:
        """Class names in label order, for captions."""
        raise NotImplementedError(f"{type(self).__name__} must define `class_names`.")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def build_dataset(self, split: Split) -> Dataset:
        """Create the dataset of one split (called once per split)."""
        raise NotImplementedError(f"{type(self).__name__} must define `build_dataset`.")

    def dataset(self, split: Split) -> Dataset:
        """The dataset of ``split``, built on first use.

        Raises:
            ValueError: for a split other than ``"train"``, ``"val"``, ``"test"``.
        """
        if split not in ("train", "val", "test"):
            raise ValueError(f"Expected `split` to be 'train', 'val' or 'test', got {split!r}.")
        if split not in self.datasets:
            self.datasets[split] = self.build_dataset(split)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the split(s) the stage needs.

        Args:
            stage: ``"fit"``, ``"validate"``, ``"test"``, ``"predict"`` or ``None`` (all splits).

        Raises:
            ValueError: for another stage.
        """
        if stage not in _STAGE_SPLITS:
            raise ValueError(f"Expected `stage` in {list(_STAGE_SPLITS)}, got {stage!r}.")
        for split in _STAGE_SPLITS[stage]:
            self.dataset(split)

    def _loader(self, split: Split) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=split == "train",
            num_workers=self.num_workers,
            collate_fn=wsol_collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches, in dataset order."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches, in dataset order."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The test batches, for ``trainer.predict``."""
        return self._loader("test")

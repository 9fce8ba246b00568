"""Fixtures: a fake CUB tree in ``tmp_path``."""

from pathlib import Path

import pytest

from .fake_cub import write_fake_cub


@pytest.fixture
def fake_cub(tmp_path: Path) -> Path:
    """The folder holding ``CUB_200_2011/`` and ``segmentations/``."""
    write_fake_cub(tmp_path)
    return tmp_path


@pytest.fixture
def fake_cub_without_masks(tmp_path: Path) -> Path:
    """Like ``fake_cub`` without ``segmentations/``, in its own folder under ``tmp_path``."""
    root = tmp_path / "no_masks"
    write_fake_cub(root, with_segmentations=False)
    return root

"""A small fake CUB-200-2011 tree in the official format (and its wsolevaluation metadata), written with PIL."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]


@dataclass(frozen=True)
class FakeImage:
    cub_id: int
    relative: str
    label: int
    is_train: bool
    size: tuple[int, int]  # (width, height)
    box: tuple[float, float, float, float]  # CUB's x, y, w, h
    gray: bool = False


# Two train and one test image per class; odd sizes and float boxes so that scaling is not trivial.
IMAGES = [
    FakeImage(1, f"{CLASSES[0]}/Black_Footed_Albatross_0001_796111.jpg", 0, True, (60, 40), (10.0, 5.0, 30.0, 20.0)),
    FakeImage(2, f"{CLASSES[0]}/Black_Footed_Albatross_0002_55.jpg", 0, True, (50, 70), (4.0, 12.0, 40.0, 50.0)),
    FakeImage(3, f"{CLASSES[0]}/Black_Footed_Albatross_0003_796136.jpg", 0, False, (64, 48), (20.0, 8.0, 36.0, 30.0)),
    FakeImage(4, f"{CLASSES[1]}/Laysan_Albatross_0001_545.jpg", 1, True, (45, 45), (0.0, 0.0, 45.0, 45.0), gray=True),
    FakeImage(5, f"{CLASSES[1]}/Laysan_Albatross_0002_1027.jpg", 1, False, (80, 50), (30.0, 10.0, 25.0, 35.0)),
    FakeImage(6, f"{CLASSES[1]}/Laysan_Albatross_0003_1033.jpg", 1, True, (56, 40), (8.0, 6.0, 20.0, 28.0)),
    FakeImage(7, f"{CLASSES[2]}/Sooty_Albatross_0001_1071.jpg", 2, True, (40, 60), (5.0, 20.0, 30.0, 30.0)),
    FakeImage(8, f"{CLASSES[2]}/Sooty_Albatross_0002_796395.jpg", 2, True, (72, 54), (12.0, 14.0, 48.0, 30.0)),
    FakeImage(9, f"{CLASSES[2]}/Sooty_Albatross_0003_796382.jpg", 2, False, (48, 48), (6.0, 6.0, 30.0, 36.0)),
]


def segmentation(image: FakeImage) -> np.ndarray:
    """A soft mask like CUB's: 255 inside the box, 102 (a minority vote) in a one-pixel ring around it."""
    width, height = image.size
    x, y, w, h = (int(v) for v in image.box)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[max(y - 1, 0) : y + h + 1, max(x - 1, 0) : x + w + 1] = 102
    mask[y : y + h, x : x + w] = 255
    return mask


def write_fake_cub(root: Path, with_segmentations: bool = True) -> Path:
    """Write the official tree under ``root/CUB_200_2011`` (and ``root/segmentations``); return the CUB folder."""
    cub = root / "CUB_200_2011"
    rng = np.random.default_rng(0)
    for image in IMAGES:
        path = cub / "images" / image.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        width, height = image.size
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels[..., 0] if image.gray else pixels).save(path, quality=90)
        if with_segmentations:
            mask_path = root / "segmentations" / Path(image.relative).with_suffix(".png")
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(segmentation(image)).save(mask_path)
    (cub / "images.txt").write_text("".join(f"{i.cub_id} {i.relative}\n" for i in IMAGES))
    (cub / "image_class_labels.txt").write_text("".join(f"{i.cub_id} {i.label + 1}\n" for i in IMAGES))
    (cub / "train_test_split.txt").write_text("".join(f"{i.cub_id} {int(i.is_train)}\n" for i in IMAGES))
    (cub / "bounding_boxes.txt").write_text(
        "".join(f"{i.cub_id} {' '.join(f'{v:.1f}' for v in i.box)}\n" for i in IMAGES)
    )
    (cub / "classes.txt").write_text("".join(f"{k + 1} {name}\n" for k, name in enumerate(CLASSES)))
    return cub


def cub_xyxy(image: FakeImage) -> tuple[float, float, float, float]:
    x, y, w, h = image.box
    return (x, y, x + w, y + h)


def write_wsol_metadata(metadata_root: Path, splits: dict[str, list[FakeImage]], localization: bool = True) -> None:
    """wsolevaluation's layout: ``<split>/image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt``."""
    for split, images in splits.items():
        folder = metadata_root / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "image_ids.txt").write_text("".join(f"{i.relative}\n" for i in images))
        (folder / "class_labels.txt").write_text("".join(f"{i.relative},{i.label}\n" for i in images))
        (folder / "image_sizes.txt").write_text("".join(f"{i.relative},{i.size[0]},{i.size[1]}\n" for i in images))
        if localization and split != "train":
            lines = [f"{i.relative},{','.join(str(int(v)) for v in cub_xyxy(i))}\n" for i in images]
            (folder / "localization.txt").write_text("".join(lines))

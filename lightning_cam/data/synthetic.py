"""An offline WSOL dataset generated procedurally: objects whose class shows on only part of them.

Every image holds one object over a cluttered background:

- **background**: smooth, desaturated colour noise with pixel noise and a few thin lines;
- **distractors**: 2 to 4 small ellipses, rectangles and bars of random colour, solid or with smooth noise,
  drawn under the object; none of their shapes or textures belongs to a class;
- **body**: an ellipse shared by all classes (random size, elongation, angle and position), 30-70 % of the image
  side, coloured with a hue drawn around a class-specific mean with a spread of 0.6 times the spacing between
  classes, so that the body colour alone is weak, noisy evidence of the class;
- **part**: a class-specific shape (disc, square, triangle, ...) filled with a class-specific high-contrast texture
  (stripes, checkers, dots, ...), covering 5-20 % of the body (a tenth on average), at a random place inside it.

The mask is the body (the part lies inside it) and the box is the mask's bounding box, both exact.

Why GAP and GMP localize differently here: the part is the strong, local cue, while the body colour is a weak cue
spread over the whole object. Global average pooling sums evidence over space, so a GAP network gains from scoring
every body pixel and its CAM covers the body; global max pooling keeps one location per channel, so a GMP network
learns the part, and its CAM peaks there, on a tenth of the object. In a quick check (a 6-layer BatchNorm CNN, 6
epochs on 3000 64x64 images of 6 classes, 500 validation images) MaxBoxAccV2 was about 69 with GAP and 58 with GMP,
against 26 for a centred box of the mean size and 7 for the whole image.

Generation is deterministic per ``(seed, index)`` and takes about a millisecond for a 64x64 image.
"""

from __future__ import annotations

import colorsys
import math
import random
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from lightning_cam.data.collate import WSOLSample
from lightning_cam.data.datamodule import Split, WSOLDataModule
from lightning_cam.data.transforms import mask_to_box, normalize_image

Pattern = Callable[[Tensor, Tensor], Tensor]

# Part shapes, on coordinates scaled so that the part's half-size is 1.
_SHAPES: tuple[tuple[str, Pattern], ...] = (
    ("disc", lambda x, y: x * x + y * y <= 1),
    ("square", lambda x, y: (x.abs() <= 0.85) & (y.abs() <= 0.85)),
    ("triangle", lambda x, y: (y <= 0.75) & (y >= 2 * x.abs() - 1)),
    ("diamond", lambda x, y: x.abs() + y.abs() <= 1),
    ("cross", lambda x, y: ((x.abs() <= 0.35) | (y.abs() <= 0.35)) & (x.abs() <= 1) & (y.abs() <= 1)),
    ("ring", lambda x, y: ((x * x + y * y) <= 1) & ((x * x + y * y) >= 0.3)),
    ("bar", lambda x, y: (x.abs() <= 1) & (y.abs() <= 0.45)),
    ("pillar", lambda x, y: (x.abs() <= 0.45) & (y.abs() <= 1)),
    ("saltire", lambda x, y: ((x.abs() - y.abs()).abs() <= 0.3) & (x.abs() <= 1) & (y.abs() <= 1)),
    ("half-disc", lambda x, y: (x * x + y * y <= 1) & (y <= 0.1)),
)

# Part textures, on pixel offsets from the part's centre; True = the bright tone.
_TEXTURES: tuple[tuple[str, Pattern], ...] = (
    ("striped", lambda x, y: torch.floor(y / 2) % 2 == 0),
    ("banded", lambda x, y: torch.floor(x / 2) % 2 == 0),
    ("checkered", lambda x, y: (torch.floor(x / 2) + torch.floor(y / 2)) % 2 == 0),
    ("slashed", lambda x, y: torch.floor((x + y) / 2) % 2 == 0),
    ("dotted", lambda x, y: (x.remainder(3) < 1.5) & (y.remainder(3) < 1.5)),
    ("rippled", lambda x, y: torch.floor(torch.sqrt(x * x + y * y) / 1.5) % 2 == 0),
    ("backslashed", lambda x, y: torch.floor((x - y) / 2) % 2 == 0),
    ("plain", lambda x, y: torch.ones_like(x, dtype=torch.bool)),
    ("tiled", lambda x, y: (torch.floor(x / 3) + torch.floor(y / 3)) % 2 == 0),
    ("gridded", lambda x, y: (x.remainder(4) < 1) | (y.remainder(4) < 1)),
)

# How much the body colour says about the class: the hue is drawn around the class's hue with this standard
# deviation, in units of the spacing between class hues (0.6: the nearest class hue is right 59 % of the time).
_BODY_HUE_SPREAD = 0.6
# Part placement and size, relative to the body's semi-axes.
_PART_OFFSET = 0.45
_PART_HALF_SIZE = (0.35, 0.45)
_BANK_SIZE = 16

MAX_CLASSES = len(_SHAPES)
"""The most classes the generator can make (each needs its own part shape and texture)."""


def synthetic_class_names(num_classes: int) -> list[str]:
    """Names of the synthetic classes: the texture and shape of their discriminative part.

    Args:
        num_classes: number of classes, ``2 .. MAX_CLASSES``.

    Returns:
        e.g. ``["striped disc", "banded square", ...]``.

    Example:
        >>> synthetic_class_names(3)
        ['striped disc', 'banded square', 'checkered triangle']
    """
    _check_num_classes(num_classes)
    return [f"{_TEXTURES[k][0]} {_SHAPES[k][0]}" for k in range(num_classes)]


def _check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"Expected `num_classes` as an int in [2, {MAX_CLASSES}], got {num_classes!r}.")


def _check_generator_args(
    image_size: int,
    num_classes: int,
    seed: int,
    object_scale: tuple[float, float],
    num_distractors: tuple[int, int],
) -> None:
    if not isinstance(image_size, int) or image_size < 24:
        raise ValueError(f"Expected `image_size` as an int >= 24 (parts need a few pixels), got {image_size!r}.")
    _check_num_classes(num_classes)
    if not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise ValueError(f"Expected `seed` as an int in [0, 2**31), got {seed!r}.")
    if len(object_scale) != 2 or not 0.1 <= object_scale[0] <= object_scale[1] <= 0.95:
        raise ValueError(f"Expected `object_scale` (low, high) with 0.1 <= low <= high <= 0.95, got {object_scale}.")
    if len(num_distractors) != 2 or not 0 <= num_distractors[0] <= num_distractors[1]:
        raise ValueError(f"Expected `num_distractors` (low, high) with 0 <= low <= high, got {num_distractors}.")


def _rgb(hue: float, saturation: float, value: float) -> Tensor:
    return torch.tensor(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=torch.float32).view(3, 1, 1)


def _clutter_bank(count: int, size: int, seed: int) -> Tensor:
    """Zero-mean clutter fields ``(count, 3, 2 * size, 2 * size)``: smooth colour blobs, thin lines, pixel noise.

    Drawing them once and cutting random windows per image keeps generation at about a millisecond; the bank
    depends on the seed only, so samples stay pure functions of ``(seed, index)``.
    """
    generator = torch.Generator().manual_seed(seed)
    side = 2 * size
    blobs = F.interpolate(torch.rand(count, 3, 10, 10, generator=generator), size=(side, side), mode="bilinear")
    bank = 0.3 * (blobs - 0.5) + 0.04 * torch.randn(count, 3, side, side, generator=generator)
    coords = torch.arange(side, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    for field in bank:
        for _ in range(8):
            angle, offset = torch.rand(2, generator=generator).tolist()
            angle, offset = angle * math.pi, (offset - 0.5) * side
            line = ((xx - side / 2) * math.sin(angle) - (yy - side / 2) * math.cos(angle) - offset).abs() <= 0.6
            field[:, line] = (torch.rand(3, 1, generator=generator) - 0.5) * 0.8
    return bank


class SyntheticWSOLDataset(Dataset):
    """Procedurally generated WSOL images with exact boxes and masks (see the module docstring for the design).

    Sample ``i`` has label ``i % num_classes`` (balanced classes) and is a pure function of ``(seed, i)``, so
    any worker, order or epoch sees the same data.

    Args:
        num_samples: dataset length.
        image_size: side of the square images.
        num_classes: number of classes, ``2 .. MAX_CLASSES``.
        seed: non-negative seed; datasets with different seeds share no image.
        object_scale: range of the object's larger box side, as a fraction of ``image_size``.
        num_distractors: inclusive range of the number of distractor shapes per image.
        cache: generate every sample once, at construction (uint8, ``num_samples * 4 * image_size**2`` bytes).

    Raises:
        ValueError: for invalid sizes, ranges, class count or seed.

    Example:
        >>> ds = SyntheticWSOLDataset(4, image_size=32, num_classes=2, seed=0)
        >>> sample = ds[1]
        >>> tuple(sample["image"].shape), sample["label"].item(), sample["boxes"].shape, sample["mask"].dtype
        ((3, 32, 32), 1, torch.Size([1, 4]), torch.uint8)
    """

    def __init__(
        self,
        num_samples: int,
        image_size: int = 64,
        num_classes: int = 6,
        seed: int = 0,
        object_scale: tuple[float, float] = (0.3, 0.7),
        num_distractors: tuple[int, int] = (2, 4),
        cache: bool = False,
    ) -> None:
        if not isinstance(num_samples, int) or num_samples < 0:
            raise ValueError(f"Expected `num_samples` as an int >= 0, got {num_samples!r}.")
        _check_generator_args(image_size, num_classes, seed, object_scale, num_distractors)
        self.num_samples = num_samples
        self.image_size = image_size
        self.num_classes = num_classes
        self.seed = seed
        self.object_scale = (float(object_scale[0]), float(object_scale[1]))
        self.num_distractors = (int(num_distractors[0]), int(num_distractors[1]))
        self.class_names = synthetic_class_names(num_classes)
        coords = torch.arange(image_size, dtype=torch.float32) + 0.5
        self._yy, self._xx = torch.meshgrid(coords, coords, indexing="ij")
        self._bank = _clutter_bank(_BANK_SIZE, image_size, seed)
        self._cache: tuple[Tensor, Tensor] | None = None
        if cache:
            images = torch.empty(num_samples, 3, image_size, image_size, dtype=torch.uint8)
            masks = torch.empty(num_samples, image_size, image_size, dtype=torch.uint8)
            for i in range(num_samples):
                images[i], masks[i] = self.generate(i)
            self._cache = (images, masks)

    def __len__(self) -> int:
        return self.num_samples

    def label(self, index: int) -> int:
        """Class of sample ``index``."""
        return index % self.num_classes

    def _ellipse(self, cx: float, cy: float, a: float, b: float, angle: float) -> tuple[Tensor, Tensor, Tensor]:
        # u, v: coordinates along the ellipse's axes, scaled so the ellipse is the unit disc. Written as affine
        # maps of the cached grids to keep the number of tensor ops (the cost at this size) low.
        cos, sin = math.cos(angle), math.sin(angle)
        u = torch.add(self._xx * (cos / a), self._yy, alpha=sin / a).sub_((cx * cos + cy * sin) / a)
        v = torch.add(self._yy * (cos / b), self._xx, alpha=-sin / b).sub_((cy * cos - cx * sin) / b)
        return torch.addcmul(u * u, v, v) <= 1, u, v

    def _texture(self, rng: random.Random) -> Tensor:
        """A random ``(3, S, S)`` window of the clutter bank, randomly mirrored."""
        size = self.image_size
        top, left = rng.randrange(size), rng.randrange(size)
        window = self._bank[rng.randrange(len(self._bank)), :, top : top + size, left : left + size]
        return window.flip(-1) if rng.random() < 0.5 else window

    def _draw_distractors(self, image: Tensor, rng: random.Random) -> Tensor:
        size = self.image_size
        for _ in range(rng.randint(*self.num_distractors)):
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
            a = rng.uniform(0.05, 0.13) * size
            b = a * rng.uniform(0.3, 1.0)
            angle = rng.uniform(0, math.pi)
            kind = rng.randrange(3)
            if kind == 0:
                region, _, _ = self._ellipse(cx, cy, a, b, angle)
            else:
                _, u, v = self._ellipse(cx, cy, a, b if kind == 1 else a * 0.25, angle)
                region = torch.maximum(u.abs(), v.abs()) <= 1
            color = _rgb(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.95))
            if rng.random() < 0.5:
                color = color + self._texture(rng)
            image = torch.where(region, color, image)
        return image

    def generate(self, index: int) -> tuple[Tensor, Tensor]:
        """Draw sample ``index``.

        Args:
            index: sample index in ``[0, num_samples)``.

        Returns:
            The uint8 ``(3, S, S)`` image and the uint8 ``(S, S)`` object mask (1 = object).

        Raises:
            IndexError: for an index out of range.
        """
        if not 0 <= index < self.num_samples:
            raise IndexError(f"Expected an index in [0, {self.num_samples}), got {index}.")
        rng = random.Random((self.seed << 32) + index)
        size, label = self.image_size, self.label(index)

        background = _rgb(rng.random(), rng.uniform(0.05, 0.25), rng.uniform(0.35, 0.65))
        image = self._draw_distractors(background + self._texture(rng), rng)

        # Body: draw the box side first so that the object's extent is uniform in `object_scale`.
        extent = rng.uniform(*self.object_scale) * size
        elongation = rng.uniform(0.55, 0.9)
        angle = rng.uniform(0, math.pi)
        cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
        half_w, half_h = math.hypot(cos, elongation * sin), math.hypot(sin, elongation * cos)
        a = extent / 2 / max(half_w, half_h)
        b = a * elongation
        margin_x, margin_y = a * half_w + 1, a * half_h + 1
        cx, cy = rng.uniform(margin_x, size - margin_x), rng.uniform(margin_y, size - margin_y)
        body, _, _ = self._ellipse(cx, cy, a, b, angle)
        hue = (label + rng.gauss(0.0, _BODY_HUE_SPREAD)) / self.num_classes
        body_color = _rgb(hue, rng.uniform(0.55, 0.85), rng.uniform(0.55, 0.85)) + 0.5 * self._texture(rng).mean(0)
        image = torch.where(body, body_color, image)

        # Part: class shape filled with class texture, somewhere inside the body, clipped to it.
        radius, theta = _PART_OFFSET * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        pu, pv = radius * math.cos(theta) * a, radius * math.sin(theta) * b
        ca, sa = math.cos(angle), math.sin(angle)
        px, py = cx + pu * ca - pv * sa, cy + pu * sa + pv * ca
        half = max(rng.uniform(*_PART_HALF_SIZE) * a, 3.0)
        dx, dy = self._xx - px, self._yy - py
        part = _SHAPES[label][1](dx / half, dy / half) & body
        tone = rng.random()
        light, dark = _rgb(tone, 0.15, 0.95), _rgb(tone, 0.3, 0.12)
        image = torch.where(part, torch.where(_TEXTURES[label][1](dx, dy), light, dark), image)

        return image.clamp_(0, 1).mul_(255).round_().to(torch.uint8), body.to(torch.uint8)

    def __getitem__(self, index: int) -> WSOLSample:
        if index < 0:
            index += self.num_samples
        if self._cache is not None:
            if not 0 <= index < self.num_samples:
                raise IndexError(f"Expected an index in [0, {self.num_samples}), got {index}.")
            image, mask = self._cache[0][index], self._cache[1][index]
        else:
            image, mask = self.generate(index)
        return {
            "image": normalize_image(image),
            "label": torch.tensor(self.label(index), dtype=torch.long),
            "boxes": mask_to_box(mask),
            "mask": mask,
            "image_id": f"synthetic-{self.seed}-{index:06d}",
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_samples={self.num_samples}, image_size={self.image_size}, "
            f"num_classes={self.num_classes}, seed={self.seed})"
        )


class SyntheticWSOLDataModule(WSOLDataModule):
    """The offline default: :class:`SyntheticWSOLDataset` splits in the batch format of the CUB DataModule.

    The train, val and test splits use seeds ``seed``, ``seed + 1`` and ``seed + 2``, so they share no image.
    With ``cache=True`` (default) every split is generated once in ``setup`` (about a millisecond per 64x64 image)
    and kept as uint8 tensors, which forked DataLoader workers share.

    Args:
        num_train: training images.
        num_val: validation images.
        num_test: test images.
        image_size: side of the square images.
        num_classes: number of classes, ``2 .. MAX_CLASSES``.
        batch_size: samples per batch.
        num_workers: DataLoader workers (0: generate or read in the main process, cheapest on few cores).
        seed: seed of the training split.
        cache: generate each split once instead of on every access.
        object_scale: range of the object's larger box side, as a fraction of ``image_size``.
        num_distractors: inclusive range of distractor shapes per image.

    Raises:
        ValueError: for invalid sizes, counts or seed.

    Example:
        >>> dm = SyntheticWSOLDataModule(num_train=8, num_val=4, num_test=4, image_size=32, batch_size=4)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> tuple(batch["image"].shape), tuple(batch["mask"].shape), len(batch["boxes"]), dm.num_classes
        ((4, 3, 32, 32), (4, 32, 32), 4, 6)
    """

    def __init__(
        self,
        num_train: int = 3000,
        num_val: int = 500,
        num_test: int = 500,
        image_size: int = 64,
        num_classes: int = 6,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        cache: bool = True,
        object_scale: tuple[float, float] = (0.3, 0.7),
        num_distractors: tuple[int, int] = (2, 4),
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.save_hyperparameters()
        for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Expected `{name}` as a positive int, got {value!r}.")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.seed = seed
        _check_generator_args(image_size, num_classes, seed, object_scale, num_distractors)
        if seed > 2**31 - 3:
            raise ValueError(f"Expected `seed` < 2**31 - 2 (the test split uses seed + 2), got {seed}.")
        self._class_names = synthetic_class_names(num_classes)
        self._dataset_kwargs = {
            "image_size": image_size,
            "num_classes": num_classes,
            "object_scale": object_scale,
            "num_distractors": num_distractors,
            "cache": cache,
        }

    @property
    def class_names(self) -> list[str]:
        """Class names, the texture and shape of each class's part, e.g. ``"striped disc"``."""
        return self._class_names

    def build_dataset(self, split: Split) -> SyntheticWSOLDataset:
        """Create one split; its seed is ``seed`` plus 0, 1 or 2 for train, val, test."""
        offset = ("train", "val", "test").index(split)
        return SyntheticWSOLDataset(self.sizes[split], seed=self.seed + offset, **self._dataset_kwargs)

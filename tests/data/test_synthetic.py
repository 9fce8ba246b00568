import pickle
import time

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from lightning_cam.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SyntheticWSOLDataModule,
    SyntheticWSOLDataset,
    mask_to_box,
    synthetic_class_names,
    wsol_collate,
)
from lightning_cam.data.synthetic import MAX_CLASSES


def test_deterministic_for_a_seed_and_index():
    a = SyntheticWSOLDataset(12, image_size=48, num_classes=4, seed=7)
    b = SyntheticWSOLDataset(12, image_size=48, num_classes=4, seed=7)
    for index in (0, 5, 11, 3):  # any order gives the same sample
        first, second = a[index], b[index]
        assert torch.equal(first["image"], second["image"])
        assert torch.equal(first["mask"], second["mask"])
        assert torch.equal(first["boxes"], second["boxes"])
        assert first["image_id"] == second["image_id"]
    other = SyntheticWSOLDataset(12, image_size=48, num_classes=4, seed=8)
    assert not torch.equal(a[0]["image"], other[0]["image"])
    assert a[0]["image_id"] != other[0]["image_id"]
    assert not torch.equal(a[0]["image"], a[4]["image"])  # same class, different image


def test_cache_serves_the_same_samples():
    lazy = SyntheticWSOLDataset(6, image_size=32, num_classes=3, seed=1)
    cached = SyntheticWSOLDataset(6, image_size=32, num_classes=3, seed=1, cache=True)
    for index in range(6):
        assert torch.equal(lazy[index]["image"], cached[index]["image"])
        assert torch.equal(lazy[index]["mask"], cached[index]["mask"])
    assert torch.equal(cached[-1]["image"], cached[5]["image"])
    with pytest.raises(IndexError):
        cached[6]
    with pytest.raises(IndexError):
        lazy[6]


def test_sample_format():
    sample = SyntheticWSOLDataset(3, image_size=40, num_classes=3)[2]
    assert sample["image"].shape == (3, 40, 40)
    assert sample["image"].dtype == torch.float32
    assert sample["label"].dtype == torch.long
    assert sample["label"].ndim == 0
    assert sample["boxes"].shape == (1, 4)
    assert sample["boxes"].dtype == torch.float32
    assert sample["mask"].shape == (40, 40)
    assert sample["mask"].dtype == torch.uint8
    assert isinstance(sample["image_id"], str)
    # ImageNet-normalised uint8 pixels: within the range the normalisation maps [0, 1] to.
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    flat = sample["image"].flatten(1)
    assert (flat.min(1).values >= low - 1e-5).all()
    assert (flat.max(1).values <= high + 1e-5).all()


def test_box_is_the_bounding_box_of_the_mask_and_objects_are_sizeable():
    dataset = SyntheticWSOLDataset(60, image_size=64, num_classes=6, seed=2)
    extents = []
    for index in range(len(dataset)):
        sample = dataset[index]
        mask = sample["mask"]
        assert set(mask.unique().tolist()) == {0, 1}
        assert torch.equal(sample["boxes"], mask_to_box(mask))
        x0, y0, x1, y1 = sample["boxes"][0].tolist()
        assert 0 <= x0 < x1 <= 64
        assert 0 <= y0 < y1 <= 64
        extents.append(max(x1 - x0, y1 - y0) / 64)
        # The object fits in the image: no mask pixel on the border.
        assert mask[0].sum() == mask[-1].sum() == mask[:, 0].sum() == mask[:, -1].sum() == 0
    # object_scale=(0.3, 0.7) up to a pixel of rasterisation.
    assert min(extents) >= 0.3 - 2 / 64
    assert max(extents) <= 0.7 + 2 / 64
    assert max(extents) - min(extents) > 0.25


def test_whole_image_box_is_a_poor_guess():
    dataset = SyntheticWSOLDataset(60, image_size=64, num_classes=6, seed=3)
    areas = torch.cat([dataset[i]["boxes"] for i in range(60)])
    iou_whole = (areas[:, 2] - areas[:, 0]) * (areas[:, 3] - areas[:, 1]) / 64**2
    assert (iou_whole < 0.5).float().mean() > 0.9


def test_classes_are_balanced_and_named():
    dataset = SyntheticWSOLDataset(60, image_size=32, num_classes=6)
    counts = torch.bincount(torch.stack([dataset[i]["label"] for i in range(60)]), minlength=6)
    assert counts.tolist() == [10] * 6
    assert dataset.class_names == synthetic_class_names(6)
    names = synthetic_class_names(MAX_CLASSES)
    assert len(set(names)) == MAX_CLASSES
    assert len({n.split()[0] for n in names}) == MAX_CLASSES  # one texture per class
    assert len({n.split()[1] for n in names}) == MAX_CLASSES  # one shape per class


def test_the_discriminative_part_covers_only_part_of_the_body():
    dataset = SyntheticWSOLDataset(20, image_size=64, num_classes=10, seed=4)
    for index in range(10):
        image, mask = dataset.generate(index)
        body = mask.bool()
        # The part is drawn in near-black and near-white tones; it sits inside the body and covers only part of it.
        gray = image.float().mean(0)
        extreme = ((gray < 45) | (gray > 225)) & body
        fraction = extreme.sum() / body.sum()
        assert 0.02 < fraction < 0.5


def test_generation_is_fast():
    dataset = SyntheticWSOLDataset(200, image_size=64, num_classes=6)
    for index in range(10):
        dataset.generate(index)
    start = time.perf_counter()
    for index in range(200):
        dataset.generate(index)
    per_image = (time.perf_counter() - start) / 200
    # About 1 ms on a shared 2-core machine; the bound leaves room for a busy one.
    assert per_image < 0.01


def test_dataset_validation():
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticWSOLDataset(4, num_classes=MAX_CLASSES + 1)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticWSOLDataset(4, num_classes=1)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticWSOLDataset(4, image_size=8)
    with pytest.raises(ValueError, match="seed"):
        SyntheticWSOLDataset(4, seed=-1)
    with pytest.raises(ValueError, match="object_scale"):
        SyntheticWSOLDataset(4, object_scale=(0.8, 0.5))
    with pytest.raises(ValueError, match="num_distractors"):
        SyntheticWSOLDataset(4, num_distractors=(3, 1))
    with pytest.raises(ValueError, match="num_samples"):
        SyntheticWSOLDataset(-1)


def test_datamodule_batches():
    dm = SyntheticWSOLDataModule(num_train=10, num_val=6, num_test=4, image_size=32, num_classes=3, batch_size=4)
    assert dm.class_names == ["striped disc", "banded square", "checkered triangle"]
    assert dm.num_classes == 3
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["label"].shape == (4,)
    assert batch["mask"].shape == (4, 32, 32)
    assert [b.shape for b in batch["boxes"]] == [(1, 4)] * 4
    assert len(batch["image_id"]) == 4
    assert [len(b["image"]) for b in dm.val_dataloader()] == [4, 2]
    dm.setup("test")
    assert len(dm.test_dataloader().dataset) == 4
    # The splits use different seeds: no shared image.
    train_ids = {dm.dataset("train")[i]["image_id"] for i in range(4)}
    test_ids = {dm.dataset("test")[i]["image_id"] for i in range(4)}
    assert not train_ids & test_ids
    val = dm.dataset("val")
    assert torch.equal(wsol_collate([val[0], val[1]])["image"], next(iter(dm.val_dataloader()))["image"][:2])


def test_datamodule_validation():
    with pytest.raises(ValueError, match="num_val"):
        SyntheticWSOLDataModule(num_val=0)
    with pytest.raises(ValueError, match="batch_size"):
        SyntheticWSOLDataModule(batch_size=0)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticWSOLDataModule(num_classes=50)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticWSOLDataModule(image_size=4)
    with pytest.raises(ValueError, match="seed"):
        SyntheticWSOLDataModule(seed=-2)
    with pytest.raises(ValueError, match="seed"):
        SyntheticWSOLDataModule(seed=2**31 - 2)
    with pytest.raises(ValueError, match="object_scale"):
        SyntheticWSOLDataModule(object_scale=(0.05, 0.5))
    with pytest.raises(ValueError, match="stage"):
        SyntheticWSOLDataModule().setup("fitting")


def test_datasets_pickle_for_spawned_workers():
    dataset = SyntheticWSOLDataset(3, image_size=32, num_classes=3, seed=5, cache=True)
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[2]["image"], dataset[2]["image"])


def test_trainer_drives_the_datamodule():
    class Probe(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(3, 3)
            self.train_sizes: list[int] = []
            self.val_sizes: list[int] = []

        def training_step(self, batch, batch_idx):
            self.train_sizes.append(len(batch["boxes"]))
            return self.layer(batch["image"].mean((2, 3))).logsumexp(1).mean()

        def validation_step(self, batch, batch_idx):
            self.val_sizes.append(len(batch["image_id"]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = SyntheticWSOLDataModule(num_train=6, num_val=4, num_test=4, image_size=32, num_classes=3, batch_size=3)
    probe = Probe()
    trainer = Trainer(
        max_epochs=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(probe, datamodule=dm)
    assert probe.train_sizes == [3, 3]
    assert probe.val_sizes == [3, 1]
    assert dm.hparams.num_train == 6

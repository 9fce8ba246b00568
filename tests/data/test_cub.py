import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_cam.data import (
    CUBDataModule,
    WSOLImageDataset,
    WSOLRecord,
    clean_class_name,
    locate_cub,
    mask_to_box,
    read_cub_class_names,
    read_cub_records,
    read_wsol_metadata,
)

from .fake_cub import CLASSES, IMAGES, FakeImage, cub_xyxy, write_wsol_metadata


def by_id(records):
    return {r.image_id: r for r in records}


def test_locate_cub_accepts_the_tree_or_its_parent(fake_cub: Path):
    cub = fake_cub / "CUB_200_2011"
    assert locate_cub(fake_cub) == cub
    assert locate_cub(cub) == cub


def test_missing_tree_error_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        locate_cub(tmp_path)
    assert "CUB_200_2011.tgz" in str(info.value)
    with pytest.raises(FileNotFoundError, match="download=True"):
        CUBDataModule(tmp_path)


@pytest.mark.parametrize("missing", ["images.txt", "bounding_boxes.txt", "classes.txt", "train_test_split.txt"])
def test_partial_tree_error_names_the_missing_file(fake_cub: Path, missing: str):
    (fake_cub / "CUB_200_2011" / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing) as info:
        CUBDataModule(fake_cub)
    assert "download=True" in str(info.value)


def test_missing_image_file_is_reported_at_setup(fake_cub: Path):
    (fake_cub / "CUB_200_2011" / "images" / IMAGES[0].relative).unlink()
    dm = CUBDataModule(fake_cub, num_workers=0)
    with pytest.raises(FileNotFoundError, match="Black_Footed_Albatross_0001_796111.jpg"):
        dm.setup("fit")


def test_parse_official_layout_and_split(fake_cub: Path):
    cub = fake_cub / "CUB_200_2011"
    train, test = read_cub_records(cub, "train"), read_cub_records(cub, "test")
    assert [r.image_id for r in train] == [i.relative for i in IMAGES if i.is_train]
    assert [r.image_id for r in test] == [i.relative for i in IMAGES if not i.is_train]
    assert len(read_cub_records(cub, "all")) == len(IMAGES)
    records = by_id(train + test)
    for image in IMAGES:
        record = records[image.relative]
        assert record.label == image.label
        # x y w h -> x0 y0 x1 y1 with x1 = x + w (wsolevaluation).
        assert record.boxes == (cub_xyxy(image),)
        assert record.path == cub / "images" / image.relative
        assert record.mask_paths == ()
    with pytest.raises(ValueError, match="split"):
        read_cub_records(cub, "val")


def test_malformed_and_inconsistent_metadata(fake_cub: Path):
    cub = fake_cub / "CUB_200_2011"
    boxes = cub / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    boxes.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="image id 9"):
        read_cub_records(cub, "test")
    boxes.write_text("\n".join(lines[:-1] + ["9 1.0 2.0 3.0"]) + "\n")
    with pytest.raises(ValueError, match="line 9"):
        read_cub_records(cub, "test")


def test_class_names_are_cleaned(fake_cub: Path):
    assert clean_class_name("200.Common_Yellowthroat") == "Common Yellowthroat"
    assert clean_class_name("Plain_name") == "Plain name"
    expected = ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    assert read_cub_class_names(fake_cub / "CUB_200_2011") == expected
    dm = CUBDataModule(fake_cub, num_workers=0)
    assert dm.class_names == expected
    assert dm.num_classes == 3


def test_dataset_loads_rgb_images_and_soft_masks(fake_cub: Path):
    cub = fake_cub / "CUB_200_2011"
    records = read_cub_records(cub, "all", segmentations_dir=fake_cub / "segmentations")
    dataset = WSOLImageDataset(records)
    for index, image in enumerate(IMAGES):
        sample = dataset[index]
        width, height = image.size
        assert sample["image"].shape == (3, height, width)  # grayscale JPEGs come out as RGB too
        assert sample["label"].dtype == torch.long
        assert sample["label"].ndim == 0
        assert sample["image_id"] == image.relative
        # The ring at 102 is a minority vote, below the threshold: the mask is exactly the box.
        assert sample["mask"].dtype == torch.uint8
        assert set(sample["mask"].unique().tolist()) <= {0, 1}
        assert mask_to_box(sample["mask"]).tolist() == [list(cub_xyxy(image))]
    lenient = WSOLImageDataset(records, mask_threshold=50)[0]
    assert lenient["mask"].sum() > dataset[0]["mask"].sum()
    with pytest.raises(ValueError, match="mask_threshold"):
        WSOLImageDataset(records, mask_threshold=255)


def test_datamodule_eval_batches_scale_boxes_exactly(fake_cub: Path):
    dm = CUBDataModule(fake_cub, batch_size=2, num_workers=0, image_size=32, resize_size=40)
    dm.setup("fit")
    tests = [i for i in IMAGES if not i.is_train]
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    assert batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 32, 32)
    assert batch["image_id"] == [i.relative for i in tests[:2]]
    for boxes, image in zip(batch["boxes"], tests[:2], strict=True):
        width, height = image.size
        x0, y0, x1, y1 = cub_xyxy(image)
        expected = torch.tensor([[x0 * 32 / width, y0 * 32 / height, x1 * 32 / width, y1 * 32 / height]])
        torch.testing.assert_close(boxes, expected)
    # Validation is the test split by default.
    assert len(dm.dataset("val")) == len(tests)
    # ImageNet normalisation: uniform noise images have a mean near (0.5 - mean) / std.
    assert batch["image"].mean().abs() < 0.6


def test_datamodule_train_batches_keep_boxes_around_masks(fake_cub: Path):
    torch.manual_seed(0)
    dm = CUBDataModule(fake_cub, batch_size=6, num_workers=0, image_size=32, resize_size=40)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (6, 3, 32, 32)
    assert sorted(batch["label"].tolist()) == sorted(i.label for i in IMAGES if i.is_train)
    for boxes, mask in zip(batch["boxes"], batch["mask"], strict=True):
        mask_box = mask_to_box(mask)
        assert boxes.shape == mask_box.shape == (1, 4)
        torch.testing.assert_close(mask_box, boxes, atol=1.0, rtol=0)


def test_with_masks_options(fake_cub: Path, fake_cub_without_masks: Path):
    assert "mask" not in CUBDataModule(fake_cub, num_workers=0, with_masks=False).dataset("val")[0]
    assert "mask" in CUBDataModule(fake_cub, num_workers=0).dataset("val")[0]
    assert "mask" not in CUBDataModule(fake_cub_without_masks, num_workers=0).dataset("val")[0]
    with pytest.raises(FileNotFoundError, match="segmentations.tgz"):
        CUBDataModule(fake_cub_without_masks, num_workers=0, with_masks=True).setup("test")


def test_missing_mask_files(fake_cub: Path):
    (fake_cub / "segmentations" / Path(IMAGES[2].relative).with_suffix(".png")).unlink()
    with pytest.raises(FileNotFoundError, match="1 missing"):
        CUBDataModule(fake_cub, num_workers=0, with_masks=True).setup("test")
    with pytest.warns(UserWarning, match="without masks"):
        dataset = CUBDataModule(fake_cub, num_workers=0).dataset("test")
    assert "mask" not in dataset[0]


def test_segmentations_inside_the_cub_folder_are_found(fake_cub: Path):
    shutil.move(fake_cub / "segmentations", fake_cub / "CUB_200_2011" / "segmentations")
    assert "mask" in CUBDataModule(fake_cub / "CUB_200_2011", num_workers=0).dataset("test")[0]


def test_val_fraction_holds_out_a_stratified_part_of_train(fake_cub: Path):
    dm = CUBDataModule(fake_cub, num_workers=0, val_fraction=0.5, seed=3)
    dm.setup("fit")
    train = {r.image_id for r in dm.dataset("train").records}
    val = {r.image_id for r in dm.dataset("val").records}
    assert not train & val
    assert train | val == {i.relative for i in IMAGES if i.is_train}
    # Every class has two training images: round(0.5 * 2) = 1 of each is held out.
    assert sorted(r.label for r in dm.dataset("val").records) == [0, 1, 2]
    again = CUBDataModule(fake_cub, num_workers=0, val_fraction=0.5, seed=3)
    assert {r.image_id for r in again.dataset("val").records} == val
    with pytest.raises(ValueError, match="val_fraction"):
        CUBDataModule(fake_cub, val_fraction=1.0)


def test_datamodule_argument_validation(fake_cub: Path):
    with pytest.raises(ValueError, match="batch_size"):
        CUBDataModule(fake_cub, batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        CUBDataModule(fake_cub, num_workers=-1)
    with pytest.raises(ValueError, match="crop_size"):
        CUBDataModule(fake_cub, image_size=300, resize_size=256)
    with pytest.raises(ValueError, match="stage"):
        CUBDataModule(fake_cub, num_workers=0).setup("nonsense")
    assert CUBDataModule(fake_cub).num_workers >= 1


def test_wsol_metadata_layout(fake_cub: Path):
    metadata = fake_cub / "metadata" / "CUB"
    train = [i for i in IMAGES if i.is_train]
    write_wsol_metadata(metadata, {"train": train, "val": train[:3], "test": [i for i in IMAGES if not i.is_train]})
    # A second box for one validation image: several lines per image mean several boxes.
    with (metadata / "val" / "localization.txt").open("a") as f:
        f.write(f"{train[0].relative},1,1,5,5\n")
    dm = CUBDataModule(fake_cub, num_workers=0, batch_size=3, image_size=32, metadata_root=metadata)
    dm.setup()
    assert [r.image_id for r in dm.dataset("train").records] == [i.relative for i in train]
    assert dm.dataset("train").records[0].boxes == ()  # no localization.txt for train, as in wsolevaluation
    val = by_id(dm.dataset("val").records)
    assert val[train[0].relative].boxes == (tuple(float(int(v)) for v in cub_xyxy(train[0])), (1.0, 1.0, 5.0, 5.0))
    assert val[train[1].relative].size == train[1].size
    batch = next(iter(dm.val_dataloader()))
    assert [len(b) for b in batch["boxes"]] == [2, 1, 1]
    # Segmentations found next to the tree are attached by image id.
    assert batch["mask"].shape == (3, 32, 32)
    assert dm.class_names == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]


def test_wsol_metadata_with_images_directly_under_root(tmp_path: Path, fake_cub_without_masks: Path):
    # wsolevaluation's own layout: dataset/CUB/<class folder>/<file>.jpg, no classes.txt.
    dataset_root = tmp_path / "dataset" / "CUB"
    shutil.copytree(fake_cub_without_masks / "CUB_200_2011" / "images", dataset_root)
    metadata = tmp_path / "metadata"
    write_wsol_metadata(metadata, {"train": IMAGES[:4], "val": IMAGES[4:6], "test": IMAGES[6:]})
    dm = CUBDataModule(dataset_root, num_workers=0, metadata_root=metadata)
    sample = dm.dataset("test")[0]
    assert sample["image_id"] == IMAGES[6].relative
    assert "mask" not in sample
    # Without classes.txt the names come from the class folders of the training images.
    assert dm.class_names == [clean_class_name(c) for c in CLASSES[:2]]


def test_wsol_metadata_errors(fake_cub: Path):
    metadata = fake_cub / "metadata"
    write_wsol_metadata(metadata, {"train": IMAGES[:4], "val": IMAGES[4:6], "test": IMAGES[6:]})
    (metadata / "test" / "localization.txt").unlink()
    with pytest.raises(FileNotFoundError, match="localization.txt"):
        CUBDataModule(fake_cub, num_workers=0, metadata_root=metadata).setup("test")
    (metadata / "val" / "class_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="class_labels.txt"):
        CUBDataModule(fake_cub, metadata_root=metadata)
    with pytest.raises(ValueError, match="val_fraction"):
        CUBDataModule(fake_cub, metadata_root=metadata, val_fraction=0.1)
    bad = metadata / "bad"
    bad.mkdir()
    (bad / "image_ids.txt").write_text("a.jpg\nb.jpg\n")
    (bad / "class_labels.txt").write_text("a.jpg,0\n")
    with pytest.raises(ValueError, match="label for b.jpg"):
        read_wsol_metadata(bad, fake_cub, require_localization=False)
    (bad / "class_labels.txt").write_text("a.jpg,zero\n")
    with pytest.raises(ValueError, match="integer class label"):
        read_wsol_metadata(bad, fake_cub, require_localization=False)
    (bad / "class_labels.txt").write_text("a.jpg,0\nb.jpg,1\n")
    (bad / "localization.txt").write_text("a.jpg,1,2,3\n")
    with pytest.raises(ValueError, match="3 or 5 comma-separated fields"):
        read_wsol_metadata(bad, fake_cub)


def test_wsol_metadata_image_size_mismatch(fake_cub: Path):
    metadata = fake_cub / "metadata"
    wrong = FakeImage(**{**vars(IMAGES[2]), "size": (10, 10)})
    write_wsol_metadata(metadata, {"train": IMAGES[:2], "val": [wrong], "test": [wrong]})
    dm = CUBDataModule(fake_cub, num_workers=0, metadata_root=metadata)
    with pytest.raises(ValueError, match=r"size \(width, height\) \(10, 10\)"):
        dm.dataset("test")[0]


def test_wsol_metadata_mask_localization_with_ignore(tmp_path: Path):
    # OpenImages-style lines: image,mask,ignore (one line per instance, the ignore mask on the first line only).
    root = tmp_path / "data"
    (root / "val" / "c").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(root / "val" / "c" / "img.jpg")
    first = np.zeros((20, 30), dtype=np.uint8)
    first[2:6, 3:9] = 255
    second = np.zeros((20, 30), dtype=np.uint8)
    second[10:15, 20:28] = 255
    ignore = np.zeros((20, 30), dtype=np.uint8)
    ignore[0:8, 0:12] = 255
    for name, array in [("m1.png", first), ("m2.png", second), ("ignore.png", ignore)]:
        Image.fromarray(array).save(root / "val" / "c" / name)
    split = tmp_path / "meta" / "val"
    split.mkdir(parents=True)
    (split / "image_ids.txt").write_text("val/c/img.jpg\n")
    (split / "class_labels.txt").write_text("val/c/img.jpg,4\n")
    (split / "localization.txt").write_text(
        "val/c/img.jpg,val/c/m1.png,val/c/ignore.png\nval/c/img.jpg,val/c/m2.png,\n"
    )
    records = read_wsol_metadata(split, root)
    assert records[0].mask_paths == (root / "val/c/m1.png", root / "val/c/m2.png")
    assert records[0].ignore_path == root / "val/c/ignore.png"
    sample = WSOLImageDataset(records)[0]
    # Boxes come from the instance masks; ignore pixels (inside the ignore box, outside the objects) are 255.
    assert sample["boxes"].tolist() == [[3.0, 2.0, 9.0, 6.0], [20.0, 10.0, 28.0, 15.0]]
    mask = sample["mask"]
    assert mask[3, 4] == 1
    assert mask[0, 0] == 255
    assert mask[12, 22] == 1
    assert mask[19, 29] == 0
    assert int((mask == 1).sum()) == 4 * 6 + 5 * 8
    no_masks = WSOLImageDataset(records, return_masks=False)[0]
    assert "mask" not in no_masks
    assert no_masks["boxes"].shape == (2, 4)


def test_record_without_transform_is_normalised(tmp_path: Path):
    path = tmp_path / "white.png"
    Image.new("RGB", (4, 3), color=(255, 255, 255)).save(path)
    sample = WSOLImageDataset([WSOLRecord("w", path, 0)])[0]
    assert sample["boxes"].shape == (0, 4)
    torch.testing.assert_close(sample["image"][:, 0, 0], torch.tensor([2.2489, 2.4286, 2.6400]), atol=1e-4, rtol=0)


def test_datasets_pickle_for_spawned_workers(fake_cub: Path):
    dataset = CUBDataModule(fake_cub, num_workers=0, image_size=32).dataset("test")
    clone = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(clone[0]["image"], dataset[0]["image"])

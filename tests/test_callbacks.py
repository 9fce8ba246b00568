import gc
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import lightning as L
import pytest
import torch
from captum.attr import LayerGradCam
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from lightning_cam import GAPHead
from lightning_cam.callbacks import CAMBatch, CAMCallback, unpack_batch
from lightning_cam.data import SyntheticWSOLDataset, wsol_collate
from lightning_cam.metrics import WSOLMetrics

from .helpers import CAMModule, synthetic_loader

BOX_KEYS = [
    "maxboxacc_v2",
    "maxboxacc_v2_iou30",
    "maxboxacc_v2_iou50",
    "maxboxacc_v2_iou70",
    "maxboxacc",
    "best_threshold",
    "gt_known_loc",
    "top1_loc",
    "gt_known_loc_at_best",
    "top1_loc_at_best",
]


def _trainer(tmp_path: Path, callbacks: list, epochs: int = 2, logger=True, **kwargs) -> L.Trainer:
    if logger is True:
        logger = TensorBoardLogger(tmp_path, name="run", version=0)
    kwargs = {"limit_train_batches": 2, "enable_checkpointing": False, "num_sanity_val_steps": 0, **kwargs}
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _events(log_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def _fit(tmp_path: Path, callback: CAMCallback, epochs: int = 2, **kwargs) -> tuple[L.Trainer, CAMModule]:
    torch.manual_seed(0)
    module = CAMModule()
    trainer = _trainer(tmp_path, [callback], epochs=epochs, **kwargs)
    trainer.fit(module, synthetic_loader(16), synthetic_loader(12, seed=1))
    return trainer, module


def test_tensorboard_images_and_scalars_every_epoch(tmp_path):
    callback = CAMCallback(num_images=3, class_names=["a", "b", "c"])
    trainer, module = _fit(tmp_path, callback)
    events = _events(Path(trainer.logger.log_dir))
    assert "cam/panel" in events.Tags()["images"]
    assert "cam/curves" in events.Tags()["images"]
    panels = events.Images("cam/panel")
    assert [event.step for event in panels] == [0, 1]
    expected = callback.render_panel({**callback._panel, **callback._forward_panel(module, callback._panel["images"])})
    assert (panels[-1].height, panels[-1].width) == tuple(expected.shape[-2:])
    for key in [*BOX_KEYS, "pxap"]:
        assert len(events.Scalars(f"cam/{key}")) == 2, key
        value = trainer.callback_metrics[f"cam/{key}"]
        assert 0.0 <= float(value) <= 1.0
    # The head's hook is gone and the model was left in the mode Lightning leaves it.
    assert not module.model.head._forward_pre_hooks
    assert module.training


def test_metrics_equal_a_direct_computation(tmp_path):
    callback = CAMCallback(num_images=2)
    trainer, module = _fit(tmp_path, callback, epochs=1)
    reference = WSOLMetrics()
    module.eval()
    with torch.no_grad():
        for batch in synthetic_loader(12, seed=1):
            logits, cams = module.model(batch["image"], return_cams=True, target=batch["label"])
            reference.update(
                cams[:, 0],
                boxes=batch["boxes"],
                masks=batch["mask"],
                preds=logits.argmax(1),
                labels=batch["label"],
                image_size=(32, 32),
            )
    for key, value in reference.compute().items():
        assert float(trainer.callback_metrics[f"cam/{key}"]) == pytest.approx(float(value), abs=1e-6), key


def test_tensorboard_server_serves_the_tags(tmp_path):
    trainer, _ = _fit(tmp_path, CAMCallback(num_images=2), epochs=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def get(route: str) -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5) as response:
                return json.loads(response.read())

        deadline = time.monotonic() + 90
        images = scalars = {}
        while time.monotonic() < deadline:
            try:
                images = get("/data/plugin/images/tags")
                scalars = get("/data/plugin/scalars/tags")
                if any("cam/panel" in tags for tags in images.values()) and scalars:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert any("cam/panel" in tags for tags in images.values()), images
        assert any("cam/maxboxacc" in tags for tags in scalars.values()), scalars
    finally:
        server.kill()
        server.wait(timeout=30)


def test_model_checkpoint_monitors_maxboxacc(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="cam/maxboxacc", mode="max", save_top_k=1)
    callback = CAMCallback(num_images=2)
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, [callback, checkpoint], epochs=3, enable_checkpointing=True)
    trainer.fit(CAMModule(), synthetic_loader(16), synthetic_loader(12, seed=1))
    assert Path(checkpoint.best_model_path).is_file()
    scores = [event.value for event in _events(Path(trainer.logger.log_dir)).Scalars("cam/maxboxacc")]
    assert checkpoint.best_model_score.item() == pytest.approx(max(scores))


def test_resume_keeps_the_panel(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = CAMCallback(num_images=3)
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, [first, checkpoint], epochs=1, enable_checkpointing=True)
    trainer.fit(CAMModule(), synthetic_loader(16), synthetic_loader(12, seed=1))
    panel = first._panel["images"].clone()

    resumed = CAMCallback(num_images=3)
    trainer = _trainer(
        tmp_path, [resumed, ModelCheckpoint(dirpath=tmp_path / "ckpt2")], epochs=2, enable_checkpointing=True
    )
    # Another validation order: the panel must still show the images of the first run.
    trainer.fit(
        CAMModule(),
        synthetic_loader(16),
        synthetic_loader(12, seed=1, shuffle=True),
        ckpt_path=checkpoint.last_model_path,
    )
    assert torch.equal(resumed._panel["images"], panel)
    assert [event.step for event in _events(Path(trainer.logger.log_dir)).Images("cam/panel")] == [0, 1]


def test_every_n_epochs_and_sanity_check_skipped(tmp_path):
    trainer, _ = _fit(tmp_path, CAMCallback(num_images=2, every_n_epochs=2), epochs=4, num_sanity_val_steps=2)
    events = _events(Path(trainer.logger.log_dir))
    assert [event.step for event in events.Images("cam/panel")] == [1, 3]
    assert len(events.Scalars("cam/maxboxacc")) == 2


def test_tuple_batches_without_boxes_log_overlays_and_warn_once(tmp_path):
    class TupleModule(CAMModule):
        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            self(batch[0])

    data = TensorDataset(torch.rand(12, 3, 32, 32), torch.randint(0, 3, (12,)))
    trainer = _trainer(tmp_path, [CAMCallback(num_images=2, mean=None, std=None)], epochs=2)
    with pytest.warns(UserWarning, match="no boxes or masks") as record:
        trainer.fit(TupleModule(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=4))
    assert sum("no boxes or masks" in str(w.message) for w in record) == 1
    events = _events(Path(trainer.logger.log_dir))
    assert len(events.Images("cam/panel")) == 2
    assert not [k for k in trainer.callback_metrics if k.startswith("cam/")]


def test_gradient_method_for_a_model_without_gap_head(tmp_path):
    class FlattenModule(CAMModule):
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 3)
            )

    module = FlattenModule()
    method = LayerGradCam(module, module.model[1])
    with pytest.raises(MisconfigurationException, match="LayerGradCam"):
        _trainer(tmp_path, [CAMCallback()], epochs=1).fit(module, synthetic_loader(8), synthetic_loader(8))
    trainer = _trainer(tmp_path, [CAMCallback(num_images=2, method=method)], epochs=1)
    trainer.fit(module, synthetic_loader(8), synthetic_loader(8, seed=1))
    for key in BOX_KEYS:
        assert f"cam/{key}" in trainer.callback_metrics
    assert len(_events(Path(trainer.logger.log_dir)).Images("cam/panel")) == 1


def test_bf16_autocast_and_channels_last(tmp_path):
    class ChannelsLast(CAMModule):
        def forward(self, images):
            return self.model(images.contiguous(memory_format=torch.channels_last))

    module = ChannelsLast().to(memory_format=torch.channels_last)
    trainer = _trainer(tmp_path, [CAMCallback(num_images=2)], epochs=1, precision="bf16-mixed")
    trainer.fit(module, synthetic_loader(8), synthetic_loader(8, seed=1))
    assert 0.0 <= float(trainer.callback_metrics["cam/maxboxacc"]) <= 1.0


def test_no_logger_still_computes_metrics_and_warns(tmp_path):
    with pytest.warns(UserWarning, match="no logger"):
        trainer, _ = _fit(tmp_path, CAMCallback(num_images=2), epochs=1, logger=False)
    assert "cam/maxboxacc_v2" in trainer.callback_metrics


def test_other_loggers_get_log_image_or_a_warning(tmp_path):
    class ImageLogger(CSVLogger):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.images = []

        def log_image(self, key, images, step=None, **kwargs):
            self.images.append((key, images[0].shape, step))

    image_logger = ImageLogger(tmp_path)
    _fit(tmp_path, CAMCallback(num_images=2), epochs=1, logger=image_logger)
    assert [key for key, _, _ in image_logger.images] == ["cam/panel", "cam/curves"]
    assert image_logger.images[0][1][2] == 3
    with pytest.warns(UserWarning, match="CSVLogger cannot store images"):
        _fit(tmp_path, CAMCallback(num_images=2), epochs=1, logger=CSVLogger(tmp_path))


def test_fast_dev_run_degrades_quietly(tmp_path):
    trainer, _ = _fit(tmp_path, CAMCallback(num_images=2), epochs=1, fast_dev_run=True)
    assert "cam/maxboxacc" in trainer.callback_metrics


def test_memory_stays_flat_over_twenty_validation_epochs(tmp_path):
    counts: list[int] = []

    class CountTensors(L.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            gc.collect()
            counts.append(sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor)))

    torch.manual_seed(0)
    trainer = _trainer(tmp_path, [CAMCallback(num_images=4), CountTensors()], epochs=20, limit_train_batches=1)
    trainer.fit(CAMModule(), synthetic_loader(8), synthetic_loader(8, seed=1))
    # After the first epochs have created the panel and the metric states, nothing accumulates.
    assert max(counts[3:]) - counts[3] <= 2, counts


def test_validate_only_and_several_heads(tmp_path):
    trainer = _trainer(tmp_path, [CAMCallback(num_images=2)], epochs=1)
    trainer.validate(CAMModule(), synthetic_loader(8))
    assert "cam/maxboxacc" in trainer.callback_metrics

    class TwoHeads(CAMModule):
        def __init__(self):
            super().__init__()
            self.extra = GAPHead(16, 3)

    with pytest.raises(MisconfigurationException, match="head="):
        _trainer(tmp_path, [CAMCallback()], epochs=1).validate(TwoHeads(), synthetic_loader(8))
    trainer = _trainer(tmp_path, [CAMCallback(num_images=2, head="model.head")], epochs=1)
    trainer.validate(TwoHeads(), synthetic_loader(8))
    assert "cam/maxboxacc" in trainer.callback_metrics


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_images": 0}, "`num_images` must be >= 1, got 0"),
        ({"every_n_epochs": 0}, "`every_n_epochs` must be >= 1, got 0"),
        ({"alpha": 2.0}, "alpha"),
        ({"method": object()}, "Captum attribution"),
        ({"mean": (0.5, 0.5, 0.5), "std": None}, "both"),
        ({"keys": {"images": "x"}}, "unknown"),
        ({"loc_threshold": 1.0}, "loc_threshold"),
        ({"eval_size": (224,)}, "eval_size"),
        ({"colormap": "no-such-map"}, "colormap"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CAMCallback(**kwargs)


def test_unknown_batch_format_fails_at_first_batch(tmp_path):
    class ImagesOnly(CAMModule):
        def validation_step(self, batch, batch_idx):
            self(batch)

    images = torch.rand(8, 3, 32, 32)
    trainer = _trainer(tmp_path, [CAMCallback()], epochs=1, limit_train_batches=0)
    with pytest.raises(ValueError, match="pass `unpack=`"):
        trainer.validate(ImagesOnly(), DataLoader(images, batch_size=4))


def test_masks_without_boxes_log_pxap_and_the_pr_curve(tmp_path):
    def masks_only(batch):
        return CAMBatch(images=batch["image"], labels=batch["label"], masks=batch["mask"])

    trainer, _ = _fit(tmp_path, CAMCallback(num_images=2, unpack=masks_only), epochs=1)
    assert "cam/pxap" in trainer.callback_metrics
    assert "cam/maxboxacc_v2" not in trainer.callback_metrics
    assert "cam/curves" in _events(Path(trainer.logger.log_dir)).Tags()["images"]


def test_unpack_batch_layouts():
    images, labels = torch.zeros(2, 3, 4, 4), torch.tensor([0, 1])
    boxes = [torch.zeros(1, 4), torch.zeros(2, 4)]
    assert unpack_batch((images, labels, boxes)).boxes == boxes
    got = unpack_batch((images, labels, {"boxes": boxes, "mask": torch.zeros(2, 4, 4)}))
    assert got.masks.shape == (2, 4, 4)
    custom = unpack_batch({"x": images, "y": labels}, {"image": "x", "label": "y", "boxes": "b", "mask": "m"})
    assert isinstance(custom, CAMBatch)
    assert custom.boxes is None
    with pytest.raises(ValueError, match="keys"):
        unpack_batch({"img": images})
    with pytest.raises(ValueError, match=r"labels of shape \(2,\)"):
        unpack_batch((images, torch.tensor([0])))


class RankSplitModule(CAMModule):
    """Validation data split unevenly across ranks: rank 0 sees 3 batches, rank 1 sees 2."""

    def val_dataloader(self):
        dataset = SyntheticWSOLDataset(20, image_size=32, num_classes=3, seed=1)
        if self.trainer.world_size > 1:
            dataset = Subset(dataset, range(12) if self.global_rank == 0 else range(12, 20))
        return DataLoader(dataset, batch_size=4, collate_fn=wsol_collate)


def test_ddp_two_processes_match_one_process(tmp_path):
    torch.manual_seed(0)
    module = RankSplitModule()
    single = _trainer(tmp_path / "one", [CAMCallback(num_images=2)], epochs=1)
    single.validate(module)
    ddp = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        use_distributed_sampler=False,
        logger=TensorBoardLogger(tmp_path / "two"),
        callbacks=[CAMCallback(num_images=2)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    ddp.validate(module)
    keys = [f"cam/{key}" for key in [*BOX_KEYS, "pxap"]]
    for key in keys:
        torch.testing.assert_close(ddp.callback_metrics[key].cpu(), single.callback_metrics[key].cpu(), msg=key)

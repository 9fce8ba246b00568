"""``CAMCallback``: per-epoch CAM overlays and WSOL metrics in TensorBoard for any LightningModule."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import matplotlib
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from matplotlib.figure import Figure
from torch import Tensor
from typing_extensions import override

from lightning_cam.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lightning_cam.functional.overlay import draw_boxes, overlay_cams, to_uint8_images
from lightning_cam.functional.panel import make_panel
from lightning_cam.functional.wsol import boxes_from_cams
from lightning_cam.heads import FeatureCapture, GAPHead, find_gap_head
from lightning_cam.metrics import WSOLMetrics

DEFAULT_KEYS = {"image": "image", "label": "label", "boxes": "boxes", "mask": "mask"}
GT_COLOR = (0, 255, 0)
PRED_COLOR = (255, 0, 0)
PROGRESS_BAR_KEYS = ("maxboxacc_v2", "maxboxacc")


@dataclass
class CAMBatch:
    """What the callback needs from a validation batch.

    Attributes:
        images: ``(B, C, H, W)`` model inputs.
        labels: ``(B,)`` ground-truth classes.
        boxes: optional list of ``B`` tensors ``(n_i, 4)``, ``x0, y0, x1, y1`` in input-image pixels.
        masks: optional ``(B, H, W)`` foreground masks (1 foreground, 0 background, 255 ignored).
    """

    images: Tensor
    labels: Tensor
    boxes: list[Tensor] | None = None
    masks: Tensor | None = None


def unpack_batch(batch: Any, keys: Mapping[str, str] = DEFAULT_KEYS) -> CAMBatch:
    """Read images, labels and optional boxes / masks from a common batch layout.

    Accepted: ``(image, label)``, ``(image, label, extras)`` where ``extras`` is a dict with the box / mask keys
    or a list of box tensors, and dicts with the keys in ``keys``.

    Args:
        batch: the batch as the dataloader yields it.
        keys: names of the ``image``, ``label``, ``boxes`` and ``mask`` entries of dict batches.

    Returns:
        A :class:`CAMBatch`.

    Raises:
        ValueError: for a layout it does not know, naming what it found.

    Example:
        >>> unpack_batch((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]))).labels.tolist()
        [0, 1]
    """
    extras: Any = None
    if isinstance(batch, Mapping):
        missing = [keys[k] for k in ("image", "label") if keys[k] not in batch]
        if missing:
            raise ValueError(
                f"Expected a dict batch with keys {keys['image']!r} and {keys['label']!r}, got keys {sorted(batch)}; "
                "set `keys=` or `unpack=` on CAMCallback."
            )
        images, labels, extras = batch[keys["image"]], batch[keys["label"]], batch
    elif isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        images, labels = batch[0], batch[1]
        extras = batch[2] if len(batch) == 3 else None
    else:
        kind = type(batch).__name__ + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
        raise ValueError(
            f"Expected a batch (image, label), (image, label, extras) or a dict, got a {kind}; "
            "pass `unpack=` to CAMCallback to read your batch format."
        )
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"Expected batch images of shape (B, C, H, W), got {getattr(images, 'shape', type(images))}.")
    if not isinstance(labels, Tensor) or labels.shape != (images.shape[0],):
        raise ValueError(
            f"Expected batch labels of shape ({images.shape[0]},), got {getattr(labels, 'shape', type(labels))}."
        )
    boxes = masks = None
    if isinstance(extras, Mapping):
        boxes, masks = extras.get(keys["boxes"]), extras.get(keys["mask"])
    elif isinstance(extras, (list, tuple)):
        boxes = extras
    elif extras is not None:
        raise ValueError(f"Expected the third batch element to be a dict or a list of boxes, got {type(extras)}.")
    if boxes is not None:
        boxes = list(boxes)
    return CAMBatch(images, labels, boxes, masks)


class CAMCallback(Callback):
    """Log CAM overlays and weakly supervised localization metrics every few validation epochs.

    With a :class:`~lightning_cam.GAPHead` in the model, the CAMs cost no second forward pass: a forward pre-hook
    keeps the head's input features from the validation forward the model already runs, and the maps of the
    ground-truth and predicted classes come from one einsum each. Models without a GAP head pass any Captum layer
    attribution as ``method`` (e.g. ``LayerGradCam(model, model.layer4)``); gradient methods are re-run with
    gradients enabled inside Lightning's ``inference_mode`` validation loop, without changing the Trainer.

    Args:
        num_images: validation images in the panel; the first ones of the first logged epoch, kept for the run
            (and in checkpoints) so TensorBoard's step slider shows their maps evolve.
        every_n_epochs: log every n-th validation epoch.
        method: a Captum attribution with ``attribute(inputs, target=...)`` returning ``(B, 1, h, w)``, instead of
            the model's ``GAPHead``.
        head: the ``GAPHead`` (or its submodule name) when the model has several.
        compute_metrics: score localization over the whole validation set (needs boxes or masks in the batches).
        iou_thresholds: IoU thresholds of MaxBoxAccV2.
        cam_curve_interval: spacing of the CAM thresholds in ``[0, 1)``.
        loc_threshold: fraction of the CAM's maximum for the top-1 / GT-known box and the panel's predicted box.
        eval_size: ``(H, W)`` the maps are resized to for the metrics (224x224 in the WSOL protocol).
        prefix: prefix of every logged key.
        colormap: matplotlib colormap of the overlays.
        alpha: weight of the heat map in the overlays.
        mean: per-channel mean to undo on the inputs for display (``None`` for images already in ``[0, 1]``).
        std: per-channel std to undo on the inputs for display.
        class_names: names for the captions; default: the datamodule's ``class_names``, else indices.
        keys: names of the image / label / boxes / mask entries of dict batches.
        unpack: a function ``batch -> CAMBatch`` for other batch formats (overrides ``keys``).
        log_curves: also log a figure of box accuracy vs CAM threshold (and the pixel PR curve with masks).

    Raises:
        ValueError: for invalid arguments (at construction).
        MisconfigurationException: at setup, when the model has no GAP head and no ``method`` is given, or several.

    Logged metrics (under ``prefix``, through ``pl_module.log(..., sync_dist=True)``, every logged epoch):
        ``maxboxacc_v2`` and ``maxboxacc_v2_iou{30,50,70}``, ``maxboxacc``, ``best_threshold``, ``gt_known_loc``,
        ``top1_loc``, ``gt_known_loc_at_best``, ``top1_loc_at_best``, and ``pxap`` when the batches have masks.
        Images: ``{prefix}panel`` (inputs | overlays with the ground-truth box in green and the predicted box in
        red, captions with true / predicted class and score), ``{prefix}curves`` (figure), with the epoch as step.

    Example::

        trainer = Trainer(callbacks=[CAMCallback(num_images=8)], logger=TensorBoardLogger("runs"))
        trainer.fit(model, datamodule)  # then: tensorboard --logdir runs
    """

    def __init__(
        self,
        num_images: int = 8,
        every_n_epochs: int = 1,
        method: Any = None,
        head: GAPHead | str | None = None,
        compute_metrics: bool = True,
        iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
        cam_curve_interval: float = 0.01,
        loc_threshold: float = 0.2,
        eval_size: tuple[int, int] = (224, 224),
        prefix: str = "cam/",
        colormap: str = "jet",
        alpha: float = 0.5,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        class_names: Sequence[str] | None = None,
        keys: Mapping[str, str] | None = None,
        unpack: Callable[[Any], CAMBatch] | None = None,
        log_curves: bool = True,
    ) -> None:
        if not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"`num_images` must be >= 1, got {num_images!r}.")
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be >= 1, got {every_n_epochs!r}.")
        if method is not None and not callable(getattr(method, "attribute", None)):
            raise ValueError(f"`method` must be a Captum attribution with an `attribute` method, got {method!r}.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1], got {alpha}.")
        if not 0.0 <= loc_threshold < 1.0:
            raise ValueError(f"`loc_threshold` must be in [0, 1), got {loc_threshold}.")
        if eval_size is None or len(tuple(eval_size)) != 2 or not all(isinstance(s, int) and s > 0 for s in eval_size):
            raise ValueError(f"`eval_size` must be (H, W) positive ints, got {eval_size!r}.")
        if colormap not in matplotlib.colormaps:
            raise ValueError(f"`colormap` must name a matplotlib colormap (e.g. 'jet', 'viridis'), got {colormap!r}.")
        if (mean is None) != (std is None):
            raise ValueError("`mean` and `std` must both be given or both be None.")
        if unpack is not None and not callable(unpack):
            raise ValueError(f"`unpack` must be callable, got {unpack!r}.")
        self.keys = {**DEFAULT_KEYS, **(keys or {})}
        unknown = set(self.keys) - set(DEFAULT_KEYS)
        if unknown:
            raise ValueError(f"`keys` may name {sorted(DEFAULT_KEYS)}, got unknown {sorted(unknown)}.")
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self.method = method
        self.head_arg = head
        self.compute_metrics = compute_metrics
        self.loc_threshold = loc_threshold
        self.eval_size = tuple(eval_size)
        self.prefix = prefix
        self.colormap = colormap
        self.alpha = alpha
        self.mean, self.std = mean, std
        self.class_names = list(class_names) if class_names is not None else None
        self.unpack = unpack
        self.log_curves = log_curves
        self.metrics = WSOLMetrics(
            iou_thresholds=tuple(iou_thresholds),
            cam_curve_interval=cam_curve_interval,
            loc_threshold=loc_threshold,
            eval_size=self.eval_size,
        )
        self._head: GAPHead | None = None
        self._capture: FeatureCapture | None = None
        self._panel: dict[str, Any] | None = None
        self._collected: list[dict[str, Any]] = []
        self._has_metric_data = False
        self._datamodule_names: list[str] | None = None
        self._warned: set[str] = set()

    # -- setup / teardown -------------------------------------------------------------------------------------

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.method is None:
            try:
                self._head = find_gap_head(pl_module, self.head_arg)
            except (ValueError, TypeError) as err:
                raise MisconfigurationException(f"CAMCallback: {err}") from None
        names = getattr(trainer.datamodule, "class_names", None)
        self._datamodule_names = list(names) if names is not None else None

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_capture()
        self._collected = []

    def _remove_capture(self) -> None:
        if self._capture is not None:
            self._capture.remove()
            self._capture = None

    def _active(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn == "validate":
            return True
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=2)

    # -- the validation loop ----------------------------------------------------------------------------------

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer):
            return
        self._collected = []
        self.metrics.reset()
        self.metrics.to(pl_module.device)
        if self._head is not None and self._capture is None:
            self._capture = FeatureCapture(self._head)

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        features = self._capture.pop() if self._capture is not None else None
        if not self._active(trainer) or dataloader_idx != 0:
            return
        if features is not None and features.dtype != self._head.weight.dtype:
            # Under AMP the features arrive in half precision; the CAMs and metrics use the head's own dtype.
            features = features.to(self._head.weight.dtype)
        data = self.unpack(batch) if self.unpack is not None else unpack_batch(batch, self.keys)
        if not isinstance(data, CAMBatch):
            raise ValueError(f"Expected `unpack` to return a CAMBatch, got {type(data).__name__}.")
        logits, gt_cams = self._logits_and_cams(data, features, data.labels)
        preds = logits.argmax(1)
        if self.compute_metrics:
            if data.boxes is None and data.masks is None:
                self._warn_once(
                    "no-boxes",
                    "CAMCallback: validation batches carry no boxes or masks, so only overlays are logged (no "
                    f"localization metrics); dict batches need keys {self.keys['boxes']!r} / {self.keys['mask']!r}.",
                )
            else:
                self.metrics.update(
                    gt_cams,
                    boxes=data.boxes,
                    masks=data.masks,
                    preds=preds,
                    labels=data.labels,
                    image_size=tuple(data.images.shape[-2:]),
                )
                self._has_metric_data = True
        self._collect_panel(data, features, logits)

    def _logits_and_cams(self, data: CAMBatch, features: Tensor | None, target: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, C)`` and the ``(B, h, w)`` maps of ``target`` for a batch."""
        batch_size = data.images.shape[0]
        if self.method is not None:
            return self._method_logits(data.images), self._method_cams(data.images, target)
        if features is None:
            raise MisconfigurationException(
                "CAMCallback: the validation step did not run the model's GAPHead, so there are no features "
                "to build CAMs from; call the model on the batch images in `validation_step`."
            )
        if features.shape[0] != batch_size:
            raise MisconfigurationException(
                f"CAMCallback: the GAPHead last saw {features.shape[0]} samples but the batch has {batch_size}; "
                "the head's last call in `validation_step` must be on the batch images."
            )
        with torch.no_grad():
            return self._head(features), self._head.cams(features, target)[:, 0]

    def _method_logits(self, images: Tensor) -> Tensor:
        with torch.inference_mode(False), torch.no_grad():
            return self.method.forward_func(images.clone())

    def _method_cams(self, images: Tensor, target: Tensor) -> Tensor:
        # Captum's gradient methods need autograd, which Lightning's validation loop switches off with
        # inference_mode; fresh (non-inference) copies of the inputs let them run without touching the Trainer.
        with torch.inference_mode(False), torch.enable_grad():
            cams = self.method.attribute(images.clone(), target=target.clone())
        if not isinstance(cams, Tensor) or cams.ndim != 4 or cams.shape[:2] != (images.shape[0], 1):
            raise ValueError(
                f"Expected `method.attribute` to return (B, 1, h, w) maps, got {getattr(cams, 'shape', type(cams))}."
            )
        return cams.detach()[:, 0]

    def _collect_panel(self, data: CAMBatch, features: Tensor | None, logits: Tensor) -> None:
        have = sum(len(item["labels"]) for item in self._collected)
        take = min(self.num_images - have, data.images.shape[0])
        if take <= 0:
            return
        preds = logits[:take].argmax(1)
        if self.method is None:
            with torch.no_grad():
                pred_cams = self._head.cams(features[:take], preds)[:, 0]
        else:
            pred_cams = self._method_cams(data.images[:take], preds)
        self._collected.append(
            {
                "images": data.images[:take].detach().float().cpu(),
                "labels": data.labels[:take].detach().cpu(),
                "boxes": [b.detach().float().cpu() for b in data.boxes[:take]] if data.boxes is not None else None,
                "cams": pred_cams.detach().float().cpu(),
                "scores": logits[:take].detach().float().softmax(1).cpu(),
            }
        )

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer):
            return
        self._remove_capture()
        curves = None
        # compute() and curves() are collective under DDP: every rank takes part when any rank saw boxes or masks.
        any_data = trainer.strategy.reduce_boolean_decision(self._has_metric_data, all=False)
        if self.compute_metrics and any_data:
            results = self.metrics.compute()
            for name, value in results.items():
                pl_module.log(f"{self.prefix}{name}", value, sync_dist=True, prog_bar=name in PROGRESS_BAR_KEYS)
            curves = self.metrics.curves() if self.log_curves else None
            self.metrics.reset()
        self._has_metric_data = False
        panel = self._panel_tensors(pl_module)
        self._collected = []
        if trainer.is_global_zero and panel is not None:
            self._log_images(trainer, panel, curves)

    # -- the panel --------------------------------------------------------------------------------------------

    def _panel_tensors(self, pl_module: pl.LightningModule) -> dict[str, Any] | None:
        if not self._collected and self._panel is None:
            return None
        collected = None
        if self._collected:
            collected = {
                "images": torch.cat([c["images"] for c in self._collected]),
                "labels": torch.cat([c["labels"] for c in self._collected]),
                "boxes": None
                if self._collected[0]["boxes"] is None
                else [b for c in self._collected for b in c["boxes"]],
                "cams": torch.cat([c["cams"] for c in self._collected]),
                "scores": torch.cat([c["scores"] for c in self._collected]),
            }
        if self._panel is None:
            self._panel = {key: collected[key] for key in ("images", "labels", "boxes")}
            return collected
        if collected is not None and torch.equal(collected["images"], self._panel["images"]):
            return collected
        # The loader did not yield the panel's images first (shuffled, or resumed on other data): run them again.
        return {**self._panel, **self._forward_panel(pl_module, self._panel["images"])}

    def _forward_panel(self, pl_module: pl.LightningModule, images: Tensor) -> dict[str, Tensor]:
        images = images.to(pl_module.device)
        if self.method is not None:
            logits = self._method_logits(images)
            cams = self._method_cams(images, logits.argmax(1))
        else:
            with FeatureCapture(self._head) as capture, torch.no_grad():
                try:
                    pl_module(images)
                except NotImplementedError:
                    raise MisconfigurationException(
                        "CAMCallback: the validation loader no longer yields the panel's images first, so the "
                        "callback runs `pl_module(images)` on them; define `forward(images)` in your LightningModule."
                    ) from None
                features = capture.pop()
                if features is None:
                    raise MisconfigurationException("CAMCallback: `pl_module(images)` did not run the model's GAPHead.")
                logits = self._head(features)
                cams = self._head.cams(features, logits.argmax(1))[:, 0]
        return {"cams": cams.float().cpu(), "scores": logits.float().softmax(1).cpu()}

    def _name(self, index: int) -> str:
        names = self.class_names or self._datamodule_names
        return names[index] if names is not None and 0 <= index < len(names) else str(index)

    def render_panel(self, panel: Mapping[str, Any]) -> Tensor:
        """Render inputs and overlays (GT box green, predicted box red) with captions as one uint8 image."""
        images, cams = panel["images"], panel["cams"]
        inputs = to_uint8_images(images, self.mean, self.std)
        overlays = overlay_cams(images, cams, self.colormap, self.alpha, self.mean, self.std)
        height, width = images.shape[-2:]
        pred_boxes = boxes_from_cams(cams, threshold=self.loc_threshold, image_size=(height, width))
        if panel["boxes"] is not None:
            overlays = draw_boxes(overlays, panel["boxes"], color=GT_COLOR, width=2)
        overlays = draw_boxes(overlays, [b.reshape(1, 4) for b in pred_boxes], color=PRED_COLOR, width=2)
        scores, preds = panel["scores"].max(1)
        captions = [
            f"true {self._name(int(t))} | pred {self._name(int(p))} {s:.2f}"
            for t, p, s in zip(panel["labels"], preds, scores, strict=True)
        ]
        return make_panel([inputs, overlays], captions)

    def _curves_figure(self, curves: Mapping[str, Tensor]) -> Figure:
        """Box accuracy vs CAM threshold (with boxes) and the pixel precision-recall curve (with masks)."""
        panels = [key for key in ("box_accuracy", "precision") if key in curves]
        figure = Figure(figsize=(4.5 * len(panels), 3.5), layout="constrained")
        for axes, key in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
            if key == "box_accuracy":
                thresholds = curves["thresholds"].cpu().numpy()
                for iou, accuracy in zip(self.metrics.iou_thresholds, curves[key].cpu().numpy(), strict=True):
                    axes.plot(thresholds, accuracy * 100, label=f"IoU {iou:g}")
                axes.set(xlabel="CAM threshold", ylabel="box accuracy (%)", title="Box accuracy vs CAM threshold")
                axes.legend()
            else:
                axes.plot(curves["recall"].cpu().numpy(), curves["precision"].cpu().numpy())
                axes.set(xlabel="recall", ylabel="precision", title="Pixel precision-recall")
        return figure

    def _log_images(self, trainer: pl.Trainer, panel: Mapping[str, Any], curves: Mapping[str, Tensor] | None) -> None:
        if not trainer.loggers:
            self._warn_once(
                "no-logger",
                "CAMCallback: the Trainer has no logger, so the CAM panel is not saved; metrics are still logged. "
                "Add `logger=TensorBoardLogger(...)` to see the overlays in TensorBoard's Images tab.",
            )
            return
        image = self.render_panel(panel)
        figure = self._curves_figure(curves) if curves is not None else None
        step = trainer.current_epoch
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(f"{self.prefix}panel", image, global_step=step)
                if figure is not None:
                    logger.experiment.add_figure(f"{self.prefix}curves", figure, global_step=step, close=False)
            elif callable(getattr(logger, "log_image", None)):
                logger.log_image(key=f"{self.prefix}panel", images=[image.permute(1, 2, 0).numpy()], step=step)
                if figure is not None:
                    logger.log_image(key=f"{self.prefix}curves", images=[_figure_to_array(figure)], step=step)
            else:
                self._warn_once(
                    f"logger-{type(logger).__name__}",
                    f"CAMCallback: {type(logger).__name__} cannot store images; the CAM panel goes to TensorBoard "
                    "loggers and loggers with a `log_image` method.",
                )

    # -- checkpointing ----------------------------------------------------------------------------------------

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"panel": self._panel}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._panel = state_dict.get("panel")


def _figure_to_array(figure: Figure) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()

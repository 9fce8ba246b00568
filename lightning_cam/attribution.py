"""``CAMAttribution``: class activation maps as a Captum layer attribution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution
from torch import Tensor, nn

from lightning_cam.heads import FeatureCapture, GAPHead, find_gap_head


class CAMAttribution(LayerAttribution):
    """Class activation maps (Zhou et al., 2016) behind Captum's layer-attribution interface.

    The attribution of class ``c`` at position ``(x, y)`` of the head's input features is
    ``M_c(x, y) = sum_k w_k^c f_k(x, y)``. Unlike ``LayerGradCam`` it needs no backward pass: one forward
    pass in ``torch.no_grad`` (or inside ``torch.inference_mode``), a forward pre-hook on the ``GAPHead`` that
    is removed before returning, and the model's train/eval mode restored. For a GAP network, Captum's
    ``LayerGradCam`` on the head's input layer equals this attribution divided by ``h * w``.

    Args:
        model: a network containing a :class:`~lightning_cam.GAPHead` (e.g. from ``convert_to_gap``).
        head: the head, its submodule name, or ``None`` to find the only one.

    Example:
        >>> from lightning_cam import GAPClassifier, GAPHead
        >>> model = GAPClassifier(nn.Conv2d(3, 8, 3, padding=1), GAPHead(8, 4))
        >>> cam = CAMAttribution(model)
        >>> cam.attribute(torch.rand(2, 3, 16, 16), target=[0, 3]).shape
        torch.Size([2, 1, 16, 16])
        >>> cam.attribute(torch.rand(2, 3, 16, 16), target=1, interpolate_to=(32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(self, model: nn.Module, head: GAPHead | str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Expected `model` to be an nn.Module, got {type(model).__name__}.")
        self.head = find_gap_head(model, head)
        super().__init__(model, self.head)

    @property
    def multiplies_by_inputs(self) -> bool:
        """CAM weighs the layer activations by class weights, like Grad-CAM."""
        return True

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: int | Sequence[int] | Tensor | None = None,
        additional_forward_args: Any = None,
        relu_attributions: bool = False,
        interpolate_to: tuple[int, int] | Literal["input"] | None = None,
        interpolate_mode: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    ) -> Tensor:
        """Compute the CAM of ``target`` for every input, at the head's input resolution.

        Args:
            inputs: the model's input batch (or a tuple of inputs, as Captum accepts).
            target: class per sample: an int, a list/tuple of ints or a ``(B,)`` / scalar tensor;
                ``None`` uses the model's top-1 prediction.
            additional_forward_args: extra positional arguments for the model (a tuple, or one object).
            relu_attributions: keep only positive evidence, as ``LayerGradCam`` does with the same flag.
            interpolate_to: upsample the maps to ``(H, W)`` or, with ``"input"``, to the first input's spatial
                size (what ``captum.metrics`` and ``visualize_image_attr`` expect after ``expand_as(inputs)``).
            interpolate_mode: interpolation used with ``interpolate_to``.

        Returns:
            ``(B, 1, h, w)`` maps (or ``(B, 1, H, W)`` with ``interpolate_to``), in the features' dtype.

        Raises:
            TypeError: for targets Captum allows but a classifier cannot use (tuples of indices) or other types.
            ValueError: for targets out of range or of the wrong length, or inputs the head cannot take.
        """
        first = inputs[0] if isinstance(inputs, tuple) else inputs
        if not isinstance(first, Tensor):
            raise TypeError(f"Expected `inputs` to be a tensor or a tuple of tensors, got {type(first).__name__}.")
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        if additional_forward_args is None:
            extra: tuple = ()
        else:
            extra = (
                additional_forward_args if isinstance(additional_forward_args, tuple) else (additional_forward_args,)
            )
        if isinstance(target, (list, tuple)) and any(isinstance(t, tuple) for t in target):
            raise TypeError(f"Expected one class index per sample for a classifier, got tuple targets {target!r}.")

        model = self.forward_func
        was_training = model.training if isinstance(model, nn.Module) else False
        try:
            if isinstance(model, nn.Module):
                model.eval()
            with FeatureCapture(self.head) as capture, torch.no_grad():
                logits = model(*inputs, *extra)
                features = capture.pop()
        finally:
            if isinstance(model, nn.Module):
                model.train(was_training)
        if features is None:
            raise ValueError("Expected the model's forward pass to run its GAPHead, but the head was never called.")
        if target is None:
            if not isinstance(logits, Tensor) or logits.ndim != 2:
                raise ValueError("Expected (B, C) logits to pick the top-1 class for `target=None`; pass `target=`.")
            target = logits.argmax(1)
        with torch.no_grad():
            cams = self.head.cams(features, target)
        if cams.shape[1] != 1:
            raise ValueError(f"Expected one target class per sample, got {cams.shape[1]} maps per sample.")
        if relu_attributions:
            cams = F.relu(cams)
        if interpolate_to is not None:
            size = tuple(first.shape[-2:]) if interpolate_to == "input" else tuple(interpolate_to)
            cams = LayerAttribution.interpolate(cams, size, interpolate_mode)
        return cams

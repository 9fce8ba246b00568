"""``GAPHead``: global pooling + linear classifier that yields class activation maps from the same forward pass."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from lightning_cam.functional.cams import Target, _check_finite, class_activation_maps

PoolType = Literal["avg", "max"]


class CAMOutput(NamedTuple):
    """Logits and class activation maps from one forward pass.

    Attributes:
        logits: ``(B, C)`` class scores.
        cams: ``(B, n, h, w)`` maps of the requested classes.
    """

    logits: Tensor
    cams: Tensor


class GAPHead(nn.Module):
    """Classifier head ``features -> global pooling -> (LayerNorm) -> dropout -> linear`` that also yields CAMs.

    With ``pool="avg"`` the class score is the spatial mean of the class activation map plus a bias,
    ``S_c = mean_xy M_c(x, y) + b_c`` with ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` (Zhou et al., CVPR 2016),
    so the maps cost one einsum over the features the head already receives. ``pool="max"`` (global max
    pooling) is the ablation the CAM paper compares against. An optional ``norm`` (a ``LayerNorm`` over the
    pooled channels, as in ConvNeXt) is an affine map per sample, so the CAMs stay exact: the features are
    centred and scaled with the pooled statistics and ``weight * norm.weight`` is used (see :attr:`cam_bias`).

    Args:
        in_channels: ``K``, channels of the incoming features.
        num_classes: ``C``.
        pool: ``"avg"`` (GAP) or ``"max"`` (GMP).
        dropout: dropout probability on the pooled features (training only; CAMs never use it).
        bias: whether the linear layer has a bias.
        norm: optional ``nn.LayerNorm(in_channels)`` applied to the pooled features.

    Raises:
        ValueError: on a non-positive size, an unknown pool, a dropout outside ``[0, 1)`` or a mismatched norm.

    Example:
        >>> head = GAPHead(in_channels=8, num_classes=3).eval()
        >>> features = torch.randn(2, 8, 7, 7, generator=torch.Generator().manual_seed(0))
        >>> logits, cams = head(features, return_cams=True)
        >>> logits.shape, cams.shape
        (torch.Size([2, 3]), torch.Size([2, 3, 7, 7]))
        >>> torch.allclose(logits, cams.mean((2, 3)) + head.cam_bias, atol=1e-6)
        True
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pool: PoolType = "avg",
        dropout: float = 0.0,
        bias: bool = True,
        norm: nn.LayerNorm | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"Expected positive `in_channels` and `num_classes`, got {in_channels} and {num_classes}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Expected `dropout` in [0, 1), got {dropout}.")
        if norm is not None and (not isinstance(norm, nn.LayerNorm) or tuple(norm.normalized_shape) != (in_channels,)):
            raise ValueError(f"Expected `norm` to be nn.LayerNorm({in_channels}), got {norm!r}.")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.pool = pool
        self.norm = norm
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes, bias=bias)

    @property
    def pool(self) -> PoolType:
        """Global pooling: ``"avg"`` (GAP) or ``"max"`` (GMP); settable, e.g. for an ablation of a trained head."""
        return self._pool

    @pool.setter
    def pool(self, value: PoolType) -> None:
        if value not in ("avg", "max"):
            raise ValueError(f"Expected `pool` to be 'avg' or 'max', got {value!r}.")
        self._pool = value

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        pool: PoolType = "avg",
        dropout: float = 0.0,
        norm: nn.LayerNorm | None = None,
    ) -> GAPHead:
        """Build a head around an existing fully connected layer, keeping its (trained) weights.

        The layer is reused, not copied: the head and the original model share its parameters.

        Args:
            linear: an ``nn.Linear`` applied to pooled features.
            pool: ``"avg"`` or ``"max"``.
            dropout: dropout probability before the linear layer.
            norm: optional ``LayerNorm`` applied to the pooled features before the linear layer.

        Returns:
            A ``GAPHead`` whose ``fc`` is ``linear``.

        Raises:
            TypeError: if ``linear`` is not an ``nn.Linear``.

        Example:
            >>> fc = nn.Linear(16, 4)
            >>> GAPHead.from_linear(fc).fc is fc
            True
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"Expected an nn.Linear, got {type(linear).__name__}.")
        head = cls(linear.in_features, linear.out_features, pool=pool, dropout=dropout, bias=False, norm=norm)
        head.fc = linear
        return head

    @property
    def weight(self) -> Tensor:
        """Per-channel class weights ``(C, K)`` that turn features into CAMs (includes the norm's scale)."""
        if self.norm is None or self.norm.weight is None:
            return self.fc.weight
        return self.fc.weight * self.norm.weight

    @property
    def cam_bias(self) -> Tensor:
        """``(C,)`` offset with ``logits = pool_xy(cams) + cam_bias`` in eval mode (exact for ``pool="avg"``)."""
        bias = self.fc.bias if self.fc.bias is not None else self.fc.weight.new_zeros(self.num_classes)
        if self.norm is not None and self.norm.bias is not None:
            bias = bias + self.fc.weight @ self.norm.bias
        return bias

    def _check_features(self, features: Tensor) -> None:
        if features.ndim != 4:
            raise ValueError(f"Expected features of shape (B, K, h, w), got shape {tuple(features.shape)}.")
        if features.shape[1] != self.in_channels:
            raise ValueError(f"Expected features with {self.in_channels} channels, got {features.shape[1]}.")

    def pool_features(self, features: Tensor) -> Tensor:
        """Globally pool ``(B, K, h, w)`` features to ``(B, K)``."""
        self._check_features(features)
        return features.mean((2, 3)) if self.pool == "avg" else features.amax((2, 3))

    def forward(self, features: Tensor, return_cams: bool = False, target: Target = None) -> Tensor | CAMOutput:
        """Classify conv features, optionally with the CAMs of ``target`` from the same features.

        Args:
            features: ``(B, K, h, w)``.
            return_cams: also return CAMs (a :class:`CAMOutput`).
            target: classes whose maps to return (``None``: all classes; an int, a list or a ``(B,)`` tensor:
                one class per sample).

        Returns:
            Logits ``(B, C)``, or ``CAMOutput(logits, cams)`` with cams ``(B, n, h, w)``.
        """
        pooled = self.pool_features(features)
        if self.norm is not None:
            pooled = self.norm(pooled)
        logits = self.fc(self.dropout(pooled))
        if not return_cams:
            return logits
        return CAMOutput(logits, self.cams(features, target))

    def cams(self, features: Tensor, target: Target = None) -> Tensor:
        """Class activation maps ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` at feature resolution.

        Args:
            features: ``(B, K, h, w)``.
            target: ``None`` for all classes; an int, a list/tuple or a ``(B,)`` tensor for one class per
                sample; a ``(B, n)`` tensor for several.

        Returns:
            ``(B, n, h, w)`` maps.

        Raises:
            ValueError: on a wrong rank, channel mismatch, non-finite features or weights, target out of range.
        """
        self._check_features(features)
        if self.norm is not None:
            # LayerNorm of the pooled vector is affine per sample: centre and scale every position with the pooled
            # statistics so the spatial pool of the maps still equals the logits minus `cam_bias`.
            _check_finite(features, "features")
            pooled = self.pool_features(features)
            var, mean = torch.var_mean(pooled, dim=1, unbiased=False, keepdim=True)
            features = (features - mean[..., None, None]) / torch.sqrt(var + self.norm.eps)[..., None, None]
        return class_activation_maps(features, self.weight, target)

    def extra_repr(self) -> str:
        """Show the pooling type in the module's repr."""
        return f"pool={self.pool!r}"


def find_gap_head(model: nn.Module, head: GAPHead | str | None = None) -> GAPHead:
    """Return the model's ``GAPHead``: the given one, the one at a submodule path, or the only one it has.

    Args:
        model: the network.
        head: a ``GAPHead``, the dotted name of one inside ``model``, or ``None`` to search for it.

    Returns:
        The head.

    Raises:
        ValueError: if there is no ``GAPHead``, several without ``head=``, or ``head`` names something else.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), GAPHead(4, 2))
        >>> find_gap_head(model) is model[1]
        True
    """
    if isinstance(head, GAPHead):
        return head
    if isinstance(head, str):
        try:
            module = model.get_submodule(head)
        except AttributeError as err:
            raise ValueError(f"Expected `head` to name a submodule of the model, got {head!r}: {err}") from None
        if not isinstance(module, GAPHead):
            raise ValueError(f"Expected `head={head!r}` to be a GAPHead, got {type(module).__name__}.")
        return module
    if head is not None:
        raise TypeError(f"Expected `head` to be a GAPHead, a submodule name or None, got {type(head).__name__}.")
    found = [(name, module) for name, module in model.named_modules() if isinstance(module, GAPHead)]
    if not found:
        raise ValueError(
            f"Expected the model to contain a GAPHead, found none in {type(model).__name__}. Convert a torchvision "
            "classifier with `lightning_cam.convert_to_gap(model)`, or pass a Captum layer attribution such as "
            "`method=LayerGradCam(model, layer)` for models without a GAP head."
        )
    if len(found) > 1:
        names = ", ".join(repr(name) for name, _ in found)
        raise ValueError(f"Expected one GAPHead, found {len(found)} ({names}); pass `head=` with one of these names.")
    return found[0][1]


class FeatureCapture:
    """Keep the input features of a ``GAPHead`` from the forward passes the model already runs.

    A forward pre-hook stores the head's input (no copy, no gradient graph kept), so CAMs need no second
    forward pass. Use it as a context manager or call :meth:`remove`.

    Args:
        head: the head to watch.

    Example:
        >>> head = GAPHead(4, 2)
        >>> with FeatureCapture(head) as capture:
        ...     _ = head(torch.ones(1, 4, 3, 3))
        >>> capture.features.shape
        torch.Size([1, 4, 3, 3])
    """

    def __init__(self, head: GAPHead) -> None:
        self.features: Tensor | None = None
        self._handle = head.register_forward_pre_hook(self._store, with_kwargs=True)

    def _store(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        features = args[0] if args else kwargs.get("features")
        self.features = features.detach() if isinstance(features, Tensor) else None

    def pop(self) -> Tensor | None:
        """Return the last captured features and forget them."""
        features, self.features = self.features, None
        return features

    def remove(self) -> None:
        """Remove the hook; idempotent."""
        self._handle.remove()

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

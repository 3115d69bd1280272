"""ResNet-18 for small images (CIFAR-style), in flax.linen, with plain-pytree state.

The network of He et al. (2016) as used for CIFAR: a 3×3 stride-1 stem
without max-pool, four stages of two basic blocks with 64·w, 128·w, 256·w
and 512·w channels (strides 1, 2, 2, 2), global average pooling and a
linear classifier. Options:

* ``norm="batch"`` (BatchNorm; running statistics in a ``batch_stats``
  collection) or ``norm="group"`` (GroupNorm, no state);
* ``preact=True``: the pre-activation ResNet-18 of He et al. (2016b),
  which the understanding-SAM reference code uses with GroupNorm; it ends
  with norm + ReLU before pooling;
* ``width``: channel multiplier (``1/16`` gives a tiny but structurally
  identical network for CPU tests);
* any number of input channels and any spatial size ≥ 8 (28×28
  Fashion-MNIST runs at its native size: the network is fully
  convolutional up to the global pooling);
* ``bf16``: bfloat16 activations and matmul/conv inputs with float32
  parameters (``dtype`` / ``param_dtype``); normalization statistics and
  the logits handed to the loss are float32.

Parameters and BatchNorm statistics are plain nested dicts, so every
function of :mod:`samtheory.nn` stays a pure function of pytrees.

Conventions: [float-nn] (see docs/resnet.md: float32 parameters, bfloat16
compute, float32 loss). No convention of docs/conventions.md applies.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ResNetConfig", "ResNet18", "build_model", "init_variables", "apply_model", "count_params"]

NORMS = ("batch", "group")

# Same epsilon as torch's BatchNorm.
BN_EPSILON = 1e-5
GN_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """Architecture of a ResNet-18. Plain JSON values only, so it can go into a run config.

    Attributes:
      num_classes: number of output logits (≥ 2).
      width: channel multiplier; stage widths are ``max(1, round(c·width))``
        for c = 64, 128, 256, 512.
      norm: ``"batch"`` or ``"group"``.
      preact: pre-activation blocks (He et al. 2016b).
      bf16: bfloat16 compute (float32 parameters either way).
      group_norm_groups: groups of GroupNorm; per layer the largest divisor
        of the layer's channels that is ≤ this (so tiny widths still work).
      bn_momentum: weight of the old running statistics in BatchNorm's
        update (flax convention; torch's momentum 0.1 is 0.9 here). 0 makes
        the running statistics those of the last batch, which
        :mod:`samtheory.nn.interpolation` uses to recompute them.
      stage_blocks: residual blocks in each of the four stages; ``(2, 2, 2,
        2)`` is ResNet-18, ``(1, 1, 1, 1)`` the ResNet-10 that the CPU-sized
        population study uses (half the layers: half the compile and run time).
    """

    num_classes: int = 10
    width: float = 1.0
    norm: str = "batch"
    preact: bool = False
    bf16: bool = True
    group_norm_groups: int = 32
    bn_momentum: float = 0.9
    stage_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not (
            math.isfinite(self.width) and self.width > 0
        ):
            raise ValueError(f"width must be a finite number > 0, got {self.width!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not isinstance(self.preact, bool):
            raise ValueError(f"preact must be a bool, got {self.preact!r}")
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16 must be a bool, got {self.bf16!r}")
        if (
            isinstance(self.group_norm_groups, bool)
            or not isinstance(self.group_norm_groups, int)
            or self.group_norm_groups < 1
        ):
            raise ValueError(f"group_norm_groups must be an integer >= 1, got {self.group_norm_groups!r}")
        if isinstance(self.bn_momentum, bool) or not isinstance(self.bn_momentum, (int, float)) or not (
            0 <= self.bn_momentum < 1
        ):
            raise ValueError(f"bn_momentum must be in [0, 1), got {self.bn_momentum!r}")
        blocks = self.stage_blocks
        if not isinstance(blocks, tuple) or len(blocks) != 4 or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in blocks
        ):
            raise ValueError(f"stage_blocks must be a tuple of four integers >= 1, got {blocks!r}")

    @property
    def stage_widths(self) -> tuple[int, int, int, int]:
        """Channels of the four stages."""
        return tuple(max(1, round(c * self.width)) for c in (64, 128, 256, 512))  # type: ignore[return-value]

    @property
    def compute_dtype(self) -> Any:
        """The activation dtype: bfloat16 or float32."""
        return jnp.bfloat16 if self.bf16 else jnp.float32


# He-normal on fan-out, the torchvision initialization of ResNet convolutions.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_dense_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")


def _groups(channels: int, wanted: int) -> int:
    return max(g for g in range(1, min(channels, wanted) + 1) if channels % g == 0)


def _norm_layer(cfg: ResNetConfig, train: bool, name: str, channels: int) -> nn.Module:
    """BatchNorm or GroupNorm; statistics and affine parameters in float32."""
    dtype = cfg.compute_dtype
    if cfg.norm == "batch":
        return nn.BatchNorm(
            use_running_average=not train, momentum=cfg.bn_momentum, epsilon=BN_EPSILON, dtype=dtype,
            param_dtype=jnp.float32, name=name,
        )
    return nn.GroupNorm(
        num_groups=_groups(channels, cfg.group_norm_groups), epsilon=GN_EPSILON, dtype=dtype, param_dtype=jnp.float32, name=name
    )


def _conv(features: int, kernel: int, strides: int, name: str, *, dtype: Any) -> nn.Conv:
    """A bias-free square convolution with float32 parameters and ``dtype`` compute ([float-nn])."""
    return nn.Conv(
        features, (kernel, kernel), (strides, strides), use_bias=False, dtype=dtype, param_dtype=jnp.float32,
        kernel_init=_conv_init, name=name,
    )


class _BasicBlock(nn.Module):
    """conv-norm-relu-conv-norm, plus the (projected) input, then relu."""

    features: int
    strides: int
    norm: Callable[..., nn.Module]
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(_conv, dtype=self.dtype)
        f = self.features
        y = nn.relu(self.norm("norm1", f)(conv(f, 3, self.strides, "conv1")(x)))
        y = self.norm("norm2", f)(conv(f, 3, 1, "conv2")(y))
        if self.strides != 1 or x.shape[-1] != f:
            x = self.norm("shortcut_norm", f)(conv(f, 1, self.strides, "shortcut_conv")(x))
        return nn.relu(y + x)


class _PreActBlock(nn.Module):
    """norm-relu-conv-norm-relu-conv plus the input (projected from the pre-activation when needed)."""

    features: int
    strides: int
    norm: Callable[..., nn.Module]
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(_conv, dtype=self.dtype)
        pre = nn.relu(self.norm("norm1", x.shape[-1])(x))
        shortcut = x
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = conv(self.features, 1, self.strides, "shortcut_conv")(pre)
        y = conv(self.features, 3, self.strides, "conv1")(pre)
        y = conv(self.features, 3, 1, "conv2")(nn.relu(self.norm("norm2", self.features)(y)))
        return y + shortcut


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (or PreAct ResNet-18); see the module docstring.

    ``__call__(x, train)`` takes NHWC float images and returns float32
    logits. With BatchNorm, ``train=True`` normalizes with batch statistics
    and updates ``batch_stats`` (call ``apply`` with
    ``mutable=["batch_stats"]``); ``train=False`` uses the running ones.
    """

    config: ResNetConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        cfg = self.config
        dtype = cfg.compute_dtype
        norm = lambda name, channels: _norm_layer(cfg, train, name, channels)  # noqa: E731
        block_cls = _PreActBlock if cfg.preact else _BasicBlock
        x = x.astype(dtype)
        widths = cfg.stage_widths
        x = nn.Conv(
            widths[0], (3, 3), use_bias=False, dtype=dtype, param_dtype=jnp.float32, kernel_init=_conv_init,
            name="stem_conv",
        )(x)
        if not cfg.preact:
            x = nn.relu(norm("stem_norm", widths[0])(x))
        for stage, (features, first_stride) in enumerate(zip(widths, (1, 2, 2, 2))):
            for block in range(cfg.stage_blocks[stage]):
                x = block_cls(
                    features, first_stride if block == 0 else 1, norm, dtype,
                    name=f"stage{stage + 1}_block{block + 1}",
                )(x)
        if cfg.preact:
            x = nn.relu(norm("final_norm", widths[-1])(x))
        x = jnp.mean(x, axis=(1, 2))
        logits = nn.Dense(
            cfg.num_classes, dtype=dtype, param_dtype=jnp.float32, kernel_init=_dense_init, name="classifier"
        )(x)
        # The loss is computed in float32 whatever the compute dtype ([float-nn]).
        return logits.astype(jnp.float32)


def build_model(config: ResNetConfig) -> ResNet18:
    """The flax module for ``config``."""
    return ResNet18(config)


def _kernel_std(shape: tuple[int, ...]) -> float:
    if len(shape) == 4:  # conv (kh, kw, in, out): He normal on fan-out, as torchvision
        return math.sqrt(2.0 / (shape[0] * shape[1] * shape[3]))
    return math.sqrt(1.0 / shape[0])  # dense (in, out): LeCun normal on fan-in


def init_variables(config: ResNetConfig, key: jax.Array, image_shape: tuple[int, int, int]) -> tuple[dict, dict]:
    """``(params, batch_stats)`` of a fresh network for images of shape ``(H, W, C)``, as NumPy arrays.

    Kernels are Gaussian: He-normal on fan-out for convolutions
    (torchvision's ResNet initialization), LeCun-normal on fan-in for the
    classifier; norm scales are 1, biases 0, running means 0 and running
    variances 1. All kernels come from one normal draw of the total size,
    cut and scaled per layer: one random-number program instead of one per
    layer, which compiles in about a second instead of tens of seconds on a
    CPU. ``batch_stats`` is ``{}`` for GroupNorm. Raises ``ValueError``
    naming ``image_shape`` for a shape that is not three positive integers
    with ``H, W >= 8``. Conventions: [rng].
    """
    shape = tuple(image_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape):
        raise ValueError(f"image_shape must be (H, W, C) with positive integers, got {image_shape!r}")
    if shape[0] < 8 or shape[1] < 8:
        raise ValueError(f"image_shape must have H, W >= 8, got {image_shape!r}")
    abstract = jax.eval_shape(
        lambda: build_model(config).init(jax.random.PRNGKey(0), jnp.zeros((1, *shape), jnp.float32), train=False)
    )
    leaves, treedef = jax.tree_util.tree_flatten_with_path(dict(abstract))
    is_kernel = [path[-1].key == "kernel" for path, _ in leaves]
    sizes = [leaf.size for (_, leaf), k in zip(leaves, is_kernel) if k]
    # One draw, then cut on the host: slicing a device array eagerly would
    # compile one small program per layer.
    noise = np.asarray(jax.random.normal(key, (sum(sizes),), jnp.float32))
    offsets = iter(np.cumsum([0, *sizes]))
    values = []
    for (path, leaf), kernel in zip(leaves, is_kernel):
        if kernel:
            start = int(next(offsets))
            values.append(noise[start:start + leaf.size].reshape(leaf.shape) * np.float32(_kernel_std(leaf.shape)))
        else:
            # norm scales and running variances start at 1; biases and running means at 0
            fill = 1.0 if path[-1].key in ("scale", "var") else 0.0
            values.append(np.full(leaf.shape, fill, leaf.dtype))
    variables = jax.tree_util.tree_unflatten(treedef, values)
    to_dict = lambda tree: {k: to_dict(v) if isinstance(v, Mapping) else v for k, v in tree.items()}  # noqa: E731
    return to_dict(variables["params"]), to_dict(variables.get("batch_stats", {}))


def apply_model(
    model: ResNet18, params: dict, batch_stats: dict, images: jax.Array, *, train: bool
) -> tuple[jax.Array, dict]:
    """Float32 logits and the (possibly updated) ``batch_stats``.

    In training mode BatchNorm normalizes with the statistics of ``images``
    and returns running statistics moved towards them; in evaluation mode
    the running statistics are used and returned unchanged.
    """
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    if train and batch_stats:
        logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
        return logits, dict(updates["batch_stats"])
    return model.apply(variables, images, train=train), batch_stats


def count_params(params: Any) -> int:
    """Number of scalar parameters."""
    return int(sum(x.size for x in jax.tree.leaves(params)))

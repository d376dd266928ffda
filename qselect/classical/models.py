"""Models: MLP, LeNet-5, ResNet-18 (CIFAR variant) and a small ViT with ReLU MLP blocks.

Every prunable layer is a plain ``nn.Linear`` or ``nn.Conv2d`` that is called
through its own ``forward`` (no functional shortcuts such as
``nn.MultiheadAttention``'s fused projection), so masks applied by
``torch.nn.utils.prune`` take effect everywhere.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import QSelectError

MODELS = ("mlp", "lenet5", "resnet18", "vit")


def _image_shape(input_shape, model: str) -> tuple[int, int, int]:
    if len(input_shape) == 3:
        return tuple(int(v) for v in input_shape)
    if len(input_shape) == 1:
        side = int(round(math.sqrt(input_shape[0])))
        if side * side == input_shape[0]:
            return (1, side, side)  # flat square images (digits (64,)) are read as (1, 8, 8)
    raise QSelectError(f"{model} needs image inputs (C, H, W) or a flat square image, got "
                       f"input_shape={tuple(input_shape)}; load the data with image=True")


class MLP(nn.Module):
    """Flatten, then Linear-ReLU blocks of widths ``hidden``, then a Linear classifier.

    Layers live in ``self.layers`` (``layers.0``, ``layers.2``, ...).
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (64, 64),
                 bias: bool = True):
        super().__init__()
        widths = [int(in_features), *(int(h) for h in hidden)]
        mods: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            mods += [nn.Linear(a, b, bias=bias), nn.ReLU()]
        mods.append(nn.Linear(widths[-1], num_classes, bias=bias))
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, ...)
            Float inputs; a flat input is reshaped to the model's input shape.

        Returns
        -------
        torch.Tensor, shape (batch, num_classes)
        """
        return self.layers(x.flatten(1))


class LeNet5(nn.Module):
    """LeNet-5 (conv 6@5x5, pool, conv 16@5x5, pool, FC 120-84-classes) with ReLU.

    Paddings adapt so that small inputs (28x28 MNIST, 8x8 digits) still fit.
    """

    def __init__(self, input_shape, num_classes: int):
        super().__init__()
        c, h, w = _image_shape(input_shape, "lenet5")
        p1 = 0 if min(h, w) >= 32 else 2
        self.conv1 = nn.Conv2d(c, 6, 5, padding=p1)
        h1, w1 = (h + 2 * p1 - 4) // 2, (w + 2 * p1 - 4) // 2
        p2 = 0 if min(h1, w1) >= 10 else 2
        self.conv2 = nn.Conv2d(6, 16, 5, padding=p2)
        h2, w2 = (h1 + 2 * p2 - 4) // 2, (w1 + 2 * p2 - 4) // 2
        if min(h2, w2) < 1:
            raise QSelectError(f"lenet5 input {h}x{w} is too small (needs at least 4x4)")
        self.fc1 = nn.Linear(16 * h2 * w2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        # ReLU modules (not F.relu) so dead-unit hooks can see every activation
        self.relu1, self.relu2, self.relu3, self.relu4 = (nn.ReLU() for _ in range(4))
        self._in_shape = (c, h, w)

    def forward(self, x):
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, C, H, W) or (batch, C·H·W)
            Float inputs; a flat input is reshaped to the model's input shape.

        Returns
        -------
        torch.Tensor, shape (batch, num_classes)
        """
        x = x.reshape(x.shape[0], *self._in_shape)
        x = F.max_pool2d(self.relu1(self.conv1(x)), 2)
        x = F.max_pool2d(self.relu2(self.conv2(x)), 2)
        x = self.relu3(self.fc1(x.flatten(1)))
        x = self.relu4(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv–BN layers, ReLU, identity or 1×1-conv shortcut.

    Parameters
    ----------
    cin, cout : int
        Input and output channels.
    stride : int
        Stride of the first convolution (2 halves the resolution).

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image
    Recognition", CVPR 2016.
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, cin, H, W)

        Returns
        -------
        torch.Tensor, shape (batch, cout, H / stride, W / stride)
        """
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for CIFAR: 3x3 stem, no max-pool, stages of 2 BasicBlocks at widths w, 2w, 4w, 8w."""

    def __init__(self, input_shape, num_classes: int, width: int = 64):
        super().__init__()
        c, _, _ = _image_shape(input_shape, "resnet18")
        self._in_shape = _image_shape(input_shape, "resnet18")
        self.conv1 = nn.Conv2d(c, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, C, H, W) or (batch, C·H·W)
            Float inputs; a flat input is reshaped to the model's input shape.

        Returns
        -------
        torch.Tensor, shape (batch, num_classes)
        """
        x = x.reshape(x.shape[0], *self._in_shape)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Attention(nn.Module):
    """Multi-head self-attention with Linear q/k/v and output projections (prunable layers).

    Parameters
    ----------
    dim : int
        Token width; must be divisible by ``heads``.
    heads : int
        Number of attention heads.

    Raises
    ------
    QSelectError
        If ``dim`` is not divisible by ``heads``.

    References
    ----------
    A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise QSelectError(f"vit dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads  # kept when heads are removed (qselect.classical.compact)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        """Scaled dot-product self-attention over the tokens.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, tokens, dim)

        Returns
        -------
        torch.Tensor, shape (batch, tokens, dim)
        """
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class ViTBlock(nn.Module):
    """Pre-norm transformer block; the MLP is Linear-ReLU-Linear (ReLU so units can die)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x):
        """Apply attention and the MLP, each pre-normed with a residual connection.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, tokens, dim)

        Returns
        -------
        torch.Tensor, shape (batch, tokens, dim)
        """
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small Vision Transformer: conv patch embedding, class token, pre-norm blocks."""

    def __init__(self, input_shape, num_classes: int, patch: int | None = None, dim: int = 64,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        c, h, w = _image_shape(input_shape, "vit")
        patch = patch or (4 if min(h, w) >= 16 else 2)
        if h % patch or w % patch:
            raise QSelectError(f"vit patch {patch} does not divide the {h}x{w} input; pick a divisor")
        self._in_shape = (c, h, w)
        self.patch_embed = nn.Conv2d(c, dim, patch, stride=patch)
        n = (h // patch) * (w // patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        """Logits for a batch.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, C, H, W) or (batch, C·H·W)
            Float inputs; a flat input is reshaped to the model's input shape.

        Returns
        -------
        torch.Tensor, shape (batch, num_classes)
        """
        x = x.reshape(x.shape[0], *self._in_shape)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


INITS = ("default", "kaiming_normal", "signed_constant")


def reinit_weights(model: nn.Module, init: str) -> nn.Module:
    """Re-draw every Linear/Conv2d weight (global torch RNG) with ``init``.

    "kaiming_normal": N(0, 2/fan_in); "signed_constant": +-sqrt(2/fan_in) with a random
    sign (Ramanujan et al.'s choice for subnetworks of random networks; plain
    PyTorch init is too small for edge-popup to find good subnetworks).

    Parameters
    ----------
    model : torch.nn.Module
    init : {"kaiming_normal", "signed_constant"}

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    References
    ----------
    K. He et al., "Delving Deep into Rectifiers", ICCV 2015; V. Ramanujan et
    al., "What's Hidden in a Randomly Weighted Neural Network?", CVPR 2020.
    """
    if init == "default":
        return model
    if init not in INITS:
        raise QSelectError(f"init {init!r} unknown; choose one of {', '.join(INITS)}")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if init == "signed_constant":
                fan_in = m.weight[0].numel()
                with torch.no_grad():
                    m.weight.copy_(m.weight.sign() * math.sqrt(2.0 / fan_in))
    return model


def build_model(name: str, input_shape, num_classes: int, seed: int = 0, *,
                init: str = "default", **kw) -> nn.Module:
    """Build ``name`` ("mlp", "lenet5", "resnet18", "vit") with weights drawn from ``seed``.

    The global torch RNG is left untouched (initialisation runs in a forked RNG).
    ``init``: "default" (PyTorch's), "kaiming_normal" or "signed_constant" for
    Linear/Conv2d weights (the latter two suit edge-popup's frozen random weights).
    kw: mlp ``hidden=(64, 64)``, ``bias``; resnet18 ``width=64``; vit ``patch``, ``dim``,
    ``depth``, ``heads``, ``mlp_ratio``.

    Parameters
    ----------
    name : {"mlp", "lenet5", "resnet18", "vit"}
    input_shape : tuple of int
        E.g. (64,) or (3, 32, 32).
    num_classes : int
    seed : int
    init : {"default", "kaiming_normal", "signed_constant"}
    **kw
        Model options (``hidden`` for the MLP, ``width`` for ResNet-18,
        ``patch``/``dim``/``depth``/``heads`` for the ViT).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    QSelectError
        On an unknown name or option.
    """
    if not isinstance(name, str):
        raise QSelectError(f"model name must be one of {', '.join(MODELS)}, got {name!r}")
    key = name.lower().replace("-", "").replace("_", "")
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    try:
        input_shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        input_shape = ()
    if not input_shape or min(input_shape) < 1:
        raise QSelectError(f"input_shape must be positive sizes such as (64,) or (1, 28, 28), got "
                           f"{input_shape!r}; use DataSplits.input_shape")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise QSelectError(f"num_classes must be a positive integer, got {num_classes!r}")
    hidden = kw.get("hidden", ()) if key == "mlp" else ()
    if not isinstance(hidden, (list, tuple)) or not all(isinstance(h, (int, np.integer)) and h >= 1
                                                        for h in hidden):
        raise QSelectError(f"mlp hidden must be a tuple of widths ≥ 1 such as (64, 64), got {hidden!r}")
    if init not in INITS:
        raise QSelectError(f"init {init!r} unknown; choose one of {', '.join(INITS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            if key == "mlp":
                model = MLP(math.prod(input_shape), num_classes, **kw)
            elif key == "lenet5":
                model = LeNet5(input_shape, num_classes, **kw)
            elif key == "resnet18":
                model = ResNet18(input_shape, num_classes, **kw)
            elif key == "vit":
                model = ViT(input_shape, num_classes, **kw)
            else:
                raise QSelectError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
        except TypeError as exc:
            raise QSelectError(f"bad option for model {name!r}: {exc}") from None
        return reinit_weights(model, init)

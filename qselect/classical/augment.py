"""Standard CIFAR augmentation with plain torch ops (torchvision is not assumed).

Works on whole batches (B, C, H, W) on any device; the random draws come from
a CPU ``torch.Generator`` so the same seed gives the same augmentations on CPU
and GPU.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import QSelectError


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` on each side, then take a random HxW crop per image.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
    pad : int
        Zero padding on each side, pixels.
    generator : torch.Generator

    Returns
    -------
    torch.Tensor, shape (N, C, H, W)
    """
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)        # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)        # (B, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]
    # advanced indexing puts the indexed dims first: (B, H, W, C) -> (B, C, H, W)
    return xp.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_hflip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
    generator : torch.Generator
    p : float
        Flip probability.

    Returns
    -------
    torch.Tensor, shape (N, C, H, W)
    """
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel ``(x - mean) / std``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
    mean, std : sequence of float, length C

    Returns
    -------
    torch.Tensor, shape (N, C, H, W)
    """
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x - m) / s


class CifarAugment:
    """Random crop (padding ``pad``), horizontal flip, then optional normalisation.

    Call it on an input batch. Leave ``mean``/``std`` unset when the data was
    already standardised by ``load_dataset`` (CIFAR's default): padding then
    fills with the mean pixel. ``seed`` makes the stream of draws reproducible.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 pad: int = 4, flip: bool = True, seed: int = 0):
        self.mean, self.std, self.pad, self.flip = mean, std, int(pad), bool(flip)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise QSelectError(f"CifarAugment expects (B, C, H, W) batches, got shape {tuple(x.shape)}")
        x = random_crop(x, self.pad, self.generator)
        if self.flip:
            x = random_hflip(x, self.generator)
        if self.mean is not None and self.std is not None:
            x = normalize(x, self.mean, self.std)
        return x

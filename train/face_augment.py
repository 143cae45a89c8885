"""Batched, vectorised augmentation for webcam-like face crops (tensors in [0, 1], NCHW)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_faces(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Flip, small affine, brightness/contrast/gamma, blur, noise and occlusion, per sample.

    ``strength`` scales every range and probability below (1.0: the ranges written here; 0: flip only).
    """
    n = x.shape[0]
    s = float(strength)

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    def coin(p: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) < p

    # Affine: rotation +-15 deg, scale 0.85-1.15, shift +-10%, horizontal flip.
    ang = u(-15 * s, 15 * s) * math.pi / 180
    scale = u(1 - 0.15 * s, 1 + 0.15 * s)
    flip = torch.where(coin(0.5), -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, u(-0.1 * s, 0.1 * s)], 1), torch.stack([sin * flip, cos, u(-0.1 * s, 0.1 * s)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # Photometric: contrast around the mean, brightness, gamma.
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(1 - 0.4 * s, 1 + 0.4 * s).view(n, 1, 1, 1) + mean + u(-0.15 * s, 0.15 * s).view(n, 1, 1, 1)
    x = x.clamp(0, 1)
    gamma = torch.where(coin(0.5 * s), u(0.7, 1.5), torch.ones(n))
    x = x.clamp_min(1e-6) ** gamma.view(n, 1, 1, 1)

    # Blur (3x3 Gaussian) on some samples, sensor noise on others.
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).view(1, 1, 3, 3).to(x.dtype)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    x = torch.where(coin(0.2 * s).view(n, 1, 1, 1), blurred, x)
    noise = torch.randn(x.shape, generator=gen) * u(0.0, 0.04).view(n, 1, 1, 1)
    x = torch.where(coin(0.3 * s).view(n, 1, 1, 1), x + noise, x)

    # Occlusion: one grey rectangle of 5-25% of the area on half the samples.
    h, w = x.shape[2], x.shape[3]
    area = u(0.05, 0.25)
    aspect = torch.exp(u(math.log(0.5), math.log(2.0)))
    eh = (torch.sqrt(area * aspect) * h).clamp(2, h - 1)
    ew = (torch.sqrt(area / aspect) * w).clamp(2, w - 1)
    y0 = u(0, 1) * (h - eh)
    x0 = u(0, 1) * (w - ew)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    box = (ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1)) & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1))
    box = box & coin(0.5 * s).view(n, 1, 1)
    fill = u(0, 1).view(n, 1, 1, 1).expand_as(x)
    x = torch.where(box.unsqueeze(1), fill, x)
    return x.clamp(0, 1)


def turn_faces(x: torch.Tensor, gen: torch.Generator, share: float, max_pull: float = 0.3) -> torch.Tensor:
    """A perspective warp as of a head turned sideways, on ``share`` of the faces (NCHW in [0, 1]).

    A flat picture turned about its vertical axis: the far side shrinks (by up to ``max_pull``) and
    the whole face narrows. FER-2013 is mostly frontal; a living-room camera sees three-quarter faces.
    This is a 2-D approximation (no self-occlusion of a real head).
    """
    n, _, h, w = x.shape
    pull = (torch.rand(n, generator=gen) * 2 - 1) * max_pull
    pull = torch.where(torch.rand(n, generator=gen) < share, pull, torch.zeros(n))
    narrow = 1 - 0.5 * pull.abs()
    gy, gx = torch.meshgrid(torch.linspace(-1 + 1 / h, 1 - 1 / h, h), torch.linspace(-1 + 1 / w, 1 - 1 / w, w), indexing="ij")
    depth = 1 - pull.view(n, 1, 1) * gx
    grid = torch.stack([gx / (depth * narrow.view(n, 1, 1)), gy / depth], -1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

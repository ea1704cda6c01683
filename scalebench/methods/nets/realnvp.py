"""RealNVP: a stack of affine coupling layers with checkerboard and channel masks (Dinh et al. 2017).

"Density estimation using Real NVP": each coupling layer keeps the masked half of its input,
x_a = m ⊙ x, and maps the other half affinely with a scale and shift computed from x_a,

    y = x_a + (1 − m) ⊙ (x ⊙ exp(s(x_a)) + t(x_a)),   log |det ∂y/∂x| = Σ (1 − m) ⊙ s(x_a),

so the inverse is exact, x = x_a + (1 − m) ⊙ (y − t(x_a)) ⊙ exp(−s(x_a)), and the Jacobian is
triangular. Between stages a squeeze (space-to-depth, 2×2 → 4 channels) turns spatial masks
into channel masks. Scales are s = a ⊙ tanh(·) with a learned per-channel a (RealNVP's tanh
scaling) and the last convolution of every coupling net starts at zero, so the untrained flow is
the identity. One `forward(x, reverse=...)` runs the whole stack either way, so a harness that
counts forward calls sees one call per pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RealNVPConfig:
    """Input (channels, side, side); per stage: its masks in order and the coupling nets' width.

    Mask names: "checker0"/"checker1" (spatial checkerboard, the pixel (0, 0) kept / changed),
    "chan0"/"chan1" (first / second half of the channels kept), "chanx0"/"chanx1" (every other
    channel kept, which mixes the squeezed sub-grids differently). Every stage but the first
    starts with a squeeze.
    """

    channels: int = 1
    side: int = 8
    stages: tuple[tuple[str, ...], ...] = (
        ("checker0", "checker1", "checker0", "checker1"),
        ("chan0", "chan1", "chanx0", "chanx1"),
        ("chan0", "chan1", "chanx0", "chanx1"),
    )
    hidden: tuple[int, ...] = (64, 48, 32)
    dropout: float = 0.0  # in the coupling nets, training only (eval mode is deterministic)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RealNVPConfig:
        return cls(channels=d["channels"], side=d["side"], stages=tuple(tuple(s) for s in d["stages"]),
                   hidden=tuple(d["hidden"]), dropout=d.get("dropout", 0.0))


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, 4C, H/2, W/2): each 2×2 block becomes 4 channels (a permutation, log-det 0)."""
    return F.pixel_unshuffle(x, 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x, 2)


def make_mask(kind: str, channels: int, side: int) -> torch.Tensor:
    """(1, C, side, side) float mask: 1 where the coupling keeps its input, 0 where it transforms it."""
    if kind.startswith("checker"):
        ij = torch.arange(side).view(-1, 1) + torch.arange(side).view(1, -1)
        m = ((ij % 2) == int(kind[-1])).float().expand(channels, side, side)
    elif kind.startswith("chanx"):
        m = ((torch.arange(channels) % 2) == int(kind[-1])).float().view(-1, 1, 1).expand(channels, side, side)
    elif kind.startswith("chan"):
        first = torch.arange(channels) < channels // 2
        m = (first if kind[-1] == "0" else ~first).float().view(-1, 1, 1).expand(channels, side, side)
    else:
        raise ValueError(f"unknown mask {kind!r}")
    return m.unsqueeze(0).contiguous()


class AffineCoupling(nn.Module):
    """One masked affine coupling layer; the net reads (m ⊙ x, m) and gives s, t for every position."""

    def __init__(self, mask: torch.Tensor, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        c = mask.shape[1]
        self.register_buffer("mask", mask, persistent=False)
        self.net = nn.Sequential(
            nn.Conv2d(2 * c, hidden, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(hidden, 2 * c, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1, c, 1, 1))

    def _st(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask
        h = self.net(torch.cat([xa, m.expand_as(xa)], dim=1))
        s, t = h.chunk(2, dim=1)
        return self.scale * torch.tanh(s) * (1 - m), t * (1 - m)

    def forward(self, x: torch.Tensor, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, log-det per example) forward; (x, −log-det) with reverse=True (the exact inverse)."""
        xa = x * self.mask
        s, t = self._st(xa)
        if reverse:
            y = xa + (1 - self.mask) * ((x - t) * torch.exp(-s))
            return y, -s.flatten(1).sum(1)
        y = xa + (1 - self.mask) * (x * torch.exp(s) + t)
        return y, s.flatten(1).sum(1)


class RealNVP(nn.Module):
    """Stages of coupling layers with a squeeze before every stage but the first; z has x's shape."""

    def __init__(self, cfg: RealNVPConfig = RealNVPConfig()) -> None:
        super().__init__()
        if len(cfg.hidden) != len(cfg.stages):
            raise ValueError("one hidden width per stage")
        self.cfg = cfg
        self.stages = nn.ModuleList()
        c, side = cfg.channels, cfg.side
        for i, (kinds, hidden) in enumerate(zip(cfg.stages, cfg.hidden, strict=True)):
            if i:
                c, side = 4 * c, side // 2
            self.stages.append(nn.ModuleList(AffineCoupling(make_mask(k, c, side), hidden, cfg.dropout) for k in kinds))

    def forward(self, x: torch.Tensor, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Data → latent z and log |det ∂z/∂x| (B,); with reverse=True latent → data and log |det ∂x/∂z|."""
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        order: Sequence[int] = range(len(self.stages))
        if not reverse:
            for i in order:
                x = squeeze(x) if i else x
                for layer in self.stages[i]:
                    x, log_det_layer = layer(x)
                    logdet = logdet + log_det_layer
            for _ in range(len(self.stages) - 1):
                x = unsqueeze(x)
            return x, logdet
        for _ in range(len(self.stages) - 1):
            x = squeeze(x)
        for i in reversed(order):
            for layer in reversed(self.stages[i]):
                x, log_det_layer = layer(x, reverse=True)
                logdet = logdet + log_det_layer
            x = unsqueeze(x) if i else x
        return x, logdet

"""A small time-conditioned U-Net for 8×8 images (the denoiser of the refinement methods).

Two resolutions (8×8 and 4×4) with residual blocks modulated by a time embedding
(FiLM scale/shift, as in Dhariwal & Nichol 2021) and one self-attention block on the
4×4 grid. Times are continuous floats in [0, 1], so the same net serves discrete-step
samplers (DDPM/DDIM on a strided grid) and continuous ones (Heun), and a second
optional time lets two-time methods (consistency, IMM) reuse it. Times of shape (N, R)
give every one of R bands of image rows its own time (per-row FiLM: AR-diffusion and
rolling diffusion); times of shape (N,) take the original path unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal features of continuous t ∈ [0, 1] (Vaswani et al. 2017; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * scale)[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv ×2 with the time embedding as a per-channel scale and shift."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if emb.ndim == 3:  # per-row embeddings (N, R, E): a scale and shift for each band of rows
            scale, shift = _rows_film(self.emb(emb), h.shape[2]).chunk(2, dim=1)
        else:
            scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


def _rows_film(e: torch.Tensor, rows: int) -> torch.Tensor:
    """(N, R, 2C) per-row FiLM parameters → (N, 2C, rows, 1), averaging groups of R/rows rows
    (the 4×4 level sees the mean of its two 8×8 rows)."""
    n, r, c = e.shape
    e = e.transpose(1, 2)
    if r > rows:
        e = e.reshape(n, c, rows, r // rows).mean(3)
    elif r < rows:
        e = e.repeat_interleave(rows // r, dim=2)
    return e[..., None]


class SelfAttention(nn.Module):
    """Multi-head self-attention over the spatial positions (cheap at 4×4)."""

    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.norm, self.heads = _norm(ch), heads
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """ε/v/x0-predicting denoiser: (x (N,C,8,8), t (N,) [, s (N,)]) → (N, out_ch, 8, 8).

    Channels `base` at 8×8 and `2·base` at 4×4, `blocks` residual blocks per level on the
    way down and `up_blocks` (default `blocks + 1`) on the way up, each concatenating the
    latest unused skip of its level (U-Net), self-attention in the middle. `fourier` adds
    sin/cos(2^n·π·x) input features for each n (Kingma et al. 2021, App. C): they let a
    small net resolve a fine grey-level grid at high SNR.
    """

    def __init__(self, in_ch: int = 1, out_ch: int = 1, base: int = 32, blocks: int = 1,
                 emb_dim: int = 128, two_times: bool = False, dropout: float = 0.0,
                 up_blocks: int | None = None, fourier: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.emb_dim, self.two_times = emb_dim, two_times
        self.register_buffer("freqs", math.pi * 2.0 ** torch.tensor(list(fourier), dtype=torch.float32),
                             persistent=False)
        up_blocks = blocks + 1 if up_blocks is None else up_blocks
        mlp = lambda: nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))  # noqa: E731
        self.t_mlp = mlp()
        self.s_mlp = mlp() if two_times else None
        chs = (base, 2 * base)
        self.inp = nn.Conv2d(in_ch * (1 + 2 * len(fourier)), base, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips: list[list[int]] = [[base]] + [[] for _ in chs[1:]]
        c = base
        for level, ch in enumerate(chs):
            blocks_l = nn.ModuleList()
            for _ in range(blocks):
                blocks_l.append(ResBlock(c, ch, emb_dim, dropout))
                c = ch
                skips[level].append(c)
            self.down.append(blocks_l)
            if level < len(chs) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1 = ResBlock(c, c, emb_dim, dropout)
        self.attn = SelfAttention(c)
        self.mid2 = ResBlock(c, c, emb_dim, dropout)
        self.up = nn.ModuleList()
        self.uses_skip: list[list[bool]] = []
        for level in reversed(range(len(chs))):
            blocks_l, use = nn.ModuleList(), []
            for _ in range(up_blocks):
                extra = skips[level].pop() if skips[level] else 0
                use.append(extra > 0)
                blocks_l.append(ResBlock(c + extra, chs[level], emb_dim, dropout))
                c = chs[level]
            self.up.append(blocks_l)
            self.uses_skip.append(use)
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, out_ch, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        if t.ndim == 2:  # per-row times (N, R), R dividing the image height: one embedding per band
            if self.s_mlp is not None or x.shape[2] % t.shape[1]:
                raise ValueError(f"per-row times {tuple(t.shape)} need one time and an image height divisible by R")
            emb = self.t_mlp(timestep_embedding(t.reshape(-1), self.emb_dim).view(n, t.shape[1], -1))
        else:
            emb = self.t_mlp(timestep_embedding(t.expand(n) if t.ndim == 0 else t, self.emb_dim))
        if self.s_mlp is not None:
            if s is None:
                raise ValueError("this UNet was built with two_times=True; pass s")
            emb = emb + self.s_mlp(timestep_embedding(s.expand(n) if s.ndim == 0 else s, self.emb_dim))
        if self.freqs.numel():
            f = x.unsqueeze(2) * self.freqs.view(1, 1, -1, 1, 1)
            x = torch.cat([x, f.sin().flatten(1, 2), f.cos().flatten(1, 2)], dim=1)
        h = self.inp(x)
        skips: list[list[torch.Tensor]] = [[h]] + [[] for _ in self.down[1:]]
        for level, blocks_l in enumerate(self.down):
            for block in blocks_l:
                h = block(h, emb)
                skips[level].append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for i, (blocks_l, use) in enumerate(zip(self.up, self.uses_skip, strict=True)):
            level = len(self.up) - 1 - i
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            for block, u in zip(blocks_l, use, strict=True):
                h = block(torch.cat([h, skips[level].pop()], dim=1) if u else h, emb)
        return self.out(h)

"""Gated PixelCNN with vertical and horizontal stacks (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders"): masked convolutions without a blind spot.

Causality is built from padding and kernel shapes rather than multiplied masks:

- the **vertical stack** v at (i, j) sees only rows < i. Layer 0 convolves the input with a
  (k//2) × k kernel whose rows end one row above the output ("mask A"); later layers use a
  (k//2 + 1) × k kernel ending at the output's own row of the previous v ("mask B"), which is
  still strictly above in input terms;
- the **horizontal stack** h at (i, j) sees row i left of j (layer 0: 1 × k//2 ending one column
  left; later: 1 × (k//2 + 1) ending at j of the previous h) plus v at (i, j) through a 1×1 link.

So the output at pixel i depends on exactly the pixels before it in raster order, with the whole
upper half-plane inside the receptive field once the stacks are deep enough (no blind spot;
`tests/test_pixelcnn.py` checks both directions by gradients). No padding below the output
row means the output of rows 0..ρ does not depend on rows > ρ, so a caller may crop the canvas.

Each layer is a gated unit tanh(W_f * x + c_f) ⊙ σ(W_g * x + c_g), where c is a 1×1 projection of
a conditioning map (here: a resolution embedding plus a learned per-resolution position map,
the paper's "location-dependent" conditioning h = m(s)); h has a residual connection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PixelCNNConfig:
    levels: int = 17          # input one-hot channels and output classes per pixel
    channels: int = 32        # width of both stacks
    n_layers: int = 6         # gated layers (the first one is the "mask A" layer)
    kernel: int = 5           # odd kernel size k of the vertical stack
    cond_dim: int = 16        # channels of the conditioning map
    n_cond: int = 4           # conditioning ids (resolutions)
    n_positions: int = 85     # rows of the position table (all resolutions' pixels)
    dropout: float = 0.0      # on each layer's horizontal residual branch

    def to_dict(self) -> dict:
        return asdict(self)


class GatedLayer(nn.Module):
    """One layer of the two stacks; `first` gives the "mask A" shapes (strictly before)."""

    def __init__(self, c_in: int, c: int, k: int, cond_dim: int, first: bool, dropout: float) -> None:
        super().__init__()
        self.first, self.half = first, k // 2
        vh = self.half if first else self.half + 1
        hw = self.half if first else self.half + 1
        self.v_conv = nn.Conv2d(c_in, 2 * c, (vh, k))
        self.h_conv = nn.Conv2d(c_in, 2 * c, (1, hw))
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)
        self.cond_v = nn.Conv2d(cond_dim, 2 * c, 1, bias=False)
        self.cond_h = nn.Conv2d(cond_dim, 2 * c, 1, bias=False)
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def _gate(x: torch.Tensor) -> torch.Tensor:
        f, g = x.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = v.shape[-2:]
        p = self.half
        # vertical: pad k//2 rows on top (none below) and k//2 columns each side
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))
        if self.first:  # output row i covers rows i-p..i-1; the conv yields H+1 rows, keep the first H
            v_pre = v_pre[..., :height, :]
        # horizontal: pad k//2 columns on the left only
        h_pre = self.h_conv(F.pad(h, (p, 0, 0, 0)))
        if self.first:
            h_pre = h_pre[..., :width]
        h_pre = h_pre + self.v_to_h(v_pre) + self.cond_h(cond)
        v_new = self._gate(v_pre + self.cond_v(cond))
        h_new = self.h_out(self.drop(self._gate(h_pre)))
        if not self.first:
            h_new = h_new + h
        return v_new, h_new


class GatedPixelCNN(nn.Module):
    """Logits (B, levels, H, W) of every pixel given the pixels before it in raster order.

    `forward(x, cond, r)`: x (B, H, W) integer levels of an r×r canvas (H ≤ r rows may be given:
    outputs of the given rows are those of the full canvas), cond (B,) conditioning ids, and r
    selecting the position map's block at offset `pos_offset`.
    """

    def __init__(self, cfg: PixelCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.cond_emb = nn.Embedding(cfg.n_cond, cfg.cond_dim)
        self.pos_emb = nn.Embedding(cfg.n_positions, cfg.cond_dim)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.layers = nn.ModuleList(
            GatedLayer(cfg.levels if i == 0 else c, c, cfg.kernel, cfg.cond_dim, i == 0, cfg.dropout)
            for i in range(cfg.n_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, cfg.levels, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, r: int, pos_offset: int = 0) -> torch.Tensor:
        b, height, width = x.shape
        one_hot = F.one_hot(x, self.cfg.levels).permute(0, 3, 1, 2).float()
        pos = self.pos_emb.weight[pos_offset:pos_offset + r * r].view(r, r, -1)[:height, :width]
        cmap = pos.permute(2, 0, 1).unsqueeze(0) + self.cond_emb(cond)[:, :, None, None]
        v = h = one_hot
        for layer in self.layers:
            v, h = layer(v, h, cmap)
        return self.head(h)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

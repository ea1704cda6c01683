"""`pixelcnn`: resolution-conditioned gated PixelCNN (van den Oord et al. 2016), exact likelihood.

S is mapped as for `gpt`: one network, conditioned on a resolution id, is trained on the 1×1,
2×2, 4×4 and 8×8 pyramid views of `digits`; at a budget of S = r² sequential steps it writes r×r
grey levels in raster order and the r×r image is nearest-upsampled to 8×8. Each step runs the
convolutional net once on the current canvas (rows up to the one being written: the stacks never
look down, so cropping the canvas changes nothing) and commits one pixel: NFE = S.

Sampling draws one uniform per pixel from `rng` up front and inverts each pixel's 17-way CDF
with it (`methods/samplers/autoregressive.py`), so a sample is a deterministic function of
(weights, noise). The exact NLL at S = 64 is one teacher-forced pass: the same 17-level tokens
and raster order as `gpt`, so the two bits/dim are directly comparable.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016, "Conditional Image
Generation with PixelCNN Decoders" (gated PixelCNN, vertical + horizontal stacks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.api import Axis, MethodCard
from scalebench.data.digits import LEVELS, SIDE, Digits, to_tokens
from scalebench.methods.nets.pixelcnn import GatedPixelCNN, PixelCNNConfig, n_params
from scalebench.methods.raster_ar import ResolutionARGenerator
from scalebench.methods.samplers import autoregressive as ar
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

RESOLUTIONS: tuple[int, ...] = (1, 2, 4, 8)
# Each resolution owns a block of the position map table: offsets 0, 1, 5, 21; 85 rows in all.
POS_OFFSET: dict[int, int] = {r: sum(q * q for q in RESOLUTIONS[:i]) for i, r in enumerate(RESOLUTIONS)}
N_POSITIONS = sum(r * r for r in RESOLUTIONS)
SAMPLE_CHUNK = 2000  # rows decoded at once; results do not depend on it

MODEL = PixelCNNConfig(levels=LEVELS, channels=32, n_layers=6, kernel=5, cond_dim=16,
                       n_cond=len(RESOLUTIONS), n_positions=N_POSITIONS, dropout=0.1)
RECIPE = Recipe(steps=2000, batch_size=64, lr=3e-3, weight_decay=0.01, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)


def _cond(r: int, n: int, device: torch.device | str) -> torch.Tensor:
    return torch.full((n,), RESOLUTIONS.index(r), dtype=torch.long, device=device)


def teacher_forced_logits(model: GatedPixelCNN, tokens: torch.Tensor, r: int) -> torch.Tensor:
    """Logits (B, r², LEVELS) of every pixel given the pixels before it, in one forward pass."""
    b = tokens.shape[0]
    out = model(tokens.view(b, r, r), _cond(r, b, tokens.device), r, POS_OFFSET[r])  # (B, L, r, r)
    return out.flatten(2).transpose(1, 2)


@torch.no_grad()
def decode(model: GatedPixelCNN, r: int, u: torch.Tensor,
           callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Write r×r pixels in raster order from noise u (n, r²); r² network calls, no cache.

    Call i runs the net on rows 0..i // r of the canvas (pixels ≥ i hold placeholders the masks
    never read) and reads the logits of pixel i.
    """
    n = u.shape[0]
    cond = _cond(r, n, u.device)

    def next_logits(i: int, tokens: torch.Tensor) -> torch.Tensor:
        row, col = divmod(i, r)
        canvas = tokens.view(n, r, r)[:, :row + 1]
        return model(canvas, cond, r, POS_OFFSET[r])[:, :, row, col]

    return ar.decode(next_logits, u, callback)


def bits_per_dim(model: GatedPixelCNN, tokens: torch.Tensor, r: int = SIDE) -> torch.Tensor:
    """Per-example exact NLL in bits per pixel of (B, r²) tokens under the r×r model."""
    return ar.bits_from_logits(teacher_forced_logits(model, tokens, r), tokens)


def build_model(cfg: PixelCNNConfig = MODEL) -> GatedPixelCNN:
    return GatedPixelCNN(cfg)


class PixelCNNGenerator(ResolutionARGenerator):
    """The shipped resolution-conditioned gated PixelCNN, exposed to the harness."""

    card = MethodCard(
        name="pixelcnn",
        family="gated PixelCNN (masked convolutions)",
        category="sequence",
        S=Axis(meaning="pixels generated (r×r at resolution r, upsampled to 8×8)", default=64,
               values=(1, 4, 16, 64)),
        K=Axis.fixed(1),
        likelihood="exact",
        paper="van den Oord et al. 2016",
        samplers=("ancestral",),
        notes=("One gated PixelCNN (vertical + horizontal stacks, no blind spot) conditioned on a "
               "resolution embedding writes r×r grey levels in raster order at S=r² (nearest "
               "upsampled to 8×8); one full convolutional pass per pixel (no cache). Likelihood is "
               "exact bits/dim at 8×8 for S=64 only; nll returns None for S<64."),
    )

    checkpoints = ("pixelcnn",)
    chunk = SAMPLE_CHUNK

    def __init__(self, device: str = "cpu") -> None:
        self.model, self.meta = load_module(
            "pixelcnn", lambda m: build_model(PixelCNNConfig(**m["model"])), device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"pixelcnn": self.model}

    def decode_tokens(self, r: int, u: torch.Tensor) -> torch.Tensor:
        return decode(self.model, r, u)

    def token_bits(self, tokens: torch.Tensor) -> torch.Tensor:
        return bits_per_dim(self.model, tokens)


def _pyramid_tokens(split: str) -> tuple[torch.Tensor, ...]:
    pyr = Digits().pyramid(split, RESOLUTIONS)
    return tuple(to_tokens(pyr[r]) for r in RESOLUTIONS)


def train(recipe: Recipe | None = None, out_dir: Path | None = None, model_cfg: PixelCNNConfig | None = None) -> Path:
    """Train the shipped PixelCNN on all pyramid resolutions at once and write `pixelcnn.safetensors`.

    The loss is the mean per-pixel cross-entropy over every pixel of every resolution (8×8
    carries 64/85 of the weight), as for `gpt`. `model_cfg` overrides MODEL (for sweeps/tests).
    """
    recipe = recipe or RECIPE
    cfg = model_cfg or MODEL
    with seeded(recipe.seed):
        model = build_model(cfg)
    data = _pyramid_tokens("train")

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        total, count = 0.0, 0
        for r, tok in zip(RESOLUTIONS, batch, strict=True):
            logits = teacher_forced_logits(m, tok, r)  # type: ignore[arg-type]
            total = total + F.cross_entropy(logits.reshape(-1, LEVELS), tok.reshape(-1), reduction="sum")
            count += tok.numel()
        return total / count

    log.info("training pixelcnn: %d parameters, recipe %s", n_params(model), recipe)
    ema, stats = fit_model(model, data, loss_fn, recipe, log_every=250)
    test = _pyramid_tokens("test")
    with torch.no_grad():
        per_res = {str(r): round(bits_per_dim(ema, tok, r).mean().item(), 4)  # type: ignore[arg-type]
                   for r, tok in zip(RESOLUTIONS, test, strict=True)}
    meta = {**stats, "method": "pixelcnn", "model": cfg.to_dict(), "n_params": n_params(ema),
            "final_loss": round(stats["final_loss"], 4), "test_nll_bits_per_dim": per_res[str(SIDE)],
            "test_bits_per_token_by_resolution": per_res}
    path = save_checkpoint("pixelcnn", ema.state_dict(), meta, directory=out_dir)
    log.info("pixelcnn: test NLL %.4f bits/dim at 8×8 (%s); %.0fs; wrote %s",
             per_res[str(SIDE)], per_res, stats["train_seconds"], path)
    return path

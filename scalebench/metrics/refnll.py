"""Reference NLL of samples ("generative perplexity"): bits/dim under a separate reference AR model.

Text-diffusion papers report the perplexity of generated text under a strong reference AR
model (Gen PPL). Here the reference is a causal transformer over the 64 grey levels of an
8×8 image in raster order, trained by `train()` on the `features` split, which no generator
sees, so every image a generator could copy is as unseen by the judge as the real data behind
the floor (`floor.py` draws it from `train` ∪ `reference`); a judge trained on the generators'
split would score a generator that returns training images verbatim "better" than real data.
It is **not** a swept generator, nor any generator's checkpoint (a model would then score its
own samples): `zoo/refnet.safetensors`. Low is better, but a collapsed generator also scores
low, so it is always reported next to `diversity` and recall (and `scalebench.flags` flags collapse).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

REFERENCE = "refnet"
"""Checkpoint of the reference likelihood model (part of every point's identity)."""
TRAIN_SPLIT = "features"
"""The only split the reference model learns from (the generators never see it)."""
HELD_OUT = ("train", "reference")
"""Splits the reference model never sees: its held-out NLL, and the pool of its data floor."""
_LOADED: dict[tuple[str, str], Any] = {}


def model_config() -> Any:
    from scalebench.data.digits import LEVELS, SIDE
    from scalebench.methods.nets.transformer import TransformerConfig

    return TransformerConfig(vocab_size=LEVELS, n_positions=SIDE * SIDE, n_cond=1, d_model=64, n_layers=4,
                             n_heads=4, mlp_ratio=4, dropout=0.3)


def recipe() -> Any:
    from scalebench.training import Recipe

    # 397 images (`features`): dropout 0.3 and weight decay 0.1 over 600 steps held out 2.00 bits/dim
    # (own split 1.87); dropout 0.1 / decay 0.01 overfit (2.04 held out, 1.60 own split)
    return Recipe(steps=600, batch_size=64, lr=3e-3, weight_decay=0.1, warmup=100, grad_clip=1.0,
                  ema=0.995, seed=1, threads=2)


def bits_per_dim(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Per-example exact NLL in bits per token of (B, 64) raster tokens (teacher forcing)."""
    b, d = tokens.shape
    pos = torch.arange(d - 1, device=tokens.device)
    cond = torch.zeros(b, dtype=torch.long, device=tokens.device)
    from scalebench.methods.samplers.autoregressive import bits_from_logits

    return bits_from_logits(model(tokens[:, :-1], pos=pos, cond=cond), tokens)  # row i predicts token i


def reference_model(device: str = "cpu") -> Any:
    """The reference transformer on `device`, loaded once per process and checkpoint hash."""
    from scalebench.methods.nets.transformer import CausalTransformer, TransformerConfig
    from scalebench.zoo import checkpoint_hash, load_module

    key = (device, checkpoint_hash(REFERENCE))
    if key not in _LOADED:
        _LOADED[key] = load_module(REFERENCE, lambda m: CausalTransformer(TransformerConfig(**m["model"])), device)[0]
    return _LOADED[key]


@torch.no_grad()
def reference_nll(x: torch.Tensor, device: str = "cpu", chunk: int = 4096) -> torch.Tensor:
    """Per-example bits/dim of canonical 8×8 images (quantised first) under the reference model."""
    from scalebench.data.digits import quantise, to_tokens

    model = reference_model(device)
    tokens = to_tokens(quantise(x.to(device).float()))
    if not len(tokens):
        return torch.zeros(0, device=device)
    return torch.cat([bits_per_dim(model, tokens[i:i + chunk]) for i in range(0, len(tokens), chunk)])


@torch.no_grad()
def ref_nll(samples: torch.Tensor, device: str = "cpu", dataset: Any = None) -> float:
    """Mean bits/dim of canonical samples (quantised to the dataset grid) under the reference model."""
    x = samples.detach().float()
    if dataset is not None:
        x = dataset.quantise(x)
    return float(reference_nll(x, device).double().mean())


def held_out_nll(model: Any) -> dict[str, float]:
    """Mean bits/dim of each split the model never saw (what `train()` records)."""
    from scalebench.data.digits import Digits

    ds = Digits()
    with torch.no_grad():
        return {s: round(float(bits_per_dim(model, ds.tokens(s)).mean()), 4) for s in HELD_OUT}


def train(recipe_: Any = None, out_dir: Path | None = None) -> Path:
    """Train the reference model on `TRAIN_SPLIT` only; its held-out bits/dim go in its metadata."""
    from scalebench.data.digits import Digits
    from scalebench.methods.nets.transformer import CausalTransformer, n_params
    from scalebench.training import fit_model, seeded
    from scalebench.zoo import save_checkpoint

    rcp = recipe_ or recipe()
    cfg = model_config()
    with seeded(rcp.seed):
        model = CausalTransformer(cfg)
    ds = Digits()

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        return bits_per_dim(m, batch[0]).mean() * math.log(2)  # nats per token

    log.info("training the reference likelihood model: %d parameters, %s", n_params(model), rcp)
    ema, stats = fit_model(model, ds.tokens(TRAIN_SPLIT), loss_fn, rcp, log_every=250)
    held = held_out_nll(ema)
    with torch.no_grad():
        own = round(float(bits_per_dim(ema, ds.tokens(TRAIN_SPLIT)).mean()), 4)
    meta = {**stats, "model": cfg.to_dict(), "n_params": n_params(ema), "split": TRAIN_SPLIT,
            "dataset": ds.fingerprint(), "own_split_nll_bits_per_dim": own,
            "held_out_nll_bits_per_dim": held, "final_loss": round(stats["final_loss"], 4)}
    path = save_checkpoint(REFERENCE, ema.state_dict(), meta, directory=out_dir)
    log.info("reference model: held-out %s bits/dim (own split %.4f); %.0fs; wrote %s", held, own,
             stats["train_seconds"], path)
    _LOADED.clear()
    return path


def score(x: torch.Tensor, dataset: Any, device: str, names: list[str]) -> dict[str, float]:
    """The registry's entry for `ref_nll` (`scalebench.metrics.METRICS`)."""
    return {"ref_nll": ref_nll(x, device=device, dataset=dataset)}

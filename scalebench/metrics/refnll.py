"""Reference NLL of samples ("generative perplexity"): bits/dim under the exact 8×8 GPT.

Text-diffusion papers report the perplexity of generated text under a strong reference AR
model (Gen PPL); here the reference is the project's own exact-likelihood GPT at full 8×8
resolution. Low is better, but a collapsed generator also scores low, so it is always
reported next to `diversity`.
"""

from __future__ import annotations

from typing import Any

import torch

REFERENCE = "gpt"
"""Checkpoint of the reference likelihood model. It is still the `gpt` generator's own weights:
a separate reference model trained on the generator-training split replaces it (issue 8)."""
_LOADED: dict[tuple[str, str], Any] = {}


def reference_model(device: str = "cpu") -> Any:
    """The reference AR transformer on `device`, loaded once per process and checkpoint hash."""
    from scalebench.methods.gpt import build_model
    from scalebench.methods.nets.transformer import TransformerConfig
    from scalebench.zoo import checkpoint_hash, load_module

    key = (device, checkpoint_hash(REFERENCE))
    if key not in _LOADED:
        _LOADED[key] = load_module(REFERENCE, lambda m: build_model(TransformerConfig(**m["model"])), device)[0]
    return _LOADED[key]


@torch.no_grad()
def reference_nll(x: torch.Tensor, device: str = "cpu", chunk: int = 4096) -> torch.Tensor:
    """Per-example bits/dim of canonical 8×8 images (quantised first) under the reference model."""
    from scalebench.data.digits import SIDE, quantise, to_tokens
    from scalebench.methods.gpt import bits_per_dim

    model = reference_model(device)
    tokens = to_tokens(quantise(x.to(device).float()))
    if not len(tokens):
        return torch.zeros(0, device=device)
    return torch.cat([bits_per_dim(model, tokens[i:i + chunk], SIDE) for i in range(0, len(tokens), chunk)])


@torch.no_grad()
def ref_nll(samples: torch.Tensor, device: str = "cpu", dataset: Any = None) -> float:
    """Mean bits/dim of canonical samples (quantised to the dataset grid) under the reference GPT."""
    x = samples.detach().float()
    if dataset is not None:
        x = dataset.quantise(x)
    else:
        from scalebench.data.digits import quantise

        x = quantise(x)
    return float(reference_nll(x, device).double().mean())

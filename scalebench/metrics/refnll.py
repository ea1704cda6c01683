"""Reference NLL of samples ("generative perplexity"): bits/dim under the exact 8×8 GPT.

Text-diffusion papers report the perplexity of generated text under a strong reference AR
model (Gen PPL); here the reference is the project's own exact-likelihood GPT at full 8×8
resolution. Low is better, but a collapsed generator also scores low, so it is always
reported next to `diversity`.
"""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def ref_nll(samples: torch.Tensor, device: str = "cpu", dataset: Any = None) -> float:
    """Mean bits/dim of canonical samples (quantised to the dataset grid) under the reference GPT."""
    from scalebench.methods.gpt import reference_nll  # lazy: loads the GPT only when needed

    x = samples.detach().float()
    if dataset is not None:
        x = dataset.quantise(x)
    else:
        from scalebench.data.digits import quantise

        x = quantise(x)
    return float(reference_nll(x, device).double().mean())

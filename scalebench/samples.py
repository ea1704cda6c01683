"""The sample contract: what a generator's output must be before any metric looks at it.

A benchmark that scores garbage as data is worse than one that fails, so the runner and
`scalebench check` both call `check_samples`; a violation names the rule and the generator.
"""

from __future__ import annotations

from typing import Any

import torch

RANGE_TOLERANCE = 1e-4
"""Float error allowed outside the declared range (a sigmoid or a division may overshoot by ulps)."""


class SampleContractError(ValueError):
    """Samples that are not the dataset's canonical form; the message names the rule."""


def check_samples(x: Any, n: int, form: Any, generator: str) -> None:
    """Raise SampleContractError unless `x` is exactly n samples of the canonical `form`."""
    where = f"{generator}: samples"
    if not isinstance(x, torch.Tensor):
        raise SampleContractError(f"{where} are a {type(x).__name__}, not a torch.Tensor (rule: tensor)")
    if x.dim() == 0 or x.shape[0] != n:
        got = x.shape[0] if x.dim() else "a scalar"
        raise SampleContractError(f"{where}: asked for {n} rows, got {got} (rule: row count)")
    if tuple(x.shape[1:]) != tuple(form.shape):
        raise SampleContractError(f"{where} have shape {tuple(x.shape[1:])} per sample; the dataset's "
                                  f"canonical form is {tuple(form.shape)} (rule: shape)")
    if form.dtype == "float":
        if not torch.is_floating_point(x):
            raise SampleContractError(f"{where} have dtype {x.dtype}; the canonical form is floating "
                                      f"point in [{form.low:g}, {form.high:g}] (rule: floating dtype)")
        finite = torch.isfinite(x)
        if not finite.all():
            bad = int((~finite).flatten(1).any(1).sum()) if x.dim() > 1 else int((~finite).sum())
            raise SampleContractError(f"{where}: {bad} of {n} contain NaN/Inf (rule: finite)")
        lo, hi = float(x.min()) if n else form.low, float(x.max()) if n else form.high
        if lo < form.low - RANGE_TOLERANCE or hi > form.high + RANGE_TOLERANCE:
            raise SampleContractError(f"{where} span [{lo:.4g}, {hi:.4g}], outside the declared range "
                                      f"[{form.low:g}, {form.high:g}] (rule: range)")
    elif form.dtype == "long":
        if torch.is_floating_point(x) or x.dtype == torch.bool:
            raise SampleContractError(f"{where} have dtype {x.dtype}; the canonical form is integer token ids "
                                      "(rule: integer dtype)")
        if form.levels is not None and n and (int(x.min()) < 0 or int(x.max()) >= form.levels):
            raise SampleContractError(f"{where} hold ids outside 0..{form.levels - 1} (rule: range)")

"""Numbers as the generated docs print them: a few significant digits, a typographic minus, and a
mean ± sd whose mean is rounded where its sd says the digits stop meaning anything.

Plain functions of floats (no locale, no timestamps), so the same records always give the same text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MISSING = "—"


def _minus(text: str) -> str:
    """'-0.00' → '0.00', '-1.2' → '−1.2' (U+2212, as the prose writes it)."""
    if text.startswith("-"):
        body = text[1:]
        return body if not any(c in "123456789" for c in body.split("e")[0]) else "−" + body
    return text


def finite(x: object) -> bool:
    return isinstance(x, int | float | np.floating | np.integer) and math.isfinite(float(x))  # type: ignore[arg-type]


def sig(x: object, digits: int = 3) -> str:
    """`digits` significant digits, fixed point (integers from 10**(digits-1) up; scientific below 1e-3)."""
    if not finite(x):
        return MISSING
    v = float(x)  # type: ignore[arg-type]
    if v == 0:
        return "0"
    e = math.floor(math.log10(abs(v)))
    if e >= digits - 1:
        return _minus(f"{v:.0f}")
    if e < -3:
        return _minus(f"{v:.{digits - 1}e}")
    return _minus(f"{v:.{digits - 1 - e}f}")


def decimals_of(sd: float) -> int:
    """Decimal places that give `sd` two significant digits (0 for sd ≥ 10)."""
    return max(0, 1 - math.floor(math.log10(abs(sd))))


def pm(values: Sequence[float], scale: float = 1.0) -> str:
    """'mean ± sd' over `values` (sd with ddof = 1, two significant digits; the mean to the same
    decimal place); one value prints alone, identical values as 'mean ± 0'."""
    vals = [float(v) * scale for v in values if finite(v)]
    if not vals:
        return MISSING
    mean = float(np.mean(vals))
    if len(vals) == 1:
        return sig(mean)
    sd = float(np.std(vals, ddof=1))
    return pm_of(mean, sd)


def pm_of(mean: float, sd: float) -> str:
    """A given mean and sd (e.g. a data floor's) as 'mean ± sd': the sd to two significant digits, the
    mean to the same decimal place but never past four significant digits."""
    if not finite(mean):
        return MISSING
    if not finite(sd) or sd == 0:
        return f"{sig(mean, 4)} ± 0" if finite(sd) else sig(mean, 4)
    d_sd = min(decimals_of(sd), 12)
    d_mean = d_sd if mean == 0 else min(d_sd, max(0, 3 - math.floor(math.log10(abs(mean)))))
    return f"{_minus(f'{mean:.{d_mean}f}')} ± {sd:.{d_sd}f}"


def p_value(p: float) -> str:
    """A p-value: two significant digits, '< 0.001' below that."""
    if not finite(p):
        return MISSING
    return "< 0.001" if p < 1e-3 else sig(p, 2)


def mean_text(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> str:
    vals = [float(v) * scale for v in values if finite(v)]
    return sig(float(np.mean(vals)), digits) if vals else MISSING


def count_text(values: Sequence[float]) -> str:
    """A count that should be one integer (NFE): that integer, else the mean (data-dependent counts)."""
    vals = [float(v) for v in values if finite(v)]
    if not vals:
        return MISSING
    if len(set(vals)) == 1 and vals[0].is_integer():
        return str(int(vals[0]))
    return f"{sig(float(np.mean(vals)))} (mean)"

"""The compute-optimal (S, K) of a row that varies both axes, per budget of total compute.

For budgets on a log grid (factors of 2 from the smallest to the largest measured compute, and the
largest), among the allocations that fit in the budget (compute ≤ B):

- **measured**: the measured point of best mean quality; the points a paired t-test over replicates
  cannot tell from it (`tied`); and the two one-axis strategies — the best point with K at its
  smallest value (all the budget on S: the "S edge") and with S at its smallest (the "K edge");
- **smooth**: the same on a fitted surface — log quality (the quality itself for a metric that takes
  values ≤ 0) and log compute, each a polynomial in (log S, log K): linear terms, their product where
  both vary, squares of an axis measured at ≥ 3 values, as many terms as the points allow — optimised
  on a dense grid inside the measured box (no extrapolation), with jackknife-t intervals over
  replicates for the optimal S and K.

**Spend**, per budget: "S and K" when the best allocation moves both axes and beats both edges (paired
one-sided t, p < 0.05); else "S" or "K" when one edge beats the other (paired two-sided t,
p < 0.05); else "either" (the data cannot tell the two one-axis strategies apart). One replicate:
"untested", with the better strategy on the mean in `lean`. The tests are per budget and
unadjusted (descriptive); benchmarks/scaling_calibration.py measures how often the rule recovers the
known optimum and the known spend on synthetic surfaces.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from scalebench.scaling.curves import MEASURES
from scalebench.verdict.stats import t_quantile, t_sf

TEST_ALPHA = 0.05
LEVEL = 0.95
BOTH, ON_S, ON_K, EITHER, UNTESTED, NEITHER = "S and K", "S", "K", "either", "untested", "—"
DENSE = 81  # points per axis of the smooth fit's search grid


@dataclass(frozen=True)
class Surface:
    """A row's S × K grid: per point (J,) S, K, compute; quality per replicate × point (R, J; complete rows)."""

    S: np.ndarray
    K: np.ndarray
    compute: np.ndarray
    q: np.ndarray
    better: Literal["lower", "higher"] = "lower"

    def __post_init__(self) -> None:
        for name in ("S", "K", "compute"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        q = np.asarray(self.q, dtype=float).reshape(-1, len(self.S))
        object.__setattr__(self, "q", q[~np.any(np.isnan(q), axis=1)])
        if self.better not in ("lower", "higher"):
            raise ValueError(f"better={self.better!r}; use 'lower' or 'higher'")

    @property
    def z(self) -> np.ndarray:
        """Quality oriented so that lower is better."""
        return self.q if self.better == "lower" else -self.q


@dataclass(frozen=True)
class Choice:
    """The allocation at one budget (NaN / "" where not defined)."""

    budget: float
    S: int
    K: int
    compute: float
    q: float
    q_lo: float
    q_hi: float
    tied: str  # "S×K" of the measured points not distinguishable from the best, ";"-separated
    s_edge: str
    k_edge: str
    q_s_edge: float
    q_k_edge: float
    spend: str
    lean: str  # the better strategy on the means (also with one replicate)
    p: float  # the p-value behind `spend`
    S_fit: float = math.nan
    K_fit: float = math.nan
    S_fit_lo: float = math.nan
    S_fit_hi: float = math.nan
    K_fit_lo: float = math.nan
    K_fit_hi: float = math.nan
    q_fit: float = math.nan
    spend_fit: str = ""
    lean_fit: str = ""
    p_fit: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paired_p(d: np.ndarray, two_sided: bool) -> float:
    """p of mean(d) > 0 (one-sided) or ≠ 0 (two-sided) by a paired t-test; NaN without a spread."""
    n = len(d)
    if n < 2:
        return math.nan
    sd = float(d.std(ddof=1))
    if not sd > 1e-12 * max(1.0, float(np.abs(d).max())):
        return math.nan if float(np.abs(d).max()) == 0 else (0.0 if two_sided or d.mean() > 0 else 1.0)
    t = float(d.mean()) / (sd / math.sqrt(n))
    return min(1.0, 2 * t_sf(abs(t), n - 1)) if two_sided else t_sf(t, n - 1)


def decide_spend(z_s: np.ndarray | None, z_k: np.ndarray | None, z_opt: np.ndarray, interior: bool,
            replicated: bool) -> tuple[str, str, float]:
    """(spend, lean, p) from per-replicate oriented values of the S edge, the K edge and the optimum."""
    edges = [(e, z) for e, z in ((ON_S, z_s), (ON_K, z_k)) if z is not None]
    best_edge = min(edges, key=lambda ez: float(ez[1].mean())) if edges else None
    if interior and best_edge is not None and float(z_opt.mean()) < float(best_edge[1].mean()):
        lean = BOTH
    elif len(edges) == 2 and float(z_s.mean()) != float(z_k.mean()):  # type: ignore[union-attr]
        lean = ON_S if float(z_s.mean()) < float(z_k.mean()) else ON_K  # type: ignore[union-attr]
    else:
        lean = best_edge[0] if best_edge is not None and len(edges) == 1 else EITHER
    if not replicated:
        return UNTESTED, lean, math.nan
    if lean == BOTH:
        p = max(_paired_p(z - z_opt, two_sided=False) for _, z in edges)
        if math.isfinite(p) and p < TEST_ALPHA:
            return BOTH, lean, p
    if len(edges) == 2:
        p = _paired_p(z_k - z_s, two_sided=True)  # type: ignore[operator]
        if math.isfinite(p) and p < TEST_ALPHA:
            return (ON_S if float((z_k - z_s).mean()) > 0 else ON_K), lean, p  # type: ignore[operator]
        return EITHER, lean, p
    return EITHER, lean, math.nan


def budgets(compute: np.ndarray) -> np.ndarray:
    """Factors of 2 from twice the smallest compute up to the largest, and the largest."""
    lo, hi = float(np.min(compute)), float(np.max(compute))
    if not (lo > 0 and hi > lo):
        return np.array([hi])
    k = np.arange(1, int(math.floor(math.log2(hi / lo) + 1e-9)) + 1)
    out = lo * 2.0 ** k
    return np.unique(np.append(out[out < hi * (1 - 1e-9)], hi))


def _basis(u: np.ndarray, v: np.ndarray, n_s: int, n_k: int, n_points: int) -> np.ndarray:
    cols = [np.ones_like(u)]
    if n_s >= 2:
        cols.append(u)
    if n_k >= 2:
        cols.append(v)
    extra = []
    if n_s >= 2 and n_k >= 2:
        extra.append(u * v)
    if n_s >= 3:
        extra.append(u * u)
    if n_k >= 3:
        extra.append(v * v)
    for e in extra:
        if len(cols) < n_points:
            cols.append(e)
    return np.stack(cols, axis=1)


@dataclass(frozen=True)
class _Smooth:
    u: np.ndarray  # dense grid (flattened)
    v: np.ndarray
    g: np.ndarray  # fitted oriented response per replicate-set: (sets, dense)
    logc: np.ndarray
    s_range: tuple[float, float]
    k_range: tuple[float, float]


def _smooth(s: Surface) -> _Smooth | None:
    """Polynomial fits of the oriented log quality (each jackknife set) and log compute."""
    u, v = np.log(s.S), np.log(s.K)
    n_s, n_k = len(np.unique(u)), len(np.unique(v))
    X = _basis(u, v, n_s, n_k, len(u))
    if np.linalg.matrix_rank(X) < X.shape[1]:
        return None
    log_scale = bool(np.all(s.q > 0))
    resp = (np.log(s.q) if log_scale else s.q) * (1.0 if s.better == "lower" else -1.0)
    sets = [resp.mean(axis=0)] + ([np.delete(resp, r, axis=0).mean(axis=0) for r in range(len(resp))]
                                  if len(resp) >= 2 else [])
    uu, vv = np.meshgrid(np.linspace(u.min(), u.max(), DENSE if n_s > 1 else 1),
                         np.linspace(v.min(), v.max(), DENSE if n_k > 1 else 1), indexing="ij")
    D = _basis(uu.ravel(), vv.ravel(), n_s, n_k, len(u))
    coef = np.linalg.lstsq(X, np.stack(sets, axis=1), rcond=None)[0]
    ccoef = np.linalg.lstsq(X, np.log(s.compute), rcond=None)[0]
    return _Smooth(uu.ravel(), vv.ravel(), (D @ coef).T, D @ ccoef, (float(s.S.min()), float(s.S.max())),
                   (float(s.K.min()), float(s.K.max())))


def _smooth_choice(sm: _Smooth, budget: float) -> dict[str, Any]:
    ok = sm.logc <= math.log(budget) + 1e-9
    if not ok.any():
        return {}
    u0, v0 = sm.u.min(), sm.v.min()
    on_s, on_k = ok & np.isclose(sm.v, v0), ok & np.isclose(sm.u, u0)

    def pick(g: np.ndarray, mask: np.ndarray) -> int:
        return int(np.flatnonzero(mask)[np.argmin(g[mask])])

    opts = [pick(g, ok) for g in sm.g]
    main = opts[0]

    def box(rng: tuple[float, float], x: float) -> float:  # back to S or K, inside the measured range
        return float(np.clip(math.exp(x), *rng))

    out: dict[str, Any] = dict(S_fit=box(sm.s_range, sm.u[main]), K_fit=box(sm.k_range, sm.v[main]),
                               q_fit=float(sm.g[0][main]))
    loo = opts[1:]
    if len(loo) >= 2:
        for name, coord, rng in (("S", sm.u, sm.s_range), ("K", sm.v, sm.k_range)):
            vals = np.array([coord[i] for i in loo])
            se = math.sqrt((len(loo) - 1) / len(loo) * float(((vals - vals.mean()) ** 2).sum()))
            half = t_quantile(0.5 + LEVEL / 2, len(loo) - 1) * se
            out[f"{name}_fit_lo"], out[f"{name}_fit_hi"] = box(rng, coord[main] - half), box(rng, coord[main] + half)
    # spend on the smooth surface: per jackknife set, the edges' and the optimum's values → pseudo-replicates
    z_s = np.array([g[pick(g, on_s)] for g in sm.g]) if on_s.any() and len(np.unique(sm.u)) > 1 else None
    z_k = np.array([g[pick(g, on_k)] for g in sm.g]) if on_k.any() and len(np.unique(sm.v)) > 1 else None
    z_o = np.array([g[o] for g, o in zip(sm.g, opts, strict=True)])
    interior = sm.u[main] > u0 + 1e-9 and sm.v[main] > v0 + 1e-9
    if len(loo) >= 2:  # jackknife pseudo-values make the leave-one-out sets into a t-test over replicates
        r = len(loo)

        def pseudo(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else r * x[0] - (r - 1) * x[1:]

        spend, lean, p = decide_spend(pseudo(z_s), pseudo(z_k), pseudo(z_o), interior, True)  # type: ignore[arg-type]
    else:
        spend, lean, p = decide_spend(None if z_s is None else z_s[:1], None if z_k is None else z_k[:1], z_o[:1],
                                 interior, False)
    out.update(spend_fit=spend, lean_fit=lean, p_fit=p)
    return out


def _label(s: float, k: float) -> str:
    return f"{int(s)}×{int(k)}"


def allocate(s: Surface, budget_grid: np.ndarray | None = None, smooth: bool = True) -> list[Choice]:
    """The allocation at every budget of `budget_grid` (default `budgets(s.compute)`) that affords two points."""
    z = s.z
    if z.shape[0] == 0 or len(s.S) < 2:
        return []
    zbar = z.mean(axis=0)
    r = z.shape[0]
    sm = _smooth(s) if smooth else None
    s_min, k_min = float(s.S.min()), float(s.K.min())
    out = []
    for b in (budgets(s.compute) if budget_grid is None else np.asarray(budget_grid, dtype=float)):
        ok = np.flatnonzero(s.compute <= b * (1 + 1e-9))
        if len(ok) < 2:
            continue
        j = int(ok[np.argmin(zbar[ok])])
        on_s, on_k = ok[s.K[ok] == k_min], ok[s.S[ok] == s_min]
        js = int(on_s[np.argmin(zbar[on_s])]) if len(on_s) and len(np.unique(s.S)) > 1 else None
        jk = int(on_k[np.argmin(zbar[on_k])]) if len(on_k) and len(np.unique(s.K)) > 1 else None
        interior = s.S[j] > s_min and s.K[j] > k_min
        spend, lean, p = decide_spend(None if js is None else z[:, js], None if jk is None else z[:, jk], z[:, j],
                                 interior, r >= 2)
        tied = [i for i in ok if i == j or (r >= 2 and not (_paired_p(z[:, i] - z[:, j], False) < TEST_ALPHA))]
        sign = 1.0 if s.better == "lower" else -1.0
        q = s.q[:, j]
        lo = hi = math.nan
        if r >= 2 and float(q.std(ddof=1)) > 0:
            half = t_quantile(0.5 + LEVEL / 2, r - 1) * float(q.std(ddof=1)) / math.sqrt(r)
            lo, hi = float(q.mean()) - half, float(q.mean()) + half
        extra = _smooth_choice(sm, float(b)) if sm is not None else {}
        if "q_fit" in extra:  # back to metric units
            g = extra["q_fit"] * sign
            extra["q_fit"] = math.exp(g) if np.all(s.q > 0) else g
        out.append(Choice(
            budget=float(b), S=int(s.S[j]), K=int(s.K[j]), compute=float(s.compute[j]), q=float(q.mean()),
            q_lo=lo, q_hi=hi, tied=";".join(_label(s.S[i], s.K[i]) for i in tied) if r >= 2 else "",
            s_edge="" if js is None else _label(s.S[js], s.K[js]), k_edge="" if jk is None else _label(s.S[jk], s.K[jk]),
            q_s_edge=math.nan if js is None else float(s.q[:, js].mean()),
            q_k_edge=math.nan if jk is None else float(s.q[:, jk].mean()),
            spend=spend, lean=lean, p=p, **extra))
    return out


def surface_of(points: pd.DataFrame, measure: str, better: Literal["lower", "higher"]) -> Surface | None:
    """The Surface of one row's `curves.metric_points`; None when the measure was not recorded."""
    col = MEASURES[measure]
    if col not in points.columns or points.empty:
        return None
    wide = points.groupby(["rep", "S", "K"])["value"].mean().unstack(["S", "K"])
    cost = points.groupby(["S", "K"])[col].median().reindex(wide.columns).to_numpy(dtype=float)
    if not np.all(np.isfinite(cost)) or np.any(cost <= 0):
        return None
    sk = np.array(list(wide.columns), dtype=float)
    return Surface(sk[:, 0], sk[:, 1], cost, wide.to_numpy(dtype=float), better)


def summary(choices: list[Choice], unit: str = "NFE", fit: bool = False) -> str:
    """'NFE ≤ 4: K; ≤ 16: S; ≤ 64: either' — consecutive budgets with the same word merged."""
    parts: list[tuple[float, str]] = []
    for c in choices:
        word = c.spend_fit if fit else c.spend
        if word == UNTESTED:
            word = f"{c.lean_fit if fit else c.lean}?"
        if parts and parts[-1][1] == word:
            parts[-1] = (c.budget, word)
        else:
            parts.append((c.budget, word))
    return "; ".join(f"{unit} ≤ {b:.3g}: {w}" for b, w in parts)

"""One scaling curve: quality against inference compute as a power law with an irreducible term.

In the "better is lower" orientation z = y (z = −y for a metric where higher is better) the model is

    z(C) = z∞ + a·(C / C₀)^(−α),   a ≥ 0,  α ∈ [ALPHA_MIN, ALPHA_MAX],  z∞ ≥ floor − FLOOR_Z·floor_sd

(C₀ = the smallest compute measured, so `a` is the reducible gap there). z∞ − floor is the
irreducible gap: 0 for a curve that reaches the data, > 0 for one that flattens above it. The
asymptote is free, so α does not depend on where the floor is; the bound keeps it out of the region
real data cannot reach. Fitted by weighted least squares: for a fixed α the model is linear in
(z∞, a), so α is found on a grid and refined by golden section on the profile (variable projection),
with the weights of a noise model fitted to the replicates (below).

**Noise.** One replicate's value at a point has variance s²·ȳ² + floor_sd²: a relative part s
(estimated from the replicates' spread at points well above the floor, after removing each
replicate's own shift along the curve, which the free asymptote and amplitude absorb) and the
floor's additive spread (the records' `<metric>_floor_sd`, the spread of real data's score at n).

**Decision**, on the mean curve over replicates (test level `TEST_ALPHA` = 0.05):

- not fitted: fewer than 3 compute values; every point inside the floor band; or no change beyond
  the noise (a constant fits: χ²/F test);
- no power law: the lack-of-fit test rejects the fit (F = χ²/df against the replicates' noise,
  df = points − free parameters; a parameter at its bound is not free), with the shape that broke
  it: turns (improves, then gets worse), worsens, steepens (the log-log slope grows: the curve
  falls faster late than any power law reaching the floor), or a poor fit;
- power law: α, with a 95 % interval; with 3 points and 3 free parameters the fit is exact and not
  testable (said so in the reason);
- untested: one replicate — α without an interval, the fit not tested (as the table's verdicts).

**Interval.** Jackknife over replicates (leave one replicate out, refit the mean of the rest) on
log α, with a t quantile on R − 1 degrees of freedom: the estimator's spread over replicates, which a
percentile bootstrap over 2–3 replicates understates (benchmarks/scaling_calibration.py measures
both). The compute at which the fitted curve enters the floor band (z ≤ floor + FLOOR_Z·sd) gets the
same interval on its log.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from scalebench.verdict.stats import t_quantile

ALPHA_MIN, ALPHA_MAX = 0.02, 10.0
GRID = np.geomspace(ALPHA_MIN, ALPHA_MAX, 97)
FLOOR_Z = 2.0  # the floor band: floor ± 2 sd (as the table's and the charts')
FAR_Z = 4.0  # points further than this many floor sds from the floor estimate the relative noise
TEST_ALPHA = 0.05
LEVEL = 0.95
S_DEFAULT = 0.05  # relative noise used for the weights when one replicate gives no estimate
POWER_LAW, NO_LAW, UNTESTED, NOT_FITTED = "power law", "no power law", "untested", "not fitted"
OUTCOMES = (POWER_LAW, NO_LAW, UNTESTED, NOT_FITTED)
Interval = Literal["jackknife", "bootstrap"]


@dataclass(frozen=True)
class Curve:
    """One curve: compute values (I,) and the metric per replicate × compute value (R, I; NaN = missing)."""

    compute: np.ndarray
    q: np.ndarray
    better: Literal["lower", "higher"] = "lower"
    floor: float = math.nan
    floor_sd: float = 0.0

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise ValueError(f"better={self.better!r}; use 'lower' or 'higher' (from METRICS[metric].better)")
        c = np.asarray(self.compute, dtype=float)
        q = np.asarray(self.q, dtype=float).reshape(-1, len(c))
        object.__setattr__(self, "compute", c)
        object.__setattr__(self, "q", q)


@dataclass(frozen=True)
class LawFit:
    """A fitted curve and its decision; NaN where not defined. Metric units unless named otherwise."""

    outcome: str
    reason: str
    alpha: float = math.nan
    alpha_lo: float = math.nan
    alpha_hi: float = math.nan
    asymptote: float = math.nan  # z∞ back in metric units
    asymptote_lo: float = math.nan
    asymptote_hi: float = math.nan
    amplitude: float = math.nan  # a ≥ 0: the reducible gap at the smallest compute (oriented)
    irreducible: float = math.nan  # (asymptote − floor), oriented: > 0 = flattens worse than the data
    p_fit: float = math.nan  # lack-of-fit p (NaN: not testable)
    r2: float = math.nan  # weighted R² of the mean curve
    noise_rel: float = math.nan  # s, the relative noise per replicate
    compute_at_floor: float = math.nan  # where the fit enters the floor band (inf: never; NaN: no floor)
    compute_at_floor_lo: float = math.nan
    compute_at_floor_hi: float = math.nan
    measured_at_floor: float = math.nan  # the first measured compute whose mean lies in (or below) the band
    n_points: int = 0
    n_replicates: int = 0
    c0: float = math.nan
    sign: float = 1.0
    compute: tuple[float, ...] = field(default=())
    mean: tuple[float, ...] = field(default=())

    @property
    def has_alpha(self) -> bool:
        return math.isfinite(self.alpha)

    def predict(self, compute: np.ndarray | float) -> np.ndarray:
        """The fitted metric at `compute` (NaN without a fit)."""
        c = np.asarray(compute, dtype=float)
        if not (math.isfinite(self.alpha) and math.isfinite(self.amplitude)):
            return np.full(c.shape, math.nan)
        z_inf = self.sign * self.asymptote
        return self.sign * (z_inf + self.amplitude * (c / self.c0) ** (-self.alpha))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compute"], d["mean"] = list(self.compute), list(self.mean)
        return d


@dataclass(frozen=True)
class _Fit:
    alpha: float
    z_inf: float
    a: float
    chi2: float
    alpha_at_bound: bool
    z_inf_at_bound: bool

    @property
    def free(self) -> int:
        if self.a <= 0:
            return 1
        return 3 - int(self.alpha_at_bound) - int(self.z_inf_at_bound)


def _solve(alphas: np.ndarray, x: np.ndarray, z: np.ndarray, w: np.ndarray, lb: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each α: the best (z∞, a) under a ≥ 0, z∞ ≥ lb by weighted least squares; (sse, z∞, a, z∞ at lb)."""
    X = np.exp(-np.outer(alphas, x))  # (G, I): (C/C₀)^(−α)
    sw, sz = w.sum(), (w * z).sum()
    sx, sxx, sxz = X @ w, (X * X) @ w, X @ (w * z)
    det = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        b1 = np.where(det > 0, (sw * sxz - sx * sz) / det, 0.0)
    b0 = (sz - b1 * sx) / sw
    cands = []
    ok = (b1 >= 0) & (b0 >= lb)
    cands.append((np.where(ok, b0, np.nan), np.where(ok, b1, np.nan), np.zeros_like(ok)))
    if math.isfinite(lb):  # asymptote on its bound
        with np.errstate(divide="ignore", invalid="ignore"):
            b1l = np.maximum(0.0, (X @ (w * (z - lb))) / sxx)
        cands.append((np.full_like(b1l, lb), b1l, np.ones_like(ok)))
    c0 = max(sz / sw, lb)  # flat
    cands.append((np.full(len(alphas), c0), np.zeros(len(alphas)), np.full(len(alphas), c0 == lb)))
    best_sse = np.full(len(alphas), np.inf)
    best = [np.zeros(len(alphas)), np.zeros(len(alphas)), np.zeros(len(alphas), dtype=bool)]
    for b0c, b1c, at in cands:
        r = z[None, :] - b0c[:, None] - b1c[:, None] * X
        sse = np.where(np.isnan(b0c), np.inf, (w[None, :] * r * r).sum(axis=1))
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        best[0] = np.where(better, b0c, best[0])
        best[1] = np.where(better, b1c, best[1])
        best[2] = np.where(better, at.astype(bool), best[2])
    return best_sse, best[0], best[1], best[2]


def _fit(x: np.ndarray, z: np.ndarray, w: np.ndarray, lb: float) -> _Fit:
    """The weighted profile fit of one mean curve (x = log(C/C₀)): α on a log grid, refined twice on a
    finer grid between the best point's neighbours (final step ~1e-4 in log α)."""
    grid, alpha = GRID, float(GRID[0])
    for _ in range(3):
        k = int(np.argmin(_solve(grid, x, z, w, lb)[0]))
        alpha = float(grid[k])
        grid = np.geomspace(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)], 41)
    sse, b0, b1, at = _solve(np.array([alpha]), x, z, w, lb)
    at_bound = alpha <= GRID[0] * 1.0001 or alpha >= GRID[-1] / 1.0001
    return _Fit(alpha, float(b0[0]), float(b1[0]), float(sse[0]), bool(at_bound and b1[0] > 0), bool(at[0]))


def _relative_noise(q: np.ndarray, floor: float, floor_sd: float) -> tuple[float, int]:
    """(s, degrees of freedom): relative spread of one replicate at points well above the floor, each
    replicate's own shift along the curve removed (the fit absorbs it)."""
    r = q.shape[0]
    if r < 2:
        return math.nan, 0
    mean = q.mean(axis=0)
    far = np.ones(q.shape[1], bool)
    if math.isfinite(floor) and floor_sd > 0:
        far = np.abs(mean - floor) > FAR_Z * floor_sd
    scale = np.abs(mean[far])
    if far.sum() == 0 or np.any(scale <= 0):
        return 0.0, 0
    d = (q[:, far] - mean[far]) / scale
    if far.sum() >= 2:
        e = d - d.mean(axis=1, keepdims=True)
        df = (r - 1) * (int(far.sum()) - 1)
    else:
        e, df = d, r - 1
    return float(math.sqrt((e * e).sum() / df)), df


def _p_chi2(chi2: float, df: int, df_noise: int) -> float:
    """P(statistic ≥ chi2) for a χ² with `df` whose noise scale was estimated with `df_noise` (F; χ² if 0)."""
    from scipy.special import chdtrc, fdtrc

    if df <= 0:
        return math.nan
    if df_noise > 0:
        return float(fdtrc(df, df_noise, max(chi2, 0.0) / df))
    return float(chdtrc(df, max(chi2, 0.0)))


def _shape(z: np.ndarray, sd_mean: np.ndarray, fit: _Fit) -> str:
    """Why a power law does not fit, in words, from the mean curve (oriented: lower is better)."""
    d = np.diff(z)
    se = np.sqrt(sd_mean[1:] ** 2 + sd_mean[:-1] ** 2)
    down, up = d < -2 * se, d > 2 * se
    if up.any() and down.any():
        first_down = int(np.argmax(down))
        if up[first_down + 1:].any():
            return "turns: improves, then gets worse"
    if up.any() and not down.any():
        return "worsens with compute"
    if fit.a > 0 and (fit.z_inf_at_bound or (fit.alpha_at_bound and fit.alpha <= GRID[0] * 1.0001)):
        return "steepens: the log-log slope grows with compute"
    if up.any():
        return "turns: gets worse, then improves"
    return "poor fit"


def _floor_entry(fit: _Fit, c0: float, top: float) -> float:
    """Compute where z∞ + a(C/C₀)^−α falls to `top` (the band's worse edge); inf when it never does."""
    if fit.a <= 0 or not math.isfinite(top):
        return math.nan
    if fit.z_inf >= top:
        return math.inf
    return c0 * (fit.a / (top - fit.z_inf)) ** (1.0 / fit.alpha)


def _interval(est: float, loo: np.ndarray, level: float) -> tuple[float, float]:
    """Jackknife-t interval: est ± t_{R−1}·se_jack (NaN if any leave-one-out value is undefined)."""
    r = len(loo)
    if r < 2 or not np.all(np.isfinite(loo)) or not math.isfinite(est):
        return math.nan, math.nan
    se = math.sqrt((r - 1) / r * float(((loo - loo.mean()) ** 2).sum()))
    half = t_quantile(0.5 + level / 2, r - 1) * se
    return est - half, est + half


def _percentile(est_fn: Callable[[np.ndarray], float], z: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile bootstrap over replicates, resampled with replacement — the comparison method. Its
    distribution is enumerated exactly (every multiset of R replicates with its multinomial weight:
    3 for R = 2, 10 for R = 3), so no Monte Carlo noise is added."""
    r = z.shape[0]
    vals, weights = [], []
    for combo in itertools.combinations_with_replacement(range(r), r):
        counts = np.bincount(combo, minlength=r)
        vals.append(est_fn(z[list(combo)].mean(axis=0)))
        weights.append(math.factorial(r) / math.prod(math.factorial(int(c)) for c in counts))
    v, wt = np.asarray(vals), np.asarray(weights) / r**r
    if not np.all(np.isfinite(v)):
        return math.nan, math.nan
    order = np.argsort(v)
    cum = np.cumsum(wt[order])
    pick = [int(np.searchsorted(cum, q - 1e-12)) for q in ((1 - level) / 2, (1 + level) / 2)]
    return float(v[order][pick[0]]), float(v[order][min(pick[1], len(v) - 1)])


def _clean(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """Compute sorted ascending (ties merged), replicates with every point measured."""
    c, q = curve.compute, curve.q
    keep = np.isfinite(c) & (c > 0) & ~np.all(np.isnan(q), axis=0)
    c, q = c[keep], q[:, keep]
    q = q[~np.any(np.isnan(q), axis=1)] if q.size else q
    order = np.argsort(c, kind="mergesort")
    c, q = c[order], q[:, order]
    uc = np.unique(c)
    if len(uc) < len(c):
        q = np.stack([q[:, c == v].mean(axis=1) for v in uc], axis=1) if q.size else np.zeros((0, len(uc)))
        c = uc
    return c, q


def fit_curve(curve: Curve, *, interval: Interval = "jackknife", level: float = LEVEL) -> LawFit:
    """Fit the power law to one curve and decide (module docstring)."""
    c, q = _clean(curve)
    sign = 1.0 if curve.better == "lower" else -1.0
    n_i, n_r = len(c), q.shape[0]
    base: dict[str, Any] = dict(n_points=n_i, n_replicates=n_r, sign=sign, compute=tuple(map(float, c)),
                                mean=tuple(map(float, q.mean(axis=0))) if n_r else ())
    if n_i < 3 or n_r == 0:
        return LawFit(NOT_FITTED, f"{n_i} compute value{'s' if n_i != 1 else ''} with every replicate measured: "
                      "a power law with an asymptote needs 3", **base)
    has_floor = math.isfinite(curve.floor)
    fsd = float(curve.floor_sd) if has_floor and math.isfinite(curve.floor_sd) else 0.0
    z = sign * q
    zbar = z.mean(axis=0)
    ybar = q.mean(axis=0)
    fz = sign * curve.floor if has_floor else math.nan
    h = FLOOR_Z * fsd
    lb = fz - h if has_floor else -math.inf
    top = fz + h if has_floor else math.nan
    s, df_noise = _relative_noise(q, curve.floor if has_floor else math.nan, fsd)
    s_w = s if n_r >= 2 else S_DEFAULT
    var1 = (s_w * ybar) ** 2 + fsd**2  # one replicate's variance per point
    tiny = (1e-6 * float(np.abs(ybar).max())) ** 2 + 1e-24
    var1 = np.maximum(var1, tiny)
    w = n_r / var1  # weights of the mean curve
    base.update(noise_rel=s if n_r >= 2 else math.nan, c0=float(c[0]))
    # Satterthwaite: only the relative part of each variance is estimated (df_noise); the floor's is known
    share = float(np.mean((s_w * ybar) ** 2 / var1)) if n_r >= 2 else 0.0
    df_noise = int(min(df_noise / share**2, 10**6)) if share > 0 and df_noise > 0 else 0
    if has_floor:
        inside = np.nonzero(zbar <= top)[0]
        base["measured_at_floor"] = float(c[inside[0]]) if len(inside) else math.inf
        if np.all(np.abs(zbar - fz) <= h):
            return LawFit(NOT_FITTED, "every point inside the floor band: nothing left to scale", **base)
    x = np.log(c / c[0])
    testable = n_r >= 2
    if testable:
        wm = float((w * zbar).sum() / w.sum())
        p_flat = _p_chi2(float((w * (zbar - wm) ** 2).sum()), n_i - 1, df_noise)
        if p_flat >= TEST_ALPHA:
            return LawFit(NOT_FITTED, f"no change beyond the noise (a constant fits, p={p_flat:.2g})", **base)
    fit = _fit(x, zbar, w, lb)
    ss_tot = float((w * (zbar - (w * zbar).sum() / w.sum()) ** 2).sum())
    r2 = 1 - fit.chi2 / ss_tot if ss_tot > 0 else math.nan
    df_lof = n_i - fit.free
    p_fit = _p_chi2(fit.chi2, df_lof, df_noise) if testable else math.nan
    sd_mean = np.sqrt(var1 / n_r)
    base.update(p_fit=p_fit, r2=r2)
    shaped = fit.a > 0 and not fit.alpha_at_bound and not fit.z_inf_at_bound  # a power-law shape, no bound active
    if not testable:
        if not shaped:
            return LawFit(UNTESTED, f"1 replicate: not tested; the mean curve is not power-law shaped "
                          f"({_shape(zbar, sd_mean, fit)})", **base)
    elif fit.a <= 0 or (math.isfinite(p_fit) and p_fit < TEST_ALPHA):
        return LawFit(NO_LAW, f"{_shape(zbar, sd_mean, fit)} (lack of fit p={p_fit:.2g})", **base)
    elif fit.alpha_at_bound:  # the best power law is degenerate: a step, or a straight line in log C
        why = (f"a step: falls faster than any power law up to α = {ALPHA_MAX:g}" if fit.alpha > 1
               else f"no curvature: the best exponent is the search's lower bound {ALPHA_MIN:g}")
        return LawFit(NO_LAW, f"{why} (lack of fit p={p_fit:.2g})", **base)

    def alpha_of(zm: np.ndarray) -> _Fit:
        return _fit(x, zm, w, lb)

    est = dict(alpha=fit.alpha, asymptote=sign * fit.z_inf, amplitude=fit.a,
               irreducible=fit.z_inf - fz if has_floor else math.nan,
               compute_at_floor=_floor_entry(fit, c[0], top) if has_floor else math.nan)
    if testable:
        if interval == "jackknife":
            loo = [alpha_of(np.delete(z, r, axis=0).mean(axis=0)) for r in range(n_r)]
            la = np.array([math.log(f.alpha) if f.a > 0 else math.nan for f in loo])
            lo, hi = _interval(math.log(fit.alpha), la, level)
            zi = np.array([f.z_inf for f in loo])
            zlo, zhi = _interval(fit.z_inf, zi, level)
            lc = np.array([math.log(v) if 0 < v < math.inf else (math.inf if v == math.inf else math.nan)
                           for v in (_floor_entry(f, c[0], top) for f in loo)]) if has_floor else np.array([])
        else:
            def la_of(zm: np.ndarray) -> float:
                f = alpha_of(zm)
                return math.log(f.alpha) if f.a > 0 else math.nan

            lo, hi = _percentile(la_of, z, level)
            zlo, zhi = _percentile(lambda zm: alpha_of(zm).z_inf, z, level)
            lc = np.array([])
        est.update(alpha_lo=math.exp(lo) if math.isfinite(lo) else math.nan,
                   alpha_hi=math.exp(hi) if math.isfinite(hi) else math.nan)
        a_lo, a_hi = sorted((sign * zlo, sign * zhi))
        est.update(asymptote_lo=a_lo, asymptote_hi=a_hi)
        ce = est["compute_at_floor"]
        if len(lc) and math.isfinite(ce) and ce > 0 and np.all(np.isfinite(lc)):
            clo, chi = _interval(math.log(ce), lc, level)
            est.update(compute_at_floor_lo=math.exp(clo), compute_at_floor_hi=math.exp(chi))
        reason = (f"α {fit.alpha:.3g} [{est['alpha_lo']:.3g}, {est['alpha_hi']:.3g}], {n_r} replicates; "
                  + (f"lack of fit p={p_fit:.2g}" if math.isfinite(p_fit)
                     else f"{n_i} points for {fit.free} free parameters: exact, not testable"))
        return LawFit(POWER_LAW, reason, **est, **base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return LawFit(UNTESTED, f"α {fit.alpha:.3g}; 1 replicate: no interval, fit not tested", **est, **base)

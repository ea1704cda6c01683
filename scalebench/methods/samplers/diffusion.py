"""Diffusion schedules and samplers as plain functions over a denoiser (k-diffusion's style).

The project's standard process is a DDPM (Ho et al. 2020) with T = 1000 steps whose timesteps
are points t = i/T of a continuous cosine log-SNR schedule (Nichol & Dhariwal 2021). Samplers
walk a strided sub-schedule with "trailing" spacing τ_k = round(k·T/K) (Lin et al. 2024), so
even K = 1 starts from pure noise at t = 1; Heun visits Karras et al. 2022 levels instead
(DPM-Solver++(2M) keeps the strided grid: it beat Karras and log-SNR-uniform grids at K ≤ 20).
Every sampler takes a `Denoiser` (x_t, t) → x̂0 and an optional per-step `callback`, so any
family with a denoising network (diffusion, AR-diffusion, rolling, consistency) reuses them;
`ddim_step` and `sample_rows` also take one time per band of rows (AR-diffusion, rolling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

T = 1000  # steps of the discrete DDPM; strided sub-schedules use K ≤ T of them
SCHEDULE = {"kind": "cosine-logsnr", "logsnr_min": -10.0, "logsnr_max": 10.0}

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
"""(x_t, t) → x0 prediction; every sampler is written against this alone."""
Callback = Callable[[dict[str, Any]], None]
"""Called after every step with {"i", "t", "s", "x", "x0"} (k-diffusion's convention)."""


# ---------------------------------------------------------------- schedule

def logsnr(t: torch.Tensor, lo: float = SCHEDULE["logsnr_min"], hi: float = SCHEDULE["logsnr_max"]) -> torch.Tensor:
    """Cosine schedule as log-SNR, truncated to [lo, hi] (Nichol & Dhariwal 2021; Kingma et al. 2021)."""
    a, b = _ends(lo, hi)
    return -2.0 * torch.log(torch.tan(a + t.double() * (b - a)))


def _ends(lo: float = SCHEDULE["logsnr_min"], hi: float = SCHEDULE["logsnr_max"]) -> tuple[float, float]:
    return math.atan(math.exp(-hi / 2)), math.atan(math.exp(-lo / 2))


def alpha_sigma(t: float) -> tuple[float, float]:
    """Signal and noise scales at time t ∈ [0, 1]; t = 0 is the data itself (α = 1, σ = 0) as in DDPM."""
    if t <= 0:
        return 1.0, 0.0
    lam = float(logsnr(torch.tensor(t)))
    return math.sqrt(1 / (1 + math.exp(-lam))), math.sqrt(1 / (1 + math.exp(lam)))


def alpha_sigma_of(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`alpha_sigma` for a tensor of times (float64, same shape); t ≤ 0 gives exactly (1, 0)."""
    lam = logsnr(t)
    a, s = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    clean = t <= 0
    return torch.where(clean, torch.ones_like(a), a), torch.where(clean, torch.zeros_like(s), s)


def grid_alpha_sigma(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """α_i, σ_i of the T-step DDPM for i = 0..T (float64), i.e. `alpha_sigma(i / T)`."""
    lam = logsnr(torch.arange(T + 1, dtype=torch.float64) / T)
    alpha, sigma = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    alpha[0], sigma[0] = 1.0, 0.0
    return alpha.to(device), sigma.to(device)


def strided_steps(K: int) -> list[int]:
    """Trailing spacing τ_K = T > ... > τ_1 ≥ 1, then 0 (Lin et al. 2024): K steps, K network calls."""
    if not 1 <= K <= T:
        raise ValueError(f"diffusion: K={K} is not valid; valid K: 1..{T}")
    return [round(k * T / K) for k in range(K, 0, -1)] + [0]


def karras_times(K: int, rho: float = 7.0) -> list[float]:
    """K noise levels σ/α spaced as in Karras et al. 2022 (Eq. 5, ρ = 7) between t = 1 and t = 1/T, then 0."""
    if not 1 <= K <= T:
        raise ValueError(f"diffusion: K={K} is not valid; valid K: 1..{T}")
    a, b = _ends()
    if K == 1:
        return [1.0, 0.0]
    hi, lo = math.tan(b) ** (1 / rho), math.tan(a + (b - a) / T) ** (1 / rho)  # σ/α = tan(a + t(b - a))
    levels = [(hi + k / (K - 1) * (lo - hi)) ** rho for k in range(K)]
    return [min(1.0, max(0.0, (math.atan(g) - a) / (b - a))) for g in levels] + [0.0]


def sampler_times(K: int, sampler: str) -> list[float]:
    """The K+1 times a sampler visits: trailing strided DDPM steps, or Karras levels for Heun."""
    return karras_times(K) if sampler == "heun" else [i / T for i in strided_steps(K)]


def randn_like(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn from `rng` on the rng's device."""
    gen_device = rng.device if rng is not None else x.device
    return torch.randn(x.shape, generator=rng, device=gen_device).to(x.device)


# ---------------------------------------------------------------- samplers

def ddim_coefficients(t: float, s: float, eta: float = 0.0) -> tuple[float, float, float, float, float]:
    """(α_t, σ_t, α_s, k, c) of one DDIM step t → s: x_s = α_s x̂0 + k ε̂ + c z, ε̂ = (x_t − α_t x̂0)/σ_t,
    c = η × the posterior std of q(x_s | x_t, x0), k = sqrt(σ_s² − c²) (Song et al. 2021, Eq. 12)."""
    (a_t, s_t), (a_s, s_s) = alpha_sigma(t), alpha_sigma(s)
    var_ts = s_t**2 - (a_t / a_s) ** 2 * s_s**2  # variance of q(x_t | x_s)
    c = eta * math.sqrt(max(var_ts, 0.0)) * s_s / s_t
    return a_t, s_t, a_s, math.sqrt(max(s_s**2 - c**2, 0.0)), c


def ddim_step(x: torch.Tensor, x0: torch.Tensor, t: float | list[float], s: float | list[float],
              rng: torch.Generator | None = None, eta: float = 0.0) -> torch.Tensor:
    """One DDIM (η=0) / DDPM (η=1) step from t to s given the prediction x̂0 (Song et al. 2021, ICLR).

    `t` and `s` are floats (one time for the whole image), or per-row lists of length R over
    x's height (dim −2; R bands of H/R rows), as in diffusion forcing (Chen et al. 2024): each
    band takes its own step, and a band with t = s is returned unchanged, bit for bit (committed
    rows at t = 0 and rows still waiting at t = 1). Fresh noise (η > 0) is one draw shaped like x.
    """
    if not isinstance(t, list | tuple):
        a_t, s_t, a_s, k, c = ddim_coefficients(t, s, eta)
        eps = (x - a_t * x0) / s_t
        x = a_s * x0 + k * eps
        return x + c * randn_like(x, rng) if c > 0 else x
    if len(t) != len(s) or x.shape[-2] % len(t):
        raise ValueError(f"ddim_step: {len(t)} and {len(s)} row times for height {x.shape[-2]}")
    if any(si > ti for ti, si in zip(t, s, strict=True)):
        raise ValueError("ddim_step: a row's time may not increase")
    moving = [ti != si for ti, si in zip(t, s, strict=True)]
    coef = [ddim_coefficients(ti, si, eta) if m else (1.0, 1.0, 1.0, 0.0, 0.0)
            for ti, si, m in zip(t, s, moving, strict=True)]
    band = x.shape[-2] // len(t)

    def col(j: int) -> torch.Tensor:  # one coefficient per row, broadcast over the width
        v = torch.tensor([cf[j] for cf in coef], dtype=x.dtype, device=x.device)
        return v.repeat_interleave(band).view(-1, 1)

    a_t, s_t, a_s, k, c = (col(j) for j in range(5))
    eps = (x - a_t * x0) / s_t
    new = a_s * x0 + k * eps
    if any(cf[4] > 0 for cf in coef):
        new = new + c * randn_like(x, rng)
    keep = torch.tensor(moving, device=x.device).repeat_interleave(band).view(-1, 1)
    return torch.where(keep, new, x)


@torch.inference_mode()
def sample_ddim(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None,
                eta: float = 0.0, callback: Callback | None = None) -> torch.Tensor:
    """DDIM with η=0 (Song et al. 2021, ICLR); η=1 with σ² = posterior variance is DDPM (Ho et al. 2020)."""
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        x0 = D(x, t)
        x = ddim_step(x, x0, t, s, rng, eta)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "x": x, "x0": x0})
    return x


def sample_ddpm(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """Ancestral sampling with the posterior variance on the strided schedule (Ho et al. 2020)."""
    return sample_ddim(D, x, ts, rng, eta=1.0, callback=callback)


RowDenoiser = Callable[[torch.Tensor, list[float]], torch.Tensor]
"""(x_t, per-row times) → x0 prediction: each band of rows at its own noise level."""


def sample_rows(D: RowDenoiser, x: torch.Tensor, times: list[list[float]], rng: torch.Generator | None = None,
                eta: float = 0.0, callback: Callback | None = None) -> torch.Tensor:
    """DDIM/DDPM over a per-row time table (diffusion forcing, Chen et al. 2024): call c takes every row
    from times[c][r] to times[c + 1][r]; one network call per step. It is `sample_ddim`'s loop, whose
    `ddim_step` takes a time per row as well as one time for the whole batch."""
    return sample_ddim(D, x, times, rng, eta, callback)  # type: ignore[arg-type]


@torch.inference_mode()
def sample_heun(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """Heun's 2nd-order probability-flow ODE solver in y = x/α, σ/α (Karras et al. 2022, Alg. 1)."""
    a0, s0 = alpha_sigma(ts[0])
    y, g_t = x / a0, s0 / a0
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        a_s, s_s = alpha_sigma(s)
        g_s = s_s / a_s
        x0 = D(y * alpha_sigma(t)[0], t)
        d = (y - x0) / g_t
        y_next = y + (g_s - g_t) * d
        if s > 0:  # the last step, to σ = 0, stays Euler
            d2 = (y_next - D(y_next * a_s, s)) / g_s
            y_next = y + (g_s - g_t) * 0.5 * (d + d2)
        y, g_t = y_next, g_s
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "x": y * a_s, "x0": x0})
    return y


TensorDenoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(x_t, t) → x0 prediction with per-example times t of shape (N,)."""


def _column(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return c.to(x.device, x.dtype).view(-1, *([1] * (x.ndim - 1)))


def heun_step(D: TensorDenoiser, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """One step of `sample_heun` (Karras et al. 2022, Alg. 1, in y = x/α, σ/α) from per-example times t
    to s > 0: two calls of D. Consistency distillation's teacher step (Song et al. 2023, Alg. 2)."""
    (a_t, s_t), (a_s, s_s) = alpha_sigma_of(t), alpha_sigma_of(s)
    if bool((s_s <= 0).any()):
        raise ValueError("heun_step: target times must be > 0 (the ODE's velocity is undefined at t = 0)")
    a_t, a_s = _column(a_t, x), _column(a_s, x)
    g_t, g_s = _column(s_t, x) / a_t, _column(s_s, x) / a_s
    y = x / a_t
    d = (y - D(x, t)) / g_t
    y_next = y + (g_s - g_t) * d
    d2 = (y_next - D(y_next * a_s, s)) / g_s
    return (y + (g_s - g_t) * 0.5 * (d + d2)) * a_s


@torch.inference_mode()
def sample_dpmpp_2m(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None,
                    callback: Callback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M): multistep 2nd-order data-prediction ODE solver in λ = log(α/σ) (Lu et al. 2022, Alg. 2).

    The first step has no previous x̂0 and the step to t = 0 (λ = ∞) has no finite second-order
    form, so both are first order, i.e. exactly DDIM's update; every other step extrapolates
    x̂0 linearly in λ from the last two calls. One network call per step (NFE = K).
    """
    x0_prev, h_prev = None, 0.0
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        x0 = D(x, t)
        (a_t, s_t), (a_s, s_s) = alpha_sigma(t), alpha_sigma(s)
        if s_s == 0.0:  # to the data: x_s = α_s x̂0 (the limit of the first-order step, α_s = 1)
            x = a_s * x0
        else:
            h = math.log(a_s / s_s) - math.log(a_t / s_t)
            d = x0
            if x0_prev is not None:  # 2nd order: D = (1 + 1/2r) x̂0_t - 1/2r x̂0_prev, r = h_prev / h
                c = h / (2.0 * h_prev)
                d = (1.0 + c) * x0 - c * x0_prev
            x = (s_s / s_t) * x - a_s * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "x": x, "x0": x0})
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddim": sample_ddim, "ddpm": sample_ddpm, "heun": sample_heun, "dpmpp2m": sample_dpmpp_2m}

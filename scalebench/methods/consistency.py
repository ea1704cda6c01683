"""`consistency`: consistency distillation of the shipped `diffusion` model, multistep sampling.

Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models" (ICML). A consistency function
f_θ(x_t, t) maps any point of a probability-flow ODE trajectory to the trajectory's start at
t_min, so one call turns pure noise into a sample. Consistency distillation (CD, Alg. 2) trains
it from the pretrained `diffusion` U-Net (the teacher): for adjacent levels t_n < t_{n+1} of an
N-level grid, x_{t_{n+1}} = α x0 + σ z is moved to t_n by one Heun step of the teacher's ODE, and
f_θ(x_{t_{n+1}}, t_{n+1}) is pulled towards f_θ⁻(x̂_{t_n}, t_n), θ⁻ an EMA of θ (the target
network, μ = 0.95). The student starts from the teacher's weights.

Parameterisation (the paper's Eq. 5 on this project's VP schedule): with g = σ_t/α_t (EDM's σ),
g_min = g(t_min), t_min = 1/T, σ_data = 1,

    f_θ(x, t) = α_min · [ c_skip(t) · x/α_t − c_out(t) · v_θ(x, t) ],
    c_skip = σ_d² / ((g − g_min)² + σ_d²),   c_out = σ_d (g − g_min) / √(g² + σ_d²),

so f(x, t_min) = x exactly (c_skip = 1, c_out = 0, α_min/α_t = 1), and for g ≫ g_min, f is the
teacher's x0 = α x − σ v (v-prediction is EDM's preconditioning at σ_data = 1): initialising the
student from the teacher starts CD from the teacher's denoiser, as in the paper.

Sampling (Alg. 1): K ∈ {1, 2, 4, 8} calls; x ← f(x_T, 1), then for each of K − 1 lower levels τ,
re-noise x to τ and apply f again. The K levels are grid levels equally spaced in Karras ρ-space
(levels j·16/K of the 17-level training grid). S is fixed at 1. No likelihood.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.api import Axis, Budget, MethodCard
from scalebench.methods.nets.unet import UNet
from scalebench.methods.samplers.diffusion import (
    SCHEDULE,
    Callback,
    T,
    alpha_sigma,
    alpha_sigma_of,
    heun_step,
    karras_times,
    randn_like,
)
from scalebench.training import Recipe, TrainState, fit, make_state, optimise
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

TEACHER = "diffusion"
T_MIN = 1.0 / T  # ε of the paper: the boundary level, σ/α ≈ 0.008 (data bins are 0.125 wide)
N_LEVELS = 17  # CD discretisation N: Karras ρ = 7 levels from t = 1 down to t_min (paper: N = 18)
LEVELS: tuple[float, ...] = (*karras_times(N_LEVELS)[:-2], T_MIN)
"""Training grid, descending: LEVELS[0] = 1 (pure noise), LEVELS[-1] = t_min exactly."""
SIGMA_DATA = 1.0  # makes f at init equal the v-predicting teacher's x0 (see the module docstring)
TARGET_EMA = 0.95  # μ of the target network θ⁻ (the paper's CD value)
KS: tuple[int, ...] = (1, 2, 4, 8)
RECIPE = Recipe(steps=3000, batch_size=128, lr=4e-4, warmup=100, grad_clip=1.0, ema=0.999, seed=0, threads=2)

ConsistencyFn = Callable[[torch.Tensor, float], torch.Tensor]
"""(x_t, t) → estimate of the trajectory's point at t_min (≈ the clean image)."""


def coefficients(t: float) -> tuple[float, float]:
    """(k_skip, k_out) with f(x, t) = k_skip·x + k_out·v_θ(x, t); exactly (1, 0) at t = t_min."""
    if not T_MIN <= t <= 1.0:
        raise ValueError(f"consistency: t={t} is outside [t_min={T_MIN}, 1]")
    (a, s), (a0, s0) = alpha_sigma(t), alpha_sigma(T_MIN)
    g, g0 = s / a, s0 / a0
    c_skip = SIGMA_DATA**2 / ((g - g0) ** 2 + SIGMA_DATA**2)
    c_out = SIGMA_DATA * (g - g0) / math.sqrt(g * g + SIGMA_DATA**2)
    return c_skip * a0 / a, -a0 * c_out


def consistency_fn(net: torch.nn.Module, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """f_θ(x, t) for one time t or per-example times (N,) (float64, each in [t_min, 1]); unclipped."""
    n = x.shape[0]
    times = [float(t)] * n if not isinstance(t, torch.Tensor) else t.tolist()
    memo = {u: coefficients(u) for u in set(times)}
    k = torch.tensor([memo[u] for u in times], dtype=torch.float64).to(x.device, x.dtype)
    shape = (n, *([1] * (x.ndim - 1)))
    v = net(x, torch.tensor(times, dtype=torch.float32, device=x.device))
    return k[:, 0].view(shape) * x + k[:, 1].view(shape) * v


def sample_times(K: int) -> list[float]:
    """The K levels multistep sampling visits: LEVELS[j·(N−1)/K], j = 0..K−1 (K must divide N − 1)."""
    if K < 1 or (N_LEVELS - 1) % K:
        raise ValueError(f"consistency: K={K} is not valid; K must divide {N_LEVELS - 1}")
    return [LEVELS[j * (N_LEVELS - 1) // K] for j in range(K)]


@torch.inference_mode()
def sample_multistep(f: ConsistencyFn, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None,
                     callback: Callback | None = None) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Alg. 1): x ← f(x, τ_0); then for each lower
    τ_k re-noise, x_τ = α_τ·(x/α_min + √(g_τ² − g_min²)·z) (the paper's x + √(τ² − ε²) z in VP form),
    and x ← f(x_τ, τ_k). One call of f per level; `x` starts as the state at ts[0]."""
    a0, s0 = alpha_sigma(T_MIN)
    for i, t in enumerate(ts):
        if i > 0:
            a, s = alpha_sigma(t)
            x = a * (x / a0 + math.sqrt(max((s / a) ** 2 - (s0 / a0) ** 2, 0.0)) * randn_like(x, rng))
        x = f(x, t)
        if callback is not None:
            callback({"i": i, "t": t, "s": ts[i + 1] if i + 1 < len(ts) else T_MIN, "x": x, "x0": x})
    return x


class ConsistencyGenerator:
    """Consistency-distilled `diffusion`: K = multistep consistency steps, S fixed; no likelihood."""

    card = MethodCard(
        name="consistency",
        family="consistency",
        category="refinement",
        S=Axis.fixed(1),
        K=Axis(meaning="consistency steps (denoise to x0, re-noise to a lower level)", default=1, values=KS),
        likelihood="none",
        paper="Song et al. 2023 (Consistency Models, CD)",
        samplers=("multistep",),
        notes=("consistency distillation of the diffusion checkpoint (Heun teacher step, EMA target μ=0.95, "
               "17 Karras levels, L2 metric); f = α_min[c_skip x/α_t − c_out v_θ] with f(x, t_min) = x; "
               "K calls: one-shot at K=1, re-noise to K−1 lower grid levels; NFE = K"),
    )

    checkpoints = ("consistency",)

    def __init__(self, device: str = "cpu") -> None:
        self.net, meta = load_module("consistency", lambda m: UNet(**m["net"]), device)
        self.meta = meta
        self.device = torch.device(device)
        if meta.get("schedule") != SCHEDULE or meta.get("levels") != list(LEVELS):
            raise ValueError("consistency checkpoint was distilled on another schedule or grid; retrain")

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.net}

    def f(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The consistency function, clipped to the data range for sampling."""
        return consistency_fn(self.net, x, t).clamp(-1.0, 1.0)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return budget.K

    @torch.inference_mode()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 8, 8); all noise is drawn from `rng`."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        x = randn_like(torch.empty(n, 1, 8, 8, device=self.device), rng)  # x at t = 1, as in `diffusion`
        x = sample_multistep(self.f, x, sample_times(budget.K), rng)
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


# ---------------------------------------------------------------- training

def cd_step(state: TrainState, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """One CD update (Song et al. 2023, Alg. 2) with the squared L2 metric and λ ≡ 1."""
    x0 = batch[0]
    n = x0.shape[0]
    levels = torch.tensor(LEVELS, dtype=torch.float64)
    j = torch.randint(0, N_LEVELS - 1, (n,), generator=gen)  # pair (t_{n+1}, t_n) = (LEVELS[j], LEVELS[j+1])
    t_hi, t_lo = levels[j], levels[j + 1]
    a, s = (c.float().view(n, 1, 1, 1) for c in alpha_sigma_of(t_hi))
    x_hi = a * x0 + s * torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        x_lo = heun_step(state.extra["teacher"], x_hi, t_hi, t_lo)
        target = consistency_fn(state.extra["target"], x_lo, t_lo)
    loss = F.mse_loss(consistency_fn(state.nets["student"], x_hi, t_hi), target)
    optimise(state, "student", loss, grad_clip=state.extra["grad_clip"])
    with torch.no_grad():  # θ⁻ ← μ θ⁻ + (1 − μ) θ
        for pt, ps in zip(state.extra["target"].parameters(), state.nets["student"].parameters(), strict=True):
            pt.lerp_(ps, 1.0 - TARGET_EMA)
    return loss


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Distil the shipped `diffusion` checkpoint into a consistency model (a few minutes on 2 CPU cores)."""
    import copy

    from scalebench.data.digits import Digits
    from scalebench.methods.diffusion import DiffusionGenerator

    recipe = recipe or RECIPE
    teacher = DiffusionGenerator("cpu")  # frozen; the student and the target start from its weights
    student = copy.deepcopy(teacher.net).train()
    student.requires_grad_(True)
    target = copy.deepcopy(teacher.net).eval()
    state = make_state({"student": student}, recipe, ema=("student",),
                       extra={"teacher": teacher.denoise, "target": target, "grad_clip": recipe.grad_clip})
    log.info("consistency: distilling %s (%d params), %s", TEACHER, sum(p.numel() for p in student.parameters()), recipe)
    stats = fit(cd_step, state, Digits().continuous("train"), recipe)
    meta = {**stats, "net": teacher.meta["net"], "schedule": SCHEDULE, "T": T, "levels": list(LEVELS),
            "t_min": T_MIN, "sigma_data": SIGMA_DATA, "target_ema": TARGET_EMA, "teacher": TEACHER,
            "teacher_step": "heun", "metric": "l2", "data": Digits().fingerprint()}
    path = save_checkpoint("consistency", state.ema["student"].state_dict(), meta, directory=out_dir,
                           parents=(TEACHER,))
    log.info("consistency: saved %s (loss %.5f, %.0fs)", path, stats["final_loss"], stats["train_seconds"])
    return path

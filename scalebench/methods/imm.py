"""`imm`: Inductive Moment Matching (Zhou, Ermon & Song 2025), trained from scratch; K = sampling steps.

One network f_θ(x_t, t, s) maps a noisy image at time t to (a sample of) time s ≤ t of the same
OT flow-matching interpolant x_t = (1 − t)·x + t·σ_d·ε (α_t = 1 − t, σ_t = t; noise scale
σ_d = 0.5, data in [−1, 1]). It is parameterised as one Euler step of a learned velocity
("euler_fm" in the paper's code): f_θ(x_t, t, s) = x_t − (t − s)·σ_d·F_θ(c_in·x_t, t, s), with
F the project's U-Net (`nets/unet.py`, `two_times=True`: FiLM embedding of t plus one of s), so
f(x, t, t) = x exactly (the boundary condition the induction starts from).

Training (no teacher, no pre-training) matches *distributions*, not samples: a batch is split
into groups of M particles that share one (s, r, t) with s < r < t; each particle is a data image x
with its own noise ε, seen at time t (x_t) and at the nearer time r (x_r, the same x and ε). The
loss is the squared MMD, with a Laplace kernel, between the group's pushforwards f_θ(x_t, t, s)
and the stop-gradient targets f_θ⁻(x_r, r, s): when the model already maps q_r to q_s (induction
hypothesis), minimising it makes it map q_t to q_s too. r sits a constant step below t in
η_t = σ_t / α_t (the paper's mapping function).

Sampling ("pushforward", the paper's multi-step sampler): x ~ σ_d·N(0, I) at t = T and K jumps
down the uniform grid T = t_0 > t_1 > … > t_K = 0, x ← f(x, t_k, t_{k+1}); K = 1 is one shot from
noise to data. NFE = K. "restart" (in the paper's released code) jumps to s = 0 every time and re-noises to
the next grid time with fresh noise from the rng instead; NFE = K too. S is fixed at 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.methods.nets.unet import UNet
from scalebench.methods.samplers.diffusion import randn_like
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

SIGMA_D = 0.5  # noise scale: x_1 = σ_d·ε (the paper's sigma_data for pixels in [−1, 1])
T_MAX = 0.994  # largest time (η_t = t/(1−t) is finite there); sampling starts from pure noise at T_MAX
T_MIN = 0.0  # smallest time: sampling ends on the data
PARTICLES = 4  # M: particles per group sharing one (s, r, t)
GAP_K = 8  # r: one step of (η_max − η_min)/2^GAP_K below t in η (paper: constant decrement in η)
WEIGHT_A, WEIGHT_B = 1, 4.0  # w(s, t) = ½σ(b − λ_t)(−dλ_t/dt) α_t^a / (α_t² + σ_t²)
KERNEL_EPS = 1e-6  # Laplace kernel on max(‖x − y‖, ε): keeps its gradient finite at x = y
MAX_K = 64
NET = {"base": 16, "blocks": 1, "up_blocks": 1, "emb_dim": 128, "fourier": [3, 4, 5], "two_times": True}
RECIPE = Recipe(steps=4000, batch_size=128, lr=1e-3, warmup=100, grad_clip=1.0, ema=0.999, seed=0, threads=1)

Pushforward = Callable[[torch.Tensor, float, float], torch.Tensor]
"""(x_t, t, s) → x_s: the model's jump from time t down to time s ≤ t."""


# ---------------------------------------------------------------- interpolant

def alpha_sigma(t: torch.Tensor | float) -> tuple[Any, Any]:
    """OT flow matching (Lipman et al. 2023): α_t = 1 − t, σ_t = t (noise scaled by σ_d)."""
    return 1 - t, t


def eta(t: torch.Tensor) -> torch.Tensor:
    """η_t = σ_t / α_t = t / (1 − t), the paper's time variable for the mapping r(s, t)."""
    return t / (1 - t)


def eta_inv(n: torch.Tensor) -> torch.Tensor:
    return n / (1 + n)


def mapping_r(s: torch.Tensor, t: torch.Tensor, k: int = GAP_K) -> torch.Tensor:
    """r(s, t) = max(s, η⁻¹(η_t − (η_max − η_min)/2^k)): a constant decrement in η (Zhou et al. 2025, §4)."""
    lo, hi = eta(torch.tensor(T_MIN, dtype=torch.float64)), eta(torch.tensor(T_MAX, dtype=torch.float64))
    step = float(hi - lo) / 2**k
    return torch.maximum(s, eta_inv((eta(t) - step).clamp_min(0.0)))


def logsnr_weight(t: torch.Tensor, a: int = WEIGHT_A, b: float = WEIGHT_B) -> torch.Tensor:
    """w(s, t) = ½σ(b − λ_t)(−dλ_t/dt)·α_t^a/(α_t² + σ_t²) with λ_t = 2 log(α_t/σ_t), −dλ/dt = 2/(t(1 − t))."""
    al, sg = alpha_sigma(t)
    lam = 2 * (torch.log(al) - torch.log(sg))
    return 0.5 * torch.sigmoid(b - lam) * (2 / (t * (1 - t))) * al**a / (al**2 + sg**2)


def pushforward(net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor | float, s: torch.Tensor | float) -> torch.Tensor:
    """f_θ(x_t, t, s) = x_t − (t − s)·σ_d·F_θ(c_in·x_t, t, s), c_in = 1/(σ_d·√(α_t² + σ_t²)) ("euler_fm").

    t and s are floats or (N,) tensors; one network call. f(x, t, t) = x for any weights.
    """
    n = x.shape[0]
    t = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(n)
    s = torch.as_tensor(s, dtype=torch.float32, device=x.device).expand(n)
    al, sg = alpha_sigma(t)
    c_in = (1.0 / (SIGMA_D * torch.sqrt(al**2 + sg**2))).view(n, 1, 1, 1)
    return x - ((t - s) * SIGMA_D).view(n, 1, 1, 1) * net(c_in * x, t, s)


# ---------------------------------------------------------------- the moment-matching objective

def laplace_kernel(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) = exp(−max(‖a_i − b_j‖₂, ε) / scale) for groups a, b (G, M, D), scale (G,) → (G, M, M)."""
    d2 = (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)
    return torch.exp(-d2.clamp_min(KERNEL_EPS**2).sqrt() / scale.view(-1, 1, 1))


def group_mmd2(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """Squared MMD between particle groups x and y (G, M, D) under the Laplace kernel → (G,).

    Biased (V-statistic, the default, as in the paper's loss): 1/M² Σ_{i,j} [k(x_i, x_j) + k(y_i, y_j)
    − k(x_i, y_j) − k(x_j, y_i)], the squared RKHS distance of the two empirical mean embeddings, so
    it is ≥ 0 and exactly 0 when the groups are equal. `unbiased=True` drops the i = j terms
    (U-statistic, 1/(M(M−1)) Σ_{i≠j}); it can be negative but has expectation MMD².
    """
    m = x.shape[1]
    kxx, kyy, kxy = laplace_kernel(x, x, scale), laplace_kernel(y, y, scale), laplace_kernel(x, y, scale)
    total = kxx + kyy - kxy - kxy.transpose(1, 2)
    if unbiased:
        total = total - torch.diag_embed(torch.diagonal(total, dim1=1, dim2=2))
        return total.sum((1, 2)) / (m * (m - 1))
    return total.sum((1, 2)) / m**2


def imm_loss(net: torch.nn.Module, x: torch.Tensor, gen: torch.Generator, particles: int = PARTICLES,
             gap_k: int = GAP_K) -> torch.Tensor:
    """IMM's grouped MMD loss on a batch of clean images x (B, C, H, W), B a multiple of M (Zhou et al. 2025, Alg. 1).

    Per group: t ~ U(T_MIN, T_MAX), s ~ U(T_MIN, t), r = r(s, t); each particle has its own image
    and noise, x_t = α_t x + σ_t σ_d ε and x_r = α_r x + σ_r σ_d ε (= DDIM(x_t, x, t → r)); the
    loss is w(s, t)·MMD²(f_θ(x_t, t, s), sg[f_θ(x_r, r, s)]) averaged over groups, with the Laplace
    kernel's length scale |c_out(s, t)|·D = (t − s)·σ_d·D (D = pixels).
    """
    b = x.shape[0]
    if b % particles:
        raise ValueError(f"batch {b} is not a multiple of {particles} particles")
    g = b // particles
    t = T_MIN + (T_MAX - T_MIN) * torch.rand(g, generator=gen, dtype=torch.float64)
    s = T_MIN + (t - T_MIN) * torch.rand(g, generator=gen, dtype=torch.float64)
    r = mapping_r(s, t, gap_k)
    eps = SIGMA_D * torch.randn(x.shape, generator=gen)
    per = lambda v: v.float().repeat_interleave(particles)  # noqa: E731 — group value → particles
    tt, ss, rr = per(t), per(s), per(r)
    view = (b, 1, 1, 1)
    x_t = (1 - tt).view(view) * x + tt.view(view) * eps
    x_r = (1 - rr).view(view) * x + rr.view(view) * eps
    y_t = pushforward(net, x_t, tt, ss).reshape(g, particles, -1)
    with torch.no_grad():  # θ⁻ = stop-gradient of the current weights
        y_r = pushforward(net, x_r, rr, ss).reshape(g, particles, -1)
    scale = ((t - s) * SIGMA_D * y_t.shape[-1]).float().clamp_min(1e-8)
    w = logsnr_weight(t).float()
    return (w * group_mmd2(y_t, y_r, scale)).mean()


# ---------------------------------------------------------------- samplers

def uniform_times(K: int) -> list[float]:
    """K + 1 times from T_MAX down to T_MIN, uniformly spaced (the paper's "uniform" discretisation)."""
    if not 1 <= K <= MAX_K:
        raise ValueError(f"imm: K={K} is not valid; valid K: 1..{MAX_K}")
    return [T_MAX + (T_MIN - T_MAX) * k / K for k in range(K + 1)]


@torch.inference_mode()
def sample_pushforward(f: Pushforward, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None) -> torch.Tensor:
    """Pushforward sampling: x ← f(x, t_k, t_{k+1}) down the grid (Zhou et al. 2025, §4, multi-step sampling)."""
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        x = f(x, t, s)
    return x


@torch.inference_mode()
def sample_restart(f: Pushforward, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None) -> torch.Tensor:
    """Restart sampling: jump to s = t_K, re-noise to t_{k+1} with fresh noise (Zhou et al. 2025, released code)."""
    end = ts[-1]
    for k, t in enumerate(ts[:-1]):
        x = f(x, t, end)
        if k + 2 < len(ts):
            a, sg = alpha_sigma(ts[k + 1])
            x = a * x + sg * SIGMA_D * randn_like(x, rng)
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"pushforward": sample_pushforward, "restart": sample_restart}


# ---------------------------------------------------------------- generator

class IMMGenerator:
    """The shipped IMM model on `digits`; K = sampling steps (jumps down a uniform time grid), S fixed."""

    card = MethodCard(
        name="imm",
        family="inductive moment matching",
        category="refinement",
        S=Axis.fixed(1),
        K=Axis(meaning="sampling steps (pushforward jumps down a uniform time grid)", default=8, low=1, high=MAX_K),
        likelihood="none",
        paper="Zhou, Ermon & Song 2025",
        samplers=("pushforward", "restart"),
        notes=("one two-time U-Net f(x_t, t, s) trained from scratch with IMM's grouped Laplace-kernel "
               "MMD (M = 4 particles, stop-gradient target at r(s, t)); OT flow-matching interpolant, "
               "euler_fm parameterisation; pushforward = x ← f(x, t_k, t_k+1) on a uniform grid, "
               "restart = jump to 0 and re-noise; NFE = K for both"),
    )

    checkpoints = ("imm",)

    def __init__(self, device: str = "cpu") -> None:
        self.net, self.meta = load_module("imm", lambda m: UNet(**m.get("net", NET)), device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.net}

    def jump(self, x: torch.Tensor, t: float, s: float) -> torch.Tensor:
        """The model's pushforward f(x_t, t, s) (one network call)."""
        return pushforward(self.net, x, t, s)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return budget.K

    @torch.inference_mode()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 8, 8); all noise from `rng` (initial, and restart's re-noising)."""
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        x = SIGMA_D * randn_like(torch.empty(n, 1, 8, 8, device=self.device), rng)
        x = SAMPLERS[s](self.jump, x, uniform_times(budget.K), rng)
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


# ---------------------------------------------------------------- training

def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train the shipped checkpoint from scratch on the `train` split with the IMM loss (a few minutes)."""
    from scalebench.data.digits import Digits

    recipe = recipe or RECIPE
    with seeded(recipe.seed):
        net = UNet(**NET)
    log.info("imm: training UNet(%s), %d params, %s", NET, sum(p.numel() for p in net.parameters()), recipe)

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        return imm_loss(m, batch[0], gen)

    ema, stats = fit_model(net, Digits().continuous("train"), loss_fn, recipe)
    meta = {**stats, "net": NET, "final_loss": round(stats["final_loss"], 6), "method": "imm",
            "interpolant": "ot-fm", "parameterisation": "euler_fm", "sigma_d": SIGMA_D, "T": [T_MIN, T_MAX],
            "particles": PARTICLES, "gap_k": GAP_K, "weight": {"a": WEIGHT_A, "b": WEIGHT_B},
            "kernel": "laplace, scale (t-s)*sigma_d*D", "target": "stop-gradient", "data": Digits().fingerprint()}
    path = save_checkpoint("imm", ema.state_dict(), meta, directory=out_dir)
    log.info("imm: saved %s (loss %.5f, %.0fs)", path, stats["final_loss"], stats["train_seconds"])
    return path


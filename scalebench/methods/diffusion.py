"""Diffusion (refinement): one v-predicting U-Net, three samplers, K = sampling steps.

The model is a DDPM (Ho et al. 2020) with T = 1000 steps whose timesteps are points
t = i/T of a continuous cosine log-SNR schedule (Nichol & Dhariwal 2021), trained with
the v-parameterisation (Salimans & Ho 2022) so that every sampler and every K uses the
same checkpoint. At K < T the samplers walk a strided sub-schedule with "trailing"
spacing τ_k = round(k·T/K), k = 1..K (Lin et al. 2024), so even K = 1 starts from pure
noise at t = 1. The x0 prediction is clipped to the data range [-1, 1] in every sampler
and in the bound (a standard choice; without it few-step DDIM overshoots).

"heun" instead visits K noise levels spaced as in Karras et al. 2022 (ρ = 7), because a
second-order step out of pure noise over the uniform grid is inaccurate.

S is fixed at 1 (the whole image is revised at every step); K is the number of sampling
steps. NFE: K for "ddim" and "ddpm", 2K - 1 for "heun" (the last step is Euler).
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
from scalebench.training import Recipe, fit
from scalebench.zoo import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

T = 1000  # training steps of the discrete DDPM; strided sub-schedules use K ≤ T of them
LEVELS = 17  # grey levels of `digits`; decoder bins have width 2/(LEVELS-1) in [-1, 1]
NET = {"base": 16, "blocks": 1, "up_blocks": 1, "emb_dim": 128, "fourier": [3, 4, 5]}  # 179k params
SCHEDULE = {"kind": "cosine-logsnr", "logsnr_min": -10.0, "logsnr_max": 10.0}
RECIPE = Recipe(steps=6000, batch_size=128, lr=1e-3, warmup=100, grad_clip=1.0, ema=0.999, seed=0, threads=1)
"""~530 epochs, ~5 min: 2000 steps left the sampling ODE clearly under-dispersed; 2× more moves
FID by 20-30 % but not the DDIM/DDPM ranking (docs/methods/diffusion.md). One thread: small
convs gain little from two and slow down badly when oversubscribed."""
NLL_SEED = 1234  # the bound's Monte-Carlo noise is fixed so the number is reproducible


# ---------------------------------------------------------------- schedule (pure functions)

def logsnr(t: torch.Tensor, lo: float = SCHEDULE["logsnr_min"], hi: float = SCHEDULE["logsnr_max"]) -> torch.Tensor:
    """Cosine schedule as log-SNR, truncated to [lo, hi] (Nichol & Dhariwal 2021; Kingma et al. 2021)."""
    a, b = math.atan(math.exp(-hi / 2)), math.atan(math.exp(-lo / 2))
    return -2.0 * torch.log(torch.tan(a + t.double() * (b - a)))


def _ends(lo: float = SCHEDULE["logsnr_min"], hi: float = SCHEDULE["logsnr_max"]) -> tuple[float, float]:
    return math.atan(math.exp(-hi / 2)), math.atan(math.exp(-lo / 2))


def alpha_sigma(t: float) -> tuple[float, float]:
    """Signal and noise scales at time t ∈ [0, 1]; t = 0 is the data itself (α = 1, σ = 0) as in DDPM."""
    if t <= 0:
        return 1.0, 0.0
    lam = float(logsnr(torch.tensor(t)))
    return math.sqrt(1 / (1 + math.exp(-lam))), math.sqrt(1 / (1 + math.exp(lam)))


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


# ---------------------------------------------------------------- samplers (k-diffusion style)

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
"""(x_t, t) → clipped x0 prediction; every sampler is written against this alone."""


@torch.inference_mode()
def sample_ddim(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None,
                eta: float = 0.0) -> torch.Tensor:
    """DDIM with η=0 (Song et al. 2021, ICLR); η=1 with σ² = posterior variance is DDPM (Ho et al. 2020)."""
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        x0 = D(x, t)
        (a_t, s_t), (a_s, s_s) = alpha_sigma(t), alpha_sigma(s)
        eps = (x - a_t * x0) / s_t
        var_ts = s_t**2 - (a_t / a_s) ** 2 * s_s**2  # variance of q(x_t | x_s)
        c = eta * math.sqrt(max(var_ts, 0.0)) * s_s / s_t  # η × posterior std of q(x_s | x_t, x0)
        x = a_s * x0 + math.sqrt(max(s_s**2 - c**2, 0.0)) * eps
        if c > 0:
            x = x + c * _randn_like(x, rng)
    return x


def sample_ddpm(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral sampling with the posterior variance on the strided schedule (Ho et al. 2020)."""
    return sample_ddim(D, x, ts, rng, eta=1.0)


@torch.inference_mode()
def sample_heun(D: Denoiser, x: torch.Tensor, ts: list[float], rng: torch.Generator | None = None) -> torch.Tensor:
    """Heun's 2nd-order probability-flow ODE solver in y = x/α, σ/α (Karras et al. 2022, Alg. 1)."""
    a0, s0 = alpha_sigma(ts[0])
    y, g_t = x / a0, s0 / a0
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        a_s, s_s = alpha_sigma(s)
        g_s = s_s / a_s
        d = (y - D(y * alpha_sigma(t)[0], t)) / g_t
        y_next = y + (g_s - g_t) * d
        if s > 0:  # the last step, to σ = 0, stays Euler
            d2 = (y_next - D(y_next * a_s, s)) / g_s
            y_next = y + (g_s - g_t) * 0.5 * (d + d2)
        y, g_t = y_next, g_s
    return y


def _randn_like(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    gen_device = rng.device if rng is not None else x.device
    return torch.randn(x.shape, generator=rng, device=gen_device).to(x.device)


SAMPLERS = {"ddim": sample_ddim, "ddpm": sample_ddpm, "heun": sample_heun}


# ---------------------------------------------------------------- the generator

class DiffusionGenerator:
    """Pretrained `digits` DDPM/DDIM; K = sampling steps, S fixed; variational bound as NLL."""

    card = MethodCard(
        name="diffusion",
        family="diffusion",
        category="refinement",
        S=Axis.fixed(1),
        K=Axis(meaning="sampling steps", default=50, low=1, high=T),
        likelihood="bound",
        paper="Ho et al. 2020; Song et al. 2021 (DDIM)",
        samplers=("ddim", "ddpm", "heun"),
        notes=("one v-prediction U-Net (T=1000, cosine log-SNR schedule), trailing strided steps; "
               "ddim = η=0, ddpm = ancestral η=1, heun = Karras et al. 2022 2nd order with "
               "NFE = 2K-1; nll = DDPM variational bound on the K-step sub-schedule with a "
               "discretised Gaussian decoder on the 17 grey levels"),
    )

    def __init__(self, device: str = "cpu") -> None:
        state, meta = load_checkpoint("diffusion", device)
        self.meta = meta
        self.device = torch.device(device)
        self.net = UNet(**meta.get("net", NET)).to(self.device)
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)
        sched = meta.get("schedule", SCHEDULE)
        if sched != SCHEDULE:
            raise ValueError(f"checkpoint schedule {sched} differs from the code's {SCHEDULE}; retrain")
        self.alpha, self.sigma = grid_alpha_sigma(self.device)

    def denoise(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Clipped x0 prediction at time t from the v-prediction: x0 = α x − σ v."""
        a, s = alpha_sigma(t)
        v = self.net(x, torch.full((x.shape[0],), t, device=x.device))
        return (a * x - s * v).clamp(-1.0, 1.0)

    @staticmethod
    def times(K: int, sampler: str) -> list[float]:
        """The K+1 times a sampler visits: trailing strided DDPM steps, or Karras levels for Heun."""
        return karras_times(K) if sampler == "heun" else [i / T for i in strided_steps(K)]

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return 2 * budget.K - 1 if s == "heun" else budget.K

    @torch.inference_mode()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 8, 8); all noise is drawn from `rng`."""
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        x = _randn_like(torch.empty(n, 1, 8, 8, device=self.device), rng)
        x = SAMPLERS[s](self.denoise, x, self.times(budget.K, s), rng)
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    @torch.inference_mode()
    def nll(self, x: torch.Tensor, budget: Budget, chunk: int = 4096) -> torch.Tensor:
        """Per-example variational bound in bits/dim on the 17-level grid (Ho et al. 2020, Eq. 5).

        `x` is canonical (floats in [0, 1] on the grid). The bound is that of the model the
        "ddpm" sampler draws from at this K: prior KL at t=1, Σ KL(q(x_s|x_t,x0) ‖ p(x_s|x_t)) =
        ½(SNR_s − SNR_t)‖x0 − x̂0‖² over the strided steps, and a discretised Gaussian decoder
        with variance σ²_{τ1}. One fixed-seed noise draw per term makes it deterministic.
        """
        self.card.check_budget(budget)
        if x.min() < 0 or x.max() > 1:
            raise ValueError("diffusion.nll expects canonical images in [0, 1]")
        x0 = (x.to(self.device).float() * 2.0 - 1.0).reshape(-1, 1, 8, 8)
        n, dims = x0.shape[0], x0[0].numel()
        gen = torch.Generator(device=self.device).manual_seed(NLL_SEED)
        steps = strided_steps(budget.K)  # τ_K..τ_1, 0
        alpha, sigma = self.alpha, self.sigma
        snr = (alpha / sigma.clamp_min(1e-30)) ** 2
        # prior term KL(q(x_T|x0) ‖ N(0, I))
        a_T, s_T = alpha[T].float(), sigma[T].float()
        nats = 0.5 * (s_T**2 + a_T**2 * x0**2 - 1 - 2 * torch.log(s_T)).flatten(1).sum(1)
        # every step τ_k, k = 1..K needs one x̂0 at a fresh x_{τ_k} ~ q(x_{τ_k} | x0)
        ts, prev = steps[:-1], dict(zip(steps[:-1], steps[1:], strict=True))
        per_call = max(1, chunk // n)
        for j in range(0, len(ts), per_call):
            group = ts[j:j + per_call]
            eps = torch.randn((len(group), *x0.shape), generator=gen, device=self.device)
            a = alpha[group].float().view(-1, 1, 1, 1, 1)
            s = sigma[group].float().view(-1, 1, 1, 1, 1)
            xt = (a * x0 + s * eps).flatten(0, 1)
            tt = torch.tensor(group, device=self.device, dtype=torch.float32).repeat_interleave(n) / T
            v = self.net(xt, tt).view(len(group), *x0.shape)
            x0_hat = (a * xt.view(len(group), *x0.shape) - s * v).clamp(-1.0, 1.0)
            for g, t in enumerate(group):
                s_prev = prev[t]
                if s_prev > 0:  # KL between Gaussians of equal (posterior) variance
                    w = 0.5 * float(snr[s_prev] - snr[t])
                    nats = nats + w * (x0 - x0_hat[g]).pow(2).flatten(1).sum(1)
                else:  # discretised decoder p(x0 | x_{τ1}) with std σ_{τ1}
                    nats = nats + _discretised_gaussian_nll(x0, x0_hat[g], float(sigma[t])).flatten(1).sum(1)
        return nats / (dims * math.log(2.0))


def _discretised_gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """−log P(bin of x0) under N(mean, std²), edge bins open (Ho et al. 2020, Eq. 13).

    Computed in float64 log space on the side of the mean where both bin edges lie in the
    lower tail, so a prediction many σ away from its bin costs a finite, accurate amount.
    """
    half = 1.0 / (LEVELS - 1)
    x, m = x0.double(), mean.double()
    inf = torch.full_like(x, math.inf)
    zu = torch.where(x >= 1 - 1e-6, inf, (x + half - m) / std)
    zl = torch.where(x <= -1 + 1e-6, -inf, (x - half - m) / std)
    flip = zl > 0  # bin entirely above the mean: use P = Φ(−zl) − Φ(−zu)
    hi, lo = torch.where(flip, -zl, zu), torch.where(flip, -zu, zl)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    log_p = log_hi + torch.log1p(-torch.exp(log_lo - log_hi).clamp(max=1 - 1e-16))
    return (-log_p).float()


# ---------------------------------------------------------------- training

def diffusion_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """v-prediction MSE at t ~ U(0, 1) on the continuous schedule (Salimans & Ho 2022)."""
    x0 = batch[0]
    n = x0.shape[0]
    t = torch.rand(n, generator=gen)
    lam = logsnr(t).float().view(n, 1, 1, 1)
    a, s = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    eps = torch.randn(x0.shape, generator=gen)
    return F.mse_loss(model(a * x0 + s * eps, t), a * eps - s * x0)


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train the shipped checkpoint on `digits` train split (a few minutes on 2 CPU cores)."""
    from scalebench.data.digits import Digits

    recipe = recipe or RECIPE
    torch.manual_seed(recipe.seed)
    net = UNet(**NET)
    log.info("diffusion: training UNet(%s), %d params, %s", NET, sum(p.numel() for p in net.parameters()), recipe)
    ema, stats = fit(net, Digits().continuous("train"), diffusion_loss, recipe)
    meta = {**stats, "net": NET, "schedule": SCHEDULE, "T": T, "parameterisation": "v",
            "data": Digits().fingerprint()}
    path = save_checkpoint("diffusion", ema.state_dict(), meta, directory=out_dir)
    log.info("diffusion: saved %s (loss %.4f, %.0fs)", path, stats["final_loss"], stats["train_seconds"])
    return path

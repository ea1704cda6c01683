"""Diffusion (refinement): one v-predicting U-Net, four samplers, K = sampling steps.

The model is the project's standard DDPM process (`methods/samplers/diffusion.py`: T = 1000,
cosine log-SNR, trailing strided steps; Ho et al. 2020), trained with the v-parameterisation
(Salimans & Ho 2022) so that every sampler and every K uses the same checkpoint. The x0
prediction is clipped to the data range [-1, 1] in every sampler and in the bound (a
standard choice; without it few-step DDIM overshoots). "heun" visits K noise levels spaced
as in Karras et al. 2022 (ρ = 7), because a second-order step out of pure noise over the
uniform grid is inaccurate. "dpmpp2m" (DPM-Solver++(2M), Lu et al. 2022) walks DDIM's grid.

S is fixed at 1 (the whole image is revised at every step); K is the number of sampling
steps. NFE: K for "ddim", "ddpm" and "dpmpp2m", 2K - 1 for "heun" (the last step is Euler).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.api import Axis, Budget, MethodCard, SamplerCard
from scalebench.data.digits import LEVELS
from scalebench.methods.nets.unet import UNet
from scalebench.methods.samplers.diffusion import (
    SAMPLERS,
    SCHEDULE,
    T,
    alpha_sigma,
    alpha_sigma_of,
    grid_alpha_sigma,
    logsnr,
    randn_like,
    sampler_times,
    strided_steps,
)
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

NET = {"base": 16, "blocks": 1, "up_blocks": 1, "emb_dim": 128, "fourier": [3, 4, 5]}  # 179k params
RECIPE = Recipe(steps=6000, batch_size=128, lr=1e-3, warmup=100, grad_clip=1.0, ema=0.999, seed=0, threads=1)
"""~530 epochs, ~5 min: 2000 steps left the sampling ODE clearly under-dispersed; 2× more moves
FID by 20-30 % but not the DDIM/DDPM ranking (docs/methods/diffusion.md). One thread: small
convs gain little from two and slow down badly when oversubscribed."""
NLL_SEED = 1234  # the bound's Monte-Carlo noise is fixed so the number is reproducible

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
        samplers=("ddim", "ddpm", "heun", "dpmpp2m"),
        notes=("one v-prediction U-Net (T=1000, cosine log-SNR schedule), trailing strided steps; "
               "ddim = η=0, ddpm = ancestral η=1, heun = Karras et al. 2022 2nd order with "
               "NFE = 2K-1, dpmpp2m = DPM-Solver++(2M) with NFE = K; nll = DDPM variational bound "
               "on the K-step sub-schedule with a discretised Gaussian decoder on the 17 grey levels"),
        sampler_cards={"dpmpp2m": SamplerCard(
            paper="Lu et al. 2022 (DPM-Solver++)",
            notes=("DPM-Solver++(2M): multistep 2nd-order data-prediction ODE solver in log-SNR on DDIM's "
                   "trailing strided grid; first step and the step to t = 0 are first order (= DDIM); "
                   "NFE = K"))},
    )

    checkpoints = ("diffusion",)

    def __init__(self, device: str = "cpu") -> None:
        self.net, meta = load_module("diffusion", lambda m: UNet(**m.get("net", NET)), device)
        self.meta = meta
        self.device = torch.device(device)
        sched = meta.get("schedule", SCHEDULE)
        if sched != SCHEDULE:
            raise ValueError(f"checkpoint schedule {sched} differs from the code's {SCHEDULE}; retrain")
        self.alpha, self.sigma = grid_alpha_sigma(self.device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.net}

    def denoise(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """Clipped x0 prediction from the v-prediction, x0 = α x − σ v, at time t: one float for the
        batch, or per-example times (N,) (consistency distillation's teacher step)."""
        if isinstance(t, torch.Tensor):
            a, s = (c.to(x.device, x.dtype).view(-1, 1, 1, 1) for c in alpha_sigma_of(t))
            v = self.net(x, t.to(x.device, torch.float32))
        else:
            a, s = alpha_sigma(t)
            v = self.net(x, torch.full((x.shape[0],), t, device=x.device))
        return (a * x - s * v).clamp(-1.0, 1.0)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return 2 * budget.K - 1 if s == "heun" else budget.K

    @torch.inference_mode()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 8, 8); all noise is drawn from `rng`."""
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        x = randn_like(torch.empty(n, 1, 8, 8, device=self.device), rng)
        x = SAMPLERS[s](self.denoise, x, sampler_times(budget.K, s), rng)
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
    half = 1.0 / (LEVELS - 1)  # decoder bins of `digits`' grey levels have width 2/(LEVELS-1) in [-1, 1]
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
    with seeded(recipe.seed):
        net = UNet(**NET)
    log.info("diffusion: training UNet(%s), %d params, %s", NET, sum(p.numel() for p in net.parameters()), recipe)
    ema, stats = fit_model(net, Digits().continuous("train"), diffusion_loss, recipe)
    meta = {**stats, "net": NET, "schedule": SCHEDULE, "T": T, "parameterisation": "v",
            "data": Digits().fingerprint()}
    path = save_checkpoint("diffusion", ema.state_dict(), meta, directory=out_dir)
    log.info("diffusion: saved %s (loss %.4f, %.0fs)", path, stats["final_loss"], stats["train_seconds"])
    return path

"""`ar_diffusion`: AR-Diffusion over blocks of image rows, on a denoiser with one noise level per row.

Wu et al. 2023, "AR-Diffusion: Auto-Regressive Diffusion Model for Text Generation": every
position has its own diffusion time, and earlier positions run ahead of later ones, so the
front of the sequence is clean (committed) while the back is still noisy. Here the positions
are the 8 rows of a `digits` image, grouped into S blocks of 8/S rows. Block b follows the
project's ordinary K-step trailing DDPM schedule (`methods/samplers/diffusion.py`), starting
⌈K/2⌉ network calls after block b−1 (when block b−1 is half-way): the position-dependent
("skewed") timesteps of AR-Diffusion, discretised to blocks. Each call is one network pass
over the whole image with each row at its own time, and every unfinished block takes one
DDIM (η=0) or DDPM (η=1) step of its own schedule; block b is committed (t = 0, never changed
again) at call K + b⌈K/2⌉. S = 1 is ordinary diffusion of the whole image (tested).

S = blocks committed in sequence, K = denoising steps of each block's schedule; the outer loop
is S (blocks come in order, each refined K times). NFE = K + (S − 1)⌈K/2⌉ network calls.

One network serves this family and `rolling` (Ruhe et al. 2024; `methods/rolling.py`): the
project's U-Net with per-row FiLM time conditioning (`nets/unet.py`: times (N, 8)), trained
diffusion-forcing style (Chen et al. 2024): each example's rows get one shared time, independent
times, or a monotone ramp of times over row blocks (clean rows at t = 0 are context and carry no
loss), so any per-row schedule either family walks is in distribution. v-parameterisation and
x0 clipping exactly as `diffusion`. The likelihood is the variational bound of the DDPM chain
the "ddpm" sampler walks (per-row KL terms, as `diffusion.nll` for S = 1).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import LEVELS
from scalebench.methods.diffusion import NLL_SEED
from scalebench.methods.diffusion import _discretised_gaussian_nll as discretised_gaussian_nll
from scalebench.methods.nets.unet import UNet
from scalebench.methods.samplers.diffusion import (
    SCHEDULE,
    T,
    alpha_sigma,
    logsnr,
    randn_like,
    sample_rows,
    strided_steps,
)
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

ROWS = 8  # image rows, each with its own noise level
SS: tuple[int, ...] = (1, 2, 4, 8)  # row blocks: 8/S rows each
NET = {"base": 16, "blocks": 1, "up_blocks": 1, "emb_dim": 128, "fourier": [3, 4, 5]}  # diffusion's net, 180k params
RECIPE = Recipe(steps=6000, batch_size=128, lr=1e-3, warmup=100, grad_clip=1.0, ema=0.999, seed=0, threads=1)
"""`diffusion`'s recipe (~530 epochs) on the per-row objective; one thread, as there."""
ETA = {"ddim": 0.0, "ddpm": 1.0}


# ---------------------------------------------------------------- schedules

def ar_diffusion_starts(S: int, K: int) -> list[int]:
    """Call at which each of S row blocks starts its K-step schedule: block b lags b−1 by ⌈K/2⌉ calls,
    so earlier blocks are ahead (Wu et al. 2023, position-dependent timesteps, discretised to blocks)."""
    return [b * math.ceil(K / 2) for b in range(S)]


def row_time_table(starts: list[int], K: int, rows: int = ROWS) -> list[list[float]]:
    """Per-row times at every call: block j (rows·j/S .. rows·(j+1)/S − 1 for S = len(starts)) walks
    the trailing K-step DDPM schedule τ_K/T = 1 > … > τ_1/T > 0 from call starts[j], waiting at t = 1
    before it and resting at t = 0 (committed) after it. Row c is the state before call c; the
    table has max(starts) + K + 1 rows, one per network call plus the final state."""
    S = len(starts)
    if rows % S:
        raise ValueError(f"{S} blocks do not divide {rows} rows")
    ts = [i / T for i in strided_steps(K)]
    calls = max(starts) + K
    return [[ts[min(max(c - starts[r * S // rows], 0), K)] for r in range(rows)] for c in range(calls + 1)]


def commits(table: list[list[float]]) -> list[int]:
    """Distinct calls after which some row first reaches t = 0 (the sequential commit steps)."""
    done = [next(c for c, t in enumerate(col) if t == 0.0) for col in zip(*table, strict=True)]
    return sorted(set(done))


# ---------------------------------------------------------------- generator

class ARDiffusionGenerator:
    """Pretrained per-row `digits` denoiser; S row blocks in order (skewed), K steps per block."""

    card = MethodCard(
        name="ar_diffusion",
        family="AR-Diffusion",
        category="both-outer-S",
        S=Axis(meaning="row blocks committed in sequence (8/S rows each); S = 1 is plain diffusion",
               default=4, values=SS),
        K=Axis(meaning="denoising steps of each block's schedule (trailing strided DDPM grid)",
               default=20, low=1, high=T),
        likelihood="bound",
        paper="Wu et al. 2023 (AR-Diffusion); Chen et al. 2024 (diffusion forcing)",
        samplers=("ddim", "ddpm"),
        notes=("one v-prediction U-Net with a time per row, trained diffusion-forcing style; block b starts "
               "its own K-step schedule ⌈K/2⌉ calls after block b−1 (skewed timesteps); NFE = K + (S−1)⌈K/2⌉; "
               "outer loop S; ddim = η=0, ddpm = η=1 per row; nll = variational bound of the ddpm chain "
               "with a discretised Gaussian decoder on the 17 grey levels"),
        outer="S",
    )

    checkpoints = ("ar_diffusion",)

    def __init__(self, device: str = "cpu") -> None:
        self.net, meta = load_module("ar_diffusion", lambda m: UNet(**m.get("net", NET)), device)
        self.meta = meta
        self.device = torch.device(device)
        sched = meta.get("schedule", SCHEDULE)
        if sched != SCHEDULE:
            raise ValueError(f"checkpoint schedule {sched} differs from the code's {SCHEDULE}; retrain")

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.net}

    def starts(self, S: int, K: int) -> list[int]:
        return ar_diffusion_starts(S, K)

    def schedule(self, budget: Budget) -> list[list[float]]:
        """The per-row time table this family walks at (S, K)."""
        self.card.check_budget(budget)
        return row_time_table(self.starts(budget.S, budget.K), budget.K)

    def denoise(self, x: torch.Tensor, t: list[float]) -> torch.Tensor:
        """Clipped x0 prediction x0 = α x − σ v with row r at time t[r] (len(t) == 8)."""
        a, s = zip(*(alpha_sigma(ti) for ti in t), strict=True)
        col = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device).view(-1, 1)  # noqa: E731
        tt = torch.tensor(t, dtype=torch.float32, device=x.device).expand(x.shape[0], -1)
        return (col(a) * x - col(s) * self.net(x, tt)).clamp(-1.0, 1.0)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        self.card.check_sampler(sampler)
        return len(self.schedule(budget)) - 1

    @torch.inference_mode()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 8, 8); all noise is drawn from `rng`."""
        s = self.card.check_sampler(sampler)
        table = self.schedule(budget)
        x = randn_like(torch.empty(n, 1, ROWS, ROWS, device=self.device), rng)
        x = sample_rows(self.denoise, x, table, rng, ETA[s])
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    @torch.inference_mode()
    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor:
        """Per-example variational bound in bits/dim of the chain the "ddpm" sampler walks at (S, K).

        Given x0 the forward process noises every row independently, so the chain's bound is a sum
        over rows of `diffusion.nll`'s terms along each row's own schedule (Ho et al. 2020, Eq. 5): the
        prior KL at t = 1, ½(SNR_s − SNR_t)‖x0 − x̂0‖² for each of its steps t → s > 0 and the discretised
        decoder for its last step; x̂0 of call c is predicted from one draw x_c ~ q(x_c | x0) with every
        row at its time of that call (fixed-seed noise, so the number is deterministic). Rows that wait
        or rest at a call contribute nothing there.
        """
        table = self.schedule(budget)
        if x.min() < 0 or x.max() > 1:
            raise ValueError("ar_diffusion.nll expects canonical images in [0, 1]")
        x0 = (x.to(self.device).float() * 2.0 - 1.0).reshape(-1, 1, ROWS, ROWS)
        dims = x0[0].numel()
        gen = torch.Generator(device=self.device).manual_seed(NLL_SEED)
        a_T, s_T = alpha_sigma(1.0)
        nats = 0.5 * (s_T**2 + a_T**2 * x0**2 - 1 - 2 * math.log(s_T)).flatten(1).sum(1)
        snr = lambda t: float(torch.exp(logsnr(torch.tensor(t, dtype=torch.float64))))  # noqa: E731
        for t, s in zip(table[:-1], table[1:], strict=True):
            a, sig = zip(*(alpha_sigma(ti) for ti in t), strict=True)
            col = lambda v: torch.tensor(v, dtype=x0.dtype, device=self.device).view(-1, 1)  # noqa: E731
            xt = col(a) * x0 + col(sig) * randn_like(x0, gen)
            x0_hat = self.denoise(xt, t)
            for r, (ti, si) in enumerate(zip(t, s, strict=True)):
                if ti == si:
                    continue
                err_row = (x0[:, :, r] - x0_hat[:, :, r])
                if si > 0:
                    nats = nats + 0.5 * (snr(si) - snr(ti)) * err_row.pow(2).flatten(1).sum(1)
                else:
                    nats = nats + discretised_gaussian_nll(x0[:, :, r], x0_hat[:, :, r], sig[r]).flatten(1).sum(1)
        return nats / (dims * math.log(2.0))


# ---------------------------------------------------------------- training

def row_times(n: int, gen: torch.Generator, rows: int = ROWS) -> torch.Tensor:
    """(n, rows) training times, diffusion-forcing style (Chen et al. 2024): a quarter of the examples
    share one t ~ U(0, 1) over all rows (plain diffusion), a quarter draw each row's t independently,
    half take a monotone ramp t = clip(a + j·d, 0, 1) over row blocks j of 2, 4 or 8 blocks, slope
    d ~ U(0, 1) and offset a ~ U(−(B−1)d, 1): the staggered tables AR-diffusion and rolling walk."""
    kind = torch.randint(0, 4, (n, 1), generator=gen)
    shared = torch.rand(n, 1, generator=gen).expand(n, rows)
    indep = torch.rand(n, rows, generator=gen)
    blocks = 2 ** torch.randint(1, 4, (n, 1), generator=gen)  # 2, 4 or 8 blocks
    j = (torch.arange(rows).view(1, -1) * blocks) // rows
    d = torch.rand(n, 1, generator=gen)
    a = torch.rand(n, 1, generator=gen) * (1 + (blocks - 1) * d) - (blocks - 1) * d
    ramp = (a + j * d).clamp(0.0, 1.0)
    return torch.where(kind == 0, shared, torch.where(kind == 1, indep, ramp))


def row_diffusion_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """v-prediction MSE (Salimans & Ho 2022) with a time per row; rows at t = 0 are clean context, no loss."""
    x0 = batch[0]
    n = x0.shape[0]
    t = row_times(n, gen)
    lam = logsnr(t).float().view(n, 1, ROWS, 1)
    a, s = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    clean = (t == 0).view(n, 1, ROWS, 1)
    a, s = torch.where(clean, torch.ones_like(a), a), torch.where(clean, torch.zeros_like(s), s)
    eps = torch.randn(x0.shape, generator=gen)
    err = F.mse_loss(model(a * x0 + s * eps, t), a * eps - s * x0, reduction="none")
    w = (~clean).float().expand_as(err)
    return (err * w).sum() / w.sum().clamp_min(1.0)


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train the shared per-row checkpoint (used by `ar_diffusion` and `rolling`) on `digits`' train split."""
    from scalebench.data.digits import Digits

    recipe = recipe or RECIPE
    with seeded(recipe.seed):
        net = UNet(**NET)
    log.info("ar_diffusion: training UNet(%s), %d params, %s", NET, sum(p.numel() for p in net.parameters()), recipe)
    ema, stats = fit_model(net, Digits().continuous("train"), row_diffusion_loss, recipe)
    meta = {**stats, "net": NET, "schedule": SCHEDULE, "T": T, "parameterisation": "v", "times": "per-row",
            "levels": LEVELS, "data": Digits().fingerprint()}
    path = save_checkpoint("ar_diffusion", ema.state_dict(), meta, directory=out_dir)
    log.info("ar_diffusion: saved %s (loss %.4f, %.0fs)", path, stats["final_loss"], stats["train_seconds"])
    return path

"""`gan`: a small DCGAN-style GAN, the one-shot baseline of the seed's "neither" row.

A generator maps a latent z ~ N(0, I) to an 8×8 image in one forward pass (Goodfellow et al.
2014); the architecture is DCGAN's (Radford et al. 2016) scaled to 8×8: a linear projection to
a 2×2 feature map, two stride-2 transposed convolutions (2 → 4 → 8) and a 3×3 output
convolution with tanh. The discriminator mirrors it with stride-2 convolutions under spectral
normalisation (Miyato et al. 2018) and is trained with the hinge loss (Lim & Ye 2017; Miyato
et al. 2018). Real images are uniformly dequantised within their grey-level bin before the
discriminator sees them, so it cannot tell real from fake by the 17-level grid alone.

Only the generator ships (its EMA copy, as in Karras et al. 2018 and Yazıcı et al. 2019);
the discriminator is needed only for training. There is no likelihood. S and K are both fixed
at 1: one network call per sample, NFE = 1 whatever the batch size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import LEVELS, Digits
from scalebench.training import Recipe, TrainState, fit, make_state, optimise, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

NET = {"z_dim": 32, "ch": 64, "bn": True}
"""Generator width: 2×2×2ch after the projection, ch at 4×4, ch/2 at 8×8 (see `Generator`). Batch norm
as in DCGAN: without it the same recipe collapsed to one blob (FID 114, diversity 0.04 at 1,500 steps)."""
D_CH = 64
RECIPE = Recipe(steps=5000, batch_size=64, lr=2e-4, weight_decay=0.0, warmup=0, grad_clip=0.0,
                ema=0.999, seed=0, threads=2)
"""Adam(β = 0, 0.9) for both nets at lr 2e-4 (the SN-GAN / hinge setting), one D step per G step."""
BETAS = (0.0, 0.9)


class Generator(nn.Module):
    """DCGAN generator at 8×8: z → linear → 2×2×2ch → convT → 4×4×ch → convT → 8×8×ch/2 → conv → tanh,
    with batch norm + ReLU after every layer but the last (Radford et al. 2016). Sampling runs in eval
    mode, so batch norm uses its running statistics and each sample depends on its own z only."""

    def __init__(self, z_dim: int = 32, ch: int = 64, bn: bool = True) -> None:
        super().__init__()
        self.z_dim, self.ch = z_dim, ch
        self.project = nn.Linear(z_dim, 2 * ch * 2 * 2)
        self.up1 = nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1)
        self.out = nn.Conv2d(ch // 2, 1, 3, padding=1)
        norm = nn.BatchNorm2d if bn else (lambda c: nn.Identity())
        self.n0, self.n1, self.n2 = norm(2 * ch), norm(ch), norm(ch // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.n0(self.project(z).view(-1, 2 * self.ch, 2, 2)))
        h = F.relu(self.n1(self.up1(h)))
        h = F.relu(self.n2(self.up2(h)))
        return torch.tanh(self.out(h))  # in (-1, 1), the continuous view of the data


class Discriminator(nn.Module):
    """Spectrally normalised conv net: 8×8 → 4×4 → 2×2 → one logit (real/fake score)."""

    def __init__(self, ch: int = D_CH) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            spectral_norm(nn.Conv2d(1, ch, 3, padding=1)),
            spectral_norm(nn.Conv2d(ch, ch, 4, stride=2, padding=1)),
            spectral_norm(nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1)),
        ])
        self.head = spectral_norm(nn.Linear(2 * ch * 2 * 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
        return self.head(h.flatten(1)).squeeze(1)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss of the hinge GAN: −E[D(G(z))] (Miyato et al. 2018, Eq. 17)."""
    return -fake_logits.mean()


def latents(n: int, z_dim: int, rng: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """n latent codes z ~ N(0, I), drawn only from `rng`."""
    return torch.randn(n, z_dim, generator=rng, device=device)


def sample_one_shot(net: Generator, z: torch.Tensor) -> torch.Tensor:
    """One generator call per sample (Goodfellow et al. 2014): canonical images in [0, 1]."""
    return ((net(z).float() + 1.0) / 2.0).clamp(0.0, 1.0)


def build_generator(cfg: dict | None = None) -> Generator:
    return Generator(**(cfg or NET))


class GANGenerator:
    """The shipped DCGAN generator; S = K = 1 (one network call), no likelihood."""

    card = MethodCard(
        name="gan",
        family="GAN",
        category="neither",
        S=Axis.fixed(1, "— (one network call per sample)"),
        K=Axis.fixed(1, "— (one network call per sample)"),
        likelihood="none",
        paper="Goodfellow et al. 2014; Radford et al. 2016 (DCGAN); Miyato et al. 2018 (spectral norm)",
        samplers=("one-shot",),
        notes=("DCGAN-style generator scaled to 8×8 (z_dim 32), hinge loss with a spectrally normalised "
               "discriminator, EMA generator; one forward pass per sample, so S and K are fixed at 1 and "
               "NFE = 1. No likelihood: a GAN defines no density."),
    )

    checkpoints = ("gan",)

    def __init__(self, device: str = "cpu") -> None:
        self.net, self.meta = load_module("gan", lambda m: build_generator(m.get("net", NET)), device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.net}

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return 1

    @torch.inference_mode()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 8, 8), from latents drawn from `rng`."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return sample_one_shot(self.net, latents(n, self.net.z_dim, rng, self.device))


# ---------------------------------------------------------------- training

def dequantise_real(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Real images in [-1, 1] plus uniform noise within their grey-level bin (width 2/(LEVELS−1))."""
    half = 1.0 / (LEVELS - 1)
    return (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * half).clamp(-1.0, 1.0)


def gan_step(state: TrainState, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """One alternating update: a discriminator step on real vs detached fakes, then a generator step."""
    G, D = state.nets["G"], state.nets["D"]
    real = dequantise_real(batch[0], gen)
    n = real.shape[0]
    fake = G(latents(n, G.z_dim, gen))
    d_loss = hinge_d_loss(D(real), D(fake.detach()))
    optimise(state, "D", d_loss)
    g_loss = hinge_g_loss(D(G(latents(n, G.z_dim, gen))))
    optimise(state, "G", g_loss)
    state.extra["g_loss"] = g_loss.detach().item()
    return d_loss.detach()


def fit_gan(recipe: Recipe, net: dict | None = None, d_ch: int = D_CH, lr_d: float | None = None
            ) -> tuple[TrainState, dict]:
    """Train G and D from scratch with `training.fit`; returns the state (live G, D, EMA G) and stats."""
    net = net or NET
    with seeded(recipe.seed):
        G, D = build_generator(net), Discriminator(d_ch)
    log.info("gan: G %d params, D %d params, %s", sum(p.numel() for p in G.parameters()),
             sum(p.numel() for p in D.parameters()), recipe)
    state = make_state({"G": G, "D": D}, recipe, ema=("G",), betas=BETAS, lr={"D": lr_d or recipe.lr})
    stats = fit(gan_step, state, Digits().continuous("train"), recipe, log_every=500)
    return state, stats


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train G and D on the `train` split and write the EMA generator to `gan.safetensors`.

    `final_loss` is the discriminator's hinge loss (running mean; 2.0 = D at chance with
    zero logits, 0 = D separates everything by the margin); the generator's last loss is
    stored beside it as `final_g_loss`.
    """
    recipe = recipe or RECIPE
    state, stats = fit_gan(recipe)
    n_g = sum(p.numel() for p in state.nets["G"].parameters())
    meta = {**stats, "method": "gan", "net": NET, "d_ch": D_CH, "n_params": n_g, "loss": "hinge",
            "final_loss": round(stats["final_loss"], 4), "final_g_loss": round(state.extra["g_loss"], 4),
            "betas": list(BETAS), "data": Digits().fingerprint()}
    path = save_checkpoint("gan", state.ema["G"].state_dict(), meta, directory=out_dir)
    log.info("gan: saved %s (D loss %.4f, %.0fs)", path, meta["final_loss"], stats["train_seconds"])
    return path

"""The project's DDIM loop and diffusers' DDIMScheduler driving one diffusers UNet on one schedule.

Used by the side-by-side test (`tests/test_adapter_diffusers.py`) and the timing script
(`benchmarks/diffusers_vs_native.py`); not by any generator. The project's process
(`methods/samplers/diffusion.py`: T = 1000, cosine log-SNR, native index i = 0..T with i = 0 the
data) is handed to diffusers as `trained_betas`, diffusers' timestep j being native index j + 1;
trailing spacing, η = 0 and `set_alpha_to_one` (the last step lands on the data) make the walks
the same whenever K divides T. When it does not, diffusers' `DDIMScheduler.step` still steps to
j − T//K, which is not the next trailing timestep, so the two walks differ (docs/adapters.md).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from scalebench.methods.samplers.diffusion import T, alpha_sigma, grid_alpha_sigma, sample_ddim, strided_steps


def native_betas() -> torch.Tensor:
    """β_j (float64) whose cumulative product is the native ᾱ at index j + 1, j = 0..T−1."""
    alpha, _ = grid_alpha_sigma()
    abar = alpha[1:] ** 2
    return 1.0 - abar / torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])


def native_ddim_scheduler(prediction_type: str = "epsilon", clip: bool = False) -> Any:
    """A diffusers DDIMScheduler on the project's schedule: trailing spacing, η = 0 at step time."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=T, trained_betas=native_betas().numpy(), clip_sample=clip,
                         clip_sample_range=1.0, set_alpha_to_one=True, timestep_spacing="trailing",
                         steps_offset=0, prediction_type=prediction_type)


def unet_denoiser(unet: torch.nn.Module, prediction_type: str = "epsilon", clip: bool = False):
    """The UNet as the native loop's Denoiser (x_t, t) → x̂0, called with diffusers' timestep round(tT) − 1."""

    def denoise(x: torch.Tensor, t: float) -> torch.Tensor:
        a, s = alpha_sigma(t)
        out = unet(x, torch.tensor(round(t * T) - 1)).sample
        x0 = (x - s * out) / a if prediction_type == "epsilon" else a * x - s * out
        return x0.clamp(-1.0, 1.0) if clip else x0

    return denoise


@torch.inference_mode()
def native_ddim(unet: torch.nn.Module, x: torch.Tensor, K: int, prediction_type: str = "epsilon",
                clip: bool = False) -> torch.Tensor:
    """The project's `sample_ddim` (η = 0) over its trailing strided grid, from the noise x."""
    return sample_ddim(unet_denoiser(unet, prediction_type, clip), x, [i / T for i in strided_steps(K)])


@torch.inference_mode()
def diffusers_ddim(unet: torch.nn.Module, scheduler: Any, x: torch.Tensor, K: int,
                   use_clipped_model_output: bool = False) -> torch.Tensor:
    """diffusers' DDIM loop (as in DDIMPipeline, η = 0) from the noise x, on a copy of `scheduler`."""
    sched = copy.deepcopy(scheduler)
    sched.set_timesteps(K, device=x.device)
    for t in sched.timesteps:
        out = unet(x, t).sample
        x = sched.step(out, t, x, eta=0.0, use_clipped_model_output=use_clipped_model_output).prev_sample
    return x


def tiny_unet(channels: int = 1, size: int = 8, seed: int = 0) -> torch.nn.Module:
    """A small random UNet2DModel (164k parameters at 1×8×8) for tests and timing."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                           block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                           down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D")).eval()

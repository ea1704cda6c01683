"""`rolling`: rolling diffusion over the rows of an image, sampled with the shipped `ar_diffusion` net.

Ruhe et al. 2024, "Rolling Diffusion Models": a window slides over the sequence (here the 8 rows
of a `digits` image, in S frames of 8/S rows); inside the window a frame's noise level grows
with its position, t = (w + τ)/W for window position w = 0 (front) .. W − 1 and local time τ
running 1 → 0 during one shift, so every frame moves down by 1/W per shift; at the end of each
shift the front frame reaches t = 0 and is committed, and a fresh frame enters at the back at
t = 1. With K denoising steps per frame and W = min(S, K) frames in the window, a shift takes
K/W network calls: frame j starts its own K-step schedule (the project's trailing DDPM grid) at
call ⌊jK/W⌋, so its time at any call is the linear ramp above (exactly when W divides K). The
paper's "init" phase (Ruhe et al. §3.3: the first window is brought from pure noise to the
staggered levels) is the same rule: frames 1..W−1 wait at t = 1 until their start call.

S = window shifts = frames committed in sequence (S = 8: one row per shift, the paper's setting;
S = 1: one frame, plain diffusion); K = denoising steps each frame (row) receives. Outer loop S.
NFE = ⌊(S−1)K/W⌋ + K calls, each one pass of the shared per-row U-Net over the whole image.

Rolling and AR-Diffusion walk the same kind of table (`ar_diffusion.row_time_table`) and share
the network: they differ in the lag between frames (rolling: K/W calls, a window of up to S
frames in flight; AR-Diffusion: ⌈K/2⌉ calls, two blocks in flight). No training of its own.
"""

from __future__ import annotations

from scalebench.api import Axis, MethodCard
from scalebench.methods.ar_diffusion import SS, ARDiffusionGenerator
from scalebench.methods.samplers.diffusion import T


def rolling_starts(S: int, K: int) -> list[int]:
    """Call at which each of S frames enters the window (Ruhe et al. 2024): W = min(S, K) frames in the
    window, one shift every K/W calls, so frame j starts its K steps at ⌊jK/W⌋ (lag ≥ 1 call)."""
    W = min(S, K)
    return [j * K // W for j in range(S)]


class RollingGenerator(ARDiffusionGenerator):
    """`ar_diffusion`'s per-row denoiser walked by a rolling window: S shifts, K steps per frame."""

    card = MethodCard(
        name="rolling",
        family="rolling diffusion",
        category="both-outer-S",
        S=Axis(meaning="window shifts: frames of 8/S rows committed in sequence, one per shift (S = 8: rows)",
               default=8, values=SS),
        K=Axis(meaning="denoising steps each frame receives while it crosses the window", default=20, low=1, high=T),
        likelihood="bound",
        paper="Ruhe et al. 2024 (Rolling Diffusion Models)",
        samplers=("ddim", "ddpm"),
        notes=("ar_diffusion's checkpoint (per-row U-Net, diffusion-forcing training); window of W = min(S, K) "
               "frames, noise level linear in window position, a shift every K/W calls commits the front frame; "
               "NFE = ⌊(S−1)K/W⌋ + K; outer loop S; nll = variational bound of the ddpm chain along this table"),
        outer="S",
    )

    checkpoints = ("ar_diffusion",)

    def starts(self, S: int, K: int) -> list[int]:
        return rolling_starts(S, K)

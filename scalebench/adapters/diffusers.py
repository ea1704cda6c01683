"""Any local diffusers `UNet2DModel` as a generator: samplers = diffusers schedulers, K = num_inference_steps.

`args.path` is a directory written by `UNet2DModel.save_pretrained` (the scheduler is then
diffusers' default DDPM training schedule) or by `DiffusionPipeline.save_pretrained` (its `unet/`
and, when present, `scheduler/` subfolders). Everything is loaded with `local_files_only=True`.
Each sampler is a diffusers scheduler built with `from_config` from the model's own scheduler
config (the documented way of swapping schedulers), so one loaded model serves every scheduler
and one spec entry sweeps several (`samplers = ["ddim", "dpmpp2m"]`). The loop is the one of
diffusers' unconditional pipelines: noise × init_noise_sigma, then per timestep
`scale_model_input` → UNet → `step` (Ho et al. 2020; Song et al. 2021; Lu et al. 2022;
Karras et al. 2022; Zhao et al. 2023). diffusers is imported only when a model is loaded.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalebench.api import Axis, Budget, MethodCard
from scalebench.params import ArgsError, Param

if TYPE_CHECKING:  # pragma: no cover
    import torch

SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "dpmpp2m": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}
"""Sampler name → diffusers scheduler class (each with its own defaults for what the config lacks)."""

SPACINGS = ("trailing", "leading", "linspace", "config")
UNET_CLASS = "UNet2DModel"


def _layout(where: str, path: str | Path) -> tuple[Path, dict[str, Any], Path | None]:
    """(UNet directory, its config, scheduler-config directory or None) of a model or pipeline folder."""
    p = Path(path)
    if (p / "unet" / "config.json").is_file():
        unet_dir = p / "unet"
        sched = p / "scheduler" if (p / "scheduler" / "scheduler_config.json").is_file() else None
    elif (p / "config.json").is_file():
        unet_dir = p
        sched = p if (p / "scheduler_config.json").is_file() else None
    else:
        raise ArgsError(f"{where}: args.path = '{p}' holds no diffusers model (neither config.json nor "
                        "unet/config.json); give a folder written by UNet2DModel.save_pretrained or "
                        "DiffusionPipeline.save_pretrained")
    try:
        cfg = json.loads((unet_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArgsError(f"{where}: args.path: cannot read '{unet_dir / 'config.json'}' ({e}); "
                        "re-save the model with save_pretrained") from None
    kind = cfg.get("_class_name")
    if kind != UNET_CLASS:
        raise ArgsError(f"{where}: args.path: '{unet_dir}' holds a {kind or 'model of unknown class'}; only an "
                        f"unconditional {UNET_CLASS} is supported")
    if cfg.get("num_class_embeds") or cfg.get("class_embed_type"):
        raise ArgsError(f"{where}: args.path: '{unet_dir}' is a class-conditional {UNET_CLASS}; only "
                        "unconditional models are supported")
    return unet_dir, cfg, sched


def _image_size(cfg: Mapping[str, Any]) -> tuple[int, int]:
    size = cfg.get("sample_size")
    if isinstance(size, int):
        return size, size
    if isinstance(size, list | tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{UNET_CLASS} config has sample_size {size!r}; expected an int or [H, W]")


class DiffusersGenerator:
    """A local diffusers UNet2DModel; each sampler is a diffusers scheduler; K = num_inference_steps."""

    card = MethodCard(
        name="diffusers",
        family="diffusers",
        category="refinement",
        S=Axis.fixed(1),
        K=Axis(meaning="num_inference_steps", default=50, low=1, high=1000),
        dataset="",  # sweep.plan.ANY_DATASET: the spec names the dataset the model was trained on
        paper="Ho et al. 2020; Song et al. 2021; Lu et al. 2022; Karras et al. 2022; Zhao et al. 2023",
        samplers=tuple(SCHEDULERS),
        notes=("a local diffusers UNet2DModel (args.path) with diffusers' schedulers built from the model's "
               "scheduler config: ddim (η=0), ddpm, dpmpp2m = DPM-Solver++(2M) multistep, euler, heun, unipc; "
               "K = num_inference_steps; NFE = K, heun 2K − 1; timestep spacing args.timestep_spacing "
               "(default trailing); samples mapped from [-1, 1] to [0, 1]"),
    )
    params = (
        Param("path", "path", help="a UNet2DModel or pipeline folder"),
        Param("timestep_spacing", "str", "trailing", choices=SPACINGS),  # "config": the model's own
    )
    checkpoints = ()  # the weights are the path argument, whose content hash is in every point's identity

    @classmethod
    def fingerprint(cls) -> str:
        """The schedulers' maths lives in diffusers: its version enters every point's identity."""
        try:
            return f"diffusers=={version('diffusers')}"
        except PackageNotFoundError:
            return "diffusers missing"

    @classmethod
    def check_args(cls, where: str, args: Mapping[str, Any], form: Any) -> None:
        """At planning: the folder holds an unconditional UNet2DModel whose C×H×W is the dataset's."""
        _, cfg, _ = _layout(where, args["path"])
        want = tuple(form.shape)
        if form.dtype != "float" or len(want) != 3:
            raise ArgsError(f"{where}: the dataset's samples are {form.dtype} {want}, not images; "
                            "a diffusers UNet2DModel needs an image dataset (C×H×W floats)")
        try:
            h, w = _image_size(cfg)
        except ValueError as e:
            raise ArgsError(f"{where}: args.path: {e}") from None
        got = (cfg.get("in_channels", 3), h, w)
        if got != want or cfg.get("out_channels", 3) != got[0]:
            raise ArgsError(f"{where}: args.path: the model makes {got[0]}×{h}×{w} images "
                            f"(out_channels {cfg.get('out_channels', 3)}) but the dataset's form is "
                            f"{'×'.join(map(str, want))}; use the dataset the model was trained on")

    def __init__(self, device: str = "cpu", path: str = "", timestep_spacing: str = "trailing") -> None:
        import torch

        from scalebench.adapters import require

        diffusers = require("diffusers", "diffusers")
        unet_dir, cfg, sched_dir = _layout("diffusers", path)
        self.device = torch.device(device)
        self.unet = diffusers.UNet2DModel.from_pretrained(
            unet_dir, local_files_only=True, low_cpu_mem_usage=False).to(self.device).eval()
        self.shape = (int(cfg.get("in_channels", 3)), *_image_size(cfg))
        base = (diffusers.DDPMScheduler.load_config(sched_dir, local_files_only=True) if sched_dir is not None
                else dict(diffusers.DDPMScheduler().config))
        over = {} if timestep_spacing == "config" else {"timestep_spacing": timestep_spacing}
        self.schedulers = {s: getattr(diffusers, cls).from_config(base, **over) for s, cls in SCHEDULERS.items()}
        self.takes_generator = {s: "generator" in inspect.signature(sc.step).parameters
                                for s, sc in self.schedulers.items()}

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet}

    def scheduler(self, budget: Budget, sampler: str | None) -> tuple[str, Any]:
        """A fresh copy of the sampler's scheduler set to K steps (multistep solvers keep state per run)."""
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        sched = copy.deepcopy(self.schedulers[s])
        T = sched.config.num_train_timesteps
        if budget.K > T:
            raise ValueError(f"diffusers/{s}: K={budget.K} is not valid for this model; valid K: 1..{T} "
                             "(its num_train_timesteps)")
        sched.set_timesteps(budget.K, device=self.device)
        if bool((sched.timesteps < 0).any()):
            raise ValueError(f"diffusers/{s}: K={budget.K} is not valid with timestep_spacing "
                             f"'{sched.config.timestep_spacing}': diffusers makes {len(sched.timesteps)} timesteps "
                             "ending at -1 (its float arange overshoots); pick another K or spacing 'linspace'")
        return s, sched

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """UNet calls = the scheduler's timesteps: K, and 2K − 1 for heun (every step but the last
        repeats its timestep for the corrector). Read from diffusers, so exact for every spacing."""
        return len(self.scheduler(budget, sampler)[1].timesteps)

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n images in [0, 1], (n, C, H, W); the initial noise and every scheduler's noise come from `rng`."""
        import torch

        s, sched = self.scheduler(budget, sampler)
        kw = {"generator": rng} if self.takes_generator[s] else {}
        with torch.inference_mode():
            x = torch.randn((n, *self.shape), generator=rng, device=rng.device).to(self.device)
            x = x * sched.init_noise_sigma
            for t in sched.timesteps:
                out = self.unet(sched.scale_model_input(x, t), t).sample
                x = sched.step(out, t, x, **kw).prev_sample
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)

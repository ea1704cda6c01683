"""The reference zoo: one module per family, and the one table that registers them.

Adding a family is one row here plus `scalebench/methods/<id>.py` (card, generator class,
sampler functions, RECIPE, `train()`), one test file and one doc; `GENERATORS` and
`TRAINERS` in `scalebench.registry` are derived from this table. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """A built-in family: module `scalebench.methods.<id>` defines `generator` and `train()`."""

    id: str
    generator: str
    aliases: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return f"scalebench.methods.{self.id}"

    @property
    def target(self) -> str:
        return f"{self.module}:{self.generator}"


FAMILIES: tuple[Family, ...] = (
    Family("diffusion", "DiffusionGenerator", aliases=("ddpm", "ddim")),
    Family("gpt", "GPTGenerator", aliases=("ar",)),
    Family("pixelcnn", "PixelCNNGenerator"),
    Family("mtp", "MTPGenerator"),
    Family("maskgit", "MaskGITGenerator"),
    Family("var", "VARGenerator"),
    Family("gan", "GANGenerator"),
    Family("jacobi", "JacobiGenerator"),
    Family("imm", "IMMGenerator"),
    Family("consistency", "ConsistencyGenerator"),
    Family("ebm", "EBMGenerator"),
    Family("vae", "VAEGenerator"),
    Family("flow", "FlowGenerator"),
    Family("blockwise", "BlockwiseGenerator"),
    Family("ar_diffusion", "ARDiffusionGenerator"),
    Family("rolling", "RollingGenerator"),
    Family("ards", "ARDSGenerator"),
    Family("mar", "MARGenerator"),
)

METRIC_NETS: dict[str, str] = {
    "features": "scalebench.metrics.features:train",
    "refnet": "scalebench.metrics.refnll:train",
}
"""Reference nets that judge samples (not swept): `scalebench train NAME` remakes them too."""

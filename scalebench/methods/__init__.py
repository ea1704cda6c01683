"""The reference zoo: one module per family, and the one table that registers them.

Adding a family is one row here plus `scalebench/methods/<id>.py` (card, generator class,
sampler functions, RECIPE, `train()`), one test file and one doc; `GENERATORS` and
`TRAINERS` in `scalebench.generators` are derived from this table. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """A built-in family: module `scalebench.methods.<id>` defines `generator` and, unless it samples
    other families' weights (`samples_weights_of`: no checkpoint of its own), `train()`."""

    id: str
    generator: str
    aliases: tuple[str, ...] = ()
    samples_weights_of: tuple[str, ...] = ()

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
    Family("jacobi", "JacobiGenerator", samples_weights_of=("gpt",)),
    Family("imm", "IMMGenerator"),
    Family("consistency", "ConsistencyGenerator"),
    Family("ebm", "EBMGenerator"),
    Family("vae", "VAEGenerator"),
    Family("flow", "FlowGenerator"),
    Family("blockwise", "BlockwiseGenerator", samples_weights_of=("gpt", "mtp")),
    Family("ar_diffusion", "ARDiffusionGenerator"),
    Family("rolling", "RollingGenerator", samples_weights_of=("ar_diffusion",)),
    Family("ards", "ARDSGenerator"),
    Family("mar", "MARGenerator"),
)

METRIC_NETS: dict[str, str] = {
    "features": "scalebench.metrics.features:train",
    "refnet": "scalebench.metrics.refnll:train",
}
"""Reference nets that judge samples (not swept): `scalebench train NAME` remakes them too."""

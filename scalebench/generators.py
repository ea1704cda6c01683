"""The registries the harness runs on: GENERATORS and TRAINERS, built from the two tables.

`scalebench.methods.FAMILIES` (built-in families) and `scalebench.adapters.ADAPTERS` (other
libraries' models) are the only lists; nothing here is kept by hand. A family that samples
another family's weights (`Family.samples_weights_of`) has no trainer: `scalebench train` names
the checkpoints to retrain instead. Third-party generators arrive through the
`scalebench.generators` entry-point group (`scalebench.registry.Registry`).
"""

from __future__ import annotations

from typing import Any

from scalebench.adapters import ADAPTERS
from scalebench.errors import UsageError
from scalebench.methods import FAMILIES, METRIC_NETS
from scalebench.registry import Registry


def _build() -> tuple[Registry[Any], Registry[Any]]:
    generators: Registry[Any] = Registry("generator", entry_point_group="scalebench.generators")
    trainers: Registry[Any] = Registry("trainable model")
    for fam in FAMILIES:
        generators.register(fam.id, fam.target, aliases=fam.aliases)
        if not fam.samples_weights_of:
            trainers.register(fam.id, f"{fam.module}:train")
    for name, target in METRIC_NETS.items():
        trainers.register(name, target)
    for name, target in ADAPTERS.items():
        generators.register(name, target)
    return generators, trainers


GENERATORS, TRAINERS = _build()
"""GENERATORS: every generator the harness can sweep (classes with `card` and `__init__(device)`);
TRAINERS: `scalebench train NAME` → `train(recipe=None, out_dir=None) -> Path`."""


def trainer(name: str) -> Any:
    """The `train` function behind `scalebench train NAME`; a family without weights of its own
    is refused with the checkpoints to retrain instead."""
    fam = next((f for f in FAMILIES if name in (f.id, *f.aliases)), None)
    if fam is not None and fam.samples_weights_of:
        others = " and ".join(f"`scalebench train {w}`" for w in fam.samples_weights_of)
        raise UsageError(f"{fam.id} has no checkpoint of its own: it samples the shipped "
                         f"{', '.join(fam.samples_weights_of)}; run {others} to retrain the weights it uses")
    return TRAINERS.get(name)


def load_generator(name: str, device: str = "cpu", replicate: str = "", **args: Any) -> Any:
    """Instantiate a registered generator on `device` (this loads its weights); `args` are its
    declared parameters (`scalebench.params`), already validated by the caller.

    `replicate` (a zoo checkpoint `<base>-rN`) is loaded wherever the generator loads `<base>`
    (`zoo.substitute`), so every family takes replicates without an argument of its own; a
    generator that did not load `<base>` while being built cannot, and says so."""
    cls = GENERATORS.get(name)
    if not replicate:
        return cls(device=device, **args)
    from scalebench.zoo import replicate_base, substitute

    base = replicate_base(replicate)
    with substitute(base, replicate) as used:
        gen = cls(device=device, **args)
    if base not in used:
        raise ValueError(f"{name} did not load checkpoint {base!r} while being built, so it cannot sample "
                         f"replicate {replicate!r}; remove replicates from its spec entry")
    return gen


def default_checkpoint(name: str) -> str:
    """The checkpoint a generator loads by default (its first `checkpoints`), else its own name:
    the `replicate` of its points that name none. A generator that no longer imports: its name."""
    try:
        loads = getattr(GENERATORS.get(name), "checkpoints", ()) or ()
    except Exception:  # noqa: BLE001 — an uninstalled or broken plugin still has results to show
        loads = ()
    return str(loads[0]) if loads else name
